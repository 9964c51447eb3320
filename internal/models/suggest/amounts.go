package suggest

import (
	"fmt"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// invoiceMoney is every invoice's numeric header columns, beside the sums of its lines' and of its
// summary-journal rows' numeric columns.
type invoiceMoney struct {
	n                      int
	head, lines, journal   []vec
	headN, lineN, journalN []string // the columns, in the order of the vectors
	lineRows, journalRows  vec      // how many rows each invoice has there
}

// readMoney reads the invoices' money beside their lines' and journal rows' sums, in one query.
func (s *suggester) readMoney() (*invoiceMoney, error) {
	m := &invoiceMoney{headN: numericCols(s.inv, s.invKey)}
	key := duckdb.Quote(s.invKey) + "::VARCHAR"
	sel := []string{"h." + key}
	for _, c := range m.headN {
		sel = append(sel, scaled("h."+duckdb.Quote(c)))
	}
	from := duckdb.Quote(invoicesTable) + " h"
	side := func(t *table, own, alias string, names *[]string) {
		if own == "" {
			sel = append(sel, "NULL::BIGINT")
			return
		}
		*names = numericCols(t, own)
		sums := []string{"count(*) AS n"}
		sel = append(sel, alias+".n")
		for i, c := range *names {
			sums = append(sums, fmt.Sprintf("%s AS s%d", scaled("sum("+duckdb.Quote(c)+")"), i))
			sel = append(sel, fmt.Sprintf("%s.s%d", alias, i))
		}
		from += fmt.Sprintf(" LEFT JOIN (SELECT %s::VARCHAR AS k, %s FROM %s GROUP BY 1) %s ON %[4]s.k = h.%s",
			duckdb.Quote(own), strings.Join(sums, ", "), duckdb.Quote(t.name), alias, key)
	}
	side(s.lines, s.lineKey, "l", &m.lineN)
	side(s.journal, s.journalKey, "j", &m.journalN)
	_, cols, err := frame(s.ctx, s.db, "SELECT "+strings.Join(sel, ", ")+" FROM "+from, len(sel)-1)
	if err != nil {
		return nil, errorf("reading the invoices' amounts: %w", err)
	}
	k := len(m.headN)
	m.head, m.lineRows = cols[:k], cols[k]
	m.lines = cols[k+1 : k+1+len(m.lineN)]
	m.journalRows = cols[k+1+len(m.lineN)]
	m.journal = cols[k+2+len(m.lineN):]
	m.n = len(m.lineRows.v)
	return m, nil
}

// money finds net, tax and total: three amounts of the header with net + tax = total on every
// invoice, ranked by how many of them the lines' sums and the summary journal reconcile with; then
// the lines' net and tax (the candidates whose sums those are), the journal's net, and the lines'
// quantity and unit price (whose product is the line's net).
func (s *suggester) money() error {
	m, err := s.readMoney()
	if err != nil {
		return err
	}
	has := func(rows vec) func(int) bool { return func(i int) bool { return rows.ok[i] && rows.v[i] > 0 } }
	cs := classes(exprs(m.headN, m.head, s.ident))
	lines := reconcile(cs, exprs(m.lineN, m.lines, s.ident), m.n, has(m.lineRows))
	journal := reconcile(cs, exprs(m.journalN, m.journal, s.ident), m.n, has(m.journalRows))
	for i, c := range cs {
		c.lines, c.journal = lines[i], journal[i]
	}
	header := func(name string) *Field { return s.field(invoicesTable, name) }
	ts := triples(cs, m.n)
	if len(ts) == 0 {
		why := fmt.Sprintf("no three amounts of the invoices (%s, or the sum or difference of two) add up as net + tax = total on every invoice",
			strings.Join(m.headN, ", "))
		for _, f := range []string{"net_amount", "tax_amount", "total_amount"} {
			header(f).missing(why)
		}
		s.field(linesTable, "net_amount").missing("the invoices' net was not found, which the lines' net must add up to")
		s.field(linesTable, "tax_amount").missing("the invoices' tax was not found, which the lines' tax must add up to")
		s.field(journalTable, "net_amount").missing("the invoices' net was not found, which the journal's net must equal")
		return s.quantities(nil, nil)
	}
	t := ts[0]
	var doubt string
	switch {
	case len(ts) > 1 && ts[1].score() == t.score():
		o := ts[1]
		doubt = fmt.Sprintf("%s + %s = %s fits as well", o.net.rep().term(), o.tax.rep().term(), o.total.rep().term())
	case t.oriented == "":
		doubt = fmt.Sprintf("nothing tells %s and %s apart as net and tax", t.net.rep().label, t.tax.rep().label)
	}
	sum := fmt.Sprintf("net + tax = total: %s + %s = %s on %s invoices", t.net.rep().term(), t.tax.rep().term(), t.total.rep().term(), of(t.sum))
	for _, p := range []struct {
		name string
		c    *class
		role string
	}{{"net_amount", t.net, "net"}, {"tax_amount", t.tax, "tax"}, {"total_amount", t.total, "total"}} {
		f := header(p.name)
		ev := reconciled(p.c, p.role)
		if p.c.rep().cols > 1 {
			ev = append([]string{"no column holds it: " + p.c.rep().label}, ev...)
		}
		ev = append(ev, sum)
		if t.oriented != "" && p.role != "total" {
			ev = append(ev, t.oriented)
		}
		certain := doubt == "" && p.c.reconciled() > 0
		f.propose(p.c.rep().entry, certain, ev...)
		if !certain {
			f.Doubt = doubt
			if f.Doubt == "" {
				f.Doubt = "neither the lines nor the summary journal reconcile with it"
			}
		}
		for _, m := range p.c.members {
			if m.cols == 1 {
				s.invTaken[m.label] = true
			}
		}
	}
	s.lineAmount("net_amount", t.net, "net")
	s.lineAmount("tax_amount", t.tax, "tax")
	jf := s.field(journalTable, "net_amount")
	switch {
	case s.journalKey == "":
		jf.missing("the summary journal's rows were not linked to the invoices")
	case t.net.journal == nil:
		jf.missing(fmt.Sprintf("no column of the summary journal (or sum or difference of two) equals the invoices' net, %s", t.net.rep().label))
	default:
		jf.propose(t.net.journal.entry, true, fmt.Sprintf("equals the invoice's net (%s) on %s invoices", t.net.rep().label, of(t.net.journal.tally)))
	}
	return s.quantities(t.net.lines, t.tax.lines)
}

// reconciled is the evidence that a class is the role it plays: the other streams that agree.
func reconciled(c *class, role string) []string {
	var ev []string
	if c.lines != nil {
		ev = append(ev, fmt.Sprintf("equals the sum of its lines' %s on %s invoices", c.lines.label, of(c.lines.tally)))
	}
	if c.journal != nil {
		ev = append(ev, fmt.Sprintf("equals the summary journal's %s on %s invoices", c.journal.label, of(c.journal.tally)))
	}
	return ev
}

// lineAmount proposes the lines' net or tax: the candidate whose sums are the invoices' own.
func (s *suggester) lineAmount(name string, c *class, role string) {
	f := s.field(linesTable, name)
	switch {
	case s.lineKey == "":
		f.missing("the lines were not linked to the invoices")
	case c.lines == nil:
		f.missing(fmt.Sprintf("no column of the lines (or sum or difference of two) adds up to each invoice's %s, %s", role, c.rep().label))
	default:
		ev := []string{fmt.Sprintf("its sum over each invoice's lines is the invoice's %s (%s) on %s invoices", role, c.rep().label, of(c.lines.tally))}
		if c.lines.cols > 1 {
			ev = append([]string{"no column holds it: " + c.lines.label}, ev...)
		}
		f.propose(c.lines.entry, true, ev...)
	}
}

// quantities finds the lines' quantity and unit price — two columns, other than those of the net and
// the tax, whose product is the line's net — and, as evidence for the tax, a rate: tax = net × rate %
// on every line.
func (s *suggester) quantities(net, tax *match) error {
	qf, pf := s.field(linesTable, "quantity"), s.field(linesTable, "unit_price")
	if net == nil {
		qf.missing("the lines' net was not found, which quantity × unit price must make")
		pf.missing(qf.Missing)
		return nil
	}
	names := numericCols(s.lines, s.lineKey) // as readMoney summed them: the matches' indices are into these
	sel := []string{duckdb.Quote(s.lineKey) + "::VARCHAR"}
	for _, c := range names {
		sel = append(sel, scaled(duckdb.Quote(c)))
	}
	_, cols, err := frame(s.ctx, s.db, "SELECT "+strings.Join(sel, ", ")+" FROM "+duckdb.Quote(linesTable), len(names))
	if err != nil {
		return errorf("reading the lines' amounts: %w", err)
	}
	used := map[int]bool{}
	for _, m := range []*match{net, tax} {
		if m != nil {
			used[m.a] = true
			if m.cols > 1 {
				used[m.b] = true
			}
		}
	}
	var rest []string
	var restV []vec
	for i, n := range names {
		if !used[i] {
			rest, restV = append(rest, n), append(restV, cols[i])
		}
	}
	netV := net.on(cols)
	q, p, t, why := product(rest, restV, netV)
	if q < 0 {
		why := fmt.Sprintf("no two numeric columns of the lines (of %s) multiply to the line's net, %s, on nearly every line", strings.Join(rest, ", "), net.label)
		qf.missing(why)
		pf.missing(why)
		return nil
	}
	ev := fmt.Sprintf("%s × %s is the line's net (%s) to the cent on %s lines", rest[q], rest[p], net.label, of(t))
	for _, f := range []*Field{qf, pf} {
		f.propose(fieldmap.Column(map[*Field]string{qf: rest[q], pf: rest[p]}[f]), why != "", ev)
		if why != "" {
			f.Evidence = append(f.Evidence, why)
		} else {
			f.Doubt = fmt.Sprintf("nothing in the data tells the quantity from the unit price: %s and %s could be the other way round", rest[q], rest[p])
		}
	}
	if tf := s.fields[fieldmap.Ref{Table: linesTable, Field: "tax_amount"}]; tax != nil && tf != nil {
		if r, rt := rate(rest, restV, netV, tax.on(cols)); r != "" {
			tf.Evidence = append(tf.Evidence, fmt.Sprintf("each line's tax is its net × %s %% to the cent on %s lines", r, of(rt)))
		}
	}
	return nil
}
