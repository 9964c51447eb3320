package jsonrec

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// stdDecodeArray is the reference: encoding/json on a body that must be exactly one JSON value,
// numbers kept as text, every element an object. A BOM before it is ignored, as RFC 8259 allows and
// encoding/json does not.
func stdDecodeArray(body []byte) ([]Record, error) {
	body = bytes.TrimPrefix(body, []byte(bom))
	if !stdjson.Valid(body) {
		return nil, errors.New("invalid JSON")
	}
	dec := stdjson.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var out []Record
	if err := dec.Decode(&out); err != nil {
		return nil, err
	}
	for _, r := range out {
		if r == nil {
			return nil, errors.New("null element")
		}
	}
	return out, nil
}

var decodeSeeds = []string{
	`[]`, `[{}]`, `[{"a":1,"b":"x","c":null,"d":true,"e":[1,"2",{"f":3.50}],"g":{"h":"Ålesund ü"}}]`,
	`[{"amount":12.3400,"big":123456789012345678901234567890,"exp":1e-7,"neg":-0.0}]`,
	`[{"s":"\u00e9\ud83d\ude00\n\t\"quoted\""}]`, `[{"a":1},{"a":2}]`, `[{"a":1}] `, ` [ {"a" : 1} ]`,
	`[{"a":1}]x`, `[{"a":1}`, `{"a":1}`, `[1]`, `[null]`, `[{"a":1},]`, `[{"a":01}]`, `[{"a":"\x"}]`,
	`[{"a":1,"a":2}]`, "[{\"a\":\"\xff\"}]", `[{"a":[{"b":[{"c":1}]}]}]`, `[{"":""}]`,
	`[{"s":"\ud83d"}]`, `[{"s":"\ud83dx\ude00"}]`, `[{"s":"\ude00\ud83d\ude00"}]`, `[{"s":"\u00zz"}]`, `[{"s":"\'"}]`,
	"[{\"s\":\"a\tb\"}]", `[{"n":-}]`, `[{"n":1.}]`, `[{"n":1e}]`, `[{"n":-0.5E+3}]`, `[{"n":.5}]`, `[{"t":tru}]`,
	`[{"a":[]},{"b":{}}]`, "[{\"k\xc3\x28\":1}]", `[{"a":1}][]`, `  `, `[`, `[{"a":"\/\b\f\n\r\t\\\""}]`,
	`null`, " null\n", `nul`, `nullx`, `null []`, `[null, {}]`,
	"\xef\xbb\xbf[{\"a\":1}]", "\xef\xbb\xbf null", "\xef\xbb\xbf\xef\xbb\xbf[]", " \xef\xbb\xbf[]", "\xef\xbb[]", "\xef\xbb\xbf",
}

// FuzzEachInArray checks the element-by-element decoder against decoding the whole array at once: the
// same records (numbers as the same literal text) for every body that is an array of objects, and an
// error for every body that is not.
func FuzzEachInArray(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, werr := stdDecodeArray(body)
		got, gerr := DecodeArray(body)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("%q: encoding/json error %v, ours %v", body, werr, gerr)
		}
		if werr == nil && !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
			t.Fatalf("%q:\nours     %#v\nstandard %#v", body, got, want)
		}
	})
}

// TestNullBodyIsAnEmptyReportedPage: an API may answer null for an empty list. encoding/json reads it
// as an empty slice, so both decoders take it as no records, and say so with ErrNull (naming the
// request) so that the pipeline reports it instead of passing it silently.
func TestNullBodyIsAnEmptyReportedPage(t *testing.T) {
	recs, err := DecodeArray([]byte(" null \n"))
	if err != nil || len(recs) != 0 {
		t.Fatalf("DecodeArray(null) = %v, %v; want no records, no error", recs, err)
	}
	for _, body := range []string{"null", " null\r\n"} {
		n := 0
		count := func(Record) error { n++; return nil }
		if err := EachInArray([]byte(body), count); !errors.Is(err, ErrNull) {
			t.Errorf("EachInArray(%q) = %v, want ErrNull", body, err)
		}
		if err := EachInReader(iotest.OneByteReader(strings.NewReader(body)), count); !errors.Is(err, ErrNull) {
			t.Errorf("EachInReader(%q) = %v, want ErrNull", body, err)
		}
	}
	for _, body := range []string{"nul", "nullx", "null []", "NULL", " null\v", "\u00a0null"} {
		if err := EachInArray([]byte(body), func(Record) error { return nil }); err == nil || errors.Is(err, ErrNull) {
			t.Errorf("EachInArray(%q) = %v, want a decoding error", body, err)
		}
	}
}

// A UTF-8 BOM before the text (RFC 8259 §8.1 lets a parser ignore it; a .NET service may send it) is
// skipped by every decoder, in memory and from a reader cut into single bytes; anywhere else, or
// twice, it is the invalid character it is.
func TestBOMIsSkippedByEveryDecoder(t *testing.T) {
	const array, envelope, object = `[{"a":1},{"b":"x"}]`, `{"data":[{"a":1}],"next":"t"}`, `{"a":{"b":[1]}}`
	wantArray, _ := DecodeArray([]byte(array))
	wantObject, _, _ := DecodeObject([]byte(object))
	for _, lead := range []string{bom, bom + " \n"} {
		got, err := DecodeArray([]byte(lead + array))
		if err != nil || !reflect.DeepEqual(got, wantArray) {
			t.Errorf("DecodeArray(%q) = %v, %v", lead+array, got, err)
		}
		var read []Record
		err = EachInReader(iotest.OneByteReader(strings.NewReader(lead+array)), func(r Record) error { read = append(read, r); return nil })
		if err != nil || !reflect.DeepEqual(read, wantArray) {
			t.Errorf("EachInReader(%q) = %v, %v", lead+array, read, err)
		}
		var recs []Record
		env, err := EachInEnvelope(iotest.OneByteReader(strings.NewReader(lead+envelope)), DefaultMaxValueBytes, func(r Record) error { recs = append(recs, r); return nil })
		if err != nil || len(recs) != 1 || env.Next == nil || *env.Next != "t" {
			t.Errorf("EachInEnvelope(%q) = %v, %v, %v", lead+envelope, recs, env, err)
		}
		if obj, _, err := DecodeObject([]byte(lead + object)); err != nil || !reflect.DeepEqual(obj, wantObject) {
			t.Errorf("DecodeObject(%q) = %v, %v", lead+object, obj, err)
		}
		if !IsNull([]byte(lead+"null")) || !IsEmptyArray([]byte(lead+"[] ")) {
			t.Errorf("IsNull(%q) or IsEmptyArray(%q) = false", lead+"null", lead+"[] ")
		}
	}
	for _, body := range []string{" " + bom + array, bom + bom + array, "\xef\xbb" + array} {
		if _, err := DecodeArray([]byte(body)); err == nil {
			t.Errorf("DecodeArray(%q) accepted it", body)
		}
		if err := EachInReader(strings.NewReader(body), func(Record) error { return nil }); err == nil {
			t.Errorf("EachInReader(%q) accepted it", body)
		}
	}
}

// FuzzEachInReader holds the streaming decoder of spooled bodies to EachInArray: the same records in
// the same order, and an error exactly when EachInArray errs, however the reader cuts the body.
func FuzzEachInReader(f *testing.F) {
	for _, s := range decodeSeeds {
		f.Add([]byte(s), uint8(0))
	}
	f.Add([]byte(`[{"a":"x\"y\\"} , {"b":[1,{"c":"]"}]}]`), uint8(1))
	f.Fuzz(func(t *testing.T, body []byte, cut uint8) {
		var want []Record
		werr := EachInArray(body, func(r Record) error { want = append(want, r); return nil })
		readers := map[string]io.Reader{
			"whole":     bytes.NewReader(body),
			"one byte":  iotest.OneByteReader(bytes.NewReader(body)),
			"half":      iotest.HalfReader(bytes.NewReader(body)),
			"data+EOF":  iotest.DataErrReader(bytes.NewReader(body)),
			"cut reads": &chunked{b: body, n: 1 + int(cut)},
		}
		for name, r := range readers {
			var got []Record
			gerr := EachInReader(r, func(r Record) error { got = append(got, r); return nil })
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%s %q: EachInArray error %v, EachInReader %v", name, body, werr, gerr)
			}
			if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("%s %q:\nreader %#v\narray  %#v", name, body, got, want)
			}
		}
	})
}

// chunked reads n bytes at a time.
type chunked struct {
	b []byte
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}

func TestEachInReaderLargeBodyAndReadErrors(t *testing.T) {
	// Elements larger than the reader's buffer, and many of them: the buffer grows and slides.
	var b bytes.Buffer
	b.WriteString("[")
	big := strings.Repeat("é\\\"x", 40_000) // 200 kB of string with escapes in it
	for i := range 300 {
		if i > 0 {
			b.WriteString(",\n ")
		}
		if i%100 == 7 {
			fmt.Fprintf(&b, `{"id":%d,"note":"%s"}`, i, big)
		} else {
			fmt.Fprintf(&b, `{"id":%d,"amount":%d.25,"tags":["a","b]"],"nested":{"k":[{}]}}`, i, i)
		}
	}
	b.WriteString("]")
	want, err := DecodeArray(b.Bytes())
	if err != nil || len(want) != 300 {
		t.Fatalf("reference decode: %d records, %v", len(want), err)
	}
	var got []Record
	if err := EachInReader(iotest.HalfReader(bytes.NewReader(b.Bytes())), func(r Record) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("records differ: %d vs %d", len(got), len(want))
	}

	// A failing read is reported as such, after the records read before it.
	broken := io.MultiReader(bytes.NewReader(b.Bytes()[:b.Len()/2]), iotest.ErrReader(errors.New("disk on fire")))
	n := 0
	err = EachInReader(broken, func(Record) error { n++; return nil })
	if err == nil || !strings.Contains(err.Error(), "reading the body: disk on fire") || n == 0 || n >= 300 {
		t.Errorf("after %d records: %v", n, err)
	}
	// fn's error stops the reading and comes back as it is.
	stop := errors.New("stop")
	if err := EachInReader(bytes.NewReader(b.Bytes()), func(Record) error { return stop }); err != stop {
		t.Errorf("fn's error came back as %v", err)
	}
	// Where the body breaks is named.
	err = EachInReader(strings.NewReader(`[{"a":1},{"a":tru}]`), func(Record) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "element 1 (at byte 9)") {
		t.Errorf("error %v", err)
	}
}
