package pipeline

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// The tests here each start the sandbox misbehaving one way (sandbox.HostileModes) and check what a
// user would: the exit status (Result.OK and the error), the message, the rows, the time taken, and
// that no credential byte is anywhere under the work dir, in the logs or in the errors.

// hostileRun is one run against a hostile sandbox.
type hostileRun struct {
	res  *Result
	err  error
	logs string
	took time.Duration
}

// hostileSetup starts a sandbox in mode, with the demo pipeline narrowed to the named streams of each
// source (nil drops a source) and a short history.
func hostileSetup(t *testing.T, mode string, opts sandbox.Options, signicatStreams, gsapiStreams []string) (*sandbox.Server, *config.Config) {
	t.Helper()
	opts.Hostile = mode
	if opts.Scale == 0 {
		opts.Scale = 0.05
	}
	srv, cfg := setup(t, opts, nil)
	only(cfg, signicatStreams, gsapiStreams)
	if s := cfg.Sources.Signicat; s != nil {
		s.Since = config.Date{Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	}
	if g := cfg.Sources.GSAPI; g != nil {
		g.Since = config.Date{Time: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)}
	}
	return srv, cfg
}

func runHostile(t *testing.T, cfg *config.Config, opts Options) hostileRun {
	t.Helper()
	var logs bytes.Buffer
	opts.Config = cfg
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.HTTP.MaxAttempts == 0 {
		opts.HTTP = fastRetries
	}
	start := time.Now()
	res, err := Run(context.Background(), opts)
	return hostileRun{res: res, err: err, logs: logs.String(), took: time.Since(start)}
}

// stream is the report of table in r's run (failing the test when the run has none).
func (r hostileRun) stream(t *testing.T, table string) lake.StreamReport {
	t.Helper()
	if r.res == nil {
		t.Fatalf("the run returned no result: %v", r.err)
	}
	for _, s := range r.res.Manifest.Streams {
		if s.Table == table {
			return s
		}
	}
	t.Fatalf("no stream %s in %+v", table, r.res.Manifest.Streams)
	return lake.StreamReport{}
}

// ask answers q from the warehouse as it is now, closing it at once: a connection kept open would
// keep reading the generation it opened.
func ask[T any](t *testing.T, cfg *config.Config, q string) T {
	t.Helper()
	wh, err := duckdb.OpenReadOnly(cfg.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	var v T
	if err := wh.DB.QueryRow(q).Scan(&v); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return v
}

// rowsOf counts table's current rows.
func rowsOf(t *testing.T, cfg *config.Config, table string) int64 {
	return ask[int64](t, cfg, "SELECT count(*) FROM "+table)
}

// noSecrets fails if any credential of the sandbox — the configured secrets and every token it issued,
// as is, base64 and URL-encoded — is in the logs, the errors, or any file under the work dir.
func noSecrets(t *testing.T, srv *sandbox.Server, cfg *config.Config, runs ...hostileRun) {
	t.Helper()
	secrets := []string{sandbox.ClientSecret, sandbox.GSAPIPassword, sandbox.GSAPIJWT,
		base64.StdEncoding.EncodeToString([]byte(sandbox.GSAPIUser + ":" + sandbox.GSAPIPassword)), url.QueryEscape(sandbox.ClientSecret)}
	secrets = append(secrets, srv.IssuedTokens()...)
	scan := func(where string, b []byte) {
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s contains a credential (%q…)", where, s[:6])
			}
		}
	}
	for i, r := range runs {
		scan("logs", []byte(r.logs))
		if r.err != nil {
			scan("the run's error", []byte(r.err.Error()))
		}
		if r.res != nil {
			b, _ := json.Marshal(r.res)
			scan("the result of run "+string(rune('1'+i)), b)
		}
	}
	dec, _ := zstd.NewReader(nil)
	defer dec.Close()
	_ = filepath.WalkDir(filepath.Dir(cfg.Warehouse), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if strings.HasSuffix(p, ".zst") {
			if b, err = dec.DecodeAll(b, nil); err != nil {
				return err
			}
		}
		scan(p, b)
		return nil
	})
}

// A token or login endpoint that answers 4xx or 5xx echoing the request it refused: the stream fails
// at once with the server's reason, the credentials masked, after one budget of attempts (not one per
// attempt of the request that needed the token), and no credential byte is written anywhere.
func TestTokenEndpointsEchoingTheRequestLeakNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		mode     string
		signicat bool
		want     string
		requests int64 // what the sandbox saw in all
	}{
		{"token-echo-400", true, "HTTP 400 Bad Request: invalid_client refused", 1},
		{"token-echo-401", true, "HTTP 401 Unauthorized: invalid_client", 1},
		{"token-echo-403", true, "HTTP 403 Forbidden: invalid_client", 1},
		{"token-echo-500", true, "500 Internal Server Error", int64(fastRetries.MaxAttempts)},
		{"welcome-echo-403", false, "403 Forbidden: Access denied for Authorization: Basic REDACTED", 1},
		{"welcome-echo-500", false, "500 Internal Server Error", int64(fastRetries.MaxAttempts)},
	}
	for _, c := range cases {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			var srv *sandbox.Server
			var cfg *config.Config
			table := "signicat_organizations"
			if c.signicat {
				srv, cfg = hostileSetup(t, c.mode, sandbox.Options{}, []string{"organizations"}, nil)
			} else {
				srv, cfg = hostileSetup(t, c.mode, sandbox.Options{}, nil, []string{"country_codes"})
				table = "gsapi_country_codes"
			}
			r := runHostile(t, cfg, Options{})
			rep := r.stream(t, table)
			if rep.Status != "failed" || !strings.Contains(rep.Error, c.want) || r.res.OK() {
				t.Fatalf("status %s, error %q; want failed naming %q", rep.Status, rep.Error, c.want)
			}
			if c.signicat && !strings.Contains(rep.Error, "REDACTED") {
				t.Fatalf("the echoed secret was not masked in the reason: %s", rep.Error)
			}
			if n := srv.Stats.Requests.Load(); n != c.requests {
				t.Fatalf("the sandbox saw %d requests, want %d (a final answer is final; retries are one budget)", n, c.requests)
			}
			noSecrets(t, srv, cfg, r)
		})
	}
}

// A next link or a redirect to another origin is refused: the stream fails naming the host, nothing
// reaches it, the other streams complete.
func TestLinksToAnotherOriginAreNotFollowed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ mode, table string }{{"foreign-next", "signicat_organizations"}, {"foreign-redirect", "gsapi_users"}} {
		t.Run(c.mode, func(t *testing.T) {
			t.Parallel()
			srv, cfg := hostileSetup(t, c.mode, sandbox.Options{}, []string{"organizations", "contacts"}, []string{"users", "country_codes"})
			r := runHostile(t, cfg, Options{})
			h := srv.Hostility()
			catcher := strings.TrimPrefix(h.CatcherURL(), "http://")
			rep := r.stream(t, c.table)
			if rep.Status != "failed" || !strings.Contains(rep.Error, catcher) || h.Elsewhere.Load() != 0 {
				t.Fatalf("status %s, error %q; %d requests reached %s", rep.Status, rep.Error, h.Elsewhere.Load(), catcher)
			}
			for _, other := range []string{"signicat_contacts", "gsapi_country_codes"} {
				if s := r.stream(t, other); s.Status != "ok" || s.Rows == 0 {
					t.Errorf("%s: %s, %d rows", other, s.Status, s.Rows)
				}
			}
			noSecrets(t, srv, cfg, r)
		})
	}
}

// A redirect loop ends after ten redirects, at once, as a final answer.
func TestRedirectLoopEnds(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "redirect-loop", sandbox.Options{}, nil, []string{"country_codes"})
	r := runHostile(t, cfg, Options{})
	if rep := r.stream(t, "gsapi_country_codes"); rep.Status != "failed" || !strings.Contains(rep.Error, "stopped after 10 redirects") || srv.Stats.Requests.Load() > 12 {
		t.Fatalf("status %s, error %q after %d requests", rep.Status, rep.Error, srv.Stats.Requests.Load())
	}
}

// A record dated 9999-12-31 is kept and reported, and the watermark stays at the run's date, so the
// next run still fetches the recent months.
func TestFutureDatedRecordCannotStopLaterRuns(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "future-invoice", sandbox.Options{}, []string{"invoices"}, nil)
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	first := runHostile(t, cfg, Options{Now: func() time.Time { return now }})
	rep := first.stream(t, "signicat_invoices")
	if rep.Status != "ok" || !first.res.OK() || !strings.Contains(strings.Join(rep.Warnings, "\n"), "1 records are dated after the run's start (e.g. 9999-12-31)") {
		t.Fatalf("status %s, warnings %q", rep.Status, rep.Warnings)
	}
	if n := ask[int64](t, cfg, "SELECT count(*) FROM signicat_invoices WHERE invoice_number = 'FUTURE-1'"); n != 1 {
		t.Fatalf("the future-dated invoice was not kept: %d rows", n)
	}
	var st sources.State
	if _, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.StateDir, "signicat_invoices", &st); err != nil || st.Watermark > "2026-12-05" {
		t.Fatalf("watermark %q (%v)", st.Watermark, err)
	}
	before := srv.Stats.Requests.Load()
	second := runHostile(t, cfg, Options{Now: func() time.Time { return now.AddDate(0, 0, 1) }})
	if rep := second.stream(t, "signicat_invoices"); rep.Status != "ok" || rep.Requests < 3 || srv.Stats.Requests.Load()-before < 3 {
		t.Fatalf("the next run fetched %d windows", rep.Requests)
	}
	noSecrets(t, srv, cfg, first, second)
}

// A list that comes back null (or far smaller) after a good run does not replace the current state:
// the stream fails saying how to accept it, the warehouse keeps the previous rows, and
// --accept-shrink takes the new snapshot.
func TestShrinkingSnapshotIsRefusedUntilAccepted(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "", sandbox.Options{}, []string{"organizations"}, []string{"organizations"})
	good := runHostile(t, cfg, Options{})
	if !good.res.OK() {
		t.Fatalf("clean run: %v %+v", good.err, good.res.Failed)
	}
	sig := good.stream(t, "signicat_organizations").Rows
	gs := good.stream(t, "gsapi_organizations").Rows
	if err := srv.SetHostile("null-list"); err != nil {
		t.Fatal(err)
	}
	bad := runHostile(t, cfg, Options{})
	for table, rows := range map[string]int64{"signicat_organizations": sig, "gsapi_organizations": gs} {
		rep := bad.stream(t, table)
		if rep.Status != "failed" || !strings.Contains(rep.Error, "--accept-shrink "+table) || !strings.Contains(rep.Error, "0 rows, down from") {
			t.Fatalf("%s: %s %q", table, rep.Status, rep.Error)
		}
		if n := rowsOf(t, cfg, table); n != rows {
			t.Fatalf("%s holds %d rows after the refused snapshot, want the previous %d", table, n, rows)
		}
	}
	if bad.res.OK() {
		t.Fatal("the run with refused snapshots is OK")
	}
	accepted := runHostile(t, cfg, Options{AcceptShrink: []string{"signicat_organizations", "organizations"}})
	if accepted.err == nil || !strings.Contains(accepted.err.Error(), `"organizations" is ambiguous`) {
		t.Fatalf("an ambiguous stream name was taken: %v", accepted.err)
	}
	accepted = runHostile(t, cfg, Options{AcceptShrink: []string{"signicat_organizations", "gsapi_organizations"}})
	if n := rowsOf(t, cfg, "signicat_organizations"); !accepted.res.OK() || n != 0 {
		t.Fatalf("accepted: %v %+v, %d rows", accepted.err, accepted.res.Failed, n)
	}
	noSecrets(t, srv, cfg, good, bad, accepted)
}

// Windows fetched again that come back null — a server having a bad night — do not erase their rows:
// the windowed stream fails naming the windows and how to accept it, the warehouse keeps the rows,
// and --accept-shrink takes the empty windows.
func TestEmptiedWindowsAreRefusedUntilAccepted(t *testing.T) {
	t.Parallel()
	const table = "gsapi_datasync_invoices"
	srv, cfg := hostileSetup(t, "", sandbox.Options{}, nil, []string{"datasync_invoices"})
	// Days a few weeks after the sandbox's last invoices, so that the look-back fetches windows that
	// hold some; one a run, as run ids (and so which fetch of a window is newer) follow the clock.
	day := func(d int) func() time.Time {
		return func() time.Time { return time.Date(2026, 1, d, 12, 0, 0, 0, time.UTC) }
	}
	good := runHostile(t, cfg, Options{Now: day(20)})
	if !good.res.OK() {
		t.Fatalf("clean run: %v %+v", good.err, good.res.Failed)
	}
	rows := good.stream(t, table).Rows
	if err := srv.SetHostile("null-window"); err != nil {
		t.Fatal(err)
	}
	bad := runHostile(t, cfg, Options{Now: day(21)})
	rep := bad.stream(t, table)
	if rep.Status != "failed" || !strings.Contains(rep.Error, "came back with no rows") || !strings.Contains(rep.Error, "--accept-shrink "+table) {
		t.Fatalf("%s %q", rep.Status, rep.Error)
	}
	if n := rowsOf(t, cfg, table); n != rows {
		t.Fatalf("%s holds %d rows after the refused windows, want the previous %d", table, n, rows)
	}
	accepted := runHostile(t, cfg, Options{Now: day(22), AcceptShrink: []string{table}})
	refetched := accepted.stream(t, table).Windows
	if n := rowsOf(t, cfg, table); !accepted.res.OK() || n >= rows || len(refetched) == 0 {
		t.Fatalf("accepted: %v %+v, %d rows of %d after emptying %d windows", accepted.err, accepted.res.Failed, n, rows, len(refetched))
	}
	noSecrets(t, srv, cfg, good, bad, accepted)
}

// A server that accepts and never answers, or trickles a byte a second, costs stall_timeout, not the
// attempt's five minutes: the request is abandoned, logged and retried, and the run loads every row.
// Not parallel: it allows exactly one retry, and with a 1 s stall timeout a request slowed by a test
// beside it could be abandoned too.
func TestStalledServersCostOnlyTheStallTimeout(t *testing.T) {
	for _, mode := range []string{"hang-once", "trickle-once"} {
		t.Run(mode, func(t *testing.T) {
			srv, cfg := hostileSetup(t, mode, sandbox.Options{}, nil, []string{"country_codes"})
			cfg.StallTimeout = config.Duration(time.Second)
			r := runHostile(t, cfg, Options{})
			rep := r.stream(t, "gsapi_country_codes")
			if rep.Status != "ok" || rep.Rows == 0 || rep.Retries != 1 || r.took > 15*time.Second {
				t.Fatalf("status %s %q, %d rows, %d retries, %v", rep.Status, rep.Error, rep.Rows, rep.Retries, r.took)
			}
			if !strings.Contains(r.logs, "request stalled") || !strings.Contains(r.logs, "gsapi_country_codes") {
				t.Fatalf("the stall is not in the log:\n%s", r.logs)
			}
			noSecrets(t, srv, cfg, r)
		})
	}
}

// A Retry-After of a day fails the stream at once, naming the wait; the others complete.
func TestRetryAfterOfADayFailsTheStreamAtOnce(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "retry-after-day", sandbox.Options{}, nil, []string{"users", "country_codes"})
	r := runHostile(t, cfg, Options{})
	rep := r.stream(t, "gsapi_users")
	if rep.Status != "failed" || !strings.Contains(rep.Error, "asks to wait 24h0m0s (Retry-After), more than max_retry_after (15m0s)") || r.took > 10*time.Second {
		t.Fatalf("status %s %q after %v", rep.Status, rep.Error, r.took)
	}
	if s := r.stream(t, "gsapi_country_codes"); s.Status != "ok" {
		t.Fatalf("country codes: %s %s", s.Status, s.Error)
	}
	noSecrets(t, srv, cfg, r)
}

// A next token that never ends, on pages that repeat the first one, fails at the first repeat, naming
// it (a list whose pages are all new stops at max_pages: see the signicat package's tests).
func TestEndlessPagingStopsAtTheFirstRepeatedPage(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "endless-next", sandbox.Options{}, []string{"contacts"}, nil)
	cfg.MaxPages = 25
	r := runHostile(t, cfg, Options{})
	rep := r.stream(t, "signicat_contacts")
	if rep.Status != "failed" || !strings.Contains(rep.Error, "page 2 is identical to page 1") || rep.Requests > 4 {
		t.Fatalf("status %s %q after %d requests", rep.Status, rep.Error, rep.Requests)
	}
	noSecrets(t, srv, cfg, r)
}

// Answers larger than their caps fail what they belong to with a message naming the cap — the stream
// for a list, a value or a gzip bomb, the one invoice for a PDF — and a list within the cap is read
// from disk, whole.
func TestHugeAnswersMeetTheirCaps(t *testing.T) {
	t.Parallel()
	t.Run("list over max_page_bytes", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "huge-list", sandbox.Options{HostileBytes: 12 << 20}, nil, []string{"organizations"})
		cfg.MaxPageBytes, cfg.MaxValueBytes = 8<<20, 1<<20
		r := runHostile(t, cfg, Options{})
		if rep := r.stream(t, "gsapi_organizations"); rep.Status != "failed" || !strings.Contains(rep.Error, "over the cap of 8.0 MiB") {
			t.Fatalf("status %s %q", rep.Status, rep.Error)
		}
	})
	t.Run("list within max_page_bytes", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "huge-list", sandbox.Options{HostileBytes: 12 << 20}, nil, []string{"organizations"})
		r := runHostile(t, cfg, Options{HTTP: httpOpts(fastRetries, 1<<20)})
		rep := r.stream(t, "gsapi_organizations")
		if rep.Status != "ok" || rep.Rows < 80000 || rep.Bytes < 12<<20 {
			t.Fatalf("status %s %q, %d rows, %d bytes", rep.Status, rep.Error, rep.Rows, rep.Bytes)
		}
		if n := rowsOf(t, cfg, "gsapi_organizations"); n != rep.Rows {
			t.Fatalf("the warehouse holds %d of %d rows", n, rep.Rows)
		}
	})
	t.Run("signicat page read as it arrives", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "huge-page", sandbox.Options{HostileBytes: 12 << 20}, []string{"contacts"}, nil)
		r := runHostile(t, cfg, Options{HTTP: httpOpts(fastRetries, 1<<20)})
		rep := r.stream(t, "signicat_contacts")
		if rep.Status != "ok" || rep.Rows < 100000 || rowsOf(t, cfg, "signicat_contacts") != rep.Rows {
			t.Fatalf("status %s %q, %d rows", rep.Status, rep.Error, rep.Rows)
		}
	})
	t.Run("value over max_value_bytes", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "huge-value", sandbox.Options{HostileBytes: 6 << 20}, nil, []string{"users"})
		cfg.MaxValueBytes = 2 << 20
		r := runHostile(t, cfg, Options{HTTP: httpOpts(fastRetries, 1<<20)})
		if rep := r.stream(t, "gsapi_users"); rep.Status != "failed" || !strings.Contains(rep.Error, "JSON value (max_value_bytes) is over the cap of 2.0 MiB") {
			t.Fatalf("status %s %q", rep.Status, rep.Error)
		}
	})
	t.Run("gzip bomb", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "gzip-bomb", sandbox.Options{HostileBytes: 64 << 20}, nil, []string{"country_codes"})
		cfg.MaxPageBytes, cfg.MaxValueBytes = 16<<20, 1<<20
		r := runHostile(t, cfg, Options{})
		if rep := r.stream(t, "gsapi_country_codes"); rep.Status != "failed" || !strings.Contains(rep.Error, "over the cap of 16.0 MiB") || rep.Requests != 1 {
			t.Fatalf("status %s %q after %d requests", rep.Status, rep.Error, rep.Requests)
		}
	})
	t.Run("total over max_pages", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "huge-total", sandbox.Options{}, nil, []string{"datatable_ctransactiondata"})
		cfg.Sources.GSAPI.Datatables = []config.Datatable{{Table: "ctransactiondata", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 100}}
		r := runHostile(t, cfg, Options{})
		if rep := r.stream(t, "gsapi_datatable_ctransactiondata"); rep.Status != "failed" || !strings.Contains(rep.Error, "more than max_pages (10000)") || rep.Requests != 1 {
			t.Fatalf("status %s %q after %d requests", rep.Status, rep.Error, rep.Requests)
		}
	})
	t.Run("pdf over max_pdf_bytes", func(t *testing.T) {
		t.Parallel()
		srv, cfg := hostileSetup(t, "huge-pdf", sandbox.Options{HostileBytes: 3 << 20}, []string{"invoices", "invoice_pdfs"}, nil)
		cfg.MaxPDFBytes = 1 << 20
		r := runHostile(t, cfg, Options{})
		rep := r.stream(t, "signicat_invoice_pdfs")
		n := srv.Hostility().Picked()
		if rep.Status != "ok" || rep.FailedItems != 1 || rep.Rows == 0 || r.res.OK() || n == "" {
			t.Fatalf("status %s %q, %d failed items, %d rows, picked %q", rep.Status, rep.Error, rep.FailedItems, rep.Rows, n)
		}
		reason := ask[string](t, cfg, "SELECT raw_value FROM _ledgerlake_rejects WHERE table_name = 'signicat_invoice_pdfs' AND key = '"+n+"'")
		if !strings.Contains(reason, "PDF (max_pdf_bytes) is over the cap of 1.0 MiB") {
			t.Fatalf("reject: %q", reason)
		}
	})
}

// httpOpts is opts spilling bodies past mem bytes to disk.
func httpOpts(opts httpclient.Options, mem int64) httpclient.Options {
	opts.MemoryBodyBytes = mem
	return opts
}

// One invoice whose detail and PDF answer 404 does not block its streams: the rest commits, the
// invoice is a reject naming it and the status, the run is not OK, and the next run asks for that
// invoice again — and only it, once the server has it.
func TestOneMissingInvoiceDoesNotBlockItsStreams(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "missing-invoice", sandbox.Options{}, []string{"invoices", "invoice_lines", "invoice_pdfs"}, nil)
	now := time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	first := runHostile(t, cfg, Options{Now: func() time.Time { return now }})
	n := srv.Hostility().Picked()
	for _, table := range []string{"signicat_invoice_lines", "signicat_invoice_pdfs"} {
		rep := first.stream(t, table)
		if rep.Status != "ok" || rep.FailedItems != 1 || rep.Rows == 0 {
			t.Fatalf("%s: %s %q, %d failed, %d rows", table, rep.Status, rep.Error, rep.FailedItems, rep.Rows)
		}
		raw := ask[string](t, cfg, "SELECT raw_value FROM _ledgerlake_rejects WHERE table_name = '"+table+"' AND key = '"+n+"'")
		if !strings.Contains(raw, "404 Not Found") {
			t.Fatalf("%s reject of %s: %q", table, n, raw)
		}
	}
	if first.res.OK() || first.res.Manifest.Status != "partial" {
		t.Fatalf("a run with a missing invoice is %s, OK %v", first.res.Manifest.Status, first.res.OK())
	}
	var st sources.State
	if _, err := lake.ReadJSON(t.Context(), lake.Dir(cfg.OutputDir), lake.StateDir, "signicat_invoice_lines", &st); err != nil || len(st.Pending) != 1 || st.Pending[n] == "" {
		t.Fatalf("pending %v (%v), want %s", st.Pending, err, n)
	}
	if err := srv.SetHostile(""); err != nil {
		t.Fatal(err)
	}
	second := runHostile(t, cfg, Options{Now: func() time.Time { return now }})
	if !second.res.OK() {
		t.Fatalf("second run: %v %+v", second.err, second.res.Manifest.Streams)
	}
	if got := ask[int64](t, cfg, "SELECT count(*) FROM signicat_invoice_lines WHERE invoice_number = '"+n+"'"); got == 0 {
		t.Fatalf("the invoice asked for again has no lines")
	}
	noSecrets(t, srv, cfg, first, second)
}

// Data never decides a path or a request: an invoice numbered ".." is never requested (a reject says
// why), and one dated "/../../xyz-01" lands in invoice_month=invalid inside the lake.
func TestDataNeverDecidesPathsOrRequests(t *testing.T) {
	t.Parallel()
	t.Run("dotdot invoice number", func(t *testing.T) {
		t.Parallel()
		srv, cfg := hostileSetup(t, "dotdot-invoice", sandbox.Options{}, []string{"invoices", "invoice_lines"}, nil)
		r := runHostile(t, cfg, Options{})
		rep := r.stream(t, "signicat_invoice_lines")
		if rep.Status != "ok" || rep.FailedItems != 1 {
			t.Fatalf("status %s %q, %d failed items", rep.Status, rep.Error, rep.FailedItems)
		}
		reason := ask[string](t, cfg, "SELECT raw_value FROM _ledgerlake_rejects WHERE key = '..'")
		if !strings.Contains(reason, `".." cannot be sent as a path segment`) || srv.Hostility().Extra.Load() != 0 {
			t.Fatalf("reject: %q; %d requests for /invoices/..", reason, srv.Hostility().Extra.Load())
		}
		noSecrets(t, srv, cfg, r)
	})
	t.Run("partition from a hostile date", func(t *testing.T) {
		t.Parallel()
		_, cfg := hostileSetup(t, "bad-partition", sandbox.Options{}, []string{"invoices"}, nil)
		r := runHostile(t, cfg, Options{})
		rep := r.stream(t, "signicat_invoices")
		if rep.Status != "ok" || !strings.Contains(strings.Join(rep.Warnings, "\n"), "under invoice_month=invalid") {
			t.Fatalf("status %s, warnings %q", rep.Status, rep.Warnings)
		}
		root, _ := filepath.Abs(cfg.OutputDir)
		invalid := 0
		for _, f := range r.res.Manifest.Files {
			p, _ := filepath.Abs(filepath.Join(cfg.OutputDir, f.Path))
			if !strings.HasPrefix(p, root+string(filepath.Separator)) || strings.Contains(f.Path, "..") {
				t.Fatalf("a file outside the lake: %s", f.Path)
			}
			if strings.Contains(f.Path, "invoice_month=invalid/") {
				invalid++
			}
		}
		if invalid != 1 {
			t.Fatalf("%d files under invoice_month=invalid", invalid)
		}
	})
}

// Bytes that are not UTF-8 and keys given twice are counted in the stream's warnings, not passed over.
func TestDecodingQuirksAreReported(t *testing.T) {
	t.Parallel()
	for mode, want := range map[string]string{
		"invalid-utf8":   "1 strings were not valid UTF-8",
		"duplicate-keys": `objects had a key twice (e.g. "descr_eng")`,
	} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			_, cfg := hostileSetup(t, mode, sandbox.Options{}, nil, []string{"country_codes"})
			r := runHostile(t, cfg, Options{})
			rep := r.stream(t, "gsapi_country_codes")
			if mode == "duplicate-keys" {
				want = fmt.Sprintf("%d %s", rep.Rows, want) // every record has the key twice
			}
			if rep.Status != "ok" || !strings.Contains(strings.Join(rep.Warnings, "\n"), want) {
				t.Fatalf("status %s, warnings %q", rep.Status, rep.Warnings)
			}
		})
	}
}

// An answer that carries the token it was sent is refused, so the token is never stored.
func TestAnswerEchoingTheTokenIsNotStored(t *testing.T) {
	t.Parallel()
	srv, cfg := hostileSetup(t, "token-in-data", sandbox.Options{}, nil, []string{"users", "country_codes"})
	r := runHostile(t, cfg, Options{})
	if rep := r.stream(t, "gsapi_users"); rep.Status != "failed" || !strings.Contains(rep.Error, "echoes it back") {
		t.Fatalf("status %s %q", rep.Status, rep.Error)
	}
	noSecrets(t, srv, cfg, r)
}

// max_run_time ends a run cleanly: what completed is committed and loaded, the rest reported.
// Not parallel: the organizations stream must complete within the 2 s max_run_time, and a test beside it
// on a busy CPU could make it take longer.
func TestMaxRunTimeEndsTheRunCleanly(t *testing.T) {
	srv, cfg := hostileSetup(t, "hang-once", sandbox.Options{}, []string{"organizations"}, []string{"country_codes"})
	cfg.MaxRunTime = config.Duration(2 * time.Second)
	r := runHostile(t, cfg, Options{})
	if r.err == nil || !strings.Contains(r.err.Error(), "max_run_time reached (2s)") || r.took > 10*time.Second {
		t.Fatalf("err %v after %v", r.err, r.took)
	}
	if s := r.stream(t, "signicat_organizations"); s.Status != "ok" || rowsOf(t, cfg, "signicat_organizations") != s.Rows {
		t.Fatalf("the completed stream was not kept: %+v", s)
	}
	// Cut short like an interruption, and called so, saying by what.
	if s := r.stream(t, "gsapi_country_codes"); s.Status != "interrupted" || !strings.Contains(s.Error, "stopped at max_run_time") {
		t.Fatalf("the hung stream: %+v", s)
	}
	noSecrets(t, srv, cfg, r)
}
