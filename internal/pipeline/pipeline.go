// Package pipeline runs a configured extraction: every selected stream concurrently (bounded), each
// streaming API pages → typed Arrow batches → Parquet parts, then one manifest for the run and one
// warehouse transaction. A failing stream is reported and does not stop the others.
package pipeline

import (
	"context"
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

func round(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

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
