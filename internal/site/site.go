// Package site builds the warehouse's documentation as a page to look at: every table and column with
// its type, description, key, row count, freshness and sample rows; the lineage graph from the APIs to
// the data tests; the history of runs with charts; the data tests' last results; schema changes; and,
// for auditors, each run's manifest with the last `extract verify`. Collect reads it all, read-only,
// from the warehouse (and the lake, for manifests); Write renders one self-contained HTML file that
// opens from disk, and Handler serves the same page live.
//
// The page never shows credentials (none are read: the warehouse and lake hold none, and a lake URL's
// secrets are removed) nor evidence bodies (only their count and size: the bodies are never opened).
package site

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// Options say what to collect.
type Options struct {
	Runs    int // runs in the history (newest; 0 means 30)
	Samples int // sample rows per table (0 means 5)
	// Lake, when set, gives each run's manifest and the last verification.
	Lake lake.Store
	// Warehouse and LakeName are shown as where the page came from.
	Warehouse, LakeName string
	Now                 time.Time // the page's time (zero: time.Now)
}

// Site is everything the page shows.
type Site struct {
	Generated time.Time
	Warehouse string
	Lake      string // "" when no lake was given
	Tables    []*Table
	Graph     *Graph
	Runs      []*Run  // oldest first
	Tests     []*Test // failing first, then by name
	// Verify is the lake's last `extract verify` (nil: never run, or no lake).
	Verify *lake.Verification
	// RunsInWarehouse counts every run loaded, of which Runs are the newest.
	RunsInWarehouse int

	// sqlModels and sqlTests are sql/'s models (in build order) and tests, read once per collection.
	sqlModels, sqlTests []*models.Model
}

// Table is one relation of the warehouse.
type Table struct {
	Name        string
	Kind        string // stream, child, staging, mart or ledgerlake
	Source      string // signicat or gsapi for the API's tables
	Relation    string // TABLE or VIEW
	Description string
	Key         []string // the key in force (rows sharing it are reported, never collapsed)
	Ident       []string // what identifies a row where no key is in force: an assumption
	Rows        int64
	HistoryRows int64      // rows of <name>_history, -1 when there is none
	Fresh       *Freshness // the newest run that loaded rows into it
	Changed     *Freshness // the newest run that changed what it holds (nil: not known)
	Columns     []Column
	Sample      [][]string // Samples rows, as text, in Columns' order
	Reads       []string   // relations it is built from
	ReadBy      []string   // relations and tests built from it
	Tests       []string   // data tests that read it
	// Fields are the tenant-defined fields a staging model reads, or that the models read from a
	// tenant's table, with where they were read from.
	Fields []TenantField
}

// Freshness names a run that loaded or changed a table.
type Freshness struct {
	RunID string
	At    time.Time
	Rows  int64
	// Via names the input whose run it is, for a model (its inputs' newest change).
	Via string
}

// Column is one column of a table.
type Column struct {
	Name, Type, Description string
	Key                     bool
}

// Run is one run loaded into the warehouse.
type Run struct {
	ID                    string
	Started, Finished     time.Time // of the extraction
	Loaded                time.Time // when the warehouse had loaded it (the models and tests came after)
	Status                string
	Streams               []lake.StreamReport
	Rows, Requests        int64
	Retries, Throttled    int64
	Rejects               int
	Failed                int // streams that failed
	TestsRun, TestsFailed int
	Manifest              *Manifest // nil when no lake was given or it lacks the manifest
	// Hosts is how each API host's concurrency went (none in runs loaded before it was recorded).
	Hosts []lake.HostReport
}

// Seconds is the extraction's duration.
func (r *Run) Seconds() float64 { return r.Finished.Sub(r.Started).Seconds() }

// LoadedSeconds is the time from the run's start until the warehouse had loaded it; a run killed and
// resumed later counts the time between.
func (r *Run) LoadedSeconds() float64 { return r.Loaded.Sub(r.Started).Seconds() }

// SchemaChanges lists the run's new columns and widened types, by stream.
func (r *Run) SchemaChanges() []lake.StreamReport {
	var out []lake.StreamReport
	for _, s := range r.Streams {
		if len(s.SchemaChanges) > 0 {
			out = append(out, s)
		}
	}
	return out
}

// Manifest is what a run committed to the lake, as auditors check it.
type Manifest struct {
	RunID                   string
	Commit                  int
	Files                   []lake.FileInfo
	Bytes, Rows             int64
	Evidence, PDFs          int
	EvidenceBytes, PDFBytes int64
	// Verified says whether the last verification covered this run, and Problems what it found in it.
	Verified bool
	Problems []lake.Problem
}

// Test is a data test with its last result and its history over the runs shown.
type Test struct {
	Name        string
	Description string
	Table       string // the table of a key test
	Last        Result
	History     []Result // one per run shown that ran it, oldest first
}

// Result is one run's outcome of a data test.
type Result struct {
	RunID    string
	Failures int64
	Sample   []string
	Skipped  string
	Error    string
	Message  string
}

// Failed reports whether the test found rows or could not run.
func (r Result) Failed() bool { return r.Error != "" || r.Failures > 0 }

// Status is pass, fail, error or skipped.
func (r Result) Status() string {
	switch {
	case r.Error != "":
		return "error"
	case r.Failures > 0:
		return "fail"
	case r.Skipped != "":
		return "skipped"
	}
	return "pass"
}

// lineageColumns are on every row of every stream.
var lineageColumns = map[string]string{
	"_run_id":          "The run that fetched the row (see _ledgerlake_runs).",
	"_extracted_at":    "When the row's page arrived.",
	"_window_start":    "Start of the date window the row was fetched in, as sent.",
	"_window_end":      "End of the date window the row was fetched in, as sent (inclusive).",
	"_evidence_sha256": "The stored response body the row came from (extract evidence SHA256 prints it).",
}

// metaTables are ledgerlake's own tables in the warehouse.
var metaTables = map[string]string{
	duckdb.RunsTable:         "Every run loaded: times, status and each stream's report (rows, requests, retries, rejects, schema changes).",
	duckdb.RejectsTable:      "Values that did not fit their column's type, kept as sent, with the stream, key and reason.",
	duckdb.WindowsTable:      "The date windows each run fetched for the windowed streams.",
	"_ledgerlake_data_tests": "Every data test's result per run, with a sample of the offending rows.",
	models.FieldsTable:       "Where the models last read each tenant-defined field from (sources.gsapi.fields over sql/fieldmap/fields.yaml's defaults).",
	duckdb.TablesTable:       "Per run and table loaded: the current state's rows and a fingerprint of its content, to tell a load that changed it from one that did not.",
}

// Collect reads the site from the warehouse db (read-only) and opts.Lake.
func Collect(ctx context.Context, db *sql.DB, opts Options) (*Site, error) {
	opts.Runs = cmp.Or(opts.Runs, 30)
	opts.Samples = cmp.Or(opts.Samples, 5)
	s := &Site{Generated: opts.Now, Warehouse: opts.Warehouse, Lake: lake.Redact(opts.LakeName)}
	if s.Generated.IsZero() {
		s.Generated = time.Now()
	}
	var err error
	if s.sqlModels, s.sqlTests, err = models.Load(); err != nil {
		return nil, err
	}
	rels, err := relations(ctx, db)
	if err != nil {
		return nil, err
	}
	if err := s.collectRuns(ctx, db, rels, opts.Runs); err != nil {
		return nil, err
	}
	if err := s.collectTests(ctx, db, rels); err != nil {
		return nil, err
	}
	if err := s.collectTables(ctx, db, rels, opts.Samples); err != nil {
		return nil, err
	}
	if err := s.collectFields(ctx, db); err != nil {
		return nil, err
	}
	s.Graph = buildGraph(s)
	s.freshModels()
	if opts.Lake != nil {
		if err := s.collectManifests(ctx, opts.Lake); err != nil {
			return nil, fmt.Errorf("lake %s: %w", s.Lake, err)
		}
	}
	return s, nil
}

// relations maps each relation of the main schema to TABLE or VIEW.
func relations(ctx context.Context, db *sql.DB) (map[string]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name, table_type FROM information_schema.tables
		WHERE table_schema = 'main' AND table_catalog = current_database()`)
	if err != nil {
		return nil, fmt.Errorf("listing the warehouse's tables: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, kind string
		if err := rows.Scan(&name, &kind); err != nil {
			return nil, err
		}
		out[name] = strings.TrimPrefix(kind, "BASE ")
	}
	return out, rows.Err()
}

func (s *Site) collectRuns(ctx context.Context, db *sql.DB, rels map[string]string, n int) error {
	if rels[duckdb.RunsTable] == "" {
		return nil // a warehouse no run has loaded yet
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+duckdb.RunsTable).Scan(&s.RunsInWarehouse); err != nil {
		return err
	}
	cols, err := duckdb.ColumnSet(ctx, db, duckdb.RunsTable)
	if err != nil {
		return err
	}
	hosts := "NULL" // a warehouse opened read-only before the column was added
	if cols["hosts"] {
		hosts = "hosts::VARCHAR"
	}
	rows, err := db.QueryContext(ctx, `SELECT run_id, started_at, finished_at, loaded_at, status, streams::VARCHAR, `+hosts+` FROM `+duckdb.RunsTable+`
		ORDER BY started_at DESC, run_id DESC LIMIT ?`, n)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r := &Run{}
		var streams, hosts sql.NullString
		if err := rows.Scan(&r.ID, &r.Started, &r.Finished, &r.Loaded, &r.Status, &streams, &hosts); err != nil {
			return err
		}
		if err := unmarshalRunColumn(streams, &r.Streams); err != nil {
			return fmt.Errorf("%s.streams of run %s: %w", duckdb.RunsTable, r.ID, err)
		}
		if err := unmarshalRunColumn(hosts, &r.Hosts); err != nil {
			return fmt.Errorf("%s.hosts of run %s: %w", duckdb.RunsTable, r.ID, err)
		}
		for _, st := range r.Streams {
			for _, t := range st.Tables {
				r.Rows += t.Rows
			}
			if len(st.Tables) == 0 {
				r.Rows += st.Rows
			}
			r.Requests += st.Requests
			r.Retries += st.Retries
			r.Throttled += st.Throttled
			r.Rejects += st.Rejects
			if st.Status != "ok" {
				r.Failed++
			}
		}
		s.Runs = append(s.Runs, r)
	}
	slices.Reverse(s.Runs)
	return rows.Err()
}

// unmarshalRunColumn decodes one of a run's JSON columns into v, leaving v alone when it is NULL.
func unmarshalRunColumn(col sql.NullString, v any) error {
	if !col.Valid {
		return nil
	}
	return json.Unmarshal([]byte(col.String), v)
}

func (s *Site) run(id string) *Run {
	for _, r := range s.Runs {
		if r.ID == id {
			return r
		}
	}
	return nil
}

func (s *Site) collectTests(ctx context.Context, db *sql.DB, rels map[string]string) error {
	byName := map[string]*Test{}
	for _, m := range s.sqlTests {
		byName[m.Name] = &Test{Name: m.Name, Description: m.Description}
	}
	if rels["_ledgerlake_data_tests"] != "" && len(s.Runs) > 0 {
		cols, err := duckdb.ColumnSet(ctx, db, "_ledgerlake_data_tests")
		if err != nil {
			return err
		}
		message := "''"
		if cols["message"] {
			message = "coalesce(message, '')"
		}
		rows, err := db.QueryContext(ctx, `SELECT run_id, name, failures, coalesce(sample, ''), coalesce(skipped, ''), coalesce(error, ''), `+message+`
			FROM _ledgerlake_data_tests ORDER BY rowid`)
		if err != nil {
			return err
		}
		defer rows.Close()
		order := map[string]int{}
		for i, r := range s.Runs {
			order[r.ID] = i
		}
		for rows.Next() {
			var r Result
			var name, sample string
			if err := rows.Scan(&r.RunID, &name, &r.Failures, &sample, &r.Skipped, &r.Error, &r.Message); err != nil {
				return err
			}
			if _, shown := order[r.RunID]; !shown {
				continue
			}
			if sample != "" {
				r.Sample = strings.Split(sample, "\n")
			}
			t := byName[name]
			if t == nil {
				t = &Test{Name: name}
				if table, ok := strings.CutPrefix(name, models.KeyTestPrefix); ok {
					t.Table = table
					t.Description = "Every row of " + table + " has its key, and no two rows share it."
				}
				byName[name] = t
			}
			// Rows come in the order they were recorded: where the models ran again for a run (its
			// load was resumed), the newest result stands.
			if i := slices.IndexFunc(t.History, func(h Result) bool { return h.RunID == r.RunID }); i >= 0 {
				t.History[i] = r
			} else {
				t.History = append(t.History, r)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		for _, t := range byName {
			slices.SortStableFunc(t.History, func(a, b Result) int { return cmp.Compare(order[a.RunID], order[b.RunID]) })
		}
	}
	for _, t := range byName {
		if len(t.History) > 0 {
			t.Last = t.History[len(t.History)-1]
		} else {
			t.Last = Result{Skipped: "not run yet"}
		}
		s.Tests = append(s.Tests, t)
		for _, h := range t.History {
			if r := s.run(h.RunID); r != nil {
				r.TestsRun++
				if st := h.Status(); st == "fail" || st == "error" {
					r.TestsFailed++
				}
			}
		}
	}
	rank := map[string]int{"error": 0, "fail": 0, "skipped": 1, "pass": 2}
	slices.SortFunc(s.Tests, func(a, b *Test) int {
		return cmp.Or(cmp.Compare(rank[a.Last.Status()], rank[b.Last.Status()]), cmp.Compare(a.Name, b.Name))
	})
	return nil
}

func (s *Site) collectTables(ctx context.Context, db *sql.DB, rels map[string]string, samples int) error {
	declared, err := schemas.All()
	if err != nil {
		return err
	}
	decl := map[string]*schemas.Table{}
	for _, t := range declared {
		decl[t.Name()] = t
	}
	model := map[string]*models.Model{}
	for _, m := range s.sqlModels {
		model[m.Name] = m
	}
	// What the newest run knew of each API table: its stream, key in force and freshness.
	info := map[string]lake.TableInfo{}
	parent := map[string]string{}
	fresh := map[string]*Freshness{}
	changed, err := changes(ctx, db, rels)
	if err != nil {
		return err
	}
	for _, r := range s.Runs {
		for _, st := range r.Streams {
			for i, t := range st.Tables {
				info[t.Name] = t
				if i > 0 {
					parent[t.Name] = st.Table
				}
				if st.Status == "ok" && t.Rows > 0 {
					fresh[t.Name] = &Freshness{RunID: r.ID, At: r.Finished, Rows: t.Rows}
				}
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(rels)) {
		if strings.HasSuffix(name, "_history") && rels[strings.TrimSuffix(name, "_history")] != "" || name == duckdb.LoadingTable {
			continue
		}
		t := &Table{Name: name, Relation: rels[name], HistoryRows: -1, Fresh: fresh[name], Changed: changed[name]}
		switch {
		case model[name] != nil:
			m := model[name]
			t.Kind, t.Description, t.Reads = "mart", m.Description, append(slices.Clone(m.Sources), m.Deps...)
			if m.Kind == "view" {
				t.Kind = "staging"
			}
			slices.Sort(t.Reads)
		case metaTables[name] != "":
			t.Kind, t.Description = "ledgerlake", metaTables[name]
		case strings.HasPrefix(name, "signicat_") || strings.HasPrefix(name, "gsapi_"):
			t.Kind, t.Source = "stream", name[:strings.IndexByte(name, '_')]
			if p := parent[name]; p != "" {
				t.Kind, t.Reads = "child", []string{p}
			}
			if d := decl[name]; d != nil {
				t.Description, t.Ident = d.Description, d.Ident
			} else if t.Kind == "child" {
				t.Description = "Rows of an array of objects in " + parent[name] + ", one per element, linked to their parent row."
			} else {
				t.Description = "No declared schema: every column is typed from the values the API sent, widened when they change."
			}
			t.Key = info[name].Key
		default:
			continue // not ledgerlake's: a user's own table is not documented here
		}
		if err := t.fill(ctx, db, decl[name], samples); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if rels[name+"_history"] != "" {
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+duckdb.Quote(name+"_history")).Scan(&t.HistoryRows); err != nil {
				return fmt.Errorf("%s_history: %w", name, err)
			}
		}
		s.Tables = append(s.Tables, t)
	}
	byName := map[string]*Table{}
	for _, t := range s.Tables {
		byName[t.Name] = t
	}
	for _, t := range s.Tables {
		for _, r := range t.Reads {
			if in := byName[r]; in != nil {
				in.ReadBy = append(in.ReadBy, t.Name)
			}
		}
	}
	for _, t := range s.Tables {
		if t.Kind == "staging" || t.Kind == "mart" {
			for i := range t.Columns {
				if t.Columns[i].Description == "" {
					t.Columns[i].Description = inherited(byName, t, t.Columns[i].Name, map[string]bool{})
				}
			}
		}
	}
	for _, m := range s.sqlTests {
		for _, r := range append(slices.Clone(m.Sources), m.Deps...) {
			if in := byName[r]; in != nil {
				in.Tests = append(in.Tests, m.Name)
			}
		}
	}
	for _, t := range s.Tests {
		if in := byName[t.Table]; in != nil {
			in.Tests = append(in.Tests, t.Name)
		}
	}
	return nil
}

// inherited describes a model's column by the nearest input, through the models it reads, that has a
// described column of the same name. The SQL may compute it otherwise, so the text says where it is from.
func inherited(byName map[string]*Table, t *Table, column string, seen map[string]bool) string {
	seen[t.Name] = true
	for _, r := range t.Reads {
		in := byName[r]
		if in == nil || seen[r] {
			continue
		}
		for _, c := range in.Columns {
			if c.Name == column && c.Description != "" && !strings.HasPrefix(c.Description, "As in ") {
				return "As in " + in.Name + "." + column + ": " + c.Description
			}
		}
		if d := inherited(byName, in, column, seen); d != "" {
			return d
		}
	}
	return ""
}

// fill reads the table's columns, row count and sample rows.
func (t *Table) fill(ctx context.Context, db *sql.DB, decl *schemas.Table, samples int) error {
	descs := map[string]string{}
	if decl != nil {
		for _, c := range decl.Columns {
			descs[c.Name] = c.Description
		}
	}
	key := map[string]bool{}
	for _, k := range t.Key {
		key[k] = true
	}
	rows, err := db.QueryContext(ctx, `SELECT column_name, data_type FROM information_schema.columns
		WHERE table_schema = 'main' AND table_catalog = current_database() AND table_name = ? ORDER BY ordinal_position`, t.Name)
	if err != nil {
		return err
	}
	for rows.Next() {
		var c Column
		if err := rows.Scan(&c.Name, &c.Type); err != nil {
			rows.Close()
			return err
		}
		c.Description, c.Key = cmp.Or(descs[c.Name], lineageColumns[c.Name]), key[c.Name]
		t.Columns = append(t.Columns, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM "+duckdb.Quote(t.Name)).Scan(&t.Rows); err != nil {
		return err
	}
	// The newest rows make the best sample where a table has lineage columns; otherwise the first.
	order := ""
	for _, c := range t.Columns {
		if c.Name == "_extracted_at" {
			order = " ORDER BY _extracted_at DESC"
		}
	}
	rows, err = db.QueryContext(ctx, fmt.Sprintf("SELECT * FROM %s%s LIMIT %d", duckdb.Quote(t.Name), order, samples))
	if err != nil {
		return err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = Text(v)
			if v != nil && secretColumn.MatchString(cols[i]) {
				row[i] = hidden
			}
		}
		t.Sample = append(t.Sample, row)
	}
	return rows.Err()
}

// secretColumn matches the columns whose name says they may hold a credential: a tenant's own fields
// are inferred, so a user list could bring an API key. Their sample values are never shown.
var secretColumn = regexp.MustCompile(`(?i)password|passwd|passphrase|secret|token|api_?key|credential|private_?key`)

// hidden stands for a sample value of a secret column.
const hidden = "•••• (not shown: the column's name suggests a credential)"

// maxCell is the most characters of a value a sample shows.
const maxCell = 80

// Text renders a warehouse value as a sample cell shows it: NULL as "∅", times without a zero
// fraction, long values cut with an ellipsis.
func Text(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return "∅"
	case time.Time:
		s = v.Format("2006-01-02 15:04:05.999999999Z07:00")
		if v.Hour() == 0 && v.Minute() == 0 && v.Second() == 0 && v.Nanosecond() == 0 && v.Location() == time.UTC {
			s = v.Format("2006-01-02")
		}
	case []byte:
		s = fmt.Sprintf("%x", v)
	case fmt.Stringer:
		s = v.String()
	case string:
		s = v
	default:
		if b, err := json.Marshal(v); err == nil && (strings.HasPrefix(string(b), "[") || strings.HasPrefix(string(b), "{")) {
			s = string(b)
		} else {
			s = fmt.Sprint(v)
		}
	}
	if utf8.RuneCountInString(s) > maxCell {
		r := []rune(s)
		s = string(r[:maxCell-1]) + "…"
	}
	return s
}

// freshModels gives each model the newest load and change of its inputs: a model changes when they do.
func (s *Site) freshModels() {
	byName := map[string]*Table{}
	for _, t := range s.Tables {
		byName[t.Name] = t
	}
	for _, field := range []func(*Table) **Freshness{
		func(t *Table) **Freshness { return &t.Fresh },
		func(t *Table) **Freshness { return &t.Changed },
	} {
		var newest func(t *Table, seen map[string]bool) *Freshness
		newest = func(t *Table, seen map[string]bool) *Freshness {
			if t.Kind != "staging" && t.Kind != "mart" || seen[t.Name] {
				return *field(t)
			}
			seen[t.Name] = true
			var best *Freshness
			for _, r := range t.Reads {
				in := byName[r]
				if in == nil {
					continue
				}
				if f := newest(in, seen); f != nil && (best == nil || f.At.After(best.At)) {
					best = &Freshness{RunID: f.RunID, At: f.At, Rows: t.Rows, Via: cmp.Or(f.Via, in.Name)}
				}
			}
			*field(t) = best
			return best
		}
		for _, t := range s.Tables {
			newest(t, map[string]bool{})
		}
	}
}

// changes reads, from _ledgerlake_tables, the newest run that changed each table: the first run that
// loaded it, or one whose load left a row count or content fingerprint other than the run before's.
// Warehouses loaded before fingerprints were kept have none: their tables show only their last load.
func changes(ctx context.Context, db *sql.DB, rels map[string]string) (map[string]*Freshness, error) {
	out := map[string]*Freshness{}
	if rels[duckdb.TablesTable] == "" || rels[duckdb.RunsTable] == "" {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT table_name, arg_max(run_id, started_at), max(finished_at), arg_max(rows, started_at) FROM (
			SELECT t.table_name, t.run_id, r.started_at, r.finished_at, t.rows, t.fingerprint,
				lag(t.fingerprint) OVER w AS before, lag(t.rows) OVER w AS rows_before
			FROM `+duckdb.TablesTable+` t JOIN `+duckdb.RunsTable+` r USING (run_id)
			WINDOW w AS (PARTITION BY t.table_name ORDER BY r.started_at, t.run_id))
		WHERE before IS NULL OR before <> fingerprint OR rows_before <> rows
		GROUP BY table_name`)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", duckdb.TablesTable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		f := &Freshness{}
		if err := rows.Scan(&name, &f.RunID, &f.At, &f.Rows); err != nil {
			return nil, err
		}
		out[name] = f
	}
	return out, rows.Err()
}

func (s *Site) collectManifests(ctx context.Context, st lake.Store) error {
	v, err := lake.LastVerification(ctx, st)
	if err != nil {
		return err
	}
	s.Verify = v
	for _, r := range s.Runs {
		var m lake.Manifest
		found, err := lake.ReadJSON(ctx, st, lake.ManifestDir, r.ID, &m)
		if err != nil {
			return err
		}
		if !found {
			continue
		}
		mp := &Manifest{RunID: r.ID, Commit: m.Commit, Files: m.Files, Evidence: len(m.Evidence), PDFs: len(m.PDFs)}
		for _, f := range m.Files {
			mp.Bytes += f.Bytes
			mp.Rows += f.Rows
		}
		for _, e := range m.Evidence {
			mp.EvidenceBytes += e.Bytes
		}
		for _, e := range m.PDFs {
			mp.PDFBytes += e.Bytes
		}
		slices.SortFunc(mp.Files, func(a, b lake.FileInfo) int {
			return cmp.Or(cmp.Compare(a.Table, b.Table), cmp.Compare(a.Path, b.Path))
		})
		if v != nil && m.Commit > 0 && m.Commit <= v.Head {
			mp.Verified = true
			for _, p := range v.Problems {
				if p.RunID == r.ID {
					mp.Problems = append(mp.Problems, p)
				}
			}
		}
		r.Manifest = mp
	}
	return nil
}
