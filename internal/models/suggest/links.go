package suggest

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// link is a column of another table whose values are one invoice key's values.
type link struct {
	inv, own string // the invoices' key column and the other table's column
	t        tally
}

// links finds the invoices' id — unique, on every invoice — and the columns by which the lines and
// the summary journal refer to it: the pair every line follows wins; the journal breaks a tie.
func (s *suggester) links() error {
	id := s.field(invoicesTable, "invoice_id")
	keys := s.inv.everywhere(func(c *column) bool { return c.idLike() && c.distinct == s.inv.rows })
	if len(keys) == 0 {
		id.missing(fmt.Sprintf("no column is unique and on every invoice (%s invoices)", num(s.inv.rows)))
		return nil
	}
	type candidate struct {
		key            *column
		lines, journal link
	}
	var cands []candidate
	for _, k := range keys {
		c := candidate{key: k}
		var err error
		if c.lines, err = s.follow(s.lines, k); err != nil {
			return err
		}
		if c.journal, err = s.follow(s.journal, k); err != nil {
			return err
		}
		cands = append(cands, c)
	}
	rank := func(c candidate) []int64 { return []int64{c.lines.t.hits, c.journal.t.hits, boolInt(c.key.integral)} }
	slices.SortStableFunc(cands, func(a, b candidate) int { return slices.Compare(rank(b), rank(a)) })
	best := cands[0]
	tied := len(cands) > 1 && slices.Equal(rank(cands[1]), rank(best))
	linked := best.lines.own != "" || best.journal.own != ""
	ev := []string{fmt.Sprintf("unique, on every one of %s invoices", num(s.inv.rows))}
	if best.lines.own != "" {
		ev = append(ev, fmt.Sprintf("the lines refer to it: every line's %s (%s) is one of them", best.lines.own, of(best.lines.t)))
	}
	if best.journal.own != "" {
		ev = append(ev, fmt.Sprintf("the summary journal's %s is one of them on %s rows", best.journal.own, of(best.journal.t)))
	}
	id.propose(fieldmap.Column(best.key.name), linked && !tied, ev...)
	switch {
	case tied:
		id.Doubt = fmt.Sprintf("%s is as unique and linked as well", cands[1].key.name)
	case !linked:
		id.Doubt = "neither the lines nor the summary journal refer to it, so only its uniqueness says it is the id"
	}
	s.invKey = best.key.name
	s.invTaken[best.key.name] = true
	s.linkField(linesTable, best.lines, "line", s.lines)
	s.linkField(journalTable, best.journal, "row", s.journal)
	s.lineKey, s.lineLink = best.lines.own, best.lines.t
	s.journalKey, s.journalLink = best.journal.own, best.journal.t
	return nil
}

// linkField proposes the invoice_id of the lines or the journal: the column that follows the key.
func (s *suggester) linkField(table string, l link, what string, t *table) {
	f := s.field(table, "invoice_id")
	switch {
	case t == nil || t.rows == 0:
		f.missing(table + " holds no rows")
	case l.own == "":
		f.missing(fmt.Sprintf("no column of %s holds an invoice's %s on nearly every %s", table, s.invKey, what))
	default:
		f.propose(fieldmap.Column(l.own), true, fmt.Sprintf("each is one invoice's %s (%s %ss)", l.inv, of(l.t), what))
	}
}

// follow finds the column of t (on every row, of a kind that can link) whose values are key's on
// nearly every row; the best of several, by rows linked and then by the same name.
func (s *suggester) follow(t *table, key *column) (link, error) {
	if t == nil || t.rows == 0 {
		return link{}, nil
	}
	cols := t.everywhere((*column).idLike)
	hits, err := within(s.ctx, s.db, t, cols, s.inv, key.name)
	if err != nil {
		return link{}, err
	}
	best := link{}
	for i, h := range hits {
		l := link{inv: key.name, own: cols[i].name, t: tally{h, t.rows}}
		if !l.t.holds() {
			continue
		}
		if c := cmp.Compare(l.t.hits, best.t.hits); c > 0 || c == 0 && l.own == key.name {
			best = l
		}
	}
	return best, nil
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
