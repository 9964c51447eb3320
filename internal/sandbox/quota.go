package sandbox

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// quotaWindow is a request quota per fixed window, as ASP.NET's AspNetCoreRateLimit keeps one (GSAPI's
// published reference shows its headers on an answer: X-Rate-Limit-Limit 1m, X-Rate-Limit-Remaining
// 149, X-Rate-Limit-Reset 2026-05-29T13:25:11.6264598Z). A window starts at the first request after
// the last one ended; every request counts, the refused ones too.
type quotaWindow struct {
	mu     sync.Mutex
	limit  int
	period time.Duration
	start  time.Time
	count  int
}

// take counts a request arriving at now: left is what the window still allows after it, reset when
// the window ends, and ok whether the request is within the quota.
func (q *quotaWindow) take(now time.Time) (left int, reset time.Time, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.start.IsZero() || !now.Before(q.start.Add(q.period)) {
		q.start, q.count = now, 0
	}
	q.count++
	return max(0, q.limit-q.count), q.start.Add(q.period), q.count <= q.limit
}

// serve answers a request past the quota as AspNetCoreRateLimit does (429, a plain-text message and
// Retry-After in whole seconds, no X-Rate-Limit headers) and reports whether it did; a request within
// it gets the X-Rate-Limit headers, the reset in .NET's round-trip format.
func (q *quotaWindow) serve(w http.ResponseWriter, now time.Time) bool {
	left, reset, ok := q.take(now)
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(math.Round(reset.Sub(now).Seconds())))))
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprintf(w, "API calls quota exceeded! maximum admitted %d per %s.", q.limit, periodText(q.period))
		return true
	}
	w.Header().Set("X-Rate-Limit-Limit", periodText(q.period))
	w.Header().Set("X-Rate-Limit-Remaining", strconv.Itoa(left))
	w.Header().Set("X-Rate-Limit-Reset", reset.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	return false
}

// periodText writes a period as AspNetCoreRateLimit's rules name it: 1s, 15m, 12h, 7d.
func periodText(d time.Duration) string {
	for _, u := range []struct {
		d      time.Duration
		suffix string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.suffix
		}
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
