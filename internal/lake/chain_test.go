package lake_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// commitRuns commits n runs to st, each with two snapshot files named with its run id, and returns
// their manifests.
func commitRuns(t *testing.T, st lake.Store, n int) []*lake.Manifest {
	t.Helper()
	var out []*lake.Manifest
	for i := range n {
		id := lake.NewRunID(time.Date(2026, 12, 1+i, 2, 0, 0, 0, time.UTC))
		m := &lake.Manifest{RunID: id, Status: "ok"}
		for j := range 2 {
			key := fmt.Sprintf("t/run_date=2026-12-%02d/%s-%05d.parquet", 1+i, id, j)
			data := []byte(fmt.Sprintf("rows of %s part %d", id, j))
			if err := st.WriteFile(t.Context(), key, data); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			m.Files = append(m.Files, lake.FileInfo{Path: key, Table: "t", Rows: 10, Bytes: int64(len(data)), SHA256: hex.EncodeToString(sum[:])})
		}
		head, err := lake.Head(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		if err := lake.Commit(t.Context(), st, m, head); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// editJSON rewrites key of st through edit.
func editJSON(t *testing.T, st lake.Store, key string, edit func(map[string]any)) {
	t.Helper()
	b, err := st.ReadFile(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	if b, err = json.Marshal(v); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFile(t.Context(), key, b); err != nil {
		t.Fatal(err)
	}
}

func claimKey(n int) string { return fmt.Sprintf("%s/%012d.json", lake.CommitDir, n) }

// issues is each problem as "<commit> <first word of the issue> <path>", sorted as found.
func issues(ps []lake.Problem) []string {
	var out []string
	for _, p := range ps {
		word, _, _ := strings.Cut(p.Issue, ":")
		out = append(out, fmt.Sprintf("%d %s %s", p.Commit, word, p.Path))
	}
	return out
}

// Every way of tampering with the history that the issue names is found and named, on a directory
// and on a bucket: a manifest edited (a row count; an entry removed; a file altered and its sha
// recomputed; a path outside the lake), a claim edited or removed, a manifest removed.
func TestVerifyNamesEachTampering(t *testing.T) {
	type tamper struct {
		name string
		do   func(t *testing.T, st lake.Store, ms []*lake.Manifest)
		want func(ms []*lake.Manifest) []string
	}
	manifest := func(m *lake.Manifest) string { return lake.ManifestDir + "/" + m.RunID + ".json" }
	files := func(v map[string]any) []any { return v["files"].([]any) }
	cases := []tamper{
		{"row count changed", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			editJSON(t, st, manifest(ms[1]), func(v map[string]any) { files(v)[0].(map[string]any)["rows"] = 11 })
		}, func(ms []*lake.Manifest) []string { return []string{"2 edited " + manifest(ms[1])} }},
		{"entry removed", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			editJSON(t, st, manifest(ms[1]), func(v map[string]any) { v["files"] = files(v)[1:] })
		}, func(ms []*lake.Manifest) []string {
			return []string{"2 edited " + manifest(ms[1]), "2 added " + ms[1].Files[0].Path}
		}},
		{"file altered, sha recomputed", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			f := ms[0].Files[1]
			data := []byte("forged rows")
			if err := st.WriteFile(t.Context(), f.Path, data); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			editJSON(t, st, manifest(ms[0]), func(v map[string]any) {
				e := files(v)[1].(map[string]any)
				e["sha256"], e["bytes"] = hex.EncodeToString(sum[:]), len(data)
			})
		}, func(ms []*lake.Manifest) []string { return []string{"1 edited " + manifest(ms[0])} }},
		{"path outside the lake", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			editJSON(t, st, manifest(ms[2]), func(v map[string]any) { files(v)[0].(map[string]any)["path"] = "../../../../etc/hostname" })
		}, func(ms []*lake.Manifest) []string {
			return []string{"3 edited " + manifest(ms[2]), "3 outside ../../../../etc/hostname", "3 added " + ms[2].Files[0].Path}
		}},
		{"claim edited", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			editJSON(t, st, claimKey(2), func(v map[string]any) { v["run_id"] = ms[0].RunID })
		}, func(ms []*lake.Manifest) []string {
			return []string{"2 edited " + claimKey(2), "2 edited " + claimKey(2)}
		}},
		{"claim removed", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			if err := st.Remove(t.Context(), claimKey(2)); err != nil {
				t.Fatal(err)
			}
		}, func(ms []*lake.Manifest) []string { return []string{"2 removed " + claimKey(2)} }},
		{"manifest removed", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			if err := st.Remove(t.Context(), manifest(ms[2])); err != nil {
				t.Fatal(err)
			}
		}, func(ms []*lake.Manifest) []string {
			return []string{"3 removed " + manifest(ms[2]), "3 added " + ms[2].Files[0].Path, "3 added " + ms[2].Files[1].Path}
		}},
		{"snapshot file removed", func(t *testing.T, st lake.Store, ms []*lake.Manifest) {
			if err := st.Remove(t.Context(), ms[0].Files[0].Path); err != nil {
				t.Fatal(err)
			}
		}, func(ms []*lake.Manifest) []string { return []string{"1 missing " + ms[0].Files[0].Path} }},
	}
	for _, c := range cases {
		for name, st := range stores(t) {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				ms := commitRuns(t, st, 3)
				if v, err := lake.Check(t.Context(), st, 1); err != nil || len(v.Problems) != 0 || v.Checked != 6 || v.Head != 3 || v.Unchained != 0 {
					t.Fatalf("clean lake: %+v, %v", v, err)
				}
				c.do(t, st, ms)
				rec := &recording{Store: st}
				v, err := lake.Check(t.Context(), rec, 1)
				if err != nil {
					t.Fatal(err)
				}
				got, want := strings.Join(issues(v.Problems), "\n"), strings.Join(c.want(ms), "\n")
				if got != want {
					t.Errorf("problems:\n%s\nwant:\n%s\n(%+v)", got, want, v.Problems)
				}
				if rec.read("..") {
					t.Errorf("verify read a key outside the lake: %v", rec.keys)
				}
				// A run's start sees the history broken, and so removes nothing.
				if log, err := lake.ReadLog(t.Context(), st); err != nil || (len(log.Edited) == 0) != (c.name == "snapshot file removed") {
					t.Errorf("the log's edited commits: %v, %v", log.Edited, err)
				}
			})
		}
	}
}

// recording is a Store that remembers every key read, once for each read opened.
type recording struct {
	lake.Store
	mu   sync.Mutex
	keys []string
}

func (r *recording) note(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keys = append(r.keys, key)
}

func (r *recording) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r.note(key)
	return r.Store.Open(ctx, key)
}

func (r *recording) ReadFile(ctx context.Context, key string) ([]byte, error) {
	r.note(key)
	return r.Store.ReadFile(ctx, key)
}

func (r *recording) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	r.note(key)
	return r.Store.OpenRange(ctx, key, off, n)
}

// times is how many reads of key were opened.
func (r *recording) times(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.keys {
		if k == key {
			n++
		}
	}
	return n
}

func (r *recording) read(part string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.keys {
		if strings.Contains(k, part) {
			return true
		}
	}
	return false
}

// Each claim records its manifest's sha256 and the previous claim's: the chain runs from commit 1, and
// the head's sha256 fingerprints all of it.
func TestClaimsFormAHashChain(t *testing.T) {
	st := lake.Dir(t.TempDir())
	ms := commitRuns(t, st, 3)
	prev := ""
	for n := 1; n <= 3; n++ {
		raw, err := st.ReadFile(t.Context(), claimKey(n))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			RunID    string `json:"run_id"`
			Manifest string `json:"manifest_sha256"`
			Prev     string `json:"prev_sha256"`
		}
		if err := json.Unmarshal(raw, &c); err != nil {
			t.Fatal(err)
		}
		mraw, _ := st.ReadFile(t.Context(), lake.ManifestDir+"/"+ms[n-1].RunID+".json")
		msum := sha256.Sum256(mraw)
		if c.RunID != ms[n-1].RunID || c.Manifest != hex.EncodeToString(msum[:]) || c.Prev != prev {
			t.Errorf("claim %d: %+v; want run %s, manifest %x, prev %q", n, c, ms[n-1].RunID, msum, prev)
		}
		sum := sha256.Sum256(raw)
		prev = hex.EncodeToString(sum[:])
	}
	v, err := lake.Check(t.Context(), st, 1)
	if err != nil || v.HeadSHA256 != prev {
		t.Errorf("head sha256 %q (%v), want %q", v.HeadSHA256, err, prev)
	}
}

// verify --since N checks from commit N on, and the link of N to the commit before it: what an edit
// before N does is not looked at (the nightly check stays fast), but a claim before N rewritten is.
func TestVerifySince(t *testing.T) {
	st := lake.Dir(t.TempDir())
	ms := commitRuns(t, st, 4)
	editJSON(t, st, lake.ManifestDir+"/"+ms[0].RunID+".json", func(v map[string]any) { v["status"] = "partial" })
	if v, err := lake.Check(t.Context(), st, 3); err != nil || len(v.Problems) != 0 || v.Checked != 4 || v.Since != 3 {
		t.Errorf("since 3 with commit 1 edited: %+v %v", v, err)
	}
	if v, _ := lake.Check(t.Context(), st, 1); len(v.Problems) != 1 || v.Problems[0].Commit != 1 {
		t.Errorf("since 1 with commit 1 edited: %+v", v.Problems)
	}
	editJSON(t, st, claimKey(2), func(v map[string]any) { v["manifest_sha256"] = strings.Repeat("0", 64) })
	if v, _ := lake.Check(t.Context(), st, 3); len(v.Problems) != 1 || v.Problems[0].Path != claimKey(2) || !strings.HasPrefix(v.Problems[0].Issue, "edited") {
		t.Errorf("since 3 with claim 2 edited: %+v", v.Problems)
	}
}

// A lake written before the chain (claims holding only a run id; manifests from before claims) keeps
// working: verify checks its files, counts the commits that predate the chain instead of failing them,
// and the chain starts at the next commit.
func TestLakesFromBeforeTheChain(t *testing.T) {
	dir := t.TempDir()
	st := lake.Dir(dir)
	ms := commitRuns(t, st, 3)
	// Commit 1 from before claims: a manifest without a commit number and no claim. Commit 2 from
	// before the chain: a claim with only the run id. Commit 3 is renumbered 1 and 2.
	if err := os.RemoveAll(filepath.Join(dir, lake.CommitDir)); err != nil {
		t.Fatal(err)
	}
	editJSON(t, st, lake.ManifestDir+"/"+ms[0].RunID+".json", func(v map[string]any) { delete(v, "commit") })
	for i, m := range ms[1:] {
		editJSON(t, st, lake.ManifestDir+"/"+m.RunID+".json", func(v map[string]any) { v["commit"] = i + 1 })
		b, _ := json.Marshal(map[string]string{"run_id": m.RunID})
		if err := st.CreateExclusive(t.Context(), claimKey(i+1), b); err != nil {
			t.Fatal(err)
		}
	}
	log, err := lake.ReadLog(t.Context(), st)
	if err != nil || len(log.Manifests) != 3 || log.Head != 2 || len(log.Edited) != 0 {
		t.Fatalf("old lake: %d manifests, head %d, edited %v, %v", len(log.Manifests), log.Head, log.Edited, err)
	}
	v, err := lake.Check(t.Context(), st, 1)
	if err != nil || len(v.Problems) != 0 || v.Unchained != 3 || v.Checked != 6 {
		t.Fatalf("old lake: %+v, %v", v, err)
	}
	// A new commit chains onto the old claims; editing an old manifest is beyond the chain (no hash
	// recorded it), but rewriting an old claim is not.
	commitRuns(t, st, 1)
	if v, _ := lake.Check(t.Context(), st, 1); len(v.Problems) != 0 || v.Unchained != 3 || v.Head != 3 {
		t.Fatalf("after a new commit: %+v", v)
	}
	editJSON(t, st, claimKey(2), func(v map[string]any) { v["run_id"] = ms[0].RunID })
	v, _ = lake.Check(t.Context(), st, 1)
	found := false
	for _, p := range v.Problems {
		found = found || p.Path == claimKey(2) && strings.HasPrefix(p.Issue, "edited")
	}
	if !found {
		t.Errorf("an old claim rewritten: %+v", v.Problems)
	}
}

// The sweep at a run's start removes only what runs that never committed left (files carrying their
// id, their unclaimed manifest) — never a committed run's file because a manifest stopped listing it,
// and nothing at all while a manifest does not match its claim.
func TestRemoveOrphansKeepsCommittedFiles(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			ms := commitRuns(t, st, 2)
			dead := lake.NewRunID(time.Date(2026, 12, 9, 0, 0, 0, 0, time.UTC))
			leftovers := []string{"t/run_date=2026-12-09/" + dead + "-00000.parquet", lake.ManifestDir + "/" + dead + ".json",
				lake.EvidenceDir + "/" + dead + "/t-0a0b0c0d.json.zst", lake.PDFDir + "/" + dead + "/t-0a0b0c0d.pdfs"}
			// A pack the resumed run's checkpoints list, one of a committed run, and a body stored as a file.
			resumed := lake.EvidenceDir + "/" + dead + "/t-resumed.json.zst"
			kept := []string{resumed, lake.EvidenceDir + "/" + ms[0].RunID + "/t-unlisted.json.zst", "t/run_date=2026-12-09/by-hand.parquet", "_evidence/ab/ab.json.zst"}
			for _, k := range append(leftovers, kept...) {
				if err := st.WriteFile(t.Context(), k, []byte("{}")); err != nil {
					t.Fatal(err)
				}
			}
			// An entry removed from a manifest: the run that finds it sweeps nothing.
			key := lake.ManifestDir + "/" + ms[1].RunID + ".json"
			orig, _ := st.ReadFile(t.Context(), key)
			editJSON(t, st, key, func(v map[string]any) { v["files"] = v["files"].([]any)[1:] })
			log, err := lake.ReadLog(t.Context(), st)
			if err != nil || len(log.Edited) != 1 || log.Edited[0] != 2 {
				t.Fatalf("edited: %v %v", log.Edited, err)
			}
			if n, err := lake.RemoveOrphans(t.Context(), st, log, &lake.Manifest{}); n != 0 || err == nil {
				t.Errorf("sweep of an edited lake: %d removed, %v", n, err)
			}
			// Even with the edit restored to a consistent but shorter manifest (claim re-hashed by
			// someone), the unlisted file of a committed run stays.
			if err := st.WriteFile(t.Context(), key, orig); err != nil {
				t.Fatal(err)
			}
			editJSON(t, st, key, func(v map[string]any) { v["files"] = v["files"].([]any)[1:] })
			raw, _ := st.ReadFile(t.Context(), key)
			sum := sha256.Sum256(raw)
			editJSON(t, st, claimKey(2), func(v map[string]any) { v["manifest_sha256"] = hex.EncodeToString(sum[:]) })
			log, _ = lake.ReadLog(t.Context(), st)
			n, err := lake.RemoveOrphans(t.Context(), st, log, &lake.Manifest{Evidence: []lake.Evidence{{Path: resumed}}})
			if err != nil || n != len(leftovers) {
				t.Errorf("removed %d (%v), want the %d leftovers of the dead run", n, err, len(leftovers))
			}
			for _, k := range leftovers {
				if ok, _ := st.Exists(t.Context(), k); ok {
					t.Errorf("%s left", k)
				}
			}
			for _, k := range append([]string{ms[1].Files[0].Path, ms[0].Files[0].Path}, kept...) {
				if ok, _ := st.Exists(t.Context(), k); !ok {
					t.Errorf("%s removed", k)
				}
			}
		})
	}
}
