// Package sources defines what a source hands the pipeline: streams that each declare their table,
// key and schema, and fetch pages of records lazily so the sink's pace slows the fetch (backpressure).
// A source declares each stream once (Spec), next to the endpoint it reads; Build makes the streams.
package sources

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"sort"
	"strings"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
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

// Stream is one extractable dataset of a source.
type Stream struct {
	Source string
	Name   string
	// Endpoint is what the stream reads, as the spec names it ("GET /datasync?option=Invoices").
	Endpoint string
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
	// State is set on incremental streams (and snapshots that keep a memo): the pipeline loads the last
	// run's watermark into it before the run and stores the advanced one after the run's manifest is
	// committed.
	State *State
	// Evidence keeps every page's raw response (compressed, in the stream's pack, listed in the manifest)
	// and stamps each row with its sha256: set on the invoice streams auditors trace to the API's bytes.
	Evidence bool
	// FanOut marks a stream that makes a request per record of a listing (details, PDFs): by far the
	// most requests, so the pipeline starts these first and the long tail overlaps everything else.
	FanOut bool
	// Checkpoints marks a stream whose pages carry Done and whose source honours Resume, so a run killed
	// mid-stream resumes it where its last checkpoint ended instead of from the start.
	Checkpoints bool
	// OptIn marks a stream read only when the config names it (a request per invoice for a PDF): a
	// config without a streams list leaves it out.
	OptIn bool
	// Next, when set, says what the next run asks for given the stored state (extract status), where
	// the stream's own request says more than its Mode, since and lookback do (a key's watermark).
	Next func(st *State) string
	// Pages fetches the stream, skipping the units resume says are done; it stops at the first error,
	// which names the endpoint.
	Pages func(ctx context.Context, resume Resume) iter.Seq2[Page, error]
	// Meter reads the stream's traffic so far (nil: it makes no requests).
	Meter func() Traffic
}

// MovedError is a read that found the source changing under it (a total that moved between pages, a
// key read twice): what it read cannot be trusted, but reading the stream again from the start may
// succeed, so the pipeline discards the attempt and reads it again a bounded number of times.
type MovedError struct{ Err error }

func (e *MovedError) Error() string { return e.Err.Error() }
func (e *MovedError) Unwrap() error { return e.Err }

// Rereads is how many times a stream whose read met a MovedError is read again before it fails.
const Rereads = 2

// TableName is the warehouse table: source_stream.
func (s *Stream) TableName() string { return s.Source + "_" + s.Name }

// Traffic is the stream's traffic so far.
func (s *Stream) Traffic() Traffic {
	if s.Meter == nil {
		return Traffic{}
	}
	return s.Meter()
}

// Traffic counts one stream's requests.
type Traffic struct {
	Requests  int64 // attempts sent, retries included
	Retries   int64
	Throttled int64 // 429 answers
	Bytes     int64 // response bytes read
}

// Resume is what a run tells a stream's pages besides its State.
type Resume struct {
	// Done reports whether a unit of work (an invoice number) is already done: held by a committed run
	// (an invoice's PDF is fetched once) or checkpointed by an earlier attempt of this run. nil: none is.
	Done func(unit string) bool
}

// Skip reports whether unit is done, so the stream does not ask for it again.
func (r Resume) Skip(unit string) bool { return r.Done != nil && r.Done(unit) }

// Spec declares one stream of a source, in one literal next to the endpoint it reads: every fact the
// pipeline needs about it, none set afterwards (only a key the config names replaces its own:
// ConfigureKeys). Its schema is schemas/<source>/<Name>.yaml where there is one; a declared schema's
// key and ident replace Key and Ident. Fields named as Stream's mean what they mean there.
type Spec struct {
	Name string
	// Endpoint is what the stream reads, as the spec names it ("GET /datasync?option=Invoices").
	Endpoint string
	Mode     Mode
	// Key is the key in force (API paths): only what the spec or the config says identifies a record.
	Key []string
	// Ident is an assumed identity (API paths), used only to name rejects and link child rows.
	Ident []string
	// Group is the leading part of the key whose newest fetch replaces older rows (API paths).
	Group       []string
	MapPaths    []string
	Windowed    bool
	Evidence    bool
	FanOut      bool
	Checkpoints bool
	OptIn       bool
	// Memo gives a snapshot stream a State for its memo (incremental streams always have one).
	Memo      bool
	Partition func(Record) string
	Next      func(st *State) string
	// Pages fetches the stream. Its requests count into the stream's traffic without naming it
	// (httpclient.WithStats).
	Pages PageFunc
}

// PageFunc fetches a declared stream's pages given its State (nil on a snapshot without Memo) and
// what to skip.
type PageFunc func(ctx context.Context, st *State, resume Resume) iter.Seq2[Page, error]

// Build makes source's streams from their declarations, in order, each with its declared schema.
func Build(source string, specs []Spec) ([]*Stream, error) {
	out := make([]*Stream, 0, len(specs))
	for _, sp := range specs {
		t, err := schemas.Lookup(source, sp.Name)
		if err != nil {
			return nil, err
		}
		st := &Stream{Source: source, Name: sp.Name, Endpoint: sp.Endpoint, Declared: t, Key: columnNames(sp.Key), Ident: columnNames(sp.Ident),
			Windowed: sp.Windowed, MapPaths: sp.MapPaths, Partition: sp.Partition, Mode: sp.Mode,
			Evidence: sp.Evidence, FanOut: sp.FanOut, Checkpoints: sp.Checkpoints, OptIn: sp.OptIn, Next: sp.Next}
		if sp.Group != nil {
			st.Group = columnNames(sp.Group)
		}
		if t != nil {
			st.Key, st.Ident = t.Key, t.Ident
		}
		if sp.Mode == Incremental || sp.Memo {
			st.State = &State{}
		}
		stats := &httpclient.Stats{Name: st.TableName()}
		state, pages := st.State, sp.Pages
		st.Pages = func(ctx context.Context, resume Resume) iter.Seq2[Page, error] {
			return pages(httpclient.WithStats(ctx, stats), state, resume)
		}
		st.Meter = func() Traffic {
			return Traffic{Requests: stats.Requests.Load(), Retries: stats.Retries.Load(), Throttled: stats.Throttled.Load(), Bytes: stats.Bytes.Load()}
		}
		out = append(out, st)
	}
	return out, nil
}

// columnNames maps API paths to warehouse column names.
func columnNames(paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = schemas.ColumnName(p)
	}
	return out
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

// Select returns the streams named in names (all but the OptIn ones when names is empty); an unknown
// name is an error that lists the valid ones.
func Select(all []*Stream, names []string) ([]*Stream, error) {
	if len(names) == 0 {
		return slices.DeleteFunc(slices.Clone(all), func(s *Stream) bool { return s.OptIn }), nil
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
