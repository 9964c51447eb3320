package pipeline

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/schema"
	"github.com/apache/iceberg-go/table"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/iceberg"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// parquetFieldIDs is the field id of every field of a local Parquet file, by dotted name as Iceberg
// names them (a list's element "tags.element", a map's "fields.key"; the repeated groups between
// carry no id and no name of their own).
func parquetFieldIDs(t *testing.T, path string) map[string]int32 {
	t.Helper()
	rdr, err := file.OpenParquetFile(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	out := map[string]int32{}
	var walk func(prefix string, n schema.Node)
	walk = func(prefix string, n schema.Node) {
		g, group := n.(*schema.GroupNode)
		name := prefix
		if !group || n.RepetitionType() != parquet.Repetitions.Repeated {
			name = prefix + n.Name()
			out[name] = n.FieldID()
			name += "."
		}
		if group {
			for i := range g.NumFields() {
				walk(name, g.Field(i))
			}
		}
	}
	root := rdr.MetaData().Schema.Root()
	for i := range root.NumFields() {
		walk("", root.Field(i))
	}
	return out
}

// lakeFieldIDs reads the field ids of every file of table that the runs listed, in run order.
func lakeFieldIDs(t *testing.T, cfg *config.Config, runs []*Result, tableName string) [][]map[string]int32 {
	t.Helper()
	st, err := OpenLake(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out [][]map[string]int32
	for _, r := range runs {
		files := r.Manifest.Files[:0:0]
		for _, f := range r.Manifest.Files {
			if f.Table == tableName {
				files = append(files, f)
			}
		}
		paths, release, err := lake.Local(t.Context(), st, files, t.TempDir(), true)
		if err != nil {
			t.Fatal(err)
		}
		var ids []map[string]int32
		for _, p := range paths {
			ids = append(ids, parquetFieldIDs(t, p))
		}
		release()
		out = append(out, ids)
	}
	return out
}

// rowsAt scans tbl at a snapshot with iceberg-go and prints each row's columns as text ("-" for a
// column the snapshot's schema lacks), sorted.
func rowsAt(t *testing.T, tbl *table.Table, snapshot int64, cols ...string) []string {
	t.Helper()
	at, err := tbl.Scan(table.WithSnapshotID(snapshot)).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	rec := array.NewTableReader(at, -1)
	defer rec.Release()
	var rows []string
	for rec.Next() {
		b := rec.RecordBatch()
		for i := range int(b.NumRows()) {
			var vals []string
			for _, c := range cols {
				idx := b.Schema().FieldIndices(c)
				if len(idx) != 1 {
					vals = append(vals, "-") // not in the snapshot's schema
					continue
				}
				vals = append(vals, b.Column(idx[0]).ValueStr(i))
			}
			rows = append(rows, strings.Join(vals, " "))
		}
	}
	slices.Sort(rows)
	return rows
}

// Every column of the lake's files carries its Iceberg field id (a list's element too, the lineage
// columns too), the same one in every run, a column added later an id no earlier file uses; the
// Iceberg tables hold the files' ids, so iceberg-go reads every column right with the name mapping
// removed — as an engine that ignores name mapping does. Before field ids, such a read found no
// column of the lake's files.
func TestLakeFilesCarryFieldIDsReadableWithoutNameMapping(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
			lakeOn(t, cfg, backend)
			pages := [][]string{
				{`{"id":1,"name":"a","amount":12.5,"tags":["x","y"],"lines":[{"a":1},{"a":2}]}`, `{"id":2,"name":"b","amount":1.25}`},
				{`{"id":3,"name":"c","amount":7.75,"tags":["z"],"brandNew":"hello","lines":[{"a":3,"b":"new"}]}`},
			}
			var runs []*Result
			for _, p := range pages {
				res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{fakeStream("things", []string{"id"}, p)})
				if err != nil || len(res.Failed) > 0 || res.Iceberg == nil || res.Iceberg.Error != "" {
					t.Fatalf("run: %v %+v %+v", err, res, res.Iceberg)
				}
				runs = append(runs, res)
			}
			ctx := context.Background()
			cat := openCatalog(t, cfg)
			for _, c := range []struct {
				table string
				added string // a column only the second run's files have
				cols  []string
				want  [2][]string // rows of each run's Iceberg snapshot
			}{
				{"test_things", "brand_new", []string{"id", "name", "amount", "tags", "brand_new"}, [2][]string{
					{"1 a 12.5 [\"x\",\"y\"] -", "2 b 1.25 (null) -"}, {"3 c 7.75 [\"z\"] hello"}}},
				{"test_things__lines", "b", []string{"_parent_id", "_position", "a", "b"}, [2][]string{
					{"1 1 1 -", "1 2 2 -"}, {"3 1 3 new"}}},
			} {
				files := lakeFieldIDs(t, cfg, runs, c.table)
				byName := map[string]int32{}
				for run, ids := range files {
					for _, f := range ids {
						for name, id := range f {
							if id <= 0 {
								t.Errorf("%s run %d: %s has no field id", c.table, run+1, name)
							}
							if have, ok := byName[name]; ok && have != id {
								t.Errorf("%s: %s has field id %d in one file, %d in another", c.table, name, have, id)
							}
							byName[name] = id
						}
						if _, ok := f[c.added]; ok != (run == 1) {
							t.Errorf("%s run %d: column %s present %v", c.table, run+1, c.added, ok)
						}
					}
				}
				for name, id := range byName {
					if name != c.added && id == byName[c.added] {
						t.Errorf("%s: the added column %s took %s's field id %d", c.table, c.added, name, id)
					}
				}
				for _, must := range []string{"_run_id", "_extracted_at", "tags.element"} {
					if _, ok := byName[must]; !ok && (must != "tags.element" || c.table == "test_things") {
						t.Errorf("%s: no field id for %s in %v", c.table, must, byName)
					}
				}

				tbl, err := cat.Table(ctx, c.table)
				if err != nil {
					t.Fatal(err)
				}
				for name, id := range byName {
					if f, ok := tbl.Schema().FindFieldByName(name); !ok || f.ID != int(id) {
						t.Errorf("%s: the Iceberg table's %s is field %d (found %v), the files' %d", c.table, name, f.ID, ok, id)
					}
				}
				tx := tbl.NewTransaction()
				if err := tx.RemoveProperties([]string{table.DefaultNameMappingKey}); err != nil {
					t.Fatal(err)
				}
				if tbl, err = tx.Commit(ctx); err != nil {
					t.Fatal(err)
				}
				if tbl.NameMapping() != nil {
					t.Fatal("the name mapping is still there")
				}
				snaps := tbl.Metadata().Snapshots()
				if len(snaps) != 2 {
					t.Fatalf("%s: %d snapshots, want one per run", c.table, len(snaps))
				}
				for i, s := range snaps {
					if got := rowsAt(t, tbl, s.SnapshotID, c.cols...); !slices.Equal(got, c.want[i]) {
						t.Errorf("%s run %d without name mapping: %q, want %q", c.table, i+1, got, c.want[i])
					}
					if got := rowsAt(t, tbl, s.SnapshotID, "_run_id"); len(got) == 0 || got[0] != runs[i].Manifest.RunID || got[len(got)-1] != got[0] {
						t.Errorf("%s run %d: _run_id %v, want %s", c.table, i+1, got, runs[i].Manifest.RunID)
					}
				}
			}
		})
	}
}

// A lake written before field ids (testdata/lake-before-field-ids: two runs of test_things by
// ledgerlake at 0045856, files and _schemas without ids) keeps working when a run upgrades it: the run
// numbers the persisted schema and writes files with ids; the lake still verifies; its Iceberg table
// — registered from the old runs with fresh ids, which are not the files' — is rebuilt once with the
// files' ids (the old one kept as test_things__until_2), every run's snapshot holding the rows the
// warehouse's history holds for it; the next run changes nothing more.
func TestLakeBeforeFieldIDsIsUpgradedByARun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
	if err := os.CopyFS(cfg.OutputDir, os.DirFS("testdata/lake-before-field-ids")); err != nil {
		t.Fatal(err)
	}
	old, err := filepath.Glob(filepath.Join(cfg.OutputDir, "test_things", "*", "*.parquet"))
	if err != nil || len(old) != 2 {
		t.Fatalf("the fixture's files: %v %v", old, err)
	}
	for _, f := range old {
		for name, id := range parquetFieldIDs(t, f) {
			if id >= 0 {
				t.Fatalf("the fixture is not a lake before field ids: %s has %s = %d", f, name, id)
			}
		}
	}
	var runs []*Result
	for _, p := range [][]string{
		{`{"id":4,"name":"d","amount":2.5,"tags":["w"],"brandNew":"x","lines":[{"a":4}]}`},
		{`{"id":5,"name":"e","amount":3.5,"later":false}`},
	} {
		res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{fakeStream("things", []string{"id"}, p)})
		if err != nil || len(res.Failed) > 0 || res.Iceberg == nil || res.Iceberg.Error != "" {
			t.Fatalf("run: %v %+v %+v", err, res, res.Iceberg)
		}
		runs = append(runs, res)
	}
	if checked, problems, err := lake.Verify(t.Context(), lake.Dir(cfg.OutputDir)); err != nil || len(problems) > 0 || checked == 0 {
		t.Fatalf("verify after the upgrade: %d checked, %v, %v", checked, problems, err)
	}
	var persisted typing.Schema
	if found, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.SchemaDir, "test_things", &persisted); !found || err != nil {
		t.Fatalf("persisted schema: %v %v", found, err)
	}
	files := lakeFieldIDs(t, cfg, runs, "test_things")
	fileIDs := files[0][0]
	for _, c := range persisted.Columns {
		if c.ID <= 0 || (fileIDs[c.Name] != 0 && fileIDs[c.Name] != int32(c.ID)) {
			t.Errorf("%s: id %d in _schemas, %d in the upgraded run's file", c.Name, c.ID, fileIDs[c.Name])
		}
	}
	if !maps.Equal(fileIDs, files[1][0]) {
		t.Errorf("field ids moved between the two runs after the upgrade: %v, then %v", fileIDs, files[1][0])
	}

	ctx := context.Background()
	cat := openCatalog(t, cfg)
	if _, err := cat.Table(ctx, "test_things__until_2"); err != nil {
		t.Errorf("the table numbered before ids is not kept: %v", err)
	}
	if _, err := cat.Table(ctx, "test_things__until_3"); err == nil {
		t.Error("the run after the upgrade rebuilt the table again")
	}
	tbl, err := cat.Table(ctx, "test_things")
	if err != nil {
		t.Fatal(err)
	}
	for name, id := range fileIDs {
		if f, ok := tbl.Schema().FindFieldByName(name); !ok || f.ID != int(id) {
			t.Errorf("the rebuilt table's %s is field %d (found %v), the files' %d", name, f.ID, ok, id)
		}
	}
	db := query(t, cfg)
	snaps := tbl.Metadata().Snapshots()
	if len(snaps) != 4 {
		t.Fatalf("%d snapshots, want one per run (2 before the upgrade, 2 after)", len(snaps))
	}
	for _, s := range snaps {
		runID := s.Summary.Properties[iceberg.RunIDProperty]
		where := " FROM test_things_history WHERE _run_id = '" + runID + "'"
		wantRows, wantSum := scalar[int64](t, db, "SELECT count(*)"+where), scalar[string](t, db, "SELECT sum(amount)::VARCHAR"+where)
		wantNames := scalar[string](t, db, "SELECT string_agg(id || ' ' || name, ',' ORDER BY id)"+where)
		rows, sum := scanIceberg(t, tbl, "amount", table.WithSnapshotID(s.SnapshotID))
		names := strings.Join(rowsAt(t, tbl, s.SnapshotID, "id", "name"), ",")
		if rows != wantRows || sum != wantSum || names != wantNames || rows == 0 {
			t.Errorf("run %s in Iceberg: %d rows, sum %s, %q; the warehouse's history: %d rows, sum %s, %q", runID, rows, sum, names, wantRows, wantSum, wantNames)
		}
	}
}
