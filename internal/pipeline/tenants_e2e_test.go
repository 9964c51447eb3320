package pipeline

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/pipelines"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// tenant is one shape of the sandbox's GSAPI and the pipeline that reads it.
type tenant struct {
	name     string
	pipeline []byte
	// columns of the money the test sums, by table (they are the tenant's names).
	invoiceNet, invoiceVAT, lineNet, summaryNet, journalNet string
}

var tenants = []tenant{
	{name: sandbox.TenantA, pipeline: pipelines.Demo,
		invoiceNet: "net_amount", invoiceVAT: "vat_amount", lineNet: "price", summaryNet: "net_amount", journalNet: "net_amount"},
	{name: sandbox.TenantB, pipeline: pipelines.DemoTenantB,
		invoiceNet: "total_net", invoiceVAT: "total_vat", lineNet: "line_net", summaryNet: "total_net", journalNet: "net_amount"},
}

// gsFacts are the generator's facts a GSAPI tenant serves, whatever its shape.
type gsFacts struct {
	invoices, lines, accountRows, accountCentreRows int64
	net, vat, lineNet                               int64 // cents
}

func gsapiFacts(d *sandbox.Dataset) gsFacts {
	var f gsFacts
	for i := 0; i < d.GSInvoices; i++ {
		inv := d.GSInvoice(i)
		f.invoices++
		f.net += inv.NetCents
		f.vat += inv.VATCents
		accounts, centres := map[string]bool{}, map[[2]string]bool{}
		for _, l := range inv.Lines {
			f.lines++
			f.lineNet += l.NetCents
			accounts[l.Account] = true
			centres[[2]string{l.Account, l.CostCentre}] = true
		}
		f.accountRows += int64(len(accounts))
		f.accountCentreRows += int64(len(centres))
	}
	return f
}

// TestEveryTenantEndToEnd runs the whole pipeline, both sources and every stream, against each tenant
// shape of the sandbox, each with its own pipeline file: row counts and exact money sums per table
// against the generator's facts, every SQL model built (tenant b through its field mapping), every
// data test passing, and no value lost — every non-empty value the API sent is in the warehouse or in
// _ledgerlake_rejects.
func TestEveryTenantEndToEnd(t *testing.T) {
	t.Parallel()
	for _, tn := range tenants {
		for _, backend := range backends {
			t.Run("tenant "+tn.name+" "+backend, func(t *testing.T) {
				t.Parallel()
				srv, cfg := setup(t, sandbox.Options{Scale: 0.1, Tenant: tn.name}, func(string) string { return string(tn.pipeline) })
				cfg.Sources.GSAPI.Datatables = gsapiDatatables
				cfg.Iceberg.Enabled = nil // the default: on
				lakeOn(t, cfg, backend)
				endToEnd(t, tn, srv, cfg)
			})
		}
	}
}

// endToEnd runs every stream of tenant tn once and checks what a user would: counts and sums against
// the sandbox's facts, every model built, no value lost, and a lake that verifies.
func endToEnd(t *testing.T, tn tenant, srv *sandbox.Server, cfg *config.Config) {
	res := run(t, cfg)
	if len(res.Failed) > 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	if !res.OK() {
		t.Fatalf("models: %+v", res.Models)
	}
	if len(res.Models.Built) != 10 {
		t.Errorf("built %v, skipped %v, failed %v", res.Models.Built, res.Models.Skipped, res.Models.Failed)
	}
	// Tenant b reads the window end 23:59:59.999 as the next midnight, so the records at 00:00:00.000
	// come back twice: each is kept once, and the run says so. Nothing else warrants a warning.
	for _, s := range res.Manifest.Streams {
		for _, w := range s.Warnings {
			if tn.name != sandbox.TenantB || !strings.Contains(w, "came back in two adjacent windows byte for byte") {
				t.Errorf("%s warns: %s", s.Table, w)
			}
		}
	}
	d := srv.Data()
	f := gsapiFacts(d)
	db := query(t, cfg)
	accounting := f.accountRows
	if tn.name == sandbox.TenantB {
		accounting = f.accountCentreRows
	}
	counts := map[string]int64{
		"gsapi_datasync_invoices": f.invoices, "gsapi_datasync_invoice_lines": f.lines, "gsapi_datasync_charges": int64(d.GSCharges),
		"gsapi_invoice_journal_summary": f.invoices, "gsapi_invoice_journal_detail": f.lines,
		"gsapi_invoice_journal_accounting": accounting, "gsapi_invoice_journal_full_details": f.lines,
		"gsapi_invoice_list": f.invoices, "gsapi_invoice_list__headers": f.lines, "gsapi_invoice_lines": f.lines,
		"gsapi_invoice_charges": f.invoices, "gsapi_invoice_charges__charges": f.lines,
		"gsapi_datatable_ctransactiondata": int64(d.GSTransactions), "gsapi_organizations": int64(1 + d.GSOrganizations),
		"gsapi_objects": int64(2 + 2*d.GSOrganizations), "gsapi_charges": int64(d.GSCharges),
		"signicat_accounts": int64(2 + d.SignicatAccounts + d.SignicatDeleted), "signicat_invoices": int64(1 + d.SignicatInvoices),
		"fct_invoice": f.invoices + int64(1+d.SignicatInvoices),
	}
	for table, want := range counts {
		if n := scalar[int64](t, db, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
	sums := []struct {
		expr, from string
		want       int64
	}{
		{tn.invoiceNet, "gsapi_datasync_invoices", f.net},
		{tn.invoiceVAT, "gsapi_datasync_invoices", f.vat},
		{tn.lineNet, "gsapi_datasync_invoice_lines", f.lineNet},
		{tn.summaryNet, "gsapi_invoice_journal_summary", f.net},
		{tn.journalNet, "gsapi_invoice_journal_accounting", f.net},
		{tn.journalNet, "gsapi_invoice_journal_detail", f.lineNet},
		{"price", "gsapi_invoice_charges__charges", f.lineNet},
		{"net_amount", "fct_invoice WHERE source = 'gsapi'", f.net},
		{"net_amount", "fct_invoice_line WHERE source = 'gsapi'", f.lineNet},
		{"tax_amount", "revenue_by_month WHERE source = 'gsapi'", f.vat},
	}
	for _, sum := range sums {
		q := "SELECT sum(" + sum.expr + ")::DECIMAL(38,2)::VARCHAR FROM " + sum.from
		if got := scalar[string](t, db, q); got != cents(sum.want) {
			t.Errorf("%s = %s, want %s", q, got, cents(sum.want))
		}
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM reconciliation_gsapi_journal WHERE missing_in IS NOT NULL OR difference <> 0"); n != 0 {
		t.Errorf("%d invoices differ between datasync and the summary journal", n)
	}
	noValueLost(t, srv, db)
	st, err := OpenLake(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checked, problems, err := lake.Verify(t.Context(), st)
	if err != nil || len(problems) > 0 || checked < len(res.Manifest.Files) {
		t.Errorf("verify: %d files checked, problems %v, %v", checked, problems, err)
	}
}

// gsapiDatatables is the datatable the end-to-end tests read.
var gsapiDatatables = []config.Datatable{{Table: "ctransactiondata", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 700}}

// noValueLost compares, for every GSAPI list, datasync option and journal, what the API sent with what
// landed: for each field, the records where it is neither null nor "" must equal the table's rows where
// its column holds a value plus the rejects of that column. An array of objects is compared with its
// child table's rows, an object kept as a MAP as one value.
func noValueLost(t *testing.T, srv *sandbox.Server, db *sql.DB) {
	t.Helper()
	window := url.Values{"startdate": {"2021-01-01 00:00:00.000"}, "enddate": {"2026-12-31 23:59:59.997"}, "org_id": {"0"}}
	with := func(extra ...string) url.Values {
		q := url.Values{}
		for k, v := range window {
			q[k] = v
		}
		for i := 0; i+1 < len(extra); i += 2 {
			q.Set(extra[i], extra[i+1])
		}
		return q
	}
	scoped := url.Values{"org_id": {"0"}}
	reads := []struct {
		table, path string
		q           url.Values
		maps        []string
	}{
		{"gsapi_datasync_invoices", "/datasync", with("option", "Invoices"), nil},
		{"gsapi_datasync_invoice_lines", "/datasync", with("option", "InvoiceLines"), nil},
		{"gsapi_datasync_charges", "/datasync", with("option", "Charges"), []string{"boparams"}},
		{"gsapi_datasync_organizations", "/datasync", with("option", "Organizations"), nil},
		{"gsapi_datasync_organization_billing_info", "/datasync", with("option", "OrganizationBillingInfo"), nil},
		{"gsapi_datasync_products", "/datasync", with("option", "Products"), nil},
		{"gsapi_datasync_prices", "/datasync", with("option", "Prices"), nil},
		{"gsapi_datasync_product_categories", "/datasync", with("option", "ProductCategories"), nil},
		{"gsapi_invoice_journal_summary", "/invoicejournal/list", with("journaltype", "Summary"), nil},
		{"gsapi_invoice_journal_detail", "/invoicejournal/list", with("journaltype", "Detail"), nil},
		{"gsapi_invoice_journal_accounting", "/invoicejournal/list", with("journaltype", "Accounting"), nil},
		{"gsapi_invoice_journal_full_details", "/invoicejournal/list", with("journaltype", "Full details"), nil},
		{"gsapi_organizations", "/organizations/list", nil, nil},
		{"gsapi_billing_infos", "/organizationbillinginfos/list", url.Values{"org_id": {"0"}, "inherit": {"1"}}, nil},
		{"gsapi_users", "/users/list", scoped, nil},
		{"gsapi_country_codes", "/countrycodes/list", nil, nil},
		{"gsapi_products", "/products/list", scoped, nil},
		{"gsapi_product_details", "/productdetails/list", nil, nil},
		{"gsapi_profiles", "/profiles/list", nil, nil},
		{"gsapi_objects", "/objects/list", url.Values{"org_id": {"0"}, "type_id": {"70"}}, []string{"objectfields"}},
		{"gsapi_contracts", "/contracts/list", scoped, nil},
		{"gsapi_contract_lines", "/contractlines/list", scoped, nil},
		{"gsapi_prices", "/pricings/list", scoped, nil},
		{"gsapi_tax_rates", "/taxrates/list", nil, nil},
		{"gsapi_invoice_batches", "/invoicebatch/list", scoped, nil},
		{"gsapi_invoice_list", "/invoice/list", scoped, nil},
		{"gsapi_invoice_lines", "/invoice/line_list", scoped, nil},
		{"gsapi_charges", "/charges/actions", url.Values{"org_id": {"0"}, "starttime": {"2021-01-01"}}, []string{"boparams"}},
	}
	for _, r := range reads {
		sent := map[string]int64{} // column → values sent
		children := map[string]int64{}
		for _, rec := range gsapiGet(t, srv, r.path, r.q) {
			countValues(rec, "", r.maps, sent, children)
		}
		cols := map[string]bool{}
		rows, err := db.Query("SELECT column_name FROM duckdb_columns() WHERE table_name = ?", r.table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var c string
			_ = rows.Scan(&c)
			cols[c] = true
		}
		rows.Close()
		var names []string
		for c := range sent {
			names = append(names, c)
		}
		sort.Strings(names)
		for _, c := range names {
			if !cols[c] {
				t.Errorf("%s: %d values of %s were sent and the table has no such column", r.table, sent[c], c)
				continue
			}
			q := fmt.Sprintf(`SELECT (SELECT count(*) FROM %[1]s WHERE length(%[2]s::VARCHAR) > 0)
				+ (SELECT count(*) FROM _ledgerlake_rejects WHERE table_name = '%[1]s' AND column_name = '%[3]s')`, r.table, `"`+c+`"`, c)
			if got := scalar[int64](t, db, q); got != sent[c] {
				t.Errorf("%s.%s: %d values sent, %d landed (typed or rejected)", r.table, c, sent[c], got)
			}
		}
		for child, n := range children {
			if got := scalar[int64](t, db, "SELECT count(*) FROM "+r.table+"__"+child); got != n {
				t.Errorf("%s__%s: %d rows, %d objects sent", r.table, child, got, n)
			}
		}
	}
}

// countValues counts rec's non-empty values per warehouse column, flattening nested objects with "__"
// and counting arrays of objects as child rows.
func countValues(rec map[string]any, prefix string, maps []string, sent, children map[string]int64) {
	for k, v := range rec {
		col := schemas.ColumnName(k)
		if prefix != "" {
			col = prefix + "__" + col
		}
		switch x := v.(type) {
		case nil:
		case string:
			if x != "" {
				sent[col]++
			}
		case map[string]any:
			if prefix == "" && contains(maps, k) {
				sent[col]++
			} else {
				countValues(x, col, maps, sent, children)
			}
		case []any:
			if len(x) > 0 {
				if _, obj := x[0].(map[string]any); obj {
					children[col] += int64(len(x))
					continue
				}
			}
			sent[col]++
		default:
			sent[col]++
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// gsapiGet reads a GSAPI list from the sandbox directly, as its raw records.
func gsapiGet(t *testing.T, srv *sandbox.Server, path string, q url.Values) []map[string]any {
	t.Helper()
	u := srv.GSAPIBaseURL() + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Authorization", "Bearer "+sandbox.GSAPIJWT)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, b)
	}
	var out []map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return out
}
