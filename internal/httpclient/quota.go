package httpclient

import (
	"net/http"
	"strconv"
	"time"
)

// A host may announce a request quota on its answers. GSAPI's published reference shows one answer
// with X-Rate-Limit-Limit: 1m, X-Rate-Limit-Remaining: 149 and X-Rate-Limit-Reset:
// 2026-05-29T13:25:11.6264598Z: the headers of ASP.NET's AspNetCoreRateLimit, which answers a request
// past the quota 429 with a Retry-After until the window ends. The client keeps to an announced quota
// rather than meet it: what the window has left, less the requests already on their way, is what it
// sends before the window ends, and with none left the host is closed until then. Met instead, each
// request past it is a 429, an attempt spent and a cut of the concurrency limit, as if the host took
// fewer requests at once. Assumed, as nothing documents it: the quota counts every request to the
// host; a quota per endpoint closes the host a little early, as its 429 would.

// quotaAnnounced reads an answer's quota headers: the requests the window has left and how long until
// it ends. ok only when Remaining is a whole number and Reset a time ahead: measured on the server's
// own clock (its Date) when the two clocks disagree by more than Date's whole seconds, so a skew
// between them does not count. A wait longer than the period (X-Rate-Limit-Limit) is cut to the
// period; with no period, one longer than longest is not trusted (a real quota's 429 then says how
// long to wait).
func quotaAnnounced(h http.Header, now time.Time, longest time.Duration) (left int, d time.Duration, ok bool) {
	left, err := strconv.Atoi(h.Get("X-Rate-Limit-Remaining"))
	if err != nil || left < 0 {
		return 0, 0, false
	}
	reset, err := time.Parse(time.RFC3339Nano, h.Get("X-Rate-Limit-Reset"))
	if err != nil {
		return 0, 0, false
	}
	d = reset.Sub(now)
	// Date is whole seconds: within a second of it the client's clock is the finer measure.
	if date, err := http.ParseTime(h.Get("Date")); err == nil && (now.Sub(date) > 2*time.Second || date.Sub(now) > time.Second) {
		d = reset.Sub(date)
	}
	period, known := quotaPeriod(h.Get("X-Rate-Limit-Limit"))
	switch {
	case d <= 0:
		return 0, 0, false
	case known:
		return left, min(d, period, longest), true
	case d > longest:
		return 0, 0, false
	}
	return left, d, true
}

// budget records that the host's quota window allows left more requests to be sent until end; none
// left closes the host until then. Answers come back out of order: within a window the least budget
// stands.
func (hs *host) budget(now time.Time, left int, end time.Time) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if now.Before(hs.quotaEnd) {
		left = min(left, hs.quotaLeft)
		end = hs.quotaEnd
	}
	hs.quotaLeft, hs.quotaEnd = left, end
	if left <= 0 {
		hs.closeLocked(now, end)
	}
}

// spend takes a request from the quota window's budget as it is about to be sent: false, and the host
// closed until the window ends, when none is left. Outside a known window it always may.
func (hs *host) spend(now time.Time) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if !now.Before(hs.quotaEnd) {
		return true
	}
	if hs.quotaLeft <= 0 {
		hs.closeLocked(now, hs.quotaEnd)
		return false
	}
	hs.quotaLeft--
	return true
}

// quotaPeriod reads a period as AspNetCoreRateLimit's rules write one: a whole number and s, m, h or d.
func quotaPeriod(s string) (time.Duration, bool) {
	if len(s) < 2 {
		return 0, false
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	unit := map[byte]time.Duration{'s': time.Second, 'm': time.Minute, 'h': time.Hour, 'd': 24 * time.Hour}[s[len(s)-1]]
	if err != nil || n <= 0 || unit == 0 || n > int(365*24*time.Hour/unit) {
		return 0, false
	}
	return time.Duration(n) * unit, true
}
