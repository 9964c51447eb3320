package signicat

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"iter"
	"net/url"
	"strconv"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// listStreams are the {data, next} lists, read whole every run (snapshots). Each has an example
// response in the reference, declared in schemas/signicat with the key the reference states.
func (s *Source) listStreams() []sources.Spec {
	return []sources.Spec{
		{Name: "organizations", Endpoint: "GET /organizations", Pages: s.list("/organizations")},
		// GET /accounts and GET /accounts?deleted=true: soft-deleted accounts exist only in the second.
		// A detail call per new or changed account, for its products (FanOut); the memo keeps what was read.
		{Name: "accounts", Endpoint: "GET /accounts, GET /accounts?deleted=true, GET /accounts/{id}", FanOut: true, Memo: true,
			Pages: s.accountPages},
		{Name: "contacts", Endpoint: "GET /contacts", Pages: s.list("/contacts")},
	}
}

// list reads the whole list at path.
func (s *Source) list(path string) sources.PageFunc {
	return func(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return s.walk(ctx, path, url.Values{})
	}
}

// listBatch is how many records of a {data, next} page are handed on at once: a page is decoded as it
// is read, so one the server made huge costs no more memory than a batch.
const listBatch = 1000

// errStop ends a decoding whose consumer stopped.
var errStop = errors.New("stopped")

// walk walks a {data, next} list: next is an opaque token passed back as page, or a link to the next
// page (see link), followed only within the API's origin (the token goes nowhere else). A token seen
// before, a page repeating an earlier one, maxEmptyPages empty pages in a row that still name a next
// page, or more than max_pages pages, fail the list instead of loading duplicates or looping forever.
func (s *Source) walk(ctx context.Context, path string, q url.Values) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		seen := map[string]bool{}
		q.Set("limit", strconv.Itoa(s.cfg.PageLimit))
		u := s.base + path + "?" + q.Encode()
		w := &listWalk{where: "GET " + path + queryOf(q)}
		for pages := 1; u != ""; pages++ {
			if pages > s.limits.MaxPages {
				yield(sources.Page{}, fmt.Errorf("%s: more than %d pages (max_pages): the API keeps sending a next token; stopping", w.where, s.limits.MaxPages))
				return
			}
			next, more, err := s.listPage(ctx, u, w, pages, yield)
			if err != nil || !more {
				if err != nil {
					yield(sources.Page{}, err)
				}
				return
			}
			ctx = httpclient.Then(ctx) // the next page needs this one's token
			if u, err = s.follow(w.where, u, next, seen, q, path); err != nil {
				yield(sources.Page{}, err)
				return
			}
		}
	}
}

// maxEmptyPages is how many empty pages in a row that each name a next page fail a list. Assumed (the
// reference says nothing of empty pages): a list's server has no reason to send an empty page and
// then more records, bar perhaps the odd one where records vanished between two page reads; 20 in a
// row is past any such accident, and a server that keeps doing it would otherwise be followed to
// max_pages (10000 requests, minutes of them) for nothing.
const maxEmptyPages = 20

// listWalk is what one walk of a list knows of the pages read so far.
type listWalk struct {
	where  string              // "GET /accounts?deleted=true"
	pages  sources.PageDigests // the digests of the pages with records
	empty  int                 // empty pages in a row, up to the last read
	first  int                 // the first page of that run of empty pages
	digest hash.Hash           // the current page's records, as sent
}

// check is the error of a page that repeats an earlier page's records byte for byte (a server minting
// a new next token for a page it already sent: loading it would double its rows), or that ends
// maxEmptyPages empty pages in a row while naming a next page.
func (w *listWalk) check(page, records int, next *string) error {
	if records == 0 {
		if w.empty == 0 {
			w.first = page
		}
		if w.empty++; w.empty >= maxEmptyPages && next != nil && *next != "" {
			return fmt.Errorf("%s: pages %d to %d are empty, yet each names a next page; stopping instead of following it on (at most %d empty pages in a row)", w.where, w.first, page, maxEmptyPages)
		}
		return nil
	}
	w.empty = 0
	if other := w.pages.Repeat(page, [32]byte(w.digest.Sum(nil))); other != 0 {
		return sources.RepeatError(w.where, page, other, "the API sent the same records under a new next token")
	}
	return nil
}

// listPage fetches page number n at u and yields its records in batches; more is false once the
// consumer stopped. A page's last batch is yielded only once the page passed w's checks (a page of
// more than listBatch records has yielded the others by then; the stream fails all the same).
func (s *Source) listPage(ctx context.Context, u string, w *listWalk, n int, yield func(sources.Page, error) bool) (next *string, more bool, err error) {
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	batch, records := make([]sources.Record, 0, 128), 0
	w.digest = sha256.New()
	env, err := jsonrec.EachRawInEnvelope(resp.Body.Reader(), int(s.limits.MaxValueBytes), func(r sources.Record, raw []byte) error {
		records++
		writeRecord(w.digest, raw)
		if batch = append(batch, r); len(batch) == listBatch {
			if !yield(sources.Page{Records: batch}, nil) {
				return errStop
			}
			batch = make([]sources.Record, 0, 128)
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		return nil, false, nil
	case err != nil:
		return nil, false, &sources.BodyError{Where: w.where, Err: err}
	}
	if err := w.check(n, records, env.Next); err != nil {
		return nil, false, err
	}
	page := sources.Page{Records: batch, Quirks: env.Quirks}
	if env.Null {
		page.Note = w.where + ": data is null, read as an empty list"
	}
	return env.Next, yield(page, nil), nil
}

// writeRecord adds a record's bytes to a page's digest, length first: two pages digest alike only when
// their records are the same bytes, however they split.
func writeRecord(h hash.Hash, raw []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(raw)))
	h.Write(n[:])
	h.Write(raw)
}

// follow is the URL of the page after the one at u whose next was next ("" for none).
func (s *Source) follow(where, u string, next *string, seen map[string]bool, q url.Values, path string) (string, error) {
	if next == nil || *next == "" {
		return "", nil
	}
	if seen[*next] {
		return "", fmt.Errorf("%s: the API returned next token %q a second time; stopping instead of looping", where, *next)
	}
	seen[*next] = true
	nu, err := link(u, *next)
	switch {
	case err != nil:
		return "", fmt.Errorf("%s: the next link is not a URL: %w", where, err)
	case nu == nil:
		q.Set("page", *next)
		return s.base + path + "?" + q.Encode(), nil
	}
	if got := httpclient.Origin(nu); got != s.origin {
		return "", fmt.Errorf("%s: the next link points to %s, not to the API (%s); it is not followed, and no credential is sent there", where, got, s.origin)
	}
	return nu.String(), nil
}

// link is next as the URL of the page after the one at u, or nil when next is a token. The reference
// calls page an opaque token and is silent on next; the notes infer it is that token, or perhaps a
// URL. An absolute next ("https://…") is a link. A relative one ("/account-management/organizations?…",
// "?page=…") is resolved against u, and is a link when it asks the same list (the same path) with a
// query of its own: anything else is read as a token, since an opaque token may well start with "/"
// (base64 does). The caller checks the link's origin: a relative next can leave the host too
// ("//elsewhere/…").
func link(u, next string) (*url.URL, error) {
	if strings.HasPrefix(next, "http://") || strings.HasPrefix(next, "https://") {
		return url.Parse(next)
	}
	page, err := url.Parse(u)
	if err != nil {
		return nil, err
	}
	if ref, err := url.Parse(next); err == nil && ref.RawQuery != "" {
		if nu := page.ResolveReference(ref); strings.TrimSuffix(nu.Path, "/") == strings.TrimSuffix(page.Path, "/") {
			return nu, nil
		}
	}
	return nil, nil
}

func queryOf(q url.Values) string {
	c := url.Values{}
	for k, v := range q {
		if k != "page" && k != "limit" {
			c[k] = v
		}
	}
	if len(c) == 0 {
		return ""
	}
	return "?" + c.Encode()
}
