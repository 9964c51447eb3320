package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// The demo at scale 0.05, run once for the package by copyOfDemo (a sync is seconds of CPU under the
// race detector, and each test that starts from it would run the same one); TestMain removes demoDir.
var (
	demoOnce            sync.Once
	demoDir, demoOutput string
	demoErr             error
)

// copyOfDemo is a copy of the demo's directory (lake, warehouse, site) for t alone to read or alter,
// and what the demo printed.
func copyOfDemo(t *testing.T) (dir, out string) {
	t.Helper()
	demoOnce.Do(runDemo)
	if demoErr != nil {
		t.Fatal(demoErr)
	}
	dir = t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(demoDir)); err != nil {
		t.Fatal(err)
	}
	return dir, demoOutput
}

func runDemo() {
	if demoDir, demoErr = os.MkdirTemp("", "extract-demo-"); demoErr != nil {
		return
	}
	var out, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"demo", "--scale", "0.05", "--dir", demoDir}, &out, &stderr); code != 0 {
		demoErr = fmt.Errorf("demo: exit %d\n%s\n%s", code, out.String(), stderr.String())
	}
	demoOutput = out.String()
}

func TestDemoQueryVerify(t *testing.T) {
	t.Parallel()
	dir, out := copyOfDemo(t)
	for _, want := range []string{"signicat_accounts", "gsapi_organizations", "soft-deleted", "Next steps", "extract query --db"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	db := filepath.Join(dir, "warehouse.duckdb")
	code, out, _ := cli(t, "query", "--db", db, "--format", "csv", "SELECT id, name FROM signicat_accounts WHERE id = 'a-ppge-ovC1eMDgt0hkgqZUSaPh'")
	if code != 0 || out != "id,name\na-ppge-ovC1eMDgt0hkgqZUSaPh,My Account\n" {
		t.Fatalf("query csv: %d %q", code, out)
	}
	code, out, _ = cli(t, "query", "--db", db, "--format", "json", "SELECT 12.50::DECIMAL(18,2) AS amount, 'Hårfagre' AS who")
	if code != 0 || !strings.Contains(out, `"amount":12.50`) || !strings.Contains(out, "Hårfagre") {
		t.Fatalf("query json: %d %s", code, out)
	}
	code, _, stderr := cli(t, "query", "--db", db, "SELECT nope FROM signicat_accounts")
	if code != 1 || !strings.Contains(stderr, "nope") || strings.Contains(stderr, "goroutine") {
		t.Fatalf("bad SQL: %d %s", code, stderr)
	}
	code, out, _ = cli(t, "docs", "--db", db)
	for _, want := range []string{"### signicat_invoices", "| total_invoice_amount | DECIMAL(18,4) |", "### fct_invoice (table)", "Reads: stg_gsapi_invoices", "| objectfields | MAP(VARCHAR, VARCHAR) |",
		"| gsapi_datasync_invoices | net_amount | `net_amount` (default) | `sources.gsapi.fields.datasync_invoices.net_amount` |"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("docs (exit %d) lacks %q", code, want)
		}
	}
	lakeDir := filepath.Join(dir, "lake")
	if code, out, _ := cli(t, "verify", "--lake", lakeDir); code != 0 || !strings.Contains(out, "0 problems") {
		t.Fatalf("verify: %d %s", code, out)
	}
	checkInvoiceExports(t, lakeDir, db)
	checkEvidence(t, lakeDir, db)
	// Alter one byte of one snapshot: verify names that file and exits 1.
	files, _ := filepath.Glob(filepath.Join(lakeDir, "signicat_accounts", "run_date=*", "*.parquet"))
	if len(files) == 0 {
		t.Fatal("no snapshot written")
	}
	b, _ := os.ReadFile(files[0])
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(files[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, "verify", "--lake", lakeDir)
	if code != 1 || !strings.Contains(out, "altered") || !strings.Contains(out, filepath.Base(files[0])) {
		t.Fatalf("verify after tampering: %d %s", code, out)
	}
	// Both verifications were kept; the newest is the one that found the altered file.
	if kept, _ := filepath.Glob(filepath.Join(lakeDir, lake.VerifyDir, "*.json")); len(kept) != 2 {
		t.Errorf("%d verifications kept, want 2", len(kept))
	}
	v, err := lake.LastVerification(t.Context(), lake.Dir(lakeDir))
	if err != nil || v == nil || len(v.Problems) != 1 || !strings.HasPrefix(v.Problems[0].Issue, "altered") || v.Head != 1 || v.Checked == 0 {
		t.Fatalf("last verification %+v, %v", v, err)
	}
	if code, _, _ = cli(t, "verify", "--no-record", "--lake", lakeDir); code != 1 {
		t.Fatalf("verify --no-record: exit %d", code)
	}
	if kept, _ := filepath.Glob(filepath.Join(lakeDir, lake.VerifyDir, "*.json")); len(kept) != 2 {
		t.Errorf("--no-record kept a verification (%d)", len(kept))
	}
}

// The same commands with the lake in a bucket of a loopback S3 server: the demo's run writes there,
// verify and invoices read from there, and an object altered in the bucket is named.
func TestDemoVerifyInvoicesOnS3(t *testing.T) {
	t.Parallel()
	srv := s3test.StartT(t, "lake")
	dir := t.TempDir()
	url := srv.URL("lake", "nightly/ledgerlake")
	y := strings.Replace(string(pipelines.Demo), "output_dir: data/demo/lake", "output_dir: "+url, 1)
	y = strings.Replace(y, "warehouse: data/demo/warehouse.duckdb", "warehouse: "+filepath.Join(dir, "warehouse.duckdb"), 1)
	cfgPath := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(cfgPath, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := cli(t, "demo", "--scale", "0.05", "--config", cfgPath); code != 0 {
		t.Fatalf("demo on s3: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "lake")); err == nil {
		t.Error("a local lake was written beside the warehouse")
	}
	code, out, _ := cli(t, "verify", "--lake", url)
	if code != 0 || !strings.Contains(out, "0 problems") {
		t.Fatalf("verify: %d %s", code, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	checked := strings.Fields(lines[len(lines)-1])[0] // the summary: "N files checked, 0 problems"
	checkInvoiceExports(t, url, filepath.Join(dir, "warehouse.duckdb"))
	// The docs site reads the manifests and the verification from the bucket, and shows its URL
	// without the query (where credentials could be).
	code, out, stderr := cli(t, "docs", "--html", filepath.Join(dir, "site"), "--db", filepath.Join(dir, "warehouse.duckdb"), "--lake", url)
	page, _ := os.ReadFile(filepath.Join(dir, "site", "index.html"))
	if code != 0 || !strings.Contains(string(page), `id="manifest/`) || !strings.Contains(string(page), "verified clean") ||
		!strings.Contains(string(page), "lake s3://lake/nightly/ledgerlake ·") || strings.Contains(string(page), "endpoint=") {
		t.Errorf("docs --html on s3: exit %d\n%s%s", code, out, stderr)
	}
	st, err := lake.OpenStore(context.Background(), url, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	es, _ := st.List(t.Context(), "signicat_accounts")
	if len(es) == 0 {
		t.Fatal("no snapshot in the bucket")
	}
	b, _ := st.ReadFile(t.Context(), es[0].Key)
	b[len(b)/2] ^= 0xff
	if err := st.WriteFile(t.Context(), es[0].Key, b); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli(t, "verify", "--lake", url)
	if code != 1 || !strings.Contains(out, "altered") || !strings.Contains(out, es[0].Key) || !strings.Contains(out, checked+" files checked, 1 problems") {
		t.Fatalf("verify after tampering: %d %s", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	_ = os.WriteFile(cfg, []byte("output_dir: x\nsources:\n  gsapi:\n    base_url: https://h\n    jwt: j\n    datatables:\n      - table: ctransactiondata\n        key: raw_id\n"), 0o644)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"run"}, "--config is required"},
		{[]string{"run", "--config", cfg}, "sortorder is required"},
		{[]string{"run", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, "no such file"},
		{[]string{"query", "--format", "xml", "SELECT 1"}, "--format must be"},
		{[]string{"query", "SELECT 1", "SELECT 2"}, "give the SQL as one argument"},
		{[]string{"sandbox", "--faults", "teapot=1"}, "unknown kind"},
		{[]string{"sandbox", "--quota", "150"}, "is not requests/period, e.g. 150/1m"},
		{[]string{"sandbox", "--quota", "150/1ms"}, "a second or more"},
		{[]string{"invoices", "--lake", "x", "--format", "parquet"}, "needs --out"},
		{[]string{"invoices", "--lake", "x", "--as-of", "yesterday"}, "--as-of"},
		{[]string{"invoices", "--lake", "x", "--from", "2024-13-01"}, "--from"},
		{[]string{"invoices", "--lake", "x", "--source", "sap"}, "--source"},
		{[]string{"invoices", "--lake", "x", "--from", "2024-12-31", "--to", "2024-01-01"}, "--to 2024-01-01 is before --from 2024-12-31"},
		{[]string{"invoices", "--lake", "x", "--format", "xml"}, "--format must be table, csv, json, jsonl, markdown, parquet"},
		{[]string{"docs", "--html", "site"}, "give --config FILE, or --db FILE"},
		{[]string{"serve"}, "give --config FILE, or --db FILE"},
		{[]string{"serve", "--config", cfg}, "sortorder is required"},
		{[]string{"docs", "--html", "site", "--db", cfg, "--runs", "0"}, "--runs must be at least 1"},
	}
	for _, c := range cases {
		code, out, stderr := cli(t, c.args...)
		if code != 2 || !strings.Contains(out+stderr, c.want) {
			t.Errorf("%v: exit %d, output %q %q; want exit 2 mentioning %q", c.args, code, out, stderr, c.want)
		}
	}
	if code, out, _ := cli(t, "help"); code != 0 || !strings.Contains(out, "extract run --config FILE") {
		t.Errorf("help: %d %s", code, out)
	}
}

// checkInvoiceExports opens the auditors' CSV like a spreadsheet would and compares it with the
// warehouse: every Signicat invoice once, exact decimals, unicode intact, provenance on every row; the
// Parquet export has the same rows, and every invoice's PDF is exported.
func checkInvoiceExports(t *testing.T, lakeDir, db string) {
	t.Helper()
	csvPath := filepath.Join(t.TempDir(), "invoices.csv")
	pdfDir := filepath.Join(t.TempDir(), "pdfs")
	code, _, stderr := cli(t, "invoices", "--lake", lakeDir, "--source", "signicat", "--format", "csv", "--out", csvPath, "--pdf-dir", pdfDir)
	if code != 0 {
		t.Fatalf("invoices csv: %d %s", code, stderr)
	}
	raw, err := os.ReadFile(csvPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte("\ufeff")) {
		t.Error("CSV lacks the UTF-8 byte-order mark spreadsheets need")
	}
	recs, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(raw, []byte("\ufeff")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, c := range recs[0] {
		col[c] = i
	}
	for _, c := range []string{"invoice_number", "total_invoice_amount", "organization_name", "endpoint", "run_id", "extracted_at", "snapshot_file", "snapshot_sha256", "evidence_sha256"} {
		if _, ok := col[c]; !ok {
			t.Fatalf("CSV has no column %s: %v", c, recs[0])
		}
	}
	_, want, _ := cli(t, "query", "--db", db, "--format", "csv", "SELECT count(*) AS n, sum(total_invoice_amount) AS total, count(*) FILTER (WHERE regexp_matches(organization_name, '[^\\x00-\\x7f]')) AS unicode FROM signicat_invoices")
	sum := new(big.Rat)
	unicode := 0
	decimal := regexp.MustCompile(`^-?[0-9]+\.[0-9]{4}$`)
	for _, r := range recs[1:] {
		amount := r[col["total_invoice_amount"]]
		if !decimal.MatchString(amount) {
			t.Fatalf("total_invoice_amount %q is not a plain decimal with its 4 places", amount)
		}
		d, ok := new(big.Rat).SetString(amount)
		if !ok {
			t.Fatalf("%q does not parse as a decimal", amount)
		}
		sum.Add(sum, d)
		if strings.ContainsFunc(r[col["organization_name"]], func(c rune) bool { return c > 127 }) {
			unicode++
		}
		if len(r[col["snapshot_sha256"]]) != 64 || len(r[col["evidence_sha256"]]) != 64 || r[col["run_id"]] == "" {
			t.Fatalf("row without provenance: %v", r)
		}
	}
	got := fmt.Sprintf("n,total,unicode\n%d,%s,%d\n", len(recs)-1, sum.FloatString(4), unicode)
	if got != want || unicode == 0 {
		t.Errorf("CSV vs warehouse:\n%s\nwant\n%s", got, want)
	}
	// JSON keeps the columns' order: the provenance columns come last, as they do in CSV.
	_, js, _ := cli(t, "invoices", "--lake", lakeDir, "--source", "signicat", "--format", "json")
	dec := json.NewDecoder(strings.NewReader(js))
	var names []string
	if _, err := dec.Token(); err != nil { // [
		t.Fatal(err)
	}
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	for dec.More() {
		k, err := dec.Token()
		var v json.RawMessage
		if err != nil || dec.Decode(&v) != nil {
			t.Fatalf("invoices json: %v", err)
		}
		names = append(names, k.(string))
	}
	if got := strings.Join(names[len(names)-6:], ","); got != "endpoint,run_id,extracted_at,snapshot_file,snapshot_sha256,evidence_sha256" || strings.Join(names, ",") != strings.Join(recs[0], ",") {
		t.Errorf("JSON's keys %v, CSV's columns %v", names, recs[0])
	}
	if got := strings.Join(recs[0][len(recs[0])-6:], ","); got != "endpoint,run_id,extracted_at,snapshot_file,snapshot_sha256,evidence_sha256" {
		t.Errorf("CSV's last columns %s", got)
	}
	pq := filepath.Join(t.TempDir(), "invoices.parquet")
	if code, _, stderr := cli(t, "invoices", "--lake", lakeDir, "--source", "signicat", "--format", "parquet", "--out", pq); code != 0 {
		t.Fatalf("invoices parquet: %d %s", code, stderr)
	}
	_, n, _ := cli(t, "query", "--db", db, "--format", "csv", "SELECT count(*) FROM read_parquet('"+pq+"')")
	if n != fmt.Sprintf("count_star()\n%d\n", len(recs)-1) {
		t.Errorf("parquet export: %q, CSV has %d rows", n, len(recs)-1)
	}
	pdfs, _ := filepath.Glob(filepath.Join(pdfDir, "*.pdf"))
	if len(pdfs) != len(recs)-1 {
		t.Errorf("%d PDFs exported for %d invoices", len(pdfs), len(recs)-1)
	}
}

// checkEvidence prints the body a row names by its _evidence_sha256, exactly as the API sent it, and
// nothing at all once the stored body is altered.
func checkEvidence(t *testing.T, lakeDir, db string) {
	t.Helper()
	code, sha, _ := cli(t, "query", "--db", db, "--format", "csv", "SELECT _evidence_sha256 FROM signicat_invoices LIMIT 1")
	sha = strings.TrimSpace(strings.TrimPrefix(sha, "_evidence_sha256\n"))
	if code != 0 || len(sha) != 64 {
		t.Fatalf("a row's evidence: %d %q", code, sha)
	}
	code, body, stderr := cli(t, "evidence", "--lake", lakeDir, strings.ToUpper(sha[:10]))
	if sum := sha256.Sum256([]byte(body)); code != 0 || hex.EncodeToString(sum[:]) != sha || !json.Valid([]byte(body)) {
		t.Fatalf("evidence %s: exit %d, %d bytes %.60q, %s", sha[:10], code, len(body), body, stderr)
	}
	for _, bad := range [][]string{{sha[:7]}, {"00000000"}, {}} {
		if code, out, stderr := cli(t, append([]string{"evidence", "--lake", lakeDir}, bad...)...); code == 0 || out != "" || stderr == "" {
			t.Errorf("evidence %v: exit %d, printed %q, said %q", bad, code, out, stderr)
		}
	}
	ms, err := lake.ReadManifests(t.Context(), lake.Dir(lakeDir))
	if err != nil {
		t.Fatal(err)
	}
	var e lake.Evidence
	for _, m := range ms {
		for _, x := range m.Evidence {
			if x.SHA256 == sha {
				e = x
			}
		}
	}
	p := filepath.Join(lakeDir, filepath.FromSlash(e.Path))
	orig, err := os.ReadFile(p)
	if err != nil || e.Stored == 0 {
		t.Fatalf("the pack of %s: %v, %+v", sha[:10], err, e)
	}
	altered := slices.Clone(orig)
	altered[e.Offset+e.Stored-5] ^= 0x01
	os.WriteFile(p, altered, 0o644)
	defer os.WriteFile(p, orig, 0o644)
	if code, out, stderr := cli(t, "evidence", "--lake", lakeDir, sha); code != 1 || out != "" || !strings.Contains(stderr, "altered") {
		t.Errorf("an altered body: exit %d, printed %d bytes, said %q", code, len(out), stderr)
	}
}
