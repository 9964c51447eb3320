// Package signicat extracts the Signicat Account Management API: organisations, accounts (active and
// soft-deleted), contacts, invoices and invoice lines. Reference: ../shared/spec/signicat-*.
package signicat

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

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
}

// New prepares the source; nothing is fetched until a stream's pages are read.
func New(cfg *config.Signicat, client *httpclient.Client) *Source {
	return &Source{
		cfg: cfg, client: client,
		auth: newTokenAuth(cfg.TokenURL, cfg.ClientID, cfg.ClientSecret.Value(), &http.Client{Transport: client.Transport()}),
		base: strings.TrimRight(cfg.BaseURL, "/"),
	}
}

// Streams lists the source's streams, filtered by the config's streams list.
func (s *Source) Streams() ([]*sources.Stream, error) {
	lists := []struct {
		name  string
		pages func(context.Context, *httpclient.Stats) iter.Seq2[sources.Page, error]
	}{
		{"organizations", func(ctx context.Context, st *httpclient.Stats) iter.Seq2[sources.Page, error] {
			return s.list(ctx, st, "/organizations", url.Values{})
		}},
		{"accounts", s.accountPages},
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
		st.FanOut = l.name == "accounts" // a detail call per account, for its products
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
	lines.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.invoiceLinePages(ctx, lines.Stats, lines.State, orNone(lines.Skip))
	}
	pdfs, err := sources.NewStream("signicat", "invoice_pdfs", sources.Incremental, nil, nil)
	if err != nil {
		return nil, err
	}
	pdfs.State, pdfs.Checkpoints, pdfs.FanOut = &sources.State{}, true, true
	pdfs.Pages = func(ctx context.Context) iter.Seq2[sources.Page, error] {
		return s.invoicePDFPages(ctx, pdfs.Stats, pdfs.State, orNone(pdfs.Held), orNone(pdfs.Skip))
	}
	for _, st := range []*sources.Stream{invoices, lines, pdfs} {
		st.Partition = invoiceMonth
		st.Evidence = st != pdfs // a PDF's evidence is the PDF itself
		all = append(all, st)
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
func (s *Source) accountPages(ctx context.Context, stats *httpclient.Stats) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		for _, deleted := range []bool{false, true} {
			q := url.Values{}
			if deleted {
				q.Set("deleted", "true")
			}
			for p, err := range s.list(ctx, stats, "/accounts", q) {
				if err == nil {
					err = s.addProducts(ctx, stats, p.Records, deleted)
				}
				if !yield(p, err) || err != nil {
					return
				}
			}
		}
	}
}

// addProducts sets each account's products from its detail.
func (s *Source) addProducts(ctx context.Context, stats *httpclient.Stats, accts []sources.Record, deleted bool) error {
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
		byID[r["id"].(string)]["products"] = r["products"]
	}
	return nil
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
