package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/dustin/go-humanize"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("status", "status [--config FILE | --lake DIR|URL [--db FILE]] [--json] [STREAM…]",
		"Where each stream stands between runs, read from the lake and the warehouse (no API is called and no\n"+
			"credential is needed): its last run and status, its rows now and in the history, its watermark, what the\n"+
			"next run fetches (the first day of its windows), why it last failed, and what is pending — a reset not\n"+
			"yet taken up, a key test that fails, a killed run's checkpoint, a shrink to accept.\n"+
			"Name streams (signicat_invoices, or invoices) for their details.", stderr)
	cfgPath := fs.String("config", "", "pipeline file whose lake and warehouse to read (its since and lookback_days give the next window)")
	lakeDir := fs.String("lake", "", "the lake (instead of --config)")
	db := fs.String("db", "", "the warehouse, for row counts and data tests (with --lake)")
	asJSON := fs.Bool("json", false, "write JSON: one object per stream")
	names, code := parseArgs(fs, args)
	if code >= 0 {
		return code
	}
	var cfg *config.Config
	root, spool, wh := *lakeDir, "", *db
	if *cfgPath != "" {
		var err error
		if cfg, err = config.LoadForReading(*cfgPath); err != nil {
			return exitCodeFor(err, stderr)
		}
		root, spool, wh = cfg.OutputDir, pipeline.SpoolDir(cfg), cfg.Warehouse
	}
	if root == "" {
		fmt.Fprintln(stderr, "extract status: give --config FILE, or --lake DIR (and --db FILE for the row counts)")
		return exitUsage
	}
	st, err := lake.OpenStore(ctx, root, spool)
	if err != nil {
		fmt.Fprintln(stderr, "extract status:", err)
		return exitFailed
	}
	defer st.Close()
	ss, err := pipeline.Status(ctx, cfg, st, wh, names)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	switch {
	case *asJSON:
		b, _ := marshalJSON(ss)
		fmt.Fprintf(stdout, "%s\n", b)
	case len(names) > 0:
		for i, s := range ss {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			writeStreamDetail(stdout, s)
		}
	default:
		fmt.Fprintf(stdout, "lake %s · warehouse %s\n\n", st, orNone(wh))
		writeStatusTable(stdout, ss)
	}
	return exitOK
}

func orNone(s string) string {
	if s == "" {
		return "(none given)"
	}
	return s
}

// writeStatusTable writes a line per stream, then what needs attention.
func writeStatusTable(w io.Writer, ss []pipeline.StreamStatus) {
	rows := [][]string{{"stream", "last run", "rows", "history", "watermark", "next run fetches"}}
	var attention []string
	for _, s := range ss {
		last := "—"
		if r := s.LastRun; r != nil {
			last = fmt.Sprintf("%s %s (%s rows)", r.Status, r.Finished.UTC().Format("2006-01-02 15:04"), humanize.Comma(r.Rows))
		}
		rows = append(rows, []string{s.Table, last, count(s.Rows), count(s.History), orDash(s.Watermark), brief(s)})
		if s.LastRun != nil && s.LastRun.Status != "ok" {
			attention = append(attention, fmt.Sprintf("%s: last run %s %s: %s", s.Table, s.LastRun.RunID, s.LastRun.Status, s.LastError))
		}
		for _, p := range s.Pending {
			attention = append(attention, s.Table+": "+p)
		}
	}
	writeAligned(w, rows, map[int]bool{2: true, 3: true})
	if len(attention) == 0 {
		fmt.Fprintln(w, "\nnothing pending")
		return
	}
	fmt.Fprintln(w, "\npending:")
	for _, a := range attention {
		fmt.Fprintln(w, "  "+a)
	}
}

// brief is what the next run fetches, in a table's few words: "from 2025-11-01", "everything".
func brief(s pipeline.StreamStatus) string {
	if s.NextFrom != "" {
		return "from " + s.NextFrom
	}
	b, _, _ := strings.Cut(s.Next, " (")
	return b
}

// writeStreamDetail writes one stream's status as labelled lines.
func writeStreamDetail(w io.Writer, s pipeline.StreamStatus) {
	line := func(label, value string) {
		if value != "" {
			fmt.Fprintf(w, "%-12s %s\n", label+":", value)
		}
	}
	fmt.Fprintln(w, s.Table)
	line("kind", s.Kind)
	if r := s.LastRun; r != nil {
		line("last run", fmt.Sprintf("%s: %s", r.RunID, runText(r)))
	} else {
		line("last run", "none yet")
	}
	if r := s.LastOK; r != nil {
		line("last ok", fmt.Sprintf("%s: %s", r.RunID, runText(r)))
	}
	line("last error", s.LastError)
	line("rows", count(s.Rows)+" now, "+count(s.History)+" in the history")
	line("watermark", orDash(s.Watermark))
	line("next run", s.Next)
	for _, p := range s.Pending {
		line("pending", p)
	}
}

// runText is a stream's part in a run: "ok 2026-12-04 18:02 (3,001 rows, 3.6s)".
func runText(r *pipeline.RunStatus) string {
	if r == nil {
		return "—"
	}
	return fmt.Sprintf("%s %s (%s rows, %.1fs)", r.Status, r.Finished.UTC().Format("2006-01-02 15:04"), humanize.Comma(r.Rows), r.Seconds)
}

func count(n *int64) string {
	if n == nil {
		return "—"
	}
	return humanize.Comma(*n)
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func resetCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("reset", "reset --config FILE STREAM…",
		"Make the next run fetch these streams again from since, as the first run did. Nothing committed is touched:\n"+
			"the snapshots, manifests and the warehouse's history stay; the rows fetched again replace the current state\n"+
			"as any newer fetch does. The reset is one record in the lake (_state/resets/<id>.json: when, by whom, each\n"+
			"stream's state before), written at once while holding the lake's lock — it is refused (exit 75) while a run\n"+
			"holds it. A run takes the reset up when it commits the stream; until then extract status shows it pending.\n"+
			"Streams fetched whole every run have nothing to reset.", stderr)
	cfgPath := fs.String("config", "", "pipeline file (YAML) whose streams to reset")
	names, code := parseArgs(fs, args)
	if code >= 0 {
		return code
	}
	if *cfgPath == "" || len(names) == 0 {
		fmt.Fprintln(stderr, "extract reset: give --config FILE and the streams to reset (e.g. signicat_invoices)")
		return exitUsage
	}
	cfg, err := config.LoadForReading(*cfgPath)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	rec, err := pipeline.Reset(ctx, cfg, names, time.Now())
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	var tables []string
	for _, s := range rec.Streams {
		tables = append(tables, s.Table)
	}
	fmt.Fprintf(stdout, "reset %s recorded in %s/%s.json by %s:\n  %s\nthe next run fetches them again from since; nothing committed was changed\n",
		rec.ID, pipeline.ResetDir, rec.ID, rec.By, strings.Join(tables, "\n  "))
	return exitOK
}
