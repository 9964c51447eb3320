package httpclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// script answers the n-th request (from 0) with the n-th handler, repeating the last one.
func script(t *testing.T, steps ...http.HandlerFunc) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := int(n.Add(1) - 1)
		steps[min(i, len(steps)-1)](w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func status(code int, hdr ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(hdr); i += 2 {
			w.Header().Set(hdr[i], hdr[i+1])
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte(`{"rettext":"status ` + http.StatusText(code) + `"}`))
	}
}

func ok(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`[{"a":1}]`)) }

var fast = Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, MaxAttempts: 5}

func TestRetriesWhatIsWorthRetrying(t *testing.T) {
	truncated := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		_, _ = w.Write([]byte(`[{"a":`))
	}
	cases := []struct {
		name      string
		steps     []http.HandlerFunc
		wantErr   string
		requests  int64
		throttled int64 // 429 answers
	}{
		{"503 then ok", []http.HandlerFunc{status(503), ok}, "", 2, 0},
		{"429, 429 then ok", []http.HandlerFunc{status(429, "Retry-After", "0"), status(429), ok}, "", 3, 2},
		{"502, 500 then ok", []http.HandlerFunc{status(502), status(500), ok}, "", 3, 0},
		{"truncated body then ok", []http.HandlerFunc{truncated, ok}, "", 2, 0},
		{"404 is final", []http.HandlerFunc{status(404), ok}, "404 Not Found", 1, 0},
		{"400 is final", []http.HandlerFunc{status(400), ok}, `400 Bad Request: {"rettext":"status Bad Request"}`, 1, 0},
		{"501 is final", []http.HandlerFunc{status(501), ok}, "501 Not Implemented", 1, 0},
		{"gives up", []http.HandlerFunc{status(500)}, "gave up after 5 attempts", 5, 0},
	}
	for _, c := range cases {
		for _, spooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spool=%v", c.name, spooled), func(t *testing.T) {
				srv, n := script(t, c.steps...)
				var st Stats
				opts := fast
				opts.SpoolDir = t.TempDir()
				if spooled {
					opts.MemoryBodyBytes = 4 // every answer is spilled to a file
				}
				resp, err := New(opts).Do(context.Background(), Request{Method: "GET", URL: srv.URL + "/x?org_id=1", Stats: &st})
				if c.wantErr == "" {
					if err != nil {
						t.Fatalf("err %v", err)
					}
					if body := bodyOf(t, resp); body != `[{"a":1}]` || resp.Body.InMemory() == spooled || st.Bytes.Load() < int64(len(body)) {
						t.Fatalf("body %q (in memory %v), %d bytes counted", body, resp.Body.InMemory(), st.Bytes.Load())
					}
				}
				// A spooled body is never a file anyone can see: unlinked as soon as it is made, truncated
				// attempts included.
				if left, _ := os.ReadDir(opts.SpoolDir); len(left) != 0 {
					t.Errorf("spool dir holds %v", left)
				}
				if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "GET "+srv.URL+"/x?org_id=1")) {
					t.Fatalf("err %v, want %q naming the endpoint", err, c.wantErr)
				}
				if n.Load() != c.requests || st.Requests.Load() != c.requests || st.Retries.Load() != c.requests-1 || st.Throttled.Load() != c.throttled {
					t.Fatalf("server saw %d, stats %d requests %d retries %d throttled, want %d and %d throttled",
						n.Load(), st.Requests.Load(), st.Retries.Load(), st.Throttled.Load(), c.requests, c.throttled)
				}
			})
		}
	}
}

// bodyOf reads a response's body, from memory or its spool file (then closed).
func bodyOf(t *testing.T, r *Response) string {
	t.Helper()
	defer r.Body.Close()
	b, err := io.ReadAll(r.Body.Reader())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != r.Body.Len() {
		t.Fatalf("read %d bytes, Len %d", len(b), r.Body.Len())
	}
	return string(b)
}

func TestRetryAfterPausesTheHost(t *testing.T) {
	var times []time.Time
	var mu sync.Mutex
	srv, _ := script(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		status(429, "Retry-After", "1")(w, r)
	}, ok)
	start := time.Now()
	c := New(fast)
	if _, err := c.Do(context.Background(), Request{Method: "GET", URL: srv.URL}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Fatalf("retried after %v, Retry-After said 1s", d)
	}
	if p := c.Hosts()[0].PausedSeconds; p < 0.95 || p > 1.05 {
		t.Fatalf("the host report says paused %.3fs, Retry-After said 1s", p)
	}
}

// A request waiting for a slot is not sent into the pause that the slot's refusal asked for: the
// pause starts before the refused request frees its slot.
func TestNoRequestIsSentIntoAPause(t *testing.T) {
	var c *Client
	var log pauseLog
	srv, _ := script(t, log.refuse("1", func(r *http.Request) {
		// Refuse only once the other caller waits for this request's slot.
		for deadline := time.Now().Add(5 * time.Second); waitingFor(c, r.Host) == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Error("the second caller never waited for the slot")
				break
			}
		}
	}), log.answer)
	c = New(Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, PerHostConcurrency: 1})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go get(t, &wg, c, srv.URL)
	}
	wg.Wait()
	after := log.sinceRefusal()
	if len(after) != 2 {
		t.Fatalf("%d requests arrived after the refusal, want 2 (the refused one again, and the other)", len(after))
	}
	if d := after[0]; d < 950*time.Millisecond {
		t.Fatalf("a request arrived %v after a refusal that asked for 1 s", d.Round(time.Millisecond))
	}
}

// A pause lengthened while requests wait it out is waited out to its new end: a refusal asking for 1 s,
// then, 300 ms later, one asking for 2 s keep every request away for 2 s after the second.
func TestALengthenedPauseIsWaitedOut(t *testing.T) {
	var log pauseLog
	var first time.Time
	srv, _ := script(t, func(w http.ResponseWriter, r *http.Request) {
		first = time.Now()
		status(429, "Retry-After", "1")(w, r)
	}, log.refuse("2", func(*http.Request) { time.Sleep(300 * time.Millisecond) }), log.answer)
	c := New(Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, PerHostConcurrency: 2})
	var wg sync.WaitGroup
	wg.Add(3)
	go get(t, &wg, c, srv.URL)
	go get(t, &wg, c, srv.URL)
	time.Sleep(100 * time.Millisecond) // the first pause has begun: this one waits it out
	go get(t, &wg, c, srv.URL)
	wg.Wait()
	after := log.sinceRefusal()
	if len(after) != 3 {
		t.Fatalf("%d requests arrived after the refusals, want 3", len(after))
	}
	for _, d := range after {
		if d < 1950*time.Millisecond {
			t.Fatalf("a request arrived %v after a refusal that asked for 2 s", d.Round(time.Millisecond))
		}
	}
	// The pauses overlap: the host was closed from the first refusal to 2 s after the second, not for
	// the 3 s the two asked for together.
	want := log.refusedAt.Add(2 * time.Second).Sub(first).Seconds()
	if p := c.Hosts()[0].PausedSeconds; p < want-0.1 || p > want+0.1 {
		t.Fatalf("the host report says paused %.3fs, want about %.3fs (overlaps counted once)", p, want)
	}
}

// pauseLog is when a test server last refused, and when the requests answered after it arrived.
type pauseLog struct {
	mu        sync.Mutex
	refusedAt time.Time
	arrived   []time.Time
}

// refuse answers 429 with retryAfter once before returns, noting when.
func (p *pauseLog) refuse(retryAfter string, before func(*http.Request)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		before(r)
		p.mu.Lock()
		p.refusedAt = time.Now()
		p.mu.Unlock()
		status(429, "Retry-After", retryAfter)(w, r)
	}
}

// answer answers at once, noting when the request arrived.
func (p *pauseLog) answer(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.arrived = append(p.arrived, time.Now())
	p.mu.Unlock()
	ok(w, r)
}

// sinceRefusal is how long after the last refusal each answered request arrived, in order.
func (p *pauseLog) sinceRefusal() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]time.Duration, len(p.arrived))
	for i, at := range p.arrived {
		out[i] = at.Sub(p.refusedAt)
	}
	return out
}

// get requests url with c, failing t on an error, and marks wg done.
func get(t *testing.T, wg *sync.WaitGroup, c *Client, url string) {
	defer wg.Done()
	if _, err := c.Do(context.Background(), Request{Method: "GET", URL: url}); err != nil {
		t.Error(err)
	}
}

// waitingFor is the number of requests waiting for a slot to host.
func waitingFor(c *Client, host string) int {
	c.mu.Lock()
	hs := c.hosts[host]
	c.mu.Unlock()
	if hs == nil {
		return 0
	}
	hs.limit.mu.Lock()
	defer hs.limit.mu.Unlock()
	return len(hs.limit.waiting)
}

type fakeAuth struct {
	mu      sync.Mutex
	origin  string
	token   string
	renewed int
}

func (a *fakeAuth) Origin() string { return a.origin }

// originOf is rawURL's origin.
func originOf(t *testing.T, rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return Origin(u)
}

func (a *fakeAuth) Authorize(_ context.Context, r *http.Request) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r.Header.Set("Authorization", "Bearer "+a.token)
	return a.token, nil
}

func (a *fakeAuth) Renew(_ context.Context, stale string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == stale {
		a.token += "+"
		a.renewed++
	}
	return nil
}

func TestExpiredTokenIsRenewedAndRepeated(t *testing.T) {
	srv, _ := script(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t1+" {
			status(401)(w, r)
			return
		}
		ok(w, r)
	})
	a := &fakeAuth{token: "t1", origin: originOf(t, srv.URL)}
	var st Stats
	if _, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: srv.URL, Auth: a, Stats: &st}); err != nil {
		t.Fatal(err)
	}
	if a.renewed != 1 || st.Renewals.Load() != 1 || st.Retries.Load() != 0 {
		t.Fatalf("renewed %d, stats %+v", a.renewed, &st)
	}
	// A token that keeps failing is not renewed forever.
	bad, n := script(t, status(401))
	_, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: bad.URL, Auth: &fakeAuth{token: "x", origin: originOf(t, bad.URL)}})
	var se *StatusError
	if !errors.As(err, &se) || se.Status != 401 || n.Load() != maxRenewals+1 {
		t.Fatalf("err %v after %d requests", err, n.Load())
	}
}

func TestCancellationStopsWaiting(t *testing.T) {
	srv, _ := script(t, status(503, "Retry-After", "60"))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := New(fast).Do(ctx, Request{Method: "GET", URL: srv.URL})
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestPerHostConcurrencyIsBounded(t *testing.T) {
	var inflight, peak atomic.Int64
	srv, _ := script(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
		inflight.Add(-1)
		ok(w, r)
	})
	c := New(Options{PerHostConcurrency: 3})
	var wg sync.WaitGroup
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.Do(context.Background(), Request{Method: "GET", URL: srv.URL})
		}()
	}
	wg.Wait()
	if peak.Load() > 3 || peak.Load() < 2 {
		t.Fatalf("peak concurrency %d, limit 3", peak.Load())
	}
}

func TestErrorsRedactSecretsInURLs(t *testing.T) {
	srv, _ := script(t, status(404))
	_, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: strings.Replace(srv.URL, "http://", "http://user:pw@", 1) + "/x?access_token=abc&org_id=5"})
	if err == nil || strings.Contains(err.Error(), "abc") || strings.Contains(err.Error(), "pw") || !strings.Contains(err.Error(), "org_id=5") {
		t.Fatalf("err = %v", err)
	}
}

// blockingLogin logs in through the same client and host, as GSAPI's /welcome does.
type blockingLogin struct {
	c     *Client
	url   string
	mu    sync.Mutex
	token string
}

func (a *blockingLogin) Authorize(ctx context.Context, r *http.Request) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" {
		if _, err := a.c.Do(ctx, Request{Method: "GET", URL: a.url + "/login", Unlimited: true}); err != nil {
			return "", err
		}
		a.token = "t"
	}
	r.Header.Set("Authorization", "Bearer "+a.token)
	return a.token, nil
}

func (a *blockingLogin) Origin() string {
	u, _ := url.Parse(a.url)
	return Origin(u)
}

func (a *blockingLogin) Renew(context.Context, string) error {
	a.mu.Lock()
	a.token = ""
	a.mu.Unlock()
	return nil
}

// Many requests needing a login through the same host at once must not deadlock on the host's slots.
func TestLoginThroughTheSameHostDoesNotDeadlock(t *testing.T) {
	srv, _ := script(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(5 * time.Millisecond)
		ok(w, r)
	})
	c := New(Options{PerHostConcurrency: 2})
	a := &blockingLogin{c: c, url: srv.URL}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Do(ctx, Request{Method: "GET", URL: srv.URL + "/x", Auth: a}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("deadlocked")
	}
}
