// Package signicat extracts the Signicat Account Management API: organisations, accounts (active and
// soft-deleted), contacts, invoices and invoice lines. Reference: ../shared/spec/signicat-*.
package signicat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// Source is a configured Signicat API.
type Source struct {
	cfg    *config.Signicat
	limits config.Limits
	client *httpclient.Client
	auth   *tokenAuth
	base   string
	origin string // the base URL's: the only one the token is sent to, and next links may point to
	now    func() time.Time
}

// New prepares the source; nothing is fetched until a stream's pages are read. now is its clock.
func New(cfg *config.Signicat, limits config.Limits, client *httpclient.Client, now func() time.Time) *Source {
	redact.Add(cfg.ClientSecret.Value())
	base := strings.TrimRight(cfg.BaseURL, "/")
	origin := base
	if u, err := url.Parse(base); err == nil {
		origin = httpclient.Origin(u)
	}
	return &Source{
		cfg: cfg, limits: limits, client: client, now: now, base: base, origin: origin,
		auth: newTokenAuth(cfg.TokenURL, cfg.ClientID, cfg.ClientSecret.Value(), origin, &http.Client{Transport: client.Transport()}),
	}
}

// Streams lists the source's streams, filtered by the config's streams list.
func (s *Source) Streams() ([]*sources.Stream, error) {
	accountState := &sources.State{}
	lists := []struct {
		name  string
		pages func(context.Context, *httpclient.Stats) iter.Seq2[sources.Page, error]
	}{
		{"organizations", func(ctx context.Context, st *httpclient.Stats) iter.Seq2[sources.Page, error] {
			return s.list(ctx, st, "/organizations", url.Values{})
		}},
		{"accounts", func(ctx context.Context, st *httpclient.Stats) iter.Seq2[sources.Page, error] {
			return s.accountPages(ctx, st, accountState)
		}},
		{"contacts", func(ctx context.Context, st *httpclient.Stats) iter.Seq2[sources.Page, error] {
			return s.list(ctx, st, "/contacts", url.Values{})
		}},
	}
	var all []*sources.Stream
	for _, l := range lists {
		st, err := sources.NewStream("signicat", l.name, sources.Snapshot, nil, l.pages)
		if err != nil {
			return nil, err
		}
		if l.name == "accounts" {
			st.FanOut = true // a detail call per new or changed account, for its products
			st.State = accountState
		}
		all = append(all, st)
	}
	invoices, err := sources.NewStream("signicat", "invoices", sources.Incremental, nil, nil)
	if err != nil {
		return nil, err
	}
	invoices.State = &sources.State{}
	invoices.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.listInvoices(ctx, invoices.Stats, invoices.State)
	}
	// One request per invoice: worth checkpointing, so a killed first sync resumes where it stopped.
	lines, err := sources.NewStream("signicat", "invoice_lines", sources.Incremental, nil, nil)
	if err != nil {
		return nil, err
	}
	lines.State, lines.Checkpoints, lines.FanOut = &sources.State{}, true, true
	// An invoice read again replaces all its lines: one that disappeared does not linger.
	lines.Group = []string{"invoice_number"}
	lines.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.invoiceLinePages(ctx, lines.Stats, lines.State, orNone(lines.Skip))
	}
	pdfs, err := sources.NewStream("signicat", "invoice_pdfs", sources.Incremental, nil, nil)
	if err != nil {
		return nil, err
	}
	pdfs.State, pdfs.Checkpoints, pdfs.FanOut = &sources.State{}, true, true
	pdfs.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.invoicePDFPages(ctx, pdfs.Stats, pdfs.State, orNone(pdfs.Skip))
	}
	for _, st := range []*sources.Stream{invoices, lines, pdfs} {
		st.Partition = invoiceMonth
		st.Evidence = st != pdfs // a PDF's evidence is the PDF itself
		all = append(all, st)
	}
	if err := sources.ConfigureKeys(all, "signicat", s.cfg.Keys); err != nil {
		return nil, err
	}
	names := slices.Clone(s.cfg.Streams)
	if len(names) == 0 {
		// Every stream but the PDFs, which cost a request per invoice and are asked for explicitly.
		for _, st := range all[:len(all)-1] {
			names = append(names, st.Name)
		}
	}
	if s.cfg.PDFs && !slices.Contains(names, pdfs.Name) {
		names = append(names, pdfs.Name)
	}
	return sources.Select(all, names)
}

// accountPages reads GET /accounts and then GET /accounts?deleted=true: soft-deleted accounts exist only
// in the second list, and auditors need them. Each account's products come from GET /accounts/{id},
// fetched concurrently for the accounts of each page.
func (s *Source) accountPages(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		for _, deleted := range []bool{false, true} {
			q := url.Values{}
			if deleted {
				q.Set("deleted", "true")
			}
			for p, err := range s.list(ctx, stats, "/accounts", q) {
				var failed []sources.Page
				if err == nil {
					failed, err = s.addProducts(ctx, stats, st, p.Records, deleted)
				}
				if !yield(p, err) || err != nil {
					return
				}
				for _, f := range failed {
					if !yield(f, nil) {
						return
					}
				}
			}
		}
	}
}

// accountMemo is what a run remembers of an account's detail.
type accountMemo struct {
	Entry    string          `json:"entry"` // sha256 of the account's list entry when its detail was read
	Read     string          `json:"read"`  // day the detail was read (YYYY-MM-DD), phase-shifted per account
	Products json.RawMessage `json:"products"`
}

// addProducts sets each account's products from its detail. A detail is read when the account is new,
// its list entry changed, or its products are account_detail_days old; otherwise the products read
// before are reused. An account's first read is dated back by a phase derived from its id, so the
// periodic re-reads spread evenly over the days instead of all falling due together. An account whose
// detail cannot be read keeps the products read before (if any) and is returned as a failed page.
func (s *Source) addProducts(ctx context.Context, stats *httpclient.Stats, st *sources.State, accts []sources.Record, deleted bool) ([]sources.Page, error) {
	days := *s.cfg.AccountDetailDays
	today := s.now().UTC().Truncate(24 * time.Hour)
	memoKey := func(id string) string {
		if deleted {
			return "deleted:" + id
		}
		return id
	}
	var need []sources.Record
	entries := make(map[string]string, len(accts)) // list-entry hashes of the accounts whose detail is read
	for _, a := range accts {
		id, _ := a["id"].(string)
		entry := entryHash(a)
		entries[id] = entry
		var m accountMemo
		if days > 0 && st.Recall(memoKey(id), &m) && m.Entry == entry {
			read, err := time.Parse(time.DateOnly, m.Read)
			dec := json.NewDecoder(bytes.NewReader(m.Products))
			dec.UseNumber()
			var products any
			if err == nil && today.Sub(read) < time.Duration(days)*24*time.Hour && dec.Decode(&products) == nil {
				a["products"] = products
				st.Remember(memoKey(id), m)
				continue
			}
		}
		need = append(need, a)
	}
	remember := func(a sources.Record) {
		id, _ := a["id"].(string)
		h := fnv.New32a()
		h.Write([]byte(id))
		read := today
		if days > 0 {
			read = today.AddDate(0, 0, -int(h.Sum32()%uint32(days)))
		}
		products, _ := json.Marshal(a["products"])
		st.Remember(memoKey(id), accountMemo{Entry: entries[id], Read: read.Format(time.DateOnly), Products: products})
	}
	accts = need
	detail := func(ctx context.Context, a sources.Record) (sources.Page, error) {
		id, _ := a["id"].(string)
		seg, err := sources.PathSegment(id)
		if err != nil {
			return sources.Page{Failed: &sources.Failure{Item: id, Err: fmt.Errorf("account id: %w", err)}}, nil
		}
		u := s.base + "/accounts/" + seg
		if deleted {
			u += "?deleted=true"
		}
		d, q, _, err := s.object(ctx, stats, u)
		if err != nil {
			if sources.ItemFailed(err) {
				return sources.Page{Failed: &sources.Failure{Item: id, Err: err, Retry: true}}, nil
			}
			return sources.Page{}, err
		}
		products := d["products"]
		if products == nil {
			products = []any{}
		}
		return sources.Page{Records: []sources.Record{{"id": id, "products": products}}, Quirks: q}, nil
	}
	byID := make(map[string]sources.Record, len(accts))
	for _, a := range accts {
		id, _ := a["id"].(string)
		byID[id] = a
	}
	var failed []sources.Page
	for p, err := range sources.Parallel(httpclient.Then(ctx), sources.FanOutLimit, accts, detail) {
		if err != nil {
			return nil, err
		}
		if p.Failed != nil {
			// The account is kept with the products read before, if any, and not remembered, so the next
			// run reads its detail again; the failure is a reject of the stream.
			var m accountMemo
			if st.Recall(memoKey(p.Failed.Item), &m) {
				var products any
				if dec := json.NewDecoder(bytes.NewReader(m.Products)); dec.Decode(&products) == nil {
					byID[p.Failed.Item]["products"] = products
				}
			}
			failed = append(failed, p)
			continue
		}
		r := p.Records[0]
		a := byID[r["id"].(string)]
		a["products"] = r["products"]
		remember(a)
	}
	return failed, nil
}

// object reads one JSON object (a detail) at u, returning it decoded and as sent; one larger than
// max_value_bytes is refused.
func (s *Source) object(ctx context.Context, stats *httpclient.Stats, u string) (sources.Record, jsonrec.Quirks, []byte, error) {
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Stats: stats, Header: s.orgHeader()})
	if err != nil {
		return nil, jsonrec.Quirks{}, nil, err
	}
	defer resp.Body.Close()
	where := "GET " + strings.TrimPrefix(u, s.base)
	b, err := resp.Body.Load(int64(s.limits.MaxValueBytes), "answer (max_value_bytes)")
	if err != nil {
		return nil, jsonrec.Quirks{}, nil, &sources.BodyError{Where: where, Err: err}
	}
	rec, q, err := jsonrec.DecodeObject(b)
	if err != nil {
		return nil, q, nil, &sources.BodyError{Where: where, Err: err}
	}
	return rec, q, b, nil
}

// entryHash identifies an account's list entry (products excluded): any change to it re-reads the
// detail.
func entryHash(a sources.Record) string {
	c := maps.Clone(a)
	delete(c, "products")
	b, _ := json.Marshal(c) // map keys marshal sorted: a canonical form
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// listBatch is how many records of a {data, next} page are handed on at once: a page is decoded as it
// is read, so one the server made huge costs no more memory than a batch.
const listBatch = 1000

// errStop ends a decoding whose consumer stopped.
var errStop = errors.New("stopped")

// list walks a {data, next} list: next is an opaque token passed back as page, or an absolute URL,
// followed only within the API's origin (the token goes nowhere else). A token seen before, or more
// than max_pages pages, fails the list instead of looping forever.
func (s *Source) list(ctx context.Context, stats *httpclient.Stats, path string, q url.Values) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		seen := map[string]bool{}
		q.Set("limit", strconv.Itoa(s.cfg.PageLimit))
		u := s.base + path + "?" + q.Encode()
		where := "GET " + path + queryOf(q)
		for pages := 1; u != ""; pages++ {
			if pages > s.limits.MaxPages {
				yield(sources.Page{}, fmt.Errorf("%s: more than %d pages (max_pages): the API keeps sending a next token; stopping", where, s.limits.MaxPages))
				return
			}
			next, more, err := s.listPage(ctx, stats, u, where, yield)
			if err != nil || !more {
				if err != nil {
					yield(sources.Page{}, err)
				}
				return
			}
			ctx = httpclient.Then(ctx) // the next page needs this one's token
			if u, err = s.follow(where, next, seen, q, path); err != nil {
				yield(sources.Page{}, err)
				return
			}
		}
	}
}

// listPage fetches one page at u and yields its records in batches; more is false once the consumer
// stopped.
func (s *Source) listPage(ctx context.Context, stats *httpclient.Stats, u, where string, yield func(sources.Page, error) bool) (next *string, more bool, err error) {
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Stats: stats})
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	batch := make([]typing.Record, 0, 128)
	env, err := jsonrec.EachInEnvelope(resp.Body.Reader(), int(s.limits.MaxValueBytes), func(r typing.Record) error {
		if batch = append(batch, r); len(batch) == listBatch {
			if !yield(sources.Page{Records: batch}, nil) {
				return errStop
			}
			batch = make([]typing.Record, 0, 128)
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		return nil, false, nil
	case err != nil:
		return nil, false, &sources.BodyError{Where: where, Err: err}
	}
	page := sources.Page{Records: batch, Quirks: env.Quirks}
	if env.Null {
		page.Note = where + ": data is null, read as an empty list"
	}
	return env.Next, yield(page, nil), nil
}

// follow is the URL of the page after one whose next was next ("" for none).
func (s *Source) follow(where string, next *string, seen map[string]bool, q url.Values, path string) (string, error) {
	if next == nil || *next == "" {
		return "", nil
	}
	if seen[*next] {
		return "", fmt.Errorf("%s: the API returned next token %q a second time; stopping instead of looping", where, *next)
	}
	seen[*next] = true
	if !strings.HasPrefix(*next, "http://") && !strings.HasPrefix(*next, "https://") {
		q.Set("page", *next)
		return s.base + path + "?" + q.Encode(), nil
	}
	nu, err := url.Parse(*next)
	if err != nil {
		return "", fmt.Errorf("%s: the next link is not a URL: %w", where, err)
	}
	if got := httpclient.Origin(nu); got != s.origin {
		return "", fmt.Errorf("%s: the next link points to %s, not to the API (%s); it is not followed, and no credential is sent there", where, got, s.origin)
	}
	return *next, nil
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

// orNone makes an unset key predicate hold nothing.
func orNone(f func(string) bool) func(string) bool {
	if f == nil {
		return func(string) bool { return false }
	}
	return f
}
