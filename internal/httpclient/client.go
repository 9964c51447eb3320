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
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	"github.com/ledgerlake/ledgerlake/internal/durable"
)

// Auth authenticates requests for one API.
type Auth interface {
	// Authorize sets the credentials on req and returns the token it used (for Renew).
	Authorize(ctx context.Context, req *http.Request) (token string, err error)
	// Renew replaces token if it is still the current one (another request may have renewed it already).
	Renew(ctx context.Context, token string) error
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
	PerHostConcurrency int           // requests in flight per host (8)
	PerHostRate        float64       // requests per second per host (0 = unlimited)
	AttemptTimeout     time.Duration // one attempt, body included (5 min)
	Transport          http.RoundTripper
	// SpoolDir holds the temporary files of spooled responses (Request.Spool; the system's temp dir).
	SpoolDir string
	// Observe, when set, is called after every attempt that got an answer (benchmarks keep a request
	// log with it); Body is the caller's to keep, the client never reuses it.
	Observe func(Observation)
}

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
	Bytes int64 // the body's length, in memory or spooled
	Body  []byte
	// Spooled is the body of a spooled answer (Body is then nil); it is only valid during the call.
	Spooled *Spooled
}

type depthKey struct{}

// Then marks that what is sent with the returned context needs the answer of a request sent with ctx:
// the next page of a cursor, the detail calls after a listing. It only feeds Observation.Depth.
func Then(ctx context.Context) context.Context {
	return context.WithValue(ctx, depthKey{}, depthOf(ctx)+1)
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
	opts  Options
	http  *http.Client
	mu    sync.Mutex
	hosts map[string]*host
}

type host struct {
	sem     *semaphore.Weighted
	limiter *rate.Limiter
	mu      sync.Mutex
	pause   time.Time // no request to this host before this (Retry-After)
}

// New returns a client with opts.
func New(opts Options) *Client {
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 8
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 30 * time.Second
	}
	if opts.PerHostConcurrency <= 0 {
		opts.PerHostConcurrency = 8
	}
	if opts.AttemptTimeout <= 0 {
		opts.AttemptTimeout = 5 * time.Minute
	}
	tr := opts.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = opts.PerHostConcurrency * 2
		tr = t
	}
	return &Client{opts: opts, http: &http.Client{Transport: tr, Timeout: 0}, hosts: map[string]*host{}}
}

func (c *Client) host(h string) *host {
	c.mu.Lock()
	defer c.mu.Unlock()
	hs := c.hosts[h]
	if hs == nil {
		hs = &host{sem: semaphore.NewWeighted(int64(c.opts.PerHostConcurrency))}
		if c.opts.PerHostRate > 0 {
			hs.limiter = rate.NewLimiter(rate.Limit(c.opts.PerHostRate), max(1, int(c.opts.PerHostRate)))
		}
		c.hosts[h] = hs
	}
	return hs
}

// Request is one API call.
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte // replayed on every attempt
	Auth   Auth   // nil for unauthenticated calls
	Stats  *Stats // may be nil
	// Spool keeps a 2xx body in a temporary file instead of memory (Response.Spooled): for whole-list
	// endpoints whose answer grows with the tenant (tens of megabytes), read as a stream once received.
	// The body is still complete before it is returned, so a cut-short body is retried, never parsed.
	Spool bool
	// Unlimited skips the host's concurrency and rate limits. Logins use it: a login to the same host
	// (GSAPI's /welcome) is awaited by requests that already hold every slot, so it must not queue.
	Unlimited bool
}

// Response is a fully read response with status 2xx.
type Response struct {
	Status  int
	Header  http.Header
	Body    []byte
	Spooled *Spooled // instead of Body when the request asked to Spool
}

// Size is the body's length in bytes.
func (r *Response) Size() int64 {
	if r.Spooled != nil {
		return r.Spooled.Len()
	}
	return int64(len(r.Body))
}

// Spooled is a response body in a temporary file. The file is unlinked as soon as it is created where
// the system allows (a killed run leaves nothing behind); otherwise Close removes it, and its name
// starts with durable.TempPrefix so the next run's clean-up would.
type Spooled struct {
	f    *os.File
	size int64
	name string // still to remove on Close; "" once unlinked
}

// Reader reads the body from its start; readers are independent of each other.
func (s *Spooled) Reader() io.Reader { return io.NewSectionReader(s.f, 0, s.size) }

// Len is the body's length in bytes.
func (s *Spooled) Len() int64 { return s.size }

// Close releases the file.
func (s *Spooled) Close() error {
	err := s.f.Close()
	if s.name != "" {
		if rerr := os.Remove(s.name); rerr != nil && err == nil {
			err = rerr
		}
		s.name = ""
	}
	return err
}

// spool copies body into a new temporary file in dir; on error it returns how much it copied.
func spool(dir string, body io.Reader) (*Spooled, int64, error) {
	f, err := os.CreateTemp(dir, durable.TempPrefix+"response-*")
	if err != nil {
		return nil, 0, fmt.Errorf("spooling the body: %w", err)
	}
	s := &Spooled{f: f, name: f.Name()}
	if os.Remove(s.name) == nil {
		s.name = ""
	}
	s.size, err = io.Copy(f, body)
	if err != nil {
		s.Close()
		return nil, s.size, err
	}
	return s, s.size, nil
}

// StatusError is a final non-2xx answer: 4xx other than 401/429, or a retryable status after the last
// attempt.
type StatusError struct {
	Method, URL string
	Status      int
	Body        string // excerpt
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, http.StatusText(e.Status))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// Do sends the request, retrying what is worth retrying, and returns the whole body of a 2xx answer.
func (c *Client) Do(ctx context.Context, r Request) (*Response, error) {
	u, err := url.Parse(r.URL)
	if err != nil {
		return nil, fmt.Errorf("bad URL: %w", err)
	}
	safe := redactURL(u)
	hs := c.host(u.Host)
	stats := r.Stats
	if stats == nil {
		stats = &Stats{}
	}
	rejected := 0 // consecutive 401s: any other answer resets it, so long waits cannot exhaust renewals
	var lastErr error
	for attempt := 1; attempt <= c.opts.MaxAttempts; attempt++ {
		if attempt > 1 {
			stats.Retries.Add(1)
		}
		if err := hs.wait(ctx); err != nil {
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
		var wait time.Duration
		if resp == nil || resp.Status != http.StatusUnauthorized {
			rejected = 0
		}
		switch {
		case ctx.Err() != nil:
			if resp != nil && resp.Spooled != nil {
				resp.Spooled.Close()
			}
			return nil, ctx.Err()
		case err != nil:
			// Connection refused or reset, timeout, or a body cut short: never parse it, send again.
			lastErr = fmt.Errorf("%s %s: %w", r.Method, safe, err)
		case resp.Status >= 200 && resp.Status < 300:
			return resp, nil
		case resp.Status == http.StatusUnauthorized && r.Auth != nil && rejected < maxRenewals:
			// An expired token: renew it and repeat, without counting it against the retry budget. Tokens
			// refused maxRenewals times in a row mean the credentials are wrong, not expired.
			rejected++
			attempt--
			stats.Renewals.Add(1)
			if err := r.Auth.Renew(ctx, token); err != nil {
				return nil, fmt.Errorf("%s %s: renewing credentials after 401: %w", r.Method, safe, err)
			}
			continue
		case retryableStatus(resp.Status):
			lastErr = &StatusError{r.Method, safe, resp.Status, excerpt(resp.Body)}
			if ra, ok := retryAfter(resp.Header.Get("Retry-After")); ok {
				wait = ra
				hs.pauseUntil(time.Now().Add(ra))
			}
		default:
			return nil, &StatusError{r.Method, safe, resp.Status, excerpt(resp.Body)}
		}
		if attempt == c.opts.MaxAttempts {
			break
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
	return nil, fmt.Errorf("gave up after %d attempts: %w", c.opts.MaxAttempts, lastErr)
}

// attempt sends once within the host's concurrency and rate limits and reads the whole body.
// Credentials are set after the slot is taken, right before sending, so a short-lived token does not
// age in the queue.
func (c *Client) attempt(ctx context.Context, hs *host, u *url.URL, r Request) (*Response, string, error) {
	if !r.Unlimited {
		if err := hs.sem.Acquire(ctx, 1); err != nil {
			return nil, "", err
		}
		defer hs.sem.Release(1)
		if hs.limiter != nil {
			if err := hs.limiter.Wait(ctx); err != nil {
				return nil, "", err
			}
		}
	}
	actx, cancel := context.WithTimeout(ctx, c.opts.AttemptTimeout)
	defer cancel()
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(actx, r.Method, u.String(), body)
	if err != nil {
		return nil, "", err
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json")
	}
	req.Header.Set("User-Agent", "ledgerlake")
	var token string
	if r.Auth != nil {
		if token, err = r.Auth.Authorize(ctx, req); err != nil {
			return nil, "", fmt.Errorf("authenticating: %w", err)
		}
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, token, stripURLError(err)
	}
	defer resp.Body.Close()
	out := &Response{Status: resp.StatusCode, Header: resp.Header}
	var read int64
	if r.Spool && resp.StatusCode/100 == 2 {
		out.Spooled, read, err = spool(c.opts.SpoolDir, resp.Body)
	} else {
		out.Body, err = io.ReadAll(resp.Body)
		read = int64(len(out.Body))
	}
	if err != nil {
		return nil, token, fmt.Errorf("reading body (%d bytes before the error): %w", read, err)
	}
	if c.opts.Observe != nil {
		o := Observation{Method: r.Method, URL: redactURL(u), Status: resp.StatusCode, Start: start, End: time.Now(), Depth: depthOf(ctx) + 1,
			Bytes: read, Body: out.Body, Spooled: out.Spooled}
		if r.Stats != nil {
			o.Stream = r.Stats.Name
		}
		c.opts.Observe(o)
	}
	return out, token, nil
}

// wait blocks while the host is paused by a Retry-After.
func (hs *host) wait(ctx context.Context) error {
	hs.mu.Lock()
	d := time.Until(hs.pause)
	hs.mu.Unlock()
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (hs *host) pauseUntil(t time.Time) {
	hs.mu.Lock()
	if t.After(hs.pause) {
		hs.pause = t
	}
	hs.mu.Unlock()
}

// backoff is full-jitter exponential: uniform in [0, min(max, min·2^(attempt-1))], never below min/2.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.opts.MinBackoff << min(attempt-1, 20)
	if d > c.opts.MaxBackoff || d <= 0 {
		d = c.opts.MaxBackoff
	}
	return c.opts.MinBackoff/2 + time.Duration(rand.Int64N(int64(d)))
}

func retryableStatus(s int) bool {
	return s == http.StatusTooManyRequests || (s >= 500 && s != http.StatusNotImplemented)
}

// retryAfter parses delay-seconds or an HTTP date; waits are capped at 10 minutes.
func retryAfter(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	return min(max(d, 0), 10*time.Minute), true
}

func excerpt(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
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
			Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(se.Body)), Request: req}, nil
	case err != nil:
		return nil, err
	}
	return &http.Response{StatusCode: resp.Status, Status: fmt.Sprintf("%d %s", resp.Status, http.StatusText(resp.Status)),
		Header: resp.Header, Body: io.NopCloser(bytes.NewReader(resp.Body)), ContentLength: int64(len(resp.Body)), Request: req}, nil
}
