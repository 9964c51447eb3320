package gsapi

import (
	"context"
	"fmt"
	"hash/maphash"
	"iter"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// gsLayout is how window bounds are sent: the tenant's wall-clock time with milliseconds.
const gsLayout = "2006-01-02 15:04:05.000"

// How the windowed endpoints (datasync Invoices, InvoiceLines and Charges; the four journals) are read.
//
// From the spec: startdate and enddate are datetimes; enddate is inclusive (its default is "end of the
// current month", and the collection's journal example sends enddate=2022-05-31 23:59:59); a bare date
// means midnight at its start; timestamps carry milliseconds (…23:59:59.997, …07:45:24.867).
//
// Assumption (no source states it): the server compares at millisecond precision or finer. Each window
// is a calendar month of the tenant's wall clock, [first day 00:00:00.000, last day 23:59:59.999]:
// adjacent windows share no instant, so a record at 23:59:59.997 and one at 00:00:00.000 each land once
// and no key is needed at the boundary. If the server instead keeps SQL Server's datetime (1/300 s —
// the .997 in the examples suggests it), it reads 23:59:59.999 as the next midnight, and a record at
// exactly 00:00:00.000 comes back in both windows. Such a copy is byte-identical and holds that
// midnight (a date, or a datetime at 00:00:00 with zero fractions, in any of its fields), so it is
// recognised and kept once, in the later window (the one the record's instant belongs to), and counted
// in the run report. Nothing else is ever dropped: two records of one window are both kept even when
// they are identical; copies that differ in any byte are both kept; and identical records of adjacent
// windows that hold no such midnight are both kept — a journal's grouped rows or a monthly charge
// repeat month after month, and are no boundary copies.
//
// Windows are whole months, from the month of `since`, and a later run starts at the first day of the
// month its watermark minus lookback_days falls in: every run cuts the same months, so a window fetched
// again is the same window, and its new rows replace its old ones in the current state (Windowed).

// monthWindows are the whole months from the month of from up to until (the last one ends a
// millisecond before until), newest first.
func monthWindows(from, until time.Time) []dates.Window {
	start := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC)
	ws := sources.MonthWindows(start, until)
	for i, j := 0, len(ws)-1; i < j; i, j = i+1, j-1 {
		ws[i], ws[j] = ws[j], ws[i]
	}
	return ws
}

// digest identifies a record by its bytes as the API sent them, to recognise a copy two overlapping
// requests both returned: two 64-bit hashes, so different bytes share a digest with a chance of 2^-128.
type digest [2]uint64

var digestSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func digestOf(raw []byte) digest {
	return digest{maphash.Bytes(digestSeeds[0], raw), maphash.Bytes(digestSeeds[1], raw)}
}

// boundary keeps a window's records once when the next window returned the same bytes (see above).
// Windows are read newest first, so when a window's records are read the next window's are all known.
type boundary struct {
	mu      sync.Mutex
	next    map[digest]bool // digests of the window read just before (the later one)
	cur     map[digest]bool
	dropped int
}

func newBoundary() *boundary { return &boundary{cur: map[digest]bool{}} }

// keep reports whether a record of the window being read is not a copy of one of the later window
// dated at the midnight that window starts at (day, "2006-01-02").
func (b *boundary) keep(r sources.Record, raw []byte, day string) bool {
	d := digestOf(raw)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.cur[d] = true
	if b.next[d] && holdsMidnight(r, day) {
		b.dropped++
		return false
	}
	return true
}

// holdsMidnight reports whether v, or a value nested in it, is day as a date or as a datetime at its
// midnight: the one instant at which a record can come back in two adjacent windows.
func holdsMidnight(v any, day string) bool {
	switch v := v.(type) {
	case string:
		return isMidnight(v, day)
	case map[string]any:
		for _, e := range v {
			if holdsMidnight(e, day) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if holdsMidnight(e, day) {
				return true
			}
		}
	}
	return false
}

// isMidnight reports whether s is day ("2006-01-02"), or day at 00:00:00 ("T" or " " between, any
// number of zero fractions) with or without a zone.
func isMidnight(s, day string) bool {
	rest, ok := strings.CutPrefix(s, day)
	if !ok || rest == "" {
		return ok
	}
	if rest[0] != 'T' && rest[0] != ' ' {
		return false
	}
	if rest, ok = strings.CutPrefix(rest[1:], "00:00:00"); !ok {
		return false
	}
	if frac, found := strings.CutPrefix(rest, "."); found {
		rest = strings.TrimLeft(frac, "0")
		if len(rest) == len(frac) {
			return false
		}
	}
	return rest == "" || rest == "Z" || rest[0] == '+' || rest[0] == '-'
}

// done moves on to the window before the one just read.
func (b *boundary) done() {
	b.mu.Lock()
	b.next, b.cur = b.cur, map[digest]bool{}
	b.mu.Unlock()
}

// windowed fetches path in month windows from the stream's start to tomorrow, several at once, and
// yields them newest first, each record once (see above). The watermark is the day the run reached.
func (s *Source) windowed(ctx context.Context, st *sources.State, path string, q url.Values) iter.Seq2[sources.Page, error] {
	now := s.now().UTC()
	from := s.cfg.Since.Time
	if st != nil && st.Windows {
		// A state written before windows were whole months and recorded (st.Windows false) starts over
		// from since: the rows it loaded carry no window for the new ones to replace.
		from = sources.WindowStart(from, st, s.cfg.LookbackDays)
	}
	ws := monthWindows(from, sources.Tomorrow(now))
	b := newBoundary()
	fetch := func(ctx context.Context, w dates.Window) (sources.Page, error) {
		wq := url.Values{}
		for k, v := range q {
			wq[k] = v
		}
		wq.Set("startdate", w.Start.Format(gsLayout))
		wq.Set("enddate", w.End.Format(gsLayout))
		page, err := s.get(ctx, path, wq, true)
		page.Window = &w
		day := w.End.Add(time.Millisecond).Format(time.DateOnly) // the next window's first midnight
		page.Keep = func(r sources.Record, raw []byte) bool { return b.keep(r, raw, day) }
		return page, err
	}
	return func(yield func(sources.Page, error) bool) {
		for p, err := range sources.InOrder(ctx, sources.WindowsInFlight, ws, fetch) {
			if !yield(p, err) || err != nil {
				return
			}
			b.done()
		}
		if b.dropped > 0 {
			note := fmt.Sprintf("%d records came back in two adjacent windows byte for byte, dated at the midnight between them (the server reads the window end 23:59:59.999 as the next midnight): each was kept once, in the later window", b.dropped)
			if !yield(sources.Page{Note: note}, nil) {
				return
			}
		}
		if st != nil {
			st.AdvanceDate(now.Format("2006-01-02"))
			st.MarkWindows()
		}
	}
}
