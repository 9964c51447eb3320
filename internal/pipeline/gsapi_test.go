package pipeline

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
)

func gsapiOnly(cfg *config.Config) {
	cfg.Sources.Signicat = nil
	cfg.Sources.GSAPI.Datatables = []config.Datatable{{Table: "ctransactiondata", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 700}}
}

func TestGSAPIEveryStreamExactly(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.1}, nil)
	gsapiOnly(cfg)
	res := run(t, cfg)
	if len(res.Failed) > 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	d := srv.Data()
	var lines, net, accountRows int64
	for i := 0; i < d.GSInvoices; i++ {
		inv := d.GSInvoice(i)
		lines += int64(len(inv.Lines))
		net += inv.NetCents
		accounts := map[string]bool{}
		for _, l := range inv.Lines {
			accounts[l.Account] = true
		}
		accountRows += int64(len(accounts))
	}
	counts := map[string]int64{
		"gsapi_datasync_invoices": int64(d.GSInvoices), "gsapi_datasync_invoice_lines": lines, "gsapi_datasync_charges": int64(d.GSCharges),
		"gsapi_datasync_organizations": int64(1 + d.GSOrganizations), "gsapi_datasync_call_tickets": 0, "gsapi_datasync_products": 8,
		"gsapi_datasync_product_categories": 6, "gsapi_datasync_prices": 17, "gsapi_datasync_organization_billing_info": int64(3 + d.GSOrganizations),
		"gsapi_invoice_journal_summary": int64(d.GSInvoices), "gsapi_invoice_journal_detail": lines,
		"gsapi_invoice_journal_accounting": accountRows, "gsapi_invoice_journal_full_details": lines,
		"gsapi_datatable_ctransactiondata": int64(d.GSTransactions), "gsapi_organizations": int64(1 + d.GSOrganizations),
		"gsapi_users": int64(7 + d.GSOrganizations), "gsapi_billing_infos": int64(3 + d.GSOrganizations), "gsapi_country_codes": 6,
		"gsapi_contracts": int64(5 + d.GSOrganizations), "gsapi_contract_lines": int64(1 + d.GSOrganizations), "gsapi_prices": 17,
		"gsapi_objects": int64(2 + 2*d.GSOrganizations), "gsapi_invoice_list": int64(d.GSInvoices), "gsapi_invoice_list__headers": lines,
		"gsapi_invoice_lines": lines, "gsapi_invoice_charges": int64(d.GSInvoices), "gsapi_invoice_charges__charges": lines,
		"gsapi_charges": int64(d.GSCharges), "gsapi_profiles": 3, "gsapi_tax_rates": 12,
	}
	db := query(t, cfg)
	for table, want := range counts {
		if n := scalar[int64](t, db, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
	wantNet := fmt.Sprintf("%d.%02d", net/100, net%100)
	for _, q := range []string{"SELECT sum(net_amount)::VARCHAR FROM gsapi_datasync_invoices", "SELECT sum(price)::VARCHAR FROM gsapi_datasync_invoice_lines",
		"SELECT sum(net_amount)::VARCHAR FROM gsapi_invoice_journal_summary", "SELECT sum(net_amount)::VARCHAR FROM gsapi_invoice_journal_accounting"} {
		if got := scalar[string](t, db, q); got != wantNet {
			t.Errorf("%s = %s, want %s", q, got, wantNet)
		}
	}
	// The boundary records: present, once each.
	for _, edge := range []string{"00:00:00", "23:59:59.997"} {
		if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_invoices WHERE strftime(invoice_date, '%H:%M:%S.%g') LIKE '"+edge+"%'"); n == 0 {
			t.Errorf("no invoice at %s", edge)
		}
	}
	for _, table := range []string{"gsapi_datasync_invoices", "gsapi_datasync_charges", "gsapi_invoice_journal_summary"} {
		key := map[string]string{"gsapi_datasync_charges": "charge_id"}[table]
		if key == "" {
			key = "iheader_id"
		}
		if n := scalar[int](t, db, "SELECT count(*) - count(DISTINCT "+key+") FROM "+table+"_history"); n != 0 {
			t.Errorf("%s: %d records doubled at window boundaries", table, n)
		}
	}
	types := map[string]string{
		"gsapi_datasync_invoices.invoice_date": "TIMESTAMP", "gsapi_invoice_journal_summary.invoice_date": "TIMESTAMP WITH TIME ZONE",
		"gsapi_datasync_invoices.net_amount": "DECIMAL(38,2)", "gsapi_objects.objectfields": "MAP(VARCHAR, VARCHAR)",
		"gsapi_datasync_charges.boparams": "MAP(VARCHAR, VARCHAR)", "gsapi_invoice_charges__charges.boparams": "MAP(VARCHAR, VARCHAR)",
		"gsapi_datatable_ctransactiondata.raw_id": "BIGINT", "gsapi_datasync_invoices.due_date": "DATE",
	}
	for col, want := range types {
		tc := strings.SplitN(col, ".", 2)
		if got := scalar[string](t, db, fmt.Sprintf("SELECT data_type FROM duckdb_columns() WHERE table_name = '%s' AND column_name = '%s'", tc[0], tc[1])); got != want {
			t.Errorf("%s is %s, want %s", col, got, want)
		}
	}
	// Tenant maps stay queryable.
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_objects WHERE objectfields['ContractID'] = 'C-000000002'"); n != 2 {
		t.Errorf("objectfields['ContractID'] found %d objects, want the 2 published", n)
	}
}

func TestDatatableIgnoredSortorderFailsLoudly(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05, IgnoreSortorder: true}, nil)
	gsapiOnly(cfg)
	cfg.Sources.GSAPI.Datatables[0].PageSize = 100 // 500 rows: five pages, all of them page 1
	cfg.Sources.GSAPI.Streams = []string{"datatable_ctransactiondata", "users"}
	res := run(t, cfg)
	if len(res.Failed) != 1 || res.Failed[0].Table != "gsapi_datatable_ctransactiondata" || !strings.Contains(res.Failed[0].Error, "identical to page") {
		t.Fatalf("failed = %+v", res.Failed)
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'gsapi_datatable%'"); n != 0 {
		t.Error("a datatable read that repeated pages was loaded")
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_users"); n == 0 {
		t.Error("the healthy stream did not land")
	}
}

func TestGSAPIIncrementalAndJWT(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05, TokenTTL: 300 * time.Millisecond, Faults: sandbox.Faults{TokenExpiry: 0.05}}, nil)
	gsapiOnly(cfg)
	cfg.Sources.GSAPI.Streams = []string{"datatable_ctransactiondata", "datasync_invoices"}
	first := run(t, cfg)
	second := run(t, cfg)
	if len(first.Failed)+len(second.Failed) > 0 {
		t.Fatalf("failed: %+v %+v", first.Failed, second.Failed)
	}
	if srv.Stats.TokensIssued.Load() < 2 {
		t.Error("the token never expired; the test proves nothing")
	}
	rep := func(r *Result, table string) (rows, requests int64) {
		for _, s := range r.Manifest.Streams {
			if s.Table == table {
				return s.Rows, s.Requests
			}
		}
		t.Fatalf("no %s", table)
		return 0, 0
	}
	if rows, _ := rep(second, "gsapi_datatable_ctransactiondata"); rows != int64(srv.Data().GSTransactions) {
		t.Errorf("second datatable run read %d rows, want the whole table (%d)", rows, srv.Data().GSTransactions)
	}
	// append_only: read whole once (no row count held yet), then only past the watermark.
	cfg.Sources.GSAPI.Datatables[0].AppendOnly = true
	run(t, cfg)
	if rows, _ := rep(run(t, cfg), "gsapi_datatable_ctransactiondata"); rows != 0 {
		t.Errorf("an append_only run read %d rows past the watermark, want 0", rows)
	}
	if st, err := Status(t.Context(), cfg, lake.Dir(cfg.OutputDir), "", []string{"gsapi_datatable_ctransactiondata"}); err != nil || len(st) != 1 ||
		st[0].Watermark == "" || !strings.HasPrefix(st[0].Next, "the rows with raw_id greater than "+st[0].Watermark+" (append_only)") {
		t.Errorf("status %+v, %v", st, err)
	}
	_, req1 := rep(first, "gsapi_datasync_invoices")
	_, req2 := rep(second, "gsapi_datasync_invoices")
	if req2*5 > req1 {
		t.Errorf("second datasync run made %d requests, the first %d", req2, req1)
	}
	db := query(t, cfg)
	d := srv.Data()
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datatable_ctransactiondata"); n != d.GSTransactions {
		t.Errorf("datatable current state %d rows, want %d", n, d.GSTransactions)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_datasync_invoices"); n != d.GSInvoices {
		t.Errorf("datasync invoices %d, want %d", n, d.GSInvoices)
	}

	// JWT mode: no Basic login at all.
	_, jcfg := setup(t, sandbox.Options{Scale: 0.02}, func(y string) string {
		return strings.Replace(strings.Replace(y, "username: ${GSAPI_USERNAME}", "jwt: "+sandbox.GSAPIJWT, 1), "    password: ${GSAPI_PASSWORD}\n", "", 1)
	})
	gsapiOnly(jcfg)
	jcfg.Sources.GSAPI.Streams = []string{"users"}
	res, err := Run(context.Background(), Options{Config: jcfg, HTTP: fastRetries})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("JWT run: %v %+v", err, res)
	}
}

// A datatable is read whole every run and its current state is the newest read: a row changed at the
// source (whatever its key) has its new value and a row deleted there is gone. Before the fix the
// second run asked only for keys greater than 3, so raw_id 2 kept 1.10 and raw_id 3 stayed.
func TestDatatableCurrentStateFollowsTheSource(t *testing.T) {
	t.Parallel()
	rows := `[{"raw_id":1,"amount":"1.00"},{"raw_id":2,"amount":"1.10"},{"raw_id":3,"amount":"1.20"}]`
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		body, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/datatable/list" || r.URL.Query().Get("page") != "1" || strings.Contains(string(body), "filters") {
			w.Header().Set("X-GSAPI-QueryTotalCount", "0")
			_, _ = w.Write([]byte(`[]`))
			return
		}
		w.Header().Set("X-GSAPI-QueryTotalCount", fmt.Sprint(strings.Count(rows, "raw_id")))
		_, _ = w.Write([]byte(rows))
	}))
	t.Cleanup(srv.Close)
	cfg := datatableOnly(t, srv.URL, 10)
	run(t, cfg)
	mu.Lock()
	rows = `[{"raw_id":1,"amount":"1.00"},{"raw_id":2,"amount":"5000.00"}]`
	mu.Unlock()
	if res := run(t, cfg); len(res.Failed) > 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	if got := scalar[string](t, query(t, cfg), "SELECT string_agg(raw_id || '=' || amount, ' ' ORDER BY raw_id) FROM gsapi_datatable_t"); got != "1=1.00 2=5000.00" {
		t.Errorf("current state %s, want 1=1.00 2=5000.00", got)
	}
}

// A read that meets the table moving (page 2 announces another total than page 1) is discarded and
// read again from the start; the second read, which holds still, is what loads: nothing doubled.
func TestDatatableMovedDuringTheReadIsReadAgain(t *testing.T) {
	t.Parallel()
	var reads atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page, total := r.URL.Query().Get("page"), "3"
		if page == "1" {
			reads.Add(1)
		} else if reads.Load() == 1 {
			total = "4" // a row inserted after the first read's page 1
		}
		w.Header().Set("X-GSAPI-QueryTotalCount", total)
		_, _ = w.Write([]byte(map[string]string{"1": `[{"raw_id":3},{"raw_id":2}]`, "2": `[{"raw_id":1}]`}[page]))
	}))
	t.Cleanup(srv.Close)
	cfg := datatableOnly(t, srv.URL, 2)
	if res := run(t, cfg); len(res.Failed) > 0 || reads.Load() != 2 {
		t.Fatalf("read %d times, failed: %+v", reads.Load(), res.Failed)
	}
	if got := scalar[string](t, query(t, cfg), "SELECT string_agg(raw_id::VARCHAR, ' ' ORDER BY raw_id) FROM gsapi_datatable_t"); got != "1 2 3" {
		t.Errorf("current state %s, want 1 2 3", got)
	}
}

// datatableOnly is a config reading only the datatable t (raw_id desc, keyed by raw_id, pageSize rows
// a page) from the GSAPI at url.
func datatableOnly(t *testing.T, url string, pageSize int) *config.Config {
	_, cfg := setup(t, sandbox.Options{Scale: 0.01}, nil)
	gsapiOnly(cfg)
	g := cfg.Sources.GSAPI
	g.BaseURL, g.JWT, g.Username, g.Password, g.Streams = url, "jwt", "", "", []string{"datatable_t"}
	g.Datatables = []config.Datatable{{Table: "t", Sortorder: []string{"raw_id desc"}, Key: "raw_id", PageSize: pageSize}}
	return cfg
}
