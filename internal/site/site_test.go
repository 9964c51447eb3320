package site

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

// A warehouse no run has loaded yet still gets a page: every model unbuilt, every test not run.
func TestEmptyWarehouse(t *testing.T) {
	wh, err := duckdb.Open(filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	s, err := Collect(context.Background(), wh.DB, Options{Warehouse: "w.duckdb", Lake: lake.Dir(t.TempDir()), LakeName: "lake"})
	if err != nil {
		t.Fatal(err)
	}
	ms, tests, _ := models.Load()
	if len(s.Runs) != 0 || len(s.Tests) != len(tests) || s.Verify != nil {
		t.Fatalf("runs %d, tests %d, verify %v", len(s.Runs), len(s.Tests), s.Verify)
	}
	for _, tt := range s.Tests {
		if tt.Last.Status() != "skipped" {
			t.Errorf("%s: %s before any run", tt.Name, tt.Last.Status())
		}
	}
	unbuilt := 0
	for _, n := range s.Graph.Nodes {
		if n.Status == "unbuilt" {
			unbuilt++
		}
	}
	if unbuilt != len(ms) {
		t.Errorf("%d models drawn unbuilt, want all %d", unbuilt, len(ms))
	}
	var b bytes.Buffer
	if err := s.Render(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"No run has been loaded into this warehouse yet.", "extract verify has not been run on this lake."} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

// Values from the APIs reach the page as text, never as markup.
func TestAPIValuesAreEscaped(t *testing.T) {
	evil := `<script>alert("x")</script>`
	s := &Site{Generated: time.Unix(0, 0), Warehouse: evil,
		Tables: []*Table{{Name: "gsapi_objects", Kind: "stream", Source: "gsapi", Description: "a `code` " + evil,
			Columns: []Column{{Name: "v", Type: "VARCHAR", Description: evil}}, Sample: [][]string{{evil}}}},
		Tests: []*Test{{Name: "key_unique_not_null_gsapi_objects", Table: "gsapi_objects",
			Last: Result{RunID: "r1", Failures: 1, Sample: []string{"v=" + evil}, Message: evil}}},
	}
	s.Graph = buildGraph(s)
	var b bytes.Buffer
	if err := s.Render(&b); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "<script>"); n != 2 { // the page's own two scripts
		t.Errorf("%d <script> tags, want the page's 2", n)
	}
	if strings.Contains(b.String(), `alert("x")`) {
		t.Error("a value's script is on the page unescaped")
	}
	if !strings.Contains(b.String(), "a <code>code</code> ") {
		t.Error("backquoted words in descriptions are not shown as code")
	}
}

func TestLayoutPutsEachNodeRightOfItsInputs(t *testing.T) {
	s := &Site{Tables: []*Table{
		{Name: "signicat_invoices", Kind: "stream", Source: "signicat"},
		{Name: "signicat_invoice_lines", Kind: "stream", Source: "signicat"},
		{Name: "gsapi_invoice_list", Kind: "stream", Source: "gsapi"},
		{Name: "gsapi_invoice_list__headers", Kind: "child", Source: "gsapi", Reads: []string{"gsapi_invoice_list"}},
		{Name: "gsapi_users", Kind: "stream", Source: "gsapi"},
		{Name: "gsapi_country_codes", Kind: "stream", Source: "gsapi"},
		{Name: "gsapi_objects", Kind: "stream", Source: "gsapi"},
	}, Tests: []*Test{{Name: "key_unique_not_null_signicat_invoices", Table: "signicat_invoices", Last: Result{RunID: "r", Failures: 2}},
		{Name: "key_unique_not_null_gsapi_invoice_list__headers", Table: "gsapi_invoice_list__headers", Last: Result{RunID: "r", Failures: 1}},
		{Name: "key_unique_not_null_gsapi_objects", Table: "gsapi_objects", Last: Result{RunID: "r"}}}}
	s.sqlModels, s.sqlTests, _ = models.Load()
	g := buildGraph(s)
	byID := map[string]*Node{}
	for _, n := range g.Nodes {
		byID[n.ID] = n
	}
	for _, e := range g.Edges {
		if e.From.Layer >= e.To.Layer || e.From.X+e.From.W >= e.To.X {
			t.Errorf("edge %s → %s goes left or stays in its layer (%d → %d)", e.From.ID, e.To.ID, e.From.Layer, e.To.Layer)
		}
	}
	// Nodes of a layer never overlap.
	for _, a := range g.Nodes {
		for _, b := range g.Nodes {
			if a != b && a.Layer == b.Layer && a.Y < b.Y+b.H && b.Y < a.Y+a.H {
				t.Errorf("%s and %s overlap", a.ID, b.ID)
			}
		}
		if a.X+a.W > g.Width || a.Y+a.H > g.Height {
			t.Errorf("%s lies outside the drawing", a.ID)
		}
	}
	if k := byID["test:key_unique_not_null_signicat_invoices"]; k == nil || k.Status != "fail" || k.Layer != maxLayer(g) {
		t.Errorf("key test node %+v, want failing in the last layer", k)
	}
	if c := byID["gsapi_invoice_list__headers"]; c == nil || c.Layer != byID["gsapi_invoice_list"].Layer+1 {
		t.Errorf("child table %+v not right of its parent", c)
	}
	// Streams hang off their endpoint family; those no model reads (and whose key test passes) are
	// folded into one node per family, their key tests hanging off it.
	edges := map[string]bool{}
	for _, e := range g.Edges {
		edges[e.From.ID+" → "+e.To.ID] = true
	}
	for _, e := range []string{"source:gsapi → family:gsapi:lists", "family:gsapi:lists → folded:gsapi:lists", "folded:gsapi:lists → test:key_unique_not_null_gsapi_objects",
		"family:gsapi:invoices → gsapi_invoice_list", "source:signicat → family:signicat:invoices", "family:signicat:invoices → signicat_invoices"} {
		if !edges[e] {
			t.Errorf("no edge %s", e)
		}
	}
	if f := byID["folded:gsapi:lists"]; f == nil || f.Label != "3 more lists" || f.Title != "no model reads these streams: gsapi_users, gsapi_country_codes, gsapi_objects" || byID["gsapi_users"] != nil || byID["gsapi_objects"] != nil {
		t.Errorf("folded node %+v; gsapi_users %v", f, byID["gsapi_users"])
	}
	// Every model is drawn; those reading tables the warehouse lacks are unbuilt, their inputs absent.
	ms, _, _ := models.Load()
	for _, m := range ms {
		if n := byID[m.Name]; n == nil || n.Status != "unbuilt" {
			t.Errorf("model %s: %+v", m.Name, n)
		}
	}
	svg := string(g.SVG())
	if got := strings.Count(svg, `<path class="edge`); got != len(g.Edges) {
		t.Errorf("%d edges drawn of %d", got, len(g.Edges))
	}
	if got := strings.Count(svg, `<a href=`); got != len(g.Nodes) {
		t.Errorf("%d nodes drawn as links of %d", got, len(g.Nodes))
	}
}

func maxLayer(g *Graph) int {
	m := 0
	for _, n := range g.Nodes {
		m = max(m, n.Layer)
	}
	return m
}

func TestChartHasAPointPerRun(t *testing.T) {
	var runs []*Run
	for i := range 7 {
		at := time.Date(2026, 1, 1+i, 2, 0, 0, 0, time.UTC)
		runs = append(runs, &Run{ID: at.Format("20060102"), Started: at, Finished: at.Add(time.Duration(i) * time.Minute)})
	}
	svg := string(lineChart("duration", "seconds", runs, Series{"a", []float64{1, 2, 3, 4, 5, 6, 7}}, Series{"b", []float64{0, 0, 0, 0, 0, 0, 0}}))
	if n := strings.Count(svg, `circle class="point s0"`); n != 7 {
		t.Errorf("%d points on the first line, want 7", n)
	}
	if n := strings.Count(svg, `circle class="point s1"`); n != 7 {
		t.Errorf("%d points on the second line, want 7", n)
	}
	for _, want := range []string{`data-run="20260101"`, `data-run="20260107"`, `>Jan 1<`, `>Jan 7<`, `>10<`} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %s", want)
		}
	}
}

func TestNumbers(t *testing.T) {
	for _, c := range []struct {
		v       float64
		number  string
		compact string
		ceil    float64
	}{
		{0, "0", "0", 1},
		{0.456, "0.46", "0.46", 1},
		{7, "7", "7", 10},
		{12345.678, "12,345.68", "12.345678k", 20000},
		{1000000, "1,000,000", "1M", 1000000},
		{2500001, "2,500,001", "2.500001M", 5000000},
		{-1234, "-1,234", "-1234", 1},
	} {
		if got := number(c.v); got != c.number {
			t.Errorf("number(%g) = %s, want %s", c.v, got, c.number)
		}
		if got := compact(c.v); got != c.compact {
			t.Errorf("compact(%g) = %s, want %s", c.v, got, c.compact)
		}
		if got := niceCeil(c.v); got != c.ceil {
			t.Errorf("niceCeil(%g) = %g, want %g", c.v, got, c.ceil)
		}
	}
}

func TestText(t *testing.T) {
	long := strings.Repeat("é", 100)
	for _, c := range []struct {
		v    any
		want string
	}{
		{nil, "∅"},
		{"plain", "plain"},
		{time.Date(2024, 1, 31, 0, 0, 0, 0, time.UTC), "2024-01-31"},
		{time.Date(2024, 1, 31, 23, 59, 59, 997_000_000, time.UTC), "2024-01-31 23:59:59.997Z"},
		{[]any{"a", int32(2)}, `["a",2]`},
		{map[string]any{"k": "v"}, `{"k":"v"}`},
		{int64(42), "42"},
		{true, "true"},
		{long, strings.Repeat("é", 79) + "…"},
	} {
		if got := Text(c.v); got != c.want {
			t.Errorf("Text(%#v) = %q, want %q", c.v, got, c.want)
		}
	}
}

// Where the models ran twice for one run (its load was resumed), the newest result is the run's.
func TestNewestResultOfARunStands(t *testing.T) {
	wh, err := duckdb.Open(filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	for _, q := range []string{
		`CREATE TABLE IF NOT EXISTS _ledgerlake_runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, loaded_at TIMESTAMPTZ, status VARCHAR, streams JSON)`,
		`INSERT INTO _ledgerlake_runs VALUES ('r1', '2026-01-01 02:00:00+00', '2026-01-01 02:01:00+00', '2026-01-01 02:02:00+00', 'ok', '[]'),
			('r2', '2026-01-02 02:00:00+00', '2026-01-02 02:01:00+00', '2026-01-02 02:02:00+00', 'ok', '[]')`,
		`CREATE TABLE _ledgerlake_data_tests (run_id VARCHAR, name VARCHAR, failures BIGINT, sample VARCHAR, skipped VARCHAR, error VARCHAR, message VARCHAR)`,
		`INSERT INTO _ledgerlake_data_tests VALUES ('r2', 'every_line_has_its_invoice', 3, 'a' || chr(10) || 'b' || chr(10) || 'c', '', '', ''),
			('r1', 'every_line_has_its_invoice', 0, '', '', '', ''),
			('r2', 'every_line_has_its_invoice', 0, '', '', '', '')`,
	} {
		if _, err := wh.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err := Collect(context.Background(), wh.DB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range s.Tests {
		if tt.Name != "every_line_has_its_invoice" {
			continue
		}
		if len(tt.History) != 2 || tt.History[0].RunID != "r1" || tt.Last.RunID != "r2" || tt.Last.Status() != "pass" {
			t.Errorf("history %+v, last %+v; want r1 then r2, passing", tt.History, tt.Last)
		}
	}
	if r := s.LastRun(); r == nil || r.ID != "r2" || r.TestsRun != 1 || r.TestsFailed != 0 || r.LoadedSeconds() != 120 {
		t.Errorf("last run %+v", r)
	}
}

// A column whose name says it may hold a credential never shows its values, whatever the table.
func TestSecretColumnsAreNotSampled(t *testing.T) {
	wh, err := duckdb.Open(filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if _, err := wh.DB.Exec(`CREATE TABLE gsapi_users AS SELECT 1 AS u_id, 'hunter2' AS password, 'tok-123' AS api_token, 'Ada' AS firstname, NULL AS client_secret`); err != nil {
		t.Fatal(err)
	}
	s, err := Collect(context.Background(), wh.DB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := s.Render(&b); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2", "tok-123"} {
		if strings.Contains(b.String(), secret) {
			t.Errorf("the page shows %s", secret)
		}
	}
	if !strings.Contains(b.String(), "Ada") || strings.Count(b.String(), "not shown: the column") != 2 {
		t.Error("the other values are not shown, or the secret ones not marked")
	}
}

// A model's column without a description of its own borrows the nearest input's, saying whose.
func TestModelColumnsBorrowDescriptionsByName(t *testing.T) {
	raw := &Table{Name: "signicat_invoices", Kind: "stream", Columns: []Column{{Name: "invoice_date", Description: "Invoice date."}}}
	stg := &Table{Name: "stg_signicat_invoices", Kind: "staging", Reads: []string{"signicat_invoices"}, Columns: []Column{{Name: "invoice_date"}, {Name: "source"}}}
	mart := &Table{Name: "fct_invoice", Kind: "mart", Reads: []string{"stg_signicat_invoices"}, Columns: []Column{{Name: "invoice_date"}, {Name: "source"}}}
	byName := map[string]*Table{raw.Name: raw, stg.Name: stg, mart.Name: mart}
	if got := inherited(byName, mart, "invoice_date", map[string]bool{}); got != "As in signicat_invoices.invoice_date: Invoice date." {
		t.Errorf("fct_invoice.invoice_date: %q", got)
	}
	if got := inherited(byName, mart, "source", map[string]bool{}); got != "" {
		t.Errorf("fct_invoice.source: %q, want none", got)
	}
}

// Each run's page shows how every API host's concurrency went: the figures and the limit over the
// run. Runs loaded before hosts were recorded (no column, or NULL) show none, and fail nothing.
func TestRunPageShowsEachHostsConcurrency(t *testing.T) {
	wh, err := duckdb.Open(filepath.Join(t.TempDir(), "w.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	hosts := `[{"host":"api.signicat.example","ceiling":32,"peak":17,"final":16,"throttled":23,"mean_in_flight":15.4,"paused_seconds":1.02,
		"samples":[{"s":0,"limit":8,"in_flight":0},{"s":0.4,"limit":12,"in_flight":11},{"s":0.9,"limit":16,"in_flight":17},{"s":1.1,"limit":15,"in_flight":16}]}]`
	for _, q := range []string{
		`CREATE TABLE _ledgerlake_runs (run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, loaded_at TIMESTAMPTZ, status VARCHAR, streams JSON)`,
		`INSERT INTO _ledgerlake_runs VALUES ('r1', '2026-01-01 02:00:00+00', '2026-01-01 02:01:00+00', '2026-01-01 02:02:00+00', 'ok', '[]')`,
	} {
		if _, err := wh.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if s, err := Collect(context.Background(), wh.DB, Options{}); err != nil || len(s.Runs) != 1 || s.Runs[0].Hosts != nil {
		t.Fatalf("a warehouse from before hosts were recorded: %v", err)
	}
	for _, q := range []string{
		`ALTER TABLE _ledgerlake_runs ADD COLUMN hosts JSON`,
		`INSERT INTO _ledgerlake_runs VALUES ('r2', '2026-01-02 02:00:00+00', '2026-01-02 02:01:00+00', '2026-01-02 02:02:00+00', 'ok', '[]', '` + hosts + `')`,
	} {
		if _, err := wh.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s, err := Collect(context.Background(), wh.DB, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Runs) != 2 || s.Runs[0].Hosts != nil || len(s.Runs[1].Hosts) != 1 || s.Runs[1].Hosts[0].PausedSeconds != 1.02 || len(s.Runs[1].Hosts[0].Samples) != 4 {
		t.Fatalf("runs' hosts: %+v", s.Runs)
	}
	var b bytes.Buffer
	if err := s.Render(&b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	r1, r2, _ := strings.Cut(page[strings.Index(page, `id="run/r1"`):], `id="run/r2"`)
	if strings.Contains(r1, "API hosts") {
		t.Error("run r1, which recorded no hosts, shows a hosts section")
	}
	row := `<td>api.signicat.example</td><td class="num">16</td><td class="num">32</td><td class="num">15.4</td><td class="num">17</td><td class="num">23</td><td class="num">1.02 s</td>`
	if !strings.Contains(r2, row) {
		t.Errorf("run r2's page lacks the host's figures %s", row)
	}
	chart := r2[strings.Index(r2, `data-chart="host:api.signicat.example"`):]
	chart = chart[:strings.Index(chart, "</svg>")]
	// A step per sample (two points each) on the limit's line, a point per sample for the requests in
	// flight, the ceiling, and the time axis ending at the last change.
	if line := chart[strings.Index(chart, `<polyline class="line s0" points="`):]; strings.Count(line[:strings.Index(line, `"/>`)], ",") != 8 {
		t.Errorf("the limit's line is not 4 steps: %s", line[:strings.Index(line, `"/>`)])
	}
	for _, want := range []string{`<title>at 0.9 s: limit 16, 17 in flight</title>`, `ceiling (per_host_concurrency): 32`, `>1.1 s</text>`} {
		if !strings.Contains(chart, want) {
			t.Errorf("the host's chart lacks %s", want)
		}
	}
	if n := strings.Count(chart, `circle class="point s1"`); n != 4 {
		t.Errorf("%d in-flight points, want one per sample (4)", n)
	}
}
