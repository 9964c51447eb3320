package httpclient

import (
	"context"
	"encoding/base64"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/sandbox"
)

// quotaAnnounced trusts the headers only as far as they make sense: a count, a reset ahead (on the
// server's clock when the clocks disagree), and a wait no longer than the period (or longest, without
// one).
func TestQuotaAnnouncedReadsTheHeadersOfTheReference(t *testing.T) {
	now := time.Date(2026, 5, 29, 13, 24, 20, 0, time.UTC)
	h := func(limit, left, reset, date string) http.Header {
		out := http.Header{}
		for k, v := range map[string]string{"X-Rate-Limit-Limit": limit, "X-Rate-Limit-Remaining": left, "X-Rate-Limit-Reset": reset, "Date": date} {
			if v != "" {
				out.Set(k, v)
			}
		}
		return out
	}
	cases := []struct {
		name   string
		header http.Header
		left   int
		wait   time.Duration // 0: not read
	}{
		{"the reference's answer", h("1m", "149", "2026-05-29T13:25:11.6264598Z", ""), 149, 51626459800},
		{"spent", h("1m", "0", "2026-05-29T13:25:11.6264598Z", ""), 0, 51626459800},
		{"the server's clock 3 minutes behind", h("1m", "0", now.Add(-3*time.Minute+20*time.Second).Format(time.RFC3339Nano), now.Add(-3*time.Minute).Format(http.TimeFormat)), 0, 20 * time.Second},
		{"Date within its second: the client's finer clock", h("1m", "0", "2026-05-29T13:24:30.5Z", now.Add(-500*time.Millisecond).Format(http.TimeFormat)), 0, 10500 * time.Millisecond},
		{"reset passed", h("1m", "0", "2026-05-29T13:24:00Z", ""), 0, 0},
		{"reset past the period: the period", h("1m", "0", "2027-01-01T00:00:00Z", ""), 0, time.Minute},
		{"no period, reset within longest", h("", "3", "2026-05-29T13:30:20Z", ""), 3, 6 * time.Minute},
		{"no period, reset past longest", h("", "0", "2026-05-29T14:00:20Z", ""), 0, 0},
		{"a period without a unit is not read: the reset alone", h("60", "0", "2026-05-29T13:25:20Z", ""), 0, time.Minute},
		{"remaining not a count", h("1m", "-1", "2026-05-29T13:25:11Z", ""), 0, 0},
		{"remaining not a number", h("1m", "none", "2026-05-29T13:25:11Z", ""), 0, 0},
		{"reset not a time", h("1m", "0", "1780061111", ""), 0, 0},
		{"no headers", http.Header{}, 0, 0},
	}
	for _, c := range cases {
		left, d, ok := quotaAnnounced(c.header, now, 15*time.Minute)
		if ok != (c.wait > 0) || d != c.wait || left != c.left {
			t.Errorf("%s: %d left for %v (%v), want %d for %v", c.name, left, d, ok, c.left, c.wait)
		}
	}
}

// The budget of a window: what an answer says is left less what is on its way, the least of two
// answers in one window, a request sent spends one, and none left closes the host until the window
// ends, after which anything goes until the next answer.
func TestQuotaBudgetKeepsToTheWindow(t *testing.T) {
	now := time.Now()
	end := now.Add(time.Second)
	hs := &host{}
	hs.budget(now, 2, end)
	hs.budget(now, 5, end.Add(time.Millisecond)) // an older answer, read later
	for i := range 2 {
		if !hs.spend(now) {
			t.Fatalf("a budget of 2 refused request %d", i+1)
		}
	}
	if hs.spend(now) || !hs.paused() || hs.pause != end {
		t.Fatalf("a spent budget: pause %v, want the host closed until %v", hs.pause, end)
	}
	if !hs.spend(end) {
		t.Error("after the window a request waits")
	}
	if hs.budget(end, 0, end.Add(time.Second)); hs.pause != end.Add(time.Second) || hs.closed != 2*time.Second {
		t.Errorf("a new window's answer with nothing left: pause %v, closed %v; want until its end, 2 s in all", hs.pause, hs.closed)
	}
}

// Against a host that keeps a quota of 10 requests a second and says so, 40 requests at up to 8 at a
// time are all answered across four windows, and none is refused.
func TestSpentQuotaClosesTheHostUntilTheWindowEnds(t *testing.T) {
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.01, Quota: 10, QuotaPeriod: time.Second, Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	c := New(Options{PerHostConcurrency: 8, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	auth := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(sandbox.GSAPIUser+":"+sandbox.GSAPIPassword))}}
	start := time.Now()
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, err := c.Do(context.Background(), Request{Method: "GET", URL: srv.GSAPIBaseURL() + "/welcome", Header: auth}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	h := c.Hosts()[0]
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("40 requests at 10 a second took %v", d)
	}
	if h.Throttled > 0 || srv.Stats.RateLimited.Load() > 0 {
		t.Errorf("%d answers 429 (the sandbox refused %d), want none", h.Throttled, srv.Stats.RateLimited.Load())
	}
	if h.PausedSeconds < 2 {
		t.Errorf("the host was closed %.2fs, want most of three windows", h.PausedSeconds)
	}
}
