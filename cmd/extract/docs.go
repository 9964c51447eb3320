package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/schemas"
)

func docsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("docs", "docs [--db FILE] [--out FILE]",
		"Write Markdown documentation of every table: the declared schemas (columns, types, descriptions), the SQL\n"+
			"models and data tests, and, with --db, every column actually in the warehouse (inferred ones included).", stderr)
	db := fs.String("db", "", "warehouse to document as loaded (optional)")
	out := fs.String("out", "", "write to this file instead of stdout")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(stderr, "extract docs:", err)
			return exitFailed
		}
		defer f.Close()
		w = f
	}
	if err := writeDocs(ctx, w, *db); err != nil {
		fmt.Fprintln(stderr, "extract docs:", err)
		return exitFailed
	}
	return exitOK
}

func cell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ") }

// writeDocs renders the documentation; dbPath may be empty.
func writeDocs(ctx context.Context, w io.Writer, dbPath string) error {
	tables, err := schemas.All()
	if err != nil {
		return err
	}
	ms, tests, err := models.Load()
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "# ledgerlake warehouse tables\n\nEvery stream is a current-state table `<source>_<stream>` (one row per key) with its history in\n`<table>_history`; every row carries `_run_id` and `_extracted_at` (TIMESTAMPTZ);\nrows of the invoice streams also carry `_evidence_sha256`, naming the stored response body they came from\n(`_evidence/<sha[:2]>/<sha>.json.zst` in the lake).")
	fmt.Fprintln(w, "\n## Declared streams")
	for _, t := range tables {
		fmt.Fprintf(w, "\n### %s\n\n%s\n\nKey: %s\n\n| column | type | description |\n|---|---|---|\n", t.Name(), t.Description, strings.Join(t.Key, ", "))
		for _, c := range t.Columns {
			fmt.Fprintf(w, "| %s | %s | %s |\n", c.Name, schemas.MustType(c.Type), cell(c.Description))
		}
	}
	fmt.Fprintln(w, "\n## SQL models (sql/)")
	for _, m := range append(ms, tests...) {
		fmt.Fprintf(w, "\n### %s (%s)\n\n%s\n", m.Name, m.Kind, m.Description)
		if len(m.Deps)+len(m.Sources) > 0 {
			fmt.Fprintf(w, "\nReads: %s\n", strings.Join(append(append([]string{}, m.Deps...), m.Sources...), ", "))
		}
	}
	if dbPath == "" {
		return nil
	}
	wh, err := duckdb.OpenReadOnly(dbPath)
	if err != nil {
		return err
	}
	defer wh.Close()
	rows, err := wh.DB.QueryContext(ctx, `SELECT table_name, column_name, data_type FROM duckdb_columns()
		WHERE NOT internal AND table_name NOT LIKE '%\_history' ESCAPE '\' ORDER BY table_name, column_index`)
	if err != nil {
		return err
	}
	defer rows.Close()
	fmt.Fprintf(w, "\n## As loaded in %s\n", dbPath)
	last := ""
	for rows.Next() {
		var t, c, ty string
		if err := rows.Scan(&t, &c, &ty); err != nil {
			return err
		}
		if t != last {
			fmt.Fprintf(w, "\n### %s\n\n| column | type |\n|---|---|\n", t)
			last = t
		}
		fmt.Fprintf(w, "| %s | %s |\n", c, ty)
	}
	return rows.Err()
}
