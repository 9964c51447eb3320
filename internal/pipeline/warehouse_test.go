package pipeline

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb/duckdbtest"
)

// A warehouse DuckDB cannot read — cut short, or with a block whose checksum fails — no longer fails
// every run: the next run sets it aside (kept, not deleted) and rebuilds it from the lake, every row,
// whether the lake is a directory or a bucket.
func TestDamagedWarehouseIsRebuiltFromTheLake(t *testing.T) {
	t.Parallel()
	damage := map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"corrupt block": func(b []byte) []byte {
			b = bytes.Clone(b)
			for i := 4096 + 100; i < 4096+164; i++ {
				b[i] ^= 0x5a
			}
			return b
		},
	}
	for _, backend := range backends {
		for name, damage := range damage {
			t.Run(backend+"/"+name, func(t *testing.T) { t.Parallel(); rebuildsDamaged(t, backend, damage) })
		}
	}
}

// rebuildsDamaged runs once, damages the warehouse, and checks the next run rebuilds it from the lake
// on backend.
func rebuildsDamaged(t *testing.T, backend string, damage func([]byte) []byte) {
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, nil)
	lakeOn(t, cfg, backend)
	first := run(t, cfg)
	data, err := os.ReadFile(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	broken := damage(data)
	if err := os.WriteFile(cfg.Warehouse, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
	if err == nil {
		_, err = wh.LoadedRuns(context.Background())
		wh.Close()
	}
	if !duckdb.IsDamaged(err) {
		t.Fatalf("the damaged warehouse reads (%v): the case is moot", err)
	}
	second := run(t, cfg)
	if !second.OK() {
		t.Fatalf("the run after the damage failed: %+v", second.Failed)
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM _ledgerlake_runs"); n != 2 {
		t.Errorf("%d runs in the rebuilt warehouse, want both", n)
	}
	want := first.Manifest.Streams[0].Rows
	if n := scalar[int64](t, db, "SELECT count(*) FROM signicat_invoices"); n != want {
		t.Errorf("%d invoices after the rebuild, want %d", n, want)
	}
	aside, _ := filepath.Glob(cfg.Warehouse + ".invalid-*")
	if len(aside) != 1 {
		t.Fatalf("the damaged file was not set aside: %v", aside)
	}
	if kept, _ := os.ReadFile(aside[0]); !bytes.Equal(kept, broken) {
		t.Errorf("the file set aside is not the damaged warehouse")
	}
}

// A warehouse another process holds open for writing is not damaged: the run fails, naming the lock,
// and leaves the file where and as it is; once released, the next run loads into it.
func TestLockedWarehouseIsNeverSetAside(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, nil)
	run(t, cfg)
	before, err := os.ReadFile(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	release := duckdbtest.Hold(t, cfg.Warehouse)
	_, err = Run(context.Background(), Options{Config: cfg, HTTP: fastRetries})
	if !errors.Is(err, duckdb.ErrLocked) || duckdb.IsDamaged(err) {
		t.Fatalf("run against a held warehouse: %v, want ErrLocked", err)
	}
	release()
	if aside, _ := filepath.Glob(cfg.Warehouse + ".invalid-*"); len(aside) != 0 {
		t.Fatalf("a locked warehouse was set aside: %v", aside)
	}
	if after, err := os.ReadFile(cfg.Warehouse); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("a locked warehouse was changed (%v)", err)
	}
	if res := run(t, cfg); !res.OK() {
		t.Fatalf("the run after the lock was released failed: %+v", res.Failed)
	}
	if n := scalar[int](t, query(t, cfg), "SELECT count(*) FROM _ledgerlake_runs"); n != 2 {
		t.Errorf("%d runs loaded, want 2", n)
	}
}
