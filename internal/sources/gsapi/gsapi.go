// Package gsapi extracts the Good Sign GSAPI: datasync exports, datatable/list, invoice journals and the
// list endpoints. Reference: ../shared/spec/gsapi*.
package gsapi

import (
	"context"
	"fmt"
	"iter"
	"net/url"
	"strconv"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// Source is a configured GSAPI tenant.
type Source struct {
	cfg    *config.GSAPI
	client *httpclient.Client
	auth   *sessionAuth
	base   string
}

// New prepares the source; nothing is fetched until a stream's pages are read.
func New(cfg *config.GSAPI, client *httpclient.Client) *Source {
	base := strings.TrimRight(cfg.BaseURL, "/")
	return &Source{cfg: cfg, client: client, base: base, auth: &sessionAuth{
		client: client, welcome: base + "/welcome", username: cfg.Username, password: cfg.Password.Value(), jwt: cfg.JWT.Value(),
	}}
}

// Streams lists the source's streams, filtered by the config's streams list.
func (s *Source) Streams() ([]*sources.Stream, error) {
	orgs, err := sources.NewStream("gsapi", "organizations", sources.Snapshot, nil, func(ctx context.Context, st *httpclient.Stats) iter.Seq2[sources.Page, error] {
		return s.array(ctx, st, "/organizations/list", nil)
	})
	if err != nil {
		return nil, err
	}
	return sources.Select([]*sources.Stream{orgs}, s.cfg.Streams)
}

// orgScope is the org_id / organization query the tenant's lists take.
func (s *Source) orgScope(q url.Values) url.Values {
	if q == nil {
		q = url.Values{}
	}
	if s.cfg.Organization != "" {
		q.Set("organization", s.cfg.Organization)
	} else if s.cfg.OrgID != nil {
		q.Set("org_id", strconv.Itoa(*s.cfg.OrgID))
	}
	return q
}

// array fetches an endpoint that answers with one plain JSON array.
func (s *Source) array(ctx context.Context, stats *httpclient.Stats, path string, q url.Values) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		u := s.base + path
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Stats: stats})
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		recs, err := sources.DecodeArray(resp.Body)
		if err != nil {
			yield(sources.Page{}, fmt.Errorf("GET %s: %w", path, err))
			return
		}
		yield(sources.Page{Records: recs}, nil)
	}
}
