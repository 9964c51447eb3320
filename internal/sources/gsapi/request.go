package gsapi

import (
	"context"
	"iter"
	"net/url"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// one fetches an endpoint that answers with one JSON array of everything (invoice/list is 37 MB at the
// bench's scale 10 and grows with the tenant), spooled to a file and decoded from there.
func (s *Source) one(ctx context.Context, path string, q url.Values) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		p, err := s.get(ctx, path, q, false)
		yield(p, err)
	}
}

// object reads one JSON object at path; one larger than max_value_bytes is refused.
func (s *Source) object(ctx context.Context, path, where string) (sources.Record, jsonrec.Quirks, error) {
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + path, Auth: s.auth})
	if err != nil {
		return nil, jsonrec.Quirks{}, err
	}
	defer resp.Body.Close()
	b, err := resp.Body.Load(int64(s.limits.MaxValueBytes), "answer (max_value_bytes)")
	if err != nil {
		return nil, jsonrec.Quirks{}, &sources.BodyError{Where: where, Err: err}
	}
	rec, q, err := jsonrec.DecodeObject(b)
	if err != nil {
		return nil, q, &sources.BodyError{Where: where, Err: err}
	}
	return rec, q, nil
}

// get fetches an endpoint answering one JSON array; its records are decoded as the page is read (a
// large answer from the file it was spilled to, never from memory). With evidence the page keeps the
// answer as sent (Raw), for the streams whose evidence auditors trace rows to.
func (s *Source) get(ctx context.Context, path string, q url.Values, evidence bool) (sources.Page, error) {
	u := s.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: u, Auth: s.auth, MaxBytes: int64(s.limits.MaxPageBytes)})
	if err != nil {
		return sources.Page{}, err
	}
	where := "GET " + path + "?" + q.Encode()
	p := sources.Page{Body: resp.Body, MaxValue: int(s.limits.MaxValueBytes), Where: where}
	if evidence {
		p.Raw = &sources.Raw{Endpoint: where, Body: resp.Body}
	}
	return p, nil
}
