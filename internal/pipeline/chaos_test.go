package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb/duckdbtest"
)

// TestMain lets the chaos test run this test binary as a child pipeline it can kill -9, and the
// warehouse tests as a process holding the warehouse.
func TestMain(m *testing.M) {
	if err := parquet.RegisterZstd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if path := os.Getenv("LEDGERLAKE_CHILD_READER"); path != "" {
		pollWarehouse(path)
		os.Exit(0)
	}
	duckdbtest.ServeHolder()
	if path := os.Getenv("LEDGERLAKE_CHILD_CONFIG"); path != "" {
		cfg, err := config.Load(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		if out := os.Getenv("LEDGERLAKE_CHILD_OUTPUT_DIR"); out != "" {
			cfg.OutputDir = out // a bucket on the parent's loopback S3 server
		}
		if d, err := time.ParseDuration(os.Getenv("LEDGERLAKE_CHILD_STALL_TIMEOUT")); err == nil {
			lake.StallTimeout = d
		}
		if d, err := time.ParseDuration(os.Getenv("LEDGERLAKE_CHILD_LEASE_TTL")); err == nil {
			lake.LeaseTTL = d
		}
		if marker := os.Getenv("LEDGERLAKE_CHILD_STOP_BEFORE_COMMIT"); marker != "" {
			// A stall as long as the test likes: the whole process stops, lease renewals included.
			beforeCommit = func() {
				_ = os.WriteFile(marker, nil, 0o644)
				_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			}
		}
		every, _ := time.ParseDuration(os.Getenv("LEDGERLAKE_CHECKPOINT_EVERY"))
		// The hostile sandbox fails ~47% of requests, so twelve faults in a row on one of a run's
		// few hundred requests happened in about one CI run in twenty; forty attempts make giving up
		// (which is not what these tests are about) practically impossible while backoff stays short.
		retries := fastRetries
		retries.MaxAttempts = 40
		res, err := Run(context.Background(), Options{Config: cfg, HTTP: retries, CheckpointEvery: every})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if !res.OK() {
			fmt.Fprintf(os.Stderr, "failed: %+v %+v\n", res.Failed, res.Models)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// Once for the process, not per test: t.Setenv would panic in the tests that run in parallel.
	if err := s3test.SetProcessEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

const chaosPipeline = `
output_dir: %[1]s/lake
warehouse: %[1]s/wh.duckdb
sources:
  signicat:
    base_url: ${LEDGERLAKE_SANDBOX_URL}/account-management
    token_url: ${LEDGERLAKE_SANDBOX_URL}/auth/open/connect/token
    client_id: ${SIGNICAT_CLIENT_ID}
    client_secret: ${SIGNICAT_CLIENT_SECRET}
    organization_id: o-p-0TgcUq7CylltM7OkwB4t
    since: 2025-01-01
    page_limit: 20
    streams: [organizations, accounts, contacts, invoices, invoice_lines, invoice_pdfs]
  gsapi:
    base_url: ${LEDGERLAKE_SANDBOX_URL}/api/interface/gsapi
    username: ${GSAPI_USERNAME}
    password: ${GSAPI_PASSWORD}
    since: 2025-01-01
    streams: [organizations, datasync_invoices, datasync_invoice_lines, invoice_journal_summary, invoice_charges, datatable_ctransactiondata]
    datatables:
      - {table: ctransactiondata, sortorder: ["raw_id asc"], key: raw_id, pagesize: 60}
`

// child runs the pipeline in a subprocess; killAfter > 0 kills it with SIGKILL after that long.
func child(t *testing.T, srv *sandbox.Server, dir string, killAfter time.Duration, env ...string) (exited bool, err error) {
	t.Helper()
	// Frequent checkpoints, so kills land between them and resumed streams continue mid-way.
	return childWhen(t, srv, dir, chaosPipeline, func() bool { return false }, killAfter, append(env, "LEDGERLAKE_CHECKPOINT_EVERY=100ms")...)
}

// childWhen runs pipeline (a format with the directory as %[1]s) in a subprocess and kills it with
// SIGKILL once kill() holds (polled) or after killAfter (> 0).
func childWhen(t *testing.T, srv *sandbox.Server, dir, pipeline string, kill func() bool, killAfter time.Duration, env ...string) (exited bool, err error) {
	t.Helper()
	cmd, _, done := startChild(t, srv, dir, pipeline, env...)
	var deadline <-chan time.Time
	if killAfter > 0 {
		deadline = time.After(killAfter)
	}
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
	for {
		select {
		case err := <-done:
			return true, err
		case <-deadline:
		case <-poll.C:
			if !kill() {
				continue
			}
		}
		_ = cmd.Process.Kill() // SIGKILL: no defer, no cleanup runs
		<-done
		return false, nil
	}
}

func wrap(err error, stderr string) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %s", err, stderr)
}

// fingerprint is every current-state table's row count and content checksum, lineage excluded.
func fingerprint(t *testing.T, warehouse string) map[string]string {
	t.Helper()
	wh, err := duckdb.OpenReadOnly(warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	rows, err := wh.DB.Query(`SELECT table_name FROM information_schema.tables WHERE table_name NOT LIKE '%\_history' ESCAPE '\' AND table_name NOT LIKE '\_%' ESCAPE '\'`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	sort.Strings(tables)
	out := map[string]string{}
	for _, tb := range tables {
		// Lineage differs by design: which run fetched a row, when, and in which response body (a resumed
		// run's first window starts elsewhere, so the same record arrives in another body).
		cols := "*"
		lineage := scalar[string](t, wh.DB, "SELECT coalesce(string_agg(column_name, ', '), '') FROM duckdb_columns() WHERE table_name = '"+tb+"' AND column_name IN ('_run_id', '_extracted_at', '_evidence_sha256')")
		if lineage != "" {
			cols = "* EXCLUDE (" + lineage + ")"
		}
		var count int64
		var sum string
		q := fmt.Sprintf(`SELECT count(*), coalesce(sum(hash(t) %% 1000000007)::VARCHAR, '0') FROM (SELECT %s FROM %s) t`, cols, duckdb.Quote(tb))
		if err := wh.DB.QueryRow(q).Scan(&count, &sum); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		out[tb] = fmt.Sprintf("%d rows, checksum %s", count, sum)
	}
	return out
}

// chaosLake is where a chaos test's child runs put the lake: the directory's lake/ for "dir"; for "s3",
// a bucket on a loopback S3 server of the test's own, with faults. Stalls last 3 s, past the child's
// 1 s stall timeout (a loopback GET under -race on a busy machine can take 300 ms). env is what the
// child needs on top; open opens the lake here.
func chaosLake(t *testing.T, backend, dir string, faults s3test.Faults) (env []string, open func() lake.Store, srv *s3test.Server) {
	t.Helper()
	open = func() lake.Store { return lake.Dir(filepath.Join(dir, "lake")) }
	if backend != "s3" {
		return nil, open, nil
	}
	srv = s3test.StartT(t, "lake")
	faults.Stall = 3 * time.Second
	srv.SetFaults(faults)
	url := srv.URL("lake", "chaos")
	open = func() lake.Store {
		st, err := lake.OpenStore(context.Background(), url, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	return append(s3test.Env(), "LEDGERLAKE_CHILD_OUTPUT_DIR="+url, "LEDGERLAKE_CHILD_STALL_TIMEOUT=1s"), open, srv
}

// The sandbox fails 10% of requests with every kind of fault and expires tokens mid-run; the child
// pipeline is killed -9 at random moments and started again. The final warehouse equals a fault-free
// run's, table by table, and no unfinished file is left anywhere.
func TestChaosKillAndFaultsEndLikeACleanRun(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { t.Parallel(); chaosKillAndFaults(t, backend) })
	}
}

// chaosKillAndFaults kills runs at random moments against a hostile API (and, on s3, a faulty store),
// then compares the warehouse with a clean run's and the lake with its manifests.
func chaosKillAndFaults(t *testing.T, backend string) {
	zero := time.Duration(0)
	clean, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	defer clean.Close()
	cleanDir := t.TempDir()
	began := time.Now()
	if _, err := child(t, clean, cleanDir, 0); err != nil {
		t.Fatalf("fault-free run: %v", err)
	}
	took := time.Since(began)
	want := fingerprint(t, filepath.Join(cleanDir, "wh.duckdb"))

	hostile, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.05, TokenTTL: time.Second, RetryAfter: &zero,
		Faults: sandbox.Faults{RateLimited: 0.1, Unavailable: 0.1, ServerError: 0.1, Reset: 0.1, Truncate: 0.1, TokenExpiry: 0.1}})
	if err != nil {
		t.Fatal(err)
	}
	defer hostile.Close()
	dir := t.TempDir()
	// One PUT in thirty fails (each costs the SDK's backoff, ~0.5 s), one GET in a hundred stalls.
	env, openLake, store := chaosLake(t, backend, dir, s3test.Faults{FailPutEvery: 30, StallGetEvery: 100})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, attempts := 0, 6
	if backend == "s3" {
		attempts = 3 // each run on the loopback S3 costs ~3x a directory's under the race detector
	}
	for attempt := 0; attempt < attempts; attempt++ {
		// Kill anywhere from process start-up to past a clean run's length (faults make runs longer).
		exited, err := child(t, hostile, dir, time.Duration(float64(took)*(0.1+1.4*rng.Float64())), env...)
		if exited {
			if err != nil {
				t.Fatalf("run %d: %v", attempt, err)
			}
			continue
		}
		kills++
	}
	if _, err := child(t, hostile, dir, 0, env...); err != nil {
		t.Fatalf("final run: %v", err)
	}
	if kills == 0 {
		t.Log("no run was killed mid-way (every run finished within its delay)")
	}
	got := fingerprint(t, filepath.Join(dir, "wh.duckdb"))
	for tb, w := range want {
		if got[tb] != w {
			t.Errorf("%s: %s after chaos, %s after a clean run", tb, got[tb], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d tables after chaos, %d after a clean run", len(got), len(want))
	}
	if hostile.Stats.Faults.Load() < 20 {
		t.Errorf("only %d faults were injected; the test proves little", hostile.Stats.Faults.Load())
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("unfinished file left: %s", p)
		}
		return nil
	})
	st := openLake()
	if _, problems, err := lake.Verify(t.Context(), st); err != nil || len(problems) > 0 {
		t.Errorf("verify after chaos: %v %v", problems, err)
	}
	// Killed runs' evidence and PDFs were removed; what is left is exactly what the manifests list.
	ms, err := lake.ReadManifests(t.Context(), st)
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, m := range ms {
		for _, e := range append(m.Evidence, m.PDFs...) {
			listed[e.Path] = true
		}
	}
	stored := 0
	for _, sub := range []string{lake.EvidenceDir, lake.PDFDir} {
		es, err := st.List(t.Context(), sub)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if stored++; !listed[e.Key] {
				t.Errorf("evidence file no manifest lists: %s", e.Key)
			}
		}
	}
	if stored != len(listed) || stored == 0 {
		t.Errorf("%d evidence files stored, %d listed", stored, len(listed))
	}
	t.Logf("%d kills, %d faults injected; %d tables compared, e.g. signicat_invoice_lines: %s", kills, hostile.Stats.Faults.Load(), len(want), want["signicat_invoice_lines"])
	if store != nil {
		if store.FailedPuts.Load() == 0 || store.StalledGets.Load() == 0 {
			t.Error("no PUT to the store failed or no GET stalled; the test proves little")
		}
		t.Logf("store: %d requests, %d failed PUTs, %d stalled GETs", store.Requests.Load(), store.FailedPuts.Load(), store.StalledGets.Load())
	}
}

// A run that dies after committing its manifest (and moving its watermarks) but before its load
// finished is loaded by the next run, so the rows it fetched are not skipped by the new watermark.
func TestRunInterruptedBeforeLoadIsLoadedNext(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, nil)
	good := cfg.Warehouse
	cfg.Warehouse = t.TempDir() // a directory: DuckDB cannot open it, so the load fails after the manifest
	if _, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries}); err == nil {
		t.Fatal("the load into a directory succeeded")
	}
	cfg.Warehouse = good
	second := run(t, cfg)
	if rows := second.Manifest.Streams[0].Rows; rows >= int64(srv.Data().SignicatInvoices) {
		t.Fatalf("the second run fetched %d invoices: the watermark did not move", rows)
	}
	if n := scalar[int](t, query(t, cfg), "SELECT count(*) FROM signicat_invoices"); n != 1+srv.Data().SignicatInvoices {
		t.Errorf("%d invoices after recovery, want %d", n, 1+srv.Data().SignicatInvoices)
	}
}

// A kill while DuckDB creates the warehouse leaves a file that is not a database; the next run sets it
// aside and rebuilds the warehouse from the lake instead of failing every night.
func TestHalfCreatedWarehouseIsRebuiltFromTheLake(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.05}, nil)
	only(cfg, []string{"invoices"}, nil)
	first := run(t, cfg)
	if err := os.Remove(cfg.Warehouse); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.Warehouse, make([]byte, 100), 0o644); err != nil {
		t.Fatal(err)
	}
	second := run(t, cfg)
	db := query(t, cfg)
	if n := scalar[int](t, db, "SELECT count(*) FROM _ledgerlake_runs"); n != 2 {
		t.Errorf("%d runs in the rebuilt warehouse, want both", n)
	}
	want := first.Manifest.Streams[0].Rows
	if n := scalar[int64](t, db, "SELECT count(*) FROM signicat_invoices"); n != want || second.Manifest.Streams[0].Rows >= want {
		t.Errorf("%d invoices after the rebuild, want %d", n, want)
	}
	aside, _ := filepath.Glob(cfg.Warehouse + ".invalid-*")
	if len(aside) != 1 {
		t.Errorf("the broken file was not set aside: %v", aside)
	}
}

// Credentials never reach logs, errors, manifests, Parquet files or the warehouse: a full sync under
// faults, then every byte written is scanned for them (and for the Basic header that carries them).
func TestSecretsNeverLeakIntoOutputs(t *testing.T) {
	t.Parallel()
	_, cfg := setup(t, sandbox.Options{Scale: 0.02, Faults: sandbox.Faults{ServerError: 0.05, TokenExpiry: 0.05}}, nil)
	cfg.Sources.GSAPI.Datatables = []config.Datatable{{Table: "ctransactiondata", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 100}}
	var logs strings.Builder
	res, err := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	// A failing stream's error text is output too.
	cfg.Sources.GSAPI.Password = config.Secret(sandbox.GSAPIPassword + "-wrong")
	bad, _ := Run(context.Background(), Options{Config: cfg, HTTP: fastRetries, Streams: []string{"gsapi_users"}})
	var texts []string
	for _, r := range append(res.Manifest.Streams, bad.Manifest.Streams...) {
		texts = append(texts, r.Error)
	}
	secrets := []string{sandbox.ClientSecret, sandbox.GSAPIPassword,
		base64.StdEncoding.EncodeToString([]byte(sandbox.GSAPIUser + ":" + sandbox.GSAPIPassword))}
	scan := func(where string, b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains a credential (%q…)", where, s[:4])
			}
		}
	}
	scan("logs", []byte(logs.String()))
	scan("stream errors", []byte(strings.Join(texts, "\n")))
	files := 0
	for _, root := range []string{cfg.OutputDir, filepath.Dir(cfg.Warehouse)} {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			files++
			if strings.HasSuffix(p, ".zst") {
				// Evidence bodies are compressed: scan what the API sent.
				dec, _ := zstd.NewReader(nil)
				raw, err := dec.DecodeAll(b, nil)
				dec.Close()
				if err != nil {
					return err
				}
				b = raw
			}
			scan(p, b)
			return nil
		})
	}
	if files < 20 {
		t.Fatalf("only %d files scanned", files)
	}
}

const resumePipeline = `
output_dir: %[1]s/lake
warehouse: %[1]s/wh.duckdb
per_host_concurrency: 4
sources:
  signicat:
    base_url: ${LEDGERLAKE_SANDBOX_URL}/account-management
    token_url: ${LEDGERLAKE_SANDBOX_URL}/auth/open/connect/token
    client_id: ${SIGNICAT_CLIENT_ID}
    client_secret: ${SIGNICAT_CLIENT_SECRET}
    organization_id: o-p-0TgcUq7CylltM7OkwB4t
    since: 2019-01-01
    pdfs: true
    streams: [organizations, invoices, invoice_lines, invoice_pdfs]
`

// A run killed -9 in the middle of the per-invoice streams resumes as the same run: the streams that
// had finished are not fetched again, invoice details and PDFs continue after the last checkpoint, and
// the warehouse equals a run that was never killed.
func TestKilledRunResumesFromItsCheckpoints(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { t.Parallel(); killedRunResumes(t, backend) })
	}
}

func killedRunResumes(t *testing.T, backend string) {
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.2, Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	every := "LEDGERLAKE_CHECKPOINT_EVERY=50ms"
	cleanDir := t.TempDir()
	before := srv.Stats.Requests.Load()
	if _, err := childWhen(t, srv, cleanDir, resumePipeline, func() bool { return false }, 0, every); err != nil {
		t.Fatalf("uninterrupted run: %v", err)
	}
	full := srv.Stats.Requests.Load() - before
	want := fingerprint(t, filepath.Join(cleanDir, "wh.duckdb"))

	dir := t.TempDir()
	env, openLake, _ := chaosLake(t, backend, dir, s3test.Faults{}) // the chaos test has the store's faults
	st := openLake()
	// Kill once both per-invoice streams have checkpointed a good part of their work.
	progress := func() (lines, pdfs int) {
		es, _ := st.List(t.Context(), lake.CheckpointDir)
		for _, c := range []struct {
			table string
			n     *int
		}{{"signicat_invoice_lines", &lines}, {"signicat_invoice_pdfs", &pdfs}} {
			for _, e := range es {
				if path.Base(e.Key) != c.table+".json" {
					continue
				}
				var ck streamCheckpoint
				if b, err := st.ReadFile(t.Context(), e.Key); err == nil && json.Unmarshal(b, &ck) == nil {
					*c.n = len(ck.Done)
				}
			}
		}
		return
	}
	invoices := srv.Data().SignicatInvoices
	before = srv.Stats.Requests.Load()
	exited, err := childWhen(t, srv, dir, resumePipeline, func() bool {
		l, p := progress()
		return l > invoices/4 && p > invoices/4
	}, 0, append(env, every)...)
	if exited {
		t.Fatalf("the run finished (%v) before the kill: the test proves nothing", err)
	}
	killedAt := srv.Stats.Requests.Load() - before
	lines, pdfs := progress()
	before = srv.Stats.Requests.Load()
	if _, err := childWhen(t, srv, dir, resumePipeline, func() bool { return false }, 0, append(env, every)...); err != nil {
		t.Fatalf("resumed run: %v", err)
	}
	resumed := srv.Stats.Requests.Load() - before

	if got := fingerprint(t, filepath.Join(dir, "wh.duckdb")); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after kill and resume:\n%v\nuninterrupted:\n%v", got, want)
	}
	ms, err := lake.ReadManifests(t.Context(), st)
	if err != nil || len(ms) != 1 {
		t.Fatalf("%d manifests (%v): the resumed run must commit as the one killed run", len(ms), err)
	}
	resumedStreams := 0
	for _, s := range ms[0].Streams {
		if s.Resumed {
			resumedStreams++
		}
		t.Logf("%s: resumed %v, %d requests, %d rows", s.Table, s.Resumed, s.Requests, s.Rows)
	}
	// The second attempt skipped what was checkpointed: at least the done details and PDFs.
	if resumed > full-int64(lines+pdfs) || resumedStreams < 2 {
		t.Errorf("resumed attempt made %d requests (uninterrupted %d, killed one %d, %d details + %d PDFs checkpointed); %d streams resumed",
			resumed, full, killedAt, lines, pdfs, resumedStreams)
	}
	if left, err := st.List(t.Context(), lake.CheckpointDir+"/"+ms[0].RunID); len(left) > 0 || err != nil {
		t.Errorf("the committed run's checkpoints are still there: %v %v", left, err)
	}
	if _, problems, err := lake.Verify(t.Context(), st); err != nil || len(problems) > 0 {
		t.Errorf("verify: %v %v", problems, err)
	}
	t.Logf("uninterrupted: %d requests; killed after %d with %d details and %d PDFs checkpointed; resumed: %d requests", full, killedAt, lines, pdfs, resumed)
}
