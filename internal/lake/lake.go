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
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

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
	Table         string   `json:"table"`
	Status        string   `json:"status"` // ok | failed
	Rows          int64    `json:"rows"`   // rows of the stream's own table (child tables in Tables)
	Rejects       int      `json:"rejects"`
	Requests      int64    `json:"requests"`
	Retries       int64    `json:"retries"`
	Bytes         int64    `json:"bytes"` // response bytes received
	Seconds       float64  `json:"seconds"`
	Resumed       bool     `json:"resumed,omitempty"` // continued from a checkpoint of a killed attempt
	Error         string   `json:"error,omitempty"`
	SchemaChanges []string `json:"schema_changes,omitempty"` // new columns and widened types
	// Warnings are what the stream met that did not fail it but a person should know: a null response,
	// duplicates dropped at a window boundary, a key that turned out not unique.
	Warnings []string    `json:"warnings,omitempty"`
	Tables   []TableInfo `json:"tables,omitempty"` // the stream's table, then its child tables
	// Windows are the date windows a windowed stream fetched, each one's rows replacing its older rows.
	Windows []Window `json:"windows,omitempty"`
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

// Window is a date window as sent to the API: Start and End inclusive, in the tenant's wall clock.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Manifest records what one run committed.
type Manifest struct {
	RunID      string             `json:"run_id"`
	StartedAt  time.Time          `json:"started_at"`
	FinishedAt time.Time          `json:"finished_at"`
	Status     string             `json:"status"` // ok | partial (some stream failed)
	Streams    []StreamReport     `json:"streams"`
	Files      []parquet.FileInfo `json:"files"`
	// Evidence lists the raw response bodies of the invoice endpoints behind this run's rows.
	Evidence []Evidence `json:"evidence,omitempty"`
	// PDFs lists the invoice PDFs this run downloaded (each invoice's PDF is fetched once).
	PDFs []Evidence `json:"pdfs,omitempty"`
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

// ReadJSON loads root/dir/name.json into v; found is false when the file does not exist yet.
func ReadJSON(root, dir, name string, v any) (found bool, err error) {
	b, err := os.ReadFile(filepath.Join(root, dir, name+".json"))
	if errors.Is(err, os.ErrNotExist) {
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

// WriteJSON replaces root/dir/name.json atomically.
func WriteJSON(root, dir, name string, v any) error {
	return writeJSON(filepath.Join(root, dir, name+".json"), v)
}

// writeJSON encodes v compactly into a new file that replaces path on commit, as encoding/json's
// Encoder would (encodeLists). Not indented: indenting re-buffers the whole encoding twice over.
func writeJSON(path string, v any) error {
	return durable.WriteStream(path, func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 64<<10)
		if err := encodeLists(w, v); err != nil {
			return err
		}
		return w.Flush()
	})
}

// encodeLists writes v followed by a newline, byte for byte as json.Encoder does, but encodes the
// list fields of a struct an element at a time. encoding/json builds a whole value in memory before
// writing it: the scale-10 bench run's manifest and final checkpoints (60,000 evidence entries, 16 MB)
// took ~60 MB at the end of extraction, the run's peak RSS (make bench).
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

// ManifestPath is where run runID's manifest lives.
func ManifestPath(root, runID string) string {
	return filepath.Join(root, ManifestDir, runID+".json")
}

// WriteManifest commits the manifest atomically; call it after every file it lists is committed.
func WriteManifest(root string, m *Manifest) error {
	return writeJSON(ManifestPath(root, m.RunID), m)
}

// ReportPath is where run runID's report lives: beside its manifest, for people and monitoring.
func ReportPath(root, runID string) string {
	return filepath.Join(root, ManifestDir, runID+ReportSuffix)
}

// ReportSuffix ends a run report's file name in ManifestDir.
const ReportSuffix = ".report.json"

// ReadManifests returns every committed manifest under root, oldest run first.
func ReadManifests(root string) ([]*Manifest, error) {
	entries, err := os.ReadDir(filepath.Join(root, ManifestDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Manifest
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.HasPrefix(name, durable.TempPrefix) || !strings.HasSuffix(name, ".json") || strings.HasSuffix(name, ReportSuffix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(root, ManifestDir, name))
		if err != nil {
			return nil, err
		}
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", name, err)
		}
		out = append(out, &m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].RunID < out[j].RunID })
	return out, nil
}

// RemoveOrphans deletes snapshot, evidence and PDF files that no manifest lists: what a killed run
// committed before it could write its manifest. Call it only while holding the output lock. Snapshot
// files outside the <table>/<partition>/<run id>-<seq>.parquet layout are left alone.
func RemoveOrphans(root string, ms []*Manifest) (int, error) {
	listed := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Files {
			listed[f.Path] = true
		}
		for _, e := range m.Evidence {
			listed[e.Path] = true
		}
		for _, e := range m.PDFs {
			listed[e.Path] = true
		}
	}
	n := 0
	remove := func(p, rel string) error {
		if listed[rel] {
			return nil
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		n++
		return nil
	}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			// Other underscore directories hold metadata (manifests, schemas, state, checkpoints).
			if p != root && strings.HasPrefix(d.Name(), "_") && rel != EvidenceDir && rel != PDFDir {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), durable.TempPrefix) {
			return nil
		}
		if strings.HasPrefix(rel, EvidenceDir+"/") || strings.HasPrefix(rel, PDFDir+"/") {
			return remove(p, rel)
		}
		if !strings.HasSuffix(rel, ".parquet") || strings.Count(rel, "/") < 2 {
			return nil
		}
		return remove(p, rel)
	})
	return n, err
}

// Problem is a file that does not match its manifest.
type Problem struct {
	RunID, Path, Issue string
}

// Verify re-hashes every snapshot file, evidence body and PDF listed in every manifest and reports the
// missing or altered ones. A content-addressed file listed by several runs is checked once.
func Verify(root string) (checked int, problems []Problem, err error) {
	ms, err := ReadManifests(root)
	if err != nil {
		return 0, nil, err
	}
	done := map[string]bool{}
	for _, m := range ms {
		for _, f := range m.Files {
			checked++
			if issue := CheckFile(root, f); issue != "" {
				problems = append(problems, Problem{m.RunID, f.Path, issue})
			}
		}
		for _, e := range append(m.Evidence[:len(m.Evidence):len(m.Evidence)], m.PDFs...) {
			if done[e.Path] {
				continue
			}
			done[e.Path] = true
			checked++
			_, err := ReadEvidence(root, e)
			switch {
			case errors.Is(err, os.ErrNotExist):
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
func CheckFile(root string, f parquet.FileInfo) string {
	sum, n, err := hashFile(filepath.Join(root, filepath.FromSlash(f.Path)))
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "missing"
	case err != nil:
		return err.Error()
	case n != f.Bytes || sum != f.SHA256:
		return fmt.Sprintf("altered: sha256 %s… (%d bytes), manifest says %s… (%d bytes)", sum[:12], n, f.SHA256[:12], f.Bytes)
	}
	return ""
}

func hashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return hex.EncodeToString(h.Sum(nil)), n, err
}
