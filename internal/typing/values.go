package typing

import (
	"encoding/json"
	"errors"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow/decimal128"
)

// timestampLayouts are every timestamp shape the two API references print: RFC 3339 with and without
// fraction ("2022-05-11T11:28:59Z", "2998-12-31T23:59:59.997+02:00"), and zone-less values with 'T' or a
// space, with or without milliseconds ("2020-10-01T00:00:00", "2025-04-01 00:00:00.000").
var (
	zonedLayouts = []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02T15:04Z07:00"}
	naiveLayouts = []string{"2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"}
)

// ParseTimestamp reads any timestamp format of the specs. zoned reports whether the text carried a zone
// or offset; a zone-less value is returned as that wall-clock time in UTC.
func ParseTimestamp(s string) (t time.Time, zoned bool, err error) {
	// Every layout begins YYYY-MM-DD and has 'T' or ' ' after it: checking that first turns away the
	// names, ids and amounts that make up most strings without trying eight layouts on each (type
	// inference asks this of every string value), and picks the layouts that can match.
	var zl, nl []string
	switch {
	case len(s) < 10 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' || !digits(s[8:10]):
		return time.Time{}, false, errNotTimestamp
	case len(s) == 10:
		zl, nl = nil, naiveLayouts[4:]
	case s[10] == 'T':
		zl, nl = []string{zonedLayouts[0], zonedLayouts[2]}, []string{naiveLayouts[0], naiveLayouts[2]}
	case s[10] == ' ':
		zl, nl = zonedLayouts[1:2], []string{naiveLayouts[1], naiveLayouts[3]}
	default:
		return time.Time{}, false, errNotTimestamp
	}
	if t, ok := naiveSeconds(s); ok {
		return t, false, nil
	}
	for _, l := range zl {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true, nil
		}
	}
	for _, l := range nl {
		if t, err := time.Parse(l, s); err == nil {
			return t, false, nil
		}
	}
	return time.Time{}, false, errNotTimestamp
}

var errNotTimestamp = errors.New("not a timestamp in any format of the API references")

// naiveSeconds reads the most common zone-less shape, "2006-01-02 15:04:05[.000]" (or with 'T'),
// without time.Parse's general layout machinery; anything else, or any value out of range, is left
// to the layouts (ok false). FuzzParseTimestamp holds it to them.
func naiveSeconds(s string) (time.Time, bool) {
	if len(s) < 19 || s[13] != ':' || s[16] != ':' || !digits(s[11:13]) || !digits(s[14:16]) || !digits(s[17:19]) {
		return time.Time{}, false
	}
	nanos := 0
	if len(s) > 19 {
		frac := s[20:]
		if s[19] != '.' || len(frac) == 0 || len(frac) > 9 || !digits(frac) {
			return time.Time{}, false
		}
		for i := 0; i < 9; i++ {
			nanos *= 10
			if i < len(frac) {
				nanos += int(frac[i] - '0')
			}
		}
	}
	num := func(a, b int) int {
		n := 0
		for i := a; i < b; i++ {
			n = n*10 + int(s[i]-'0')
		}
		return n
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 7), num(8, 10), num(11, 13), num(14, 16), num(17, 19)
	if mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 59 {
		return time.Time{}, false
	}
	if d > time.Date(y, time.Month(mo)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), d, h, mi, sec, nanos, time.UTC), true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

var (
	errNotDecimal = errors.New("not a decimal number")
	errScale      = errors.New("more fractional digits than the column's scale (would round)")
	errPrecision  = errors.New("too many digits for the column's precision")
)

// ParseDecimal converts decimal text (a JSON number's literal, exponent allowed) to an unscaled integer
// at scale, exactly: a value that cannot be held without rounding is an error, never rounded.
func ParseDecimal(s string, precision, scale int) (decimal128.Num, error) {
	if n, ok := parseShortDecimal(s, precision, scale); ok {
		return n, nil
	}
	return parseDecimal(s, precision, scale)
}

// parseShortDecimal is ParseDecimal for the common literal — plainNumber's shape, with no more
// fractional digits than scale — without the text the general path builds (money columns were a
// decimal per row, make bench). It declines (ok false) whatever else, errors included.
func parseShortDecimal(s string, precision, scale int) (n decimal128.Num, ok bool) {
	mant, frac, ok := plainNumber(s)
	frac = max(frac, 0)
	if !ok || frac > scale {
		return n, false
	}
	digits := 0
	for m := mant; m != 0; m /= 10 {
		digits++
	}
	if digits > 0 && digits+scale-frac > precision {
		return n, false // the general path names the error
	}
	return decimal128.FromI64(mant).Mul(decimal128.GetScaleMultiplier(scale - frac)), true
}

// parseDecimal is ParseDecimal's general path: exponents, long values and every error.
func parseDecimal(s string, precision, scale int) (decimal128.Num, error) {
	mant, exp, err := splitDecimal(s)
	if err != nil {
		return decimal128.Num{}, err
	}
	// value = mant × 10^exp; want unscaled = value × 10^scale.
	shift := exp + scale
	neg := strings.HasPrefix(mant, "-")
	digits := strings.TrimLeft(strings.TrimPrefix(mant, "-"), "0")
	if shift < 0 {
		cut := len(digits) + shift
		if cut < 0 {
			cut = 0
		}
		if strings.Trim(digits[cut:], "0") != "" {
			return decimal128.Num{}, errScale
		}
		digits = digits[:cut]
	} else if digits != "" {
		digits += strings.Repeat("0", shift)
	}
	if len(digits) > precision {
		return decimal128.Num{}, errPrecision
	}
	if digits == "" {
		return decimal128.Num{}, nil
	}
	if len(digits) <= 18 {
		v, _ := strconv.ParseInt(digits, 10, 64)
		if neg {
			v = -v
		}
		return decimal128.FromI64(v), nil
	}
	bi, _ := new(big.Int).SetString(digits, 10)
	if neg {
		bi.Neg(bi)
	}
	return decimal128.FromBigInt(bi), nil
}

// splitDecimal separates "-12.345e2" into mantissa digits "-12345" and exponent -1.
func splitDecimal(s string) (mant string, exp int, err error) {
	s = strings.TrimSpace(s)
	if e := strings.IndexAny(s, "eE"); e >= 0 {
		exp, err = strconv.Atoi(s[e+1:])
		if err != nil || exp > 100 || exp < -100 {
			return "", 0, errNotDecimal
		}
		s = s[:e]
	}
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" && frac == "" {
		return "", 0, errNotDecimal
	}
	for _, part := range []string{intPart, frac} {
		for i := 0; i < len(part); i++ {
			if part[i] < '0' || part[i] > '9' {
				return "", 0, errNotDecimal
			}
		}
	}
	mant = intPart + frac
	if neg {
		mant = "-" + mant
	}
	return mant, exp - len(frac), nil
}

// FormatDecimal renders an unscaled value at scale as decimal text, the inverse of ParseDecimal.
func FormatDecimal(n decimal128.Num, scale int) string { return FormatScaled(n.BigInt(), scale) }

// FormatScaled renders unscaled × 10^-scale as decimal text with exactly scale fractional digits
// (12340 at scale 3 → "12.340"), never through floating point.
func FormatScaled(unscaled *big.Int, scale int) string {
	neg := unscaled.Sign() < 0
	s := new(big.Int).Abs(unscaled).String()
	if scale > 0 {
		if len(s) <= scale {
			s = strings.Repeat("0", scale-len(s)+1) + s
		}
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// text renders a scalar JSON value as the text the API sent; objects and arrays as compact JSON.
func text(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
