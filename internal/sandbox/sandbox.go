// Package sandbox simulates the Signicat Account Management API and the Good Sign GSAPI, faithful to
// ../shared/spec: the same paths, authentication flows, paging, quirks and published example records,
// plus deterministic generated data at any scale and knobs for latency, rate limits and faults.
//
// Both APIs are served by one handler under their real path prefixes (/account-management,
// /auth/open/connect/token, /api/interface/gsapi), so a base URL taken from the sandbox differs from the
// real one only in scheme and host. Rate limits and concurrency limits are kept per API, as the two real
// services are separate hosts.
package sandbox

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Path prefixes of the two simulated APIs, as on the real hosts.
const (
	SignicatPrefix = "/account-management"
	SignicatToken  = "/auth/open/connect/token"
	GSAPIPrefix    = "/api/interface/gsapi"
)

// Sandbox credentials. They are public test values: the sandbox accepts nothing else.
const (
	ClientID       = "org-sandbox-client"
	ClientSecret   = "sandbox-secret"
	OrganizationID = "o-p-0TgcUq7CylltM7OkwB4t"
	GSAPIUser      = "apidemouser"
	GSAPIPassword  = "apidemo-password"
	GSAPIJWT       = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGlkZW1vdXNlciJ9.sandbox"
)

// Faults are the probabilities (0..1) of each injected failure, drawn per request.
type Faults struct {
	RateLimited float64 // 429 with Retry-After
	Unavailable float64 // 503 with Retry-After
	ServerError float64 // 500 or 502 without Retry-After
	Reset       float64 // TCP connection reset before any response
	Truncate    float64 // a 200 whose body stops half-way (connection closed)
	TokenExpiry float64 // the presented token is revoked and the request answered 401
}

// ParseFaults reads a fault list such as "429=0.05,503=0.02,500=0.02,reset=0.01,truncate=0.01,expire=0.01"
// or "all=0.1" (every kind at that rate).
func ParseFaults(s string) (Faults, error) {
	var f Faults
	if strings.TrimSpace(s) == "" {
		return f, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return f, fmt.Errorf("fault %q: want kind=probability", part)
		}
		p, err := strconv.ParseFloat(val, 64)
		if err != nil || p < 0 || p > 1 {
			return f, fmt.Errorf("fault %q: probability must be a number from 0 to 1", part)
		}
		switch name {
		case "429":
			f.RateLimited = p
		case "503":
			f.Unavailable = p
		case "500", "5xx":
			f.ServerError = p
		case "reset":
			f.Reset = p
		case "truncate":
			f.Truncate = p
		case "expire":
			f.TokenExpiry = p
		case "all":
			f = Faults{p, p, p, p, p, p}
		default:
			return f, fmt.Errorf("fault %q: unknown kind (429, 503, 500, reset, truncate, expire, all)", name)
		}
	}
	return f, nil
}

// Options configure a Sandbox. The zero value serves scale-1 data with no latency, limits or faults.
type Options struct {
	Seed  uint64  // data generator seed
	Scale float64 // 1 = thousands of rows in the large streams; 0 means 1
	// Until ends the generated history (exclusive). Zero means DefaultUntil, a fixed date, so that the
	// same seed and scale give the same data on any day.
	Until time.Time
	// Now is the sandbox's clock for defaults such as datasync's "current month"; zero means time.Now.
	Now func() time.Time

	Latency     time.Duration // added to every request
	RatePerSec  float64       // per-API request rate; above it requests get 429 + Retry-After (0 = unlimited)
	Burst       int           // token bucket size for RatePerSec (0 = max(1, rate))
	Concurrency int           // per-API requests in flight; above it requests get 429 (0 = unlimited)
	// QuietLimit makes Concurrency's 429s carry no Retry-After (by default they ask for 1 s), as an
	// API gateway's in-flight limit may: the client then retries the request alone, pausing nothing.
	QuietLimit bool
	// Quota is per-API requests allowed in each QuotaPeriod (0 = none), kept and announced as GSAPI's
	// published answer shows (see quotaWindow).
	Quota       int
	QuotaPeriod time.Duration
	TokenTTL    time.Duration // Signicat expires_in and GSAPI sliding token lifetime (0 = 600 s / 1440 min)
	Faults      Faults
	// RetryAfter is what injected 429/503 faults ask clients to wait (default 1 s; 0 sends "0", which
	// keeps chaos tests fast while still exercising the header).
	RetryAfter *time.Duration
	// IgnoreSortorder makes datatable/list ignore sortorder as if it were absent: every page is page 1.
	IgnoreSortorder bool
	// RepeatedOrganizations makes organizations/list end with its first N generated organisations again,
	// as a list read while rows move can: a data-quality fault that the key tests must catch, and the
	// pipeline must keep (every row, reported), never collapse.
	RepeatedOrganizations int
	// SignicatRevision selects which published reference revision the account payloads follow: "a" or "b"
	// ("": a for tenant b, else b).
	SignicatRevision string
	// Tenant selects the shape of GSAPI's tenant-defined exports (TenantA, the default, TenantB or TenantC; see
	// tenant.go): the same facts under other field names and shapes.
	Tenant string
	// Hostile is a way to misbehave (see HostileModes; Start applies it, SetHostile changes it), and
	// HostileBytes the size of the huge-* modes' answers (DefaultHostileBytes when 0).
	Hostile      string
	HostileBytes int64
}

// DefaultUntil is the fixed end of generated history when Options.Until is zero.
var DefaultUntil = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Stats counts what the sandbox served, for tests and benchmarks.
type Stats struct {
	Requests      atomic.Int64
	Faults        atomic.Int64
	RateLimited   atomic.Int64 // 429s from the rate or concurrency limit (not injected ones)
	Unauthorized  atomic.Int64
	TokensIssued  atomic.Int64
	MaxConcurrent atomic.Int64
	// Busy is the nanoseconds the requests admitted within the limits (not refused by them) spent in
	// the sandbox, from arrival to the handler's return, summed. At most Concurrency of them are in
	// at once, so Busy ÷ Concurrency is the least time any client could have taken for them at the
	// service times this sandbox gave (on a machine shared with the client, above its Latency).
	Busy atomic.Int64
}

// Sandbox is an http.Handler serving both simulated APIs.
type Sandbox struct {
	opts  Options
	data  *Dataset
	Stats Stats

	mu  sync.Mutex
	rng *rand.Rand

	signicatTokens *tokenStore
	gsapiTokens    *tokenStore
	limits         map[string]*apiLimit
	mux            *http.ServeMux
	hostile        atomic.Pointer[Hostility]
}

type apiLimit struct {
	limiter  *rate.Limiter
	quota    *quotaWindow
	inflight atomic.Int64
}

// New builds a sandbox with its dataset.
func New(opts Options) *Sandbox {
	if opts.Scale == 0 {
		opts.Scale = 1
	}
	if opts.Until.IsZero() {
		opts.Until = DefaultUntil
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Tenant == "" {
		opts.Tenant = TenantA
	}
	if opts.SignicatRevision == "" {
		// Tenant b is the other published shape of Signicat's accounts too.
		opts.SignicatRevision = map[bool]string{true: "a", false: "b"}[opts.Tenant == TenantB]
	}
	s := &Sandbox{
		opts:   opts,
		data:   NewDataset(opts.Seed, opts.Scale, opts.Until),
		rng:    rand.New(rand.NewPCG(opts.Seed, 0x5eed)),
		limits: map[string]*apiLimit{},
	}
	signicatTTL, gsapiTTL := 600*time.Second, 1440*time.Minute
	if opts.TokenTTL > 0 {
		signicatTTL, gsapiTTL = opts.TokenTTL, opts.TokenTTL
	}
	s.signicatTokens = newTokenStore(signicatTTL, false)
	s.gsapiTokens = newTokenStore(gsapiTTL, true)
	for _, api := range []string{"signicat", "gsapi"} {
		l := &apiLimit{}
		if opts.RatePerSec > 0 {
			burst := opts.Burst
			if burst <= 0 {
				burst = max(1, int(opts.RatePerSec))
			}
			l.limiter = rate.NewLimiter(rate.Limit(opts.RatePerSec), burst)
		}
		if opts.Quota > 0 {
			l.quota = &quotaWindow{limit: opts.Quota, period: cmp.Or(opts.QuotaPeriod, time.Minute)}
		}
		s.limits[api] = l
	}
	s.mux = http.NewServeMux()
	s.routeSignicat(s.mux)
	s.routeGSAPI(s.mux)
	return s
}

// Data is the dataset the sandbox serves; tests use it to compute expected counts and sums.
func (s *Sandbox) Data() *Dataset { return s.data }

// ServeHTTP applies latency, limits and faults, then routes to the API handlers.
func (s *Sandbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.Stats.Requests.Add(1)
	arrived := time.Now()
	api := "gsapi"
	if strings.HasPrefix(r.URL.Path, SignicatPrefix) || r.URL.Path == SignicatToken {
		api = "signicat"
	}
	// A request is in flight from when it arrives, its latency included: a server that allows 16 at
	// once counts those it is still working on.
	lim := s.limits[api]
	n := lim.inflight.Add(1)
	defer lim.inflight.Add(-1)
	if s.opts.Latency > 0 {
		t := time.NewTimer(s.opts.Latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	for {
		m := s.Stats.MaxConcurrent.Load()
		if n <= m || s.Stats.MaxConcurrent.CompareAndSwap(m, n) {
			break
		}
	}
	if s.opts.Concurrency > 0 && n > int64(s.opts.Concurrency) {
		s.Stats.RateLimited.Add(1)
		if s.opts.QuietLimit {
			writeAPIError(w, api, http.StatusTooManyRequests, "Too many requests")
		} else {
			s.tooMany(w, api, time.Second)
		}
		return
	}
	if lim.limiter != nil {
		res := lim.limiter.Reserve()
		if d := res.Delay(); d > 0 {
			res.Cancel()
			s.Stats.RateLimited.Add(1)
			s.tooMany(w, api, d)
			return
		}
	}
	if lim.quota != nil && lim.quota.serve(w, time.Now()) {
		s.Stats.RateLimited.Add(1)
		return
	}
	defer func() { s.Stats.Busy.Add(int64(time.Since(arrived))) }()
	if h := s.hostile.Load(); h != nil && h.serve(w, r) {
		return
	}
	if s.injectFault(w, r, api) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

func (s *Sandbox) roll(p float64) bool {
	if p <= 0 {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.Float64() < p
}

// injectFault answers the request with a drawn fault and reports whether it did. Truncation is applied
// later, by wrapping the writer, so that a real partial body of the real response is sent.
func (s *Sandbox) injectFault(w http.ResponseWriter, r *http.Request, api string) bool {
	f := s.opts.Faults
	switch {
	case s.roll(f.Reset):
		s.Stats.Faults.Add(1)
		resetConnection(w)
		return true
	case s.roll(f.RateLimited):
		s.Stats.Faults.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(s.faultRetryAfter()))
		writeAPIError(w, api, http.StatusTooManyRequests, "Too many requests")
		return true
	case s.roll(f.Unavailable):
		s.Stats.Faults.Add(1)
		w.Header().Set("Retry-After", strconv.Itoa(s.faultRetryAfter()))
		writeAPIError(w, api, http.StatusServiceUnavailable, "Service temporarily unavailable")
		return true
	case s.roll(f.ServerError):
		s.Stats.Faults.Add(1)
		code := http.StatusInternalServerError
		if s.intn(2) == 1 {
			code = http.StatusBadGateway
		}
		writeAPIError(w, api, code, "Internal server error")
		return true
	case s.roll(f.TokenExpiry):
		// Revoke whatever token was presented; the auth check in the handler then answers 401.
		s.Stats.Faults.Add(1)
		s.signicatTokens.revoke(bearer(r))
		s.gsapiTokens.revoke(vompToken(r))
	}
	if s.roll(f.Truncate) {
		s.Stats.Faults.Add(1)
		tw := &truncatingWriter{ResponseWriter: w, limit: 64 + s.intn(512)}
		defer tw.abort()
		s.mux.ServeHTTP(tw, r)
		return true
	}
	return false
}

func (s *Sandbox) faultRetryAfter() int {
	if s.opts.RetryAfter != nil {
		return int(*s.opts.RetryAfter / time.Second)
	}
	return 1 + s.intn(2)
}

func (s *Sandbox) intn(n int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rng.IntN(n)
}

func (s *Sandbox) tooMany(w http.ResponseWriter, api string, d time.Duration) {
	secs := int((d + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(1, secs)))
	writeAPIError(w, api, http.StatusTooManyRequests, "Too many requests")
}

// writeAPIError answers in the error shape of the API: RFC 7807-style problem JSON for Signicat,
// {"rettext": …} for GSAPI.
func writeAPIError(w http.ResponseWriter, api string, status int, msg string) {
	if api == "signicat" {
		writeProblem(w, status, "", msg)
		return
	}
	writeJSON(w, status, map[string]string{"rettext": msg})
}

// resetConnection closes the TCP connection with SO_LINGER 0, so the client sees a reset.
func resetConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// truncatingWriter passes through the first limit body bytes of a response, then drops the connection,
// as a server or proxy dying mid-response does. It declares no Content-Length, so the client sees a
// chunked body that never terminates: an unexpected EOF, never a clean short document.
type truncatingWriter struct {
	http.ResponseWriter
	limit   int
	written int
	cut     bool
}

func (t *truncatingWriter) Write(p []byte) (int, error) {
	if t.cut {
		return 0, errTruncated
	}
	if t.written+len(p) > t.limit {
		p = p[:max(0, t.limit-t.written)]
		t.cut = true
	}
	t.ResponseWriter.Header().Del("Content-Length")
	n, err := t.ResponseWriter.Write(p)
	t.written += n
	if t.cut {
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		return n, errTruncated
	}
	return n, err
}

func (t *truncatingWriter) abort() {
	if !t.cut {
		// The body was shorter than the limit: cut it anyway so that the fault is never a no-op.
		if f, ok := t.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
	}
	panic(http.ErrAbortHandler)
}

var errTruncated = errors.New("sandbox: body truncated")

// Server is a running sandbox on a loopback listener.
type Server struct {
	*Sandbox
	URL string // http://127.0.0.1:port
	srv *http.Server
	ln  net.Listener
}

// SignicatBaseURL is the base URL of the simulated Account Management API.
func (s *Server) SignicatBaseURL() string { return s.URL + SignicatPrefix }

// SignicatTokenURL is the simulated OAuth token endpoint.
func (s *Server) SignicatTokenURL() string { return s.URL + SignicatToken }

// GSAPIBaseURL is the base URL of the simulated GSAPI.
func (s *Server) GSAPIBaseURL() string { return s.URL + GSAPIPrefix }

// Start serves a new sandbox on addr ("127.0.0.1:0" picks a free port).
func Start(addr string, opts Options) (*Server, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sandbox: listen on %s: %w", addr, err)
	}
	sb := New(opts)
	if err := sb.SetHostile(opts.Hostile); err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: sb, ReadHeaderTimeout: 10 * time.Second, ErrorLog: quietLog()}
	go func() { _ = srv.Serve(ln) }()
	return &Server{Sandbox: sb, URL: "http://" + ln.Addr().String(), srv: srv, ln: ln}, nil
}

// Close stops the server, waiting briefly for requests in flight.
func (s *Server) Close() error {
	_ = s.SetHostile("")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}
