package duckdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// writeRun writes rows (JSON objects) as one run's snapshot of table and returns its manifest.
func writeRun(t *testing.T, root, runID string, at time.Time, table string, incremental bool, rows ...string) *lake.Manifest {
	t.Helper()
	return writeTable(t, root, runID, at, lake.TableInfo{Name: table, Key: []string{"id"}, Incremental: incremental}, nil, rows...)
}

// writeTable writes rows as one run's snapshot of the table info describes, fetched in the windows
// given (each row of the window its "w" field names: 0, 1, …) when there are any.
func writeTable(t *testing.T, root, runID string, at time.Time, info lake.TableInfo, windows []dates.Window, rows ...string) *lake.Manifest {
	t.Helper()
	var recs []typing.Record
	for _, r := range rows {
		var rec typing.Record
		dec := json.NewDecoder(strings.NewReader(r))
		dec.UseNumber()
		if err := dec.Decode(&rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	sch, err := typing.NewSchema(info.Name, []string{"id"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sch.Window = info.Windowed
	sch.Observe(recs)
	conv := typing.NewConverter(memory.DefaultAllocator, sch, runID, at)
	defer conv.Release()
	for _, r := range recs {
		if info.Windowed {
			n, _ := r["w"].(json.Number).Int64()
			conv.SetWindow(windows[n].Start, windows[n].End)
		}
		conv.Append(r)
	}
	batch := conv.Flush()
	defer batch.Release()
	w := parquet.NewStreamWriter(t.Context(), lake.Dir(root), info.Name, runID, conv.Schema())
	if err := w.Write("run_date="+at.Format("2006-01-02"), batch); err != nil {
		t.Fatal(err)
	}
	files, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	info.Rows = int64(len(rows))
	return &lake.Manifest{RunID: runID, StartedAt: at, FinishedAt: at, Status: "ok", Files: files,
		Streams: []lake.StreamReport{{Table: info.Name, Status: "ok", Rows: info.Rows, Tables: []lake.TableInfo{info}, Windows: windows}}}
}

// current returns the current table's rows as "id=v" sorted, every row (none is ever collapsed).
func current(t *testing.T, w *Warehouse, table string) string {
	t.Helper()
	var out string
	if err := w.DB.QueryRow("SELECT coalesce(string_agg(id || '=' || v, ' ' ORDER BY id, v), '') FROM " + Quote(table)).Scan(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

// kind is TABLE or VIEW.
func kind(t *testing.T, w *Warehouse, name string) string {
	t.Helper()
	var k string
	if err := w.DB.QueryRow("SELECT table_type FROM information_schema.tables WHERE table_name = ?", name).Scan(&k); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return k
}

// openWarehouse opens a new warehouse in a temporary directory, also the lake root for writeRun.
func openWarehouse(t *testing.T) (string, *Warehouse) {
	t.Helper()
	root := t.TempDir()
	w, err := Open(filepath.Join(root, "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return root, w
}

// twoTableRun writes run r1 of x_a (incremental, rows aRows) and x_b (one row, c=3) as one manifest;
// second is x_b's part of it.
func twoTableRun(t *testing.T, root string, aRows ...string) (m, second *lake.Manifest) {
	t.Helper()
	day := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	m = writeRun(t, root, "r1", day, "x_a", true, aRows...)
	second = writeRun(t, root, "r1", day, "x_b", false, `{"id":"c","v":3}`)
	m.Files = append(m.Files, second.Files...)
	m.Streams = append(m.Streams, second.Streams...)
	return m, second
}

// TestCurrentStateNeverPicksARow covers every way the current state is built. None ever picks one of
// several rows: a snapshot is its newest run's rows, all of them; an incremental stream with a key in
// force keeps the newest fetch of every key, all its rows; a windowed stream keeps the newest fetch of
// every window; an incremental stream with neither keeps every row.
func TestCurrentStateNeverPicksARow(t *testing.T) {
	root, w := openWarehouse(t)
	ctx := context.Background()
	day1 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	load := func(m *lake.Manifest) {
		t.Helper()
		if err := w.LoadRun(ctx, lake.Dir(root), "", m, nil); err != nil {
			t.Fatal(err)
		}
	}
	check := func(table, want, wantKind string) {
		t.Helper()
		if got, k := current(t, w, table), kind(t, w, table); got != want || k != wantKind {
			t.Fatalf("%s: %q as a %s, want %q as a %s", table, got, k, want, wantKind)
		}
	}
	// A snapshot: the newest run's rows, a key repeated within it kept twice (the key test reports it).
	load(writeRun(t, root, "r1", day1, "x_snap", false, `{"id":"a","v":1}`, `{"id":"b","v":1}`, `{"id":"b","v":2}`))
	check("x_snap", "a=1 b=1 b=2", "VIEW")
	load(writeRun(t, root, "r2", day2, "x_snap", false, `{"id":"a","v":2}`, `{"id":"c","v":2}`))
	check("x_snap", "a=2 c=2", "VIEW")

	// Incremental with a key in force: the newest fetch of every key, every row of it.
	load(writeRun(t, root, "r3", day1, "x_inc", true, `{"id":"a","v":1}`, `{"id":"b","v":1}`))
	check("x_inc", "a=1 b=1", "VIEW")
	load(writeRun(t, root, "r4", day2, "x_inc", true, `{"id":"b","v":2}`, `{"id":"b","v":3}`, `{"id":"c","v":2}`))
	check("x_inc", "a=1 b=2 b=3 c=2", "BASE TABLE")
	var hist int
	if err := w.DB.QueryRow("SELECT count(*) FROM x_inc_history").Scan(&hist); err != nil || hist != 5 {
		t.Fatalf("x_inc_history has %d rows (%v), want 5", hist, err)
	}

	// Windowed, no key: the newest fetch of every window replaces that window's rows, whatever they
	// hold; an identical row twice in one window is two rows; a window fetched again empty is empty.
	win := func(m time.Month, lastDay int) dates.Window {
		return dates.Window{Start: time.Date(2026, m, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, m, lastDay, 23, 59, 59, 999e6, time.UTC)}
	}
	sep, oct, nov := win(9, 30), win(10, 31), win(11, 2) // November so far: up to the 2nd
	wt := lake.TableInfo{Name: "x_win", Incremental: true, Windowed: true}
	load(writeTable(t, root, "r5", day1, wt, []dates.Window{sep, oct, nov},
		`{"w":0,"id":"s","v":1}`, `{"w":1,"id":"o","v":1}`, `{"w":1,"id":"o","v":1}`, `{"w":2,"id":"n","v":1}`))
	check("x_win", "n=1 o=1 o=1 s=1", "VIEW")
	// The next run reads October and November again (its lookback): October is now empty, November grew.
	nov2 := win(11, 3)
	load(writeTable(t, root, "r6", day2, wt, []dates.Window{oct, nov2}, `{"w":1,"id":"n","v":2}`, `{"w":1,"id":"m","v":2}`))
	check("x_win", "m=2 n=2 s=1", "BASE TABLE")
	var windows int
	if err := w.DB.QueryRow("SELECT count(*) FROM " + WindowsTable + " WHERE table_name = 'x_win'").Scan(&windows); err != nil || windows != 5 {
		t.Fatalf("%d windows recorded (%v), want 5", windows, err)
	}

	// Incremental with neither a window nor a key: every row of every run.
	nk := lake.TableInfo{Name: "x_all", Incremental: true}
	load(writeTable(t, root, "r7", day1, nk, nil, `{"id":"a","v":1}`))
	load(writeTable(t, root, "r8", day2, nk, nil, `{"id":"a","v":1}`, `{"id":"b","v":2}`))
	check("x_all", "a=1 a=1 b=2", "VIEW")
}

// TestInterruptedLoadIsFinishedWithoutDoubling loads a run whose second table fails inside DuckDB (its
// file, listed with its own hash, is not Parquet): the first table is in, the run is not listed, and
// loading it again once the file is good adds the second table only — every row once — and lists the
// run.
func TestInterruptedLoadIsFinishedWithoutDoubling(t *testing.T) {
	root, w := openWarehouse(t)
	ctx := context.Background()
	m, _ := twoTableRun(t, root, `{"id":"a","v":1}`, `{"id":"b","v":2}`)
	good := m.Files[len(m.Files)-1]
	path := filepath.Join(root, filepath.FromSlash(good.Path))
	parquetBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := []byte("not parquet")
	sum := sha256.Sum256(bad)
	m.Files[len(m.Files)-1].SHA256, m.Files[len(m.Files)-1].Bytes = hex.EncodeToString(sum[:]), int64(len(bad))
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	err = w.LoadRun(ctx, lake.Dir(root), "", m, []Reject{{Stream: "x_a", Key: "a", Column: "v", Raw: "x", Reason: "test"}})
	if err == nil || !strings.Contains(err.Error(), "load x_b") {
		t.Fatalf("load with a broken file: %v", err)
	}
	count := func(q string) int {
		t.Helper()
		var n int
		if err := w.DB.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if loaded, _ := w.Loaded(ctx, "r1"); loaded || count("SELECT count(*) FROM x_a_history") != 2 || count("SELECT count(*) FROM "+LoadingTable) != 1 {
		t.Fatalf("after the failure: loaded %v, x_a_history %d rows, %d tables marked loading", loaded, count("SELECT count(*) FROM x_a_history"), count("SELECT count(*) FROM "+LoadingTable))
	}
	m.Files[len(m.Files)-1] = good
	if err := os.WriteFile(path, parquetBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := w.LoadRun(ctx, lake.Dir(root), "", m, []Reject{{Stream: "x_a", Key: "a", Column: "v", Raw: "x", Reason: "test"}}); err != nil {
		t.Fatal(err)
	}
	if loaded, _ := w.Loaded(ctx, "r1"); !loaded {
		t.Fatal("run not listed after the second load")
	}
	for q, want := range map[string]int{
		"SELECT count(*) FROM x_a_history": 2, "SELECT count(*) FROM x_b_history": 1, "SELECT count(*) FROM x_a": 2,
		"SELECT count(*) FROM " + RejectsTable: 1, "SELECT count(*) FROM " + LoadingTable: 0, "SELECT sum(v) FROM x_a": 3,
	} {
		if got := count(q); got != want {
			t.Errorf("%s = %d, want %d", q, got, want)
		}
	}
	// A third load of the same run changes nothing.
	if err := w.LoadRun(ctx, lake.Dir(root), "", m, nil); err != nil || count("SELECT count(*) FROM x_a_history") != 2 {
		t.Fatalf("loading again: %v, %d rows", err, count("SELECT count(*) FROM x_a_history"))
	}
}

// TestAlteredFileFailsTheLoadBeforeAnyTableChanges: files are checked against the manifest before
// the first table is loaded.
func TestAlteredFileFailsTheLoadBeforeAnyTableChanges(t *testing.T) {
	root, w := openWarehouse(t)
	m, second := twoTableRun(t, root, `{"id":"a","v":1}`)
	if err := os.WriteFile(filepath.Join(root, filepath.FromSlash(second.Files[0].Path)), []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := w.LoadRun(context.Background(), lake.Dir(root), "", m, nil)
	if err == nil || !strings.Contains(err.Error(), "altered") || !strings.Contains(err.Error(), second.Files[0].Path) {
		t.Fatalf("load of an altered file: %v", err)
	}
	var n int
	if err := w.DB.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'x_%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables exist after the refused load (%v)", n, err)
	}
}
