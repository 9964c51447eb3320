package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/audit"
	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

func invoicesCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("invoices", "invoices [--config FILE | --lake DIR] [--from DATE] [--to DATE] [--org ID] [--source signicat|gsapi|all]\n"+
		"                        [--as-of TIME] [--lines] [--format table|csv|json|parquet] [--out FILE] [--pdf-dir DIR]",
		"Historical invoices exactly as the runs stored them, read from the lake's snapshot files (not the warehouse).\n"+
			"--as-of gives the state as loaded by the last run finished at or before that time. Every row ends with\n"+
			"its provenance: endpoint, run_id, extracted_at, snapshot_file, snapshot_sha256 and evidence_sha256 (the\n"+
			"stored response body: extract evidence SHA256 prints it). `extract verify` proves the files unaltered.\n\n"+
			"Example: every 2023 invoice of organisation o-42 as held on 31 January 2024, for a spreadsheet:\n"+
			"  extract invoices --config pipelines/nightly.yaml --org o-42 --from 2023-01-01 --to 2023-12-31 \\\n"+
			"    --as-of 2024-01-31 --format csv --out invoices-o-42-2023.csv --pdf-dir pdfs/", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose output_dir holds the lake")
	dir := fs.String("lake", "", "the lake: a directory or an object-store URL (instead of --config)")
	from := fs.String("from", "", "first invoice date, YYYY-MM-DD (inclusive)")
	to := fs.String("to", "", "last invoice date, YYYY-MM-DD (inclusive)")
	org := fs.String("org", "", "organisation id (Signicat organizationId, GSAPI org_id)")
	source := fs.String("source", "all", "signicat, gsapi or all")
	asOf := fs.String("as-of", "", "state as of this time: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' (UTC) or YYYY-MM-DD (end of that day, UTC); default latest")
	withLines := fs.Bool("lines", false, "invoice lines of the selected invoices instead of the headers")
	format := fs.String("format", "table", "table or markdown (key columns and provenance), csv (UTF-8 with BOM, for spreadsheets), json, jsonl or parquet (every column)")
	maxRows := fs.Int("max-rows", -1, "invoices written, the rest counted and said (0: all; default 100 in table and markdown, else all)")
	out := fs.String("out", "", "write to this file instead of stdout (required for parquet)")
	pdfDir := fs.String("pdf-dir", "", "also copy the stored PDFs of the selected Signicat invoices here, checked against their sha256")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	usage := func(msg string, a ...any) int {
		fmt.Fprintf(stderr, "extract invoices: "+msg+"\n", a...)
		return exitUsage
	}
	q := audit.Query{Root: *dir, Org: *org, Source: *source, Lines: *withLines}
	var err error
	if q.From, err = parseDay(*from); err != nil {
		return usage("--from: %v", err)
	}
	if q.To, err = parseDay(*to); err != nil {
		return usage("--to: %v", err)
	}
	if q.AsOf, err = parseAsOf(*asOf); err != nil {
		return usage("--as-of: %v", err)
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return usage("--to %s is before --from %s: no invoice can be in that period", *to, *from)
	}
	switch {
	case !slices.Contains(outputFormats, *format):
		return usage("--format must be %s, not %q", strings.Join(outputFormats, ", "), *format)
	case *format == "parquet" && *out == "":
		return usage("--format parquet needs --out FILE")
	}
	if *maxRows < 0 {
		*maxRows = 0
		if *format == "table" || *format == "markdown" {
			*maxRows = 100
		}
	}
	if *cfgPath != "" {
		cfg, err := config.LoadForReading(*cfgPath)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		q.Root, q.Fields, q.Spool = cfg.OutputDir, cfg.Fields(), pipeline.SpoolDir(cfg)
	}
	if q.Root == "" {
		return usage("give --config FILE or --lake DIR")
	}
	if *pdfDir != "" && *withLines {
		return usage("--pdf-dir goes with invoice headers, not --lines")
	}

	db, err := duckdb.Open("")
	if err != nil {
		fmt.Fprintln(stderr, "extract invoices:", err)
		return exitFailed
	}
	defer db.Close()
	a, err := audit.Prepare(ctx, db.DB, q)
	if err != nil {
		if errors.Is(err, audit.ErrSource) {
			return usage("--source: %v", err)
		}
		fmt.Fprintln(stderr, "extract invoices:", err)
		return exitFailed
	}
	defer a.Close()
	asOfText := "latest"
	if !q.AsOf.IsZero() {
		asOfText = q.AsOf.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "as of %s: %d runs, the last %s\n", asOfText, a.Runs, a.LastRun)

	if err := writeInvoices(ctx, db, a, *format, *out, *maxRows, stdout, stderr); err != nil {
		fmt.Fprintln(stderr, "extract invoices:", err)
		return exitFailed
	}
	if *pdfDir != "" {
		n, err := exportPDFs(ctx, a.Lake, a.PDFs, *pdfDir)
		if err != nil {
			fmt.Fprintln(stderr, "extract invoices:", err)
			return exitFailed
		}
		fmt.Fprintf(stderr, "%d PDFs written to %s (invoices without one were fetched without pdfs: true)\n", n, *pdfDir)
	}
	return exitOK
}

// writeInvoices prints or writes the answer in format.
func writeInvoices(ctx context.Context, db *duckdb.Warehouse, a *audit.Answer, format, out string, maxRows int, stdout, stderr io.Writer) error {
	if format == "parquet" {
		return writeParquet(ctx, db.DB, a.SQL, out)
	}
	query := a.SQL
	if format == "table" || format == "markdown" {
		query = fmt.Sprintf("SELECT %s FROM (%s)", strings.Join(a.Columns, ", "), a.SQL)
	}
	return toFile(out, stdout, func(w io.Writer) error {
		if format == "csv" {
			// A byte-order mark makes spreadsheet programs read the file as UTF-8, so names like
			// "Ålesund Bokføring" survive; decimals are written with their full scale and a point.
			if _, err := io.WriteString(w, "\ufeff"); err != nil {
				return err
			}
		}
		if err := writeResults(ctx, db.DB, query, format, maxRows, w, stderr); err != nil {
			return err
		}
		if format == "table" {
			_, err := fmt.Fprintln(w, "every column and the evidence hashes: --format csv, json or parquet")
			return err
		}
		return nil
	})
}

// exportPDFs copies each PDF, re-checked against its sha256, to dir/<invoice number>.pdf.
func exportPDFs(ctx context.Context, st lake.Store, pdfs map[string]lake.Evidence, dir string) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	keys := make([]string, 0, len(pdfs))
	for k := range pdfs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := pdfs[k]
		b, err := lake.ReadEvidence(ctx, st, e)
		if err != nil {
			return 0, fmt.Errorf("PDF of invoice %s (%s): %w", k, e.Path, err)
		}
		if err := durable.WriteFile(filepath.Join(dir, safeFileName(k)+".pdf"), b); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

// safeFileName keeps an invoice number readable as a file name ('/' and other separators become '_').
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ':' || r < ' ' {
			return '_'
		}
		return r
	}, s)
}

func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a date (YYYY-MM-DD)", s)
	}
	return t, nil
}

// parseAsOf reads an as-of time; a bare date means the end of that day (UTC), so "as held on
// 31 January" includes that day's runs.
func parseAsOf(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t.Add(24*time.Hour - time.Nanosecond), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02T15:04:05", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' in UTC, or YYYY-MM-DD)", s)
}
