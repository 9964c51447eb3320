package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// demoQueries are what a newcomer sees after the run: one question per source.
var demoQueries = []struct{ title, sql string }{
	{"Signicat accounts, active and soft-deleted", `SELECT CASE WHEN is_soft_deleted THEN 'soft-deleted' ELSE 'active' END AS state,
       count(*) AS accounts, count(DISTINCT organization__id) AS organizations, min(created_date) AS first_created
FROM signicat_accounts GROUP BY ALL ORDER BY state`},
	{"Good Sign organisations by country", `SELECT country, count(*) AS organizations, max(created_date) AS newest
FROM gsapi_organizations GROUP BY ALL ORDER BY organizations DESC, country`},
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("demo", "demo [--scale 1] [--tenant a] [--dir data/demo] [--config pipelines/demo.yaml]",
		"Start the built-in sandbox, run the demo pipeline against it end to end (API → Parquet → DuckDB),\n"+
			"print a summary and sample queries. Nothing leaves this machine.\n"+
			"--tenant b serves GSAPI's tenant-defined exports under another tenant's field names and runs\n"+
			"pipelines/demo-tenant-b.yaml, which maps them (sources.gsapi.fields) for the SQL models.", stderr)
	scale := fs.Float64("scale", 1, "sandbox data size (1 = thousands of rows)")
	dir := fs.String("dir", "", "put the lake and warehouse here instead of the config's paths")
	cfgPath := fs.String("config", "", "pipeline file (default: the built-in pipelines/demo.yaml, or demo-tenant-b.yaml with --tenant b)")
	tenant := fs.String("tenant", sandbox.TenantA, "the sandbox's GSAPI tenant shape: a or b")
	logs := addLogFlags(fs)
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	out, err := newRunOutput(logs, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitUsage
	}
	defer out.Stop()
	raw := pipelines.Demo
	switch *tenant {
	case sandbox.TenantA:
	case sandbox.TenantB:
		raw = pipelines.DemoTenantB
	default:
		fmt.Fprintln(stderr, "extract demo: --tenant must be a or b")
		return exitUsage
	}
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: *scale, Tenant: *tenant})
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitFailed
	}
	defer srv.Close()
	if *cfgPath != "" {
		if raw, err = os.ReadFile(*cfgPath); err != nil {
			fmt.Fprintln(stderr, "extract demo:", err)
			return exitUsage
		}
	}
	// The sandbox's public test credentials stand in for the environment variables a real run reads.
	env := map[string]string{
		"LEDGERLAKE_SANDBOX_URL": srv.URL,
		"SIGNICAT_CLIENT_ID":     sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
		"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword,
	}
	cfg, err := config.Parse(raw, func(k string) (string, bool) {
		if v, ok := env[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	if *dir != "" {
		cfg.OutputDir, cfg.Warehouse = filepath.Join(*dir, "lake"), filepath.Join(*dir, "warehouse.duckdb")
	}
	fmt.Fprintf(stdout, "ledgerlake demo: sandbox at %s (scale %g, tenant %s), lake %s, warehouse %s\n\n", srv.URL, *scale, *tenant, cfg.OutputDir, cfg.Warehouse)
	res, err := pipeline.Run(ctx, pipeline.Options{Config: cfg, Logger: out.log, Observer: out.observer()})
	out.Stop()
	if res != nil {
		printReport(stdout, res)
	}
	if err != nil {
		return exitCodeFor(err, stderr)
	}
	wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
	if err != nil {
		fmt.Fprintln(stderr, "extract demo:", err)
		return exitFailed
	}
	for _, q := range demoQueries {
		fmt.Fprintf(stdout, "\n%s:\n  %s\n\n", q.title, q.sql)
		if err := writeResults(ctx, wh.DB, q.sql, "table", 100, stdout, stderr); err != nil {
			fmt.Fprintln(stderr, "extract demo: sample query:", err)
		}
	}
	wh.Close()
	fmt.Fprintf(stdout, `
Next steps:
  %[1]s query --db %[2]s "SELECT * FROM signicat_accounts WHERE is_soft_deleted LIMIT 5"
  %[1]s query --db %[2]s --format csv "SELECT * FROM _ledgerlake_runs"
  %[1]s status --lake %[3]s --db %[2]s   # each stream: last run, rows, watermark, next window
  %[1]s invoices --lake %[3]s --source signicat --from 2024-01-01 --to 2024-12-31 --pdf-dir %[4]s
  %[1]s verify --lake %[3]s
  %[1]s build --db %[2]s --select fct_invoice+   # rebuild models without fetching
  %[1]s sandbox --addr 127.0.0.1:8080 --latency 20ms --faults all=0.05   # the simulated APIs, by hand
  Real APIs: set the variables listed in pipelines/nightly.yaml, then  %[1]s check --config pipelines/nightly.yaml
  and  %[1]s run --config pipelines/nightly.yaml   (every key: %[1]s config, or docs/config.md)
`, progName(), cfg.Warehouse, cfg.OutputDir, filepath.Join(filepath.Dir(cfg.Warehouse), "pdfs"))
	// Last, the page to look at: tables, lineage, run history, data tests and manifests.
	if page, err := publishSite(ctx, cfg, filepath.Join(filepath.Dir(cfg.Warehouse), "site")); err != nil {
		fmt.Fprintln(stderr, "extract demo: writing the docs site:", err)
	} else {
		fmt.Fprintf(stdout, `
The warehouse as a page to look at (tables and columns, lineage, run history, data tests, manifests):
  open %s
  or serve it live:  %s serve --db %s --lake %s   (then http://127.0.0.1:8080/)
`, fileURL(page), progName(), cfg.Warehouse, cfg.OutputDir)
	}
	if !res.OK() {
		return exitFailed
	}
	return exitOK
}

// progName is the command as the user ran it (bin/extract, ./extract), for the commands the demo
// suggests; "extract" when it was run from elsewhere (go run's temporary build, the PATH).
func progName() string {
	arg := os.Args[0]
	if !strings.ContainsRune(arg, filepath.Separator) || filepath.IsAbs(arg) || strings.HasPrefix(arg, os.TempDir()) {
		return "extract"
	}
	return arg
}
