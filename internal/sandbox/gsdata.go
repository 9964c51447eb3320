package sandbox

import (
	"fmt"
	"strconv"
	"time"
)

// GSAPI timestamp layouts as they appear in the published examples: with and without zone, with 'T' or a
// space, with and without milliseconds. Each generated stream uses one, so a client must handle them all.
const (
	gsSpaceMillis = "2006-01-02 15:04:05.000"
	gsTMillis     = "2006-01-02T15:04:05.000"
	gsTMillisZone = "2006-01-02T15:04:05.000-07:00"
	gsTZone       = "2006-01-02T15:04:05-07:00"
	gsDate        = "2006-01-02"
)

// GSOrgID is generated GSAPI organisation i's org_id.
func (d *Dataset) GSOrgID(i int) int { return 2000 + i }

// gsParentOf is generated organisation i's parent_org_id: ApiDemoCloud, or an earlier generated one.
func (d *Dataset) gsParentOf(i int) int {
	if i > 0 && d.h("gorg#p", i)%4 == 0 {
		return d.GSOrgID(int(d.h("gorg#pi", i) % uint64(i)))
	}
	return 1202
}

// GSOrganization is generated organisation i in the organizations/list shape.
func (d *Dataset) GSOrganization(i int) obj {
	parent := d.gsParentOf(i)
	created := GSAPIHistoryStart.Add(time.Duration(d.h("gorg#t", i)%(365*24*3600)) * time.Second).In(helsinki)
	var updated any
	if d.h("gorg#u", i)%3 == 0 {
		updated = created.AddDate(0, 2, 0).Format(gsTMillisZone)
	}
	country := d.pick("gorg#c", i, []string{"FIN", "SWE", "NOR", "DNK", "EST"})
	return obj{
		{"org_id", d.GSOrgID(i)},
		{"company_name", d.orgName("gorg", i)},
		{"parent_org_id", parent},
		{"sc_site_code", nil},
		{"addr_street1", fmt.Sprintf("%s %d", d.pick("gorg#s", i, []string{"Mannerheimintie", "Aleksanterinkatu", "Hämeenkatu", "Storgatan"}), 1+d.h("gorg#n", i)%99)},
		{"addr_street2", nil},
		{"addr_zipcode", fmt.Sprintf("%05d", d.h("gorg#z", i)%100000)},
		{"addr_city", d.pick("gorg#ci", i, []string{"Helsinki", "Espoo", "Tampere", "Turku", "Oulu", "Göteborg"})},
		{"external_customer_id", fmt.Sprintf("EXT-%05d", i+1)},
		{"business_id", fmt.Sprintf("%07d-%d", d.h("gorg#b", i)%1e7, d.h("gorg#b2", i)%10)},
		{"contact_person", d.pick("gorg#cp", i, firstName) + " " + d.pick("gorg#cl", i, lastName)},
		{"custtype", "B"},
		{"contact_phone_number", nil},
		{"contact_email_address", nil},
		{"fax_number", nil},
		{"home_url", nil},
		{"country", country},
		{"contact_note", nil},
		{"linked_organization", nil},
		{"external_customer_id2", nil},
		{"created_date", created.Format(gsTMillisZone)},
		{"created_by", "BatchRunner"},
		{"updated_date", updated},
		{"updated_by", nullIf(updated == nil, "apidemouser")},
	}
}

// GSInvoiceTime is generated GSAPI invoice i's invoice date, a Helsinki wall-clock time.
func (d *Dataset) GSInvoiceTime(i int) time.Time { return d.gsInvoices.at(i) }

// GSInvoicesIn lists the invoices whose invoice date lies in [from, to].
func (d *Dataset) GSInvoicesIn(from, to time.Time) []int { return d.gsInvoices.inWindow(from, to) }

// GSChargesIn lists the charges whose calldate lies in [from, to].
func (d *Dataset) GSChargesIn(from, to time.Time) []int { return d.gsCharges.inWindow(from, to) }

// GSLine is one generated GSAPI invoice line in cents and thousandths.
type GSLine struct {
	ILineID                       int
	ProductCode, Descr, Account   string
	Quantity                      int64 // thousandths
	UnitCents, NetCents, VATCents int64
	VATRate                       tenths // 24 %, and 25.5 % from 2024-09-01 (Finland's change)
	CostCentre                    string // tenant b books each line to a cost centre
}

// tenths is a percentage in tenths of a percent, rendered as a JSON number: 240 → 24, 255 → 25.5.
type tenths int

// MarshalJSON renders the rate without trailing zeros.
func (t tenths) MarshalJSON() ([]byte, error) {
	if t%10 == 0 {
		return []byte(strconv.Itoa(int(t) / 10)), nil
	}
	return []byte(fmt.Sprintf("%d.%d", t/10, t%10)), nil
}

// vatChange is when Finland's general VAT rate went from 24 % to 25.5 %.
var vatChange = time.Date(2024, 9, 1, 0, 0, 0, 0, helsinki)

// GSInvoiceHeader is the money and identity of generated GSAPI invoice i.
type GSInvoiceHeader struct {
	IHeaderID, InvoiceID, OrgID int
	Currency, Status            string
	NetCents, VATCents          int64
	Lines                       []GSLine
}

var gsProducts = []struct{ code, descr, account string }{
	{"1010", "MB 300e base fee", "3000"}, {"1020", "Skoda Octavia base fee", "3000"}, {"1030", "Toyota RAV4 base fee", "3000"},
	{"2001", "Extra km", "3010"}, {"2004", "Shared car trip fee", "3010"}, {"10010", "SaaS subscription", "3100"},
	{"10020", "Support hours", "3200"}, {"10030", "Storage GB-month", "3100"},
}

// GSInvoice computes generated GSAPI invoice i.
func (d *Dataset) GSInvoice(i int) GSInvoiceHeader {
	at := d.GSInvoiceTime(i)
	batch := (at.Year()-GSAPIHistoryStart.Year())*12 + int(at.Month())
	inv := GSInvoiceHeader{
		IHeaderID: 10001 + i, InvoiceID: batch, Currency: "EUR",
		Status: []string{"Delivered", "Delivered", "Sent", "Open"}[d.h("ginv#s", i)%4],
	}
	if d.GSOrganizations > 0 {
		inv.OrgID = d.GSOrgID(int(d.h("ginv#o", i) % uint64(d.GSOrganizations)))
	} else {
		inv.OrgID = 1202
	}
	if d.h("ginv#c", i)%7 == 0 {
		inv.Currency = "SEK"
	}
	n := 1 + int(d.h("ginv#n", i)%5)
	for k := 0; k < n; k++ {
		key := i*8 + k
		p := gsProducts[d.h("ginl#p", key)%uint64(len(gsProducts))]
		qty := int64(1+d.h("ginl#q", key)%40) * 1000
		if d.h("ginl#f", key)%3 == 0 {
			qty = int64(1 + d.h("ginl#q", key)%9999)
		}
		unit := int64(1 + d.h("ginl#u", key)%150000)
		net := qty * unit / 1000
		rate := tenths(240)
		if !at.Before(vatChange) {
			rate = 255
		}
		vat := net * int64(rate) / 1000
		inv.Lines = append(inv.Lines, GSLine{
			ILineID: inv.IHeaderID*10 + k, ProductCode: p.code, Descr: p.descr, Account: p.account,
			Quantity: qty, UnitCents: unit, NetCents: net, VATCents: vat, VATRate: rate,
			CostCentre: fmt.Sprintf("CC-%d", 1+d.h("ginl#cc", key)%3),
		})
		inv.NetCents += net
		inv.VATCents += vat
	}
	return inv
}

func (d *Dataset) gsOrgName(orgID int) string {
	if i := orgID - 2000; i >= 0 && i < d.GSOrganizations {
		return d.orgName("gorg", i)
	}
	return "ApiDemoCloud"
}

// gsDatasyncInvoice is option Invoices (1): a header row.
func (d *Dataset) gsDatasyncInvoice(i int) obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	return obj{
		{"iheader_id", inv.IHeaderID},
		{"invoice_id", inv.InvoiceID},
		{"org_id", inv.OrgID},
		{"organization", d.gsOrgName(inv.OrgID)},
		{"ext_invoice_id", fmt.Sprintf("GS-%07d", inv.IHeaderID)},
		{"invoice_date", at.Format(gsSpaceMillis)},
		{"due_date", at.AddDate(0, 0, 14).Format(gsDate)},
		{"currency", inv.Currency},
		{"net_amount", money(inv.NetCents)},
		{"vat_amount", money(inv.VATCents)},
		{"gross_amount", money(inv.NetCents + inv.VATCents)},
		{"status", inv.Status},
		{"reference_number", fmt.Sprintf("%d%d", inv.IHeaderID, inv.IHeaderID%7)},
		{"created_date", at.Add(2 * time.Hour).Format(gsTMillisZone)},
	}
}

// gsDatasyncLines is option InvoiceLines (2) for invoice i.
func (d *Dataset) gsDatasyncLines(i int) []obj {
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
			{"amount", milli(l.Quantity)},
			{"price_per_unit", money(l.UnitCents)},
			{"price", money(l.NetCents)},
			{"vat", money(l.VATCents)},
			{"vatpercentage", l.VATRate},
			{"currency", inv.Currency},
			{"invoice_date", at.Format(gsTMillis)},
		}
	}
	return out
}

// GSChargeTime is generated charge i's calldate.
func (d *Dataset) GSChargeTime(i int) time.Time { return d.gsCharges.at(i) }

// gsCharge is option Charges (8) and charges/actions: a rated charge with tenant-defined boparams.
func (d *Dataset) gsCharge(i int) obj {
	at := d.GSChargeTime(i)
	p := gsProducts[d.h("gchg#p", i)%uint64(len(gsProducts))]
	qty := int64(1+d.h("gchg#q", i)%20) * 1000
	unit := int64(1 + d.h("gchg#u", i)%90000)
	orgID := 1202
	if d.GSOrganizations > 0 {
		orgID = d.GSOrgID(int(d.h("gchg#o", i) % uint64(d.GSOrganizations)))
	}
	bo := obj{{"ContractId", fmt.Sprintf("C%09d", 1+d.h("gchg#c", i)%500)}}
	if d.h("gchg#b", i)%2 == 0 {
		bo = append(bo, field{"invoice_line_note1", at.Format("02.01.2006") + " - " + at.AddDate(0, 1, -1).Format("02.01.2006")})
	}
	return obj{
		{"charge_id", 500001 + i},
		{"org_id", orgID},
		{"objectid", -int(100 + d.h("gchg#ob", i)%900)},
		{"productcode", p.code},
		{"descr", p.descr},
		{"calldate", at.Format(gsTMillis)},
		{"amount", milli(qty)},
		{"price_per_unit", money(unit)},
		{"price", money(qty * unit / 1000)},
		{"currency", "EUR"},
		{"invoiced", at.Before(d.until.AddDate(0, -1, 0))},
		{"boparams", bo},
	}
}

// journalRows renders invoice i in one of the four invoice-journal views.
func (d *Dataset) journalRows(kind string, i int) []obj {
	inv, at := d.GSInvoice(i), d.GSInvoiceTime(i)
	date := at.Format(gsTMillisZone)
	org := d.gsOrgName(inv.OrgID)
	switch kind {
	case "summary":
		return []obj{{
			{"iheader_id", inv.IHeaderID}, {"invoice_id", inv.InvoiceID}, {"ext_invoice_id", fmt.Sprintf("GS-%07d", inv.IHeaderID)},
			{"organization", org}, {"org_id", inv.OrgID}, {"invoice_date", date}, {"due_date", at.AddDate(0, 0, 14).Format(gsDate)},
			{"currency", inv.Currency}, {"net_amount", money(inv.NetCents)}, {"vat_amount", money(inv.VATCents)},
			{"gross_amount", money(inv.NetCents + inv.VATCents)}, {"status", inv.Status},
		}}
	case "accounting":
		// One row per account, in first-seen order, summing the lines booked to it.
		var rows []obj
		idx := map[string]int{}
		for _, l := range inv.Lines {
			j, ok := idx[l.Account]
			if !ok {
				j = len(rows)
				idx[l.Account] = j
				rows = append(rows, obj{
					{"iheader_id", inv.IHeaderID}, {"invoice_date", date}, {"org_id", inv.OrgID}, {"organization", org},
					{"account", l.Account}, {"cost_centre", fmt.Sprintf("CC%03d", inv.OrgID%50)}, {"currency", inv.Currency},
					{"net_amount", money(0)}, {"vat_amount", money(0)},
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
			{"amount", milli(l.Quantity)}, {"price_per_unit", money(l.UnitCents)}, {"net_amount", money(l.NetCents)},
			{"vat_amount", money(l.VATCents)}, {"vatpercentage", l.VATRate}, {"currency", inv.Currency},
		}
		if kind == "fulldetails" {
			r = append(r, field{"status", inv.Status}, field{"invoice_id", inv.InvoiceID},
				field{"due_date", at.AddDate(0, 0, 14).Format(gsDate)}, field{"sent_date", nullIf(inv.Status == "Open", at.AddDate(0, 0, 1).Format(gsTMillisZone))})
		}
		rows[k] = r
	}
	return rows
}

// gsTransaction is datatable ctransactiondata row i (raw_id i+1).
func (d *Dataset) gsTransaction(i int) obj {
	imported := GSAPIHistoryStart.Add(time.Duration(i)*7*time.Minute + time.Duration(d.h("ctx#ms", i)%1000)*time.Millisecond)
	var data1 any = fmt.Sprintf("evt-%d", d.h("ctx#d", i)%100000)
	if d.h("ctx#n", i)%10 == 0 {
		data1 = nil
	}
	return obj{
		{"raw_id", i + 1},
		{"t_id", int(d.h("ctx#t", i) % 3)},
		{"imported", imported.Format(gsSpaceMillis)},
		{"ContractLineID", fmt.Sprintf("C-%09d-%03d", 1+d.h("ctx#c", i)%500, 1+d.h("ctx#l", i)%5)},
		{"event_type", d.pick("ctx#e", i, []string{"usage", "adjustment", "refund"})},
		{"quantity", milli(int64(1 + d.h("ctx#q", i)%100000))},
		{"amount", money(int64(d.h("ctx#a", i)%1000000) - 50000)},
		{"unit", d.pick("ctx#u", i, []string{"pcs", "GB", "h", "km"})},
		{"data1", data1},
	}
}

// gsEvent is datatable EventDataImport row i: staging rows before validation.
func (d *Dataset) gsEvent(i int) obj {
	return obj{
		{"raw_id", i + 1},
		{"imported", GSAPIHistoryStart.Add(time.Duration(i) * time.Hour).Format(gsSpaceMillis)},
		{"status", d.pick("evt#s", i, []string{"new", "validated", "error"})},
		{"message", nullIf(d.h("evt#m", i)%4 != 0, "Unknown ContractLineID")},
		{"payload", fmt.Sprintf(`{"qty":%d}`, d.h("evt#q", i)%100)},
	}
}
