package main

import (
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	// Not parallel: the view draws on a timer, and the test waits for frames by the wall clock.
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

// On a terminal that reports 0 columns and 0 rows (a serial console, a pty nobody sized) the view
// still draws a line per stream and the run's line, at most 80 columns wide: mpb draws only what the
// terminal's size holds, so it drew nothing at all. (At 80 columns the labels leave the fillers no
// room, as on any 80-column terminal.) The terminal is a real pty, its size set to 0x0.
func TestLiveViewDrawsOnATerminalOfNoColumns(t *testing.T) {
	// Not parallel: the view draws on a timer, and the test waits for frames by the wall clock.
	ptm, pts := openPTY(t)
	if err := unix.IoctlSetWinsize(int(pts.Fd()), unix.TIOCSWINSZ, &unix.Winsize{}); err != nil {
		t.Fatal(err)
	}
	if f := terminal(pts); f == nil {
		t.Fatal("the pty is not taken for a terminal: the test proves nothing")
	}
	var out lockedBuffer
	go io.Copy(&out, ptm) // ends when the pty closes
	v := newLiveView(pts, 0)
	s := &sources.Stream{Source: "gsapi", Name: "datasync_invoices", Meter: func() sources.Traffic { return sources.Traffic{Requests: 4} }}
	v.Start(pipeline.Plan{Streams: []pipeline.Planned{{Table: s.TableName(), Last: time.Minute}}, Last: pipeline.Phases{Extract: 60}})
	v.StreamStarted(s)
	settle()
	v.Stop()
	settle()
	got := regexp.MustCompile(`\x1b\[[0-9;]*[A-Za-z]|\r`).ReplaceAllString(out.String(), "")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  gsapi_datasync_invoices .*4 requests · \ds · about 1m00s left$`),
		regexp.MustCompile(`(?m)^run .*0/1 streams done · 4 requests`),
	} {
		if !want.MatchString(got) {
			t.Errorf("the view never drew %s on a terminal of 0 columns:\n%q", want, got)
		}
	}
	for _, line := range strings.Split(got, "\n") {
		if n := utf8.RuneCountInString(line); n > 80 {
			t.Errorf("a line of %d columns, want at most 80: %q", n, line)
		}
	}
}

// openPTY opens a pseudo-terminal pair (Linux /dev/ptmx); both ends close when the test ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pts.Close() })
	return ptm, pts
}
