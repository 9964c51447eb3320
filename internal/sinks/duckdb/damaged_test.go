package duckdb

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb/duckdbtest"
)

// loadedWarehouse is the bytes of a checkpointed warehouse holding one loaded run, in a directory
// named "blocks": DuckDB's "Corrupt ... in block at location" once read as "locked", and a path may
// hold the word too.
func loadedWarehouse(t *testing.T) (dir string, data []byte) {
	t.Helper()
	root := t.TempDir()
	dir = filepath.Join(root, "blocks")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "w.duckdb")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for range 2000 {
		rows = append(rows, `{"id":"some invoice number","v":12345}`)
	}
	m := writeRun(t, root, "r1", time.Date(2026, 11, 1, 2, 0, 0, 0, time.UTC), "x_a", true, rows...)
	if err := w.LoadRun(context.Background(), lake.Dir(root), "", m, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.DB.Exec("CHECKPOINT"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if data, err = os.ReadFile(path); err != nil {
		t.Fatal(err)
	}
	return dir, data
}

// A warehouse DuckDB cannot read is recognised as damaged — whether it is not a database, cut short
// anywhere, or has a block whose checksum fails — so a run can set it aside and rebuild it; never
// as locked (which a run must not touch).
func TestDamagedWarehouseIsRecognised(t *testing.T) {
	dir, data := loadedWarehouse(t)
	flipped := func(at int) []byte {
		b := append([]byte(nil), data...)
		for i := at; i < at+64; i++ {
			b[i] ^= 0x5a
		}
		return b
	}
	cases := map[string][]byte{
		"zeros":             make([]byte, 100),
		"header only":       data[:4096],
		"half":              data[:len(data)/2],
		"first block flip":  flipped(4096),
		"second block flip": flipped(8192),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".duckdb")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			wh, err := OpenReadOnly(path)
			if err == nil {
				_, err = wh.LoadedRuns(context.Background())
				wh.Close()
			}
			if !IsDamaged(err) || errors.Is(err, ErrLocked) {
				t.Fatalf("err = %v, want ErrDamaged", err)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("the error does not name the file: %v", err)
			}
			if err := os.WriteFile(path+".wal", []byte("log"), 0o644); err != nil {
				t.Fatal(err)
			}
			aside, err := SetAside(path)
			if err != nil {
				t.Fatal(err)
			}
			kept, err := os.ReadFile(aside)
			if err != nil || string(kept) != string(b) {
				t.Fatalf("the damaged file is not kept whole at %s: %v", aside, err)
			}
			if _, err := os.Stat(aside + ".wal"); err != nil {
				t.Errorf("the write-ahead log did not go with it: %v", err)
			}
			for _, p := range []string{path, path + ".wal"} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s still there after SetAside: %v", p, err)
				}
			}
		})
	}
	// The intact file reads, as a control for the cases above.
	path := filepath.Join(dir, "intact.duckdb")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	wh, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if runs, err := wh.LoadedRuns(context.Background()); err != nil || len(runs) != 1 {
		t.Fatalf("intact warehouse: runs %v, %v", runs, err)
	}
}

// A block only a load reads can be damaged in a file that opens and lists its runs: the update that
// meets it sets the warehouse aside, so the next run rebuilds it from the lake instead of failing on
// it every night.
func TestUpdateSetsADamagedWarehouseAside(t *testing.T) {
	dir, data := loadedWarehouse(t)
	path := filepath.Join(dir, "w.duckdb")
	cut := dataOnlyDamage(t, path, data)
	err := Update(path, "", func(w *Warehouse) (bool, error) {
		var n int64
		return false, w.DB.QueryRow("SELECT sum(length(id)) FROM x_a_history").Scan(&n)
	})
	if !IsDamaged(err) || !strings.Contains(err.Error(), path+".invalid-") {
		t.Fatalf("err = %v, want ErrDamaged naming where the file was set aside", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the damaged warehouse is still in place: %v", err)
	}
	aside, _ := filepath.Glob(path + ".invalid-*")
	if len(aside) != 1 {
		t.Fatalf("set aside as %v, want one file", aside)
	}
	if kept, _ := os.ReadFile(aside[0]); string(kept) != string(cut) {
		t.Errorf("the file set aside is not the damaged one")
	}
	// An error of the update's own (a model failing) leaves the warehouse in place.
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	err = Update(path, "", func(w *Warehouse) (bool, error) {
		_, err := w.DB.Exec("SELECT * FROM no_such_table")
		return false, err
	})
	if err == nil || IsDamaged(err) {
		t.Fatalf("err = %v, want the query's own error", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("an intact warehouse was moved: %v", err)
	}
}

// dataOnlyDamage writes to path a copy of data with a block flipped that only reading x_a_history
// reaches: the file opens and lists its runs. It returns the copy.
func dataOnlyDamage(t *testing.T, path string, data []byte) []byte {
	t.Helper()
	for at := 4096; at+4096 <= len(data); at += 4096 {
		b := append([]byte(nil), data...)
		for i := at + 100; i < at+164; i++ {
			b[i] ^= 0x5a
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		wh, err := OpenReadOnly(path)
		if err != nil {
			continue
		}
		var n int64
		_, err = wh.LoadedRuns(context.Background())
		rerr := wh.DB.QueryRow("SELECT sum(length(id)) FROM x_a_history").Scan(&n)
		wh.Close()
		if err == nil && rerr != nil {
			return b
		}
	}
	t.Fatal("no block of the warehouse is read only by its data")
	return nil
}

// TestMain lets the test binary serve as the other process holding a warehouse open for writing.
func TestMain(m *testing.M) {
	duckdbtest.ServeHolder()
	if err := parquet.RegisterZstd(); err != nil { // the tests load files written as extract writes them
		os.Stdout.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// A warehouse another process holds open is locked, not damaged: nothing may set it aside.
func TestLockedWarehouseIsNotDamaged(t *testing.T) {
	dir, data := loadedWarehouse(t)
	path := filepath.Join(dir, "held.duckdb")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	duckdbtest.Hold(t, path)
	_, err := OpenReadOnly(path)
	if !errors.Is(err, ErrLocked) || IsDamaged(err) {
		t.Fatalf("err = %v, want ErrLocked and not damaged", err)
	}
}
