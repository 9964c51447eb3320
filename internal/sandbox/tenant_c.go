package sandbox

import "fmt"

// Tenant c is written for the test of `extract fields --suggest`, unlike anything the SQL models'
// defaults expect: every tenant-defined name is Finnish, in PascalCase; money and the customer are
// nested objects (Summat, Hinnat, Asiakas); the header has gross and VAT but no net, which must be
// computed; the lines carry no currency (only their invoice does), and link to it by another name
// (LaskunTunniste → Tunniste); statuses are Finnish words. The facts are tenant a's.

// statusC is an invoice status in tenant c's words.
var statusC = map[string]string{"Delivered": "Toimitettu", "Sent": "Lähetetty", "Open": "Avoin"}

func (d *Dataset) gsInvoiceC(i int) obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	return obj{
		{"Tunniste", inv.IHeaderID},
		{"Laskunumero", fmt.Sprintf("%d-%06d", at.Year(), inv.IHeaderID)},
		{"Laskupaiva", at.Format(gsTMillis)},
		{"Erapaiva", at.AddDate(0, 0, 14).Format(gsDate)},
		{"Asiakas", obj{{"Numero", inv.OrgID}, {"Nimi", d.gsOrgName(inv.OrgID)}}},
		{"Valuutta", inv.Currency},
		{"Summat", obj{{"Verollinen", money(inv.NetCents + inv.VATCents)}, {"Alv", money(inv.VATCents)}}},
		{"Tila", statusC[inv.Status]},
		{"Erä", inv.InvoiceID},
	}
}

func (d *Dataset) gsLinesC(i int) []obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	out := make([]obj, len(inv.Lines))
	for k, l := range inv.Lines {
		out[k] = obj{
			{"RiviTunniste", l.ILineID},
			{"LaskunTunniste", inv.IHeaderID},
			{"Rivi", k + 1},
			{"Tuotekoodi", l.ProductCode},
			{"Tuote", l.Descr},
			{"Maara", milli(l.Quantity)},
			{"AHinta", money(l.UnitCents)},
			{"Hinnat", obj{{"Veroton", money(l.NetCents)}, {"Alv", money(l.VATCents)}}},
			{"AlvProsentti", l.VATRate},
			{"Laskupaiva", at.Format(gsTMillis)},
		}
	}
	return out
}

// summaryC is tenant c's Summary invoice journal: one row per invoice, with the net it states.
func (d *Dataset) summaryC(i int) []obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	return []obj{{
		{"Tunniste", inv.IHeaderID}, {"Laskunumero", fmt.Sprintf("%d-%06d", at.Year(), inv.IHeaderID)},
		{"Laskupaiva", at.Format(gsTMillisZone)}, {"AsiakasNumero", inv.OrgID}, {"Valuutta", inv.Currency},
		{"Veroton", money(inv.NetCents)}, {"Alv", money(inv.VATCents)}, {"Verollinen", money(inv.NetCents + inv.VATCents)},
		{"Tila", statusC[inv.Status]},
	}}
}
