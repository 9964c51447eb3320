package sandbox

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log"
	"net/http"
	"strings"
	"sync"
	"time"
)

// tokenStore issues opaque tokens that expire after ttl; a sliding store extends a token on every use,
// as GSAPI's VompApiToken does ("valid for 1440 minutes after a successful query").
type tokenStore struct {
	ttl     time.Duration
	sliding bool
	mu      sync.Mutex
	expires map[string]time.Time
	issued  []string // every token ever issued, for tests that look for them where they must not be
}

func newTokenStore(ttl time.Duration, sliding bool) *tokenStore {
	return &tokenStore{ttl: ttl, sliding: sliding, expires: map[string]time.Time{}}
}

func (ts *tokenStore) issue() string {
	var b [18]byte
	_, _ = rand.Read(b[:])
	// Shaped like the published VompApiToken values: base64 of a hex identifier.
	tok := base64.StdEncoding.EncodeToString([]byte(hex.EncodeToString(b[:])))
	ts.mu.Lock()
	ts.expires[tok] = time.Now().Add(ts.ttl)
	ts.issued = append(ts.issued, tok)
	ts.mu.Unlock()
	return tok
}

// IssuedTokens are every token the sandbox has handed out, both APIs.
func (s *Sandbox) IssuedTokens() []string {
	var out []string
	for _, ts := range []*tokenStore{s.signicatTokens, s.gsapiTokens} {
		ts.mu.Lock()
		out = append(out, ts.issued...)
		ts.mu.Unlock()
	}
	return out
}

// valid reports whether tok is live, extending it when the store slides.
func (ts *tokenStore) valid(tok string) bool {
	if tok == "" {
		return false
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	exp, ok := ts.expires[tok]
	if !ok {
		return false
	}
	now := time.Now()
	if now.After(exp) {
		delete(ts.expires, tok)
		return false
	}
	if ts.sliding {
		ts.expires[tok] = now.Add(ts.ttl)
	}
	return true
}

func (ts *tokenStore) revoke(tok string) {
	if tok == "" {
		return
	}
	ts.mu.Lock()
	delete(ts.expires, tok)
	ts.mu.Unlock()
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// vompToken accepts both documented spellings: a VompApiToken header, or "Authorization: VompApiToken <t>".
func vompToken(r *http.Request) string {
	if t := r.Header.Get("VompApiToken"); t != "" {
		return t
	}
	h := r.Header.Get("Authorization")
	if p := "VompApiToken "; len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return strings.TrimSpace(h[len(p):])
	}
	return ""
}

// handleSignicatToken is the OAuth 2.0 client-credentials token endpoint. Credentials come in the form
// body or as HTTP Basic (RFC 6749 §2.3.1 allows both; golang.org/x/oauth2 may use either).
func (s *Sandbox) handleSignicatToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "invalid_request", "error_description": "POST required"})
		return
	}
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "malformed form body"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type", "error_description": "grant_type must be client_credentials"})
		return
	}
	if id != ClientID || secret != ClientSecret {
		s.Stats.Unauthorized.Add(1)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	if sc := r.PostForm.Get("scope"); sc != "signicat-api" {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_scope", "error_description": "You always use the scope signicat-api."})
		return
	}
	s.Stats.TokensIssued.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": s.signicatTokens.issue(),
		"expires_in":   max(1, int((s.signicatTokens.ttl+time.Second-1)/time.Second)), // whole seconds, as OAuth sends
		"token_type":   "Bearer",
		"scope":        "signicat-api",
	})
}

// signicatAuthorized checks the bearer token and answers 401 problem JSON when it is missing or expired.
func (s *Sandbox) signicatAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if s.signicatTokens.valid(bearer(r)) {
		return true
	}
	s.Stats.Unauthorized.Add(1)
	w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	writeProblem(w, http.StatusUnauthorized, "invalid_token", "The access token is missing, invalid or expired.")
	return false
}

const gsapiDenied = `<Error><Message>Authorization has been denied for this request.</Message></Error>`

// gsapiAuthorized accepts a live VompApiToken or the sandbox JWT; otherwise it answers 401 with the
// documented XML body.
func (s *Sandbox) gsapiAuthorized(w http.ResponseWriter, r *http.Request) bool {
	if s.gsapiTokens.valid(vompToken(r)) || bearer(r) == GSAPIJWT {
		return true
	}
	s.Stats.Unauthorized.Add(1)
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = io.WriteString(w, gsapiDenied)
	return false
}

// handleWelcome logs in with Basic auth (or a JWT) and returns a VompApiToken header.
func (s *Sandbox) handleWelcome(w http.ResponseWriter, r *http.Request) {
	user, pass, ok := r.BasicAuth()
	switch {
	case ok && user == GSAPIUser && pass == GSAPIPassword:
	case bearer(r) == GSAPIJWT:
		user = GSAPIUser
	case s.gsapiTokens.valid(vompToken(r)):
		user = GSAPIUser
	default:
		s.Stats.Unauthorized.Add(1)
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, gsapiDenied)
		return
	}
	s.Stats.TokensIssued.Add(1)
	tok := s.gsapiTokens.issue()
	w.Header().Set("VompApiToken", tok)
	writeJSON(w, http.StatusOK, []map[string]string{{"info": "Welcome " + user + " to gsapi on SANDBOX", "Version": "2025_2"}})
}

func quietLog() *log.Logger { return log.New(io.Discard, "", 0) }
