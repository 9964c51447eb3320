package suggest

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"math"
	"slices"

	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// quorum is the share of records a relation must hold on to count as evidence: all of them but
// the odd record a tenant corrected by hand.
const quorum = 0.99

// cent is a cent in the ten-thousandths money is read in: amounts agree when they differ by less,
// as the data test invoice_totals_match_lines has it.
const cent = 100

// expr is a candidate for a money field: one column, or the sum or difference of two.
type expr struct {
	label string // as the evidence names it: "summat__verollinen - summat__alv"
	entry fieldmap.Entry
	cols  int    // columns read: simpler is better
	a, b  int    // the columns' indices
	op    string // "-" or "+" when cols is 2
	vec
}

// on is the expression's value over other rows of the same columns.
func (e expr) on(cols []vec) vec {
	if e.cols == 1 {
		return cols[e.a]
	}
	return combine("", cols[e.a], e.op, "", cols[e.b], nil).vec
}

// exprs are the candidates over columns: each that varies, and each sum and difference of two.
func exprs(names []string, cols []vec, ident func(string) string) []expr {
	var out []expr
	add := func(e expr) {
		if varies(e.vec) {
			out = append(out, e)
		}
	}
	for i, n := range names {
		add(expr{label: n, entry: fieldmap.Column(n), cols: 1, a: i, vec: cols[i]})
	}
	for i := range names {
		for j := range names {
			if i == j {
				continue
			}
			e := combine(names[i], cols[i], "-", names[j], cols[j], ident)
			e.a, e.b = i, j
			add(e)
			if i < j {
				e := combine(names[i], cols[i], "+", names[j], cols[j], ident)
				e.a, e.b = i, j
				add(e)
			}
		}
	}
	return out
}

// combine is a op b, labelled and written as SQL through ident (nil when only the values matter).
func combine(a string, va vec, op, b string, vb vec, ident func(string) string) expr {
	v := vec{v: make([]int64, len(va.v)), ok: make([]bool, len(va.v))}
	for i := range va.v {
		v.ok[i] = va.ok[i] && vb.ok[i]
		if op == "-" {
			v.v[i] = va.v[i] - vb.v[i]
		} else {
			v.v[i] = va.v[i] + vb.v[i]
		}
	}
	e := expr{label: a + " " + op + " " + b, cols: 2, op: op, vec: v}
	if ident != nil {
		e.entry = fieldmap.Entry{SQL: ident(a) + " " + op + " " + ident(b)}
	}
	return e
}

// varies reports whether v holds at least two different values: a constant says nothing.
func varies(v vec) bool {
	first, seen := int64(0), false
	for i, x := range v.v {
		if !v.ok[i] {
			continue
		}
		if seen && x != first {
			return true
		}
		first, seen = x, true
	}
	return false
}

// tally is how many records of how many a relation held on.
type tally struct{ hits, of int64 }

func (t tally) holds() bool { return t.of > 0 && float64(t.hits) >= quorum*float64(t.of) }

// agree counts the records (where use says) on which f holds; it gives up once too many fail for
// the relation to hold, which is most candidates after a few records.
func agree(n int, use func(int) bool, f func(int) bool) tally {
	var t tally
	var failed, budget int64 = 0, int64(float64(n)*(1-quorum)) + 1
	for i := 0; i < n; i++ {
		if !use(i) {
			continue
		}
		t.of++
		if f(i) {
			t.hits++
		} else if failed++; failed > budget {
			return tally{t.hits, int64(n)}
		}
	}
	return t
}

func near(a, b int64) bool { return a-b < cent && b-a < cent }

// term is e's label as an operand: parenthesised when it is a sum or difference.
func (e expr) term() string {
	if e.cols > 1 {
		return "(" + e.label + ")"
	}
	return e.label
}

// class is a set of header candidates with the same value on every invoice (net_amount and
// gross_amount - vat_amount), represented by its simplest.
type class struct {
	members []expr
	lines   *match // the simplest line candidate whose per-invoice sum agrees
	journal *match // the simplest summary-journal candidate that agrees
}

func (c *class) rep() expr { return c.members[0] }

// column reports whether some member is a plain column.
func (c *class) column() bool { return c.rep().cols == 1 }

// reconciled counts the other streams it agrees with.
func (c *class) reconciled() int {
	n := 0
	if c.lines != nil {
		n++
	}
	if c.journal != nil {
		n++
	}
	return n
}

// match is a candidate of another stream that agrees with a class, and on how many invoices.
type match struct {
	expr
	tally
}

// classes groups candidates by their values, simplest first in each and the simplest class first.
func classes(cands []expr) []*class {
	byHash := map[uint64]*class{}
	var out []*class
	for _, e := range cands {
		h := fnv.New64a()
		for i, x := range e.v {
			if e.ok[i] {
				fmt.Fprint(h, x, ",")
			} else {
				fmt.Fprint(h, "-,")
			}
		}
		k := h.Sum64()
		if c := byHash[k]; c != nil {
			c.members = append(c.members, e)
			continue
		}
		c := &class{members: []expr{e}}
		byHash[k] = c
		out = append(out, c)
	}
	for _, c := range out {
		slices.SortStableFunc(c.members, func(a, b expr) int { return cmp.Compare(a.cols, b.cols) })
	}
	return out
}

// reconcile finds, for each class, the simplest candidate of another stream whose value agrees with
// it on the invoices where that stream has rows (use).
func reconcile(cs []*class, others []expr, n int, use func(int) bool) []*match {
	found := make([]*match, len(cs))
	for ci, c := range cs {
		r := c.rep()
		for _, o := range others {
			if found[ci] != nil && o.cols > found[ci].cols {
				break // others are simplest first
			}
			t := agree(n, func(i int) bool { return use(i) && r.ok[i] && o.ok[i] }, func(i int) bool { return near(r.v[i], o.v[i]) })
			if t.holds() && found[ci] == nil {
				found[ci] = &match{o, t}
			}
		}
	}
	return found
}

// triple is net + tax = total among the header's classes.
type triple struct {
	net, tax, total *class
	sum             tally
	oriented        string // why net and tax are told apart ("" when they are not)
}

// triples finds x + y = z among the classes that are columns or agree with another stream (a sum or
// difference of two columns that nothing corroborates would make a triple of any two columns).
func triples(cs []*class, n int) []triple {
	var use []*class
	for _, c := range cs {
		if c.column() || c.reconciled() > 0 {
			use = append(use, c)
		}
	}
	var out []triple
	for i, x := range use {
		for j, y := range use {
			if j <= i {
				continue
			}
			for _, z := range use {
				if z == x || z == y {
					continue
				}
				a, b, s := x.rep(), y.rep(), z.rep()
				t := agree(n, func(k int) bool { return a.ok[k] && b.ok[k] && s.ok[k] }, func(k int) bool { return near(a.v[k]+b.v[k], s.v[k]) })
				if t.holds() {
					out = append(out, orient(triple{net: x, tax: y, total: z, sum: t}, n))
				}
			}
		}
	}
	slices.SortStableFunc(out, func(a, b triple) int { return cmp.Compare(b.score(), a.score()) })
	return out
}

// score ranks triples: by the streams its members agree with, then by columns over computed ones.
func (t triple) score() int {
	s := 0
	for _, c := range []*class{t.net, t.tax, t.total} {
		s += 10 * c.reconciled()
		if c.column() {
			s++
		}
	}
	return s
}

// orient tells net from tax: VAT is at most 35% of the net (rates in use reach 27%), which holds of
// one and not the other on nearly every invoice.
func orient(t triple, n int) triple {
	share := func(part, whole *class) tally {
		p, w := part.rep(), whole.rep()
		return agree(n, func(i int) bool { return p.ok[i] && w.ok[i] && w.v[i] != 0 }, func(i int) bool {
			r := float64(p.v[i]) / float64(w.v[i])
			return r >= 0 && r <= 0.35
		})
	}
	fwd, back := share(t.tax, t.net), share(t.net, t.tax)
	switch {
	case fwd.holds() && !back.holds():
		t.oriented = fmt.Sprintf("%s is at most 35%% of %s on %s of %s invoices", t.tax.rep().term(), t.net.rep().term(), num(fwd.hits), num(fwd.of))
	case back.holds() && !fwd.holds():
		t.net, t.tax = t.tax, t.net
		t.oriented = fmt.Sprintf("%s is at most 35%% of %s on %s of %s invoices", t.tax.rep().term(), t.net.rep().term(), num(back.hits), num(back.of))
	}
	return t
}

// product finds the two line columns whose product is the line's net (quantity × unit price), and
// which is the price: money has at most two decimals, a quantity often more or is whole.
func product(names []string, cols []vec, net vec) (qty, price int, t tally, why string) {
	qty, price = -1, -1
	best := tally{}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			a, b := cols[i], cols[j]
			got := agree(len(net.v), func(k int) bool { return a.ok[k] && b.ok[k] && net.ok[k] }, func(k int) bool {
				return math.Abs(float64(a.v[k])*float64(b.v[k])/1e4-float64(net.v[k])) < cent
			})
			if got.holds() && got.hits > best.hits {
				qty, price, best = i, j, got
			}
		}
	}
	if qty < 0 {
		return -1, -1, best, ""
	}
	// Values with more than two decimals, and values that are not whole.
	count := func(c vec, unit int64) (n int64) {
		for k, x := range c.v {
			if c.ok[k] && x%unit != 0 {
				n++
			}
		}
		return n
	}
	a, b := qty, price
	fa, fb, wa, wb := count(cols[a], cent), count(cols[b], cent), count(cols[a], 1e4), count(cols[b], 1e4)
	switch {
	case fa > 0 && fb == 0:
		return a, b, best, fmt.Sprintf("%s never has more than two decimals, as money; %s has on %s lines", names[b], names[a], num(fa))
	case fb > 0 && fa == 0:
		return b, a, best, fmt.Sprintf("%s never has more than two decimals, as money; %s has on %s lines", names[a], names[b], num(fb))
	case fa == 0 && fb == 0 && wa == 0 && wb > 0:
		return a, b, best, fmt.Sprintf("%s is a whole number on every line, %s is not on %s", names[a], names[b], num(wb))
	case fa == 0 && fb == 0 && wb == 0 && wa > 0:
		return b, a, best, fmt.Sprintf("%s is a whole number on every line, %s is not on %s", names[b], names[a], num(wa))
	}
	return a, b, best, ""
}

// rate finds a line column r with tax = net × r % (to the cent) on nearly every line: a VAT rate,
// evidence of which amount is the tax.
func rate(names []string, cols []vec, net, tax vec) (string, tally) {
	for i, name := range names {
		r := cols[i]
		t := agree(len(net.v), func(k int) bool { return r.ok[k] && net.ok[k] && tax.ok[k] }, func(k int) bool {
			return math.Abs(float64(net.v[k])*float64(r.v[k])/1e6-float64(tax.v[k])) < cent
		})
		if t.holds() {
			return name, t
		}
	}
	return "", tally{}
}
