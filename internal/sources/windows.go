package sources

import (
	"time"

	"github.com/ledgerlake/ledgerlake/internal/dates"
)

// WindowsInFlight is how many date windows of one stream are fetched at once: with 20 ms latency, 4
// left the host limit idle while the listings that start every fan-out stream ran (make bench); a
// window's body is decoded only as it is read, so more in flight costs their raw bytes alone.
const WindowsInFlight = 8

// FanOutLimit is how many per-record requests (an invoice's detail, its PDF, its charges) one stream
// keeps going at once: more than any host allows, so that the host's found limit decides
// (httpclient), not the stream.
const FanOutLimit = 64

// MonthWindows covers [since, until) with calendar months (UTC wall clock): no gap, no overlap; each
// window ends a millisecond before the next one starts (the last a millisecond before until). How a
// window's ends are sent, and how much they overlap, is each endpoint's business.
func MonthWindows(since, until time.Time) []dates.Window {
	var out []dates.Window
	for from := since; from.Before(until); {
		to := time.Date(from.Year(), from.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		if to.After(until) {
			to = until
		}
		out = append(out, dates.Window{Start: from, End: to.Add(-time.Millisecond)})
		from = to
	}
	return out
}

// WindowStart is where an incremental windowed read starts: since on a first or full-refresh run, else the
// stored watermark (a YYYY-MM-DD day) minus lookbackDays, never before since; always a UTC midnight.
func WindowStart(since time.Time, st *State, lookbackDays int) time.Time {
	if st != nil && st.Watermark != "" {
		if w, err := time.Parse("2006-01-02", st.Watermark); err == nil {
			if back := w.AddDate(0, 0, -lookbackDays); back.After(since) {
				since = back
			}
		}
	}
	return time.Date(since.Year(), since.Month(), since.Day(), 0, 0, 0, 0, time.UTC)
}

// Tomorrow is the end of a windowed read that runs up to now: the next UTC midnight.
func Tomorrow(now time.Time) time.Time {
	now = now.UTC()
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(0, 0, 1)
}
