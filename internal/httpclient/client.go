// Package httpclient is the HTTP client every source shares: authentication with renewal on 401,
// retries with capped exponential backoff and full jitter for connection errors, truncated bodies, 429 and
// 5xx (not 501), Retry-After honoured for the whole host, per-host concurrency and request-rate limits,
// and errors that name the endpoint and status without leaking credentials.
package httpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/retry"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// Auth authenticates requests for one API.
type Auth interface {
	// Authorize sets the credentials on req and returns the token it used (for Renew).
	Authorize(ctx context.Context, req *http.Request) (token string, err error)
	// Renew replaces token if it is still the current one (another request may have renewed it already).
	Renew(ctx context.Context, token string) error
	// Origin is the only origin (see Origin) these credentials are ever sent to.
	Origin() string
}

// Stats count one stream's traffic; safe for concurrent use.
type Stats struct {
	Name     string // the stream's table name, for request logs
	Requests atomic.Int64
	Retries  atomic.Int64
	Bytes    atomic.Int64
	Renewals atomic.Int64
	// Throttled counts 429 answers (rate limited), which the run history charts beside the retries.
	Throttled atomic.Int64
}

// Options tune a Client. Zero values take the defaults in parentheses.
type Options struct {
	MaxAttempts        int           // attempts per request, the first included (8)
	MinBackoff         time.Duration // first retry wait (250 ms)
	MaxBackoff         time.Duration // cap of the exponential backoff (30 s)
	PerHostConcurrency int           // the most requests in flight per host: the found limit's ceiling (32)
	PerHostRate        float64       // requests per second per host (0 = unlimited)
	AttemptTimeout     time.Duration // one attempt, body included (5 min)
	// StallTimeout abandons an attempt (and retries it) that receives less than stallBytes in this long,
	// before its headers or within its body: a server that accepts and never answers, or trickles (60 s).
	StallTimeout time.Duration
	// MaxRetryAfter is the longest Retry-After honoured (15 min): a server asking for more fails the
	// request at once, naming the wait, instead of pausing an unattended run for a day.
	MaxRetryAfter time.Duration
	// MaxBodyBytes caps a response body (1 GiB); Request.MaxBytes overrides it.
	MaxBodyBytes int64
	// MemoryBodyBytes is the largest body kept in memory (4 MiB); a larger one is spilled to a file in
	// SpoolDir as it arrives, so what a server sends decides disk use, never memory.
	MemoryBodyBytes int64
	Transport       http.RoundTripper
	// SpoolDir holds the temporary files of spilled bodies (the system's temp dir).
	SpoolDir string
	// Observe, when set, is called after every attempt that got an answer (benchmarks keep a request
	// log with it); Body is only valid during the call.
	Observe func(Observation)
	// Logger hears of every wait longer than LongWait, with the stream, the host and the reason.
	Logger *slog.Logger
}

// LongWait is the wait beyond which the client logs what it waits for.
const LongWait = 10 * time.Second

// stallBytes is the least an attempt must receive every StallTimeout to count as making progress.
const stallBytes = 1 << 10

// errorBodyBytes is as much of an error answer's body as is read: an excerpt is all it serves.
const errorBodyBytes = 64 << 10

// Observation is one attempt as the network saw it.
type Observation struct {
	Stream     string // Stats.Name of the request
	Method     string
	URL        string // credentials redacted
	Status     int
	Start, End time.Time // from sending the request to the end of the body
	// Depth is the attempt's place in the longest chain of requests that had to wait for one another
	// (1: needed no earlier answer). Sources mark dependencies with Then.
	Depth int
	Bytes int64 // the body's length
	// Body is the answer's body, valid only during the call.
	Body *spool.Body
}

type depthKey struct{}

// Then marks that what is sent with the returned context needs the answer of a request sent with ctx:
// the next page of a cursor, the detail calls after a listing. It only feeds Observation.Depth.
func Then(ctx context.Context) context.Context {
	return context.WithValue(ctx, depthKey{}, depthOf(ctx)+1)
}

// statsKey holds the Stats that requests under a context count into (WithStats).
type statsKey struct{}

// WithStats makes the requests made under ctx that name no Stats of their own count into st: a stream's
// traffic, without each call of its source passing st on. Logging in to authorise a request is the
// session's traffic, not the stream's, and is not counted.
func WithStats(ctx context.Context, st *Stats) context.Context {
	return context.WithValue(ctx, statsKey{}, st)
}

func depthOf(ctx context.Context) int {
	d, _ := ctx.Value(depthKey{}).(int)
	return d
}

// maxRenewals bounds consecutive 401s answered by renewing the token: a server may expire tokens early
// (or revoke them), so one renewal is not always enough, but endless renewal hides bad credentials.
// Many requests share one token: when it is revoked every request in flight sees a 401, and a busy
// stream (16 concurrent invoice downloads) can see several revocations in a row, hence 12, not 2 or 3.
// Renewals are cheap and shared (one token fetch serves all requests that saw the same stale token).
const maxRenewals = 12

// Client sends requests with auth, limits and retries.
type Client struct {
	opts   Options
	http   *http.Client
	policy retry.Policy // from opts: backoff and the longest Retry-After honoured
	log    *slog.Logger
	mu     sync.Mutex
	hosts  map[string]*host
}

type host struct {
	limit   *hostLimit
	limiter *rate.Limiter
	mu      sync.Mutex
	pause   time.Time // no request to this host before this (Retry-After, or a spent quota)
	// closed is how long the server has closed the host so far (Retry-After answers, a spent quota),
	// overlapping pauses counted once: time in which it forbade any request, which no client could use.
	closed time.Duration
	// quotaLeft is the requests the host's announced quota window still allows sending, until
	// quotaEnd (see quota.go); after quotaEnd nothing is known of it.
	quotaLeft int
	quotaEnd  time.Time
}

// New returns a client with opts.
func New(opts Options) *Client {
	setDefault(&opts.MaxAttempts, 8)
	setDefault(&opts.MinBackoff, 250*time.Millisecond)
	setDefault(&opts.MaxBackoff, 30*time.Second)
	setDefault(&opts.PerHostConcurrency, 32)
	setDefault(&opts.AttemptTimeout, 5*time.Minute)
	setDefault(&opts.StallTimeout, time.Minute)
	setDefault(&opts.MaxRetryAfter, 15*time.Minute)
	setDefault(&opts.MaxBodyBytes, 1<<30)
	setDefault(&opts.MemoryBodyBytes, 4<<20)
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = opts.PerHostConcurrency * 2
		tr = t
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{Transport: tr, Timeout: 0, CheckRedirect: sameOrigin}
	policy := retry.Policy{MinBackoff: opts.MinBackoff, MaxBackoff: opts.MaxBackoff, MaxRetryAfter: opts.MaxRetryAfter}
	return &Client{opts: opts, http: hc, policy: policy, log: log, hosts: map[string]*host{}}
}

func setDefault[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

func (c *Client) host(h string) *host {
	hs, _ := c.meet(h)
	return hs
}

// meet returns h's state, made now (first is true) when the client had not met h.
func (c *Client) meet(h string) (hs *host, first bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if hs := c.hosts[h]; hs != nil {
		return hs, false
	}
	hs = &host{limit: newHostLimit(c.opts.PerHostConcurrency)}
	if c.opts.PerHostRate > 0 {
		hs.limiter = rate.NewLimiter(rate.Limit(c.opts.PerHostRate), max(1, int(c.opts.PerHostRate)))
	}
	c.hosts[h] = hs
	return hs, true
}

// Resume starts host's limit where an earlier run's ended (limit, capped by the ceiling) instead of at
// InitialConcurrency, so a nightly run does not find the limit again: refused says the host refused
// above it, and then no probe past it is made for a quiet period, as within a run. It applies only to a
// host the client has not met yet (by a request or a Resume). A limit not above InitialConcurrency
// changes nothing: a night the host was slow does not make the next run start slower than a fresh one.
func (c *Client) Resume(host string, limit int, refused bool) {
	if limit <= InitialConcurrency {
		return
	}
	if hs, first := c.meet(host); first {
		hs.limit.resume(float64(limit), refused)
	}
}

// Request is one API call.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte // replayed on every attempt
	Auth   Auth   // nil for unauthenticated calls
	Stats  *Stats // may be nil
	// MaxBytes caps this answer's body instead of Options.MaxBodyBytes; What names it in the error
	// ("PDF"; "response body" when empty).
	MaxBytes int64
	What     string
	// Unlimited skips the host's concurrency and rate limits. Logins use it: a login to the same host
	// (GSAPI's /welcome) is awaited by requests that already hold every slot, so it must not queue.
	Unlimited bool
	// NotNull marks an endpoint that never answers the JSON literal null (one the reference says
	// returns an array): such a body is a failed attempt, retried like a cut one (NullError), and never
	// handed on as data. Bodies too large to hold in memory are not checked (a null is 4 bytes).
	NotNull bool
}

// Response is a fully read response with status 2xx. Its Body is the caller's to Close.
type Response struct {
	Status int
	Header http.Header
	Body   *spool.Body
}

// Size is the body's length in bytes.
func (r *Response) Size() int64 { return r.Body.Len() }

// StatusError is a final non-2xx answer: 4xx other than 401/429, or a retryable status after the last
// attempt.
type StatusError struct {
	Method, URL string
	Status      int
	Body        string // excerpt, credentials masked
	whole       string // the body read (up to errorBodyBytes), credentials masked
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// ForeignOriginError refuses to send a request with credentials, or to follow a redirect, to an origin
// other than the API's: a next link or a Location header is the server's to choose, the credentials
// are not.
type ForeignOriginError struct {
	Want, Got string // origins
	Via       string // "redirect" or "request"
}

func (e *ForeignOriginError) Error() string {
	return fmt.Sprintf("refused a %s to %s: only %s is sent credentials or followed (a next link or redirect pointing elsewhere is the server's choice, the credentials are not)", e.Via, e.Got, e.Want)
}

// WaitError is a Retry-After longer than the client honours (retry.WaitError, named here for the
// client's callers).
type WaitError = retry.WaitError

// ErrEcho is an answer that carries a credential this process sent: a server that echoes it back
// must not get it stored in the lake, so the answer is refused.
var ErrEcho = errors.New("the answer contains a credential ledgerlake sent (the server echoes it back); it is not stored")

// errStalled cancels an attempt that made no progress for StallTimeout.
var errStalled = errors.New("stalled")

// Origin is a URL's scheme://host:port, with the scheme's default port made explicit and the host in
// lower case: two URLs share credentials only when their origins are equal.
func Origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// sameOrigin is the redirect policy: follow only within the origin of the first request.
func sameOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return retry.Final(errors.New("stopped after 10 redirects"))
	}
	if want, got := Origin(via[0].URL), Origin(req.URL); want != got {
		return retry.Final(&ForeignOriginError{Want: want, Got: got, Via: "redirect"})
	}
	return nil
}

// Do sends the request, retrying what is worth retrying, and returns the whole body of a 2xx answer.
// No error it returns carries a known credential (package redact).
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	resp, err := c.do(ctx, r)
	return resp, redact.Error(err)
}

func (c *Client) do(ctx context.Context, r Request) (*Response, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	safe := redactURL(u)
	if r.Auth != nil && Origin(u) != r.Auth.Origin() {
		return nil, fmt.Errorf("%s %s: %w", r.Method, safe, &ForeignOriginError{Want: r.Auth.Origin(), Got: Origin(u), Via: "request"})
	}
	hs := c.host(u.Host)
	if r.Stats == nil {
		r.Stats, _ = ctx.Value(statsKey{}).(*Stats)
	}
	if r.Stats == nil {
		r.Stats = &Stats{}
	}
	stats := r.Stats
	rejected := 0 // consecutive 401s: any other answer resets it, so long waits cannot exhaust renewals
	var lastErr error
	for attempt := 1; attempt <= c.opts.MaxAttempts; attempt++ {
		if attempt > 1 {
			stats.Retries.Add(1)
		}
		if err := c.waitHost(ctx, hs, stats, u, pausedWhy); err != nil {
			return nil, err
		}
		resp, token, err := c.attempt(ctx, hs, u, r)
		stats.Requests.Add(1)
		if resp != nil {
			stats.Bytes.Add(resp.Size())
			if resp.Status == http.StatusTooManyRequests {
				stats.Throttled.Add(1)
			}
		}
		if resp == nil || resp.Status != http.StatusUnauthorized {
			rejected = 0
		}
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return nil, ctx.Err()
		}
		v := decide(ctx, c.policy, attempt, r.Method, safe, resp, err, r.Auth != nil && rejected < maxRenewals)
		switch v.action {
		case succeed:
			return resp, nil
		case fail:
			return nil, v.err
		case renew:
			// An expired token: renew it and repeat, without counting it against the retry budget. Tokens
			// refused maxRenewals times in a row mean the credentials are wrong, not expired.
			rejected++
			attempt--
			stats.Renewals.Add(1)
			if err := r.Auth.Renew(WithStats(ctx, nil), token); err != nil {
				return nil, fmt.Errorf("%s %s: renewing credentials after 401: %w", r.Method, safe, err)
			}
			continue
		}
		lastErr = v.err
		if attempt == c.opts.MaxAttempts {
			break
		}
		// A Retry-After paused the host when it arrived (attempt): waiting for the host waits it out
		// from then, not again from now.
		if v.pause {
			if err := c.waitHost(ctx, hs, stats, u, "Retry-After"); err != nil {
				return nil, err
			}
		} else if err := c.sleep(ctx, v.wait, stats, u, "backoff after: "+v.err.Error()); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("gave up after %d attempts: %w", c.opts.MaxAttempts, lastErr)
}

type action int

const (
	succeed action = iota
	again
	renew
	fail
)

// verdict is what to do after one attempt.
type verdict struct {
	action action
	wait   time.Duration // before the next attempt: with pause the whole host's (Retry-After), else the backoff
	pause  bool
	err    error // why the attempt did not succeed
}

// decide applies the retry policy (retry.Policy.Decide) to one attempt's answer or error, after the
// one thing only the client can do: a 401 renews the credentials while canRenew. Errors name the
// request (method and URL, credentials masked); a non-2xx answer is a *StatusError.
func decide(ctx context.Context, p retry.Policy, attempt int, method, safeURL string, resp *Response, err error, canRenew bool) verdict {
	if err == nil && resp.Status == http.StatusUnauthorized && canRenew {
		return verdict{action: renew}
	}
	var a *retry.Answer
	if err != nil {
		err = fmt.Errorf("%s %s: %w", method, safeURL, err)
	} else {
		a = &retry.Answer{Status: resp.Status, RetryAfter: resp.Header.Get("Retry-After")}
		if resp.Status/100 != 2 {
			err = &StatusError{Method: method, URL: safeURL, Status: resp.Status, Body: excerpt(resp.Body), whole: redact.String(string(resp.Body.Mem()))}
		}
	}
	d := p.Decide(ctx, attempt, a, err)
	switch {
	case d.Err == nil:
		return verdict{action: succeed}
	case !d.Retry:
		return verdict{action: fail, err: d.Err}
	}
	return verdict{action: again, wait: d.Wait, pause: d.Asked, err: d.Err}
}

// sleep waits d (cancellable), logging waits longer than LongWait.
func (c *Client) sleep(ctx context.Context, d time.Duration, stats *Stats, u *url.URL, why string) error {
	if d >= LongWait {
		c.log.Warn("waiting before a retry", "stream", stats.Name, "host", u.Host, "seconds", d.Round(time.Second).Seconds(), "reason", why)
	}
	return retry.Wait(ctx, d)
}

// attempt sends once within the host's concurrency and rate limits and reads the whole body.
// Credentials are set after the slot is taken, right before sending, so a short-lived token does not
// age in the queue.
func (c *Client) attempt(ctx context.Context, hs *host, u *url.URL, r Request) (*Response, string, error) {
	var o *outcome // what the host's limit learns from this attempt
	if !r.Unlimited {
		if err := hs.limit.acquire(ctx); err != nil {
			return nil, "", err
		}
		o = &outcome{}
		defer func() { o.At = time.Now(); hs.limit.release(*o) }()
		if hs.limiter != nil {
			if err := hs.limiter.Wait(ctx); err != nil {
				return nil, "", err
			}
		}
		// A Retry-After may have paused the host while this waited for its slot or its turn: a slot is
		// freed by the very refusal that pauses the host.
		o.Released = hs.paused()
		for {
			if err := c.waitHost(ctx, hs, r.Stats, u, pausedWhy); err != nil {
				return nil, "", err
			}
			if hs.spend(time.Now()) {
				break
			}
		}
	}
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	actx, stop := context.WithTimeout(actx, c.opts.AttemptTimeout)
	defer stop()
	req, err := c.newRequest(actx, u, r)
	if err != nil {
		return nil, "", err
	}
	var token string
	if r.Auth != nil {
		if token, err = r.Auth.Authorize(WithStats(ctx, nil), req); err != nil {
			// The login or token request had attempts of its own: its failure is final here, so retries
			// are one budget per request, never one inside another.
			return nil, "", retry.Final(fmt.Errorf("authenticating: %w", err))
		}
		registerCredentials(req.Header)
	}
	stall := time.AfterFunc(c.opts.StallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()
	start := time.Now()
	if o != nil {
		// Counted as it is sent, not when its slot was taken: a host counts what has arrived, and slots
		// taken meanwhile (the limit rising) are in flight with it.
		o.InFlight, o.AtHost = hs.limit.send()
		o.Sent = start
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, token, c.attemptError(actx, r.Stats, u, stripURLError(err))
	}
	// The pause starts as the answer arrives, before this request's slot is freed (deferred above), so
	// that no request waiting for a slot is sent into it.
	now := time.Now()
	if d, ok := c.policy.Pause(retry.Answer{Status: resp.StatusCode, RetryAfter: resp.Header.Get("Retry-After")}); ok {
		hs.close(now, now.Add(d))
	} else if left, d, ok := quotaAnnounced(resp.Header, now, c.policy.MaxRetryAfter); ok {
		hs.budget(now, left-hs.limit.othersOnTheirWay(o != nil), now.Add(d))
	}
	if o != nil {
		// Only a 2xx answer's latency says how fast the host serves: a refusal or an error comes back
		// at once, and would make every real answer look slow.
		o.Refused = resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable
		if resp.StatusCode/100 == 2 {
			o.RTT = time.Since(start)
		}
	}
	defer resp.Body.Close()
	stall.Reset(c.opts.StallTimeout)
	body, err := c.readBody(resp, r, &progress{r: resp.Body, timer: stall, every: c.opts.StallTimeout})
	if err != nil {
		return nil, token, c.attemptError(actx, r.Stats, u, err)
	}
	if c.opts.Observe != nil {
		c.opts.Observe(Observation{Stream: r.Stats.Name, Method: r.Method, URL: redactURL(u), Status: resp.StatusCode, Start: start, End: time.Now(),
			Depth: depthOf(ctx) + 1, Bytes: body.Len(), Body: body})
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, token, nil
}

func (c *Client) newRequest(ctx context.Context, u *url.URL, r Request) (*http.Request, error) {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "ledgerlake")
	return req, nil
}

// readBody reads a 2xx body whole (spilling it to a file past MemoryBodyBytes; refusing it past its
// cap or when it echoes a credential; retrying it when it ends inside its JSON value: every endpoint
// of every source gets its answers here, so this is where a cut one is told), or an excerpt of any
// other.
func (c *Client) readBody(resp *http.Response, r Request, body io.Reader) (*spool.Body, error) {
	if resp.StatusCode/100 != 2 {
		b, err := io.ReadAll(io.LimitReader(body, errorBodyBytes))
		if err != nil {
			return nil, fmt.Errorf("reading body (%d bytes before the error): %w", len(b), err)
		}
		return spool.Bytes(b), nil
	}
	limit, what := c.opts.MaxBodyBytes, r.What
	if r.MaxBytes > 0 {
		limit = r.MaxBytes
	}
	if what == "" {
		what = "response body"
	}
	if resp.ContentLength > limit {
		return nil, retry.Final(&spool.TooLargeError{What: what, Limit: limit, Size: resp.ContentLength})
	}
	echo, open := &echoScan{}, &jsonrec.Opening{}
	b, err := spool.Read(io.TeeReader(body, io.MultiWriter(echo, open)), c.opts.SpoolDir, c.opts.MemoryBodyBytes, limit, what)
	var tl *spool.TooLargeError
	switch {
	case errors.As(err, &tl):
		return nil, retry.Final(err)
	case err != nil:
		return nil, err
	case echo.found:
		b.Close()
		return nil, retry.Final(ErrEcho)
	case open.Open() && jsonrec.Truncated(b.Reader()):
		b.Close()
		return nil, &CutError{What: what, Bytes: b.Len()}
	case r.NotNull && b.InMemory() && jsonrec.IsNull(b.Mem()):
		b.Close()
		return nil, &NullError{What: what}
	}
	return b, nil
}

// NullError is a 2xx body that is the JSON literal null from an endpoint that never answers null
// (Request.NotNull): read as an empty answer, it would lose whatever the endpoint holds, so it is a
// failed attempt, retried.
type NullError struct {
	What string // "response body"
}

func (e *NullError) Error() string {
	return fmt.Sprintf("the %s is null, which this endpoint never answers (it returns an array): not read as empty", e.What)
}

// CutError is a 2xx body that ends inside its JSON value: the connection closed early, or a chunked
// body was ended early, without the transport noticing (no Content-Length to hold it to). It is a
// truncated body like any other, retried, and never parsed as data. A complete body that is not
// the JSON expected is no CutError: asking again would get the same answer.
type CutError struct {
	What  string // "response body"
	Bytes int64  // how much arrived
}

func (e *CutError) Error() string {
	return fmt.Sprintf("the %s was cut short: the %d bytes read end inside its JSON value", e.What, e.Bytes)
}

// attemptError names why an attempt ended without an answer: a stall or the attempt's timeout (both
// retried) where its context says so.
func (c *Client) attemptError(actx context.Context, st *Stats, u *url.URL, err error) error {
	if retry.IsFinal(err) {
		return err
	}
	if errors.Is(context.Cause(actx), errStalled) {
		c.log.Warn("request stalled: abandoned, to be retried", "stream", st.Name, "host", u.Host, "seconds", c.opts.StallTimeout.Seconds(),
			"reason", fmt.Sprintf("less than %d bytes in %s (stall_timeout)", stallBytes, c.opts.StallTimeout))
		return fmt.Errorf("no progress for %s (stall_timeout): %w", c.opts.StallTimeout, err)
	}
	if errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("the attempt took longer than %s: %w", c.opts.AttemptTimeout, err)
	}
	return err
}

// progress resets the stall timer each time stallBytes more have arrived.
type progress struct {
	r     io.Reader
	timer *time.Timer
	every time.Duration
	since int
}

func (p *progress) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.since += n; p.since >= stallBytes {
		p.timer.Reset(p.every)
		p.since = 0
	}
	return n, err
}

// echoScan looks for a known credential in a body as it streams past, across chunk boundaries.
type echoScan struct {
	tail  []byte
	found bool
}

func (e *echoScan) Write(p []byte) (int, error) {
	keep := redact.Longest() - 1
	if e.found || keep <= 0 {
		return len(p), nil
	}
	edge := append(e.tail, p[:min(len(p), keep)]...)
	e.found = redact.Contains(edge) || redact.Contains(p)
	if len(p) >= keep {
		e.tail = append(e.tail[:0], p[len(p)-keep:]...)
	} else {
		e.tail = append(e.tail[:0], edge[max(0, len(edge)-keep):]...)
	}
	return len(p), nil
}

// registerCredentials makes the credentials a request carries known to package redact, whatever Auth
// set them: nothing a server echoes of them can be written.
func registerCredentials(h http.Header) {
	for _, name := range []string{"Authorization", "Vompapitoken", "Proxy-Authorization", "Cookie"} {
		for _, v := range h[name] {
			redact.AddHeader(v)
		}
	}
}

// pausedWhy is why a request waits for its host in the log.
const pausedWhy = "the host is paused at the server's request (a Retry-After, or its quota spent until the window ends)"

// waitHost blocks while the host is paused by a Retry-After — until the latest pause ends, should
// another answer lengthen it meanwhile — logging long waits with why.
func (c *Client) waitHost(ctx context.Context, hs *host, stats *Stats, u *url.URL, why string) error {
	for {
		hs.mu.Lock()
		d := time.Until(hs.pause)
		hs.mu.Unlock()
		if d <= 0 {
			return nil
		}
		if err := c.sleep(ctx, d, stats, u, why); err != nil {
			return err
		}
	}
}

// Hosts reports how each host's concurrency limit went, sorted by host.
func (c *Client) Hosts() []HostReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]HostReport, 0, len(c.hosts))
	for _, h := range slices.Sorted(maps.Keys(c.hosts)) {
		hs := c.hosts[h]
		r := hs.limit.report(h)
		hs.mu.Lock()
		r.PausedSeconds = hs.closed.Seconds()
		hs.mu.Unlock()
		out = append(out, r)
	}
	return out
}

// paused reports whether a Retry-After pauses the host now.
func (hs *host) paused() bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	return time.Now().Before(hs.pause)
}

// close closes the host from now until t, unless an earlier answer closed it for longer.
func (hs *host) close(now, t time.Time) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	hs.closeLocked(now, t)
}

// closeLocked is close with hs.mu held.
func (hs *host) closeLocked(now, t time.Time) {
	if !t.After(hs.pause) {
		return
	}
	// Only the part of [now, t] the current pause does not already hold adds to the time closed.
	if hs.pause.After(now) {
		now = hs.pause
	}
	hs.closed += max(0, t.Sub(now))
	hs.pause = t
}

// excerpt is the start of an error answer's body on one line, credentials masked.
func excerpt(b *spool.Body) string {
	s := strings.ToValidUTF8(strings.Join(strings.Fields(string(b.Mem())), " "), "?")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return redact.String(s)
}

// redactURL drops userinfo and the values of query parameters that might carry secrets.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	q := c.Query()
	for k := range q {
		lk := strings.ToLower(k)
		if strings.Contains(lk, "token") || strings.Contains(lk, "secret") || strings.Contains(lk, "password") || strings.Contains(lk, "key") {
			q.Set(k, "REDACTED")
		}
	}
	c.RawQuery = q.Encode()
	return c.String()
}

// stripURLError unwraps *url.Error, whose message repeats the full URL; callers add the redacted one.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return ne
	}
	return err
}

// Transport is a RoundTripper that sends through the client's retry policy, for libraries that make
// their own requests (the OAuth token fetch): connection errors, truncated bodies, 429 and 5xx are
// retried; other answers are returned as they came. Requests through it skip the host's limits, as
// logins must (see Request.Unlimited).
func (c *Client) Transport() http.RoundTripper { return retryTransport{c} }

type retryTransport struct{ c *Client }

func (t retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		body = b
	}
	resp, err := t.c.Do(req.Context(), Request{Method: req.Method, URL: req.URL.String(), Header: req.Header.Clone(), Body: body, Unlimited: true})
	var se *StatusError
	switch {
	case errors.As(err, &se) && (se.Status < 500 && se.Status != http.StatusTooManyRequests):
		// A final answer (bad credentials, bad scope): hand it over so the caller can read the error.
		return &http.Response{StatusCode: se.Status, Status: fmt.Sprintf("%d %s", se.Status, http.StatusText(se.Status)),
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(se.whole)), Request: req}, nil
	case err != nil:
		return nil, err
	}
	// A token answer is small: one that is not is refused rather than held.
	b, err := resp.Body.Load(1<<20, "token answer")
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: resp.Status, Status: fmt.Sprintf("%d %s", resp.Status, http.StatusText(resp.Status)),
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)), ContentLength: int64(len(b)), Request: req}, nil
}
