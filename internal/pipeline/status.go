package pipeline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// StreamStatus is where one stream stands between runs: what `extract status` shows. It is read
// from the lake (manifests, states, resets, checkpoints) and the warehouse, never from the APIs.
type StreamStatus struct {
	Table string `json:"table"`
	Kind  string `json:"kind"` // snapshot (fetched whole), incremental (past a watermark) or windowed (date windows)
	// LastRun is the newest committed run that included the stream; LastOK the newest in which it
	// succeeded, when that is another.
	LastRun *RunStatus `json:"last_run,omitempty"`
	LastOK  *RunStatus `json:"last_ok,omitempty"`
	// Rows and History count the warehouse's current-state table and its history (nil: not loaded).
	Rows    *int64 `json:"rows"`
	History *int64 `json:"history_rows"`
	// Watermark is what the last successful run reached ("" for none).
	Watermark string `json:"watermark,omitempty"`
	// Next says what the next run fetches; NextFrom is the first day of its windows, where it has them.
	Next     string `json:"next"`
	NextFrom string `json:"next_from,omitempty"`
	// LastError is why the last run did not complete it.
	LastError string `json:"last_error,omitempty"`
	// Pending is what awaits a person or the next run: a reset not yet taken up, a key test that
	// fails, a killed run's checkpoint, a shrink to accept.
	Pending []string `json:"pending,omitempty"`
}

// RunStatus is a run as a stream's status names it.
type RunStatus struct {
	RunID    string    `json:"run_id"`
	Status   string    `json:"status"` // the stream's: ok, failed, interrupted
	Finished time.Time `json:"finished_at"`
	Rows     int64     `json:"rows"`
	Seconds  float64   `json:"seconds"`
}

// statusSources is what Status reads.
type statusSources struct {
	cfg       *config.Config // nil: only what the lake knows
	st        lake.Store
	manifests []*lake.Manifest
	resets    []*ResetRecord
	killed    map[string]string // table → the killed run whose checkpoint holds it
	tests     map[string]string // data test → why it fails (the newest result of each)
	counts    func(table string) *int64
}

// Status reads where each stream stands. cfg (may be nil) lists the streams and their since and
// lookback; without it the streams are those the lake has seen. names narrows them (table or stream
// names; an unknown one is a config.Error). warehouse may be "" or absent.
func Status(ctx context.Context, cfg *config.Config, st lake.Store, warehouse string, names []string) ([]StreamStatus, error) {
	src := &statusSources{cfg: cfg, st: st}
	var err error
	if src.manifests, err = lake.ReadManifests(ctx, st); err != nil {
		return nil, err
	}
	if src.resets, err = ReadResets(ctx, st); err != nil {
		return nil, err
	}
	if src.killed, err = killedRuns(ctx, st, src.manifests); err != nil {
		return nil, err
	}
	closeWH, err := src.openWarehouse(ctx, warehouse)
	if err != nil {
		return nil, err
	}
	defer closeWH()
	streams, err := src.streams(ctx, names)
	if err != nil {
		return nil, err
	}
	out := make([]StreamStatus, 0, len(streams))
	for _, s := range streams {
		ss, err := src.status(ctx, s)
		if err != nil {
			return nil, err
		}
		out = append(out, ss)
	}
	return out, nil
}

// streams are cfg's streams, or without it one per table the lake has run or kept a state for.
func (src *statusSources) streams(ctx context.Context, names []string) ([]*sources.Stream, error) {
	if src.cfg != nil {
		return Streams(src.cfg, Client(src.cfg, httpclient.Options{}), names, nil)
	}
	seen := map[string]*sources.Stream{}
	add := func(table string, state bool) {
		if seen[table] == nil {
			src, name, _ := strings.Cut(table, "_")
			seen[table] = &sources.Stream{Source: src, Name: name}
		}
		if state {
			seen[table].State = &sources.State{}
		}
	}
	for _, m := range src.manifests {
		for _, s := range m.Streams {
			add(s.Table, false)
		}
	}
	es, err := src.st.List(ctx, lake.StateDir)
	if err != nil {
		return nil, err
	}
	for _, e := range es {
		if path.Dir(e.Key) == lake.StateDir && strings.HasSuffix(e.Key, ".json") {
			add(strings.TrimSuffix(path.Base(e.Key), ".json"), true)
		}
	}
	var out []*sources.Stream
	for _, table := range slices.Sorted(maps.Keys(seen)) {
		if len(names) == 0 || slices.Contains(names, table) {
			out = append(out, seen[table])
		}
	}
	for _, n := range names {
		if seen[n] == nil {
			return nil, &config.Error{Msg: fmt.Sprintf("no stream %q in this lake (give its table name, e.g. signicat_invoices, or --config)", n)}
		}
	}
	return out, nil
}

// status is one stream's.
func (src *statusSources) status(ctx context.Context, s *sources.Stream) (StreamStatus, error) {
	ss := StreamStatus{Table: s.TableName(), Kind: "snapshot"}
	switch {
	case s.Windowed:
		ss.Kind = "windowed"
	case s.Mode == sources.Incremental:
		ss.Kind = "incremental"
	}
	for _, m := range slices.Backward(src.manifests) {
		for _, r := range m.Streams {
			if r.Table != ss.Table {
				continue
			}
			rs := &RunStatus{RunID: m.RunID, Status: r.Status, Finished: m.FinishedAt, Rows: r.Rows, Seconds: round(r.Seconds)}
			if ss.LastRun == nil {
				ss.LastRun = rs
				ss.LastError = r.Error
				if strings.Contains(r.Error, "--accept-shrink") {
					// The shrink guard (streamRun.shrank) refused a snapshot much smaller than the last; its
					// message says how to accept it.
					ss.Pending = append(ss.Pending, "a shrink to accept or explain: "+r.Error)
				}
			}
			if r.Status == "ok" && ss.LastOK == nil && rs != ss.LastRun {
				ss.LastOK = rs
			}
		}
		if ss.LastRun != nil && (ss.LastRun.Status == "ok" || ss.LastOK != nil) {
			break
		}
	}
	ss.Rows, ss.History = src.counts(ss.Table), src.counts(ss.Table+"_history")
	if s.State != nil {
		taken, err := readState(ctx, src.st, s)
		if err != nil {
			return ss, err
		}
		ss.Watermark = s.State.Watermark
		if r := PendingReset(src.resets, ss.Table, taken); r != nil {
			ss.Pending = append(ss.Pending, fmt.Sprintf("reset %s (%s by %s): the next run fetches it again from since", r.ID, r.At.Format("2006-01-02 15:04"), r.By))
			s.State.Watermark, s.State.Memo, s.State.Windows = "", nil, false
		}
	}
	ss.Next, ss.NextFrom = src.nextFetch(s)
	for name, why := range src.tests {
		if name == models.KeyTestPrefix+ss.Table || strings.HasPrefix(name, models.KeyTestPrefix+ss.Table+"__") {
			ss.Pending = append(ss.Pending, "key test "+name+" fails: "+why)
		}
	}
	if run := src.killed[ss.Table]; run != "" {
		ss.Pending = append(ss.Pending, "run "+run+" was killed with this stream checkpointed: the next start resumes it")
	}
	sort.Strings(ss.Pending)
	return ss, nil
}

// nextFetch says what the next run fetches of s (as the sources decide it: sources.Resume), and the
// first day of its windows.
func (src *statusSources) nextFetch(s *sources.Stream) (string, string) {
	since, lookback, known := src.sinceOf(s.Source)
	st := s.State
	// GSAPI reads every dated stream (the exports, the journals, the invoice charges of the invoices'
	// windows) in whole calendar months (gsapi's windowed): its first window starts on the 1st.
	months := s.Source == "gsapi"
	switch {
	case st != nil && s.Next != nil:
		return s.Next(st), ""
	case st == nil || s.Mode == sources.Snapshot && st.Watermark == "":
		if st != nil && len(st.Memo) > 0 {
			return fmt.Sprintf("everything (fetched whole every run; details of %d records are reused while fresh)", len(st.Memo)), ""
		}
		return "everything (fetched whole every run)", ""
	case !known:
		return "past the watermark, less the source's lookback_days (give --config to see the day)", ""
	case st.Watermark == "" || months && !st.Windows:
		if months {
			since = time.Date(since.Year(), since.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		d := since.Format(time.DateOnly)
		return "everything since " + d + " (the source's since)", d
	}
	if _, err := time.Parse(time.DateOnly, st.Watermark); err != nil {
		return fmt.Sprintf("the rows past %s (the key's watermark)", st.Watermark), ""
	}
	from := sources.WindowStart(since, st, lookback)
	if months {
		from = time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	d := from.Format(time.DateOnly)
	return fmt.Sprintf("from %s to today (the watermark %s less lookback_days %d)", d, st.Watermark, lookback), d
}

// sinceOf is a source's since and lookback_days in the config.
func (src *statusSources) sinceOf(source string) (time.Time, int, bool) {
	if src.cfg == nil {
		return time.Time{}, 0, false
	}
	switch s, g := src.cfg.Sources.Signicat, src.cfg.Sources.GSAPI; {
	case source == "signicat" && s != nil:
		return s.Since.Time, s.LookbackDays, true
	case source == "gsapi" && g != nil:
		return g.Since.Time, g.LookbackDays, true
	}
	return time.Time{}, 0, false
}

// openWarehouse reads the tests' newest results and prepares the row counts; a missing warehouse
// counts nothing (a lake not loaded yet, or a status of the lake alone).
func (src *statusSources) openWarehouse(ctx context.Context, path string) (func(), error) {
	src.counts = func(string) *int64 { return nil }
	src.tests = map[string]string{}
	if path == "" {
		return func() {}, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return func() {}, nil
	}
	wh, err := duckdb.OpenReadOnly(path)
	if err != nil {
		return nil, err
	}
	tables, err := duckdb.StringSet(ctx, wh.DB, "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal")
	if err != nil {
		wh.Close()
		return nil, err
	}
	src.counts = func(table string) *int64 {
		if !tables[table] {
			return nil
		}
		var n int64
		if err := wh.DB.QueryRowContext(ctx, "SELECT count(*) FROM "+duckdb.Quote(table)).Scan(&n); err != nil {
			return nil
		}
		return &n
	}
	if tables["_ledgerlake_data_tests"] {
		rows, err := wh.DB.QueryContext(ctx, `SELECT name, coalesce(nullif(message, ''), nullif(error, ''), failures || ' rows') FROM (
			SELECT *, row_number() OVER (PARTITION BY name ORDER BY rowid DESC) AS newest FROM _ledgerlake_data_tests)
			WHERE newest = 1 AND (failures > 0 OR coalesce(error, '') <> '')`)
		if err != nil {
			wh.Close()
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			var name, why string
			if err := rows.Scan(&name, &why); err != nil {
				wh.Close()
				return nil, err
			}
			src.tests[name] = why
		}
	}
	return func() { wh.Close() }, nil
}

// killedRuns maps each table a killed run checkpointed to that run (the next start resumes it).
func killedRuns(ctx context.Context, st lake.Store, ms []*lake.Manifest) (map[string]string, error) {
	committed := map[string]bool{}
	for _, m := range ms {
		committed[m.RunID] = true
	}
	es, err := st.List(ctx, lake.CheckpointDir)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range es {
		run, name, ok := strings.Cut(strings.TrimPrefix(e.Key, lake.CheckpointDir+"/"), "/")
		if ok && !committed[run] && name != "run.json" && strings.HasSuffix(name, ".json") {
			out[strings.TrimSuffix(name, ".json")] = run
		}
	}
	return out, nil
}
