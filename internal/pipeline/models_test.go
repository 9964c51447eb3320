package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

func TestModelsBuildAndDataTestsCatchPlantedViolations(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.02}, nil)
	only(cfg, []string{"organizations", "invoices", "invoice_lines"}, []string{"organizations", "datasync_invoices", "datasync_invoice_lines", "invoice_journal_summary"})
	res := run(t, cfg)
	if !res.OK() || res.Models == nil {
		t.Fatalf("run not ok: %+v %+v", res.Failed, res.Models)
	}
	if len(res.Models.Built) != 10 || len(res.Models.Skipped) != 0 {
		t.Fatalf("built %v, skipped %v", res.Models.Built, res.Models.Skipped)
	}
	var tables []lake.TableInfo
	for _, s := range res.Manifest.Streams {
		tables = append(tables, s.Tables...)
	}
	wh, err := duckdb.Open(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	db := wh.DB
	if n := scalar[int](t, db, "SELECT count(*) FROM fct_invoice WHERE source = 'signicat'") + scalar[int](t, db, "SELECT count(*) FROM fct_invoice WHERE source = 'gsapi'"); n != scalar[int](t, db, "SELECT (SELECT count(*) FROM signicat_invoices) + (SELECT count(*) FROM gsapi_datasync_invoices)") {
		t.Errorf("fct_invoice has %d rows", n)
	}
	if got, want := scalar[string](t, db, "SELECT sum(net_amount)::VARCHAR FROM fct_invoice_line WHERE source = 'gsapi'"), scalar[string](t, db, "SELECT sum(price)::DECIMAL(38,4)::VARCHAR FROM gsapi_datasync_invoice_lines"); got != want {
		t.Errorf("fct_invoice_line gsapi net %s, want %s", got, want)
	}
	// Plant one violation per test, then run the models and tests again. A current state that is a view
	// shows its history's rows: plant there.
	rows := func(table string) string {
		if scalar[string](t, db, "SELECT table_type FROM information_schema.tables WHERE table_name = '"+table+"'") == "VIEW" {
			return table + "_history"
		}
		return table
	}
	for _, plant := range []string{
		"INSERT INTO " + rows("signicat_invoice_lines") + " (invoice_number, line_number, line_total_charge_amount, line_total_discount_amount, _run_id) VALUES ('NO-SUCH-INVOICE', 1, 5, 0, (SELECT max(_run_id) FROM signicat_invoice_lines))",
		"UPDATE " + rows("signicat_invoices") + " SET total_charge_amount = total_charge_amount + 0.02 WHERE invoice_number = (SELECT min(invoice_number) FROM signicat_invoices WHERE invoice_number <> 'string')",
		"DELETE FROM " + rows("gsapi_invoice_journal_summary") + " WHERE iheader_id = (SELECT min(iheader_id) FROM gsapi_invoice_journal_summary)",
		"INSERT INTO " + rows("gsapi_organizations") + " SELECT * FROM gsapi_organizations LIMIT 1",
	} {
		if _, err := db.Exec(plant); err != nil {
			t.Fatalf("%s: %v", plant, err)
		}
	}
	rep, err := models.Run(context.Background(), db, "planted", tables, cfg.Fields())
	if err != nil {
		t.Fatal(err)
	}
	failed := map[string]models.TestResult{}
	for _, r := range rep.Tests {
		if r.Failed() {
			failed[r.Name] = r
		}
	}
	for _, name := range []string{"every_line_has_its_invoice", "invoice_totals_match_lines", "gsapi_datasync_matches_journal", "key_unique_not_null_gsapi_organizations"} {
		r, ok := failed[name]
		if !ok || r.Failures != 1 || len(r.Sample) != 1 {
			t.Errorf("%s: %+v, want exactly the planted row", name, r)
		}
	}
	if len(failed) != 4 {
		t.Errorf("%d tests failed, want the 4 planted: %v", len(failed), failed)
	}
	if !strings.Contains(failed["every_line_has_its_invoice"].Sample[0], "NO-SUCH-INVOICE") {
		t.Errorf("sample %v does not name the orphan line", failed["every_line_has_its_invoice"].Sample)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM _ledgerlake_data_tests WHERE run_id = 'planted' AND failures > 0"); n != 4 {
		t.Errorf("%d failing results recorded", n)
	}
}

func TestModelsSkipWhatASourceLacks(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.02}, nil)
	only(cfg, []string{"organizations"}, nil)
	res := run(t, cfg)
	if !res.OK() {
		t.Fatalf("%+v", res.Models)
	}
	if why := res.Models.Skipped["fct_invoice"]; !strings.Contains(why, "which was skipped") && !strings.Contains(why, "not loaded") {
		t.Errorf("fct_invoice skipped because %q", why)
	}
	if len(res.Models.Skipped) == 0 || len(res.Models.Built) != 0 {
		t.Errorf("built %v skipped %v", res.Models.Built, res.Models.Skipped)
	}
}

func TestFailedLoadLeavesPreviousStateIntact(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.02}, nil)
	only(cfg, []string{"organizations"}, []string{"organizations"})
	run(t, cfg)
	second := run(t, cfg)
	count := func() (int, int) {
		wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
		if err != nil {
			t.Fatal(err)
		}
		defer wh.Close()
		return scalar[int](t, wh.DB, "SELECT count(*) FROM signicat_organizations_history"), scalar[int](t, wh.DB, "SELECT count(*) FROM _ledgerlake_runs")
	}
	h0, r0 := count()
	// A third manifest whose gsapi file was damaged after it was written: its load must fail whole.
	m := *second.Manifest
	m.RunID = lake.NewRunID(second.Manifest.FinishedAt.Add(1e9))
	var damaged string
	for _, f := range m.Files {
		if strings.HasPrefix(f.Path, "gsapi_") {
			damaged = filepath.Join(cfg.OutputDir, f.Path)
		}
	}
	if err := os.WriteFile(damaged, []byte("not parquet"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(context.Background(), cfg, lake.Dir(cfg.OutputDir), &m, nil); err == nil {
		t.Fatal("loading a damaged file succeeded")
	}
	if h, r := count(); h != h0 || r != r0 {
		t.Errorf("after a failed load: history %d→%d rows, runs %d→%d", h0, h, r0, r)
	}
}
