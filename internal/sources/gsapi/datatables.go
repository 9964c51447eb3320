package gsapi

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"iter"
	"net/url"
	"strconv"
	"sync"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/spool"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// What a datatable stream takes from the spec (gsapi.md, datatable/list) and what it assumes:
//   - spec: page (from 1) and pagesize (default 10,000) select the rows; sortorder is required to page;
//     X-GSAPI-QueryTotalCount is the total "to calculate how many pages to fetch"; filters take the
//     operators eq, neq, greater, lower, contains, isnull, isnotnull.
//   - spec: nothing says a key only grows, that rows are never changed or deleted, or that a table
//     holds still while it is paged. So by default every run reads the whole table (a snapshot that
//     replaces the last), and a read whose pages announce different totals, whose rows differ from the
//     total or that meets a key twice is read again, then fails.
//   - the user's config: the key, and append_only (an assumption the user declares, checked by counts).
//   - assumed: a server that returns fewer rows than the pagesize asked for while more remain caps its
//     pages, and page 1 then holds the first rows of the sortorder, as page 1 of that smaller size does.
//   - assumed: a page past the last row is an empty array (the spec does not say); the page after a
//     full last page is asked for (past), and one that errs or repeats a page fails the read.

// memoRows is the memo entry of an append_only table: the table's total the last verified read saw.
const memoRows = "_rows"

// datatableStreams are POST /datatable/list for each configured table: a snapshot read whole every run,
// or with append_only an incremental stream past the key's watermark.
func (s *Source) datatableStreams() []sources.Spec {
	out := make([]sources.Spec, 0, len(s.cfg.Datatables))
	for _, dt := range s.cfg.Datatables {
		sp := sources.Spec{Name: "datatable_" + schemas.ColumnName(dt.Table), Endpoint: "POST /datatable/list?tablename=" + dt.Table,
			Mode: sources.Snapshot, Key: []string{dt.Key}, FanOut: true, Pages: s.datatablePages(dt)}
		if dt.AppendOnly {
			sp.Mode, sp.Next = sources.Incremental, func(st *sources.State) string { return datatableNext(dt, st) }
		}
		out = append(out, sp)
	}
	return out
}

// datatableNext says what the next run of an append_only table asks for.
func datatableNext(dt config.Datatable, st *sources.State) string {
	var held int
	switch {
	case st.Watermark == "":
		return "the whole table (append_only, no watermark yet)"
	case !st.Recall(memoRows, &held):
		return "the whole table (append_only, but no row count from the last run to check a filtered read against)"
	}
	return fmt.Sprintf("the rows with %s greater than %s (append_only), checked against the table's total: %d rows held", dt.Key, st.Watermark, held)
}

// datatablePages reads POST /datatable/list for one configured table: page 1 gives the total in
// X-GSAPI-QueryTotalCount, which plans the other pages, fetched concurrently. Without a working
// sortorder the API silently returns page 1 for every page, so a page identical to another fails the
// stream (its files are discarded: nothing doubles). st is nil on a table read whole; with append_only
// and a watermark, only the rows with a greater key are asked for.
func (s *Source) datatablePages(dt config.Datatable) sources.PageFunc {
	return func(ctx context.Context, st *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) {
			r := &datatableRead{s: s, dt: dt, size: dt.PageSize, where: "POST /datatable/list?tablename=" + dt.Table,
				rows: map[int]int{}, keys: map[uint64]struct{}{}, seed: maphash.MakeSeed(), max: &sources.State{}}
			held, err := r.filter(ctx, st)
			if err != nil {
				yield(sources.Page{}, err)
				return
			}
			if !r.read(ctx, held, yield) {
				return
			}
			if st != nil {
				st.Advance(r.max.Next())
				st.Remember(memoRows, held+r.total)
			}
		}
	}
}

// filter prepares the request body. On an append_only table past a watermark it asks only for the
// rows with a greater key, and returns the rows the last run held (the table's unfiltered total then),
// which read checks the table's total now against; otherwise it asks for everything and returns 0.
func (r *datatableRead) filter(ctx context.Context, st *sources.State) (int, error) {
	var held int
	r.body = datatableBody(r.dt, "")
	if st == nil || st.Watermark == "" || !st.Recall(memoRows, &held) {
		return 0, nil
	}
	now, err := r.count(ctx)
	if err != nil {
		return 0, err
	}
	r.unfiltered, r.watermark = now, st.Watermark
	r.body = datatableBody(r.dt, st.Watermark)
	return held, nil
}

// read fetches every page of the table, yields them, and checks the read; it reports whether it
// completed (an error or a stop has been yielded otherwise).
func (r *datatableRead) read(ctx context.Context, held int, yield func(sources.Page, error) bool) bool {
	first, total, h1, err := r.fetch(ctx, 1)
	if err == nil && r.watermark != "" && held+total != r.unfiltered {
		err = &sources.MovedError{Err: fmt.Errorf("%s: the table holds %d rows, but the last run held %d and %d have %s greater than %s: rows were added below the watermark or deleted, so append_only does not hold for it — remove append_only (the table is then read whole every run)",
			r.where, r.unfiltered, held, total, r.dt.Key, r.watermark)}
	}
	if err == nil {
		r.total = total
		r.seen.Repeat(1, h1)
		_, err = r.plan()
	}
	if err != nil {
		first.Close() // nil-safe: a failed fetch returns no body
		yield(sources.Page{}, err)
		return false
	}
	if !yield(first, nil) {
		return false
	}
	rest, note, err := r.replan()
	if err != nil {
		yield(sources.Page{}, err)
		return false
	}
	for p, err := range sources.Parallel(httpclient.Then(ctx), sources.WindowsInFlight, rest, r.later) {
		if err == nil {
			p.Note, note = note, ""
		}
		if !yield(p, err) || err != nil {
			return false
		}
	}
	if !r.past(ctx, yield) {
		return false
	}
	if err := r.check(); err != nil {
		yield(sources.Page{}, err)
		return false
	}
	return true
}

// plan lists the pages after the first at the page size in use, refusing more than max_pages.
func (r *datatableRead) plan() ([]int, error) {
	pages := (r.total + r.size - 1) / r.size
	if pages > r.s.limits.MaxPages {
		return nil, fmt.Errorf("%s: X-GSAPI-QueryTotalCount %d would take %d pages of %d, more than max_pages (%d)", r.where, r.total, pages, r.size, r.s.limits.MaxPages)
	}
	rest := make([]int, 0, max(0, pages-1))
	for p := 2; p <= pages; p++ {
		rest = append(rest, p)
	}
	return rest, nil
}

// past asks for the page after the last one planned when that page came back full, and yields it; it
// reports whether that went well (or was not needed). A total understated by a multiple of the
// pagesize ends the plan on a full page, where the rows read agree with the total, so only the next
// page shows the rows it left out: it must be empty, and check fails the read on any rows it holds.
// A short last page shows the table ended there, so the common case costs nothing more; a table whose
// total is an exact multiple of the pagesize costs this one request more.
func (r *datatableRead) past(ctx context.Context, yield func(sources.Page, error) bool) bool {
	last := max(1, (r.total+r.size-1)/r.size)
	if r.pageRows(last) < r.size {
		return true
	}
	ctx = httpclient.Then(ctx) // it needs page 1's answer, and past page 1 the last page's too
	if last > 1 {
		ctx = httpclient.Then(ctx)
	}
	r.mu.Lock()
	r.after = last + 1
	r.mu.Unlock()
	pg, err := r.later(ctx, last+1)
	return yield(pg, err) && err == nil
}

// replan plans the pages after the first once page 1 has been read. A page 1 shorter than both the
// pagesize asked for and the total means the server caps its pages: the rest are then asked for at
// the size it returned, which is the same paging (page n of size k starts after row (n-1)·k), and a
// note says so.
func (r *datatableRead) replan() ([]int, string, error) {
	got := r.pageRows(1)
	if got == 0 || got >= min(r.size, r.total) {
		rest, err := r.plan()
		return rest, "", err
	}
	asked := r.size
	r.size = got
	rest, err := r.plan()
	note := fmt.Sprintf("%s: page 1 returned %d rows for pagesize %d while X-GSAPI-QueryTotalCount is %d: the server caps its pages, so the rest were read at pagesize %d (set pagesize: %d for this table to say so)",
		r.where, got, asked, r.total, got, got)
	return rest, note, err
}

// datatableBody is the request body: the sortorder, and past a watermark a filter on the key.
func datatableBody(dt config.Datatable, watermark string) []byte {
	body := map[string]any{"sortorder": dt.Sortorder}
	if watermark != "" {
		var v any = watermark
		if n, err := strconv.ParseInt(watermark, 10, 64); err == nil {
			v = n
		}
		body["filters"] = []any{map[string]any{"column": dt.Key, "filter": []any{map[string]any{"operator": "greater", "value": v}}}}
	}
	raw, _ := json.Marshal(body)
	return raw
}

// datatableRead is one read of a table: its pages' digests, to catch a page served twice; the rows
// read of each page and in all, to compare with the total; the keys read, to catch one read twice.
type datatableRead struct {
	s          *Source
	dt         config.Datatable
	body       []byte
	where      string
	size       int    // the pagesize in use
	total      int    // page 1's X-GSAPI-QueryTotalCount
	unfiltered int    // an append_only table's total before its filtered read
	watermark  string // the watermark an append_only read filters on ("" reads everything)
	max        *sources.State
	seed       maphash.Seed
	mu         sync.Mutex
	seen       sources.PageDigests // the pages' digests
	rows       map[int]int         // page → rows read
	keys       map[uint64]struct{} // the keys read, hashed
	twice      string              // a key read twice (the first found)
	after      int                 // the page asked for after the last one planned (0: none)
}

// post asks for one page of size rows of the read's body and returns it with the total it announces.
func (r *datatableRead) post(ctx context.Context, page, size int) (*httpclient.Response, int, error) {
	s := r.s
	q := url.Values{"tablename": {r.dt.Table}, "page": {strconv.Itoa(page)}, "pagesize": {strconv.Itoa(size)}}
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "POST", URL: s.base + "/datatable/list?" + q.Encode(), Body: r.body,
		Header: map[string][]string{"Content-Type": {"application/json"}}, Auth: s.auth, MaxBytes: int64(s.limits.MaxPageBytes)})
	if err != nil {
		return nil, 0, err
	}
	total, err := strconv.Atoi(resp.Header.Get("X-GSAPI-QueryTotalCount"))
	if err != nil || total < 0 {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("%s page %d: X-GSAPI-QueryTotalCount is %q, not a count", r.where, page, resp.Header.Get("X-GSAPI-QueryTotalCount"))
	}
	return resp, total, nil
}

// count is the table's unfiltered total: one request for a page of one row.
func (r *datatableRead) count(ctx context.Context) (int, error) {
	resp, total, err := r.post(ctx, 1, 1)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return total, nil
}

// fetch asks for one page and returns it with the total it announces and its digest.
func (r *datatableRead) fetch(ctx context.Context, page int) (sources.Page, int, [32]byte, error) {
	resp, total, err := r.post(ctx, page, r.size)
	if err != nil {
		return sources.Page{}, 0, [32]byte{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body.Reader()); err != nil {
		resp.Body.Close()
		return sources.Page{}, 0, [32]byte{}, err
	}
	keep := func(rec sources.Record, _ []byte) bool { r.counted(page, rec); return true }
	p := sources.Page{Body: resp.Body, MaxValue: int(r.s.limits.MaxValueBytes), Where: fmt.Sprintf("%s page %d", r.where, page), Keep: keep}
	return p, total, [32]byte(h.Sum(nil)), nil
}

// later fetches a page after the first. One that announces another total than page 1 means the table
// changed during the read; one identical to a page before it (and not empty) means the server ignored
// the sortorder. Either fails the read.
func (r *datatableRead) later(ctx context.Context, page int) (sources.Page, error) {
	pg, total, h, err := r.fetch(ctx, page)
	if err != nil {
		return pg, err
	}
	if total != r.total {
		pg.Close()
		return sources.Page{}, &sources.MovedError{Err: fmt.Errorf("%s: page %d announced X-GSAPI-QueryTotalCount %d, page 1 %d: the table changed during the read", r.where, page, total, r.total)}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if emptyArray(pg.Body) {
		return pg, nil
	}
	if other := r.seen.Repeat(page, h); other != 0 {
		pg.Close()
		return sources.Page{}, sources.RepeatError(r.where, page, other, fmt.Sprintf("the server ignored sortorder %v", r.dt.Sortorder))
	}
	return pg, nil
}

// counted counts a row of page as it is decoded, notes a key read twice, and keeps the greatest key.
func (r *datatableRead) counted(page int, rec sources.Record) {
	key := rec[r.dt.Key]
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows[page]++
	if key == nil {
		return
	}
	k := fmt.Sprint(key)
	h := maphash.String(r.seed, k)
	if _, dup := r.keys[h]; dup && r.twice == "" {
		r.twice = k
	}
	r.keys[h] = struct{}{}
	r.max.Advance(k)
}

// pageRows is the rows read of page so far.
func (r *datatableRead) pageRows(page int) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rows[page]
}

// check fails a read whose rows differ from the total, or that met a key twice: the table changed
// during the read (a row inserted before a page already read shifts a row into the next page), or
// paging is broken, or the key does not identify a row. Reading again tells these apart.
func (r *datatableRead) check() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.rows {
		n += c
	}
	if n != r.total && r.after > 0 && r.rows[r.after] > 0 {
		return &sources.MovedError{Err: fmt.Errorf("%s: read %d rows but X-GSAPI-QueryTotalCount said %d; page %d, past the last page that total implies, held %d of them: the total understates the table, or the table grew during the read", r.where, n, r.total, r.after, r.rows[r.after])}
	}
	if n != r.total {
		return &sources.MovedError{Err: fmt.Errorf("%s: read %d rows but X-GSAPI-QueryTotalCount said %d; the table changed during the read or paging is broken", r.where, n, r.total)}
	}
	if r.twice != "" {
		return &sources.MovedError{Err: fmt.Errorf("%s: key %s=%s was read twice in one read of %d rows: the table changed during the read, or %s does not identify a row (then configure a key that does)", r.where, r.dt.Key, r.twice, n, r.dt.Key)}
	}
	return nil
}

// emptyArray reports whether a body is an empty JSON array (pages past the end all look alike).
func emptyArray(b *spool.Body) bool {
	return b.InMemory() && jsonrec.IsEmptyArray(b.Mem())
}
