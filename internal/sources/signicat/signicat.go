// Package signicat extracts the Signicat Account Management API: organisations, accounts (active and
// soft-deleted), contacts, invoices, invoice lines and invoice PDFs, one file per endpoint family, each
// declaring its streams (sources.Spec) beside the code that reads them. Reference:
// ../shared/spec/signicat-*.
package signicat

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/sources"
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

// Streams lists the source's streams, filtered by the config's streams list; invoice_pdfs is read only
// when named there or when pdfs is set.
func (s *Source) Streams() ([]*sources.Stream, error) {
	all, err := sources.Build("signicat", slices.Concat(s.listStreams(), s.invoiceStreams()))
	if err != nil {
		return nil, err
	}
	if err := sources.ConfigureKeys(all, "signicat", s.cfg.Keys); err != nil {
		return nil, err
	}
	names := slices.Clone(s.cfg.Streams)
	if s.cfg.PDFs && !slices.Contains(names, "invoice_pdfs") {
		if len(names) == 0 {
			for _, st := range all {
				if !st.OptIn {
					names = append(names, st.Name)
				}
			}
		}
		names = append(names, "invoice_pdfs")
	}
	return sources.Select(all, names)
}

// object reads one JSON object (a detail) at u, returning it decoded and as sent; one larger than
// max_value_bytes is refused.
func (s *Source) object(ctx context.Context, u string) (sources.Record, jsonrec.Quirks, []byte, error) {
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, Header: s.orgHeader()})
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
