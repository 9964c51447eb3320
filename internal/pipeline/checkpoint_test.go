package pipeline

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

func testCheckpointer(t *testing.T, gap time.Duration) (*checkpointer, func(table string) *streamCheckpoint) {
	t.Helper()
	root := lake.Dir(t.TempDir())
	env := &runEnv{st: root, runID: "run-1", store: lake.NewEvidenceStore(root, "run-1")}
	c := newCheckpointer(t.Context(), env, slog.New(slog.DiscardHandler), gap)
	t.Cleanup(c.close)
	read := func(table string) *streamCheckpoint {
		var ck streamCheckpoint
		found, err := lake.ReadJSON(t.Context(), root, checkpointDir("run-1"), table, &ck)
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			return nil
		}
		return &ck
	}
	return c, read
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 5 s: %s", what)
		}
	}
}

// Checkpoints are written in the background, at most one commit per gap; the newest of a stream
// replaces one still queued; close drops what is queued at once instead of waiting out the gap.
// Not parallel: close is held to 200 ms of wall time, which a test beside it on a busy CPU could take.
func TestCheckpointerCommitsTheNewestAndDropsTheQueuedOnClose(t *testing.T) {
	// The gap must outlast noticing the first commit: noticed after the gap, the next put is written
	// at once and has nothing queued to replace (make test's load once took longer than 300 ms).
	const gap = time.Second
	c, read := testCheckpointer(t, gap)
	first := time.Now()
	c.put(&streamCheckpoint{Table: "a", Done: []string{"1"}})
	eventually(t, "the first checkpoint is written", func() bool { return read("a") != nil })

	c.put(&streamCheckpoint{Table: "a", Done: []string{"1", "2"}})
	c.put(&streamCheckpoint{Table: "a", Done: []string{"1", "2", "3"}})
	c.put(&streamCheckpoint{Table: "b", Complete: true})
	seen := map[int]bool{}
	eventually(t, "the second commit writes b and a's newest checkpoint", func() bool {
		a := read("a")
		seen[len(a.Done)] = true
		return read("b") != nil && len(a.Done) == 3
	})
	if took := time.Since(first); took < gap {
		t.Errorf("second commit %v after the first began: the gap was not kept", took)
	}
	if seen[2] {
		t.Error("a's replaced checkpoint (2 units) was written")
	}

	c.put(&streamCheckpoint{Table: "c", Complete: true})
	began := time.Now()
	c.close()
	if took := time.Since(began); took > 200*time.Millisecond {
		t.Errorf("close took %v: it waited for the gap", took)
	}
	if read("c") != nil {
		t.Error("a checkpoint queued at close was written")
	}
	c.put(&streamCheckpoint{Table: "d"}) // after close: ignored, no panic
}

// A failed stream removes its checkpoint: neither a queued nor an in-flight write may bring it back,
// as it would name files the failure deletes.
func TestRemovedCheckpointIsNeverWrittenAfterwards(t *testing.T) {
	t.Parallel()
	c, read := testCheckpointer(t, 0)
	for i := range 50 {
		c.put(&streamCheckpoint{Table: "a", Done: []string{"x"}})
		if i%2 == 1 {
			time.Sleep(time.Millisecond) // sometimes let the write start first
		}
		if err := c.remove(t.Context(), "a"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
		if read("a") != nil {
			t.Fatalf("round %d: the removed checkpoint is on disk", i)
		}
	}
	c.put(&streamCheckpoint{Table: "b"})
	eventually(t, "a later checkpoint is still written", func() bool { return read("b") != nil })
	if ok, err := c.env.st.Exists(t.Context(), checkpointDir("run-1")+"/a.json"); ok || err != nil {
		t.Errorf("a.json: exists %v, %v", ok, err)
	}
}
