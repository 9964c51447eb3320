package sources

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/spool"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// Record is one decoded API object.
type Record = typing.Record

// Page is a batch of records from one response.
type Page struct {
	Records []Record
	// Body, when set, is a JSON array of objects decoded one record at a time as the page is read
	// (Each), from memory or from the file a large answer was spilled to: memory follows the batch
	// size, never the response size. Each reads it once and closes it.
	Body *spool.Body
	// MaxValue caps one record of Body (jsonrec.DefaultMaxValueBytes when 0).
	MaxValue int
	// Quirks are what decoding Records met (Each adds Body's).
	Quirks jsonrec.Quirks
	// Keep filters Body's records as they are decoded, given each record and its bytes as the API sent
	// them (exact copies at a window boundary); nil keeps all.
	Keep func(r Record, raw []byte) bool
	// Where names the request in a decoding error ("GET /datasync?…").
	Where string
	// Raw is the response the records were decoded from; the pipeline keeps it as evidence on streams
	// with Evidence set (nil where a page is not one response).
	Raw *Raw
	// Done names the unit of work this page completes (an invoice number) on streams with
	// Checkpoints: once the pipeline has checkpointed it, a resumed run skips it.
	Done string
	// Window is the date window the page answers, as sent, on Windowed streams.
	Window *dates.Window
	// Note is something about this page a user should hear of without the stream failing (a null
	// body read as empty, duplicates dropped at a window boundary): the pipeline logs it and keeps it
	// among the stream's warnings in the run report.
	Note string
	// Failed, instead of records, is one item of a fan-out stream that could not be fetched (an
	// invoice's detail answered 404): the rest of the stream commits, the item becomes a reject, and
	// the next run asks for it again (State.Pending).
	Failed *Failure
}

// Failure is one item a fan-out stream could not fetch.
type Failure struct {
	Item string // what was asked for: an invoice number, an iheader_id
	Date string // the item's date where the stream needs it to ask again (YYYY-MM-DD), else ""
	Err  error
	// Retry is whether asking again may succeed: false for an item that can never be requested (an
	// invoice number that is not a safe URL segment).
	Retry bool
}

// Raw is one response body exactly as received.
type Raw struct {
	Endpoint string // method, path and query relative to the source's base URL: "GET /invoices?…"
	Body     *spool.Body
	// PDF marks an invoice document (stored as is, listed under the manifest's pdfs) keyed by Key.
	PDF bool
	Key string
}

// Each calls fn with every record of the page: Records, then Body's records that Keep keeps, and
// returns what decoding them met (Quirks). A body that is the JSON literal null holds no records; Each
// then returns jsonrec.ErrNull (naming the request), which callers treat as an empty page they report.
func (p Page) Each(fn func(Record) error) (jsonrec.Quirks, error) {
	q := p.Quirks
	for _, r := range p.Records {
		if err := fn(r); err != nil {
			return q, err
		}
	}
	if p.Body == nil {
		return q, nil
	}
	kept := func(r Record, raw []byte) error {
		if p.Keep != nil && !p.Keep(r, raw) {
			return nil
		}
		return fn(r)
	}
	maxValue := p.MaxValue
	if maxValue <= 0 {
		maxValue = jsonrec.DefaultMaxValueBytes
	}
	var bq jsonrec.Quirks
	var err error
	if p.Body.InMemory() {
		bq, err = jsonrec.EachRawInArray(p.Body.Mem(), kept)
	} else {
		bq, err = jsonrec.EachRawInReader(p.Body.Reader(), maxValue, kept)
	}
	q.Add(bq)
	if cerr := p.Body.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("spilled body: %w", cerr)
	}
	if err != nil && p.Where != "" {
		return q, fmt.Errorf("%s: %w", p.Where, err)
	}
	return q, err
}

// Close releases the page's bodies when it is dropped unread.
func (p Page) Close() {
	p.Body.Close()
	if p.Raw != nil {
		p.Raw.Body.Close()
	}
}

// PathSegment is id escaped as one URL path segment. An empty id, "." and ".." are refused: a server
// or proxy resolves them as directories, so the request would ask for another resource.
func PathSegment(id string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("%q cannot be sent as a path segment: it would name another resource", id)
	}
	return url.PathEscape(id), nil
}

// BodyError is an answer whose body is not what its endpoint returns (not the JSON expected, too
// large to decode): it names the request.
type BodyError struct {
	Where string // "GET /invoices/123"
	Err   error
}

func (e *BodyError) Error() string { return e.Where + ": " + e.Err.Error() }
func (e *BodyError) Unwrap() error { return e.Err }

// ItemFailed reports whether err is about one item's answer — a final status other than 401 and 429
// (404, or a 500 that outlived its retries), a body that is not what the endpoint returns, one over
// its cap, one echoing a credential — rather than about the API, the connection or the run. Such a
// failure fails that item of a fan-out stream, not the stream.
func ItemFailed(err error) bool {
	var se *httpclient.StatusError
	if errors.As(err, &se) {
		return se.Status != http.StatusUnauthorized && se.Status != http.StatusTooManyRequests
	}
	var be *BodyError
	var tl *spool.TooLargeError
	return errors.As(err, &be) || errors.As(err, &tl) || errors.Is(err, httpclient.ErrEcho)
}

// InvalidPartition is the partition of records whose value for key cannot name a directory safely
// (the record decides it: "../../x" must not walk out of the lake).
func InvalidPartition(key string) string { return key + "=invalid" }
