package typing

import (
	"strings"

	"github.com/ledgerlake/ledgerlake/schemas"
)

// maxPrecision is the widest DECIMAL that DuckDB, Parquet's DECIMAL128 and Iceberg hold.
const maxPrecision = 38

// A declared DECIMAL column's precision and scale are a starting point, not a limit the API promised
// (signicat-notes.md: SDK decimals, no stated scale): a value needing more digits widens the column as
// Observe widens inferred ones, so the value the API sent is kept exactly rather than made NULL.
// Integer and fractional digits only ever grow, so every value an earlier type held fits the wider
// one and the warehouse's ALTER and the history's casts cannot fail. Only a value that no
// DECIMAL(38,s) beside the column's other values holds is a reject.

// decimalNeed is the fewest integer and fractional digits that hold the number v exactly (trailing
// fractional zeros carry no value); ok is false when v is no number or needs more than 38 digits.
func decimalNeed(v any) (ints, scale int, ok bool) {
	mant, exp, err := splitDecimal(numberText(v))
	if err != nil {
		return 0, 0, false
	}
	digits := strings.TrimLeft(strings.TrimPrefix(mant, "-"), "0")
	trimmed := strings.TrimRight(digits, "0")
	exp += len(digits) - len(trimmed)
	if trimmed == "" {
		return 0, 0, true
	}
	scale = max(0, -exp)
	ints = max(0, len(trimmed)+exp)
	return ints, scale, ints+scale <= maxPrecision
}

// widenDecimal is the narrowest widening of the DECIMAL t that also holds ints integer and scale
// fractional digits, within 38 digits. Integer digits come first: where both do not fit, the scale
// grows only as far as the integer digits leave room (a few far fractional digits are rejected
// rather than whole amounts); where even t's scale leaves too little room, t stays.
func widenDecimal(t schemas.Type, ints, scale int) schemas.Type {
	ints = min(max(ints, t.Precision-t.Scale), maxPrecision-t.Scale)
	scale = max(t.Scale, min(scale, maxPrecision-ints))
	if ints+scale == t.Precision && scale == t.Scale {
		return t
	}
	return schemas.Type{Kind: schemas.Decimal, Precision: ints + scale, Scale: scale}
}

// widensFor reports whether the declared column of type t must widen to hold v: v is a number t
// cannot hold exactly, and a wider DECIMAL can.
func widensFor(t schemas.Type, v any) bool {
	if t.Kind != schemas.Decimal || isNull(t, v) {
		return false
	}
	if _, err := ParseDecimal(numberText(v), t.Precision, t.Scale); err == nil {
		return false
	}
	ints, scale, ok := decimalNeed(v)
	return ok && widenDecimal(t, ints, scale) != t
}

// noteDeclared records in seen the digits the value v of a declared DECIMAL column (at key, the
// field k of the object at path) needs, when its type t does not hold it.
func noteDeclared(seen map[string]*observation, key string, path []string, k string, t schemas.Type, v any) {
	if !widensFor(t, v) {
		return
	}
	ints, scale, _ := decimalNeed(v)
	o := seen[key]
	if o == nil {
		o = &observation{path: append(append([]string(nil), path...), k), typ: nullType}
		seen[key] = o
	}
	o.ints, o.scale = max(o.ints, ints), max(o.scale, scale)
}

// widenDeclared widens the declared DECIMAL column c to hold what o saw, recording the change.
func (s *Schema) widenDeclared(c *Column, o *observation) bool {
	if c.typ.Kind != schemas.Decimal {
		return false
	}
	to := widenDecimal(c.typ, o.ints, o.scale)
	if to == c.typ {
		return false
	}
	s.pending = append(s.pending, Change{Table: s.Table, Column: c.Name, From: c.Type, To: to.String()})
	c.typ, c.Type = to, to.String()
	return true
}

// keepWidened gives the declared column c the type an earlier run widened it to, when that is a wider
// DECIMAL than schemas/ declares: narrowing it again would turn the values that widened it into
// rejects. A persisted type that does not parse is not trusted and the declared one stands.
func keepWidened(c *Column, persisted *Schema) {
	if persisted == nil {
		return
	}
	for _, p := range persisted.Columns {
		if !p.Declared || pathKey(p.Path) != pathKey(c.Path) {
			continue
		}
		was, err := schemas.ParseType(p.Type)
		now := schemas.MustType(c.Type)
		if err == nil && was.Kind == schemas.Decimal && now.Kind == schemas.Decimal {
			c.Type = widenDecimal(now, was.Precision-was.Scale, was.Scale).String()
		}
		return
	}
}
