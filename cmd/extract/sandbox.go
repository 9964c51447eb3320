package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/sandbox"
)

func sandboxCmd(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("sandbox", "sandbox [--addr 127.0.0.1:8080] [--scale 1] [--latency 20ms] [--faults all=0.1]",
		"Serve simulated Signicat and GSAPI endpoints for tests, benchmarks and trying things by hand.\n"+
			"Both APIs share one address under their real path prefixes. Credentials (public test values):\n"+
			"  Signicat: client_id "+sandbox.ClientID+", client_secret "+sandbox.ClientSecret+", organisation "+sandbox.OrganizationID+"\n"+
			"  GSAPI:    user "+sandbox.GSAPIUser+", password "+sandbox.GSAPIPassword+" (or JWT "+sandbox.GSAPIJWT+")", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	scale := fs.Float64("scale", 1, "data size: 1 = thousands of rows in the large streams; 100 = hundreds of thousands")
	seed := fs.Uint64("seed", 1, "data generator seed (same seed and scale, same data)")
	latency := fs.Duration("latency", 0, "added to every request, e.g. 20ms")
	rateLimit := fs.Float64("rate", 0, "requests per second per API before 429 + Retry-After (0 = unlimited)")
	conc := fs.Int("concurrency", 0, "requests in flight per API before 429 + Retry-After: 1 (0 = unlimited)")
	quiet := fs.Bool("quiet-limit", false, "the --concurrency limit's 429s carry no Retry-After, as some gateways' do")
	quota := fs.String("quota", "", "requests per API per fixed window, announced in X-Rate-Limit-* headers as GSAPI's reference\n"+
		"shows (ASP.NET AspNetCoreRateLimit), past it 429 + Retry-After until the window ends: e.g. 150/1m")
	faults := fs.String("faults", "", "fault rates: 429=0.05,503=0.02,500=0.02,reset=0.01,truncate=0.01,expire=0.01 or all=0.1")
	ttl := fs.Duration("token-ttl", 0, "token lifetime (default: Signicat 600s, GSAPI 1440m sliding)")
	ignoreSort := fs.Bool("ignore-sortorder", false, "datatable/list ignores sortorder: every page is page 1")
	tenant := fs.String("tenant", "a", "GSAPI tenant shape: a; b (the same facts under other field names and shapes: PascalCase money,\n"+
		"fields that appear or change type later, empty dates, an accounting journal by account and cost centre); or c (Finnish\n"+
		"names, money nested in objects, no net amount on the header, the currency only on the header: try extract fields --suggest)")
	repeat := fs.Int("repeat-organizations", 0, "GSAPI organizations/list ends with its first N organisations again (a data-quality fault the key tests catch)")
	rev := fs.String("signicat-revision", "", "which published Signicat reference revision to follow: a or b (default: a with tenant b, else b)")
	var modes strings.Builder
	for _, m := range sandbox.HostileModes() {
		fmt.Fprintf(&modes, "\n  %-17s %s", m[0], m[1])
	}
	hostile := fs.String("hostile", "", "misbehave one way, as a broken or hostile server would:"+modes.String())
	hostileBytes := fs.Int64("hostile-bytes", sandbox.DefaultHostileBytes, "size of the huge-* modes' answers, in bytes")
	if code := parseFlags(fs, args); code >= 0 {
		return code
	}
	quotaN, quotaPeriod, err := parseQuota(*quota)
	if err != nil {
		fmt.Fprintln(stderr, "extract sandbox: --quota:", err)
		return exitUsage
	}
	f, err := sandbox.ParseFaults(*faults)
	if err != nil {
		fmt.Fprintln(stderr, "extract sandbox: --faults:", err)
		return exitUsage
	}
	if *rev != "" && *rev != "a" && *rev != "b" {
		fmt.Fprintln(stderr, "extract sandbox: --signicat-revision must be a or b")
		return exitUsage
	}
	if !slices.Contains(sandbox.Tenants, *tenant) {
		fmt.Fprintln(stderr, "extract sandbox: --tenant must be a, b or c")
		return exitUsage
	}
	if *hostile != "" && !slices.ContainsFunc(sandbox.HostileModes(), func(m [2]string) bool { return m[0] == *hostile }) {
		fmt.Fprintf(stderr, "extract sandbox: --hostile %q is not a mode (see --help)\n", *hostile)
		return exitUsage
	}
	srv, err := sandbox.Start(*addr, sandbox.Options{Seed: *seed, Scale: *scale, Latency: *latency, RatePerSec: *rateLimit,
		Concurrency: *conc, QuietLimit: *quiet, Quota: quotaN, QuotaPeriod: quotaPeriod, Faults: f, TokenTTL: *ttl, IgnoreSortorder: *ignoreSort, SignicatRevision: *rev, Tenant: *tenant, RepeatedOrganizations: *repeat,
		Hostile: *hostile, HostileBytes: *hostileBytes})
	if err != nil {
		fmt.Fprintln(stderr, "extract sandbox:", err)
		return exitFailed
	}
	d := srv.Data()
	fmt.Fprintf(stdout, "sandbox serving on %s (scale %g, seed %d, tenant %s)\n  Signicat: %s (token %s)\n  GSAPI:    %s\n",
		srv.URL, *scale, *seed, *tenant, srv.SignicatBaseURL(), srv.SignicatTokenURL(), srv.GSAPIBaseURL())
	fmt.Fprintf(stdout, "  data: %d Signicat accounts (+%d soft-deleted), %d invoices; %d GSAPI invoices, %d ctransactiondata rows\n",
		d.SignicatAccounts+2, d.SignicatDeleted, d.SignicatInvoices+1, d.GSInvoices, d.GSTransactions)
	fmt.Fprintf(stdout, "Point a pipeline at it with LEDGERLAKE_SANDBOX_URL=%s (see pipelines/demo.yaml). Ctrl-C stops.\n", srv.URL)
	<-ctx.Done()
	start := time.Now()
	_ = srv.Close()
	fmt.Fprintf(stdout, "sandbox stopped after %d requests (%.1fs to drain)\n", srv.Stats.Requests.Load(), time.Since(start).Seconds())
	return exitOK
}

// parseQuota reads --quota's N/period ("150/1m"); "" is no quota.
func parseQuota(s string) (int, time.Duration, error) {
	if s == "" {
		return 0, 0, nil
	}
	n, period, ok := strings.Cut(s, "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 {
		return 0, 0, fmt.Errorf("%q is not requests/period, e.g. 150/1m", s)
	}
	d, err := time.ParseDuration(period)
	if err != nil || d < time.Second {
		return 0, 0, fmt.Errorf("%q: the period must be a duration of a second or more, e.g. 1m", s)
	}
	return count, d, nil
}
