package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/iceberg-go/table"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sinks/iceberg"
)

// icebergRows is the rows of the Iceberg table name in cfg's lake, read from catalog through
// iceberg-go, and the table's snapshots.
func icebergRows(t *testing.T, cfg *config.Config, catalog, name string) (rows int64, snapshots int) {
	t.Helper()
	ctx := context.Background()
	cat, err := iceberg.Open(ctx, catalog, "ledgerlake", cfg.OutputDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	tbl, err := cat.Table(ctx, name)
	if err != nil {
		t.Fatalf("%s in %s: %v", name, catalog, err)
	}
	rows, _ = scanIceberg(t, tbl, "")
	return rows, len(tbl.Metadata().Snapshots())
}

// Two pipelines whose warehouses share a folder share no Iceberg table: each default catalog is
// named for its warehouse. One catalog and namespace named for both (as the old default,
// iceberg.db, was) refuses the second lake's table with an error naming both lakes, rather than
// mixing their rows; and that old catalog, holding both lakes' tables, is used by neither once the
// default applies — each registers its whole history in its own.
func TestIcebergTablesBelongToOneLake(t *testing.T) {
	t.Parallel()
	_, one := setup(t, sandbox.Options{Scale: 0.05}, nil)
	_, two := setup(t, sandbox.Options{Scale: 0.05}, nil)
	dir := filepath.Dir(one.Warehouse)
	two.Warehouse, two.OutputDir = filepath.Join(dir, "two.duckdb"), filepath.Join(dir, "lake2")
	only(one, []string{"invoices"}, nil)
	only(two, []string{"invoices", "accounts"}, nil)
	shared := filepath.Join(dir, "iceberg.db")
	for _, cfg := range []*config.Config{one, two} {
		cfg.Iceberg.Enabled, cfg.Iceberg.Catalog = nil, shared
	}
	if res := run(t, one); res.Iceberg.Error != "" {
		t.Fatalf("first lake: %s", res.Iceberg.Error)
	}
	res, err := Run(context.Background(), Options{Config: two, HTTP: fastRetries})
	if err == nil || res == nil || res.Iceberg == nil {
		t.Fatalf("the second lake's run in the shared catalog succeeded: %v", err)
	}
	lake1, _ := filepath.Abs(one.OutputDir)
	lake2, _ := filepath.Abs(two.OutputDir)
	if e := err.Error(); !strings.Contains(e, iceberg.ErrOtherLake.Error()) || !strings.Contains(e, "signicat_invoices") ||
		!strings.Contains(e, lake1) || !strings.Contains(e, lake2) {
		t.Errorf("second lake in the shared catalog: error %q, want the table refused naming both lakes", e)
	}
	// Read and closed: a warehouse open in this process would answer later queries from this state.
	wh, err := duckdb.OpenReadOnly(one.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	invoices := scalar[int64](t, wh.DB, "SELECT count(*) FROM signicat_invoices_history")
	wh.Close()
	if rows, _ := icebergRows(t, one, shared, "signicat_invoices"); rows != invoices {
		t.Errorf("the first lake's table holds %d rows after the second lake's run, want its own %d", rows, invoices)
	}

	for _, cfg := range []*config.Config{one, two} {
		cfg.Iceberg.Catalog = ""
		res := run(t, cfg)
		if res.Iceberg.Error != "" || res.Iceberg.Catalog != cfg.IcebergCatalog() {
			t.Fatalf("%s: iceberg %+v, want registered in %s", cfg.Warehouse, res.Iceberg, cfg.IcebergCatalog())
		}
		db := query(t, cfg)
		for name, from := range map[string]string{"signicat_invoices": "signicat_invoices_history", "signicat_accounts": "signicat_accounts"} {
			if name == "signicat_accounts" && cfg == one {
				continue
			}
			want := scalar[int64](t, db, "SELECT count(*) FROM "+from)
			if rows, snaps := icebergRows(t, cfg, cfg.IcebergCatalog(), name); rows != want || snaps != 2 {
				t.Errorf("%s in %s: %d rows in %d snapshots, want the warehouse's %d in 2", name, cfg.IcebergCatalog(), rows, snaps, want)
			}
		}
	}
	if one.IcebergCatalog() == two.IcebergCatalog() {
		t.Errorf("both pipelines default to the catalog %s", one.IcebergCatalog())
	}
}

// A lake registered in the old default catalog (iceberg.db beside the warehouse), which holds its
// tables and no other lake's, keeps using it: its tables and their history stay where they were.
func TestIcebergOldDefaultCatalogIsKept(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, nil)
	legacy := filepath.Join(filepath.Dir(cfg.Warehouse), "iceberg.db")
	cfg.Iceberg.Enabled, cfg.Iceberg.Catalog = nil, legacy // as the default was
	run(t, cfg)
	cfg.Iceberg.Catalog = ""
	res := run(t, cfg)
	if res.Iceberg.Error != "" || res.Iceberg.Catalog != legacy || res.Iceberg.Snapshots != 1 {
		t.Fatalf("iceberg %+v, want this run's snapshot in %s", res.Iceberg, legacy)
	}
	if _, err := os.Stat(cfg.IcebergCatalog()); err == nil {
		t.Errorf("a new catalog %s was made beside the old one", cfg.IcebergCatalog())
	}
	want := scalar[int64](t, query(t, cfg), "SELECT count(*) FROM signicat_invoices_history")
	if rows, snaps := icebergRows(t, cfg, legacy, "signicat_invoices"); rows != want || snaps != 2 {
		t.Errorf("%d rows in %d snapshots, want %d in 2", rows, snaps, want)
	}
}

// On a bucket, a lake whose prefix extends another's ("…/lake" and "…/lakex") is another lake: a
// catalog and namespace named for both refuse the second lake's table.
func TestIcebergRefusesAnotherLakesTableOnS3(t *testing.T) {
	t.Parallel()
	_, one := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(one, []string{"invoices"}, nil)
	lakeOn(t, one, "s3")
	_, two := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(two, []string{"invoices"}, nil)
	prefix := strings.NewReplacer("/", "_").Replace(t.Name()) + "-" + strconv.FormatInt(time.Now().UnixNano(), 10)
	one.OutputDir, two.OutputDir = s3Srv.URL("lake", prefix), s3Srv.URL("lake", prefix+"x")
	shared := filepath.Join(t.TempDir(), "shared.db")
	for _, cfg := range []*config.Config{one, two} {
		cfg.Iceberg.Enabled, cfg.Iceberg.Catalog = nil, shared
	}
	if res := run(t, one); res.Iceberg.Error != "" {
		t.Fatalf("first lake: %s", res.Iceberg.Error)
	}
	_, err := Run(context.Background(), Options{Config: two, HTTP: fastRetries})
	if err == nil || !strings.Contains(err.Error(), iceberg.ErrOtherLake.Error()) || !strings.Contains(err.Error(), "s3://lake/"+prefix+"x") {
		t.Fatalf("the second lake's run: %v, want its table refused, naming its location", err)
	}
	wh, err := duckdb.OpenReadOnly(one.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	want := scalar[int64](t, wh.DB, "SELECT count(*) FROM signicat_invoices_history")
	wh.Close()
	if rows, snaps := icebergRows(t, one, shared, "signicat_invoices"); rows != want || snaps != 1 {
		t.Errorf("the first lake's table: %d rows in %d snapshots, want its own %d in 1", rows, snaps, want)
	}
}

// conformedCarryFieldIDs checks that every conformed copy the table lists (under the lake's
// _iceberg/) carries, for each column, the table's field id, so a reader that ignores name mapping
// resolves it; it returns how many copies it checked.
func conformedCarryFieldIDs(t *testing.T, tbl *table.Table) int {
	t.Helper()
	tasks, err := tbl.Scan().PlanFiles(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, task := range tasks {
		loc := task.File.FilePath()
		if !strings.Contains(loc, "/_iceberg/") {
			continue
		}
		n++
		rdr, err := file.OpenParquetFile(loc, false)
		if err != nil {
			t.Fatal(err)
		}
		sc := rdr.MetaData().Schema
		for i := range sc.NumColumns() {
			col := sc.Column(i)
			want, ok := tbl.Schema().FindFieldByName(col.ColumnPath()[0])
			if !ok || col.SchemaNode().FieldID() != int32(want.ID) {
				t.Errorf("%s: column %s has field id %d, the table's is %d", loc, col.Path(), col.SchemaNode().FieldID(), want.ID)
			}
		}
		rdr.Close()
	}
	return n
}

// A catalog whose table names metadata the lake no longer holds (a lake restored from a copy without
// its catalog, or its _iceberg/ removed) does not fail every run from then on: the table is registered
// again from every committed run, all its rows readable.
func TestIcebergTableWhoseMetadataIsGoneIsRegisteredAgain(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, nil)
	cfg.Iceberg.Enabled = nil // the default: on
	if res := run(t, cfg); res.Iceberg == nil || res.Iceberg.Error != "" {
		t.Fatalf("first run: iceberg %+v", res.Iceberg)
	}
	if err := os.RemoveAll(filepath.Join(cfg.OutputDir, "_iceberg")); err != nil {
		t.Fatal(err)
	}
	if res := run(t, cfg); res.Iceberg.Error != "" || res.Iceberg.Snapshots != 2 {
		t.Fatalf("run after the metadata went: iceberg %+v, want both runs registered again", res.Iceberg)
	}
	want := scalar[int64](t, query(t, cfg), "SELECT count(*) FROM signicat_invoices_history")
	if rows, snaps := icebergRows(t, cfg, cfg.IcebergCatalog(), "signicat_invoices"); rows != want || snaps != 2 {
		t.Errorf("signicat_invoices: %d rows in %d snapshots, want the warehouse's %d in 2", rows, snaps, want)
	}
}
