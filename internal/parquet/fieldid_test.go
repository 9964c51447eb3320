package parquet

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/schema"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// footerIDs is the field id of every named node of a Parquet file's schema, by dotted path (the
// repeated groups of lists and maps, which carry no id, under their own names).
func footerIDs(t *testing.T, path string) map[string]int32 {
	t.Helper()
	pf := openFile(t, path)
	out := map[string]int32{}
	var walk func(prefix string, n schema.Node)
	walk = func(prefix string, n schema.Node) {
		out[prefix+n.Name()] = n.FieldID()
		if g, ok := n.(*schema.GroupNode); ok {
			for i := range g.NumFields() {
				walk(prefix+n.Name()+".", g.Field(i))
			}
		}
	}
	root := pf.MetaData().Schema.Root()
	for i := range root.NumFields() {
		walk("", root.Field(i))
	}
	return out
}

// schemaIDs are the field ids an Arrow schema asks for, nested fields included.
func schemaIDs(sc *arrow.Schema) []int32 {
	var out []int32
	var walk func(f arrow.Field)
	walk = func(f arrow.Field) {
		if v, ok := f.Metadata.GetValue(typing.FieldIDKey); ok {
			id, _ := strconv.Atoi(v)
			out = append(out, int32(id))
		}
		switch t := f.Type.(type) {
		case *arrow.ListType:
			walk(t.ElemField())
		case *arrow.MapType:
			walk(t.KeyField())
			walk(t.ItemField())
		}
	}
	for _, f := range sc.Fields() {
		walk(f)
	}
	slices.Sort(out)
	return out
}

func decodeAll(t *testing.T, js ...string) []typing.Record {
	t.Helper()
	out := make([]typing.Record, len(js))
	for i, j := range js {
		dec := json.NewDecoder(strings.NewReader(j))
		dec.UseNumber() // as the sources decode: numbers stay exact
		if err := dec.Decode(&out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// Every column of a written file carries its field id in the footer — lists' elements and maps' keys
// and values too — and a file written after the schema gained a column keeps the ids of the columns
// it shares with the file before it.
func TestFilesCarryTheSchemasFieldIDs(t *testing.T) {
	root := t.TempDir()
	sch, err := typing.NewSchema("t", []string{"id"}, nil, nil, []string{"fields"})
	if err != nil {
		t.Fatal(err)
	}
	sch.Window = true
	batch := func(js ...string) (*typing.Converter, arrow.RecordBatch) {
		recs := decodeAll(t, js...)
		sch.Observe(recs)
		c := typing.NewConverter(memory.DefaultAllocator, sch, "run1", time.Unix(0, 0))
		for _, r := range recs {
			c.Append(r)
		}
		return c, c.Flush()
	}
	c1, rec1 := batch(`{"id":1,"amount":"12.50","tags":["a","b"],"fields":{"Quota":"3"}}`)
	defer c1.Release()
	defer rec1.Release()
	w := NewStreamWriter(t.Context(), lake.Dir(root), "t", "run1", c1.Schema())
	if err := w.Write("", rec1); err != nil {
		t.Fatal(err)
	}
	c2, rec2 := batch(`{"id":2,"amount":"1.25","tags":[],"fields":{},"added":true}`)
	defer c2.Release()
	defer rec2.Release()
	if err := w.SetSchema(c2.Schema()); err != nil {
		t.Fatal(err)
	}
	if err := w.Write("", rec2); err != nil {
		t.Fatal(err)
	}
	files, err := w.Close()
	if err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	first, second := footerIDs(t, filepath.Join(root, files[0].Path)), footerIDs(t, filepath.Join(root, files[1].Path))
	for i, ids := range []map[string]int32{first, second} {
		var got []int32
		for _, id := range ids {
			if id > 0 {
				got = append(got, id)
			}
		}
		slices.Sort(got)
		if want := schemaIDs([]*arrow.Schema{c1.Schema(), c2.Schema()}[i]); !slices.Equal(got, want) {
			t.Errorf("file %d footer ids %v, want the schema's %v (%v)", i+1, got, want, ids)
		}
	}
	for name, id := range first {
		if id > 0 && second[name] != id {
			t.Errorf("%s: field id %d in the first file, %d in the second", name, id, second[name])
		}
	}
	if second["added"] <= 0 || slices.Contains(schemaIDs(c1.Schema()), second["added"]) {
		t.Errorf("the added column's id %d is missing or taken (%v)", second["added"], first)
	}
	for _, nested := range []string{"tags.list.element", "fields.key_value.key", "fields.key_value.value", "_window_start"} {
		if first[nested] <= 0 {
			t.Errorf("%s has no field id in the footer: %v", nested, first)
		}
	}
	// The values read back through the ids' schema, as a reader resolving them sees them.
	tbl := readTable(t, filepath.Join(root, filepath.FromSlash(files[1].Path)))
	defer tbl.Release()
	amount := tbl.Column(tbl.Schema().FieldIndices("amount")[0]).Data().Chunk(0)
	if tbl.NumRows() != 1 || amount.ValueStr(0) != "1.25" {
		t.Errorf("%d rows, amount %s", tbl.NumRows(), amount.ValueStr(0))
	}
}

// A schema whose names and types are the same but whose field ids differ is a schema change: the open
// file is finished and the next batch starts a file with the new ids (pqarrow refuses a record whose
// schema, field metadata included, is not its file's).
func TestSetSchemaSwitchesOnFieldIDsAlone(t *testing.T) {
	root := t.TempDir()
	mk := func(id string) *arrow.Schema {
		return arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64,
			Metadata: arrow.NewMetadata([]string{typing.FieldIDKey}, []string{id})}}, nil)
	}
	rec := func(sc *arrow.Schema) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer b.Release()
		b.Field(0).(*array.Int64Builder).Append(42)
		return b.NewRecordBatch()
	}
	w := NewStreamWriter(t.Context(), lake.Dir(root), "t", "run1", mk("1"))
	r1 := rec(mk("1"))
	defer r1.Release()
	if err := w.Write("", r1); err != nil {
		t.Fatal(err)
	}
	if err := w.SetSchema(mk("7")); err != nil {
		t.Fatal(err)
	}
	r2 := rec(mk("7"))
	defer r2.Release()
	if err := w.Write("", r2); err != nil {
		t.Fatalf("a record with the new ids: %v", err)
	}
	files, err := w.Close()
	if err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	if got := footerIDs(t, filepath.Join(root, files[1].Path))["id"]; got != 7 {
		t.Errorf("the second file's id column has field id %d, want 7", got)
	}
}
