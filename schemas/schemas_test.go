package schemas

import "testing"

func TestEveryDeclaredSchemaLoads(t *testing.T) {
	all, err := All()
	if err != nil {
		t.Fatal(err)
	}
	if len(all) < 15 {
		t.Fatalf("only %d declared schemas", len(all))
	}
	for _, tbl := range all {
		// Every declared stream says what identifies a record: a key the spec states, or an ident.
		if tbl.Description == "" || len(tbl.Key)+len(tbl.Ident) == 0 {
			t.Errorf("%s: description and a key or ident are required", tbl.Name())
		}
	}
}

func TestColumnName(t *testing.T) {
	for in, want := range map[string]string{
		"lastModifiedDate": "last_modified_date", "ContractID": "contract_id", "organization.id": "organization__id",
		"invoiceAddressCountryRegionISOCode": "invoice_address_country_region_iso_code", "eBilling_Address": "e_billing_address",
		"PricelistOrgID": "pricelist_org_id", "_position": "_position", "GS_ChargeStartTime": "gs_charge_start_time", "raw_id": "raw_id",
	} {
		if got := ColumnName(in); got != want {
			t.Errorf("ColumnName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRejectsBadSchemas(t *testing.T) {
	for _, y := range []string{
		"source: a\nstream: b\ncolumns:\n  - {path: x, type: MONEY, description: d}\n",
		"source: a\nstream: b\ncolumns:\n  - {path: x, type: VARCHAR}\n",
		"source: a\nstream: b\nkey: [y]\ncolumns:\n  - {path: x, type: VARCHAR, description: d}\n",
		"source: a\nstream: b\nident: [y]\ncolumns:\n  - {path: x, type: VARCHAR, description: d}\n",
		"source: a\nstream: b\nkey: [x]\nident: [x]\ncolumns:\n  - {path: x, type: VARCHAR, description: d}\n",
		"source: a\nstream: b\ncolums: []\n",
	} {
		if _, err := Parse([]byte(y)); err == nil {
			t.Errorf("accepted:\n%s", y)
		}
	}
}
