// Package gsapi extracts the Good Sign GSAPI: datasync exports, datatable/list, invoice journals and the
// list endpoints. Reference: ../shared/spec/gsapi*.
package gsapi

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// Source is a configured GSAPI tenant.
type Source struct {
	cfg    *config.GSAPI
	client *httpclient.Client
	auth   *sessionAuth
	base   string
}

// New prepares the source; nothing is fetched until a stream's pages are read.
func New(cfg *config.GSAPI, client *httpclient.Client) *Source {
	base := strings.TrimRight(cfg.BaseURL, "/")
	return &Source{cfg: cfg, client: client, base: base, auth: &sessionAuth{
		client: client, welcome: base + "/welcome", username: cfg.Username, password: cfg.Password.Value(), jwt: cfg.JWT.Value(),
	}}
}

// datasyncOption is one DataSync export option.
type datasyncOption struct {
	option   string   // as the API spells it
	key      []string // API field names that identify a record (de-duplication, current state)
	windowed bool     // takes startdate/enddate (Invoices, InvoiceLines, Charges)
	root     bool     // reads from org_id=0 (Products, ProductCategories)
	maps     []string // tenant-defined objects kept as maps
}

// The nine options of GET /datasync. Their fields are tenant-defined (no source documents them), so
// they are typed by inference; the keys are the sandbox's field names and are used only when present.
var datasyncOptions = []datasyncOption{
	{option: "Invoices", key: []string{"iheader_id"}, windowed: true},
	{option: "InvoiceLines", key: []string{"iline_id"}, windowed: true},
	{option: "Organizations", key: []string{"org_id"}},
	{option: "OrganizationBillingInfo", key: []string{"org_id", "costcentre"}},
	{option: "Products", key: []string{"productcode"}, root: true},
	{option: "Prices", key: []string{"pricing_id"}},
	{option: "ProductCategories", key: []string{"calltype_id"}, root: true},
	{option: "Charges", key: []string{"charge_id"}, windowed: true, maps: []string{"boparams"}},
	{option: "CallTickets"},
}

// journalTypes are the four invoice journal views, as the collection spells them.
var journalTypes = []struct {
	name, journaltype string
	key               []string
}{
	{"summary", "Summary", []string{"iheader_id"}},
	{"detail", "Detail", []string{"iline_id"}},
	{"accounting", "Accounting", []string{"iheader_id", "account"}},
	{"full_details", "Full details", []string{"iline_id"}},
}

// list is one of the plain list endpoints.
type list struct {
	name, path string
	key        []string
	scoped     bool // takes org_id / organization
	extra      url.Values
	maps       []string
}

var lists = []list{
	{name: "organizations", path: "/organizations/list", key: []string{"org_id"}},
	{name: "billing_infos", path: "/organizationbillinginfos/list", key: []string{"org_id", "costcentre"}, scoped: true, extra: url.Values{"inherit": {"1"}}},
	{name: "users", path: "/users/list", key: []string{"u_id"}, scoped: true},
	{name: "country_codes", path: "/countrycodes/list", key: []string{"billing_country_id"}},
	{name: "products", path: "/products/list", key: []string{"productcode"}, scoped: true},
	{name: "product_details", path: "/productdetails/list", key: []string{"productdetail_id"}},
	{name: "profiles", path: "/profiles/list", key: []string{"profile_id"}},
	{name: "contracts", path: "/contracts/list", key: []string{"objectkey"}, scoped: true},
	{name: "contract_lines", path: "/contractlines/list", key: []string{"objectkey"}, scoped: true},
	{name: "prices", path: "/pricings/list", key: []string{"pricing_id"}, scoped: true},
	{name: "tax_rates", path: "/taxrates/list", key: []string{"taxrate_id"}},
	{name: "invoice_batches", path: "/invoicebatch/list", key: []string{"invoice_id"}, scoped: true},
	{name: "invoice_list", path: "/invoice/list", key: []string{"invoice.iheader_id"}, scoped: true},
	{name: "invoice_lines", path: "/invoice/line_list", key: []string{"iline_id"}, scoped: true},
}

// Streams lists the source's streams, filtered by the config's streams list.
func (s *Source) Streams() ([]*sources.Stream, error) {
	var all []*sources.Stream
	add := func(name string, mode sources.Mode, key []string, maps []string, pages func(context.Context, *httpclient.Stats, *sources.State) iter.Seq2[sources.Page, error]) error {
		var state *sources.State
		if mode == sources.Incremental {
			state = &sources.State{}
		}
		st, err := sources.NewStream("gsapi", name, mode, columnNames(key), func(ctx context.Context, stats *httpclient.Stats) iter.Seq2[sources.Page, error] {
			return pages(ctx, stats, state)
		})
		if err != nil {
			return err
		}
		st.State, st.MapPaths = state, maps
		// Auditors trace invoice rows to the bytes the API sent: datasync invoices and lines and the journals.
		st.Evidence = name == "datasync_invoices" || name == "datasync_invoice_lines" || strings.HasPrefix(name, "invoice_journal_")
		st.FanOut = name == "invoice_charges" || strings.HasPrefix(name, "datatable_")
		all = append(all, st)
		return nil
	}
	for _, o := range datasyncOptions {
		mode := sources.Snapshot
		if o.windowed {
			mode = sources.Incremental
		}
		if err := add("datasync_"+schemas.ColumnName(o.option), mode, o.key, o.maps, func(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
			q := url.Values{"option": {o.option}}
			if o.root {
				q.Set("org_id", "0")
			} else {
				q = s.orgScope(q)
			}
			if o.windowed {
				return s.windowed(ctx, stats, st, "/datasync", q, o.key)
			}
			return s.one(ctx, stats, "/datasync", q)
		}); err != nil {
			return nil, err
		}
	}
	for _, j := range journalTypes {
		if err := add("invoice_journal_"+j.name, sources.Incremental, j.key, nil, func(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
			return s.windowed(ctx, stats, st, "/invoicejournal/list", s.orgScope(url.Values{"journaltype": {j.journaltype}}), j.key)
		}); err != nil {
			return nil, err
		}
	}
	for _, dt := range s.cfg.Datatables {
		if err := add("datatable_"+schemas.ColumnName(dt.Table), sources.Incremental, []string{dt.Key}, nil, func(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
			return s.datatablePages(ctx, stats, st, dt)
		}); err != nil {
			return nil, err
		}
	}
	for _, l := range lists {
		if err := add(l.name, sources.Snapshot, l.key, l.maps, func(ctx context.Context, stats *httpclient.Stats, _ *sources.State) iter.Seq2[sources.Page, error] {
			q := url.Values{}
			for k, v := range l.extra {
				q[k] = v
			}
			if l.scoped {
				q = s.orgScope(q)
			}
			return s.one(ctx, stats, l.path, q)
		}); err != nil {
			return nil, err
		}
	}
	if err := add("objects", sources.Snapshot, []string{"objectid"}, []string{"objectfields"}, s.objectPages); err != nil {
		return nil, err
	}
	if err := add("charges", sources.Snapshot, []string{"charge_id"}, []string{"boparams"}, func(ctx context.Context, stats *httpclient.Stats, _ *sources.State) iter.Seq2[sources.Page, error] {
		return s.one(ctx, stats, "/charges/actions", s.orgScope(url.Values{"starttime": {s.cfg.Since.Format("2006-01-02")}}))
	}); err != nil {
		return nil, err
	}
	if err := add("invoice_charges", sources.Incremental, []string{"iheader_id"}, []string{"charges.boparams"}, nil); err != nil {
		return nil, err
	}
	// One request per invoice header: checkpointed per header, so a killed run resumes after the last.
	charges := all[len(all)-1]
	charges.Checkpoints = true
	charges.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.invoiceChargePages(ctx, charges.Stats, charges.State, charges.Skip)
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
		p, err := s.get(ctx, stats, path, q, true)
		yield(p, err)
	}
}

// objectPages lists objects per type: objects/list needs a type_id, so the types come from profiles/list.
func (s *Source) objectPages(ctx context.Context, stats *httpclient.Stats, _ *sources.State) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		profiles, err := s.get(ctx, stats, "/profiles/list", nil, false)
		var types []string
		seen := map[string]bool{}
		if err == nil {
			err = profiles.Each(func(p sources.Record) error {
				t := fmt.Sprint(p["type_id"])
				if p["type_id"] != nil && !seen[t] {
					seen[t] = true
					types = append(types, t)
				}
				return nil
			})
			if errors.Is(err, sources.ErrNull) {
				err = nil // no profiles: the check below names it
			}
		}
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		sort.Strings(types)
		dd := newDedup([]string{"objectid"})
		for p, err := range sources.Parallel(httpclient.Then(ctx), 4, types, func(ctx context.Context, typeID string) (sources.Page, error) {
			pg, err := s.get(ctx, stats, "/objects/list", s.orgScope(url.Values{"type_id": {typeID}}), false)
			return dd.page(pg), err
		}) {
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// invoiceChargePages reads invoicecharges/list for every invoice of the datasync Invoices windows
// (incremental like them): one call per invoice header.
func (s *Source) invoiceChargePages(ctx context.Context, stats *httpclient.Stats, st *sources.State, skip func(string) bool) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		var ids []string
		for p, err := range s.windowed(ctx, stats, st, "/datasync", s.orgScope(url.Values{"option": {"Invoices"}}), []string{"iheader_id"}) {
			if err != nil {
				yield(sources.Page{}, err)
				return
			}
			if err := p.Each(func(r sources.Record) error {
				if id := fmt.Sprint(r["iheader_id"]); r["iheader_id"] != nil && (skip == nil || !skip(id)) {
					ids = append(ids, id)
				}
				return nil
			}); err != nil && !errors.Is(err, sources.ErrNull) {
				yield(sources.Page{}, err)
				return
			}
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), 16, ids, func(ctx context.Context, id string) (sources.Page, error) {
			resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + "/invoicecharges/list?iheader_id=" + url.QueryEscape(id), Auth: s.auth, Stats: stats})
			if err != nil {
				return sources.Page{}, err
			}
			rec, err := sources.DecodeObject(resp.Body)
			if err != nil {
				return sources.Page{}, fmt.Errorf("GET /invoicecharges/list?iheader_id=%s: %w", id, err)
			}
			return sources.Page{Records: []sources.Record{rec}, Done: id}, nil
		}) {
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
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
