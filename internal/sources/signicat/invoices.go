package signicat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// invoiceStreams are the invoices, their lines and their PDFs. All three are incremental in monthly
// invoice-date windows, partitioned by the invoice's month; the invoices and lines keep the evidence
// auditors trace rows to (a PDF's evidence is the PDF itself). The per-invoice streams make a request
// per invoice (FanOut) and are checkpointed per invoice, so a killed first sync resumes where it stopped.
func (s *Source) invoiceStreams() []sources.Spec {
	return []sources.Spec{
		// Spec: GET /invoices?invoiceDateAfter&invoiceDateBefore answers a plain array; invoiceNumber
		// identifies an invoice (declared key). Bounds: see listInvoices.
		{Name: "invoices", Endpoint: "GET /invoices?invoiceDateAfter&invoiceDateBefore", Mode: sources.Incremental,
			Evidence: true, Partition: invoiceMonth,
			Pages: func(ctx context.Context, st *sources.State, _ sources.Resume) iter.Seq2[sources.Page, error] {
				return s.listInvoices(ctx, st)
			}},
		// Spec: GET /invoices/{invoiceNumber} → lines[], which carry no number of their own: keyed by
		// invoice number and 1-based position. An invoice read again replaces all its lines (Group), so
		// one that disappeared does not linger.
		{Name: "invoice_lines", Endpoint: "GET /invoices/{invoiceNumber}", Mode: sources.Incremental,
			Group: []string{"invoice_number"}, Evidence: true, FanOut: true, Checkpoints: true, Partition: invoiceMonth,
			Pages: s.invoiceLinePages},
		// Spec: GET /invoices/{invoiceNumber}/pdf. Costs a request per invoice, so read only when asked
		// for (OptIn), and each PDF once (Resume skips those a committed run holds).
		{Name: "invoice_pdfs", Endpoint: "GET /invoices/{invoiceNumber}/pdf", Mode: sources.Incremental,
			FanOut: true, Checkpoints: true, OptIn: true, Partition: invoiceMonth, Pages: s.invoicePDFPages},
	}
}

// invoiceDay is an invoice's date as YYYY-MM-DD, for watermarks and the invoice_month partition.
func invoiceDay(r sources.Record) string {
	if d, ok := r["invoiceDate"].(string); ok && len(d) >= 10 {
		return d[:10]
	}
	return ""
}

// month is a partition value: a four-digit year and a month 01-12, nothing else.
var month = regexp.MustCompile(`^[0-9]{4}-(0[1-9]|1[0-2])$`)

// invoiceMonth partitions by the invoice's month. The record decides the value, so it is checked
// before it names a directory: anything but YYYY-MM goes to invoice_month=invalid (and no date at all
// to invoice_month=unknown), counted by the pipeline in the stream's warnings.
func invoiceMonth(r sources.Record) string {
	d := invoiceDay(r)
	switch {
	case d == "" && r["invoiceDate"] == nil:
		return "invoice_month=unknown"
	case len(d) < 7 || !month.MatchString(d[:7]):
		return sources.InvalidPartition("invoice_month")
	}
	return "invoice_month=" + d[:7]
}

// listInvoices fetches the invoice windows concurrently and yields them oldest first, each invoice
// once. The reference
// does not say whether invoiceDateAfter/Before are inclusive, so, as signicat-notes.md advises, each
// window asks one day wider on both sides: every reading of the bounds loses nothing, and an invoice at
// a window's edge comes back from both neighbours. Such copies are the same record twice: a record
// equal in every field to one already yielded (by invoiceNumber, the spec's identifier, then by
// content) is dropped. Two records with one invoiceNumber that differ in any field are both kept, and
// the key check reports the invoice number (nothing is picked silently). A window's answer is decoded
// as it is read (a large one from disk).
func (s *Source) listInvoices(ctx context.Context, st *sources.State) iter.Seq2[sources.Page, error] {
	ws := sources.MonthWindows(sources.WindowStart(s.cfg.Since.Time, st, s.cfg.LookbackDays), sources.Tomorrow(s.now()))
	var mu sync.Mutex
	seen := map[string][][32]byte{} // invoiceNumber → digests of the versions yielded
	keep := func(r sources.Record, _ []byte) bool {
		n, _ := r["invoiceNumber"].(string)
		d := digest(r)
		mu.Lock()
		defer mu.Unlock()
		if slices.Contains(seen[n], d) {
			return false
		}
		seen[n] = append(seen[n], d)
		if st != nil {
			st.AdvanceDate(invoiceDay(r))
		}
		return true
	}
	fetch := func(ctx context.Context, w dates.Window) (sources.Page, error) {
		next := w.End.Add(time.Millisecond) // the first day after the window
		q := url.Values{
			"invoiceDateAfter":  {w.Start.AddDate(0, 0, -1).Format("2006-01-02")},
			"invoiceDateBefore": {next.AddDate(0, 0, 1).Format("2006-01-02")},
		}
		where := "GET /invoices?" + q.Encode()
		// Spec: GET /invoices returns a JSON array. A null is no empty window (reading it so would move
		// the watermark past invoices never read): NotNull retries it, and fails the stream if it stays.
		resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + "/invoices?" + q.Encode(), Auth: s.auth, Header: s.orgHeader(),
			MaxBytes: int64(s.limits.MaxPageBytes), NotNull: true})
		if err != nil {
			return sources.Page{}, err
		}
		return sources.Page{Body: resp.Body, MaxValue: int(s.limits.MaxValueBytes), Where: where, Keep: keep,
			Raw: &sources.Raw{Endpoint: where, Body: resp.Body}}, nil
	}
	return sources.InOrder(ctx, sources.WindowsInFlight, ws, fetch)
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

// invoiceLinePages lists the invoices like the invoices stream and reads GET /invoices/{invoiceNumber}
// for each as soon as its window is listed, concurrently within the host's limit, yielding its lines
// keyed by invoice number and 1-based line number. An invoice whose detail cannot be read is a failed
// page: the rest goes on.
//
// A later run reads again only the invoices that are new or changed: an invoice is changed when its
// entry in the invoice list differs in any field from the entry it had when its lines were read (the
// memo keeps a digest of it). Assumption (the reference does not say): an invoice's lines do not
// change while its list entry — number, dates, amounts, status — stays the same. --full-refresh reads
// every invoice again.
func (s *Source) invoiceLinePages(ctx context.Context, st *sources.State, resume sources.Resume) iter.Seq2[sources.Page, error] {
	want := func(v invoiceRef) bool {
		if resume.Skip(v.number) {
			return false
		}
		var read string
		if st.Recall(v.number, &read) && read == v.entry {
			st.Remember(v.number, read) // unchanged: its lines stand, and so does its memo
			return false
		}
		return true
	}
	detail := func(ctx context.Context, v invoiceRef) (sources.Page, error) {
		// Invoice numbers contain '-' and '.', and could contain '/': always escape the segment.
		seg, err := sources.PathSegment(v.number)
		if err != nil {
			return failure(v, fmt.Errorf("invoice number: %w", err), false), nil
		}
		endpoint := "GET /invoices/" + seg
		inv, q, body, err := s.object(ctx, s.base+"/invoices/"+seg)
		if err != nil {
			return itemError(v, err)
		}
		lines, err := invoiceLines(v.number, inv)
		if err != nil {
			return failure(v, &sources.BodyError{Where: endpoint, Err: err}, true), nil
		}
		page := sources.Page{Done: v.number, Quirks: q, Records: make([]sources.Record, 0, len(lines)), Raw: &sources.Raw{Endpoint: endpoint, Body: spool.Bytes(body)}}
		for i, l := range lines {
			line, ok := l.(map[string]any)
			if !ok {
				return failure(v, fmt.Errorf("%s: lines[%d] is not an object", endpoint, i), true), nil
			}
			line["invoiceNumber"] = v.number
			line["lineNumber"] = json.Number(strconv.Itoa(i + 1))
			line["invoiceDate"] = inv["invoiceDate"]
			page.Records = append(page.Records, line)
		}
		if v.entry != "" {
			st.Remember(v.number, v.entry)
		}
		return page, nil
	}
	return sources.Fan(httpclient.Then(ctx), sources.FanOutLimit, s.invoicesToVisit(ctx, st, want), detail)
}

// invoiceLines are the lines of the detail inv of invoice number. Spec: the detail is the invoice
// (invoiceNumber included) with lines[] added. A detail that names another invoice, or none, is not
// number's (a server answering another request's body, or an error as {}), and one whose lines are
// missing or not an array says nothing of its lines: storing either would replace number's lines with
// wrong ones or none, so both are errors, and the invoice is asked again. "lines": [] is an invoice
// without lines.
func invoiceLines(number string, inv sources.Record) ([]any, error) {
	switch got, ok := inv["invoiceNumber"].(string); {
	case inv["invoiceNumber"] == nil:
		return nil, errors.New("the detail has no invoiceNumber")
	case !ok || got != number:
		return nil, fmt.Errorf("the detail is invoice %q's, not %s's", fmt.Sprint(inv["invoiceNumber"]), number)
	}
	raw, ok := inv["lines"]
	if !ok {
		return nil, errors.New("the detail has no lines")
	}
	lines, ok := raw.([]any)
	if !ok {
		return nil, fmt.Errorf("the detail's lines are %s, not an array", jsonKind(raw))
	}
	return lines, nil
}

// jsonKind names the JSON type of a decoded value, for errors.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "an object"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	}
	return "a number"
}

// failure is a failed page of one invoice.
func failure(v invoiceRef, err error, retry bool) sources.Page {
	return sources.Page{Failed: &sources.Failure{Item: v.number, Date: v.day, Err: err, Retry: retry}}
}

// itemError makes err a failed page of invoice v where it is about that invoice alone, else the
// stream's error.
func itemError(v invoiceRef, err error) (sources.Page, error) {
	if sources.ItemFailed(err) {
		return failure(v, err, true), nil
	}
	return sources.Page{}, err
}

// invoicePDFPages lists the invoices like the invoices stream and downloads the PDF of each one that
// no committed run holds yet and this run has not checkpointed (resume), as soon as its window is listed,
// yielding one record per PDF and the PDF itself as the page's raw body, which the pipeline stores in
// the lake. A PDF over max_pdf_bytes, or an answer that is not a PDF, is a failed page of that invoice.
func (s *Source) invoicePDFPages(ctx context.Context, st *sources.State, resume sources.Resume) iter.Seq2[sources.Page, error] {
	download := func(ctx context.Context, v invoiceRef) (sources.Page, error) {
		seg, err := sources.PathSegment(v.number)
		if err != nil {
			return failure(v, fmt.Errorf("invoice number: %w", err), false), nil
		}
		endpoint := "/invoices/" + seg + "/pdf"
		resp, err := s.client.Do(ctx, httpclient.Request{Method: "GET", URL: s.base + endpoint, Auth: s.auth, Header: s.orgHeader(),
			MaxBytes: int64(s.limits.MaxPDFBytes), What: "PDF (max_pdf_bytes)"})
		if err != nil {
			return itemError(v, err)
		}
		sum, isPDF, err := pdfDigest(resp.Body.Reader())
		if err != nil || !isPDF {
			resp.Body.Close()
			if err == nil {
				err = fmt.Errorf("GET %s: the response is not a PDF (Content-Type %q, %d bytes)", endpoint, resp.Header.Get("Content-Type"), resp.Size())
			}
			return failure(v, &sources.BodyError{Where: "GET " + endpoint, Err: err}, true), nil
		}
		rec := sources.Record{
			"invoiceNumber": v.number,
			"invoiceDate":   v.date,
			"sha256":        sum,
			"bytes":         json.Number(strconv.FormatInt(resp.Size(), 10)),
			"contentType":   resp.Header.Get("Content-Type"),
		}
		return sources.Page{Done: v.number, Records: []sources.Record{rec}, Raw: &sources.Raw{Endpoint: "GET " + endpoint, Body: resp.Body, PDF: true, Key: v.number}}, nil
	}
	want := func(v invoiceRef) bool { return !resume.Skip(v.number) }
	return sources.Fan(httpclient.Then(ctx), sources.FanOutLimit, s.invoicesToVisit(ctx, st, want), download)
}

// pdfDigest is the sha256 of a body read from r, and whether it starts as a PDF does.
func pdfDigest(r io.Reader) (string, bool, error) {
	h := sha256.New()
	head := make([]byte, 5)
	n, err := io.ReadFull(r, head)
	h.Write(head[:n])
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if _, err := io.Copy(h, r); err != nil {
		return "", false, err
	}
	return hex.EncodeToString(h.Sum(nil)), string(head) == "%PDF-", nil
}

// invoiceRef is an invoice a per-invoice stream asks for.
type invoiceRef struct {
	number string
	date   any    // invoiceDate as listed
	day    string // YYYY-MM-DD
	entry  string // digest of its list entry ("" for one the last run could not fetch)
}

// invoicesToVisit lists the invoices like the invoices stream and yields those want keeps, window by
// window from the oldest, each window's ordered by day then number: the per-invoice streams then fill
// one invoice_month partition after another, so a checkpoint commits a file or two, not one per
// month. Then come the invoices the last run could not fetch (State.Pending), wherever their date.
func (s *Source) invoicesToVisit(ctx context.Context, st *sources.State, want func(invoiceRef) bool) iter.Seq2[invoiceRef, error] {
	return func(yield func(invoiceRef, error) bool) {
		seen := map[string]bool{}
		visit := func(refs []invoiceRef) bool {
			sort.Slice(refs, func(i, j int) bool {
				if refs[i].day != refs[j].day {
					return refs[i].day < refs[j].day
				}
				return refs[i].number < refs[j].number
			})
			for _, v := range refs {
				if !yield(v, nil) {
					return false
				}
			}
			return true
		}
		add := func(refs []invoiceRef, v invoiceRef) []invoiceRef {
			if v.number == "" || seen[v.number] {
				return refs // no number to ask for (the invoices stream keeps the record), or asked already
			}
			seen[v.number] = true
			if want(v) {
				refs = append(refs, v)
			}
			return refs
		}
		for p, err := range s.listInvoices(ctx, st) {
			var refs []invoiceRef
			if err == nil {
				_, err = p.Each(func(r sources.Record) error {
					n, _ := r["invoiceNumber"].(string)
					refs = add(refs, invoiceRef{number: strings.Clone(n), date: r["invoiceDate"], day: invoiceDay(r), entry: entryDigest(r)})
					return nil
				})
			}
			if err != nil && !errors.Is(err, jsonrec.ErrNull) {
				yield(invoiceRef{}, err)
				return
			}
			if !visit(refs) {
				return
			}
		}
		var pending []invoiceRef
		for _, n := range st.PendingItems() {
			pending = add(pending, invoiceRef{number: n, date: st.Pending[n], day: st.Pending[n]})
		}
		visit(pending)
	}
}

// entryDigest identifies an invoice's list entry: any change to it reads the invoice again.
func entryDigest(r sources.Record) string {
	sum := digest(r)
	return hex.EncodeToString(sum[:12])
}
