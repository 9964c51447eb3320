package sources

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"reflect"
	"testing"
)

// stdDecodeArray is the reference: encoding/json on a body that must be exactly one JSON value,
// numbers kept as text, every element an object.
func stdDecodeArray(body []byte) ([]Record, error) {
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

func TestPageEachFiltersAndNamesTheRequest(t *testing.T) {
	p := Page{Body: []byte(`[{"id":1},{"id":2},{"id":3}]`), Keep: func(r Record) bool { return r["id"] != stdjson.Number("2") }, Where: "GET /x"}
	var ids []string
	if err := p.Each(func(r Record) error { ids = append(ids, string(r["id"].(stdjson.Number))); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(ids, []string{"1", "3"}) {
		t.Errorf("kept %v", ids)
	}
	bad := Page{Body: []byte(`<html>`), Where: "GET /datasync?option=Invoices"}
	if err := bad.Each(func(Record) error { return nil }); err == nil || !bytes.Contains([]byte(err.Error()), []byte("GET /datasync?option=Invoices: response is not a JSON array")) {
		t.Errorf("error %v", err)
	}
}
