package sandbox

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

func (s *Sandbox) routeGSAPI(mux *http.ServeMux) {
	p := GSAPIPrefix
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.gsapiAuthorized(w, r) {
				h(w, r)
			}
		}
	}
	mux.HandleFunc("GET "+p+"/welcome", s.handleWelcome)
	get := map[string]http.HandlerFunc{
		"/organizations/list":            s.gsOrganizations,
		"/organization/actions":          s.gsOrganizations,
		"/organizationbillinginfos/list": s.gsBillingInfos,
		"/users/list":                    s.gsUsers,
		"/user/actions":                  s.gsUser,
		"/countrycodes/list":             s.gsCountryCodes,
		"/products/list":                 s.gsProductList,
		"/productdetails/list":           s.gsProductDetails,
		"/profiles/list":                 s.gsProfiles,
		"/objects/list":                  s.gsObjects,
		"/object/actions":                s.gsObject,
		"/contracts/list":                s.gsContracts,
		"/contractlines/list":            s.gsContractLines,
		"/charges/actions":               s.gsChargesList,
		"/pricings/list":                 s.gsPricings,
		"/taxrates/list":                 s.gsTaxRates,
		"/invoicebatch/list":             s.gsInvoiceBatches,
		"/invoicebatch/actions":          s.gsInvoiceBatch,
		"/invoice/list":                  s.gsInvoiceList,
		"/invoice/line_list":             s.gsInvoiceLineList,
		"/invoicecharges/list":           s.gsInvoiceCharges,
		"/invoice/blobs":                 s.gsInvoiceBlobs,
		"/invoice/chargedetails":         s.gsInvoiceChargeDetails,
		"/invoicejournal/list":           s.gsInvoiceJournal,
		"/datasync":                      s.gsDatasync,
	}
	for path, h := range get {
		mux.HandleFunc("GET "+p+path, auth(h))
	}
	mux.HandleFunc("POST "+p+"/datatable/list", auth(s.gsDatatable))
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		if s.gsapiAuthorized(w, r) {
			gsError(w, http.StatusBadRequest, "Invalid or unsupported method")
		}
	})
}

func gsError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"rettext": msg})
}

// gsScope resolves the org_id / organization parameters to a root org_id. ok is false (and an error has
// been written) when required is set and neither is given, or the organisation is unknown.
func (s *Sandbox) gsScope(w http.ResponseWriter, r *http.Request, required bool) (root int, ok bool) {
	q := r.URL.Query()
	if v := q.Get("org_id"); v != "" {
		id, err := strconv.Atoi(v)
		if err != nil {
			gsError(w, http.StatusBadRequest, "org_id must be an integer")
			return 0, false
		}
		return id, true
	}
	if path := q.Get("organization"); path != "" {
		parts := strings.Split(path, "/")
		name := parts[len(parts)-1]
		switch name {
		case "Root":
			return 0, true
		case "ApiDemoCloud":
			return 1202, true
		}
		for i := 0; i < s.data.GSOrganizations; i++ {
			if s.data.orgName("gorg", i) == name {
				return s.data.GSOrgID(i), true
			}
		}
		gsError(w, http.StatusNotFound, "Organization not found")
		return 0, false
	}
	if required {
		gsError(w, http.StatusBadRequest, "org_id or organization is required")
		return 0, false
	}
	return 0, true
}

// gsParent is the parent org_id of a generated organisation, or -1 above the tree.
func (d *Dataset) gsParent(orgID int) int {
	switch {
	case orgID == 0:
		return -1
	case orgID == 1202, orgID < 2000:
		return 0
	}
	return d.gsParentOf(orgID - 2000)
}

// gsUnder reports whether orgID lies in the subtree rooted at root (org_id 0 is Root: everything).
func (d *Dataset) gsUnder(orgID, root int) bool {
	for id := orgID; id >= 0; id = d.gsParent(id) {
		if id == root {
			return true
		}
	}
	return false
}

// gsWindow parses startdate/enddate as GSAPI does: datetimes in the tenant's local time (or with an
// explicit offset), both ends inclusive, and a bare date meaning midnight at its start. Without them the
// window is the current month.
func (s *Sandbox) gsWindow(w http.ResponseWriter, r *http.Request, startName, endName string) (from, to time.Time, ok bool) {
	now := s.opts.Now().In(helsinki)
	from = time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, helsinki)
	to = from.AddDate(0, 1, 0).Add(-time.Millisecond)
	q := r.URL.Query()
	for name, dst := range map[string]*time.Time{startName: &from, endName: &to} {
		if v := q.Get(name); v != "" {
			t, err := ParseGSTime(v)
			if err != nil {
				gsError(w, http.StatusBadRequest, fmt.Sprintf("%s: %v", name, err))
				return from, to, false
			}
			*dst = s.windowBound(t)
		}
	}
	return from, to, true
}

// ParseGSTime reads a GSAPI date or datetime; a value without an offset is Helsinki wall-clock time.
func ParseGSTime(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, helsinki); err == nil {
			return t.In(helsinki), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date or datetime", v)
}

var datasyncOptions = []string{"Invoices", "InvoiceLines", "Organizations", "OrganizationBillingInfo", "Products", "Prices", "ProductCategories", "Charges", "CallTickets"}

// gsDatasync serves the nine DataSync export options.
func (s *Sandbox) gsDatasync(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	option := q.Get("option")
	if id := q.Get("option_id"); id != "" && option == "" {
		n, err := strconv.Atoi(id)
		if err != nil || n < 1 || n > len(datasyncOptions) {
			gsError(w, http.StatusBadRequest, "Invalid option_id")
			return
		}
		option = datasyncOptions[n-1]
	}
	valid := false
	for _, o := range datasyncOptions {
		if strings.EqualFold(o, option) {
			option, valid = o, true
		}
	}
	if !valid {
		gsError(w, http.StatusBadRequest, "option or option_id is required (Invoices, InvoiceLines, Organizations, OrganizationBillingInfo, Products, Prices, ProductCategories, Charges, CallTickets)")
		return
	}
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	d := s.data
	batch := -1
	if v := q.Get("invoice_id"); v != "" {
		batch, _ = strconv.Atoi(v)
	}
	aw := newArrayWriter(w)
	switch option {
	case "Invoices", "InvoiceLines", "Charges":
		from, to, ok := s.gsWindow(w, r, "startdate", "enddate")
		if !ok {
			return
		}
		if option == "Charges" {
			for _, i := range d.GSChargesIn(from, to) {
				c := d.gsCharge(i)
				if d.gsUnder(c.get("org_id").(int), root) && !aw.add(c) {
					return
				}
			}
			break
		}
		for _, i := range d.GSInvoicesIn(from, to) {
			inv := d.GSInvoice(i)
			if !d.gsUnder(inv.OrgID, root) || (batch >= 0 && inv.InvoiceID != batch) {
				continue
			}
			if option == "Invoices" {
				aw.add(s.invoiceRow(i))
				continue
			}
			for _, l := range s.lineRows(i) {
				aw.add(l)
			}
		}
	case "Organizations":
		s.eachGSOrg(root, func(o any) { aw.add(o) })
	case "OrganizationBillingInfo":
		s.eachBillingInfo(root, func(o any) { aw.add(o) })
	case "Products":
		for _, p := range s.gsProducts() {
			aw.add(p)
		}
	case "Prices":
		for _, p := range s.gsPrices() {
			aw.add(p)
		}
	case "ProductCategories":
		for i, c := range []string{"Base fees", "Usage", "SaaS Subscription Fees", "Services", "Storage", "Discounts"} {
			aw.add(obj{{"calltype_id", i + 1}, {"descr", c}, {"operator_sub_id", 0}, {"show_in_invoices", true}})
		}
	case "CallTickets":
		// A tenant without telephone data: a valid, empty export.
	}
	aw.end()
}

// eachGSOrg yields the organisations under root: the published example, then the generated ones.
func (s *Sandbox) eachGSOrg(root int, yield func(any)) {
	if s.data.gsUnder(1202, root) {
		for _, o := range exampleObjects("gsapi_organizations_list") {
			yield(o)
		}
	}
	for i := 0; i < s.data.GSOrganizations; i++ {
		if s.data.gsUnder(s.data.GSOrgID(i), root) {
			yield(s.data.GSOrganization(i))
		}
	}
}

func (s *Sandbox) eachBillingInfo(root int, yield func(any)) {
	ex := exampleObjects("gsapi_organizationbillinginfos_list")
	for _, e := range ex {
		var head struct {
			OrgID int `json:"org_id"`
		}
		_ = json.Unmarshal(e, &head)
		if s.data.gsUnder(head.OrgID, root) {
			yield(e)
		}
	}
	for i := 0; i < s.data.GSOrganizations; i++ {
		id := s.data.GSOrgID(i)
		if !s.data.gsUnder(id, root) {
			continue
		}
		yield(obj{
			{"organization", s.data.orgName("gorg", i)}, {"org_id", id}, {"eBillable", s.data.h("gbi#e", i)%2 == 0},
			{"eBilling_Address", nil}, {"eBilling_Operator", nil}, {"billingperiod_id", 1}, {"payment_term_id", 14},
			{"custtype", "B"}, {"interest_percentage", money(750)}, {"invoice_type", 1}, {"language", "FIN"},
			{"billing_reference", fmt.Sprintf("REF-%d", id)}, {"no_reminders", false}, {"no_collects", false},
			{"no_billing", false}, {"no_sale", false}, {"consolidated_company", false}, {"comment", ""},
			{"costcentre", "*"}, {"billing_emailaddress", fmt.Sprintf("invoices+%d@example.fi", id)},
			{"customer_vat_id", fmt.Sprintf("FI%08d", s.data.h("gbi#v", i)%1e8)},
		})
	}
}

func (s *Sandbox) gsProducts() []obj {
	out := make([]obj, len(gsProducts))
	for i, p := range gsProducts {
		out[i] = obj{{"productcode", p.code}, {"descr", p.descr}, {"calltype_id", 1 + i%6}, {"cust_product_group", nil},
			{"unit", []string{"pcs", "km", "month"}[i%3]}, {"validfrom", "1900-01-01 00:00:00"}, {"validto", "2999-12-31 23:59:59"}, {"account", p.account}}
	}
	return out
}

// gsPrices are the published price rows followed by one generated row per product.
func (s *Sandbox) gsPrices() []any {
	var out []any
	for _, e := range exampleObjects("gsapi_pricings_list") {
		out = append(out, e)
	}
	for i, p := range gsProducts {
		out = append(out, obj{
			{"PricelistOrganization", "ApiDemoCloud"}, {"pricing_id", 100 + i}, {"productcode", p.code}, {"descr", p.descr},
			{"PricingModel", "Unit"}, {"min_amount", nil}, {"max_amount", nil}, {"price", money(int64(s.data.h("gpr#p", i) % 200000))},
			{"pricevalidfrom", "2021-01-01T00:00:00+02:00"}, {"pricevalidto", "2998-12-31T23:59:59.997+02:00"},
			{"currency", "EUR"}, {"PricelistOrgID", 1202}, {"CurrentOrgID", 0},
		})
	}
	return out
}

func (s *Sandbox) gsOrganizations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aw := newArrayWriter(w)
	add := func(o any) {
		b, _ := marshalValue(o)
		var f map[string]any
		_ = json.Unmarshal(b, &f)
		for _, k := range []string{"org_id", "parent_org_id", "business_id", "company_name", "external_customer_id", "external_customer_id2"} {
			if v := q.Get(k); v != "" && fmt.Sprint(f[k]) != v {
				return
			}
		}
		aw.add(o)
	}
	s.eachGSOrg(0, add)
	for i := 0; i < min(s.opts.RepeatedOrganizations, s.data.GSOrganizations); i++ {
		add(s.data.GSOrganization(i))
	}
	aw.end()
}

func (s *Sandbox) gsBillingInfos(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	aw := newArrayWriter(w)
	s.eachBillingInfo(root, func(o any) { aw.add(o) })
	aw.end()
}

func (s *Sandbox) gsUserRows(root int) []any {
	var out []any
	for _, e := range exampleObjects("gsapi_users_list") {
		out = append(out, e)
	}
	for i := 0; i < s.data.GSOrganizations; i++ {
		if !s.data.gsUnder(s.data.GSOrgID(i), root) {
			continue
		}
		out = append(out, obj{
			{"u_id", 1000 + i}, {"objectid", -(1000 + i)}, {"firstname", s.data.pick("gusr#f", i, firstName)},
			{"lastname", s.data.pick("gusr#l", i, lastName)}, {"org_id", s.data.GSOrgID(i)},
			{"email_address", nullIf(i%3 == 0, fmt.Sprintf("user%d@example.fi", i))}, {"company", s.data.orgName("gorg", i)},
			{"contact_tel", nil}, {"u_type_id", 0}, {"external_u_id", fmt.Sprintf("EU%05d", i)},
		})
	}
	return out
}

func (s *Sandbox) gsUsers(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, true)
	if ok {
		writeJSON(w, http.StatusOK, s.gsUserRows(root))
	}
}

func (s *Sandbox) gsUser(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("u_id") == "104" {
		writeRaw(w, example("gsapi_user_actions"))
		return
	}
	for _, k := range []string{"u_id", "email_address", "external_u_id"} {
		if v := q.Get(k); v != "" {
			for _, u := range s.gsUserRows(0) {
				b, _ := marshalValue(u)
				var f map[string]any
				_ = json.Unmarshal(b, &f)
				if fmt.Sprint(f[k]) == v {
					writeJSON(w, http.StatusOK, []any{u})
					return
				}
			}
			writeJSON(w, http.StatusOK, []any{})
			return
		}
	}
	gsError(w, http.StatusBadRequest, "u_id, email_address or external_u_id is required")
}

func (s *Sandbox) gsCountryCodes(w http.ResponseWriter, r *http.Request) {
	rows := []any{exampleObjects("gsapi_countrycodes_list")[0]}
	for _, c := range [][4]any{{"SWE", "Ruotsi", "Sweden", "SE"}, {"NOR", "Norja", "Norway", "NO"}, {"DNK", "Tanska", "Denmark", "DK"}, {"EST", "Viro", "Estonia", "EE"}, {"DEU", "Saksa", "Germany", "DE"}} {
		rows = append(rows, obj{{"billing_country_id", c[0]}, {"descr_fin", c[1]}, {"descr_eng", c[2]}, {"default_option", 0}, {"alpha2code", c[3]}, {"b_base_country_id", nil}})
	}
	q := r.URL.Query()
	aw := newArrayWriter(w)
	for _, row := range rows {
		b, _ := marshalValue(row)
		if v := q.Get("billing_country_id"); v != "" && !strings.Contains(string(b), `"billing_country_id":"`+v+`"`) {
			continue
		}
		if v := q.Get("alpha2code"); v != "" && !strings.Contains(string(b), `"alpha2code":"`+v+`"`) {
			continue
		}
		aw.add(row)
	}
	aw.end()
}

func (s *Sandbox) gsProductList(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.gsScope(w, r, true); !ok {
		return
	}
	code := strings.ReplaceAll(r.URL.Query().Get("productcode"), "%", "")
	aw := newArrayWriter(w)
	for _, p := range s.gsProducts() {
		if code == "" || strings.HasPrefix(p.get("productcode").(string), code) {
			aw.add(p)
		}
	}
	aw.end()
}

func (s *Sandbox) gsProductDetails(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("productcode")
	aw := newArrayWriter(w)
	for i, p := range gsProducts {
		if code != "" && p.code != code {
			continue
		}
		for lang, descr := range []string{"Finnish", "English"} {
			aw.add(obj{{"productdetail_id", 10*i + lang + 1}, {"productcode", p.code}, {"language_id", lang + 1}, {"language_descr", descr},
				{"cust_descr", p.descr}, {"cust_product_group", nil}, {"cr_account", p.account}, {"db_account", nil},
				{"validfrom", "1900-01-01 00:00:00"}, {"validto", "2999-12-31 23:59:59"}, {"inherit", 1}})
		}
	}
	aw.end()
}

func (s *Sandbox) gsProfiles(w http.ResponseWriter, r *http.Request) {
	rows := []any{exampleObjects("gsapi_profiles_list")[0],
		obj{{"profile_id", 70}, {"descr", "Contract"}, {"custtype_id", "B"}, {"id_autogenerate", nil}, {"id_prefix", "C-"}, {"id_suffix", nil}, {"id_lenght", 9}, {"layout_formatted", nil}, {"deleted", 0}, {"help_link", nil}, {"type_id", 70}, {"type_descr", "Contract"}, {"show_in_list", true}, {"icon_class_name", nil}},
		obj{{"profile_id", 71}, {"descr", "Contract Line"}, {"custtype_id", "B"}, {"id_autogenerate", nil}, {"id_prefix", "CL-"}, {"id_suffix", nil}, {"id_lenght", 9}, {"layout_formatted", nil}, {"deleted", 0}, {"help_link", nil}, {"type_id", 70}, {"type_descr", "Contract"}, {"show_in_list", true}, {"icon_class_name", nil}},
	}
	writeJSON(w, http.StatusOK, rows)
}

// gsObjectRows are the published contract objects followed by one generated contract and contract line
// per organisation, each with its tenant-defined objectfields.
func (s *Sandbox) gsObjectRows() []any {
	var out []any
	for _, e := range exampleObjects("gsapi_objects_list") {
		out = append(out, e)
	}
	for i := 0; i < s.data.GSOrganizations; i++ {
		cid := fmt.Sprintf("C-%09d", 100+i)
		out = append(out, obj{{"objectname", cid}, {"objectkey", cid}, {"profile_id", 70}, {"profilename", "Contract"}, {"u_id", 1000 + i},
			{"org_id", s.data.GSOrgID(i)}, {"objectid", -(5000 + 2*i)}, {"objectfields", obj{{"ContractID", cid}, {"ContractStatus", "1"},
				{"ContractValidFrom", "2021-01-01T00:00:00"}, {"TerminationPeriod", "3"}, {"ContractDescription", "Generated contract " + strconv.Itoa(i)}}}})
		out = append(out, obj{{"objectname", cid + "-001"}, {"objectkey", fmt.Sprintf("CL-%09d", 100+i)}, {"profile_id", 71}, {"profilename", "Contract Line"},
			{"u_id", 1000 + i}, {"org_id", s.data.GSOrgID(i)}, {"objectid", -(5001 + 2*i)}, {"objectfields", obj{{"ContractID", cid},
				{"ContractLineId", cid + "-001"}, {"Quantity", strconv.Itoa(1 + i%12)}, {"pricingmodel", "1"}, {"chargetype", "1"}}}})
	}
	return out
}

func (s *Sandbox) gsObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	if q.Get("type_id") == "" && q.Get("profile_id") == "" && q.Get("objectid") == "" {
		gsError(w, http.StatusBadRequest, "type_id, profile_id or objectid is required")
		return
	}
	aw := newArrayWriter(w)
	for _, o := range s.gsObjectRows() {
		var f struct {
			ProfileID int    `json:"profile_id"`
			OrgID     int    `json:"org_id"`
			ObjectID  int    `json:"objectid"`
			ObjectKey string `json:"objectkey"`
		}
		b, _ := marshalValue(o)
		_ = json.Unmarshal(b, &f)
		if !s.data.gsUnder(f.OrgID, root) && !(root == 0) {
			continue
		}
		if v := q.Get("profile_id"); v != "" && v != strconv.Itoa(f.ProfileID) {
			continue
		}
		if v := q.Get("objectid"); v != "" && v != strconv.Itoa(f.ObjectID) {
			continue
		}
		if v := q.Get("objectkey"); v != "" && v != f.ObjectKey {
			continue
		}
		if v := q.Get("type_id"); v != "" && v != "70" {
			continue
		}
		aw.add(o)
	}
	aw.end()
}

func (s *Sandbox) gsObject(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("objectkey") == "CL-000000001" && q.Get("profile_id") == "71" {
		writeRaw(w, example("gsapi_object_actions"))
		return
	}
	if q.Get("objectid") == "" && q.Get("profile_id") == "" {
		gsError(w, http.StatusBadRequest, "profile_id is required when objectid is not given")
		return
	}
	q.Set("org_id", "0")
	r.URL.RawQuery = q.Encode()
	s.gsObjects(w, r)
}

func (s *Sandbox) gsContracts(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, false)
	if !ok {
		return
	}
	cid := r.URL.Query().Get("ContractID")
	aw := newArrayWriter(w)
	for _, e := range exampleObjects("gsapi_contracts_list") {
		if (cid == "" || strings.Contains(string(e), `"ContractID": "`+cid+`"`)) && s.data.gsUnder(101, root) {
			aw.add(e)
		}
	}
	for i := 0; i < s.data.GSOrganizations; i++ {
		id := fmt.Sprintf("C-%09d", 100+i)
		if (cid != "" && cid != id) || !s.data.gsUnder(s.data.GSOrgID(i), root) {
			continue
		}
		aw.add(obj{{"Company", s.data.orgName("gorg", i)}, {"ContractID", id}, {"objectkey", id}, {"org_id", s.data.GSOrgID(i)},
			{"ContractStatus", "Active"}, {"ContractValidFrom", "2021-01-01 00:00:00"}, {"ContractValidTo", "2999-12-31 23:59:59"},
			{"TerminationPeriod", "3"}, {"ContractSubject", "Subscription"}, {"ContractDescription", "Generated contract " + strconv.Itoa(i)},
			{"ContractLines", obj{{"contractLineID", fmt.Sprintf("CL-%09d", 100+i)}}}})
	}
	aw.end()
}

func (s *Sandbox) gsContractLines(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	cid := r.URL.Query().Get("ContractID")
	aw := newArrayWriter(w)
	for _, e := range exampleObjects("gsapi_contractlines_list") {
		if cid == "" || cid == "C-000000002" {
			aw.add(e)
		}
	}
	for i := 0; i < s.data.GSOrganizations; i++ {
		id := fmt.Sprintf("C-%09d", 100+i)
		if (cid != "" && cid != id) || !s.data.gsUnder(s.data.GSOrgID(i), root) {
			continue
		}
		aw.add(obj{{"Company", s.data.orgName("gorg", i)}, {"ContractLineID", id + "-001"}, {"objectkey", fmt.Sprintf("CL-%09d", 100+i)},
			{"ContractID", id}, {"org_id", s.data.GSOrgID(i)}, {"ContractLineValidFrom", "2021-01-01T00:00:00"}, {"Service", ""},
			{"Quantity", strconv.Itoa(1 + i%12)}, {"ChargeModel", "Usage"}, {"Chargetype", "Recurring"}, {"Aggregation", "No"}, {"PricingModel", "Unit"}})
	}
	aw.end()
}

// gsChargesList is charges/actions GET: charges from starttime (to endtime, default now).
func (s *Sandbox) gsChargesList(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	from, to, ok := s.gsWindow(w, r, "starttime", "endtime")
	if !ok {
		return
	}
	if r.URL.Query().Get("endtime") == "" {
		to = s.opts.Now().In(helsinki)
	}
	aw := newArrayWriter(w)
	for _, i := range s.data.GSChargesIn(from, to) {
		c := s.data.gsCharge(i)
		if s.data.gsUnder(c.get("org_id").(int), root) && !aw.add(c) {
			return
		}
	}
	aw.end()
}

func (s *Sandbox) gsPricings(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("productcode")
	aw := newArrayWriter(w)
	for _, p := range s.gsPrices() {
		b, _ := marshalValue(p)
		if code == "" || strings.Contains(string(b), `"productcode":"`+code+`"`) || strings.Contains(string(b), `"productcode": "`+code+`"`) {
			aw.add(p)
		}
	}
	aw.end()
}

func (s *Sandbox) gsTaxRates(w http.ResponseWriter, r *http.Request) {
	rows := []obj{}
	for i, c := range []string{"Base fees", "Usage", "SaaS Subscription Fees", "Services", "Storage", "Discounts"} {
		for k, rate := range []struct {
			pct        string
			from, till string
		}{{"24.00", "2013-01-01", "2024-08-31"}, {"25.50", "2024-09-01", "2999-12-31"}} {
			rows = append(rows, obj{{"taxrate_id", 10*i + k + 1}, {"productcategory", i + 1}, {"productcategoryname", c},
				{"vatpercentage", json.RawMessage(rate.pct)}, {"validfrom", rate.from}, {"validto", rate.till}})
		}
	}
	writeJSON(w, http.StatusOK, rows)
}

// gsBatches groups the invoices into one batch per month (invoice_id = months since 2020-12).
func (s *Sandbox) gsInvoiceBatches(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to := s.data.gsInvoices.start, s.data.until.In(helsinki)
	for name, dst := range map[string]*time.Time{"runstart": &from, "runend": &to} {
		if v := q.Get(name); v != "" {
			t, err := ParseGSTime(v)
			if err != nil {
				gsError(w, http.StatusBadRequest, name+": "+err.Error())
				return
			}
			*dst = t
		}
	}
	type agg struct {
		n   int
		net int64
	}
	batches := map[int]*agg{}
	var order []int
	for _, i := range s.data.GSInvoicesIn(from, to) {
		inv := s.data.GSInvoice(i)
		if !s.data.gsUnder(inv.OrgID, root) {
			continue
		}
		a := batches[inv.InvoiceID]
		if a == nil {
			a = &agg{}
			batches[inv.InvoiceID] = a
			order = append(order, inv.InvoiceID)
		}
		a.n++
		a.net += inv.NetCents
	}
	aw := newArrayWriter(w)
	for _, id := range order {
		if v := q.Get("batchId"); v != "" && v != strconv.Itoa(id) {
			continue
		}
		run := time.Date(GSAPIHistoryStart.Year(), time.Month(id)+1, 1, 3, 0, 0, 0, helsinki)
		aw.add(obj{{"invoice_id", id}, {"runtime", run.Format(gsTZone)}, {"status", "sent"}, {"invoices", batches[id].n},
			{"net_amount", money(batches[id].net)}, {"deliverymethod", "email"}, {"rule_id", 1}})
	}
	aw.end()
}

func (s *Sandbox) gsInvoiceBatch(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, err := strconv.Atoi(q.Get("batchId"))
	if err != nil {
		gsError(w, http.StatusBadRequest, "batchId is required")
		return
	}
	month := time.Date(GSAPIHistoryStart.Year(), time.Month(id), 1, 0, 0, 0, 0, helsinki)
	var invs []obj
	for _, i := range s.data.GSInvoicesIn(month, month.AddDate(0, 1, 0).Add(-time.Millisecond)) {
		inv := s.data.GSInvoice(i)
		if q.Get("detaillevel") == "2" && inv.Status == "Delivered" {
			continue
		}
		invs = append(invs, obj{{"iheader_id", inv.IHeaderID}, {"org_id", inv.OrgID}, {"status", inv.Status}, {"gross_amount", money(inv.NetCents + inv.VATCents)}})
	}
	out := obj{{"invoice_id", id}, {"invoices_count", len(invs)}}
	if q.Get("detaillevel") != "" && q.Get("detaillevel") != "0" {
		out = append(out, field{"invoices", invs})
	}
	writeJSON(w, http.StatusOK, []any{out})
}

// gsInvoiceIndex maps an iheader_id to its invoice index.
func (s *Sandbox) gsInvoiceIndex(v string) (int, bool) {
	id, err := strconv.Atoi(v)
	if err != nil || id < 10001 || id >= 10001+s.data.GSInvoices {
		return 0, false
	}
	return id - 10001, true
}

// gsInvoiceList is invoice/list: complete invoices in the GS invoice JSON format.
func (s *Sandbox) gsInvoiceList(w http.ResponseWriter, r *http.Request) {
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	q := r.URL.Query()
	to := s.data.until.In(helsinki)
	if v := q.Get("runendtime"); v != "" {
		t, err := ParseGSTime(v)
		if err != nil {
			gsError(w, http.StatusBadRequest, "runendtime: "+err.Error())
			return
		}
		to = t
	}
	aw := newArrayWriter(w)
	for _, i := range s.data.GSInvoicesIn(s.data.gsInvoices.start, to) {
		inv := s.data.GSInvoice(i)
		if !s.data.gsUnder(inv.OrgID, root) || (q.Get("iheader_id") != "" && q.Get("iheader_id") != strconv.Itoa(inv.IHeaderID)) ||
			(q.Get("invoice_id") != "" && q.Get("invoice_id") != strconv.Itoa(inv.InvoiceID)) {
			continue
		}
		head := s.invoiceRow(i)
		aw.add(obj{{"invoice", head}, {"headers", s.lineRows(i)},
			{"seller", obj{{"company_name", "ApiDemoCloud"}, {"business_id", "1234567-8"}, {"country", "FIN"}}}})
	}
	aw.end()
}

func (s *Sandbox) gsInvoiceLineList(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aw := newArrayWriter(w)
	if v := q.Get("iheader_id"); v != "" {
		if i, ok := s.gsInvoiceIndex(v); ok {
			for _, l := range s.lineRows(i) {
				aw.add(l)
			}
		}
		aw.end()
		return
	}
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	for i := 0; i < s.data.GSInvoices; i++ {
		if s.data.gsUnder(s.data.GSInvoice(i).OrgID, root) {
			for _, l := range s.lineRows(i) {
				aw.add(l)
			}
		}
	}
	aw.end()
}

// gsInvoiceCharges is invoicecharges/list: one object (not an array) per iheader_id; iheader_id 58 is the
// published example.
func (s *Sandbox) gsInvoiceCharges(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query().Get("iheader_id")
	if v == "58" {
		writeRaw(w, example("gsapi_invoicecharges_list"))
		return
	}
	i, ok := s.gsInvoiceIndex(v)
	if !ok {
		gsError(w, http.StatusNotFound, "Invoice not found")
		return
	}
	inv, at := s.data.GSInvoice(i), s.data.GSInvoiceTime(i)
	charges := make([]obj, len(inv.Lines))
	for k, l := range inv.Lines {
		start := time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, helsinki)
		charges[k] = obj{{"calldate", start.Format("2006-01-02T15:04:05")}, {"objectId", -(5001 + k)}, {"objectKey", fmt.Sprintf("CL-%09d", 100+k)},
			{"objectProfile", "Contract Line"}, {"product", l.ProductCode}, {"productCategory", "Usage"}, {"price_per_unit", money(l.UnitCents)},
			{"amount", milli(l.Quantity)}, {"price", money(l.NetCents)}, {"currency", inv.Currency}, {"vat", money(l.VATCents)},
			{"vatpercentage", l.VATRate}, {"discount", nil}, {"discountPercentage", nil}, {"billingobject_id", 100 + k}, {"vt_id", 160},
			{"boparams", obj{{"ContractId", fmt.Sprintf("C-%09d", 100+k)}, {"GS_ChargeStartTime", start.Format(gsSpaceMillis)},
				{"GS_ChargeEndTime", start.AddDate(0, 1, 0).Add(-time.Second).Format(gsSpaceMillis)}}}}
	}
	writeJSON(w, http.StatusOK, obj{{"organization", s.data.gsOrgName(inv.OrgID)}, {"invoicetype", "Customer invoice"},
		{"iheader_id", inv.IHeaderID}, {"invoice_id", inv.InvoiceID}, {"status", inv.Status}, {"charges", charges}})
}

func (s *Sandbox) gsInvoiceBlobs(w http.ResponseWriter, r *http.Request) {
	i, ok := s.gsInvoiceIndex(r.URL.Query().Get("iheader_id"))
	if !ok {
		gsError(w, http.StatusNotFound, "Invoice not found")
		return
	}
	inv := s.data.GSInvoice(i)
	writeJSON(w, http.StatusOK, []obj{{{"blob_id", inv.IHeaderID * 2}, {"iheader_id", inv.IHeaderID}, {"filename", fmt.Sprintf("invoice_%d.pdf", inv.IHeaderID)},
		{"mimetype", "application/pdf"}, {"size", 2048 + i%1000}, {"token", fmt.Sprintf("blob-%d", inv.IHeaderID)}}})
}

func (s *Sandbox) gsInvoiceChargeDetails(w http.ResponseWriter, r *http.Request) {
	i, ok := s.gsInvoiceIndex(r.URL.Query().Get("iheader_id"))
	if !ok {
		gsError(w, http.StatusNotFound, "Invoice not found")
		return
	}
	writeJSON(w, http.StatusOK, s.lineRows(i))
}

// NormalizeJournalType maps the spellings of the four journal types to summary, detail, accounting or
// fulldetails ("Full details", "full_details", "FullDetails" …); ok is false for anything else.
func NormalizeJournalType(v string) (string, bool) {
	k := strings.NewReplacer(" ", "", "_", "", "-", "").Replace(strings.ToLower(v))
	switch k {
	case "summary", "detail", "accounting", "fulldetails":
		return k, true
	}
	return "", false
}

func (s *Sandbox) gsInvoiceJournal(w http.ResponseWriter, r *http.Request) {
	kind, ok := NormalizeJournalType(r.URL.Query().Get("journaltype"))
	if !ok {
		gsError(w, http.StatusBadRequest, "journaltype must be Summary, Detail, Accounting or Full details")
		return
	}
	root, ok := s.gsScope(w, r, true)
	if !ok {
		return
	}
	from, to, ok := s.gsWindow(w, r, "startdate", "enddate")
	if !ok {
		return
	}
	aw := newArrayWriter(w)
	for _, i := range s.data.GSInvoicesIn(from, to) {
		if !s.data.gsUnder(s.data.GSInvoice(i).OrgID, root) {
			continue
		}
		for _, row := range s.journal(kind, i) {
			if !aw.add(row) {
				return
			}
		}
	}
	aw.end()
}
