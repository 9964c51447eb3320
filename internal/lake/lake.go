// Package lake is the layout of the output directory: run ids, the run manifests that list every
// snapshot file a run committed (written last and atomically: a run without a manifest never happened),
// and verification of the files against them.
package lake

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/durable"
)

// ManifestDir holds one manifest per run, under the output directory.
const ManifestDir = "_manifests"

// NewRunID returns a run id that sorts by start time: 20261123T135400.123Z-1a2b3c.
func NewRunID(now time.Time) string {
	var r [3]byte
	_, _ = rand.Read(r[:])
	return now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(r[:])
}

// StreamReport is one stream's outcome in a run.
type StreamReport struct {
	Table     string  `json:"table"`
	Status    string  `json:"status"` // ok | failed
	Rows      int64   `json:"rows"`   // rows of the stream's own table (child tables in Tables)
	Rejects   int     `json:"rejects"`
	Requests  int64   `json:"requests"`
	Retries   int64   `json:"retries"`
	Throttled int64   `json:"throttled,omitempty"` // 429 answers among the requests
	Bytes     int64   `json:"bytes"`               // response bytes received
	Seconds   float64 `json:"seconds"`
	Resumed   bool    `json:"resumed,omitempty"` // continued from a checkpoint of a killed attempt
	Error     string  `json:"error,omitempty"`
	// FailedItems counts the items of a fan-out stream that could not be fetched (each a reject naming
	// the item and why): the rest of the stream is committed, and the next run asks for them again.
	FailedItems   int      `json:"failed_items,omitempty"`
	SchemaChanges []string `json:"schema_changes,omitempty"` // new columns and widened types
	// Warnings are what the stream met that did not fail it but a person should know: a null response,
	// duplicates dropped at a window boundary, a key that turned out not unique.
	Warnings []string    `json:"warnings,omitempty"`
	Tables   []TableInfo `json:"tables,omitempty"` // the stream's table, then its child tables
	// Windows are the date windows a windowed stream fetched, each one's rows replacing its older rows.
	Windows []dates.Window `json:"windows,omitempty"`
	// WindowRows are the rows each of Windows held, in its order: what a later fetch of a window is
	// compared with before it replaces them (absent from manifests of runs before it was recorded).
	WindowRows []int64 `json:"window_rows,omitempty"`
}

// TableInfo tells the loader how a table's current state follows from its history. Only a windowed
// table or a key in force ever replaces older rows; nothing ever picks one row of several.
type TableInfo struct {
	Name string `json:"name"`
	// Key is the key in force (spec or config): the rows sharing it are reported, never collapsed.
	Key []string `json:"key"`
	// Group, of an incremental table with a key, is what a newer fetch replaces as a whole (default Key).
	Group []string `json:"group,omitempty"`
	// Incremental: the current state spans runs (else it is the newest run's rows).
	Incremental bool `json:"incremental,omitempty"`
	// Windowed: the current state is the newest fetch of each window (the stream's Windows).
	Windowed bool  `json:"windowed,omitempty"`
	Rows     int64 `json:"rows"`
}

// FileInfo describes one committed snapshot file, as recorded in the manifest.
type FileInfo struct {
	Path              string `json:"path"` // relative to the output directory, with forward slashes
	Table             string `json:"table"`
	Partition         string `json:"partition,omitempty"`
	Rows              int64  `json:"rows"`
	Bytes             int64  `json:"bytes"`
	SHA256            string `json:"sha256"`
	SchemaFingerprint string `json:"schema_fingerprint"`
}

// Manifest records what one run committed.
type Manifest struct {
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Status     string    `json:"status"` // ok | partial (some stream failed)
	// Commit is the run's commit number in the lake (see CommitDir): runs in the order they committed.
	Commit int `json:"commit,omitempty"`
	// ResumedFrom is the run whose checkpoints this run took over after fencing it (see Fence): the
	// files it carried over keep that run's id in their names.
	ResumedFrom string         `json:"resumed_from,omitempty"`
	Streams     []StreamReport `json:"streams"`
	Files       []FileInfo     `json:"files"`
	// Evidence lists the raw response bodies of the invoice endpoints behind this run's rows: a body
	// an earlier run stored is listed in that run's pack.
	Evidence []Evidence `json:"evidence,omitempty"`
	// PDFs lists the invoice PDFs this run downloaded (each invoice's PDF is fetched once).
	PDFs []Evidence `json:"pdfs,omitempty"`
	// Packs are the evidence and PDF packs this run wrote, each with its size and sha256, so verify
	// checks every byte of them (absent from manifests of runs before it was recorded).
	Packs []PackInfo `json:"packs,omitempty"`
	// Hosts is how each API host's concurrency limit went during the run.
	Hosts []HostReport `json:"hosts,omitempty"`
}

// HostReport is how one API host's concurrency went during a run: the limit is found per host
// within the configured ceiling (per_host_concurrency).
type HostReport struct {
	Host      string       `json:"host"`
	Ceiling   int          `json:"ceiling"`
	Peak      int          `json:"peak"`      // the most requests in flight at once
	Final     int          `json:"final"`     // the limit at the end of the run
	Throttled int          `json:"throttled"` // 429 and 503 answers
	Samples   []HostSample `json:"samples"`   // each change of the limit
	// MeanInFlight is the mean of the requests in flight from the first request to the last answer
	// (absent from runs before it was recorded).
	MeanInFlight float64 `json:"mean_in_flight,omitempty"`
	// PausedSeconds is how long the host's Retry-After answers forbade any request, overlapping pauses
	// counted once (absent when none did, and from runs before it was recorded).
	PausedSeconds float64 `json:"paused_seconds,omitempty"`
}

// HostSample is a host's limit at a moment of a run.
type HostSample struct {
	Seconds  float64 `json:"s"` // since the host's first request
	Limit    int     `json:"limit"`
	InFlight int     `json:"in_flight"`
}

// Directories beside the snapshots: each table's persisted effective schema (later runs start from it)
// and each incremental stream's state (its watermark).
const (
	SchemaDir  = "_schemas"
	StateDir   = "_state"
	RejectsDir = "_rejects"
	// CheckpointDir holds the progress of a run that has not committed yet: <run id>/run.json and one
	// <table>.json per stream, each listing the files and units of work committed so far.
	CheckpointDir = "_checkpoints"
)

// ReadJSON loads dir/name.json of st into v; found is false when the file does not exist yet.
func ReadJSON(ctx context.Context, st Store, dir, name string, v any) (found bool, err error) {
	b, err := st.ReadFile(ctx, dir+"/"+name+".json")
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s/%s.json: %w", dir, name, err)
	}
	return true, nil
}

// WriteJSON replaces dir/name.json of st atomically.
func WriteJSON(ctx context.Context, st Store, dir, name string, v any) error {
	return writeJSON(ctx, st, dir+"/"+name+".json", v)
}

// writeJSON encodes v compactly into a new file that replaces key on commit, as encoding/json's
// Encoder would (encodeLists). Not indented: indenting re-buffers the whole encoding twice over.
func writeJSON(ctx context.Context, st Store, key string, v any) error {
	return st.WriteStream(ctx, key, func(f io.Writer) error { return encodeTo(f, v) })
}

// encodeTo writes v to w as writeJSON does.
func encodeTo(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	if err := encodeLists(bw, v); err != nil {
		return err
	}
	return bw.Flush()
}

// encodeLists writes v followed by a newline, byte for byte as json.Encoder does, but encodes the
// list fields of a struct an element at a time. encoding/json builds a whole value in memory before
// writing it, and a large run's manifest and final checkpoints (tens of thousands of evidence entries)
// made the end of extraction the run's peak RSS (figures: bench/README.md, "Figures behind tuned
// constants").
func encodeLists(w *bufio.Writer, v any) error {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer && !rv.IsNil() {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct || marshalsItself(rv.Type()) || !plainFields(rv.Type()) {
		return json.NewEncoder(w).Encode(v)
	}
	rt := rv.Type()
	w.WriteByte('{')
	first := true
	for i := range rt.NumField() {
		f := rt.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		fv := rv.Field(i)
		if !f.IsExported() || name == "-" || opts == "omitempty" && isEmpty(fv) {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if !first {
			w.WriteByte(',')
		}
		first = false
		key, err := json.Marshal(name)
		if err != nil {
			return err
		}
		w.Write(key)
		w.WriteByte(':')
		if fv.Kind() != reflect.Slice || fv.IsNil() || fv.Type().Elem().Kind() == reflect.Uint8 || marshalsItself(fv.Type()) {
			b, err := json.Marshal(addr(fv))
			if err != nil {
				return err
			}
			w.Write(b)
			continue
		}
		w.WriteByte('[')
		for j := range fv.Len() {
			if j > 0 {
				w.WriteByte(',')
			}
			b, err := json.Marshal(addr(fv.Index(j)))
			if err != nil {
				return err
			}
			w.Write(b)
		}
		w.WriteByte(']')
	}
	w.WriteString("}\n")
	return nil
}

var (
	marshaler     = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// marshalsItself reports whether encoding/json encodes a t (or a *t, as it reaches fields through a
// pointer) with the type's own method rather than by its kind.
func marshalsItself(t reflect.Type) bool {
	for _, m := range []reflect.Type{marshaler, textMarshaler} {
		if t.Implements(m) || reflect.PointerTo(t).Implements(m) {
			return true
		}
	}
	return false
}

// plainFields reports whether encodeLists handles every field of struct type t: no embedded struct
// and no json tag option but omitempty. Checked before anything is written, as the general case
// (json.Encoder) must then write the whole value.
func plainFields(t reflect.Type) bool {
	for i := range t.NumField() {
		f := t.Field(i)
		_, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous || opts != "" && opts != "omitempty" {
			return false
		}
	}
	return true
}

// addr is v for json.Marshal, by pointer where it can be, as encoding/json reaches the fields and list
// elements of a value behind a pointer (methods with pointer receivers apply).
func addr(v reflect.Value) any {
	if v.CanAddr() {
		return v.Addr().Interface()
	}
	return v.Interface()
}

// isEmpty is encoding/json's omitempty test.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Interface, reflect.Pointer:
		return v.IsZero()
	}
	return false
}

// ManifestKey is where run runID's manifest lives.
func ManifestKey(runID string) string { return ManifestDir + "/" + runID + ".json" }

// ReportKey is where run runID's report lives: beside its manifest, for people and monitoring.
func ReportKey(runID string) string { return ManifestDir + "/" + runID + ReportSuffix }

// ReportPath is where run runID's report lives under an output_dir (a path or a URL), for messages.
func ReportPath(outputDir, runID string) string {
	if IsURL(outputDir) {
		return strings.TrimSuffix(Redact(outputDir), "/") + "/" + ReportKey(runID)
	}
	return filepath.Join(outputDir, filepath.FromSlash(ReportKey(runID)))
}

// ReportSuffix ends a run report's file name in ManifestDir.
const ReportSuffix = ".report.json"

// CheckFile re-hashes a snapshot file listed in a manifest: "" when it is there as listed, otherwise
// what is wrong ("missing", "altered: …").
func CheckFile(ctx context.Context, st Store, f FileInfo) string {
	return checkFile(ctx, st, f, io.Discard)
}

// checkFile is CheckFile, copying the file's bytes to w as it hashes them.
func checkFile(ctx context.Context, st Store, f FileInfo, w io.Writer) string {
	if !insideLake(f.Path) {
		return outside
	}
	sum, n, err := hashFile(ctx, st, f.Path, w)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case err != nil:
		return err.Error()
	case n != f.Bytes || sum != f.SHA256:
		return fmt.Sprintf("altered: sha256 %.12s… (%d bytes), manifest says %.12s… (%d bytes)", sum, n, f.SHA256, f.Bytes)
	}
	return ""
}

func hashFile(ctx context.Context, st Store, key string, w io.Writer) (string, int64, error) {
	f, err := st.Open(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(h, w), f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}

// Local gives DuckDB local paths for files of st listed in a manifest. A directory's files are read
// where they are (each checked against its sha256 first if verify); a bucket's are downloaded into dir
// and always checked as they arrive, and release removes the copies. A file that is missing or altered
// fails with its path and what is wrong, before anything is read from the others.
func Local(ctx context.Context, st Store, files []FileInfo, dir string, verify bool) (paths []string, release func(), err error) {
	release = func() {}
	if _, ok := st.LocalPath(""); ok {
		for _, f := range files {
			if !insideLake(f.Path) {
				return nil, release, fmt.Errorf("%s: %s", f.Path, outside)
			}
			if verify {
				if issue := CheckFile(ctx, st, f); issue != "" {
					return nil, release, fmt.Errorf("%s: %s", f.Path, issue)
				}
			}
			p, _ := st.LocalPath(f.Path)
			paths = append(paths, p)
		}
		return paths, release, nil
	}
	tmp, err := os.MkdirTemp(dir, durable.TempPrefix+"download-")
	if err != nil {
		return nil, release, err
	}
	release = func() { os.RemoveAll(tmp) }
	for i, f := range files {
		p := filepath.Join(tmp, fmt.Sprintf("%06d-%s", i, path.Base(f.Path)))
		out, err := os.Create(p)
		if err != nil {
			release()
			return nil, func() {}, err
		}
		bw := bufio.NewWriterSize(out, 256<<10)
		issue := checkFile(ctx, st, f, bw)
		if issue == "" {
			if err := bw.Flush(); err != nil {
				issue = err.Error()
			}
		}
		if err := out.Close(); err != nil && issue == "" {
			issue = err.Error()
		}
		if issue != "" {
			release()
			return nil, func() {}, fmt.Errorf("%s: %s", f.Path, issue)
		}
		paths = append(paths, p)
	}
	return paths, release, nil
}

// partitionPattern is what a hive partition directory may be: a lower-case key, one value of letters,
// digits, '-' and '_'. Anything else — a '/', "..", a space — could walk out of the table's directory.
var partitionPattern = regexp.MustCompile(`^[a-z][a-z0-9_]*=[A-Za-z0-9_-]+$`)

// ValidPartition reports whether p can name a partition directory safely.
func ValidPartition(p string) bool { return partitionPattern.MatchString(p) }
