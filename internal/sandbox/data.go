package sandbox

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // GSAPI timestamps carry Helsinki offsets (+02:00/+03:00); do not depend on the host's zoneinfo
)

// Dataset is the deterministic data behind the sandbox. Every record is a pure function of (seed, index),
// so any window or page is computed on demand and large scales need no memory.
type Dataset struct {
	seed  uint64
	scale float64
	until time.Time

	// Counts of generated records (published examples come on top).
	SignicatOrganizations int
	SignicatAccounts      int // active, generated
	SignicatDeleted       int // soft-deleted, served only with deleted=true
	SignicatContacts      int
	SignicatInvoices      int
	GSOrganizations       int
	GSInvoices            int
	GSCharges             int
	GSTransactions        int // datatable ctransactiondata rows
	GSEvents              int // datatable EventDataImport rows

	signicatInvoices timeline
	gsInvoices       timeline
	gsCharges        timeline
}

// Start dates of generated history.
var (
	SignicatHistoryStart = time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	GSAPIHistoryStart    = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
)

// helsinki is the GSAPI tenant's zone: its database keeps local wall-clock datetimes.
var helsinki = mustZone("Europe/Helsinki")

func mustZone(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

// NewDataset sizes the data for scale; scale 1 gives thousands of rows in the large streams.
func NewDataset(seed uint64, scale float64, until time.Time) *Dataset {
	n := func(base float64) int { return int(math.Round(base * scale)) }
	d := &Dataset{
		seed: seed, scale: scale, until: until,
		SignicatOrganizations: n(300),
		SignicatAccounts:      n(1200),
		SignicatDeleted:       n(80),
		SignicatContacts:      n(1500),
		SignicatInvoices:      n(3000),
		GSOrganizations:       n(200),
		GSInvoices:            n(3000),
		GSCharges:             n(6000),
		GSTransactions:        n(10000),
		GSEvents:              n(500),
	}
	// Record density is fixed by scale over the default history; a later Until only appends records, so
	// an incremental run against a sandbox with a later Until sees exactly the new ones.
	d.signicatInvoices = newTimeline(SignicatHistoryStart, until, d.SignicatInvoices)
	gsStart := time.Date(GSAPIHistoryStart.Year(), GSAPIHistoryStart.Month(), GSAPIHistoryStart.Day(), 0, 0, 0, 0, helsinki)
	gsEnd := time.Date(until.Year(), until.Month(), until.Day(), 0, 0, 0, 0, helsinki)
	d.gsInvoices = newTimeline(gsStart, gsEnd, d.GSInvoices)
	d.gsCharges = newTimeline(gsStart, gsEnd, d.GSCharges)
	d.SignicatInvoices, d.GSInvoices, d.GSCharges = d.signicatInvoices.n, d.gsInvoices.n, d.gsCharges.n
	return d
}

// newTimeline spaces records so that perDefault of them fill [start, DefaultUntil), and keeps those
// before end.
func newTimeline(start, end time.Time, perDefault int) timeline {
	defEnd := time.Date(DefaultUntil.Year(), DefaultUntil.Month(), DefaultUntil.Day(), 0, 0, 0, 0, start.Location())
	t := timeline{start: start, step: defEnd.Sub(start) / time.Duration(max(1, perDefault))}
	if perDefault == 0 || t.step <= 0 {
		return t
	}
	limit := int(end.Sub(start)/t.step) + 2 // base(limit) is past end; no overflow in the search
	t.n = sort.Search(max(0, limit), func(i int) bool { return !t.base(i).Before(end) })
	return t
}

// h is a splitmix64 hash of (seed, stream, i): the only source of randomness in the data.
func (d *Dataset) h(stream string, i int) uint64 {
	x := d.seed ^ uint64(i)*0x9E3779B97F4A7C15
	for _, c := range []byte(stream) {
		x = (x ^ uint64(c)) * 0x100000001B3
	}
	x += 0x9E3779B97F4A7C15
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9
	x = (x ^ (x >> 27)) * 0x94D049BB133111EB
	return x ^ (x >> 31)
}

func (d *Dataset) pick(stream string, i int, list []string) string {
	return list[d.h(stream, i)%uint64(len(list))]
}

// timeline spreads n records evenly over [start, end); record i's time grows with i, except that some
// records are moved to the very edges of their month (00:00:00.000 on the 1st, 23:59:59.997 on the last
// day) so that window boundaries are exercised on purpose.
type timeline struct {
	start time.Time
	step  time.Duration
	n     int
}

func (t timeline) base(i int) time.Time {
	return t.start.Add(time.Duration(i)*t.step + t.step/2).Truncate(time.Millisecond)
}

// at is record i's time: usually base(i), a month edge for every 23rd and 29th record.
func (t timeline) at(i int) time.Time {
	b := t.base(i)
	loc := b.Location()
	first := time.Date(b.Year(), b.Month(), 1, 0, 0, 0, 0, loc)
	switch {
	case i%23 == 7:
		return first
	case i%29 == 11:
		return first.AddDate(0, 1, 0).Add(-3 * time.Millisecond)
	}
	return b
}

// candidates returns the index range whose records may fall in [from, to]; callers filter exactly with at.
// Edge snapping moves a record by at most one month, so a month of slack on each side suffices.
func (t timeline) candidates(from, to time.Time) (lo, hi int) {
	from, to = from.AddDate(0, -1, -1), to.AddDate(0, 1, 1)
	lo = sort.Search(t.n, func(i int) bool { return !t.base(i).Before(from) })
	hi = sort.Search(t.n, func(i int) bool { return t.base(i).After(to) })
	return lo, hi
}

// inWindow lists, in index order, the records whose time lies in [from, to] (both inclusive).
func (t timeline) inWindow(from, to time.Time) []int {
	lo, hi := t.candidates(from, to)
	var out []int
	for i := lo; i < hi; i++ {
		if at := t.at(i); !at.Before(from) && !at.After(to) {
			out = append(out, i)
		}
	}
	return out
}

var (
	orgWords  = []string{"Nordlys", "Fjord", "Ærlig", "Øst-Bergen", "Åsane", "Straße", "Société", "Kvarts", "Polar", "Granitt", "Müller", "Tromsø", "Česká", "Łódź", "Helsingin", "Göteborgs", "Skärgård", "Vilnius", "Zürich", "Ålesund"}
	orgKinds  = []string{"AS", "AB", "Oy", "GmbH", "SA", "ASA", "Ltd", "s.r.o.", "ApS"}
	firstName = []string{"Harald", "Ingrid", "Åse", "Øyvind", "Björn", "Märta", "Jürgen", "Zoë", "Łukasz", "Siri", "Kåre", "Anaïs", "Mikko", "Aino", "Jiří"}
	lastName  = []string{"Hårfagre", "Nordmann", "Lindström", "Øvergaard", "Müller", "Kowalski", "Virtanen", "Dvořák", "Søndergaard", "Eriksson", "O'Brien", "García"}
	countries = []string{"NO", "SE", "DK", "FI", "DE", "EE"}
	currency  = map[string]string{"NO": "NOK", "SE": "SEK", "DK": "DKK", "FI": "EUR", "DE": "EUR", "EE": "EUR"}
	products  = []string{"auth", "auth-nbid", "auth-sbid", "auth-ftn", "sign", "sign-nbid", "sign-mitid", "id-verification", "paper"}
)

const idAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// sigID makes a Signicat-style identifier such as "o-p-0TgcUq7CylltM7OkwB4t": 14 hashed characters and
// then the index in base 62, so a detail lookup decodes the id instead of keeping an index in memory.
func (d *Dataset) sigID(prefix, stream string, i int) string {
	var b [20]byte
	x := d.h(stream+"#id", i)
	for k := 0; k < 14; k++ {
		if k == 10 {
			x = d.h(stream+"#id2", i)
		}
		b[k] = idAlphabet[x%62]
		x /= 62
	}
	for k, n := 19, i; k >= 14; k-- {
		b[k] = idAlphabet[n%62]
		n /= 62
	}
	return prefix + string(b[:])
}

// sigIndex recovers the index from an id made by sigID, or reports false.
func (d *Dataset) sigIndex(prefix, stream, id string, n int) (int, bool) {
	if len(id) != len(prefix)+20 {
		return 0, false
	}
	i := 0
	for _, c := range []byte(id[len(id)-6:]) {
		k := strings.IndexByte(idAlphabet, c)
		if k < 0 {
			return 0, false
		}
		i = i*62 + k
	}
	if i >= n || d.sigID(prefix, stream, i) != id {
		return 0, false
	}
	return i, true
}

func (d *Dataset) orgName(stream string, i int) string {
	return fmt.Sprintf("%s %s %s", d.pick(stream+"#w1", i, orgWords), d.pick(stream+"#w2", i, orgWords), d.pick(stream+"#k", i, orgKinds))
}

// ---- Signicat ----

// SignicatOrganization is generated organisation i (0-based, after the published examples).
func (d *Dataset) SignicatOrganization(i int) obj {
	country := d.pick("sorg#c", i, countries)
	lm := ""
	if d.h("sorg#lm", i)%5 != 0 {
		lm = SignicatHistoryStart.Add(time.Duration(d.h("sorg#t", i)%(6*365*24*3600)) * time.Second).Format(time.RFC3339)
	}
	parent := any(d.signicatOrgRef(-1))
	if i > 0 && d.h("sorg#p", i)%3 == 0 {
		parent = d.signicatOrgRef(int(d.h("sorg#pi", i) % uint64(i)))
	}
	return obj{
		{"id", d.sigID("o-p-", "sorg", i)},
		{"name", d.orgName("sorg", i)},
		{"lastModifiedDate", lm},
		{"entityId", fmt.Sprintf("%09d", d.h("sorg#e", i)%1e9)},
		{"entityVatNumber", nullIf(d.h("sorg#v", i)%2 == 0, fmt.Sprintf("%s%09dMVA", country, d.h("sorg#e", i)%1e9))},
		{"entityLegalName", nullIf(d.h("sorg#v", i)%3 == 0, d.orgName("sorg", i))},
		{"country", country},
		{"parentOrganization", parent},
	}
}

func nullIf(null bool, v any) any {
	if null {
		return nil
	}
	return v
}

// signicatOrgRef is the embedded organisation reference; -1 is the published "My Parent Organization".
func (d *Dataset) signicatOrgRef(i int) obj {
	if i < 0 {
		return obj{{"id", "o-p-avKce97dOKlnAlOw2R55"}, {"name", "My Parent Organization"}, {"entityId", "111999555"}, {"entityVatNumber", nil}, {"entityLegalName", nil}, {"country", "NO"}}
	}
	o := d.SignicatOrganization(i)
	return obj{o[0], o[1], o[3], o[4], o[5], o[6]}
}

// SignicatAccount is generated account i; i >= SignicatAccounts are the soft-deleted ones.
func (d *Dataset) SignicatAccount(i int, rev string, detail bool) obj {
	deleted := i >= d.SignicatAccounts
	created := SignicatHistoryStart.Add(time.Duration(d.h("sacc#t", i)%(6*365*24*3600)) * time.Second)
	createdS, modS := created.Format(time.RFC3339), created.Add(time.Duration(d.h("sacc#m", i)%(90*24*3600))*time.Second).Format(time.RFC3339)
	if d.h("sacc#e", i)%7 == 0 {
		createdS = ""
	}
	if d.h("sacc#e", i)%11 == 0 {
		modS = ""
	}
	var isDel, delAt any
	if deleted {
		isDel, delAt = true, created.AddDate(0, 3, 0).Format("2006-01-02T15:04:05.000Z")
	} else if d.h("sacc#d", i)%2 == 0 {
		isDel = false
	}
	var org any
	if d.h("sacc#o", i)%13 != 0 && d.SignicatOrganizations > 0 {
		ref := d.signicatOrgRef(int(d.h("sacc#oi", i) % uint64(d.SignicatOrganizations)))
		if rev == "a" {
			ref = ref[:2]
		}
		org = ref
	}
	sandbox := d.h("sacc#s", i)%4 == 0
	prefix := "a-ppge-"
	if sandbox {
		prefix = "a-spge-"
	}
	o := obj{
		{"id", d.sigID(prefix, "sacc", i)},
		{"name", fmt.Sprintf("%s %s", d.pick("sacc#n", i, orgWords), d.pick("sacc#p", i, []string{"Production", "Test", "Innlogging", "Signering", "Portal"}))},
		{"createdDate", createdS},
		{"lastModifiedDate", modS},
		{"isSoftDeleted", isDel},
		{"softDeletedAt", delAt},
	}
	rest := obj{
		{"isSandbox", sandbox},
		{"region", "EU"},
		{"cloud", d.pick("sacc#cl", i, []string{"GCP", "GCP", "OTC"})},
		{"enabled", d.h("sacc#en", i)%6 != 0},
		{"isDeleteProtected", d.h("sacc#dp", i)%9 == 0},
	}
	if detail {
		// The detail payload puts organization before the flags, as in the reference.
		o = append(o, field{"organization", org})
		o = append(o, rest...)
		var ps []string
		for k, p := range products {
			if d.h("sacc#pr", i*16+k)%3 == 0 {
				ps = append(ps, p)
			}
		}
		if ps == nil {
			ps = []string{}
		}
		return append(o, field{"products", ps})
	}
	o = append(o, rest...)
	return append(o, field{"organization", org})
}

// SignicatContact is generated contact i.
func (d *Dataset) SignicatContact(i int) obj {
	fn, ln := d.pick("scon#f", i, firstName), d.pick("scon#l", i, lastName)
	mid := ""
	if d.h("scon#m", i)%5 == 0 {
		mid = d.pick("scon#m2", i, firstName)
	}
	name := fn + " " + ln
	if mid != "" {
		name = fn + " " + mid + " " + ln
	}
	var roles any
	if r := d.h("scon#r", i) % 4; r > 0 {
		roles = []string{"Other", "CommercialOwner", "MainTechnicalContact", "FinancialContact"}[:r]
	}
	var org any
	if d.SignicatOrganizations > 0 {
		org = d.signicatOrgRef(int(d.h("scon#o", i) % uint64(d.SignicatOrganizations)))
	}
	country := d.pick("scon#c", i, countries)
	return obj{
		{"id", d.sigID("c-p-", "scon", i)},
		{"name", name},
		{"firstName", fn},
		{"middleName", mid},
		{"lastName", ln},
		{"email", strings.ToLower(fmt.Sprintf("%s.%s%d@example.%s", fn, strings.ReplaceAll(ln, "'", ""), i, strings.ToLower(country)))},
		{"mobile", fmt.Sprintf("+47%08d", d.h("scon#mo", i)%1e8)},
		{"phone", ""},
		{"country", country},
		{"roles", roles},
		{"organization", org},
	}
}

var invoicePrefixes = []string{"SSE-.INV", "SNO-.INV", "SDK-.INV", "SFI-INV.", "SDE-INV."}

// SignicatInvoiceNumber is generated invoice i's number: it contains '-' and '.', as the real ones do.
func (d *Dataset) SignicatInvoiceNumber(i int) string {
	return fmt.Sprintf("%s%06d", invoicePrefixes[i%len(invoicePrefixes)], i+1)
}

// SignicatInvoiceIndex maps an invoice number back to its index.
func (d *Dataset) SignicatInvoiceIndex(number string) (int, bool) {
	for _, p := range invoicePrefixes {
		if rest, ok := strings.CutPrefix(number, p); ok && len(rest) == 6 {
			var n int
			if _, err := fmt.Sscanf(rest, "%06d", &n); err == nil && n >= 1 && n <= d.SignicatInvoices && d.SignicatInvoiceNumber(n-1) == number {
				return n - 1, true
			}
		}
	}
	return 0, false
}

// SignicatInvoiceTime is generated invoice i's invoiceDate.
func (d *Dataset) SignicatInvoiceTime(i int) time.Time { return d.signicatInvoices.at(i) }

// SignicatInvoicesIn lists the invoices with invoiceDate in [from, to].
func (d *Dataset) SignicatInvoicesIn(from, to time.Time) []int {
	return d.signicatInvoices.inWindow(from, to)
}

// SignicatLine is one generated invoice line, in cents and thousandths of a unit.
type SignicatLine struct {
	Product                    string
	Quantity                   int64 // thousandths
	PriceCents, AmountCents    int64
	DiscountCents, TaxCents    int64
	ChargeCents                int64
	Currency, ItemNumber, Unit string
	ContractStart, ContractEnd time.Time
}

// SignicatLines are generated invoice i's lines.
func (d *Dataset) SignicatLines(i int) []SignicatLine {
	n := 1 + int(d.h("sinv#n", i)%6)
	cur := d.signicatInvoiceCurrency(i)
	at := d.SignicatInvoiceTime(i)
	out := make([]SignicatLine, n)
	for k := range out {
		key := i*8 + k
		qty := int64(1+d.h("sinl#q", key)%2000) * 1000
		if d.h("sinl#f", key)%4 == 0 {
			qty = int64(d.h("sinl#q", key)%5000) + 1 // fractional quantities
		}
		price := int64(1 + d.h("sinl#p", key)%500) // cents per unit
		amount := qty * price / 1000
		disc := int64(0)
		if d.h("sinl#d", key)%5 == 0 {
			disc = amount / 10
		}
		net := amount - disc
		start := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
		out[k] = SignicatLine{
			Product: d.pick("sinl#pr", key, products), Quantity: qty, PriceCents: price,
			AmountCents: net, DiscountCents: disc, TaxCents: net / 4, ChargeCents: amount,
			Currency: cur, ItemNumber: fmt.Sprintf("ITEM-%04d", d.h("sinl#i", key)%10000), Unit: "pcs",
			ContractStart: start, ContractEnd: start.AddDate(0, 1, 0).Add(-time.Second),
		}
	}
	return out
}

func (d *Dataset) signicatInvoiceCurrency(i int) string {
	return currency[d.pick("sinv#c", i, countries)]
}

// SignicatInvoice is generated invoice i as listed (detail adds lines).
func (d *Dataset) SignicatInvoice(i int, detail bool) obj {
	lines := d.SignicatLines(i)
	var charge, tax, disc, net int64
	for _, l := range lines {
		charge += l.ChargeCents
		tax += l.TaxCents
		disc += l.DiscountCents
		net += l.AmountCents
	}
	orgI := 0
	if d.SignicatOrganizations > 0 {
		orgI = int(d.h("sinv#o", i) % uint64(d.SignicatOrganizations))
	}
	org := d.SignicatOrganization(orgI)
	at := d.SignicatInvoiceTime(i)
	date := at.Format("2006-01-02T15:04:05Z")
	if at.Nanosecond() != 0 {
		date = at.Format("2006-01-02T15:04:05.000Z")
	}
	country := d.pick("sinv#c", i, countries)
	o := obj{
		{"organizationId", org.get("id")},
		{"organizationName", org.get("name")},
		{"usageOrganizationId", org.get("id")},
		{"usageOrganizationName", org.get("name")},
		{"invoiceNumber", d.SignicatInvoiceNumber(i)},
		{"invoiceDate", date},
		{"invoiceAddressCountryRegionISOCode", country},
		{"invoiceAddressZipCode", fmt.Sprintf("%04d", d.h("sinv#z", i)%10000)},
		{"totalTaxAmount", money(tax)},
		{"invoiceAddressStreetNumber", fmt.Sprint(1 + d.h("sinv#sn", i)%200)},
		{"invoiceAddressStreet", d.pick("sinv#st", i, []string{"Storgata", "Kungsgatan", "Bahnhofstraße", "Åsveien", "Mannerheimintie"})},
		{"totalChargeAmount", money(charge)},
		{"totalDiscountAmount", money(disc)},
		{"currencyCode", d.signicatInvoiceCurrency(i)},
		{"salesOrderNumber", fmt.Sprintf("SO-%07d", i+1)},
		{"invoiceAddressCity", d.pick("sinv#ci", i, []string{"Oslo", "Bergen", "Göteborg", "München", "Tromsø", "Århus"})},
		{"invoiceHeaderTaxAmount", money(tax)},
		{"invoiceAddressState", ""},
		{"invoiceAddressCountryRegionId", country},
		{"customersOrderReference", ""},
		{"totalInvoiceAmount", money(net + tax)},
		{"paymentId", fmt.Sprintf("%011d", d.h("sinv#pay", i)%1e11)},
		{"invoiceCustomerAccountNumber", fmt.Sprintf("C%06d", orgI+1)},
		{"sigContractRef", ""},
		{"sigDocumentRef", ""},
		{"settled", at.Before(d.until.AddDate(0, 0, -45))},
	}
	if !detail {
		return o
	}
	ls := make([]obj, len(lines))
	for k, l := range lines {
		ls[k] = obj{
			{"lineTotalDiscountAmount", money(l.DiscountCents)},
			{"lineTotalTaxAmount", money(l.TaxCents)},
			{"currencyCode", l.Currency},
			{"salesPrice", money(l.PriceCents)},
			{"salesUnitSymbol", l.Unit},
			{"lineTotalChargeAmount", money(l.ChargeCents)},
			{"invoicedQuantity", milli(l.Quantity)},
			{"lineAmount", money(l.AmountCents)},
			{"productName", l.Product},
			{"revRecContractStartDate", l.ContractStart.Format(time.RFC3339)},
			{"revRecContractEndDate", l.ContractEnd.Format(time.RFC3339)},
			{"sigContractStart", l.ContractStart.Format(time.RFC3339)},
			{"sigContractEnd", l.ContractEnd.Format(time.RFC3339)},
			{"itemNumber", l.ItemNumber},
		}
	}
	return append(o, field{"lines", ls})
}

// milli renders thousandths as a decimal number without trailing zeros (1500 → 1.5, 2000 → 2).
type milli int64

// MarshalJSON renders the value as a JSON number.
func (m milli) MarshalJSON() ([]byte, error) {
	s := fmt.Sprintf("%d.%03d", int64(m)/1000, int64(m)%1000)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return []byte(s), nil
}
