package jsonrec

import (
	"bytes"
	"errors"
	"fmt"
)

// Record is one decoded JSON object: the values encoding/json produces for `any` with UseNumber.
type Record = map[string]any

// ErrNull is a response that is the JSON literal null where a list was expected. An API may well
// answer null for an empty list, and encoding/json reads it as one: it is taken as no records, but
// reported, so that a tenant whose lists come back null every night is noticed.
var ErrNull = errors.New("the response is null, read as an empty list")

// bom is the UTF-8 byte order mark. RFC 8259 §8.1 lets a parser ignore one before a JSON text, and a
// .NET service (GSAPI) may send one: every decoder here skips it, while the body kept as evidence
// keeps it, byte for byte as received.
const bom = "\xef\xbb\xbf"

// afterBOM is the offset of a JSON text in body: past a leading BOM, else 0.
func afterBOM(body []byte) int {
	if bytes.HasPrefix(body, []byte(bom)) {
		return len(bom)
	}
	return 0
}

// IsNull reports whether body is the JSON literal null, with JSON's whitespace around it allowed
// (space, tab, CR, LF: not the rest of Unicode's, which JSON refuses) and a BOM before it.
func IsNull(body []byte) bool { return bare(body) == "null" }

// IsEmptyArray reports whether body is the empty JSON array [], with whitespace and a BOM as IsNull
// allows them.
func IsEmptyArray(body []byte) bool { return bare(body) == "[]" }

// bare is body without a BOM and JSON's whitespace around it.
func bare(body []byte) string { return string(bytes.Trim(body[afterBOM(body):], " \t\r\n")) }

// errNotArray is a body that is not a JSON array of objects.
type errNotArray struct{ err error }

func (e errNotArray) Error() string {
	return "response is not a JSON array of objects: " + e.err.Error()
}
func (e errNotArray) Unwrap() error { return e.err }

// EachInArray decodes a JSON array of objects one element at a time, keeping numbers exact
// (json.Number), and calls fn with each; an error from fn stops it and is returned as is. The body null
// gives ErrNull and no records.
func EachInArray(body []byte, fn func(Record) error) error {
	_, err := EachRawInArray(body, func(r Record, _ []byte) error { return fn(r) })
	return err
}

// EachRawInArray is EachInArray passing fn each record's bytes too (as sent, valid during the call),
// and returning what decoding met.
func EachRawInArray(body []byte, fn func(Record, []byte) error) (Quirks, error) {
	d := decoder{b: body, i: afterBOM(body), keys: map[string]string{}}
	err := d.eachInArray(fn)
	return d.q, err
}

func (d *decoder) eachInArray(fn func(Record, []byte) error) error {
	d.space()
	if IsNull(d.b[d.i:]) {
		return ErrNull
	}
	if d.i >= len(d.b) || d.b[d.i] != '[' {
		return errNotArray{d.fail("looking for the array")}
	}
	d.i++
	d.space()
	if d.i < len(d.b) && d.b[d.i] == ']' {
		d.i++
	} else {
		for n := 0; ; n++ {
			d.space()
			start := d.i
			v, err := d.value(1)
			if err != nil {
				return errNotArray{fmt.Errorf("element %d: %w", n, err)}
			}
			r, ok := v.(map[string]any)
			if !ok {
				return errNotArray{fmt.Errorf("element %d is %T, not an object", n, v)}
			}
			if err := fn(r, d.b[start:d.i]); err != nil {
				return err
			}
			d.space()
			if d.i >= len(d.b) {
				return errNotArray{errEnd}
			}
			if d.b[d.i] == ']' {
				d.i++
				break
			}
			if d.b[d.i] != ',' {
				return errNotArray{d.fail("after array element")}
			}
			d.i++
		}
	}
	d.space()
	if d.i != len(d.b) {
		return errNotArray{fmt.Errorf("data after the array (offset %d)", d.i)}
	}
	return nil
}

// DecodeArray decodes a JSON array of objects, keeping numbers exact (json.Number). The body null is
// an empty list, as encoding/json reads it; callers that build pages report it (IsNull).
func DecodeArray(body []byte) ([]Record, error) {
	var out []Record
	err := EachInArray(body, func(r Record) error {
		out = append(out, r)
		return nil
	})
	if errors.Is(err, ErrNull) {
		return nil, nil
	}
	return out, err
}

// DecodeObject decodes one JSON object, keeping numbers exact, and says what decoding it met.
func DecodeObject(body []byte) (Record, Quirks, error) {
	d := decoder{b: body, i: afterBOM(body), keys: map[string]string{}}
	d.space()
	v, err := d.value(0)
	if err == nil {
		if d.space(); d.i != len(d.b) {
			err = fmt.Errorf("data after the object (offset %d)", d.i)
		}
	}
	r, ok := v.(map[string]any)
	if err == nil && !ok {
		err = fmt.Errorf("it is %s", jsonKind(v))
	}
	if err != nil {
		return nil, d.q, fmt.Errorf("response is not a JSON object: %w", err)
	}
	return r, d.q, nil
}
