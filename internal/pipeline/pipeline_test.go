package pipeline

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/iceberg-go/table"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/pipelines"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// The tests run in parallel unless they change what every run in the process reads, or hold a run to a
// wall-clock bound that a test beside it on a busy CPU could break; those say so.

// setup starts a sandbox and returns the demo pipeline pointed at it, writing under a temp dir.
func setup(t *testing.T, opts sandbox.Options, edit func(string) string) (*sandbox.Server, *config.Config) {
	t.Helper()
	srv, err := sandbox.Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	env := map[string]string{"LEDGERLAKE_SANDBOX_URL": srv.URL, "SIGNICAT_CLIENT_ID": sandbox.ClientID, "SIGNICAT_CLIENT_SECRET": sandbox.ClientSecret,
		"GSAPI_USERNAME": sandbox.GSAPIUser, "GSAPI_PASSWORD": sandbox.GSAPIPassword}
	y := string(pipelines.Demo)
	if edit != nil {
		y = edit(y)
	}
	cfg, err := config.Parse([]byte(y), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg.OutputDir, cfg.Warehouse = filepath.Join(dir, "lake"), filepath.Join(dir, "wh.duckdb")
	// Iceberg registration is tested where it is the subject (and end to end): under the race detector
	// the pure-Go SQLite catalog costs seconds per run.
	off := false
	cfg.Iceberg.Enabled = &off
	return srv, cfg
}

// backends are where the tests put the lake: a local directory and a bucket on the loopback S3 server.
var backends = []string{"dir", "s3"}

var (
	s3Once sync.Once
	s3Srv  *s3test.Server
	s3Err  error
)

// lakeOn moves cfg's lake to backend: for "s3", a fresh prefix of a bucket on the package's loopback
// S3 server (started once); TestMain put the SDK's credentials for it in the environment.
func lakeOn(t *testing.T, cfg *config.Config, backend string) {
	t.Helper()
	if backend != "s3" {
		return
	}
	s3Once.Do(func() { s3Srv, s3Err = s3test.Start("lake") })
	if s3Err != nil {
		t.Fatal(s3Err)
	}
	cfg.OutputDir = s3Srv.URL("lake", strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+fmt.Sprint(time.Now().UnixNano()))
}

// only narrows the demo pipeline to the named streams of each source (nil drops the source).
func only(cfg *config.Config, signicatStreams, gsapiStreams []string) {
	if signicatStreams == nil {
		cfg.Sources.Signicat = nil
	} else {
		cfg.Sources.Signicat.Streams = signicatStreams
		cfg.Sources.Signicat.PDFs = slices.Contains(signicatStreams, "invoice_pdfs")
	}
	if gsapiStreams == nil {
		cfg.Sources.GSAPI = nil
	} else {
		cfg.Sources.GSAPI.Streams = gsapiStreams
	}
}

var fastRetries = httpclient.Options{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond, MaxAttempts: 12}

func run(t *testing.T, cfg *config.Config) *Result {
	t.Helper()
	res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func query(t *testing.T, cfg *config.Config) *sql.DB {
	t.Helper()
	wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	return wh.DB
}

func scalar[T any](t *testing.T, db *sql.DB, q string) T {
	t.Helper()
	var v T
	if err := db.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

func TestWalkingSkeletonEndToEnd(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.3}, nil)
	only(cfg, []string{"accounts"}, []string{"organizations"})
	d := srv.Data()
	res := run(t, cfg)
	if res.Manifest.Status != "ok" || len(res.Failed) != 0 {
		t.Fatalf("run: %+v", res.Manifest.Streams)
	}
	db := query(t, cfg)

	// Exact row counts: every page of both deleted modes, every organisation.
	wantAccounts := 2 + d.SignicatAccounts + d.SignicatDeleted
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts"); n != wantAccounts {
		t.Errorf("signicat_accounts: %d rows, want %d", n, wantAccounts)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts WHERE is_soft_deleted"); n != d.SignicatDeleted || n == 0 {
		t.Errorf("soft-deleted accounts: %d, want %d", n, d.SignicatDeleted)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM gsapi_organizations"); n != 1+d.GSOrganizations {
		t.Errorf("gsapi_organizations: %d rows, want %d", n, 1+d.GSOrganizations)
	}

	// The published example records, value by value, with their exact types.
	var (
		name, orgEntity                 string
		created                         sql.NullTime
		modified                        time.Time
		softDeleted                     sql.NullBool
		enabled, sandboxAcct, protected bool
	)
	err := db.QueryRow(`SELECT name, created_date, last_modified_date, is_soft_deleted, enabled, is_sandbox, is_delete_protected, organization__entity_id
		FROM signicat_accounts WHERE id = 'a-ppge-ovC1eMDgt0hkgqZUSaPh'`).Scan(&name, &created, &modified, &softDeleted, &enabled, &sandboxAcct, &protected, &orgEntity)
	if err != nil {
		t.Fatal(err)
	}
	if name != "My Account" || created.Valid || !modified.Equal(time.Date(2022, 5, 11, 11, 28, 59, 0, time.UTC)) || softDeleted.Valid ||
		!enabled || sandboxAcct || protected || orgEntity != "382995002" {
		t.Errorf("My Account = %q %v %v %v %v %v %v %q", name, created, modified, softDeleted, enabled, sandboxAcct, protected, orgEntity)
	}
	if n := scalar[int](t, db, `SELECT count(*) FROM signicat_accounts WHERE id = 'a-spge-PmN5cDIdq0cz93ZUS276'
		AND name = 'My Sandbox Account' AND is_sandbox AND NOT enabled AND organization__id IS NULL AND last_modified_date IS NULL`); n != 1 {
		t.Error("My Sandbox Account is not as published")
	}
	var company, country string
	var createdOrg time.Time
	var parent int64
	var updated sql.NullTime
	if err := db.QueryRow(`SELECT company_name, parent_org_id, country, created_date, updated_date FROM gsapi_organizations WHERE org_id = 1202`).
		Scan(&company, &parent, &country, &createdOrg, &updated); err != nil {
		t.Fatal(err)
	}
	if company != "ApiDemoCloud" || parent != 0 || country != "FIN" || updated.Valid ||
		!createdOrg.Equal(time.Date(2022, 10, 31, 5, 45, 24, 867e6, time.UTC)) {
		t.Errorf("ApiDemoCloud = %q %d %q %v %v", company, parent, country, createdOrg, updated)
	}
	types := map[string]string{}
	rows, err := db.Query(`SELECT table_name || '.' || column_name, data_type FROM information_schema.columns WHERE table_name IN ('signicat_accounts', 'gsapi_organizations')`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var c, ty string
		_ = rows.Scan(&c, &ty)
		types[c] = ty
	}
	rows.Close()
	for col, want := range map[string]string{
		"signicat_accounts.created_date": "TIMESTAMP WITH TIME ZONE", "signicat_accounts.is_soft_deleted": "BOOLEAN",
		"signicat_accounts.organization__id": "VARCHAR", "signicat_accounts._run_id": "VARCHAR",
		"signicat_accounts._extracted_at": "TIMESTAMP WITH TIME ZONE", "gsapi_organizations.org_id": "BIGINT",
		"gsapi_organizations.updated_date": "TIMESTAMP WITH TIME ZONE",
	} {
		if types[col] != want {
			t.Errorf("%s is %q, want %s", col, types[col], want)
		}
	}
	// Unicode names survive the trip.
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts WHERE name LIKE '%Ø%' OR name LIKE '%Æ%' OR name LIKE '%ü%'"); n == 0 {
		t.Error("no unicode account names arrived")
	}

	// The manifest lists every file with a hash that verifies.
	checked, problems, err := lake.Verify(t.Context(), lake.Dir(cfg.OutputDir))
	if err != nil || checked < len(res.Manifest.Files)+len(res.Manifest.PDFs) || len(problems) != 0 || checked < 2 {
		t.Fatalf("verify: %d checked, %v, %v", checked, problems, err)
	}
}

func TestSecondRunKeepsHistoryWithoutDoubling(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"accounts"}, nil)
	first := run(t, cfg)
	second := run(t, cfg)
	wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	db := wh.DB
	d := srv.Data()
	want := 2 + d.SignicatAccounts + d.SignicatDeleted
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts"); n != want {
		t.Errorf("current: %d rows, want %d", n, want)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts_history"); n != 2*want {
		t.Errorf("history: %d rows, want %d", n, 2*want)
	}
	if n := scalar[int](t, db, "SELECT count(DISTINCT _run_id) FROM signicat_accounts"); n != 1 {
		t.Errorf("current state mixes %d runs", n)
	}
	if got := scalar[string](t, db, "SELECT max(_run_id) FROM signicat_accounts"); got != second.Manifest.RunID {
		t.Errorf("current is run %s, want the latest %s", got, second.Manifest.RunID)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM _ledgerlake_runs"); n != 2 {
		t.Errorf("%d runs recorded", n)
	}
	wh.Close() // DuckDB allows one configuration per file in a process: read-only must close before loading
	// Loading a run again changes nothing.
	if _, err := Load(context.Background(), cfg, lake.Dir(cfg.OutputDir), first.Manifest, nil); err != nil {
		t.Fatal(err)
	}
	if n := scalar[int](t, query(t, cfg), "SELECT count(*) FROM signicat_accounts_history"); n != 2*want {
		t.Errorf("after reloading run 1, history has %d rows, want %d", n, 2*want)
	}
}

// The next run starts each host at the concurrency the last committed run found, and so meets none of
// the 429s (each a Retry-After pause) the first run took to find it, with as many requests to make.
// Not parallel: the limit found and the second run's peak depend on how fast requests go out (see the
// allowance below for make test's load); a test beside it would slow them more.
func TestNextRunStartsAtTheLimitFound(t *testing.T) {
	const allowed = 12
	_, cfg := setup(t, sandbox.Options{Scale: 0.2, Concurrency: allowed, Latency: 5 * time.Millisecond}, nil)
	only(cfg, []string{"accounts"}, nil)
	first := run(t, cfg).Manifest.Hosts
	// allowed-2: while make test loads both CPUs, the first burst of refusals once left the limit at 14,
	// and the requests released after the pause met two more, which took it to 10.
	if len(first) != 1 || first[0].Throttled == 0 || first[0].Final < allowed-2 || first[0].Final > allowed {
		t.Fatalf("first run's hosts: %+v, want one that found %d with 429s", first, allowed)
	}
	// The sandbox's 429s ask for a second's pause each: the report says how long the host was closed.
	if first[0].PausedSeconds < 1 {
		t.Errorf("first run's host was paused %.2fs, want at least the 1 s a 429 asked for", first[0].PausedSeconds)
	}
	res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries, FullRefresh: true}) // as many requests again
	if err != nil {
		t.Fatal(err)
	}
	second := res.Manifest.Hosts
	if len(second) != 1 || second[0].Throttled != 0 || second[0].Samples[0].Limit != first[0].Final || second[0].Peak < first[0].Final {
		t.Errorf("second run's hosts: %+v, want one starting at %d, used, with no 429", second, first[0].Final)
	}
	if second[0].PausedSeconds != 0 {
		t.Errorf("second run's host was paused %.2fs with no 429", second[0].PausedSeconds)
	}
}

// A host that keeps a request quota and announces it (X-Rate-Limit-*, as GSAPI's reference shows) is
// kept to: a run needing several windows fetches every row, meets no 429, and reports the time the
// quota closed the host.
func TestAnnouncedQuotaIsKeptTo(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.1, Quota: 40, QuotaPeriod: time.Second}, nil)
	only(cfg, []string{"accounts"}, nil)
	res := run(t, cfg)
	d := srv.Data()
	if n := scalar[int](t, query(t, cfg), "SELECT count(*) FROM signicat_accounts"); n != 2+d.SignicatAccounts+d.SignicatDeleted {
		t.Errorf("%d accounts, want %d", n, 2+d.SignicatAccounts+d.SignicatDeleted)
	}
	hosts := res.Manifest.Hosts
	if len(hosts) != 1 || res.Manifest.Streams[0].Requests < 80 {
		t.Fatalf("hosts %+v, %d requests: want one host and a run of more than two windows", hosts, res.Manifest.Streams[0].Requests)
	}
	// Met instead of kept to, each window ended with the requests in flight refused, and the refusals
	// cut the concurrency limit as if the host took fewer at once.
	if hosts[0].Throttled > 0 || hosts[0].PausedSeconds < 0.5 || hosts[0].Final < httpclient.InitialConcurrency {
		t.Errorf("host %+v: want no answer 429, the time the quota closed it, and the limit not cut below %d", hosts[0], httpclient.InitialConcurrency)
	}
}

func TestLoadOutOfMemoryIsTriedAgainWithMore(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"accounts"}, nil)
	cfg.WarehouseMemoryLimit = "2MB" // set explicitly: kept to, and too small for any load
	res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries})
	if err == nil || !strings.Contains(err.Error(), "warehouse_memory_limit") || !strings.Contains(err.Error(), "2MB") {
		t.Fatalf("load with 2MB: %v, want an out-of-memory error naming warehouse_memory_limit and the limit", err)
	}
	if _, err := loadRetrying(context.Background(), cfg, lake.Dir(cfg.OutputDir), "256MB", res.Manifest, nil, nil); err != nil {
		t.Fatalf("retried with 256MB: %v", err)
	}
	d := srv.Data()
	if n := scalar[int](t, query(t, cfg), "SELECT count(*) FROM signicat_accounts"); n != 2+d.SignicatAccounts+d.SignicatDeleted {
		t.Errorf("after the retry: %d accounts, want %d", n, 2+d.SignicatAccounts+d.SignicatDeleted)
	}
}

func TestTokenExpiryAndFaultsMidRun(t *testing.T) {
	t.Parallel()
	// Retry-After pauses the whole host for at least a second, so 429/503 are rarer here than the rest.
	srv, cfg := setup(t, sandbox.Options{Scale: 0.03, TokenTTL: time.Second, Latency: 15 * time.Millisecond,
		Faults: sandbox.Faults{RateLimited: 0.01, Unavailable: 0.01, ServerError: 0.05, Reset: 0.05, Truncate: 0.05, TokenExpiry: 0.05}}, func(y string) string {
		return strings.Replace(y, "since: 2019-01-01", "since: 2019-01-01\n    page_limit: 10", 1)
	})
	cfg.Sources.Signicat.PageLimit = 10
	only(cfg, []string{"accounts", "invoice_lines"}, []string{"organizations", "datasync_invoices"})
	res := run(t, cfg)
	if len(res.Failed) != 0 {
		t.Fatalf("failed: %+v", res.Failed)
	}
	d := srv.Data()
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_accounts"); n != 2+d.SignicatAccounts+d.SignicatDeleted {
		t.Errorf("%d accounts after faults", n)
	}
	lines := 1
	for i := 0; i < d.SignicatInvoices; i++ {
		lines += len(d.SignicatLines(i))
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_invoice_lines"); n != lines {
		t.Errorf("%d invoice lines after faults, want %d", n, lines)
	}
	if srv.Stats.Faults.Load() == 0 || srv.Stats.TokensIssued.Load() < 2 {
		t.Errorf("the run met %d faults and %d tokens; the test proves nothing", srv.Stats.Faults.Load(), srv.Stats.TokensIssued.Load())
	}
	var retries, throttled int64
	for _, s := range res.Manifest.Streams {
		retries += s.Retries
		throttled += s.Throttled
	}
	if retries == 0 || throttled > retries {
		t.Errorf("%d retries and %d 429s were counted", retries, throttled)
	}
}

func TestFailingStreamDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"organizations"}, []string{"organizations"})
	cfg.Sources.GSAPI.Password = "wrong"
	res := run(t, cfg)
	if len(res.Failed) != 1 || res.Failed[0].Table != "gsapi_organizations" || !strings.Contains(res.Failed[0].Error, "/welcome") {
		t.Fatalf("failed = %+v", res.Failed)
	}
	if res.Manifest.Status != "partial" {
		t.Errorf("status %s", res.Manifest.Status)
	}
	var rep Report
	b, err := os.ReadFile(lake.ReportPath(cfg.OutputDir, res.Manifest.RunID))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Status != "partial" || rep.Totals.Failed != 1 || len(rep.Streams) != 2 || rep.Models == nil {
		t.Errorf("report: status %s, %d failed, %d streams, models %v", rep.Status, rep.Totals.Failed, len(rep.Streams), rep.Models)
	}
	if want := res.Manifest.Streams[0].Rows + res.Manifest.Streams[1].Rows; rep.Totals.Rows != want || want == 0 {
		t.Errorf("report totals %d rows, streams sum to %d", rep.Totals.Rows, want)
	}
	if ms, err := lake.ReadManifests(t.Context(), lake.Dir(cfg.OutputDir)); err != nil || len(ms) != 1 {
		t.Errorf("the report is read as a manifest: %d manifests, %v", len(ms), err)
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM signicat_organizations"); n == 0 {
		t.Error("the healthy stream's data did not land")
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'gsapi_organizations'"); n != 0 {
		t.Error("a failed stream created a table")
	}
	for _, f := range res.Manifest.Files {
		if strings.HasPrefix(f.Path, "gsapi_") {
			t.Errorf("manifest lists %s of the failed stream", f.Path)
		}
	}
}

func TestSecondRunOnSameOutputIsRefused(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.01}, nil)
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, _, err := lake.Dir(cfg.OutputDir).Lock(t.Context(), "test")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = Run(context.Background(), Options{Config: cfg})
	if !errors.Is(err, ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
}

func TestUnknownStreamNamed(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.01}, nil)
	_, err := Run(context.Background(), Options{Config: cfg, Streams: []string{"acounts"}})
	var ce *config.Error
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "signicat_accounts") {
		t.Fatalf("err = %v", err)
	}
	res, err := Run(context.Background(), Options{Config: cfg, Streams: []string{"accounts"}})
	if err != nil || len(res.Manifest.Streams) != 1 {
		t.Fatalf("--streams accounts: %v %+v", err, res)
	}
}

// fakeStream serves fixed pages: the pipeline's behaviour on shapes no sandbox stream has.
func fakeStream(name string, key []string, pages ...[]string) *sources.Stream {
	return &sources.Stream{Source: "test", Name: name, Key: key,
		Pages: func(ctx context.Context, _ sources.Resume) iter.Seq2[sources.Page, error] {
			return func(yield func(sources.Page, error) bool) {
				for _, p := range pages {
					var recs []sources.Record
					for _, js := range p {
						dec := json.NewDecoder(strings.NewReader(js))
						dec.UseNumber()
						var r sources.Record
						if err := dec.Decode(&r); err != nil {
							panic(err)
						}
						recs = append(recs, r)
					}
					if !yield(sources.Page{Records: recs}, nil) {
						return
					}
				}
			}
		}}
}

func TestInferredStreamEvolvesInWarehouse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
	runWith := func(batch int, streams ...*sources.Stream) *Result {
		res, err := RunStreams(context.Background(), Options{Config: cfg, BatchRows: batch}, streams)
		if err != nil || len(res.Failed) > 0 {
			t.Fatalf("run: %v %+v", err, res)
		}
		return res
	}
	runWith(100,
		fakeStream("things", []string{"id"}, []string{`{"id":1,"n":5,"lines":[{"a":1},{"a":2}]}`, `{"id":2,"n":6}`}),
		fakeStream("nothing", []string{"id"}))
	// Run 2 widens n twice mid-run (batches of one record), adds a column, drops id 2.
	res := runWith(1, fakeStream("things", []string{"id"},
		[]string{`{"id":1,"n":5.5}`}, []string{`{"id":3,"n":"x","brandNew":"hello","lines":[{"a":3}]}`}))
	rep := res.Manifest.Streams[0]
	if !strings.Contains(strings.Join(rep.SchemaChanges, ";"), "test_things.n: widened BIGINT → DECIMAL(38,2)") ||
		!strings.Contains(strings.Join(rep.SchemaChanges, ";"), "test_things.n: widened DECIMAL(38,2) → VARCHAR") {
		t.Errorf("changes reported: %v", rep.SchemaChanges)
	}
	db := query(t, cfg)
	if got := scalar[string](t, db, "SELECT data_type FROM duckdb_columns() WHERE table_name = 'test_things' AND column_name = 'n'"); got != "VARCHAR" {
		t.Errorf("n is %s in the warehouse", got)
	}
	if got := scalar[string](t, db, "SELECT string_agg(n, ',' ORDER BY _run_id, id) FROM test_things_history"); got != "5,6,5.50,x" {
		t.Errorf("history n = %s (every earlier value kept through the widening)", got)
	}
	if got := scalar[string](t, db, "SELECT string_agg(id::VARCHAR || ':' || coalesce(brand_new, '-'), ',' ORDER BY id) FROM test_things"); got != "1:-,3:hello" {
		t.Errorf("current = %s", got)
	}
	if got := scalar[string](t, db, "SELECT string_agg(_parent_id || '/' || _position || '=' || a, ',' ORDER BY _parent_id, _position) FROM test_things__lines_history"); got != "1/1=1,1/2=2,3/1=3" {
		t.Errorf("child history = %s", got)
	}
	if got := scalar[int](t, db, "SELECT count(*) FROM test_things__lines"); got != 1 {
		t.Errorf("child current has %d rows, want the latest run's 1", got)
	}
	if got := scalar[int](t, db, "SELECT count(*) FROM test_nothing"); got != 0 {
		t.Errorf("empty stream has %d rows", got)
	}
	var persisted struct {
		Columns []struct{ Name, Type string }
		Changes []struct{ Column, From, To string }
	}
	if found, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.SchemaDir, "test_things", &persisted); !found || err != nil || len(persisted.Changes) < 4 {
		t.Fatalf("persisted schema: %v %v %+v", found, err, persisted)
	}
	// Iceberg cannot promote BIGINT to VARCHAR: the table was rebuilt with n as text, each run's files
	// conformed to it, and the old table kept for time travel to run 1 as it was typed.
	ctx := context.Background()
	cat := openCatalog(t, cfg)
	tbl, err := cat.Table(ctx, "test_things")
	if err != nil {
		t.Fatal(err)
	}
	snaps := tbl.Metadata().Snapshots()
	if len(snaps) != 2 {
		t.Fatalf("%d snapshots in the rebuilt table, want one per run", len(snaps))
	}
	for _, c := range []struct {
		snapshot int64
		want     string
	}{{snaps[1].SnapshotID, "5.50,x"}, {snaps[0].SnapshotID, "5,6"}} {
		if got := icebergColumn(t, tbl, "n", table.WithSnapshotID(c.snapshot)); got != c.want {
			t.Errorf("iceberg test_things.n at snapshot %d = %s, want %s", c.snapshot, got, c.want)
		}
	}
	if conformedCarryFieldIDs(t, tbl) == 0 {
		t.Error("no conformed copy in the rebuilt table: the case is moot")
	}
	old, err := cat.Table(ctx, "test_things__until_1")
	if err != nil {
		t.Fatalf("the table before the rebuild: %v", err)
	}
	if f, _ := old.Schema().FindFieldByName("n"); f.Type.String() != "long" {
		t.Errorf("the old table's n is %s, want long", f.Type)
	}
}

// icebergColumn is a column's values as text, sorted and joined by commas, read by iceberg-go's scan.
func icebergColumn(t *testing.T, tbl *table.Table, col string, opts ...table.ScanOption) string {
	t.Helper()
	at, err := tbl.Scan(opts...).ToArrowTable(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer at.Release()
	idx := at.Schema().FieldIndices(col)
	if len(idx) != 1 {
		t.Fatalf("no column %s in %v", col, at.Schema())
	}
	var vals []string
	for _, chunk := range at.Column(idx[0]).Data().Chunks() {
		for i := range chunk.Len() {
			vals = append(vals, chunk.ValueStr(i))
		}
	}
	slices.Sort(vals)
	return strings.Join(vals, ",")
}

// A field the declared schema lacks is kept (typed by inference) and reported, even on the first run.
func TestDeclaredStreamReportsExtraFields(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 1}
	s := fakeStream("contacts", []string{"id"}, []string{`{"id":"c-1","name":"Åse","nickname":"åsa","organization":{"id":"o-1","tier":3}}`})
	decl, err := schemas.Lookup("signicat", "contacts")
	if err != nil || decl == nil {
		t.Fatal(err)
	}
	s.Declared = decl
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{s})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(res.Manifest.Streams[0].SchemaChanges, "; ")
	for _, want := range []string{"test_contacts.nickname: new column VARCHAR", "test_contacts.organization__tier: new column BIGINT"} {
		if !strings.Contains(got, want) {
			t.Errorf("changes %q lack %q", got, want)
		}
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM test_contacts WHERE nickname = 'åsa' AND organization__tier = 3 AND name = 'Åse'"); n != 1 {
		t.Error("the extra fields did not land")
	}
}

// Ctrl-C keeps the streams that completed: they are committed and loaded; the interrupted one is not.
// Not parallel: the quick stream must complete in the 50 ms before the interrupt.
func TestInterruptKeepsCompletedStreams(t *testing.T) {
	dir := t.TempDir()
	cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
	quick := fakeStream("quick", []string{"id"}, []string{`{"id":1}`, `{"id":2}`})
	done := make(chan struct{})
	slow := &sources.Stream{Source: "test", Name: "slow", Key: []string{"id"},
		Pages: func(ctx context.Context, _ sources.Resume) iter.Seq2[sources.Page, error] {
			return func(yield func(sources.Page, error) bool) {
				if !yield(sources.Page{Records: []sources.Record{{"id": json.Number("1")}}}, nil) {
					return
				}
				close(done)
				<-ctx.Done()
				yield(sources.Page{}, ctx.Err())
			}
		}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-done; time.Sleep(50 * time.Millisecond); cancel() }()
	res, err := RunStreams(ctx, Options{Config: cfg}, []*sources.Stream{quick, slow})
	if !errors.Is(err, context.Canceled) || res == nil {
		t.Fatalf("err %v, res %+v", err, res)
	}
	// One word for it everywhere: the run, the stream it cut short, the report.
	var rep Report
	if _, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.ManifestDir, res.Manifest.RunID+".report", &rep); err != nil {
		t.Fatal(err)
	}
	streams := map[string]lake.StreamReport{}
	for _, s := range rep.Streams {
		streams[s.Table] = s
	}
	if res.Manifest.Status != "interrupted" || rep.Status != "interrupted" || streams["test_quick"].Status != "ok" ||
		streams["test_slow"].Status != "interrupted" || !strings.Contains(streams["test_slow"].Error, "interrupted after") || strings.Contains(streams["test_slow"].Error, "context canceled") {
		t.Errorf("manifest %s, report %s, streams %+v", res.Manifest.Status, rep.Status, streams)
	}
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM test_quick"); n != 2 {
		t.Errorf("the completed stream has %d rows in the warehouse, want 2", n)
	}
	if n := scalar[int](t, db, "SELECT count(*) FROM information_schema.tables WHERE table_name = 'test_slow'"); n != 0 {
		t.Error("the interrupted stream was loaded")
	}
}

// recorder is an Observer that keeps what it heard, in order.
type recorder struct {
	mu     sync.Mutex
	plan   []Planned
	last   Phases
	events []string
	pages  map[string]int
}

func (r *recorder) add(e string)                    { r.mu.Lock(); r.events = append(r.events, e); r.mu.Unlock() }
func (r *recorder) Start(p Plan)                    { r.mu.Lock(); r.plan = p.Streams; r.last = p.Last; r.mu.Unlock() }
func (r *recorder) StreamStarted(s *sources.Stream) { r.add("start " + s.TableName()) }
func (r *recorder) Page(s *sources.Stream, _ sources.Page) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pages == nil {
		r.pages = map[string]int{}
	}
	r.pages[s.TableName()]++
}
func (r *recorder) StreamDone(s *sources.Stream, rep lake.StreamReport) {
	r.add("done " + s.TableName() + " " + rep.Status)
}
func (r *recorder) Phase(p string, expect time.Duration) {
	r.add(fmt.Sprintf("phase %s %t", p, expect > 0))
}

// A live view hears every stream start and end, every page, then the load and the models; the second
// run's plan and phases carry what the first took, for its estimates; the totals cover every phase.
// Not parallel: the phases must cover the run's wall time to within half a second.
func TestObserverHearsTheRun(t *testing.T) {
	_, cfg := setup(t, sandbox.Options{Scale: 0.02, Latency: 5 * time.Millisecond}, nil)
	only(cfg, []string{"accounts"}, []string{"organizations"})
	off := false
	cfg.Iceberg.Enabled = &off
	for run := range 2 {
		rec := &recorder{}
		res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries, Observer: rec})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(rec.events[:4])
		want := []string{"done gsapi_organizations ok", "done signicat_accounts ok", "start gsapi_organizations", "start signicat_accounts",
			fmt.Sprintf("phase load %t", run > 0), fmt.Sprintf("phase models %t", run > 0)}
		if !slices.Equal(rec.events, want) {
			t.Errorf("run %d: events %q, want %q", run, rec.events, want)
		}
		if rec.pages["signicat_accounts"] == 0 || rec.pages["gsapi_organizations"] == 0 {
			t.Errorf("run %d: pages heard %v", run, rec.pages)
		}
		if len(rec.plan) != 2 || (rec.plan[0].Last > 0) != (run > 0) || (rec.plan[1].Last > 0) != (run > 0) || (rec.last.Load > 0) != (run > 0) {
			t.Errorf("run %d: plan %+v", run, rec.plan)
		}
		p := res.Phases
		total := res.FinishedAt.Sub(res.Manifest.StartedAt).Seconds()
		if p.Extract <= 0 || p.Load <= 0 || p.Models <= 0 || p.Extract+p.Load+p.Models > total+0.05 || total-(p.Extract+p.Load+p.Models) > 0.5 {
			t.Errorf("run %d: phases %+v, total %.2fs", run, p, total)
		}
		var rep Report
		if _, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.ManifestDir, res.Manifest.RunID+".report", &rep); err != nil || rep.Phases != p || rep.Seconds < p.Extract+p.Load+p.Models-0.05 {
			t.Errorf("run %d: report phases %+v seconds %.2f, %v", run, rep.Phases, rep.Seconds, err)
		}
	}
}

// Streams convert a page at a time on as many CPUs as there are; one waiting for its next page must not
// hold a CPU, or streams stalled on a slow API would stop every other stream.
func TestStreamsWaitingOnTheNetworkLeaveTheCPUs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	stalled := runtime.GOMAXPROCS(0)
	cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: stalled + 1}
	// The stalled streams wait on the API for the quick stream, and it for their first pages: only
	// streams that convert without holding a CPU while they wait get through.
	var waiting sync.WaitGroup
	waiting.Add(stalled)
	taken := make(chan struct{})
	var streams []*sources.Stream
	for i := range stalled {
		streams = append(streams, &sources.Stream{Source: "test", Name: fmt.Sprintf("stalled%d", i), Key: []string{"id"},
			Pages: func(ctx context.Context, _ sources.Resume) iter.Seq2[sources.Page, error] {
				return func(yield func(sources.Page, error) bool) {
					if !yield(sources.Page{Records: []sources.Record{{"id": json.Number("1")}}}, nil) {
						return
					}
					waiting.Done()
					select {
					case <-taken:
					case <-ctx.Done():
						yield(sources.Page{}, ctx.Err())
						return
					}
					yield(sources.Page{Records: []sources.Record{{"id": json.Number("2")}}}, nil)
				}
			}})
	}
	quick := fakeStream("quick", []string{"id"}, []string{`{"id":1}`, `{"id":2}`})
	pages := quick.Pages
	quick.Pages = func(ctx context.Context, resume sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) {
			waiting.Wait()
			for p, err := range pages(ctx, resume) {
				if !yield(p, err) {
					return
				}
			}
			close(taken)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := RunStreams(ctx, Options{Config: cfg}, append([]*sources.Stream{quick}, streams...))
	if err != nil || !res.OK() {
		t.Fatalf("err %v, failed %+v (streams waiting on the API held the CPUs)", err, res.Failed)
	}
	db := query(t, cfg)
	for i := range stalled {
		if n := scalar[int](t, db, fmt.Sprintf("SELECT count(*) FROM test_stalled%d", i)); n != 2 {
			t.Errorf("test_stalled%d has %d rows, want 2", i, n)
		}
	}
}

// A declared DECIMAL the API's values outgrow widens like an inferred column, across runs: the
// warehouse holds each value exactly, history keeps run 1's, and only a value no DECIMAL(38,s) holds is
// a reject, named in the stream's warnings (the probe's 0.0123456789 became NULL and the run said ok).
func TestDeclaredDecimalsWidenAcrossRunsAndKeepExactValues(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 1}
	decl, err := schemas.Parse([]byte("source: test\nstream: prices\nkey: [id]\ncolumns:\n" +
		"  - {path: id, type: BIGINT, description: id}\n  - {path: price, type: \"DECIMAL(18,4)\", description: money}\n"))
	if err != nil {
		t.Fatal(err)
	}
	runWith := func(recs ...string) lake.StreamReport {
		s := fakeStream("prices", []string{"id"}, recs)
		s.Declared = decl
		res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{s})
		if err != nil || len(res.Failed) > 0 {
			t.Fatalf("run: %v %+v", err, res)
		}
		return res.Manifest.Streams[0]
	}
	runWith(`{"id":1,"price":12.5}`)
	rep := runWith(`{"id":1,"price":12.5}`, `{"id":2,"price":0.0123456789}`, `{"id":3,"price":123456789012345678.99}`,
		`{"id":4,"price":1234567890123456789012345678901234567890}`)
	if got := strings.Join(rep.SchemaChanges, ";"); !strings.Contains(got, "test_prices.price: widened DECIMAL(18,4) → DECIMAL(28,10)") {
		t.Errorf("changes %q", got)
	}
	if rep.Rejects != 1 || !strings.Contains(strings.Join(rep.Warnings, ";"), "test_prices.price: 1 values fit no type") {
		t.Errorf("%d rejects, warnings %q", rep.Rejects, rep.Warnings)
	}
	db := query(t, cfg)
	if got := scalar[string](t, db, "SELECT string_agg(coalesce(price::VARCHAR, 'NULL'), ',' ORDER BY id) FROM test_prices"); got !=
		"12.5000000000,0.0123456789,123456789012345678.9900000000,NULL" {
		t.Errorf("prices %s", got)
	}
	if got := scalar[string](t, db, "SELECT string_agg(price::VARCHAR, ',' ORDER BY _run_id, id) FROM test_prices_history WHERE id = 1"); got != "12.5000000000,12.5000000000" {
		t.Errorf("history %s", got)
	}
	// Iceberg cannot promote a decimal to a finer scale: the table is rebuilt with the widened type.
	tbl, err := openCatalog(t, cfg).Table(t.Context(), "test_prices")
	if err != nil {
		t.Fatal(err)
	}
	if got := icebergColumn(t, tbl, "price"); !strings.Contains(got, "0.0123456789") || !strings.Contains(got, "123456789012345678.99") {
		t.Errorf("iceberg prices %s", got)
	}
}
