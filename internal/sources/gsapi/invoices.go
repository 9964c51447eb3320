package gsapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"net/url"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// chargeStreams are the charges: GET /charges/actions, and GET /invoicecharges/list for every invoice
// header of the datasync Invoices windows.
func (s *Source) chargeStreams() []sources.Spec {
	return []sources.Spec{
		// Spec: GET charges/actions?org_id&starttime lists charges; no example response, so every field is
		// inferred; the ident is an assumption; boparams is assumed to be the tenant's object, as in
		// invoicecharges/list.
		{Name: "charges", Endpoint: "GET /charges/actions?starttime={since}", Ident: []string{"charge_id"}, MapPaths: []string{"boparams"},
			Pages: func(ctx context.Context, _ *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
				return s.one(ctx, "/charges/actions", s.orgScope(url.Values{"starttime": {s.cfg.Since.Format("2006-01-02")}}))
			}},
		// Spec: one object per iheader_id, whose iheader_id "Echoes the requested iheader_id" (declared key);
		// charges[] and its fields are documented; boparams is assumed to be the tenant's object. One
		// request per invoice header (FanOut), checkpointed per header, so a killed run resumes after the
		// last. Pages: see invoiceChargePages.
		{Name: "invoice_charges", Endpoint: "GET /invoicecharges/list?iheader_id={each datasync invoice's}", Mode: sources.Incremental,
			MapPaths: []string{"charges.boparams"}, FanOut: true, Checkpoints: true, Pages: s.invoiceChargePages},
	}
}

// invoiceChargePages reads invoicecharges/list for every invoice of the datasync Invoices windows
// (incremental like them), one call per invoice header, each made as soon as its window is listed.
// Spec: invoicecharges/list takes iheader_id and answers one object whose iheader_id "Echoes the
// requested iheader_id". Assumption: the datasync Invoices records carry that id in the column
// sources.gsapi.fields.datasync_invoices.invoice_id names (iheader_id by default). Checked: an invoice
// record without it fails the stream (its charges could not be fetched), and an answer for another
// iheader_id fails that invoice; an answer without one gets the requested id.
//
// A later run asks again only for the invoices that are new or changed: changed when the invoice's
// datasync record differs in any field from the one it had when its charges were read (the memo keeps a
// digest). Assumption (the spec does not say): an invoice's charges do not change while its header
// record stays the same. --full-refresh reads every invoice again.
func (s *Source) invoiceChargePages(ctx context.Context, st *sources.State, resume sources.Resume) iter.Seq2[sources.Page, error] {
	return sources.Fan(httpclient.Then(ctx), sources.FanOutLimit, s.chargesToVisit(ctx, st, resume), s.invoiceCharges(st))
}

// chargeRef is an invoice header whose charges are asked for.
type chargeRef struct {
	id    string
	entry string // digest of its datasync record ("" for one the last run could not fetch)
}

// chargesToVisit yields the invoice headers of the datasync Invoices windows, as each window is read,
// that are new or changed and not done (resume); then those the last run could not fetch.
func (s *Source) chargesToVisit(ctx context.Context, st *sources.State, resume sources.Resume) iter.Seq2[chargeRef, error] {
	return func(yield func(chargeRef, error) bool) {
		col, entry := s.cfg.InvoiceIDColumn()
		if col == "" {
			yield(chargeRef{}, fmt.Errorf("sources.gsapi.fields.datasync_invoices.invoice_id is %s: invoicecharges/list is called with each invoice's id as the export sends it, so name the column that holds it", entry))
			return
		}
		seen := map[string]bool{}
		want := func(v chargeRef) bool {
			if seen[v.id] || resume.Skip(v.id) {
				return false
			}
			seen[v.id] = true
			var read string
			if v.entry != "" && st.Recall(v.id, &read) && read == v.entry {
				st.Remember(v.id, read) // unchanged: its charges stand, and so does its memo
				return false
			}
			return true
		}
		var missing int
		for p, err := range s.windowed(ctx, st, "/datasync", s.orgScope(url.Values{"option": {"Invoices"}})) {
			var refs []chargeRef
			if err == nil {
				_, err = p.Each(func(r sources.Record) error {
					if v := fieldByColumn(r, col); v == nil {
						missing++
					} else if ref := (chargeRef{id: strings.Clone(fmt.Sprint(v)), entry: recordDigest(r)}); want(ref) {
						refs = append(refs, ref)
					}
					return nil
				})
			}
			if err != nil && !errors.Is(err, jsonrec.ErrNull) {
				yield(chargeRef{}, err)
				return
			}
			for _, ref := range refs {
				if !yield(ref, nil) {
					return
				}
			}
		}
		if missing > 0 {
			yield(chargeRef{}, fmt.Errorf("%d datasync Invoices records have no %s, the invoice id invoicecharges/list takes: name the column that holds it in sources.gsapi.fields.datasync_invoices.invoice_id", missing, col))
			return
		}
		for _, id := range st.PendingItems() {
			if ref := (chargeRef{id: id}); want(ref) && !yield(ref, nil) {
				return
			}
		}
	}
}

// recordDigest identifies a record by its content (map keys marshal sorted, numbers keep their text).
func recordDigest(r sources.Record) string {
	b, _ := json.Marshal(r)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// invoiceCharges reads one invoice header's charges; an answer that fails for that header alone is a
// failed page, and the rest goes on. A header read is remembered with its record's digest.
func (s *Source) invoiceCharges(st *sources.State) func(context.Context, chargeRef) (sources.Page, error) {
	return func(ctx context.Context, ref chargeRef) (sources.Page, error) {
		id := ref.id
		path := "/invoicecharges/list?iheader_id=" + url.QueryEscape(id)
		where := "GET " + path
		rec, q, err := s.object(ctx, path, where)
		if err == nil {
			switch got, ok := rec["iheader_id"]; {
			case !ok || got == nil:
				rec["iheader_id"] = json.Number(id)
			case fmt.Sprint(got) != id:
				err = &sources.BodyError{Where: where, Err: fmt.Errorf("the answer is for iheader_id %v", got)}
			}
		}
		if err != nil {
			if sources.ItemFailed(err) {
				return sources.Page{Failed: &sources.Failure{Item: id, Err: err, Retry: true}}, nil
			}
			return sources.Page{}, err
		}
		if ref.entry != "" {
			st.Remember(id, ref.entry)
		}
		return sources.Page{Records: []sources.Record{rec}, Quirks: q, Done: id}, nil
	}
}

// fieldByColumn is the value of r's top-level field whose warehouse column is col (iheader_id, or
// IHeaderID for i_header_id).
func fieldByColumn(r sources.Record, col string) any {
	if v, ok := r[col]; ok {
		return v
	}
	for k, v := range r {
		if schemas.ColumnName(k) == col {
			return v
		}
	}
	return nil
}
