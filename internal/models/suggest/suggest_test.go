package suggest_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/models/suggest"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/pipelines"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// TestMain has the first runs write Parquet as main does, with the page-sized zstd encoder: arrow-go's
// own, with zstd's default window and allocated again after every GC, made each run several times
// slower under the race detector.
func TestMain(m *testing.M) {
	if err := parquet.RegisterZstd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// facts are the generator's GSAPI invoices, whatever the tenant's shape: what fct_invoice and
// fct_invoice_line must hold for source gsapi.
type facts struct {
	invoices, lines, paid             int64
	net, tax, total, lineNet, lineTax int64 // cents
	lineNetByCurrency                 map[string]int64
}

func gsapiFacts(d *sandbox.Dataset) facts {
	f := facts{lineNetByCurrency: map[string]int64{}}
	for i := 0; i < d.GSInvoices; i++ {
		inv := d.GSInvoice(i)
		f.invoices++
		f.net += inv.NetCents
		f.tax += inv.VATCents
		f.total += inv.NetCents + inv.VATCents
		if inv.Status == "Delivered" {
			f.paid++
		}
		for _, l := range inv.Lines {
			f.lines++
			f.lineNet += l.NetCents
			f.lineTax += l.VATCents
			f.lineNetByCurrency[inv.Currency] += l.NetCents
		}
	}
	return f
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// firstRun runs what the models read of tenant's sandbox with the plain demo pipeline (no fields:
// mapping), as a new user's first run does, and returns the sandbox and the pipeline file.
func firstRun(t *testing.T, tenant string, scale float64) (*sandbox.Server, *config.Config, []byte, func(string) (string, bool)) {
	t.Helper()
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: scale, Tenant: tenant})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	env := map[string]string{"LEDGERLAKE_SANDBOX_URL": srv.URL, "SIGNICAT_CLIENT_ID": sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
		"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	raw := pipelines.Demo
	cfg := parse(t, raw, lookup)
	dir := t.TempDir()
	cfg.OutputDir, cfg.Warehouse = filepath.Join(dir, "lake"), filepath.Join(dir, "wh.duckdb")
	if _, err := pipeline.Run(context.Background(), pipeline.Options{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	return srv, cfg, raw, lookup
}

func parse(t *testing.T, raw []byte, lookup func(string) (string, bool)) *config.Config {
	t.Helper()
	cfg, err := config.Parse(raw, lookup)
	if err != nil {
		t.Fatal(err)
	}
	off := false
	cfg.Iceberg.Enabled = &off
	cfg.Sources.Signicat.Streams = []string{"organizations", "invoices", "invoice_lines"}
	cfg.Sources.GSAPI.Streams = []string{"organizations", "products", "datasync_invoices", "datasync_invoice_lines", "invoice_journal_summary"}
	return cfg
}

func suggestFrom(t *testing.T, path string) *suggest.Suggestion {
	t.Helper()
	wh, err := duckdb.OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	s, err := suggest.Suggest(context.Background(), wh.DB)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tenantShapes are the sandbox's two tenants and the shape written for this test (tenant c: Finnish
// names, money nested in objects, no net on the header, the currency only on the header), each with
// the mapping its data should yield and the fields that must stay uncertain.
var tenantShapes = []struct {
	tenant    string
	want      map[string]string // stream.field → entry, where not the default
	uncertain []string
}{
	{tenant: sandbox.TenantA},
	{tenant: sandbox.TenantB, want: map[string]string{
		"datasync_invoices.invoice_number": "invoice_no", "datasync_invoices.net_amount": "total_net", "datasync_invoices.tax_amount": "total_vat",
		"datasync_invoices.total_amount": "total_gross", "datasync_invoice_lines.quantity": "quantity", "datasync_invoice_lines.unit_price": "unit_price",
		"datasync_invoice_lines.net_amount": "line_net", "datasync_invoice_lines.tax_amount": "line_vat", "invoice_journal_summary.net_amount": "total_net"}},
	{tenant: sandbox.TenantC, want: map[string]string{
		"datasync_invoices.invoice_id": "tunniste", "datasync_invoices.invoice_number": "laskunumero", "datasync_invoices.invoice_date": "laskupaiva",
		"datasync_invoices.organization_id": "asiakas__numero", "datasync_invoices.organization_name": "asiakas__nimi", "datasync_invoices.currency": "valuutta",
		"datasync_invoices.net_amount": `{sql: "summat__verollinen - summat__alv"}`, "datasync_invoices.tax_amount": "summat__alv",
		"datasync_invoices.total_amount": "summat__verollinen", "datasync_invoices.status": "tila",
		"datasync_invoice_lines.invoice_id": "laskun_tunniste", "datasync_invoice_lines.line_number": "rivi", "datasync_invoice_lines.product_code": "tuotekoodi",
		"datasync_invoice_lines.product_name": "tuote", "datasync_invoice_lines.quantity": "maara", "datasync_invoice_lines.unit_price": "a_hinta",
		"datasync_invoice_lines.net_amount": "hinnat__veroton", "datasync_invoice_lines.tax_amount": "hinnat__alv",
		"datasync_invoice_lines.currency":    "{from: datasync_invoices.valuutta, via: laskun_tunniste = tunniste}",
		"invoice_journal_summary.invoice_id": "tunniste", "invoice_journal_summary.net_amount": "veroton"},
		uncertain: []string{"datasync_invoices.status"}}, // its values are Finnish: which one means paid, no data says
}

// For each tenant shape, after a first run with no mapping: the suggestion, read from the warehouse
// alone, is the tenant's mapping; written into the pipeline file it alone makes every model build
// and every data test pass, and fct_invoice and fct_invoice_line hold the generator's facts.
func TestSuggestionBuildsEveryTenantsModels(t *testing.T) {
	for _, shape := range tenantShapes {
		t.Run("tenant "+shape.tenant, func(t *testing.T) {
			t.Parallel()
			srv, cfg, raw, lookup := firstRun(t, shape.tenant, 0.1)
			s := suggestFrom(t, cfg.Warehouse)
			for _, f := range s.Fields {
				key := f.Table[len("gsapi_"):] + "." + f.Field
				want := shape.want[key]
				if want == "" {
					want = fieldmap.Fields[f.Table][f.Field].Column
				}
				if got := f.Entry.String(); got != want {
					t.Errorf("%s ← %s, want %s (%s)", key, got, want, f.Note())
				}
				if f.Certain == slices.Contains(shape.uncertain, key) {
					t.Errorf("%s certain = %v: %s", key, f.Certain, f.Note())
				}
			}
			merged, err := config.MergeFields(raw, "gsapi", s.Mapping(), nil)
			if err != nil {
				t.Fatal(err)
			}
			mapped := parse(t, merged, lookup)
			wh, err := duckdb.Open(cfg.Warehouse)
			if err != nil {
				t.Fatal(err)
			}
			defer wh.Close()
			rep, err := models.Run(context.Background(), wh.DB, "suggested", nil, mapped.Fields())
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Built) != 10 || !rep.OK() {
				t.Fatalf("with the suggestion: built %v, failed %v, tests %+v", rep.Built, rep.Failed, rep.Tests)
			}
			checkFacts(t, wh.DB, gsapiFacts(srv.Data()), !slices.Contains(shape.uncertain, "datasync_invoices.status"))
		})
	}
}

// checkFacts compares the gsapi rows of the invoice marts with the generator's facts; paid too where
// the status mapping is certain.
func checkFacts(t *testing.T, db *sql.DB, f facts, paid bool) {
	t.Helper()
	want := map[string]string{
		"SELECT count(*)::VARCHAR FROM fct_invoice WHERE source = 'gsapi'":                            fmt.Sprint(f.invoices),
		"SELECT sum(net_amount)::DECIMAL(38,2)::VARCHAR FROM fct_invoice WHERE source = 'gsapi'":      cents(f.net),
		"SELECT sum(tax_amount)::DECIMAL(38,2)::VARCHAR FROM fct_invoice WHERE source = 'gsapi'":      cents(f.tax),
		"SELECT sum(total_amount)::DECIMAL(38,2)::VARCHAR FROM fct_invoice WHERE source = 'gsapi'":    cents(f.total),
		"SELECT count(*)::VARCHAR FROM fct_invoice_line WHERE source = 'gsapi'":                       fmt.Sprint(f.lines),
		"SELECT sum(net_amount)::DECIMAL(38,2)::VARCHAR FROM fct_invoice_line WHERE source = 'gsapi'": cents(f.lineNet),
		"SELECT sum(tax_amount)::DECIMAL(38,2)::VARCHAR FROM fct_invoice_line WHERE source = 'gsapi'": cents(f.lineTax),
	}
	if paid {
		want["SELECT count(*) FILTER (WHERE paid)::VARCHAR FROM fct_invoice WHERE source = 'gsapi'"] = fmt.Sprint(f.paid)
	}
	for cur, c := range f.lineNetByCurrency {
		want["SELECT sum(net_amount)::DECIMAL(38,2)::VARCHAR FROM fct_invoice_line WHERE source = 'gsapi' AND currency = '"+cur+"'"] = cents(c)
	}
	for q, w := range want {
		var got sql.NullString
		if err := db.QueryRow(q).Scan(&got); err != nil || got.String != w {
			t.Errorf("%s = %s (%v), want %s", q, got.String, err, w)
		}
	}
}
