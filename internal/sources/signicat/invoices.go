package signicat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"sync"

	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// invoiceDay is an invoice's date as YYYY-MM-DD, for watermarks and the invoice_month partition.
func invoiceDay(r sources.Record) string {
	if d, ok := r["invoiceDate"].(string); ok && len(d) >= 10 {
		return d[:10]
	}
	return ""
}

func invoiceMonth(r sources.Record) string {
	if d := invoiceDay(r); len(d) >= 7 {
		return "invoice_month=" + d[:7]
	}
	return "invoice_month=unknown"
}

// listInvoices fetches the invoice windows concurrently and yields each invoice once. The reference
// does not say whether invoiceDateAfter/Before are inclusive, so, as signicat-notes.md advises, each
// window asks one day wider on both sides: every reading of the bounds loses nothing, and an invoice at
// a window's edge comes back from both neighbours. Such copies are the same record twice: a record
// equal in every field to one already yielded (by invoiceNumber, the spec's identifier, then by
// content) is dropped. Two records with one invoiceNumber that differ in any field are both kept, and
// the key check reports the invoice number (nothing is picked silently).
func (s *Source) listInvoices(ctx context.Context, stats *httpclient.Stats, st *sources.State) iter.Seq2[sources.Page, error] {
	ws := sources.MonthWindows(sources.Resume(s.cfg.Since.Time, st, s.cfg.LookbackDays), sources.Tomorrow(s.now()))
	var mu sync.Mutex
	seen := map[string][][32]byte{} // invoiceNumber → digests of the versions yielded
	fetch := func(ctx context.Context, w sources.Window) (sources.Page, error) {
		q := url.Values{
			"invoiceDateAfter":  {w.From.AddDate(0, 0, -1).Format("2006-01-02")},
			"invoiceDateBefore": {w.To.AddDate(0, 0, 1).Format("2006-01-02")},
		}
		where := "GET /invoices?" + q.Encode()
		resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + "/invoices?" + q.Encode(), Auth: s.auth, Stats: stats, Header: s.orgHeader()})
		if err != nil {
			return sources.Page{}, err
		}
		recs, err := sources.DecodeArray(resp.Body)
		if err != nil {
			return sources.Page{}, fmt.Errorf("%s: %w", where, err)
		}
		page := sources.Page{Raw: &sources.Raw{Endpoint: where, Body: resp.Body}}
		if sources.IsNull(resp.Body) {
			page.Note = where + ": " + sources.ErrNull.Error()
		}
		mu.Lock()
		defer mu.Unlock()
		for _, r := range recs {
			n, _ := r["invoiceNumber"].(string)
			d := digest(r)
			if slices.Contains(seen[n], d) {
				continue
			}
			seen[n] = append(seen[n], d)
			page.Records = append(page.Records, r)
			if st != nil {
				st.Advance(invoiceDay(r))
			}
		}
		return page, nil
	}
	return sources.Parallel(ctx, sources.WindowsInFlight, ws, fetch)
}

// digest identifies a record by its content: encoding/json writes map keys sorted, and numbers keep the
// text the API sent (json.Number), so equal records give equal bytes.
func digest(r sources.Record) [32]byte {
	b, _ := json.Marshal(r)
	return sha256.Sum256(b)
}

// orgHeader carries the organisation id that organisation-level clients send on invoice endpoints.
func (s *Source) orgHeader() http.Header {
	h := http.Header{}
	if s.cfg.OrganizationID != "" {
		h.Set("Signicat-OrganizationId", s.cfg.OrganizationID)
	}
	return h
}

// invoiceLinePages lists the invoices like the invoices stream, then reads GET /invoices/{invoiceNumber}
// for each, concurrently within the per-host limit, and yields its lines keyed by invoice number and
// 1-based line number.
func (s *Source) invoiceLinePages(ctx context.Context, stats *httpclient.Stats, st *sources.State, skip func(string) bool) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		numbers, _, err := s.invoicesToVisit(ctx, stats, st, func(n string) bool { return !skip(n) })
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		detail := func(ctx context.Context, n string) (sources.Page, error) {
			// Invoice numbers contain '-' and '.', and could contain '/': always escape the segment.
			resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + "/invoices/" + url.PathEscape(n), Auth: s.auth, Stats: stats, Header: s.orgHeader()})
			if err != nil {
				return sources.Page{}, err
			}
			inv, err := sources.DecodeObject(resp.Body)
			if err != nil {
				return sources.Page{}, fmt.Errorf("GET /invoices/%s: %w", url.PathEscape(n), err)
			}
			lines, _ := inv["lines"].([]any)
			page := sources.Page{Done: n, Records: make([]sources.Record, 0, len(lines)), Raw: &sources.Raw{Endpoint: "GET /invoices/" + url.PathEscape(n), Body: resp.Body}}
			for i, l := range lines {
				line, ok := l.(map[string]any)
				if !ok {
					return sources.Page{}, fmt.Errorf("GET /invoices/%s: lines[%d] is not an object", url.PathEscape(n), i)
				}
				line["invoiceNumber"] = n
				line["lineNumber"] = json.Number(strconv.Itoa(i + 1))
				line["invoiceDate"] = inv["invoiceDate"]
				page.Records = append(page.Records, line)
			}
			return page, nil
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), 16, numbers, detail) {
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// invoicePDFPages lists the invoices like the invoices stream and downloads the PDF of each one that
// no committed run holds yet and this run has not checkpointed (skip), yielding one record per PDF
// and the PDF itself as the page's raw body, which the pipeline stores in the lake.
func (s *Source) invoicePDFPages(ctx context.Context, stats *httpclient.Stats, st *sources.State, skip func(string) bool) iter.Seq2[sources.Page, error] {
	return func(yield func(sources.Page, error) bool) {
		numbers, dates, err := s.invoicesToVisit(ctx, stats, st, func(n string) bool { return !skip(n) })
		if err != nil {
			yield(sources.Page{}, err)
			return
		}
		download := func(ctx context.Context, n string) (sources.Page, error) {
			endpoint := "/invoices/" + url.PathEscape(n) + "/pdf"
			resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + endpoint, Auth: s.auth, Stats: stats, Header: s.orgHeader()})
			if err != nil {
				return sources.Page{}, err
			}
			if !bytes.HasPrefix(resp.Body, []byte("%PDF-")) {
				return sources.Page{}, fmt.Errorf("GET %s: the response is not a PDF (Content-Type %q, %d bytes)", endpoint, resp.Header.Get("Content-Type"), len(resp.Body))
			}
			sum := sha256.Sum256(resp.Body)
			rec := sources.Record{
				"invoiceNumber": n,
				"invoiceDate":   dates[n],
				"sha256":        hex.EncodeToString(sum[:]),
				"bytes":         json.Number(strconv.Itoa(len(resp.Body))),
				"contentType":   resp.Header.Get("Content-Type"),
			}
			return sources.Page{Done: n, Records: []sources.Record{rec}, Raw: &sources.Raw{Endpoint: "GET " + endpoint, Body: resp.Body, PDF: true, Key: n}}, nil
		}
		for p, err := range sources.Parallel(httpclient.Then(ctx), 16, numbers, download) {
			if !yield(p, err) || err != nil {
				return
			}
		}
	}
}

// invoicesToVisit lists the invoices like the invoices stream and returns the numbers want keeps, with
// each one's invoiceDate, ordered by invoice day then number: the per-invoice streams then fill one
// invoice_month partition after another, so a checkpoint commits a file or two, not one per month.
func (s *Source) invoicesToVisit(ctx context.Context, stats *httpclient.Stats, st *sources.State, want func(string) bool) ([]string, map[string]any, error) {
	var numbers []string
	dates := map[string]any{}
	days := map[string]string{}
	for p, err := range s.listInvoices(ctx, stats, st) {
		if err != nil {
			return nil, nil, err
		}
		for _, r := range p.Records {
			n, _ := r["invoiceNumber"].(string)
			if _, dup := dates[n]; n == "" || dup || !want(n) {
				continue // no number to ask for (the invoices stream keeps the record), or asked already
			}
			numbers = append(numbers, n)
			dates[n], days[n] = r["invoiceDate"], invoiceDay(r)
		}
	}
	sort.Slice(numbers, func(i, j int) bool {
		a, b := numbers[i], numbers[j]
		if days[a] != days[b] {
			return days[a] < days[b]
		}
		return a < b
	})
	return numbers, dates, nil
}
