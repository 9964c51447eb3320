// Package signicat extracts the Signicat Account Management API: organisations, accounts (active and
// soft-deleted), contacts, invoices and invoice lines. Reference: ../shared/spec/signicat-*.
package signicat

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/url"
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
		auth: newTokenAuth(cfg.TokenURL, cfg.ClientID, cfg.ClientSecret.Value(), client.HTTP()),
		base: strings.TrimRight(cfg.BaseURL, "/"),
	}
}

// Streams lists the source's streams, filtered by the config's streams list.
func (s *Source) Streams() ([]*sources.Stream, error) {
	accounts, err := sources.NewStream("signicat", "accounts", sources.Snapshot, nil, s.accountPages)
	if err != nil {
		return nil, err
	}
	return sources.Select([]*sources.Stream{accounts}, s.cfg.Streams)
}

// accountPages reads GET /accounts and then GET /accounts?deleted=true: soft-deleted accounts exist only
// in the second list, and auditors need them.
func (s *Source) accountPages(ctx context.Context, stats *httpclient.Stats) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		for _, q := range []url.Values{{}, {"deleted": {"true"}}} {
			for p, err := range s.list(ctx, stats, "/accounts", q) {
				if !yield(p, err) || err != nil {
					return
				}
			}
		}
	}
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
