package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// errMaxRunTime ends a run that reached max_run_time.
var errMaxRunTime = errors.New("max_run_time reached")

// beforeCommit, when set (tests), runs just before the run commits: a test stalls the run there.
var beforeCommit func()

// runner is one run of the pipeline. Its steps, taken in order by runStreams, each leave here what the
// next ones read: open (the lake's lock, its lease watched), recover (what a killed run left),
// extract (every stream), commit (the manifest), load (the watermarks, the warehouse and, in the same
// generation of it, the SQL models: see loadWith) and publish (the Iceberg tables).
type runner struct {
	opts    Options
	cfg     *config.Config
	log     *slog.Logger
	streams []*sources.Stream

	st       lake.Store
	undo     []func() // what close undoes, last first: the lease's watch, the lock
	lockLost atomic.Bool
	errLost  error // why the run stops when it lost its lock

	rec    recovered
	resets map[string]string // the reset each stream's state takes up when it commits
	env    runEnv            // what the streams share
	w      *watch

	mu          sync.Mutex // guards what the streams add: manifest, reports, rejects
	manifest    *lake.Manifest
	reports     []lake.StreamReport // by stream, in the order of streams
	rejects     []typing.Reject
	interrupted error // the signal (or max_run_time) that stopped the run; nil when none did

	res *Result
}

// runStreams takes a run's steps in order. A step that fails before the commit ends the run with
// nothing committed; after it, the load's and publish's errors are reported with the committed run.
func runStreams(ctx context.Context, opts Options, streams []*sources.Stream) (*Result, error) {
	r := newRun(opts, streams)
	ctx, cancel := withMaxRunTime(ctx, r.cfg)
	defer cancel()
	ctx, err := r.open(ctx)
	defer r.close()
	if err != nil {
		return nil, err
	}
	if err := r.recover(ctx); err != nil {
		return nil, err
	}
	r.extract(ctx)
	if interruptedBy(ctx, &r.lockLost) {
		// Ctrl-C or SIGTERM: keep what completed. Streams that finished are committed and loaded below;
		// the interrupted ones are fetched by the next run. A second signal, or the scheduler's kill,
		// still stops the process; recovery then happens at the next start.
		r.interrupted = context.Cause(ctx)
		r.log.Warn("interrupted: committing the streams that completed", "run_id", r.manifest.RunID, "cause", r.interrupted)
		ctx = context.WithoutCancel(ctx)
	}
	if err := r.commit(ctx); err != nil {
		return nil, err
	}
	err = r.load(ctx)
	if perr := r.publish(ctx); perr != nil {
		err = errors.Join(err, perr)
	}
	return r.finish(ctx, err)
}

// newRun is a run of streams with opts, its defaults filled in.
func newRun(opts Options, streams []*sources.Stream) *runner {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = DefaultBatchRows
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = 30 * time.Second
	}
	return &runner{opts: opts, cfg: opts.Config, log: logger(opts.Logger), streams: streams}
}

// withMaxRunTime ends ctx at the config's max_run_time (none: ctx as it is).
func withMaxRunTime(ctx context.Context, cfg *config.Config) (context.Context, context.CancelFunc) {
	if cfg.MaxRunTime <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, time.Duration(cfg.MaxRunTime), fmt.Errorf("%w (%s): %w", errMaxRunTime, cfg.MaxRunTime, context.DeadlineExceeded))
}

// open takes the lake's lock and checks that the warehouse can be written. With a bucket's lease, the
// context it returns ends when the lease is lost.
func (r *runner) open(ctx context.Context) (context.Context, error) {
	st, unlock, lost, err := LockLake(ctx, r.cfg, "ledgerlake run")
	if err != nil {
		return ctx, err
	}
	r.st = st
	r.undo = append(r.undo, unlock)
	if err := Writable(filepath.Dir(r.cfg.Warehouse)); err != nil {
		return ctx, fmt.Errorf("%w: %w", ErrRefused, err)
	}
	// A bucket's lease lost (renewals failing for half its life, or taken over): stop and commit
	// nothing — not even the streams that completed, as an interruption would: the run that took the
	// lake over may already have removed this run's files as a dead run's. Its checkpoints stay for
	// the next start. (The commit claim refuses a second commit from the same state in any case.)
	r.errLost = fmt.Errorf("the lock on %s was lost (renewals failed or another run took it over)", st)
	if lost == nil {
		return ctx, nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	r.undo = append(r.undo, func() { cancel(nil) })
	go r.watchLease(ctx, lost, cancel)
	return ctx, nil
}

// watchLease ends the run's context when the lake's lease is lost, until the context ends.
func (r *runner) watchLease(ctx context.Context, lost <-chan struct{}, cancel context.CancelCauseFunc) {
	select {
	case <-lost:
		r.lockLost.Store(true)
		cancel(r.errLost)
	case <-ctx.Done():
	}
}

// close undoes what the steps set up, last first.
func (r *runner) close() {
	for i := len(r.undo) - 1; i >= 0; i-- {
		r.undo[i]()
	}
}

// recover repairs what a killed run left (recoverInterrupted), reads each stream's stored state and
// the resets it has not taken up, and starts this run: a new one, or the killed one resumed from its
// checkpoints.
func (r *runner) recover(ctx context.Context) error {
	rec, err := recoverInterrupted(ctx, r.cfg, r.st, r.log, r.opts.FullRefresh)
	if err != nil {
		return refused(err)
	}
	r.rec = rec
	r.resumeHosts()
	taken, err := r.readStates(ctx)
	if err != nil {
		return err
	}
	accept, err := acceptShrink(r.opts.AcceptShrink, r.streams)
	if err != nil {
		return err
	}
	if r.resets, err = applyResets(ctx, r.st, r.streams, taken, rec.run, rec.checkpoints, r.opts.FullRefresh); err != nil {
		return err
	}
	this := rec.run
	if this == nil {
		this = &resumable{RunID: lake.NewRunID(r.opts.Now()), StartedAt: r.opts.Now().UTC()}
		r.log.Info("run started", "run_id", this.RunID, "streams", len(r.streams))
	} else {
		this.Resumes++
		r.log.Warn("resuming a run that was killed before it committed", "run_id", this.RunID, "attempt", this.Resumes+1, "checkpointed_streams", len(rec.checkpoints))
	}
	if err := lake.WriteJSON(ctx, r.st, checkpointDir(this.RunID), "run", this); err != nil {
		return refused(err)
	}
	r.env = r.newEnv(this, accept)
	r.env.checkpoints = newCheckpointer(ctx, &r.env, r.log, checkpointGap)
	r.undo = append(r.undo, r.env.checkpoints.close)
	r.manifest = &lake.Manifest{RunID: this.RunID, StartedAt: this.StartedAt, ResumedFrom: this.From}
	r.reports = make([]lake.StreamReport, len(r.streams))
	return nil
}

// resumeHosts starts each host's concurrency limit where the last committed run's ended, so a nightly
// run is at the limit from its first requests and does not meet the 429s (and Retry-After pauses) of
// finding it again.
func (r *runner) resumeHosts() {
	if r.opts.Client == nil || len(r.rec.manifests) == 0 {
		return
	}
	for _, h := range r.rec.manifests[len(r.rec.manifests)-1].Hosts {
		r.opts.Client.Resume(h.Host, h.Final, h.Throttled > 0)
	}
}

// readStates loads each stream's stored state (none on a full refresh) and bounds its dates by the
// run's start plus a day; it returns the reset each state took up last.
func (r *runner) readStates(ctx context.Context) (map[string]string, error) {
	ceiling := r.opts.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
	taken := map[string]string{}
	for _, s := range r.streams {
		if s.State == nil {
			continue
		}
		if !r.opts.FullRefresh {
			var err error
			if taken[s.TableName()], err = readState(ctx, r.st, s); err != nil {
				return nil, err
			}
		}
		s.State.Ceiling = ceiling
	}
	return taken, nil
}

// newEnv is what the streams of this run share.
func (r *runner) newEnv(this *resumable, accept map[string]bool) runEnv {
	return runEnv{st: r.st, runID: this.RunID, resumes: this.Resumes, batchRows: r.opts.BatchRows,
		store: lake.NewEvidenceStore(r.st, this.RunID, append(slices.Clone(r.rec.manifests), listed(r.rec.checkpoints))...),
		every: r.opts.CheckpointEvery, cpu: semaphore.NewWeighted(int64(runtime.GOMAXPROCS(0))), log: r.log,
		limits: r.cfg.Limits.OrDefaults(), before: snapshotRows(r.rec.manifests), accept: accept, windowsBefore: windowRows(r.rec.manifests),
		held: heldUnits(r.rec.manifests), obs: r.opts.Observer}
}

// finish ends the run: an interruption is its error when nothing else failed, and the run's report is
// written whatever happened after the commit.
func (r *runner) finish(ctx context.Context, err error) (*Result, error) {
	res, m := r.res, r.res.Manifest
	if err == nil && r.interrupted != nil {
		err = fmt.Errorf("run %s interrupted; the streams that completed were kept: %w", m.RunID, r.interrupted)
	}
	res.Phases, res.FinishedAt = r.w.done(), r.opts.Now().UTC()
	// The report says how the run ended, an interruption during the load included: written regardless.
	if werr := writeReport(context.WithoutCancel(ctx), r.st, res, err); werr != nil && err == nil {
		err = fmt.Errorf("writing the run report: %w", werr)
	}
	if err != nil {
		return res, err
	}
	r.log.Info("run finished", "run_id", m.RunID, "status", m.Status, "seconds", round(res.FinishedAt.Sub(m.StartedAt).Seconds()))
	return res, nil
}
