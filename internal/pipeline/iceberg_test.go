package pipeline

import (
	"context"
	"database/sql"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/iceberg-go/table"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/iceberg"
)

// The lake's Iceberg tables hold what the warehouse holds, read by two readers that are not the
// writer's code path: iceberg-go's scan, and DuckDB over exactly the data files the Iceberg manifests
// list. A snapshot table is its last run, an incremental one its history, and each run is an Iceberg
// snapshot an auditor can time-travel to.
func TestIcebergTablesMatchTheWarehouse(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			_, cfg := setup(t, sandbox.Options{Scale: 0.1}, nil)
			only(cfg, []string{"invoices"}, []string{"organizations", "datasync_invoices"})
			cfg.Iceberg.Enabled = nil // the default: on
			lakeOn(t, cfg, backend)
			var runs []*Result
			for range 2 {
				res := run(t, cfg)
				if res.Iceberg == nil || res.Iceberg.Error != "" || res.Iceberg.Snapshots != 3 {
					t.Fatalf("iceberg: %+v, want 3 snapshots (one per table)", res.Iceberg)
				}
				runs = append(runs, res)
			}
			ctx := context.Background()
			cat := openCatalog(t, cfg)
			st, err := OpenLake(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			db := query(t, cfg)
			listed := map[string]lake.FileInfo{}
			for _, r := range runs {
				for _, f := range r.Manifest.Files {
					listed[f.Path] = f
				}
			}
			for _, c := range []struct {
				table, money string
				history      bool // incremental: the Iceberg table is the history
			}{
				{"signicat_invoices", "total_invoice_amount", true},
				{"gsapi_datasync_invoices", "net_amount", true},
				{"gsapi_organizations", "", false},
			} {
				tbl, err := cat.Table(ctx, c.table)
				if err != nil {
					t.Fatalf("%s: %v", c.table, err)
				}
				from := c.table
				if c.history {
					from += "_history"
				}
				wantRows := scalar[int64](t, db, "SELECT count(*) FROM "+from)
				wantSum := ""
				if c.money != "" {
					wantSum = scalar[string](t, db, "SELECT sum("+c.money+")::VARCHAR FROM "+from)
				}
				// iceberg-go's scan of the current snapshot.
				rows, sum := scanIceberg(t, tbl, c.money)
				if rows != wantRows || sum != wantSum {
					t.Errorf("%s by iceberg-go: %d rows, sum %s; the warehouse's %s: %d rows, sum %s", c.table, rows, sum, from, wantRows, wantSum)
				}
				// DuckDB over the data files the manifests list.
				tasks, err := tbl.Scan().PlanFiles(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var files []lake.FileInfo
				for _, task := range tasks {
					rel := cat.RelPath(task.File.FilePath())
					if rel == "" {
						t.Fatalf("%s lists %s, outside the lake", c.table, task.File.FilePath())
					}
					f, ok := listed[rel]
					if !ok {
						t.Fatalf("%s lists %s, which no manifest does", c.table, rel)
					}
					files = append(files, f)
				}
				paths, release, err := lake.Local(t.Context(), st, files, t.TempDir(), false)
				if err != nil {
					t.Fatal(err)
				}
				list := "['" + strings.Join(paths, "', '") + "']"
				sumExpr := "NULL"
				if c.money != "" {
					sumExpr = "sum(" + c.money + ")::VARCHAR"
				}
				var n int64
				var s *string
				if err := db.QueryRow("SELECT count(*), "+sumExpr+" FROM read_parquet("+list+", union_by_name = true)").Scan(&n, &s); err != nil {
					t.Fatal(err)
				}
				release()
				if n != wantRows || (c.money != "" && (s == nil || *s != wantSum)) {
					t.Errorf("%s by DuckDB over the %d listed files: %d rows, sum %v; want %d, %s", c.table, len(files), n, s, wantRows, wantSum)
				}
				// One Iceberg snapshot per run, each naming its run; the first is the first run's state.
				snaps := tbl.Metadata().Snapshots()
				if len(snaps) != 2 || snaps[0].Summary.Properties[iceberg.RunIDProperty] != runs[0].Manifest.RunID ||
					snaps[1].Summary.Properties[iceberg.RunIDProperty] != runs[1].Manifest.RunID {
					t.Fatalf("%s: snapshots %v, want one per run", c.table, snaps)
				}
				first, _ := scanIceberg(t, tbl, "", table.WithSnapshotID(snaps[0].SnapshotID))
				if want := scalar[int64](t, db, fmt.Sprintf("SELECT count(*) FROM %s_history WHERE _run_id = '%s'", c.table, runs[0].Manifest.RunID)); first != want {
					t.Errorf("%s as of run 1: %d rows, the warehouse's history holds %d", c.table, first, want)
				}
				t.Logf("%s: %d rows, sum %s; %d files; run 1: %d rows", c.table, rows, sum, len(files), first)
			}
		})
	}
}

// scanIceberg reads the table through iceberg-go's scan and returns its rows and the sum of the money
// column (a decimal, printed as DuckDB prints its sum; "" when money is "").
func scanIceberg(t *testing.T, tbl *table.Table, money string, opts ...table.ScanOption) (int64, string) {
	t.Helper()
	at, err := tbl.Scan(opts...).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	if money == "" {
		return at.NumRows(), ""
	}
	idx := at.Schema().FieldIndices(money)
	if len(idx) == 0 {
		t.Fatalf("the Iceberg table has no column %s: %v", money, at.Schema())
	}
	dt, ok := at.Schema().Field(idx[0]).Type.(*arrow.Decimal128Type)
	if !ok {
		t.Fatalf("%s is %s, not a decimal", money, at.Schema().Field(idx[0]).Type)
	}
	total := new(big.Int)
	for _, chunk := range at.Column(idx[0]).Data().Chunks() {
		d := chunk.(*array.Decimal128)
		for i := range d.Len() {
			if d.IsValid(i) {
				total.Add(total, d.Value(i).BigInt())
			}
		}
	}
	return at.NumRows(), decimalString(total, int(dt.Scale))
}

func decimalString(v *big.Int, scale int) string {
	s := new(big.Int).Abs(v).String()
	for len(s) <= scale {
		s = "0" + s
	}
	if scale > 0 {
		s = s[:len(s)-scale] + "." + s[len(s)-scale:]
	}
	if v.Sign() < 0 {
		s = "-" + s
	}
	return s
}

// The catalog can be a Postgres database instead of the SQLite file: the same tables, snapshots and
// rows. The test starts a throwaway server from Debian's postgresql package (.ci/run installs it).
func TestIcebergCatalogOnPostgres(t *testing.T) {
	t.Parallel()
	uri := startPostgres(t)
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, []string{"organizations"})
	cfg.Iceberg.Enabled, cfg.Iceberg.Catalog = nil, uri
	for range 2 {
		if res := run(t, cfg); res.Iceberg == nil || res.Iceberg.Error != "" || res.Iceberg.Snapshots != 2 {
			t.Fatalf("iceberg: %+v", res.Iceberg)
		}
	}
	if sqlite, _ := filepath.Glob(filepath.Join(filepath.Dir(cfg.Warehouse), "*iceberg.db")); len(sqlite) > 0 {
		t.Errorf("a SQLite catalog was written beside the warehouse: %v", sqlite)
	}
	ctx := context.Background()
	cat, err := iceberg.Open(ctx, uri, "ledgerlake", cfg.OutputDir)
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	db := query(t, cfg)
	for table, from := range map[string]string{"signicat_invoices": "signicat_invoices_history", "gsapi_organizations": "gsapi_organizations"} {
		tbl, err := cat.Table(ctx, table)
		if err != nil {
			t.Fatal(err)
		}
		rows, _ := scanIceberg(t, tbl, "")
		if want := scalar[int64](t, db, "SELECT count(*) FROM "+from); rows != want || len(tbl.Metadata().Snapshots()) != 2 {
			t.Errorf("%s in the Postgres catalog: %d rows, %d snapshots; the warehouse's %s: %d rows", table, rows, len(tbl.Metadata().Snapshots()), from, want)
		}
	}
}

// startPostgres runs a PostgreSQL server for the test on a loopback port (as the postgres user when
// the test runs as root, which the server refuses) and returns a URL to its database.
func startPostgres(t *testing.T) string {
	t.Helper()
	initdb, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(initdb) == 0 {
		t.Skip("no PostgreSQL server installed (Debian package postgresql; .ci/run installs it)")
	}
	bin := filepath.Dir(initdb[len(initdb)-1])
	dir, err := os.MkdirTemp("", "ledgerlake-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	command := func(name string, args ...string) *exec.Cmd {
		if os.Geteuid() == 0 {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(bin, name)}, args...)...)
		}
		return exec.Command(filepath.Join(bin, name), args...)
	}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("postgres"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			os.Chown(dir, uid, gid)
		}
	}
	data := filepath.Join(dir, "data")
	if out, err := command("initdb", "-D", data, "-U", "ledgerlake", "--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := command("postgres", "-D", data, "-k", dir, "-p", strconv.Itoa(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	var logs strings.Builder
	srv.Stderr = &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// runuser does not pass signals on: pg_ctl stops the server itself.
		if out, err := command("pg_ctl", "stop", "-D", data, "-m", "immediate").CombinedOutput(); err != nil {
			t.Logf("pg_ctl stop: %v\n%s", err, out)
			srv.Process.Kill()
		}
		srv.Wait()
	})
	uri := fmt.Sprintf("postgres://ledgerlake@127.0.0.1:%d/postgres?sslmode=disable", port)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		db, err := sql.Open("pgx", uri)
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return uri
		}
		if time.Now().After(deadline) {
			t.Fatalf("postgres did not start: %v\n%s", err, logs.String())
		}
	}
}

// openCatalog opens cfg's Iceberg catalog for the rest of the test.
func openCatalog(t *testing.T, cfg *config.Config) *iceberg.Catalog {
	t.Helper()
	cat, err := iceberg.Open(t.Context(), cfg.IcebergCatalog(), "ledgerlake", cfg.OutputDir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cat.Close() })
	return cat
}
