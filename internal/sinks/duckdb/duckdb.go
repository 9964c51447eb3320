// Package duckdb loads committed Parquet snapshots into the DuckDB warehouse. Each table loads in a
// transaction of its own: its snapshot is appended to X_S_history and the current state X_S is rebuilt
// from it — the newest run's rows for a snapshot, the newest fetch of every window for a windowed
// stream, the newest fetch of every key (or key group) for an incremental stream with a key in force,
// and every row otherwise. No rule ever picks one of several rows: rows that share a key stay, and the
// key test reports them. The run's report and rejects are recorded last. Loading a run that is already
// loaded changes nothing.
package duckdb

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2" // registers the "duckdb" database/sql driver

	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// Metadata tables kept beside the data.
const (
	RunsTable    = "_ledgerlake_runs"
	RejectsTable = "_ledgerlake_rejects"
	// LoadingTable lists the tables of runs whose load has not finished (see LoadRun).
	LoadingTable = "_ledgerlake_loading"
	// WindowsTable lists the date windows every run fetched for every windowed table: a window fetched
	// again replaces the rows of the windows it covers.
	WindowsTable = "_ledgerlake_windows"
	// TablesTable holds, per run and table loaded, the current state's row count and a fingerprint of
	// its content: a run that loaded rows but changed nothing leaves the fingerprint as it was, so the
	// docs site can tell when a table last changed, not only when it was last loaded.
	TablesTable = "_ledgerlake_tables"
)

// lineageColumns say where and when a row was fetched, not what it holds: a fingerprint leaves them out.
var lineageColumns = map[string]bool{"_run_id": true, "_extracted_at": true, "_window_start": true, "_window_end": true, "_evidence_sha256": true}

// MemoryLimit caps DuckDB's memory per process unless OpenLimit says otherwise (it spills to disk
// beyond it).
const MemoryLimit = "256MB"

// ErrNotDatabase means the warehouse file exists but is not a DuckDB database: typically a process
// killed while DuckDB was creating it, before its header was written. It is one kind of ErrDamaged.
var ErrNotDatabase = errors.New("not a valid DuckDB database file")

// ErrDamaged means DuckDB cannot read the warehouse file: not a database at all (ErrNotDatabase),
// cut short (a copy or disk that lost its end), or a block whose checksum does not match. The
// warehouse is derived from the lake, so a damaged one is set aside and rebuilt (see SetAside).
var ErrDamaged = errors.New("the warehouse file is damaged (truncated or corrupt)")

// IsOutOfMemory reports whether err is DuckDB running out of its memory_limit.
func IsOutOfMemory(err error) bool {
	return err != nil && strings.Contains(err.Error(), "Out of Memory")
}

// ErrLocked means another process holds the warehouse open for writing.
var ErrLocked = errors.New("the warehouse is locked by another process (a run in progress?)")

// classify names what DuckDB's error opening or reading the file at path means: ErrLocked,
// ErrDamaged (ErrNotDatabase among them) or nil for anything else (permissions, a full disk: not the
// file's fault). The messages are DuckDB's (storage/single_file_block_manager.cpp, file_system.cpp);
// a damaged read names path itself, so a damaged Parquet file being loaded is not taken for it.
func classify(err error, path string) error {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "Could not set lock on file"):
		return ErrLocked
	case strings.Contains(msg, "not a valid DuckDB database file"):
		return ErrNotDatabase
	case strings.Contains(msg, "Corrupt database file"):
		return ErrDamaged
	}
	abs, _ := filepath.Abs(path) // DuckDB names the file by its absolute path
	for _, p := range []string{path, abs} {
		if strings.Contains(msg, `Could not read enough bytes from file "`+p+`"`) {
			return ErrDamaged
		}
	}
	return nil
}

// IsDamaged reports whether err means the warehouse file itself is damaged.
func IsDamaged(err error) bool {
	return errors.Is(err, ErrDamaged) || errors.Is(err, ErrNotDatabase)
}

// SetAside renames a damaged warehouse (and its write-ahead log) to <path>.invalid-<UTC time>, kept
// for inspection rather than deleted, and returns that name. The caller must hold the warehouse's
// writer lock or the lake's, so no writer is using it.
func SetAside(path string) (string, error) {
	aside := path + ".invalid-" + time.Now().UTC().Format("20060102T150405Z")
	for _, suffix := range []string{"", ".wal"} {
		if err := os.Rename(path+suffix, aside+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", err
		}
	}
	return aside, durable.SyncDir(filepath.Dir(path))
}

// Warehouse is an open DuckDB file.
type Warehouse struct {
	DB   *sql.DB
	Path string
}

// Open opens (creating if needed) the warehouse for writing, with the default MemoryLimit.
func Open(path string) (*Warehouse, error) {
	return open(path, "", MemoryLimit)
}

// OpenLimit opens the warehouse for writing with DuckDB's memory_limit set to limit ("512MB"; ""
// means MemoryLimit).
func OpenLimit(path, limit string) (*Warehouse, error) {
	return open(path, "", limit)
}

// OpenReadOnly opens an existing warehouse for queries; writes fail.
func OpenReadOnly(path string) (*Warehouse, error) {
	return open(path, "?access_mode=READ_ONLY", MemoryLimit)
}

func open(path, params, limit string) (*Warehouse, error) {
	if limit == "" {
		limit = MemoryLimit
	}
	db, err := sql.Open("duckdb", path+params)
	if err == nil {
		err = db.Ping()
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		switch kind := classify(err, path); kind {
		case ErrLocked, ErrNotDatabase:
			return nil, fmt.Errorf("%s: %w", path, kind)
		case ErrDamaged:
			return nil, fmt.Errorf("%s: %w: %w", path, kind, err)
		}
		return nil, fmt.Errorf("opening warehouse %s: %w", path, err)
	}
	// One connection: DuckDB serialises writers anyway, and temp state stays on one connection.
	db.SetMaxOpenConns(1)
	// Bound DuckDB's memory so a load's footprint does not grow with the stream: beyond the limit it
	// spills to a temp directory beside the warehouse. Insertion order is irrelevant to history tables.
	// FSST string compression is off for what this process writes: measured on the sandbox's lake
	// (make bench), choosing and applying it took a quarter of a load's time for 4-19% smaller files.
	for _, set := range []string{"SET memory_limit = " + quoteString(limit), "SET preserve_insertion_order = false",
		"SET disabled_compression_methods = 'fsst'"} {
		if _, err := db.Exec(set); err != nil {
			db.Close()
			return nil, fmt.Errorf("opening warehouse %s: %s: %w", path, set, err)
		}
	}
	return &Warehouse{DB: db, Path: path}, nil
}

// Close closes the database.
func (w *Warehouse) Close() error { return w.DB.Close() }

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

// LoadedRuns lists the runs the warehouse holds (opened read-only or not).
// A block of the table DuckDB cannot read fails with ErrDamaged.
func (w *Warehouse) LoadedRuns(ctx context.Context) ([]string, error) {
	var exists bool
	if err := w.DB.QueryRowContext(ctx, "SELECT count(*) > 0 FROM duckdb_tables() WHERE table_name = ?", RunsTable).Scan(&exists); err != nil || !exists {
		return nil, w.damaged(err)
	}
	runs, err := Strings(ctx, w.DB, "SELECT run_id FROM "+RunsTable)
	return runs, w.damaged(err)
}

// damaged wraps err in ErrDamaged when it says the warehouse file itself cannot be read.
func (w *Warehouse) damaged(err error) error {
	if err != nil && classify(err, w.Path) == ErrDamaged {
		return fmt.Errorf("%s: %w: %w", w.Path, ErrDamaged, err)
	}
	return err
}

// Querier is a database or a transaction.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Strings returns the values of a query's one text column, in order.
func Strings(ctx context.Context, q Querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// StringSet returns the values of a query's one text column as a set.
func StringSet(ctx context.Context, q Querier, query string, args ...any) (map[string]bool, error) {
	list, err := Strings(ctx, q, query, args...)
	out := make(map[string]bool, len(list))
	for _, v := range list {
		out[v] = true
	}
	return out, err
}

// ColumnSet is the set of a table's column names: empty when the table does not exist.
func ColumnSet(ctx context.Context, q Querier, table string) (map[string]bool, error) {
	return StringSet(ctx, q, "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", table)
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
		`CREATE TABLE IF NOT EXISTS ` + LoadingTable + ` (run_id VARCHAR, table_name VARCHAR)`,
		`CREATE TABLE IF NOT EXISTS ` + WindowsTable + ` (run_id VARCHAR, table_name VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP)`,
		`CREATE TABLE IF NOT EXISTS ` + TablesTable + ` (run_id VARCHAR, table_name VARCHAR, rows BIGINT, fingerprint VARCHAR)`,
		// How each API host's concurrency went; warehouses made before it gain the column.
		`ALTER TABLE ` + RunsTable + ` ADD COLUMN IF NOT EXISTS hosts JSON`,
	} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return fmt.Errorf("warehouse metadata: %w", err)
		}
	}
	return nil
}

// LoadRun loads the files of manifest m (under root). Each table is loaded in a transaction of its
// own (history appended, current state rebuilt): DuckDB keeps a transaction's new rows in memory until
// it commits, so a run loaded in one transaction needed memory that grew with the run (the default
// memory limit was not enough for a large run), where a table at a time needs what the largest table
// needs. The run
// is listed in _ledgerlake_runs, with its rejects, once every table is in; until then Loaded reports
// false and the run is loaded again, skipping the tables _ledgerlake_loading says an earlier attempt
// committed. Streams that failed in the run keep their previous current state.
//
// The files are read from st; a bucket's are downloaded into spool for the load.
func (w *Warehouse) LoadRun(ctx context.Context, st lake.Store, spool string, m *lake.Manifest, rejects []Reject) error {
	if loaded, err := w.Loaded(ctx, m.RunID); err != nil || loaded {
		return err // already loaded: loading again changes nothing
	}
	loading, err := Strings(ctx, w.DB, "SELECT table_name FROM "+LoadingTable+" WHERE run_id = ?", m.RunID)
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, t := range loading {
		done[t] = true
	}
	// Every file to load is checked against the manifest first: tables commit one by one, so a missing
	// or altered file found midway would leave the run half loaded where this leaves it unloaded.
	var todo []lake.FileInfo
	for _, f := range m.Files {
		if !done[f.Table] {
			todo = append(todo, f)
		}
	}
	paths, release, err := lake.Local(ctx, st, todo, spool, true)
	defer release()
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	files := map[string][]lake.FileInfo{}
	for i, f := range todo {
		f.Path = paths[i]
		files[f.Table] = append(files[f.Table], f)
	}
	for _, s := range m.Streams {
		if s.Status != "ok" {
			continue
		}
		for _, t := range s.Tables {
			if done[t.Name] {
				continue
			}
			err := w.inTx(ctx, func(tx *sql.Tx) error {
				if t.Windowed {
					for _, win := range s.Windows {
						if _, err := tx.ExecContext(ctx, "INSERT INTO "+WindowsTable+" VALUES (?, ?, ?, ?)", m.RunID, t.Name, win.Start, win.End); err != nil {
							return err
						}
					}
				}
				if err := loadTable(ctx, tx, t, files[t.Name], m.RunID); err != nil {
					return err
				}
				if err := fingerprint(ctx, tx, m.RunID, t.Name); err != nil {
					return err
				}
				_, err := tx.ExecContext(ctx, "INSERT INTO "+LoadingTable+" VALUES (?, ?)", m.RunID, t.Name)
				return err
			})
			if err != nil {
				return fmt.Errorf("load %s: %w", t.Name, err)
			}
		}
	}
	return w.inTx(ctx, func(tx *sql.Tx) error {
		for _, r := range rejects {
			if _, err := tx.ExecContext(ctx, "INSERT INTO "+RejectsTable+" VALUES (?, ?, ?, ?, ?, ?)", m.RunID, r.Stream, r.Key, r.Column, r.Raw, r.Reason); err != nil {
				return err
			}
		}
		streams, _ := json.Marshal(m.Streams)
		hosts, _ := json.Marshal(m.Hosts)
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+RunsTable+" (run_id, started_at, finished_at, loaded_at, status, streams, hosts) VALUES (?, ?, ?, now(), ?, ?, ?)",
			m.RunID, m.StartedAt, m.FinishedAt, m.Status, string(streams), string(hosts)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "DELETE FROM "+LoadingTable+" WHERE run_id = ?", m.RunID)
		return err
	})
}

// inTx runs fn in a transaction, committed if fn succeeds and rolled back otherwise.
func (w *Warehouse) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := w.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// loadTable appends a run's files to the history table and rebuilds the current-state table. Files of one
// run may differ in schema (a type widened mid-run): the table is first widened once to fit them all, so
// an old BIGINT that ends as VARCHAR reads "5", not "5.00" via an intermediate DECIMAL. Files with the
// same schema fingerprint are read by one statement: a stream with hundreds of partitions loads in a
// few statements, not hundreds.
func loadTable(ctx context.Context, tx *sql.Tx, t lake.TableInfo, files []lake.FileInfo, runID string) error {
	hist := t.Name + "_history"
	groups := map[string][]string{}
	var order []string
	for _, f := range files {
		if _, ok := groups[f.SchemaFingerprint]; !ok {
			order = append(order, f.SchemaFingerprint)
		}
		groups[f.SchemaFingerprint] = append(groups[f.SchemaFingerprint], f.Path)
	}
	groupCols := make([][]column, len(order))
	var all []column
	for i, fp := range order {
		cols, err := describeFile(ctx, tx, groups[fp][0])
		if err != nil {
			return fmt.Errorf("%s: %w", filepath.Base(groups[fp][0]), err)
		}
		groupCols[i] = cols
		all = append(all, cols...)
	}
	target, existed, err := reconcile(ctx, tx, hist, all)
	if err != nil {
		return err
	}
	for i, fp := range order {
		names, casts := make([]string, len(groupCols[i])), make([]string, len(groupCols[i]))
		for j, c := range groupCols[i] {
			names[j] = Quote(c.name)
			casts[j] = "CAST(" + Quote(c.name) + " AS " + target[c.name] + ")"
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+Quote(hist)+" ("+strings.Join(names, ", ")+") SELECT "+strings.Join(casts, ", ")+" FROM "+parquetSource(groups[fp]...)); err != nil {
			return fmt.Errorf("%d files from %s: %w", len(groups[fp]), filepath.Base(groups[fp][0]), err)
		}
	}
	cols := columnsOf(ctx, tx, hist)
	if len(cols) == 0 {
		return nil
	}
	have := map[string]bool{}
	for _, c := range cols {
		have[c.name] = true
	}
	thisRun := "SELECT * FROM " + Quote(hist) + " WHERE _run_id = " + quoteString(runID)
	if !t.Incremental || !existed {
		// A snapshot's current state is this run's rows, all of them, and so is an incremental table's on
		// its first load (every row is its window's or key's only fetch). A view of them rather than a
		// copy: measured on the bench lakes, a load 25-45% faster and a warehouse 45% smaller, and queries
		// read only the run's row groups (the history is appended run by run).
		return replaceRelation(ctx, tx, t.Name, "VIEW", thisRun)
	}
	windows := "(SELECT run_id, window_start, window_end FROM " + WindowsTable + " WHERE table_name = " + quoteString(t.Name) + ")"
	state, selective := IncrementalState(Quote(hist), t, have, windows)
	if !selective {
		return replaceRelation(ctx, tx, t.Name, "VIEW", state)
	}
	return replaceRelation(ctx, tx, t.Name, "TABLE", state)
}

// IncrementalState is the SQL of an incremental table's current state over rows, a relation holding its
// history, by the rule its TableInfo names:
//   - windowed: the rows of every fetched window that no later run's window covers, read from windows,
//     a relation (run_id, window_start, window_end) of every window the runs fetched for the table.
//     Windows are whole months, so a later fetch of a month covers it exactly, and the current month's
//     window grows run by run. Rows without a window (loaded by a ledgerlake that did not record
//     windows) stay only until a run with windows comes: that run starts over from since;
//   - with a key in force: the newest fetch of every key group (its Group, else its Key), all its rows;
//   - otherwise, or when have (rows' columns) lacks what the rule reads: every row.
//
// selective reports whether the state is a selection of the rows (worth materializing) rather than all
// of them. The warehouse's load and the auditors' as-of answers both build the state here, so the two
// never disagree.
func IncrementalState(rows string, t lake.TableInfo, have map[string]bool, windows string) (state string, selective bool) {
	group := t.Group
	if len(group) == 0 {
		group = t.Key
	}
	switch {
	case t.Windowed && have[typing.WindowStartColumn]:
		return `WITH fetched AS ` + windows + `,
live AS (
  SELECT f.* FROM fetched f
  WHERE NOT EXISTS (SELECT 1 FROM fetched g WHERE g.run_id > f.run_id AND g.window_start <= f.window_start AND g.window_end >= f.window_end))
SELECT h.* FROM ` + rows + ` h
SEMI JOIN live l ON h._run_id = l.run_id AND h._window_start = l.window_start AND h._window_end = l.window_end
UNION ALL
SELECT h.* FROM ` + rows + ` h
WHERE h._window_start IS NULL AND h._run_id > (SELECT coalesce(max(run_id), '') FROM fetched)`, true
	case len(group) > 0 && haveAll(have, group):
		cols := make([]string, len(group))
		for i, k := range group {
			cols[i] = Quote(k)
		}
		return "SELECT * FROM " + rows + " QUALIFY _run_id = max(_run_id) OVER (PARTITION BY " + strings.Join(cols, ", ") + ")", true
	}
	return "SELECT * FROM " + rows, false
}

func haveAll(have map[string]bool, cols []string) bool {
	for _, c := range cols {
		if !have[c] {
			return false
		}
	}
	return true
}

// replaceRelation makes name the kind (TABLE or VIEW) defined by query, dropping an object of the
// other kind first: a stream's current state changes kind when its keys stop or start repeating.
func replaceRelation(ctx context.Context, tx *sql.Tx, name, kind, query string) error {
	var existing string
	err := tx.QueryRowContext(ctx, "SELECT 'VIEW' FROM duckdb_views() WHERE view_name = ? AND NOT internal UNION ALL SELECT 'TABLE' FROM duckdb_tables() WHERE table_name = ?", name, name).Scan(&existing)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	if existing != "" && existing != kind {
		if _, err := tx.ExecContext(ctx, "DROP "+existing+" "+Quote(name)); err != nil {
			return err
		}
	}
	_, err = tx.ExecContext(ctx, "CREATE OR REPLACE "+kind+" "+Quote(name)+" AS "+query)
	return err
}

type column struct{ name, typ string }

// fingerprint records the current state of table after run's load: its rows and the sum of their
// hashes over every column but the lineage ones (a sum, not a xor, so two equal rows do not cancel).
func fingerprint(ctx context.Context, tx *sql.Tx, runID, table string) error {
	var cols []string
	for _, c := range columnsOf(ctx, tx, table) {
		if !lineageColumns[c.name] {
			cols = append(cols, Quote(c.name))
		}
	}
	sum := "'0'"
	if len(cols) > 0 {
		sum = "coalesce(sum(hash(" + strings.Join(cols, ", ") + ")::HUGEINT), 0)::VARCHAR"
	}
	_, err := tx.ExecContext(ctx, "INSERT INTO "+TablesTable+" SELECT ?, ?, count(*), "+sum+" FROM "+Quote(table), runID, table)
	return err
}

// columnsOf lists a table's columns in order; none when it does not exist.
func columnsOf(ctx context.Context, tx *sql.Tx, table string) []column {
	rows, err := tx.QueryContext(ctx, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", table)
	if err != nil {
		return nil
	}
	defer rows.Close()
	var out []column
	for rows.Next() {
		var c column
		if rows.Scan(&c.name, &c.typ) == nil {
			out = append(out, c)
		}
	}
	return out
}

func parquetSource(files ...string) string {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = quoteString(f)
	}
	return "read_parquet([" + strings.Join(q, ", ") + "], hive_partitioning = false)"
}

func describeFile(ctx context.Context, tx *sql.Tx, file string) ([]column, error) {
	rows, err := tx.QueryContext(ctx, "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "+parquetSource(file)+")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, err
		}
		cols = append(cols, c)
	}
	return cols, rows.Err()
}

// reconcile makes table hold every column of cols: it creates the table, adds new columns, and widens
// types (BIGINT → DECIMAL → VARCHAR) once to the widest any file needs. It returns each column's type
// and whether the table existed before.
func reconcile(ctx context.Context, tx *sql.Tx, table string, cols []column) (map[string]string, bool, error) {
	existing := columnsOf(ctx, tx, table)
	target := map[string]string{}
	for _, c := range existing {
		target[c.name] = c.typ
	}
	var order []string
	want := map[string]string{}
	for _, c := range cols {
		if cur, ok := want[c.name]; ok {
			want[c.name] = WidenType(cur, c.typ)
			continue
		}
		order = append(order, c.name)
		want[c.name] = c.typ
	}
	if len(existing) == 0 {
		if len(order) == 0 {
			return target, false, nil
		}
		defs := make([]string, len(order))
		for i, n := range order {
			defs[i] = Quote(n) + " " + want[n]
			target[n] = want[n]
		}
		_, err := tx.ExecContext(ctx, "CREATE TABLE "+Quote(table)+" ("+strings.Join(defs, ", ")+")")
		return target, false, err
	}
	for _, n := range order {
		cur, ok := target[n]
		var stmt string
		switch {
		case !ok:
			stmt = "ADD COLUMN " + Quote(n) + " " + want[n]
			target[n] = want[n]
		case WidenType(cur, want[n]) != cur:
			target[n] = WidenType(cur, want[n])
			stmt = "ALTER COLUMN " + Quote(n) + " SET DATA TYPE " + target[n]
		default:
			continue
		}
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+Quote(table)+" "+stmt); err != nil {
			return nil, true, err
		}
	}
	return target, true, nil
}

// WidenType is the narrowest DuckDB type that holds values of both a and b without loss.
func WidenType(a, b string) string {
	if a == b {
		return a
	}
	scale := func(t string) (int, bool) {
		if t == "BIGINT" || t == "INTEGER" {
			return 0, true
		}
		var p, s int
		if _, err := fmt.Sscanf(t, "DECIMAL(%d,%d)", &p, &s); err == nil {
			return s, true
		}
		return 0, false
	}
	sa, na := scale(a)
	sb, nb := scale(b)
	switch {
	case na && nb:
		return fmt.Sprintf("DECIMAL(38,%d)", max(sa, sb))
	case (a == "DATE" && b == "TIMESTAMP") || (a == "TIMESTAMP" && b == "DATE"):
		return "TIMESTAMP"
	}
	return "VARCHAR"
}
