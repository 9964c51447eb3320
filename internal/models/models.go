// Package models runs the SQL models of sql/ in the warehouse after each load, in dependency order
// derived from the SQL itself, and then the data tests: the queries of sql/tests plus a uniqueness and
// not-null test of every key in force. A test fails when its query returns rows; it is reported by name
// with a sample of them. Models whose source tables are absent (a source not configured) are skipped.
//
// Models read the tenant-defined fields through {{table.field}} (sql/fieldmap/fields.yaml), which the
// pipeline's mapping turns into the tenant's column, an expression over its columns, the parent
// record's field or a constant. A model that cannot be built fails alone, as dbt build does: its
// message names the missing column (or the entry that does not bind), the table's columns and the
// config key to set; the models that do not depend on it are built, and its dependents are skipped and
// named. Subpackage suggest proposes the mapping from the data.
package models

import (
	"context"
	dbsql "database/sql"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	sqlfiles "github.com/ledgerlake/ledgerlake/sql"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
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
	// placeholder is a tenant-defined column in a model: {{gsapi_datasync_invoices.net_amount}}.
	placeholder = regexp.MustCompile(`\{\{\s*([a-z0-9_]+)\.([a-z0-9_]+)\s*\}\}`)
)

// binding is one tenant-defined column a model reads.
type binding struct{ table, field string }

// bindings lists the placeholders of sql, in order of first use.
func bindings(sql string) []binding {
	var out []binding
	seen := map[binding]bool{}
	for _, m := range placeholder.FindAllStringSubmatch(sql, -1) {
		b := binding{m[1], m[2]}
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	return out
}

// Render is the model's SQL with each placeholder replaced by what fields reads it from: a column,
// an expression, a parent's field or a constant (fieldmap.Entry.Expr).
func (m *Model) Render(fields fieldmap.Mapping) (string, error) {
	var err error
	out := placeholder.ReplaceAllStringFunc(m.SQL, func(ph string) string {
		sub := placeholder.FindStringSubmatch(ph)
		if fields[sub[1]][sub[2]].Kind() == "" && err == nil {
			err = fmt.Errorf("sql model %s: %s is not in sql/fieldmap/fields.yaml", m.Name, strings.Trim(ph, "{} "))
		}
		return fields.Expr(sub[1], sub[2])
	})
	return out, err
}

// Fields lists the tenant-defined fields the model reads, as table.field, in order of first use.
func (m *Model) Fields() []string {
	var out []string
	for _, b := range bindings(m.SQL) {
		out = append(out, b.table+"."+b.field)
	}
	return out
}

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
	// Table and Message are set on a key test: the table, and what failed in a sentence
	// ("key not unique: 1,923 keys, e.g. iheader_id=5001 account=3000").
	Table   string `json:"table,omitempty"`
	Message string `json:"message,omitempty"`
}

// Failed reports whether the test found problems or could not run.
func (t TestResult) Failed() bool { return t.Failures > 0 || t.Error != "" }

// Report is what Run did.
type Report struct {
	Built   []string          `json:"built"`
	Skipped map[string]string `json:"skipped,omitempty"` // model → why
	Failed  map[string]string `json:"failed,omitempty"`  // model → why it could not be built
	Tests   []TestResult      `json:"tests"`
}

// OK reports whether every model was built (or skipped for a source not loaded) and every test passed.
func (r *Report) OK() bool {
	if len(r.Failed) > 0 {
		return false
	}
	for _, t := range r.Tests {
		if t.Failed() {
			return false
		}
	}
	return true
}

// Run builds every model in one transaction (readers see the old models or the new, never a mix) and
// then runs the data tests, recording their results with runID, and the mapping in
// _ledgerlake_fields. fields maps the models' tenant-defined fields. tables are the loaded tables whose
// key in force is tested. A model that fails is left out and the transaction is built again without it
// and its dependents.
func Run(ctx context.Context, db *dbsql.DB, runID string, tables []lake.TableInfo, fields fieldmap.Mapping) (*Report, error) {
	return RunSelected(ctx, db, runID, tables, fields, nil)
}

// RunSelected is Run for the models and tests sel chooses (nil: all); the models it leaves out stay
// as they are in the warehouse.
func RunSelected(ctx context.Context, db *dbsql.DB, runID string, tables []lake.TableInfo, fields fieldmap.Mapping, sel *Selection) (*Report, error) {
	models, tests, err := Load()
	if err != nil {
		return nil, err
	}
	if sel != nil {
		models = slices.DeleteFunc(models, func(m *Model) bool { return !sel.Models[m.Name] })
		tests = slices.DeleteFunc(tests, func(m *Model) bool { return !sel.Tests[m.Name] })
		tables = slices.DeleteFunc(slices.Clone(tables), func(t lake.TableInfo) bool { return !sel.KeyTests(t.Name) })
	}
	rep := &Report{Failed: map[string]string{}}
	exists, err := relations(ctx, db)
	if err != nil {
		return nil, err
	}
	problems, err := checkEntries(ctx, db, fields, exists)
	if err != nil {
		return nil, err
	}
	for {
		if exists, err = relations(ctx, db); err != nil {
			return nil, err
		}
		failed, why, err := build(ctx, db, models, exists, fields, problems, rep)
		if err != nil {
			return nil, err
		}
		if failed == "" {
			break
		}
		rep.Failed[failed] = why
	}
	for _, t := range tests {
		res := TestResult{Name: t.Name}
		if why := missing(t, exists, rep.Skipped, rep.Failed); why != "" {
			res.Skipped = why
		} else if q, rerr := t.Render(fields); rerr != nil {
			res.Error = rerr.Error()
		} else if res.Failures, res.Sample, err = offending(ctx, db, q); err != nil {
			res.Error = err.Error()
		}
		rep.Tests = append(rep.Tests, res)
	}
	for _, tb := range tables {
		if len(tb.Key) == 0 || !exists[tb.Name] {
			continue
		}
		res, err := keyTest(ctx, db, tb)
		if err != nil {
			return nil, err
		}
		rep.Tests = append(rep.Tests, res)
	}
	if err := record(ctx, db, runID, rep.Tests); err != nil {
		return rep, err
	}
	return rep, recordFields(ctx, db, fields)
}

// build creates the models that can be built in one transaction, filling rep's Built and Skipped. At
// the first model that fails it rolls back and returns its name and why, for Run to try again without it.
func build(ctx context.Context, db *dbsql.DB, models []*Model, exists map[string]bool, fields fieldmap.Mapping, problems map[binding]string, rep *Report) (string, string, error) {
	rep.Built, rep.Skipped = nil, map[string]string{}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return "", "", err
	}
	for _, m := range models {
		if rep.Failed[m.Name] != "" {
			continue
		}
		if why := missing(m, exists, rep.Skipped, rep.Failed); why != "" {
			rep.Skipped[m.Name] = why
			continue
		}
		why, err := bind(ctx, tx, m, exists, fields, problems)
		if err != nil {
			_ = tx.Rollback()
			return "", "", err
		}
		if why == "" {
			q, rerr := m.Render(fields)
			if rerr != nil {
				why = rerr.Error()
			} else if _, err := tx.ExecContext(ctx, "CREATE OR REPLACE "+strings.ToUpper(m.Kind)+" "+duckdb.Quote(m.Name)+" AS\n"+q); err != nil {
				why = fmt.Sprintf("sql model %s: %v", m.Name, err)
			}
		}
		if why != "" {
			_ = tx.Rollback()
			return m.Name, why, nil
		}
		exists[m.Name] = true
		rep.Built = append(rep.Built, m.Name)
	}
	return "", "", tx.Commit()
}

// bind checks that every tenant-defined field m reads can be read, and otherwise says what to set:
// for columns, the model, each missing column, the columns the table has, and the config keys; for
// the other entries, what entries found (see checkEntries).
func bind(ctx context.Context, tx *dbsql.Tx, m *Model, exists map[string]bool, fields fieldmap.Mapping, problems map[binding]string) (string, error) {
	have := map[string][]string{}
	var missing, keys []string
	var table string
	for _, b := range bindings(m.SQL) {
		if !exists[b.table] {
			continue // missing() skips models whose tables are not loaded
		}
		if why := problems[b]; why != "" {
			return "sql model " + m.Name + ": " + why, nil
		}
		e := fields[b.table][b.field]
		if e.Kind() != fieldmap.KindColumn {
			continue
		}
		cols, ok := have[b.table]
		if !ok {
			var err error
			if cols, err = columnList(ctx, tx, b.table); err != nil {
				return "", err
			}
			have[b.table] = cols
		}
		if slices.Contains(cols, e.Column) || (table != "" && table != b.table) {
			continue // one table at a time: its columns are what the message lists
		}
		table = b.table
		missing = append(missing, fmt.Sprintf("%q (the model's %s)", e.Column, b.field))
		keys = append(keys, fieldmap.ConfigKey(b.table, b.field))
	}
	if len(missing) == 0 {
		return "", nil
	}
	return fmt.Sprintf("sql model %s: %s has no column %s; its columns are %s; set %s to the columns that hold them (extract fields --suggest proposes them)",
		m.Name, table, strings.Join(missing, ", "), strings.Join(have[table], ", "), strings.Join(keys, ", ")), nil
}

// keyTest checks a table's key in force: no key shared by two rows, no NULL in its leading column. The
// later columns of a composite key qualify it and may be NULL (a billing info's costcentre is NULL for
// the organisation-wide setting); GROUP BY treats NULLs as equal, so uniqueness still holds across them.
func keyTest(ctx context.Context, db *dbsql.DB, tb lake.TableInfo) (TestResult, error) {
	res := TestResult{Name: KeyTestPrefix + tb.Name, Table: tb.Name}
	cols, err := duckdb.ColumnSet(ctx, db, tb.Name)
	if err != nil {
		return res, err
	}
	keys := make([]string, 0, len(tb.Key))
	for _, k := range tb.Key {
		if !cols[k] {
			res.Error = fmt.Sprintf("the key column %s is not in %s: the key in force (%s) names a field this tenant does not send", k, tb.Name, strings.Join(tb.Key, ", "))
			res.Message = res.Error
			return res, nil
		}
		keys = append(keys, duckdb.Quote(k))
	}
	q := "SELECT " + strings.Join(keys, ", ") + ", count(*) AS copies FROM " + duckdb.Quote(tb.Name) +
		" GROUP BY ALL HAVING count(*) > 1 OR " + keys[0] + " IS NULL ORDER BY copies DESC, " + strings.Join(keys, ", ")
	if res.Failures, res.Sample, err = offending(ctx, db, q); err != nil {
		res.Error = err.Error()
		return res, nil
	}
	if res.Failures == 0 {
		return res, nil
	}
	var dups, nulls int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FILTER (WHERE copies > 1 AND k0 IS NOT NULL), coalesce(sum(copies) FILTER (WHERE k0 IS NULL), 0) FROM (SELECT "+
		keys[0]+" AS k0, "+strings.Join(keys, ", ")+", count(*) AS copies FROM "+duckdb.Quote(tb.Name)+" GROUP BY ALL)").Scan(&dups, &nulls); err != nil {
		return res, err
	}
	var parts []string
	if dups > 0 {
		_, eg, err := offending(ctx, db, "SELECT "+strings.Join(keys, ", ")+" FROM "+duckdb.Quote(tb.Name)+" WHERE "+keys[0]+
			" IS NOT NULL GROUP BY ALL HAVING count(*) > 1 ORDER BY count(*) DESC, "+strings.Join(keys, ", ")+" LIMIT 1")
		if err != nil || len(eg) == 0 {
			return res, err
		}
		parts = append(parts, fmt.Sprintf("key not unique: %s keys, e.g. %s", thousands(dups), eg[0]))
	}
	if nulls > 0 {
		parts = append(parts, fmt.Sprintf("key column %s is NULL in %s rows", tb.Key[0], thousands(nulls)))
	}
	res.Message = strings.Join(parts, "; ")
	return res, nil
}

// thousands writes n with comma thousands separators: 1923 → "1,923".
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// missing explains why m cannot run: a source table that is not loaded, or a model that was skipped
// or failed.
func missing(m *Model, exists map[string]bool, skipped, failed map[string]string) string {
	for _, s := range m.Sources {
		if !exists[s] {
			return "needs " + s + ", which is not loaded"
		}
	}
	for _, d := range m.Deps {
		if failed[d] != "" {
			return "needs " + d + ", which failed"
		}
		if skipped[d] != "" {
			return "needs " + d + ", which was skipped"
		}
		if !exists[d] {
			return "needs " + d + ", which is not in the warehouse" // a build that left it out
		}
	}
	return ""
}

// columnList lists table's columns in order.
func columnList(ctx context.Context, q duckdb.Querier, table string) ([]string, error) {
	return duckdb.Strings(ctx, q, "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", table)
}

func relations(ctx context.Context, db *dbsql.DB) (map[string]bool, error) {
	return duckdb.StringSet(ctx, db, "SELECT table_name FROM duckdb_tables() UNION ALL SELECT view_name FROM duckdb_views() WHERE NOT internal")
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
	for _, ddl := range []string{`CREATE TABLE IF NOT EXISTS _ledgerlake_data_tests (run_id VARCHAR, name VARCHAR, failures BIGINT,
		sample VARCHAR, skipped VARCHAR, error VARCHAR)`, "ALTER TABLE _ledgerlake_data_tests ADD COLUMN IF NOT EXISTS message VARCHAR"} {
		if _, err := db.ExecContext(ctx, ddl); err != nil {
			return err
		}
	}
	for _, t := range tests {
		if _, err := db.ExecContext(ctx, "INSERT INTO _ledgerlake_data_tests (run_id, name, failures, sample, skipped, error, message) VALUES (?, ?, ?, ?, ?, ?, ?)",
			runID, t.Name, t.Failures, strings.Join(t.Sample, "\n"), t.Skipped, t.Error, t.Message); err != nil {
			return err
		}
	}
	return nil
}
