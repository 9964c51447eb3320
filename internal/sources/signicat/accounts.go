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
	"net/url"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// accountPages reads GET /accounts and then GET /accounts?deleted=true: soft-deleted accounts exist only
// in the second list, and auditors need them. Each account's products come from GET /accounts/{id},
// fetched concurrently for the accounts of each page.
func (s *Source) accountPages(ctx context.Context, st *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		for _, deleted := range []bool{false, true} {
			q := url.Values{}
			if deleted {
				q.Set("deleted", "true")
			}
			for p, err := range s.walk(ctx, "/accounts", q) {
				var failed []sources.Page
				if err == nil {
					failed, err = s.addProducts(ctx, st, p.Records, deleted)
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

// products are the remembered products as the detail gave them: numbers stay json.Number, exact to
// the last digit the API sent (a float64 turns 12345678901234567.89 into 12345678901234568).
func (m accountMemo) products() (any, error) {
	dec := json.NewDecoder(bytes.NewReader(m.Products))
	dec.UseNumber()
	var products any
	return products, dec.Decode(&products)
}

// addProducts sets each account's products from its detail. A detail is read when the account is new,
// its list entry changed, or its products are account_detail_days old; otherwise the products read
// before are reused. An account's first read is dated back by a phase derived from its id, so the
// periodic re-reads spread evenly over the days instead of all falling due together. An account whose
// detail cannot be read keeps the products read before (if any) and is returned as a failed page.
func (s *Source) addProducts(ctx context.Context, st *sources.State, accts []sources.Record, deleted bool) ([]sources.Page, error) {
	d := &accountDetails{s: s, st: st, deleted: deleted, days: *s.cfg.AccountDetailDays,
		today: s.now().UTC().Truncate(24 * time.Hour), entries: make(map[string]string, len(accts))}
	var need []sources.Record
	byID := make(map[string]sources.Record, len(accts))
	for _, a := range accts {
		if !d.reuse(a) {
			need = append(need, a)
			id, _ := a["id"].(string)
			byID[id] = a
		}
	}
	var failed []sources.Page
	for p, err := range sources.Parallel(httpclient.Then(ctx), sources.FanOutLimit, need, d.fetch) {
		if err != nil {
			return nil, err
		}
		if p.Failed != nil {
			// The account is kept with the products read before, if any, and not remembered, so the next
			// run reads its detail again; the failure is a reject of the stream.
			d.restore(byID[p.Failed.Item])
			failed = append(failed, p)
			continue
		}
		r := p.Records[0]
		a := byID[r["id"].(string)]
		a["products"] = r["products"]
		d.remember(a)
	}
	return failed, nil
}

// accountDetails reads the details of one list's accounts (the active or the deleted ones).
type accountDetails struct {
	s       *Source
	st      *sources.State
	deleted bool
	days    int // account_detail_days
	today   time.Time
	entries map[string]string // list-entry hashes of the accounts, by id
}

// memoKey is the account's key in the memo: the deleted list's accounts apart.
func (d *accountDetails) memoKey(id string) string {
	if d.deleted {
		return "deleted:" + id
	}
	return id
}

// reuse sets a's products from the memo when its list entry is unchanged and its products are fresh,
// keeping the memo for the next run, and reports whether it did.
func (d *accountDetails) reuse(a sources.Record) bool {
	id, _ := a["id"].(string)
	entry := entryHash(a)
	d.entries[id] = entry
	var m accountMemo
	if d.days <= 0 || !d.st.Recall(d.memoKey(id), &m) || m.Entry != entry {
		return false
	}
	read, err := time.Parse(time.DateOnly, m.Read)
	if err != nil || d.today.Sub(read) >= time.Duration(d.days)*24*time.Hour {
		return false
	}
	products, err := m.products()
	if err != nil {
		return false
	}
	a["products"] = products
	d.st.Remember(d.memoKey(id), m)
	return true
}

// remember keeps a's products in the memo, read today less the account's phase.
func (d *accountDetails) remember(a sources.Record) {
	id, _ := a["id"].(string)
	h := fnv.New32a()
	h.Write([]byte(id))
	read := d.today
	if d.days > 0 {
		read = d.today.AddDate(0, 0, -int(h.Sum32()%uint32(d.days)))
	}
	products, _ := json.Marshal(a["products"])
	d.st.Remember(d.memoKey(id), accountMemo{Entry: d.entries[id], Read: read.Format(time.DateOnly), Products: products})
}

// restore gives a the products the memo holds for it, if any.
func (d *accountDetails) restore(a sources.Record) {
	id, _ := a["id"].(string)
	var m accountMemo
	if d.st.Recall(d.memoKey(id), &m) {
		if products, err := m.products(); err == nil {
			a["products"] = products
		}
	}
}

// fetch reads a's detail (GET /accounts/{id}, with deleted=true for the deleted list) for its
// products; an answer that fails for that account alone is a failed page.
func (d *accountDetails) fetch(ctx context.Context, a sources.Record) (sources.Page, error) {
	id, _ := a["id"].(string)
	seg, err := sources.PathSegment(id)
	if err != nil {
		return sources.Page{Failed: &sources.Failure{Item: id, Err: fmt.Errorf("account id: %w", err)}}, nil
	}
	u := d.s.base + "/accounts/" + seg
	if d.deleted {
		u += "?deleted=true"
	}
	detail, q, _, err := d.s.object(ctx, u)
	if err != nil {
		if sources.ItemFailed(err) {
			return sources.Page{Failed: &sources.Failure{Item: id, Err: err, Retry: true}}, nil
		}
		return sources.Page{}, err
	}
	if err := sameAccount(id, detail); err != nil {
		where := "GET " + strings.TrimPrefix(u, d.s.base)
		return sources.Page{Failed: &sources.Failure{Item: id, Err: &sources.BodyError{Where: where, Err: err}, Retry: true}}, nil
	}
	products := detail["products"]
	if products == nil {
		products = []any{}
	}
	return sources.Page{Records: []sources.Record{{"id": id, "products": products}}, Quirks: q}, nil
}

// sameAccount checks that detail is account id's. Spec: GET /accounts/{accountId} answers the account,
// its id included. One naming another account, or none (a server answering another request's body, or
// an error as {}), would give id another account's products, or none: an error, so the account keeps
// the products read before and is asked again.
func sameAccount(id string, detail sources.Record) error {
	switch got, ok := detail["id"].(string); {
	case detail["id"] == nil:
		return errors.New("the detail has no id")
	case !ok || got != id:
		return fmt.Errorf("the detail is account %q's, not %s's", fmt.Sprint(detail["id"]), id)
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
