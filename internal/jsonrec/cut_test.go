package jsonrec

import (
	"bytes"
	stdjson "encoding/json"
	"strings"
	"testing"
)

// A body that ends inside its value is truncated (a connection closed early, a chunked body ended
// early); one that is complete, whatever follows it, or invalid before its end is not: retrying it
// would fetch the same wrong answer again.
func TestTruncatedTellsACutBodyFromAWrongOne(t *testing.T) {
	cases := []struct {
		body      string
		open, cut bool
	}{
		{`{"data":[{"id":"a"}],"next":"tok"}`, false, false},
		{`{"data":[{"id":"a"}],"next"`, true, true},
		{`{"data":[{"id":"a"}`, true, true},
		{`[{"a":1},{`, true, true},
		{`[{"a":"x\"`, true, true},
		{`[{"a":"x\`, true, true},
		{`[{"a":12`, true, true},
		{`[{"a":tr`, true, true},
		{`[{"a":1e`, true, true},
		{`  [`, true, true},
		{bom + `[{"a":1},`, true, true},
		{`[{"a":1}]x`, false, false},
		{`{"a":1}{"b":`, true, false}, // complete, then data after it: wrong, not cut
		{`[{"a": x`, true, false},     // invalid before its end
		{`[{"a":1},]`, false, false},
		{`<html><body>{ gateway timeout`, false, false},
		{`%PDF-1.7 [`, false, false},
		{``, false, false},
		{`null`, false, false},
		{`"abc`, false, false},
	}
	for _, c := range cases {
		var o Opening
		for _, b := range []byte(c.body) { // as the body arrives, a byte at a time
			_, _ = o.Write([]byte{b})
		}
		var whole Opening
		_, _ = whole.Write([]byte(c.body))
		if o.Open() != c.open || whole.Open() != c.open {
			t.Errorf("%q: open %v (whole %v), want %v", c.body, o.Open(), whole.Open(), c.open)
		}
		if got := Truncated(strings.NewReader(c.body)); got != c.cut {
			t.Errorf("%q: truncated %v, want %v", c.body, got, c.cut)
		}
	}
}

// FuzzTruncated: every valid object or array cut anywhere before its end is open and truncated, whole
// it is neither; and Opening, the cheap pass, never misses a body Truncated calls cut.
func FuzzTruncated(f *testing.F) {
	for _, s := range append(decodeSeeds, envelopeSeeds...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var o Opening
		_, _ = o.Write(body)
		if Truncated(bytes.NewReader(body)) && !o.Open() {
			t.Fatalf("%q: truncated but not open", body)
		}
		text := bytes.TrimLeft(bytes.TrimPrefix(body, []byte(bom)), " \t\r\n")
		if !stdjson.Valid(body[len(body)-len(text):]) || len(text) == 0 || (text[0] != '{' && text[0] != '[') {
			return
		}
		end := len(bytes.TrimRight(body, " \t\r\n"))
		if o.Open() || Truncated(bytes.NewReader(body)) {
			t.Fatalf("%q: whole, yet open %v", body, o.Open())
		}
		for k := len(body) - len(text) + 1; k < end; k++ {
			var p Opening
			_, _ = p.Write(body[:k])
			if !p.Open() || !Truncated(bytes.NewReader(body[:k])) {
				t.Fatalf("%q: cut at %d, open %v", body, k, p.Open())
			}
		}
	})
}
