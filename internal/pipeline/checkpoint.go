package pipeline

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/parquet"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// A run that is killed keeps what its checkpoints committed: the next start resumes the same run (same
// run id), takes every stream that had finished as it is, continues streams with Checkpoints after
// their last committed unit, and fetches the rest. Checkpoints are written atomically after the files
// they list are durable, and removed once the run's manifest commits.

// resumable is a run's record in its checkpoint directory.
type resumable struct {
	RunID     string    `json:"run_id"`
	StartedAt time.Time `json:"started_at"`
	Resumes   int       `json:"resumes"` // attempts after the first
}

// streamCheckpoint is one stream's committed progress within a run.
type streamCheckpoint struct {
	Table    string                     `json:"table"`
	Complete bool                       `json:"complete"`       // the stream finished: take it as is
	Done     []string                   `json:"done,omitempty"` // units completed (streams with Checkpoints)
	Report   lake.StreamReport          `json:"report"`         // figures so far; the final report when complete
	Files    []parquet.FileInfo         `json:"files"`
	Evidence []lake.Evidence            `json:"evidence,omitempty"`
	PDFs     []lake.Evidence            `json:"pdfs,omitempty"`
	Rejects  []typing.Reject            `json:"rejects,omitempty"`
	Next     string                     `json:"next,omitempty"` // the watermark reached
	Memo     map[string]json.RawMessage `json:"memo,omitempty"` // the stream's memo built so far
}

// rows is how many rows the checkpoint holds for table.
func (c *streamCheckpoint) rows(table string) int64 {
	for _, t := range c.Report.Tables {
		if t.Name == table {
			return t.Rows
		}
	}
	return 0
}

func checkpointDir(runID string) string { return filepath.Join(lake.CheckpointDir, runID) }

// writeCheckpoint makes the files it lists durable, then replaces the stream's checkpoint atomically.
func writeCheckpoint(env *runEnv, ck *streamCheckpoint) error {
	if err := env.store.Sync(); err != nil {
		return err
	}
	return lake.WriteJSON(env.root, checkpointDir(env.runID), ck.Table, ck)
}

func removeCheckpoint(root, runID, table string) error {
	err := os.Remove(filepath.Join(root, checkpointDir(runID), table+".json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// openCheckpoints finds the run to resume: the newest checkpointed run without a manifest. Others — a
// run whose manifest committed before its checkpoints were removed, older leftovers, or every one on
// a full refresh — are removed, so their files become orphans. It returns nil when there is nothing
// to resume.
func openCheckpoints(root string, ms []*lake.Manifest, fullRefresh bool) (*resumable, map[string]*streamCheckpoint, error) {
	entries, err := os.ReadDir(filepath.Join(root, lake.CheckpointDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	committed := map[string]bool{}
	for _, m := range ms {
		committed[m.RunID] = true
	}
	var runs []string
	for _, e := range entries {
		if e.IsDir() {
			runs = append(runs, e.Name())
		}
	}
	sort.Strings(runs)
	var run *resumable
	var cks map[string]*streamCheckpoint
	for i := len(runs) - 1; i >= 0; i-- {
		id := runs[i]
		if run == nil && !committed[id] && !fullRefresh {
			var r resumable
			found, err := lake.ReadJSON(root, checkpointDir(id), "run", &r)
			if err != nil {
				return nil, nil, err
			}
			if found && r.RunID == id {
				if cks, err = readCheckpoints(root, id); err != nil {
					return nil, nil, err
				}
				run = &r
				continue
			}
		}
		if err := os.RemoveAll(filepath.Join(root, checkpointDir(id))); err != nil {
			return nil, nil, err
		}
	}
	return run, cks, nil
}

func readCheckpoints(root, runID string) (map[string]*streamCheckpoint, error) {
	entries, err := os.ReadDir(filepath.Join(root, checkpointDir(runID)))
	if err != nil {
		return nil, err
	}
	out := map[string]*streamCheckpoint{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || name == "run.json" || filepath.Ext(name) != ".json" || name[0] == '.' {
			continue
		}
		var ck streamCheckpoint
		if _, err := lake.ReadJSON(root, checkpointDir(runID), name[:len(name)-len(".json")], &ck); err != nil {
			return nil, err
		}
		out[ck.Table] = &ck
	}
	return out, nil
}

// listed is a pseudo-manifest of the files the checkpoints hold, so orphan removal keeps them.
func listed(cks map[string]*streamCheckpoint) *lake.Manifest {
	m := &lake.Manifest{}
	for _, ck := range cks {
		m.Files = append(m.Files, ck.Files...)
		m.Evidence = append(m.Evidence, ck.Evidence...)
		m.PDFs = append(m.PDFs, ck.PDFs...)
	}
	return m
}
