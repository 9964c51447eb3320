package lake_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/laketest"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
)

// stallBefore is a stalled lock holder's view of the lake: its lock check has passed (a store that
// never locked has nothing to lose), and the first write to key waits for stall — the takeover — to
// happen first, as when the process stops between its check and its PUT, or its PUT arrives late.
type stallBefore struct {
	lake.Store
	key   string
	once  sync.Once
	stall func()
}

func (s *stallBefore) at(key string) {
	if key == s.key {
		s.once.Do(s.stall)
	}
}

func (s *stallBefore) CreateExclusive(ctx context.Context, key string, data []byte) error {
	s.at(key)
	return s.Store.CreateExclusive(ctx, key, data)
}

func (s *stallBefore) CreateExclusiveStream(ctx context.Context, key string, fill func(io.Writer) error) error {
	s.at(key)
	return s.Store.CreateExclusiveStream(ctx, key, fill)
}

// A holder that stalls between its lock check and a write of its commit, past its lease, writes
// nothing when it wakes: the run that took the lake over fenced the commit number and marked the
// holder's manifest key, so the store refuses both writes. Wherever the stall falls, the lake after
// the takeover is the lake after the holder woke; verify is clean, the fence names the run, and the
// mark outlives the sweeps of later runs.
func TestStalledHolderWritesNothingAfterTheFence(t *testing.T) {
	for _, at := range []string{"manifest", "claim"} {
		t.Run("stalled before its "+at, func(t *testing.T) { stalledHolder(t, at) })
	}
}

func stalledHolder(t *testing.T, at string) {
	srv := s3test.StartT(t, "lake")
	url := srv.URL("lake", "fence")
	open := func() lake.Store {
		st, err := lake.OpenStore(context.Background(), url, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st := open()
	commitRuns(t, st, 1)
	base, _ := lake.Head(t.Context(), st)
	// The stalled run: started (its checkpoints name it), its lease expired on another machine.
	id := lake.NewRunID(time.Date(2026, 12, 5, 2, 0, 0, 0, time.UTC))
	if err := st.WriteFile(t.Context(), lake.CheckpointDir+"/"+id+"/run.json", []byte(`{"run_id":"`+id+`"}`)); err != nil {
		t.Fatal(err)
	}
	expired := fmt.Sprintf(`{"owner":"ledgerlake run","host":"elsewhere","pid":7,"expires":%q}`, time.Now().Add(-time.Minute).Format(time.RFC3339Nano))
	if err := st.WriteFile(t.Context(), "_lease/000000000001.json", []byte(expired)); err != nil {
		t.Fatal(err)
	}
	var afterTakeover string
	takeover := func() {
		taker := open()
		release, _, err := taker.Lock(t.Context(), "ledgerlake run")
		if err != nil {
			t.Fatalf("taking the expired lock over: %v", err)
		}
		t.Cleanup(release)
		l, err := lake.ReadLog(t.Context(), taker)
		if err != nil {
			t.Fatal(err)
		}
		if _, why, err := lake.Fence(t.Context(), taker, l, "the test"); err != nil || why == "" {
			t.Fatalf("fence: %q %v", why, err)
		}
		afterTakeover = laketest.Content(t, st)
	}
	key := lake.ManifestKey(id)
	if at == "claim" {
		key = fmt.Sprintf("%s/%012d.json", lake.CommitDir, base+1)
	}
	m := &lake.Manifest{RunID: id, Status: "ok"}
	err := lake.Commit(t.Context(), &stallBefore{Store: st, key: key, stall: takeover}, m, base)
	if at == "manifest" && !errors.Is(err, lake.ErrLockLost) || at == "claim" && !errors.Is(err, lake.ErrConflict) {
		t.Fatalf("the woken holder's commit: %v", err)
	}
	if after := laketest.Content(t, st); after != afterTakeover {
		t.Errorf("the woken holder wrote into the lake:\nafter the takeover:\n%s\nafter it woke:\n%s", afterTakeover, after)
	}
	if b, _ := st.ReadFile(t.Context(), lake.ManifestKey(id)); !strings.Contains(string(b), `"fenced"`) {
		t.Errorf("the stalled run's manifest key holds %s, want the fence's mark", b)
	}
	// Later runs sweep orphans; the mark stays, and a PUT of the manifest arriving even later fails.
	for range 2 {
		l, err := lake.ReadLog(t.Context(), st)
		if err != nil || l.Committed[id] || len(l.Manifests) != 1 || !l.Fenced[id] {
			t.Fatalf("log: committed %v, %d manifests, fenced %v (%v)", l.Committed, len(l.Manifests), l.Fenced, err)
		}
		if _, err := lake.RemoveOrphans(t.Context(), st, l, &lake.Manifest{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := lake.Commit(t.Context(), st, &lake.Manifest{RunID: id, Status: "ok"}, base+1); !errors.Is(err, lake.ErrLockLost) {
		t.Errorf("a manifest written after the sweeps: %v, want ErrLockLost", err)
	}
	v, err := lake.Check(t.Context(), st, 1)
	if err != nil || len(v.Problems) > 0 || fmt.Sprint(v.Fences) != fmt.Sprint([]int{base + 1}) {
		t.Errorf("verify: problems %v, fences %v (%v)", issues(v.Problems), v.Fences, err)
	}
}
