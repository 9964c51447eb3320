package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
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
	maxRunTime := fs.Duration("max-run-time", 0, "end the run cleanly after this long (e.g. 3h), committing what completed; as max_run_time in the config")
	acceptShrink := fs.String("accept-shrink", "", "comma-separated snapshot streams whose new snapshot is kept although it shrank past max_shrink (the API really holds fewer rows)")
	logs := addLogFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	if *cfgPath == "" {
		fmt.Fprintln(stderr, "extract run: --config is required")
		fs.Usage()
		return exitUsage
	}
	out, err := newRunOutput(logs, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "extract run:", err)
		return exitUsage
	}
	defer out.Stop()
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
	res, err := pipeline.Run(ctx, pipeline.Options{Config: cfg, Streams: splitList(*streams), FullRefresh: *fullRefresh, Logger: out.log, Observer: out.observer(),
		AcceptShrink: splitList(*acceptShrink)})
	out.Stop()
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
	m, p := res.Manifest, res.Phases
	fmt.Fprintf(w, "run %s: %s in %.1fs (streams %.1fs, load %.1fs, models %.1fs", m.RunID, m.Status, res.FinishedAt.Sub(m.StartedAt).Seconds(), p.Extract, p.Load, p.Models)
	if p.Iceberg > 0 {
		fmt.Fprintf(w, ", iceberg %.1fs", p.Iceberg)
	}
	fmt.Fprint(w, ")\n\n")
	rows := [][]string{{"table", "status", "rows", "rejects", "requests", "retries", "MB", "seconds"}}
	for _, s := range m.Streams {
		rows = append(rows, []string{s.Table, s.Status, fmt.Sprint(s.Rows), fmt.Sprint(s.Rejects), fmt.Sprint(s.Requests),
			fmt.Sprint(s.Retries), fmt.Sprintf("%.2f", float64(s.Bytes)/1e6), fmt.Sprintf("%.2f", s.Seconds)})
	}
	writeAligned(w, rows, map[int]bool{2: true, 3: true, 4: true, 5: true, 6: true, 7: true})
	var cut []string
	for _, s := range m.Streams {
		switch {
		case s.Status == "interrupted":
			cut = append(cut, s.Table)
		case s.Error != "":
			fmt.Fprintf(w, "\n%s %s: %s\n", s.Table, s.Status, s.Error)
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
	if len(cut) > 0 {
		fmt.Fprintf(w, "\ninterrupted before they finished (the next run fetches them): %s\n", strings.Join(cut, ", "))
	}
	for _, h := range m.Hosts {
		fmt.Fprintf(w, "\nhost %s: concurrency found %d (ceiling %d), %.1f in flight on average and at most %d, %d answers 429 or 503",
			h.Host, h.Final, h.Ceiling, h.MeanInFlight, h.Peak, h.Throttled)
		if h.PausedSeconds > 0 {
			fmt.Fprintf(w, "; closed %.1fs by its Retry-After answers", h.PausedSeconds)
		}
		fmt.Fprintln(w)
	}
	if ib := res.Iceberg; ib != nil {
		if ib.Error != "" {
			fmt.Fprintf(w, "\niceberg FAILED (%s): %s\n", ib.Catalog, ib.Error)
		} else {
			fmt.Fprintf(w, "\niceberg: %d snapshots of %d files registered in %s (%.1fs)\n", ib.Snapshots, ib.Files, ib.Catalog, ib.Seconds)
		}
	}
	if res.Models != nil {
		printModels(w, res.Models)
	}
}

// printModels prints what the SQL models and data tests did: failures with their cause and sample
// rows, then the counts.
func printModels(w io.Writer, rep *models.Report) {
	for _, name := range slices.Sorted(maps.Keys(rep.Failed)) {
		fmt.Fprintf(w, "\nmodel %s FAILED: %s\n", name, rep.Failed[name])
		for _, dep := range slices.Sorted(maps.Keys(rep.Skipped)) {
			if why := rep.Skipped[dep]; strings.Contains(why, name+", which failed") {
				fmt.Fprintf(w, "  skipped with it: %s\n", dep)
			}
		}
	}
	passed, failed, skipped := 0, 0, 0
	for _, t := range rep.Tests {
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
		len(rep.Built), len(rep.Failed), len(rep.Skipped), passed, failed, skipped)
}
