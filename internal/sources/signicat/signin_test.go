package signicat

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
)

// SignIn asks the token endpoint for one token as the client-credentials flow does (POST, form
// body with the client's id, secret and scope) and touches nothing else; a refused client is named by
// the OAuth error, without the secret.
func TestSignInFetchesOneTokenAndNoData(t *testing.T) {
	var tokens, other atomic.Int64
	refuse := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/auth/token" {
			other.Add(1)
			http.NotFound(w, r)
			return
		}
		tokens.Add(1)
		_ = r.ParseForm()
		if r.Method != "POST" || r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("client_id") != "org-1" ||
			r.PostForm.Get("client_secret") != "s3cret" || r.PostForm.Get("scope") != "signicat-api" {
			http.Error(w, "unexpected token request", 400)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		if refuse {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"client s3cret unknown"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"t","expires_in":600,"token_type":"Bearer"}`))
	}))
	defer srv.Close()
	cfg := &config.Signicat{BaseURL: srv.URL + "/am", TokenURL: srv.URL + "/auth/token", ClientID: "org-1", ClientSecret: "s3cret",
		Since: config.Date{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}}
	if err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).SignIn(t.Context()); err != nil {
		t.Fatal(err)
	}
	if tokens.Load() != 1 || other.Load() != 0 {
		t.Errorf("%d token requests and %d others, want 1 and 0", tokens.Load(), other.Load())
	}
	refuse = true
	err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).SignIn(t.Context())
	if err == nil || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("refused client: %v", err)
	}
}
