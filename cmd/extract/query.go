package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	duckdbdrv "github.com/duckdb/duckdb-go/v2"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

func queryCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("query", "query [--db FILE] [--format table|csv|json] SQL",
		"Run SQL read-only against the warehouse. Tables: one per stream (signicat_accounts, gsapi_organizations …),\n"+
			"their history (…_history) and the runs (_ledgerlake_runs).", stderr)
	db := fs.String("db", "data/warehouse.duckdb", "warehouse file")
	format := fs.String("format", "table", "output: table, csv or json")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "extract query: give exactly one SQL statement (quote it)")
		fs.Usage()
		return exitUsage
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		fmt.Fprintf(stderr, "extract query: --format must be table, csv or json, not %q\n", *format)
		return exitUsage
	}
	wh, err := duckdb.OpenReadOnly(*db)
	if err != nil {
		if errors.Is(err, duckdb.ErrLocked) {
			fmt.Fprintf(stderr, "extract query: %v; try again when it has finished\n", err)
		} else {
			fmt.Fprintf(stderr, "extract query: %v\n", err)
		}
		return exitFailed
	}
	defer wh.Close()
	if err := runQuery(ctx, wh.DB, fs.Arg(0), *format, stdout); err != nil {
		fmt.Fprintf(stderr, "extract query: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// runQuery prints a query's result in format.
func runQuery(ctx context.Context, db *sql.DB, query, format string, w io.Writer) error {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return cleanSQLError(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	isDate := make([]bool, len(types))
	for i, t := range types {
		isDate[i] = t.DatabaseTypeName() == "DATE"
	}
	var table [][]string
	var objects []map[string]any
	cw := csv.NewWriter(w)
	switch format {
	case "table":
		table = append(table, cols)
	case "csv":
		_ = cw.Write(cols)
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		n++
		switch format {
		case "json":
			o := make(map[string]any, len(cols))
			for i, c := range cols {
				o[c] = jsonValue(vals[i])
			}
			objects = append(objects, o)
		default:
			rec := make([]string, len(cols))
			for i, v := range vals {
				if t, ok := v.(time.Time); ok && isDate[i] {
					rec[i] = t.Format("2006-01-02")
					continue
				}
				rec[i] = formatValue(v)
			}
			if format == "csv" {
				_ = cw.Write(rec)
			} else {
				table = append(table, rec)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return cleanSQLError(err)
	}
	switch format {
	case "csv":
		cw.Flush()
		return cw.Error()
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if objects == nil {
			objects = []map[string]any{}
		}
		return enc.Encode(objects)
	}
	writeAligned(w, table, numericColumns(table))
	fmt.Fprintf(w, "(%d rows)\n", n)
	return nil
}

// cleanSQLError trims the driver's prefixes so the user sees DuckDB's own message.
func cleanSQLError(err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "Binder Error: ")
	return errors.New(msg)
}

// formatValue renders a value for table and CSV output: decimals with their full scale, timestamps in
// RFC 3339 with milliseconds when present, NULL as empty.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case duckdbdrv.Decimal:
		return decimalString(x)
	case time.Time:
		if x.Nanosecond() == 0 {
			return x.Format("2006-01-02 15:04:05Z07:00")
		}
		return x.Format("2006-01-02 15:04:05.000Z07:00")
	case []byte:
		return string(x)
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = formatValue(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(v)
}

func decimalString(d duckdbdrv.Decimal) string { return typing.FormatScaled(d.Value, int(d.Scale)) }

// jsonValue keeps decimals exact in JSON output (as numbers written from their decimal text).
func jsonValue(v any) any {
	switch x := v.(type) {
	case duckdbdrv.Decimal:
		return json.Number(decimalString(x))
	case []byte:
		return string(x)
	}
	return v
}

// numericColumns finds the columns whose values are all numbers, to right-align them.
func numericColumns(rows [][]string) map[int]bool {
	out := map[int]bool{}
	if len(rows) < 2 {
		return out
	}
	for i := range rows[0] {
		out[i] = true
		for _, r := range rows[1:] {
			if _, err := strconv.ParseFloat(r[i], 64); r[i] != "" && err != nil {
				out[i] = false
				break
			}
		}
	}
	return out
}

// writeAligned prints rows as a table with a rule under the header; right aligns the columns in right.
func writeAligned(w io.Writer, rows [][]string, right map[int]bool) {
	if len(rows) == 0 {
		return
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			if l := utf8.RuneCountInString(c); i < len(width) && l > width[i] {
				width[i] = min(l, 60)
			}
		}
	}
	for k, r := range rows {
		var b strings.Builder
		for i, c := range r {
			if utf8.RuneCountInString(c) > 60 {
				c = string([]rune(c)[:59]) + "…"
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if right[i] {
				b.WriteString(pad + c)
			} else {
				b.WriteString(c + pad)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		if k == 0 {
			var rule strings.Builder
			for i := range width {
				if i > 0 {
					rule.WriteString("  ")
				}
				rule.WriteString(strings.Repeat("─", width[i]))
			}
			fmt.Fprintln(w, rule.String())
		}
	}
}
