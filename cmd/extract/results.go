package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdbdrv "github.com/duckdb/duckdb-go/v2"

	"github.com/ledgerlake/ledgerlake/internal/sqltext"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// What query and invoices write: every DuckDB type as it is. Nested values (STRUCT, MAP, LIST, ARRAY,
// UNION) and JSON are written by DuckDB itself as JSON text (to_json: keys in order, decimals exact),
// and types Go has no faithful value for (UUID, INTERVAL, BLOB, BIT, TIME WITH TIME ZONE, BIGNUM) as
// DuckDB's own text; decimals keep their scale, dates stay dates, timestamps keep their precision.

// valueKind is how a column's values are written.
type valueKind int

const (
	kindText        valueKind = iota // VARCHAR, ENUM, and what DuckDB writes as text
	kindJSON                         // JSON and nested types: JSON text
	kindInt                          // integers of every width
	kindFloat                        // FLOAT, DOUBLE
	kindDecimal                      // DECIMAL
	kindBool                         // BOOLEAN
	kindDate                         // DATE
	kindTime                         // TIME
	kindTimestamp                    // TIMESTAMP (no zone), of any precision
	kindTimestampTZ                  // TIMESTAMPTZ
)

// column is one column of a result.
type column struct {
	name string
	kind valueKind
	cast string // how the wrapping query has DuckDB write it: "json", "text" or "" (as it is)
}

// numeric reports whether the column's values are numbers (right-aligned in tables).
func (c column) numeric() bool {
	return c.kind == kindInt || c.kind == kindFloat || c.kind == kindDecimal
}

// kindOf is how values of a DuckDB type are written.
func kindOf(t duckdbdrv.TypeInfo) (valueKind, string) {
	if t.Alias() == "JSON" {
		return kindJSON, "json"
	}
	switch t.InternalType() {
	case duckdbdrv.TYPE_STRUCT, duckdbdrv.TYPE_MAP, duckdbdrv.TYPE_LIST, duckdbdrv.TYPE_ARRAY, duckdbdrv.TYPE_UNION:
		return kindJSON, "json"
	case duckdbdrv.TYPE_UUID, duckdbdrv.TYPE_INTERVAL, duckdbdrv.TYPE_BLOB, duckdbdrv.TYPE_BIT, duckdbdrv.TYPE_TIME_TZ, duckdbdrv.TYPE_BIGNUM:
		return kindText, "text"
	case duckdbdrv.TYPE_TINYINT, duckdbdrv.TYPE_SMALLINT, duckdbdrv.TYPE_INTEGER, duckdbdrv.TYPE_BIGINT, duckdbdrv.TYPE_HUGEINT,
		duckdbdrv.TYPE_UTINYINT, duckdbdrv.TYPE_USMALLINT, duckdbdrv.TYPE_UINTEGER, duckdbdrv.TYPE_UBIGINT, duckdbdrv.TYPE_UHUGEINT:
		return kindInt, ""
	case duckdbdrv.TYPE_FLOAT, duckdbdrv.TYPE_DOUBLE:
		return kindFloat, ""
	case duckdbdrv.TYPE_DECIMAL:
		return kindDecimal, ""
	case duckdbdrv.TYPE_BOOLEAN:
		return kindBool, ""
	case duckdbdrv.TYPE_DATE:
		return kindDate, ""
	case duckdbdrv.TYPE_TIME:
		return kindTime, ""
	case duckdbdrv.TYPE_TIMESTAMP, duckdbdrv.TYPE_TIMESTAMP_S, duckdbdrv.TYPE_TIMESTAMP_MS, duckdbdrv.TYPE_TIMESTAMP_NS:
		return kindTimestamp, ""
	case duckdbdrv.TYPE_TIMESTAMP_TZ:
		return kindTimestampTZ, ""
	case duckdbdrv.TYPE_VARCHAR, duckdbdrv.TYPE_ENUM, duckdbdrv.TYPE_SQLNULL:
		return kindText, ""
	}
	return kindText, "text" // anything newer: DuckDB's own text of it
}

// session runs statements one after another on one connection, so SET and temporary views carry
// over from one statement to the next.
type session struct{ conn *sql.Conn }

func openSession(ctx context.Context, db *sql.DB) (*session, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &session{conn: c}, nil
}

func (s *session) Close() error { return s.conn.Close() }

// statement is one statement as DuckDB prepared it, without running it.
type statement struct {
	text string
	cols []column
	// query marks a statement whose text can stand as a subquery (a SELECT, DESCRIBE, SHOW…): its
	// values can be written by DuckDB where Go cannot write them faithfully.
	query bool
	rows  bool // it answers rows (a query, EXPLAIN, PRAGMA, CALL); SET and the like answer none
}

// errEmpty is a statement DuckDB finds nothing in.
var errEmpty = errors.New("empty statement")

// prepare learns what text is and what its columns are, without running it.
func (s *session) prepare(ctx context.Context, text string) (*statement, error) {
	st := &statement{text: text}
	err := s.conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdbdrv.Conn)
		if !ok {
			return fmt.Errorf("not a DuckDB connection: %T", dc)
		}
		p, err := c.PrepareContext(ctx, text)
		if err != nil {
			if strings.Contains(err.Error(), "empty query") {
				return errEmpty
			}
			return err
		}
		defer p.Close()
		ds := p.(*duckdbdrv.Stmt)
		typ, err := ds.StatementType()
		if err != nil {
			return err
		}
		st.query = typ == duckdbdrv.STATEMENT_TYPE_SELECT
		st.rows = st.query || typ == duckdbdrv.STATEMENT_TYPE_EXPLAIN || typ == duckdbdrv.STATEMENT_TYPE_PRAGMA ||
			typ == duckdbdrv.STATEMENT_TYPE_CALL || typ == duckdbdrv.STATEMENT_TYPE_EXECUTE
		n, err := ds.ColumnCount()
		if err != nil {
			return err
		}
		for i := range n {
			name, err := ds.ColumnName(i)
			if err != nil {
				return err
			}
			ti, err := ds.ColumnTypeInfo(i)
			if err != nil {
				return err
			}
			kind, cast := kindOf(ti)
			st.cols = append(st.cols, column{name: name, kind: kind, cast: cast})
		}
		return nil
	})
	return st, err
}

// wrapped is the statement as a query whose nested values DuckDB writes as JSON text and whose
// other values without a faithful Go form as its own text; "" when it needs no wrapping.
func (st *statement) wrapped() string {
	if !st.query {
		return ""
	}
	var exprs, aliases []string
	need := false
	for i, c := range st.cols {
		ref := fmt.Sprintf("c%d", i)
		aliases = append(aliases, ref)
		switch c.cast {
		case "json":
			ref, need = "to_json("+ref+")::VARCHAR", true
		case "text":
			ref, need = ref+"::VARCHAR", true
		}
		exprs = append(exprs, ref)
	}
	if !need {
		return ""
	}
	// The newline before ")" ends a -- comment the statement may end with.
	return "SELECT " + strings.Join(exprs, ", ") + " FROM (\n" + st.text + "\n) AS _ledgerlake_q(" + strings.Join(aliases, ", ") + ")"
}

// run runs the statement: its rows for a statement that answers some, else nil.
func (s *session) run(ctx context.Context, st *statement) (*sql.Rows, error) {
	if !st.rows {
		_, err := s.conn.ExecContext(ctx, st.text)
		return nil, err
	}
	if w := st.wrapped(); w != "" {
		if rows, err := s.conn.QueryContext(ctx, w); err == nil {
			return rows, nil
		}
		// DuckDB would not take it as a subquery: run it as it is, writing nested values from Go.
		for i := range st.cols {
			st.cols[i].cast = ""
		}
	}
	return s.conn.QueryContext(ctx, st.text)
}

// cleanSQLError trims the driver's prefixes so the user sees DuckDB's own message.
func cleanSQLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "Binder Error: ")
	return errors.New(msg)
}

// text writes a value for tables and CSV (nil is the caller's: NULL or an empty field).
func text(c column, v any) string {
	switch x := v.(type) {
	case string:
		return x
	case []byte:
		return blobText(x)
	case duckdbdrv.Decimal:
		return decimalString(x)
	case time.Time:
		return timeText(c.kind, x, " ")
	case float64:
		return floatText(x)
	case float32:
		return floatText(float64(x))
	case bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, *big.Int:
		return fmt.Sprint(x)
	}
	// A nested value of a statement DuckDB could not wrap: JSON from Go's value.
	b, _ := marshalJSON(goJSON(v))
	return string(b)
}

// timeText writes a date, time or timestamp at its precision; sep goes between date and time.
func timeText(k valueKind, t time.Time, sep string) string {
	switch k {
	case kindDate:
		return t.Format(time.DateOnly)
	case kindTime:
		return t.Format("15:04:05.999999999")
	case kindTimestamp:
		return t.Format("2006-01-02" + sep + "15:04:05.999999999")
	}
	return t.UTC().Format("2006-01-02" + sep + "15:04:05.999999999Z07:00")
}

// floatText writes a double in plain digits where that is short, else with an exponent: 1176083,
// not 1.176083e+06.
func floatText(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0 || math.Abs(f) >= 1e-6 && math.Abs(f) < 1e21:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// blobText writes bytes as DuckDB does: printable ASCII as is, the rest as \xHH.
func blobText(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '\\' {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, "\\x%02X", c)
		}
	}
	return s.String()
}

func decimalString(d duckdbdrv.Decimal) string { return typing.FormatScaled(d.Value, int(d.Scale)) }

// jsonOf writes a value as JSON of its type: numbers as numbers (decimals exact, with their scale),
// dates and times as ISO 8601 text, nested values as the JSON DuckDB wrote.
func jsonOf(c column, v any) []byte {
	switch x := v.(type) {
	case nil:
		return []byte("null")
	case string:
		if c.kind == kindJSON && json.Valid([]byte(x)) {
			return []byte(x)
		}
		b, _ := marshalJSON(x)
		return b
	case duckdbdrv.Decimal:
		return []byte(decimalString(x))
	case time.Time:
		if c.kind == kindTimestampTZ {
			b, _ := marshalJSON(x.UTC().Format(time.RFC3339Nano))
			return b
		}
		b, _ := marshalJSON(timeText(c.kind, x, "T"))
		return b
	case float64, float32:
		f := floatText(toFloat(x))
		if _, err := strconv.ParseFloat(f, 64); err != nil || strings.ContainsAny(f, "NI") {
			b, _ := marshalJSON(f) // NaN and the infinities have no JSON number
			return b
		}
		return []byte(f)
	case bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, int, *big.Int:
		return []byte(fmt.Sprint(x))
	case []byte:
		b, _ := marshalJSON(blobText(x))
		return b
	}
	b, err := marshalJSON(goJSON(v))
	if err != nil {
		b, _ = marshalJSON(fmt.Sprint(v))
	}
	return b
}

func toFloat(v any) float64 {
	if f, ok := v.(float32); ok {
		return float64(f)
	}
	return v.(float64)
}

// goJSON turns a nested value the driver built (a statement DuckDB could not wrap) into one
// encoding/json writes faithfully.
func goJSON(v any) any {
	switch x := v.(type) {
	case duckdbdrv.Decimal:
		return json.Number(decimalString(x))
	case []byte:
		return blobText(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = goJSON(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = goJSON(e)
		}
		return out
	case duckdbdrv.OrderedMap:
		out := map[string]any{}
		for i, k := range x.Keys() {
			out[fmt.Sprint(k)] = goJSON(x.Values()[i])
		}
		return out
	}
	return v
}

// marshalJSON is json.Marshal without HTML escaping: "A&B" stays "A&B", not "A\u0026B".
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// splitSQL is the statements of text, in order.
func splitSQL(text string) []string { return sqltext.Split(text) }

// writeResults runs text's statements in order and writes each answer in format to w; maxRows
// bounds each answer's rows (0: all), and what it leaves out is said (in a table, below it; in the
// machine formats, on note).
func writeResults(ctx context.Context, db *sql.DB, text, format string, maxRows int, w, note io.Writer) error {
	stmts := splitSQL(text)
	if len(stmts) == 0 {
		return errors.New("no SQL statement given")
	}
	s, err := openSession(ctx, db)
	if err != nil {
		return err
	}
	defer s.Close()
	answered := 0
	for _, t := range stmts {
		st, err := s.prepare(ctx, t)
		if errors.Is(err, errEmpty) {
			continue
		}
		if err != nil {
			return cleanSQLError(err)
		}
		rows, err := s.run(ctx, st)
		if err != nil {
			return cleanSQLError(err)
		}
		if rows == nil {
			continue
		}
		if answered > 0 && format != "jsonl" && format != "json" {
			fmt.Fprintln(w)
		}
		answered++
		err = writeRows(rows, st.cols, newWriter(format, w), maxRows, note)
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// writeRows writes rows through out, at most maxRows of them (0: all), and counts the rest.
func writeRows(rows *sql.Rows, cols []column, out resultWriter, maxRows int, note io.Writer) error {
	if err := out.header(cols); err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	shown, more := 0, int64(0)
	for rows.Next() {
		if maxRows > 0 && shown >= maxRows {
			more++
			continue
		}
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		if err := out.row(cols, vals); err != nil {
			return err
		}
		shown++
	}
	if err := rows.Err(); err != nil {
		return cleanSQLError(err)
	}
	return out.footer(shown, more, note)
}
