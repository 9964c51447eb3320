package signicat

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// A next token the API repeats would loop forever: the stream fails, naming the token.
func TestRepeatedNextTokenFailsTheStream(t *testing.T) {
	var pages int
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"access_token":"t","expires_in":600,"token_type":"Bearer"}`))
	})
	mux.HandleFunc("GET /am/contacts", func(w http.ResponseWriter, r *http.Request) {
		pages++
		if r.Header.Get("Authorization") != "Bearer t" || r.URL.Query().Get("limit") != "25" {
			http.Error(w, "bad request", 400)
			return
		}
		_, _ = fmt.Fprintf(w, `{"data":[{"id":"c-%d"}],"next":"same-token"}`, pages) // new records: only the token repeats
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cfg := &config.Signicat{BaseURL: srv.URL + "/am", TokenURL: srv.URL + "/token", ClientID: "id", ClientSecret: "s", PageLimit: 25,
		Since: config.Date{Time: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}, Streams: []string{"contacts"}}
	streams, err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).Streams()
	if err != nil || len(streams) != 1 {
		t.Fatal(err)
	}
	var lastErr error
	for _, err := range streams[0].Pages(context.Background(), sources.Resume{}) {
		lastErr = err
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), `"same-token" a second time`) || pages != 2 {
		t.Fatalf("err %v after %d pages", lastErr, pages)
	}
}
