package site

import (
	"cmp"
	"fmt"
	"html/template"
	"slices"
	"strings"
)

// Graph is the lineage from the APIs to the data tests, laid out left to right in layers.
type Graph struct {
	Nodes         []*Node
	Edges         []*Edge
	Width, Height int
}

// Node is a source, a table, a model or a data test.
type Node struct {
	ID    string // "source:<name>", "test:<name>", or the relation's name
	Label string
	Kind  string // source, stream, child, staging, mart or test
	// Status is a test's last result (pass, fail, error, skipped), "unbuilt" for a model the warehouse
	// lacks and "absent" for a table a model reads that was never loaded; "" otherwise.
	Status     string
	Href       string
	Layer      int
	X, Y, W, H int
	order      float64
	group      int // an API's tables stay together in their layer: 0 Signicat's, 1 GSAPI's, 2 the rest
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

// lineage builds the graph from the site's tables, tests and SQL models.
func lineage(s *Site) *Graph {
	g := &Graph{}
	nodes := map[string]*Node{}
	add := func(id, label, kind, href string) *Node {
		if n := nodes[id]; n != nil {
			return n
		}
		n := &Node{ID: id, Label: label, Kind: kind, Href: href, Layer: -1, group: 2}
		switch {
		case kind == "test" || kind == "staging" || kind == "mart":
		case strings.HasPrefix(id, "signicat_"), id == "source:signicat":
			n.group = 0
		case strings.HasPrefix(id, "gsapi_"), id == "source:gsapi":
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
	table := func(name string) *Node {
		if t := tables[name]; t != nil {
			return add(name, name, t.Kind, "#table/"+name)
		}
		n := add(name, name, "stream", "#tables")
		n.Status = "absent"
		if src, _, ok := strings.Cut(name, "_"); ok && (src == "signicat" || src == "gsapi") {
			edge(add("source:"+src, src+" API", "source", "#source/"+src), n)
		}
		return n
	}
	for _, t := range s.Tables {
		switch t.Kind {
		case "stream":
			edge(add("source:"+t.Source, t.Source+" API", "source", "#source/"+t.Source), table(t.Name))
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
			edge(table(t.Table), n)
		}
		if n != nil {
			n.Status = t.Last.Status()
		}
	}
	g.layout()
	return g
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
	kindRank := map[string]int{"source": 0, "stream": 1, "child": 1, "staging": 2, "mart": 3, "test": 4}
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
		title := n.Label
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
