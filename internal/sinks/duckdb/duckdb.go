// Package duckdb loads committed Parquet snapshots into the DuckDB warehouse. A run loads in one
// transaction, so a reader sees the previous state or the new one, never a mix: every snapshot is
// appended to X_S_history, the current-state table X_S is rebuilt from it, and the run's report and
// rejects are recorded. Loading a run that is already loaded changes nothing.
package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// Metadata tables kept beside the data.
const (
	RunsTable    = "_ledgerlake_runs"
	RejectsTable = "_ledgerlake_rejects"
)

// ErrLocked means another process holds the warehouse open for writing.
var ErrLocked = errors.New("the warehouse is locked by another process (a run in progress?)")

// Warehouse is an open DuckDB file.
type Warehouse struct {
	DB   *sql.DB
	Path string
}

// Open opens (creating if needed) the warehouse for writing.
func Open(path string) (*Warehouse, error) {
	return open(path, "")
}

// OpenReadOnly opens an existing warehouse for queries; writes fail.
func OpenReadOnly(path string) (*Warehouse, error) {
	return open(path, "?access_mode=READ_ONLY")
}

func open(path, params string) (*Warehouse, error) {
	db, err := sql.Open("duckdb", path+params)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		if strings.Contains(err.Error(), "lock") {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("opening warehouse %s: %w", path, err)
	}
	// One connection: DuckDB serialises writers anyway, and temp state stays on one connection.
	db.SetMaxOpenConns(1)
	return &Warehouse{DB: db, Path: path}, nil
}

// Close closes the database.
func (w *Warehouse) Close() error { return w.DB.Close() }

// TableSpec tells the loader how a table's current state follows from its history.
type TableSpec struct {
	Key         []string
	Incremental bool // current = latest version of every key ever loaded; else the latest run's rows
}

// Reject is a rejected value to record with the run.
type Reject = typing.Reject

// Quote quotes an identifier for DuckDB.
func Quote(id string) string { return `"` + strings.ReplaceAll(id, `"`, `""`) + `"` }

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// Loaded reports whether the run is already in the warehouse.
func (w *Warehouse) Loaded(ctx context.Context, runID string) (bool, error) {
	if err := w.ensureMeta(ctx, w.DB); err != nil {
		return false, err
	}
	var n int
	err := w.DB.QueryRowContext(ctx, "SELECT count(*) FROM "+RunsTable+" WHERE run_id = ?", runID).Scan(&n)
	return n > 0, err
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (w *Warehouse) ensureMeta(ctx context.Context, db execer) error {
	for _, ddl := range []string{
		`CREATE TABLE IF NOT EXISTS ` + RunsTable + ` (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
			loaded_at TIMESTAMPTZ, status VARCHAR, streams JSON)`,
		`CREATE TABLE IF NOT EXISTS ` + RejectsTable + ` (run_id VARCHAR, table_name VARCHAR, key VARCHAR, column_name VARCHAR,
			raw_value VARCHAR, reason VARCHAR)`,
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("warehouse metadata: %w", err)
		}
	}
	return nil
}

// LoadRun loads the files of manifest m (under root) in one transaction. specs has an entry for every
// table the manifest names. Streams that failed in the run keep their previous current state.
func (w *Warehouse) LoadRun(ctx context.Context, root string, m *lake.Manifest, specs map[string]TableSpec, rejects []Reject) (err error) {
	if err := w.ensureMeta(ctx, w.DB); err != nil {
		return err
	}
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM "+RunsTable+" WHERE run_id = ?", m.RunID).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return tx.Rollback() // already loaded: loading again changes nothing
	}
	files := map[string][]string{}
	for _, f := range m.Files {
		files[f.Table] = append(files[f.Table], filepath.Join(root, filepath.FromSlash(f.Path)))
	}
	for _, s := range m.Streams {
		if s.Status != "ok" {
			continue
		}
		spec, ok := specs[s.Table]
		if !ok {
			return fmt.Errorf("load %s: no table spec", s.Table)
		}
		if err := loadTable(ctx, tx, s.Table, files[s.Table], m.RunID, spec); err != nil {
			return fmt.Errorf("load %s: %w", s.Table, err)
		}
	}
	for _, r := range rejects {
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+RejectsTable+" VALUES (?, ?, ?, ?, ?, ?)", m.RunID, r.Stream, r.Key, r.Column, r.Raw, r.Reason); err != nil {
			return err
		}
	}
	streams, _ := json.Marshal(m.Streams)
	if _, err := tx.ExecContext(ctx, "INSERT INTO "+RunsTable+" VALUES (?, ?, ?, now(), ?, ?)", m.RunID, m.StartedAt, m.FinishedAt, m.Status, string(streams)); err != nil {
		return err
	}
	return tx.Commit()
}

// loadTable appends a run's files to the history table (creating it, or adding columns the snapshot
// brings) and rebuilds the current-state table.
func loadTable(ctx context.Context, tx *sql.Tx, table string, files []string, runID string, spec TableSpec) error {
	hist := Quote(table + "_history")
	if len(files) > 0 {
		list := make([]string, len(files))
		for i, f := range files {
			list[i] = quoteString(f)
		}
		src := "read_parquet([" + strings.Join(list, ", ") + "], union_by_name = true)"
		if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS "+hist+" AS SELECT * FROM "+src+" LIMIT 0"); err != nil {
			return err
		}
		if err := addMissingColumns(ctx, tx, table+"_history", src); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+hist+" BY NAME SELECT * FROM "+src); err != nil {
			return err
		}
	}
	var exists int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM duckdb_tables() WHERE table_name = ?", table+"_history").Scan(&exists); err != nil {
		return err
	}
	if exists == 0 {
		return nil // a stream that has never returned a row has no table yet
	}
	where := "WHERE _run_id = " + quoteString(runID)
	if spec.Incremental {
		where = ""
	}
	query := "SELECT * FROM " + hist + " " + where
	if len(spec.Key) > 0 {
		keys := make([]string, len(spec.Key))
		for i, k := range spec.Key {
			keys[i] = Quote(k)
		}
		// The newest version of each key wins; within a run the last extracted.
		query += " QUALIFY row_number() OVER (PARTITION BY " + strings.Join(keys, ", ") + " ORDER BY _run_id DESC, _extracted_at DESC) = 1"
	}
	_, err := tx.ExecContext(ctx, "CREATE OR REPLACE TABLE "+Quote(table)+" AS "+query)
	return err
}

// addMissingColumns adds to table the columns a new snapshot has and the table lacks (a new API field).
func addMissingColumns(ctx context.Context, tx *sql.Tx, table, src string) error {
	have := map[string]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", table)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return err
		}
		have[c] = true
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+src+")")
	if err != nil {
		return err
	}
	type col struct{ name, typ string }
	var add []col
	for rows.Next() {
		var c col
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			rows.Close()
			return err
		}
		if !have[c.name] {
			add = append(add, c)
		}
	}
	rows.Close()
	for _, c := range add {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+Quote(table)+" ADD COLUMN "+Quote(c.name)+" "+c.typ); err != nil {
			return err
		}
	}
	return nil
}
