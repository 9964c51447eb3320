package lake

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"
)

// CommitDir holds the commit claims, a hash chain: _commits/<number>.json names the run that took that
// commit number, the sha256 of its manifest and the sha256 of the claim before it. A run commits by
// writing its manifest (only if absent), then claiming the number after the newest claim it saw when
// it started, with a create-if-absent write: of two runs that started from the same state, one claims
// the number and commits, and the other fails. A manifest without a claim commits nothing.
const CommitDir = "_commits"

// ErrConflict means another run committed to the lake while this one ran.
var ErrConflict = errors.New("another run committed to this lake while this run was running")

// ErrLockLost means another run took the lake's lock over while this one was stalled: this run must
// not write into the lake again.
var ErrLockLost = errors.New("this run's lock on the lake was taken over by another run")

// ErrEdited means the lake's history was edited after it was committed (see Log.Edited).
var ErrEdited = errors.New("the lake's commit history was edited")

// claim is a commit claim's content. Claims written before the hash chain hold only RunID.
type claim struct {
	RunID string `json:"run_id,omitempty"`
	// Manifest is the sha256 of the run's manifest as written.
	Manifest string `json:"manifest_sha256,omitempty"`
	// Prev is the sha256 of the previous claim's bytes ("" for commit 1).
	Prev string `json:"prev_sha256,omitempty"`
	// Fence, on a number no run commits at, says whose lock was taken over (see Fence).
	Fence string `json:"fence,omitempty"`
	// Fenced, on a fence, are the runs whose manifest keys the fence marked (see fenceMark).
	Fenced []string `json:"fenced_runs,omitempty"`
}

// fenceMark is what a fence writes at the manifest key of every run that had not committed when the
// lock was taken over. A run writes its manifest only if the key is absent, so the store itself
// refuses a stalled holder's manifest: a lock check before the write leaves a window (the process
// may stall between the check and the PUT, or its PUT may arrive late), a refused write does not.
// Marks stay: the holder may sleep through many later runs.
type fenceMark struct {
	Fenced string `json:"fenced"`
}

// chained reports whether the claim is part of the hash chain (written by a version that keeps it).
func (c claim) chained() bool { return c.Manifest != "" || c.Fence != "" }

func claimKey(n int) string { return fmt.Sprintf("%s/%012d.json", CommitDir, n) }

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Head is the newest commit number claimed in st (0 for none).
func Head(ctx context.Context, st Store) (int, error) {
	return newestNumbered(ctx, st, CommitDir, claimKey)
}

// newestNumbered is the highest n whose key(n) is in dir: listed, then probed forward, as a listing
// may lag behind the objects a read finds (0 for none).
func newestNumbered(ctx context.Context, st Store, dir string, key func(int) string) (int, error) {
	es, err := st.List(ctx, dir)
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
		ok, err := st.Exists(ctx, key(n+1))
		if err != nil || !ok {
			return n, err
		}
		n++
	}
}

// Commit makes m's run visible: it writes the manifest (only if absent) and then claims commit number
// base+1 (base: Head when the run started), recording the manifest's sha256 and the previous claim's.
// Call it after every file m lists is durable. A claim already taken by another run (or by a fence)
// fails with ErrConflict and commits nothing, and so does a lock taken over (ErrLockLost): the run's
// files are left for the next start to remove, and its watermarks have not moved.
func Commit(ctx context.Context, st Store, m *Manifest, base int) error {
	m.Commit = base + 1
	prev := ""
	if base > 0 {
		b, err := st.ReadFile(ctx, claimKey(base))
		if err != nil {
			return fmt.Errorf("reading commit %d's claim to chain commit %d to it: %w", base, m.Commit, err)
		}
		prev = sha256Hex(b)
	}
	if err := st.Held(ctx); err != nil {
		return fmt.Errorf("run %s commits nothing: %w", m.RunID, err)
	}
	sum, err := writeManifest(ctx, st, m)
	if err != nil {
		return err
	}
	if err := st.Held(ctx); err != nil {
		return fmt.Errorf("run %s commits nothing: %w", m.RunID, err)
	}
	b, _ := json.Marshal(claim{RunID: m.RunID, Manifest: sum, Prev: prev})
	if err := st.CreateExclusive(ctx, claimKey(m.Commit), b); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("claiming commit %d: %w", m.Commit, err)
		}
		if got, rerr := st.ReadFile(ctx, claimKey(m.Commit)); rerr == nil && string(got) == string(b) {
			return nil // our own claim, its answer lost and the write retried
		}
		var c claim
		if got, rerr := st.ReadFile(ctx, claimKey(m.Commit)); rerr == nil {
			_ = json.Unmarshal(got, &c)
		}
		owner := "run " + c.RunID + "'s"
		if c.Fence != "" {
			owner = "a fence (" + c.Fence + ")" // the key holds the fence's mark, or soon will: kept
		} else {
			_ = st.Remove(ctx, ManifestKey(m.RunID)) // never claimed: ours alone, and nothing reads it
		}
		return fmt.Errorf("%w: commit %d is %s; run %s commits nothing and its files are removed at the next start",
			ErrConflict, m.Commit, owner, m.RunID)
	}
	return nil
}

// writeManifest writes m at its key only if nothing is there, and returns the sha256 of its bytes.
// A manifest already there with the same bytes is ours (a commit retried).
func writeManifest(ctx context.Context, st Store, m *Manifest) (string, error) {
	h := sha256.New()
	err := st.CreateExclusiveStream(ctx, ManifestKey(m.RunID), func(f io.Writer) error {
		h.Reset() // the fill may run again
		return encodeTo(io.MultiWriter(f, h), m)
	})
	sum := hex.EncodeToString(h.Sum(nil))
	if errors.Is(err, fs.ErrExist) {
		got, rerr := st.ReadFile(ctx, ManifestKey(m.RunID))
		if rerr == nil && sha256Hex(got) == sum {
			return sum, nil
		}
		var mark fenceMark
		if rerr == nil && json.Unmarshal(got, &mark) == nil && mark.Fenced != "" {
			return "", fmt.Errorf("run %s commits nothing: %w; its manifest key holds a fence (%s)", m.RunID, ErrLockLost, mark.Fenced)
		}
		return "", fmt.Errorf("writing the manifest of run %s: %s exists already (left by another run of that id)", m.RunID, ManifestKey(m.RunID))
	}
	if err != nil {
		return "", fmt.Errorf("writing the manifest of run %s: %w", m.RunID, err)
	}
	return sum, nil
}

// Fence makes sure no run whose lock st took over can write a manifest or commit: when st's lock was
// taken from a holder whose lease expired (it may be stalled, not dead), the next commit number is
// claimed by a fence, so the stalled holder's claim fails when it wakes, and every run that had not
// committed gets a fenceMark at its manifest key, so its manifest write fails too. It returns the log
// as it is after the fence (re-read if the holder committed first) and what the fence says ("" when
// none was needed).
func Fence(ctx context.Context, st Store, log *Log, by string) (*Log, string, error) {
	from := takenOver(st)
	if from == "" {
		return log, "", nil
	}
	why := fmt.Sprintf("the lock of %s was taken over by %s: no run commits at this number", from, by)
	for range 3 {
		prev := ""
		if log.Head > 0 {
			b, err := st.ReadFile(ctx, claimKey(log.Head))
			if err != nil {
				return nil, "", fmt.Errorf("reading commit %d's claim to fence after it: %w", log.Head, err)
			}
			prev = sha256Hex(b)
		}
		runs, err := unfinishedRuns(ctx, st, log)
		if err != nil {
			return nil, "", fmt.Errorf("listing the runs to fence: %w", err)
		}
		b, _ := json.Marshal(claim{Fence: why, Fenced: runs, Prev: prev})
		err = st.CreateExclusive(ctx, claimKey(log.Head+1), b)
		if err == nil {
			log.Head++
			return log, why, markFenced(ctx, st, log, runs, why)
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, "", fmt.Errorf("fencing commit %d: %w", log.Head+1, err)
		}
		// The stalled holder committed just before the fence: its commit stands; fence after it.
		if log, err = ReadLog(ctx, st); err != nil {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("fencing %s: commit numbers kept being taken; another run is writing", st)
}

// unfinishedRuns are the runs log does not name as committed or fenced that left checkpoints (every
// run writes one as it starts) or a manifest: the ones a stalled holder may still be.
func unfinishedRuns(ctx context.Context, st Store, log *Log) ([]string, error) {
	es, err := st.List(ctx, CheckpointDir)
	if err != nil {
		return nil, err
	}
	keys, err := manifestKeys(ctx, st)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, e := range es {
		id, _, _ := strings.Cut(strings.TrimPrefix(e.Key, CheckpointDir+"/"), "/")
		seen[id] = true
	}
	for _, k := range keys {
		seen[strings.TrimSuffix(path.Base(k), ".json")] = true
	}
	var runs []string
	for id := range seen {
		if id != "" && !log.Committed[id] && !log.Fenced[id] {
			runs = append(runs, id)
		}
	}
	sort.Strings(runs)
	return runs, nil
}

// markFenced writes a fenceMark at the manifest key of each run, replacing a manifest a stalled run
// wrote before the fence: the fence's claim took the number it would commit at, so it is garbage.
func markFenced(ctx context.Context, st Store, log *Log, runs []string, why string) error {
	b, _ := json.Marshal(fenceMark{Fenced: why})
	for _, id := range runs {
		if err := st.WriteFile(ctx, ManifestKey(id), b); err != nil {
			return fmt.Errorf("fencing the manifest of run %s: %w", id, err)
		}
		log.Fenced[id] = true
	}
	return nil
}

// Log is the lake's history as its commit claims tell it.
type Log struct {
	Manifests []*Manifest // every committed manifest, oldest run first
	Head      int         // the newest commit number claimed
	// Committed are the ids of the runs that committed: named by a claim, or by a manifest that
	// predates claims.
	Committed map[string]bool
	// Edited are the commits whose claim or manifest breaks the chain: a claim missing, unreadable, not
	// matching the hash the next records, or naming a run claimed before; a manifest missing or not
	// matching the sha256 its claim records. Verify says what is wrong.
	Edited []int
	// Fenced are the runs a fence named: their manifest keys hold a fenceMark, kept for good.
	Fenced map[string]bool
}

// ReadManifests returns every committed manifest in st, oldest run first (see ReadLog).
func ReadManifests(ctx context.Context, st Store) ([]*Manifest, error) {
	l, err := ReadLog(ctx, st)
	if err != nil {
		return nil, err
	}
	return l.Manifests, nil
}

// ReadLog reads the lake's history: each claim from 1 to Head and the manifest it names. A manifest
// no claim names is not committed, unless it predates claims (no commit number, and a run older than
// the first claimed one: lakes written before commits were claimed). Edited manifests are read as
// they are, and listed in Edited; `extract verify` says what is wrong.
func ReadLog(ctx context.Context, st Store) (*Log, error) {
	head, err := Head(ctx, st)
	if err != nil {
		return nil, err
	}
	links, err := readClaims(ctx, st, 1, head)
	if err != nil {
		return nil, err
	}
	l := &Log{Head: head, Committed: map[string]bool{}, Fenced: map[string]bool{}}
	have := map[string]bool{}
	chained := false
	for i, k := range links {
		broken := k.err != nil || chained && !k.c.chained() || k.c.chained() && i > 0 && links[i-1].err == nil && k.c.Prev != sha256Hex(links[i-1].raw)
		chained = chained || k.err == nil && k.c.chained()
		if broken || k.c.RunID != "" && l.Committed[k.c.RunID] {
			l.Edited = append(l.Edited, k.n)
		}
		if k.err == nil {
			for _, id := range k.c.Fenced {
				l.Fenced[id] = true
			}
		}
		if k.err != nil || k.c.RunID == "" || l.Committed[k.c.RunID] {
			continue // a claim removed or unreadable, or a fence, claims no run
		}
		l.Committed[k.c.RunID] = true
		raw, m, err := readManifestRaw(ctx, st, ManifestKey(k.c.RunID))
		if errors.Is(err, fs.ErrNotExist) {
			if k.c.chained() {
				l.Edited = append(l.Edited, k.n)
			}
			continue // claimed, then killed before its manifest (versions before the chain): not committed
		}
		if err != nil {
			return nil, err
		}
		if k.c.Manifest != "" && sha256Hex(raw) != k.c.Manifest {
			l.Edited = append(l.Edited, k.n)
		}
		have[k.c.RunID] = true
		l.Manifests = append(l.Manifests, m)
	}
	for id := range l.Fenced {
		have[id] = true // a fenceMark, not a manifest
	}
	legacy, err := legacyManifests(ctx, st, links, have)
	if err != nil {
		return nil, err
	}
	for _, m := range legacy {
		l.Committed[m.RunID] = true
		l.Manifests = append(l.Manifests, m)
	}
	sort.Slice(l.Manifests, func(i, j int) bool { return l.Manifests[i].RunID < l.Manifests[j].RunID })
	return l, nil
}

// legacyManifests are the manifests of runs that committed before commits were claimed: without a
// commit number, and older than the first run a claim names. skip are those read already.
func legacyManifests(ctx context.Context, st Store, links []link, skip map[string]bool) ([]*Manifest, error) {
	keys, err := manifestKeys(ctx, st)
	if err != nil {
		return nil, err
	}
	first := firstClaimedRun(links)
	var out []*Manifest
	for _, key := range keys {
		if skip[strings.TrimSuffix(path.Base(key), ".json")] {
			continue
		}
		_, m, err := readManifestRaw(ctx, st, key)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.Commit == 0 && (first == "" || m.RunID < first) && ManifestKey(m.RunID) == key {
			out = append(out, m)
		}
	}
	return out, nil
}

// manifestKeys lists the manifests in st (not the run reports beside them).
func manifestKeys(ctx context.Context, st Store) ([]string, error) {
	es, err := st.List(ctx, ManifestDir)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range es {
		name := path.Base(e.Key)
		if path.Dir(e.Key) == ManifestDir && strings.HasSuffix(name, ".json") && !strings.HasSuffix(name, ReportSuffix) {
			keys = append(keys, e.Key)
		}
	}
	return keys, nil
}

func firstClaimedRun(links []link) string {
	for _, k := range links {
		if k.err == nil && k.c.RunID != "" {
			return k.c.RunID
		}
	}
	return ""
}

// link is claim n as read: its bytes and content, or why it could not be read.
type link struct {
	n   int
	raw []byte
	c   claim
	err error
}

// readClaims reads claims from..to, a few at a time (a bucket answers each in a round trip).
func readClaims(ctx context.Context, st Store, from, to int) ([]link, error) {
	if from > to {
		return nil, nil
	}
	links := make([]link, to-from+1)
	var g errgroup.Group
	g.SetLimit(16)
	for i := range links {
		links[i].n = from + i
		g.Go(func() error {
			k := &links[i]
			k.raw, k.err = st.ReadFile(ctx, claimKey(k.n))
			if k.err != nil && !errors.Is(k.err, fs.ErrNotExist) {
				return k.err
			}
			if k.err == nil {
				if err := json.Unmarshal(k.raw, &k.c); err != nil {
					k.err = fmt.Errorf("does not parse: %w", err)
				}
			}
			return nil
		})
	}
	return links, g.Wait()
}

func readManifestRaw(ctx context.Context, st Store, key string) ([]byte, *Manifest, error) {
	b, err := st.ReadFile(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return b, nil, fmt.Errorf("manifest %s: %w", key, err)
	}
	return b, &m, nil
}

// runIDPattern is how a run id (NewRunID) begins a snapshot file's name.
var runIDPattern = regexp.MustCompile(`^(\d{8}T\d{6}\.\d{3}Z-[0-9a-f]{6})-`)

// RunOf is the id of the run that wrote a snapshot file, from its name (<run id>[-r<n>]-<seq>.parquet);
// "" when the name does not carry one.
func RunOf(key string) string {
	if m := runIDPattern.FindStringSubmatch(path.Base(key)); m != nil {
		return m[1]
	}
	return ""
}

// RunsFile reports whether key is a snapshot file of run, laid out as one within the lake: all a run
// removes on the word of a checkpoint, which is a file that could have been edited.
func RunsFile(key, run string) bool { return insideLake(key) && snapshotKey(key) && RunOf(key) == run }

// packRun is the id of the run that wrote an evidence pack (<dir>/<run id>/<file>), from its key; ""
// when key is not laid out as one.
func packRun(key string) string {
	dir, rest, _ := strings.Cut(key, "/")
	run, file, ok := strings.Cut(rest, "/")
	if (dir != EvidenceDir && dir != PDFDir) || !ok || strings.Contains(file, "/") || RunOf(run+"-") != run {
		return ""
	}
	return run
}

// snapshotKey reports whether key is laid out as a snapshot file: <table>/<partition…>/<file>.parquet.
func snapshotKey(key string) bool {
	return !strings.HasPrefix(key, "_") && strings.HasSuffix(key, ".parquet") && strings.Count(key, "/") >= 2
}

// RemoveOrphans deletes what runs that never committed left: snapshot files and evidence packs whose
// names carry the id of a run no claim names, and such runs' manifests. A file is never removed because
// no manifest lists it: a committed run's files stay whatever its manifest says, and so does any file a
// committed manifest or live (the checkpoints of the run being resumed) lists, and a fenced run's
// fenceMark. Evidence stored a file per body (before packs) is never removed. With an edited manifest
// in the log nothing is removed (ErrEdited). Call it only while holding the lake's lock.
func RemoveOrphans(ctx context.Context, st Store, log *Log, live *Manifest) (int, error) {
	if len(log.Edited) > 0 {
		return 0, fmt.Errorf("%w (commits %v): nothing was removed; run extract verify", ErrEdited, log.Edited)
	}
	listed := map[string]bool{}
	for _, m := range append(slices.Clone(log.Manifests), live) {
		for _, f := range m.Files {
			listed[f.Path] = true
		}
		for _, e := range slices.Concat(m.Evidence, m.PDFs) {
			listed[e.Path] = true
		}
	}
	es, err := st.List(ctx, "")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range es {
		run := ""
		switch {
		case snapshotKey(e.Key) && !listed[e.Key]:
			run = RunOf(e.Key)
		case path.Dir(e.Key) == ManifestDir && strings.HasSuffix(e.Key, ".json") && !strings.HasSuffix(e.Key, ReportSuffix):
			run = strings.TrimSuffix(path.Base(e.Key), ".json")
		case !listed[e.Key]:
			run = packRun(e.Key)
		}
		if run == "" || log.Committed[run] || log.Fenced[run] && path.Dir(e.Key) == ManifestDir {
			continue
		}
		if err := st.Remove(ctx, e.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
