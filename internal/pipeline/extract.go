package pipeline

import (
	"context"
	"sort"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// extract runs every stream, at most concurrency at once, and gathers what each reports and adds to
// the manifest. A stream the interruption stopped is reported as interrupted.
func (r *runner) extract(ctx context.Context) {
	r.w = &watch{obs: r.opts.Observer, last: lastPhases(ctx, r.st, r.rec.manifests)}
	r.w.enter("extract")
	if r.w.obs != nil {
		r.w.obs.Start(Plan{Streams: plan(r.rec.manifests, r.streams), Last: r.w.last})
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.cfg.Concurrency))
	for _, i := range fanOutFirst(r.streams) {
		g.Go(func() error {
			r.extractStream(ctx, gctx, i)
			return nil // a failing stream is reported, and the others go on
		})
	}
	_ = g.Wait()
	r.env.checkpoints.close()
}

// fanOutFirst is the order to start streams in: fan-out streams first, as they make most of the
// requests, and started last they would run alone at the end with the host limit half used (measured
// by make bench).
func fanOutFirst(streams []*sources.Stream) []int {
	order := make([]int, len(streams))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return streams[order[a]].FanOut && !streams[order[b]].FanOut })
	return order
}

// extractStream runs stream i (gctx is the streams' context; ctx the run's, which tells an
// interruption apart) and adds its report and output to the run's.
func (r *runner) extractStream(ctx, gctx context.Context, i int) {
	s := r.streams[i]
	if ctx.Err() != nil {
		return // not started before the interruption (reported by commit)
	}
	if r.w.obs != nil {
		r.w.obs.StreamStarted(s)
	}
	rep, out, rej := resumeOrRun(gctx, r.env, r.opts.Now(), s, r.rec.checkpoints[s.TableName()])
	if rep.Status != "ok" && interruptedBy(ctx, &r.lockLost) {
		cutShort(&rep, context.Cause(ctx))
	}
	r.logStream(rep)
	if r.w.obs != nil {
		r.w.obs.StreamDone(s, rep)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports[i] = rep
	r.manifest.Files = append(r.manifest.Files, out.files...)
	r.manifest.Evidence = append(r.manifest.Evidence, out.evidence...)
	r.manifest.PDFs = append(r.manifest.PDFs, out.pdfs...)
	r.manifest.Packs = append(r.manifest.Packs, out.packs...)
	r.rejects = append(r.rejects, rej...)
}

// logStream logs how a stream ended, and its schema changes.
func (r *runner) logStream(rep lake.StreamReport) {
	switch rep.Status {
	case "ok":
		r.log.Info("stream done", "table", rep.Table, "rows", rep.Rows, "requests", rep.Requests, "retries", rep.Retries, "seconds", round(rep.Seconds))
	case statusInterrupted:
		r.log.Warn("stream interrupted", "table", rep.Table, "requests", rep.Requests)
	default:
		r.log.Error("stream failed", "table", rep.Table, "error", rep.Error)
	}
	for _, c := range rep.SchemaChanges {
		r.log.Warn("schema changed", "change", c)
	}
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
		return rep, streamOutput{files: ck.Files, evidence: ck.Evidence, pdfs: ck.PDFs, packs: ck.Packs}, ck.Rejects
	}
	var kept []lake.PackInfo
	if ck != nil && !s.Checkpoints {
		// A stream that cannot resume starts again: what it checkpointed goes, as for a reset. Its
		// packs stay (another stream may list a body in them): the run records them, whatever this
		// attempt does, so its commit seals them and verify does not name them as added.
		if err := dropCheckpoint(ctx, env.st, env.runID, ck); err != nil {
			env.log.Warn("an earlier attempt's files are left in the lake", "table", s.TableName(), "error", err)
		}
		ck, kept = nil, ck.Packs
	}
	env.extracted = now.UTC()
	rep, out, rej := runStream(ctx, &env, s, ck)
	out.packs = append(kept, out.packs...)
	return rep, out, rej
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

// windowRows are, by table, the rows each window held in the newest committed run that fetched it and
// recorded them.
func windowRows(ms []*lake.Manifest) map[string]map[windowKey]int64 {
	rows := map[string]map[windowKey]int64{}
	for _, m := range ms {
		for _, s := range m.Streams {
			if s.Status != "ok" || len(s.WindowRows) != len(s.Windows) {
				continue
			}
			if rows[s.Table] == nil {
				rows[s.Table] = map[windowKey]int64{}
			}
			for i, w := range s.Windows {
				rows[s.Table][keyOf(w)] = s.WindowRows[i]
			}
		}
	}
	return rows
}

// windowKey is a window by its instants: one read back from a manifest may differ from the one a run
// cuts in time.Time's representation (its location) while naming the same instants.
type windowKey struct{ start, end int64 }

func keyOf(w dates.Window) windowKey { return windowKey{w.Start.UnixNano(), w.End.UnixNano()} }

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

// acceptShrink resolves --accept-shrink's names to the tables it lets shrink.
func acceptShrink(names []string, streams []*sources.Stream) (map[string]bool, error) {
	ss, err := named(streams, names, "--accept-shrink")
	accept := map[string]bool{}
	for _, s := range ss {
		accept[s.TableName()] = true
	}
	return accept, err
}
