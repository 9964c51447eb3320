package gsapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"iter"
	"net/url"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// gsLayout is how window bounds are sent: the tenant's wall-clock time with milliseconds.
const gsLayout = "2006-01-02 15:04:05.000"

// Windows are calendar months in the tenant's local time. Both ends are sent and both are inclusive on
// the server, so consecutive windows share exactly one instant (the next month's 00:00:00.000); the
// stream de-duplicates records by key, so a record at 23:59:59.997 or at 00:00:00.000 lands exactly
// once whatever precision the server keeps.

// dedup remembers the records a stream has yielded, by key fields when the record has them, else by
// its whole content, so the shared boundary instant of two windows never doubles a row.
type dedup struct {
	key  []string
	mu   sync.Mutex
	seen map[string]bool
}

func newDedup(key []string) *dedup { return &dedup{key: key, seen: map[string]bool{}} }

func (d *dedup) fresh(r typing.Record) bool {
	var id string
	complete := len(d.key) > 0
	for _, k := range d.key {
		v, ok := r[k]
		if !ok || v == nil {
			complete = false
			break
		}
		id += fmt.Sprintf("%v\x00", v)
	}
	if !complete {
		b, _ := json.Marshal(r) // map keys marshal sorted: a canonical form
		sum := sha256.Sum256(b)
		id = string(sum[:])
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[id] {
		return false
	}
	d.seen[id] = true
	return true
}

// page keeps the records of p not seen before, as p is read.
func (d *dedup) page(p sources.Page) sources.Page {
	keep := p.Keep
	p.Keep = func(r sources.Record) bool { return (keep == nil || keep(r)) && d.fresh(r) }
	return p
}

// windowed fetches path with startdate/enddate month windows from the stream's start to tomorrow,
// concurrently, and yields every record once. The watermark is the day the run reached.
func (s *Source) windowed(ctx context.Context, stats *httpclient.Stats, st *sources.State, path string, q url.Values, key []string) iter.Seq2[sources.Page, error] {
	now := time.Now().UTC()
	ws := sources.MonthWindows(sources.Resume(s.cfg.Since.Time, st, s.cfg.LookbackDays), sources.Tomorrow(now))
	dd := newDedup(key)
	fetch := func(ctx context.Context, w sources.Window) (sources.Page, error) {
		wq := url.Values{}
		for k, v := range q {
			wq[k] = v
		}
		wq.Set("startdate", w.From.Format(gsLayout))
		wq.Set("enddate", w.To.Format(gsLayout))
		page, err := s.get(ctx, stats, path, wq, false)
		return dd.page(page), err
	}
	return func(yield func(sources.Page, error) bool) {
		for p, err := range sources.Parallel(ctx, sources.WindowsInFlight, ws, fetch) {
			if !yield(p, err) || err != nil {
				return
			}
		}
		if st != nil {
			st.Advance(now.Format("2006-01-02"))
		}
	}
}

// get fetches an endpoint answering one JSON array; its records are decoded as the page is read. A
// spooled answer waits in a temporary file, not in memory, and keeps no Raw (no evidence stream reads
// a whole list).
func (s *Source) get(ctx context.Context, stats *httpclient.Stats, path string, q url.Values, spool bool) (sources.Page, error) {
	u := s.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Stats: stats, Spool: spool})
	if err != nil {
		return sources.Page{}, err
	}
	where := "GET " + path + "?" + q.Encode()
	if resp.Spooled != nil {
		return sources.Page{Spooled: resp.Spooled, Where: where}, nil
	}
	return sources.Page{Body: resp.Body, Where: where, Raw: &sources.Raw{Endpoint: where, Body: resp.Body}}, nil
}
