package pipeline

import (
	"context"
	"iter"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// bodyStream serves raw response bodies, decoded by the pipeline as the sources' pages are.
func bodyStream(name string, bodies ...string) *sources.Stream {
	return &sources.Stream{Source: "test", Name: name, Stats: &httpclient.Stats{},
		Pages: func(ctx context.Context) iter.Seq2[sources.Page, error] {
			return func(yield func(sources.Page, error) bool) {
				for i, b := range bodies {
					if !yield(sources.Page{Body: []byte(b), Where: "GET /list?page=" + string(rune('1'+i))}, nil) {
						return
					}
				}
			}
		}}
}

func tempConfig(t *testing.T) *config.Config {
	dir := t.TempDir()
	return &config.Config{OutputDir: filepath.Join(dir, "lake"), Warehouse: filepath.Join(dir, "wh.duckdb"), Concurrency: 2}
}

// A null answer is an empty page, and the run says so: the stream succeeds with the rows of its other
// pages and a warning naming the request.
func TestNullBodyIsAnEmptyPageWithAWarning(t *testing.T) {
	cfg := tempConfig(t)
	res, err := RunStreams(context.Background(), Options{Config: cfg}, []*sources.Stream{bodyStream("lists", `[{"a":1},{"a":2}]`, " null\n", `[{"a":3}]`)})
	if err != nil || len(res.Failed) > 0 {
		t.Fatalf("run: %v %+v", err, res)
	}
	rep := res.Manifest.Streams[0]
	if rep.Rows != 3 {
		t.Errorf("rows %d, want 3", rep.Rows)
	}
	if w := strings.Join(rep.Warnings, "; "); !strings.Contains(w, "GET /list?page=2: the response is null, read as an empty list") {
		t.Errorf("warnings %q do not name the null page", w)
	}
	if n := scalar[int](t, query(t, cfg), "SELECT sum(a) FROM test_lists"); n != 6 {
		t.Errorf("sum(a) = %d, want 6", n)
	}
}
