package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/audit"
	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/pipelines"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// TestMain has the syncs write Parquet as main does, with the page-sized zstd encoder: arrow-go's own,
// with zstd's default window and allocated again after every GC, made each sync about ten times
// slower under the race detector.
func TestMain(m *testing.M) {
	if err := parquet.RegisterZstd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// runAt syncs Signicat invoices (with PDFs) and GSAPI datasync invoices from a sandbox whose data ends
// at until, into root.
func runAt(t *testing.T, root string, until time.Time) (*pipeline.Result, *sandbox.Server) {
	t.Helper()
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.05, Until: until})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	env := map[string]string{"LEDGERLAKE_SANDBOX_URL": srv.URL, "SIGNICAT_CLIENT_ID": sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
		"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword}
	cfg, err := config.Parse(pipelines.Demo, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.OutputDir, cfg.Warehouse = root, filepath.Join(root, "..", "wh.duckdb")
	cfg.Sources.Signicat.Streams = []string{"invoices", "invoice_lines", "invoice_pdfs"}
	cfg.Sources.GSAPI.Streams = []string{"datasync_invoices", "datasync_invoice_lines"}
	res, err := pipeline.Run(context.Background(), pipeline.Options{Config: cfg})
	if err != nil || !res.OK() {
		t.Fatalf("run: %v %+v", err, res)
	}
	return res, srv
}

// answer returns the rows of a query as maps of column → text.
func answer(t *testing.T, q audit.Query) ([]map[string]string, *audit.Answer) {
	t.Helper()
	wh, err := duckdb.Open("")
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	a, err := audit.Prepare(context.Background(), wh.DB, q)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := wh.DB.Query(a.SQL)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out []map[string]string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for i, c := range cols {
			switch v := vals[i].(type) {
			case nil:
			case time.Time:
				m[c] = v.UTC().Format(time.RFC3339Nano)
			default:
				m[c] = fmt.Sprint(v)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out, a
}

func TestInvoicesAsOfOldAndNewForm(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "lake")
	until := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	first, _ := runAt(t, root, until)
	// Half a year later the recent invoices of run 1 are settled.
	second, srv := runAt(t, root, time.Time{})
	t1 := first.Manifest.FinishedAt

	byNumber := func(rows []map[string]string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, r := range rows {
			if r["source"] == "signicat" {
				out[r["invoice_number"]] = r
			}
		}
		return out
	}
	old, a1 := answer(t, audit.Query{Root: root, AsOf: t1, Source: "all"})
	now, a2 := answer(t, audit.Query{Root: root, Source: "all"})
	if a1.LastRun != first.Manifest.RunID || a1.Runs != 1 || a2.LastRun != second.Manifest.RunID || a2.Runs != 2 {
		t.Fatalf("as-of selected %d runs up to %s, latest %d up to %s", a1.Runs, a1.LastRun, a2.Runs, a2.LastRun)
	}
	oldBy, nowBy := byNumber(old), byNumber(now)
	d := srv.Data()
	if len(nowBy) != 1+d.SignicatInvoices || len(oldBy) == 0 || len(oldBy) >= len(nowBy) {
		t.Fatalf("%d invoices as of run 1, %d now; the sandbox has %d", len(oldBy), len(nowBy), 1+d.SignicatInvoices)
	}
	changed := ""
	for n, o := range oldBy {
		if o["settled"] == "false" && nowBy[n]["settled"] == "true" {
			changed = n
			break
		}
	}
	if changed == "" {
		t.Fatal("no invoice was unsettled in run 1 and settled in run 2: the test proves nothing")
	}
	o, n := oldBy[changed], nowBy[changed]
	if o["run_id"] != first.Manifest.RunID || n["run_id"] != second.Manifest.RunID {
		t.Errorf("invoice %s: run ids %s then %s", changed, o["run_id"], n["run_id"])
	}
	// Provenance: the snapshot file and its hash are the manifest's, and the evidence body holds the
	// invoice exactly in the form the row shows.
	for _, c := range []struct {
		row map[string]string
		m   *lake.Manifest
	}{{o, first.Manifest}, {n, second.Manifest}} {
		found := false
		for _, f := range c.m.Files {
			if f.Path == c.row["snapshot_file"] && f.SHA256 == c.row["snapshot_sha256"] {
				found = true
			}
		}
		if !found {
			t.Errorf("snapshot %s (%s) is not in run %s's manifest", c.row["snapshot_file"], c.row["snapshot_sha256"], c.m.RunID)
		}
		if !strings.HasPrefix(c.row["endpoint"], "GET /invoices?invoiceDateAfter=") {
			t.Errorf("endpoint %q", c.row["endpoint"])
		}
		var ev *lake.Evidence
		for i, e := range c.m.Evidence {
			if e.SHA256 == c.row["evidence_sha256"] && e.Endpoint == c.row["endpoint"] {
				ev = &c.m.Evidence[i]
			}
		}
		if ev == nil {
			t.Fatalf("evidence %s of invoice %s is not in run %s's manifest", c.row["evidence_sha256"], changed, c.m.RunID)
		}
		body, err := lake.ReadEvidence(t.Context(), lake.Dir(root), *ev)
		if err != nil {
			t.Fatal(err)
		}
		recs, err := jsonrec.DecodeArray(body)
		if err != nil {
			t.Fatal(err)
		}
		hit := false
		for _, r := range recs {
			if r["invoiceNumber"] == changed {
				hit = true
				if got := r["settled"].(bool); (got && c.row["settled"] != "true") || (!got && c.row["settled"] != "false") {
					t.Errorf("evidence says settled=%v, the row %s", got, c.row["settled"])
				}
			}
		}
		if !hit {
			t.Errorf("the evidence body of invoice %s does not contain it", changed)
		}
	}

	// Filters: one organisation's invoices of one year, as of run 1, lines included.
	org := o["organization_id"]
	year := o["invoice_date"][:4]
	from, _ := time.Parse("2006", year)
	rows, _ := answer(t, audit.Query{Root: root, AsOf: t1, Source: "signicat", Org: org, From: from, To: from.AddDate(1, 0, -1)})
	want := 0
	for _, r := range old {
		if r["source"] == "signicat" && r["organization_id"] == org && strings.HasPrefix(r["invoice_date"], year) {
			want++
		}
	}
	if len(rows) != want || want == 0 {
		t.Errorf("org %s in %s: %d invoices, want %d", org, year, len(rows), want)
	}
	lines, _ := answer(t, audit.Query{Root: root, AsOf: t1, Source: "signicat", Org: org, From: from, To: from.AddDate(1, 0, -1), Lines: true})
	wantLines := 0
	for _, r := range rows {
		for i := 0; i < d.SignicatInvoices; i++ {
			if d.SignicatInvoiceNumber(i) == r["invoice_number"] {
				wantLines += len(d.SignicatLines(i))
			}
		}
	}
	if len(lines) != wantLines || wantLines == 0 {
		t.Errorf("%d lines for those invoices, want %d", len(lines), wantLines)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l["endpoint"], "GET /invoices/") || l["evidence_sha256"] == "" {
			t.Fatalf("line provenance: %v", l)
		}
	}

	// PDFs: run 1 fetched one per invoice, run 2 only those of the new invoices.
	pdfs1, pdfs2 := len(first.Manifest.PDFs), len(second.Manifest.PDFs)
	if pdfs1 != len(oldBy) || pdfs1+pdfs2 != len(nowBy) {
		t.Errorf("PDFs: %d in run 1 (%d invoices), %d in run 2 (%d invoices in all)", pdfs1, len(oldBy), pdfs2, len(nowBy))
	}
	_, a := answer(t, audit.Query{Root: root, Source: "signicat", Org: org})
	if len(a.PDFs) == 0 {
		t.Fatal("no PDF for the organisation's invoices")
	}
	for k, e := range a.PDFs {
		b, err := lake.ReadEvidence(t.Context(), lake.Dir(root), e)
		if err != nil || !strings.HasPrefix(string(b), "%PDF-") || !strings.Contains(string(b), k) {
			t.Fatalf("PDF of %s: %v", k, err)
		}
	}

	// Before the first run there is nothing to answer from.
	wh, _ := duckdb.Open("")
	defer wh.Close()
	if _, err := audit.Prepare(context.Background(), wh.DB, audit.Query{Root: root, AsOf: t1.Add(-time.Hour)}); err == nil || !strings.Contains(err.Error(), "no run had finished") {
		t.Errorf("as of before the first run: %v", err)
	}
}

func TestVerifyNamesAlteredAndMissingFiles(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "lake")
	res, _ := runAt(t, root, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	checked, problems, err := lake.Verify(t.Context(), lake.Dir(root))
	want := len(res.Manifest.Files)
	seen := map[string]bool{} // bodies stored once and listed by many entries are checked once
	for _, e := range slices.Concat(res.Manifest.Evidence, res.Manifest.PDFs) {
		if at := fmt.Sprintf("%s@%d", e.Path, e.Offset); !seen[at] {
			seen[at] = true
			want++
		}
	}
	if err != nil || len(problems) != 0 || checked != want {
		t.Fatalf("clean lake: %d checked (want %d), %v, %v", checked, want, problems, err)
	}
	flip := func(rel string) func() {
		p := filepath.Join(root, filepath.FromSlash(rel))
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		orig := append([]byte(nil), b...)
		b[len(b)/2] ^= 0x01
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return func() { _ = os.WriteFile(p, orig, 0o644) }
	}
	for _, rel := range []string{res.Manifest.Files[0].Path, res.Manifest.Evidence[0].Path, res.Manifest.PDFs[0].Path} {
		restore := flip(rel)
		_, problems, _ := lake.Verify(t.Context(), lake.Dir(root))
		if len(problems) != 1 || problems[0].Path != rel || !strings.Contains(problems[0].Issue, "altered") {
			t.Errorf("one byte of %s altered: %+v", rel, problems)
		}
		restore()
	}
	p := filepath.Join(root, filepath.FromSlash(res.Manifest.PDFs[0].Path))
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if _, problems, _ := lake.Verify(t.Context(), lake.Dir(root)); len(problems) != 1 || problems[0].Issue != "missing" {
		t.Errorf("deleted PDF: %+v", problems)
	}
}

func TestManifestListsEvidenceOfEveryInvoiceResponse(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "lake")
	res, srv := runAt(t, root, time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC))
	per := map[string]int{}
	for _, e := range res.Manifest.Evidence {
		per[e.Table]++
	}
	d := srv.Data()
	invoices := 0
	for i := 0; i < d.SignicatInvoices; i++ {
		if d.SignicatInvoiceTime(i).Before(time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)) {
			invoices++
		}
	}
	// One body per invoice-detail call (lines), and at least one per window for the lists.
	if per["signicat_invoice_lines"] < invoices || per["signicat_invoices"] == 0 || per["gsapi_datasync_invoices"] == 0 || per["gsapi_datasync_invoice_lines"] == 0 {
		t.Errorf("evidence per table %v, %d invoices", per, invoices)
	}
	b, _ := json.Marshal(res.Manifest.Evidence)
	if strings.Contains(string(b), sandbox.ClientSecret) || strings.Contains(string(b), sandbox.GSAPIPassword) {
		t.Error("a secret is in the evidence list")
	}
}

// GSAPI's invoice exports are tenant-defined: the audit reads them through the pipeline's field
// mapping, and by the rule the warehouse keeps — the newest fetch of every window — so the look-back
// months a later run read again are each invoice once, as of either run.
func TestGSAPIInvoicesAsOfThroughTheMapping(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "lake")
	until := time.Date(2022, 12, 20, 0, 0, 0, 0, time.UTC)
	var cfg *config.Config
	var srv *sandbox.Server
	results := map[time.Time]*pipeline.Result{}
	for _, end := range []time.Time{until, sandbox.DefaultUntil} {
		var err error
		srv, err = sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.05, Until: end, Tenant: sandbox.TenantB})
		if err != nil {
			t.Fatal(err)
		}
		env := map[string]string{"LEDGERLAKE_SANDBOX_URL": srv.URL, "SIGNICAT_CLIENT_ID": sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
			"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword}
		cfg, err = config.Parse(pipelines.DemoTenantB, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Fatal(err)
		}
		cfg.OutputDir, cfg.Warehouse, cfg.Sources.Signicat = root, filepath.Join(root, "..", "wh.duckdb"), nil
		cfg.Sources.GSAPI.Streams = []string{"datasync_invoices", "datasync_invoice_lines"}
		res, err := pipeline.Run(context.Background(), pipeline.Options{Config: cfg, Now: func() time.Time { return end }})
		if err != nil || !res.OK() {
			t.Fatalf("run until %s: %v %+v", end, err, res)
		}
		results[end] = res
		_ = srv.Close()
	}
	d := srv.Data()
	var before, all, lines int
	for i := 0; i < d.GSInvoices; i++ {
		all++
		lines += len(d.GSInvoice(i).Lines)
		if d.GSInvoiceTime(i).Before(until) {
			before++
		}
	}
	once := func(rows []map[string]string) int {
		seen := map[string]bool{}
		for _, r := range rows {
			if seen[r["invoice_key"]] || r["invoice_number"] == "" {
				t.Fatalf("invoice %s twice, or without its number: %v", r["invoice_key"], r)
			}
			seen[r["invoice_key"]] = true
		}
		return len(seen)
	}
	old, _ := answer(t, audit.Query{Root: root, Source: "gsapi", AsOf: results[until].Manifest.FinishedAt, Fields: cfg.Fields()})
	now, _ := answer(t, audit.Query{Root: root, Source: "gsapi", Fields: cfg.Fields()})
	if n := once(old); n != before {
		t.Errorf("as of run 1: %d invoices, want %d", n, before)
	}
	if n := once(now); n != all {
		t.Errorf("latest: %d invoices, want %d", n, all)
	}
	if l, _ := answer(t, audit.Query{Root: root, Source: "gsapi", Lines: true, Fields: cfg.Fields()}); len(l) != lines {
		t.Errorf("latest: %d lines, want %d", len(l), lines)
	}
	wh, _ := duckdb.Open("")
	defer wh.Close()
	_, err := audit.Prepare(context.Background(), wh.DB, audit.Query{Root: root, Source: "gsapi"})
	if err == nil || !strings.Contains(err.Error(), "gsapi_datasync_invoices has no column ext_invoice_id") || !strings.Contains(err.Error(), "sources.gsapi.fields") {
		t.Errorf("without the tenant's mapping: %v", err)
	}
	// An expression over the snapshot's own columns reads as a column does; a parent's field is not in
	// the snapshot, and is refused by name.
	fields := map[string]map[string]fieldmap.Entry{"datasync_invoices": {"invoice_number": {SQL: "'#' || invoice_no"}}}
	m, err := fieldmap.NewMapping("gsapi", fields)
	if err != nil {
		t.Fatal(err)
	}
	hashed, _ := answer(t, audit.Query{Root: root, Source: "gsapi", Fields: m})
	if n := once(hashed); n != all || !strings.HasPrefix(hashed[0]["invoice_number"], "#") {
		t.Errorf("with invoice_number from an expression: %d invoices, e.g. %v", n, hashed[0])
	}
	m["gsapi_datasync_invoices"]["organization_id"] = fieldmap.Entry{From: "datasync_invoice_lines.org_id", Via: "iheader_id"}
	if _, err := audit.Prepare(context.Background(), wh.DB, audit.Query{Root: root, Source: "gsapi", Fields: m}); err == nil || !strings.Contains(err.Error(), "extract invoices does not read") {
		t.Errorf("with a parent's field: %v", err)
	}
}
