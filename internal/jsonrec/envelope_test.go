package jsonrec

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// stdEnvelope is the reference for EachInEnvelope: encoding/json's tokens over a body that must be one
// object with a data key (null, or an array of objects) and, optionally, next (null or a string); any
// other key is skipped, and a key given twice is an error.
func stdEnvelope(body []byte) (Envelope, []Record, error) {
	var env Envelope
	body = bytes.TrimPrefix(body, []byte(bom)) // as RFC 8259 allows
	if !stdjson.Valid(body) {
		return env, nil, errors.New("invalid JSON")
	}
	dec := stdjson.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if t, _ := dec.Token(); t != stdjson.Delim('{') {
		return env, nil, errors.New("not an object")
	}
	seen := map[string]bool{}
	var recs []Record
	for dec.More() {
		t, _ := dec.Token()
		k := t.(string)
		if seen[k] {
			return env, nil, errors.New("key twice")
		}
		seen[k] = true
		var raw stdjson.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return env, nil, err
		}
		switch k {
		case "data":
			if string(raw) == "null" {
				env.Null = true
				continue
			}
			var err error
			if recs, err = stdDecodeArray(raw); err != nil {
				return env, nil, err
			}
		case "next":
			var v any
			_ = stdjson.Unmarshal(raw, &v)
			switch n := v.(type) {
			case nil:
			case string:
				env.Next = &n
			default:
				return env, nil, errors.New("next is not a string")
			}
		}
	}
	if !seen["data"] {
		return env, nil, errors.New("no data")
	}
	return env, recs, nil
}

var envelopeSeeds = []string{
	`{"data":[],"next":null}`, `{"data":[{"id":"a","n":1.50}],"next":"tok"}`, `{"next":"t","data":[{"a":{"b":[1,2]}}]}`,
	`{"data":null}`, `{"data":[{}],"extra":{"x":[1,{"y":"]"}]},"next":""}`, `{"data":[1]}`, `{"data":{}}`, `{"data":[null]}`,
	`{"next":"t"}`, `{}`, `[]`, `null`, `{"data":[],"data":[]}`, `{"data":[],"next":5}`, `{"data":[],"next":"a","next":"b"}`,
	`{"data":[{"a":1}]`, `{"data":[{"a":1}]}x`, `{"data":[{"a":1}],}`, `{"data" [] }`, ` { "data" : [ { "a" : "\u00e9" } ] , "next" : "\ud83d\ude00" } `,
	"{\"data\":[{\"a\":\"\xff\"}],\"n\xc3\x28\":1}", `{"data":[{"a":1,"a":2}]}`, `{"da\u0074a":[{"x":1}]}`, `{"DATA":[{"x":1}]}`,
	"\xef\xbb\xbf{\"data\":[{\"a\":1}],\"next\":\"t\"}", "\xef\xbb{\"data\":[]}", " \xef\xbb\xbf{\"data\":[]}",
}

// FuzzEachInEnvelope holds the streaming decoder of {data, next} pages to encoding/json: the same
// records, next token and null, and an error exactly when the reference refuses the body, however the
// reader cuts it.
func FuzzEachInEnvelope(f *testing.F) {
	for _, s := range envelopeSeeds {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, body []byte, cut uint8) {
		want, wrecs, werr := stdEnvelope(body)
		for name, r := range map[string]io.Reader{"whole": bytes.NewReader(body), "one byte": iotest.OneByteReader(bytes.NewReader(body)),
			"cut reads": &chunked{b: body, n: 1 + int(cut)}} {
			var got []Record
			env, gerr := EachInEnvelope(r, DefaultMaxValueBytes, func(r Record) error { got = append(got, r); return nil })
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%s %q: encoding/json error %v, ours %v", name, body, werr, gerr)
			}
			if werr != nil {
				continue
			}
			if !reflect.DeepEqual(got, wrecs) && !(len(got) == 0 && len(wrecs) == 0) {
				t.Fatalf("%s %q:\nours     %#v\nstandard %#v", name, body, got, wrecs)
			}
			if env.Null != want.Null || (env.Next == nil) != (want.Next == nil) || (env.Next != nil && *env.Next != *want.Next) {
				t.Fatalf("%s %q: next %v null %v, want %v %v", name, body, env.Next, env.Null, want.Next, want.Null)
			}
		}
	})
}

// Decoding counts what it changed silently elsewhere: invalid UTF-8 (per string) and keys given twice
// (per object), in every decoder — arrays in memory and from a reader, envelopes, single objects.
func TestQuirksAreCountedByEveryDecoder(t *testing.T) {
	body := "[{\"a\":\"x\xffy\",\"b\":1,\"b\":2},{\"c\":\"\\ud83d\",\"d\":{\"e\":1,\"e\":1}},{\"f\":\"ok\"}]"
	want := Quirks{InvalidUTF8: 2, DuplicateKeys: 2, Key: "b"}
	mem, err := EachRawInArray([]byte(body), func(Record, []byte) error { return nil })
	if err != nil || mem != want {
		t.Fatalf("in memory: %+v %v, want %+v", mem, err, want)
	}
	read, err := EachRawInReader(strings.NewReader(body), DefaultMaxValueBytes, func(Record, []byte) error { return nil })
	if err != nil || read != want {
		t.Fatalf("from a reader: %+v %v", read, err)
	}
	env, err := EachInEnvelope(strings.NewReader(`{"data":`+body+`}`), DefaultMaxValueBytes, func(Record) error { return nil })
	if err != nil || env.Quirks != want {
		t.Fatalf("envelope: %+v %v", env.Quirks, err)
	}
	_, q, err := DecodeObject([]byte("{\"a\":\"\xc3\",\"a\":1}"))
	if err != nil || q != (Quirks{InvalidUTF8: 1, DuplicateKeys: 1, Key: "a"}) {
		t.Fatalf("object: %+v %v", q, err)
	}
	if n := want.Notes(); len(n) != 2 || !strings.Contains(n[0], "2 strings were not valid UTF-8") || !strings.Contains(n[1], `2 objects had a key twice (e.g. "b")`) {
		t.Fatalf("notes %q", n)
	}
}

// One value larger than the cap fails the decoding naming the cap, however large the body it sits in;
// values within it pass.
func TestOneValueOverItsCapFails(t *testing.T) {
	big := `[{"a":1},{"name":"` + strings.Repeat("x", 5000) + `"},{"a":2}]`
	_, err := EachRawInReader(strings.NewReader(big), 4096, func(Record, []byte) error { return nil })
	var tl *spool.TooLargeError
	if !errors.As(err, &tl) || !strings.Contains(err.Error(), "JSON value (max_value_bytes) is over the cap of 4.0 KiB") {
		t.Fatalf("err %v", err)
	}
	_, err = EachInEnvelope(strings.NewReader(`{"meta":"`+strings.Repeat("y", 5000)+`","data":[]}`), 4096, func(Record) error { return nil })
	if !errors.As(err, &tl) {
		t.Fatalf("a huge skipped value: %v", err)
	}
	if _, err := EachRawInReader(strings.NewReader(big), 8192, func(Record, []byte) error { return nil }); err != nil {
		t.Fatal(err)
	}
}
