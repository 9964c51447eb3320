package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"iter"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// testEnv is what a stream of run id shares, on st.
func testEnv(t *testing.T, st lake.Store, id string) *runEnv {
	t.Helper()
	env := &runEnv{st: st, runID: id, batchRows: 100, store: lake.NewEvidenceStore(st, id), every: time.Nanosecond,
		cpu: semaphore.NewWeighted(4), log: slog.New(slog.DiscardHandler), extracted: time.Now().UTC()}
	env.checkpoints = newCheckpointer(t.Context(), env, env.log, 0)
	t.Cleanup(env.checkpoints.close)
	return env
}

// A stream that fails after sealing its evidence (at a checkpoint) leaves packs that no manifest or
// checkpoint lists, in a run that commits: the next starts never remove them (a committed run's files
// stay), so they would be kept forever. Packs another stream refers to (dedup) must stay.
func TestFailedStreamRemovesItsSealedPacksNoOneRefersTo(t *testing.T) {
	t.Parallel()
	st := lake.Dir(t.TempDir())
	env := testEnv(t, st, "20261206T010203.000Z-abcdef")
	body := func(b string) *spool.Body {
		sb, err := spool.Read(bytes.NewReader([]byte(b)), t.TempDir(), 1<<20, 1<<30, "body")
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	shared := `[{"id":"shared"}]`
	failing := &sources.Stream{Source: "t", Name: "failing", Checkpoints: true, Evidence: true, Pages: func(ctx context.Context, _ sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) {
			for i, b := range []string{`[{"id":"own"}]`, shared} {
				sb := body(b)
				if !yield(sources.Page{Body: sb, Raw: &sources.Raw{Endpoint: "GET /x", Body: sb}, Done: string(rune('a' + i))}, nil) {
					return
				}
			}
			// Another stream stores the shared body now: it is listed in this stream's sealed pack.
			other := env.store.Pack(t.Context(), "t_other")
			e, err := other.PutJSON(body(shared))
			if err != nil || other.Seal() != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.Path, "t_failing") {
				t.Errorf("the shared body is listed at %s, want the failing stream's sealed pack", e.Path)
			}
			yield(sources.Page{}, errors.New("the API went away"))
		}
	}}
	rep, _, _ := runStream(t.Context(), env, failing, nil)
	if rep.Status != "failed" {
		t.Fatalf("stream: %+v", rep)
	}
	es, err := st.List(t.Context(), lake.EvidenceDir)
	if err != nil {
		t.Fatal(err)
	}
	var packs []string
	for _, e := range es {
		packs = append(packs, e.Key)
	}
	// The pack sealed with the first page holds only the failing stream's own body: nothing lists it.
	// The pack sealed with the second holds the body the other stream lists: it stays.
	if len(packs) != 1 {
		t.Errorf("after the failure: packs %v, want only the one the other stream refers to", packs)
	}
}

// A resumed stream that fails removes what its killed attempt checkpointed as well as what it wrote
// itself: otherwise, once the run commits, verify names the attempt's snapshot file as added to the
// run, and the attempt's packs are kept forever. A pack whose body another stream lists stays.
func TestFailedResumedStreamRemovesItsEarlierAttempt(t *testing.T) {
	t.Parallel()
	st := lake.Dir(t.TempDir())
	const id = "20261206T010203.000Z-abcdef"
	put := func(p *lake.Pack, b string) lake.Evidence {
		sb, err := spool.Read(bytes.NewReader([]byte(b)), t.TempDir(), 1<<20, 1<<30, "body")
		if err != nil {
			t.Fatal(err)
		}
		e, err := p.PutJSON(sb)
		if err != nil || p.Seal() != nil {
			t.Fatal(err)
		}
		return e
	}
	// The killed attempt sealed two packs of t_failing, one body each; t_other lists the second's body.
	killed := lake.NewEvidenceStore(st, id)
	mine := killed.Pack(t.Context(), "t_failing")
	own, shared := put(mine, `[{"id":"own"}]`), put(mine, `[{"id":"shared"}]`)
	reused := put(killed.Pack(t.Context(), "t_other"), `[{"id":"shared"}]`)
	if own.Path == shared.Path || reused.Path != shared.Path {
		t.Fatalf("packs: %s, %s; the other stream's body at %s", own.Path, shared.Path, reused.Path)
	}
	own.Table, shared.Table, reused.Table = "t_failing", "t_failing", "t_other"
	file := "t_failing/run_date=2026-12-06/" + id + "-00000.parquet"
	if err := st.WriteFile(t.Context(), file, []byte("rows")); err != nil {
		t.Fatal(err)
	}
	// An entry naming another run's file, as an edited checkpoint could: it is not removed.
	committed := "t_failing/run_date=2026-12-05/20261205T010203.000Z-fedcba-00000.parquet"
	if err := st.WriteFile(t.Context(), committed, []byte("rows")); err != nil {
		t.Fatal(err)
	}
	prev := &streamCheckpoint{Table: "t_failing", Files: []lake.FileInfo{{Path: file, Table: "t_failing", Rows: 1}, {Path: committed}},
		Evidence: []lake.Evidence{own, shared}, Done: []string{"a", "b"}}
	other := &streamCheckpoint{Table: "t_other", Complete: true, Evidence: []lake.Evidence{reused}}

	env := testEnv(t, st, id)
	env.store = lake.NewEvidenceStore(st, id, listed(map[string]*streamCheckpoint{"t_failing": prev, "t_other": other}))
	failing := &sources.Stream{Source: "t", Name: "failing", Checkpoints: true, Evidence: true, Pages: func(context.Context, sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) { yield(sources.Page{}, errors.New("the API went away")) }
	}}
	if rep, _, _ := runStream(t.Context(), env, failing, prev); rep.Status != "failed" {
		t.Fatalf("stream: %+v", rep)
	}
	for key, want := range map[string]bool{file: false, own.Path: false, shared.Path: true, committed: true} {
		if ok, err := st.Exists(t.Context(), key); err != nil || ok != want {
			t.Errorf("%s is there: %v (%v), want %v", key, ok, err, want)
		}
	}
}

// A stream that cannot resume (no Checkpoints: a code change since the killed attempt) starts again,
// and what that attempt checkpointed goes: once the run commits, verify would name its file as added.
// Its packs stay (another stream may list a body in them), so the run records them, failed or not:
// committed whole, not named as added.
func TestStreamThatCannotResumeDropsItsEarlierAttempt(t *testing.T) {
	t.Parallel()
	st := lake.Dir(t.TempDir())
	const id = "20261206T010203.000Z-abcdef"
	env := testEnv(t, st, id)
	file := "t_whole/run_date=2026-12-06/" + id + "-00000.parquet"
	if err := st.WriteFile(t.Context(), file, []byte("rows")); err != nil {
		t.Fatal(err)
	}
	pack := lake.PackInfo{Path: lake.EvidenceDir + "/" + id + "/t_whole-0000000000000001.json.zst", Bytes: 3, SHA256: "the attempt's"}
	ck := &streamCheckpoint{Table: "t_whole", Files: []lake.FileInfo{{Path: file, Table: "t_whole", Rows: 1}}, Done: []string{"a"}, Packs: []lake.PackInfo{pack}}
	if err := lake.WriteJSON(t.Context(), st, checkpointDir(id), "t_whole", ck); err != nil {
		t.Fatal(err)
	}
	whole := &sources.Stream{Source: "t", Name: "whole", Pages: func(context.Context, sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) { yield(sources.Page{}, errors.New("the API went away")) }
	}}
	rep, out, _ := resumeOrRun(t.Context(), *env, time.Now(), whole, ck)
	if rep.Status != "failed" || rep.Resumed {
		t.Fatalf("stream: %+v", rep)
	}
	if !slices.Equal(out.packs, []lake.PackInfo{pack}) {
		t.Errorf("packs %+v, want the dropped attempt's %+v", out.packs, pack)
	}
	for _, key := range []string{file, checkpointDir(id) + "/t_whole.json"} {
		if ok, err := st.Exists(t.Context(), key); err != nil || ok {
			t.Errorf("%s is there: %v (%v), want it removed", key, ok, err)
		}
	}
}

// A stream's output lists every pack it sealed with its size and sha256, so the commit seals each
// pack's bytes, an attempt's resumed from its checkpoint included: verify then finds bytes appended to
// a pack, which no body's range covers.
func TestStreamRecordsItsPacksWhole(t *testing.T) {
	t.Parallel()
	st := lake.Dir(t.TempDir())
	const id = "20261206T010203.000Z-abcdef"
	env := testEnv(t, st, id)
	earlier := lake.PackInfo{Path: lake.EvidenceDir + "/" + id + "/t_paged-0000000000000001.json.zst", Bytes: 3, SHA256: "an earlier attempt's"}
	prev := &streamCheckpoint{Table: "t_paged", Packs: []lake.PackInfo{earlier}}
	paged := &sources.Stream{Source: "t", Name: "paged", Checkpoints: true, Evidence: true, Pages: func(context.Context, sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) {
			for i, b := range []string{`[{"id":"a"}]`, `[{"id":"b"}]`} {
				sb, err := spool.Read(bytes.NewReader([]byte(b)), t.TempDir(), 1<<20, 1<<30, "body")
				if err != nil {
					t.Fatal(err)
				}
				if !yield(sources.Page{Body: sb, Raw: &sources.Raw{Endpoint: "GET /x", Body: sb}, Done: string(rune('a' + i))}, nil) {
					return
				}
			}
		}
	}}
	rep, out, _ := runStream(t.Context(), env, paged, prev)
	if rep.Status != "ok" {
		t.Fatalf("stream: %+v", rep)
	}
	if len(out.packs) < 2 || out.packs[0] != earlier {
		t.Fatalf("packs %+v, want the earlier attempt's and this one's", out.packs)
	}
	for _, p := range out.packs[1:] {
		b, err := st.ReadFile(t.Context(), p.Path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(b)) != p.Bytes || sha256Hex(b) != p.SHA256 {
			t.Errorf("%s recorded as %d bytes %.12s…, holds %d bytes %.12s…", p.Path, p.Bytes, p.SHA256, len(b), sha256Hex(b))
		}
	}
	for _, e := range out.evidence {
		if !slices.ContainsFunc(out.packs, func(p lake.PackInfo) bool { return p.Path == e.Path }) {
			t.Errorf("body in %s, a pack the output does not record", e.Path)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
