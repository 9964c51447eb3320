// Package gsapi extracts the Good Sign GSAPI: datasync exports, datatable/list, invoice journals and the
// list endpoints. Reference: ../shared/spec/gsapi*.
package gsapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/schemas"
	sqlfiles "github.com/ledgerlake/ledgerlake/sql"
)

// Source is a configured GSAPI tenant.
type Source struct {
	cfg    *config.GSAPI
	limits config.Limits
	client *httpclient.Client
	auth   *sessionAuth
	base   string
	now    func() time.Time
}

// New prepares the source; nothing is fetched until a stream's pages are read. now is its clock.
func New(cfg *config.GSAPI, limits config.Limits, client *httpclient.Client, now func() time.Time) *Source {
	redact.Add(cfg.JWT.Value())
	redact.AddBasic(cfg.Username, cfg.Password.Value())
	base := strings.TrimRight(cfg.BaseURL, "/")
	origin := base
	if u, err := url.Parse(base); err == nil {
		origin = httpclient.Origin(u)
	}
	return &Source{cfg: cfg, limits: limits, client: client, base: base, now: now, auth: &sessionAuth{
		client: client, welcome: base + "/welcome", origin: origin, username: cfg.Username, password: cfg.Password.Value(), jwt: cfg.JWT.Value(),
	}}
}

// What each stream takes from ../shared/spec and what it assumes. GSAPI documents few response fields:
// the collection's example responses show some lists' fields, a handful of sentences say what identifies
// a record, and the fields of the datasync exports, the journals, invoice/list and invoice/line_list are
// documented nowhere (gsapi-notes.md): they are the tenant's. So:
//
//   - A key in force (Stream.Key) comes only from a sentence of the spec or from the user's config
//     (sources.gsapi.keys, a datatable's key). Rows sharing it are all kept and reported.
//   - Ident is what the sandbox's tenant a and the examples suggest identifies a record: an assumption,
//     used to name records in rejects and to link child rows, never to drop or collapse rows.
//   - Every field is kept: undeclared ones are typed from the data and only ever widen; a declared
//     column's value that does not fit its type goes to _ledgerlake_rejects with the row kept.
//   - Every list must answer a JSON array of objects (anything else fails the stream naming the
//     request); null is read as an empty list and reported.

// datasyncOption is one DataSync export option (GET /datasync).
type datasyncOption struct {
	option string // spec: the option's name as the API spells it (option_id 1..9 in this order)
	// ident is an assumption: tenant a's identifying fields. Spec: none (the fields are the tenant's).
	ident    []string
	windowed bool     // spec: startdate/enddate apply to Invoices (1), InvoiceLines (2) and Charges (8)
	root     bool     // spec: "For Products (5) and ProductCategories (7) use org_id=0"
	maps     []string // assumption: objects whose keys are the tenant's own, kept as MAP(VARCHAR, VARCHAR)
}

// The nine options of GET /datasync. Windowed options hold the newest fetch of each month window as
// their current state (no key needed); the others are snapshots (the current state is the newest run).
// If a tenant's export lacks the ident fields nothing is lost: they only name rejects.
var datasyncOptions = []datasyncOption{
	{option: "Invoices", ident: []string{"iheader_id"}, windowed: true},
	{option: "InvoiceLines", ident: []string{"iline_id"}, windowed: true},
	{option: "Organizations", ident: []string{"org_id"}},
	{option: "OrganizationBillingInfo", ident: []string{"org_id", "costcentre"}},
	{option: "Products", ident: []string{"productcode"}, root: true},
	{option: "Prices", ident: []string{"pricing_id"}},
	{option: "ProductCategories", ident: []string{"calltype_id"}, root: true},
	// Assumption: boparams is an object of the tenant's business parameters, as in invoicecharges/list.
	// If it is something else it is typed like any other field.
	{option: "Charges", ident: []string{"charge_id"}, windowed: true, maps: []string{"boparams"}},
	{option: "CallTickets"}, // spec: "If system has telephone data"; an empty list is normal
}

// journalTypes are the four invoice journal views (GET /invoicejournal/list), all windowed by invoice
// date. Spec: the four views and what each lists ("Accounting – Lists invoice line information grouped
// by account information"); their fields are the tenant's. The spelling "Full details" is the
// collection's; the spec notes say the accepted spelling is undocumented, so a server that refuses it
// fails the stream with its answer (nothing is guessed). The idents are tenant a's: the accounting
// view's grouping is the tenant's (tenant b groups by account and cost centre), which is why no key is
// assumed for any journal.
var journalTypes = []struct {
	name, journaltype string
	ident             []string
}{
	{"summary", "Summary", []string{"iheader_id"}},
	{"detail", "Detail", []string{"iline_id"}},
	{"accounting", "Accounting", []string{"iheader_id", "account"}},
	{"full_details", "Full details", []string{"iline_id"}},
}

// list is one of the plain list endpoints, read whole every run (a snapshot).
type list struct {
	name, path string
	key        []string // spec: what the spec says identifies a record (kept in force)
	ident      []string // assumption: what tenant a's records are identified by
	scoped     bool     // spec: takes org_id / organization (required on these)
	extra      url.Values
	maps       []string
}

// The list streams. Each line's comment says where its fields come from: an example response of the
// collection (declared in schemas/gsapi, fields beyond it inferred), or nowhere (all inferred).
// Declared schemas carry their own key (spec) and ident (assumption).
var lists = []list{
	// Example response; "Organizations are uniquely identified by their org_id" (declared key).
	{name: "organizations", path: "/organizations/list"},
	// Example response; costcentre qualifies a setting (inherit=1 lists inherited ones): no key.
	{name: "billing_infos", path: "/organizationbillinginfos/list", scoped: true, extra: url.Values{"inherit": {"1"}}},
	// Example response; u_id is Get User's parameter, but Get User answers a list: no key.
	{name: "users", path: "/users/list", scoped: true},
	{name: "country_codes", path: "/countrycodes/list"}, // example response
	// No example response: every field inferred.
	{name: "products", path: "/products/list", ident: []string{"productcode"}, scoped: true},
	{name: "product_details", path: "/productdetails/list", ident: []string{"productdetail_id"}}, // no example
	{name: "profiles", path: "/profiles/list"},                                                   // example and field list
	{name: "contracts", path: "/contracts/list", scoped: true},                                   // example response
	{name: "contract_lines", path: "/contractlines/list", scoped: true},                          // example response
	{name: "prices", path: "/pricings/list", scoped: true},                                       // example response
	{name: "tax_rates", path: "/taxrates/list", ident: []string{"taxrate_id"}},                   // no example
	// No example response. Notes (support page 2026_1): "A batch is an invoice_id", so invoice_id is
	// the key: a batch listed twice with other values is reported, a missing invoice_id fails the key test.
	{name: "invoice_batches", path: "/invoicebatch/list", key: []string{"invoice_id"}, scoped: true},
	// Spec: "complete invoice information (invoice, headers, seller)"; the fields inside are the tenant's.
	// headers (an array of objects) is the child table gsapi_invoice_list__headers, linked by the ident.
	{name: "invoice_list", path: "/invoice/list", ident: []string{"invoice.iheader_id"}, scoped: true},
	{name: "invoice_lines", path: "/invoice/line_list", ident: []string{"iline_id"}, scoped: true}, // no example
}

// spec describes how one stream is read: its mode, key in force, ident and pages.
type spec struct {
	name     string
	mode     sources.Mode
	key      []string // API paths; in force (spec or config)
	ident    []string // API paths; an assumption
	maps     []string
	windowed bool
	pages    func(context.Context, *httpclient.Stats, *sources.State) iter.Seq2[sources.Page, error]
}

// Streams lists the source's streams, filtered by the config's streams list. A key configured under
// sources.gsapi.keys replaces the stream's own.
func (s *Source) Streams() ([]*sources.Stream, error) {
	var specs []spec
	for _, o := range datasyncOptions {
		sp := spec{name: "datasync_" + schemas.ColumnName(o.option), ident: o.ident, maps: o.maps, windowed: o.windowed}
		if o.windowed {
			sp.mode = sources.Incremental
		}
		sp.pages = func(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
			q := url.Values{"option": {o.option}}
			if o.root {
				q.Set("org_id", "0")
			} else {
				q = s.orgScope(q)
			}
			if o.windowed {
				return s.windowed(ctx, stats, st, "/datasync", q)
			}
			return s.one(ctx, stats, "/datasync", q)
		}
		specs = append(specs, sp)
	}
	for _, j := range journalTypes {
		specs = append(specs, spec{name: "invoice_journal_" + j.name, mode: sources.Incremental, ident: j.ident, windowed: true,
			pages: func(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
				return s.windowed(ctx, stats, st, "/invoicejournal/list", s.orgScope(url.Values{"journaltype": {j.journaltype}}))
			}})
	}
	for _, dt := range s.cfg.Datatables {
		// Config: the table's key and sortorder (refused at load time without them).
		specs = append(specs, spec{name: "datatable_" + schemas.ColumnName(dt.Table), mode: sources.Incremental, key: []string{dt.Key},
			pages: func(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
				return s.datatablePages(ctx, stats, st, dt)
			}})
	}
	for _, l := range lists {
		specs = append(specs, spec{name: l.name, key: l.key, ident: l.ident, maps: l.maps,
			pages: func(ctx context.Context, stats *httpclient.Stats, _ *sources.State) iter.Seq2[sources.Page, error] {
				q := url.Values{}
				for k, v := range l.extra {
					q[k] = v
				}
				if l.scoped {
					q = s.orgScope(q)
				}
				return s.one(ctx, stats, l.path, q)
			}})
	}
	specs = append(specs,
		// Example response; "Objects … have a unique Object_id" (declared key). objects/list needs a type_id,
		// so the types come from profiles/list (see objectPages for what that assumes).
		spec{name: "objects", maps: []string{"objectfields"}, pages: s.objectPages},
		// Spec: GET charges/actions?org_id&starttime lists charges; no example response, so every field is
		// inferred; boparams is assumed to be the tenant's object, as in invoicecharges/list.
		spec{name: "charges", ident: []string{"charge_id"}, maps: []string{"boparams"},
			pages: func(ctx context.Context, stats *httpclient.Stats, _ *sources.State) iter.Seq2[sources.Page, error] {
				return s.one(ctx, stats, "/charges/actions", s.orgScope(url.Values{"starttime": {s.cfg.Since.Format("2006-01-02")}}))
			}},
		// Spec: one object per iheader_id, whose iheader_id "Echoes the requested iheader_id" (declared key);
		// charges[] and its fields are documented. Pages: see invoiceChargePages.
		spec{name: "invoice_charges", mode: sources.Incremental, maps: []string{"charges.boparams"}},
	)
	var all []*sources.Stream
	for _, sp := range specs {
		var state *sources.State
		if sp.mode == sources.Incremental {
			state = &sources.State{}
		}
		pages := sp.pages
		st, err := sources.NewStream("gsapi", sp.name, sp.mode, columnNames(sp.key), func(ctx context.Context, stats *httpclient.Stats) iter.Seq2[sources.Page, error] {
			return pages(ctx, stats, state)
		})
		if err != nil {
			return nil, err
		}
		if st.Declared == nil {
			st.Ident = columnNames(sp.ident)
		}
		st.State, st.MapPaths, st.Windowed = state, sp.maps, sp.windowed
		// Auditors trace invoice rows to the bytes the API sent: datasync invoices and lines and the journals.
		st.Evidence = sp.name == "datasync_invoices" || sp.name == "datasync_invoice_lines" || strings.HasPrefix(sp.name, "invoice_journal_")
		st.FanOut = sp.name == "invoice_charges" || strings.HasPrefix(sp.name, "datatable_")
		all = append(all, st)
	}
	// One request per invoice header: checkpointed per header, so a killed run resumes after the last.
	charges := all[len(all)-1]
	charges.Checkpoints = true
	charges.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.invoiceChargePages(ctx, charges.Stats, charges.State, charges.Skip)
	}
	if err := sources.ConfigureKeys(all, "gsapi", s.cfg.Keys); err != nil {
		return nil, err
	}
	return sources.Select(all, s.cfg.Streams)
}

// columnNames maps API key paths to warehouse column names.
func columnNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = schemas.ColumnName(p)
	}
	return out
}

// one fetches an endpoint that answers with one JSON array of everything (invoice/list is 37 MB at the
// bench's scale 10 and grows with the tenant), spooled to a file and decoded from there.
func (s *Source) one(ctx context.Context, stats *httpclient.Stats, path string, q url.Values) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		p, err := s.get(ctx, stats, path, q, false)
		yield(p, err)
	}
}

// objectPages lists objects per type: objects/list needs a type_id (or a profile_id or objectid), so
// the types come from profiles/list. Spec: profiles/list's field list has "type_id (number): Type ID of
// the profile". Assumption: objects/list's type_id is that type, and every object has a type some
// profile names. Checked: profiles without any type_id fail the stream (it would list nothing). An
// object that comes back under two types byte for byte is kept once (the requests overlap); one that
// comes back with other values is kept twice, and objectid (unique by the spec) reports it.
func (s *Source) objectPages(ctx context.Context, stats *httpclient.Stats, _ *sources.State) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		profiles, err := s.get(ctx, stats, "/profiles/list", nil, false)
		var types []string
		seen := map[string]bool{}
		n := 0
		if err == nil {
			_, err = profiles.Each(func(p sources.Record) error {
				n++
				t := fmt.Sprint(p["type_id"])
				if p["type_id"] != nil && !seen[t] {
					seen[t] = true
					types = append(types, t)
				}
				return nil
			})
			if errors.Is(err, jsonrec.ErrNull) {
				err = nil // no profiles, no types: nothing to list
			}
		}
		if err == nil && n > 0 && len(types) == 0 {
			err = fmt.Errorf("GET /profiles/list: none of its %d profiles has a type_id, which GET /objects/list needs: this tenant's profiles differ from the spec's", n)
		}
		if err == nil && len(types) > s.limits.MaxPages {
			err = fmt.Errorf("GET /profiles/list: %d object types would take a request each, more than max_pages (%d)", len(types), s.limits.MaxPages)
		}
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		sort.Strings(types)
		var mu sync.Mutex
		copies, dropped := map[digest]bool{}, 0
		keep := func(_ sources.Record, raw []byte) bool {
			d := digestOf(raw)
			mu.Lock()
			defer mu.Unlock()
			if copies[d] {
				dropped++
				return false
			}
			copies[d] = true
			return true
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), sources.FanOutLimit, types, func(ctx context.Context, typeID string) (sources.Page, error) {
			pg, err := s.get(ctx, stats, "/objects/list", s.orgScope(url.Values{"type_id": {typeID}}), false)
			pg.Keep = keep
			return pg, err
		}) {
			if !yield(p, err) || err != nil {
				return
			}
		}
		if dropped > 0 {
			yield(sources.Page{Note: fmt.Sprintf("%d objects came back byte for byte under more than one type_id: each was kept once", dropped)}, nil)
		}
	}
}

// invoiceChargePages reads invoicecharges/list for every invoice of the datasync Invoices windows
// (incremental like them), one call per invoice header, each made as soon as its window is listed.
// Spec: invoicecharges/list takes iheader_id and answers one object whose iheader_id "Echoes the
// requested iheader_id". Assumption: the datasync Invoices records carry that id in the column
// sources.gsapi.fields.datasync_invoices.invoice_id names (iheader_id by default). Checked: an invoice
// record without it fails the stream (its charges could not be fetched), and an answer for another
// iheader_id fails that invoice; an answer without one gets the requested id.
//
// A later run asks again only for the invoices that are new or changed: changed when the invoice's
// datasync record differs in any field from the one it had when its charges were read (the memo keeps a
// digest). Assumption (the spec does not say): an invoice's charges do not change while its header
// record stays the same. --full-refresh reads every invoice again.
func (s *Source) invoiceChargePages(ctx context.Context, stats *httpclient.Stats, st *sources.State, skip func(string) bool) iter.Seq2[sources.Page, error] {
	return sources.Fan(httpclient.Then(ctx), sources.FanOutLimit, s.chargesToVisit(ctx, stats, st, skip), s.invoiceCharges(stats, st))
}

// chargeRef is an invoice header whose charges are asked for.
type chargeRef struct {
	id    string
	entry string // digest of its datasync record ("" for one the last run could not fetch)
}

// chargesToVisit yields the invoice headers of the datasync Invoices windows, as each window is read,
// that are new or changed and not checkpointed (skip); then those the last run could not fetch.
func (s *Source) chargesToVisit(ctx context.Context, stats *httpclient.Stats, st *sources.State, skip func(string) bool) iter.Seq2[chargeRef, error] {
	return func(yield func(chargeRef, error) bool) {
		// A validated config's mapping (an invalid one never gets here).
		fields, _ := sqlfiles.NewMapping("gsapi", s.cfg.Fields)
		col := fields["gsapi_datasync_invoices"]["invoice_id"].Column
		if col == "" {
			yield(chargeRef{}, fmt.Errorf("sources.gsapi.fields.datasync_invoices.invoice_id is %s: invoicecharges/list is called with each invoice's id as the export sends it, so name the column that holds it", fields["gsapi_datasync_invoices"]["invoice_id"]))
			return
		}
		seen := map[string]bool{}
		want := func(v chargeRef) bool {
			if seen[v.id] || (skip != nil && skip(v.id)) {
				return false
			}
			seen[v.id] = true
			var read string
			if v.entry != "" && st.Recall(v.id, &read) && read == v.entry {
				st.Remember(v.id, read) // unchanged: its charges stand, and so does its memo
				return false
			}
			return true
		}
		var missing int
		for p, err := range s.windowed(ctx, stats, st, "/datasync", s.orgScope(url.Values{"option": {"Invoices"}})) {
			var refs []chargeRef
			if err == nil {
				_, err = p.Each(func(r sources.Record) error {
					if v := fieldByColumn(r, col); v == nil {
						missing++
					} else if ref := (chargeRef{id: strings.Clone(fmt.Sprint(v)), entry: recordDigest(r)}); want(ref) {
						refs = append(refs, ref)
					}
					return nil
				})
			}
			if err != nil && !errors.Is(err, jsonrec.ErrNull) {
				yield(chargeRef{}, err)
				return
			}
			for _, ref := range refs {
				if !yield(ref, nil) {
					return
				}
			}
		}
		if missing > 0 {
			yield(chargeRef{}, fmt.Errorf("%d datasync Invoices records have no %s, the invoice id invoicecharges/list takes: name the column that holds it in sources.gsapi.fields.datasync_invoices.invoice_id", missing, col))
			return
		}
		for _, id := range st.PendingItems() {
			if ref := (chargeRef{id: id}); want(ref) && !yield(ref, nil) {
				return
			}
		}
	}
}

// recordDigest identifies a record by its content (map keys marshal sorted, numbers keep their text).
func recordDigest(r sources.Record) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// invoiceCharges reads one invoice header's charges; an answer that fails for that header alone is a
// failed page, and the rest goes on. A header read is remembered with its record's digest.
func (s *Source) invoiceCharges(stats *httpclient.Stats, st *sources.State) func(context.Context, chargeRef) (sources.Page, error) {
	return func(ctx context.Context, ref chargeRef) (sources.Page, error) {
		id := ref.id
		path := "/invoicecharges/list?iheader_id=" + url.QueryEscape(id)
		where := "GET " + path
		rec, q, err := s.object(ctx, stats, path, where)
		if err == nil {
			switch got, ok := rec["iheader_id"]; {
			case !ok || got == nil:
				rec["iheader_id"] = json.Number(id)
			case fmt.Sprint(got) != id:
				err = &sources.BodyError{Where: where, Err: fmt.Errorf("the answer is for iheader_id %v", got)}
			}
		}
		if err != nil {
			if sources.ItemFailed(err) {
				return sources.Page{Failed: &sources.Failure{Item: id, Err: err, Retry: true}}, nil
			}
			return sources.Page{}, err
		}
		if ref.entry != "" {
			st.Remember(id, ref.entry)
		}
		return sources.Page{Records: []sources.Record{rec}, Quirks: q, Done: id}, nil
	}
}

// object reads one JSON object at path; one larger than max_value_bytes is refused.
func (s *Source) object(ctx context.Context, stats *httpclient.Stats, path, where string) (sources.Record, jsonrec.Quirks, error) {
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + path, Auth: s.auth, Stats: stats})
	if err != nil {
		return nil, jsonrec.Quirks{}, err
	}
	defer resp.Body.Close()
	b, err := resp.Body.Load(int64(s.limits.MaxValueBytes), "answer (max_value_bytes)")
	if err != nil {
		return nil, jsonrec.Quirks{}, &sources.BodyError{Where: where, Err: err}
	}
	rec, q, err := jsonrec.DecodeObject(b)
	if err != nil {
		return nil, q, &sources.BodyError{Where: where, Err: err}
	}
	return rec, q, nil
}

// fieldByColumn is the value of r's top-level field whose warehouse column is col (iheader_id, or
// IHeaderID for i_header_id).
func fieldByColumn(r sources.Record, col string) any {
	if v, ok := r[col]; ok {
		return v
	}
	for k, v := range r {
		if schemas.ColumnName(k) == col {
			return v
		}
	}
	return nil
}

// orgScope is the org_id / organization query the tenant's lists take.
func (s *Source) orgScope(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if s.cfg.Organization != "" {
		q.Set("organization", s.cfg.Organization)
	} else if s.cfg.OrgID != nil {
		q.Set("org_id", strconv.Itoa(*s.cfg.OrgID))
	}
	return q
}
