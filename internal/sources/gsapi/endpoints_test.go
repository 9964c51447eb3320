package gsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/sources/sourcetest"
)

// basePath is where the test API lives: a request built from an absolute path instead of the base URL
// misses it and gets a 404.
const basePath = "/api/interface/gsapi"

// The test tenant: organisation 7, read from January 2024, on 10 February 2024.
var (
	testSince = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	testNow   = time.Date(2024, 2, 10, 12, 0, 0, 0, time.UTC)
)

// apiDouble is the test API (see sourcetest.API) with the credential every request must carry
// checked, and the source configured to call it.
type apiDouble struct {
	*sourcetest.API
	t   *testing.T
	cfg *config.GSAPI
}

// newDouble serves the test API to a source configured by cfg (base URL, JWT and org_id are filled in).
func newDouble(t *testing.T, cfg *config.GSAPI) *apiDouble {
	api := sourcetest.New(t, basePath, sourcetest.Options{Check: func(r *http.Request, _ string) {
		if got := r.Header.Get("Authorization"); got != "Bearer test.jwt" {
			t.Errorf("%s %s: Authorization %q, want the bearer JWT", r.Method, r.URL, got)
		}
	}})
	org := 7
	cfg.BaseURL, cfg.JWT, cfg.OrgID, cfg.Since = api.BaseURL, "test.jwt", &org, config.Date{Time: testSince}
	return &apiDouble{API: api, t: t, cfg: cfg}
}

// stream is the configured source's stream called name.
func (d *apiDouble) stream(name string) *sources.Stream {
	d.t.Helper()
	all, err := New(d.cfg, config.DefaultLimits, httpclient.New(httpclient.Options{MaxAttempts: 1}), func() time.Time { return testNow }).Streams()
	if err != nil {
		d.t.Fatal(err)
	}
	for _, s := range all {
		if s.Name == name {
			return s
		}
	}
	d.t.Fatalf("no stream %s", name)
	return nil
}

// read reads every page of s as the pipeline does and returns the records, or the first error.
func read(s *sources.Stream, resume sources.Resume) ([]sources.Record, error) {
	var out []sources.Record
	for p, err := range s.Pages(context.Background(), resume) {
		if err != nil {
			return out, err
		}
		if _, err := p.Each(func(r sources.Record) error { out = append(out, r); return nil }); err != nil && !strings.Contains(err.Error(), "null") {
			return out, err
		}
	}
	return out, nil
}

// req is a request as the test API records it.
var req = sourcetest.Req

// windowsOf are the requests of a windowed read from testSince to testNow: one per calendar month of
// the tenant's wall clock, the last ending with the day of the run; each end is inclusive, to the
// millisecond (gsapi windows.go).
func windowsOf(path string, kv ...string) []string {
	return []string{
		req("GET", path, append(slices.Clone(kv), "startdate", "2024-01-01 00:00:00.000", "enddate", "2024-01-31 23:59:59.999")...),
		req("GET", path, append(slices.Clone(kv), "startdate", "2024-02-01 00:00:00.000", "enddate", "2024-02-10 23:59:59.999")...),
	}
}

// answerList answers every list with two records of its own, different per request (so that windows
// never return byte-identical copies).
func answerList(w http.ResponseWriter, r *http.Request) {
	_, _ = fmt.Fprintf(w, `[{"id":1,"asked":%q},{"id":2,"asked":%q}]`, r.URL.RawQuery, r.URL.RawQuery)
}

// Every stream asks exactly its endpoint: method, path and query (org scope, option, window bounds),
// with the JWT, and reads every record of the answers. One-request lists stop after one request,
// windowed streams after the window that ends with the run's day.
func TestEachStreamAsksItsEndpoint(t *testing.T) {
	org := []string{"org_id", "7"}
	cases := []struct {
		stream  string
		want    []string
		records int
	}{
		{"datasync_invoices", windowsOf("/datasync", "option", "Invoices", "org_id", "7"), 4},
		{"datasync_invoice_lines", windowsOf("/datasync", "option", "InvoiceLines", "org_id", "7"), 4},
		{"datasync_charges", windowsOf("/datasync", "option", "Charges", "org_id", "7"), 4},
		{"datasync_organizations", []string{req("GET", "/datasync", "option", "Organizations", "org_id", "7")}, 2},
		{"datasync_organization_billing_info", []string{req("GET", "/datasync", "option", "OrganizationBillingInfo", "org_id", "7")}, 2},
		{"datasync_prices", []string{req("GET", "/datasync", "option", "Prices", "org_id", "7")}, 2},
		{"datasync_call_tickets", []string{req("GET", "/datasync", "option", "CallTickets", "org_id", "7")}, 2},
		// Spec: "For Products (5) and ProductCategories (7) use org_id=0", whatever the tenant's org.
		{"datasync_products", []string{req("GET", "/datasync", "option", "Products", "org_id", "0")}, 2},
		{"datasync_product_categories", []string{req("GET", "/datasync", "option", "ProductCategories", "org_id", "0")}, 2},
		{"invoice_journal_summary", windowsOf("/invoicejournal/list", "journaltype", "Summary", "org_id", "7"), 4},
		{"invoice_journal_detail", windowsOf("/invoicejournal/list", "journaltype", "Detail", "org_id", "7"), 4},
		{"invoice_journal_accounting", windowsOf("/invoicejournal/list", "journaltype", "Accounting", "org_id", "7"), 4},
		{"invoice_journal_full_details", windowsOf("/invoicejournal/list", "journaltype", "Full details", "org_id", "7"), 4},
		{"organizations", []string{req("GET", "/organizations/list")}, 2},
		{"billing_infos", []string{req("GET", "/organizationbillinginfos/list", "inherit", "1", "org_id", "7")}, 2},
		{"users", []string{req("GET", "/users/list", org...)}, 2},
		{"country_codes", []string{req("GET", "/countrycodes/list")}, 2},
		{"products", []string{req("GET", "/products/list", org...)}, 2},
		{"product_details", []string{req("GET", "/productdetails/list")}, 2},
		{"profiles", []string{req("GET", "/profiles/list")}, 2},
		{"contracts", []string{req("GET", "/contracts/list", org...)}, 2},
		{"contract_lines", []string{req("GET", "/contractlines/list", org...)}, 2},
		{"prices", []string{req("GET", "/pricings/list", org...)}, 2},
		{"tax_rates", []string{req("GET", "/taxrates/list")}, 2},
		{"invoice_batches", []string{req("GET", "/invoicebatch/list", org...)}, 2},
		{"invoice_list", []string{req("GET", "/invoice/list", org...)}, 2},
		{"invoice_lines", []string{req("GET", "/invoice/line_list", org...)}, 2},
		{"charges", []string{req("GET", "/charges/actions", "org_id", "7", "starttime", "2024-01-01")}, 2},
	}
	d := newDouble(t, &config.GSAPI{})
	d.Mux.HandleFunc("GET /", answerList)
	for _, c := range cases {
		s := d.stream(c.stream)
		recs, err := read(s, sources.Resume{})
		if err != nil {
			t.Errorf("%s: %v", c.stream, err)
		}
		// The declaration names the endpoint the stream asks.
		if path, _, _ := strings.Cut(s.Endpoint, "?"); !strings.HasPrefix(c.want[0], path+"?") && c.want[0] != path {
			t.Errorf("%s declares %s but asks %s", c.stream, s.Endpoint, c.want[0])
		}
		if got := d.Requests(); !slices.Equal(got, slices.Sorted(slices.Values(c.want))) {
			t.Errorf("%s asked\n  %s\nwant\n  %s", c.stream, strings.Join(got, "\n  "), strings.Join(c.want, "\n  "))
		}
		if len(recs) != c.records {
			t.Errorf("%s: %d records, want %d", c.stream, len(recs), c.records)
		}
	}
}

// A setting with the organisation's path instead of its id sends organization, not org_id.
func TestOrganizationPathScopesTheLists(t *testing.T) {
	d := newDouble(t, &config.GSAPI{})
	d.cfg.OrgID, d.cfg.Organization = nil, "Root/Sales"
	d.Mux.HandleFunc("GET /", answerList)
	if _, err := read(d.stream("contracts"), sources.Resume{}); err != nil {
		t.Fatal(err)
	}
	if got, want := d.Requests(), []string{req("GET", "/contracts/list", "organization", "Root/Sales")}; !slices.Equal(got, want) {
		t.Errorf("asked %q, want %q", got, want)
	}
}

// objects/list needs a type_id: each distinct type_id of profiles/list is asked once, scoped, and an
// object listed under two types byte for byte is kept once.
func TestObjectsAskEachProfileType(t *testing.T) {
	d := newDouble(t, &config.GSAPI{})
	d.Mux.HandleFunc("GET /profiles/list", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[{"profile_id":1,"type_id":3},{"profile_id":2,"type_id":5},{"profile_id":4,"type_id":3},{"profile_id":9}]`))
	})
	d.Mux.HandleFunc("GET /objects/list", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `[{"objectid":%s},{"objectid":100}]`, r.URL.Query().Get("type_id"))
	})
	recs, err := read(d.stream("objects"), sources.Resume{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{req("GET", "/objects/list", "org_id", "7", "type_id", "3"), req("GET", "/objects/list", "org_id", "7", "type_id", "5"), req("GET", "/profiles/list")}
	if got := d.Requests(); !slices.Equal(got, want) {
		t.Errorf("asked %q, want %q", got, want)
	}
	if len(recs) != 3 { // 3, 5 and one copy of 100
		t.Errorf("%d objects, want 3: %v", len(recs), recs)
	}
}

// invoice_charges reads the datasync Invoices windows and asks invoicecharges/list once per invoice
// header, skipping those the run says are done; a later run asks only for invoices whose datasync
// record changed.
func TestInvoiceChargesAskEachInvoiceOnce(t *testing.T) {
	d := newDouble(t, &config.GSAPI{LookbackDays: 60}) // the next run reads both months again
	var changed sync.Map
	d.Mux.HandleFunc("GET /datasync", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("option") != "Invoices" {
			t.Errorf("asked %s", r.URL)
		}
		if strings.HasPrefix(r.URL.Query().Get("startdate"), "2024-01") {
			_, _ = w.Write([]byte(`[{"iheader_id":11,"total":"1.00"},{"iheader_id":12,"total":"2.00"}]`))
			return
		}
		total := "3.00"
		if _, ok := changed.Load(13); ok {
			total = "3.50"
		}
		_, _ = fmt.Fprintf(w, `[{"iheader_id":13,"total":%q},{"iheader_id":11,"total":"1.00"}]`, total)
	})
	d.Mux.HandleFunc("GET /invoicecharges/list", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"iheader_id":%s,"charges":[{"charge_id":1}]}`, r.URL.Query().Get("iheader_id"))
	})
	s := d.stream("invoice_charges")
	recs, err := read(s, sources.Resume{Done: func(unit string) bool { return unit == "12" }})
	if err != nil {
		t.Fatal(err)
	}
	want := append(windowsOf("/datasync", "option", "Invoices", "org_id", "7"),
		req("GET", "/invoicecharges/list", "iheader_id", "11"), req("GET", "/invoicecharges/list", "iheader_id", "13"))
	if got := d.Requests(); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("asked\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(recs) != 2 {
		t.Errorf("%d records, want 2 (11 and 13; 12 is done)", len(recs))
	}

	// The next run: invoice 13's record changed, 11 did not, 12 was never read by this state.
	s.State.Commit()
	next := d.stream("invoice_charges")
	next.State.Watermark, next.State.Memo, next.State.Windows = s.State.Watermark, s.State.Memo, true
	changed.Store(13, true)
	if _, err := read(next, sources.Resume{}); err != nil {
		t.Fatal(err)
	}
	var charges []string
	for _, r := range d.Requests() {
		if strings.HasPrefix(r, "GET /invoicecharges/") {
			charges = append(charges, r)
		}
	}
	if want := []string{req("GET", "/invoicecharges/list", "iheader_id", "12"), req("GET", "/invoicecharges/list", "iheader_id", "13")}; !slices.Equal(charges, want) {
		t.Errorf("the next run asked %q, want %q", charges, want)
	}
}

// datatable/list is a POST of the sortorder (and, on an append_only table past a watermark, a filter on
// the key after one request for the unfiltered total), one page per pagesize rows of
// X-GSAPI-QueryTotalCount: page 1 gives the total, the rest are planned from it, and nothing past the
// last page is asked for.
func TestDatatablePostsItsSortorderAndStopsAtTheTotal(t *testing.T) {
	d := newDouble(t, &config.GSAPI{Datatables: []config.Datatable{{Table: "ctransactiondata", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 2, AppendOnly: true}}})
	d.Mux.HandleFunc("POST /datatable/list", func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
		w.Header().Set("X-GSAPI-QueryTotalCount", "5")
		switch r.URL.Query().Get("page") {
		case "1":
			_, _ = w.Write([]byte(`[{"raw_id":1},{"raw_id":2}]`))
		case "2":
			_, _ = w.Write([]byte(`[{"raw_id":3},{"raw_id":4}]`))
		case "3":
			_, _ = w.Write([]byte(`[{"raw_id":5}]`))
		default:
			t.Errorf("asked past the last page: %s", r.URL)
			_, _ = w.Write([]byte(`[]`))
		}
	})
	s := d.stream("datatable_ctransactiondata")
	s.State.Watermark, s.State.Memo = "0", map[string]json.RawMessage{"_rows": json.RawMessage("0")}
	recs, err := read(s, sources.Resume{})
	if err != nil || len(recs) != 5 {
		t.Fatalf("%d records, %v", len(recs), err)
	}
	page := func(n string) string {
		return req("POST", "/datatable/list", "page", n, "pagesize", "2", "tablename", "ctransactiondata")
	}
	count := req("POST", "/datatable/list", "page", "1", "pagesize", "1", "tablename", "ctransactiondata")
	if got, want := d.Requests(), []string{count, page("1"), page("2"), page("3")}; !slices.Equal(got, want) {
		t.Errorf("asked %q, want %q", got, want)
	}
	var body struct {
		Sortorder []string `json:"sortorder"`
		Filters   []struct {
			Column string `json:"column"`
			Filter []struct {
				Operator string `json:"operator"`
				Value    any    `json:"value"`
			} `json:"filter"`
		} `json:"filters"`
	}
	if err := json.Unmarshal([]byte(d.Body(page("2"))), &body); err != nil {
		t.Fatalf("body %q: %v", d.Body(page("2")), err)
	}
	if !slices.Equal(body.Sortorder, []string{"raw_id asc"}) || len(body.Filters) != 1 || body.Filters[0].Column != "raw_id" ||
		len(body.Filters[0].Filter) != 1 || body.Filters[0].Filter[0].Operator != "greater" || body.Filters[0].Filter[0].Value != float64(0) {
		t.Errorf("body %s", d.Body(page("2")))
	}
	if s.State.Next() != "5" {
		t.Errorf("watermark %q, want the largest key read (5)", s.State.Next())
	}
	if b := d.Body(count); b != `{"sortorder":["raw_id asc"]}` {
		t.Errorf("the count's body %s", b)
	}
}

// A server that ignores the sortorder answers page 1 for every page: the read fails naming the pages
// instead of loading duplicates.
func TestDatatablePageServedTwiceFailsTheRead(t *testing.T) {
	d := newDouble(t, &config.GSAPI{Datatables: []config.Datatable{{Table: "t", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 2}}})
	d.Mux.HandleFunc("POST /datatable/list", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-GSAPI-QueryTotalCount", "4")
		_, _ = w.Write([]byte(`[{"raw_id":1},{"raw_id":2}]`))
	})
	_, err := read(d.stream("datatable_t"), sources.Resume{})
	if err == nil || !strings.Contains(err.Error(), "page 2 is identical to page 1 — the server ignored sortorder [raw_id asc]") {
		t.Fatalf("err %v", err)
	}
}

// A record both adjacent windows return byte for byte, dated at the midnight between them (a server
// that reads 23:59:59.999 as the next midnight), is kept once, and the run hears of it; two identical
// records of one window are both kept, and so are identical records of adjacent windows that hold no
// such midnight: a monthly fee, or a journal's grouped row, the same month after month.
// A window answered with null is an empty window, reported naming the request.
func TestWindowBoundaryCopiesAreKeptOnce(t *testing.T) {
	d := newDouble(t, &config.GSAPI{})
	midnight := `{"iheader_id":5,"invoice_date":"2024-02-01 00:00:00.000"}`
	fee := `{"iheader_id":"fee","account":"3000","amount":"125.00","due":"2024-02-01 00:00:00.500"}`
	d.Mux.HandleFunc("GET /datasync", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Query().Get("option") == "Charges":
			_, _ = w.Write([]byte("null"))
		case strings.HasPrefix(r.URL.Query().Get("startdate"), "2024-01"):
			_, _ = fmt.Fprintf(w, `[{"iheader_id":4},{"iheader_id":4},%s,%s]`, midnight, fee)
		default:
			_, _ = fmt.Fprintf(w, `[%s,{"iheader_id":6},%s]`, midnight, fee)
		}
	})
	var ids, notes []string
	for p, err := range d.stream("datasync_invoices").Pages(context.Background(), sources.Resume{}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Each(func(r sources.Record) error { ids = append(ids, fmt.Sprint(r["iheader_id"])); return nil }); err != nil {
			t.Fatal(err)
		}
		if p.Note != "" {
			notes = append(notes, p.Note)
		}
	}
	if got := strings.Join(ids, " "); got != "5 6 fee 4 4 fee" { // newest window first
		t.Errorf("records %s, want 5 6 fee 4 4 fee", got)
	}
	if len(notes) != 1 || !strings.HasPrefix(notes[0], "1 records came back in two adjacent windows byte for byte") {
		t.Errorf("notes %q", notes)
	}
	for p, err := range d.stream("datasync_charges").Pages(context.Background(), sources.Resume{}) {
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Each(func(sources.Record) error { t.Error("a record from null"); return nil }); !errors.Is(err, jsonrec.ErrNull) || !strings.Contains(err.Error(), "GET /datasync?") {
			t.Errorf("a null window: %v", err)
		}
	}
}

// Only the boundary's own midnight marks a copy: the date, or the datetime at 00:00:00 with zero
// fractions, in any zone; any later instant that day does not.
func TestIsMidnight(t *testing.T) {
	for s, want := range map[string]bool{
		"2024-02-01": true, "2024-02-01 00:00:00": true, "2024-02-01T00:00:00.000": true,
		"2024-02-01T00:00:00Z": true, "2024-02-01 00:00:00.0000000+02:00": true,
		"2024-02-01 00:00:00.001": false, "2024-02-01T00:00:01": false, "2024-02-01x": false,
		"2024-02-01T00:00:00.": false, "2024-02-011": false, "2024-01-31 23:59:59.999": false, "": false,
	} {
		if got := isMidnight(s, "2024-02-01"); got != want {
			t.Errorf("isMidnight(%q) = %v", s, got)
		}
	}
}
