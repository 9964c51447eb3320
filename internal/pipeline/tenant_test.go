package pipeline

import (
	"context"
	"fmt"
	"iter"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// bodyStream serves raw response bodies, decoded by the pipeline as the sources' pages are.
func bodyStream(name string, bodies ...string) *sources.Stream {
	return &sources.Stream{Source: "test", Name: name, Stats: &httpclient.Stats{},
		Pages: func(ctx context.Context) iter.Seq2[sources.Page, error] {
			return func(yield func(sources.Page, error) bool) {
				for i, b := range bodies {
					if !yield(sources.Page{Body: []byte(b), Where: "GET /list?page=" + string(rune('1'+i))}, nil) {
						return
					}
				}
			}
		}}
}

func tempConfig(t *testing.T) *config.Config {
	dir := t.TempDir()
	return &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
}

// A null answer is an empty page, and the run says so: the stream succeeds with the rows of its other
// pages and a warning naming the request.
func TestNullBodyIsAnEmptyPageWithAWarning(t *testing.T) {
	cfg := tempConfig(t)
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{bodyStream("lists", `[{"a":1},{"a":2}]`, " null\n", `[{"a":3}]`)})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	rep := res.Manifest.Streams[0]
	if rep.Rows != 3 {
		t.Errorf("rows %d, want 3", rep.Rows)
	}
	if w := strings.Join(rep.Warnings, "; "); !strings.Contains(w, "GET /list?page=2: the response is null, read as an empty list") {
		t.Errorf("warnings %q do not name the null page", w)
	}
	if n := scalar[int](t, query(t, cfg), "SELECT sum(a) FROM test_lists"); n != 6 {
		t.Errorf("sum(a) = %d, want 6", n)
	}
}

// The independent check's loss, reproduced: tenant b groups its accounting journal by account and cost
// centre, so one invoice has several rows per account. Every row the server sends lands.
func TestAccountingJournalKeepsEveryRowOfTenantB(t *testing.T) {
	srv, cfg := setup(t, sandbox.Options{Scale: 0.2, Tenant: sandbox.TenantB}, nil)
	only(cfg, nil, []string{"invoice_journal_accounting"})
	res := run(t, cfg)
	if len(res.Failed) > 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	d := srv.Data()
	var rows, net int64
	for i := 0; i < d.GSInvoices; i++ {
		groups := map[[2]string]bool{}
		for _, l := range d.GSInvoice(i).Lines {
			groups[[2]string{l.Account, l.CostCentre}] = true
			net += l.NetCents
		}
		rows += int64(len(groups))
	}
	db := query(t, cfg)
	if n := scalar[int64](t, db, "SELECT count(*) FROM gsapi_invoice_journal_accounting"); n != rows {
		t.Errorf("accounting journal: %d rows in the warehouse, the server sent %d", n, rows)
	}
	if got := scalar[string](t, db, "SELECT sum(net_amount)::VARCHAR FROM gsapi_invoice_journal_accounting"); got != cents(net) {
		t.Errorf("accounting journal net %s, want %s", got, cents(net))
	}
	if n := scalar[int64](t, db, "SELECT count(cost_centre) FROM gsapi_invoice_journal_accounting"); n != rows {
		t.Errorf("cost_centre holds %d values, want %d", n, rows)
	}
}

func cents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

// A column null in the first 5,000 records and set in later ones is typed from the later ones, lands
// with every value, and the change is reported and persisted, on a first run as on later ones.
func TestColumnNullAtFirstIsTypedWhenValuesCome(t *testing.T) {
	cfg := tempConfig(t)
	var first, later []string
	for i := range 5000 {
		first = append(first, fmt.Sprintf(`{"id":%d,"cost_centre":null,"paid_on":""}`, i))
	}
	for i := 5000; i < 5100; i++ {
		later = append(later, fmt.Sprintf(`{"id":%d,"cost_centre":"CC-%d","paid_on":"2024-03-%02d"}`, i, i%3, 1+i%28))
	}
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{fakeStream("journal", nil, first, later)})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	changes := strings.Join(res.Manifest.Streams[0].SchemaChanges, "; ")
	for _, want := range []string{"test_journal.cost_centre: typed VARCHAR (null in every earlier record)", "test_journal.paid_on: typed DATE (null in every earlier record)"} {
		if !strings.Contains(changes, want) {
			t.Errorf("changes %q lack %q", changes, want)
		}
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(cost_centre) FROM test_journal"); n != 100 {
		t.Errorf("cost_centre holds %d values, want 100", n)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM test_journal WHERE paid_on = DATE '2024-03-01'"); n != 4 {
		t.Errorf("paid_on = 2024-03-01 in %d rows, want 4", n)
	}
	if typ := scalar[string](t, db, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'test_journal' AND column_name = 'paid_on'"); typ != "DATE" {
		t.Errorf("paid_on is %s", typ)
	}
	var persisted struct{ Columns []struct{ Name, Type string } }
	if _, err := lake.ReadJSON(cfg.OutputDir, lake.SchemaDir, "test_journal", &persisted); err != nil {
		t.Fatal(err)
	}
	for _, c := range persisted.Columns {
		if (c.Name == "cost_centre" && c.Type != "VARCHAR") || (c.Name == "paid_on" && c.Type != "DATE") {
			t.Errorf("_schemas/test_journal.json: %s is %s", c.Name, c.Type)
		}
	}
}
