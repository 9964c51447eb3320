package site

import (
	"bytes"
	"context"
	"embed"
	"fmt"
	"html/template"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// The page's template, style and script are compiled into the binary: the page fetches nothing.
//
//go:embed assets/page.html assets/site.css assets/site.js
var assets embed.FS

var page = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"number":    func(v any) string { return number(toFloat(v)) },
	"when":      func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"day":       func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"seconds":   func(v float64) string { return number(v) + " s" },
	"size":      size,
	"join":      strings.Join,
	"prose":     prose,
	"hostChart": hostChart,
	"css": func() template.CSS {
		b, _ := assets.ReadFile("assets/site.css")
		return template.CSS(b)
	},
	"js": func() template.JS {
		b, _ := assets.ReadFile("assets/site.js")
		return template.JS(b)
	},
}).ParseFS(assets, "assets/page.html"))

// Render writes the page.
func (s *Site) Render(w io.Writer) error {
	return page.Execute(w, s)
}

// Write renders the page into dir/index.html, replacing it whole (a reader never sees half a page).
func (s *Site) Write(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := s.Render(&b); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "index.html")
	return p, durable.WriteFile(p, b.Bytes())
}

// Handler serves the page at / (and /index.html), collected afresh for each request by collect, so
// it shows the warehouse as it is now. It answers GET and HEAD only: nothing it serves writes.
func Handler(collect func(ctx context.Context) (*Site, error), log func(error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "read-only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path != "/" && r.URL.Path != "/index.html" {
			http.NotFound(w, r)
			return
		}
		s, err := collect(r.Context())
		if err != nil {
			log(err)
			http.Error(w, "could not read the warehouse: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		var b bytes.Buffer
		if err := s.Render(&b); err != nil {
			log(err)
			http.Error(w, "could not render the page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:")
		_, _ = w.Write(b.Bytes())
	})
}

// The template's views of the site.

// LastRun is the newest run, or nil.
func (s *Site) LastRun() *Run {
	if len(s.Runs) == 0 {
		return nil
	}
	return s.Runs[len(s.Runs)-1]
}

// Unverified counts the runs shown whose manifest the last verification did not cover.
func (s *Site) Unverified() int {
	n := 0
	for _, r := range s.Runs {
		if r.Manifest != nil && !r.Manifest.Verified {
			n++
		}
	}
	return n
}

// NewestFirst lists the runs newest first.
func (s *Site) NewestFirst() []*Run {
	out := slices.Clone(s.Runs)
	slices.Reverse(out)
	return out
}

// Failing lists the tests whose last result failed or errored.
func (s *Site) Failing() []*Test {
	var out []*Test
	for _, t := range s.Tests {
		if st := t.Last.Status(); st == "fail" || st == "error" {
			out = append(out, t)
		}
	}
	return out
}

// Passing counts the tests whose last result passed.
func (s *Site) Passing() int {
	n := 0
	for _, t := range s.Tests {
		if t.Last.Status() == "pass" {
			n++
		}
	}
	return n
}

// Group is tables of one kind (or one API's tables), for the tables page.
type Group struct {
	ID, Title, About string
	Tables           []*Table
}

// Groups are the tables by where they come from.
func (s *Site) Groups() []Group {
	gs := []Group{
		{"source/signicat", "Signicat Account Management API", "One table per stream, current state; history in <table>_history.", nil},
		{"source/gsapi", "Good Sign GSAPI", "One table per stream, current state; history in <table>_history.", nil},
		{"kind/staging", "Staging models (sql/staging)", "Views that type and name the API tables alike.", nil},
		{"kind/mart", "Marts (sql/marts)", "Tables rebuilt after each load.", nil},
		{"kind/ledgerlake", "ledgerlake's own tables", "Runs, rejects, windows and data test results.", nil},
	}
	for _, t := range s.Tables {
		i := map[string]int{"signicat": 0, "gsapi": 1}[t.Source]
		switch t.Kind {
		case "staging":
			i = 2
		case "mart":
			i = 3
		case "ledgerlake":
			i = 4
		}
		gs[i].Tables = append(gs[i].Tables, t)
	}
	return slices.DeleteFunc(gs, func(g Group) bool { return len(g.Tables) == 0 })
}

// TrendRuns is how many runs the charts need to show a trend (the page says "the third"): one run
// makes single dots, two a line between them.
const TrendRuns = 3

// Trending reports whether there are runs enough for the charts (TrendRuns).
func (s *Site) Trending() bool { return len(s.Runs) >= TrendRuns }

// Lineage draws the lineage graph.
func (s *Site) Lineage() template.HTML { return s.Graph.SVG() }

// Chart draws one of the run history's charts: duration, rows, requests, retries or rejects.
func (s *Site) Chart(name string) template.HTML {
	per := func(f func(r *Run) float64) []float64 {
		out := make([]float64, len(s.Runs))
		for i, r := range s.Runs {
			out[i] = f(r)
		}
		return out
	}
	switch name {
	case "duration":
		return lineChart(name, "seconds", s.Runs, Series{"until loaded", per(func(r *Run) float64 { return r.LoadedSeconds() })},
			Series{"extraction", per(func(r *Run) float64 { return r.Seconds() })})
	case "rows":
		return lineChart(name, "rows", s.Runs, Series{"rows fetched", per(func(r *Run) float64 { return float64(r.Rows) })})
	case "requests":
		return lineChart(name, "requests", s.Runs, Series{"requests", per(func(r *Run) float64 { return float64(r.Requests) })})
	case "retries":
		return lineChart(name, "requests", s.Runs,
			Series{"retries", per(func(r *Run) float64 { return float64(r.Retries) })},
			Series{"429 answers", per(func(r *Run) float64 { return float64(r.Throttled) })})
	case "rejects":
		return lineChart(name, "values", s.Runs, Series{"rejected values", per(func(r *Run) float64 { return float64(r.Rejects) })})
	}
	return template.HTML(template.HTMLEscapeString("no chart " + name))
}

// Trend is one stream's rows and requests over the runs shown.
type Trend struct {
	Table          string
	Rows, Requests template.HTML
	Last           lake.StreamReport
	Runs           int // runs that had the stream
}

// Trends are every stream's rows and requests per run, as sparklines.
func (s *Site) Trends() []Trend {
	byTable := map[string][]float64{}
	reqs := map[string][]float64{}
	last := map[string]lake.StreamReport{}
	seen := map[string]int{}
	for i, r := range s.Runs {
		for _, st := range r.Streams {
			if byTable[st.Table] == nil {
				byTable[st.Table] = make([]float64, len(s.Runs))
				reqs[st.Table] = make([]float64, len(s.Runs))
			}
			byTable[st.Table][i] = float64(st.Rows)
			reqs[st.Table][i] = float64(st.Requests)
			last[st.Table] = st
			seen[st.Table]++
		}
	}
	var out []Trend
	for _, t := range slices.Sorted(maps.Keys(byTable)) {
		out = append(out, Trend{Table: t, Rows: sparkline("rows:"+t, s.Runs, byTable[t]), Requests: sparkline("requests:"+t, s.Runs, reqs[t]), Last: last[t], Runs: seen[t]})
	}
	return out
}

// WithSchemaChanges lists the runs (newest first) that added columns or widened types.
func (s *Site) WithSchemaChanges() []*Run {
	var out []*Run
	for _, r := range s.NewestFirst() {
		if len(r.SchemaChanges()) > 0 {
			out = append(out, r)
		}
	}
	return out
}

// ResultsOf lists each test's result in run id, failing first.
func (s *Site) ResultsOf(runID string) []TestRun {
	var out []TestRun
	for _, t := range s.Tests {
		for _, h := range t.History {
			if h.RunID == runID {
				out = append(out, TestRun{t, h})
			}
		}
	}
	return out
}

// TestRun is a test's result in one run.
type TestRun struct {
	Test   *Test
	Result Result
}

// ResultIn is the test's result in a run, if it ran there.
func (t *Test) ResultIn(runID string) (Result, bool) {
	for _, h := range t.History {
		if h.RunID == runID {
			return h, true
		}
	}
	return Result{}, false
}

// KeyColumns are the table's key columns in force, joined.
func (t *Table) KeyColumns() string {
	return strings.Join(t.Key, ", ")
}

// prose escapes a description and shows its `quoted` words as code, as the schemas write them.
func prose(s string) template.HTML {
	parts := strings.Split(s, "`")
	var b strings.Builder
	for i, p := range parts {
		switch {
		case i%2 == 0:
			b.WriteString(template.HTMLEscapeString(p))
		case i == len(parts)-1: // an unpaired backquote stays as it is
			b.WriteString("`" + template.HTMLEscapeString(p))
		default:
			b.WriteString("<code>" + template.HTMLEscapeString(p) + "</code>")
		}
	}
	return template.HTML(b.String())
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func toFloat(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case int64:
		return float64(v)
	case float64:
		return v
	}
	return 0
}
