package gsapi

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"sort"
	"sync"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// objectStreams is GET /objects/list. Example response; "Objects … have a unique Object_id" (declared
// key); objectfields holds the tenant's own fields, kept as a map. objects/list needs a type_id, so
// the types come from profiles/list (see objectPages for what that assumes).
func (s *Source) objectStreams() []sources.Spec {
	return []sources.Spec{
		{Name: "objects", Endpoint: "GET /objects/list?type_id={each profile's type_id}", MapPaths: []string{"objectfields"}, Pages: s.objectPages},
	}
}

// objectPages lists objects per type: objects/list needs a type_id (or a profile_id or objectid), so
// the types come from profiles/list. Spec: profiles/list's field list has "type_id (number): Type ID of
// the profile". Assumption: objects/list's type_id is that type, and every object has a type some
// profile names. Checked: profiles without any type_id fail the stream (it would list nothing). An
// object that comes back under two types byte for byte is kept once (the requests overlap); one that
// comes back with other values is kept twice, and objectid (unique by the spec) reports it.
func (s *Source) objectPages(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		profiles, err := s.get(ctx, "/profiles/list", nil, false)
		var types []string
		seen := map[string]bool{}
		n := 0
		if err == nil {
			_, err = profiles.Each(func(p sources.Record) error {
				n++
				t := fmt.Sprint(p["type_id"])
				if p["type_id"] != nil && !seen[t] {
					seen[t] = true
					types = append(types, t)
				}
				return nil
			})
			if errors.Is(err, jsonrec.ErrNull) {
				err = nil // no profiles, no types: nothing to list
			}
		}
		if err == nil && n > 0 && len(types) == 0 {
			err = fmt.Errorf("GET /profiles/list: none of its %d profiles has a type_id, which GET /objects/list needs: this tenant's profiles differ from the spec's", n)
		}
		if err == nil && len(types) > s.limits.MaxPages {
			err = fmt.Errorf("GET /profiles/list: %d object types would take a request each, more than max_pages (%d)", len(types), s.limits.MaxPages)
		}
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		sort.Strings(types)
		var mu sync.Mutex
		copies, dropped := map[digest]bool{}, 0
		keep := func(_ sources.Record, raw []byte) bool {
			d := digestOf(raw)
			mu.Lock()
			defer mu.Unlock()
			if copies[d] {
				dropped++
				return false
			}
			copies[d] = true
			return true
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), sources.FanOutLimit, types, func(ctx context.Context, typeID string) (sources.Page, error) {
			pg, err := s.get(ctx, "/objects/list", s.orgScope(url.Values{"type_id": {typeID}}), false)
			pg.Keep = keep
			return pg, err
		}) {
			if !yield(p, err) || err != nil {
				return
			}
		}
		if dropped > 0 {
			yield(sources.Page{Note: fmt.Sprintf("%d objects came back byte for byte under more than one type_id: each was kept once", dropped)}, nil)
		}
	}
}
