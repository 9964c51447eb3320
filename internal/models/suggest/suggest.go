// Package suggest proposes where a tenant keeps the fields the SQL models read (sources.gsapi.fields),
// from the tenant's own data in a warehouse — a first run's, or a probe's — and never from what the
// sandbox knows of its tenants. Each field comes with its evidence, strongest first: sums that
// reconcile across the invoices, their lines and the summary journal; links every line follows;
// values that lie in the window the API chose them by; values found in the documented lists
// (organizations/list, products/list). A field is certain only when that evidence singles out one
// column or expression; a name only breaks a tie, and the field then stays uncertain. A field nothing
// fits is left out, with the reason, and the models that need it fail as they would without it.
package suggest

import (
	"context"
	dbsql "database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// The tables whose tenant-defined fields the models read, and the documented lists that corroborate
// them: organizations/list's org_id and company_name (schemas/gsapi/organizations.yaml) and
// products/list's productcode (the spec's filter of that list; its descr is the sandbox's, an
// assumption, and only ever evidence beside the code).
const (
	invoicesTable = "gsapi_datasync_invoices"
	linesTable    = "gsapi_datasync_invoice_lines"
	journalTable  = "gsapi_invoice_journal_summary"
	orgsTable     = "gsapi_organizations"
	productsTable = "gsapi_products"
)

// ErrNoInvoices means the warehouse holds no datasync invoices to read the fields from.
var ErrNoInvoices = errors.New("the warehouse holds no rows of " + invoicesTable + ": run extract run once (or use --probe) before suggesting fields")

// Field is the proposal for one model field.
type Field struct {
	fieldmap.Ref
	Entry    fieldmap.Entry // zero when nothing fits
	Certain  bool
	Evidence []string // strongest first
	Doubt    string   // why an uncertain field is uncertain
	Missing  string   // why nothing fits
}

// Found reports whether the field has a proposal.
func (f *Field) Found() bool { return f.Entry.Kind() != "" }

// Suggestion is every model field's proposal, in sql/fieldmap/fields.yaml's order.
type Suggestion struct {
	Invoices, Lines, Journal int64 // rows the evidence was read from
	Fields                   []*Field
}

// Counts are how many fields were found certain, uncertain, and not at all.
func (s *Suggestion) Counts() (certain, uncertain, missing int) {
	for _, f := range s.Fields {
		switch {
		case !f.Found():
			missing++
		case f.Certain:
			certain++
		default:
			uncertain++
		}
	}
	return
}

// Mapping is the proposal as a pipeline's fields: stream → field → entry, found fields only.
func (s *Suggestion) Mapping() map[string]map[string]fieldmap.Entry {
	out := map[string]map[string]fieldmap.Entry{}
	for _, f := range s.Fields {
		if !f.Found() {
			continue
		}
		stream := strings.TrimPrefix(f.Table, "gsapi_")
		if out[stream] == nil {
			out[stream] = map[string]fieldmap.Entry{}
		}
		out[stream][f.Field] = f.Entry
	}
	return out
}

// suggester holds what the fields are read from while they are weighed.
type suggester struct {
	ctx                                 context.Context
	db                                  querier
	inv, lines, journal, orgs, products *table
	reserved                            map[string]bool // DuckDB's reserved words, quoted in expressions
	fields                              map[fieldmap.Ref]*Field
	invKey, lineKey, journalKey         string // the columns linking lines and journal rows to invoices
	lineLink, journalLink               tally
	invTaken                            map[string]bool // header columns proposed for a field
	headerCurrency                      fieldmap.Entry
}

// Suggest proposes every model field from the warehouse db (opened read-only is enough).
func Suggest(ctx context.Context, db *dbsql.DB) (*Suggestion, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	drop, err := copyTables(ctx, conn)
	defer drop()
	if err != nil {
		return nil, err
	}
	s := &suggester{ctx: ctx, db: conn, fields: map[fieldmap.Ref]*Field{}, invTaken: map[string]bool{}}
	for _, t := range []struct {
		dst   **table
		name  string
		stats bool // the lists are only looked up in
	}{{&s.inv, invoicesTable, true}, {&s.lines, linesTable, true}, {&s.journal, journalTable, true}, {&s.orgs, orgsTable, false}, {&s.products, productsTable, false}} {
		if *t.dst, err = profile(ctx, conn, t.name, t.stats); err != nil {
			return nil, err
		}
	}
	if s.inv == nil || s.inv.rows == 0 {
		return nil, ErrNoInvoices
	}
	words, err := duckdb.StringSet(ctx, conn, "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category <> 'unreserved'")
	if err != nil {
		return nil, err
	}
	s.reserved = words
	for _, step := range []func() error{s.links, s.money, s.header, s.lineFields} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	out := &Suggestion{Invoices: s.inv.rows}
	if s.lines != nil {
		out.Lines = s.lines.rows
	}
	if s.journal != nil {
		out.Journal = s.journal.rows
	}
	for _, r := range fieldmap.Order {
		f := s.fields[r]
		if f == nil {
			f = &Field{Ref: r, Missing: "nothing was found to read it from"}
		}
		out.Fields = append(out.Fields, f)
	}
	return out, nil
}

// copyTables copies the tables the suggestion reads into temporary tables of the same names on conn,
// which shadow the warehouse's: the current state of a windowed stream is a view over its history, and
// the suggestion reads each table a few dozen times. drop removes them (the connection goes back to the
// pool with them otherwise).
func copyTables(ctx context.Context, conn *dbsql.Conn) (drop func(), err error) {
	var copied []string
	drop = func() {
		for _, t := range copied {
			_, _ = conn.ExecContext(context.WithoutCancel(ctx), "DROP TABLE IF EXISTS temp.main."+duckdb.Quote(t))
		}
	}
	var db string
	if err := conn.QueryRowContext(ctx, "SELECT current_database()").Scan(&db); err != nil {
		return drop, err
	}
	for _, t := range []string{invoicesTable, linesTable, journalTable, orgsTable, productsTable} {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name = 'main' AND table_name = ?
			UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = ? AND schema_name = 'main' AND view_name = ?)`, db, t, db, t).Scan(&n); err != nil {
			return drop, err
		}
		if n == 0 {
			continue
		}
		if _, err := conn.ExecContext(ctx, fmt.Sprintf("CREATE TEMP TABLE %s AS SELECT * FROM %s.main.%[1]s", duckdb.Quote(t), duckdb.Quote(db))); err != nil {
			return drop, fmt.Errorf("reading %s: %w", t, err)
		}
		copied = append(copied, t)
	}
	return drop, nil
}

// field is the proposal for table's field, made on first use.
func (s *suggester) field(table, name string) *Field {
	r := fieldmap.Ref{Table: table, Field: name}
	if s.fields[r] == nil {
		s.fields[r] = &Field{Ref: r}
	}
	return s.fields[r]
}

// propose sets f's entry and first evidence.
func (f *Field) propose(e fieldmap.Entry, certain bool, evidence ...string) {
	f.Entry, f.Certain, f.Missing = e, certain, ""
	f.Evidence = append(f.Evidence, evidence...)
}

// missing leaves f out, saying why.
func (f *Field) missing(why string) { f.Entry, f.Certain, f.Missing = fieldmap.Entry{}, false, why }

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ident is a column as an expression writes it: bare where DuckDB reads it as the column.
func (s *suggester) ident(col string) string {
	if plainIdent.MatchString(col) && !s.reserved[col] {
		return col
	}
	return duckdb.Quote(col)
}

var printer = message.NewPrinter(language.English)

// num writes a count with thousands separators, as the evidence reads: 2,568.
func num(n int64) string { return printer.Sprintf("%d", n) }

// of writes "hits of of".
func of(t tally) string { return num(t.hits) + " of " + num(t.of) }

// numericCols lists t's numeric columns other than those in skip.
func numericCols(t *table, skip ...string) []string {
	var out []string
	for _, c := range t.cols {
		if c.kind == numeric && !slices.Contains(skip, c.name) {
			out = append(out, c.name)
		}
	}
	return out
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("suggesting fields: "+format, args...)
}
