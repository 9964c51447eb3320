package typing

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func decodeBatch(js string) ([]Record, bool) {
	dec := json.NewDecoder(bytes.NewReader([]byte(js)))
	dec.UseNumber()
	var recs []Record
	if dec.Decode(&recs) != nil {
		return nil, false
	}
	for _, r := range recs {
		if r == nil {
			return nil, false
		}
	}
	return recs, true
}

// settled is a schema that has observed seed: what a stream's schema is after its first batch.
func settled(t testing.TB, declared bool, seed []Record) *Schema {
	t.Helper()
	var sch *Schema
	var err error
	if declared {
		sch, err = NewSchema("test_things", []string{"id"}, testTable(t), nil, []string{"attrs", "org.attrs"})
	} else {
		sch, err = NewSchema("test_things", []string{"id"}, nil, nil, []string{"attrs", "org.attrs"})
	}
	if err != nil {
		t.Fatal(err)
	}
	sch.Evidence = true
	sch.Observe(seed)
	return sch
}

// tryAll appends next with TryAppend to a converter of sch and reports whether every record fitted.
func tryAll(mem memory.Allocator, sch *Schema, next []Record) (*Converter, bool) {
	c := NewConverter(mem, sch, "r1", time.Unix(1700000000, 0))
	c.SetEvidence("abc")
	for _, r := range next {
		if !c.TryAppend(r) {
			return c, false
		}
	}
	return c, true
}

// FuzzTryAppend holds the one-pass conversion to Observe + Append: whenever TryAppend takes a whole
// batch, Observe would not have changed the schema, and the batch and its rejects are identical.
func FuzzTryAppend(f *testing.F) {
	seeds := [][2]string{
		{`[{"id":"a","x":1,"d":"2024-01-01","ts":"2024-01-01 10:00:00","tz":"2024-01-01T10:00:00Z","s":"x","b":true,"m":1.25}]`,
			`[{"id":"b","x":2,"d":"2024-02-29","ts":"2024-01-01","tz":"2024-01-01T10:00:00.5+02:00","s":7,"b":false,"m":3},{"id":"c","x":null,"m":"","s":""}]`},
		{`[{"id":"a","x":1}]`, `[{"id":"a","x":1.5}]`},
		{`[{"id":"a","m":1.25}]`, `[{"id":"a","m":1.255}]`},
		{`[{"id":"a","m":1.25}]`, `[{"id":"a","m":1.250}, {"id":"a","m":99999999999999999999}]`},
		{`[{"id":"a","ts":"2024-01-01 10:00:00"}]`, `[{"id":"a","ts":"2024-01-01T10:00:00Z"}]`},
		{`[{"id":"a","d":"2024-01-01"}]`, `[{"id":"a","d":"2024-01-01 00:00:00"}]`},
		{`[{"id":"a","lines":[{"n":1}]}]`, `[{"id":"a","lines":[{"n":2}]},{"id":"b","lines":[]},{"id":"c","lines":null}]`},
		{`[{"id":"a","tags":["x"],"nums":[1,2]}]`, `[{"id":"b","tags":[],"nums":[1.5]},{"id":"c","tags":["y",1],"nums":[3]}]`},
		{`[{"id":"a","attrs":{"k":"v"},"org":{"id":"o","attrs":{"a":1}}}]`, `[{"id":"b","attrs":{"k":null,"j":2},"org":{"id":"p","name":"n","attrs":{}}}]`},
		{`[{"id":"a","amount":1.5,"n":"x","when":"2024-01-01"}]`, `[{"id":"b","amount":"abc","n":1.5,"when":"2024-01-01T00:00:00Z","ok":"true","day":"2024-01-01"}]`},
		{`[{"id":"a","o":null}]`, `[{"id":"b","o":{"p":1}},{"id":"c","o":{}}]`},
		{`[{"id":"a","o":{"p":1}}]`, `[{"id":"b","o":{"p":2,"q":{}}},{"id":"c","o":null}]`},
		{`[{"id":"a","s":"x"}]`, `[{"id":"b","s":{"k":1}},{"id":"c","s":[1,{"a":2}]}]`},
		{`[{"id":"a","fields":{"x":"1"},"tags":["a"]}]`, `[{"id":"b","fields":{"x":2},"tags":[1,null]},{"id":"c","fields":"no","tags":"no"}]`},
		{`[{"id":"a","x":null}]`, `[{"id":"b","x":null},{"id":"c","x":""}]`},
		{`[{"id":"a","amount":1.5}]`, `[{"id":"b","amount":0.0123456789},{"id":"c","amount":"1.50000"},{"id":"d","amount":1e40}]`},
		{`[{"id":"a","amount":0.001}]`, `[{"id":"b","amount":12345678901234567890123456789012345},{"id":"c","amount":0.0015}]`},
	}
	for _, s := range seeds {
		f.Add(s[0], s[1], true)
		f.Add(s[0], s[1], false)
	}
	f.Fuzz(func(t *testing.T, seedJS, nextJS string, declared bool) {
		seed, ok1 := decodeBatch(seedJS)
		next, ok2 := decodeBatch(nextJS)
		if !ok1 || !ok2 {
			return
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		defer mem.AssertSize(t, 0)
		fast, slow := settled(t, declared, seed), settled(t, declared, seed)
		fc, ok := tryAll(mem, fast, next)
		defer fc.Release()
		if !ok {
			return // the caller takes the two-pass path: nothing to compare
		}
		cols := len(slow.Columns)
		if slow.Observe(next) || len(slow.Columns) != cols || !slices.Equal(slow.Children, fast.Children) {
			t.Fatalf("TryAppend took a batch that changes the schema: %v → %v, children %v → %v", fast.Columns, slow.Columns, fast.Children, slow.Children)
		}
		sc := NewConverter(mem, slow, "r1", time.Unix(1700000000, 0))
		defer sc.Release()
		sc.SetEvidence("abc")
		for _, r := range next {
			sc.Append(r)
		}
		got, want := fc.Flush(), sc.Flush()
		defer got.Release()
		defer want.Release()
		if !array.RecordEqual(got, want) {
			t.Fatalf("one pass:\n%v\ntwo passes:\n%v", got, want)
		}
		if !reflect.DeepEqual(fc.Rejects, sc.Rejects) {
			t.Fatalf("rejects: one pass %v, two passes %v", fc.Rejects, sc.Rejects)
		}
	})
}

// TestTryAppendTakesSettledRecordsAndLeavesChanges pins which batches take the one-pass path: a stream
// whose schema has settled must (or the speed-up is silently lost), a batch with anything new must not.
func TestTryAppendTakesSettledRecordsAndLeavesChanges(t *testing.T) {
	seed := `[{"id":"a","x":1,"m":1.25,"d":"2024-01-01","ts":"2024-01-01 10:00:00","tz":"2024-01-01T10:00:00Z","s":"x","b":true,` +
		`"tags":["x"],"attrs":{"k":"v"},"lines":[{"n":1}],"org":{"id":"o","name":"n"},"gone":null}]`
	cases := []struct {
		name, next string
		fits       bool
	}{
		{"same shapes", `[{"id":"b","x":-7,"m":-0.5,"d":"2024-02-29","ts":"2024-01-01 10:00:00.997","tz":"2024-01-01T10:00:00.5+02:00","s":"y","b":false,"tags":[],"attrs":{},"lines":[{"n":2}],"org":{"id":"p"}}]`, true},
		{"nulls and empty strings", `[{"id":"b","x":null,"m":"","d":"","ts":null,"tz":"","s":"","b":null,"tags":null,"attrs":null,"lines":null,"gone":""}]`, true},
		{"null where an object was", `[{"id":"b","org":null}]`, false}, // Observe adds a NULL column "org"
		{"missing fields", `[{"id":"b"}]`, true},
		{"a date in a timestamp column", `[{"id":"b","ts":"2024-01-01"}]`, true},
		{"a number in a text column", `[{"id":"b","s":12.5}]`, true},
		{"an integer in a decimal column", `[{"id":"b","m":12}]`, true},
		{"a new field", `[{"id":"b","new":1}]`, false},
		{"a new field with null", `[{"id":"b","new":null}]`, false},
		{"a decimal in an integer column", `[{"id":"b","x":1.5}]`, false},
		{"more decimals", `[{"id":"b","m":1.125}]`, false},
		{"a zoned time in a wall-clock column", `[{"id":"b","ts":"2024-01-01T10:00:00Z"}]`, false},
		{"a time in a date column", `[{"id":"b","d":"2024-01-01 10:00:00"}]`, false},
		{"text in a timestamp column", `[{"id":"b","tz":"soon"}]`, false},
		{"a value where only nulls were", `[{"id":"b","gone":1}]`, false},
		{"a new array of objects", `[{"id":"b","items":[{"a":1}]}]`, false},
		{"a new nested field", `[{"id":"b","org":{"city":"x"}}]`, false},
		{"an object in a text column", `[{"id":"b","s":{"a":1}}]`, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seedRecs, _ := decodeBatch(seed)
			next, ok := decodeBatch(c.next)
			if !ok {
				t.Fatal("bad test JSON")
			}
			sch := settled(t, false, seedRecs)
			conv, fits := tryAll(memory.DefaultAllocator, sch, next)
			conv.Release()
			if fits != c.fits {
				t.Fatalf("TryAppend fits = %v, want %v", fits, c.fits)
			}
			if changed := settled(t, false, seedRecs).Observe(next); fits && changed {
				t.Fatal("fitted a batch that Observe changes the schema for")
			}
		})
	}
}

// A declared DECIMAL's value that needs more digits leaves the one-pass path, so Observe widens the
// column rather than the value becoming a reject; one no DECIMAL(38,s) holds stays a reject there.
func TestTryAppendLeavesDeclaredDecimalsThatWiden(t *testing.T) {
	seed, _ := decodeBatch(`[{"id":"a","amount":1.25}]`)
	for next, fits := range map[string]bool{
		`[{"id":"b","amount":0.125}]`:   false,
		`[{"id":"b","amount":1e17}]`:    false,
		`[{"id":"b","amount":"1.500"}]`: true,
		`[{"id":"b","amount":1e40}]`:    true,
	} {
		recs, _ := decodeBatch(next)
		conv, ok := tryAll(memory.DefaultAllocator, settled(t, true, seed), recs)
		conv.Release()
		if ok != fits {
			t.Errorf("%s: TryAppend fits = %v, want %v", next, ok, fits)
		}
	}
}
