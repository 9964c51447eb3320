package models

import (
	"context"
	dbsql "database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// tenantC is a tenant none of whose names are the defaults: Finnish names, money nested in objects
// (flattened with __), the net amount only as gross minus VAT, and the currency only on the header.
var tenantC = []string{
	`CREATE TABLE gsapi_datasync_invoices (tunniste BIGINT, laskunumero VARCHAR, laskupvm TIMESTAMP, asiakas__id BIGINT,
		asiakas__nimi VARCHAR, valuutta VARCHAR, summat__verollinen DECIMAL(18,2), summat__alv DECIMAL(18,2), tila VARCHAR)`,
	`INSERT INTO gsapi_datasync_invoices VALUES (1, 'L-1', '2024-01-05 10:00', 7, 'Oy Yksi', 'EUR', 124.00, 24.00, 'Delivered'),
		(2, 'L-2', '2024-01-06 11:00', 8, 'Ab Två', 'SEK', 62.00, 12.00, 'Open')`,
	`CREATE TABLE gsapi_datasync_invoice_lines (lasku_tunniste BIGINT, rivinro BIGINT, tuotekoodi VARCHAR, tuote VARCHAR,
		maara DECIMAL(18,3), a_hinta DECIMAL(18,2), hinnat__veroton DECIMAL(18,2), hinnat__alv DECIMAL(18,2))`,
	`INSERT INTO gsapi_datasync_invoice_lines VALUES (1, 1, 'P1', 'Base fee', 1, 60.00, 60.00, 14.40), (1, 2, 'P2', 'Extra', 2, 20.00, 40.00, 9.60),
		(2, 1, 'P1', 'Base fee', 1, 50.00, 50.00, 12.00)`,
	`CREATE TABLE gsapi_invoice_journal_summary (tunniste BIGINT, veroton DECIMAL(18,2))`,
	`INSERT INTO gsapi_invoice_journal_summary VALUES (1, 100.00), (2, 50.00)`,
	`CREATE TABLE signicat_invoices (invoice_number VARCHAR, invoice_date DATE, organization_id VARCHAR, organization_name VARCHAR,
		currency_code VARCHAR, total_charge_amount DECIMAL(18,4), total_discount_amount DECIMAL(18,4), total_tax_amount DECIMAL(18,4),
		total_invoice_amount DECIMAL(18,4), settled BOOLEAN)`,
	`CREATE TABLE signicat_invoice_lines (invoice_number VARCHAR, line_number BIGINT, product_name VARCHAR, invoiced_quantity DECIMAL(18,4),
		sales_price DECIMAL(18,4), line_total_charge_amount DECIMAL(18,4), line_total_discount_amount DECIMAL(18,4),
		line_total_tax_amount DECIMAL(18,4), currency_code VARCHAR)`,
}

// tenantCFields maps tenantC with every form of entry.
var tenantCFields = map[string]map[string]fieldmap.Entry{
	"datasync_invoices": {
		"invoice_id": fieldmap.Column("tunniste"), "invoice_number": fieldmap.Column("laskunumero"), "invoice_date": fieldmap.Column("laskupvm"),
		"organization_id": fieldmap.Column("asiakas__id"), "organization_name": fieldmap.Column("asiakas__nimi"), "currency": fieldmap.Column("valuutta"),
		"net_amount": {SQL: "summat__verollinen - summat__alv"}, "tax_amount": fieldmap.Column("summat__alv"),
		"total_amount": fieldmap.Column("summat__verollinen"), "status": fieldmap.Column("tila"),
	},
	"datasync_invoice_lines": {
		"invoice_id": fieldmap.Column("lasku_tunniste"), "line_number": fieldmap.Column("rivinro"), "product_code": fieldmap.Column("tuotekoodi"),
		"product_name": fieldmap.Column("tuote"), "quantity": fieldmap.Column("maara"), "unit_price": fieldmap.Column("a_hinta"),
		"net_amount": fieldmap.Column("hinnat__veroton"), "tax_amount": fieldmap.Column("hinnat__alv"),
		"currency": {From: "datasync_invoices.valuutta", Via: "lasku_tunniste = tunniste"},
	},
	"invoice_journal_summary": {"invoice_id": fieldmap.Column("tunniste"), "net_amount": fieldmap.Column("veroton")},
}

func warehouse(t *testing.T, ddl ...string) *dbsql.DB {
	t.Helper()
	wh, err := duckdb.Open(filepath.Join(t.TempDir(), "wh.duckdb"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	for _, q := range ddl {
		if q == "" {
			continue
		}
		if _, err := wh.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return wh.DB
}

// mapping is tenantCFields with the given entries replaced (stream.field → entry).
func mapping(t *testing.T, change map[string]fieldmap.Entry) fieldmap.Mapping {
	t.Helper()
	fields := map[string]map[string]fieldmap.Entry{}
	for stream, fs := range tenantCFields {
		fields[stream] = map[string]fieldmap.Entry{}
		for k, v := range fs {
			fields[stream][k] = v
		}
	}
	for key, e := range change {
		stream, field, _ := strings.Cut(key, ".")
		fields[stream][field] = e
	}
	m, err := fieldmap.NewMapping("gsapi", fields)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Every form of entry builds every model over a tenant shaped nothing like the defaults: the computed
// net, the lines' currency from their invoice, and the mapping recorded with each field's source.
func TestEveryEntryFormBuilds(t *testing.T) {
	db := warehouse(t, tenantC...)
	rep, err := Run(context.Background(), db, "r1", nil, mapping(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failed) > 0 || !rep.OK() {
		t.Fatalf("failed %v, tests %+v", rep.Failed, rep.Tests)
	}
	for _, want := range []string{"stg_gsapi_invoices", "stg_gsapi_invoice_lines", "fct_invoice", "fct_invoice_line", "reconciliation_gsapi_journal", "reconciliation_invoice_lines"} {
		if !strings.Contains(strings.Join(rep.Built, ","), want) {
			t.Errorf("built %v, without %s", rep.Built, want)
		}
	}
	got := map[string]string{
		"SELECT sum(net_amount)::VARCHAR FROM fct_invoice":                                                                "150.0000",
		"SELECT string_agg(currency, ',' ORDER BY invoice_id, line_number) FROM fct_invoice_line":                         "EUR,EUR,SEK",
		"SELECT sum(net_amount)::VARCHAR FROM fct_invoice_line":                                                           "150.0000",
		"SELECT count(*)::VARCHAR FROM reconciliation_gsapi_journal WHERE difference <> 0":                                "0",
		"SELECT source FROM " + FieldsTable + " WHERE field = 'currency' AND table_name = 'gsapi_datasync_invoice_lines'": "{from: datasync_invoices.valuutta, via: lasku_tunniste = tunniste}",
		"SELECT source FROM " + FieldsTable + " WHERE field = 'net_amount' AND table_name = 'gsapi_datasync_invoices'":    `{sql: "summat__verollinen - summat__alv"}`,
	}
	for q, want := range got {
		var v string
		if err := db.QueryRow(q).Scan(&v); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %q", q, v, err, want)
		}
	}
}

// An entry that cannot be read fails its model alone, with a message naming the model, the entry, the
// columns that exist and the key to set; a parent whose rows disagree fails loudly instead of one
// value being picked.
func TestEntryThatCannotBeReadFailsItsModel(t *testing.T) {
	for _, c := range []struct {
		name   string
		change map[string]fieldmap.Entry
		ddl    string
		model  string
		want   []string
	}{
		{"no such column in the expression", map[string]fieldmap.Entry{"datasync_invoices.net_amount": {SQL: "summat__veroton - 0"}}, "", "stg_gsapi_invoices",
			[]string{"sql model stg_gsapi_invoices", "sources.gsapi.fields.datasync_invoices.net_amount", `{sql: "summat__veroton - 0"}`,
				"does not bind over gsapi_datasync_invoices", "its columns are tunniste, laskunumero", "set sources.gsapi.fields.datasync_invoices.net_amount to an expression"}},
		{"an aggregate", map[string]fieldmap.Entry{"datasync_invoices.net_amount": {SQL: "sum(summat__alv)"}}, "", "stg_gsapi_invoices",
			[]string{"sources.gsapi.fields.datasync_invoices.net_amount", "an aggregate; a field holds one value per row"}},
		{"the parent lacks the field", map[string]fieldmap.Entry{"datasync_invoice_lines.currency": {From: "datasync_invoices.currency", Via: "lasku_tunniste = tunniste"}}, "", "stg_gsapi_invoice_lines",
			[]string{"sql model stg_gsapi_invoice_lines", "sources.gsapi.fields.datasync_invoice_lines.currency", "the field", `gsapi_datasync_invoices has no column "currency"`, "valuutta"}},
		{"the link is not in the lines", map[string]fieldmap.Entry{"datasync_invoice_lines.currency": {From: "datasync_invoices.valuutta", Via: "tunniste"}}, "", "stg_gsapi_invoice_lines",
			[]string{`gsapi_datasync_invoice_lines has no column "tunniste"`, "lasku_tunniste"}},
		{"no such parent", map[string]fieldmap.Entry{"datasync_invoice_lines.currency": {From: "datasync_invoice.valuutta", Via: "tunniste"}}, "", "stg_gsapi_invoice_lines",
			[]string{"gsapi_datasync_invoice, which is not in the warehouse"}},
		{"a column that is not there", map[string]fieldmap.Entry{"datasync_invoices.currency": fieldmap.Column("currency")}, "", "stg_gsapi_invoices",
			[]string{`gsapi_datasync_invoices has no column "currency" (the model's currency)`, "extract fields --suggest"}},
		{"the parent's rows disagree", nil, "INSERT INTO gsapi_datasync_invoices (tunniste, valuutta) VALUES (1, 'NOK')", "fct_invoice_line",
			[]string{"sources.gsapi.fields.datasync_invoice_lines.currency: the rows of gsapi_datasync_invoices whose tunniste is 1 disagree on valuutta"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			db := warehouse(t, append(tenantC, c.ddl)...)
			rep, err := Run(context.Background(), db, "r1", nil, mapping(t, c.change))
			if err != nil {
				t.Fatal(err)
			}
			why := rep.Failed[c.model]
			for _, w := range c.want {
				if !strings.Contains(why, w) {
					t.Errorf("%s failed with %q, which lacks %q", c.model, why, w)
				}
			}
			for m, why := range rep.Failed {
				if m != c.model && !strings.Contains(why, c.want[len(c.want)-1]) {
					t.Errorf("%s failed too, with %q", m, why)
				}
			}
			if !strings.Contains(strings.Join(rep.Built, ","), "stg_signicat_invoices") {
				t.Errorf("built %v: the models that do not read it were not built", rep.Built)
			}
		})
	}
}
