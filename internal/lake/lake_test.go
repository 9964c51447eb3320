package lake

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// The manifest and checkpoints are written list element by list element; what reaches the file must be
// exactly what encoding/json writes, so every reader (and sha256 of a manifest) is unaffected.
func TestWrittenJSONIsEncodingJSONs(t *testing.T) {
	started := time.Date(2026, 11, 29, 13, 0, 0, 123456789, time.UTC)
	full := &Manifest{RunID: "20261129T130000.123Z-abc", StartedAt: started, FinishedAt: started.Add(time.Minute), Status: "ok",
		Streams: []StreamReport{{Table: "signicat_invoices", Status: "ok", Rows: 3, SchemaChanges: []string{`a <"b"> & c`}}}}
	for i := range 3 {
		full.Files = append(full.Files, FileInfo{Path: fmt.Sprintf("t/p=%d/x.parquet", i), Rows: int64(i)})
		full.Evidence = append(full.Evidence, Evidence{Table: "t", Endpoint: fmt.Sprintf("GET /invoices?page=%d&x=<y>", i), SHA256: "ab"})
	}
	type withOthers struct {
		Name   string                     `json:"name"`
		Done   []string                   `json:"done,omitempty"`
		Empty  []string                   `json:"empty"` // nil: null
		Zero   []int                      `json:"zero"`  // empty: []
		Raw    json.RawMessage            `json:"raw"`   // a []byte that marshals itself
		Memo   map[string]json.RawMessage `json:"memo,omitempty"`
		Count  int                        `json:"count,omitempty"`
		hidden string
		Skip   string `json:"-"`
		Plain  []bool
	}
	// Encoded by the general case: an embedded struct after fields that would already be written, and
	// lists that marshal themselves (a value method for text, a pointer method for JSON).
	type embedded struct{ Inner string }
	type late struct {
		List []int `json:"list"`
		embedded
	}
	type withMethods struct {
		Text  textList `json:"text"`
		JSON  ptrList  `json:"json"`
		Plain []int    `json:"plain"`
	}
	for _, v := range []any{
		&late{List: []int{1, 2}, embedded: embedded{Inner: "x"}},
		&withMethods{Text: textList{"a", "b"}, JSON: ptrList{1, 2}, Plain: []int{3}},
		full,
		&Manifest{RunID: "r", Files: nil}, // no lists at all
		*full,                             // by value
		withOthers{Name: "x", Done: []string{"1", "2"}, Zero: []int{}, Raw: json.RawMessage(`{"a":1}`), Memo: map[string]json.RawMessage{"b": json.RawMessage(`2`), "a": json.RawMessage(`1`)}, hidden: "h", Skip: "s", Plain: []bool{true}},
		withOthers{},
	} {
		var want, got bytes.Buffer
		if err := json.NewEncoder(&want).Encode(v); err != nil {
			t.Fatal(err)
		}
		w := bufio.NewWriter(&got)
		if err := encodeLists(w, v); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		if got.String() != want.String() {
			t.Errorf("%T:\n got %s\nwant %s", v, got.String(), want.String())
		}
	}
}

type textList []string

func (l textList) MarshalText() ([]byte, error) { return []byte(fmt.Sprint(len(l), " items")), nil }

type ptrList []int

func (l *ptrList) MarshalJSON() ([]byte, error) { return []byte(fmt.Sprint(len(*l))), nil }
