package gsapi

import (
	"context"
	"iter"
	"maps"
	"net/url"

	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// listStreams are the plain list endpoints, read whole every run (snapshots). Each comment says where
// the stream's fields come from: an example response of the collection (declared in schemas/gsapi,
// which carries the key the spec states and the ident assumed; fields beyond it inferred), or nowhere
// (all inferred). A Key here is what a sentence of the spec says identifies a record; an Ident is what
// tenant a's records are identified by (an assumption). "Scoped" lists take org_id / organization,
// which the spec requires on them.
func (s *Source) listStreams() []sources.Spec {
	return []sources.Spec{
		// Example response; "Organizations are uniquely identified by their org_id" (declared key).
		{Name: "organizations", Endpoint: "GET /organizations/list", Pages: s.list("/organizations/list", nil)},
		// Example response; costcentre qualifies a setting (inherit=1 lists inherited ones): no key.
		{Name: "billing_infos", Endpoint: "GET /organizationbillinginfos/list?inherit=1",
			Pages: s.scopedList("/organizationbillinginfos/list", url.Values{"inherit": {"1"}})},
		// Example response; u_id is Get User's parameter, but Get User answers a list: no key.
		{Name: "users", Endpoint: "GET /users/list", Pages: s.scopedList("/users/list", nil)},
		// Example response.
		{Name: "country_codes", Endpoint: "GET /countrycodes/list", Pages: s.list("/countrycodes/list", nil)},
		// No example response: every field inferred.
		{Name: "products", Endpoint: "GET /products/list", Ident: []string{"productcode"}, Pages: s.scopedList("/products/list", nil)},
		// No example response.
		{Name: "product_details", Endpoint: "GET /productdetails/list", Ident: []string{"productdetail_id"},
			Pages: s.list("/productdetails/list", nil)},
		// Example response and field list.
		{Name: "profiles", Endpoint: "GET /profiles/list", Pages: s.list("/profiles/list", nil)},
		// Example response.
		{Name: "contracts", Endpoint: "GET /contracts/list", Pages: s.scopedList("/contracts/list", nil)},
		// Example response.
		{Name: "contract_lines", Endpoint: "GET /contractlines/list", Pages: s.scopedList("/contractlines/list", nil)},
		// Example response.
		{Name: "prices", Endpoint: "GET /pricings/list", Pages: s.scopedList("/pricings/list", nil)},
		// No example response.
		{Name: "tax_rates", Endpoint: "GET /taxrates/list", Ident: []string{"taxrate_id"}, Pages: s.list("/taxrates/list", nil)},
		// No example response. Notes (support page 2026_1): "A batch is an invoice_id", so invoice_id is
		// the key: a batch listed twice with other values is reported, a missing invoice_id fails the key test.
		{Name: "invoice_batches", Endpoint: "GET /invoicebatch/list", Key: []string{"invoice_id"},
			Pages: s.scopedList("/invoicebatch/list", nil)},
		// Spec: "complete invoice information (invoice, headers, seller)"; the fields inside are the tenant's.
		// headers (an array of objects) is the child table gsapi_invoice_list__headers, linked by the ident.
		{Name: "invoice_list", Endpoint: "GET /invoice/list", Ident: []string{"invoice.iheader_id"},
			Pages: s.scopedList("/invoice/list", nil)},
		// No example response.
		{Name: "invoice_lines", Endpoint: "GET /invoice/line_list", Ident: []string{"iline_id"},
			Pages: s.scopedList("/invoice/line_list", nil)},
	}
}

// list reads path with query q in one request.
func (s *Source) list(path string, q url.Values) sources.PageFunc {
	return func(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return s.one(ctx, path, maps.Clone(q))
	}
}

// scopedList reads path with query q and the tenant's org_id / organization in one request.
func (s *Source) scopedList(path string, q url.Values) sources.PageFunc {
	return func(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return s.one(ctx, path, s.orgScope(maps.Clone(q)))
	}
}
