package suggest_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/models/suggest"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// A tenant written here, in SQL: 120 invoices of two lines each over four months, with the API's
// windows and organizations/list; names in German. Each test removes or blurs what one field's evidence rests on.
var german = []string{
	`CREATE TABLE gsapi_datasync_invoice_lines AS SELECT i AS beleg, p AS pos, 'P' || (i * p % 7) AS artikel, 'Artikel Nummer ' || (i * p % 7) AS bezeichnung,
		((i * p) % 9 + 1)::DECIMAL(18,3) AS menge, ((i * 37 + p * 11) % 900 + 100)::DECIMAL(18,2) / 100 AS einzelpreis, 19 AS satz
	FROM range(1, 121) r(i), range(1, 3) q(p)`,
	`ALTER TABLE gsapi_datasync_invoice_lines ADD COLUMN netto DECIMAL(18,2)`,
	`UPDATE gsapi_datasync_invoice_lines SET netto = round(menge * einzelpreis, 2)`,
	`ALTER TABLE gsapi_datasync_invoice_lines ADD COLUMN steuer DECIMAL(18,2)`,
	`UPDATE gsapi_datasync_invoice_lines SET steuer = round(netto * 0.19, 2)`,
	`CREATE TABLE gsapi_datasync_invoices AS SELECT beleg AS id, 'RE-' || beleg AS rechnungsnummer, TIMESTAMP '2024-01-01' + INTERVAL (beleg * 23) HOUR AS datum,
		CASE WHEN beleg % 5 = 0 THEN 'CHF' ELSE 'EUR' END AS waehrung, sum(netto) AS netto, sum(steuer) AS mwst, sum(netto) + sum(steuer) AS brutto,
		CASE WHEN beleg % 3 = 0 THEN 'Delivered' ELSE 'Open' END AS status, 5000 + beleg % 12 AS kunde, 'Kunde GmbH ' || (beleg % 12) AS kundenname
	FROM gsapi_datasync_invoice_lines GROUP BY beleg`,
	`CREATE TABLE gsapi_organizations AS SELECT 5000 + k AS org_id, 'Kunde GmbH ' || k AS company_name FROM range(0, 15) r(k)`,
	`ALTER TABLE gsapi_datasync_invoices ADD COLUMN _window_start TIMESTAMP`,
	`ALTER TABLE gsapi_datasync_invoices ADD COLUMN _window_end TIMESTAMP`,
	`UPDATE gsapi_datasync_invoices SET _window_start = date_trunc('month', datum), _window_end = date_trunc('month', datum) + INTERVAL 1 MONTH - INTERVAL 1 MILLISECOND`,
	`CREATE TABLE gsapi_invoice_journal_summary AS SELECT id AS beleg_id, rechnungsnummer AS nummer, netto AS betrag_netto FROM gsapi_datasync_invoices`,
}

func germanWarehouse(t *testing.T, edits ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	wh, err := duckdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	for _, q := range append(german, edits...) {
		if _, err := wh.DB.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return path
}

func field(t *testing.T, s *suggest.Suggestion, table, name string) *suggest.Field {
	t.Helper()
	for _, f := range s.Fields {
		if f.Table == table && f.Field == name {
			return f
		}
	}
	t.Fatalf("no field %s.%s", table, name)
	return nil
}

// A field nothing fits is left out, with the reason, and the models that need it fail alone as they
// would without a mapping: here no column holds a currency, so the invoice models fail naming it,
// and the others build.
func TestFieldNotFoundIsLeftOutAndItsModelsFailAlone(t *testing.T) {
	path := germanWarehouse(t, "ALTER TABLE gsapi_datasync_invoices DROP COLUMN waehrung",
		// the Signicat side, empty, so that the models not reading GSAPI's fields have their tables
		`CREATE TABLE signicat_invoices (invoice_number VARCHAR, invoice_date DATE, organization_id VARCHAR, organization_name VARCHAR, currency_code VARCHAR,
			total_charge_amount DECIMAL(18,4), total_discount_amount DECIMAL(18,4), total_tax_amount DECIMAL(18,4), total_invoice_amount DECIMAL(18,4), settled BOOLEAN)`)
	s := suggestFrom(t, path)
	cur := field(t, s, "gsapi_datasync_invoices", "currency")
	if cur.Found() || !strings.Contains(cur.Missing, "no column holds an ISO 4217 currency code on every invoice") || !strings.Contains(cur.Missing, "{value: EUR}") {
		t.Errorf("currency: %s", cur.Note())
	}
	if lc := field(t, s, "gsapi_datasync_invoice_lines", "currency"); lc.Found() || !strings.Contains(lc.Missing, "the lines have no currency column, and the invoices' currency was not found") {
		t.Errorf("the lines' currency: %s", lc.Note())
	}
	if _, _, missing := s.Counts(); missing != 2 {
		t.Errorf("%d fields not found, want the 2 currencies: %s", missing, s.YAML())
	}
	if !strings.Contains(s.YAML(), "    # NOT FOUND currency: no column holds") || strings.Contains(s.YAML(), "    currency:") {
		t.Errorf("the YAML does not leave the currency out with its reason:\n%s", s.YAML())
	}
	m, err := fieldmap.NewMapping("gsapi", s.Mapping())
	if err != nil {
		t.Fatal(err)
	}
	wh, err := duckdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	rep, err := models.Run(context.Background(), wh.DB, "r", nil, m)
	if err != nil {
		t.Fatal(err)
	}
	if why := rep.Failed["stg_gsapi_invoices"]; !strings.Contains(why, `no column "currency" (the model's currency)`) {
		t.Errorf("stg_gsapi_invoices: %q", why)
	}
	if why := rep.Failed["stg_gsapi_invoice_lines"]; !strings.Contains(why, `no column "currency" (the model's currency)`) {
		t.Errorf("stg_gsapi_invoice_lines: %q", why)
	}
	for _, built := range []string{"stg_signicat_invoices", "reconciliation_gsapi_journal"} {
		if !strings.Contains(strings.Join(rep.Built, ","), built) {
			t.Errorf("built %v, without %s", rep.Built, built)
		}
	}
}

// The German tenant with everything in place: every field found, the amounts certain from the
// sums, the quantity told from the price by its decimals.
func TestGermanTenant(t *testing.T) {
	s := suggestFrom(t, germanWarehouse(t))
	want := map[string]string{"invoice_id": "id", "invoice_number": "rechnungsnummer", "invoice_date": "datum", "currency": "waehrung",
		"organization_id": "kunde", "organization_name": "kundenname",
		"net_amount": "netto", "tax_amount": "mwst", "total_amount": "brutto", "status": "status"}
	for name, col := range want {
		if f := field(t, s, "gsapi_datasync_invoices", name); f.Entry != fieldmap.Column(col) || !f.Certain {
			t.Errorf("%s", f.Note())
		}
	}
	lines := map[string]string{"invoice_id": "beleg", "line_number": "pos", "product_code": "artikel", "product_name": "bezeichnung",
		"quantity": "menge", "unit_price": "einzelpreis", "net_amount": "netto", "tax_amount": "steuer", "currency": "{from: datasync_invoices.waehrung, via: beleg = id}"}
	for name, e := range lines {
		if f := field(t, s, "gsapi_datasync_invoice_lines", name); f.Entry.String() != e {
			t.Errorf("%s", f.Note())
		}
	}
	if f := field(t, s, "gsapi_datasync_invoice_lines", "tax_amount"); !strings.Contains(strings.Join(f.Evidence, "; "), "its net × satz %") {
		t.Errorf("the lines' tax lacks the rate as evidence: %s", f.Note())
	}
	// Without organizations/list nothing corroborates an organisation, and the fields say so.
	s = suggestFrom(t, germanWarehouse(t, "DROP TABLE gsapi_organizations"))
	if f := field(t, s, "gsapi_datasync_invoices", "organization_id"); f.Found() || !strings.Contains(f.Missing, "gsapi_organizations") {
		t.Errorf("%s", f.Note())
	}
}

// Where the evidence does not single out one candidate, the field is proposed but uncertain, saying
// what else fits; names only break the tie.
func TestUncertainWhereTheEvidenceDoesNotDecide(t *testing.T) {
	// Without the summary journal, two unique text columns are as good an invoice number.
	s := suggestFrom(t, germanWarehouse(t, "DROP TABLE gsapi_invoice_journal_summary", "ALTER TABLE gsapi_datasync_invoices ADD COLUMN referenz VARCHAR",
		"UPDATE gsapi_datasync_invoices SET referenz = 'X' || (id * 31)"))
	if f := field(t, s, "gsapi_datasync_invoices", "invoice_number"); f.Certain || !strings.Contains(f.Doubt, "fits as well") {
		t.Errorf("%s", f.Note())
	}
	// Whole quantities and whole prices: nothing in the data tells which is which.
	s = suggestFrom(t, germanWarehouse(t, "UPDATE gsapi_datasync_invoice_lines SET einzelpreis = round(einzelpreis), netto = menge * round(einzelpreis)",
		"UPDATE gsapi_datasync_invoice_lines SET steuer = round(netto * 0.19, 2)",
		"CREATE OR REPLACE TABLE gsapi_datasync_invoices AS SELECT h.* REPLACE (l.n AS netto, l.s AS mwst, l.n + l.s AS brutto) FROM gsapi_datasync_invoices h JOIN (SELECT beleg, sum(netto) n, sum(steuer) s FROM gsapi_datasync_invoice_lines GROUP BY 1) l ON l.beleg = h.id",
		"CREATE OR REPLACE TABLE gsapi_invoice_journal_summary AS SELECT id AS beleg_id, rechnungsnummer AS nummer, netto AS betrag_netto FROM gsapi_datasync_invoices"))
	for _, name := range []string{"quantity", "unit_price"} {
		if f := field(t, s, "gsapi_datasync_invoice_lines", name); !f.Found() || f.Certain || !strings.Contains(f.Doubt, "could be the other way round") {
			t.Errorf("%s", f.Note())
		}
	}
	if f := field(t, s, "gsapi_datasync_invoices", "net_amount"); !f.Certain {
		t.Errorf("the net is still certain from the sums: %s", f.Note())
	}
}

// An empty warehouse is no evidence: the suggestion says to run first.
func TestNoInvoicesNoSuggestion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "wh.duckdb")
	wh, err := duckdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	wh.Close()
	wh, _ = duckdb.OpenReadOnly(path)
	defer wh.Close()
	if _, err := suggest.Suggest(context.Background(), wh.DB); err != suggest.ErrNoInvoices {
		t.Errorf("err = %v, want ErrNoInvoices", err)
	}
}
