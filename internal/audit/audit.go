// Package audit answers an auditor's question from the lake itself — "every invoice of organisation X
// for 2023, exactly as the system held it on 31 January 2024" — reading the committed Parquet snapshots
// the manifests list (not the warehouse, which only keeps the latest state), and attaching to every
// row where it came from: endpoint, run, extraction time, snapshot file and its sha256, and the sha256
// of the stored response body.
package audit

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// ErrSource is a Query.Source that names no source.
var ErrSource = errors.New("source must be signicat, gsapi or all")

// Query selects invoices.
type Query struct {
	Root     string    // the lake (output_dir: a directory or an object-store URL)
	Spool    string    // where a bucket's files are downloaded to be read (default: the system's temp dir)
	From, To time.Time // invoice dates, inclusive; zero = open
	Org      string    // organisation id; "" = all
	Source   string    // signicat, gsapi or all
	AsOf     time.Time // state as loaded by the last run finished at or before it; zero = latest
	Lines    bool      // invoice lines instead of headers
	// Fields maps the tenant-defined columns of the GSAPI invoice tables (the pipeline's
	// sources.gsapi.fields over sql/fieldmap/fields.yaml); nil means the defaults.
	Fields fieldmap.Mapping
}

// Answer is what Prepare set up: the SQL that returns the rows, and what an auditor needs beside them.
type Answer struct {
	SQL     string
	Columns []string // the short set shown in table form; SQL returns every column
	Runs    int      // committed runs at or before the as-of time
	LastRun string   // the newest of them
	// PDFs of the selected Signicat invoices held as of the time, by invoice number (headers only).
	PDFs map[string]lake.Evidence
	// Lake is the opened lake, to read the PDFs from; Close releases it and the files downloaded from it.
	Lake    lake.Store
	release []func()
}

// Close releases the lake and the local copies of its files; the answer's SQL cannot run after it.
func (a *Answer) Close() error {
	for _, r := range a.release {
		r()
	}
	a.release = nil
	if a.Lake == nil {
		return nil
	}
	return a.Lake.Close()
}

// table is one invoice table of a source, and how its columns map onto the shared leading columns.
type table struct {
	source, name string
	endpoint     string   // the stream's endpoint, for rows without stored evidence (runs before it existed)
	lead         string   // SQL of the shared leading columns, over the relation c
	exclude      []string // columns the lead already shows under the same name
	date, org    string   // filter expressions (headers)
	parent       string   // lines: the expression of their invoice's invoice_key
	needs        []string // the columns the expressions read, to name any that is missing
}

// tables are the header and line tables of each source. GSAPI's are tenant-defined, so their columns
// come from the mapping (sources.gsapi.fields), as the SQL models' do: a column, or an expression or a
// constant over the snapshot's own columns. A parent's field is not in the snapshot: refused.
func tables(f fieldmap.Mapping) (headers, lines []table, err error) {
	if f == nil {
		f = fieldmap.Defaults()
	}
	inv, line := f["gsapi_datasync_invoices"], f["gsapi_datasync_invoice_lines"]
	var needs []string
	col := func(table string, e fieldmap.Entry) string {
		switch e.Kind() {
		case fieldmap.KindColumn:
			needs = append(needs, e.Column)
			return "c." + quoteIdent(e.Column)
		case fieldmap.KindFrom:
			err = fmt.Errorf("%s reads %s from another table, which extract invoices does not read: map it to a column of %s", table, e, table)
		}
		return e.Expr(table, "")
	}
	id, number, date, org := col("gsapi_datasync_invoices", inv["invoice_id"]), col("gsapi_datasync_invoices", inv["invoice_number"]),
		col("gsapi_datasync_invoices", inv["invoice_date"]), col("gsapi_datasync_invoices", inv["organization_id"])
	headerNeeds := needs
	needs = nil
	lineID, lineNo := col("gsapi_datasync_invoice_lines", line["invoice_id"]), col("gsapi_datasync_invoice_lines", line["line_number"])
	headers = []table{
		{source: "signicat", name: "signicat_invoices", endpoint: "GET /invoices?invoiceDateAfter&invoiceDateBefore",
			lead:    "'signicat' AS source, c.invoice_number AS invoice_key, c.invoice_number, c.invoice_date, c.organization_id",
			exclude: []string{"invoice_number", "invoice_date", "organization_id"},
			date:    "c.invoice_date", org: "c.organization_id", needs: []string{"invoice_number", "invoice_date", "organization_id"}},
		{source: "gsapi", name: "gsapi_datasync_invoices", endpoint: "GET /datasync?option=Invoices",
			lead: "'gsapi' AS source, " + id + "::VARCHAR AS invoice_key, " + number + "::VARCHAR AS invoice_number, " +
				date + " AS invoice_date, " + org + "::VARCHAR AS organization_id",
			exclude: slices.DeleteFunc([]string{"invoice_number", "invoice_date", "organization_id"}, func(c string) bool { return inv[c] != fieldmap.Column(c) }),
			date:    date, org: org + "::VARCHAR", needs: headerNeeds},
	}
	lines = []table{
		{source: "signicat", name: "signicat_invoice_lines", endpoint: "GET /invoices/{invoiceNumber}",
			lead:   "'signicat' AS source, c.invoice_number AS invoice_key, c.line_number AS line",
			parent: "c.invoice_number", needs: []string{"invoice_number", "line_number"}},
		{source: "gsapi", name: "gsapi_datasync_invoice_lines", endpoint: "GET /datasync?option=InvoiceLines",
			lead:   "'gsapi' AS source, " + lineID + "::VARCHAR AS invoice_key, " + lineNo + " AS line",
			parent: lineID + "::VARCHAR", needs: needs},
	}
	return headers, lines, err
}

// provenance are the columns every row ends with.
const provenance = "endpoint, run_id, extracted_at, snapshot_file, snapshot_sha256, evidence_sha256"

// Prepare creates, in db (an in-memory DuckDB), the views the answer reads, and returns its SQL.
func Prepare(ctx context.Context, db *sql.DB, q Query) (*Answer, error) {
	if q.Source == "" {
		q.Source = "all"
	}
	if q.Source != "all" && q.Source != "signicat" && q.Source != "gsapi" {
		return nil, fmt.Errorf("%w, not %q", ErrSource, q.Source)
	}
	if !lake.IsURL(q.Root) {
		if _, err := os.Stat(q.Root); err != nil {
			return nil, fmt.Errorf("the lake: %w", err)
		}
	}
	st, err := lake.OpenStore(ctx, q.Root, q.Spool)
	if err != nil {
		return nil, err
	}
	a := &Answer{Lake: st}
	ans, err := prepare(ctx, db, q, a)
	if err != nil {
		a.Close()
		return nil, err
	}
	return ans, nil
}

func prepare(ctx context.Context, db *sql.DB, q Query, a *Answer) (*Answer, error) {
	all, err := lake.ReadManifests(ctx, a.Lake)
	if err != nil {
		return nil, err
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%s holds no committed run (is it the output_dir of a pipeline that has run?)", q.Root)
	}
	var ms []*lake.Manifest
	for _, m := range all {
		if q.AsOf.IsZero() || !m.FinishedAt.After(q.AsOf) {
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return nil, fmt.Errorf("no run had finished by %s; the first finished at %s", q.AsOf.UTC().Format(time.RFC3339), all[0].FinishedAt.UTC().Format(time.RFC3339))
	}
	a.Runs, a.LastRun = len(ms), ms[len(ms)-1].RunID
	headers, lines, err := tables(q.Fields)
	if err != nil {
		return nil, err
	}
	local, err := a.localFiles(ctx, ms, append(slices.Clone(headers), lines...), q.Spool)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, "SET TimeZone = 'UTC'"); err != nil {
		return nil, err
	}
	if err := loadProvenance(ctx, db, local, ms); err != nil {
		return nil, err
	}
	var parts []string
	for i, h := range headers {
		if q.Source != "all" && q.Source != h.source {
			continue
		}
		hv, err := current(ctx, db, local, ms, h)
		if err != nil {
			return nil, err
		}
		if hv == "" {
			continue
		}
		var where []string
		if !q.From.IsZero() {
			where = append(where, fmt.Sprintf("CAST(%s AS DATE) >= DATE '%s'", h.date, q.From.Format(time.DateOnly)))
		}
		if !q.To.IsZero() {
			where = append(where, fmt.Sprintf("CAST(%s AS DATE) <= DATE '%s'", h.date, q.To.Format(time.DateOnly)))
		}
		if q.Org != "" {
			where = append(where, fmt.Sprintf("%s = %s", h.org, quote(q.Org)))
		}
		cond := "true"
		if len(where) > 0 {
			cond = strings.Join(where, " AND ")
		}
		sel := fmt.Sprintf("SELECT %s, c.*%s FROM %s c WHERE %s", h.lead, exclusions(h.exclude), hv, cond)
		if !q.Lines {
			parts = append(parts, sel)
			if h.source == "signicat" {
				if err := a.pdfs(ctx, db, sel); err != nil {
					return nil, err
				}
			}
			continue
		}
		l := lines[i]
		lv, err := current(ctx, db, local, ms, l)
		if err != nil {
			return nil, err
		}
		if lv == "" {
			continue
		}
		parts = append(parts, fmt.Sprintf("SELECT %s, c.*%s FROM %s c WHERE %s IN (SELECT invoice_key FROM (%s))",
			l.lead, exclusions(l.exclude), lv, l.parent, sel))
	}
	if len(parts) == 0 {
		return nil, fmt.Errorf("no %s invoice snapshots in the runs up to %s", map[bool]string{true: q.Source + " "}[q.Source != "all"], a.LastRun)
	}
	order := "source, invoice_date, invoice_number"
	a.Columns = []string{"source", "invoice_key", "invoice_number", "invoice_date", "organization_id", "run_id", "extracted_at", "snapshot_file"}
	if q.Lines {
		order = "source, invoice_key, line"
		a.Columns = []string{"source", "invoice_key", "line", "run_id", "extracted_at", "snapshot_file"}
	}
	a.SQL = fmt.Sprintf("SELECT * FROM (%s) ORDER BY %s", strings.Join(parts, "\nUNION ALL BY NAME\n"), order)
	// Provenance last, whatever the union did to the column order.
	a.SQL = fmt.Sprintf("SELECT * EXCLUDE (%s), %s FROM (%s) ORDER BY %s", provenance, provenance, a.SQL, order)
	return a, nil
}

// exclusions is the EXCLUDE clause dropping the columns the lead already shows.
func exclusions(cols []string) string {
	if len(cols) == 0 {
		return ""
	}
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = quoteIdent(c)
	}
	return " EXCLUDE (" + strings.Join(out, ", ") + ")"
}

// localFiles gives the local path of every file of ts in the manifests: where it is in a directory,
// a copy checked against its sha256 for a bucket (released by Close).
func (a *Answer) localFiles(ctx context.Context, ms []*lake.Manifest, ts []table, spool string) (map[string]string, error) {
	want := map[string]bool{}
	for _, t := range ts {
		want[t.name] = true
	}
	var files []lake.FileInfo
	for _, m := range ms {
		for _, f := range m.Files {
			if want[f.Table] {
				files = append(files, f)
			}
		}
	}
	paths, release, err := lake.Local(ctx, a.Lake, files, spool, false)
	a.release = append(a.release, release)
	if err != nil {
		return nil, err
	}
	local := map[string]string{}
	for i, f := range files {
		abs, err := filepath.Abs(paths[i])
		if err != nil {
			return nil, err
		}
		local[f.Path] = abs
	}
	return local, nil
}

// loadProvenance puts the snapshot files and evidence of the selected runs into temp tables.
func loadProvenance(ctx context.Context, db *sql.DB, local map[string]string, ms []*lake.Manifest) error {
	for _, stmt := range []string{
		"CREATE OR REPLACE TEMP TABLE _files (abs VARCHAR, path VARCHAR, sha256 VARCHAR, run_id VARCHAR, tbl VARCHAR)",
		"CREATE OR REPLACE TEMP TABLE _evidence (run_id VARCHAR, sha256 VARCHAR, endpoint VARCHAR)",
		"CREATE OR REPLACE TEMP TABLE _pdfs (run_id VARCHAR, invoice VARCHAR, sha256 VARCHAR, bytes BIGINT, path VARCHAR, pack_offset BIGINT, pack_stored BIGINT)",
	} {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return err
		}
	}
	var files, evidence, pdfs [][]any
	for _, m := range ms {
		for _, f := range m.Files {
			files = append(files, []any{local[f.Path], f.Path, f.SHA256, m.RunID, f.Table})
		}
		for _, e := range m.Evidence {
			evidence = append(evidence, []any{m.RunID, e.SHA256, e.Endpoint})
		}
		for _, p := range m.PDFs {
			pdfs = append(pdfs, []any{m.RunID, p.Key, p.SHA256, p.Bytes, p.Path, p.Offset, p.Stored})
		}
	}
	for _, t := range []struct {
		name string
		rows [][]any
	}{{"_files", files}, {"_evidence", evidence}, {"_pdfs", pdfs}} {
		if err := insertRows(ctx, db, t.name, t.rows); err != nil {
			return fmt.Errorf("loading the manifests' %s: %w", strings.TrimPrefix(t.name, "_"), err)
		}
	}
	return nil
}

// insertRows inserts rows into table, 500 to a statement.
func insertRows(ctx context.Context, db *sql.DB, table string, rows [][]any) error {
	for len(rows) > 0 {
		n := min(len(rows), 500)
		var sb strings.Builder
		args := make([]any, 0, n*len(rows[0]))
		for i, r := range rows[:n] {
			if i > 0 {
				sb.WriteString(", ")
			}
			sb.WriteString("(" + strings.TrimSuffix(strings.Repeat("?, ", len(r)), ", ") + ")")
			args = append(args, r...)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO "+table+" VALUES "+sb.String(), args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// current creates a view of t's state as of the selected runs, by the rules the warehouse keeps (see
// sinks/duckdb): a snapshot is its last run's rows; a windowed table is the newest fetch of every
// window; a table with a key in force is the newest fetch of every key (or key group), all its rows;
// any other incremental table is every row. Each row carries its provenance. It returns the view's
// name ("" when no selected run has the table).
func current(ctx context.Context, db *sql.DB, local map[string]string, ms []*lake.Manifest, t table) (string, error) {
	var paths []string
	var info lake.TableInfo
	var windows [][]any
	for _, m := range ms {
		var runFiles []string
		for _, s := range m.Streams {
			for _, ti := range s.Tables {
				if ti.Name == t.name {
					info = ti
					for _, w := range s.Windows {
						windows = append(windows, []any{m.RunID, w.Start, w.End})
					}
				}
			}
		}
		for _, f := range m.Files {
			if f.Table == t.name {
				runFiles = append(runFiles, local[f.Path])
			}
		}
		if len(runFiles) == 0 {
			continue
		}
		if !info.Incremental {
			paths = paths[:0] // a snapshot table's state is its latest run
		}
		paths = append(paths, runFiles...)
	}
	if len(paths) == 0 {
		return "", nil
	}
	sort.Strings(paths)
	list := make([]string, len(paths))
	for i, p := range paths {
		list[i] = quote(p)
	}
	src := fmt.Sprintf("read_parquet([%s], filename = '_file', union_by_name = true, hive_partitioning = false)", strings.Join(list, ", "))
	cols, err := columns(ctx, db, src)
	if err != nil {
		return "", fmt.Errorf("reading the snapshots of %s: %w", t.name, err)
	}
	evidence := "NULL::VARCHAR"
	if cols["_evidence_sha256"] {
		evidence = "r._evidence_sha256"
	}
	for _, k := range t.needs {
		if !cols[k] {
			key := "its columns"
			if t.source == "gsapi" {
				key = "sources.gsapi.fields (sql/fieldmap/fields.yaml)"
			}
			return "", fmt.Errorf("%s has no column %s: this tenant's export names its fields otherwise; map them in %s", t.name, k, key)
		}
	}
	state := "SELECT * FROM " + src
	if info.Incremental {
		windowed := info.Windowed && cols["_window_start"]
		if !windowed {
			group := info.Group
			if len(group) == 0 {
				group = info.Key
			}
			for _, k := range group {
				if !cols[k] {
					return "", fmt.Errorf("%s has no column %s, its key", t.name, k)
				}
			}
		}
		tmp := "_windows_" + t.name
		if windowed {
			if _, err := db.ExecContext(ctx, "CREATE OR REPLACE TEMP TABLE "+tmp+" (run_id VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP)"); err != nil {
				return "", err
			}
			if err := insertRows(ctx, db, tmp, windows); err != nil {
				return "", err
			}
		}
		state, _ = duckdb.IncrementalState("("+state+")", info, cols, "(SELECT * FROM "+tmp+")")
	}
	view := "_asof_" + t.name
	stmt := fmt.Sprintf(`CREATE OR REPLACE TEMP VIEW %s AS
SELECT r.* EXCLUDE (%s),
       coalesce(e.endpoint, %s) AS endpoint, r._run_id AS run_id, r._extracted_at AS extracted_at,
       f.path AS snapshot_file, f.sha256 AS snapshot_sha256, %s AS evidence_sha256
FROM (%s) r
JOIN _files f ON f.abs = r._file
LEFT JOIN (SELECT run_id, sha256, min(endpoint) AS endpoint FROM _evidence GROUP BY ALL) e
       ON e.run_id = r._run_id AND e.sha256 = %s`,
		view, evidenceExclude(cols), quote(t.endpoint), evidence, state, evidence)
	if _, err := db.ExecContext(ctx, stmt); err != nil {
		return "", fmt.Errorf("%s: %w", t.name, err)
	}
	return view, nil
}

// evidenceExclude lists the lineage columns that the provenance columns replace.
func evidenceExclude(cols map[string]bool) string {
	out := "_file, _run_id, _extracted_at"
	for _, c := range []string{"_evidence_sha256", "_window_start", "_window_end"} {
		if cols[c] {
			out += ", " + c
		}
	}
	return out
}

func columns(ctx context.Context, db *sql.DB, src string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, "DESCRIBE SELECT * FROM "+src)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name, typ string
		var a, b, c, d sql.NullString
		if err := rows.Scan(&name, &typ, &a, &b, &c, &d); err != nil {
			return nil, err
		}
		out[name] = true
	}
	return out, rows.Err()
}

// pdfs records the newest held PDF of every invoice the header selection returns.
func (a *Answer) pdfs(ctx context.Context, db *sql.DB, sel string) error {
	rows, err := db.QueryContext(ctx, fmt.Sprintf(`SELECT p.invoice, p.sha256, p.bytes, p.path, p.pack_offset, p.pack_stored FROM _pdfs p
WHERE p.invoice IN (SELECT invoice_number FROM (%s))
QUALIFY row_number() OVER (PARTITION BY p.invoice ORDER BY p.run_id DESC) = 1`, sel))
	if err != nil {
		return err
	}
	defer rows.Close()
	if a.PDFs == nil {
		a.PDFs = map[string]lake.Evidence{}
	}
	for rows.Next() {
		var e lake.Evidence
		if err := rows.Scan(&e.Key, &e.SHA256, &e.Bytes, &e.Path, &e.Offset, &e.Stored); err != nil {
			return err
		}
		a.PDFs[e.Key] = e
	}
	return rows.Err()
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
