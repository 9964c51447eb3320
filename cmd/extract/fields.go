package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/models/suggest"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// probeStreams are what a probe fetches: the streams whose fields the models read, and the two
// documented lists their evidence is checked against.
var probeStreams = []string{"datasync_invoices", "datasync_invoice_lines", "invoice_journal_summary", "organizations", "products"}

// Probe bounds: enough invoices for the evidence to mean something, from recent months only.
const (
	probeInvoices = 200
	probeMonths   = 12
)

func fieldsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("fields", "fields --config FILE [--suggest [--probe] [--write] [--db FILE]]",
		"Without --suggest: list where each field the SQL models read comes from in this pipeline (sources.gsapi.fields\n"+
			"over the defaults of sql/fieldmap/fields.yaml).\n\n"+
			"--suggest proposes a complete sources.gsapi.fields block for your tenant from its own data: the warehouse of a\n"+
			"first run (extract run --config FILE; models that fail are fine), or with --probe a fetch of recent months of\n"+
			"the streams the models read into a temporary directory that is deleted after (the lake, the warehouse and the\n"+
			"watermarks are not touched). Each field comes with its evidence: sums that reconcile across invoices, lines and\n"+
			"the summary journal, links every line follows, values in the windows the API chose them by, values found in\n"+
			"organizations/list and products/list. Fields the evidence does not single out are marked UNCERTAIN; fields\n"+
			"nothing fits are left out with the reason (and the exit code is 1). The YAML goes to stdout, ready to paste\n"+
			"under sources.gsapi; --write merges it into FILE instead, keeping its comments and order.", stderr)
	cfgPath := fs.String("config", "", "pipeline file (YAML)")
	doSuggest := fs.Bool("suggest", false, "propose the fields from the tenant's data, with the evidence for each")
	probe := fs.Bool("probe", false, "with --suggest: fetch recent months into a temporary warehouse instead of reading the pipeline's")
	write := fs.Bool("write", false, "with --suggest: merge the proposal into the pipeline file (comments and order kept)")
	db := fs.String("db", "", "with --suggest: read this warehouse instead of the pipeline's")
	logs := addLogFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	switch {
	case *cfgPath == "":
		fmt.Fprintln(stderr, "extract fields: --config is required")
		fs.Usage()
		return exitUsage
	case !*doSuggest && (*probe || *write || *db != ""):
		fmt.Fprintln(stderr, "extract fields: --probe, --write and --db go with --suggest")
		return exitUsage
	case *probe && *db != "":
		fmt.Fprintln(stderr, "extract fields: --probe fetches its own warehouse; leave out --db")
		return exitUsage
	}
	load := config.LoadForReading // listing and suggesting from a warehouse read what runs left
	if *probe {
		load = config.Load // the probe calls the API
	}
	cfg, err := load(*cfgPath)
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	if cfg.Sources.GSAPI == nil {
		fmt.Fprintln(stderr, "extract fields: the fields the models read are GSAPI's, and this pipeline has no sources.gsapi")
		return exitUsage
	}
	if !*doSuggest {
		listFields(stdout, cfg.Fields())
		return exitOK
	}
	out, err := newRunOutput(logs, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "extract fields:", err)
		return exitUsage
	}
	defer out.Stop()
	log := out.log
	start := time.Now()
	warehouse := *db
	if warehouse == "" {
		warehouse = cfg.Warehouse
	}
	if *probe {
		dir, err := probeRun(ctx, cfg, log, stderr)
		if dir != "" {
			defer os.RemoveAll(dir)
		}
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		warehouse = filepath.Join(dir, "warehouse.duckdb")
	}
	s, err := suggestFrom(ctx, warehouse)
	if err != nil {
		fmt.Fprintln(stderr, "extract fields:", err)
		return exitFailed
	}
	fmt.Fprintf(stderr, "extract fields: %s, in %.1fs\n", s.Summary(), time.Since(start).Seconds())
	if *write {
		changed, err := writeFields(*cfgPath, s)
		if err != nil {
			return exitCodeFor(err, stderr)
		}
		fmt.Fprintf(stdout, "wrote the proposed fields into %s (sources.gsapi.fields); run  extract run --config %[1]s\n", *cfgPath)
		for _, c := range changed {
			fmt.Fprintf(stdout, "  changed %s\n", c)
		}
		for _, f := range s.Fields {
			key := strings.TrimPrefix(f.Table, "gsapi_") + "." + f.Field
			switch {
			case !f.Found():
				fmt.Fprintf(stdout, "  NOT FOUND %s (left as it was): %s\n", key, f.Missing)
			case !f.Certain:
				fmt.Fprintf(stdout, "  UNCERTAIN %s ← %s: %s\n", key, f.Entry, f.Doubt)
			}
		}
	} else {
		fmt.Fprint(stdout, s.YAML())
	}
	if _, _, missing := s.Counts(); missing > 0 {
		return exitFailed
	}
	return exitOK
}

// suggestFrom proposes the fields from the warehouse at path, opened read-only.
func suggestFrom(ctx context.Context, path string) (*suggest.Suggestion, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("warehouse %w: run extract run --config FILE once (models that fail are fine), or use --probe", err)
	}
	wh, err := duckdb.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	defer wh.Close()
	return suggest.Suggest(ctx, wh.DB)
}

// listFields prints where each model field comes from: the config key, the entry, and whether it is
// the default.
func listFields(w io.Writer, m fieldmap.Mapping) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "field\tfrom")
	for _, r := range fieldmap.Order {
		line := fieldmap.ConfigKey(r.Table, r.Field) + "\t" + m[r.Table][r.Field].String()
		if m.IsDefault(r.Table, r.Field) {
			line += "\t(the default)" // a cell ended by a tab is padded: only when there is one after it
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
}

// writeFields merges the suggestion's fields into the pipeline file at path, marking the uncertain
// ones, and replaces the file whole (a temporary file renamed over it). It returns the entries the file
// had set otherwise, as "stream.field: old → new".
func writeFields(path string, s *suggest.Suggestion) ([]string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, &config.Error{File: path, Msg: err.Error()}
	}
	var had struct {
		Sources struct {
			GSAPI struct {
				Fields map[string]map[string]fieldmap.Entry `yaml:"fields"`
			} `yaml:"gsapi"`
		} `yaml:"sources"`
	}
	_ = yaml.Unmarshal(raw, &had) // the file loaded as a config: a problem here shows in MergeFields
	var changed []string
	for _, f := range s.Fields {
		stream := strings.TrimPrefix(f.Table, "gsapi_")
		if old, ok := had.Sources.GSAPI.Fields[stream][f.Field]; ok && f.Found() && old != f.Entry {
			changed = append(changed, fmt.Sprintf("%s.%s: %s → %s", stream, f.Field, old, f.Entry))
		}
	}
	notes := map[string]map[string]string{}
	for _, f := range s.Fields {
		if f.Found() && !f.Certain {
			stream := strings.TrimPrefix(f.Table, "gsapi_")
			if notes[stream] == nil {
				notes[stream] = map[string]string{}
			}
			notes[stream][f.Field] = "# uncertain: " + f.Doubt
		}
	}
	out, err := config.MergeFields(raw, "gsapi", s.Mapping(), notes)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			ce.File = path
		}
		return nil, err
	}
	return changed, replaceFile(path, out)
}

// replaceFile writes data over path whole, through a temporary file renamed over it, keeping its mode.
func replaceFile(path string, data []byte) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(st.Mode().Perm())
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// probeRun fetches the probe's streams for recent months into a new temporary directory (returned,
// for the caller to remove) through the pipeline a run uses, so the columns are named and typed as a
// run names them. Only GSAPI is read; the pipeline's lake, warehouse and watermarks are not touched.
func probeRun(ctx context.Context, cfg *config.Config, log *slog.Logger, stderr io.Writer) (string, error) {
	dir, err := os.MkdirTemp("", "ledgerlake-probe-")
	if err != nil {
		return "", err
	}
	pc, gs := *cfg, *cfg.Sources.GSAPI
	off := false
	gs.Streams = nil
	pc.Sources = config.Sources{GSAPI: &gs}
	pc.OutputDir, pc.Warehouse, pc.DocsHTML = filepath.Join(dir, "lake"), filepath.Join(dir, "warehouse.duckdb"), ""
	pc.Iceberg.Enabled = &off
	from, until, n, err := probeWindow(ctx, &pc)
	if err != nil {
		return dir, err
	}
	if n == 0 {
		return dir, fmt.Errorf("the probe found no datasync invoices since %s: nothing to read the fields from", gs.Since.Format(time.DateOnly))
	}
	fmt.Fprintf(stderr, "extract fields: probing %s to %s (%d invoices) into a temporary directory\n", from.Format("2006-01"), until.Format("2006-01"), n)
	gs.Since = config.Date{Time: from}
	res, err := pipeline.Run(ctx, pipeline.Options{Config: &pc, Streams: probeStreams, Logger: log, Now: func() time.Time { return until }})
	if err != nil {
		return dir, err
	}
	for _, f := range res.Failed {
		if f.Table != "gsapi_organizations" && f.Table != "gsapi_products" {
			return dir, fmt.Errorf("the probe could not fetch %s: %s", f.Table, f.Error)
		}
	}
	return dir, nil
}

// probeWindow walks back from this month, one datasync Invoices window at a time, until the months
// read hold probeInvoices invoices, probeMonths months held some, or since is reached: the probe's
// months (from the first's start to a day in the last) and the invoices in them.
func probeWindow(ctx context.Context, cfg *config.Config) (from, until time.Time, n int, err error) {
	now := time.Now().UTC()
	month := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	client := pipeline.Client(cfg, httpclient.Options{})
	since := cfg.Sources.GSAPI.Since.Time
	withData := 0
	for ; !month.AddDate(0, 1, 0).Before(since) && n < probeInvoices && withData < probeMonths; month = month.AddDate(0, -1, 0) {
		last := month.AddDate(0, 1, -1).Add(12 * time.Hour) // a day in the month: its windows end there
		gs := *cfg.Sources.GSAPI
		gs.Since = config.Date{Time: month}
		one := *cfg
		one.Sources = config.Sources{GSAPI: &gs}
		streams, err := pipeline.Streams(&one, client, []string{"datasync_invoices"}, func() time.Time { return last })
		if err != nil {
			return from, until, n, err
		}
		k, err := records(ctx, streams[0])
		if err != nil {
			return from, until, n, err
		}
		if k > 0 {
			if withData == 0 {
				until = last
			}
			from, n, withData = month, n+k, withData+1
		}
	}
	return from, until, n, nil
}

// records counts the records a stream's pages hold.
func records(ctx context.Context, s *sources.Stream) (int, error) {
	n := 0
	for p, err := range s.Pages(ctx, sources.Resume{}) {
		if err != nil {
			return n, err
		}
		if _, err := p.Each(func(sources.Record) error { n++; return nil }); err != nil && !errors.Is(err, jsonrec.ErrNull) {
			return n, err
		}
	}
	return n, nil
}
