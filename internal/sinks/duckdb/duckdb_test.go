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

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/parquet"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// writeRun writes rows (JSON objects) as one run's snapshot of table and returns its manifest.
func writeRun(t *testing.T, root, runID string, at time.Time, table string, incremental bool, rows ...string) *lake.Manifest {
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
	sch, err := typing.NewSchema(table, []string{"id"}, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	sch.Observe(recs)
	conv := typing.NewConverter(memory.DefaultAllocator, sch, runID, at)
	defer conv.Release()
	for _, r := range recs {
		conv.Append(r)
	}
	batch := conv.Flush()
	defer batch.Release()
	w := parquet.NewStreamWriter(root, table, runID, conv.Schema())
	if err := w.Write("run_date="+at.Format("2006-01-02"), batch); err != nil {
		t.Fatal(err)
	}
	files, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	info := lake.TableInfo{Name: table, Key: []string{"id"}, Incremental: incremental, Rows: int64(len(rows))}
	return &lake.Manifest{RunID: runID, StartedAt: at, FinishedAt: at, Status: "ok", Files: files,
		Streams: []lake.StreamReport{{Table: table, Status: "ok", Rows: int64(len(rows)), Tables: []lake.TableInfo{info}}}}
}

// current returns the current table as id → v.
func current(t *testing.T, w *Warehouse, table string) map[string]int64 {
	t.Helper()
	rows, err := w.DB.Query("SELECT id, v FROM " + Quote(table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var id string
		var v int64
		if err := rows.Scan(&id, &v); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[id]; dup {
			t.Fatalf("%s: key %s twice in the current state", table, id)
		}
		out[id] = v
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

// TestCurrentStateIsOneRowPerKey covers both ways the current state is built, and the switches between
// them: a view of the history rows when every key is there once, a table of the newest version per key
// otherwise.
func TestCurrentStateIsOneRowPerKey(t *testing.T) {
	root, w := openWarehouse(t)
	ctx := context.Background()
	day1 := time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	load := func(m *lake.Manifest) {
		t.Helper()
		if err := w.LoadRun(ctx, root, m, nil); err != nil {
			t.Fatal(err)
		}
	}
	// A snapshot stream: the current state is the latest run's rows, a key repeated within it once.
	load(writeRun(t, root, "r1", day1, "x_snap", false, `{"id":"a","v":1}`, `{"id":"b","v":1}`, `{"id":"b","v":1}`))
	if got := current(t, w, "x_snap"); len(got) != 2 {
		t.Fatalf("snapshot run 1: %v, want a and b once each", got)
	}
	if k := kind(t, w, "x_snap"); k != "BASE TABLE" {
		t.Fatalf("snapshot with a repeated key is a %s", k)
	}
	load(writeRun(t, root, "r2", day2, "x_snap", false, `{"id":"a","v":2}`, `{"id":"c","v":2}`))
	if got := current(t, w, "x_snap"); len(got) != 2 || got["a"] != 2 || got["c"] != 2 {
		t.Fatalf("snapshot run 2: %v, want a=2 c=2", got)
	}
	if k := kind(t, w, "x_snap"); k != "VIEW" {
		t.Fatalf("snapshot with unique keys is a %s", k)
	}
	load(writeRun(t, root, "r2b", day2.Add(time.Hour), "x_snap", false, `{"id":"d","v":3}`, `{"id":"d","v":3}`))
	if got := current(t, w, "x_snap"); len(got) != 1 || got["d"] != 3 || kind(t, w, "x_snap") != "BASE TABLE" {
		t.Fatalf("snapshot run 3: %v as a %s, want d=3 as a table", got, kind(t, w, "x_snap"))
	}
	// An incremental stream: the newest version of every key ever loaded.
	load(writeRun(t, root, "r3", day1, "x_inc", true, `{"id":"a","v":1}`, `{"id":"b","v":1}`))
	if got := current(t, w, "x_inc"); len(got) != 2 || got["a"] != 1 || got["b"] != 1 || kind(t, w, "x_inc") != "VIEW" {
		t.Fatalf("incremental run 1: %v as a %s, want a=1 b=1 as a view", got, kind(t, w, "x_inc"))
	}
	load(writeRun(t, root, "r4", day2, "x_inc", true, `{"id":"b","v":2}`, `{"id":"c","v":2}`))
	if got := current(t, w, "x_inc"); len(got) != 3 || got["a"] != 1 || got["b"] != 2 || got["c"] != 2 || kind(t, w, "x_inc") != "BASE TABLE" {
		t.Fatalf("incremental run 2: %v as a %s, want a=1 b=2 c=2 as a table", got, kind(t, w, "x_inc"))
	}
	var hist int
	if err := w.DB.QueryRow("SELECT count(*) FROM x_inc_history").Scan(&hist); err != nil || hist != 4 {
		t.Fatalf("x_inc_history has %d rows (%v), want 4", hist, err)
	}
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
	err = w.LoadRun(ctx, root, m, []Reject{{Stream: "x_a", Key: "a", Column: "v", Raw: "x", Reason: "test"}})
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
	if err := w.LoadRun(ctx, root, m, []Reject{{Stream: "x_a", Key: "a", Column: "v", Raw: "x", Reason: "test"}}); err != nil {
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
	if err := w.LoadRun(ctx, root, m, nil); err != nil || count("SELECT count(*) FROM x_a_history") != 2 {
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
	err := w.LoadRun(context.Background(), root, m, nil)
	if err == nil || !strings.Contains(err.Error(), "altered") || !strings.Contains(err.Error(), second.Files[0].Path) {
		t.Fatalf("load of an altered file: %v", err)
	}
	var n int
	if err := w.DB.QueryRow("SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'x_%'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables exist after the refused load (%v)", n, err)
	}
}
