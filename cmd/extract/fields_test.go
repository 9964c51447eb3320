package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// A new user of a tenant shaped nothing like the defaults (the sandbox's tenant c): --probe proposes
// the fields from recent months fetched into a temporary directory (nothing is left behind: no lake,
// no warehouse, no watermark), --write merges them into the pipeline file keeping its comments, and
// the next run builds every model and passes every data test.
func TestFieldsSuggestProbeWriteRun(t *testing.T) {
	// Not parallel: t.Setenv (the credentials, and TMPDIR to see that the probe leaves nothing there).
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.3, Tenant: sandbox.TenantC})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for k, v := range map[string]string{"LEDGERLAKE_SANDBOX_URL": srv.URL, "SIGNICAT_CLIENT_ID": sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
		"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword} {
		t.Setenv(k, v)
	}
	dir, tmp := t.TempDir(), t.TempDir()
	t.Setenv("TMPDIR", tmp)
	file := filepath.Join(dir, "pipeline.yaml")
	pipeline := strings.NewReplacer("data/demo/lake", filepath.Join(dir, "lake"), "data/demo/warehouse.duckdb", filepath.Join(dir, "wh.duckdb")).Replace(string(pipelines.Demo))
	if err := os.WriteFile(file, []byte(pipeline), 0o640); err != nil {
		t.Fatal(err)
	}

	code, out, stderr := cli(t, "fields", "--suggest", "--probe", "--config", file)
	if code != 0 {
		t.Fatalf("fields --suggest --probe: exit %d\n%s\n%s", code, out, stderr)
	}
	var proposal struct {
		Fields map[string]map[string]any `yaml:"fields"`
	}
	if err := yaml.Unmarshal([]byte(out), &proposal); err != nil {
		t.Fatalf("the proposal is not YAML: %v\n%s", err, out)
	}
	if got := proposal.Fields["datasync_invoices"]["net_amount"]; got.(map[string]any)["sql"] != "summat__verollinen - summat__alv" {
		t.Errorf("net_amount proposed as %v:\n%s", got, out)
	}
	if !strings.Contains(out, "# UNCERTAIN status ← tila") || !strings.Contains(stderr, "probing") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, stderr)
	}
	for _, p := range []string{filepath.Join(dir, "lake"), filepath.Join(dir, "wh.duckdb")} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("the probe left %s (%v)", p, err)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) > 0 {
		t.Errorf("the probe left %s in the temporary directory", left[0].Name())
	}

	code, out, stderr = cli(t, "fields", "--suggest", "--probe", "--write", "--config", file)
	if code != 0 || !strings.Contains(out, "UNCERTAIN datasync_invoices.status ← tila") {
		t.Fatalf("--write: exit %d\n%s\n%s", code, out, stderr)
	}
	written, _ := os.ReadFile(file)
	for _, want := range []string{"# The demo pipeline:", "pdfs: true          # download each invoice's PDF", "    fields:\n      datasync_invoices:\n        invoice_id: tunniste\n",
		"        currency: {from: datasync_invoices.valuutta, via: laskun_tunniste = tunniste}\n", "status: tila # uncertain: none of its values is \"Delivered\""} {
		if !strings.Contains(string(written), want) {
			t.Errorf("the pipeline file lacks %q:\n%s", want, written)
		}
	}
	code, out, stderr = cli(t, "run", "--config", file)
	if code != 0 || !strings.Contains(out, "models: 10 built, 0 failed, 0 skipped") || !strings.Contains(out, "0 failed, 0 skipped") {
		t.Fatalf("run with the written fields: exit %d\n%s\n%s", code, out, stderr)
	}
	code, out, _ = cli(t, "fields", "--config", file)
	if code != 0 || !strings.Contains(out, "sources.gsapi.fields.datasync_invoices.net_amount") || !strings.Contains(out, `{sql: "summat__verollinen - summat__alv"}`) ||
		!regexp.MustCompile(`(?m)^sources\.gsapi\.fields\.invoice_journal_summary\.net_amount +veroton$`).MatchString(out) {
		t.Errorf("fields lists (exit %d):\n%s", code, out)
	}
	// extract docs shows where each field is read from: this pipeline's mapping, or the last build's.
	for _, args := range [][]string{{"docs", "--config", file}, {"docs", "--db", filepath.Join(dir, "wh.duckdb")}} {
		code, out, _ = cli(t, args...)
		if code != 0 || !strings.Contains(out, "| gsapi_datasync_invoices | net_amount | `{sql: \"summat__verollinen - summat__alv\"}` | `sources.gsapi.fields.datasync_invoices.net_amount` |") ||
			!strings.Contains(out, "| gsapi_datasync_invoice_lines | currency | `{from: datasync_invoices.valuutta, via: laskun_tunniste = tunniste}` |") {
			t.Errorf("%v (exit %d) does not show the fields' sources", args, code)
		}
	}
	// From the run's warehouse now: the same proposal, and --write changes nothing.
	code, out, stderr = cli(t, "fields", "--suggest", "--write", "--config", file)
	if again, _ := os.ReadFile(file); code != 0 || string(again) != string(written) || strings.Contains(out, "changed") {
		t.Errorf("suggesting again from the warehouse changed the file (exit %d):\n%s\n%s", code, out, stderr)
	}
}

func TestFieldsUsage(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"fields"}, 2, "--config is required"},
		{[]string{"fields", "--config", "x.yaml", "--probe"}, 2, "go with --suggest"},
		{[]string{"fields", "--config", "x.yaml", "--suggest", "--probe", "--db", "w"}, 2, "leave out --db"},
		{[]string{"fields", "--config", "no-such.yaml", "--suggest"}, 2, "no-such.yaml"},
	} {
		code, _, stderr := cli(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, %q; want %d and %q", c.args, code, stderr, c.code, c.want)
		}
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "p.yaml")
	os.WriteFile(file, []byte("warehouse: "+filepath.Join(dir, "none.duckdb")+"\nsources:\n  gsapi:\n    base_url: https://h\n    jwt: j\n"), 0o600)
	if code, _, stderr := cli(t, "fields", "--suggest", "--config", file); code != 1 || !strings.Contains(stderr, "run extract run --config FILE once") {
		t.Errorf("without a warehouse: exit %d, %s", code, stderr)
	}
}
