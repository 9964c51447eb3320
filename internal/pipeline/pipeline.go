// Package pipeline runs a configured extraction: every selected stream concurrently (bounded), each
// streaming API pages → typed Arrow batches → Parquet parts, then one manifest for the run and one
// warehouse transaction. A failing stream is reported and does not stop the others.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sinks/parquet"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/sources/gsapi"
	"github.com/ledgerlake/ledgerlake/internal/sources/signicat"
	"github.com/ledgerlake/ledgerlake/internal/typing"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// Options of one run.
type Options struct {
	Config  *config.Config
	Streams []string // table names (signicat_accounts) or stream names (accounts); empty = all
	// FullRefresh ignores stored watermarks: incremental streams fetch everything again.
	FullRefresh bool
	Logger      *slog.Logger
	// HTTP overrides client settings (tests shorten backoff); zero fields come from the config.
	HTTP httpclient.Options
	// Progress, when set, receives a live status line (carriage-return updated) while streams run; the
	// CLI sets it only when stderr is a terminal.
	Progress io.Writer
	// BatchRows is the Arrow batch size (default 16384): memory is bounded by it, not by stream size.
	BatchRows int
	Now       func() time.Time
}

// Result of a run.
type Result struct {
	Manifest *lake.Manifest
	Failed   []lake.StreamReport
	Models   *models.Report // SQL models built and data tests run after the load
}

// OK reports whether every stream succeeded and every data test passed.
func (r *Result) OK() bool {
	if len(r.Failed) > 0 {
		return false
	}
	if r.Models != nil {
		for _, t := range r.Models.Tests {
			if t.Failed() {
				return false
			}
		}
	}
	return true
}

// ErrBusy means another run holds the output directory.
var ErrBusy = errors.New("another ledgerlake run is using this output directory")

// Streams builds the configured streams, filtered by names.
func Streams(cfg *config.Config, client *httpclient.Client, names []string) ([]*sources.Stream, error) {
	var all []*sources.Stream
	if cfg.Sources.Signicat != nil {
		ss, err := signicat.New(cfg.Sources.Signicat, client).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, ss...)
	}
	if cfg.Sources.GSAPI != nil {
		gs, err := gsapi.New(cfg.Sources.GSAPI, client).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, gs...)
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []*sources.Stream
	for _, n := range names {
		var match []*sources.Stream
		for _, s := range all {
			if s.TableName() == n || s.Name == n {
				match = append(match, s)
			}
		}
		switch len(match) {
		case 0:
			valid := make([]string, len(all))
			for i, s := range all {
				valid[i] = s.TableName()
			}
			return nil, &config.Error{Msg: fmt.Sprintf("--streams: unknown stream %q (configured: %s)", n, strings.Join(valid, ", "))}
		case 1:
			out = append(out, match[0])
		default:
			return nil, &config.Error{Msg: fmt.Sprintf("--streams: %q is ambiguous; say %s or %s", n, match[0].TableName(), match[1].TableName())}
		}
	}
	return out, nil
}

// Run extracts, writes the manifest, and loads the warehouse.
func Run(ctx context.Context, opts Options) (*Result, error) {
	cfg := opts.Config
	hopts := opts.HTTP
	if hopts.PerHostConcurrency == 0 {
		hopts.PerHostConcurrency = cfg.PerHostConcurrency
	}
	if hopts.PerHostRate == 0 {
		hopts.PerHostRate = cfg.PerHostRate
	}
	streams, err := Streams(cfg, httpclient.New(hopts), opts.Streams)
	if err != nil {
		return nil, err
	}
	return RunStreams(ctx, opts, streams)
}

// RunStreams runs the given streams with opts' config (Run builds them from the config).
func RunStreams(ctx context.Context, opts Options, streams []*sources.Stream) (*Result, error) {
	cfg, log := opts.Config, opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = 16384
	}
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockDir(cfg.OutputDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := recoverInterrupted(ctx, cfg, log); err != nil {
		return nil, err
	}

	for _, s := range streams {
		if s.State != nil && !opts.FullRefresh {
			if _, err := lake.ReadJSON(cfg.OutputDir, lake.StateDir, s.TableName(), s.State); err != nil {
				return nil, err
			}
		}
	}
	if err := setHeld(cfg.OutputDir, streams); err != nil {
		return nil, err
	}
	store := lake.NewEvidenceStore(cfg.OutputDir)
	m := &lake.Manifest{RunID: lake.NewRunID(opts.Now()), StartedAt: opts.Now().UTC()}
	log.Info("run started", "run_id", m.RunID, "streams", len(streams))
	var (
		mu      sync.Mutex
		rejects []typing.Reject
	)
	reports := make([]lake.StreamReport, len(streams))
	var finished atomic.Int64
	stopProgress := func() {}
	if opts.Progress != nil {
		stopProgress = showProgress(opts.Progress, streams, &finished)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, cfg.Concurrency))
	for i, s := range streams {
		g.Go(func() error {
			rep, out, rej := runStream(gctx, cfg.OutputDir, m.RunID, opts.Now(), s, opts.BatchRows, store)
			if rep.Status == "ok" {
				log.Info("stream done", "table", rep.Table, "rows", rep.Rows, "requests", rep.Requests, "retries", rep.Retries, "seconds", round(rep.Seconds))
			} else {
				log.Error("stream failed", "table", rep.Table, "error", rep.Error)
			}
			for _, c := range rep.SchemaChanges {
				log.Warn("schema changed", "change", c)
			}
			finished.Add(1)
			mu.Lock()
			defer mu.Unlock()
			reports[i] = rep
			m.Files = append(m.Files, out.files...)
			m.Evidence = append(m.Evidence, out.evidence...)
			m.PDFs = append(m.PDFs, out.pdfs...)
			rejects = append(rejects, rej...)
			return nil
		})
	}
	_ = g.Wait()
	stopProgress()
	interrupted := ctx.Err()
	if interrupted != nil {
		// Ctrl-C or SIGTERM: keep what completed. Streams that finished are committed and loaded below;
		// the interrupted ones failed and are fetched again by the next run. A second signal, or the
		// scheduler's kill, still stops the process; recovery then happens at the next start.
		log.Warn("interrupted: committing the streams that completed", "run_id", m.RunID)
		ctx = context.WithoutCancel(ctx)
		for i, s := range streams {
			if reports[i].Table == "" {
				reports[i] = lake.StreamReport{Table: s.TableName(), Status: "failed", Error: s.TableName() + ": not started before the interruption"}
			}
		}
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	byEndpoint := func(es []lake.Evidence) func(i, j int) bool {
		return func(i, j int) bool {
			if es[i].Table != es[j].Table {
				return es[i].Table < es[j].Table
			}
			return es[i].Endpoint < es[j].Endpoint
		}
	}
	sort.Slice(m.Evidence, byEndpoint(m.Evidence))
	sort.Slice(m.PDFs, byEndpoint(m.PDFs))
	m.Streams = reports
	m.FinishedAt = opts.Now().UTC()
	m.Status = "ok"
	res := &Result{Manifest: m}
	for _, r := range reports {
		if r.Status != "ok" {
			m.Status = "partial"
			res.Failed = append(res.Failed, r)
		}
	}
	if len(rejects) > 0 {
		// Written before the manifest, so a run loaded after a crash still records its rejects.
		if err := lake.WriteJSON(cfg.OutputDir, lake.RejectsDir, m.RunID, rejects); err != nil {
			return nil, fmt.Errorf("writing rejects: %w", err)
		}
	}
	// Evidence files were placed without a per-file fsync; one syncfs makes them durable before the
	// manifest that lists them.
	if len(m.Evidence)+len(m.PDFs) > 0 {
		if err := store.Sync(); err != nil {
			return nil, fmt.Errorf("syncing evidence files: %w", err)
		}
	}
	if err := lake.WriteManifest(cfg.OutputDir, m); err != nil {
		return nil, fmt.Errorf("writing manifest: %w", err)
	}
	err = commitAndLoad(ctx, cfg, streams, reports, res, rejects)
	if err == nil && interrupted != nil {
		err = fmt.Errorf("run %s interrupted; completed streams were kept: %w", m.RunID, interrupted)
	}
	if werr := writeReport(cfg.OutputDir, res, err); werr != nil && err == nil {
		err = fmt.Errorf("writing the run report: %w", werr)
	}
	if err != nil {
		return res, err
	}
	log.Info("run finished", "run_id", m.RunID, "status", m.Status, "seconds", round(m.FinishedAt.Sub(m.StartedAt).Seconds()))
	return res, nil
}

// commitAndLoad stores the watermarks of the streams that succeeded and loads the committed run.
func commitAndLoad(ctx context.Context, cfg *config.Config, streams []*sources.Stream, reports []lake.StreamReport, res *Result, rejects []typing.Reject) error {
	// Watermarks move only after the manifest commits the data they cover; a crash in between means the
	// next run fetches that stretch again, and the current-state tables de-duplicate by key.
	for i, s := range streams {
		if s.State != nil && reports[i].Status == "ok" {
			s.State.Watermark = s.State.Next()
			if err := lake.WriteJSON(cfg.OutputDir, lake.StateDir, s.TableName(), s.State); err != nil {
				return fmt.Errorf("storing the watermark of %s: %w", s.TableName(), err)
			}
		}
	}
	var err error
	res.Models, err = Load(ctx, cfg, res.Manifest, rejects)
	return err
}

// Report is a run's outcome as written beside its manifest (<run id>.report.json): what monitoring
// reads after a nightly run without parsing logs.
type Report struct {
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"` // ok | partial (a stream failed) | failed (load, models or a data test) | interrupted
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Seconds    float64   `json:"seconds"`
	Error      string    `json:"error,omitempty"`
	Totals     struct {
		Rows     int64 `json:"rows"`
		Requests int64 `json:"requests"`
		Retries  int64 `json:"retries"`
		Bytes    int64 `json:"bytes"`
		Failed   int   `json:"failed_streams"`
	} `json:"totals"`
	Streams []lake.StreamReport `json:"streams"`
	Models  *models.Report      `json:"models,omitempty"`
}

func writeReport(root string, res *Result, runErr error) error {
	m := res.Manifest
	r := Report{RunID: m.RunID, Status: m.Status, StartedAt: m.StartedAt, FinishedAt: time.Now().UTC(), Streams: m.Streams, Models: res.Models}
	r.Seconds = round(r.FinishedAt.Sub(r.StartedAt).Seconds())
	for _, s := range m.Streams {
		r.Totals.Rows += s.Rows
		r.Totals.Requests += s.Requests
		r.Totals.Retries += s.Retries
		r.Totals.Bytes += s.Bytes
		if s.Status != "ok" {
			r.Totals.Failed++
		}
	}
	if runErr != nil {
		r.Error = runErr.Error()
	}
	switch {
	case errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded):
		r.Status = "interrupted"
	case runErr != nil || !res.OK() && r.Status == "ok":
		r.Status = "failed"
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(lake.ReportPath(root, m.RunID), append(b, '\n'))
}

// setHeld tells the streams that fetch something once per key (invoice PDFs) which keys the
// committed runs already hold.
func setHeld(root string, streams []*sources.Stream) error {
	var ms []*lake.Manifest
	for _, s := range streams {
		if s.Name != "invoice_pdfs" {
			continue
		}
		if ms == nil {
			var err error
			if ms, err = lake.ReadManifests(root); err != nil {
				return err
			}
		}
		held := map[string]bool{}
		for _, m := range ms {
			for _, p := range m.PDFs {
				if p.Table == s.TableName() {
					held[p.Key] = true
				}
			}
		}
		s.Held = func(key string) bool { return held[key] }
	}
	return nil
}

// showProgress redraws one status line twice a second until the returned stop is called.
func showProgress(w io.Writer, streams []*sources.Stream, finished *atomic.Int64) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	go func() {
		defer wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			var req, retries, bytes int64
			for _, s := range streams {
				req += s.Stats.Requests.Load()
				retries += s.Stats.Retries.Load()
				bytes += s.Stats.Bytes.Load()
			}
			fmt.Fprintf(w, "\r%d/%d streams done · %d requests · %d retries · %.1f MB · %s ", finished.Load(), len(streams),
				req, retries, float64(bytes)/1e6, time.Since(start).Round(time.Second))
			select {
			case <-done:
				fmt.Fprint(w, "\r\033[K")
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// recoverInterrupted repairs what a killed run left (it holds the output lock, so nothing else is
// writing): unfinished temporary files and committed part files that no manifest lists are removed,
// and runs whose manifest was committed but whose load never finished are loaded now, oldest first —
// their watermarks have already moved, so skipping them would lose their rows.
func recoverInterrupted(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	if n, err := durable.RemoveTemps(cfg.OutputDir); err != nil {
		return err
	} else if n > 0 {
		log.Warn("removed unfinished files of an interrupted run", "files", n)
	}
	ms, err := lake.ReadManifests(cfg.OutputDir)
	if err != nil {
		return err
	}
	n, err := lake.RemoveOrphans(cfg.OutputDir, ms)
	if err != nil {
		return err
	}
	if n > 0 {
		log.Warn("removed snapshot files of an interrupted run that never committed", "files", n)
	}
	if len(ms) == 0 {
		return nil
	}
	// A missing warehouse is created and rebuilt from every run in the lake.
	if err := os.MkdirAll(filepath.Dir(cfg.Warehouse), 0o755); err != nil {
		return err
	}
	wh, err := duckdb.Open(cfg.Warehouse)
	if err != nil {
		return err
	}
	var pending []*lake.Manifest
	for _, m := range ms {
		loaded, err := wh.Loaded(ctx, m.RunID)
		if err != nil {
			wh.Close()
			return err
		}
		if !loaded {
			pending = append(pending, m)
		}
	}
	wh.Close()
	for _, m := range pending {
		var rejects []typing.Reject
		if _, err := lake.ReadJSON(cfg.OutputDir, lake.RejectsDir, m.RunID, &rejects); err != nil {
			return err
		}
		log.Warn("loading a run that was interrupted before its load finished", "run_id", m.RunID)
		if _, err := Load(ctx, cfg, m, rejects); err != nil {
			return err
		}
	}
	return nil
}

// Load loads a written run into the warehouse, then builds the SQL models and runs the data tests.
// A failing model or test leaves the loaded data in place.
func Load(ctx context.Context, cfg *config.Config, m *lake.Manifest, rejects []typing.Reject) (*models.Report, error) {
	if dir := filepath.Dir(cfg.Warehouse); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	wh, err := duckdb.Open(cfg.Warehouse)
	if err != nil {
		return nil, err
	}
	defer wh.Close()
	if err := wh.LoadRun(ctx, cfg.OutputDir, m, rejects); err != nil {
		return nil, fmt.Errorf("loading run %s into %s: %w", m.RunID, cfg.Warehouse, err)
	}
	var tables []lake.TableInfo
	for _, s := range m.Streams {
		if s.Status == "ok" {
			tables = append(tables, s.Tables...)
		}
	}
	rep, err := models.Run(ctx, wh.DB, m.RunID, tables)
	if err != nil {
		return rep, fmt.Errorf("run %s is loaded, but the SQL models failed: %w", m.RunID, err)
	}
	return rep, nil
}

// tableSink is one table a stream writes: its own, or a child table of an array of objects.
type tableSink struct {
	info    lake.TableInfo
	maps    []string // API paths kept as maps, relative to this table's records
	fresh   bool     // an inferred table seen for the first time: discovering its columns is not news
	sch     *typing.Schema
	conv    *typing.Converter
	w       *parquet.StreamWriter
	pending []typing.Record
	pendEv  []string // with evidence: the response sha256 of each pending record
}

// streamRun moves one stream from the API to Parquet.
type streamRun struct {
	root, runID string
	extracted   time.Time
	batchRows   int
	s           *sources.Stream
	sinks       map[string]*tableSink
	order       []string
	rejects     []typing.Reject
	changes     []typing.Change
}

// sink returns the sink of table, starting its schema from the declared one and the persisted one.
func (r *streamRun) sink(table string, key []string, declared *schemas.Table, mapPaths []string) (*tableSink, error) {
	if ts := r.sinks[table]; ts != nil {
		return ts, nil
	}
	var persisted typing.Schema
	found, err := lake.ReadJSON(r.root, lake.SchemaDir, table, &persisted)
	if err != nil {
		return nil, err
	}
	prev := &persisted
	if !found {
		prev = nil
	}
	sch, err := typing.NewSchema(table, key, declared, prev, mapPaths)
	if err != nil {
		return nil, err
	}
	sch.Evidence = r.s.Evidence && table == r.s.TableName()
	ts := &tableSink{info: lake.TableInfo{Name: table, Key: key, Incremental: r.s.Mode == sources.Incremental}, sch: sch, maps: mapPaths, fresh: !found && declared == nil}
	ts.w = parquet.NewStreamWriter(r.root, table, r.runID, sch.Arrow())
	r.sinks[table] = ts
	r.order = append(r.order, table)
	return ts, nil
}

func (r *streamRun) add(ts *tableSink, rec typing.Record, evidence string) error {
	ts.pending = append(ts.pending, rec)
	if ts.sch.Evidence {
		ts.pendEv = append(ts.pendEv, evidence)
	}
	if len(ts.pending) >= r.batchRows {
		return r.flush(ts)
	}
	return nil
}

// flush widens the schema to fit the pending records, converts them, writes them, and hands their
// child arrays to the child tables.
func (r *streamRun) flush(ts *tableSink) error {
	if len(ts.pending) == 0 {
		return nil
	}
	recs, evs := ts.pending, ts.pendEv
	ts.pending, ts.pendEv = nil, nil
	if changed := ts.sch.Observe(recs); changed || ts.conv == nil {
		if ts.conv != nil {
			ts.conv.Release()
		}
		ts.conv = typing.NewConverter(memory.DefaultAllocator, ts.sch, r.runID, r.extracted)
		if err := ts.w.SetSchema(ts.conv.Schema()); err != nil {
			return err
		}
	}
	parts := map[string][]int{}
	var order []string
	for i, rec := range recs {
		for path, children := range ts.sch.ChildRecords(rec) {
			var childMaps []string
			for _, m := range ts.maps {
				if rest, ok := strings.CutPrefix(m, path+"."); ok {
					childMaps = append(childMaps, rest)
				}
			}
			child, err := r.sink(ts.sch.Child(path), ts.sch.ChildKey(), nil, childMaps)
			if err != nil {
				return err
			}
			for _, c := range children {
				if err := r.add(child, c, ""); err != nil {
					return err
				}
			}
		}
		p := r.partition(rec)
		if _, ok := parts[p]; !ok {
			order = append(order, p)
		}
		parts[p] = append(parts[p], i)
	}
	for _, p := range order {
		for _, i := range parts[p] {
			if evs != nil {
				ts.conv.SetEvidence(evs[i])
			}
			ts.conv.Append(recs[i])
		}
		batch := ts.conv.Flush()
		ts.info.Rows += batch.NumRows()
		err := ts.w.Write(p, batch)
		batch.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *streamRun) partition(rec typing.Record) string {
	if r.s.Partition != nil {
		return r.s.Partition(rec)
	}
	return "run_date=" + r.extracted.Format("2006-01-02")
}

// finish flushes every table (children last, as flushing a parent feeds them), writes an empty file for
// a table without rows so it still exists with its declared columns, and persists the schemas.
func (r *streamRun) finish() ([]parquet.FileInfo, error) {
	for i := 0; i < len(r.order); i++ {
		if err := r.flush(r.sinks[r.order[i]]); err != nil {
			return nil, err
		}
	}
	var files []parquet.FileInfo
	for _, name := range r.order {
		ts := r.sinks[name]
		if ts.info.Rows == 0 {
			if ts.conv == nil {
				ts.conv = typing.NewConverter(memory.DefaultAllocator, ts.sch, r.runID, r.extracted)
				if err := ts.w.SetSchema(ts.conv.Schema()); err != nil {
					return nil, err
				}
			}
			empty := ts.conv.Flush()
			err := ts.w.WriteEmpty(r.partition(nil), empty)
			empty.Release()
			if err != nil {
				return nil, err
			}
		}
		fs, err := ts.w.Close()
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
		if ts.conv != nil {
			r.rejects = append(r.rejects, ts.conv.Rejects...)
		}
		for _, c := range ts.sch.TakeChanges(r.runID) {
			// A table's first run discovers all its columns; only widenings are worth a report then.
			if !ts.fresh || (c.From != "" && c.From != "NULL") {
				r.changes = append(r.changes, c)
			}
		}
		if err := lake.WriteJSON(r.root, lake.SchemaDir, name, ts.sch); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func (r *streamRun) release() {
	for _, ts := range r.sinks {
		ts.w.Abort()
		if ts.conv != nil {
			ts.conv.Release()
		}
	}
}

// streamOutput is what a successful stream adds to the run's manifest.
type streamOutput struct {
	files    []parquet.FileInfo
	evidence []lake.Evidence
	pdfs     []lake.Evidence
}

// runStream moves one stream from the API to Parquet. On failure its files are discarded: the next run
// fetches the stream again, and nothing half-done is ever loaded.
func runStream(ctx context.Context, root, runID string, extractedAt time.Time, s *sources.Stream, batchRows int, store *lake.EvidenceStore) (lake.StreamReport, streamOutput, []typing.Reject) {
	start := time.Now()
	rep := lake.StreamReport{Table: s.TableName(), Status: "ok"}
	r := &streamRun{root: root, runID: runID, extracted: extractedAt.UTC(), batchRows: batchRows, s: s, sinks: map[string]*tableSink{}}
	defer r.release()
	var out streamOutput
	fail := func(err error) (lake.StreamReport, streamOutput, []typing.Reject) {
		for _, ts := range r.sinks {
			ts.w.Abort()
			files, _ := ts.w.Close()
			for _, f := range files {
				_ = os.Remove(filepath.Join(root, filepath.FromSlash(f.Path)))
			}
		}
		rep.Status, rep.Error = "failed", fmt.Sprintf("%s: %v", s.TableName(), err)
		rep.Seconds = time.Since(start).Seconds()
		fillStats(&rep, s)
		return rep, streamOutput{}, nil
	}
	top, err := r.sink(s.TableName(), s.Key, s.Declared, s.MapPaths)
	if err != nil {
		return fail(err)
	}
	for page, err := range s.Pages(ctx) {
		if err != nil {
			return fail(err)
		}
		var sum string
		if raw := page.Raw; raw != nil && (s.Evidence || raw.PDF) {
			put := store.PutJSON
			if raw.PDF {
				put = store.PutPDF
			}
			e, err := put(raw.Body)
			if err != nil {
				return fail(err)
			}
			e.Table, e.Endpoint, e.Key, sum = s.TableName(), raw.Endpoint, raw.Key, e.SHA256
			if raw.PDF {
				out.pdfs = append(out.pdfs, e)
			} else {
				out.evidence = append(out.evidence, e)
			}
		}
		for _, rec := range page.Records {
			if err := r.add(top, rec, sum); err != nil {
				return fail(err)
			}
		}
	}
	out.files, err = r.finish()
	if err != nil {
		return fail(err)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Rows = top.info.Rows
	rep.Rejects = len(r.rejects)
	for _, c := range r.changes {
		rep.SchemaChanges = append(rep.SchemaChanges, c.String())
	}
	for _, name := range r.order {
		rep.Tables = append(rep.Tables, r.sinks[name].info)
	}
	fillStats(&rep, s)
	return rep, out, r.rejects
}

func fillStats(rep *lake.StreamReport, s *sources.Stream) {
	rep.Requests = s.Stats.Requests.Load()
	rep.Retries = s.Stats.Retries.Load()
	rep.Bytes = s.Stats.Bytes.Load()
}

func round(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// lockDir takes an exclusive, non-blocking lock on the output directory for the run's duration; the
// kernel releases it if the process dies, so a killed run never leaves a stale lock.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%s); wait for it to finish", ErrBusy, dir)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
