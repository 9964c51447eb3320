package signicat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/sources/sourcetest"
)

// basePath is where the test API lives: a request built from an absolute path instead of the base URL
// misses it and gets a 404.
const basePath = "/account-management"

// The test organisation's invoices are read from January 2024, on 10 February 2024.
var (
	testSince = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	testNow   = time.Date(2024, 2, 10, 12, 0, 0, 0, time.UTC)
)

// apiDouble is the test API (see sourcetest.API) that serves the client-credentials token and checks
// the headers every request must carry: the bearer token, and Signicat-OrganizationId on the invoice
// endpoints (and only there among the lists); and the source configured to call it.
type apiDouble struct {
	*sourcetest.API
	t   *testing.T
	cfg *config.Signicat
}

func newDouble(t *testing.T) *apiDouble {
	token := func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.FormValue("client_id") != "id" || r.FormValue("grant_type") != "client_credentials" {
			t.Errorf("token request %s %s %v", r.Method, r.URL, r.Form)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"tok","expires_in":600,"token_type":"Bearer"}`))
	}
	api := sourcetest.New(t, basePath, sourcetest.Options{Outside: map[string]http.HandlerFunc{"/token": token}, Check: func(r *http.Request, rel string) {
		if got := r.Header.Get("Authorization"); got != "Bearer tok" {
			t.Errorf("%s %s: Authorization %q", r.Method, r.URL, got)
		}
		org := r.Header.Get("Signicat-OrganizationId")
		if strings.HasPrefix(rel, "/invoices") && org != "o-1" {
			t.Errorf("%s %s: Signicat-OrganizationId %q, want o-1", r.Method, r.URL, org)
		}
		if slices.Contains([]string{"/organizations", "/accounts", "/contacts"}, rel) && org != "" {
			t.Errorf("%s %s: a list sent Signicat-OrganizationId %q", r.Method, r.URL, org)
		}
	}})
	days := 1
	cfg := &config.Signicat{BaseURL: api.BaseURL, TokenURL: api.URL + "/token", ClientID: "id", ClientSecret: "secret",
		OrganizationID: "o-1", PageLimit: 25, AccountDetailDays: &days, Since: config.Date{Time: testSince}}
	return &apiDouble{API: api, t: t, cfg: cfg}
}

// stream is the source's stream called name.
func (d *apiDouble) stream(name string) *sources.Stream {
	d.t.Helper()
	d.cfg.Streams = []string{name}
	all, err := New(d.cfg, config.DefaultLimits, httpclient.New(httpclient.Options{MaxAttempts: 1}), func() time.Time { return testNow }).Streams()
	if err != nil || len(all) != 1 {
		d.t.Fatalf("%s: %v", name, err)
	}
	return all[0]
}

// read reads every page of s as the pipeline does: the records, the items that failed, the first error.
func read(s *sources.Stream, resume sources.Resume) (recs []sources.Record, failed []string, err error) {
	for p, err := range s.Pages(context.Background(), resume) {
		if err != nil {
			return recs, failed, err
		}
		if p.Failed != nil {
			failed = append(failed, p.Failed.Item)
		}
		if _, err := p.Each(func(r sources.Record) error { recs = append(recs, r); return nil }); err != nil {
			return recs, failed, err
		}
	}
	return recs, failed, nil
}

// req is a GET request as the test API records it; kv are the query's keys and values.
func req(path string, kv ...string) string { return sourcetest.Req("GET", path, kv...) }

// invoiceWindows are the invoice list requests from testSince to testNow: a calendar month each, the
// last ending with the run's day, each asked one day wider on both sides (the reference does not say
// whether the bounds are inclusive).
var invoiceWindows = []string{
	req("/invoices", "invoiceDateAfter", "2023-12-31", "invoiceDateBefore", "2024-02-02"),
	req("/invoices", "invoiceDateAfter", "2024-01-31", "invoiceDateBefore", "2024-02-12"),
}

// answerInvoices lists INV-1 in January and INV-2 on 1 February, which both windows return (they
// overlap by the extra days).
func answerInvoices(w http.ResponseWriter, r *http.Request) {
	inv1 := `{"invoiceNumber":"INV-1","invoiceDate":"2024-01-15T00:00:00Z","total":"10.00"}`
	inv2 := `{"invoiceNumber":"INV-2","invoiceDate":"2024-02-01T00:00:00Z","total":"20.00"}`
	if r.URL.Query().Get("invoiceDateAfter") == "2023-12-31" {
		_, _ = fmt.Fprintf(w, "[%s,%s]", inv1, inv2)
		return
	}
	_, _ = fmt.Fprintf(w, "[%s]", inv2)
}

// A {data, next} list follows next as the page parameter, with the configured limit on every page,
// and stops at the page without a next.
func TestListsFollowNextUntilThereIsNone(t *testing.T) {
	for _, path := range []string{"/organizations", "/contacts"} {
		d := newDouble(t)
		d.Mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("page") {
			case "":
				_, _ = w.Write([]byte(`{"data":[{"id":"a"},{"id":"b"}],"next":"p2"}`))
			case "p2":
				_, _ = w.Write([]byte(`{"data":[{"id":"c"}],"next":null}`))
			default:
				t.Errorf("asked %s", r.URL)
			}
		})
		recs, _, err := read(d.stream(strings.TrimPrefix(path, "/")), sources.Resume{})
		if err != nil || len(recs) != 3 {
			t.Fatalf("%s: %d records, %v", path, len(recs), err)
		}
		if got, want := d.Requests(), []string{req(path, "limit", "25"), req(path, "limit", "25", "page", "p2")}; !slices.Equal(got, want) {
			t.Errorf("%s asked %q, want %q", path, got, want)
		}
	}
}

// accounts lists the active accounts, then the soft-deleted ones (deleted=true), and reads each one's
// detail for its products, the deleted ones' with deleted=true.
func TestAccountsListBothAndReadEachDetail(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("deleted") == "true" {
			_, _ = w.Write([]byte(`{"data":[{"id":"a-9","name":"gone"}],"next":null}`))
			return
		}
		_, _ = w.Write([]byte(`{"data":[{"id":"a-1","name":"one"},{"id":"a-2","name":"two"}],"next":null}`))
	})
	d.Mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"id":%q,"products":[{"name":"p-%s"}]}`, r.PathValue("id"), r.PathValue("id"))
	})
	recs, failed, err := read(d.stream("accounts"), sources.Resume{})
	if err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}
	want := []string{
		req("/accounts", "limit", "25"), req("/accounts", "deleted", "true", "limit", "25"),
		req("/accounts/a-1"), req("/accounts/a-2"), req("/accounts/a-9", "deleted", "true"),
	}
	if got := d.Requests(); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("asked\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	products := map[string]string{}
	for _, r := range recs {
		products[r["id"].(string)] = fmt.Sprint(r["products"])
	}
	if len(recs) != 3 || products["a-9"] != "[map[name:p-a-9]]" {
		t.Errorf("accounts %v", recs)
	}
}

// invoices asks each month window (one day wider on both sides), with the organisation header, and
// keeps an invoice that two windows return byte for byte once.
func TestInvoicesAskEachWindowOnce(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /invoices", answerInvoices)
	recs, _, err := read(d.stream("invoices"), sources.Resume{})
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Requests(); !slices.Equal(got, invoiceWindows) {
		t.Errorf("asked\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(invoiceWindows, "\n  "))
	}
	if len(recs) != 2 {
		t.Errorf("%d invoices, want INV-1 and INV-2 once each: %v", len(recs), recs)
	}
}

// invoice_lines and invoice_pdfs list the invoices and ask each invoice's detail or PDF once, escaped
// as a path segment, skipping those the run says are done; a detail's lines are numbered from 1.
func TestPerInvoiceStreamsAskEachInvoiceOnce(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /invoices", answerInvoices)
	d.Mux.HandleFunc("GET /invoices/{n}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"invoiceNumber":%q,"invoiceDate":"2024-01-15T00:00:00Z","lines":[{"amount":"1"},{"amount":"2"}]}`, r.PathValue("n"))
	})
	d.Mux.HandleFunc("GET /invoices/{n}/pdf", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pdf")
		_, _ = w.Write([]byte("%PDF-1.7 " + r.PathValue("n")))
	})
	skip2 := sources.Resume{Done: func(unit string) bool { return unit == "INV-2" }}

	recs, failed, err := read(d.stream("invoice_lines"), skip2)
	if err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}
	if got, want := d.Requests(), slices.Sorted(slices.Values(append([]string{req("/invoices/INV-1")}, invoiceWindows...))); !slices.Equal(got, want) {
		t.Errorf("invoice_lines asked\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(recs) != 2 || fmt.Sprintf("%v %v", recs[0]["lineNumber"], recs[1]["lineNumber"]) != "1 2" || recs[1]["invoiceNumber"] != "INV-1" {
		t.Errorf("lines %v", recs)
	}

	recs, failed, err = read(d.stream("invoice_pdfs"), skip2)
	if err != nil || len(failed) > 0 {
		t.Fatal(err, failed)
	}
	want := append([]string{req("/invoices/INV-1/pdf")}, invoiceWindows...)
	if got := d.Requests(); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("invoice_pdfs asked\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(recs) != 1 || recs[0]["invoiceNumber"] != "INV-1" {
		t.Errorf("PDFs %v, want INV-1's", recs)
	}
}

// An answer that is not a PDF fails that invoice, not the stream; the other invoices' PDFs are kept.
func TestAnswerThatIsNotAPDFFailsItsInvoice(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /invoices", answerInvoices)
	d.Mux.HandleFunc("GET /invoices/{n}/pdf", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("n") == "INV-2" {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>maintenance</html>"))
			return
		}
		_, _ = w.Write([]byte("%PDF-1.7"))
	})
	recs, failed, err := read(d.stream("invoice_pdfs"), sources.Resume{})
	if err != nil || len(recs) != 1 || !slices.Equal(failed, []string{"INV-2"}) {
		t.Fatalf("%d PDFs, failed %v, %v", len(recs), failed, err)
	}
}

// invoice_pdfs costs a request per invoice: a config without a streams list leaves it out, and pdfs
// adds it to whatever is selected.
func TestPDFsAreReadOnlyWhenAskedFor(t *testing.T) {
	for _, c := range []struct {
		streams []string
		pdfs    bool
		want    string
	}{
		{nil, false, "organizations accounts contacts invoices invoice_lines"},
		{nil, true, "organizations accounts contacts invoices invoice_lines invoice_pdfs"},
		{[]string{"invoices"}, true, "invoices invoice_pdfs"},
		{[]string{"invoice_pdfs"}, false, "invoice_pdfs"},
	} {
		days := 1
		cfg := &config.Signicat{BaseURL: "https://api.example.com/am", Streams: c.streams, PDFs: c.pdfs, AccountDetailDays: &days}
		all, err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).Streams()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range all {
			names = append(names, s.Name)
		}
		if got := strings.Join(names, " "); got != c.want {
			t.Errorf("streams %v, pdfs %v: %s, want %s", c.streams, c.pdfs, got, c.want)
		}
	}
}

// A later run reads the detail only of accounts whose list entry changed (or whose products are
// account_detail_days old); the others keep the products read before.
func TestAccountDetailsAreReadAgainOnlyWhenChanged(t *testing.T) {
	d := newDouble(t)
	var renamed sync.Map
	d.Mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("deleted") == "true" {
			_, _ = w.Write([]byte(`{"data":[],"next":null}`))
			return
		}
		name := "two"
		if _, ok := renamed.Load("a-2"); ok {
			name = "two, renamed"
		}
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"a-1","name":"one"},{"id":"a-2","name":%q}],"next":null}`, name)
	})
	d.Mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"id":%q,"products":[{"name":"p-%s","price":12.50}]}`, r.PathValue("id"), r.PathValue("id"))
	})
	first := d.stream("accounts")
	if _, _, err := read(first, sources.Resume{}); err != nil {
		t.Fatal(err)
	}
	d.Requests()
	first.State.Commit()
	renamed.Store("a-2", true)
	next := d.stream("accounts")
	next.State.Memo = first.State.Memo
	recs, _, err := read(next, sources.Resume{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{req("/accounts", "limit", "25"), req("/accounts", "deleted", "true", "limit", "25"), req("/accounts/a-2")}
	if got := d.Requests(); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("asked\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	if len(recs) != 2 || fmt.Sprint(recs[0]["products"]) != "[map[name:p-a-1 price:12.50]]" {
		t.Errorf("a-1 kept %v, want the products read before, their price exact", recs)
	}
}

// An account whose detail fails on a later run keeps the products read before, their prices exact to
// the last digit (read back from the memo as numbers, not float64).
func TestFailedAccountDetailKeepsExactProducts(t *testing.T) {
	d := newDouble(t)
	var failing atomic.Bool
	d.Mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
		name := "one"
		if failing.Load() {
			name = "one, renamed" // a changed list entry: the detail is read again
		}
		if r.URL.Query().Get("deleted") == "true" {
			_, _ = w.Write([]byte(`{"data":[],"next":null}`))
			return
		}
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"a-1","name":%q}],"next":null}`, name)
	})
	const products = `[{"discount":0.1,"name":"p","price":12345678901234567.89,"units":9007199254740993}]` // keys sorted, as a map marshals
	d.Mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		if failing.Load() {
			http.Error(w, "detail unavailable", http.StatusNotFound)
			return
		}
		_, _ = fmt.Fprintf(w, `{"id":%q,"products":%s}`, r.PathValue("id"), products)
	})
	first := d.stream("accounts")
	if _, _, err := read(first, sources.Resume{}); err != nil {
		t.Fatal(err)
	}
	first.State.Commit()
	failing.Store(true)
	next := d.stream("accounts")
	next.State.Memo = first.State.Memo
	recs, failed, err := read(next, sources.Resume{})
	if err != nil || len(recs) != 1 || !slices.Equal(failed, []string{"a-1"}) {
		t.Fatalf("records %v, failed %v: %v; want a-1 kept and its detail failed", recs, failed, err)
	}
	got, err := json.Marshal(recs[0]["products"])
	if err != nil || string(got) != products {
		t.Errorf("a-1's products after a failed detail (%v):\n  %s\nwant\n  %s", err, got, products)
	}
}

// A next link that is an absolute URL is followed within the API's origin, and refused (the token is
// sent nowhere else) when it points elsewhere.
func TestNextLinkIsFollowedOnlyWithinTheAPI(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /contacts", func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("page") {
		case "":
			_, _ = fmt.Fprintf(w, `{"data":[{"id":"a"}],"next":%q}`, d.cfg.BaseURL+"/contacts?limit=25&page=abs")
		case "abs":
			_, _ = w.Write([]byte(`{"data":[{"id":"b"}],"next":"https://collector.example/steal"}`))
		}
	})
	recs, _, err := read(d.stream("contacts"), sources.Resume{})
	if err == nil || !strings.Contains(err.Error(), "the next link points to https://collector.example:443, not to the API") {
		t.Fatalf("err %v", err)
	}
	if got, want := d.Requests(), []string{req("/contacts", "limit", "25"), req("/contacts", "limit", "25", "page", "abs")}; !slices.Equal(got, want) || len(recs) != 2 {
		t.Errorf("asked %q for %d records, want %q", got, len(recs), want)
	}
}

// A next link relative to the page it came on — root-relative, a query, a path segment — is resolved
// against that page and followed as a link when it asks the same list with a query of its own; one
// leading anywhere else is the opaque token it may be (a token may start with "/"), and a relative
// one that leaves the API's host is refused: the token is sent nowhere else.
func TestRelativeNextLinkIsResolvedWithinTheAPI(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /contacts", func(w http.ResponseWriter, r *http.Request) {
		next := map[string]string{
			"":        basePath + "/contacts?limit=25&page=root",
			"root":    "?limit=25&page=query",
			"query":   "contacts?limit=25&page=segment",
			"segment": "/tok+/=",
			"/tok+/=": "//collector.example" + basePath + "/contacts?limit=25&page=steal",
		}[r.URL.Query().Get("page")]
		_, _ = fmt.Fprintf(w, `{"data":[{"id":%q}],"next":%q}`, r.URL.Query().Get("page"), next)
	})
	recs, _, err := read(d.stream("contacts"), sources.Resume{})
	if err == nil || !strings.Contains(err.Error(), "the next link points to http://collector.example:80, not to the API") {
		t.Fatalf("err %v", err)
	}
	want := []string{req("/contacts", "limit", "25")}
	for _, page := range []string{"root", "query", "segment", "/tok+/="} {
		want = append(want, req("/contacts", "limit", "25", "page", page))
	}
	slices.Sort(want)
	if got := d.Requests(); !slices.Equal(got, want) || len(recs) != 5 {
		t.Errorf("asked %q for %d records, want %q", got, len(recs), want)
	}
}

// A list whose every page names another next page stops at max_pages, failing the stream.
func TestEndlessListStopsAtMaxPages(t *testing.T) {
	d := newDouble(t)
	var n atomic.Int64
	d.Mux.HandleFunc("GET /organizations", func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"o-%d"}],"next":"p%d"}`, i, i)
	})
	limits := config.DefaultLimits
	limits.MaxPages = 3
	d.cfg.Streams = []string{"organizations"}
	all, err := New(d.cfg, limits, httpclient.New(httpclient.Options{MaxAttempts: 1}), func() time.Time { return testNow }).Streams()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = read(all[0], sources.Resume{})
	if err == nil || !strings.Contains(err.Error(), "GET /organizations: more than 3 pages (max_pages)") || len(d.Requests()) != 3 {
		t.Fatalf("after %d requests: %v", n.Load(), err)
	}
}

// data: null is read as an empty list, and the page says so, naming the request.
func TestNullDataIsAnEmptyNotedPage(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /contacts", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"data":null,"next":null}`))
	})
	var notes []string
	n := 0
	for p, err := range d.stream("contacts").Pages(context.Background(), sources.Resume{}) {
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Records)
		if p.Note != "" {
			notes = append(notes, p.Note)
		}
	}
	if n != 0 || !slices.Equal(notes, []string{"GET /contacts: data is null, read as an empty list"}) {
		t.Errorf("%d records, notes %q", n, notes)
	}
}

// failures reads every page of s and returns its failed items as "item: error", and its records.
func failures(t *testing.T, s *sources.Stream) (recs []sources.Record, failed []string) {
	t.Helper()
	for p, err := range s.Pages(context.Background(), sources.Resume{}) {
		if err != nil {
			t.Fatal(err)
		}
		if f := p.Failed; f != nil {
			if !f.Retry {
				t.Errorf("%s failed for good: %v", f.Item, f.Err)
			}
			failed = append(failed, f.Item+": "+f.Err.Error())
		}
		if _, err := p.Each(func(r sources.Record) error { recs = append(recs, r); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	return recs, failed
}

// GET /invoices/{invoiceNumber} answered with another invoice's detail, or one without its number,
// without lines or with lines null, fails that invoice (asked again next run) instead of storing wrong
// lines or none; "lines": [] is an invoice without lines.
func TestInvoiceDetailThatIsNotTheInvoiceAskedFailsIt(t *testing.T) {
	for body, want := range map[string]string{
		`{"invoiceNumber":"INV-9","lines":[{"amount":"9"}]}`: `INV-2: GET /invoices/INV-2: the detail is invoice "INV-9"'s, not INV-2's`,
		`{}`:                                     `INV-2: GET /invoices/INV-2: the detail has no invoiceNumber`,
		`{"invoiceNumber":"INV-2"}`:              `INV-2: GET /invoices/INV-2: the detail has no lines`,
		`{"invoiceNumber":"INV-2","lines":null}`: `INV-2: GET /invoices/INV-2: the detail's lines are null, not an array`,
		`{"invoiceNumber":"INV-2","lines":{}}`:   `INV-2: GET /invoices/INV-2: the detail's lines are an object, not an array`,
		`{"invoiceNumber":"INV-2","lines":[]}`:   ``,
	} {
		d := newDouble(t)
		d.Mux.HandleFunc("GET /invoices", answerInvoices)
		d.Mux.HandleFunc("GET /invoices/{n}", func(w http.ResponseWriter, r *http.Request) {
			if n := r.PathValue("n"); n != "INV-2" {
				_, _ = fmt.Fprintf(w, `{"invoiceNumber":%q,"lines":[{"amount":"1"}]}`, n)
				return
			}
			_, _ = w.Write([]byte(body))
		})
		recs, failed := failures(t, d.stream("invoice_lines"))
		if len(recs) != 1 || recs[0]["invoiceNumber"] != "INV-1" {
			t.Errorf("%s: lines %v, want INV-1's alone", body, recs)
		}
		if want == "" && len(failed) > 0 || want != "" && !slices.Equal(failed, []string{want}) {
			t.Errorf("%s: failed %q, want %q", body, failed, want)
		}
	}
}

// GET /accounts/{id} answered with another account's detail, or {}, fails that account (asked again
// next run) and keeps the products read before, instead of storing another account's or none.
func TestAccountDetailThatIsNotTheAccountAskedFailsIt(t *testing.T) {
	for body, want := range map[string]string{
		`{"id":"a-2","products":["sign"]}`: `a-1: GET /accounts/a-1: the detail is account "a-2"'s, not a-1's`,
		`{}`:                               `a-1: GET /accounts/a-1: the detail has no id`,
	} {
		d := newDouble(t)
		var wrong atomic.Bool
		d.Mux.HandleFunc("GET /accounts", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("deleted") == "true" {
				_, _ = w.Write([]byte(`{"data":[],"next":null}`))
				return
			}
			name := "one"
			if wrong.Load() {
				name = "one, renamed" // a changed list entry: the detail is read again
			}
			_, _ = fmt.Fprintf(w, `{"data":[{"id":"a-1","name":%q}],"next":null}`, name)
		})
		d.Mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
			if wrong.Load() {
				_, _ = w.Write([]byte(body))
				return
			}
			_, _ = fmt.Fprintf(w, `{"id":%q,"products":["auth"]}`, r.PathValue("id"))
		})
		first := d.stream("accounts")
		if _, failed := failures(t, first); len(failed) > 0 {
			t.Fatal(failed)
		}
		first.State.Commit()
		wrong.Store(true)
		next := d.stream("accounts")
		next.State.Memo = first.State.Memo
		recs, failed := failures(t, next)
		if !slices.Equal(failed, []string{want}) {
			t.Errorf("%s: failed %q, want %q", body, failed, want)
		}
		if len(recs) != 1 || fmt.Sprint(recs[0]["products"]) != "[auth]" {
			t.Errorf("%s: accounts %v, want a-1 with the products read before", body, recs)
		}
	}
}

// A list whose next tokens are new but whose page repeats an earlier page's records byte for byte
// fails the stream naming the page, instead of loading the records twice.
func TestPageRepeatingAnEarlierPageFailsTheList(t *testing.T) {
	d := newDouble(t)
	d.Mux.HandleFunc("GET /organizations", func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Query().Get("page"); p {
		case "":
			_, _ = w.Write([]byte(`{"data":[{"id":"a"}],"next":"p2"}`))
		case "p2", "p3":
			_, _ = fmt.Fprintf(w, `{"data":[{"id":"b"},{"id":"c"}],"next":%q}`, map[string]string{"p2": "p3", "p3": "p4"}[p])
		default:
			t.Errorf("asked %s", r.URL)
		}
	})
	_, _, err := read(d.stream("organizations"), sources.Resume{})
	if err == nil || !strings.Contains(err.Error(), "GET /organizations: page 3 is identical to page 2") {
		t.Fatalf("err %v", err)
	}
	want := []string{req("/organizations", "limit", "25"), req("/organizations", "limit", "25", "page", "p2"), req("/organizations", "limit", "25", "page", "p3")}
	if got := d.Requests(); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("asked %q, want %q", got, want)
	}
}

// A list that keeps answering empty pages with a new next token fails the stream after
// maxEmptyPages of them, instead of walking on to max_pages.
func TestEmptyPagesWithANextFailTheList(t *testing.T) {
	d := newDouble(t)
	var n atomic.Int64
	d.Mux.HandleFunc("GET /contacts", func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			_, _ = w.Write([]byte(`{"data":[{"id":"a"}],"next":"p1"}`))
			return
		}
		_, _ = fmt.Fprintf(w, `{"data":[],"next":"p%d"}`, n.Load())
	})
	_, _, err := read(d.stream("contacts"), sources.Resume{})
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("GET /contacts: pages 2 to %d are empty, yet each names a next page", maxEmptyPages+1)) {
		t.Fatalf("after %d requests: %v", n.Load(), err)
	}
	if got := n.Load(); got != maxEmptyPages+1 {
		t.Errorf("%d requests, want %d", got, maxEmptyPages+1)
	}
}

// GET /invoices answers an array (spec): a window answered null is no empty window but a failed
// attempt, asked again; one still null on the last attempt fails the stream naming the window (a
// failed stream commits no watermark, so the next run asks for that window again).
func TestNullInvoiceWindowIsAskedAgainThenFailsTheStream(t *testing.T) {
	for _, times := range []int64{1, 3} {
		d := newDouble(t)
		var nulls atomic.Int64
		d.Mux.HandleFunc("GET /invoices", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("invoiceDateAfter") == "2023-12-31" && nulls.Add(1) <= times {
				_, _ = w.Write([]byte(" null\n"))
				return
			}
			answerInvoices(w, r)
		})
		d.cfg.Streams = []string{"invoices"}
		client := httpclient.New(httpclient.Options{MaxAttempts: 3, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
		all, err := New(d.cfg, config.DefaultLimits, client, func() time.Time { return testNow }).Streams()
		if err != nil {
			t.Fatal(err)
		}
		recs, _, err := read(all[0], sources.Resume{})
		switch {
		case times == 1 && (err != nil || len(recs) != 2):
			t.Errorf("null once: %d invoices, %v; want the window asked again and both invoices", len(recs), err)
		case times == 3 && (err == nil || !strings.Contains(err.Error(), "gave up after 3 attempts: GET ") ||
			!strings.Contains(err.Error(), "invoiceDateAfter=2023-12-31&invoiceDateBefore=2024-02-02") || !strings.Contains(err.Error(), "is null")):
			t.Errorf("null every time: %v; want the stream failed naming the window", err)
		}
	}
}
