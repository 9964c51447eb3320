package sandbox

import (
	"embed"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

//go:embed examples/*.json
var examples embed.FS

func example(name string) []byte {
	b, err := examples.ReadFile("examples/" + name + ".json")
	if err != nil {
		panic(err)
	}
	return b
}

// exampleObjects decodes a published example array, keeping each element's bytes verbatim.
func exampleObjects(name string) []json.RawMessage {
	var out []json.RawMessage
	if err := json.Unmarshal(example(name), &out); err != nil {
		panic(fmt.Sprintf("sandbox example %s: %v", name, err))
	}
	return out
}

// writeProblem answers with Signicat's problem JSON (type, title, detail, code, status, traceId).
func writeProblem(w http.ResponseWriter, status int, code, detail string, invalid ...obj) {
	p := obj{
		{"type", "https://developer.signicat.com/docs/errors/" + strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "-"))},
		{"title", http.StatusText(status)},
		{"detail", detail},
		{"status", status},
		{"traceId", fmt.Sprintf("00-%032x-%016x-01", time.Now().UnixNano(), status)},
	}
	if code != "" {
		p = append(p, field{"code", code})
	}
	if len(invalid) > 0 {
		p = append(p, field{"invalidParams", invalid})
	}
	body, _ := marshalValue(p)
	w.Header().Set("Content-Type", "application/problem+json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Sandbox) routeSignicat(mux *http.ServeMux) {
	mux.HandleFunc(SignicatToken, s.handleSignicatToken)
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.signicatAuthorized(w, r) {
				h(w, r)
			}
		}
	}
	p := SignicatPrefix
	mux.HandleFunc("GET "+p+"/accounts", auth(s.listAccounts))
	mux.HandleFunc("GET "+p+"/accounts/{id}", auth(s.getAccount))
	mux.HandleFunc("GET "+p+"/contacts", auth(s.listContacts))
	mux.HandleFunc("GET "+p+"/contacts/{id}", auth(s.getContact))
	mux.HandleFunc("GET "+p+"/organizations", auth(s.listOrganizations))
	mux.HandleFunc("GET "+p+"/organizations/{id}", auth(s.getOrganization))
	mux.HandleFunc("GET "+p+"/invoices", auth(s.orgScoped(s.listInvoices)))
	mux.HandleFunc("GET "+p+"/invoices/{number}", auth(s.orgScoped(s.getInvoice)))
	mux.HandleFunc("GET "+p+"/invoices/{number}/pdf", auth(s.orgScoped(s.getInvoicePDF)))
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "not_found", "No such resource: "+r.URL.Path)
	})
}

// orgScoped requires the Signicat-OrganizationId header that organisation-level clients send on the
// invoice endpoints.
func (s *Sandbox) orgScoped(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Signicat-OrganizationId"), "o-") {
			writeProblem(w, http.StatusForbidden, "missing_organization", "Invoice endpoints need the Signicat-OrganizationId header of an organisation-level client.")
			return
		}
		h(w, r)
	}
}

// pageToken is opaque to clients: base64 of the list it belongs to and the next offset.
func pageToken(list string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1|%s|%d", list, offset)))
}

func parsePageToken(list, tok string) (int, bool) {
	if tok == "" {
		return 0, true
	}
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 || parts[0] != "v1" || parts[1] != list {
		return 0, false
	}
	off, err := strconv.Atoi(parts[2])
	return off, err == nil && off >= 0
}

// servePage answers one {data, next} page of a list of n items produced by item.
func servePage(w http.ResponseWriter, r *http.Request, list string, n int, item func(int) any) {
	q := r.URL.Query()
	limit := 50
	if v := q.Get("limit"); v != "" {
		l, err := strconv.Atoi(v)
		if err != nil || l < 1 || l > 1000 {
			writeProblem(w, http.StatusBadRequest, "invalid_request", "limit must be an integer from 1 to 1000", obj{{"name", "limit"}, {"reason", "out of range"}})
			return
		}
		limit = l
	}
	off, ok := parsePageToken(list, q.Get("page"))
	if !ok {
		writeProblem(w, http.StatusBadRequest, "invalid_request", "page is not a valid pagination token", obj{{"name", "page"}, {"reason", "invalid token"}})
		return
	}
	end := min(n, off+limit)
	data := make([]any, 0, max(0, end-off))
	for i := off; i < end; i++ {
		data = append(data, item(i))
	}
	var next any
	if end < n {
		next = pageToken(list, end)
	}
	writeJSON(w, http.StatusOK, obj{{"data", data}, {"next", next}})
}

func boolParam(r *http.Request, name string) bool {
	v, _ := strconv.ParseBool(r.URL.Query().Get(name))
	return v
}

// listAccounts serves active accounts (the published examples first), or with deleted=true only the
// soft-deleted ones.
func (s *Sandbox) listAccounts(w http.ResponseWriter, r *http.Request) {
	d, rev := s.data, s.opts.SignicatRevision
	if boolParam(r, "deleted") {
		servePage(w, r, "accounts-deleted", d.SignicatDeleted, func(i int) any { return d.SignicatAccount(d.SignicatAccounts+i, rev, false) })
		return
	}
	ex := s.exampleAccounts(false)
	servePage(w, r, "accounts", len(ex)+d.SignicatAccounts, func(i int) any {
		if i < len(ex) {
			return ex[i]
		}
		return d.SignicatAccount(i-len(ex), rev, false)
	})
}

// exampleAccounts are the published accounts in the selected revision's list or detail shape.
func (s *Sandbox) exampleAccounts(detail bool) []json.RawMessage {
	ex := exampleObjects("signicat_accounts")
	out := make([]json.RawMessage, len(ex))
	for i, a := range ex {
		out[i] = reshapeAccount(a, s.opts.SignicatRevision, detail)
	}
	return out
}

// reshapeAccount renders a published account in the list shape (no products) and, for revision a, with
// the shorter organisation reference.
func reshapeAccount(raw json.RawMessage, rev string, detail bool) json.RawMessage {
	var o orderedJSON
	_ = json.Unmarshal(raw, &o)
	if !detail {
		o = o.without("products")
	}
	if rev == "a" {
		for i, f := range o {
			if f.k == "organization" && string(f.v) != "null" {
				var org orderedJSON
				_ = json.Unmarshal(f.v, &org)
				b, _ := json.Marshal(org[:2])
				o[i].v = b
			}
		}
	}
	b, _ := json.Marshal(o)
	return b
}

func (s *Sandbox) getAccount(w http.ResponseWriter, r *http.Request) {
	id, d := r.PathValue("id"), s.data
	for _, a := range s.exampleAccounts(true) {
		if strings.Contains(string(a), `"id":"`+id+`"`) {
			writeRaw(w, a)
			return
		}
	}
	for _, prefix := range []string{"a-ppge-", "a-spge-"} {
		if i, ok := d.sigIndex(prefix, "sacc", id, d.SignicatAccounts+d.SignicatDeleted); ok {
			if i >= d.SignicatAccounts && !boolParam(r, "deleted") {
				break // soft-deleted accounts are visible only with deleted=true
			}
			writeJSON(w, http.StatusOK, d.SignicatAccount(i, s.opts.SignicatRevision, true))
			return
		}
	}
	writeProblem(w, http.StatusNotFound, "not_found", "Account "+id+" was not found.")
}

func (s *Sandbox) listContacts(w http.ResponseWriter, r *http.Request) {
	ex, d := exampleObjects("signicat_contacts"), s.data
	servePage(w, r, "contacts", len(ex)+d.SignicatContacts, func(i int) any {
		if i < len(ex) {
			return ex[i]
		}
		return d.SignicatContact(i - len(ex))
	})
}

func (s *Sandbox) getContact(w http.ResponseWriter, r *http.Request) {
	id, d := r.PathValue("id"), s.data
	for _, c := range exampleObjects("signicat_contacts") {
		if strings.Contains(string(c), `"id":"`+id+`"`) {
			writeRaw(w, c)
			return
		}
	}
	if i, ok := d.sigIndex("c-p-", "scon", id, d.SignicatContacts); ok {
		writeJSON(w, http.StatusOK, d.SignicatContact(i))
		return
	}
	writeProblem(w, http.StatusNotFound, "not_found", "Contact "+id+" was not found.")
}

func (s *Sandbox) listOrganizations(w http.ResponseWriter, r *http.Request) {
	ex, d := exampleObjects("signicat_organizations"), s.data
	servePage(w, r, "organizations", len(ex)+d.SignicatOrganizations, func(i int) any {
		if i < len(ex) {
			return ex[i]
		}
		return d.SignicatOrganization(i - len(ex))
	})
}

func (s *Sandbox) getOrganization(w http.ResponseWriter, r *http.Request) {
	id, d := r.PathValue("id"), s.data
	if id == OrganizationID {
		writeRaw(w, example("signicat_organization_detail"))
		return
	}
	for _, o := range exampleObjects("signicat_organizations") {
		if strings.Contains(string(o), `"id":"`+id+`"`) {
			writeRaw(w, o)
			return
		}
	}
	if i, ok := d.sigIndex("o-p-", "sorg", id, d.SignicatOrganizations); ok {
		o := d.SignicatOrganization(i)
		o = append(o, field{"billingEmail", fmt.Sprintf("billing%d@example.no", i)}, field{"childOrganizations", []any{}})
		writeJSON(w, http.StatusOK, o)
		return
	}
	writeProblem(w, http.StatusNotFound, "not_found", "Organization "+id+" was not found.")
}

// parseSignicatDate accepts the documented date-time and the yyyy-MM-dd the SDK sends.
func parseSignicatDate(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date (yyyy-MM-dd) or date-time", v)
}

// listInvoices returns a plain JSON array of the invoices strictly between invoiceDateAfter and
// invoiceDateBefore. The reference does not say whether the bounds are inclusive; the sandbox takes the
// strictest reading (both exclusive), so a client that does not overlap its windows loses records here.
func (s *Sandbox) listInvoices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, before := time.Time{}, s.opts.Now()
	for name, dst := range map[string]*time.Time{"invoiceDateAfter": &after, "invoiceDateBefore": &before} {
		if v := q.Get(name); v != "" {
			t, err := parseSignicatDate(v)
			if err != nil {
				writeProblem(w, http.StatusBadRequest, "invalid_request", err.Error(), obj{{"name", name}, {"reason", "invalid date-time"}})
				return
			}
			*dst = t
		}
	}
	aw := newArrayWriter(w)
	if ex := example("signicat_invoice_detail"); true {
		t, _ := time.Parse(time.RFC3339, "2019-08-24T14:15:22Z")
		if t.After(after) && t.Before(before) {
			var o orderedJSON
			_ = json.Unmarshal(ex, &o)
			aw.add(o.without("lines"))
		}
	}
	lo, hi := after.Add(time.Millisecond), before.Add(-time.Millisecond)
	if !hi.Before(lo) {
		for _, i := range s.data.SignicatInvoicesIn(lo, hi) {
			if !aw.add(s.data.SignicatInvoice(i, false)) {
				return
			}
		}
	}
	aw.end()
}

func (s *Sandbox) getInvoice(w http.ResponseWriter, r *http.Request) {
	n := r.PathValue("number")
	if n == "string" {
		writeRaw(w, example("signicat_invoice_detail"))
		return
	}
	i, ok := s.data.SignicatInvoiceIndex(n)
	if !ok {
		writeProblem(w, http.StatusNotFound, "not_found", "Invoice "+n+" was not found.")
		return
	}
	writeJSON(w, http.StatusOK, s.data.SignicatInvoice(i, true))
}

func (s *Sandbox) getInvoicePDF(w http.ResponseWriter, r *http.Request) {
	n := r.PathValue("number")
	if _, ok := s.data.SignicatInvoiceIndex(n); !ok && n != "string" {
		writeProblem(w, http.StatusNotFound, "not_found", "Invoice "+n+" was not found.")
		return
	}
	body := invoicePDF(n)
	w.Header().Set("Content-Type", "application/pdf")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// invoicePDF is a minimal, valid one-page PDF naming the invoice; the same number gives the same bytes.
func invoicePDF(number string) []byte {
	text := strings.NewReplacer(`\`, `\\`, `(`, `\(`, `)`, `\)`).Replace("Invoice " + number)
	stream := fmt.Sprintf("BT /F1 18 Tf 72 720 Td (%s) Tj ET", text)
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b strings.Builder
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return []byte(b.String())
}

// orderedJSON decodes a JSON object keeping its key order, to re-emit published examples faithfully.
type orderedJSON []struct {
	k string
	v json.RawMessage
}

// UnmarshalJSON reads an object's members in order.
func (o *orderedJSON) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if _, err := dec.Token(); err != nil {
		return err
	}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return err
		}
		*o = append(*o, struct {
			k string
			v json.RawMessage
		}{t.(string), v})
	}
	return nil
}

// MarshalJSON writes the members in order.
func (o orderedJSON) MarshalJSON() ([]byte, error) {
	out := make(obj, len(o))
	for i, f := range o {
		out[i] = field{f.k, f.v}
	}
	return out.MarshalJSON()
}

func (o orderedJSON) without(k string) orderedJSON {
	out := make(orderedJSON, 0, len(o))
	for _, f := range o {
		if f.k != k {
			out = append(out, f)
		}
	}
	return out
}
