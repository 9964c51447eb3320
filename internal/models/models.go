// Package models runs the SQL models of sql/ in the warehouse after each load, in dependency order
// derived from the SQL itself, and then the data tests: the queries of sql/tests plus a uniqueness and
// not-null test of every table's key. A test fails when its query returns rows; it is reported by name
// with a sample of them. Models whose source tables are absent (a source not configured) are skipped.
package models

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	sqlfiles "github.com/ledgerlake/ledgerlake/sql"
)

// Model is one SQL file: a staging view, a mart table, or a data test.
type Model struct {
	Name        string
	Kind        string // view, table or test
	Description string
	SQL         string
	Deps        []string // models it reads
	Sources     []string // raw tables it reads
}

var (
	identifier = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	rawTable   = regexp.MustCompile(`^(signicat|gsapi)_[a-z0-9_]+$`)
)

// Load reads the models and tests and orders the models so that each comes after what it reads.
func Load() (models, tests []*Model, err error) {
	byName := map[string]*Model{}
	var all []*Model
	err = fs.WalkDir(sqlfiles.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".sql") {
			return err
		}
		b, err := sqlfiles.Files.ReadFile(p)
		if err != nil {
			return err
		}
		m := &Model{Name: strings.TrimSuffix(path.Base(p), ".sql"), SQL: string(b)}
		switch path.Dir(p) {
		case "staging":
			m.Kind = "view"
		case "marts":
			m.Kind = "table"
		default:
			m.Kind = "test"
		}
		var desc []string
		for _, line := range strings.Split(m.SQL, "\n") {
			if !strings.HasPrefix(line, "-- ") {
				break
			}
			desc = append(desc, strings.TrimPrefix(line, "-- "))
		}
		m.Description = strings.Join(desc, " ")
		if byName[m.Name] != nil {
			return fmt.Errorf("sql/%s: a model named %s already exists", p, m.Name)
		}
		byName[m.Name] = m
		all = append(all, m)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	for _, m := range all {
		seen := map[string]bool{}
		for _, id := range identifier.FindAllString(stripComments(m.SQL), -1) {
			id = strings.ToLower(id)
			if seen[id] || id == m.Name {
				continue
			}
			seen[id] = true
			if dep := byName[id]; dep != nil && dep.Kind != "test" {
				m.Deps = append(m.Deps, id)
			} else if rawTable.MatchString(id) {
				m.Sources = append(m.Sources, id)
			}
		}
		sort.Strings(m.Deps)
		sort.Strings(m.Sources)
		if m.Kind == "test" {
			tests = append(tests, m)
		}
	}
	models, err = order(all)
	sort.Slice(tests, func(i, j int) bool { return tests[i].Name < tests[j].Name })
	return models, tests, err
}

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// order sorts the non-test models topologically (ties by name), refusing cycles.
func order(all []*Model) ([]*Model, error) {
	var out []*Model
	done := map[string]bool{}
	pending := []*Model{}
	for _, m := range all {
		if m.Kind != "test" {
			pending = append(pending, m)
		}
	}
	sort.Slice(pending, func(i, j int) bool { return pending[i].Name < pending[j].Name })
	for len(pending) > 0 {
		progressed := false
		for i := 0; i < len(pending); i++ {
			m := pending[i]
			ready := true
			for _, d := range m.Deps {
				ready = ready && done[d]
			}
			if ready {
				out = append(out, m)
				done[m.Name] = true
				pending = append(pending[:i], pending[i+1:]...)
				progressed = true
				break
			}
		}
		if !progressed {
			names := make([]string, len(pending))
			for i, m := range pending {
				names[i] = m.Name
			}
			return nil, fmt.Errorf("sql models depend on each other in a cycle: %s", strings.Join(names, ", "))
		}
	}
	return out, nil
}

// TestResult is one data test's outcome.
type TestResult struct {
	Name     string   `json:"name"`
	Failures int      `json:"failures"` // offending rows
	Sample   []string `json:"sample,omitempty"`
	Skipped  string   `json:"skipped,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// Failed reports whether the test found problems or could not run.
func (t TestResult) Failed() bool { return t.Failures > 0 || t.Error != "" }

// Report is what Run did.
type Report struct {
	Built   []string          `json:"built"`
	Skipped map[string]string `json:"skipped,omitempty"` // model → why
	Tests   []TestResult      `json:"tests"`
}

// Run builds every model in one transaction (readers see the old models or the new, never a mix) and
// then runs the data tests, recording their results with runID. tables are the loaded tables whose key
// is tested.
func Run(ctx context.Context, db *dbsql.DB, runID string, tables []lake.TableInfo) (*Report, error) {
	models, tests, err := Load()
	if err != nil {
		return nil, err
	}
	exists, err := relations(ctx, db)
	if err != nil {
		return nil, err
	}
	rep := &Report{Skipped: map[string]string{}}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	for _, m := range models {
		if why := missing(m, exists, rep.Skipped); why != "" {
			rep.Skipped[m.Name] = why
			continue
		}
		if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE "+strings.ToUpper(m.Kind)+" "+duckdb.Quote(m.Name)+" AS\n"+m.SQL); err != nil {
			_ = tx.Rollback()
			return nil, fmt.Errorf("sql model %s: %w", m.Name, err)
		}
		exists[m.Name] = true
		rep.Built = append(rep.Built, m.Name)
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	for _, t := range tests {
		res := TestResult{Name: t.Name}
		if why := missing(t, exists, rep.Skipped); why != "" {
			res.Skipped = why
		} else {
			res.Failures, res.Sample, err = offending(ctx, db, t.SQL)
			if err != nil {
				res.Error = err.Error()
			}
		}
		rep.Tests = append(rep.Tests, res)
	}
	for _, tb := range tables {
		if len(tb.Key) == 0 || !exists[tb.Name] {
			continue
		}
		cols, err := columns(ctx, db, tb.Name)
		if err != nil {
			return nil, err
		}
		keys := make([]string, 0, len(tb.Key))
		for _, k := range tb.Key {
			if !cols[k] {
				keys = nil
				break
			}
			keys = append(keys, duckdb.Quote(k))
		}
		if keys == nil {
			continue // an inferred table whose key field never arrived
		}
		// The leading key column may never be NULL. Later columns of a composite key qualify it and may
		// be (a billing info's costcentre is NULL for the organisation-wide setting); GROUP BY treats
		// NULLs as equal, so uniqueness still holds across them.
		q := "SELECT " + strings.Join(keys, ", ") + ", count(*) AS copies FROM " + duckdb.Quote(tb.Name) +
			" GROUP BY ALL HAVING count(*) > 1 OR " + keys[0] + " IS NULL"
		res := TestResult{Name: "key_unique_not_null_" + tb.Name}
		if res.Failures, res.Sample, err = offending(ctx, db, q); err != nil {
			res.Error = err.Error()
		}
		rep.Tests = append(rep.Tests, res)
	}
	if err := record(ctx, db, runID, rep.Tests); err != nil {
		return rep, err
	}
	return rep, nil
}

// missing explains why m cannot run: a source table that is not loaded, or a model that was skipped.
func missing(m *Model, exists map[string]bool, skipped map[string]string) string {
	for _, s := range m.Sources {
		if !exists[s] {
			return "needs " + s + ", which is not loaded"
		}
	}
	for _, d := range m.Deps {
		if skipped[d] != "" {
			return "needs " + d + ", which was skipped"
		}
	}
	return ""
}

func relations(ctx context.Context, db *dbsql.DB) (map[string]bool, error) {
	return nameSet(ctx, db, "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal")
}

func columns(ctx context.Context, db *dbsql.DB, table string) (map[string]bool, error) {
	return nameSet(ctx, db, "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", table)
}

// nameSet collects a one-column query's strings.
func nameSet(ctx context.Context, db *dbsql.DB, q string, args ...any) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		out[n] = true
	}
	return out, rows.Err()
}

// offending counts a test query's rows and renders up to five of them.
func offending(ctx context.Context, db *dbsql.DB, q string) (int, []string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return 0, nil, err
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	n := 0
	var sample []string
	for rows.Next() {
		n++
		if len(sample) >= 5 {
			continue
		}
		if err := rows.Scan(ptrs...); err != nil {
			return n, sample, err
		}
		parts := make([]string, len(cols))
		for i, c := range cols {
			parts[i] = fmt.Sprintf("%s=%v", c, display(vals[i]))
		}
		sample = append(sample, strings.Join(parts, " "))
	}
	return n, sample, rows.Err()
}

func display(v any) any {
	if v == nil {
		return "NULL"
	}
	if s, ok := v.(fmt.Stringer); ok {
		return s.String()
	}
	return v
}

// record keeps the test results in _ledgerlake_data_tests.
func record(ctx context.Context, db *dbsql.DB, runID string, tests []TestResult) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS _ledgerlake_data_tests (run_id VARCHAR, name VARCHAR, failures BIGINT,
		sample VARCHAR, skipped VARCHAR, error VARCHAR)`); err != nil {
		return err
	}
	for _, t := range tests {
		if _, err := db.ExecContext(ctx, "INSERT INTO _ledgerlake_data_tests VALUES (?, ?, ?, ?, ?, ?)", runID, t.Name, t.Failures,
			strings.Join(t.Sample, "\n"), t.Skipped, t.Error); err != nil {
			return err
		}
	}
	return nil
}
