package sources

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// decoder reads JSON into the values encoding/json produces for `any` with UseNumber — map[string]any,
// []any, string, json.Number, bool, nil — without reflection: decoding was the largest share of the
// conversion's CPU (make bench). FuzzEachInArray holds it to encoding/json on every input: the same
// values where encoding/json accepts a body, an error where it refuses one.
type decoder struct {
	b    []byte
	i    int
	keys map[string]string // object keys repeat in every record: one string each
	// sizes[depth] is the field count of the last object closed at that depth: records of one body have
	// the same fields, and a map made at its final size is never rehashed while it fills.
	sizes [8]int
	// block holds the text of string and number values (cut): one allocation per few kilobytes of
	// values instead of one per value.
	block []byte
}

// blockSize bounds what one retained value keeps alive: its block.
const blockSize = 4 << 10

// cut returns b as a string, copied into the current block (a new one when it is full). Strings share
// a block's memory, which is safe because a block's bytes are never written again once cut.
func (d *decoder) cut(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > blockSize/4 {
		return string(b)
	}
	if cap(d.block)-len(d.block) < len(b) {
		d.block = make([]byte, 0, blockSize)
	}
	start := len(d.block)
	d.block = append(d.block, b...)
	return unsafe.String(&d.block[start], len(b))
}

// controlEscapes are the characters JSON's one-letter escapes stand for.
var controlEscapes = [256]byte{'b': '\b', 'f': '\f', 'n': '\n', 'r': '\r', 't': '\t'}

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

var errEnd = errors.New("unexpected end of JSON input")

func (d *decoder) fail(what string) error {
	if d.i >= len(d.b) {
		return errEnd
	}
	return fmt.Errorf("invalid character %q %s (offset %d)", d.b[d.i], what, d.i)
}

func (d *decoder) space() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// value decodes the value at d.i (whitespace skipped before it).
func (d *decoder) value(depth int) (any, error) {
	d.space()
	if d.i >= len(d.b) {
		return nil, errEnd
	}
	switch c := d.b[d.i]; {
	case c == '{':
		return d.object(depth + 1)
	case c == '[':
		return d.array(depth + 1)
	case c == '"':
		return d.str(false)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	case c == 't':
		return true, d.literal("true")
	case c == 'f':
		return false, d.literal("false")
	case c == 'n':
		return nil, d.literal("null")
	}
	return nil, d.fail("looking for beginning of value")
}

func (d *decoder) literal(word string) error {
	for k := 0; k < len(word); k++ {
		if d.i >= len(d.b) {
			return errEnd
		}
		if d.b[d.i] != word[k] {
			return d.fail("in literal " + word)
		}
		d.i++
	}
	return nil
}

func (d *decoder) object(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("exceeded max depth")
	}
	d.i++ // {
	var m map[string]any
	if depth < len(d.sizes) {
		m = make(map[string]any, d.sizes[depth])
	} else {
		m = map[string]any{}
	}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == '}' {
		d.i++
		return m, nil
	}
	for {
		d.space()
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		if d.b[d.i] != '"' {
			return nil, d.fail("looking for beginning of object key string")
		}
		k, err := d.str(true)
		if err != nil {
			return nil, err
		}
		d.space()
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		if d.b[d.i] != ':' {
			return nil, d.fail("after object key")
		}
		d.i++
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		m[k] = v
		d.space()
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case '}':
			d.i++
			if depth < len(d.sizes) {
				d.sizes[depth] = len(m)
			}
			return m, nil
		default:
			return nil, d.fail("after object key:value pair")
		}
	}
}

func (d *decoder) array(depth int) (any, error) {
	if depth > maxDepth {
		return nil, errors.New("exceeded max depth")
	}
	d.i++ // [
	a := []any{}
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
		return a, nil
	}
	for {
		v, err := d.value(depth)
		if err != nil {
			return nil, err
		}
		a = append(a, v)
		d.space()
		if d.i >= len(d.b) {
			return nil, errEnd
		}
		switch d.b[d.i] {
		case ',':
			d.i++
		case ']':
			d.i++
			return a, nil
		default:
			return nil, d.fail("after array element")
		}
	}
}

// number scans a JSON number and keeps its text.
func (d *decoder) number() (any, error) {
	start := d.i
	if d.b[d.i] == '-' {
		d.i++
	}
	digits := func() int {
		n := 0
		for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
			d.i++
			n++
		}
		return n
	}
	switch {
	case d.i >= len(d.b):
		return nil, errEnd
	case d.b[d.i] == '0':
		d.i++
	case d.b[d.i] >= '1' && d.b[d.i] <= '9':
		digits()
	default:
		return nil, d.fail("in numeric literal")
	}
	if d.i < len(d.b) && d.b[d.i] == '.' {
		d.i++
		if digits() == 0 {
			return nil, d.fail("after decimal point in numeric literal")
		}
	}
	if d.i < len(d.b) && (d.b[d.i] == 'e' || d.b[d.i] == 'E') {
		d.i++
		if d.i < len(d.b) && (d.b[d.i] == '+' || d.b[d.i] == '-') {
			d.i++
		}
		if digits() == 0 {
			return nil, d.fail("in exponent of numeric literal")
		}
	}
	return json.Number(d.cut(d.b[start:d.i])), nil
}

// str decodes the string at d.i as encoding/json does: escapes resolved, invalid UTF-8 and lone
// surrogates replaced by U+FFFD, control characters refused. Keys are interned.
func (d *decoder) str(key bool) (string, error) {
	d.i++ // opening quote
	start := d.i
	// Fast path: no escapes, ASCII or valid UTF-8 up to the closing quote.
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			raw := d.b[start:d.i]
			d.i++
			if key {
				if s, ok := d.keys[string(raw)]; ok {
					return s, nil
				}
				s := string(raw)
				d.keys[s] = s
				return s, nil
			}
			return d.cut(raw), nil
		}
		if c == '\\' || c < ' ' || c >= utf8.RuneSelf {
			break
		}
		d.i++
	}
	// Slow path from the first special byte.
	out := make([]byte, 0, d.i-start+16)
	out = append(out, d.b[start:d.i]...)
	for {
		if d.i >= len(d.b) {
			return "", errEnd
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if key {
				return string(out), nil
			}
			return d.cut(out), nil
		case c < ' ':
			return "", d.fail("in string literal")
		case c == '\\':
			d.i++
			if d.i >= len(d.b) {
				return "", errEnd
			}
			switch e := d.b[d.i]; e {
			case '"', '\\', '/':
				out = append(out, e)
				d.i++
			case 'b', 'f', 'n', 'r', 't':
				out = append(out, controlEscapes[e])
				d.i++
			case 'u':
				d.i++
				r, ok := d.hex4()
				if !ok {
					return "", d.fail("in \\u hexadecimal character escape")
				}
				if utf16.IsSurrogate(r) {
					// A pair only when a \u escape of the low half follows at once.
					if d.i+6 <= len(d.b) && d.b[d.i] == '\\' && d.b[d.i+1] == 'u' {
						save := d.i
						d.i += 2
						if r2, ok := d.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != unicode.ReplacementChar {
								out = utf8.AppendRune(out, dec)
								continue
							}
						}
						d.i = save
					}
					r = unicode.ReplacementChar
				}
				out = utf8.AppendRune(out, r)
			default:
				return "", d.fail("in string escape code")
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			d.i++
		default:
			r, size := utf8.DecodeRune(d.b[d.i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, unicode.ReplacementChar)
			} else {
				out = append(out, d.b[d.i:d.i+size]...)
			}
			d.i += size
		}
	}
}

// hex4 reads the four hex digits of a \u escape.
func (d *decoder) hex4() (rune, bool) {
	if d.i+4 > len(d.b) {
		return 0, false
	}
	var r rune
	for _, c := range d.b[d.i : d.i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	d.i += 4
	return r, true
}

// EachInReader is EachInArray for a body read from r (a spooled response): it holds one element at a
// time, never the whole body, and hands fn the same records with the same errors.
func EachInReader(r io.Reader, fn func(Record) error) error {
	return eachInReader(r, func(r Record, _ []byte) error { return fn(r) })
}

// eachInReader is EachInReader passing each record's bytes too (valid during the call).
func eachInReader(r io.Reader, fn func(Record, []byte) error) error {
	s := elements{r: r, buf: make([]byte, 0, 64<<10)}
	d := decoder{keys: map[string]string{}}
	c, err := s.next()
	if err != nil {
		return errNotArray{err}
	}
	if c == 'n' && s.null() {
		return ErrNull
	}
	if c != '[' {
		return errNotArray{fmt.Errorf("invalid character %q looking for the array (offset %d)", c, s.offset())}
	}
	s.pos++
	if c, err = s.next(); err != nil {
		return errNotArray{err}
	}
	if c == ']' {
		s.pos++
	} else {
		for n := 0; ; n++ {
			at := s.offset()
			elem, err := s.element()
			if err == nil {
				d.b, d.i = elem, 0
				var v any
				if v, err = d.value(1); err == nil && d.i != len(d.b) {
					err = d.fail("after array element")
				}
				if err == nil {
					r, ok := v.(map[string]any)
					if !ok {
						return errNotArray{fmt.Errorf("element %d is %T, not an object", n, v)}
					}
					if err := fn(r, elem); err != nil {
						return err
					}
				}
			}
			if err != nil {
				return errNotArray{fmt.Errorf("element %d (at byte %d): %w", n, at, err)}
			}
			if c, err = s.next(); err != nil {
				return errNotArray{err}
			}
			s.pos++
			if c == ']' {
				break
			}
			if c != ',' {
				return errNotArray{fmt.Errorf("invalid character %q after array element (offset %d)", c, s.offset()-1)}
			}
		}
	}
	if _, err := s.next(); err != errEnd {
		if err == nil {
			err = fmt.Errorf("data after the array (offset %d)", s.offset())
		}
		return errNotArray{err}
	}
	return nil
}

// elements cuts a JSON array read from r into its elements' bytes, reading as it goes.
type elements struct {
	r    io.Reader
	buf  []byte // buf[pos:] is read but not yet consumed
	pos  int
	base int64 // offset in the body of buf[0]
	err  error // r's error, once seen
}

func (s *elements) offset() int64 { return s.base + int64(s.pos) }

// more reads into buf, first dropping what is before keep; false once r has nothing more.
func (s *elements) more(keep int) bool {
	if s.err != nil {
		return false
	}
	if keep > 0 {
		n := copy(s.buf, s.buf[keep:])
		s.buf, s.pos, s.base = s.buf[:n], s.pos-keep, s.base+int64(keep)
	}
	if len(s.buf) > cap(s.buf)/2 {
		s.buf = slices.Grow(s.buf, cap(s.buf)) // an element larger than half the buffer
	}
	for {
		m, err := s.r.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+m]
		if err != nil {
			s.err = err
		}
		if m > 0 || err != nil {
			return m > 0
		}
	}
}

// fail is the error for a body that ended early: errEnd at its end, or r's error.
func (s *elements) fail() error {
	if s.err == io.EOF {
		return errEnd
	}
	return fmt.Errorf("reading the body: %w", s.err)
}

// next skips whitespace and returns the next byte, leaving it unconsumed.
func (s *elements) next() (byte, error) {
	for {
		for ; s.pos < len(s.buf); s.pos++ {
			switch c := s.buf[s.pos]; c {
			case ' ', '\t', '\n', '\r':
			default:
				return c, nil
			}
		}
		if !s.more(s.pos) {
			return 0, s.fail()
		}
	}
}

// null reports whether what is left of the body, from pos, is the literal null and whitespace.
func (s *elements) null() bool {
	for len(s.buf)-s.pos < len("null") && s.more(s.pos) {
	}
	if len(s.buf)-s.pos < len("null") || string(s.buf[s.pos:s.pos+4]) != "null" {
		return false
	}
	s.pos += 4
	_, err := s.next()
	return err == errEnd
}

// element returns the bytes of the value starting at pos (whitespace skipped), which stay valid until
// the next call. It only finds where the value ends — strings, escapes and nesting — and leaves
// checking it to the decoder: a scalar ends at the first comma, bracket or space outside a string.
func (s *elements) element() ([]byte, error) {
	if _, err := s.next(); err != nil {
		return nil, err
	}
	depth, inString := 0, false
	for i := s.pos; ; i++ {
		if i == len(s.buf) {
			off := i - s.pos
			if !s.more(s.pos) {
				if s.err == io.EOF && depth == 0 && !inString {
					break // a scalar at the very end; the decoder and the missing ']' report it
				}
				return nil, s.fail()
			}
			i = s.pos + off
		}
		c := s.buf[i]
		if inString {
			switch c {
			case '\\':
				if i+1 == len(s.buf) {
					off := i - s.pos
					if !s.more(s.pos) {
						return nil, s.fail()
					}
					i = s.pos + off
				}
				i++ // the escaped byte cannot end the string
			case '"':
				inString = false
				if depth == 0 {
					return s.take(i + 1), nil
				}
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return s.take(i), nil
			}
			depth--
			if depth == 0 {
				return s.take(i + 1), nil
			}
		case ',', ' ', '\t', '\n', '\r':
			if depth == 0 {
				return s.take(i), nil
			}
		}
	}
	return s.take(len(s.buf)), nil
}

// take consumes buf[pos:end] and returns it.
func (s *elements) take(end int) []byte {
	b := s.buf[s.pos:end]
	s.pos = end
	return b
}
