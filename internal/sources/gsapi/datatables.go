package gsapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/spool"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// datatableStreams are POST /datatable/list for each configured table. Config: the table's key and
// sortorder (refused at load time without them). Every page after the first is planned from the total
// and fetched concurrently (FanOut).
func (s *Source) datatableStreams() []sources.Spec {
	out := make([]sources.Spec, 0, len(s.cfg.Datatables))
	for _, dt := range s.cfg.Datatables {
		out = append(out, sources.Spec{Name: "datatable_" + schemas.ColumnName(dt.Table), Endpoint: "POST /datatable/list?tablename=" + dt.Table,
			Mode: sources.Incremental, Key: []string{dt.Key}, FanOut: true, Pages: s.datatablePages(dt)})
	}
	return out
}

// datatablePages reads POST /datatable/list for one configured table: page 1 gives the total in
// X-GSAPI-QueryTotalCount, which plans the other pages, fetched concurrently. Without a working
// sortorder the API silently returns page 1 for every page, so a page identical to another, or a row
// count that differs from the total, fails the stream (its files are discarded: nothing doubles).
// Later runs ask only for rows past the key's watermark (filter "greater").
func (s *Source) datatablePages(dt config.Datatable) sources.PageFunc {
	return func(ctx context.Context, st *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) {
			r := &datatableRead{s: s, dt: dt, st: st, body: datatableBody(dt, st), where: "POST /datatable/list?tablename=" + dt.Table}
			first, total, h1, err := r.fetch(ctx, 1)
			if err != nil {
				yield(sources.Page{}, err)
				return
			}
			pages := (total + dt.PageSize - 1) / dt.PageSize
			if pages > s.limits.MaxPages {
				first.Close()
				yield(sources.Page{}, fmt.Errorf("%s: X-GSAPI-QueryTotalCount %d would take %d pages of %d, more than max_pages (%d)", r.where, total, pages, dt.PageSize, s.limits.MaxPages))
				return
			}
			r.seen = map[[32]byte]int{h1: 1}
			if !yield(first, nil) {
				return
			}
			rest := make([]int, 0, max(0, pages-1))
			for p := 2; p <= pages; p++ {
				rest = append(rest, p)
			}
			for p, err := range sources.Parallel(httpclient.Then(ctx), sources.WindowsInFlight, rest, r.later) {
				if err != nil {
					yield(sources.Page{}, err)
					return
				}
				if !yield(p, nil) {
					return
				}
			}
			if n := r.rows.Load(); n != int64(total) {
				yield(sources.Page{}, fmt.Errorf("%s: read %d rows but X-GSAPI-QueryTotalCount said %d; the table changed during the read or paging is broken", r.where, n, total))
			}
		}
	}
}

// datatableBody is the request body: the sortorder, and past a watermark a filter on the key.
func datatableBody(dt config.Datatable, st *sources.State) []byte {
	body := map[string]any{"sortorder": dt.Sortorder}
	if st != nil && st.Watermark != "" {
		var v any = st.Watermark
		if n, err := strconv.ParseInt(st.Watermark, 10, 64); err == nil {
			v = n
		}
		body["filters"] = []any{map[string]any{"column": dt.Key, "filter": []any{map[string]any{"operator": "greater", "value": v}}}}
	}
	raw, _ := json.Marshal(body)
	return raw
}

// datatableRead is one read of a table: its pages' digests, to catch a page served twice, and the
// rows read, to compare with the total.
type datatableRead struct {
	s     *Source
	dt    config.Datatable
	st    *sources.State
	body  []byte
	where string
	rows  atomic.Int64
	mu    sync.Mutex
	seen  map[[32]byte]int // digest → page
}

// fetch asks for one page and returns it with the total it announces and its digest.
func (r *datatableRead) fetch(ctx context.Context, page int) (sources.Page, int, [32]byte, error) {
	s, dt := r.s, r.dt
	q := url.Values{"tablename": {dt.Table}, "page": {strconv.Itoa(page)}, "pagesize": {strconv.Itoa(dt.PageSize)}}
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "POST", URL: s.base + "/datatable/list?" + q.Encode(), Body: r.body,
		Header: map[string][]string{"Content-Type": {"application/json"}}, Auth: s.auth, MaxBytes: int64(s.limits.MaxPageBytes)})
	if err != nil {
		return sources.Page{}, 0, [32]byte{}, err
	}
	total, err := strconv.Atoi(resp.Header.Get("X-GSAPI-QueryTotalCount"))
	if err != nil || total < 0 {
		resp.Body.Close()
		return sources.Page{}, 0, [32]byte{}, fmt.Errorf("%s page %d: X-GSAPI-QueryTotalCount is %q, not a count", r.where, page, resp.Header.Get("X-GSAPI-QueryTotalCount"))
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body.Reader()); err != nil {
		resp.Body.Close()
		return sources.Page{}, 0, [32]byte{}, err
	}
	p := sources.Page{Body: resp.Body, MaxValue: int(s.limits.MaxValueBytes), Where: fmt.Sprintf("%s page %d", r.where, page), Keep: r.count}
	return p, total, [32]byte(h.Sum(nil)), nil
}

// later fetches a page after the first; one identical to a page before it (and not empty) means the
// server ignored the sortorder, and fails the read.
func (r *datatableRead) later(ctx context.Context, page int) (sources.Page, error) {
	pg, _, h, err := r.fetch(ctx, page)
	if err != nil {
		return pg, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if other, dup := r.seen[h]; dup && !emptyArray(pg.Body) {
		pg.Close()
		return sources.Page{}, fmt.Errorf("%s: page %d is identical to page %d — the server ignored sortorder %v; failing instead of loading duplicates", r.where, page, other, r.dt.Sortorder)
	}
	r.seen[h] = page
	return pg, nil
}

// count counts a row as it is decoded and raises the watermark to its key.
func (r *datatableRead) count(rec sources.Record, _ []byte) bool {
	r.rows.Add(1)
	if r.st != nil && rec[r.dt.Key] != nil {
		r.st.Advance(fmt.Sprint(rec[r.dt.Key]))
	}
	return true
}

// emptyArray reports whether a body is an empty JSON array (pages past the end all look alike).
func emptyArray(b *spool.Body) bool {
	return b.InMemory() && jsonrec.IsEmptyArray(b.Mem())
}
