package gsapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// A row count that differs from X-GSAPI-QueryTotalCount fails the stream instead of loading a partial table.
func TestDatatableRowCountMustMatchTotal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer jwt" {
			w.WriteHeader(401)
			return
		}
		page := r.URL.Query().Get("page")
		w.Header().Set("X-GSAPI-QueryTotalCount", "5")
		switch page {
		case "1":
			_, _ = w.Write([]byte(`[{"raw_id":1},{"raw_id":2}]`))
		case "2":
			_, _ = w.Write([]byte(`[{"raw_id":3},{"raw_id":4}]`))
		default: // the fifth row vanished between pages
			_, _ = w.Write([]byte(`[]`))
		}
	}))
	defer srv.Close()
	zero := 0
	cfg := &config.GSAPI{BaseURL: srv.URL, JWT: "jwt", OrgID: &zero, Streams: []string{"datatable_t"},
		Datatables: []config.Datatable{{Table: "t", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 2}}}
	streams, err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).Streams()
	if err != nil || len(streams) != 1 {
		t.Fatal(err)
	}
	var lastErr error
	for p, err := range streams[0].Pages(context.Background(), sources.Resume{}) {
		if err == nil {
			_, err = p.Each(func(sources.Record) error { return nil }) // read as the pipeline reads it
		}
		lastErr = err
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), "read 4 rows but X-GSAPI-QueryTotalCount said 5") {
		t.Fatalf("err = %v", lastErr)
	}
}
