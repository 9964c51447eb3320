package sandbox

import (
	"fmt"
	"time"
)

// GSAPI leaves the fields of its datasync exports, its invoice journals and its invoice lists to each
// tenant: no published source lists them (../shared/spec/gsapi-notes.md, "Not documented anywhere
// found"). A simulator that serves one shape can only confirm what its author believed, so the sandbox
// serves two tenants over the same facts (the same invoices, lines, cost centres and money):
//
//   - tenant a, the shape the sandbox has always served: snake_case money (net_amount, vat_amount,
//     gross_amount; price, vat), an accounting journal with one row per invoice and account;
//   - tenant b, another tenant's shape: PascalCase money (TotalNet, TotalVat, TotalGross; LineNet,
//     LineVat, UnitPrice; NetAmount, VatAmount), an invoice number that is a number until 2022 and
//     text with letters from 2023 (InvoiceNo), a field that only exists from 2023 (PaymentReference),
//     empty strings in dates (the due date of an open invoice, the sent date of an unsent one), a VAT
//     rate that is an integer until it becomes 25.5, an accounting journal grouped by account and cost
//     centre (several rows per invoice and account), and window bounds read as SQL Server's datetime
//     reads them (rounded to 1/300 s, so an end of 23:59:59.999 becomes the next midnight).
//   - tenant c, a shape written for the test of `extract fields --suggest` (tenant_c.go): Finnish
//     names, money and the customer nested in objects, the net amount only as gross minus VAT, the
//     currency only on the invoice header, statuses in Finnish.
//
// All serve the published example records verbatim where the spec has them.

// Tenants the sandbox can serve.
const (
	TenantA = "a"
	TenantB = "b"
	TenantC = "c"
)

// Tenants lists every tenant shape, for flags and their messages.
var Tenants = []string{TenantA, TenantB, TenantC}

// invoiceRow is datasync option Invoices (1) for invoice i in the tenant's shape.
func (s *Sandbox) invoiceRow(i int) obj {
	switch s.opts.Tenant {
	case TenantB:
		return s.data.gsInvoiceB(i)
	case TenantC:
		return s.data.gsInvoiceC(i)
	}
	return s.data.gsDatasyncInvoice(i)
}

// lineRows is datasync option InvoiceLines (2) for invoice i in the tenant's shape.
func (s *Sandbox) lineRows(i int) []obj {
	switch s.opts.Tenant {
	case TenantB:
		return s.data.gsLinesB(i)
	case TenantC:
		return s.data.gsLinesC(i)
	}
	return s.data.gsDatasyncLines(i)
}

// journal renders invoice i in one of the four invoice-journal views, in the tenant's shape (tenant c
// has its own Summary; its other views are tenant a's).
func (s *Sandbox) journal(kind string, i int) []obj {
	switch {
	case s.opts.Tenant == TenantB:
		return s.data.journalRowsB(kind, i)
	case s.opts.Tenant == TenantC && kind == "summary":
		return s.data.summaryC(i)
	}
	return s.data.journalRows(kind, i)
}

// windowBound is a startdate/enddate as the tenant's database compares it: tenant b keeps SQL Server
// datetime, whose 1/300 s ticks turn 23:59:59.999 into the next midnight.
func (s *Sandbox) windowBound(t time.Time) time.Time {
	if s.opts.Tenant != TenantB {
		return t
	}
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, t.Location())
	ms := t.Sub(day).Milliseconds()
	ticks := (ms*300 + 500) / 1000 // the nearest tick
	return day.Add(time.Duration((ticks*1000+150)/300) * time.Millisecond)
}

// invoiceNo is tenant b's invoice number: a number until 2022, text with letters from 2023.
func invoiceNo(inv GSInvoiceHeader, at time.Time) any {
	if at.Year() < 2023 {
		return 7000000 + inv.IHeaderID
	}
	return fmt.Sprintf("GS-%d-%07d", at.Year(), inv.IHeaderID)
}

// dueDateB is tenant b's due date: an empty string while the invoice is open.
func dueDateB(inv GSInvoiceHeader, at time.Time) string {
	if inv.Status == "Open" {
		return ""
	}
	return at.AddDate(0, 0, 14).Format(gsDate)
}

func (d *Dataset) gsInvoiceB(i int) obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	o := obj{
		{"iheader_id", inv.IHeaderID},
		{"invoice_id", inv.InvoiceID},
		{"org_id", inv.OrgID},
		{"organization", d.gsOrgName(inv.OrgID)},
		{"InvoiceNo", invoiceNo(inv, at)},
		{"invoice_date", at.Format(gsSpaceMillis)},
		{"due_date", dueDateB(inv, at)},
		{"currency", inv.Currency},
		{"TotalNet", money(inv.NetCents)},
		{"TotalVat", money(inv.VATCents)},
		{"TotalGross", money(inv.NetCents + inv.VATCents)},
		{"status", inv.Status},
		{"created_date", at.Add(2 * time.Hour).Format(gsTMillisZone)},
	}
	if at.Year() >= 2023 {
		o = append(o, field{"PaymentReference", fmt.Sprintf("RF%02d%08d", inv.IHeaderID%97, inv.IHeaderID)})
	}
	return o
}

func (d *Dataset) gsLinesB(i int) []obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	out := make([]obj, len(inv.Lines))
	for k, l := range inv.Lines {
		out[k] = obj{
			{"iline_id", l.ILineID},
			{"iheader_id", inv.IHeaderID},
			{"invoice_id", inv.InvoiceID},
			{"line_no", k + 1},
			{"productcode", l.ProductCode},
			{"descr", l.Descr},
			{"Quantity", milli(l.Quantity)},
			{"UnitPrice", money(l.UnitCents)},
			{"LineNet", money(l.NetCents)},
			{"LineVat", money(l.VATCents)},
			{"VatRate", l.VATRate},
			{"currency", inv.Currency},
			{"invoice_date", at.Format(gsTMillis)},
			{"cost_centre", l.CostCentre},
		}
	}
	return out
}

func (d *Dataset) journalRowsB(kind string, i int) []obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	date := at.Format(gsTMillisZone)
	org := d.gsOrgName(inv.OrgID)
	switch kind {
	case "summary":
		return []obj{{
			{"iheader_id", inv.IHeaderID}, {"invoice_id", inv.InvoiceID}, {"InvoiceNo", invoiceNo(inv, at)},
			{"organization", org}, {"org_id", inv.OrgID}, {"invoice_date", date}, {"due_date", dueDateB(inv, at)},
			{"currency", inv.Currency}, {"TotalNet", money(inv.NetCents)}, {"TotalVat", money(inv.VATCents)},
			{"TotalGross", money(inv.NetCents + inv.VATCents)}, {"status", inv.Status},
		}}
	case "accounting":
		// One row per account and cost centre, in first-seen order, summing the lines booked to it.
		var rows []obj
		idx := map[[2]string]int{}
		for _, l := range inv.Lines {
			g := [2]string{l.Account, l.CostCentre}
			j, ok := idx[g]
			if !ok {
				j = len(rows)
				idx[g] = j
				rows = append(rows, obj{
					{"iheader_id", inv.IHeaderID}, {"invoice_date", date}, {"org_id", inv.OrgID}, {"organization", org},
					{"account", l.Account}, {"cost_centre", l.CostCentre}, {"currency", inv.Currency},
					{"NetAmount", money(0)}, {"VatAmount", money(0)},
				})
			}
			rows[j][7].v = rows[j][7].v.(money) + money(l.NetCents)
			rows[j][8].v = rows[j][8].v.(money) + money(l.VATCents)
		}
		return rows
	}
	rows := make([]obj, len(inv.Lines))
	for k, l := range inv.Lines {
		r := obj{
			{"iheader_id", inv.IHeaderID}, {"iline_id", l.ILineID}, {"invoice_date", date}, {"org_id", inv.OrgID},
			{"organization", org}, {"productcode", l.ProductCode}, {"descr", l.Descr}, {"account", l.Account},
			{"cost_centre", l.CostCentre}, {"Quantity", milli(l.Quantity)}, {"UnitPrice", money(l.UnitCents)},
			{"NetAmount", money(l.NetCents)}, {"VatAmount", money(l.VATCents)}, {"VatRate", l.VATRate}, {"currency", inv.Currency},
		}
		if kind == "fulldetails" {
			sent := ""
			if inv.Status != "Open" {
				sent = at.AddDate(0, 0, 1).Format(gsTMillisZone)
			}
			r = append(r, field{"status", inv.Status}, field{"invoice_id", inv.InvoiceID},
				field{"due_date", dueDateB(inv, at)}, field{"sent_date", sent})
		}
		rows[k] = r
	}
	return rows
}
