package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/schemas"
	sqlfiles "github.com/ledgerlake/ledgerlake/sql"
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
	fmt.Fprintln(w, "# ledgerlake warehouse tables\n\nEvery stream is a current-state table `<source>_<stream>` with its history in `<table>_history`: a\n"+
		"snapshot's newest run, a windowed stream's newest fetch of every date window, or the newest fetch of every\n"+
		"key where a key is in force (no row is ever collapsed; rows sharing a key are reported). Every row carries\n"+
		"`_run_id` and `_extracted_at` (TIMESTAMPTZ); rows of windowed streams carry `_window_start` and `_window_end`\n"+
		"(the window as sent), and rows of the invoice streams `_evidence_sha256`, naming the stored response body\n"+
		"they came from (`_evidence/<sha[:2]>/<sha>.json.zst` in the lake).")
	fmt.Fprintln(w, "\n## Declared streams")
	for _, t := range tables {
		ident := "Key: " + strings.Join(t.Key, ", ")
		if len(t.Key) == 0 {
			ident = "Identified by " + strings.Join(t.Ident, ", ") + " (an assumption: no key is in force, no row is collapsed by it)"
		}
		fmt.Fprintf(w, "\n### %s\n\n%s\n\n%s\n\n| column | type | description |\n|---|---|---|\n", t.Name(), t.Description, ident)
		for _, c := range t.Columns {
			fmt.Fprintf(w, "| %s | %s | %s |\n", c.Name, schemas.MustType(c.Type), cell(c.Description))
		}
	}
	fmt.Fprintln(w, "\n## Tenant-defined fields the models read\n\nGSAPI's datasync exports and journals name their fields per tenant. The models read these through\n"+
		"the names below; a tenant whose columns are named otherwise maps them under `sources.gsapi.fields.<stream>`.\n\n"+
		"| table | model's name | default column | config key | what it holds |\n|---|---|---|---|---|")
	for _, table := range slices.Sorted(maps.Keys(sqlfiles.Fields)) {
		fields := sqlfiles.Fields[table]
		for _, name := range slices.Sorted(maps.Keys(fields)) {
			fmt.Fprintf(w, "| %s | %s | %s | `%s` | %s |\n", table, name, fields[name].Column, sqlfiles.ConfigKey(table, name), cell(fields[name].Description))
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
