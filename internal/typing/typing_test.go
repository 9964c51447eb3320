package typing

import (
	"bytes"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ledgerlake/ledgerlake/schemas"
)

func TestParseTimestampEveryFormatOfTheSpecs(t *testing.T) {
	cases := []struct {
		in    string
		want  string // RFC 3339 in UTC
		zoned bool
	}{
		{"2022-05-11T11:28:59Z", "2022-05-11T11:28:59Z", true},                          // Signicat
		{"2019-08-24T14:15:22Z", "2019-08-24T14:15:22Z", true},                          // Signicat invoice
		{"2022-10-31T07:45:24.867+02:00", "2022-10-31T05:45:24.867Z", true},             // GSAPI created_date
		{"2998-12-31T23:59:59.997+02:00", "2998-12-31T21:59:59.997Z", true},             // GSAPI pricevalidto
		{"2021-04-01T00:00:00+03:00", "2021-03-31T21:00:00Z", true},                     // GSAPI pricevalidfrom
		{"2020-10-01T00:00:00", "2020-10-01T00:00:00Z", false},                          // objectfields
		{"2020-10-01 00:00:00", "2020-10-01T00:00:00Z", false},                          // contracts
		{"2999-12-31 23:59:59", "2999-12-31T23:59:59Z", false},                          // productdetail validto
		{"2025-04-01 00:00:00.000", "2025-04-01T00:00:00Z", false},                      // boparams
		{"2026-03-31 23:59:59.997", "2026-03-31T23:59:59.997Z", false},                  // window edge
		{"2022-05-31 23:59:59", "2022-05-31T23:59:59Z", false},                          // journal enddate
		{"2021-05-01", "2021-05-01T00:00:00Z", false},                                   // bare date = midnight
		{"2024-01-31T23:59:59.997Z", "2024-01-31T23:59:59.997Z", true},                  // millis with Z
		{"2024-02-29T12:00:00.123456789+00:00", "2024-02-29T12:00:00.123456789Z", true}, // nanoseconds
	}
	for _, c := range cases {
		got, zoned, err := ParseTimestamp(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got.UTC().Format(time.RFC3339Nano) != c.want || zoned != c.zoned {
			t.Errorf("%q = %s (zoned %v), want %s (zoned %v)", c.in, got.UTC().Format(time.RFC3339Nano), zoned, c.want, c.zoned)
		}
	}
	for _, bad := range []string{"", "yesterday", "2022-13-01", "31.01.2024", "2024-01-31T25:00:00Z"} {
		if _, _, err := ParseTimestamp(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseDecimalIsExact(t *testing.T) {
	cases := []struct {
		in       string
		prec, sc int
		want     string
		wantErr  error
	}{
		{"0.1", 18, 4, "0.1000", nil},
		{"689.85", 18, 2, "689.85", nil},
		{"-0.05", 18, 2, "-0.05", nil},
		{"1250", 18, 2, "1250.00", nil},
		{"99999999999", 18, 4, "99999999999.0000", nil},
		{"1.5e2", 18, 2, "150.00", nil},
		{"12.3400", 18, 2, "12.34", nil}, // trailing zeros are not digits lost
		{"1e-2", 18, 2, "0.01", nil},
		{"0.125", 18, 2, "", errScale}, // would round: refused
		{"123456789012345678901234567890.5", 38, 2, "123456789012345678901234567890.50", nil},
		{"1234567", 6, 0, "", errPrecision},
		{"abc", 18, 2, "", errNotDecimal},
		{"1.2.3", 18, 2, "", errNotDecimal},
		{"", 18, 2, "", errNotDecimal},
	}
	for _, c := range cases {
		n, err := ParseDecimal(c.in, c.prec, c.sc)
		if err != c.wantErr {
			t.Errorf("%q: err %v, want %v", c.in, err, c.wantErr)
			continue
		}
		if err == nil && FormatDecimal(n, c.sc) != c.want {
			t.Errorf("%q = %s, want %s", c.in, FormatDecimal(n, c.sc), c.want)
		}
	}
}

func testSchema(t testing.TB) *Schema {
	t.Helper()
	sch, err := NewSchema("test_things", []string{"id"}, testTable(t), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return sch
}

func testTable(t testing.TB) *schemas.Table {
	t.Helper()
	tbl, err := schemas.Parse([]byte(`
source: test
stream: things
key: [id]
columns:
  - {path: id, type: VARCHAR, description: id}
  - {path: amount, type: "DECIMAL(18,2)", description: money}
  - {path: when, type: TIMESTAMPTZ, description: instant}
  - {path: local, type: TIMESTAMP, description: wall clock}
  - {path: day, type: DATE, description: a date}
  - {path: n, type: BIGINT, description: count}
  - {path: ok, type: BOOLEAN, description: flag}
  - {path: tags, type: "VARCHAR[]", description: list}
  - {path: fields, type: "MAP(VARCHAR, VARCHAR)", description: tenant map}
  - {path: org.id, type: VARCHAR, description: nested}
  - {path: org.name, type: VARCHAR, description: nested}
`))
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}

func decode(t testing.TB, js string) Record {
	dec := json.NewDecoder(strings.NewReader(js))
	dec.UseNumber()
	var r Record
	if err := dec.Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConverterTypesNullsAndRejects(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	tbl := testTable(t)
	sch := testSchema(t)
	c := NewConverter(mem, sch, "run-1", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	defer c.Release()
	c.Append(decode(t, `{"id":"a","amount":12.34,"when":"2022-10-31T07:45:24.867+02:00","local":"2025-04-01 00:00:00.000","day":"2024-02-29",
		"n":7,"ok":true,"tags":["auth","sign"],"fields":{"Quota":"","INIT.PROCEDURE":"x","n":3},"org":{"id":"o-1","name":"Ærlig AS"}}`))
	c.Append(decode(t, `{"id":"b","amount":null,"when":"","local":"","day":"","n":null,"ok":null,"tags":null,"fields":null,"org":null}`))
	c.Append(decode(t, `{"id":"c","amount":0.125,"when":"someday","n":1.5,"ok":"maybe","tags":[1,{"x":1}],"extra":1}`))
	rec := c.Flush()
	defer rec.Release()
	if rec.NumRows() != 3 || rec.NumCols() != int64(len(tbl.Columns)+2) {
		t.Fatalf("%d rows × %d cols", rec.NumRows(), rec.NumCols())
	}
	col := func(name string) arrow.Array {
		idx := rec.Schema().FieldIndices(name)
		if len(idx) != 1 {
			t.Fatalf("no column %s", name)
		}
		return rec.Column(idx[0])
	}
	amt := col("amount").(*array.Decimal128)
	if got := FormatDecimal(amt.Value(0), 2); got != "12.34" {
		t.Errorf("amount = %s", got)
	}
	when := col("when").(*array.Timestamp)
	if got := time.UnixMicro(int64(when.Value(0))).UTC().Format(time.RFC3339Nano); got != "2022-10-31T05:45:24.867Z" {
		t.Errorf("when = %s", got)
	}
	if col("when").DataType().(*arrow.TimestampType).TimeZone != "UTC" || col("local").DataType().(*arrow.TimestampType).TimeZone != "" {
		t.Error("TIMESTAMPTZ must be UTC-adjusted and TIMESTAMP zone-less")
	}
	if got := col("org__name").(*array.String).Value(0); got != "Ærlig AS" {
		t.Errorf("org__name = %q", got)
	}
	tags := col("tags").(*array.List)
	if s, e := tags.ValueOffsets(0); e-s != 2 {
		t.Errorf("tags has %d items", e-s)
	}
	m := col("fields").(*array.Map)
	if s, e := m.ValueOffsets(0); e-s != 3 {
		t.Errorf("fields has %d entries", e-s)
	}
	// Row b: null and "" are NULL everywhere but text.
	for _, name := range []string{"amount", "when", "local", "day", "n", "ok", "tags", "fields", "org__id"} {
		if !col(name).IsNull(1) {
			t.Errorf("row b %s is not NULL", name)
		}
	}
	// Row c: each bad value is NULL in the row and a reject naming key, column, raw value and reason.
	// tags [1,{"x":1}] is no reject: VARCHAR[] keeps numbers and objects as their JSON text.
	want := map[string]string{"amount": "0.125", "when": "someday", "n": "1.5", "ok": "maybe"}
	if len(c.Rejects) != len(want) {
		t.Fatalf("%d rejects: %+v", len(c.Rejects), c.Rejects)
	}
	for _, r := range c.Rejects {
		if r.Key != "c" || r.Stream != "test_things" || want[r.Column] != r.Raw || r.Reason == "" {
			t.Errorf("reject %+v", r)
		}
		if !col(r.Column).IsNull(2) {
			t.Errorf("rejected %s is not NULL in its row", r.Column)
		}
	}
	if col(RunIDColumn).(*array.String).Value(2) != "run-1" {
		t.Error("lineage _run_id missing")
	}
}

// A timestamp holds microseconds: the seventh fractional digit a .NET server sends (GSAPI's
// reference shows 13:25:11.6264598Z) is cut, never rounded, so no value moves into the next second,
// day or month window. The evidence keeps the text as sent.
func TestSeventhFractionalDigitIsCutNotRounded(t *testing.T) {
	for in, want := range map[string]string{
		"2026-05-29T13:25:11.6264598Z": "2026-05-29T13:25:11.626459Z",
		"2025-01-31T23:59:59.9999999Z": "2025-01-31T23:59:59.999999Z",
		"2025-01-31 23:59:59.9999999":  "2025-01-31T23:59:59.999999Z",
		"0001-01-01T00:00:00.0000001Z": "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.9999999Z": "9999-12-31T23:59:59.999999Z",
		"1969-12-31T23:59:59.9999999Z": "1969-12-31T23:59:59.999999Z",
	} {
		ts, err := toTimestamp(in)
		if got := time.UnixMicro(int64(ts)).UTC().Format(time.RFC3339Nano); err != nil || got != want {
			t.Errorf("%s → %s (%v), want %s", in, got, err, want)
		}
	}
}

// The sum of a DECIMAL column equals the exact decimal sum of the JSON text.
func TestDecimalSumIsExact(t *testing.T) {
	mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
	defer mem.AssertSize(t, 0)
	c := NewConverter(mem, testSchema(t), "r", time.Now())
	defer c.Release()
	want := new(big.Int)
	for i := 0; i < 10000; i++ {
		cents := int64(i*7919%100003) - 50000
		lit := FormatDecimal(decimalFromCents(cents), 2)
		want.Add(want, big.NewInt(cents))
		c.Append(decode(t, `{"id":"x","amount":`+lit+`}`))
	}
	rec := c.Flush()
	defer rec.Release()
	got := new(big.Int)
	amt := rec.Column(1).(*array.Decimal128)
	for i := 0; i < amt.Len(); i++ {
		got.Add(got, amt.Value(i).BigInt())
	}
	if got.Cmp(want) != 0 {
		t.Fatalf("sum %s, want %s", got, want)
	}
}

func FuzzParseDecimal(f *testing.F) {
	for _, s := range []string{"0.1", "-12.345", "1e5", "1.5E-3", "99999999999999999999", "", "-", ".5", "5."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseDecimal(s, 38, 6)
		if err != nil {
			return
		}
		// Whatever parses must round-trip: formatting and parsing again gives the same value.
		back, err := ParseDecimal(FormatDecimal(n, 6), 38, 6)
		if err != nil || back != n {
			t.Fatalf("%q → %s → %v (%v)", s, FormatDecimal(n, 6), back, err)
		}
	})
}

// FuzzShortDecimal holds ParseDecimal's fast path to the general one: the same value wherever it
// answers, at every precision and scale.
func FuzzShortDecimal(f *testing.F) {
	for _, s := range []string{"0.1", "-12.345", "+7", "0.000", "-0", "123456789012345678", "1234567890.12345678", "5.", ".5", "00012.50", "1.2.3", "", "-", "1e5", " 1"} {
		f.Add(s, uint8(38), uint8(6))
	}
	f.Add("999.99", uint8(5), uint8(2))
	f.Add("999.99", uint8(4), uint8(2))
	f.Add("1.234", uint8(10), uint8(2))
	f.Add("1.230", uint8(10), uint8(2))
	f.Add("0.00", uint8(1), uint8(0))
	f.Fuzz(func(t *testing.T, s string, p, sc uint8) {
		precision := int(p%38) + 1
		scale := int(sc) % (precision + 1)
		fast, ok := parseShortDecimal(s, precision, scale)
		if !ok {
			return
		}
		want, err := parseDecimal(s, precision, scale)
		if err != nil || fast != want {
			t.Fatalf("%q at (%d,%d): fast path %s, general path %v (%v)", s, precision, scale, FormatDecimal(fast, scale), FormatDecimal(want, scale), err)
		}
	})
}

func FuzzConvert(f *testing.F) {
	f.Add(`{"id":"a","amount":1.5,"when":"2022-10-31T07:45:24.867+02:00","tags":["x"],"fields":{"a":1},"org":{"id":"o"}}`)
	f.Add(`{"amount":"12","when":"","n":"9223372036854775808","ok":"true","tags":[null]}`)
	f.Add(`{"org":"not an object","fields":[1,2],"day":5}`)
	f.Fuzz(func(t *testing.T, js string) {
		dec := json.NewDecoder(bytes.NewReader([]byte(js)))
		dec.UseNumber()
		var r Record
		if dec.Decode(&r) != nil {
			return
		}
		mem := memory.NewCheckedAllocator(memory.NewGoAllocator())
		c := NewConverter(mem, testSchema(t), "r", time.Now())
		c.Append(r)
		c.Append(r)
		rec := c.Flush()
		// Whatever the input, every column has exactly the rows appended: a reject never shifts a row.
		for i, col := range rec.Columns() {
			if col.Len() != 2 {
				t.Fatalf("column %d has %d rows", i, col.Len())
			}
		}
		rec.Release()
		c.Release()
		mem.AssertSize(t, 0)
	})
}

func decimalFromCents(c int64) decimal128.Num { return decimal128.FromI64(c) }

// parseTimestampEveryLayout is ParseTimestamp without its shape check: every layout, in order.
func parseTimestampEveryLayout(s string) (time.Time, bool, error) {
	for _, l := range zonedLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true, nil
		}
	}
	for _, l := range naiveLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, false, nil
		}
	}
	return time.Time{}, false, errNotTimestamp
}

// FuzzParseTimestamp checks that the shape check before the layouts never changes an answer.
func FuzzParseTimestamp(f *testing.F) {
	for _, s := range []string{"2022-10-31T07:45:24.867+02:00", "2025-04-01 00:00:00.000", "2024-02-29", "2020-10-01T00:00:00",
		"2022-05-11T11:28:59Z", "2021-01-01 00:00", "2021-01-01T00:00Z", "2021-13-01", "2021-01-01x", "GS-0010002", "", "2024-02-29 23:59:59.997+01:00",
		"2024-02-29T23:59:59,5Z", "12345678901", "2023-02-29 00:00:00", "2024-01-01T24:00:00", "2024-01-01 00:00:00.0000000000",
		"2024-12-31 23:59:59.997", "2024-01-01 00:00:60", "0000-01-01 00:00:00.5", "2024-01-01 00:00:00,5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, gz, gerr := ParseTimestamp(s)
		want, wz, werr := parseTimestampEveryLayout(s)
		if (gerr == nil) != (werr == nil) || !got.Equal(want) || gz != wz {
			t.Fatalf("%q: got %v %v %v, every layout gives %v %v %v", s, got, gz, gerr, want, wz, werr)
		}
	})
}
