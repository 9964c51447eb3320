package pipeline

import (
	"context"
	"fmt"
	"sort"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/redact"
)

// commit writes the run's manifest from what its streams reported and added: the rejects first, every
// file made durable, then the manifest committed as the lake's next commit. A run that lost its lock
// commits nothing. Once committed, the run's checkpoints have served and are removed.
func (r *runner) commit(ctx context.Context) error {
	// Begun, a commit is finished or refused by the store, never cut short by the run's context: a
	// run that stalled here and lost its lease would otherwise fail with "context canceled" instead of
	// the store's answer (the lock taken over, the commit number fenced).
	ctx = context.WithoutCancel(ctx)
	r.w.enter(PhaseLoad)
	m := r.manifest
	if r.interrupted != nil {
		for i, s := range r.streams {
			if r.reports[i].Table == "" {
				r.reports[i] = lake.StreamReport{Table: s.TableName(), Status: statusInterrupted, Error: "not started before the interruption; the next run fetches it"}
			}
		}
	}
	sortLists(m)
	m.Streams = r.reports
	m.Hosts = hostReports(r.opts.Client)
	m.FinishedAt = r.opts.Now().UTC()
	r.res = &Result{Manifest: m}
	m.Status = r.status()
	for i := range r.rejects {
		r.rejects[i].Key, r.rejects[i].Raw = redact.String(r.rejects[i].Key), redact.String(r.rejects[i].Raw)
	}
	if len(r.rejects) > 0 {
		// Written before the manifest, so a run loaded after a crash still records its rejects.
		if err := lake.WriteJSON(ctx, r.st, lake.RejectsDir, m.RunID, r.rejects); err != nil {
			return fmt.Errorf("writing rejects: %w", err)
		}
	}
	// Snapshot and evidence files were published without a per-file fsync; one syncfs makes them
	// durable before the manifest that lists them.
	if err := r.env.store.Sync(ctx); err != nil {
		return fmt.Errorf("syncing the run's files: %w", err)
	}
	// The store has served: its index of every body kept and its compressor's workers are let go
	// before the manifest is encoded and DuckDB loads, the run's two later peaks.
	r.env.store = nil
	if r.lockLost.Load() {
		return fmt.Errorf("run %s committed nothing: %w; the next start resumes it from its checkpoints", m.RunID, r.errLost)
	}
	if beforeCommit != nil {
		beforeCommit()
	}
	if err := lake.Commit(ctx, r.st, m, r.rec.head); err != nil {
		return fmt.Errorf("committing run %s: %w", m.RunID, err)
	}
	// Committed: the checkpoints have served (a crash before this removal is cleaned up at next start).
	return r.st.RemoveAll(ctx, checkpointDir(m.RunID))
}

// status is the run's status from its streams' reports (ok, partial or interrupted), and it lists the
// streams that did not succeed in the result.
func (r *runner) status() string {
	status := "ok"
	for _, rep := range r.reports {
		if rep.Status != "ok" {
			r.res.Failed = append(r.res.Failed, rep)
		}
		if rep.Status != "ok" || rep.FailedItems > 0 {
			status = "partial"
		}
	}
	if r.interrupted != nil {
		status = statusInterrupted
	}
	return status
}

// sortLists puts the manifest's lists, gathered in the order the streams finished, in an order that
// does not depend on it: files and packs by path, evidence and PDFs by table and endpoint.
func sortLists(m *lake.Manifest) {
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	sort.Slice(m.Packs, func(i, j int) bool { return m.Packs[i].Path < m.Packs[j].Path })
	sort.Slice(m.Evidence, byEndpoint(m.Evidence))
	sort.Slice(m.PDFs, byEndpoint(m.PDFs))
}

func byEndpoint(es []lake.Evidence) func(i, j int) bool {
	return func(i, j int) bool {
		if es[i].Table != es[j].Table {
			return es[i].Table < es[j].Table
		}
		return es[i].Endpoint < es[j].Endpoint
	}
}

// storeWatermarks stores the state of every stream that succeeded, with the reset it took up.
// Watermarks move only after the manifest commits the data they cover; a crash in between means the
// next run fetches that stretch again, and the current-state tables de-duplicate by key.
func (r *runner) storeWatermarks(ctx context.Context) error {
	for i, s := range r.streams {
		if s.State != nil && r.reports[i].Status == "ok" {
			s.State.Commit()
			if err := lake.WriteJSON(ctx, r.st, lake.StateDir, s.TableName(), stateFile{State: s.State, Reset: r.resets[s.TableName()]}); err != nil {
				return fmt.Errorf("storing the watermark of %s: %w", s.TableName(), err)
			}
		}
	}
	return nil
}
