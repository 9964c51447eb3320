package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/spool"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// bodyStream serves raw response bodies, decoded by the pipeline as the sources' pages are.
func bodyStream(name string, bodies ...string) *sources.Stream {
	return &sources.Stream{Source: "test", Name: name,
		Pages: func(ctx context.Context, _ sources.Resume) iter.Seq2[sources.Page, error] {
			return func(yield func(sources.Page, error) bool) {
				for i, b := range bodies {
					if !yield(sources.Page{Body: spool.Bytes([]byte(b)), Where: "GET /list?page=" + string(rune('1'+i))}, nil) {
						return
					}
				}
			}
		}}
}

func tempConfig(t *testing.T) *config.Config {
	dir := t.TempDir()
	return &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
}

// A null answer is an empty page, and the run says so: the stream succeeds with the rows of its other
// pages and a warning naming the request.
func TestNullBodyIsAnEmptyPageWithAWarning(t *testing.T) {
	t.Parallel()
	cfg := tempConfig(t)
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{bodyStream("lists", `[{"a":1},{"a":2}]`, " null\n", `[{"a":3}]`)})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	rep := res.Manifest.Streams[0]
	if rep.Rows != 3 {
		t.Errorf("rows %d, want 3", rep.Rows)
	}
	if w := strings.Join(rep.Warnings, "; "); !strings.Contains(w, "GET /list?page=2: the response is null, read as an empty list") {
		t.Errorf("warnings %q do not name the null page", w)
	}
	if n := scalar[int](t, query(t, cfg), "SELECT sum(a) FROM test_lists"); n != 6 {
		t.Errorf("sum(a) = %d, want 6", n)
	}
}

// The independent check's loss, reproduced: tenant b groups its accounting journal by account and cost
// centre, so one invoice has several rows per account. Every row the server sends lands.
func TestAccountingJournalKeepsEveryRowOfTenantB(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.2, Tenant: sandbox.TenantB}, nil)
	only(cfg, nil, []string{"invoice_journal_accounting"})
	res := run(t, cfg)
	if len(res.Failed) > 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	d := srv.Data()
	var rows, net int64
	for i := 0; i < d.GSInvoices; i++ {
		groups := map[[2]string]bool{}
		for _, l := range d.GSInvoice(i).Lines {
			groups[[2]string{l.Account, l.CostCentre}] = true
			net += l.NetCents
		}
		rows += int64(len(groups))
	}
	db := query(t, cfg)
	if n := scalar[int64](t, db, "SELECT count(*) FROM gsapi_invoice_journal_accounting"); n != rows {
		t.Errorf("accounting journal: %d rows in the warehouse, the server sent %d", n, rows)
	}
	if got := scalar[string](t, db, "SELECT sum(net_amount)::VARCHAR FROM gsapi_invoice_journal_accounting"); got != cents(net) {
		t.Errorf("accounting journal net %s, want %s", got, cents(net))
	}
	if n := scalar[int64](t, db, "SELECT count(cost_centre) FROM gsapi_invoice_journal_accounting"); n != rows {
		t.Errorf("cost_centre holds %d values, want %d", n, rows)
	}
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// A column null in the first 5,000 records and set in later ones is typed from the later ones, lands
// with every value, and the change is reported and persisted, on a first run as on later ones.
func TestColumnNullAtFirstIsTypedWhenValuesCome(t *testing.T) {
	t.Parallel()
	cfg := tempConfig(t)
	var first, later []string
	for i := range 5000 {
		first = append(first, fmt.Sprintf(`{"id":%d,"cost_centre":null,"paid_on":""}`, i))
	}
	for i := 5000; i < 5100; i++ {
		later = append(later, fmt.Sprintf(`{"id":%d,"cost_centre":"CC-%d","paid_on":"2024-03-%02d"}`, i, i%3, 1+i%28))
	}
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{fakeStream("journal", nil, first, later)})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	changes := strings.Join(res.Manifest.Streams[0].SchemaChanges, "; ")
	for _, want := range []string{"test_journal.cost_centre: typed VARCHAR (null in every earlier record)", "test_journal.paid_on: typed DATE (null in every earlier record)"} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes %q lack %q", changes, want)
		}
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(cost_centre) FROM test_journal"); n != 100 {
		t.Errorf("cost_centre holds %d values, want 100", n)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM test_journal WHERE paid_on = DATE '2024-03-01'"); n != 4 {
		t.Errorf("paid_on = 2024-03-01 in %d rows, want 4", n)
	}
	if typ := scalar[string](t, db, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'test_journal' AND column_name = 'paid_on'"); typ != "DATE" {
		t.Errorf("paid_on is %s", typ)
	}
	var persisted struct{ Columns []struct{ Name, Type string } }
	if _, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.SchemaDir, "test_journal", &persisted); err != nil {
		t.Fatal(err)
	}
	for _, c := range persisted.Columns {
		if (c.Name == "cost_centre" && c.Type != "VARCHAR") || (c.Name == "paid_on" && c.Type != "DATE") {
			t.Errorf("_schemas/test_journal.json: %s is %s", c.Name, c.Type)
		}
	}
}

// Tenant b read without its field mapping: the models over its datasync exports cannot bind. Each
// fails alone — its message names the model, the missing columns, the table's columns and the config
// keys to set — its dependents are skipped and named, the other models are built, and the run is not
// OK (exit 1).
func TestModelThatCannotBindFailsAlone(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.02, Tenant: sandbox.TenantB}, nil)
	only(cfg, []string{"organizations", "invoices", "invoice_lines"}, []string{"organizations", "datasync_invoices", "datasync_invoice_lines", "invoice_journal_summary"})
	res := run(t, cfg)
	if len(res.Failed) > 0 || res.Models == nil {
		t.Fatalf("streams failed: %+v", res.Failed)
	}
	if res.OK() {
		t.Fatal("the run is OK although models failed")
	}
	m := res.Models
	why := m.Failed["stg_gsapi_invoices"]
	for _, want := range []string{"sql model stg_gsapi_invoices", `gsapi_datasync_invoices has no column "ext_invoice_id" (the model's invoice_number)`,
		`"net_amount" (the model's net_amount)`, "total_net", "total_gross", "sources.gsapi.fields.datasync_invoices.net_amount"} {
		if !strings.Contains(why, want) {
			t.Errorf("stg_gsapi_invoices failed with %q, which lacks %q", why, want)
		}
	}
	if why := m.Failed["stg_gsapi_invoice_lines"]; !strings.Contains(why, `"price" (the model's net_amount)`) || !strings.Contains(why, "line_net") {
		t.Errorf("stg_gsapi_invoice_lines failed with %q", why)
	}
	if len(m.Failed) != 3 || m.Failed["reconciliation_gsapi_journal"] == "" {
		t.Errorf("failed %v, want the three models over the tenant's exports", m.Failed)
	}
	for _, dep := range []string{"fct_invoice", "fct_invoice_line"} {
		if !strings.Contains(m.Skipped[dep], "which failed") {
			t.Errorf("%s skipped because %q", dep, m.Skipped[dep])
		}
	}
	built := strings.Join(m.Built, ",")
	for _, want := range []string{"dim_organization", "stg_signicat_invoices", "stg_signicat_invoice_lines"} {
		if !strings.Contains(built, want) {
			t.Errorf("built %s, without %s", built, want)
		}
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM stg_signicat_invoices"); n == 0 {
		t.Error("the models that do not depend on the failed ones hold nothing")
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM information_schema.tables WHERE table_name IN ('stg_gsapi_invoices', 'fct_invoice')"); n != 0 {
		t.Errorf("%d of the failed model and its dependent exist", n)
	}
	var rep Report
	b, err := os.ReadFile(lake.ReportPath(cfg.OutputDir, res.Manifest.RunID))
	if err != nil || json.Unmarshal(b, &rep) != nil || rep.Status != "failed" || rep.Models.Failed["stg_gsapi_invoices"] != why {
		t.Errorf("report JSON: status %q, failed %v (%v)", rep.Status, rep.Models, err)
	}
}

// A key the user put in force that the tenant's rows do not honour: every row is kept (history and
// current state), and the run says so by name in the stream's warnings, the report, _ledgerlake_runs
// and _ledgerlake_data_tests, and is not OK.
func TestConfiguredKeyThatIsNotUniqueKeepsEveryRow(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05}, func(y string) string {
		return y + "    keys:\n      invoice_journal_accounting: [iheader_id]\n"
	})
	only(cfg, nil, []string{"invoice_journal_accounting"})
	res := run(t, cfg)
	if res.OK() {
		t.Fatal("the run is OK although the configured key is not unique")
	}
	d := srv.Data()
	f := gsapiFacts(d)
	var shared int // invoices booked to more than one account: their iheader_id is shared
	for i := 0; i < d.GSInvoices; i++ {
		accounts := map[string]bool{}
		for _, l := range d.GSInvoice(i).Lines {
			accounts[l.Account] = true
		}
		if len(accounts) > 1 {
			shared++
		}
	}
	db := query(t, cfg)
	if n := scalar[int64](t, db, "SELECT count(*) FROM gsapi_invoice_journal_accounting"); n != f.accountRows {
		t.Errorf("%d rows in the current state, %d sent", n, f.accountRows)
	}
	want := fmt.Sprintf("key not unique: %s keys, e.g. iheader_id=", thousandsOf(shared))
	warnings := strings.Join(res.Manifest.Streams[0].Warnings, "; ")
	if !strings.Contains(warnings, want) {
		t.Errorf("warnings %q lack %q", warnings, want)
	}
	if msg := scalar[string](t, db, "SELECT message FROM _ledgerlake_data_tests WHERE name = 'key_unique_not_null_gsapi_invoice_journal_accounting'"); !strings.HasPrefix(msg, want) {
		t.Errorf("_ledgerlake_data_tests says %q, want %q…", msg, want)
	}
	if s := scalar[string](t, db, "SELECT streams::VARCHAR FROM _ledgerlake_runs"); !strings.Contains(s, want) {
		t.Errorf("_ledgerlake_runs.streams lacks the warning: %s", s)
	}
	b, _ := os.ReadFile(lake.ReportPath(cfg.OutputDir, res.Manifest.RunID))
	if !strings.Contains(string(b), want) || !strings.Contains(string(b), `"status": "failed"`) {
		t.Errorf("the report lacks the warning or is not failed")
	}
}

func thousandsOf(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// edge reports whether t is a month's first instant (00:00:00.000 on the 1st) or its last one as the
// generator writes it (23:59:59.997 on the last day).
func edge(t time.Time) (first, last bool) {
	first = t.Day() == 1 && t.Hour() == 0 && t.Minute() == 0 && t.Second() == 0 && t.Nanosecond() == 0
	next := t.Add(3 * time.Millisecond)
	last = next.Day() == 1 && next.Hour() == 0 && next.Minute() == 0 && next.Second() == 0 && next.Nanosecond() == 0
	return first, last
}

// Every windowed endpoint, with records placed on purpose at 00:00:00.000 on the 1st and 23:59:59.997
// on the last day of a month: each such record lands exactly once, whether the server compares the
// window end 23:59:59.999 at millisecond precision (tenant a) or reads it as the next midnight as SQL
// Server's datetime does (tenant b); and Signicat's invoices dated on a month's first and last day land
// once although its windows overlap by a day.
func TestWindowBoundariesLandOnce(t *testing.T) {
	t.Parallel()
	for _, tn := range tenants {
		t.Run("tenant "+tn.name, func(t *testing.T) {
			t.Parallel()
			srv, cfg := setup(t, sandbox.Options{Scale: 0.1, Tenant: tn.name}, func(string) string { return string(tn.pipeline) })
			only(cfg, []string{"invoices"}, []string{"datasync_invoices", "datasync_invoice_lines", "datasync_charges",
				"invoice_journal_summary", "invoice_journal_detail", "invoice_journal_accounting", "invoice_journal_full_details"})
			if res := run(t, cfg); len(res.Failed) > 0 {
				t.Fatalf("failed: %+v", res.Failed)
			}
			d := srv.Data()
			var firsts, lasts, lineFirsts, lineLasts []string
			for i := 0; i < d.GSInvoices; i++ {
				first, last := edge(d.GSInvoiceTime(i))
				id, n := fmt.Sprint(d.GSInvoice(i).IHeaderID), fmt.Sprint(len(d.GSInvoice(i).Lines))
				if first {
					firsts, lineFirsts = append(firsts, id), append(lineFirsts, n)
				}
				if last {
					lasts, lineLasts = append(lasts, id), append(lineLasts, n)
				}
			}
			if len(firsts) == 0 || len(lasts) == 0 {
				t.Fatal("no invoice on a month's edge: the test proves nothing")
			}
			db := query(t, cfg)
			for _, c := range []struct {
				name   string
				ids    []string
				counts []string
			}{{"00:00:00.000", firsts, lineFirsts}, {"23:59:59.997", lasts, lineLasts}} {
				in := "iheader_id IN (" + strings.Join(c.ids, ",") + ")"
				var lines int64
				for _, n := range c.counts {
					var k int64
					fmt.Sscan(n, &k)
					lines += k
				}
				for table, want := range map[string]int64{"gsapi_datasync_invoices": int64(len(c.ids)), "gsapi_invoice_journal_summary": int64(len(c.ids)),
					"gsapi_datasync_invoice_lines": lines, "gsapi_invoice_journal_detail": lines, "gsapi_invoice_journal_full_details": lines} {
					if n := scalar[int64](t, db, "SELECT count(*) FROM "+table+"_history WHERE "+in); n != want {
						t.Errorf("%s: %d rows of the invoices at %s, want %d", table, n, c.name, want)
					}
				}
				if n := scalar[int](t, db, "SELECT count(DISTINCT iheader_id) FROM gsapi_invoice_journal_accounting_history WHERE "+in); n != len(c.ids) {
					t.Errorf("accounting journal: %d of the %d invoices at %s", n, len(c.ids), c.name)
				}
			}
			var chargeEdges []string
			for i := 0; i < d.GSCharges; i++ {
				if first, last := edge(d.GSChargeTime(i)); first || last {
					chargeEdges = append(chargeEdges, fmt.Sprint(500001+i))
				}
			}
			if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_charges_history WHERE charge_id IN ("+strings.Join(chargeEdges, ",")+")"); n != len(chargeEdges) {
				t.Errorf("charges: %d rows of the %d at a month's edge", n, len(chargeEdges))
			}
			var numbers []string
			for i := 0; i < d.SignicatInvoices; i++ {
				if first, last := edge(d.SignicatInvoiceTime(i)); first || last {
					numbers = append(numbers, "'"+d.SignicatInvoiceNumber(i)+"'")
				}
			}
			if n := scalar[int](t, db, "SELECT count(*) FROM signicat_invoices_history WHERE invoice_number IN ("+strings.Join(numbers, ",")+")"); n != len(numbers) || n == 0 {
				t.Errorf("signicat invoices: %d rows of the %d dated on a month's first or last day", n, len(numbers))
			}
		})
	}
}

// A later run reads again the months from its watermark minus lookback_days: their new fetch replaces
// their old rows — no key needed, nothing doubled, a record that changed shows its new values — and
// tenant b's fields that change type over time widen across runs with every value kept: the invoice
// number (a number until 2022, text from 2023) and the VAT rate (24, then 25.5).
func TestWindowsFetchedAgainReplaceTheirRows(t *testing.T) {
	t.Parallel()
	streams := []string{"datasync_invoices", "datasync_invoice_lines", "datasync_charges", "invoice_journal_accounting"}
	until := time.Date(2022, 12, 20, 0, 0, 0, 0, time.UTC)
	old, cfg := setup(t, sandbox.Options{Scale: 0.1, Until: until, Tenant: sandbox.TenantB}, func(string) string { return string(pipelines.DemoTenantB) })
	only(cfg, nil, streams)
	// The sources' clock is the sandbox's: the first run happens on the day its history ends.
	at := func(day time.Time) func() time.Time { return func() time.Time { return day } }
	if res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries, Now: at(until)}); err != nil || len(res.Failed) > 0 {
		t.Fatalf("first run: %v %+v", err, res)
	}
	_ = old.Close()
	db := query(t, cfg)
	types := func(db *sql.DB) string {
		return scalar[string](t, db, `SELECT string_agg(table_name || '.' || column_name || ' ' || data_type, ', ' ORDER BY table_name) FROM duckdb_columns()
			WHERE (table_name, column_name) IN (('gsapi_datasync_invoices', 'invoice_no'), ('gsapi_datasync_invoice_lines', 'vat_rate'))`)
	}
	if got := types(db); got != "gsapi_datasync_invoice_lines.vat_rate BIGINT, gsapi_datasync_invoices.invoice_no BIGINT" {
		t.Fatalf("after 2022 the types are %s", got)
	}
	chargesBefore := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_charges WHERE NOT invoiced")
	db.Close()

	srv, cfg2 := setup(t, sandbox.Options{Scale: 0.1, Tenant: sandbox.TenantB}, func(string) string { return string(pipelines.DemoTenantB) })
	cfg2.OutputDir, cfg2.Warehouse = cfg.OutputDir, cfg.Warehouse
	only(cfg2, nil, streams)
	second, err := Run(context.Background(), Options{Config: cfg2, HTTP: fastRetries, Now: at(sandbox.DefaultUntil)})
	if err != nil || len(second.Failed) > 0 {
		t.Fatalf("second run: %v %+v", err, second)
	}
	// The second run starts at the first of the month its watermark minus 60 days falls in.
	if w := second.Manifest.Streams[0].Windows; len(w) == 0 || w[len(w)-1].Start != time.Date(2022, 10, 1, 0, 0, 0, 0, time.UTC) {
		t.Errorf("second run's oldest window %v, want October 2022", w[len(w)-1])
	}
	d := srv.Data()
	f := gsapiFacts(d)
	db = query(t, cfg2)
	for table, want := range map[string]int64{"gsapi_datasync_invoices": f.invoices, "gsapi_datasync_invoice_lines": f.lines,
		"gsapi_datasync_charges": int64(d.GSCharges), "gsapi_invoice_journal_accounting": f.accountCentreRows} {
		if n := scalar[int64](t, db, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
	if n := scalar[int64](t, db, "SELECT count(*) FROM gsapi_datasync_invoices_history"); n <= f.invoices {
		t.Errorf("history holds %d rows: the look-back months were not read again", n)
	}
	if got := scalar[string](t, db, "SELECT sum(total_net)::VARCHAR FROM gsapi_datasync_invoices"); got != cents(f.net) {
		t.Errorf("net %s, want %s", got, cents(f.net))
	}
	// Charges the first run saw uninvoiced (the last month before it) are invoiced now: the new fetch
	// of their window replaced them.
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_charges WHERE NOT invoiced AND calldate < '2022-12-01'"); chargesBefore == 0 || n != 0 {
		t.Errorf("%d charges before December 2022 still uninvoiced (%d were before)", n, chargesBefore)
	}
	if got := types(db); got != "gsapi_datasync_invoice_lines.vat_rate DECIMAL(38,2), gsapi_datasync_invoices.invoice_no VARCHAR" {
		t.Errorf("after the second run the types are %s", got)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_invoices WHERE invoice_no = '7010001'"); n != 1 {
		t.Errorf("the first invoice's number, loaded as a BIGINT, reads %d times as '7010001'", n)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_invoice_lines WHERE vat_rate = 25.5"); n == 0 {
		t.Error("no line at 25.5 %")
	}
}

// Child rows link to their parent through the fields that identify it. A record without them keeps its
// child rows, and the run says the link is missing.
func TestChildRowsWithoutALinkAreKeptAndReported(t *testing.T) {
	t.Parallel()
	cfg := tempConfig(t)
	s := fakeStream("invoices", nil, []string{`{"no":"A-1","lines":[{"q":1},{"q":2}]}`, `{"lines":[{"q":3}]}`})
	s.Ident = []string{"no"}
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{s})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	if w := strings.Join(res.Manifest.Streams[0].Warnings, "; "); !strings.Contains(w, "1 records of test_invoices have child rows but no value in no") {
		t.Errorf("warnings %q", w)
	}
	db := query(t, cfg)
	if got := scalar[string](t, db, "SELECT string_agg(coalesce(_parent_no, '-') || ':' || q, ',' ORDER BY q) FROM test_invoices__lines"); got != "A-1:1,A-1:2,-:3" {
		t.Errorf("child rows %s", got)
	}
}

// A key configured for a stream the source does not have is a config error (exit 2) that lists them.
func TestKeyForAnUnknownStreamIsAConfigError(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.01}, nil)
	cfg.Sources.GSAPI.Keys = map[string][]string{"invoice_journal_acounting": {"iheader_id"}}
	_, err := Run(context.Background(), Options{Config: cfg})
	var ce *config.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), `sources.gsapi.keys: no stream "invoice_journal_acounting"`) || !strings.Contains(err.Error(), "invoice_journal_accounting") {
		t.Errorf("err = %v, want a config error naming the streams", err)
	}
}
