package httpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/retry"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// decide is the whole retry policy: one table says what each answer leads to.
func TestDecideIsThePolicy(t *testing.T) {
	answer := func(status int, hdr ...string) *Response {
		h := http.Header{}
		for i := 0; i+1 < len(hdr); i += 2 {
			h.Set(hdr[i], hdr[i+1])
		}
		return &Response{Status: status, Header: h, Body: spool.Bytes([]byte(`{"error":"x"}`))}
	}
	cases := []struct {
		name     string
		resp     *Response
		err      error
		canRenew bool
		want     action
		wait     time.Duration
		errText  string
	}{
		{"200", answer(200), nil, true, succeed, 0, ""},
		{"204", answer(204), nil, true, succeed, 0, ""},
		{"connection reset", nil, errors.New("connection reset by peer"), true, again, 0, "GET /x: connection reset"},
		{"final error", nil, retry.Final(ErrEcho), true, fail, 0, "echoes it back"},
		{"401 renews", answer(401), nil, true, renew, 0, ""},
		{"401 after too many renewals", answer(401), nil, false, fail, 0, "401 Unauthorized"},
		{"403", answer(403), nil, true, fail, 0, "403 Forbidden"},
		{"404", answer(404), nil, true, fail, 0, "404 Not Found"},
		{"400", answer(400), nil, true, fail, 0, "400 Bad Request"},
		{"501", answer(501), nil, true, fail, 0, "501 Not Implemented"},
		{"500", answer(500), nil, true, again, 0, "500 Internal Server Error"},
		{"502", answer(502), nil, true, again, 0, "502 Bad Gateway"},
		{"429 without Retry-After", answer(429), nil, true, again, 0, "429"},
		{"429 Retry-After 3", answer(429, "Retry-After", "3"), nil, true, again, 3 * time.Second, "429"},
		{"503 Retry-After 15m", answer(503, "Retry-After", "900"), nil, true, again, 15 * time.Minute, "503"},
		{"429 Retry-After a day", answer(429, "Retry-After", "86400"), nil, true, fail, 0, "asks to wait 24h0m0s (Retry-After), more than max_retry_after (15m0s)"},
		{"429 Retry-After huge", answer(429, "Retry-After", "99999999999999999"), nil, true, fail, 0, "more than max_retry_after"},
		{"429 Retry-After garbage", answer(429, "Retry-After", "soon"), nil, true, again, 0, "429"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := decide(t.Context(), retry.Policy{MaxRetryAfter: 15 * time.Minute}, 1, "GET", "/x", c.resp, c.err, c.canRenew)
			if v.action != c.want || v.wait != c.wait || (c.errText == "") != (v.err == nil) || (v.err != nil && !strings.Contains(v.err.Error(), c.errText)) {
				t.Fatalf("got action %d wait %v err %v; want %d %v %q", v.action, v.wait, v.err, c.want, c.wait, c.errText)
			}
			if v.pause != (c.wait > 0) {
				t.Fatalf("pause %v for wait %v", v.pause, c.wait)
			}
		})
	}
}

// A Retry-After beyond the limit fails at once, naming the wait: one request, no silent pause.
func TestRetryAfterOverTheLimitFailsAtOnce(t *testing.T) {
	srv, n := script(t, status(429, "Retry-After", "86400"))
	start := time.Now()
	_, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: srv.URL + "/x"})
	var we *WaitError
	if !errors.As(err, &we) || we.Wait != 24*time.Hour || n.Load() != 1 || time.Since(start) > time.Second {
		t.Fatalf("err %v after %d requests, %v", err, n.Load(), time.Since(start))
	}
}

// Waits longer than LongWait are logged with the stream, the host and the reason before they start.
func TestLongWaitsAreLogged(t *testing.T) {
	srv, _ := script(t, status(503, "Retry-After", "11"))
	var logs bytes.Buffer
	opts := fast
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := New(opts).Do(ctx, Request{Method: "GET", URL: srv.URL, Stats: &Stats{Name: "gsapi_users"}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"waiting before a retry", "stream=gsapi_users", "host=" + strings.TrimPrefix(srv.URL, "http://"), "seconds=11", "reason=Retry-After"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs.String())
		}
	}
}

// A server that accepts and never answers, or trickles a byte at a time, is abandoned after
// StallTimeout and the request retried; the attempt that answers promptly succeeds.
func TestStalledAttemptsAreAbandonedAndRetried(t *testing.T) {
	never := func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }
	trickle := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100000")
		for i := 0; i < 1000; i++ {
			if _, err := w.Write([]byte(" ")); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	for name, h := range map[string]http.HandlerFunc{"no answer": never, "trickle": trickle} {
		t.Run(name, func(t *testing.T) {
			srv, n := script(t, h, ok)
			opts := fast
			opts.StallTimeout = 300 * time.Millisecond
			var logs bytes.Buffer
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			start := time.Now()
			resp, err := New(opts).Do(context.Background(), Request{Method: "GET", URL: srv.URL})
			if err != nil || bodyOf(t, resp) != `[{"a":1}]` || n.Load() != 2 {
				t.Fatalf("err %v after %d requests", err, n.Load())
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Fatalf("took %v with a 300ms stall timeout", d)
			}
			if !strings.Contains(logs.String(), "request stalled") {
				t.Errorf("the stall was not logged:\n%s", logs.String())
			}
		})
	}
}

// A body over its cap is refused — at once by its Content-Length, or as soon as it passes the cap —
// and not asked for again; one past MemoryBodyBytes is spilled to a file.
func TestBodyCaps(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 5000)
	declared := func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(big) }
	chunked := func(w http.ResponseWriter, r *http.Request) {
		for range 5 {
			_, _ = w.Write(big[:1000])
			w.(http.Flusher).Flush()
		}
	}
	for name, h := range map[string]http.HandlerFunc{"declared": declared, "chunked": chunked} {
		t.Run(name, func(t *testing.T) {
			srv, n := script(t, h)
			_, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: srv.URL, MaxBytes: 4096, What: "PDF (max_pdf_bytes)"})
			var tl *spool.TooLargeError
			if !errors.As(err, &tl) || n.Load() != 1 || !strings.Contains(err.Error(), "PDF (max_pdf_bytes)") || !strings.Contains(err.Error(), "4.0 KiB") {
				t.Fatalf("err %v after %d requests", err, n.Load())
			}
		})
	}
	srv, _ := script(t, declared)
	opts := fast
	opts.MemoryBodyBytes = 1024
	opts.SpoolDir = t.TempDir()
	resp, err := New(opts).Do(context.Background(), Request{Method: "GET", URL: srv.URL})
	if err != nil || resp.Body.InMemory() || resp.Size() != 5000 || bodyOf(t, resp) != string(big) {
		t.Fatalf("err %v, in memory %v, %d bytes", err, resp != nil && resp.Body.InMemory(), resp.Size())
	}
}

// Credentials go only to the origin their Auth names: a request elsewhere is refused before it is
// sent, and a redirect to another origin (host, port or scheme) is not followed.
func TestCredentialsGoOnlyToTheirOrigin(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		ok(w, r)
	}))
	defer other.Close()
	srv, n := script(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/same" {
			ok(w, r)
			return
		}
		http.Redirect(w, r, other.URL+"/steal", http.StatusFound)
	})
	a := &fakeAuth{token: "tok-origin-test", origin: originOf(t, srv.URL)}
	_, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: other.URL + "/x", Auth: a})
	var fe *ForeignOriginError
	if !errors.As(err, &fe) || fe.Got != originOf(t, other.URL) || elsewhere.Load() != 0 {
		t.Fatalf("request to another origin: err %v, %d sent there", err, elsewhere.Load())
	}
	_, err = New(fast).Do(context.Background(), Request{Method: "GET", URL: srv.URL + "/go", Auth: a})
	if !errors.As(err, &fe) || fe.Via != "redirect" || elsewhere.Load() != 0 || n.Load() != 1 {
		t.Fatalf("redirect: err %v, %d sent there, %d asked", err, elsewhere.Load(), n.Load())
	}
	if !strings.Contains(err.Error(), strings.TrimPrefix(other.URL, "http://")) {
		t.Fatalf("the error does not name the host: %v", err)
	}
}

// An error answer that echoes the request — its Authorization header, as some gateways do — is
// reported with the credential masked; a 2xx answer echoing it is refused and never returned.
func TestEchoedCredentialsNeverLeaveTheClient(t *testing.T) {
	echo := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(code)
			fmt.Fprintf(w, "you sent: %s %q", r.Header.Get("Authorization"), r.Header)
		}
	}
	tok := "tok-" + strings.Repeat("e", 24)
	for _, code := range []int{400, 403, 500, 200} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv, _ := script(t, echo(code))
			a := &fakeAuth{token: tok, origin: originOf(t, srv.URL)}
			resp, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: srv.URL, Auth: a})
			if err == nil || resp != nil {
				t.Fatalf("an echo was returned: %v", err)
			}
			if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), strings.Repeat("e", 24)) {
				t.Fatalf("the error carries the token: %v", err)
			}
			if code != 200 && !strings.Contains(err.Error(), redact.Mask) {
				t.Fatalf("the server's reason was dropped, not masked: %v", err)
			}
			if code == 200 && !errors.Is(err, ErrEcho) {
				t.Fatalf("err %v, want ErrEcho", err)
			}
		})
	}
}

// A failure to authenticate is final for the request that needed it: the login had its own attempts.
func TestAuthenticationFailureIsNotRetried(t *testing.T) {
	srv, n := script(t, ok)
	a := failingAuth{origin: originOf(t, srv.URL), calls: &atomic.Int64{}}
	_, err := New(fast).Do(context.Background(), Request{Method: "GET", URL: srv.URL, Auth: a})
	if err == nil || !strings.Contains(err.Error(), "authenticating: token endpoint: HTTP 400") || n.Load() != 0 || a.calls.Load() != 1 {
		t.Fatalf("err %v; %d requests, %d logins", err, n.Load(), a.calls.Load())
	}
}

type failingAuth struct {
	origin string
	calls  *atomic.Int64
}

func (a failingAuth) Authorize(context.Context, *http.Request) (string, error) {
	a.calls.Add(1)
	return "", errors.New("token endpoint: HTTP 400 Bad Request: invalid_client")
}
func (a failingAuth) Renew(context.Context, string) error { return nil }
func (a failingAuth) Origin() string                      { return a.origin }

// A host down for half a second, answering 503 with a Retry-After that asks for no wait ("0", or a
// date its lagging clock thinks is the future), is waited out as one that sends no Retry-After is:
// with backoff. Retrying at once spent all 8 attempts in a few milliseconds and failed the request.
func TestOutageWithRetryAfterZeroIsSurvived(t *testing.T) {
	for name, ra := range map[string]string{
		"none":      "",
		"0":         "0",
		"past date": time.Now().Add(-time.Minute).UTC().Format(http.TimeFormat),
	} {
		t.Run(name, func(t *testing.T) {
			var down atomic.Bool
			down.Store(true)
			time.AfterFunc(500*time.Millisecond, func() { down.Store(false) })
			srv, n := script(t, func(w http.ResponseWriter, r *http.Request) {
				if down.Load() {
					if ra != "" {
						w.Header().Set("Retry-After", ra)
					}
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
				ok(w, r)
			})
			// 7 backoffs of at least 100 ms each outlast the outage.
			c := New(Options{MinBackoff: 200 * time.Millisecond, MaxBackoff: time.Second})
			if _, err := c.Do(context.Background(), Request{Method: "GET", URL: srv.URL}); err != nil {
				t.Fatalf("failed after %d requests: %v", n.Load(), err)
			}
		})
	}
}

// A 2xx body cut short where the transport cannot tell — close-delimited (no Content-Length, the
// connection closed early) or chunked and properly terminated — ends inside its JSON value: it is
// retried like any truncated body, within the same budget, and never returned as data. Once the
// retries run out the error says it was cut, how much arrived and where. A body that is complete but
// not the JSON expected is returned at once: asking again would only get it again.
func TestBodyCutInsideItsJSONIsRetried(t *testing.T) {
	const page = `{"data":[{"id":"a"},{"id":"b"}],"next":"tok"}`
	closed := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer conn.Close()
			_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n" + body)
			_ = buf.Flush()
		}
	}
	chunked := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, body[:len(body)/2])
			w.(http.Flusher).Flush()
			_, _ = io.WriteString(w, body[len(body)/2:])
		}
	}
	whole := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, body) }
	}
	cut := page[:strings.Index(page, `,"next"`)]
	cases := []struct {
		name     string
		steps    []http.HandlerFunc
		want     string // the body returned, or "" for an error
		requests int64
	}{
		{"close-delimited, cut once", []http.HandlerFunc{closed(cut), closed(page)}, page, 2},
		{"chunked and terminated, cut once", []http.HandlerFunc{chunked(cut), chunked(page)}, page, 2},
		{"BOM, cut once", []http.HandlerFunc{chunked("\xef\xbb\xbf" + cut), chunked("\xef\xbb\xbf" + page)}, "\xef\xbb\xbf" + page, 2},
		{"inside a string, escape last", []http.HandlerFunc{closed(`[{"a":"x\`), whole(`[{"a":"x\""}]`)}, `[{"a":"x\""}]`, 2},
		{"cut every time", []http.HandlerFunc{closed(cut)}, "", 5},
		{"data after a complete value", []http.HandlerFunc{whole(page + "x"), whole(page)}, page + "x", 1},
		{"invalid before its end", []http.HandlerFunc{whole(`[{"a": x`), whole(page)}, `[{"a": x`, 1},
		{"an HTML page", []http.HandlerFunc{whole(`<html><body>{ oops`), whole(page)}, `<html><body>{ oops`, 1},
	}
	for _, c := range cases {
		for _, spooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spool=%v", c.name, spooled), func(t *testing.T) {
				var bad atomic.Value
				steps := make([]http.HandlerFunc, len(c.steps))
				for i, h := range c.steps {
					steps[i] = func(w http.ResponseWriter, r *http.Request) {
						if got := r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery + " " + r.Header.Get("Accept"); got != "GET /organizations?limit=2&page=p1 application/json" {
							bad.Store(got)
						}
						h(w, r)
					}
				}
				srv, n := script(t, steps...)
				opts := fast
				opts.SpoolDir = t.TempDir()
				if spooled {
					opts.MemoryBodyBytes = 8
				}
				var st Stats
				resp, err := New(opts).Do(context.Background(), Request{Method: "GET", URL: srv.URL + "/organizations?limit=2&page=p1", Stats: &st})
				if got := bad.Load(); got != nil {
					t.Fatalf("the server was sent %v", got)
				}
				if n.Load() != c.requests || st.Retries.Load() != c.requests-1 {
					t.Fatalf("%d requests, %d retries; want %d requests", n.Load(), st.Retries.Load(), c.requests)
				}
				if c.want != "" {
					if err != nil {
						t.Fatalf("err %v", err)
					}
					if got := bodyOf(t, resp); got != c.want {
						t.Fatalf("body %q, want %q", got, c.want)
					}
					return
				}
				var ce *CutError
				if resp != nil || !errors.As(err, &ce) || ce.Bytes != int64(len(cut)) {
					t.Fatalf("resp %v, err %v; want a CutError of %d bytes", resp, err, len(cut))
				}
				for _, want := range []string{"gave up after 5 attempts", "GET " + srv.URL + "/organizations?limit=2&page=p1",
					fmt.Sprintf("the response body was cut short: the %d bytes read end inside its JSON value", len(cut))} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("err %q lacks %q", err, want)
					}
				}
				if left, _ := os.ReadDir(opts.SpoolDir); len(left) != 0 {
					t.Errorf("spool dir holds %v", left)
				}
			})
		}
	}
}
