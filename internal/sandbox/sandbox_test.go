package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	srv, err := Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func do(t *testing.T, method, u string, hdr map[string]string, body io.Reader) (resp, error) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body)
	return resp{r.StatusCode, r.Header, b}, err
}

func mustDo(t *testing.T, method, u string, hdr map[string]string, body io.Reader) resp {
	t.Helper()
	r, err := do(t, method, u, hdr, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return r
}

func signicatToken(t *testing.T, srv *Server) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"signicat-api"}, "client_id": {ClientID}, "client_secret": {ClientSecret}}
	r := mustDo(t, "POST", srv.SignicatTokenURL(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(form.Encode()))
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		TokenType   string `json:"token_type"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &tok) != nil || tok.AccessToken == "" || tok.TokenType != "Bearer" {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	return tok.AccessToken
}

func gsToken(t *testing.T, srv *Server) string {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.GSAPIBaseURL()+"/welcome", nil)
	req.SetBasicAuth(GSAPIUser, GSAPIPassword)
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	tok := r.Header.Get("VompApiToken")
	if r.StatusCode != 200 || tok == "" {
		t.Fatalf("welcome: %d, token %q", r.StatusCode, tok)
	}
	return tok
}

// listAll walks a Signicat {data,next} list and returns every item.
func listAll(t *testing.T, srv *Server, tok, path string, limit int) []map[string]any {
	t.Helper()
	var all []map[string]any
	page, seen := "", map[string]bool{}
	for {
		u := fmt.Sprintf("%s%s%slimit=%d&page=%s", srv.SignicatBaseURL(), path, sep(path), limit, url.QueryEscape(page))
		r := mustDo(t, "GET", u, map[string]string{"Authorization": "Bearer " + tok}, nil)
		if r.status != 200 {
			t.Fatalf("%s: %d %s", u, r.status, r.body)
		}
		var pg struct {
			Data []map[string]any `json:"data"`
			Next *string          `json:"next"`
		}
		if err := json.Unmarshal(r.body, &pg); err != nil {
			t.Fatal(err)
		}
		if len(pg.Data) > limit {
			t.Fatalf("page of %d items exceeds limit %d", len(pg.Data), limit)
		}
		all = append(all, pg.Data...)
		if pg.Next == nil {
			return all
		}
		if seen[*pg.Next] {
			t.Fatalf("next token %q repeated", *pg.Next)
		}
		seen[*pg.Next], page = true, *pg.Next
	}
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

func TestSignicatListsPageThroughEveryRecord(t *testing.T) {
	srv := start(t, Options{Scale: 0.1})
	d, tok := srv.Data(), signicatToken(t, srv)
	cases := []struct {
		path string
		want int
	}{
		{"/accounts", 2 + d.SignicatAccounts},
		{"/accounts?deleted=true", d.SignicatDeleted},
		{"/contacts", 1 + d.SignicatContacts},
		{"/organizations", 2 + d.SignicatOrganizations},
	}
	for _, c := range cases {
		for _, limit := range []int{1, 7, 50, 1000} {
			items := listAll(t, srv, tok, c.path, limit)
			if len(items) != c.want {
				t.Errorf("%s limit %d: %d items, want %d", c.path, limit, len(items), c.want)
			}
			ids := map[any]bool{}
			for _, it := range items {
				if ids[it["id"]] {
					t.Fatalf("%s: id %v twice", c.path, it["id"])
				}
				ids[it["id"]] = true
				deleted := it["isSoftDeleted"] == true
				if strings.HasPrefix(c.path, "/accounts") && deleted != strings.Contains(c.path, "deleted=true") {
					t.Fatalf("%s: account %v has isSoftDeleted=%v", c.path, it["id"], it["isSoftDeleted"])
				}
			}
		}
	}
}

func TestSignicatPublishedExamplesVerbatim(t *testing.T) {
	srv := start(t, Options{Scale: 0.01})
	tok := signicatToken(t, srv)
	accts := listAll(t, srv, tok, "/accounts", 50)
	var want []map[string]any
	_ = json.Unmarshal(example("signicat_accounts"), &want)
	delete(want[0], "products") // the list shape has no products
	if !reflect.DeepEqual(accts[:2], want) {
		t.Fatalf("published accounts differ:\n got %v\nwant %v", accts[:2], want)
	}
	r := mustDo(t, "GET", srv.SignicatBaseURL()+"/accounts/a-ppge-ovC1eMDgt0hkgqZUSaPh", map[string]string{"Authorization": "Bearer " + tok}, nil)
	var detail map[string]any
	_ = json.Unmarshal(r.body, &detail)
	if fmt.Sprint(detail["products"]) != "[auth auth-nbid auth-sbid sign sign-nbid]" {
		t.Fatalf("account detail products = %v", detail["products"])
	}
	contacts := listAll(t, srv, tok, "/contacts", 50)
	if contacts[0]["name"] != "Harald Hårfagre" || contacts[0]["email"] != "harald@hårfagre.no" {
		t.Fatalf("published contact = %v", contacts[0])
	}
}

// The examples embedded in the sandbox must stay what spec/ prints; checked when shared/ is beside the repo.
func TestGSAPIExamplesMatchSpec(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "spec", "goodsign-gsapi.postman_collection.json"))
	if err != nil {
		t.Skip("shared/spec not beside the repository")
	}
	var coll struct {
		Item []json.RawMessage `json:"item"`
	}
	_ = json.Unmarshal(raw, &coll)
	bodies := map[string]any{}
	var walk func([]json.RawMessage)
	walk = func(items []json.RawMessage) {
		for _, it := range items {
			var n struct {
				Name     string            `json:"name"`
				Item     []json.RawMessage `json:"item"`
				Response []struct {
					Code int    `json:"code"`
					Body string `json:"body"`
				} `json:"response"`
			}
			_ = json.Unmarshal(it, &n)
			walk(n.Item)
			for _, r := range n.Response {
				var v any
				if r.Code == 200 && json.Unmarshal([]byte(r.Body), &v) == nil {
					bodies[n.Name] = v
				}
			}
		}
	}
	walk(coll.Item)
	for name, file := range map[string]string{"List Organizations": "gsapi_organizations_list", "List Billing Infos": "gsapi_organizationbillinginfos_list",
		"List Users": "gsapi_users_list", "List Prices": "gsapi_pricings_list", "List Contracts": "gsapi_contracts_list", "List Objects": "gsapi_objects_list",
		"Datatable List": "gsapi_datatable_servicenowservers", "List Countrycodes": "gsapi_countrycodes_list"} {
		var got any
		_ = json.Unmarshal(example(file), &got)
		if !reflect.DeepEqual(got, bodies[name]) {
			t.Errorf("%s: embedded example differs from spec", name)
		}
	}
}

func TestSignicatTokenExpiryAndErrors(t *testing.T) {
	srv := start(t, Options{Scale: 0.01, TokenTTL: 300 * time.Millisecond})
	tok := signicatToken(t, srv)
	auth := map[string]string{"Authorization": "Bearer " + tok}
	if r := mustDo(t, "GET", srv.SignicatBaseURL()+"/accounts", auth, nil); r.status != 200 {
		t.Fatalf("fresh token: %d", r.status)
	}
	time.Sleep(400 * time.Millisecond)
	r := mustDo(t, "GET", srv.SignicatBaseURL()+"/accounts", auth, nil)
	var p map[string]any
	_ = json.Unmarshal(r.body, &p)
	if r.status != 401 || p["code"] != "invalid_token" || p["traceId"] == nil || !strings.Contains(r.header.Get("Content-Type"), "problem+json") {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}
	bad := url.Values{"grant_type": {"client_credentials"}, "scope": {"signicat-api"}, "client_id": {ClientID}, "client_secret": {"wrong"}}
	r = mustDo(t, "POST", srv.SignicatTokenURL(), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, strings.NewReader(bad.Encode()))
	if r.status != 401 || !strings.Contains(string(r.body), "invalid_client") {
		t.Fatalf("bad secret: %d %s", r.status, r.body)
	}
	tok = signicatToken(t, srv)
	r = mustDo(t, "GET", srv.SignicatBaseURL()+"/accounts?page=garbage", map[string]string{"Authorization": "Bearer " + tok}, nil)
	if r.status != 400 || !strings.Contains(string(r.body), "invalidParams") {
		t.Fatalf("bad page token: %d %s", r.status, r.body)
	}
}

func TestSignicatInvoicesWindowsAndDetail(t *testing.T) {
	srv := start(t, Options{Scale: 0.2})
	d, tok := srv.Data(), signicatToken(t, srv)
	hdr := map[string]string{"Authorization": "Bearer " + tok, "Signicat-OrganizationId": OrganizationID}
	if r := mustDo(t, "GET", srv.SignicatBaseURL()+"/invoices", map[string]string{"Authorization": "Bearer " + tok}, nil); r.status != 403 {
		t.Fatalf("without Signicat-OrganizationId: %d", r.status)
	}
	r := mustDo(t, "GET", srv.SignicatBaseURL()+"/invoices?invoiceDateAfter=2000-01-01", hdr, nil)
	var all []map[string]any
	if err := json.Unmarshal(r.body, &all); err != nil {
		t.Fatalf("invoices is not a plain array: %v: %.200s", err, r.body)
	}
	if len(all) != d.SignicatInvoices+1 {
		t.Fatalf("all invoices: %d, want %d", len(all), d.SignicatInvoices+1)
	}
	// Bounds are exclusive: a window ending at an invoice's exact time does not include it.
	i := 7 // index 7 is snapped to a month start, 00:00:00.000
	at := d.SignicatInvoiceTime(i)
	if at.Hour() != 0 || at.Minute() != 0 || at.Day() != 1 {
		t.Fatalf("invoice 7 at %v, want a month start", at)
	}
	q := fmt.Sprintf("/invoices?invoiceDateAfter=%s&invoiceDateBefore=%s", url.QueryEscape(at.Add(-time.Hour).Format(time.RFC3339)), url.QueryEscape(at.Format(time.RFC3339)))
	r = mustDo(t, "GET", srv.SignicatBaseURL()+q, hdr, nil)
	if strings.Contains(string(r.body), d.SignicatInvoiceNumber(i)) {
		t.Fatalf("invoiceDateBefore is exclusive, yet %s at %v came back", d.SignicatInvoiceNumber(i), at)
	}
	num := d.SignicatInvoiceNumber(3)
	if !strings.ContainsAny(num, "-.") {
		t.Fatalf("invoice number %q has neither '-' nor '.'", num)
	}
	r = mustDo(t, "GET", srv.SignicatBaseURL()+"/invoices/"+url.PathEscape(num), hdr, nil)
	var inv struct {
		TotalCharge json.Number `json:"totalChargeAmount"`
		Lines       []struct {
			Charge json.Number `json:"lineTotalChargeAmount"`
		} `json:"lines"`
	}
	if err := json.Unmarshal(r.body, &inv); err != nil || len(inv.Lines) == 0 {
		t.Fatalf("detail %s: %d %s", num, r.status, r.body)
	}
	var sum float64
	for _, l := range inv.Lines {
		f, _ := l.Charge.Float64()
		sum += f
	}
	if tc, _ := inv.TotalCharge.Float64(); fmt.Sprintf("%.2f", sum) != fmt.Sprintf("%.2f", tc) {
		t.Fatalf("lines sum %.2f, header %s", sum, inv.TotalCharge)
	}
	r = mustDo(t, "GET", srv.SignicatBaseURL()+"/invoices/"+url.PathEscape(num)+"/pdf", hdr, nil)
	if r.status != 200 || !bytes.HasPrefix(r.body, []byte("%PDF-")) || r.header.Get("Content-Type") != "application/pdf" {
		t.Fatalf("pdf: %d %s", r.status, r.header.Get("Content-Type"))
	}
}

func TestGSAPIAuthModes(t *testing.T) {
	srv := start(t, Options{Scale: 0.01})
	r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/users/list?org_id=0", map[string]string{"VompApiToken": "not-a-token"}, nil)
	if r.status != 401 || string(r.body) != gsapiDenied {
		t.Fatalf("unknown token: %d %s", r.status, r.body)
	}
	tok := gsToken(t, srv)
	for _, hdr := range []map[string]string{{"VompApiToken": tok}, {"Authorization": "VompApiToken " + tok}, {"Authorization": "Bearer " + GSAPIJWT}} {
		if r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/users/list?org_id=0", hdr, nil); r.status != 200 {
			t.Fatalf("%v: %d %s", hdr, r.status, r.body)
		}
	}
}

func TestGSAPISlidingTokenExpiry(t *testing.T) {
	srv := start(t, Options{Scale: 0.01, TokenTTL: 300 * time.Millisecond})
	tok := gsToken(t, srv)
	for k := 0; k < 4; k++ { // each use extends the token, so 4 × 150 ms outlives the 300 ms TTL
		time.Sleep(150 * time.Millisecond)
		if r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/countrycodes/list", map[string]string{"VompApiToken": tok}, nil); r.status != 200 {
			t.Fatalf("use %d: %d", k, r.status)
		}
	}
	time.Sleep(400 * time.Millisecond)
	if r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/countrycodes/list", map[string]string{"VompApiToken": tok}, nil); r.status != 401 {
		t.Fatalf("idle token: %d, want 401", r.status)
	}
}

func getArray(t *testing.T, srv *Server, tok, pathQuery string) []map[string]any {
	t.Helper()
	r := mustDo(t, "GET", srv.GSAPIBaseURL()+pathQuery, map[string]string{"VompApiToken": tok}, nil)
	var rows []map[string]any
	if r.status != 200 || json.Unmarshal(r.body, &rows) != nil {
		t.Fatalf("%s: %d %.300s", pathQuery, r.status, r.body)
	}
	return rows
}

func TestDatasyncWindowsPartitionExactly(t *testing.T) {
	srv := start(t, Options{Scale: 0.5})
	tok, d := gsToken(t, srv), srv.Data()
	q := func(option, from, to string) string {
		return "/datasync?org_id=0&option=" + option + "&startdate=" + url.QueryEscape(from) + "&enddate=" + url.QueryEscape(to)
	}
	for _, opt := range []struct{ name, key, date string }{{"Invoices", "iheader_id", "invoice_date"}, {"InvoiceLines", "iline_id", "invoice_date"}, {"Charges", "charge_id", "calldate"}} {
		whole := getArray(t, srv, tok, q(opt.name, "2021-01-01", "2025-12-31 23:59:59.997"))
		seen := map[any]int{}
		var edges int
		for m := time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC); m.Year() < 2026; m = m.AddDate(0, 1, 0) {
			last := m.AddDate(0, 1, -1).Format("2006-01-02") + " 23:59:59.997"
			for _, row := range getArray(t, srv, tok, q(opt.name, m.Format("2006-01-02"), last)) {
				seen[row[opt.key]]++
				if s := row[opt.date].(string); strings.HasSuffix(s, "23:59:59.997") || strings.HasSuffix(s, "00:00:00.000") {
					edges++
				}
			}
		}
		if len(seen) != len(whole) {
			t.Errorf("%s: months give %d records, the whole range %d", opt.name, len(seen), len(whole))
		}
		for k, n := range seen {
			if n != 1 {
				t.Fatalf("%s: %v in %d monthly windows", opt.name, k, n)
			}
		}
		if edges == 0 {
			t.Errorf("%s: no record on a window boundary", opt.name)
		}
	}
	// A bare end date means midnight at its start: the last-day records after 00:00 are excluded.
	var last int
	for i := 0; i < d.GSInvoices; i++ {
		if at := d.GSInvoiceTime(i); at.Format("15:04:05.000") == "23:59:59.997" {
			last = i
			break
		}
	}
	at := d.GSInvoiceTime(last)
	day := at.Format("2006-01-02")
	for _, row := range getArray(t, srv, tok, q("Invoices", at.AddDate(0, 0, -3).Format("2006-01-02"), day)) {
		if strings.HasPrefix(row["invoice_date"].(string), day+" 23:59:59.997") {
			t.Fatalf("enddate=%s (bare date) returned a record at %s", day, row["invoice_date"])
		}
	}
	if rows := getArray(t, srv, tok, "/datasync?org_id=0&option=CallTickets"); len(rows) != 0 {
		t.Fatalf("CallTickets: %d rows, want an empty export", len(rows))
	}
	for i := 3; i <= 7; i++ {
		if rows := getArray(t, srv, tok, "/datasync?org_id=0&option_id="+strconv.Itoa(i)); len(rows) == 0 {
			t.Errorf("option_id %d: empty", i)
		}
	}
}

func TestInvoiceJournalTypesReconcile(t *testing.T) {
	srv := start(t, Options{Scale: 0.1})
	tok := gsToken(t, srv)
	w := "&startdate=2023-01-01&enddate=" + url.QueryEscape("2023-12-31 23:59:59")
	sum := func(rows []map[string]any, col string) (c int64) {
		for _, r := range rows {
			c += int64(r[col].(float64)*100 + 0.5)
		}
		return c
	}
	summary := getArray(t, srv, tok, "/invoicejournal/list?org_id=0&journaltype=Summary"+w)
	invoices := getArray(t, srv, tok, "/datasync?org_id=0&option=Invoices"+w)
	if len(summary) == 0 || len(summary) != len(invoices) {
		t.Fatalf("summary %d rows, datasync invoices %d", len(summary), len(invoices))
	}
	for _, jt := range []string{"Detail", "Accounting", "Full details", "full_details", "FullDetails"} {
		rows := getArray(t, srv, tok, "/invoicejournal/list?org_id=0&journaltype="+url.QueryEscape(jt)+w)
		if got, want := sum(rows, "net_amount"), sum(summary, "net_amount"); got != want {
			t.Errorf("%s: net %d cents, summary %d", jt, got, want)
		}
	}
	r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/invoicejournal/list?org_id=0&journaltype=bogus", map[string]string{"VompApiToken": tok}, nil)
	if r.status != 400 || !strings.Contains(string(r.body), "rettext") {
		t.Fatalf("bogus journaltype: %d %s", r.status, r.body)
	}
}

func datatablePage(t *testing.T, srv *Server, tok, table string, page, size int, body string) ([]map[string]any, int) {
	t.Helper()
	u := fmt.Sprintf("%s/datatable/list?tablename=%s&page=%d&pagesize=%d", srv.GSAPIBaseURL(), table, page, size)
	r := mustDo(t, "POST", u, map[string]string{"VompApiToken": tok, "Content-Type": "application/json"}, strings.NewReader(body))
	var rows []map[string]any
	if r.status != 200 || json.Unmarshal(r.body, &rows) != nil {
		t.Fatalf("%s: %d %.200s", u, r.status, r.body)
	}
	total, err := strconv.Atoi(r.header.Get("X-GSAPI-QueryTotalCount"))
	if err != nil {
		t.Fatalf("X-GSAPI-QueryTotalCount = %q", r.header.Get("X-GSAPI-QueryTotalCount"))
	}
	return rows, total
}

func TestDatatablePagingAndSortorderQuirk(t *testing.T) {
	srv := start(t, Options{Scale: 0.1})
	tok, n := gsToken(t, srv), srv.Data().GSTransactions
	sorted := `{"sortorder":["raw_id asc"]}`
	seen := map[any]bool{}
	first, total := datatablePage(t, srv, tok, "ctransactiondata", 1, 90, sorted)
	if total != n {
		t.Fatalf("total %d, want %d", total, n)
	}
	for p := 1; (p-1)*90 < total; p++ {
		rows, _ := datatablePage(t, srv, tok, "ctransactiondata", p, 90, sorted)
		for _, r := range rows {
			if seen[r["raw_id"]] {
				t.Fatalf("raw_id %v on two pages", r["raw_id"])
			}
			seen[r["raw_id"]] = true
		}
	}
	if len(seen) != n {
		t.Fatalf("sorted paging saw %d rows, want %d", len(seen), n)
	}
	// The documented quirk: without sortorder, page 2 is page 1 again, with no error.
	p1, _ := datatablePage(t, srv, tok, "ctransactiondata", 1, 90, `{}`)
	p2, _ := datatablePage(t, srv, tok, "ctransactiondata", 2, 90, `{}`)
	if !reflect.DeepEqual(p1, p2) || !reflect.DeepEqual(p1, first) {
		t.Fatal("without sortorder, page 2 should repeat page 1")
	}
	desc, _ := datatablePage(t, srv, tok, "ctransactiondata", 1, 5, `{"sortorder":["raw_id desc"]}`)
	if desc[0]["raw_id"].(float64) != float64(n) {
		t.Fatalf("raw_id desc starts at %v", desc[0]["raw_id"])
	}
	ex, total := datatablePage(t, srv, tok, "servicenowservers", 1, 10, sorted)
	if total != 2 || ex[1]["data1"] != "testdata2" {
		t.Fatalf("published servicenowservers rows: %v (total %d)", ex, total)
	}
	ig := start(t, Options{Scale: 0.1, IgnoreSortorder: true})
	itok := gsToken(t, ig)
	a, _ := datatablePage(t, ig, itok, "ctransactiondata", 1, 50, sorted)
	b, _ := datatablePage(t, ig, itok, "ctransactiondata", 3, 50, sorted)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("--ignore-sortorder should serve page 1 for every page")
	}
}

func TestDatatableFilterOperators(t *testing.T) {
	srv := start(t, Options{Scale: 0.05})
	tok, n := gsToken(t, srv), srv.Data().GSTransactions
	f := func(col, op string, val any) string {
		v, _ := json.Marshal(val)
		return fmt.Sprintf(`{"filters":[{"column":%q,"filter":[{"operator":%q,"value":%s}]}],"sortorder":["raw_id asc"]}`, col, op, v)
	}
	all, _ := datatablePage(t, srv, tok, "ctransactiondata", 1, n, `{"sortorder":["raw_id asc"]}`)
	count := func(pred func(map[string]any) bool) (c int) {
		for _, r := range all {
			if pred(r) {
				c++
			}
		}
		return c
	}
	cases := []struct {
		body string
		want int
	}{
		{f("raw_id", "greater", 100), n - 100},
		{f("raw_id", "lower", 11), 10},
		{f("raw_id", "eq", 5), 1},
		{f("event_type", "eq", "refund"), count(func(r map[string]any) bool { return r["event_type"] == "refund" })},
		{f("event_type", "neq", "refund"), count(func(r map[string]any) bool { return r["event_type"] != "refund" })},
		{f("ContractLineID", "contains", "-001"), count(func(r map[string]any) bool { return strings.Contains(r["ContractLineID"].(string), "-001") })},
		{f("data1", "isnull", nil), count(func(r map[string]any) bool { return r["data1"] == nil })},
		{f("data1", "isnotnull", nil), count(func(r map[string]any) bool { return r["data1"] != nil })},
		{f("imported", "lower", "2021-01-02"), count(func(r map[string]any) bool { return r["imported"].(string) < "2021-01-02" })},
	}
	for _, c := range cases {
		rows, total := datatablePage(t, srv, tok, "ctransactiondata", 1, n, c.body)
		if total != c.want || len(rows) != c.want || c.want == 0 && !strings.Contains(c.body, "eq") {
			t.Errorf("%s: total %d, rows %d, want %d", c.body, total, len(rows), c.want)
		}
	}
}

func TestRateLimitAnswers429WithRetryAfter(t *testing.T) {
	srv := start(t, Options{Scale: 0.01, RatePerSec: 5, Burst: 2})
	var limited int
	for k := 0; k < 10; k++ {
		r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/welcome", nil, nil)
		if r.status == 429 {
			limited++
			if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
				t.Fatalf("429 without a usable Retry-After: %q", r.header.Get("Retry-After"))
			}
		}
	}
	if limited == 0 {
		t.Fatal("10 immediate requests at 5/s with burst 2 were never limited")
	}
}

// A quota is kept and announced as AspNetCoreRateLimit does (the headers GSAPI's reference shows):
// each answer within it says what the window has left and when it ends; past it, a plain-text 429
// with Retry-After until the window ends and no X-Rate-Limit headers; a new window allows the quota
// again. Each API has its own.
func TestQuotaIsAnnouncedAndKept(t *testing.T) {
	srv := start(t, Options{Scale: 0.01, Quota: 3, QuotaPeriod: 2 * time.Second})
	first := time.Now()
	var resets []time.Time
	for k := range 5 {
		r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/welcome", nil, nil)
		if k < 3 {
			reset, err := time.Parse(time.RFC3339Nano, r.header.Get("X-Rate-Limit-Reset"))
			if r.status == 429 || r.header.Get("X-Rate-Limit-Limit") != "2s" || r.header.Get("X-Rate-Limit-Remaining") != strconv.Itoa(2-k) || err != nil ||
				!regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$`).MatchString(r.header.Get("X-Rate-Limit-Reset")) {
				t.Fatalf("request %d within the quota: %d %v", k+1, r.status, r.header)
			}
			resets = append(resets, reset)
			continue
		}
		if r.status != 429 || r.header.Get("Retry-After") != "2" || r.header.Get("X-Rate-Limit-Remaining") != "" ||
			!strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") || string(r.body) != "API calls quota exceeded! maximum admitted 3 per 2s." {
			t.Fatalf("request %d past the quota: %d %v %q", k+1, r.status, r.header, r.body)
		}
	}
	if resets[0] != resets[2] || resets[0].Before(first.Add(2*time.Second-50*time.Millisecond)) || resets[0].After(time.Now().Add(2*time.Second)) {
		t.Errorf("resets %v: want one window's end, 2 s after its first request", resets)
	}
	if r := mustDo(t, "GET", srv.SignicatBaseURL()+"/organizations", nil, nil); r.header.Get("X-Rate-Limit-Remaining") != "2" {
		t.Errorf("Signicat's first answer: %d %v, want its own window", r.status, r.header)
	}
	time.Sleep(time.Until(resets[0]))
	if r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/welcome", nil, nil); r.status == 429 || r.header.Get("X-Rate-Limit-Remaining") != "2" {
		t.Errorf("after the window: %d %v, want a new window", r.status, r.header)
	}
}

// Above Concurrency requests in flight the sandbox answers 429: with Retry-After: 1 by default, with no
// Retry-After when QuietLimit is set; within it, the API's own answer (401 here, without credentials).
func TestConcurrencyLimitAnswers429(t *testing.T) {
	for _, quiet := range []bool{false, true} {
		srv := start(t, Options{Scale: 0.01, Concurrency: 2, Latency: 300 * time.Millisecond, QuietLimit: quiet})
		rs := make([]resp, 5)
		var wg sync.WaitGroup
		for i := range rs {
			wg.Go(func() { rs[i] = mustDo(t, "GET", srv.GSAPIBaseURL()+"/welcome", nil, nil) })
		}
		wg.Wait()
		var ok, limited int
		for _, r := range rs {
			switch {
			case r.status != 429:
				ok++
			case r.status == 429 && quiet && r.header.Get("Retry-After") == "":
				limited++
			case r.status == 429 && !quiet && r.header.Get("Retry-After") == "1":
				limited++
			default:
				t.Errorf("quiet %v: answer %d with Retry-After %q", quiet, r.status, r.header.Get("Retry-After"))
			}
		}
		if ok != 2 || limited != 3 {
			t.Errorf("quiet %v: 5 requests at once against 2 allowed: %d answered, %d limited", quiet, ok, limited)
		}
	}
}

func TestFaultsBehaveAsDocumented(t *testing.T) {
	cases := []struct {
		name  string
		f     Faults
		check func(r resp, err error) bool
	}{
		{"reset", Faults{Reset: 1}, func(r resp, err error) bool { return err != nil }},
		{"truncate", Faults{Truncate: 1}, func(r resp, err error) bool {
			return err != nil && (errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "EOF"))
		}},
		{"429", Faults{RateLimited: 1}, func(r resp, err error) bool {
			return err == nil && r.status == 429 && r.header.Get("Retry-After") != ""
		}},
		{"503", Faults{Unavailable: 1}, func(r resp, err error) bool {
			return err == nil && r.status == 503 && r.header.Get("Retry-After") != ""
		}},
		{"5xx", Faults{ServerError: 1}, func(r resp, err error) bool { return err == nil && (r.status == 500 || r.status == 502) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := start(t, Options{Scale: 0.01})
			tok := gsToken(t, srv)
			srv.opts.Faults = c.f
			r, err := do(t, "GET", srv.GSAPIBaseURL()+"/datasync?org_id=0&option=Organizations", map[string]string{"VompApiToken": tok}, nil)
			if !c.check(r, err) {
				t.Fatalf("status %d, err %v, body %.100s", r.status, err, r.body)
			}
		})
	}
	t.Run("expire", func(t *testing.T) {
		srv := start(t, Options{Scale: 0.01})
		tok := gsToken(t, srv)
		srv.opts.Faults = Faults{TokenExpiry: 1}
		r := mustDo(t, "GET", srv.GSAPIBaseURL()+"/countrycodes/list", map[string]string{"VompApiToken": tok}, nil)
		if r.status != 401 {
			t.Fatalf("token expiry fault: %d", r.status)
		}
	})
}

func TestParseFaults(t *testing.T) {
	f, err := ParseFaults("429=0.1, reset=0.02,expire=0.5")
	if err != nil || f.RateLimited != 0.1 || f.Reset != 0.02 || f.TokenExpiry != 0.5 {
		t.Fatalf("%+v %v", f, err)
	}
	if f, _ := ParseFaults("all=0.1"); f.Truncate != 0.1 || f.ServerError != 0.1 {
		t.Fatalf("all: %+v", f)
	}
	for _, bad := range []string{"429", "429=2", "teapot=0.1", "reset=x"} {
		if _, err := ParseFaults(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestDataIsDeterministic(t *testing.T) {
	a, b := NewDataset(7, 1, DefaultUntil), NewDataset(7, 1, DefaultUntil)
	c := NewDataset(8, 1, DefaultUntil)
	ja, _ := json.Marshal(a.SignicatInvoice(42, true))
	jb, _ := json.Marshal(b.SignicatInvoice(42, true))
	jc, _ := json.Marshal(c.SignicatInvoice(42, true))
	if !bytes.Equal(ja, jb) || bytes.Equal(ja, jc) {
		t.Fatal("same seed must give the same data, another seed other data")
	}
	for _, i := range []int{0, 61, 3843, 238327} { // sigID's index digits round-trip across base-62 carries
		id := a.sigID("c-p-", "scon", i)
		if got, ok := a.sigIndex("c-p-", "scon", id, 1<<30); !ok || got != i {
			t.Fatalf("sigIndex(%s) = %d, %v", id, got, ok)
		}
	}
}

func TestRepeatedOrganizationsEndTheList(t *testing.T) {
	plain := start(t, Options{Scale: 0.05})
	want := getArray(t, plain, gsToken(t, plain), "/organizations/list")
	srv := start(t, Options{Scale: 0.05, RepeatedOrganizations: 2})
	got := getArray(t, srv, gsToken(t, srv), "/organizations/list")
	if len(got) != len(want)+2 {
		t.Fatalf("%d organisations, want %d + 2 repeated", len(got), len(want))
	}
	seen := map[float64]int{}
	for _, o := range got {
		seen[o["org_id"].(float64)]++
	}
	twice := 0
	for _, n := range seen {
		if n == 2 {
			twice++
		}
	}
	if twice != 2 || len(seen) != len(want) {
		t.Fatalf("%d org_ids twice among %d distinct, want 2 among %d", twice, len(seen), len(want))
	}
}
