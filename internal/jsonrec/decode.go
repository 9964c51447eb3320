// Package jsonrec decodes API answers into records: a JSON array of objects (from memory, or from a
// reader one element at a time), Signicat's {data, next} envelope and single objects, keeping numbers
// exact (json.Number) and counting what it changed on the way (Quirks). It is a tokenizer of its own,
// without reflection, held to encoding/json by fuzzing (FuzzEachInArray, FuzzEachInReader,
// FuzzEachInEnvelope).
package jsonrec

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

	"github.com/ledgerlake/ledgerlake/internal/spool"
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
	q     Quirks
}

// Quirks count what decoding changed without failing, which other JSON decoders change silently:
// each kind is reported with the stream, never passed over.
type Quirks struct {
	// InvalidUTF8 counts strings with invalid UTF-8 or a lone surrogate escape, each replaced by U+FFFD
	// as encoding/json does (a JSON text must be UTF-8).
	InvalidUTF8 int
	// DuplicateKeys counts keys that came twice in one object; the last value is kept, as encoding/json
	// keeps it. Key is the first such key.
	DuplicateKeys int
	Key           string
}

// Add counts o's quirks into q.
func (q *Quirks) Add(o Quirks) {
	q.InvalidUTF8 += o.InvalidUTF8
	q.DuplicateKeys += o.DuplicateKeys
	if q.Key == "" {
		q.Key = o.Key
	}
}

// Notes say what the quirks were, for a stream's warnings.
func (q Quirks) Notes() []string {
	var out []string
	if q.InvalidUTF8 > 0 {
		out = append(out, fmt.Sprintf("%d strings were not valid UTF-8 (or held a lone surrogate escape): each bad byte was stored as U+FFFD, as JSON requires UTF-8", q.InvalidUTF8))
	}
	if q.DuplicateKeys > 0 {
		out = append(out, fmt.Sprintf("%d objects had a key twice (e.g. %q): the last value was kept, as JSON decoders do; the other is in the evidence body where the stream keeps one", q.DuplicateKeys, q.Key))
	}
	return out
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
		n := len(m)
		if m[k] = v; len(m) == n {
			d.q.DuplicateKeys++
			if d.q.Key == "" {
				d.q.Key = k
			}
		}
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
	invalid := false
	for {
		if d.i >= len(d.b) {
			return "", errEnd
		}
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			if invalid {
				d.q.InvalidUTF8++
			}
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
					r, invalid = unicode.ReplacementChar, true
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
				invalid = true
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

// EachInReader is EachInArray for a body read from r (a spilled response): it holds one element at a
// time, never the whole body, and hands fn the same records with the same errors.
func EachInReader(r io.Reader, fn func(Record) error) error {
	_, err := EachRawInReader(r, DefaultMaxValueBytes, func(r Record, _ []byte) error { return fn(r) })
	return err
}

// DefaultMaxValueBytes is the largest JSON value decoded at once (a record, a detail object) unless a
// run's config says otherwise (max_value_bytes): memory follows it, not the size of an answer.
const DefaultMaxValueBytes = 64 << 20

// EachRawInReader is EachInReader passing fn each record's bytes too (valid during the call), and
// returning what decoding met; an element over maxValue bytes fails it.
func EachRawInReader(r io.Reader, maxValue int, fn func(Record, []byte) error) (Quirks, error) {
	s := newElements(r, maxValue)
	d := decoder{keys: map[string]string{}}
	c, err := s.next()
	if err != nil {
		return d.q, errNotArray{err}
	}
	if c == 'n' && s.null() {
		return d.q, ErrNull
	}
	if c != '[' {
		return d.q, errNotArray{fmt.Errorf("invalid character %q looking for the array (offset %d)", c, s.offset())}
	}
	if err := s.array(&d, fn); err != nil {
		return d.q, err
	}
	return d.q, s.end("array")
}

// Envelope is what a {"data": [...], "next": ...} page says besides its records.
type Envelope struct {
	Next *string // the next page's token or link; nil when absent or null
	Null bool    // data was null, read as no records
	Quirks
}

// EachInEnvelope decodes a {"data": [objects], "next": token} page read from r (Signicat's lists), one
// element of data at a time, like EachInReader. Other keys are skipped. A page without data, or with a
// key twice (which of the two counts is nowhere defined), fails: nothing is guessed.
func EachInEnvelope(r io.Reader, maxValue int, fn func(Record) error) (Envelope, error) {
	return EachRawInEnvelope(r, maxValue, func(rec Record, _ []byte) error { return fn(rec) })
}

// EachRawInEnvelope is EachInEnvelope handing fn each record with its bytes as sent, like
// EachRawInReader: a caller can tell a page whose records repeat another page's byte for byte.
func EachRawInEnvelope(r io.Reader, maxValue int, fn func(Record, []byte) error) (Envelope, error) {
	s := newElements(r, maxValue)
	d := decoder{keys: map[string]string{}}
	var env Envelope
	fail := func(err error) (Envelope, error) {
		env.Quirks = d.q
		return env, fmt.Errorf("response is not a {data, next} page: %w", err)
	}
	if c, err := s.next(); err != nil || c != '{' {
		if err == nil {
			err = fmt.Errorf("invalid character %q looking for the object (offset %d)", c, s.offset())
		}
		return fail(err)
	}
	s.pos++
	seen := map[string]bool{}
	for i := 0; ; i++ {
		c, err := s.next()
		if err != nil {
			return fail(err)
		}
		if c == '}' && i == 0 {
			s.pos++
			break
		}
		if i > 0 {
			s.pos++
			if c == '}' {
				break
			}
			if c != ',' {
				return fail(fmt.Errorf("invalid character %q after object key:value pair (offset %d)", c, s.offset()-1))
			}
		}
		key, err := s.key(&d)
		if err != nil {
			return fail(err)
		}
		if seen[key] {
			return fail(fmt.Errorf("the key %q comes twice", key))
		}
		seen[key] = true
		if err := s.member(&d, key, &env, fn); err != nil {
			return fail(err)
		}
	}
	if !seen["data"] {
		return fail(errors.New("it has no data"))
	}
	if err := s.end("object"); err != nil {
		return fail(err)
	}
	env.Quirks = d.q
	return env, nil
}

// key reads an object key and the colon after it.
func (s *elements) key(d *decoder) (string, error) {
	elem, err := s.element()
	if err != nil {
		return "", err
	}
	d.b, d.i = elem, 0
	if len(elem) == 0 || elem[0] != '"' {
		return "", d.fail("looking for beginning of object key string")
	}
	k, err := d.str(true)
	if err != nil {
		return "", err
	}
	if c, err := s.next(); err != nil || c != ':' {
		if err == nil {
			err = fmt.Errorf("invalid character %q after object key (offset %d)", c, s.offset())
		}
		return "", err
	}
	s.pos++
	return k, nil
}

// member reads the value of an envelope's key: data's elements go to fn, next is kept, others skipped.
func (s *elements) member(d *decoder, key string, env *Envelope, fn func(Record, []byte) error) error {
	c, err := s.next()
	if err != nil {
		return err
	}
	if key == "data" && c == '[' {
		return s.array(d, fn)
	}
	v, err := s.value(d)
	if err != nil {
		return err
	}
	switch key {
	case "data":
		if v != nil {
			return fmt.Errorf("data is %s, not a list", jsonKind(v))
		}
		env.Null = true
	case "next":
		switch n := v.(type) {
		case nil:
		case string:
			env.Next = &n
		default:
			return fmt.Errorf("next is %s, not a string", jsonKind(v))
		}
	}
	return nil
}

// value decodes the next whole value.
func (s *elements) value(d *decoder) (any, error) {
	elem, err := s.element()
	if err != nil {
		return nil, err
	}
	d.b, d.i = elem, 0
	v, err := d.value(1)
	if err == nil && d.i != len(d.b) {
		err = d.fail("after value")
	}
	return v, err
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// array reads the array whose '[' is next, handing fn each element, which must be an object.
func (s *elements) array(d *decoder, fn func(Record, []byte) error) error {
	s.pos++
	c, err := s.next()
	if err != nil {
		return errNotArray{err}
	}
	if c == ']' {
		s.pos++
		return nil
	}
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
			return nil
		}
		if c != ',' {
			return errNotArray{fmt.Errorf("invalid character %q after array element (offset %d)", c, s.offset()-1)}
		}
	}
}

// end checks that nothing but whitespace follows the value just read.
func (s *elements) end(what string) error {
	if _, err := s.next(); err != errEnd {
		if err == nil {
			err = fmt.Errorf("data after the %s (offset %d)", what, s.offset())
		}
		return errNotArray{err}
	}
	return nil
}

// elements cuts a JSON text read from r into its values' bytes, reading as it goes.
type elements struct {
	r    io.Reader
	buf  []byte // buf[pos:] is read but not yet consumed
	pos  int
	base int64 // offset in the body of buf[0]
	err  error // r's error, once seen
	max  int   // the longest value it holds at once
}

// newElements reads the text from r, past a BOM before it.
func newElements(r io.Reader, maxValue int) *elements {
	s := &elements{r: r, buf: make([]byte, 0, min(64<<10, maxValue+1)), max: maxValue}
	for len(s.buf) < len(bom) && s.more(0) {
	}
	s.pos = afterBOM(s.buf)
	return s
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
	if len(s.buf) > s.max {
		s.err = &spool.TooLargeError{What: "JSON value (max_value_bytes)", Limit: int64(s.max)}
		return false
	}
	if len(s.buf) > cap(s.buf)/2 {
		// An element larger than half the buffer: double it, never past the largest value it may hold.
		s.buf = slices.Grow(s.buf, min(cap(s.buf), s.max+1-len(s.buf)))
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
	var tl *spool.TooLargeError
	if s.err == io.EOF {
		return errEnd
	}
	if errors.As(s.err, &tl) {
		return s.err
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
