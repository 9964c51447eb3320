package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// cents renders an amount in cents as DuckDB prints a DECIMAL(…,4) sum.
func cents4(c int64) string { return fmt.Sprintf("%d.%02d00", c/100, c%100) }

func TestSignicatEveryStreamExactly(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.1}, nil)
	cfg.Sources.GSAPI = nil
	res := run(t, cfg)
	if len(res.Failed) > 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	d := srv.Data()
	var lines, netCents, totalCents int64
	for i := 0; i < d.SignicatInvoices; i++ {
		var tax, net int64
		for _, l := range d.SignicatLines(i) {
			lines++
			net += l.AmountCents
			tax += l.TaxCents
		}
		netCents += net
		totalCents += net + tax
	}
	db := query(t, cfg)
	counts := map[string]int64{
		"signicat_organizations": int64(2 + d.SignicatOrganizations),
		"signicat_accounts":      int64(2 + d.SignicatAccounts + d.SignicatDeleted),
		"signicat_contacts":      int64(1 + d.SignicatContacts),
		"signicat_invoices":      int64(1 + d.SignicatInvoices), // + the published example ("string")
		"signicat_invoice_lines": 1 + lines,
	}
	for table, want := range counts {
		if n := scalar[int64](t, db, "SELECT count(*) FROM "+table); n != want {
			t.Errorf("%s: %d rows, want %d", table, n, want)
		}
	}
	// Exact sums: DECIMAL all the way, the published example's 0.1 included.
	if got := scalar[string](t, db, "SELECT sum(total_invoice_amount)::VARCHAR FROM signicat_invoices"); got != cents4(totalCents+10) {
		t.Errorf("sum(total_invoice_amount) = %s, want %s", got, cents4(totalCents+10))
	}
	if got := scalar[string](t, db, "SELECT sum(line_amount)::VARCHAR FROM signicat_invoice_lines"); got != cents4(netCents+10) {
		t.Errorf("sum(line_amount) = %s, want %s", got, cents4(netCents+10))
	}
	// Every header equals the sum of its lines.
	if n := scalar[int](t, db, `SELECT count(*) FROM signicat_invoices i JOIN (SELECT invoice_number, sum(line_total_charge_amount) s
		FROM signicat_invoice_lines GROUP BY ALL) l USING (invoice_number) WHERE i.total_charge_amount <> l.s`); n != 0 {
		t.Errorf("%d invoices whose charge differs from their lines", n)
	}
	if got := scalar[string](t, db, "SELECT list_sort(products)::VARCHAR FROM signicat_accounts WHERE id = 'a-ppge-ovC1eMDgt0hkgqZUSaPh'"); got != "[auth, auth-nbid, auth-sbid, sign, sign-nbid]" {
		t.Errorf("products = %s", got)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts WHERE is_soft_deleted AND soft_deleted_at IS NOT NULL"); n != d.SignicatDeleted {
		t.Errorf("%d soft-deleted accounts with soft_deleted_at, want %d", n, d.SignicatDeleted)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_invoice_lines WHERE invoice_number LIKE '%-.%' OR invoice_number LIKE '%INV.%'"); n == 0 {
		t.Error("no invoice number with '-' and '.' made it through the path escaping")
	}
	if typ := scalar[string](t, db, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'signicat_invoices' AND column_name = 'total_invoice_amount'"); !strings.HasPrefix(typ, "DECIMAL") {
		t.Errorf("total_invoice_amount is %s", typ)
	}
	for _, r := range res.Manifest.Streams {
		if len(r.SchemaChanges) > 0 && r.Table != "signicat_accounts" {
			// Every field the sandbox sends is declared: an extra column here means a schema gap.
			for _, c := range r.SchemaChanges {
				if !strings.Contains(c, "new column") || !strings.Contains(c, "_position") {
					t.Errorf("unexpected schema change: %s", c)
				}
			}
		}
	}
}

func TestSignicatRevisionAParses(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05, SignicatRevision: "a"}, nil)
	cfg.Sources.GSAPI, cfg.Sources.Signicat.Streams = nil, []string{"accounts"}
	run(t, cfg)
	db := query(t, cfg)
	d := srv.Data()
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts"); n != 2+d.SignicatAccounts+d.SignicatDeleted {
		t.Errorf("%d accounts", n)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts WHERE organization__entity_id IS NOT NULL"); n != 0 {
		t.Errorf("revision a has no organisation entity ids, yet %d rows have one", n)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts WHERE organization__name IS NOT NULL"); n == 0 {
		t.Error("organisation names missing")
	}
}

func TestSignicatIncrementalFetchesOnlyNewInvoices(t *testing.T) {
	t.Parallel()
	until := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	old, cfg := setup(t, sandbox.Options{Scale: 0.1, Until: until}, nil)
	cfg.Sources.GSAPI, cfg.Sources.Signicat.Streams = nil, []string{"invoices"}
	first := run(t, cfg)
	_ = old.Close()
	// The same data half a year later: new invoices appended, recent ones settled since.
	srv, cfg2 := setup(t, sandbox.Options{Scale: 0.1}, nil)
	cfg2.OutputDir, cfg2.Warehouse = cfg.OutputDir, cfg.Warehouse
	cfg2.Sources.GSAPI, cfg2.Sources.Signicat.Streams = nil, []string{"invoices"}
	second := run(t, cfg2)
	r1, r2 := first.Manifest.Streams[0], second.Manifest.Streams[0]
	d := srv.Data()
	// The watermark is the last invoice day of run 1; run 2 starts 60 days before it.
	var last time.Time
	for i := 0; i < d.SignicatInvoices && d.SignicatInvoiceTime(i).Before(until); i++ {
		last = d.SignicatInvoiceTime(i)
	}
	var fresh int64
	cut := time.Date(last.Year(), last.Month(), last.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, -60)
	for i := 0; i < d.SignicatInvoices; i++ {
		if !d.SignicatInvoiceTime(i).Before(cut) {
			fresh++
		}
	}
	if r2.Rows != fresh {
		t.Errorf("second run fetched %d invoices, want the %d since the watermark minus 60 days", r2.Rows, fresh)
	}
	if r2.Requests*3 > r1.Requests {
		t.Errorf("second run made %d requests, the first %d", r2.Requests, r1.Requests)
	}
	db := query(t, cfg2)
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_invoices"); n != 1+d.SignicatInvoices {
		t.Errorf("%d invoices in the warehouse, want %d", n, 1+d.SignicatInvoices)
	}
	if n := scalar[int](t, db, "SELECT count(*) - count(DISTINCT invoice_number) FROM signicat_invoices"); n != 0 {
		t.Errorf("%d duplicate invoices", n)
	}
	// An invoice inside the look-back that became settled shows its new state.
	if n := scalar[int](t, db, fmt.Sprintf(`SELECT count(*) FROM signicat_invoices WHERE settled AND invoice_date >= '%s' AND invoice_date < '%s'`,
		until.AddDate(0, 0, -45).Format("2006-01-02"), until.Format("2006-01-02"))); n == 0 {
		t.Error("no invoice in the look-back window was updated to settled")
	}
}

// Account products come from one detail call per account. A later run reads the details only of
// accounts that are new or changed, reuses the products read before for the rest, and re-reads them
// once they are account_detail_days old; the warehouse holds the same products either way.
func TestAccountDetailsAreReadAgainOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"accounts"}, nil)
	accounts := int64(2 + srv.Data().SignicatAccounts + srv.Data().SignicatDeleted)
	products := func() string {
		wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
		if err != nil {
			t.Fatal(err)
		}
		defer wh.Close()
		return scalar[string](t, wh.DB, "SELECT string_agg(id || ':' || products::VARCHAR, ';' ORDER BY id) FROM signicat_accounts")
	}
	first := run(t, cfg).Manifest.Streams[0]
	want := products()
	second := run(t, cfg).Manifest.Streams[0]
	if second.Rows != accounts || first.Requests-second.Requests != accounts {
		t.Errorf("second run: %d rows, %d requests (first %d): want every account without its %d detail calls", second.Rows, second.Requests, first.Requests, accounts)
	}
	if got := products(); got != want {
		t.Error("products differ when reused from the memo")
	}
	// Every memo dated 8 days back: all products are due again.
	var st sources.State
	if _, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.StateDir, "signicat_accounts", &st); err != nil || len(st.Memo) != int(accounts) {
		t.Fatalf("memo of %d accounts (%v)", len(st.Memo), err)
	}
	old := time.Now().UTC().AddDate(0, 0, -8).Format(time.DateOnly)
	for k, raw := range st.Memo {
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		m["read"] = old
		st.Memo[k], _ = json.Marshal(m)
	}
	if err := lake.WriteJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.StateDir, "signicat_accounts", &st); err != nil {
		t.Fatal(err)
	}
	if third := run(t, cfg).Manifest.Streams[0]; third.Requests != first.Requests {
		t.Errorf("with week-old products the run made %d requests, the first %d", third.Requests, first.Requests)
	}
	if got := products(); got != want {
		t.Error("products differ after re-reading them")
	}
	// account_detail_days: 0 reads every detail every run.
	zero := 0
	cfg.Sources.Signicat.AccountDetailDays = &zero
	if fourth := run(t, cfg).Manifest.Streams[0]; fourth.Requests != first.Requests {
		t.Errorf("account_detail_days 0: %d requests, want %d", fourth.Requests, first.Requests)
	}
}

// A later run reads the detail of an invoice (its lines) only when the invoice is new or its list entry
// changed; the unchanged ones keep their lines, so the warehouse holds every invoice's lines either way.
// GSAPI's charges likewise: with nothing changed, no invoicecharges/list call at all.
func TestFanOutOnlyForNewOrChangedInvoices(t *testing.T) {
	t.Parallel()
	until := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	old, cfg := setup(t, sandbox.Options{Scale: 0.1, Until: until}, nil)
	only(cfg, []string{"invoices", "invoice_lines"}, nil)
	cfg.Sources.Signicat.Since = config.Date{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	now := func() time.Time { return time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) }
	if res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries, Now: now}); err != nil || !res.OK() {
		t.Fatalf("first run: %v", err)
	}
	oldData := old.Data()
	_ = old.Close()
	srv, cfg2 := setup(t, sandbox.Options{Scale: 0.1}, nil)
	cfg2.OutputDir, cfg2.Warehouse = cfg.OutputDir, cfg.Warehouse
	only(cfg2, []string{"invoices", "invoice_lines"}, nil)
	cfg2.Sources.Signicat.Since = cfg.Sources.Signicat.Since
	second, err := Run(context.Background(), Options{Config: cfg2, HTTP: fastRetries, Now: now})
	if err != nil || !second.OK() {
		t.Fatalf("second run: %v", err)
	}
	invoices, lines := second.Manifest.Streams[0], second.Manifest.Streams[1]
	d := srv.Data()
	// What the second run listed: the windows from the watermark (the first run's last invoice day)
	// minus 60 days. Of those, the new invoices and those whose list entry changed need their detail.
	var last time.Time
	for i := 0; i < d.SignicatInvoices && d.SignicatInvoiceTime(i).Before(until); i++ {
		last = d.SignicatInvoiceTime(i)
	}
	cut := time.Date(last.Year(), last.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -60)
	var want, allLines int64
	for i := 0; i < d.SignicatInvoices; i++ {
		if d.SignicatInvoiceTime(i).Before(cfg.Sources.Signicat.Since.Time) {
			continue
		}
		allLines += int64(len(d.SignicatLines(i)))
		if d.SignicatInvoiceTime(i).Before(cut.AddDate(0, 0, -1)) {
			continue
		}
		a, _ := json.Marshal(d.SignicatInvoice(i, false))
		b, _ := json.Marshal(oldData.SignicatInvoice(i, false))
		if i >= oldData.SignicatInvoices || !d.SignicatInvoiceTime(i).Before(until) || string(a) != string(b) {
			want++
		}
	}
	if got := lines.Requests - invoices.Requests; got != want || want == 0 {
		t.Fatalf("the second run read %d invoice details, want the %d new or changed", got, want)
	}
	db := query(t, cfg2)
	if n := scalar[int64](t, db, "SELECT count(*) FROM signicat_invoice_lines WHERE invoice_date >= '2024-01-01'"); n != allLines {
		t.Fatalf("%d lines in the warehouse, want every invoice's %d", n, allLines)
	}

	// GSAPI's charges, run twice against the same data: the second run lists the windows and asks for
	// no invoice's charges.
	_, gcfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(gcfg, nil, []string{"invoice_charges"})
	gcfg.Sources.GSAPI.Since = config.Date{Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	g1 := run(t, gcfg).Manifest.Streams[0]
	g2 := run(t, gcfg).Manifest.Streams[0]
	if g1.Rows == 0 || g2.Requests >= g1.Requests-g1.Rows || g2.Rows != 0 {
		t.Fatalf("charges: first run %d requests for %d invoices, second %d requests and %d rows", g1.Requests, g1.Rows, g2.Requests, g2.Rows)
	}
	if n := scalar[int64](t, query(t, gcfg), "SELECT count(*) FROM gsapi_invoice_charges"); n != g1.Rows {
		t.Fatalf("%d invoices' charges in the warehouse after the second run, want %d", n, g1.Rows)
	}
}
