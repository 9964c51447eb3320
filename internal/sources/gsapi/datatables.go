package gsapi

import (
	"bytes"
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
		return s.datatableRead(ctx, st, dt)
	}
}

// datatableRead reads one configured table: see datatablePages.
func (s *Source) datatableRead(ctx context.Context, st *sources.State, dt config.Datatable) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		body := map[string]any{"sortorder": dt.Sortorder}
		if st != nil && st.Watermark != "" {
			var v any = st.Watermark
			if n, err := strconv.ParseInt(st.Watermark, 10, 64); err == nil {
				v = n
			}
			body["filters"] = []any{map[string]any{"column": dt.Key, "filter": []any{map[string]any{"operator": "greater", "value": v}}}}
		}
		raw, _ := json.Marshal(body)
		where := fmt.Sprintf("POST /datatable/list?tablename=%s", dt.Table)
		var rows atomic.Int64
		count := func(r sources.Record, _ []byte) bool {
			rows.Add(1)
			if st != nil && r[dt.Key] != nil {
				st.Advance(fmt.Sprint(r[dt.Key]))
			}
			return true
		}
		fetch := func(ctx context.Context, page int) (sources.Page, int, [32]byte, error) {
			q := url.Values{"tablename": {dt.Table}, "page": {strconv.Itoa(page)}, "pagesize": {strconv.Itoa(dt.PageSize)}}
			resp, err := s.client.Do(ctx, httpclient.Request{Method: "POST", URL: s.base + "/datatable/list?" + q.Encode(), Body: raw,
				Header: map[string][]string{"Content-Type": {"application/json"}}, Auth: s.auth, MaxBytes: int64(s.limits.MaxPageBytes)})
			if err != nil {
				return sources.Page{}, 0, [32]byte{}, err
			}
			total, err := strconv.Atoi(resp.Header.Get("X-GSAPI-QueryTotalCount"))
			if err != nil || total < 0 {
				resp.Body.Close()
				return sources.Page{}, 0, [32]byte{}, fmt.Errorf("%s page %d: X-GSAPI-QueryTotalCount is %q, not a count", where, page, resp.Header.Get("X-GSAPI-QueryTotalCount"))
			}
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body.Reader()); err != nil {
				resp.Body.Close()
				return sources.Page{}, 0, [32]byte{}, err
			}
			p := sources.Page{Body: resp.Body, MaxValue: int(s.limits.MaxValueBytes), Where: fmt.Sprintf("%s page %d", where, page), Keep: count}
			return p, total, [32]byte(h.Sum(nil)), nil
		}
		first, total, h1, err := fetch(ctx, 1)
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		pages := (total + dt.PageSize - 1) / dt.PageSize
		if pages > s.limits.MaxPages {
			first.Close()
			yield(sources.Page{}, fmt.Errorf("%s: X-GSAPI-QueryTotalCount %d would take %d pages of %d, more than max_pages (%d)", where, total, pages, dt.PageSize, s.limits.MaxPages))
			return
		}
		var mu sync.Mutex
		seen := map[[32]byte]int{h1: 1}
		if !yield(first, nil) {
			return
		}
		rest := make([]int, 0, max(0, pages-1))
		for p := 2; p <= pages; p++ {
			rest = append(rest, p)
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), sources.WindowsInFlight, rest, func(ctx context.Context, page int) (sources.Page, error) {
			pg, _, h, err := fetch(ctx, page)
			if err != nil {
				return pg, err
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := seen[h]; dup && !emptyArray(pg.Body) {
				pg.Close()
				return sources.Page{}, fmt.Errorf("%s: page %d is identical to page %d — the server ignored sortorder %v; failing instead of loading duplicates", where, page, other, dt.Sortorder)
			}
			seen[h] = page
			return pg, nil
		}) {
			if err != nil {
				yield(sources.Page{}, err)
				return
			}
			if !yield(p, nil) {
				return
			}
		}
		if n := rows.Load(); n != int64(total) {
			yield(sources.Page{}, fmt.Errorf("%s: read %d rows but X-GSAPI-QueryTotalCount said %d; the table changed during the read or paging is broken", where, n, total))
		}
	}
}

// emptyArray reports whether a body is an empty JSON array (pages past the end all look alike).
func emptyArray(b *spool.Body) bool {
	return b.InMemory() && string(bytes.Trim(b.Mem(), " \t\r\n")) == "[]"
}
