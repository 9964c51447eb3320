package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// warehouseCount asks the warehouse as it is now (opened and closed for the question: an open handle
// keeps reading the file it opened).
func warehouseCount(t *testing.T, cfg *config.Config, q string) int {
	t.Helper()
	wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	var n int
	if err := wh.DB.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func requestsOf(res *Result, table string) int64 {
	for _, s := range res.Manifest.Streams {
		if s.Table == table {
			return s.Requests
		}
	}
	return -1
}

// A reset sends one stream back to since: the next run fetches it as the first run did, the other
// streams stay incremental, the run after is incremental again; nothing committed changes (every
// manifest and file stays and verifies; the history only grows); the record keeps the state before.
func TestResetRefetchesFromSinceAndKeepsHistory(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, []string{"datasync_invoices"})
	first := run(t, cfg)
	second := run(t, cfg)
	const inv, ds = "signicat_invoices", "gsapi_datasync_invoices"
	if requestsOf(second, inv) >= requestsOf(first, inv) || requestsOf(second, ds) >= requestsOf(first, ds) {
		t.Fatalf("the second run was not incremental: %d/%d, %d/%d", requestsOf(second, inv), requestsOf(first, inv), requestsOf(second, ds), requestsOf(first, ds))
	}
	history := warehouseCount(t, cfg, "SELECT count(*) FROM signicat_invoices_history")
	st := lake.Dir(cfg.OutputDir)
	var before sources.State
	if _, err := lake.ReadJSON(t.Context(), st, lake.StateDir, inv, &before); err != nil || before.Watermark == "" {
		t.Fatalf("state before: %q %v", before.Watermark, err)
	}
	rec, err := Reset(context.Background(), cfg, []string{"invoices"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var prev sources.State
	if len(rec.Streams) != 1 || rec.Streams[0].Table != inv || json.Unmarshal(rec.Streams[0].Previous, &prev) != nil || prev.Watermark != before.Watermark || rec.By == "" {
		t.Fatalf("record %+v", rec)
	}
	third := run(t, cfg)
	if requestsOf(third, inv) != requestsOf(first, inv) || requestsOf(third, ds) != requestsOf(second, ds) {
		t.Errorf("after the reset: %s made %d requests (first run %d), %s %d (incremental %d)", inv, requestsOf(third, inv), requestsOf(first, inv), ds, requestsOf(third, ds), requestsOf(second, ds))
	}
	var after stateFile
	after.State = &sources.State{}
	if _, err := lake.ReadJSON(t.Context(), st, lake.StateDir, inv, &after); err != nil || after.Reset != rec.ID || after.Watermark == "" {
		t.Errorf("state after the run: %+v reset %q, want reset %q taken up", after.State, after.Reset, rec.ID)
	}
	if fourth := run(t, cfg); requestsOf(fourth, inv) != requestsOf(second, inv) {
		t.Errorf("the run after: %d requests, incremental would be %d", requestsOf(fourth, inv), requestsOf(second, inv))
	}
	ms, err := lake.ReadManifests(t.Context(), st)
	_, problems, verr := lake.Verify(t.Context(), st)
	if err != nil || len(ms) != 4 || verr != nil || len(problems) != 0 {
		t.Errorf("%d manifests (%v), verify %v %v", len(ms), err, problems, verr)
	}
	if n := warehouseCount(t, cfg, "SELECT count(*) FROM signicat_invoices_history"); n <= history {
		t.Errorf("history has %d rows, had %d", n, history)
	}
	if n := warehouseCount(t, cfg, "SELECT count(*) FROM signicat_invoices"); n != int(first.Manifest.Streams[0].Rows) {
		t.Errorf("current state %d rows, the first full fetch had %d", n, first.Manifest.Streams[0].Rows)
	}
	// A stream fetched whole every run has nothing to reset; an unknown one is named.
	only(cfg, []string{"invoices", "organizations"}, nil)
	for name, want := range map[string]string{"organizations": "fetched whole every run", "invoicez": `unknown stream "invoicez"`} {
		var ce *config.Error
		if _, err := Reset(context.Background(), cfg, []string{name}, time.Now()); !errors.As(err, &ce) || !strings.Contains(err.Error(), want) {
			t.Errorf("reset %s: %v", name, err)
		}
	}
}

// A reset stays pending until a run commits the stream: a run whose stream failed leaves it, and a
// killed run's checkpoint made before the reset is dropped (one made after is kept).
func TestResetPendingUntilTakenUp(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	resets := []*ResetRecord{{ID: lake.NewRunID(at), At: at, Streams: []ResetStream{{Table: "t_a"}}}}
	if PendingReset(resets, "t_a", "") != resets[0] || PendingReset(resets, "t_a", resets[0].ID) != nil || PendingReset(resets, "t_b", "") != nil {
		t.Error("PendingReset")
	}
	st := lake.Dir(t.TempDir())
	if err := lake.WriteJSON(t.Context(), st, ResetDir, resets[0].ID, resets[0]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		started time.Time
		kept    bool
	}{{at.Add(-time.Hour), false}, {at.Add(time.Hour), true}} {
		s := &sources.Stream{Source: "t", Name: "a", State: &sources.State{Watermark: "2025-12-01"}}
		// The checkpoint's own file goes with it (a run that commits would keep it forever, and verify
		// would name it as added); a file of another run it lists, or one outside the lake, stays.
		run := &resumable{RunID: lake.NewRunID(c.started), StartedAt: c.started}
		own, other := "t_a/run_date=2026-01-02/"+run.RunID+"-00000.parquet", "t_a/run_date=2026-01-01/"+lake.NewRunID(at.AddDate(0, 0, -1))+"-00000.parquet"
		ck := &streamCheckpoint{Table: "t_a", Files: []lake.FileInfo{{Path: own}, {Path: other}, {Path: "../" + run.RunID + "-00000.parquet"}}}
		for _, key := range []string{own, other} {
			if err := st.WriteFile(t.Context(), key, []byte("rows")); err != nil {
				t.Fatal(err)
			}
		}
		if err := lake.WriteJSON(t.Context(), st, checkpointDir(run.RunID), "t_a", ck); err != nil {
			t.Fatal(err)
		}
		cks := map[string]*streamCheckpoint{"t_a": ck}
		marks, err := applyResets(t.Context(), st, []*sources.Stream{s}, map[string]string{}, run, cks, false)
		if err != nil || marks["t_a"] != resets[0].ID || s.State.Watermark != "" || (cks["t_a"] != nil) != c.kept {
			t.Errorf("run started %v: marks %v, watermark %q, checkpoint kept %t", c.started, marks, s.State.Watermark, cks["t_a"] != nil)
		}
		for key, want := range map[string]bool{own: c.kept, other: true, checkpointDir(run.RunID) + "/t_a.json": c.kept} {
			if ok, err := st.Exists(t.Context(), key); err != nil || ok != want {
				t.Errorf("run started %v: %s is there: %v (%v), want %v", c.started, key, ok, err, want)
			}
		}
	}
}

// Status says what the next run fetches, and it is what the next run does fetch: the first window
// of a windowed stream is the day status names; after a reset, since.
func TestStatusNamesTheNextWindow(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, nil, []string{"datasync_invoices", "organizations"})
	run(t, cfg)
	st := lake.Dir(cfg.OutputDir)
	status := func() StreamStatus {
		ss, err := Status(context.Background(), cfg, st, cfg.Warehouse, []string{"datasync_invoices"})
		if err != nil || len(ss) != 1 {
			t.Fatalf("status %+v %v", ss, err)
		}
		return ss[0]
	}
	firstWindow := func(res *Result) string {
		first := ""
		for _, w := range res.Manifest.Streams[0].Windows {
			if d := w.Start.Format(time.DateOnly); first == "" || d < first {
				first = d
			}
		}
		return first
	}
	s := status()
	if s.Kind != "windowed" || s.LastRun == nil || s.LastRun.Status != "ok" || s.Rows == nil || *s.Rows == 0 || s.Watermark == "" || len(s.Pending) != 0 {
		t.Fatalf("status %+v", s)
	}
	if got := firstWindow(run(t, cfg)); got != s.NextFrom {
		t.Errorf("status said the next run fetches from %s; it fetched from %s", s.NextFrom, got)
	}
	if _, err := Reset(context.Background(), cfg, []string{"gsapi_datasync_invoices"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	s = status()
	if len(s.Pending) != 1 || !strings.Contains(s.Pending[0], "the next run fetches it again from since") || s.NextFrom != "2021-01-01" {
		t.Errorf("status after the reset: %+v", s)
	}
	if got := firstWindow(run(t, cfg)); got != s.NextFrom {
		t.Errorf("after the reset status said %s; the run fetched from %s", s.NextFrom, got)
	}
	if s = status(); len(s.Pending) != 0 {
		t.Errorf("the reset is still pending after a run took it up: %v", s.Pending)
	}
}

// A snapshot the shrink guard refused is pending for a person: status names it and how to accept it.
func TestStatusNamesARefusedShrink(t *testing.T) {
	t.Parallel()
	st := lake.Dir(t.TempDir())
	m := &lake.Manifest{RunID: "20260102T030405.000Z-abcdef", Status: "partial", FinishedAt: time.Date(2026, 1, 2, 3, 5, 0, 0, time.UTC),
		Streams: []lake.StreamReport{{Table: "gsapi_users", Status: "failed",
			Error: "gsapi_users: the new snapshot has 3 rows, down from 207 (more than max_shrink 50%): it is not committed and the current state stays as it was; if the API really holds fewer, run again with --accept-shrink gsapi_users"}}}
	if err := lake.WriteJSON(t.Context(), st, lake.ManifestDir, m.RunID, m); err != nil {
		t.Fatal(err)
	}
	ss, err := Status(context.Background(), nil, st, "", nil)
	if err != nil || len(ss) != 1 {
		t.Fatalf("%+v %v", ss, err)
	}
	s := ss[0]
	if s.LastRun == nil || s.LastRun.Status != "failed" || len(s.Pending) != 1 || !strings.Contains(s.Pending[0], "a shrink to accept or explain") ||
		!strings.Contains(s.Pending[0], "--accept-shrink gsapi_users") || s.Next != "everything (fetched whole every run)" {
		t.Errorf("status %+v", s)
	}
}
