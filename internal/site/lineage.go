package site

import (
	"cmp"
	"fmt"
	"html/template"
	"slices"
	"strings"
)

// Graph is the dependency graph from the APIs to the data tests (the page's "Lineage"), laid out left
// to right in layers.
type Graph struct {
	Nodes         []*Node
	Edges         []*Edge
	Width, Height int
}

// Node is a source, a table, a model or a data test.
type Node struct {
	ID    string // "source:<name>", "test:<name>", or the relation's name
	Label string
	Kind  string // source, family, stream, child, folded, staging, mart or test
	// Status is a test's last result (pass, fail, error, skipped), "unbuilt" for a model the warehouse
	// lacks and "absent" for a table a model reads that was never loaded; "" otherwise.
	Status     string
	Href       string
	Title      string // the tooltip, when it says more than the label
	Layer      int
	X, Y, W, H int
	order      float64
	group      int  // an API's tables stay together in their layer: 0 Signicat's, 1 GSAPI's, 2 the rest
	key        bool // a key test (of one table), not an SQL test
}

// Edge is one dependency: To is built from, or tests, From.
type Edge struct {
	From, To *Node
}

// Layout constants, in pixels.
const (
	nodeH    = 24
	nodeGap  = 8
	layerGap = 64
	charW    = 7 // of the 12px label font, a little wide so labels never overflow
	maxNodeW = 300
	margin   = 12
)

// buildGraph draws the graph from the site's tables, tests and SQL models (the page calls it the
// lineage; in the code, lineage is the columns every row carries).
func buildGraph(s *Site) *Graph {
	g := &Graph{}
	nodes := map[string]*Node{}
	add := func(id, label, kind, href string) *Node {
		if n := nodes[id]; n != nil {
			return n
		}
		n := &Node{ID: id, Label: label, Kind: kind, Href: href, Layer: -1, group: 2}
		switch {
		case kind == "test" || kind == "staging" || kind == "mart":
		case strings.HasPrefix(id, "signicat_"), strings.HasPrefix(id, "source:signicat"), strings.HasPrefix(id, "family:signicat"):
			n.group = 0
		case strings.HasPrefix(id, "gsapi_"), strings.HasPrefix(id, "source:gsapi"), strings.HasPrefix(id, "family:gsapi"):
			n.group = 1
		}
		nodes[id] = n
		g.Nodes = append(g.Nodes, n)
		return n
	}
	edge := func(from, to *Node) {
		for _, e := range g.Edges {
			if e.From == from && e.To == to {
				return
			}
		}
		g.Edges = append(g.Edges, &Edge{from, to})
	}
	tables := map[string]*Table{}
	for _, t := range s.Tables {
		tables[t.Name] = t
	}
	// A stream hangs off its endpoint family, which hangs off its API.
	familyOf := func(source, table string) *Node {
		name := family(source, table)
		f := add("family:"+source+":"+name, name, "family", "#tables")
		edge(add("source:"+source, source+" API", "source", "#source/"+source), f)
		return f
	}
	table := func(name string) *Node {
		if t := tables[name]; t != nil {
			return add(name, name, t.Kind, "#table/"+name)
		}
		n := add(name, name, "stream", "#tables")
		n.Status = "absent"
		if src, _, ok := strings.Cut(name, "_"); ok && (src == "signicat" || src == "gsapi") {
			edge(familyOf(src, name), n)
		}
		return n
	}
	for _, t := range s.Tables {
		switch t.Kind {
		case "stream":
			edge(familyOf(t.Source, t.Name), table(t.Name))
		case "child":
			for _, p := range t.Reads {
				edge(table(p), table(t.Name))
			}
		}
	}
	for _, m := range s.sqlModels {
		n := add(m.Name, m.Name, "mart", "#table/"+m.Name)
		if m.Kind == "view" {
			n.Kind = "staging"
		}
		if tables[m.Name] == nil {
			n.Status, n.Href = "unbuilt", "#tables"
		}
	}
	for _, m := range s.sqlModels {
		for _, src := range m.Sources {
			edge(table(src), nodes[m.Name])
		}
		for _, d := range m.Deps {
			edge(nodes[d], nodes[m.Name])
		}
	}
	for _, m := range s.sqlTests {
		n := add("test:"+m.Name, m.Name, "test", "#test/"+m.Name)
		for _, src := range m.Sources {
			edge(table(src), n)
		}
		for _, d := range m.Deps {
			edge(nodes[d], n)
		}
	}
	for _, t := range s.Tests {
		n := nodes["test:"+t.Name]
		if n == nil && t.Table != "" {
			n = add("test:"+t.Name, "key · "+t.Table, "test", "#test/"+t.Name)
			n.key = true
			edge(table(t.Table), n)
		}
		if n != nil {
			n.Status = t.Last.Status()
		}
	}
	g.fold()
	g.layout()
	return g
}

// family is the endpoint family of a stream (the sources keep one file per family), its group in
// the lineage.
func family(source, table string) string {
	name := strings.TrimPrefix(table, source+"_")
	switch {
	case strings.HasPrefix(name, "datasync_"):
		return "datasync exports"
	case strings.HasPrefix(name, "invoice_journal_"):
		return "invoice journals"
	case strings.HasPrefix(name, "datatable_"):
		return "datatables"
	case strings.HasPrefix(name, "invoice"), name == "charges":
		return "invoices"
	}
	return "lists"
}

// fold draws the streams that no model or SQL test reads — nor a key test that fails — as one node
// per endpoint family ("12 streams no model reads"), with their child tables: the graph shows what
// builds the marts. The key tests of folded streams hang off the folded node.
func (g *Graph) fold() {
	out, in := map[*Node][]*Node{}, map[*Node][]*Node{}
	for _, e := range g.Edges {
		out[e.From] = append(out[e.From], e.To)
		in[e.To] = append(in[e.To], e.From)
	}
	read := map[*Node]bool{}
	var isRead func(n *Node) bool
	isRead = func(n *Node) bool {
		if r, ok := read[n]; ok {
			return r
		}
		read[n] = false
		for _, m := range out[n] {
			switch {
			case m.Kind == "staging" || m.Kind == "mart", m.Kind == "test" && !m.key,
				m.key && (m.Status == "fail" || m.Status == "error"), m.Kind == "child" && isRead(m):
				read[n] = true
			}
		}
		return read[n]
	}
	gone := map[*Node]*Node{} // folded node → the node it is drawn in
	var foldInto func(n, into *Node)
	foldInto = func(n, into *Node) {
		gone[n] = into
		for _, m := range out[n] {
			if m.Kind == "child" {
				foldInto(m, into)
			}
		}
	}
	folded := map[*Node][]string{}
	for _, n := range slices.Clone(g.Nodes) {
		if n.Kind != "stream" || isRead(n) || len(in[n]) == 0 || in[n][0].Kind != "family" {
			continue
		}
		fam := in[n][0]
		into := g.node("folded:"+strings.TrimPrefix(fam.ID, "family:"), "folded", fam)
		folded[into] = append(folded[into], n.ID)
		foldInto(n, into)
	}
	for into, names := range folded {
		fam := into.ID[strings.LastIndexByte(into.ID, ':')+1:]
		into.Label = fmt.Sprintf("%d more %s", len(names), fam)
		into.Title = "no model reads these streams: " + strings.Join(names, ", ")
	}
	var edges []*Edge
	seen := map[[2]*Node]bool{}
	for _, e := range g.Edges {
		from, to := e.From, e.To
		if gone[to] != nil {
			to = gone[to]
		}
		if gone[from] != nil {
			from = gone[from]
		}
		if from == to || seen[[2]*Node{from, to}] {
			continue
		}
		seen[[2]*Node{from, to}] = true
		edges = append(edges, &Edge{from, to})
	}
	g.Edges = edges
	g.Nodes = slices.DeleteFunc(g.Nodes, func(n *Node) bool { return gone[n] != nil })
}

// node adds a node of kind beside like (its group), unless id is there already.
func (g *Graph) node(id, kind string, like *Node) *Node {
	for _, n := range g.Nodes {
		if n.ID == id {
			return n
		}
	}
	n := &Node{ID: id, Kind: kind, Href: "#tables", Layer: -1, group: like.group}
	g.Nodes = append(g.Nodes, n)
	return n
}

// layout places the nodes in layers (sources, then each node one right of its furthest input, the
// tests in the last) and orders each layer to keep edges short, by the mean position of each node's
// neighbours, swept right and left a few times (the barycentre heuristic).
func (g *Graph) layout() {
	in := map[*Node][]*Node{}
	out := map[*Node][]*Node{}
	for _, e := range g.Edges {
		in[e.To] = append(in[e.To], e.From)
		out[e.From] = append(out[e.From], e.To)
	}
	var layer func(n *Node, depth int) int
	layer = func(n *Node, depth int) int {
		if n.Layer >= 0 || depth > len(g.Nodes) { // depth: a cycle cannot come from SQL, but never loop
			return max(n.Layer, 0)
		}
		l := 0
		for _, p := range in[n] {
			l = max(l, layer(p, depth+1)+1)
		}
		n.Layer = l
		return l
	}
	last := 0
	for _, n := range g.Nodes {
		if n.Kind != "test" {
			last = max(last, layer(n, 0))
		}
	}
	for _, n := range g.Nodes {
		if n.Kind == "test" {
			n.Layer = last + 1
		}
	}
	layers := make([][]*Node, last+2)
	for _, n := range g.Nodes {
		layers[n.Layer] = append(layers[n.Layer], n)
	}
	kindRank := map[string]int{"source": 0, "family": 1, "stream": 2, "folded": 2, "child": 2, "staging": 3, "mart": 4, "test": 5}
	for _, l := range layers {
		slices.SortFunc(l, func(a, b *Node) int {
			return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(kindRank[a.Kind], kindRank[b.Kind]), cmp.Compare(a.ID, b.ID))
		})
		renumber(l)
	}
	mean := func(ns []*Node, self *Node) float64 {
		if len(ns) == 0 {
			return self.order
		}
		sum := 0.0
		for _, n := range ns {
			sum += n.order
		}
		return sum / float64(len(ns))
	}
	for range 4 {
		for _, l := range layers[1:] {
			reorder(l, func(n *Node) float64 { return mean(in[n], n) })
		}
		for i := len(layers) - 2; i >= 0; i-- {
			reorder(layers[i], func(n *Node) float64 { return mean(out[n], n) })
		}
	}
	x, tallest := margin, 0
	for _, l := range layers {
		tallest = max(tallest, len(l))
	}
	g.Height = 2*margin + tallest*(nodeH+nodeGap) - nodeGap
	for _, l := range layers {
		w := 0
		for _, n := range l {
			w = max(w, min(maxNodeW, 16+charW*len([]rune(n.Label))))
		}
		top := margin + (tallest-len(l))*(nodeH+nodeGap)/2
		for i, n := range l {
			n.X, n.Y, n.W, n.H = x, top+i*(nodeH+nodeGap), w, nodeH
		}
		x += w + layerGap
	}
	g.Width = x - layerGap + margin
}

// reorder sorts a layer by key, stably, and renumbers it.
func reorder(l []*Node, key func(*Node) float64) {
	keys := map[*Node]float64{}
	for _, n := range l {
		keys[n] = key(n)
	}
	slices.SortStableFunc(l, func(a, b *Node) int { return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(keys[a], keys[b])) })
	renumber(l)
}

func renumber(l []*Node) {
	for i, n := range l {
		n.order = float64(i)
	}
}

// SVG draws the graph: each node a link to its page, each edge a curve from an input's right side to
// its reader's left side. data-from and data-to name an edge's ends, data-node a node, for the page's
// script (which lights up a node's edges) and for tests.
func (g *Graph) SVG() template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="lineage" xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="Lineage: %d nodes, %d edges">`,
		g.Width, g.Height, g.Width, g.Height, len(g.Nodes), len(g.Edges))
	b.WriteString(`<g class="edges">`)
	for _, e := range g.Edges {
		x1, y1 := e.From.X+e.From.W, e.From.Y+e.From.H/2
		x2, y2 := e.To.X, e.To.Y+e.To.H/2
		mid := (x1 + x2) / 2
		class := "edge"
		if e.To.Status == "fail" || e.To.Status == "error" {
			class += " fail"
		}
		fmt.Fprintf(&b, `<path class="%s" data-from="%s" data-to="%s" d="M%d %d C%d %d %d %d %d %d"/>`,
			class, esc(e.From.ID), esc(e.To.ID), x1, y1, mid, y1, mid, y2, x2, y2)
	}
	b.WriteString(`</g><g class="nodes">`)
	for _, n := range g.Nodes {
		label := n.Label
		if r := []rune(label); 16+charW*len(r) > n.W {
			label = string(r[:(n.W-16)/charW-1]) + "…"
		}
		class := "node " + n.Kind
		if n.Status != "" {
			class += " " + n.Status
		}
		title := cmp.Or(n.Title, n.Label)
		if n.Status != "" {
			title += " (" + n.Status + ")"
		}
		fmt.Fprintf(&b, `<a href="%s" class="%s" data-node="%s" data-kind="%s"><title>%s</title><rect x="%d" y="%d" width="%d" height="%d" rx="5"/><text x="%d" y="%d">%s</text></a>`,
			esc(n.Href), class, esc(n.ID), n.Kind, esc(title), n.X, n.Y, n.W, n.H, n.X+8, n.Y+n.H/2+4, esc(label))
	}
	b.WriteString(`</g></svg>`)
	return template.HTML(b.String())
}

func esc(s string) string { return template.HTMLEscapeString(s) }
