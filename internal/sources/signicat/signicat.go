// Package signicat extracts the Signicat Account Management API: organisations, accounts (active and
// soft-deleted), contacts, invoices and invoice lines. Reference: ../shared/spec/signicat-*.
package signicat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// Source is a configured Signicat API.
type Source struct {
	cfg    *config.Signicat
	client *httpclient.Client
	auth   *tokenAuth
	base   string
	now    func() time.Time
}

// New prepares the source; nothing is fetched until a stream's pages are read. now is its clock.
func New(cfg *config.Signicat, client *httpclient.Client, now func() time.Time) *Source {
	return &Source{
		cfg: cfg, client: client, now: now,
		auth: newTokenAuth(cfg.TokenURL, cfg.ClientID, cfg.ClientSecret.Value(), &http.Client{Transport: client.Transport()}),
		base: strings.TrimRight(cfg.BaseURL, "/"),
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
				if err == nil {
					err = s.addProducts(ctx, stats, st, p.Records, deleted)
				}
				if !yield(p, err) || err != nil {
					return
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
// periodic re-reads spread evenly over the days instead of all falling due together.
func (s *Source) addProducts(ctx context.Context, stats *httpclient.Stats, st *sources.State, accts []sources.Record, deleted bool) error {
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
		u := s.base + "/accounts/" + url.PathEscape(id)
		if deleted {
			u += "?deleted=true"
		}
		resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Stats: stats})
		if err != nil {
			return sources.Page{}, err
		}
		d, err := sources.DecodeObject(resp.Body)
		if err != nil {
			return sources.Page{}, fmt.Errorf("GET /accounts/%s: %w", url.PathEscape(id), err)
		}
		products := d["products"]
		if products == nil {
			products = []any{}
		}
		return sources.Page{Records: []sources.Record{{"id": id, "products": products}}}, nil
	}
	byID := make(map[string]sources.Record, len(accts))
	for _, a := range accts {
		id, _ := a["id"].(string)
		byID[id] = a
	}
	for p, err := range sources.Parallel(httpclient.Then(ctx), 16, accts, detail) {
		if err != nil {
			return err
		}
		r := p.Records[0]
		a := byID[r["id"].(string)]
		a["products"] = r["products"]
		remember(a)
	}
	return nil
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

// list walks a {data, next} list: next is an opaque token passed back as page (or, should it ever be
// one, an absolute URL to follow). A token seen before fails the list instead of looping forever.
func (s *Source) list(ctx context.Context, stats *httpclient.Stats, path string, q url.Values) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		seen := map[string]bool{}
		q.Set("limit", strconv.Itoa(s.cfg.PageLimit))
		u := s.base + path + "?" + q.Encode()
		for u != "" {
			resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Stats: stats})
			if err != nil {
				yield(sources.Page{}, err)
				return
			}
			ctx = httpclient.Then(ctx) // the next page needs this one's token
			var pg struct {
				Data []typing.Record `json:"data"`
				Next *string         `json:"next"`
			}
			dec := json.NewDecoder(strings.NewReader(string(resp.Body)))
			dec.UseNumber()
			if err := dec.Decode(&pg); err != nil {
				yield(sources.Page{}, fmt.Errorf("GET %s%s: response is not a {data, next} page: %w", path, queryOf(q), err))
				return
			}
			if !yield(sources.Page{Records: pg.Data}, nil) {
				return
			}
			u = ""
			if pg.Next != nil && *pg.Next != "" {
				next := *pg.Next
				if seen[next] {
					yield(sources.Page{}, fmt.Errorf("GET %s%s: the API returned next token %q a second time; stopping instead of looping", path, queryOf(q), next))
					return
				}
				seen[next] = true
				if strings.HasPrefix(next, "http://") || strings.HasPrefix(next, "https://") {
					u = next
				} else {
					q.Set("page", next)
					u = s.base + path + "?" + q.Encode()
				}
			}
		}
	}
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
