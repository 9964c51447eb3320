package lake

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math"
	"path"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// VerifyDir holds a record of every `extract verify`, for the docs site and for auditors to see when the
// lake was last proven whole.
const VerifyDir = "_verify"

// Verification is the outcome of one `extract verify`.
type Verification struct {
	At       time.Time `json:"at"`
	Checked  int       `json:"checked"`
	Problems []Problem `json:"problems"`
	// Head is the newest commit when verify began: every manifest up to it was checked.
	Head int `json:"head"`
	// Since is the first commit checked (verify --since).
	Since int `json:"since,omitempty"`
	// HeadSHA256 is the sha256 of the newest claim, which fingerprints the whole chain: kept outside
	// the lake, it shows a history rewritten from some commit on.
	HeadSHA256 string `json:"head_sha256,omitempty"`
	// Unchained counts the commits that predate the hash chain (claims holding only a run id, and
	// manifests from before claims): their files are checked, their manifests cannot be.
	Unchained int `json:"unchained,omitempty"`
	// Fences are the commit numbers a run fenced when it took over a stalled run's lock: none commits.
	Fences []int `json:"fences,omitempty"`
	// Uncommitted counts the manifests, snapshot files and packs of runs that never committed (stopped
	// before their claim): nothing reads them, and the next run removes them.
	Uncommitted int `json:"uncommitted,omitempty"`
}

// RecordVerification keeps v under _verify/, named by its time so that names sort by it.
func RecordVerification(ctx context.Context, st Store, v *Verification) error {
	return writeJSON(ctx, st, VerifyDir+"/"+v.At.UTC().Format("20060102T150405.000000000Z")+".json", v)
}

// LastVerification is the newest recorded verification, or nil if verify never ran on this lake.
func LastVerification(ctx context.Context, st Store) (*Verification, error) {
	es, err := st.List(ctx, VerifyDir+"/")
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, e := range es {
		if strings.HasSuffix(e.Key, ".json") {
			keys = append(keys, e.Key)
		}
	}
	if len(keys) == 0 {
		return nil, nil
	}
	var v Verification
	name := strings.TrimSuffix(strings.TrimPrefix(slices.Max(keys), VerifyDir+"/"), ".json")
	if _, err := ReadJSON(ctx, st, VerifyDir, name, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// Problem is something verify found wrong with a commit claim, a manifest or a file. Issue begins with
// what happened: edited, removed, added, altered, missing or outside (a path that leaves the lake).
type Problem struct {
	Commit int    `json:"commit,omitempty"`
	RunID  string `json:"run_id"`
	Path   string `json:"path"`
	Issue  string `json:"issue"`
}

// Verify checks the whole lake (see Check) and returns how many files it hashed and what is wrong.
func Verify(ctx context.Context, st Store) (checked int, problems []Problem, err error) {
	v, err := Check(ctx, st, 1)
	if err != nil {
		return 0, nil, err
	}
	return v.Checked, v.Problems, nil
}

// Check proves the lake's history from commit since on (1: all of it). The claims must form an
// unbroken hash chain (each records the sha256 of the one before), each claim's manifest must be
// there with the sha256 it records, and every file each manifest lists must be in the lake with its
// size and sha256; a path that leaves the lake is named, never read. Snapshot files that carry a
// committed run's id but that its manifest does not list are named too. Claims written before the
// chain (only a run id), and manifests written before claims, are counted in Unchained: their files
// are checked, their manifests cannot be.
func Check(ctx context.Context, st Store, since int) (*Verification, error) {
	since = max(since, 1)
	head, err := Head(ctx, st)
	if err != nil {
		return nil, err
	}
	links, err := readClaims(ctx, st, max(1, since-1), head)
	if err != nil {
		return nil, err
	}
	vr := &verifier{ctx: ctx, st: st, v: &Verification{Head: head, Since: since}, done: map[string]bool{}, listed: map[string]bool{}, claimedBy: map[string]int{}, fenced: map[string]bool{}}
	var prev *link
	chained := false
	for i := range links {
		k := &links[i]
		if k.n >= since {
			if err := vr.link(k, prev, chained); err != nil {
				return nil, err
			}
		}
		chained = chained || k.err == nil && k.c.chained()
		prev = k
	}
	if len(links) > 0 && links[len(links)-1].err == nil {
		vr.v.HeadSHA256 = sha256Hex(links[len(links)-1].raw)
	}
	if since == 1 {
		if err := vr.unclaimed(firstClaimedRun(links)); err != nil {
			return nil, err
		}
	}
	return vr.v, vr.added(since == 1)
}

// verifier is one Check's progress.
type verifier struct {
	ctx       context.Context // Check's
	st        Store
	v         *Verification
	done      map[string]bool // evidence bodies checked (many runs list the same), and files found missing
	listed    map[string]bool // snapshot files the checked manifests list
	claimedBy map[string]int  // run id: the commit that claims it (0: a manifest from before claims)
	fenced    map[string]bool // runs a fence named: their manifest keys hold its mark
}

func (vr *verifier) problem(n int, run, key, issue string, args ...any) {
	vr.v.Problems = append(vr.v.Problems, Problem{Commit: n, RunID: run, Path: key, Issue: fmt.Sprintf(issue, args...)})
}

// link checks claim k (prev is the claim before it, nil for commit 1; chained: some claim before k
// is part of the chain), then the manifest it claims and that manifest's files.
func (vr *verifier) link(k, prev *link, chained bool) error {
	key := claimKey(k.n)
	switch {
	case errors.Is(k.err, fs.ErrNotExist):
		vr.problem(k.n, "", key, "removed: the commit claim is missing, and commits after it follow")
		return nil
	case k.err != nil:
		vr.problem(k.n, "", key, "edited: the commit claim %v", k.err)
		return nil
	}
	run := k.c.RunID
	switch {
	case !k.c.chained() && chained:
		vr.problem(k.n, run, key, "edited: the claim records no hashes, but the commits before it are chained")
	case !k.c.chained():
		vr.v.Unchained++
	case prev != nil && prev.err == nil && k.c.Prev != sha256Hex(prev.raw):
		vr.problem(prev.n, prev.c.RunID, claimKey(prev.n), "edited: the claim's sha256 is %.12s…, commit %d records %.12s…", sha256Hex(prev.raw), k.n, k.c.Prev)
	case k.n == 1 && k.c.Prev != "":
		vr.problem(k.n, run, key, "added: commit 1 records a commit before it")
	}
	if k.c.Fence != "" {
		vr.v.Fences = append(vr.v.Fences, k.n)
		for _, id := range k.c.Fenced {
			vr.fenced[id] = true
		}
		return nil
	}
	if run == "" {
		vr.problem(k.n, "", key, "edited: the claim names no run")
		return nil
	}
	if first, dup := vr.claimedBy[run]; dup {
		vr.problem(k.n, run, key, "edited: commit %d claims run %s, which commit %d claimed already", k.n, run, first)
		return nil
	}
	vr.claimedBy[run] = k.n
	raw, m, err := readManifestRaw(vr.ctx, vr.st, ManifestKey(run))
	switch {
	case errors.Is(err, fs.ErrNotExist) && k.c.chained():
		vr.problem(k.n, run, ManifestKey(run), "removed: the manifest this commit claims is gone")
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return nil // a claim from before the chain whose run was killed before its manifest: commits nothing
	case err != nil && raw == nil:
		return err
	case err != nil:
		vr.problem(k.n, run, ManifestKey(run), "edited: %v", err)
		return nil
	case k.c.Manifest != "" && sha256Hex(raw) != k.c.Manifest:
		vr.problem(k.n, run, ManifestKey(run), "edited: the manifest's sha256 is %.12s…, its claim records %.12s…", sha256Hex(raw), k.c.Manifest)
	case m.RunID != run || m.Commit != k.n:
		vr.problem(k.n, run, ManifestKey(run), "edited: the manifest says run %s, commit %d", m.RunID, m.Commit)
	}
	vr.files(k.n, m)
	return nil
}

// unclaimed checks the manifests no claim names: those from before claims are checked as commits;
// one a run wrote before it was stopped short of its claim is counted in Uncommitted; anything else
// was added.
func (vr *verifier) unclaimed(first string) error {
	keys, err := manifestKeys(vr.ctx, vr.st)
	if err != nil {
		return err
	}
	for _, key := range keys {
		id := strings.TrimSuffix(path.Base(key), ".json")
		if _, ok := vr.claimedBy[id]; ok || vr.fenced[id] {
			continue // a fenced run's key holds the fence's mark (or the manifest it replaced): commits nothing
		}
		_, m, err := readManifestRaw(vr.ctx, vr.st, key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			vr.problem(0, "", key, "added: a manifest no commit claims, and it %v", err)
		case ManifestKey(m.RunID) != key:
			vr.problem(0, m.RunID, key, "added: a manifest no commit claims, named for another run")
		case m.Commit == 0 && (first == "" || m.RunID < first):
			vr.v.Unchained++
			vr.claimedBy[m.RunID] = 0
			vr.files(0, m)
		case m.Commit > 0:
			vr.v.Uncommitted++
		default:
			vr.problem(0, m.RunID, key, "added: a manifest no commit claims, newer than the first claimed commit")
		}
	}
	return nil
}

// files checks every file m lists.
func (vr *verifier) files(n int, m *Manifest) {
	// A few at once: on a bucket each file is a round trip, on a disk its hashing is a CPU's work.
	issues := make([]string, len(m.Files))
	var g errgroup.Group
	g.SetLimit(8)
	for i, f := range m.Files {
		vr.v.Checked++
		vr.listed[f.Path] = true
		g.Go(func() error { issues[i] = CheckFile(vr.ctx, vr.st, f); return nil })
	}
	g.Wait()
	for i, f := range m.Files {
		if issues[i] != "" {
			vr.problem(n, m.RunID, f.Path, "%s", issues[i])
		}
	}
	packs := map[string][]Evidence{}
	for _, e := range slices.Concat(m.Evidence, m.PDFs) {
		vr.listed[e.Path] = true
		body := fmt.Sprintf("%s@%d+%d %s %d", e.Path, e.Offset, e.Stored, e.SHA256, e.Bytes)
		if vr.done[body] || vr.done[e.Path] {
			continue // checked, or its file missing
		}
		vr.done[body] = true
		if packRun(e.Path) != "" && insideLake(e.Path) {
			packs[e.Path] = append(packs[e.Path], e)
			continue
		}
		vr.v.Checked++
		_, err := ReadEvidence(vr.ctx, vr.st, e)
		vr.body(n, m.RunID, e, err)
	}
	sealed := vr.sealedPacks(n, m, packs)
	for _, key := range slices.Sorted(maps.Keys(packs)) {
		vr.pack(n, m.RunID, key, packs[key], sealed[key])
	}
}

// sealedPacks are the packs m records whole (their size and sha256), by path, each added to packs
// (with no bodies to check, if m lists none of them) so that it is read once, in full.
func (vr *verifier) sealedPacks(n int, m *Manifest, packs map[string][]Evidence) map[string]*PackInfo {
	out := map[string]*PackInfo{}
	for i, p := range m.Packs {
		vr.listed[p.Path] = true
		switch {
		case !insideLake(p.Path):
			vr.problem(n, m.RunID, p.Path, outside)
		case vr.done["pack "+p.Path]:
		default:
			vr.done["pack "+p.Path] = true
			out[p.Path] = &m.Packs[i]
			if _, ok := packs[p.Path]; !ok {
				packs[p.Path] = nil // every body of it checked already, or none listed: still read whole
			}
		}
	}
	return out
}

// body records what checking body e of run's manifest found (err from ReadEvidence).
func (vr *verifier) body(n int, run string, e Evidence, err error) {
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		vr.done[e.Path] = true
		vr.problem(n, run, e.Path, "missing")
	case e.Stored > 0:
		vr.problem(n, run, e.Path, "body at byte %d: %v", e.Offset, err)
	default:
		vr.problem(n, run, e.Path, "%v", err)
	}
}

// pack checks bodies es, all of pack key, reading the pack once in order where it can rather than a
// range per body: on a bucket that is a request per pack, not per body. With sealed (the pack's size
// and sha256 as its run's manifest records them) that one read covers the whole pack, and any byte
// no body holds — appended after the last, say — is found too.
func (vr *verifier) pack(n int, run, key string, es []Evidence, sealed *PackInfo) {
	// An empty body shares its offset with the next: it goes first, or it would take a read of its own.
	slices.SortStableFunc(es, func(a, b Evidence) int {
		return cmp.Or(cmp.Compare(a.Offset, b.Offset), cmp.Compare(a.Stored, b.Stored))
	})
	r := &packReader{ctx: vr.ctx, st: vr.st, key: key, whole: sealed}
	for _, e := range es {
		if e.Offset >= 0 && e.Stored >= 0 && e.Stored <= math.MaxInt64-e.Offset {
			r.end = max(r.end, e.Offset+e.Stored)
		}
	}
	defer r.close()
	found := len(vr.v.Problems)
	for _, e := range es {
		vr.v.Checked++
		b, err := r.read(e.Offset, e.Stored)
		if err == nil {
			_, err = checkBody(e, b)
		}
		vr.body(n, run, e, err)
		if vr.done[e.Path] {
			return // missing: said once
		}
	}
	if sealed == nil || len(vr.v.Problems) > found {
		return // the pack is named already where a body in it is wrong
	}
	if err := r.rest(); errors.Is(err, fs.ErrNotExist) {
		vr.problem(n, run, key, "missing")
	} else if err != nil {
		vr.problem(n, run, key, "%v", err)
	}
}

// added names the snapshot files and evidence packs of checked runs that their manifests do not list;
// all: every run was checked, so the files of runs that never committed are counted in Uncommitted.
func (vr *verifier) added(all bool) error {
	es, err := vr.st.List(vr.ctx, "")
	if err != nil {
		return err
	}
	for _, e := range es {
		run := RunOf(e.Key)
		if snapshotKey(e.Key) && run != "" && !vr.listed[e.Key] {
			vr.unlisted(run, e.Key, "file", all)
		}
		if run := packRun(e.Key); run != "" && !vr.listed[e.Key] {
			vr.unlisted(run, e.Key, "pack", all) // a body `zstd -dc` would print among the run's
		}
	}
	return nil
}

// unlisted names key, a file (or pack) in run's name that no checked manifest lists: added, if run
// committed; else counted in Uncommitted when every run was checked (all).
func (vr *verifier) unlisted(run, key, what string, all bool) {
	if n, ok := vr.claimedBy[run]; ok {
		vr.problem(n, run, key, "added: run %s committed no such %s (its manifest does not list it)", run, what)
	} else if all {
		vr.v.Uncommitted++
	}
}

// insideLake reports whether a path a manifest lists names a key within the lake: relative, clean,
// not climbing out with "..".
func insideLake(p string) bool {
	return p != "" && p != "." && p != ".." && !strings.ContainsAny(p, "\\\x00") && !path.IsAbs(p) &&
		path.Clean(p) == p && !strings.HasPrefix(p, "../")
}

// outside is the issue of a listed path that leaves the lake.
const outside = "outside: the path leaves the lake; it was not read"
