package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
)

func runCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("run", "run --config FILE [--streams a,b] [--full-refresh] [--max-run-time D] [--accept-shrink a,b]",
		"Extract every configured stream, write Parquet snapshots and a run manifest, load the warehouse.\n"+
			"Credentials come from the environment variables the config names (e.g. ${SIGNICAT_CLIENT_SECRET}).", stderr)
	cfgPath := fs.String("config", "", "pipeline file (YAML), e.g. pipelines/nightly.yaml")
	streams := fs.String("streams", "", "comma-separated streams to run (signicat_accounts or accounts); default all")
	fullRefresh := fs.Bool("full-refresh", false, "ignore stored watermarks and fetch everything again")
	pdf := fs.Bool("pdf", false, "also download each Signicat invoice's PDF into the lake, once per invoice (as sources.signicat.pdfs: true)")
	logFormat := fs.String("log-format", "text", "log format on stderr: text or json")
	maxRunTime := fs.Duration("max-run-time", 0, "end the run cleanly after this long (e.g. 3h), committing what completed; as max_run_time in the config")
	acceptShrink := fs.String("accept-shrink", "", "comma-separated snapshot streams whose new snapshot is kept although it shrank past max_shrink (the API really holds fewer rows)")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "extract run: --config is required")
		fs.Usage()
		return exitUsage
	}
	log, err := newLogger(*logFormat, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "extract run:", err)
		return exitUsage
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	if *pdf {
		if cfg.Sources.Signicat == nil {
			fmt.Fprintln(stderr, "extract run: --pdf needs a sources.signicat section in the config")
			return exitUsage
		}
		cfg.Sources.Signicat.PDFs = true
	}
	if *maxRunTime > 0 {
		cfg.MaxRunTime = config.Duration(*maxRunTime)
	}
	res, err := pipeline.Run(ctx, pipeline.Options{Config: cfg, Streams: splitList(*streams), FullRefresh: *fullRefresh, Logger: log, Progress: progressTo(stderr),
		AcceptShrink: splitList(*acceptShrink)})
	if res != nil {
		printReport(stdout, res)
		fmt.Fprintf(stdout, "report: %s\n", lake.ReportPath(cfg.OutputDir, res.Manifest.RunID))
	}
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	// The site is a view of what the run left; failing to write it changes nothing the run did.
	if cfg.DocsHTML != "" {
		if page, err := publishSite(ctx, cfg, cfg.DocsHTML); err != nil {
			fmt.Fprintf(stderr, "extract run: docs_html %s: %v (the run's data is loaded all the same)\n", cfg.DocsHTML, err)
		} else {
			fmt.Fprintf(stdout, "docs: %s\n", page)
		}
	}
	if !res.OK() {
		return exitFailed
	}
	return exitOK
}

// clearLine erases the live status line before each log record, so the two never share a line.
type clearLine struct{ w io.Writer }

func (c clearLine) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, "\r\033[K"); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// progressTo returns stderr when it is a terminal, so the live status line never reaches log files.
func progressTo(stderr io.Writer) io.Writer {
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return f
		}
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// printReport prints the per-stream summary of a run and the data tests.
func printReport(w io.Writer, res *pipeline.Result) {
	m := res.Manifest
	fmt.Fprintf(w, "run %s: %s in %.1fs\n\n", m.RunID, m.Status, m.FinishedAt.Sub(m.StartedAt).Seconds())
	rows := [][]string{{"table", "status", "rows", "rejects", "requests", "retries", "MB", "seconds"}}
	for _, s := range m.Streams {
		rows = append(rows, []string{s.Table, s.Status, fmt.Sprint(s.Rows), fmt.Sprint(s.Rejects), fmt.Sprint(s.Requests),
			fmt.Sprint(s.Retries), fmt.Sprintf("%.2f", float64(s.Bytes)/1e6), fmt.Sprintf("%.2f", s.Seconds)})
	}
	writeAligned(w, rows, map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true})
	for _, s := range m.Streams {
		if s.Error != "" {
			fmt.Fprintf(w, "\n%s failed: %s\n", s.Table, s.Error)
		}
		if s.FailedItems > 0 {
			fmt.Fprintf(w, "\n%s: %d items could not be fetched (each in _ledgerlake_rejects with its reason); the rest is committed and the next run asks for them again\n", s.Table, s.FailedItems)
		}
		for _, c := range s.SchemaChanges {
			fmt.Fprintf(w, "schema: %s\n", c)
		}
		for _, c := range s.Warnings {
			fmt.Fprintf(w, "warning: %s: %s\n", s.Table, c)
		}
	}
	for _, h := range m.Hosts {
		fmt.Fprintf(w, "\nhost %s: concurrency found %d (ceiling %d), at most %d in flight, %d answers 429 or 503\n", h.Host, h.Final, h.Ceiling, h.Peak, h.Throttled)
	}
	if ib := res.Iceberg; ib != nil {
		if ib.Error != "" {
			fmt.Fprintf(w, "\niceberg FAILED (%s): %s\n", ib.Catalog, ib.Error)
		} else {
			fmt.Fprintf(w, "\niceberg: %d snapshots of %d files registered in %s (%.1fs)\n", ib.Snapshots, ib.Files, ib.Catalog, ib.Seconds)
		}
	}
	if res.Models == nil {
		return
	}
	for _, name := range slices.Sorted(maps.Keys(res.Models.Failed)) {
		fmt.Fprintf(w, "\nmodel %s FAILED: %s\n", name, res.Models.Failed[name])
		for _, dep := range slices.Sorted(maps.Keys(res.Models.Skipped)) {
			if why := res.Models.Skipped[dep]; strings.Contains(why, name+", which failed") {
				fmt.Fprintf(w, "  skipped with it: %s\n", dep)
			}
		}
	}
	passed, failed, skipped := 0, 0, 0
	for _, t := range res.Models.Tests {
		switch {
		case t.Failed():
			failed++
			detail := t.Message
			if detail == "" {
				detail = t.Error
			}
			fmt.Fprintf(w, "\ndata test %s FAILED: %d rows%s\n", t.Name, t.Failures, map[bool]string{true: " (" + detail + ")"}[detail != ""])
			for _, s := range t.Sample {
				fmt.Fprintf(w, "  %s\n", s)
			}
		case t.Skipped != "":
			skipped++
		default:
			passed++
		}
	}
	fmt.Fprintf(w, "\nmodels: %d built, %d failed, %d skipped; data tests: %d passed, %d failed, %d skipped\n",
		len(res.Models.Built), len(res.Models.Failed), len(res.Models.Skipped), passed, failed, skipped)
}
