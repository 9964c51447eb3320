// Package pipeline runs a configured extraction: every selected stream concurrently (bounded), each
// streaming API pages → typed Arrow batches → Parquet parts, then one manifest for the run and one
// warehouse transaction. A failing stream is reported and does not stop the others.
package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sinks/iceberg"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/sources/gsapi"
	"github.com/ledgerlake/ledgerlake/internal/sources/signicat"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// DefaultBatchRows is how many records a table gathers before they are converted and written. Up to
// eight streams each hold a batch of decoded records (maps) at once: a smaller batch converted faster
// and held less memory, with the same files and data (figures: bench/README.md, "Figures behind tuned
// constants").
const DefaultBatchRows = 1024

// Options of one run.
type Options struct {
	Config  *config.Config
	Streams []string // table names (signicat_accounts) or stream names (accounts); empty = all
	// FullRefresh ignores stored watermarks: incremental streams fetch everything again.
	FullRefresh bool
	Logger      *slog.Logger
	// HTTP overrides client settings (tests shorten backoff); zero fields come from the config.
	HTTP httpclient.Options
	// Observer, when set, hears what the run does, for a live view: the CLI sets it only when stderr is
	// a terminal.
	Observer Observer
	// BatchRows is the Arrow batch size (default DefaultBatchRows): memory is bounded by it, not by
	// stream size.
	BatchRows int
	// CheckpointEvery is how often streams with Checkpoints commit their progress (default 30 s): a
	// killed run loses at most this much of their fetching.
	CheckpointEvery time.Duration
	Now             func() time.Time
	// AcceptShrink names the snapshot streams (table or stream names) whose new snapshot is committed
	// even though it shrank past max_shrink.
	AcceptShrink []string
	// Client is the HTTP client the streams were built with (Run sets it): the run reports how each of
	// its hosts' concurrency went.
	Client *httpclient.Client
}

// Result of a run.
type Result struct {
	Manifest *lake.Manifest
	Failed   []lake.StreamReport
	Models   *models.Report // SQL models built and data tests run after the load
	// Iceberg is what the run registered in the Iceberg catalog (nil when iceberg.enabled is false).
	Iceberg *IcebergReport
	// Phases are what each part of the run took; FinishedAt is when all of it, Iceberg included, ended.
	Phases     Phases
	FinishedAt time.Time
}

// IcebergReport is a run's registration of the lake's files as Iceberg tables.
type IcebergReport struct {
	Catalog   string  `json:"catalog"`
	Snapshots int     `json:"snapshots"` // one per table and run registered (earlier runs caught up included)
	Files     int     `json:"files"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
}

// OK reports whether every stream succeeded with every item and every data test passed.
func (r *Result) OK() bool {
	for _, s := range r.Manifest.Streams {
		if s.FailedItems > 0 {
			return false
		}
	}
	return len(r.Failed) == 0 && (r.Models == nil || r.Models.OK())
}

// MemoryLimit is the Go heap's soft limit a run sets unless GOMEMLIMIT is given: the garbage
// collector works harder near it instead of letting the heap double its live size, which kept peak
// RSS growing with the dataset (make bench). A lower limit lowers the extraction's peak but costs
// conversion time steeply (figures: bench/README.md, "Figures behind tuned constants").
const MemoryLimit = 384 << 20

// checkpointGap is the least time between two commits of checkpoints (each a syncfs): streams that
// finish close together share one, and a crash loses at most this much of their progress plus the
// commit in flight. A syncfs per finished stream made the bench's conversion measurably slower
// (bench/README.md, "Figures behind tuned constants").
const checkpointGap = 200 * time.Millisecond

// GCPercent is the Go collector's growth target a run sets unless GOGC is given: the heap may grow by
// 75% of what is live before a collection, not 100%. The extraction's peak is the Go heap while eight
// streams run: at 75 the run's peak is the DuckDB load instead, at no cost in time, where a lower
// target slowed extraction and conversion (figures: bench/README.md, "Figures behind tuned constants").
const GCPercent = 75

// SetMemoryLimit applies MemoryLimit and GCPercent unless the environment sets GOMEMLIMIT or GOGC;
// commands that run pipelines call it once at start.
func SetMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}

// ErrBusy means another run holds the output directory.
var ErrBusy = lake.ErrBusy

// Streams builds the configured streams, filtered by names; now is the sources' clock (nil: time.Now),
// which ends their date windows and dates their watermarks.
func Streams(cfg *config.Config, client *httpclient.Client, names []string, now func() time.Time) ([]*sources.Stream, error) {
	var all []*sources.Stream
	if now == nil {
		now = time.Now
	}
	if cfg.Sources.Signicat != nil {
		ss, err := signicat.New(cfg.Sources.Signicat, cfg.Limits.OrDefaults(), client, now).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, ss...)
	}
	if cfg.Sources.GSAPI != nil {
		gs, err := gsapi.New(cfg.Sources.GSAPI, cfg.Limits.OrDefaults(), client, now).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, gs...)
	}
	if len(names) == 0 {
		return all, nil
	}
	return named(all, names, "--streams")
}

// named resolves names — table names (signicat_accounts) or stream names (accounts) — to streams of
// all; flag names the option in errors.
func named(all []*sources.Stream, names []string, flag string) ([]*sources.Stream, error) {
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
			return nil, &config.Error{Msg: fmt.Sprintf("%s: unknown stream %q (configured: %s)", flag, n, strings.Join(valid, ", "))}
		case 1:
			out = append(out, match[0])
		default:
			return nil, &config.Error{Msg: fmt.Sprintf("%s: %q is ambiguous; say %s or %s", flag, n, match[0].TableName(), match[1].TableName())}
		}
	}
	return out, nil
}

// Run extracts, writes the manifest, and loads the warehouse.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.Logger = logger(opts.Logger)
	if opts.HTTP.Logger == nil {
		opts.HTTP.Logger = opts.Logger
	}
	opts.Client = Client(opts.Config, opts.HTTP)
	streams, err := Streams(opts.Config, opts.Client, opts.Streams, opts.Now)
	if err != nil {
		return nil, redact.Error(err)
	}
	return RunStreams(ctx, opts, streams)
}

// logger is log (or one that discards) behind the redacting handler: no record carries a credential.
func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(redact.Handler(log.Handler()))
}

// Client is the HTTP client a run of cfg uses: the config's per-host limits, waits and caps, and
// spooling into the output directory, where hopts leaves them unset.
func Client(cfg *config.Config, hopts httpclient.Options) *httpclient.Client {
	if hopts.PerHostConcurrency == 0 {
		hopts.PerHostConcurrency = cfg.PerHostConcurrency
	}
	if hopts.PerHostRate == 0 {
		hopts.PerHostRate = cfg.PerHostRate
	}
	limits := cfg.Limits.OrDefaults()
	if hopts.StallTimeout == 0 {
		hopts.StallTimeout = time.Duration(limits.StallTimeout)
	}
	if hopts.MaxRetryAfter == 0 {
		hopts.MaxRetryAfter = time.Duration(limits.MaxRetryAfter)
	}
	if hopts.MaxBodyBytes == 0 {
		hopts.MaxBodyBytes = int64(limits.MaxPageBytes)
	}
	if hopts.SpoolDir == "" {
		// Beside the data, on the disk sized for it (the system's temp dir may be small or in memory).
		hopts.SpoolDir = SpoolDir(cfg)
	}
	return httpclient.New(hopts)
}

// RunStreams runs the given streams with opts' config (Run builds them from the config). No error it
// returns, and nothing it writes or logs, carries a known credential (package redact).
func RunStreams(ctx context.Context, opts Options, streams []*sources.Stream) (*Result, error) {
	res, err := runStreams(ctx, opts, streams)
	return res, redact.Error(err)
}

// beforeCommit, when set (tests), runs just before the run commits: a test stalls the run there.
var beforeCommit func()

// errMaxRunTime ends a run that reached max_run_time.
var errMaxRunTime = errors.New("max_run_time reached")

func runStreams(ctx context.Context, opts Options, streams []*sources.Stream) (*Result, error) {
	cfg, log := opts.Config, logger(opts.Logger)
	if cfg.MaxRunTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, time.Duration(cfg.MaxRunTime), fmt.Errorf("%w (%s): %w", errMaxRunTime, cfg.MaxRunTime, context.DeadlineExceeded))
		defer cancel()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = DefaultBatchRows
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 30 * time.Second
	}
	st, unlock, lost, err := LockLake(ctx, cfg, "ledgerlake run")
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := Writable(filepath.Dir(cfg.Warehouse)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// A bucket's lease lost (renewals failing for half its life, or taken over): stop and commit
	// nothing — not even the streams that completed, as an interruption would: the run that took the
	// lake over may already have removed this run's files as a dead run's. Its checkpoints stay for
	// the next start. (The commit claim refuses a second commit from the same state in any case.)
	var lockLost atomic.Bool
	errLost := fmt.Errorf("the lock on %s was lost (renewals failed or another run took it over)", st)
	if lost != nil {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		go func() {
			select {
			case <-lost:
				lockLost.Store(true)
				cancel(errLost)
			case <-ctx.Done():
			}
		}()
	}
	rec, err := recoverInterrupted(ctx, cfg, st, log, opts.FullRefresh)
	if err != nil {
		return nil, refused(err)
	}
	run, cks := rec.run, rec.checkpoints

	ceiling := opts.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	taken := map[string]string{} // the reset each stream's state took up last
	for _, s := range streams {
		if s.State != nil && !opts.FullRefresh {
			if taken[s.TableName()], err = readState(st, s); err != nil {
				return nil, err
			}
		}
		if s.State != nil {
			s.State.Ceiling = ceiling
		}
	}
	accept, err := acceptShrink(opts.AcceptShrink, streams)
	if err != nil {
		return nil, err
	}
	resets, err := applyResets(st, streams, taken, run, cks, opts.FullRefresh)
	if err != nil {
		return nil, err
	}
	if run == nil {
		run = &resumable{RunID: lake.NewRunID(opts.Now()), StartedAt: opts.Now().UTC()}
		log.Info("run started", "run_id", run.RunID, "streams", len(streams))
	} else {
		run.Resumes++
		log.Warn("resuming a run that was killed before it committed", "run_id", run.RunID, "attempt", run.Resumes+1, "checkpointed_streams", len(cks))
	}
	if err := lake.WriteJSON(st, checkpointDir(run.RunID), "run", run); err != nil {
		return nil, refused(err)
	}
	env := runEnv{st: st, runID: run.RunID, resumes: run.Resumes, batchRows: opts.BatchRows,
		store: lake.NewEvidenceStore(st, append(slices.Clone(rec.manifests), listed(cks))...), every: opts.CheckpointEvery, cpu: semaphore.NewWeighted(int64(runtime.GOMAXPROCS(0))), log: log,
		limits: cfg.Limits.OrDefaults(), before: snapshotRows(rec.manifests), accept: accept, held: heldUnits(rec.manifests), obs: opts.Observer}
	env.checkpoints = newCheckpointer(&env, log, checkpointGap)
	defer env.checkpoints.close()
	m := &lake.Manifest{RunID: run.RunID, StartedAt: run.StartedAt, ResumedFrom: run.From}
	var (
		mu      sync.Mutex
		rejects []typing.Reject
	)
	reports := make([]lake.StreamReport, len(streams))
	w := &watch{obs: opts.Observer, last: lastPhases(st, rec.manifests)}
	w.enter("extract")
	if w.obs != nil {
		w.obs.Start(Plan{Streams: plan(rec.manifests, streams), Last: w.last})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, cfg.Concurrency))
	// Fan-out streams first: they make most of the requests, and started last they would run alone at
	// the end with the host limit half used (measured by make bench).
	order := make([]int, len(streams))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return streams[order[a]].FanOut && !streams[order[b]].FanOut })
	for _, i := range order {
		s := streams[i]
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // not started before the interruption (reported below)
			}
			if w.obs != nil {
				w.obs.StreamStarted(s)
			}
			rep, out, rej := resumeOrRun(gctx, env, opts.Now(), s, cks[s.TableName()])
			if rep.Status != "ok" && interruptedBy(ctx, &lockLost) {
				cutShort(&rep, context.Cause(ctx))
			}
			switch rep.Status {
			case "ok":
				log.Info("stream done", "table", rep.Table, "rows", rep.Rows, "requests", rep.Requests, "retries", rep.Retries, "seconds", round(rep.Seconds))
			case statusInterrupted:
				log.Warn("stream interrupted", "table", rep.Table, "requests", rep.Requests)
			default:
				log.Error("stream failed", "table", rep.Table, "error", rep.Error)
			}
			for _, c := range rep.SchemaChanges {
				log.Warn("schema changed", "change", c)
			}
			if w.obs != nil {
				w.obs.StreamDone(s, rep)
			}
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
	env.checkpoints.close()
	var interrupted error
	if interruptedBy(ctx, &lockLost) {
		interrupted = context.Cause(ctx)
		// Ctrl-C or SIGTERM: keep what completed. Streams that finished are committed and loaded below;
		// the interrupted ones are fetched by the next run. A second signal, or the scheduler's kill,
		// still stops the process; recovery then happens at the next start.
		log.Warn("interrupted: committing the streams that completed", "run_id", m.RunID, "cause", interrupted)
		ctx = context.WithoutCancel(ctx)
		for i, s := range streams {
			if reports[i].Table == "" {
				reports[i] = lake.StreamReport{Table: s.TableName(), Status: statusInterrupted, Error: "not started before the interruption; the next run fetches it"}
			}
		}
	}
	w.enter(PhaseLoad)
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
	m.Hosts = hostReports(opts.Client)
	m.FinishedAt = opts.Now().UTC()
	m.Status = "ok"
	res := &Result{Manifest: m}
	for _, r := range reports {
		if r.Status != "ok" {
			res.Failed = append(res.Failed, r)
		}
		if r.Status != "ok" || r.FailedItems > 0 {
			m.Status = "partial"
		}
	}
	for i := range rejects {
		rejects[i].Key, rejects[i].Raw = redact.String(rejects[i].Key), redact.String(rejects[i].Raw)
	}
	if interrupted != nil {
		m.Status = statusInterrupted
	}
	if len(rejects) > 0 {
		// Written before the manifest, so a run loaded after a crash still records its rejects.
		if err := lake.WriteJSON(st, lake.RejectsDir, m.RunID, rejects); err != nil {
			return nil, fmt.Errorf("writing rejects: %w", err)
		}
	}
	// Snapshot and evidence files were published without a per-file fsync; one syncfs makes them
	// durable before the manifest that lists them.
	if err := env.store.Sync(); err != nil {
		return nil, fmt.Errorf("syncing the run's files: %w", err)
	}
	if lockLost.Load() {
		return nil, fmt.Errorf("run %s committed nothing: %w; the next start resumes it from its checkpoints", m.RunID, errLost)
	}
	if beforeCommit != nil {
		beforeCommit()
	}
	if err := lake.Commit(st, m, rec.head); err != nil {
		return nil, fmt.Errorf("committing run %s: %w", m.RunID, err)
	}
	// Committed: the checkpoints have served (a crash before this removal is cleaned up at next start).
	if err := st.RemoveAll(checkpointDir(m.RunID)); err != nil {
		return nil, err
	}
	err = commitAndLoad(ctx, cfg, st, streams, reports, res, rejects, resets, w)
	if cfg.Iceberg.On() {
		w.enter(PhaseIceberg)
		res.Iceberg = registerIceberg(ctx, cfg, append(rec.manifests, m), log)
		if res.Iceberg.Error != "" {
			err = errors.Join(err, fmt.Errorf("run %s is committed and loaded, but %s", m.RunID, res.Iceberg.Error))
		}
	}
	if err == nil && interrupted != nil {
		err = fmt.Errorf("run %s interrupted; the streams that completed were kept: %w", m.RunID, interrupted)
	}
	res.Phases, res.FinishedAt = w.done(), opts.Now().UTC()
	if werr := writeReport(st, res, err); werr != nil && err == nil {
		err = fmt.Errorf("writing the run report: %w", werr)
	}
	if err != nil {
		return res, err
	}
	log.Info("run finished", "run_id", m.RunID, "status", m.Status, "seconds", round(res.FinishedAt.Sub(m.StartedAt).Seconds()))
	return res, nil
}

// commitAndLoad stores the watermarks of the streams that succeeded and loads the committed run.
func commitAndLoad(ctx context.Context, cfg *config.Config, st lake.Store, streams []*sources.Stream, reports []lake.StreamReport, res *Result, rejects []typing.Reject, resets map[string]string, w *watch) error {
	// Watermarks move only after the manifest commits the data they cover; a crash in between means the
	// next run fetches that stretch again, and the current-state tables de-duplicate by key.
	for i, s := range streams {
		if s.State != nil && reports[i].Status == "ok" {
			s.State.Commit()
			if err := lake.WriteJSON(st, lake.StateDir, s.TableName(), stateFile{State: s.State, Reset: resets[s.TableName()]}); err != nil {
				return fmt.Errorf("storing the watermark of %s: %w", s.TableName(), err)
			}
		}
	}
	// The load does not read the manifest's evidence and PDF lists, the largest thing the run still
	// holds (an entry per response body kept): they are let go while DuckDB has its memory and read
	// back from the committed manifest afterwards.
	m := res.Manifest
	lists := len(m.Evidence) + len(m.PDFs)
	m.Evidence, m.PDFs = nil, nil
	// Extraction's garbage goes back to the OS before DuckDB allocates its own memory, so the two do
	// not add up in the run's peak RSS. Two collections: sync.Pool keeps what it holds through one
	// (encoding/json's pool holds the buffer the manifest was encoded in).
	runtime.GC()
	debug.FreeOSMemory()
	var err error
	res.Models, err = load(ctx, cfg, st, m, rejects, w)
	if lists > 0 {
		var back lake.Manifest
		if _, rerr := lake.ReadJSON(st, lake.ManifestDir, m.RunID, &back); rerr != nil {
			return errors.Join(err, fmt.Errorf("reading back the manifest's evidence: %w", rerr))
		}
		m.Evidence, m.PDFs = back.Evidence, back.PDFs
	}
	return err
}

// Report is a run's outcome as written beside its manifest (<run id>.report.json): what monitoring
// reads after a nightly run without parsing logs.
type Report struct {
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"` // ok | partial (a stream failed) | failed (load, models or a data test) | interrupted
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Seconds    float64   `json:"seconds"` // the whole run: streams, load, models and Iceberg
	Phases     Phases    `json:"phases"`
	Error      string    `json:"error,omitempty"`
	Totals     struct {
		Rows     int64 `json:"rows"`
		Requests int64 `json:"requests"`
		Retries  int64 `json:"retries"`
		Bytes    int64 `json:"bytes"`
		Failed   int   `json:"failed_streams"`
	} `json:"totals"`
	Streams []lake.StreamReport `json:"streams"`
	// Hosts is how each API host's concurrency limit went: found within per_host_concurrency, with
	// the 429s and 503s it met.
	Hosts   []lake.HostReport `json:"hosts,omitempty"`
	Models  *models.Report    `json:"models,omitempty"`
	Iceberg *IcebergReport    `json:"iceberg,omitempty"`
}

func writeReport(st lake.Store, res *Result, runErr error) error {
	m := res.Manifest
	r := Report{RunID: m.RunID, Status: m.Status, StartedAt: m.StartedAt, FinishedAt: res.FinishedAt, Phases: res.Phases, Streams: m.Streams, Hosts: m.Hosts, Models: res.Models, Iceberg: res.Iceberg}
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
	case m.Status == statusInterrupted || errors.Is(runErr, context.Canceled) || errors.Is(runErr, context.DeadlineExceeded):
		r.Status = statusInterrupted
	case runErr != nil || !res.OK() && r.Status == "ok":
		r.Status = "failed"
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return st.WriteFile(lake.ReportKey(m.RunID), append(b, '\n'))
}

// hostReports is how each host's concurrency went in the run (none without a client).
func hostReports(c *httpclient.Client) []lake.HostReport {
	if c == nil {
		return nil
	}
	var out []lake.HostReport
	for _, h := range c.Hosts() {
		r := lake.HostReport{Host: h.Host, Ceiling: h.Ceiling, Peak: h.Peak, Final: h.Final, Throttled: h.Throttled}
		for _, s := range h.Samples {
			r.Samples = append(r.Samples, lake.HostSample(s))
		}
		out = append(out, r)
	}
	return out
}

// snapshotRows is each table's rows in the newest committed run whose stream succeeded.
func snapshotRows(ms []*lake.Manifest) map[string]int64 {
	rows := map[string]int64{}
	for _, m := range ms {
		for _, s := range m.Streams {
			if s.Status == "ok" {
				rows[s.Table] = s.Rows
			}
		}
	}
	return rows
}

// acceptShrink resolves --accept-shrink's names to the tables it lets shrink.
func acceptShrink(names []string, streams []*sources.Stream) (map[string]bool, error) {
	ss, err := named(streams, names, "--accept-shrink")
	accept := map[string]bool{}
	for _, s := range ss {
		accept[s.TableName()] = true
	}
	return accept, err
}

// heldUnits are, by table, the units whose files a committed run already holds: a stream skips them
// (an invoice's PDF is fetched once).
func heldUnits(ms []*lake.Manifest) map[string]map[string]bool {
	held := map[string]map[string]bool{}
	for _, m := range ms {
		for _, p := range m.PDFs {
			if held[p.Table] == nil {
				held[p.Table] = map[string]bool{}
			}
			held[p.Table][p.Key] = true
		}
	}
	return held
}

// resumeOrRun takes a stream an earlier attempt of the run completed as it is, or runs it (from its
// last checkpoint when it has one and supports them).
func resumeOrRun(ctx context.Context, env runEnv, now time.Time, s *sources.Stream, ck *streamCheckpoint) (lake.StreamReport, streamOutput, []typing.Reject) {
	if ck != nil && ck.Complete {
		if s.State != nil {
			s.State.Advance(ck.Next)
			s.State.RestoreMemo(ck.Memo)
		}
		rep := ck.Report
		rep.Resumed = true
		return rep, streamOutput{files: ck.Files, evidence: ck.Evidence, pdfs: ck.PDFs}, ck.Rejects
	}
	if ck != nil && !s.Checkpoints {
		ck = nil
	}
	env.extracted = now.UTC()
	return runStream(ctx, &env, s, ck)
}

// recoverInterrupted repairs what a killed run left (it holds the output lock, so nothing else is
// writing): unfinished temporary files and the files of runs that never committed are removed, and
// runs whose manifest was committed but whose load never finished are loaded now, oldest first —
// their watermarks have already moved, so skipping them would lose their rows. A lock taken over from
// a stalled run first fences that run's commit, and its checkpoints are resumed under a new run id.
func recoverInterrupted(ctx context.Context, cfg *config.Config, st lake.Store, log *slog.Logger, fullRefresh bool) (recovered, error) {
	var rec recovered
	if n, err := st.RemoveTemps(); err != nil {
		return rec, err
	} else if n > 0 {
		log.Warn("removed unfinished files of an interrupted run", "files", n)
	}
	// The head is this run's base: it holds the lock, so nothing commits after it is read (a stalled
	// run whose lock it took over cannot: the fence takes the number it would claim).
	l, err := lake.ReadLog(st)
	if err != nil {
		return rec, err
	}
	var fence string
	if l, fence, err = lake.Fence(st, l, "a run started "+time.Now().UTC().Format(time.RFC3339)); err != nil {
		return rec, err
	}
	if fence != "" {
		log.Warn("took the lake over from a run whose lock expired: fenced its commit", "commit", l.Head, "fence", fence)
	}
	rec.head, rec.manifests = l.Head, l.Manifests
	if rec.run, rec.checkpoints, err = openCheckpoints(st, l.Committed, fullRefresh); err != nil {
		return rec, fmt.Errorf("reading the checkpoints of an interrupted run: %w", err)
	}
	if fence != "" && rec.run != nil {
		fenced := rec.run.RunID
		if rec.run, err = adopt(st, rec.run, rec.checkpoints, lake.NewRunID(time.Now())); err != nil {
			return rec, fmt.Errorf("resuming the checkpoints of run %s: %w", fenced, err)
		}
	}
	n, err := lake.RemoveOrphans(st, l, listed(rec.checkpoints))
	switch {
	case errors.Is(err, lake.ErrEdited):
		log.Error("the lake's history was edited; files of interrupted runs were left in place", "error", err)
	case err != nil:
		return rec, err
	case n > 0:
		log.Warn("removed files of runs that never committed", "files", n)
	}
	return rec, loadPending(ctx, cfg, st, log, l.Manifests)
}

// recovered is what recoverInterrupted found: the committed runs, and a killed run to resume (nil
// when none) with its streams' checkpoints.
type recovered struct {
	head        int // the newest commit number: this run commits as head+1
	manifests   []*lake.Manifest
	run         *resumable
	checkpoints map[string]*streamCheckpoint
}

// loadPending loads the committed runs the warehouse lacks. The warehouse is derived from the lake: a
// missing one is rebuilt from every run, and so is one a kill left unreadable (set aside, not deleted).
func loadPending(ctx context.Context, cfg *config.Config, st lake.Store, log *slog.Logger, ms []*lake.Manifest) error {
	if len(ms) == 0 {
		return nil
	}
	loaded, err := loadedRuns(ctx, cfg.Warehouse, log)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if loaded[m.RunID] {
			continue
		}
		var rejects []typing.Reject
		if _, err := lake.ReadJSON(st, lake.RejectsDir, m.RunID, &rejects); err != nil {
			return err
		}
		log.Warn("loading a committed run the warehouse lacks (interrupted before its load finished, or a warehouse rebuilt from the lake)", "run_id", m.RunID)
		if _, err := Load(ctx, cfg, st, m, rejects); err != nil {
			return err
		}
	}
	return nil
}

// loadedRuns lists the runs the warehouse holds (none when there is no warehouse). A warehouse DuckDB
// cannot read — not a database (a kill while DuckDB created it), truncated, or with a corrupt block —
// is set aside and counts as none, so it is rebuilt from the lake: failing instead would fail every
// run from then on. A warehouse another process holds locked is not damaged and fails the run.
func loadedRuns(ctx context.Context, path string, log *slog.Logger) (map[string]bool, error) {
	loaded := map[string]bool{}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return loaded, nil
	}
	wh, err := duckdb.OpenReadOnly(path)
	var runs []string
	if err == nil {
		runs, err = wh.LoadedRuns(ctx)
		wh.Close()
	}
	if duckdb.IsDamaged(err) {
		aside, serr := duckdb.SetAside(path)
		if serr != nil {
			return nil, errors.Join(err, serr)
		}
		log.Warn("the warehouse file is damaged; set it aside, rebuilding the warehouse from the lake", "set_aside", aside, "error", err)
		return loaded, nil
	}
	for _, r := range runs {
		loaded[r] = true
	}
	return loaded, err
}

// Load loads a written run into the warehouse, then builds the SQL models and runs the data tests.
// A failing model or test leaves the loaded data in place. With the default memory limit, a load that
// runs out of memory is tried once more with a larger one, from the table that ran out (each table is
// loaded in a transaction of its own; see duckdb.LoadRun).
func Load(ctx context.Context, cfg *config.Config, st lake.Store, m *lake.Manifest, rejects []typing.Reject) (*models.Report, error) {
	return load(ctx, cfg, st, m, rejects, nil)
}

// load is Load, timing its phases in w (nil: untimed).
func load(ctx context.Context, cfg *config.Config, st lake.Store, m *lake.Manifest, rejects []typing.Reject, w *watch) (*models.Report, error) {
	retry := ""
	if cfg.WarehouseMemoryLimit == config.DefaultWarehouseMemoryLimit {
		retry = config.RetryWarehouseMemoryLimit
	}
	return loadRetrying(ctx, cfg, st, retry, m, rejects, w)
}

// loadRetrying loads with the configured memory limit and, if that runs out and retry is set, once more
// with retry.
func loadRetrying(ctx context.Context, cfg *config.Config, st lake.Store, retry string, m *lake.Manifest, rejects []typing.Reject, w *watch) (*models.Report, error) {
	rep, err := loadWith(ctx, cfg, st, cfg.WarehouseMemoryLimit, m, rejects, w)
	if err != nil && retry != "" && duckdb.IsOutOfMemory(err) {
		w.enter(PhaseLoad)
		rep, err = loadWith(ctx, cfg, st, retry, m, rejects, w)
	}
	return rep, err
}

// loadWith loads m and builds the models in a new generation of the warehouse (duckdb.Update), which
// replaces the current one once the run is loaded: queries during the load answer from the last one.
func loadWith(ctx context.Context, cfg *config.Config, st lake.Store, limit string, m *lake.Manifest, rejects []typing.Reject, w *watch) (*models.Report, error) {
	var rep *models.Report
	err := duckdb.Update(cfg.Warehouse, limit, func(wh *duckdb.Warehouse) (bool, error) {
		if err := wh.LoadRun(ctx, st, SpoolDir(cfg), m, rejects); err != nil {
			hint := ""
			if duckdb.IsOutOfMemory(err) {
				hint = fmt.Sprintf(" (DuckDB's memory is limited to %s: raise warehouse_memory_limit; the run is in the lake and loads at the next start)", limit)
			}
			return false, fmt.Errorf("loading run %s into %s: %w%s", m.RunID, cfg.Warehouse, err, hint)
		}
		w.enter(PhaseModels)
		var err error
		rep, err = buildModels(ctx, wh, cfg, limit, m)
		return true, err // the loaded data stays whatever the models do
	})
	return rep, err
}

// buildModels builds the SQL models and runs the data tests over the run m just loaded into wh.
func buildModels(ctx context.Context, wh *duckdb.Warehouse, cfg *config.Config, limit string, m *lake.Manifest) (*models.Report, error) {
	var tables []lake.TableInfo
	for _, s := range m.Streams {
		if s.Status == "ok" {
			tables = append(tables, s.Tables...)
		}
	}
	if err := modelThreads(ctx, wh, limit); err != nil {
		return nil, fmt.Errorf("run %s is loaded, but the SQL models could not start: %w", m.RunID, err)
	}
	rep, err := models.Run(ctx, wh.DB, m.RunID, tables, cfg.Fields())
	if err != nil {
		return rep, fmt.Errorf("run %s is loaded, but the SQL models failed: %w", m.RunID, err)
	}
	if keyWarnings(m, rep) {
		// The run's row was written with the load; its streams gain the key warnings the tests found.
		streams, _ := json.Marshal(m.Streams)
		if _, err := wh.DB.ExecContext(ctx, "UPDATE "+duckdb.RunsTable+" SET streams = ? WHERE run_id = ?", string(streams), m.RunID); err != nil {
			return rep, fmt.Errorf("run %s: recording its key warnings: %w", m.RunID, err)
		}
	}
	return rep, nil
}

// modelThreads gives the models one thread under the default memory limit: DuckDB keeps each
// thread's join and aggregation state outside memory_limit, and one thread built the models with a
// lower peak RSS and no slower (figures: bench/README.md, "Figures behind tuned constants"). A limit
// set in the config leaves DuckDB its threads.
func modelThreads(ctx context.Context, wh *duckdb.Warehouse, limit string) error {
	if limit != config.DefaultWarehouseMemoryLimit {
		return nil
	}
	_, err := wh.DB.ExecContext(ctx, "SET threads = 1")
	return err
}

// keyWarnings adds each failed key test's message to the warnings of the stream whose table it tested,
// and reports whether it added any.
func keyWarnings(m *lake.Manifest, rep *models.Report) bool {
	added := false
	for _, t := range rep.Tests {
		if t.Table == "" || !t.Failed() {
			continue
		}
		for i := range m.Streams {
			s := &m.Streams[i]
			for _, tb := range s.Tables {
				if tb.Name != t.Table {
					continue
				}
				msg := t.Message
				if tb.Name != s.Table {
					msg = tb.Name + ": " + msg
				}
				if !slices.Contains(s.Warnings, msg) {
					s.Warnings = append(s.Warnings, msg)
					added = true
				}
			}
		}
	}
	return added
}

func round(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// registerIceberg registers the committed runs' files the Iceberg catalog lacks: this run's, and
// any earlier run's whose registration failed or came before the catalog.
func registerIceberg(ctx context.Context, cfg *config.Config, ms []*lake.Manifest, log *slog.Logger) *IcebergReport {
	began := time.Now()
	uri, err := icebergCatalog(ctx, cfg)
	rep := &IcebergReport{Catalog: iceberg.Redact(uri)}
	var cat *iceberg.Catalog
	if err == nil {
		cat, err = iceberg.Open(ctx, uri, cfg.IcebergNamespace(), cfg.OutputDir)
	}
	if err == nil {
		var r iceberg.Registered
		r, err = cat.Register(ctx, ms)
		rep.Snapshots, rep.Files = r.Snapshots, r.Files
		cat.Close()
	}
	rep.Seconds = round(time.Since(began).Seconds())
	if err != nil {
		rep.Error = err.Error()
		log.Error("iceberg registration failed (the lake and warehouse are complete; the next run catches up)", "error", err)
	} else {
		log.Info("iceberg tables registered", "catalog", rep.Catalog, "snapshots", rep.Snapshots, "files", rep.Files, "seconds", rep.Seconds)
	}
	return rep
}

// icebergCatalog is cfg's Iceberg catalog. By default that is the one named for the warehouse,
// unless it does not exist yet and the previous default, iceberg.db beside the warehouse, holds this
// lake's tables and no other lake's: then that one stays in use, so an existing lake keeps its tables
// and their history. One that holds another lake's tables too is left as it is.
func icebergCatalog(ctx context.Context, cfg *config.Config) (string, error) {
	uri, legacy := cfg.IcebergCatalog(), cfg.LegacyIcebergCatalog()
	if legacy == "" {
		return uri, nil
	}
	if _, err := os.Stat(uri); err == nil {
		return uri, nil
	}
	owns, err := iceberg.Owns(ctx, legacy, cfg.IcebergNamespace(), cfg.OutputDir)
	if owns {
		return legacy, err
	}
	return uri, err
}

// OpenLake opens cfg's output_dir: a local directory, or an object-store URL.
func OpenLake(ctx context.Context, cfg *config.Config) (lake.Store, error) {
	return lake.OpenStore(ctx, cfg.OutputDir, SpoolDir(cfg))
}

// SpoolDir is the local directory for a run's temporary files: responses spooled to disk, and with a
// lake in a bucket, files staged for upload and downloaded for the load. A local lake's own directory,
// else a hidden directory beside the warehouse: both on the disk sized for the data, where the
// system's temp dir may be small or in memory.
func SpoolDir(cfg *config.Config) string {
	if !lake.IsURL(cfg.OutputDir) {
		return cfg.OutputDir
	}
	return filepath.Join(filepath.Dir(cfg.Warehouse), ".ledgerlake-spool")
}
