// Package sourcetest is for tests only: the API double a source's endpoint tests talk to. It serves
// a mux under the API's base path on a loopback server and records every request, so a test asserts
// exactly which endpoints were called, with which method and query, and with which headers.
package sourcetest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Options are what a source's double adds to the recording.
type Options struct {
	// Check is called on every request under the base path (rel is its path relative to it): the
	// headers every request must carry.
	Check func(r *http.Request, rel string)
	// Outside answers the paths outside the base path a source calls (a token endpoint); a request
	// to any other such path fails the test.
	Outside map[string]http.HandlerFunc
}

// API is a loopback server that serves Mux under a base path and records each request there as
// "METHOD /path?query": the path relative to the base path (a request built from an absolute path
// instead of the base URL misses it and fails the test), the query in url.Values order.
type API struct {
	// Mux answers the requests under the base path, with their paths made relative to it.
	Mux *http.ServeMux
	// BaseURL is the API's base URL, the server's address with the base path.
	BaseURL string
	// URL is the server's address (for endpoints outside the base path).
	URL string

	mu     sync.Mutex
	got    []string
	bodies map[string]string
}

// New starts an API double under basePath for the test; it stops when the test ends.
func New(t testing.TB, basePath string, opts Options) *API {
	a := &API{Mux: http.NewServeMux(), bodies: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := opts.Outside[r.URL.Path]; ok {
			h(w, r)
			return
		}
		rel, ok := strings.CutPrefix(r.URL.Path, basePath)
		if !ok {
			t.Errorf("%s %s: outside the base URL", r.Method, r.URL)
			http.NotFound(w, r)
			return
		}
		if opts.Check != nil {
			opts.Check(r, rel)
		}
		key := r.Method + " " + rel
		if q := r.URL.Query(); len(q) > 0 {
			key += "?" + q.Encode()
		}
		body, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		a.got = append(a.got, key)
		a.bodies[key] = string(body)
		a.mu.Unlock()
		r.URL.Path = rel
		a.Mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	a.URL, a.BaseURL = srv.URL, srv.URL+basePath
	return a
}

// Requests are the requests made since the last call, sorted (windows and fan-outs run
// concurrently).
func (a *API) Requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := slices.Sorted(slices.Values(a.got))
	a.got = nil
	return out
}

// Body is the body of the last request recorded as req.
func (a *API) Body(req string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bodies[req]
}

// Req is a request as API records it; kv are the query's keys and values.
func Req(method, path string, kv ...string) string {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		q.Add(kv[i], kv[i+1])
	}
	if len(q) == 0 {
		return method + " " + path
	}
	return method + " " + path + "?" + q.Encode()
}
