package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// recoverInterrupted repairs what a killed run left (it holds the output lock, so nothing else is
// writing): unfinished temporary files and the files of runs that never committed are removed, and
// runs whose manifest was committed but whose load never finished are loaded now, oldest first —
// their watermarks have already moved, so skipping them would lose their rows. A lock taken over from
// a stalled run first fences that run's commit, and its checkpoints are resumed under a new run id.
func recoverInterrupted(ctx context.Context, cfg *config.Config, st lake.Store, log *slog.Logger, fullRefresh bool) (recovered, error) {
	var rec recovered
	if n, err := st.RemoveTemps(ctx); err != nil {
		return rec, err
	} else if n > 0 {
		log.Warn("removed unfinished files of an interrupted run", "files", n)
	}
	// The head is this run's base: it holds the lock, so nothing commits after it is read (a stalled
	// run whose lock it took over cannot: the fence takes the number it would claim).
	l, err := lake.ReadLog(ctx, st)
	if err != nil {
		return rec, err
	}
	var fence string
	if l, fence, err = lake.Fence(ctx, st, l, "a run started "+time.Now().UTC().Format(time.RFC3339)); err != nil {
		return rec, err
	}
	if fence != "" {
		log.Warn("took the lake over from a run whose lock expired: fenced its commit", "commit", l.Head, "fence", fence)
	}
	rec.head, rec.manifests = l.Head, l.Manifests
	if rec.run, rec.checkpoints, err = openCheckpoints(ctx, st, l.Committed, fullRefresh); err != nil {
		return rec, fmt.Errorf("reading the checkpoints of an interrupted run: %w", err)
	}
	// A fenced run's own id can never commit (its manifest key holds the fence's mark): its checkpoints
	// are resumed under a new id, whether this start fenced it or an earlier one did and was killed
	// while adopting them (before the new id's run.json).
	if rec.run != nil && (fence != "" || l.Fenced[rec.run.RunID]) {
		fenced := rec.run.RunID
		if rec.run, err = adopt(ctx, st, rec.run, rec.checkpoints, lake.NewRunID(time.Now())); err != nil {
			return rec, fmt.Errorf("resuming the checkpoints of run %s: %w", fenced, err)
		}
	}
	n, err := lake.RemoveOrphans(ctx, st, l, listed(rec.checkpoints))
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
