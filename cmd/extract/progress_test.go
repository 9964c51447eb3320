package main

import (
	"fmt"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// lockedBuffer collects what the view draws (mpb writes from its own goroutine).
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The live view names the streams in flight with their requests, windows and units done and the time
// left against the last run, then the load and model phases; a log record printed meanwhile appears
// whole, on a line of its own, above the bars.
func TestLiveViewShowsStreamsThenPhases(t *testing.T) {
	var out lockedBuffer
	v := newLiveView(&out, 160, mpb.WithAutoRefresh())
	var invoiceRequests, lineRequests atomic.Int64
	invoices := &sources.Stream{Source: "gsapi", Name: "datasync_invoices", Meter: func() sources.Traffic { return sources.Traffic{Requests: invoiceRequests.Load()} }}
	lines := &sources.Stream{Source: "signicat", Name: "invoice_lines", Meter: func() sources.Traffic { return sources.Traffic{Requests: lineRequests.Load()} }}
	v.Start(pipeline.Plan{Streams: []pipeline.Planned{{Table: invoices.TableName(), Last: time.Minute}, {Table: lines.TableName()}},
		Last: pipeline.Phases{Extract: 60, Load: 10, Models: 2}})
	v.StreamStarted(invoices)
	v.StreamStarted(lines)
	for m := range 3 {
		start := time.Date(2024, time.Month(m+1), 1, 0, 0, 0, 0, time.UTC)
		v.Page(invoices, sources.Page{Window: &dates.Window{Start: start, End: start.AddDate(0, 1, 0)}})
		v.Page(invoices, sources.Page{Window: &dates.Window{Start: start, End: start.AddDate(0, 1, 0)}}) // a second page of it
		invoiceRequests.Add(2)
	}
	for i := range 1500 {
		v.Page(lines, sources.Page{Done: fmt.Sprint(i)})
	}
	lineRequests.Add(1501)
	slog.New(slog.NewTextHandler(v, nil)).Warn("stream warning", "table", "gsapi_datasync_invoices", "warning", "a null page")
	settle()
	v.StreamDone(invoices, lake.StreamReport{Status: "ok"})
	v.StreamDone(lines, lake.StreamReport{Status: "ok"})
	v.Phase(pipeline.PhaseLoad, 10*time.Second)
	settle()
	v.Phase(pipeline.PhaseModels, 0)
	settle()
	v.Stop()
	got := out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  gsapi_datasync_invoices +\[.*\] 6 requests · 3 windows · \ds · about (1m00s|5\ds) left$`),
		regexp.MustCompile(`(?m)^  signicat_invoice_lines +\S+ +1,501 requests · 1,500 done · \ds$`),
		regexp.MustCompile(`(?m)^run +\[.*\] 0/2 streams done · 1,507 requests · 0 B · \ds · about 1m1\ds left$`),
		regexp.MustCompile(`(?m)^run .* 2/2 streams done`),
		regexp.MustCompile(`(?m)^  loading the warehouse +\[.*\] \ds · about \d+s left$`),
		regexp.MustCompile(`(?m)^  building the models, running the data tests +\S+ +\ds$`),
		regexp.MustCompile(`(?m)^time=\S+ level=WARN msg="stream warning" table=gsapi_datasync_invoices warning="a null page"$`),
	} {
		if !want.MatchString(got) {
			t.Errorf("the view never showed %s:\n%s", want, got)
		}
	}
	// After Stop, log lines go straight out.
	fmt.Fprintln(v, "after")
	if !strings.HasSuffix(out.String(), "\nafter\n") {
		t.Errorf("a line after Stop: %q", out.String()[max(0, len(out.String())-80):])
	}
}

// settle lets the view draw a few frames.
func settle() {
	time.Sleep(400 * time.Millisecond)
	runtime.Gosched()
}
