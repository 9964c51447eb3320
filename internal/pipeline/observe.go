package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gocloud.dev/gcerrors"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// Observer hears what a run does, for a live view (the CLI shows one on a terminal). Its methods are
// called from the run's goroutines, concurrently, and must not block.
type Observer interface {
	// Start names the streams about to run, with what the last runs took.
	Start(plan Plan)
	// StreamStarted: s began fetching; its Stats count its requests as they are made.
	StreamStarted(s *sources.Stream)
	// Page: s handed over a page (a window of a windowed stream, a unit of a checkpointed one).
	Page(s *sources.Stream, p sources.Page)
	// StreamDone: s finished (rep.Status: ok, failed or interrupted).
	StreamDone(s *sources.Stream, rep lake.StreamReport)
	// Phase: the run moved on to phase (PhaseLoad, PhaseModels, PhaseIceberg); expect is what it took
	// in the last run (0 when unknown).
	Phase(phase string, expect time.Duration)
}

// The phases of a run after its streams.
const (
	PhaseLoad    = "load"    // commit, watermarks, the warehouse load
	PhaseModels  = "models"  // the SQL models and data tests
	PhaseIceberg = "iceberg" // the Iceberg tables
)

// Plan is what a run is about to do, with what it took last time, for estimates.
type Plan struct {
	Streams []Planned
	Last    Phases // the newest run's phases (zero: no run yet, or one older than phases)
}

// Planned is a stream a run is about to fetch.
type Planned struct {
	Table string
	// Last is what fetching it took in the newest run that completed it (0: never completed).
	Last time.Duration
}

// Phases are the seconds each part of a run took; the run's total covers them all.
type Phases struct {
	Extract float64 `json:"extract"`
	Load    float64 `json:"load"`
	Models  float64 `json:"models"`
	Iceberg float64 `json:"iceberg,omitempty"`
}

// watch times a run's phases and tells its observer (nil: nobody listens) what the run is doing.
type watch struct {
	obs    Observer
	last   Phases // the previous run's, for the observer's estimates
	mu     sync.Mutex
	phases Phases
	cur    string
	began  time.Time
}

// enter ends the current phase, adding its time, and begins phase ("" ends the last).
func (w *watch) enter(phase string) {
	if w == nil {
		return
	}
	w.mu.Lock()
	now := time.Now()
	if p := w.slot(w.cur); p != nil {
		*p += round(now.Sub(w.began).Seconds())
	}
	w.cur, w.began = phase, now
	var expect float64
	if p := (&w.last).field(phase); p != nil {
		expect = *p
	}
	w.mu.Unlock()
	if w.obs != nil && phase != "" && phase != "extract" {
		w.obs.Phase(phase, time.Duration(expect*float64(time.Second)))
	}
}

func (w *watch) slot(phase string) *float64 { return (&w.phases).field(phase) }

// field is the phase's figure in p (nil for no such phase).
func (p *Phases) field(phase string) *float64 {
	switch phase {
	case "extract":
		return &p.Extract
	case PhaseLoad:
		return &p.Load
	case PhaseModels:
		return &p.Models
	case PhaseIceberg:
		return &p.Iceberg
	}
	return nil
}

// done ends the last phase and returns the figures.
func (w *watch) done() Phases {
	w.enter("")
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.phases
}

// plan is what the streams took in the newest committed run that completed each.
func plan(ms []*lake.Manifest, streams []*sources.Stream) []Planned {
	last := map[string]time.Duration{}
	for _, m := range ms { // oldest first: newer runs overwrite
		for _, s := range m.Streams {
			if s.Status == "ok" && !s.Resumed {
				last[s.Table] = time.Duration(s.Seconds * float64(time.Second))
			}
		}
	}
	out := make([]Planned, len(streams))
	for i, s := range streams {
		out[i] = Planned{Table: s.TableName(), Last: last[s.TableName()]}
	}
	return out
}

// lastPhases reads the phases of the newest run's report (zero when it has none).
func lastPhases(ctx context.Context, st lake.Store, ms []*lake.Manifest) Phases {
	var r Report
	if len(ms) > 0 {
		_, _ = lake.ReadJSON(ctx, st, lake.ManifestDir, ms[len(ms)-1].RunID+".report", &r)
	}
	return r.Phases
}

// ErrRefused means a run did not start: the lake is busy (another run holds it) or cannot be written
// (permissions, a read-only filesystem). Nothing was fetched or changed.
var ErrRefused = errors.New("start refused")

// LockLake opens cfg's lake and takes its lock for owner, as a run's start does: a lake that is busy
// or cannot be written is a refused start (ErrRefused). lost is closed if a bucket's lease is lost;
// release unlocks and closes the store.
func LockLake(ctx context.Context, cfg *config.Config, owner string) (st lake.Store, release func(), lost <-chan struct{}, err error) {
	st, err = OpenLake(ctx, cfg)
	if err != nil {
		return nil, nil, nil, refused(err)
	}
	unlock, lost, err := st.Lock(ctx, owner)
	if err != nil {
		st.Close()
		return nil, nil, nil, refused(err)
	}
	return st, func() { unlock(); st.Close() }, lost, nil
}

// refused marks err as a refused start when it is one (see ErrRefused), and returns it as it is
// otherwise.
func refused(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, lake.ErrBusy) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) ||
		gcerrors.Code(err) == gcerrors.PermissionDenied {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return err
}

// Writable checks, before anything is fetched, that the warehouse's directory takes a new file: a run
// that could not load what it fetched would only find out at the end.
func Writable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("the warehouse's directory: %w", err)
	}
	f, err := os.CreateTemp(dir, durable.TempPrefix+"probe-")
	if err != nil {
		return fmt.Errorf("the warehouse's directory %s is not writable: %w", dir, err)
	}
	f.Close()
	return os.Remove(filepath.Clean(f.Name()))
}

// statusInterrupted is the one word for a run, or a stream, a signal stopped (DESIGN.md).
const statusInterrupted = "interrupted"

// interruptedBy reports whether ctx was cancelled by the caller (a signal), not by the loss of the
// lake's lock, which stops a run without its being interrupted.
func interruptedBy(ctx context.Context, lockLost *atomic.Bool) bool {
	return ctx.Err() != nil && !lockLost.Load()
}

// cutShort marks the report of a stream the interruption stopped (a signal, or max_run_time: cause):
// what it fetched is dropped, and the next run fetches it (a checkpointed stream from its last
// checkpoint).
func cutShort(rep *lake.StreamReport, cause error) {
	rep.Status = statusInterrupted
	by := "interrupted"
	if errors.Is(cause, errMaxRunTime) {
		by = "stopped at max_run_time"
	}
	rep.Error = fmt.Sprintf("%s after %d requests, before it finished; the next run fetches it", by, rep.Requests)
}
