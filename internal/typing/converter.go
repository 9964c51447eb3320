// Package typing turns pages of loosely typed API JSON into Arrow record batches of exact types:
// timestamps from every format the specs print (an empty string is NULL), money as DECIMAL (never
// floating point), nested objects flattened with "__", arrays of scalars as LIST. A value that cannot be
// converted is kept as a Reject naming stream, key, column, raw value and reason — never silently dropped.
package typing

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/decimal128"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ledgerlake/ledgerlake/schemas"
)

// Lineage column names carried by every row.
const (
	RunIDColumn       = "_run_id"
	ExtractedAtColumn = "_extracted_at"
	// EvidenceColumn is on the rows of streams that keep raw evidence: the sha256 of the response body.
	EvidenceColumn = "_evidence_sha256"
	// WindowStartColumn and WindowEndColumn are on the rows of windowed streams: the date window (as
	// sent, both ends inclusive) whose fetch returned the row.
	WindowStartColumn = "_window_start"
	WindowEndColumn   = "_window_end"
)

// isLineageColumn reports whether name is one of ledgerlake's own (lineage) columns, which an API field
// never takes.
func isLineageColumn(name string) bool {
	switch name {
	case RunIDColumn, ExtractedAtColumn, EvidenceColumn, WindowStartColumn, WindowEndColumn:
		return true
	}
	return false
}

// Record is one decoded API object; numbers are json.Number so decimals stay exact.
type Record = map[string]any

// Reject is a value that could not be converted to its column's type. The row is still written, with
// NULL in that column, and the reject is stored beside it.
type Reject struct {
	Stream string
	Key    string
	Column string
	Raw    string
	Reason string
}

// ArrowType maps a schema type to the Arrow type written to Parquet. Timestamps are microseconds;
// TIMESTAMPTZ is UTC-adjusted so DuckDB reads TIMESTAMP WITH TIME ZONE.
func ArrowType(t schemas.Type) arrow.DataType {
	switch t.Kind {
	case schemas.Boolean:
		return arrow.FixedWidthTypes.Boolean
	case schemas.BigInt:
		return arrow.PrimitiveTypes.Int64
	case schemas.Double:
		return arrow.PrimitiveTypes.Float64
	case schemas.Decimal:
		return &arrow.Decimal128Type{Precision: int32(t.Precision), Scale: int32(t.Scale)}
	case schemas.Date:
		return arrow.FixedWidthTypes.Date32
	case schemas.Timestamp:
		return &arrow.TimestampType{Unit: arrow.Microsecond}
	case schemas.TimestampTZ:
		return &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	case schemas.List:
		return arrow.ListOf(ArrowType(*t.Elem))
	case schemas.Map:
		return arrow.MapOf(arrow.BinaryTypes.String, arrow.BinaryTypes.String)
	}
	return arrow.BinaryTypes.String
}

// Converter appends records to an Arrow record builder for one table schema. Build a new one when the
// schema changes.
type Converter struct {
	sch     *Schema
	arrow   *arrow.Schema
	b       *array.RecordBuilder
	cols    []int // indexes into sch.Columns of the written columns, in Arrow field order
	runID   string
	extract int64 // _extracted_at in µs
	evid    string
	win     [2]int64 // _window_start and _window_end in µs; both 0: no window
	Rejects []Reject
	// textPerRow is, per text field, the bytes a row took in the last batch (Reserve's estimate).
	textPerRow []int

	// TryAppend's state: the builder field of each schema column (-1 when not written), and the row
	// that last set each column (the others get NULL).
	field      []int
	stamp      []int
	row        int
	rowRejects []columnReject
}

// NewConverter prepares a converter; runID and extractedAt fill the lineage columns.
func NewConverter(mem memory.Allocator, sch *Schema, runID string, extractedAt time.Time) *Converter {
	c := &Converter{sch: sch, arrow: sch.Arrow(), runID: runID, extract: extractedAt.UnixMicro()}
	c.b = array.NewRecordBuilder(mem, c.arrow)
	c.field = make([]int, len(sch.Columns))
	c.stamp = make([]int, len(sch.Columns))
	for i, col := range sch.Columns {
		c.field[i] = -1
		if col.Type != nullType {
			c.field[i] = len(c.cols)
			c.cols = append(c.cols, i)
		}
	}
	return c
}

// Schema is the Arrow schema the converter builds.
func (c *Converter) Schema() *arrow.Schema { return c.arrow }

// Len is the number of rows appended since the last Flush.
func (c *Converter) Len() int { return c.b.Field(len(c.cols)).Len() }

// Release frees the builder.
func (c *Converter) Release() { c.b.Release() }

// Flush returns the rows appended so far as a record (the caller releases it) and starts a new batch.
func (c *Converter) Flush() arrow.RecordBatch {
	if n := c.Len(); n > 0 {
		if c.textPerRow == nil {
			c.textPerRow = make([]int, len(c.b.Fields()))
		}
		for f, b := range c.b.Fields() {
			if sb, ok := b.(*array.StringBuilder); ok {
				c.textPerRow[f] = (sb.DataLen() + n - 1) / n
			}
		}
	}
	return c.b.NewRecordBatch()
}

// Reserve makes room for n more rows, text as long as the last batch's, so the builders are allocated
// once per batch rather than doubled from 32 rows up (Arrow buffers regrown by doubling were a fifth
// of the bytes the bench's conversion allocated).
func (c *Converter) Reserve(n int) {
	c.b.Reserve(n)
	for f, per := range c.textPerRow {
		if per > 0 {
			c.b.Field(f).(*array.StringBuilder).ReserveData(n * per)
		}
	}
}

// Append converts one record into the current batch. A declared column's value that does not fit its
// type is NULL in the row and kept as a Reject; inferred columns, and declared DECIMALs short of digits,
// were widened to fit by Observe.
func (c *Converter) Append(rec Record) {
	var key string
	for f, i := range c.cols {
		col := &c.sch.Columns[i]
		v, _ := lookup(rec, col.Path)
		if err := appendValue(c.b.Field(f), col.typ, v); err != nil {
			if key == "" {
				key = c.keyOf(rec)
			}
			c.Rejects = append(c.Rejects, Reject{Stream: c.sch.Table, Key: key, Column: col.Name, Raw: strings.Clone(text(v)), Reason: err.Error()})
			c.b.Field(f).AppendNull()
		}
	}
	c.appendLineage()
}

func (c *Converter) appendLineage() {
	n := len(c.cols)
	c.b.Field(n).(*array.StringBuilder).Append(c.runID)
	c.b.Field(n + 1).(*array.TimestampBuilder).Append(arrow.Timestamp(c.extract))
	n += 2
	if c.sch.Evidence {
		if eb := c.b.Field(n).(*array.StringBuilder); c.evid == "" {
			eb.AppendNull()
		} else {
			eb.Append(c.evid)
		}
		n++
	}
	if c.sch.Window {
		for k, ts := range c.win {
			if wb := c.b.Field(n + k).(*array.TimestampBuilder); c.win == [2]int64{} {
				wb.AppendNull()
			} else {
				wb.Append(arrow.Timestamp(ts))
			}
		}
	}
}

// SetEvidence sets the _evidence_sha256 of the rows appended next (schemas with Evidence only).
func (c *Converter) SetEvidence(sha256 string) { c.evid = sha256 }

// SetWindow sets the _window_start and _window_end of the rows appended next (schemas with Window
// only); zero times leave them NULL.
func (c *Converter) SetWindow(start, end time.Time) {
	if start.IsZero() {
		c.win = [2]int64{}
		return
	}
	c.win = [2]int64{start.UnixMicro(), end.UnixMicro()}
}

// keyOf is rec's key as text for a Reject. Rejects outlive their records, so their text is copied:
// a decoded value shares its memory with its neighbours (jsonrec.EachInArray).
func (c *Converter) keyOf(rec Record) string {
	var parts []string
	for _, p := range c.sch.keyPaths() {
		v, _ := lookup(rec, p)
		parts = append(parts, text(v))
	}
	return strings.Clone(strings.Join(parts, "|"))
}

// lookup follows a path of object keys; a null anywhere on the way is a present NULL.
func lookup(rec Record, path []string) (any, bool) {
	var cur any = rec
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, cur == nil
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// appendValue converts v to t and appends it. Conversion finishes before anything is appended, so a
// failing value (even one element of a list) leaves the builder untouched for the caller's NULL.
// Scalars go straight to their builder: passing each converted value through an interface (convert)
// cost an allocation per value, the conversion's largest count (make bench).
func appendValue(b array.Builder, t schemas.Type, v any) error {
	if isNull(t, v) {
		b.AppendNull()
		return nil
	}
	var err error
	switch t.Kind {
	case schemas.Varchar:
		b.(*array.StringBuilder).Append(text(v))
	case schemas.Boolean:
		var x bool
		if x, err = toBool(v); err == nil {
			b.(*array.BooleanBuilder).Append(x)
		}
	case schemas.BigInt:
		var x int64
		if x, err = toBigInt(v); err == nil {
			b.(*array.Int64Builder).Append(x)
		}
	case schemas.Double:
		var x float64
		if x, err = toDouble(v); err == nil {
			b.(*array.Float64Builder).Append(x)
		}
	case schemas.Decimal:
		var x decimal128.Num
		if x, err = toDecimal(t, v); err == nil {
			b.(*array.Decimal128Builder).Append(x)
		}
	case schemas.Date:
		var x arrow.Date32
		if x, err = toDate(v); err == nil {
			b.(*array.Date32Builder).Append(x)
		}
	case schemas.Timestamp, schemas.TimestampTZ:
		var x arrow.Timestamp
		if x, err = toTimestamp(v); err == nil {
			b.(*array.TimestampBuilder).Append(x)
		}
	default:
		var cv any
		if cv, err = convert(t, v); err == nil {
			appendConverted(b, t, cv)
		}
	}
	return err
}

type mapEntry struct {
	k string
	v any // string or nil
}

// isNull reports whether v is NULL in a column of type t: null, and "" for every non-text type, as the
// APIs send "" for missing dates.
func isNull(t schemas.Type, v any) bool {
	if v == nil {
		return true
	}
	s, ok := v.(string)
	return ok && s == "" && t.Kind != schemas.Varchar
}

// convert checks and converts v to the Go value appendConverted takes for t (nil means NULL): what
// lists and maps hold.
func convert(t schemas.Type, v any) (any, error) {
	if isNull(t, v) {
		return nil, nil
	}
	switch t.Kind {
	case schemas.Varchar:
		return text(v), nil
	case schemas.Boolean:
		return boxed(toBool(v))
	case schemas.BigInt:
		return boxed(toBigInt(v))
	case schemas.Double:
		return boxed(toDouble(v))
	case schemas.Decimal:
		return boxed(toDecimal(t, v))
	case schemas.Date:
		return boxed(toDate(v))
	case schemas.Timestamp, schemas.TimestampTZ:
		return boxed(toTimestamp(v))
	case schemas.List:
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("not an array")
		}
		out := make([]any, len(items))
		for i, it := range items {
			cv, err := convert(*t.Elem, it)
			if err != nil {
				return nil, fmt.Errorf("array element %d: %w", i, err)
			}
			out[i] = cv
		}
		return out, nil
	case schemas.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("not an object")
		}
		out := make([]mapEntry, 0, len(m))
		for k, x := range m {
			e := mapEntry{k: k}
			if x != nil {
				e.v = text(x)
			}
			out = append(out, e)
		}
		slices.SortFunc(out, func(a, b mapEntry) int { return strings.Compare(a.k, b.k) })
		return out, nil
	}
	return nil, fmt.Errorf("unsupported type %s", t)
}

func boxed[T any](x T, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return x, nil
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		if p, err := strconv.ParseBool(x); err == nil {
			return p, nil
		}
	}
	return false, fmt.Errorf("not a boolean")
}

func toBigInt(v any) (int64, error) {
	n, err := strconv.ParseInt(numberText(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("not a 64-bit integer")
	}
	return n, nil
}

func toDouble(v any) (float64, error) {
	f, err := strconv.ParseFloat(numberText(v), 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	return f, nil
}

func toDecimal(t schemas.Type, v any) (decimal128.Num, error) {
	n, err := ParseDecimal(numberText(v), t.Precision, t.Scale)
	if err != nil {
		return n, fmt.Errorf("DECIMAL(%d,%d): %w", t.Precision, t.Scale, err)
	}
	return n, nil
}

// toTime reads a timestamp. A zone-less value in a TIMESTAMPTZ column is read as UTC; a zoned value in
// a TIMESTAMP column keeps the instant in UTC. Declared schemas pick the kind that matches what the API
// sends.
func toTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, fmt.Errorf("not a timestamp")
	}
	ts, _, err := ParseTimestamp(s)
	return ts, err
}

func toDate(v any) (arrow.Date32, error) {
	ts, err := toTime(v)
	return arrow.Date32FromTime(ts), err
}

// toTimestamp holds microseconds, as DuckDB's TIMESTAMP and Iceberg's timestamp do: a seventh
// fractional digit (.NET's ticks, in GSAPI's reference) is cut towards the past, never rounded into
// the next second, day or window. Chosen, not from the spec: no API field needs a tenth of a
// microsecond, and the evidence keeps the text.
func toTimestamp(v any) (arrow.Timestamp, error) {
	ts, err := toTime(v)
	return arrow.Timestamp(ts.UnixMicro()), err
}

func appendConverted(b array.Builder, t schemas.Type, cv any) {
	if cv == nil {
		b.AppendNull()
		return
	}
	switch t.Kind {
	case schemas.Varchar:
		b.(*array.StringBuilder).Append(cv.(string))
	case schemas.Boolean:
		b.(*array.BooleanBuilder).Append(cv.(bool))
	case schemas.BigInt:
		b.(*array.Int64Builder).Append(cv.(int64))
	case schemas.Double:
		b.(*array.Float64Builder).Append(cv.(float64))
	case schemas.Decimal:
		b.(*array.Decimal128Builder).Append(cv.(decimal128.Num))
	case schemas.Date:
		b.(*array.Date32Builder).Append(cv.(arrow.Date32))
	case schemas.Timestamp, schemas.TimestampTZ:
		b.(*array.TimestampBuilder).Append(cv.(arrow.Timestamp))
	case schemas.List:
		lb := b.(*array.ListBuilder)
		lb.Append(true)
		for _, it := range cv.([]any) {
			appendConverted(lb.ValueBuilder(), *t.Elem, it)
		}
	case schemas.Map:
		mb := b.(*array.MapBuilder)
		mb.Append(true)
		for _, e := range cv.([]mapEntry) {
			mb.KeyBuilder().(*array.StringBuilder).Append(e.k)
			if e.v == nil {
				mb.ItemBuilder().AppendNull()
			} else {
				mb.ItemBuilder().(*array.StringBuilder).Append(e.v.(string))
			}
		}
	}
}

// numberText accepts JSON numbers and numeric strings (APIs quote numbers now and then).
func numberText(v any) string {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case string:
		return strings.TrimSpace(x)
	}
	return "\x00" // fails every parse
}
