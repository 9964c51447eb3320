package typing

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

func recs(t testing.TB, js ...string) []Record {
	out := make([]Record, len(js))
	for i, j := range js {
		out[i] = decode(t, j)
	}
	return out
}

func colType(s *Schema, name string) string {
	for _, c := range s.Columns {
		if c.Name == name {
			return c.Type
		}
	}
	return "(missing)"
}

func TestInferTypes(t *testing.T) {
	s, _ := NewSchema("x_y", []string{"id"}, nil, nil, []string{"objectfields"})
	s.Observe(recs(t, `{"id":1,"flag":true,"price":689.85,"qty":1.5,"big":99999999999,"created_date":"2022-10-31T07:45:24.867+02:00",
		"validto":"2999-12-31 23:59:59","due":"2024-02-14","name":"Ærlig","code":"1020","empty":"","nothing":null,
		"tags":["a","b"],"nums":[1,2.5],"organization":{"id":"o-1","country":"NO"},"objectfields":{"Quota":"","INIT.PROCEDURE":"x"}}`))
	want := map[string]string{
		"id": "BIGINT", "flag": "BOOLEAN", "price": "DECIMAL(38,2)", "qty": "DECIMAL(38,2)", "big": "BIGINT",
		"created_date": "TIMESTAMPTZ", "validto": "TIMESTAMP", "due": "DATE", "name": "VARCHAR", "code": "VARCHAR",
		"empty": nullType, "nothing": nullType, "tags": "VARCHAR[]", "nums": "DECIMAL(38,2)[]",
		"organization__id": "VARCHAR", "organization__country": "VARCHAR", "objectfields": "MAP(VARCHAR, VARCHAR)",
	}
	for name, typ := range want {
		if got := colType(s, name); got != typ {
			t.Errorf("%s: %s, want %s", name, got, typ)
		}
	}
	if strings.Contains(s.Arrow().String(), "nothing") {
		t.Error("an all-null column was written before it has a type")
	}
}

func TestEvolutionWidensAndRecords(t *testing.T) {
	s, _ := NewSchema("x_y", []string{"id"}, nil, nil, nil)
	steps := []struct {
		rec, col, want string
		changed        bool
	}{
		{`{"id":1,"n":null}`, "n", nullType, true},
		{`{"id":2,"n":7}`, "n", "BIGINT", true},
		{`{"id":3,"n":7.25}`, "n", "DECIMAL(38,2)", true},
		{`{"id":4,"n":7.125}`, "n", "DECIMAL(38,3)", true},
		{`{"id":5,"n":8}`, "n", "DECIMAL(38,3)", false},
		{`{"id":6,"n":"n/a"}`, "n", "VARCHAR", true},
		{`{"id":7,"n":9}`, "n", "VARCHAR", false},
		{`{"id":8,"d":"2024-01-01"}`, "d", "DATE", true},
		{`{"id":9,"d":"2024-01-01 12:00:00"}`, "d", "TIMESTAMP", true},
		{`{"id":10,"d":"2024-01-01T12:00:00Z"}`, "d", "VARCHAR", true}, // zoned and zone-less mixed: text, not a guess
	}
	for _, st := range steps {
		changed := s.Observe(recs(t, st.rec))
		if got := colType(s, st.col); got != st.want || changed != st.changed {
			t.Fatalf("after %s: %s = %s (changed %v), want %s (changed %v)", st.rec, st.col, got, changed, st.want, st.changed)
		}
	}
	ch := s.TakeChanges("run-1")
	var lines []string
	for _, c := range ch {
		lines = append(lines, c.String())
	}
	got := strings.Join(lines, "\n")
	for _, want := range []string{"x_y.id: new column BIGINT", "x_y.n: widened BIGINT → DECIMAL(38,2)", "x_y.n: widened DECIMAL(38,3) → VARCHAR", "x_y.d: widened DATE → TIMESTAMP"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes lack %q:\n%s", want, got)
		}
	}
	if ch[0].RunID != "run-1" || len(s.Changes) != len(ch) {
		t.Error("changes not stamped and recorded")
	}
}

func TestNamesAreSnakeCaseAndCollisionsStable(t *testing.T) {
	s, _ := NewSchema("x_y", []string{"id"}, nil, nil, nil)
	s.Observe(recs(t, `{"id":1,"ContractID":"C-1","contract_id":"c-1","lastModifiedDate":"2022-05-11T11:28:59Z","invoiceAddressCountryRegionISOCode":"NO"}`))
	for _, name := range []string{"contract_id", "contract_id_2", "last_modified_date", "invoice_address_country_region_iso_code"} {
		if colType(s, name) == "(missing)" {
			t.Errorf("no column %s in %v", name, s.Columns)
		}
	}
	// contract_id sorts after ContractID ("C" < "c"), so ContractID owns contract_id — on every run.
	for _, c := range s.Columns {
		if c.Name == "contract_id" && c.Path[0] != "ContractID" {
			t.Errorf("contract_id is %v", c.Path)
		}
	}
	// A later run starts from the persisted schema: names do not move even if the order of discovery does.
	b, _ := json.Marshal(s)
	var persisted Schema
	_ = json.Unmarshal(b, &persisted)
	s2, err := NewSchema("x_y", []string{"id"}, nil, &persisted, nil)
	if err != nil {
		t.Fatal(err)
	}
	s2.Observe(recs(t, `{"contract_id":"only the lower one this time","id":2}`))
	for _, c := range s2.Columns {
		if c.Path[0] == "contract_id" && c.Name != "contract_id_2" {
			t.Errorf("contract_id moved to %s", c.Name)
		}
	}
}

func TestDeclaredStreamsKeepExtraFieldsAndReject(t *testing.T) {
	s, _ := NewSchema("test_things", []string{"id"}, testTable(t), nil, nil)
	s.Observe(recs(t, `{"id":"a","amount":"12.5","brandNew":3,"org":{"id":"o","extraInOrg":true}}`))
	if colType(s, "brand_new") != "BIGINT" || colType(s, "org__extra_in_org") != "BOOLEAN" {
		t.Fatalf("extra fields not inferred: %v", s.Columns)
	}
	if colType(s, "amount") != "DECIMAL(18,2)" {
		t.Fatal("a declared type moved")
	}
	s.Observe(recs(t, `{"id":"b","amount":"lots"}`))
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := NewConverter(mem, s, "r", time.Now())
	defer c.Release()
	c.Append(decode(t, `{"id":"b","amount":"lots"}`))
	rec := c.Flush()
	defer rec.Release()
	if len(c.Rejects) != 1 || c.Rejects[0].Column != "amount" || c.Rejects[0].Raw != "lots" || c.Rejects[0].Key != "b" {
		t.Fatalf("rejects %+v", c.Rejects)
	}
}

func TestArraysOfObjectsBecomeChildRecords(t *testing.T) {
	s, _ := NewSchema("gsapi_invoice_list", []string{"iheader_id"}, nil, nil, nil)
	r := decode(t, `{"iheader_id":58,"headers":[{"iline_id":1,"price":10.5},{"iline_id":2,"price":0.25}],"empty":[]}`)
	s.Observe([]Record{r})
	if colType(s, "headers") != "(missing)" || len(s.Children) != 1 || s.Child("headers") != "gsapi_invoice_list__headers" {
		t.Fatalf("columns %v children %v", s.Columns, s.Children)
	}
	kids := s.ChildRecords(r)["headers"]
	if len(kids) != 2 || kids[1]["_parent_iheader_id"].(json.Number) != "58" || kids[1]["_position"].(json.Number) != "2" {
		t.Fatalf("children %v", kids)
	}
	child, _ := NewSchema(s.Child("headers"), s.ChildKey(), nil, nil, nil)
	child.Observe(kids)
	for _, name := range []string{"_parent_iheader_id", "_position", "iline_id", "price"} {
		if colType(child, name) == "(missing)" {
			t.Errorf("child lacks %s: %v", name, child.Columns)
		}
	}
	rec, _ := convertAll(t, child, "r", kids)
	if rec.NumRows() != 2 || rec.Column(0).(*array.Int64).Value(1) != 58 {
		t.Fatalf("child batch %v", rec)
	}
}

// numberTypeBySplit is numberType as first written, on splitDecimal's mantissa.
func numberTypeBySplit(lit string) string {
	if !strings.ContainsAny(lit, ".eE") {
		if _, err := strconv.ParseInt(lit, 10, 64); err == nil {
			return "BIGINT"
		}
	}
	mant, exp, err := splitDecimal(lit)
	if err != nil {
		return "VARCHAR"
	}
	digits := strings.TrimLeft(strings.TrimPrefix(mant, "-"), "0")
	scale := max(0, -exp)
	intDigits := len(digits) + exp
	if scale > 18 || intDigits+max(scale, 2) > 38 || exp > 18 {
		return "VARCHAR"
	}
	return fmt.Sprintf("DECIMAL(38,%d)", max(scale, 2))
}

// FuzzNumberType checks that counting digits in place types every literal as building the mantissa did.
func FuzzNumberType(f *testing.F) {
	for _, s := range []string{"-12.34", "999999999999999999", "-999999999999.999999", "0.10", "1234567890123456789", "-0", "1.", "1..2", "--1", "1-2", "0", "-0.0", "12.3400", "1e-7", "123456789012345678901234567890", "0.000001", "00012.50", "-.5", "5.", "1E+3", "+7", "9223372036854775808", ".", "-", "1e101", "0e0", "1.5e-20"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		if got, want := numberType(lit), numberTypeBySplit(lit); got != want {
			t.Fatalf("%q: %s, by the mantissa %s", lit, got, want)
		}
		// The one-pass reader of plain literals gives the general path's value at every scale it fits.
		if mant, frac, ok := plainNumber(lit); ok {
			for _, scale := range []int{2, 4, 18} {
				want, err := ParseDecimal(lit, 38, scale)
				if frac > scale {
					continue // TryAppend leaves these to inference
				}
				got := decimal128.FromI64(mant).Mul(decimal128.GetScaleMultiplier(scale - max(frac, 0)))
				if err != nil || got != want {
					t.Fatalf("%q at scale %d: one pass %v, general %v (%v)", lit, scale, got, want, err)
				}
			}
		}
	})
}

// ChildRecords keeps what it works out per schema: a child array or key column that appears in a
// later batch must still be taken.
func TestChildRecordsSeeLaterChildrenAndKeys(t *testing.T) {
	s, _ := NewSchema("t", []string{"id"}, nil, nil, nil)
	first := decode(t, `{"lines":[{"a":1}]}`) // no key column yet
	s.Observe([]Record{first})
	if kids := s.ChildRecords(first)["lines"]; len(kids) != 1 || kids[0]["_parent_id"] != nil || kids[0]["_position"].(json.Number) != "1" {
		t.Fatalf("first batch: %v", kids)
	}
	later := decode(t, `{"id":"x","lines":[{"a":2},{"a":3}],"notes":[{"n":"hi"}]}`)
	s.Observe([]Record{later})
	got := s.ChildRecords(later)
	if lines := got["lines"]; len(lines) != 2 || lines[1]["_parent_id"] != "x" || lines[1]["_position"].(json.Number) != "2" {
		t.Fatalf("lines: %v", lines)
	}
	if notes := got["notes"]; len(notes) != 1 || notes[0]["_parent_id"] != "x" || notes[0]["n"] != "hi" {
		t.Fatalf("notes: %v", notes)
	}
}

// A declared DECIMAL too narrow for what the API sent widens, as an inferred column does, and keeps
// the value exactly: the probe's Signicat invoices lost 0.0123456789 and 123456789012345678.99 to NULL.
// Only a value no DECIMAL(38,s) holds is a reject.
func TestDeclaredDecimalsWidenToHoldTheAPIValues(t *testing.T) {
	s, _ := NewSchema("test_things", []string{"id"}, testTable(t), nil, nil)
	batch := recs(t, `{"id":"a","amount":0.0123456789}`, `{"id":"b","amount":"0.00001"}`, `{"id":"c","amount":123456789012345678.99}`,
		`{"id":"d","amount":1.50000000000}`, `{"id":"e","amount":1234567890123456789012345678901234567890}`, `{"id":"f","amount":12.5}`)
	if !s.Observe(batch) || colType(s, "amount") != "DECIMAL(28,10)" {
		t.Fatalf("amount is %s, want DECIMAL(28,10): 18 integer digits and 10 fractional ones", colType(s, "amount"))
	}
	if ch := s.TakeChanges("r1"); len(ch) != 1 || ch[0].From != "DECIMAL(18,2)" || ch[0].To != "DECIMAL(28,10)" {
		t.Fatalf("changes %v", ch)
	}
	rec, rejects := convertAll(t, s, "r1", batch)
	amt := rec.Column(rec.Schema().FieldIndices("amount")[0]).(*array.Decimal128)
	want := []string{"0.0123456789", "0.0000100000", "123456789012345678.9900000000", "1.5000000000", "", "12.5000000000"}
	for i, w := range want {
		if got := FormatDecimal(amt.Value(i), 10); w != "" && (amt.IsNull(i) || got != w) {
			t.Errorf("row %d: %s, want %s", i, got, w)
		}
	}
	if len(rejects) != 1 || rejects[0].Key != "e" || !amt.IsNull(4) {
		t.Fatalf("rejects %+v: want only the 40-digit value", rejects)
	}
	if s.Observe(recs(t, `{"id":"g","amount":3.25}`)) {
		t.Error("a value the widened column holds changed it again")
	}
}

// A later run starts from the declared type and the persisted one: the widening stays, so the values
// that needed it are not rejects in the next run and the column never narrows between snapshots.
func TestWidenedDeclaredDecimalsStayWideAcrossRuns(t *testing.T) {
	run1, _ := NewSchema("test_things", []string{"id"}, testTable(t), nil, nil)
	run1.Observe(recs(t, `{"id":"a","amount":0.000001}`))
	run1.TakeChanges("r1")
	js, _ := json.Marshal(run1)
	var persisted Schema
	if err := json.Unmarshal(js, &persisted); err != nil {
		t.Fatal(err)
	}
	run2, _ := NewSchema("test_things", []string{"id"}, testTable(t), &persisted, nil)
	if colType(run2, "amount") != "DECIMAL(22,6)" {
		t.Fatalf("run 2 amount is %s, want the widened DECIMAL(22,6)", colType(run2, "amount"))
	}
	if run2.Observe(recs(t, `{"id":"a","amount":0.000002}`)) {
		t.Error("run 2 widened again")
	}
	persisted.Columns[1].Type = "DECIMAL(99,x)"
	if run3, err := NewSchema("test_things", []string{"id"}, testTable(t), &persisted, nil); err != nil || colType(run3, "amount") != "DECIMAL(18,2)" {
		t.Fatalf("a persisted type that does not parse: %v, %s", err, colType(run3, "amount"))
	}
}

// convertAll converts recs under s in run runID into one batch, released and the allocator checked
// for leaks when the test ends, and returns it with the values rejected.
func convertAll(t *testing.T, s *Schema, runID string, recs []Record) (arrow.RecordBatch, []Reject) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	t.Cleanup(func() { mem.AssertSize(t, 0) })
	c := NewConverter(mem, s, runID, time.Now())
	defer c.Release()
	for _, r := range recs {
		c.Append(r)
	}
	rec := c.Flush()
	t.Cleanup(rec.Release)
	return rec, c.Rejects
}
