package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/site"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// demoHistory is the demo's warehouse after three runs: two of `extract demo`, then `extract verify`,
// then `extract run` against a sandbox whose organizations/list returns two organisations twice, so
// the third run's key test of gsapi_organizations fails with their rows (and the run exits 1).
type demoHistory struct {
	dir, db, lake, site string
	runs                []string // oldest first
	repeated            []int    // the org_ids listed twice
}

const demoScale = "0.2"

func makeDemoHistory(t *testing.T) *demoHistory {
	t.Helper()
	h := &demoHistory{dir: t.TempDir()}
	h.db, h.lake, h.site = filepath.Join(h.dir, "warehouse.duckdb"), filepath.Join(h.dir, "lake"), filepath.Join(h.dir, "site")
	for range 2 {
		if code, out, stderr := cli(t, "demo", "--scale", demoScale, "--dir", h.dir); code != 0 {
			t.Fatalf("demo: exit %d\n%s\n%s", code, out, stderr)
		}
	}
	if code, out, _ := cli(t, "verify", "--lake", h.lake); code != 0 {
		t.Fatalf("verify: %d %s", code, out)
	}
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: 0.2, RepeatedOrganizations: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	h.repeated = []int{srv.Data().GSOrgID(0), srv.Data().GSOrgID(1)}
	y := strings.Replace(string(pipelines.Demo), "output_dir: data/demo/lake", "output_dir: "+h.lake, 1)
	y = strings.Replace(y, "warehouse: data/demo/warehouse.duckdb", "warehouse: "+h.db+"\ndocs_html: "+filepath.Join(h.dir, "nightly-site"), 1)
	cfg := filepath.Join(h.dir, "pipeline.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"LEDGERLAKE_SANDBOX_URL": srv.URL, "SIGNICAT_CLIENT_ID": sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
		"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword} {
		t.Setenv(k, v)
	}
	if code, out, stderr := cli(t, "run", "--config", cfg); code != 1 || !strings.Contains(out+stderr, "key_unique_not_null_gsapi_organizations") {
		t.Fatalf("run with repeated organisations: exit %d, want 1 naming the failed key test\n%s\n%s", code, out, stderr)
	}
	// docs_html: the run left the site, its failing test in it.
	if b, err := os.ReadFile(filepath.Join(h.dir, "nightly-site", "index.html")); err != nil || !strings.Contains(string(b), `<article class="test fail" id="test/key_unique_not_null_gsapi_organizations"`) {
		t.Errorf("the run's docs_html site: %v", err)
	}
	code, out, stderr := cli(t, "docs", "--html", h.site, "--db", h.db, "--lake", h.lake)
	if code != 0 || !strings.Contains(out, "3 runs") || !strings.Contains(out, "(1 failing)") {
		t.Fatalf("docs --html: exit %d\n%s\n%s", code, out, stderr)
	}
	wh, err := duckdb.OpenReadOnly(h.db)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if h.runs, err = wh.LoadedRuns(context.Background()); err != nil || len(h.runs) != 3 {
		t.Fatalf("runs %v, %v", h.runs, err)
	}
	slices.Sort(h.runs) // run ids begin with their start time
	return h
}

// The demo's site, checked as data (always) and as a person sees it in Chromium (where installed).
func TestDocsSite(t *testing.T) {
	// Not parallel: t.Setenv (the third run reads the sandbox's credentials from the environment).
	h := makeDemoHistory(t)
	html, err := os.ReadFile(filepath.Join(h.site, "index.html"))
	if err != nil {
		t.Fatal(err)
	}
	// No credentials and no evidence bodies: the sandbox's secrets, and the API's own field names
	// (the warehouse's are snake_case; a raw body would bring camelCase keys), appear nowhere.
	for _, secret := range []string{sandbox.ClientSecret, sandbox.GSAPIPassword, sandbox.GSAPIJWT, `"invoiceNumber"`, `"lineTotalChargeAmount"`} {
		if strings.Contains(string(html), secret) {
			t.Errorf("the page holds %q", secret)
		}
	}
	// Self-contained: nothing is loaded from anywhere (no src= or href= leaves the page).
	for _, ref := range []string{`src="`, `href="http`, `href="//`, "@import", "url("} {
		if strings.Contains(string(html), ref) {
			t.Errorf("the page refers outside itself: %q", ref)
		}
	}
	// Last changed is not last loaded: country codes are the same in every run, the organisations
	// changed in the third.
	wh, err := duckdb.OpenReadOnly(h.db)
	if err != nil {
		t.Fatal(err)
	}
	s, err := site.Collect(context.Background(), wh.DB, site.Options{})
	wh.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range s.Tables {
		want := map[string][2]string{"gsapi_country_codes": {h.runs[0], h.runs[2]}, "gsapi_organizations": {h.runs[2], h.runs[2]}, "dim_organization": {h.runs[2], h.runs[2]}}[tb.Name]
		if want[0] != "" && (tb.Changed == nil || tb.Fresh == nil || tb.Changed.RunID != want[0] || tb.Fresh.RunID != want[1]) {
			t.Errorf("%s: changed %+v, loaded %+v; want changed by %s, loaded by %s", tb.Name, tb.Changed, tb.Fresh, want[0], want[1])
		}
	}
	t.Run("serve", func(t *testing.T) { checkServe(t, h, html) })
	t.Run("serve command", func(t *testing.T) { checkServeCommand(t, h) })
	t.Run("chromium", func(t *testing.T) { checkInChromium(t, h, int64(len(html))) })
}

// Tenant b names its fields otherwise; its demo maps them, so its site has every model built and
// every test passing too.
func TestDocsSiteOfTenantB(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, out, stderr := cli(t, "demo", "--tenant", "b", "--scale", "0.05", "--dir", dir); code != 0 {
		t.Fatalf("demo --tenant b: exit %d\n%s\n%s", code, out, stderr)
	}
	b, err := os.ReadFile(filepath.Join(dir, "site", "index.html"))
	if err != nil {
		t.Fatalf("the demo wrote no site: %v", err)
	}
	page := string(b)
	ms, tests, _ := models.Load()
	for _, m := range ms {
		if !strings.Contains(page, `id="table/`+m.Name+`"`) {
			t.Errorf("model %s has no page", m.Name)
		}
	}
	// One run: the charts of the history say they need more; no chart of single dots.
	if !strings.Contains(page, `class="pending-charts">1 run so far`) || strings.Contains(page, `data-chart="duration"`) {
		t.Error("the site of one run draws charts")
	}
	// The run's page shows how each API host's concurrency went, from the run's own report.
	if n := strings.Count(page, `<svg class="chart" data-chart="host:127.0.0.1:`); n != 1 {
		t.Errorf("the run's page draws %d hosts' concurrency, want the demo's one (its sandbox serves both APIs)", n)
	}
	for _, bad := range []string{" unbuilt", `class="test fail"`, `class="test error"`, `class="node test skipped"`} {
		if strings.Contains(page, bad) {
			t.Errorf("tenant b's site shows %q", bad)
		}
	}
	if n := strings.Count(page, `<tr class="test pass" id="test/`); n < len(tests) {
		t.Errorf("%d tests pass on the page, want at least the %d SQL tests", n, len(tests))
	}
	// Each mapped field shows where it was read from, on the model's page and on the tenant table's.
	for _, want := range []string{"<code>gsapi_datasync_invoices.net_amount</code> ← <code>total_net</code> <span class=\"meta\">sources.gsapi.fields.datasync_invoices.net_amount</span>",
		"<code>gsapi_datasync_invoices.invoice_id</code> ← <code>iheader_id</code> <span class=\"meta\">(the default)</span>"} {
		if n := strings.Count(page, want); n < 2 {
			t.Errorf("the page shows %q %d times, want it on stg_gsapi_invoices' page and gsapi_datasync_invoices'", want, n)
		}
	}
}

// checkServe serves the same warehouse live: the same page (but for its time), read-only.
func checkServe(t *testing.T, h *demoHistory, static []byte) {
	src := &siteSource{db: h.db, lake: h.lake, runs: 30}
	st, err := lake.OpenStore(context.Background(), h.lake, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv := httptest.NewServer(site.Handler(func(ctx context.Context) (*site.Site, error) { return src.collect(ctx, st) }, func(err error) { t.Error(err) }))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	live, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	generated := func(b []byte) string {
		// The page's generation time is the only difference between two renderings of one warehouse.
		s := string(b)
		for _, marker := range []string{"page generated ", "generated "} {
			for i := strings.Index(s, marker); i >= 0; {
				end := i + len(marker) + len("2006-01-02 15:04:05 UTC")
				s = s[:i] + s[end:]
				j := strings.Index(s[i:], marker)
				if j < 0 {
					break
				}
				i += j
			}
		}
		return s
	}
	if resp.StatusCode != 200 || generated(live) != generated(static) {
		t.Errorf("served page (status %d, %d bytes) differs from the written one (%d bytes)", resp.StatusCode, len(live), len(static))
	}
	for _, c := range []struct {
		method, path string
		want         int
	}{{"POST", "/", 405}, {"DELETE", "/", 405}, {"GET", "/../warehouse.duckdb", 404}, {"GET", "/lake", 404}, {"HEAD", "/index.html", 200}} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s %s: %d, want %d", c.method, c.path, resp.StatusCode, c.want)
		}
	}
}

// checkServeCommand runs extract serve as a user would: it says where it listens, serves the page,
// and stops cleanly on Ctrl-C (the context's end).
func checkServeCommand(t *testing.T, h *demoHistory) {
	ctx, stop := context.WithCancel(context.Background())
	r, w := io.Pipe()
	done := make(chan int, 1)
	go func() {
		code := Main(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", h.db, "--lake", h.lake}, w, io.Discard)
		w.Close()
		done <- code
	}()
	line, err := bufio.NewReader(r).ReadString('\n')
	go func() { _, _ = io.Copy(io.Discard, r) }()
	if err != nil {
		stop()
		t.Fatalf("serve said nothing: %v", err)
	}
	i := strings.Index(line, "http://")
	if i < 0 {
		stop()
		t.Fatalf("serve said %q, no address", line)
	}
	addr := strings.Fields(line[i:])[0]
	resp, err := http.Get(addr)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `id="table/signicat_invoices"`) || resp.Header.Get("Content-Security-Policy") == "" {
			t.Errorf("GET %s: %d, %d bytes", addr, resp.StatusCode, len(b))
		}
	} else {
		t.Error(err)
	}
	stop()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("serve exited %d after Ctrl-C", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after Ctrl-C")
	}
}

// chromium finds Debian's Chromium (or LEDGERLAKE_CHROMIUM).
func chromium() string {
	if p := os.Getenv("LEDGERLAKE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// artefacts is where the browser test keeps its screenshots: LEDGERLAKE_ARTEFACTS, or test-artefacts/
// at the top of the repository.
func artefacts(t *testing.T) string {
	dir := os.Getenv("LEDGERLAKE_ARTEFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "test-artefacts")
	}
	dir = filepath.Join(dir, "site")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

func checkInChromium(t *testing.T, h *demoHistory, weight int64) {
	b := openSite(t, h, weight)
	b.shot("home")
	checkLineagePage(b, h)
	checkRunsPage(b, h)
	checkTestsPage(b, h)
	checkTablePages(b, h)
	checkManifestPages(b, h)
	checkSchemaPage(b, h)
	// A link that names nothing says so.
	b.open("#table/no_such_table", "section.page.current#not-found")
}

// browser is the docs site open in Chromium: the pages are checked one after another in it.
type browser struct {
	t   *testing.T
	ctx context.Context
	out string // where screenshots and the printed PDF go
}

// openSite starts Chromium (skipping without one), opens the site's home page and checks that it loads
// nothing from elsewhere; the browser is closed when t ends.
func openSite(t *testing.T, h *demoHistory, weight int64) *browser {
	exe := chromium()
	if exe == "" {
		t.Skip("no Chromium installed (Debian: apt-get install chromium; .ci/run does): the docs site was not rendered in a browser")
	}
	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]), chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-gpu", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1400, 1000))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The browser lives as long as the context of its first call, so that one has no timeout.
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v", exe, err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	pageURL := fileURL(filepath.Join(h.site, "index.html"))
	start := time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(pageURL+"#home"), chromedp.WaitVisible(chromedp.CSS("#home"))); err != nil {
		t.Fatalf("opening %s in %s: %v", pageURL, exe, err)
	}
	wall := time.Since(start)
	timing := eval[struct {
		DOMContentLoaded, Load float64
		Resources              int
	}](t, ctx, `(() => { const n = performance.getEntriesByType("navigation")[0];
		return {DOMContentLoaded: n.domContentLoadedEventEnd, Load: n.loadEventEnd, Resources: performance.getEntriesByType("resource").length}; })()`)
	t.Logf("page weight %d bytes; rendered in Chromium: DOMContentLoaded %.0f ms, load %.0f ms (navigation %v wall)", weight, timing.DOMContentLoaded, timing.Load, wall.Round(time.Millisecond))
	if timing.Resources != 0 {
		t.Errorf("the page fetched %d resources; it must be self-contained", timing.Resources)
	}
	return &browser{t: t, ctx: ctx, out: artefacts(t)}
}

// shot saves a screenshot of what the browser shows as name.png among the test artefacts.
func (b *browser) shot(name string) {
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.t.Fatal(err)
	}
	p := filepath.Join(b.out, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// open follows the link hash and waits for sel to be visible, then checks that one page shows.
func (b *browser) open(hash, sel string) {
	t, ctx := b.t, b.ctx
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := chromedp.Evaluate[string](`location.hash = `+jsString(hash))(ctx, tg)
		return err
	}), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		t.Fatalf("%s: %v", hash, err)
	}
	visible := eval[int](t, ctx, `[...document.querySelectorAll("section.page")].filter(s => s.offsetParent !== null).length`)
	if visible != 1 {
		t.Fatalf("%s: %d pages visible at once", hash, visible)
	}
}

// show follows the link hash and waits for the page it names to be the one shown.
func (b *browser) show(hash string) {
	b.t.Helper()
	b.open(hash, fmt.Sprintf(`section.page.current[id=%q]`, strings.TrimPrefix(hash, "#")))
}

// lineageGraph is the lineage graph as drawn: its nodes (with their size on screen) and its edges.
type lineageGraph struct {
	Nodes []struct {
		ID, Kind, Title string
		W, H            float64
	}
	Edges []string
}

// checkLineagePage checks the lineage graph: a node per model and per data test, an edge per
// dependency, each where a person sees it.
func checkLineagePage(b *browser, h *demoHistory) {
	t, ctx := b.t, b.ctx
	b.show("#lineage")
	ms, sqlTests, err := models.Load()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, m := range append(slices.Clone(ms), sqlTests...) {
		to := m.Name
		if m.Kind == "test" {
			to = "test:" + m.Name
		}
		for _, from := range append(slices.Clone(m.Sources), m.Deps...) {
			want[from+" → "+to] = true
		}
	}
	streams, children, keyTests := warehouseFacts(t, h.db)
	graph := eval[lineageGraph](t, ctx, `({Nodes: [...document.querySelectorAll("svg.lineage a.node")].map(a => { const r = a.getBoundingClientRect();
			return {ID: a.dataset.node, Kind: a.dataset.kind, Title: a.querySelector("title").textContent, W: r.width, H: r.height}; }),
		Edges: [...document.querySelectorAll("svg.lineage path.edge")].map(e => e.dataset.from + " → " + e.dataset.to)})`)
	nodes := map[string]string{}
	folded := map[string]string{} // stream → the folded node it is drawn in
	for _, n := range graph.Nodes {
		if n.W < 20 || n.H < 10 {
			t.Errorf("node %s is %gx%g px: not visible", n.ID, n.W, n.H)
		}
		nodes[n.ID] = n.Kind
		if n.Kind == "folded" {
			_, list, _ := strings.Cut(n.Title, ": ")
			for _, s := range strings.Split(list, ", ") {
				folded[s] = n.ID
			}
		}
	}
	wantStreamEdges(t, graph, streams, nodes, folded, want)
	where := func(table string) string {
		if nodes[table] != "" {
			return table
		}
		if p := children[table]; p != "" {
			return folded[p]
		}
		return folded[table]
	}
	for child, parent := range children {
		if nodes[child] != "" {
			want[parent+" → "+child] = true
		}
	}
	for _, table := range keyTests {
		want[where(table)+" → test:key_unique_not_null_"+table] = true
	}
	checkLineageNodes(t, ms, sqlTests, nodes, folded)
	compareEdges(t, graph.Edges, want)
	t.Logf("lineage: %d nodes, %d edges", len(graph.Nodes), len(graph.Edges))
	b.shot("lineage")
	// A node is a link to its table's page.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`svg.lineage a.node[data-node="fct_invoice"] rect`)),
		chromedp.WaitVisible(chromedp.CSS(`section.page.current[id="table/fct_invoice"]`))); err != nil {
		t.Errorf("clicking fct_invoice in the graph: %v", err)
	}
}

// wantStreamEdges checks that each stream hangs off a family of its API, or is folded (no model reads
// it) into that family's node, and adds those edges to want.
func wantStreamEdges(t *testing.T, graph lineageGraph, streams []string, nodes, folded map[string]string, want map[string]bool) {
	drawn := map[string]bool{}
	for _, e := range graph.Edges {
		drawn[e] = true
	}
	for _, s := range streams {
		src := strings.SplitN(s, "_", 2)[0]
		family := ""
		for _, e := range graph.Edges {
			if from, to, _ := strings.Cut(e, " → "); (to == s || to == folded[s]) && strings.HasPrefix(from, "family:"+src+":") {
				family = from
			}
		}
		if family == "" || !drawn["source:"+src+" → "+family] || nodes[s] == "" && folded[s] == "" {
			t.Errorf("stream %s: family %q, folded in %q", s, family, folded[s])
			continue
		}
		want["source:"+src+" → "+family] = true
		want[family+" → "+cmp.Or(folded[s], s)] = true
	}
}

// checkLineageNodes checks that every model and SQL test reads its inputs, drawn (no stream a model
// reads is folded), and that each model and data test is drawn as what it is.
func checkLineageNodes(t *testing.T, ms, sqlTests []*models.Model, nodes, folded map[string]string) {
	for _, m := range append(slices.Clone(ms), sqlTests...) {
		for _, from := range m.Sources {
			if nodes[from] == "" {
				t.Errorf("%s reads %s, which is not drawn", m.Name, from)
			}
		}
	}
	if len(folded) == 0 {
		t.Error("no stream is folded, though most no model reads")
	}
	for _, m := range ms {
		if k := nodes[m.Name]; k != map[string]string{"view": "staging", "table": "mart"}[m.Kind] {
			t.Errorf("model %s drawn as %q", m.Name, k)
		}
	}
	for _, m := range sqlTests {
		if nodes["test:"+m.Name] != "test" {
			t.Errorf("data test %s not drawn", m.Name)
		}
	}
}

// compareEdges checks that the graph draws each wanted edge once and no other.
func compareEdges(t *testing.T, edges []string, want map[string]bool) {
	got := map[string]bool{}
	for _, e := range edges {
		if got[e] {
			t.Errorf("edge %s drawn twice", e)
		}
		got[e] = true
	}
	for e := range want {
		if !got[e] {
			t.Errorf("missing edge %s", e)
		}
	}
	for e := range got {
		if !want[e] {
			t.Errorf("edge %s has no dependency behind it", e)
		}
	}
}

// checkRunsPage checks the run history: each chart has a point per run, in order, at increasing x
// (the first line's points; duration and retries have a second line).
func checkRunsPage(b *browser, h *demoHistory) {
	t, ctx := b.t, b.ctx
	b.show("#runs")
	for _, chart := range []string{"duration", "rows", "requests", "retries", "rejects"} {
		points := eval[[]struct {
			Run string
			X   float64
		}](t, ctx, `[...document.querySelectorAll('svg.chart[data-chart="`+chart+`"] circle.point.s0')].map(c => ({Run: c.dataset.run, X: c.getBoundingClientRect().x}))`)
		var runs []string
		for i, p := range points {
			runs = append(runs, p.Run)
			if i > 0 && p.X <= points[i-1].X {
				t.Errorf("chart %s: run %s is not right of the one before", chart, p.Run)
			}
		}
		if !slices.Equal(runs, h.runs) {
			t.Errorf("chart %s has points for %v, want one per run %v", chart, runs, h.runs)
		}
	}
	for _, chart := range []string{"duration", "retries"} {
		if n := eval[int](t, ctx, `document.querySelectorAll('svg.chart[data-chart="`+chart+`"] circle.point').length`); n != 2*len(h.runs) {
			t.Errorf("%s chart has %d points, want two lines' for each of %d runs", chart, n, len(h.runs))
		}
	}
	b.shot("runs")
}

// checkTestsPage checks the data tests: the failing key test comes first, in red, with the repeated
// organisations as its rows; the page prints without the navigation.
func checkTestsPage(b *browser, h *demoHistory) {
	t, ctx := b.t, b.ctx
	b.show("#tests")
	tests := eval[struct {
		First, Class, Badge, Border string
		Rows                        []string
		Passing                     int
	}](t, ctx, `(() => { const a = document.querySelector("article.test");
		return {First: a.dataset.test, Class: a.className, Badge: getComputedStyle(a.querySelector(".status")).backgroundColor,
			Border: getComputedStyle(a).borderLeftColor, Rows: [...a.querySelectorAll("table.failing td")].map(td => td.innerText),
			Passing: document.querySelectorAll("table.tests tr.test.pass").length}; })()`)
	if tests.First != "key_unique_not_null_gsapi_organizations" || !strings.Contains(tests.Class, "fail") {
		t.Errorf("first test shown is %s (%s), want the failing key test of gsapi_organizations", tests.First, tests.Class)
	}
	for _, c := range []string{tests.Badge, tests.Border} {
		var r, g, b int
		if _, err := fmt.Sscanf(c, "rgb(%d, %d, %d)", &r, &g, &b); err != nil || r < 150 || g > 90 || b > 90 {
			t.Errorf("failing test drawn in %s, want red", c)
		}
	}
	if len(tests.Rows) != len(h.repeated) {
		t.Errorf("failing test shows rows %q, want the %d repeated organisations", tests.Rows, len(h.repeated))
	}
	for i, id := range h.repeated {
		if i < len(tests.Rows) && !strings.Contains(tests.Rows[i], fmt.Sprint(id)) {
			t.Errorf("row %q does not name org_id %d", tests.Rows[i], id)
		}
	}
	if tests.Passing != 13 {
		t.Errorf("%d tests shown passing, want the other 13", tests.Passing)
	}
	b.shot("tests")
	printed(t, ctx, filepath.Join(b.out, "tests.pdf"))
}

// checkTablePages checks the tables list (a date never wraps onto a second line), a table's page and
// the search.
func checkTablePages(b *browser, h *demoHistory) {
	t, ctx := b.t, b.ctx
	b.show("#tables")
	if wrapped := eval[[]string](t, ctx, `[...document.querySelectorAll("section.page.current td.day")].filter(td => {
			const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length > 1; }).map(td => td.innerText)`); len(wrapped) > 0 {
		t.Errorf("dates wrap in the tables list: %q", wrapped)
	}
	b.shot("tables")

	// A deep link to a table: its row count as the warehouse has it, its columns and sample rows.
	b.show("#table/signicat_invoices")
	table := eval[struct {
		Title, Rows string
		Columns     int
		Samples     int
	}](t, ctx, `(() => { const s = document.querySelector("section.page.current");
		return {Title: s.querySelector("h1").innerText, Rows: s.querySelector("dd.rows").innerText,
			Columns: s.querySelectorAll("tr.column").length, Samples: s.querySelectorAll("table.sample tbody tr").length}; })()`)
	var rows, cols int
	queryInto(t, h.db, "SELECT (SELECT count(*) FROM signicat_invoices), (SELECT count(*) FROM information_schema.columns WHERE table_name = 'signicat_invoices')", &rows, &cols)
	if table.Title != "signicat_invoices" || !strings.HasPrefix(table.Rows, fmtThousands(rows)+" ") || table.Columns != cols || table.Samples != 5 {
		t.Errorf("table page %+v, want %d rows, %d columns, 5 samples", table, rows, cols)
	}
	b.shot("table-signicat_invoices")
	b.show("#table/gsapi_country_codes")
	if got := eval[string](t, ctx, `document.querySelector("section.page.current dd.changed").innerText + " | " + document.querySelector("section.page.current dd.loaded").innerText`); !strings.HasPrefix(got, h.runs[0]) || !strings.Contains(got, "| "+h.runs[2]) {
		t.Errorf("country codes page says %q, want changed by the first run and loaded by the third", got)
	}

	// Search finds a column and its link opens the table there.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#search"), "total_invoice_amount")); err != nil {
		t.Fatal(err)
	}
	results := eval[[]string](t, ctx, `[...document.querySelectorAll("#search-results a")].map(a => a.getAttribute("href"))`)
	if !slices.Contains(results, "#table/signicat_invoices/total_invoice_amount") {
		t.Errorf("search for total_invoice_amount found %v", results)
	}
	b.shot("search")
}

// checkManifestPages checks the auditors' pages: the third run's manifest, with every file's sha256,
// not yet verified; the first run's, verified clean.
func checkManifestPages(b *browser, h *demoHistory) {
	t, ctx := b.t, b.ctx
	b.show("#manifest/" + h.runs[2])
	manifest := eval[struct {
		Files   int
		Verify  string
		ShaLike int
	}](t, ctx, `(() => { const s = document.querySelector("section.page.current"); const shas = [...s.querySelectorAll("code.sha")];
		return {Files: s.querySelectorAll("table.files tbody tr").length, Verify: s.querySelector(".verify-line").innerText,
			ShaLike: shas.filter(c => /^[0-9a-f]{64}$/.test(c.innerText)).length}; })()`)
	var m lake.Manifest
	if _, err := lake.ReadJSON(t.Context(), lake.Dir(h.lake), lake.ManifestDir, h.runs[2], &m); err != nil {
		t.Fatal(err)
	}
	if manifest.Files != len(m.Files) || manifest.ShaLike != len(m.Files) || !strings.Contains(manifest.Verify, "Not yet covered") {
		t.Errorf("manifest page %+v, want %d files with their sha256, not yet verified", manifest, len(m.Files))
	}
	b.show("#manifest/" + h.runs[0])
	manifest.Verify = eval[string](t, ctx, `document.querySelector("section.page.current .verify-line").innerText`)
	if !strings.Contains(manifest.Verify, "verified clean") {
		t.Errorf("first run's manifest says %q, want verified clean", manifest.Verify)
	}
	b.shot("manifest")
}

// checkSchemaPage checks the schema changes: the first run widened the GSAPI invoice lines' VAT rate,
// and says so.
func checkSchemaPage(b *browser, h *demoHistory) {
	t, ctx := b.t, b.ctx
	b.show("#schema")
	if got := eval[string](t, ctx, `document.querySelector("section.page.current").innerText`); !strings.Contains(got, h.runs[0]) ||
		!strings.Contains(got, "gsapi_invoice_lines.vatpercentage: widened BIGINT → DECIMAL") {
		t.Errorf("schema changes page says %q", got)
	}
	b.shot("schema")
}

// printed prints the current page to PDF (as a person printing it would), after checking that print
// hides the navigation.
func printed(t *testing.T, ctx context.Context, path string) {
	media := func(m string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := cdp.Call(ctx, tg, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: m})
			return err
		})
	}
	if err := chromedp.Do(ctx, media("print")); err != nil {
		t.Fatal(err)
	}
	if nav := eval[string](t, ctx, `getComputedStyle(document.querySelector("header nav")).display`); nav != "none" {
		t.Errorf("printing shows the navigation (display %s)", nav)
	}
	if err := chromedp.Do(ctx, media("")); err != nil {
		t.Fatal(err)
	}
	pdf, err := chromedp.Run(ctx, chromedp.PrintToPDF(chromedp.PDFPrintBackground(), chromedp.PDFPaper(chromedp.PaperA4)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pdf), "%PDF") {
		t.Fatalf("printing gave %d bytes that are not a PDF", len(pdf))
	}
	if err := os.WriteFile(path, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("printed %s (%d bytes)", path, len(pdf))
}

// eval evaluates js in the page and returns its value.
func eval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// fmtThousands writes n as the page does: 12345 → 12,345.
func fmtThousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// warehouseFacts reads from the warehouse what the graph must show: the stream tables, the child
// tables with their parents, and the tables whose key a run tested (a run that fetched no child rows
// neither lists the child table nor tests it; an earlier run did).
func warehouseFacts(t *testing.T, db string) (streams []string, children map[string]string, keyTests []string) {
	wh, err := duckdb.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	raws, err := wh.DB.Query("SELECT streams::VARCHAR FROM _ledgerlake_runs")
	if err != nil {
		t.Fatal(err)
	}
	defer raws.Close()
	children = map[string]string{}
	for raws.Next() {
		var raw string
		var reports []lake.StreamReport
		if err := raws.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(raw), &reports); err != nil {
			t.Fatal(err)
		}
		for _, r := range reports {
			if !slices.Contains(streams, r.Table) {
				streams = append(streams, r.Table)
			}
			for _, c := range r.Tables[1:] {
				children[c.Name] = r.Table
			}
		}
	}
	rows, err := wh.DB.Query("SELECT DISTINCT substr(name, length('key_unique_not_null_') + 1) FROM _ledgerlake_data_tests WHERE name LIKE 'key\\_unique\\_not\\_null\\_%' ESCAPE '\\'")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var table string
		if err := rows.Scan(&table); err != nil {
			t.Fatal(err)
		}
		keyTests = append(keyTests, table)
	}
	return streams, children, keyTests
}

func queryInto(t *testing.T, db, q string, dest ...any) {
	wh, err := duckdb.OpenReadOnly(db)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	if err := wh.DB.QueryRow(q).Scan(dest...); err != nil {
		t.Fatal(err)
	}
}
