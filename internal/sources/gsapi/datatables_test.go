package gsapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// A row count that differs from X-GSAPI-QueryTotalCount fails the stream instead of loading a partial table.
func TestDatatableRowCountMustMatchTotal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer jwt" {
			w.WriteHeader(401)
			return
		}
		page := r.URL.Query().Get("page")
		w.Header().Set("X-GSAPI-QueryTotalCount", "5")
		switch page {
		case "1":
			_, _ = w.Write([]byte(`[{"raw_id":1},{"raw_id":2}]`))
		case "2":
			_, _ = w.Write([]byte(`[{"raw_id":3},{"raw_id":4}]`))
		default: // the fifth row vanished between pages
			_, _ = w.Write([]byte(`[]`))
		}
	}))
	defer srv.Close()
	zero := 0
	cfg := &config.GSAPI{BaseURL: srv.URL, JWT: "jwt", OrgID: &zero, Streams: []string{"datatable_t"},
		Datatables: []config.Datatable{{Table: "t", Sortorder: []string{"raw_id asc"}, Key: "raw_id", PageSize: 2}}}
	streams, err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).Streams()
	if err != nil || len(streams) != 1 {
		t.Fatal(err)
	}
	var lastErr error
	for p, err := range streams[0].Pages(context.Background(), sources.Resume{}) {
		if err == nil {
			_, err = p.Each(func(sources.Record) error { return nil }) // read as the pipeline reads it
		}
		lastErr = err
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), "read 4 rows but X-GSAPI-QueryTotalCount said 5") {
		t.Fatalf("err = %v", lastErr)
	}
}

// datatableServer serves POST /datatable/list from answer (page, pagesize, filter value or nil →
// raw_ids and the total), recording each request as "page/pagesize/filter".
func datatableServer(t *testing.T, answer func(page, size int, filter any) ([]int, int)) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var log []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Sortorder []string
			Filters   []struct {
				Column string
				Filter []struct {
					Operator string
					Value    any
				}
			}
		}
		if r.Method != "POST" || r.URL.Path != "/datatable/list" || json.NewDecoder(r.Body).Decode(&body) != nil || len(body.Sortorder) == 0 {
			w.WriteHeader(400)
			return
		}
		var filter any
		if len(body.Filters) == 1 && body.Filters[0].Column == "raw_id" && body.Filters[0].Filter[0].Operator == "greater" {
			filter = body.Filters[0].Filter[0].Value
		}
		page, _ := strconv.Atoi(r.URL.Query().Get("page"))
		size, _ := strconv.Atoi(r.URL.Query().Get("pagesize"))
		mu.Lock()
		log = append(log, fmt.Sprintf("%d/%d/%v", page, size, filter))
		mu.Unlock()
		ids, total := answer(page, size, filter)
		rows := make([]map[string]any, len(ids))
		for i, id := range ids {
			rows[i] = map[string]any{"raw_id": id}
		}
		w.Header().Set("X-GSAPI-QueryTotalCount", strconv.Itoa(total))
		_ = json.NewEncoder(w).Encode(rows)
	}))
	t.Cleanup(srv.Close)
	return srv, &log
}

// datatableStream is the stream of table t of srv, read at pagesize.
func datatableStream(t *testing.T, srv *httptest.Server, pagesize int, appendOnly bool) *sources.Stream {
	zero := 0
	cfg := &config.GSAPI{BaseURL: srv.URL, JWT: "jwt", OrgID: &zero, Streams: []string{"datatable_t"},
		Datatables: []config.Datatable{{Table: "t", Sortorder: []string{"raw_id desc"}, Key: "raw_id", PageSize: pagesize, AppendOnly: appendOnly}}}
	streams, err := New(cfg, config.DefaultLimits, httpclient.New(httpclient.Options{}), time.Now).Streams()
	if err != nil || len(streams) != 1 {
		t.Fatal(err)
	}
	return streams[0]
}

// readIDs reads the stream as the pipeline does: the raw_ids, the notes, the last error.
func readIDs(s *sources.Stream) (ids []string, notes []string, last error) {
	for p, err := range s.Pages(context.Background(), sources.Resume{}) {
		if err == nil {
			_, err = p.Each(func(r sources.Record) error { ids = append(ids, fmt.Sprint(r["raw_id"])); return nil })
		}
		if p.Note != "" {
			notes = append(notes, p.Note)
		}
		if err != nil {
			last = err
		}
	}
	return ids, notes, last
}

// pageOf is page (from 1) of size of ids.
func pageOf(ids []int, page, size int) []int {
	lo := min(len(ids), (page-1)*size)
	return ids[lo:min(len(ids), lo+size)]
}

// A row inserted before page 2 is read (sortorder desc, the spec's example) shifts a row already read
// into page 2 and announces another total there: the read must fail (to be read again), not load the
// shifted row twice and lose another. Before the fix: no error, raw_id 3 twice and 1 missing.
func TestDatatableTotalMustHoldOnEveryPage(t *testing.T) {
	srv, _ := datatableServer(t, func(page, size int, _ any) ([]int, int) {
		ids := []int{4, 3, 2, 1}
		if page > 1 {
			ids = []int{5, 4, 3, 2, 1}
		}
		return pageOf(ids, page, size), len(ids)
	})
	ids, _, err := readIDs(datatableStream(t, srv, 2, false))
	var moved *sources.MovedError
	if !errors.As(err, &moved) || !strings.Contains(err.Error(), "page 2 announced X-GSAPI-QueryTotalCount 5, page 1 4") {
		t.Fatalf("read %v, err = %v", ids, err)
	}
}

// A key read twice in one read fails it even when the row count matches the total. Before the fix:
// raw_id 2 loaded twice, no error.
func TestDatatableKeyReadTwiceFails(t *testing.T) {
	srv, _ := datatableServer(t, func(page, _ int, _ any) ([]int, int) {
		return map[int][]int{1: {1, 2}, 2: {2, 3}}[page], 4
	})
	_, _, err := readIDs(datatableStream(t, srv, 2, false))
	var moved *sources.MovedError
	if !errors.As(err, &moved) || !strings.Contains(err.Error(), "key raw_id=2 was read twice") {
		t.Fatalf("err = %v", err)
	}
}

// A server that caps its pages below the pagesize asked for: the pages after the first are asked for
// at the size it returned, and every row is read once. Before the fix: "read 2 rows but
// X-GSAPI-QueryTotalCount said 5".
func TestDatatableCappedPagesAreReplanned(t *testing.T) {
	all := []int{5, 4, 3, 2, 1}
	srv, log := datatableServer(t, func(page, size int, _ any) ([]int, int) {
		return pageOf(all, page, min(size, 2)), len(all)
	})
	ids, notes, err := readIDs(datatableStream(t, srv, 10, false))
	slices.Sort(*log)
	slices.Sort(ids) // the pages after the first arrive as they complete
	if err != nil || strings.Join(ids, ",") != "1,2,3,4,5" || strings.Join(*log, " ") != "1/10/<nil> 2/2/<nil> 3/2/<nil>" {
		t.Fatalf("read %v with %v, err = %v", ids, *log, err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "page 1 returned 2 rows for pagesize 10") {
		t.Errorf("notes %q", notes)
	}
}

// By default a datatable is a snapshot read whole every run, whatever its key (a GUID need not grow,
// and a row changed below the greatest key must be read again). Before the fix: an incremental stream
// that asked only for keys greater than the watermark.
func TestDatatableIsReadWholeByDefault(t *testing.T) {
	srv, log := datatableServer(t, func(page, size int, _ any) ([]int, int) { return pageOf([]int{3, 2, 1}, page, size), 3 })
	s := datatableStream(t, srv, 10, false)
	if s.Mode != sources.Snapshot || s.State != nil {
		t.Fatalf("mode %v, state %v: want a snapshot without a watermark", s.Mode, s.State)
	}
	if ids, _, err := readIDs(s); err != nil || len(ids) != 3 || strings.Join(*log, " ") != "1/10/<nil>" {
		t.Fatalf("read %v with %v, err = %v", ids, *log, err)
	}
}

// On an append_only table the filtered read is checked against the unfiltered total: a row inserted
// below the watermark (5 rows now, 3 held, 1 above the watermark) fails the read naming the counts.
func TestDatatableAppendOnlyChecksTheTotal(t *testing.T) {
	all := []int{5, 4, 3, 2, 1} // 2 was inserted after the last run, below its watermark 4
	srv, log := datatableServer(t, func(page, size int, filter any) ([]int, int) {
		if filter == nil {
			return pageOf(all, page, size), len(all)
		}
		return []int{5}, 1
	})
	s := datatableStream(t, srv, 10, true)
	s.State.Watermark, s.State.Memo = "4", map[string]json.RawMessage{"_rows": json.RawMessage("3")}
	_, _, err := readIDs(s)
	var moved *sources.MovedError
	if !errors.As(err, &moved) || !strings.Contains(err.Error(), "the table holds 5 rows, but the last run held 3 and 1 have raw_id greater than 4") {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(*log, " "); got != "1/1/<nil> 1/10/4" {
		t.Errorf("asked %s", got)
	}
	if s.State.Next() != "4" {
		t.Errorf("a failed read moved the watermark to %s", s.State.Next())
	}
}

// A total understated by a multiple of the pagesize ends the planned pages on a full page, where every
// count agrees: the page after it must be asked for, and rows there fail the read (to be read again,
// then to fail) instead of a shorter table replacing the last snapshot. Before the fix: 2 (or 8) of
// the 10 rows loaded, no error, and page 2 (or 5) never asked for.
func TestDatatableFullLastPageAsksForTheNext(t *testing.T) {
	all := []int{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}
	for _, said := range []int{2, 8} {
		srv, log := datatableServer(t, func(page, size int, _ any) ([]int, int) { return pageOf(all, page, size), said })
		ids, _, err := readIDs(datatableStream(t, srv, 2, false))
		var moved *sources.MovedError
		want := fmt.Sprintf("read %d rows but X-GSAPI-QueryTotalCount said %d", said+2, said)
		if !errors.As(err, &moved) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "tablename=t") {
			t.Errorf("total %d: read %v, err = %v; want a MovedError with %q", said, ids, err, want)
		}
		if got, next := requestedPages(*log), said/2+1; got[len(got)-1] != next {
			t.Errorf("total %d: asked pages %v, want up to page %d", said, got, next)
		}
	}
}

// A table whose total is a multiple of the pagesize costs one request more (an empty page); one whose
// last page is short costs none. The extra page must not fail an honest read.
func TestDatatableExtraPageOnlyAfterAFullOne(t *testing.T) {
	for _, n := range []int{4, 5} {
		all := []int{5, 4, 3, 2, 1}[5-n:]
		srv, log := datatableServer(t, func(page, size int, _ any) ([]int, int) { return pageOf(all, page, size), n })
		ids, _, err := readIDs(datatableStream(t, srv, 2, false))
		if err != nil || len(ids) != n || slices.Max(requestedPages(*log)) != 3 || len(*log) != 3 {
			t.Errorf("%d rows: read %v with %v, err = %v; want pages 1-3", n, ids, *log, err)
		}
	}
}

// The filtered read of an append_only table has the same hole: a filtered total understated by the
// pagesize (2 said, 3 above the watermark), with the unfiltered total understated to agree, fails the
// read and leaves the watermark. Before the fix: 2 of the 3 new rows loaded and the watermark moved on.
func TestDatatableAppendOnlyFullLastPageAsksForTheNext(t *testing.T) {
	all := []int{6, 5, 4, 3, 2, 1} // 3 held (watermark 3), 3 new: the filtered total says 2
	srv, log := datatableServer(t, func(page, size int, filter any) ([]int, int) {
		if filter == nil {
			return pageOf(all, page, size), 5 // understated to agree with held + the filtered total
		}
		return pageOf(all[:3], page, size), 2
	})
	s := datatableStream(t, srv, 2, true)
	s.State.Watermark, s.State.Memo = "3", map[string]json.RawMessage{"_rows": json.RawMessage("3")}
	_, _, err := readIDs(s)
	var moved *sources.MovedError
	if !errors.As(err, &moved) || !strings.Contains(err.Error(), "read 3 rows but X-GSAPI-QueryTotalCount said 2") {
		t.Fatalf("asked %v, err = %v", *log, err)
	}
	if s.State.Next() != "3" {
		t.Errorf("a failed read moved the watermark to %s", s.State.Next())
	}
}

// requestedPages is the page numbers of a datatableServer's log, sorted.
func requestedPages(log []string) []int {
	pages := make([]int, 0, len(log))
	for _, l := range log {
		p, _ := strconv.Atoi(strings.SplitN(l, "/", 2)[0])
		pages = append(pages, p)
	}
	slices.Sort(pages)
	return pages
}
