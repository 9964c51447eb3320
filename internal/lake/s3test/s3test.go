// Package s3test runs an S3-compatible server on loopback for tests and benchmarks: gofakes3's
// in-memory backend (github.com/johannesboyne/gofakes3) behind a real HTTP listener, so the pipeline
// talks to it through the AWS SDK exactly as it would to S3, conditional writes included. Faults can
// be injected in front of it: PUTs that fail, GETs that stall.
package s3test

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Credentials the server accepts (it checks none; the SDK needs some to sign with).
const (
	AccessKey = "ledgerlake-test"
	SecretKey = "ledgerlake-test-secret"
	Region    = "us-east-1"
)

// Faults are what the server does wrong, every so many requests (0: never). Periodic rather than
// random, so that a test's faults are the same on every run and a retry (the next request) is never
// faulted again by chance.
type Faults struct {
	FailPutEvery  int           // every Nth PUT is answered 503 SlowDown without storing anything
	StallGetEvery int           // every Nth GET sends nothing for Stall before answering
	Stall         time.Duration // how long a stalled GET waits (default 3 s)
	// CutGetAfter ends every object GET's answer after this many bytes of its body, dropping the
	// connection, as a flaky network does (0: never).
	CutGetAfter int64
}

// Server is a running S3-compatible server.
type Server struct {
	// Endpoint is the server's base URL, http://127.0.0.1:port.
	Endpoint string
	srv      *http.Server
	ln       net.Listener

	mu         sync.Mutex
	faults     Faults
	puts, gets int
	// Requests counts every request; FailedPuts, StalledGets and CutGets count the faults injected.
	Requests, FailedPuts, StalledGets, CutGets atomic.Int64
}

// Start serves a fresh in-memory S3 with the named buckets on a loopback port.
func Start(buckets ...string) (*Server, error) {
	backend := s3mem.New()
	for _, b := range buckets {
		if err := backend.CreateBucket(b); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: "http://" + ln.Addr().String(), ln: ln}
	fake := gofakes3.New(backend, gofakes3.WithAutoBucket(false), gofakes3.WithLogger(gofakes3.DiscardLog()))
	// gofakes3 sometimes writes an error after a header (net/http logs "superfluous WriteHeader"):
	// the client sees a complete answer either way, and a test's output stays readable.
	s.srv = &http.Server{Handler: s.inject(fake.Server()), ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go s.srv.Serve(ln)
	return s, nil
}

// SetFaults changes the faults injected from the next request on.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Stall == 0 {
		f.Stall = 3 * time.Second
	}
	s.faults = f
}

// due counts a request of a kind and reports whether it is the one in every that is faulted.
func (s *Server) due(n *int, every int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	*n++
	return every > 0 && *n%every == 0
}

func (s *Server) inject(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.Requests.Add(1)
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		switch {
		case r.Method == http.MethodPut && s.due(&s.puts, f.FailPutEvery):
			s.FailedPuts.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
			return
		case r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" && s.due(&s.gets, f.StallGetEvery):
			s.StalledGets.Add(1)
			select {
			case <-time.After(f.Stall):
			case <-r.Context().Done():
				return
			}
		}
		if r.Header.Get("Range") != "" {
			w = &rangeAnswer{ResponseWriter: w}
		}
		if r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "" && f.CutGetAfter > 0 {
			w = &cutAnswer{ResponseWriter: w, left: f.CutGetAfter, cuts: &s.CutGets}
		}
		next.ServeHTTP(w, r)
	})
}

// rangeAnswer answers a ranged GET as S3 does, without the whole object's checksum headers, which
// gofakes3 sends and the SDK would check against the part it received.
type rangeAnswer struct {
	http.ResponseWriter
	wrote bool
}

func (a *rangeAnswer) WriteHeader(code int) {
	if a.wrote {
		return
	}
	a.wrote = true
	for k := range a.Header() {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-checksum-") {
			a.Header().Del(k)
		}
	}
	a.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (a *rangeAnswer) Unwrap() http.ResponseWriter { return a.ResponseWriter }

func (a *rangeAnswer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	return a.ResponseWriter.Write(b)
}

// cutAnswer writes left bytes of a body, then drops the connection.
type cutAnswer struct {
	http.ResponseWriter
	left int64
	cuts *atomic.Int64
}

func (a *cutAnswer) Write(b []byte) (int, error) {
	if int64(len(b)) <= a.left {
		a.left -= int64(len(b))
		return a.ResponseWriter.Write(b)
	}
	a.ResponseWriter.Write(b[:a.left])
	_ = http.NewResponseController(a.ResponseWriter).Flush() // the bytes before the cut reach the client
	a.cuts.Add(1)
	panic(http.ErrAbortHandler) // net/http closes the connection mid-body
}

// URL is the output_dir for a lake at prefix in bucket on this server.
func (s *Server) URL(bucket, prefix string) string {
	q := url.Values{"endpoint": {s.Endpoint}, "use_path_style": {"true"}, "disable_https": {"true"}, "region": {Region}}
	return "s3://" + bucket + "/" + strings.Trim(prefix, "/") + "?" + q.Encode()
}

// Env is the environment the AWS SDK reads its credentials from, for this server.
func Env() []string {
	return []string{"AWS_ACCESS_KEY_ID=" + AccessKey, "AWS_SECRET_ACCESS_KEY=" + SecretKey, "AWS_REGION=" + Region,
		// No shared config or instance metadata lookups: nothing outside the loopback server.
		"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null"}
}

// StartT starts a server for a test, with the SDK's credentials for it in the test's environment,
// and stops it when the test ends.
func StartT(t testing.TB, buckets ...string) *Server {
	t.Helper()
	s, err := Start(buckets...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	SetEnv(t)
	return s
}

// SetEnv puts Env in the test's environment. A variable the process holds already with its value
// (SetProcessEnv) is left as it is: t.Setenv would panic in a test that runs in parallel.
func SetEnv(t testing.TB) {
	for _, kv := range Env() {
		if k, v, _ := strings.Cut(kv, "="); os.Getenv(k) != v {
			t.Setenv(k, v)
		}
	}
}

// SetProcessEnv puts Env in this process's environment for the rest of its life: for a package whose
// tests run in parallel, where t.Setenv panics. Env is the same for every server, so tests sharing it
// need no isolation from each other; call it from TestMain, before any test reads the environment.
func SetProcessEnv() error {
	for _, kv := range Env() {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }
