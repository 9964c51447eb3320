package gsapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
)

// SignIn calls GET /welcome once, with Basic auth (answered with a VompApiToken) or with the bearer
// JWT, and nothing else; wrong credentials say so.
func TestSignInCallsWelcomeOnly(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path+" "+r.Header.Get("Authorization"))
		user, pass, basic := r.BasicAuth()
		switch {
		case r.Method != "GET" || r.URL.Path != "/gsapi/welcome":
			http.NotFound(w, r)
		case basic && user == "u" && pass == "p":
			w.Header().Set("VompApiToken", "tok")
			_, _ = w.Write([]byte(`{"info":"Welcome u"}`))
		case r.Header.Get("Authorization") == "Bearer good.jwt":
			_, _ = w.Write([]byte(`{"info":"Welcome"}`))
		default:
			w.Header().Set("Content-Type", "text/xml")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`<error>Unauthorized</error>`))
		}
	}))
	defer srv.Close()
	for _, c := range []struct {
		cfg       config.GSAPI
		wantCalls int
		wantErr   string
	}{
		{config.GSAPI{Username: "u", Password: "p"}, 1, ""},
		{config.GSAPI{JWT: "good.jwt"}, 1, ""},
		{config.GSAPI{Username: "u", Password: "wrong"}, 0, "username or password rejected"},
		{config.GSAPI{JWT: "expired.jwt"}, 0, "refused the JWT"},
	} {
		calls = nil
		c.cfg.BaseURL = srv.URL + "/gsapi"
		err := New(&c.cfg, config.DefaultLimits, httpclient.New(httpclient.Options{MaxAttempts: 2}), time.Now).SignIn(t.Context())
		if c.wantErr == "" && (err != nil || len(calls) != c.wantCalls) {
			t.Errorf("%+v: %v after %q", c.cfg, err, calls)
		}
		if c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.wantErr)
		}
		for _, call := range calls {
			if !strings.HasPrefix(call, "GET /gsapi/welcome ") {
				t.Errorf("%+v: called %s", c.cfg, call)
			}
		}
	}
}
