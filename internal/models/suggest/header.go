package suggest

import (
	"fmt"
	"slices"
	"strings"

	"golang.org/x/text/currency"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// header proposes the invoices' fields that are not amounts: number, date, organisation, currency
// and status.
func (s *suggester) header() error {
	for _, step := range []func() error{s.invoiceDate, s.organization, s.invoiceNumber, s.currency, s.status} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// scored is a candidate column with the counts that rank it, highest first.
type scored struct {
	col   string
	score []int64
	ev    []string
}

// pick proposes the best of cands for f: certain when it outranks the next one and its first count
// holds on nearly every record; else uncertain, naming the runner-up. Names break a tie (contains
// one of hints), never make a field certain.
func pick(f *Field, cands []scored, hints ...string) *scored {
	if len(cands) == 0 {
		return nil
	}
	named := func(c scored) int64 {
		for _, h := range hints {
			if strings.Contains(c.col, h) {
				return 1
			}
		}
		return 0
	}
	slices.SortStableFunc(cands, func(a, b scored) int {
		if c := slices.Compare(b.score, a.score); c != 0 {
			return c
		}
		return int(named(b) - named(a))
	})
	best := &cands[0]
	f.propose(fieldmap.Column(best.col), true, best.ev...)
	if len(cands) > 1 && slices.Equal(cands[1].score, best.score) {
		f.Certain = false
		f.Doubt = fmt.Sprintf("%s fits as well", cands[1].col)
		if named(*best) > named(cands[1]) {
			f.Doubt += "; " + best.col + " was chosen by its name alone"
		}
	}
	return best
}

// invoiceDate: a date or time on every invoice that lies inside the window the API returned the
// invoice in (the API chose the invoice by it), and that its lines carry too.
func (s *suggester) invoiceDate() error {
	f := s.field(invoicesTable, "invoice_date")
	cols := s.inv.everywhere(func(c *column) bool { return c.kind == temporal })
	if len(cols) == 0 {
		f.missing("no date or timestamp column holds a value on every invoice")
		return nil
	}
	windowed := s.hasColumn(invoicesTable, "_window_start")
	var cands []scored
	for _, c := range cols {
		q := duckdb.Quote(c.name)
		sc := scored{col: c.name}
		var in int64
		if windowed {
			n, err := count(s.ctx, s.db, fmt.Sprintf("SELECT count(*) FILTER (WHERE %s::TIMESTAMP BETWEEN _window_start AND _window_end) FROM %s", q, duckdb.Quote(invoicesTable)))
			if err != nil {
				return err
			}
			in = n
			if (tally{n, s.inv.rows}).holds() {
				sc.ev = append(sc.ev, fmt.Sprintf("inside the date window the API returned the invoice in, on %s invoices", of(tally{n, s.inv.rows})))
			}
		}
		same, err := s.onLines(c.name, "=")
		if err != nil {
			return err
		}
		if same.t.holds() {
			sc.ev = append(sc.ev, fmt.Sprintf("the lines carry it as %s (%s lines)", same.own, of(same.t)))
		}
		sc.score = []int64{in, same.t.hits}
		cands = append(cands, sc)
	}
	if best := pick(f, cands, "date", "pvm", "paiva", "datum"); best != nil && len(best.ev) == 0 {
		f.Certain = false
		f.Doubt = "neither the API's windows nor the lines corroborate it"
	}
	s.invTaken[f.Entry.Column] = true
	return nil
}

// onLines finds the lines' column that equals (op) the invoice's col on nearly every line.
func (s *suggester) onLines(col, op string) (link, error) {
	if s.lineKey == "" {
		return link{}, nil
	}
	hc := s.inv.col(col)
	var cands []*column
	for _, c := range s.lines.cols {
		if c.kind == hc.kind && c.name != s.lineKey {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return link{}, nil
	}
	sel := make([]string, len(cands))
	for i, c := range cands {
		sel[i] = fmt.Sprintf("count(*) FILTER (WHERE l.%s %s h.%s)", duckdb.Quote(c.name), op, duckdb.Quote(col))
	}
	q := fmt.Sprintf("SELECT %s FROM %s l JOIN %s h ON l.%s::VARCHAR = h.%s::VARCHAR", strings.Join(sel, ", "), duckdb.Quote(linesTable), duckdb.Quote(invoicesTable),
		duckdb.Quote(s.lineKey), duckdb.Quote(s.invKey))
	hits := make([]int64, len(cands))
	dst := make([]any, len(cands))
	for i := range hits {
		dst[i] = &hits[i]
	}
	if err := s.db.QueryRowContext(s.ctx, q).Scan(dst...); err != nil {
		return link{}, errorf("comparing %s with the lines: %w", col, err)
	}
	best := link{}
	for i, h := range hits {
		if h > best.t.hits {
			best = link{inv: col, own: cands[i].name, t: tally{h, s.lines.rows}}
		}
	}
	return best, nil
}

// hasColumn reports whether table has col (ledgerlake's own columns included).
func (s *suggester) hasColumn(table, col string) bool {
	cols, err := duckdb.ColumnSet(s.ctx, s.db, table)
	return err == nil && cols[col]
}

// organization: a column whose every value is an org_id of organizations/list, and the name its
// company_name has there.
func (s *suggester) organization() error {
	id, name := s.field(invoicesTable, "organization_id"), s.field(invoicesTable, "organization_name")
	if s.orgs == nil || s.orgs.col("org_id") == nil || s.orgs.col("company_name") == nil {
		why := orgsTable + " (organizations/list, whose org_id and company_name the spec documents) is not loaded to compare with"
		id.missing(why)
		name.missing(why)
		return nil
	}
	cols := s.inv.everywhere(func(c *column) bool { return c.idLike() && !s.invTaken[c.name] })
	hits, err := within(s.ctx, s.db, s.inv, cols, s.orgs, "org_id")
	if err != nil {
		return err
	}
	var cands []scored
	for i, h := range hits {
		if t := (tally{h, s.inv.rows}); t.holds() && cols[i].distinct > 1 {
			cands = append(cands, scored{col: cols[i].name, score: []int64{h},
				ev: []string{fmt.Sprintf("each is the org_id of an organisation in organizations/list, on %s invoices", of(t))}})
		}
	}
	best := pick(id, cands, "org")
	if best == nil {
		id.missing("no column holds an org_id of organizations/list on nearly every invoice")
		name.missing("the organisation's id was not found, by which its name is compared")
		return nil
	}
	s.invTaken[best.col] = true
	names := s.inv.everywhere(func(c *column) bool { return c.kind == text && !s.invTaken[c.name] })
	var byName []scored
	for _, c := range names {
		n, err := count(s.ctx, s.db, fmt.Sprintf("SELECT count(*) FROM %s h JOIN %s o ON h.%s::VARCHAR = o.org_id::VARCHAR WHERE h.%s = o.company_name",
			duckdb.Quote(invoicesTable), duckdb.Quote(orgsTable), duckdb.Quote(best.col), duckdb.Quote(c.name)))
		if err != nil {
			return err
		}
		if t := (tally{n, s.inv.rows}); t.holds() {
			byName = append(byName, scored{col: c.name, score: []int64{n},
				ev: []string{fmt.Sprintf("the company_name organizations/list has for its %s, on %s invoices", best.col, of(t))}})
		}
	}
	if b := pick(name, byName, "name", "nimi", "organization"); b != nil {
		s.invTaken[b.col] = true
	} else {
		name.missing(fmt.Sprintf("no text column is the company_name organizations/list has for the invoice's %s", best.col))
	}
	return nil
}

// invoiceNumber: unique, on every invoice, text or whole numbers, not the id; the summary journal
// carrying the same value for the invoice is the evidence that tells it from other unique columns.
func (s *suggester) invoiceNumber() error {
	f := s.field(invoicesTable, "invoice_number")
	cols := s.inv.everywhere(func(c *column) bool { return c.idLike() && c.distinct == s.inv.rows && !s.invTaken[c.name] })
	var cands []scored
	for _, c := range cols {
		sc := scored{col: c.name, ev: []string{fmt.Sprintf("unique, on every one of %s invoices", num(s.inv.rows))}}
		var inJournal int64
		if s.journalKey != "" {
			same, err := s.journalCarries(c)
			if err != nil {
				return err
			}
			if same.t.holds() {
				inJournal = same.t.hits
				sc.ev = append(sc.ev, fmt.Sprintf("the summary journal carries it as %s (%s invoices)", same.own, of(same.t)))
			}
		}
		sc.score = []int64{inJournal, boolInt(c.kind == text)}
		cands = append(cands, sc)
	}
	best := pick(f, cands, "number", "numero", "nummer", "_no", "nr")
	switch {
	case best == nil:
		f.missing("no column other than the id is unique and on every invoice")
	case best.score[0] == 0:
		f.Certain = false
		if f.Doubt == "" {
			f.Doubt = "the summary journal does not corroborate it: only its uniqueness says it is the number"
		}
	}
	if best != nil {
		s.invTaken[best.col] = true
	}
	return nil
}

// journalCarries finds the journal column equal to the invoice's column c, by the link.
func (s *suggester) journalCarries(c *column) (link, error) {
	best := link{}
	for _, j := range s.journal.cols {
		if j.kind != c.kind && !(j.kind == text || c.kind == text) || j.name == s.journalKey {
			continue
		}
		n, err := count(s.ctx, s.db, fmt.Sprintf("SELECT count(*) FROM %s j JOIN %s h ON j.%s::VARCHAR = h.%s::VARCHAR WHERE j.%s::VARCHAR = h.%s::VARCHAR",
			duckdb.Quote(journalTable), duckdb.Quote(invoicesTable), duckdb.Quote(s.journalKey), duckdb.Quote(s.invKey), duckdb.Quote(j.name), duckdb.Quote(c.name)))
		if err != nil {
			return link{}, err
		}
		if n > best.t.hits {
			best = link{inv: c.name, own: j.name, t: tally{n, s.journal.rows}}
		}
	}
	return best, nil
}

// currencyCodes reports whether a text column holds ISO 4217 codes on every row, and which.
func (s *suggester) currencyCodes(t *table, c *column) ([]string, error) {
	if c.kind != text || c.filled != t.rows || c.distinct > 50 {
		return nil, nil
	}
	vs, more, err := values(s.ctx, s.db, t, c.name, 50)
	if err != nil || more {
		return nil, err
	}
	for _, v := range vs {
		if len(v) != 3 {
			return nil, nil
		}
		if _, err := currency.ParseISO(v); err != nil {
			return nil, nil
		}
	}
	return vs, nil
}

// currency: a text column of ISO 4217 codes on every invoice.
func (s *suggester) currency() error {
	f := s.field(invoicesTable, "currency")
	var cands []scored
	for _, c := range s.inv.cols {
		codes, err := s.currencyCodes(s.inv, c)
		if err != nil {
			return err
		}
		if codes != nil && !s.invTaken[c.name] {
			cands = append(cands, scored{col: c.name, score: []int64{1},
				ev: []string{fmt.Sprintf("ISO 4217 currency codes on every one of %s invoices (%s)", num(s.inv.rows), strings.Join(codes, ", "))}})
		}
	}
	if best := pick(f, cands, "cur", "valuut", "waehr", "valut"); best != nil {
		s.invTaken[best.col] = true
		s.headerCurrency = f.Entry
		return nil
	}
	f.missing("no column holds an ISO 4217 currency code on every invoice; if the tenant bills in one currency, set {value: EUR} (or its code)")
	return nil
}

// paidStatus is the value the models count as paid (stg_gsapi_invoices: status = 'Delivered').
const paidStatus = "Delivered"

// status: a text column of a few values on every invoice; certain when one of them is the value the
// models count as paid.
func (s *suggester) status() error {
	f := s.field(invoicesTable, "status")
	var cands []scored
	vals := map[string][]string{}
	for _, c := range s.inv.everywhere(func(c *column) bool {
		return c.kind == text && !s.invTaken[c.name] && c.distinct <= 20 && c.distinct < s.inv.rows
	}) {
		vs, _, err := values(s.ctx, s.db, s.inv, c.name, 20)
		if err != nil {
			return err
		}
		vals[c.name] = vs
		paid := slices.Contains(vs, paidStatus)
		ev := fmt.Sprintf("%d values on every invoice: %s", len(vs), strings.Join(vs, ", "))
		cands = append(cands, scored{col: c.name, score: []int64{boolInt(paid)}, ev: []string{ev}})
	}
	best := pick(f, cands, "status", "tila", "state")
	switch {
	case best == nil:
		f.missing("no text column holds one of a few values on every invoice")
	case best.score[0] == 0:
		f.Certain = false
		f.Doubt = fmt.Sprintf("none of its values is %q, which the models count as paid: map the value that means paid with {sql: \"CASE %s WHEN '…' THEN '%s' ELSE %[2]s END\"}",
			paidStatus, s.ident(best.col), paidStatus)
	default:
		f.Evidence = append(f.Evidence, fmt.Sprintf("%q, which the models count as paid, is among them", paidStatus))
	}
	return nil
}
