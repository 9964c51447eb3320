package gsapi

import (
	"context"
	"iter"
	"net/url"

	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// datasyncStreams are the nine options of GET /datasync, in the spec's order (option_id 1..9); each
// option is sent as the API spells it. Windowed options hold the newest fetch of each month window as
// their current state (no key needed); the others are snapshots (the current state is the newest run).
// Spec: none of the exports' fields are documented (they are the tenant's), so no key is in force;
// each ident is an assumption (tenant a's identifying fields), and if a tenant's export lacks them
// nothing is lost: they only name rejects.
func (s *Source) datasyncStreams() []sources.Spec {
	return []sources.Spec{
		// Spec: startdate/enddate apply to Invoices (1), InvoiceLines (2) and Charges (8). Auditors trace
		// invoice rows to the bytes the API sent (Evidence).
		{Name: "datasync_invoices", Endpoint: "GET /datasync?option=Invoices", Mode: sources.Incremental,
			Ident: []string{"iheader_id"}, Windowed: true, Evidence: true, Pages: s.datasyncWindowed("Invoices")},
		{Name: "datasync_invoice_lines", Endpoint: "GET /datasync?option=InvoiceLines", Mode: sources.Incremental,
			Ident: []string{"iline_id"}, Windowed: true, Evidence: true, Pages: s.datasyncWindowed("InvoiceLines")},
		{Name: "datasync_organizations", Endpoint: "GET /datasync?option=Organizations",
			Ident: []string{"org_id"}, Pages: s.datasyncWhole("Organizations")},
		{Name: "datasync_organization_billing_info", Endpoint: "GET /datasync?option=OrganizationBillingInfo",
			Ident: []string{"org_id", "costcentre"}, Pages: s.datasyncWhole("OrganizationBillingInfo")},
		// Spec: "For Products (5) and ProductCategories (7) use org_id=0".
		{Name: "datasync_products", Endpoint: "GET /datasync?option=Products&org_id=0",
			Ident: []string{"productcode"}, Pages: s.datasyncRoot("Products")},
		{Name: "datasync_prices", Endpoint: "GET /datasync?option=Prices",
			Ident: []string{"pricing_id"}, Pages: s.datasyncWhole("Prices")},
		{Name: "datasync_product_categories", Endpoint: "GET /datasync?option=ProductCategories&org_id=0",
			Ident: []string{"calltype_id"}, Pages: s.datasyncRoot("ProductCategories")},
		// Assumption: boparams is an object of the tenant's business parameters, as in
		// invoicecharges/list, kept as a map. If it is something else it is typed like any other field.
		{Name: "datasync_charges", Endpoint: "GET /datasync?option=Charges", Mode: sources.Incremental,
			Ident: []string{"charge_id"}, MapPaths: []string{"boparams"}, Windowed: true, Pages: s.datasyncWindowed("Charges")},
		// Spec: "If system has telephone data"; an empty list is normal. No ident is suggested.
		{Name: "datasync_call_tickets", Endpoint: "GET /datasync?option=CallTickets", Pages: s.datasyncWhole("CallTickets")},
	}
}

// datasyncWindowed reads an option in month windows (see windows.go), scoped to the tenant.
func (s *Source) datasyncWindowed(option string) sources.PageFunc {
	return func(ctx context.Context, st *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return s.windowed(ctx, st, "/datasync", s.orgScope(url.Values{"option": {option}}))
	}
}

// datasyncWhole reads an option in one request, scoped to the tenant.
func (s *Source) datasyncWhole(option string) sources.PageFunc {
	return func(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return s.one(ctx, "/datasync", s.orgScope(url.Values{"option": {option}}))
	}
}

// datasyncRoot reads an option in one request for the root organisation (org_id=0).
func (s *Source) datasyncRoot(option string) sources.PageFunc {
	return func(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return s.one(ctx, "/datasync", url.Values{"option": {option}, "org_id": {"0"}})
	}
}
