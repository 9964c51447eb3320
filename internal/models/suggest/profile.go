package suggest

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

// Kinds of column, by their warehouse type.
const (
	other = iota
	numeric
	text
	temporal
)

// column is what the suggestion knows of one column before it weighs it.
type column struct {
	name, typ string
	kind      int
	integral  bool  // numeric without a fraction in its type: ids, counts, codes
	filled    int64 // rows neither NULL nor ''
	distinct  int64 // counted for idLike columns only
}

// idLike columns can identify or link records: text, or integral numbers.
func (c *column) idLike() bool { return c.kind == text || c.kind == numeric && c.integral }

// table is a warehouse table as profiled: its rows and its tenant columns (not ledgerlake's own).
type table struct {
	name string
	rows int64
	cols []*column
}

func (t *table) col(name string) *column {
	for _, c := range t.cols {
		if c.name == name {
			return c
		}
	}
	return nil
}

// everywhere lists t's columns of the kinds given that hold a value on every row.
func (t *table) everywhere(keep func(*column) bool) []*column {
	var out []*column
	for _, c := range t.cols {
		if c.filled == t.rows && keep(c) {
			out = append(out, c)
		}
	}
	return out
}

// kindOf classifies a DuckDB type; lists, maps and structs are "other" (no model field reads one).
func kindOf(typ string) (kind int, integral bool) {
	switch {
	case typ == "VARCHAR":
		return text, false
	case typ == "DATE" || strings.HasPrefix(typ, "TIMESTAMP"):
		return temporal, false
	case strings.HasPrefix(typ, "DECIMAL("):
		return numeric, strings.HasSuffix(typ, ",0)")
	case typ == "DOUBLE" || typ == "FLOAT" || typ == "REAL":
		return numeric, false
	case strings.HasSuffix(typ, "INT") || typ == "INTEGER" || typ == "BIGINT" || typ == "HUGEINT" || typ == "UBIGINT" || typ == "UINTEGER":
		return numeric, true
	}
	return other, false
}

// querier runs queries: the one connection whose temporary copies of the tables are read.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*dbsql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *dbsql.Row
	ExecContext(ctx context.Context, query string, args ...any) (dbsql.Result, error)
}

// profile reads the tenant columns of table's copy (see copyTables) and their kinds, and with stats how
// many rows hold a value and how many distinct ones; nil when the warehouse has no such table. Columns starting with _ are ledgerlake's
// lineage (_run_id, _window_start, …), not the tenant's.
func profile(ctx context.Context, db querier, name string, stats bool) (*table, error) {
	rows, err := db.QueryContext(ctx, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND database_name = 'temp' ORDER BY column_index", name)
	if err != nil {
		return nil, err
	}
	t := &table{name: name}
	found := false
	for rows.Next() {
		found = true
		c := &column{}
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			rows.Close()
			return nil, err
		}
		if c.kind, c.integral = kindOf(c.typ); !strings.HasPrefix(c.name, "_") && c.kind != other {
			t.cols = append(t.cols, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil || !found {
		return nil, err
	}
	if !stats {
		return t, nil
	}
	sel := []string{"count(*)"}
	for _, c := range t.cols {
		q := duckdb.Quote(c.name)
		// Only what can identify, link or categorise needs its distinct values counted.
		distinct := "0"
		if c.idLike() {
			distinct = "count(DISTINCT " + q + ")"
		}
		sel = append(sel, fmt.Sprintf("count(*) FILTER (WHERE %s IS NOT NULL AND %[1]s::VARCHAR <> '')", q), distinct)
	}
	dst := []any{&t.rows}
	for _, c := range t.cols {
		dst = append(dst, &c.filled, &c.distinct)
	}
	if err := db.QueryRowContext(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM "+duckdb.Quote(name)).Scan(dst...); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return t, nil
}

// within counts, for each of cols of table from, the rows whose value (as text) is one of col's
// values in table to: how many records a column links to another table.
func within(ctx context.Context, db querier, from *table, cols []*column, to *table, col string) ([]int64, error) {
	if len(cols) == 0 {
		return nil, nil
	}
	sel := make([]string, len(cols))
	for i, c := range cols {
		sel[i] = fmt.Sprintf("count(*) FILTER (WHERE %s::VARCHAR IN (SELECT k FROM keys))", duckdb.Quote(c.name))
	}
	q := fmt.Sprintf("WITH keys AS (SELECT DISTINCT %s::VARCHAR AS k FROM %s WHERE %[1]s IS NOT NULL) SELECT %[3]s FROM %[4]s",
		duckdb.Quote(col), duckdb.Quote(to.name), strings.Join(sel, ", "), duckdb.Quote(from.name))
	out := make([]int64, len(cols))
	dst := make([]any, len(cols))
	for i := range out {
		dst[i] = &out[i]
	}
	if err := db.QueryRowContext(ctx, q).Scan(dst...); err != nil {
		return nil, fmt.Errorf("linking %s to %s.%s: %w", from.name, to.name, col, err)
	}
	return out, nil
}

// count runs a query returning one number.
func count(ctx context.Context, db querier, q string, args ...any) (int64, error) {
	var n dbsql.NullInt64
	err := db.QueryRowContext(ctx, q, args...).Scan(&n)
	return n.Int64, err
}

// values lists a column's distinct values as text, up to limit (and whether there were more).
func values(ctx context.Context, db querier, t *table, col string, limit int) ([]string, bool, error) {
	q := fmt.Sprintf("SELECT DISTINCT %s::VARCHAR AS v FROM %s WHERE %[1]s IS NOT NULL ORDER BY v LIMIT %[3]d", duckdb.Quote(col), duckdb.Quote(t.name), limit+1)
	vs, err := duckdb.Strings(ctx, db, q)
	if len(vs) > limit {
		return vs[:limit], true, err
	}
	return vs, false, err
}

// vec is a column of money per record (or per invoice) in ten-thousandths; ok marks the values held.
type vec struct {
	v  []int64
	ok []bool
}

// scaled is the SQL of a money value in ten-thousandths, NULL where it does not fit.
func scaled(expr string) string { return "try_cast(round(" + expr + " * 10000) AS BIGINT)" }

// frame reads q's rows: a text key, then numeric columns, into vectors.
func frame(ctx context.Context, db querier, q string, width int) (keys []string, cols []vec, err error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	cols = make([]vec, width)
	raw := make([]dbsql.NullInt64, width)
	dst := make([]any, width+1)
	var key dbsql.NullString
	dst[0] = &key
	for i := range raw {
		dst[i+1] = &raw[i]
	}
	for rows.Next() {
		if err := rows.Scan(dst...); err != nil {
			return nil, nil, err
		}
		keys = append(keys, key.String)
		for i, r := range raw {
			cols[i].v = append(cols[i].v, r.Int64)
			cols[i].ok = append(cols[i].ok, r.Valid)
		}
	}
	return keys, cols, rows.Err()
}
