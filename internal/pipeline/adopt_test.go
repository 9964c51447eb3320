package pipeline

import (
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// A run that took a stalled run's lake over fenced it and was adopting its checkpoints under a new id
// when it was killed, before the new id's run.json: the next start (no lease to take over, so no new
// fence) finds only the fenced run's checkpoints. Resumed under the fenced id it could never commit
// (its manifest key holds the fence's mark), and every later start would resume it again: it must be
// adopted under a new id, as the fence's own start would have.
func TestFencedRunsCheckpointsAreAdoptedNotResumed(t *testing.T) {
	t.Parallel()
	st := lake.Dir(t.TempDir())
	ctx := t.Context()
	const fenced = "20261206T010203.000Z-abcdef"
	claim, _ := json.Marshal(map[string]any{"fence": "the lock of " + fenced + " was taken over", "fenced_runs": []string{fenced}})
	mark, _ := json.Marshal(map[string]string{"fenced": "the lock of " + fenced + " was taken over"})
	for key, b := range map[string][]byte{
		lake.CommitDir + "/000000000001.json": claim,
		lake.ManifestKey(fenced):              mark,
	} {
		if err := st.WriteFile(ctx, key, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := lake.WriteJSON(ctx, st, checkpointDir(fenced), "run", &resumable{RunID: fenced}); err != nil {
		t.Fatal(err)
	}
	if err := lake.WriteJSON(ctx, st, checkpointDir(fenced), "t_s", &streamCheckpoint{Table: "t_s", Complete: true}); err != nil {
		t.Fatal(err)
	}
	rec, err := recoverInterrupted(ctx, nil, st, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	if rec.run == nil || rec.run.RunID == fenced || rec.run.From != fenced || rec.checkpoints["t_s"] == nil {
		t.Fatalf("resumed %+v with %d checkpoints; want the fenced run's checkpoints under a new run id", rec.run, len(rec.checkpoints))
	}
}
