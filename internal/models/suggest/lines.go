package suggest

import (
	"fmt"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// lineFields proposes the lines' fields that are not amounts: number, product and currency.
func (s *suggester) lineFields() error {
	names := []string{"line_number", "product_code", "product_name", "currency"}
	if s.lines == nil || s.lines.rows == 0 || s.lineKey == "" {
		why := linesTable + " holds no rows"
		if s.lines != nil && s.lines.rows > 0 {
			why = "the lines were not linked to the invoices"
		}
		for _, n := range append(names, "net_amount", "tax_amount", "quantity", "unit_price") {
			if f := s.field(linesTable, n); !f.Found() {
				f.missing(why)
			}
		}
		return nil
	}
	for _, step := range []func() error{s.lineNumber, s.product, s.lineCurrency} {
		if err := step(); err != nil {
			return err
		}
	}
	return nil
}

// lineNumber: whole numbers that run 1, 2, … within each invoice (or at least never repeat in one).
func (s *suggester) lineNumber() error {
	f := s.field(linesTable, "line_number")
	var cands []scored
	for _, c := range s.lines.everywhere(func(c *column) bool { return c.kind == numeric && c.integral && c.name != s.lineKey }) {
		var runs, unique int64
		q := fmt.Sprintf(`SELECT count(*) FILTER (WHERE n = rn), count(DISTINCT (k, n)) FROM (SELECT %s::VARCHAR AS k, %s AS n,
			row_number() OVER (PARTITION BY %[1]s ORDER BY %[2]s) AS rn FROM %s)`, duckdb.Quote(s.lineKey), duckdb.Quote(c.name), duckdb.Quote(linesTable))
		if err := s.db.QueryRowContext(s.ctx, q).Scan(&runs, &unique); err != nil {
			return errorf("line numbers in %s: %w", c.name, err)
		}
		if unique != s.lines.rows {
			continue
		}
		sc := scored{col: c.name, score: []int64{runs}, ev: []string{fmt.Sprintf("never repeats within an invoice (%s lines)", num(s.lines.rows))}}
		if t := (tally{runs, s.lines.rows}); t.holds() {
			sc.ev = append([]string{fmt.Sprintf("runs 1, 2, … within each invoice on %s lines", of(t))}, sc.ev...)
		}
		cands = append(cands, sc)
	}
	best := pick(f, cands, "line", "rivi", "row", "pos")
	switch {
	case best == nil:
		f.missing("no whole-number column is unique within each invoice")
	case !(tally{best.score[0], s.lines.rows}).holds() && f.Certain:
		f.Certain = false
		f.Doubt = "it does not run 1, 2, … within the invoices: only its uniqueness says it numbers the lines"
	}
	return nil
}

// product: two text columns in one-to-one correspondence (each code one name, each name one code);
// the code is the one organizations'… products/list knows as productcode, or else the one without
// spaces.
func (s *suggester) product() error {
	code, name := s.field(linesTable, "product_code"), s.field(linesTable, "product_name")
	texts := s.lines.everywhere(func(c *column) bool { return c.kind == text && c.name != s.lineKey && c.distinct > 1 })
	type pair struct{ code, name string }
	var pairs []pair
	for i, a := range texts {
		for _, b := range texts[i+1:] {
			if a.distinct != b.distinct {
				continue
			}
			n, err := count(s.ctx, s.db, fmt.Sprintf("SELECT count(DISTINCT (%s, %s)) FROM %s", duckdb.Quote(a.name), duckdb.Quote(b.name), duckdb.Quote(linesTable)))
			if err != nil {
				return err
			}
			if n == a.distinct {
				pairs = append(pairs, pair{a.name, b.name})
			}
		}
	}
	if len(pairs) == 0 {
		why := "no two text columns of the lines correspond one to one, as a product code and its name do"
		code.missing(why)
		name.missing(why)
		return nil
	}
	var cands []scored
	for _, p := range pairs {
		for _, o := range []pair{p, {p.name, p.code}} {
			sc, err := s.productEvidence(o.code, o.name)
			if err != nil {
				return err
			}
			cands = append(cands, sc)
		}
	}
	best := pick(code, cands, "code", "koodi", "sku")
	c, n, _ := strings.Cut(best.col, "\x00")
	code.Entry = fieldmap.Column(c)
	name.propose(fieldmap.Column(n), code.Certain, best.ev...)
	name.Doubt = code.Doubt
	if best.score[0] == 0 && best.score[1] == 0 {
		code.Certain, name.Certain = false, false
		code.Doubt = fmt.Sprintf("only %s's form (no spaces, shorter) says it is the code and %s the name", c, n)
		name.Doubt = code.Doubt
	}
	return nil
}

// productEvidence scores code and name as the lines' product code and name: the codes found among
// products/list's productcode, then code-like values (no spaces, shorter than the names).
func (s *suggester) productEvidence(code, name string) (scored, error) {
	sc := scored{col: code + "\x00" + name, ev: []string{fmt.Sprintf("%s and %s correspond one to one on every line", code, name)}}
	var known int64
	if s.products != nil && s.products.col("productcode") != nil {
		hits, err := within(s.ctx, s.db, s.lines, []*column{s.lines.col(code)}, s.products, "productcode")
		if err != nil {
			return sc, err
		}
		if t := (tally{hits[0], s.lines.rows}); t.holds() {
			known = hits[0]
			sc.ev = append([]string{fmt.Sprintf("every %s is a productcode of products/list (%s lines)", code, of(t))}, sc.ev...)
		}
	}
	var codeLike int64
	if err := s.db.QueryRowContext(s.ctx, fmt.Sprintf("SELECT count(*) FILTER (WHERE NOT contains(%s, ' ') AND length(%[1]s) < length(%s)) FROM %s",
		duckdb.Quote(code), duckdb.Quote(name), duckdb.Quote(linesTable))).Scan(&codeLike); err != nil {
		return sc, err
	}
	if t := (tally{codeLike, s.lines.rows}); t.holds() {
		sc.ev = append(sc.ev, fmt.Sprintf("%s has no spaces and is shorter than %s on %s lines", code, name, of(t)))
	} else {
		codeLike = 0
	}
	sc.score = []int64{known, codeLike}
	return sc, nil
}

// lineCurrency: the lines' own currency column, if they have one that is their invoice's; else their
// invoice's, through the link.
func (s *suggester) lineCurrency() error {
	f := s.field(linesTable, "currency")
	head := s.headerCurrency
	for _, c := range s.lines.cols {
		codes, err := s.currencyCodes(s.lines, c)
		if err != nil || codes == nil {
			if err != nil {
				return err
			}
			continue
		}
		ev := fmt.Sprintf("ISO 4217 currency codes on every one of %s lines (%s)", num(s.lines.rows), strings.Join(codes, ", "))
		if head.Kind() == fieldmap.KindColumn {
			if same, err := s.onLines(head.Column, "="); err != nil {
				return err
			} else if same.own == c.name && same.t.holds() {
				f.propose(fieldmap.Column(c.name), true, ev, fmt.Sprintf("the invoice's %s on %s lines", head.Column, of(same.t)))
				return nil
			}
		}
		f.propose(fieldmap.Column(c.name), false, ev)
		f.Doubt = "it is not the invoice's currency on nearly every line"
		return nil
	}
	if head.Kind() != fieldmap.KindColumn {
		f.missing("the lines have no currency column, and the invoices' currency was not found to take theirs")
		return nil
	}
	via := s.lineKey
	if s.lineKey != s.invKey {
		via = s.lineKey + " = " + s.invKey
	}
	f.propose(fieldmap.Entry{From: strings.TrimPrefix(invoicesTable, "gsapi_") + "." + head.Column, Via: via}, true,
		"the lines have no currency column (none holds ISO 4217 codes on every line)",
		fmt.Sprintf("each line takes its invoice's %s: every line's %s (%s) is an invoice's %s", head.Column, s.lineKey, of(s.lineLink), s.invKey))
	return nil
}
