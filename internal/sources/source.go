// Package sources defines what a source hands the pipeline: streams that each declare their table,
// key and schema, and fetch pages of records lazily so the sink's pace slows the fetch (backpressure).
package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/spool"
	"github.com/ledgerlake/ledgerlake/internal/typing"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// Mode says how a stream's snapshots make up the current state.
type Mode int

const (
	// Snapshot streams fetch everything every run: the current table is the latest run's rows.
	Snapshot Mode = iota
	// Incremental streams fetch what changed: the current table is the latest version of every key.
	Incremental
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

// Stream is one extractable dataset of a source.
type Stream struct {
	Source string
	Name   string
	// Declared is the stream's schema from schemas/ (nil: every column is inferred from the data).
	// Fields the API sends beyond it are inferred too, so nothing is dropped.
	Declared *schemas.Table
	// Key is the key in force: the columns (warehouse names) that identify one record because
	// ../shared/spec says so or the user configured them (sources.<source>.keys). Only a key in force
	// ever groups rows — an incremental stream's current state keeps each key's newest fetch — and rows
	// of one run that share it are all kept and reported ("key not unique"), never collapsed.
	Key []string
	// Ident is what the sandbox and the spec's examples suggest identifies a record where no source
	// says so: an assumption. It names records in rejects and links child rows to their parent, and
	// never groups, drops or collapses rows.
	Ident []string
	// Group, on an incremental stream with a key, is the leading part of the key whose newest fetch
	// replaces all older rows of that group (an invoice's lines are replaced as a whole, so a line that
	// disappeared does not linger); nil means the whole key.
	Group []string
	// Windowed marks a stream fetched in date windows whose current state is the newest fetch of each
	// window: its pages carry Window, its rows _window_start and _window_end, and its report lists the
	// windows fetched, so the rows of a window fetched again replace that window's older rows whatever
	// they hold. No key is needed, so none is invented.
	Windowed bool
	// MapPaths are dot-joined API paths of tenant-defined objects kept as MAP(VARCHAR, VARCHAR).
	MapPaths []string
	// Partition names the hive partition of a record ("invoice_month=2024-01"); nil puts every row of a
	// run under run_date=YYYY-MM-DD.
	Partition func(Record) string
	Mode      Mode
	Stats     *httpclient.Stats
	// State is set on incremental streams: the pipeline loads the last run's watermark into it before
	// the run and stores the advanced one after the run's manifest is committed.
	State *State
	// Evidence keeps every page's raw response (compressed, content-addressed, listed in the manifest)
	// and stamps each row with its sha256: set on the invoice streams auditors trace to the API's bytes.
	Evidence bool
	// FanOut marks a stream that makes a request per record of a listing (details, PDFs): by far the
	// most requests, so the pipeline starts these first and the long tail overlaps everything else.
	FanOut bool
	// Checkpoints marks a stream whose pages carry Done and whose source honours Skip, so a run killed
	// mid-stream resumes it where its last checkpoint ended instead of from the start.
	Checkpoints bool
	// Skip, set by the pipeline, reports whether a unit is already done: held by a committed run (an
	// invoice's PDF is fetched once) or checkpointed by an earlier attempt of this run.
	Skip func(unit string) bool
	// Pages fetches the stream; it stops at the first error, which names the endpoint.
	Pages func(ctx context.Context) iter.Seq2[Page, error]
}

// TableName is the warehouse table: source_stream.
func (s *Stream) TableName() string { return s.Source + "_" + s.Name }

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

// NewStream builds a stream of source with the declared schema of schemas/<source>/<name>.yaml when
// there is one, and pages from pages.
func NewStream(source, name string, mode Mode, key []string, pages func(context.Context, *httpclient.Stats) iter.Seq2[Page, error]) (*Stream, error) {
	t, err := schemas.Lookup(source, name)
	if err != nil {
		return nil, err
	}
	st := &Stream{Source: source, Name: name, Declared: t, Key: key, Mode: mode, Stats: &httpclient.Stats{Name: source + "_" + name}}
	if t != nil {
		st.Key, st.Ident = t.Key, t.Ident
	}
	st.Pages = func(ctx context.Context) iter.Seq2[Page, error] { return pages(ctx, st.Stats) }
	return st, nil
}

// ConfigureKeys puts in force the keys a config names under sources.<source>.keys (stream → warehouse
// columns), replacing the streams' own; a stream the source does not have is a config error.
func ConfigureKeys(all []*Stream, source string, keys map[string][]string) error {
	byName := map[string]*Stream{}
	for _, s := range all {
		byName[s.Name] = s
	}
	for name, cols := range keys {
		s := byName[name]
		if s == nil {
			names := make([]string, 0, len(all))
			for _, s := range all {
				names = append(names, s.Name)
			}
			sort.Strings(names)
			return &config.Error{Msg: fmt.Sprintf("sources.%s.keys: no stream %q (streams: %s)", source, name, strings.Join(names, ", "))}
		}
		s.Key, s.Group = slices.Clone(cols), nil
	}
	return nil
}

// State is a stream's memory between runs.
type State struct {
	// Watermark is what the last successful run reached ("" on a first or full-refresh run).
	Watermark string `json:"watermark"`
	// Pending are the items (→ their dates) the last run could not fetch: this run asks for them again
	// whatever the watermark says.
	Pending map[string]string `json:"pending,omitempty"`
	// Ceiling, set by the pipeline before a run, is the latest day a date watermark may reach (the
	// run's start plus a day): a record dated later is kept, counted, and never moves the watermark,
	// so one bad date cannot stop every later run from fetching.
	Ceiling string `json:"-"`
	// Memo holds per-key facts a stream reuses next run (an account's products and when they were
	// read); each run stores the memo it built, so keys that disappeared drop out.
	Memo map[string]json.RawMessage `json:"memo,omitempty"`
	// Windows is set once a run has read the stream in whole-month windows recorded with its rows; a
	// watermark without it was left by an older ledgerlake, and the windows start over from since.
	Windows     bool `json:"windows,omitempty"`
	mu          sync.Mutex
	next        string
	nextMemo    map[string]json.RawMessage
	nextPending map[string]string
	future      int    // dates after Ceiling seen this run
	invalid     int    // dates that are not dates
	oddExample  string // one of them
}

// Recall reads key's memo from the last run into v.
func (s *State) Recall(key string, v any) bool {
	s.mu.Lock()
	raw, ok := s.Memo[key]
	s.mu.Unlock()
	return ok && json.Unmarshal(raw, v) == nil
}

// Remember keeps v as key's memo for the next run.
func (s *State) Remember(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.nextMemo == nil {
		s.nextMemo = map[string]json.RawMessage{}
	}
	s.nextMemo[strings.Clone(key)] = b // kept all run: not the decoder's shared memory (cut)
	s.mu.Unlock()
}

// Commit makes what this run reached the state to store: the advanced watermark, the new memo and
// the items to ask for again.
func (s *State) Commit() {
	w := s.Next()
	s.mu.Lock()
	s.Watermark, s.Memo, s.Pending = w, s.nextMemo, s.nextPending
	s.mu.Unlock()
}

// PendingItems are the items the last run could not fetch, sorted.
func (s *State) PendingItems() []string {
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.Pending))
}

// Fail records an item this run could not fetch, for the next run to ask for again.
func (s *State) Fail(item, date string) {
	s.mu.Lock()
	if s.nextPending == nil {
		s.nextPending = map[string]string{}
	}
	s.nextPending[strings.Clone(item)] = strings.Clone(date)
	s.mu.Unlock()
}

// AdvanceDate raises the watermark to day (YYYY-MM-DD) unless it is not a date or lies past Ceiling:
// those are counted (Odd) and change nothing.
func (s *State) AdvanceDate(day string) {
	_, err := time.Parse(time.DateOnly, day)
	s.mu.Lock()
	switch {
	case err != nil:
		s.invalid++
	case s.Ceiling != "" && day > s.Ceiling:
		s.future++
	default:
		s.mu.Unlock()
		s.Advance(day)
		return
	}
	if s.oddExample == "" {
		s.oddExample = strings.Clone(day)
	}
	s.mu.Unlock()
}

// Odd says what AdvanceDate passed over, for the stream's warnings.
func (s *State) Odd() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if s.future > 0 {
		out = append(out, fmt.Sprintf("%d records are dated after the run's start (e.g. %s): kept, but not used to move the watermark, so they cannot stop later runs from fetching", s.future, s.oddExample))
	}
	if s.invalid > 0 {
		out = append(out, fmt.Sprintf("%d records have a date that is not a date (e.g. %q): kept, and not used to move the watermark", s.invalid, s.oddExample))
	}
	return out
}

// NextMemo is the memo this run has built so far (for checkpoints).
func (s *State) NextMemo() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.nextMemo)
}

// RestoreMemo puts back the memo an earlier attempt of this run built.
func (s *State) RestoreMemo(m map[string]json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextMemo == nil {
		s.nextMemo = map[string]json.RawMessage{}
	}
	maps.Copy(s.nextMemo, m)
}

// Advance raises the watermark this run will store: numbers compare as numbers, anything else (ISO
// dates) as text.
func (s *State) Advance(w string) {
	s.mu.Lock()
	if later(w, s.next) {
		s.next = strings.Clone(w)
	}
	s.mu.Unlock()
}

// MarkWindows records that this run read the stream in recorded whole-month windows (see Windows).
func (s *State) MarkWindows() {
	s.mu.Lock()
	s.Windows = true
	s.mu.Unlock()
}

// Next is the watermark to store after this run: the highest seen, never below the previous one.
func (s *State) Next() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if later(s.Watermark, s.next) {
		return s.Watermark
	}
	return s.next
}

func later(a, b string) bool {
	if b == "" {
		return a != ""
	}
	fa, errA := strconv.ParseFloat(a, 64)
	fb, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		return fa > fb
	}
	return a > b
}

// PathSegment is id escaped as one URL path segment. An empty id, "." and ".." are refused: a server
// or proxy resolves them as directories, so the request would ask for another resource.
func PathSegment(id string) (string, error) {
	if id == "" || id == "." || id == ".." {
		return "", fmt.Errorf("%q cannot be sent as a path segment: it would name another resource", id)
	}
	return url.PathEscape(id), nil
}

// Select returns the streams named in names (all when names is empty); an unknown name is an error
// that lists the valid ones.
func Select(all []*Stream, names []string) ([]*Stream, error) {
	if len(names) == 0 {
		return all, nil
	}
	byName := map[string]*Stream{}
	var valid []string
	for _, s := range all {
		byName[s.Name] = s
		valid = append(valid, s.Name)
	}
	var out []*Stream
	for _, n := range names {
		s, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("unknown stream %q (valid: %v)", n, valid)
		}
		out = append(out, s)
	}
	return out, nil
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
