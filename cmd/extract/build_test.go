package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// ls lists the models and tests in build order with what each reads, narrowed by dbt's selectors.
func TestLsInBuildOrder(t *testing.T) {
	t.Parallel()
	for name, args := range map[string][]string{"all": nil, "upstream": {"--select", "+fct_invoice"}, "downstream": {"--select", "stg_gsapi_invoices+", "--exclude", "revenue_by_month"}} {
		code, out, stderr := cli(t, append([]string{"ls"}, args...)...)
		if code != 0 {
			t.Fatalf("ls %v: %d %s", args, code, stderr)
		}
		golden(t, "ls/"+name+".txt", out)
	}
	if code, _, stderr := cli(t, "ls", "--select", "fct_invoce"); code != exitUsage || !strings.Contains(stderr, `did you mean "fct_invoice"?`) {
		t.Errorf("a misspelt model: %d %s", code, stderr)
	}
}

// A tenant's field mapping fixed in the config takes effect with build, without fetching: the
// sandbox is gone by then. The model that failed is built, its dependents too, the tests pass.
func TestBuildAppliesAMappingWithoutFetching(t *testing.T) {
	// Not parallel: t.Setenv (the run reads the sandbox's credentials from the environment).
	dir := t.TempDir()
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: 0.05, Tenant: sandbox.TenantB})
	if err != nil {
		t.Fatal(err)
	}
	fixed := strings.Replace(string(pipelines.DemoTenantB), "output_dir: data/demo-b/lake", "output_dir: "+filepath.Join(dir, "lake"), 1)
	fixed = strings.Replace(fixed, "warehouse: data/demo-b/warehouse.duckdb", "warehouse: "+filepath.Join(dir, "warehouse.duckdb"), 1)
	fixed = strings.Replace(fixed, "    since: 2019-01-01\n", "    since: 2019-01-01\n    streams: [invoices, invoice_lines]\n", 1)
	fixed = strings.Replace(fixed, "    since: 2021-01-01\n", "    since: 2021-01-01\n    streams: [datasync_invoices, datasync_invoice_lines]\n", 1)
	unmapped := regexp.MustCompile(`(?s)    fields:.*?\n    keys:`).ReplaceAllString(fixed, "    keys:")
	cfg := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(cfg, []byte(unmapped), 0o644); err != nil {
		t.Fatal(err)
	}
	setEnv(t, []string{"LEDGERLAKE_SANDBOX_URL=" + srv.URL, "SIGNICAT_CLIENT_ID=" + sandbox.ClientID, "SIGNICAT_CLIENT_SECRET=" + sandbox.ClientSecret,
		"GSAPI_USERNAME=" + sandbox.GSAPIUser, "GSAPI_PASSWORD=" + sandbox.GSAPIPassword})
	code, out, stderr := cli(t, "run", "--config", cfg)
	if code != exitFailed || !strings.Contains(out, "model stg_gsapi_invoices FAILED") {
		t.Fatalf("run without the mapping: exit %d\n%s%s", code, out, stderr)
	}
	srv.Close()
	if err := os.WriteFile(cfg, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli(t, "build", "--config", cfg, "--select", "stg_gsapi_invoices+ stg_gsapi_invoice_lines+")
	if code != 0 || !strings.Contains(out, "built: stg_gsapi_invoice_lines, stg_gsapi_invoices, fct_invoice_line, fct_invoice, reconciliation_invoice_lines, revenue_by_month") ||
		!strings.Contains(out, "0 failed") {
		t.Fatalf("build with the mapping: exit %d\n%s%s", code, out, stderr)
	}
	code, out, _ = cli(t, "query", "--config", cfg, "--format", "csv", "SELECT count(*) > 0 AS gsapi FROM fct_invoice WHERE source = 'gsapi'")
	if code != 0 || out != "gsapi\ntrue\n" {
		t.Errorf("fct_invoice after the build: %q", out)
	}
	// test runs the tests alone: nothing built; key tests included.
	code, out, _ = cli(t, "test", "--config", cfg)
	if code != 0 || !strings.Contains(out, "models: 0 built") || !regexp.MustCompile(`data tests: [4-9] passed, 0 failed`).MatchString(out) {
		t.Errorf("test: exit %d\n%s", code, out)
	}
	if code, _, stderr := cli(t, "build", "--config", cfg, "--select", "nope"); code != exitUsage || !strings.Contains(stderr, `no model or data test "nope"`) {
		t.Errorf("build --select nope: %d %s", code, stderr)
	}
}

// The usage every newcomer reads first is stable: compared with a golden file.
func TestUsageIsStable(t *testing.T) {
	t.Parallel()
	code, out, _ := cli(t, "help")
	if code != 0 {
		t.Fatalf("help: %d", code)
	}
	golden(t, "usage.txt", out)
	for name := range commands {
		if !strings.Contains(out, "extract "+name+" ") && !strings.Contains(out, "extract "+name+"\n") {
			t.Errorf("the usage does not show %s", name)
		}
	}
}
