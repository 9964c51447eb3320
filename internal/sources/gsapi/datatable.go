package gsapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"sync"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// datatablePages reads POST /datatable/list for one configured table: page 1 gives the total in
// X-GSAPI-QueryTotalCount, which plans the other pages, fetched concurrently. Without a working
// sortorder the API silently returns page 1 for every page, so a page identical to another, or a row
// count that differs from the total, fails the stream (its files are discarded: nothing doubles).
// Later runs ask only for rows past the key's watermark (filter "greater").
func (s *Source) datatablePages(ctx context.Context, stats *httpclient.Stats, st *sources.State, dt config.Datatable) iter.Seq2[sources.Page, error] {
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
		fetch := func(ctx context.Context, page int) (sources.Page, int, [32]byte, error) {
			q := url.Values{"tablename": {dt.Table}, "page": {strconv.Itoa(page)}, "pagesize": {strconv.Itoa(dt.PageSize)}}
			resp, err := s.client.Do(ctx, httpclient.Request{Method: "POST", URL: s.base + "/datatable/list?" + q.Encode(), Body: raw,
				Header: map[string][]string{"Content-Type": {"application/json"}}, Auth: s.auth, Stats: stats})
			if err != nil {
				return sources.Page{}, 0, [32]byte{}, err
			}
			total, err := strconv.Atoi(resp.Header.Get("X-GSAPI-QueryTotalCount"))
			if err != nil {
				return sources.Page{}, 0, [32]byte{}, fmt.Errorf("%s page %d: X-GSAPI-QueryTotalCount is %q, not a count", where, page, resp.Header.Get("X-GSAPI-QueryTotalCount"))
			}
			recs, err := sources.DecodeArray(resp.Body)
			if err != nil {
				return sources.Page{}, 0, [32]byte{}, fmt.Errorf("%s page %d: %w", where, page, err)
			}
			return sources.Page{Records: recs}, total, sha256.Sum256(resp.Body), nil
		}
		first, total, h1, err := fetch(ctx, 1)
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		pages := (total + dt.PageSize - 1) / dt.PageSize
		var mu sync.Mutex
		seen := map[[32]byte]int{h1: 1}
		rows := len(first.Records)
		advance := func(p sources.Page) {
			for _, r := range p.Records {
				if st != nil && r[dt.Key] != nil {
					st.Advance(fmt.Sprint(r[dt.Key]))
				}
			}
		}
		if !yield(first, nil) {
			return
		}
		advance(first)
		rest := make([]int, 0, max(0, pages-1))
		for p := 2; p <= pages; p++ {
			rest = append(rest, p)
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), 4, rest, func(ctx context.Context, page int) (sources.Page, error) {
			pg, _, h, err := fetch(ctx, page)
			if err != nil {
				return pg, err
			}
			mu.Lock()
			defer mu.Unlock()
			if other, dup := seen[h]; dup && len(pg.Records) > 0 {
				return sources.Page{}, fmt.Errorf("%s: page %d is identical to page %d — the server ignored sortorder %v; failing instead of loading duplicates", where, page, other, dt.Sortorder)
			}
			seen[h] = page
			rows += len(pg.Records)
			return pg, nil
		}) {
			if err != nil {
				yield(sources.Page{}, err)
				return
			}
			if !yield(p, nil) {
				return
			}
			advance(p)
		}
		if rows != total {
			yield(sources.Page{}, fmt.Errorf("%s: read %d rows but X-GSAPI-QueryTotalCount said %d; the table changed during the read or paging is broken", where, rows, total))
		}
	}
}
