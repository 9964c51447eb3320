// Package lake is the layout of the output directory: run ids, the run manifests that list every
// snapshot file a run committed (written last and atomically: a run without a manifest never happened),
// and verification of the files against them.
package lake

import (
	"bufio"
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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/sinks/parquet"
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

// Manifest records what one run committed.
type Manifest struct {
	RunID      string    `json:"run_id"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
	Status     string    `json:"status"` // ok | partial (some stream failed)
	// Commit is the run's commit number in the lake (see CommitDir): runs in the order they committed.
	Commit  int                `json:"commit,omitempty"`
	Streams []StreamReport     `json:"streams"`
	Files   []parquet.FileInfo `json:"files"`
	// Evidence lists the raw response bodies of the invoice endpoints behind this run's rows.
	Evidence []Evidence `json:"evidence,omitempty"`
	// PDFs lists the invoice PDFs this run downloaded (each invoice's PDF is fetched once).
	PDFs []Evidence `json:"pdfs,omitempty"`
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
func ReadJSON(st Store, dir, name string, v any) (found bool, err error) {
	b, err := st.ReadFile(dir + "/" + name + ".json")
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
func WriteJSON(st Store, dir, name string, v any) error {
	return writeJSON(st, dir+"/"+name+".json", v)
}

// writeJSON encodes v compactly into a new file that replaces key on commit, as encoding/json's
// Encoder would (encodeLists). Not indented: indenting re-buffers the whole encoding twice over.
func writeJSON(st Store, key string, v any) error {
	return st.WriteStream(key, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 64<<10)
		if err := encodeLists(w, v); err != nil {
			return err
		}
		return w.Flush()
	})
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

// CommitDir holds the commit claims: _commits/<number>.json names the run that took that commit
// number. A run commits by claiming the number after the newest claim it saw when it started, with a
// create-if-absent write, and only then writing its manifest: of two runs that started from the same
// state, one claims the number and commits, and the other fails before its manifest exists. A claim
// without a manifest (a run killed between the two writes) commits nothing.
const CommitDir = "_commits"

// ErrConflict means another run committed to the lake while this one ran.
var ErrConflict = errors.New("another run committed to this lake while this run was running")

type claim struct {
	RunID string `json:"run_id"`
}

func claimKey(n int) string { return fmt.Sprintf("%s/%012d.json", CommitDir, n) }

// Head is the newest commit number claimed in st (0 for none).
func Head(st Store) (int, error) { return newestNumbered(st, CommitDir, claimKey) }

// newestNumbered is the highest n whose key(n) is in dir: listed, then probed forward, as a listing
// may lag behind the objects a read finds (0 for none).
func newestNumbered(st Store, dir string, key func(int) string) (int, error) {
	es, err := st.List(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		if v, err := strconv.Atoi(strings.TrimSuffix(path.Base(e.Key), ".json")); err == nil && v > n {
			n = v
		}
	}
	for {
		ok, err := st.Exists(key(n + 1))
		if err != nil || !ok {
			return n, err
		}
		n++
	}
}

// Commit makes m's run visible: it claims commit number base+1 (base: Head when the run started) and
// then writes the manifest. Call it after every file m lists is durable. A claim already taken by
// another run fails with ErrConflict and commits nothing: the run's files are left for the next start
// to remove, and its watermarks have not moved.
func Commit(st Store, m *Manifest, base int) error {
	m.Commit = base + 1
	b, _ := json.Marshal(claim{RunID: m.RunID})
	if err := st.CreateExclusive(claimKey(m.Commit), b); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("claiming commit %d: %w", m.Commit, err)
		}
		var c claim
		if got, rerr := st.ReadFile(claimKey(m.Commit)); rerr != nil || json.Unmarshal(got, &c) != nil || c.RunID != m.RunID {
			return fmt.Errorf("%w: commit %d is run %s's; run %s commits nothing and its files are removed at the next start",
				ErrConflict, m.Commit, c.RunID, m.RunID)
		}
	}
	return writeJSON(st, ManifestKey(m.RunID), m)
}

// ReadManifests returns every committed manifest in st, oldest run first (see ReadLog).
func ReadManifests(st Store) ([]*Manifest, error) {
	ms, _, err := ReadLog(st)
	return ms, err
}

// ReadLog returns every committed manifest in st, oldest run first, and the newest commit number
// claimed (Head). Manifests are listed, and the claims newer than the newest listed manifest's are
// followed to theirs, so a manifest that a lagging listing does not show yet is found all the same.
func ReadLog(st Store) (ms []*Manifest, head int, err error) {
	es, err := st.List(ManifestDir)
	if err != nil {
		return nil, 0, err
	}
	var out []*Manifest
	have := map[string]bool{}
	newest := 0
	for _, e := range es {
		name := path.Base(e.Key)
		if path.Dir(e.Key) != ManifestDir || !strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ReportSuffix) {
			continue
		}
		m, err := readManifest(st, e.Key)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, m)
		have[m.RunID] = true
		newest = max(newest, m.Commit)
	}
	if head, err = Head(st); err != nil {
		return nil, 0, err
	}
	for n := newest + 1; n <= head; n++ {
		var c claim
		b, err := st.ReadFile(claimKey(n))
		if err != nil || json.Unmarshal(b, &c) != nil || have[c.RunID] {
			continue // a claim removed or unreadable claims nothing; one listed already is known
		}
		m, err := readManifest(st, ManifestKey(c.RunID))
		if errors.Is(err, fs.ErrNotExist) {
			continue // claimed, then killed before its manifest: not committed
		}
		if err != nil {
			return nil, 0, err
		}
		out = append(out, m)
		have[m.RunID] = true
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RunID < out[j].RunID })
	return out, head, nil
}

func readManifest(st Store, key string) (*Manifest, error) {
	b, err := st.ReadFile(key)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	return &m, nil
}

// bodyPaths is the set of evidence and PDF files the manifests list.
func bodyPaths(ms []*Manifest) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for _, e := range m.Evidence {
			out[e.Path] = true
		}
		for _, e := range m.PDFs {
			out[e.Path] = true
		}
	}
	return out
}

// RemoveOrphans deletes snapshot, evidence and PDF files that no manifest lists: what a killed run
// committed before it could write its manifest. Call it only while holding the lake's lock. Snapshot
// files outside the <table>/<partition>/<run id>-<seq>.parquet layout are left alone, and so is every
// other underscore directory (metadata).
func RemoveOrphans(st Store, ms []*Manifest) (int, error) {
	listed := bodyPaths(ms)
	for _, m := range ms {
		for _, f := range m.Files {
			listed[f.Path] = true
		}
	}
	es, err := st.List("")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		top, _, _ := strings.Cut(e.Key, "/")
		content := top == EvidenceDir || top == PDFDir
		if listed[e.Key] || strings.HasPrefix(top, "_") && !content || !content && (!strings.HasSuffix(e.Key, ".parquet") || strings.Count(e.Key, "/") < 2) {
			continue
		}
		if err := st.Remove(e.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Problem is a file that does not match its manifest.
type Problem struct {
	RunID string `json:"run_id"`
	Path  string `json:"path"`
	Issue string `json:"issue"`
}

// Verify re-hashes every snapshot file, evidence body and PDF listed in every manifest and reports the
// missing or altered ones. A content-addressed file listed by several runs is checked once.
func Verify(st Store) (checked int, problems []Problem, err error) {
	ms, err := ReadManifests(st)
	if err != nil {
		return 0, nil, err
	}
	done := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Files {
			checked++
			if issue := CheckFile(st, f); issue != "" {
				problems = append(problems, Problem{m.RunID, f.Path, issue})
			}
		}
		for _, e := range append(m.Evidence[:len(m.Evidence):len(m.Evidence)], m.PDFs...) {
			if done[e.Path] {
				continue
			}
			done[e.Path] = true
			checked++
			_, err := ReadEvidence(st, e)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				problems = append(problems, Problem{m.RunID, e.Path, "missing"})
			case err != nil:
				problems = append(problems, Problem{m.RunID, e.Path, err.Error()})
			}
		}
	}
	return checked, problems, nil
}

// CheckFile re-hashes a snapshot file listed in a manifest: "" when it is there as listed, otherwise
// what is wrong ("missing", "altered: …").
func CheckFile(st Store, f parquet.FileInfo) string {
	return checkFile(st, f, io.Discard)
}

// checkFile is CheckFile, copying the file's bytes to w as it hashes them.
func checkFile(st Store, f parquet.FileInfo, w io.Writer) string {
	sum, n, err := hashFile(st, f.Path, w)
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

func hashFile(st Store, key string, w io.Writer) (string, int64, error) {
	f, err := st.Open(key)
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
func Local(st Store, files []parquet.FileInfo, dir string, verify bool) (paths []string, release func(), err error) {
	release = func() {}
	if _, ok := st.LocalPath(""); ok {
		for _, f := range files {
			if verify {
				if issue := CheckFile(st, f); issue != "" {
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
		issue := checkFile(st, f, bw)
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
