package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
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
	// From is the run whose checkpoints this run took over after fencing it (adopt).
	From string `json:"resumed_from,omitempty"`
}

// streamCheckpoint is one stream's committed progress within a run.
type streamCheckpoint struct {
	Table    string                     `json:"table"`
	Complete bool                       `json:"complete"`       // the stream finished: take it as is
	Done     []string                   `json:"done,omitempty"` // units completed (streams with Checkpoints)
	Report   lake.StreamReport          `json:"report"`         // figures so far; the final report when complete
	Files    []lake.FileInfo            `json:"files"`
	Evidence []lake.Evidence            `json:"evidence,omitempty"`
	PDFs     []lake.Evidence            `json:"pdfs,omitempty"`
	Packs    []lake.PackInfo            `json:"packs,omitempty"` // the packs sealed so far, whole
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

func checkpointDir(runID string) string { return lake.CheckpointDir + "/" + runID }

// checkpointer commits the streams' checkpoints in the background: a stream hands its checkpoint over
// and goes on (or on to the next stream) without waiting for the disk, and checkpoints that arrive
// together are made durable by one syncfs. A stream's newest checkpoint replaces one not yet written.
type checkpointer struct {
	// ctx is the run's, without its cancellation: the checkpoints written as a run is interrupted are
	// what the next run resumes from.
	ctx     context.Context
	env     *runEnv
	log     *slog.Logger
	gap     time.Duration // least time between two syncfs calls, so finishing streams cannot cause a storm
	mu      sync.Mutex
	pending map[string]*streamCheckpoint
	closed  sync.Once
	writing sync.Mutex // held while a batch is written, so a removal never races a write
	wake    chan struct{}
	quit    chan struct{}
	done    chan struct{}
}

func newCheckpointer(ctx context.Context, env *runEnv, log *slog.Logger, gap time.Duration) *checkpointer {
	c := &checkpointer{ctx: context.WithoutCancel(ctx), env: env, log: log, gap: gap, pending: map[string]*streamCheckpoint{},
		wake: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{})}
	go c.loop()
	return c
}

// put queues ck to be written once the files it lists are durable.
func (c *checkpointer) put(ck *streamCheckpoint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		return // closed
	}
	c.pending[ck.Table] = ck
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// remove drops table's checkpoint, queued or written; it returns once no write of it can follow.
func (c *checkpointer) remove(ctx context.Context, table string) error {
	c.writing.Lock()
	defer c.writing.Unlock()
	c.mu.Lock()
	delete(c.pending, table)
	c.mu.Unlock()
	return c.env.st.Remove(ctx, checkpointDir(c.env.runID)+"/"+table+".json")
}

// close stops the checkpointer once the batch being written is done. Checkpoints still queued are
// dropped: the run's manifest, committed next, supersedes them, and without it the next start resumes
// from each stream's previous checkpoint.
func (c *checkpointer) close() {
	c.closed.Do(func() {
		c.mu.Lock()
		c.pending = nil
		c.mu.Unlock()
		close(c.quit)
	})
	<-c.done
}

func (c *checkpointer) loop() {
	defer close(c.done)
	var last time.Time
	for {
		select {
		case <-c.quit:
			return
		case <-c.wake:
		}
		if wait := c.gap - time.Since(last); wait > 0 {
			select {
			case <-c.quit:
				return
			case <-time.After(wait):
			}
		}
		c.writing.Lock()
		c.mu.Lock()
		batch := c.pending
		if batch != nil {
			c.pending = map[string]*streamCheckpoint{}
		}
		c.mu.Unlock()
		if len(batch) > 0 {
			last = time.Now()
			if err := c.write(batch); err != nil {
				// Only resumption depends on checkpoints: the run goes on, and a crash would refetch more.
				c.log.Warn("could not write checkpoints", "error", err)
			}
		}
		c.writing.Unlock()
	}
}

// write makes the files the checkpoints list durable, then replaces each stream's checkpoint atomically.
func (c *checkpointer) write(batch map[string]*streamCheckpoint) error {
	if err := c.env.st.Held(c.ctx); err != nil {
		return err // another run resumes from the checkpoints as they were
	}
	if err := c.env.store.Sync(c.ctx); err != nil {
		return err
	}
	for _, ck := range batch {
		if err := lake.WriteJSON(c.ctx, c.env.st, checkpointDir(c.env.runID), ck.Table, ck); err != nil {
			return fmt.Errorf("%s: %w", ck.Table, err)
		}
	}
	return nil
}

// openCheckpoints finds the run to resume: the newest checkpointed run without a manifest. Others — a
// run whose manifest committed before its checkpoints were removed, older leftovers, or every one on
// a full refresh — are removed, so their files become orphans. It returns nil when there is nothing
// to resume.
func openCheckpoints(ctx context.Context, st lake.Store, committed map[string]bool, fullRefresh bool) (*resumable, map[string]*streamCheckpoint, error) {
	entries, err := st.List(ctx, lake.CheckpointDir)
	if err != nil {
		return nil, nil, err
	}
	files := map[string][]string{} // run id: its checkpoint files
	var runs []string
	for _, e := range entries {
		id, name, ok := strings.Cut(strings.TrimPrefix(e.Key, lake.CheckpointDir+"/"), "/")
		if !ok {
			continue
		}
		if files[id] == nil {
			runs = append(runs, id)
		}
		files[id] = append(files[id], name)
	}
	sort.Strings(runs)
	var run *resumable
	var cks map[string]*streamCheckpoint
	for i := len(runs) - 1; i >= 0; i-- {
		id := runs[i]
		if run == nil && !committed[id] && !fullRefresh {
			var r resumable
			found, err := lake.ReadJSON(ctx, st, checkpointDir(id), "run", &r)
			if err != nil {
				return nil, nil, err
			}
			if found && r.RunID == id {
				if cks, err = readCheckpoints(ctx, st, id, files[id]); err != nil {
					return nil, nil, err
				}
				run = &r
				continue
			}
		}
		if err := st.RemoveAll(ctx, checkpointDir(id)); err != nil {
			return nil, nil, err
		}
	}
	return run, cks, nil
}

func readCheckpoints(ctx context.Context, st lake.Store, runID string, names []string) (map[string]*streamCheckpoint, error) {
	out := map[string]*streamCheckpoint{}
	for _, name := range names {
		if strings.Contains(name, "/") || name == "run.json" || path.Ext(name) != ".json" || name[0] == '.' {
			continue
		}
		var ck streamCheckpoint
		if _, err := lake.ReadJSON(ctx, st, checkpointDir(runID), name[:len(name)-len(".json")], &ck); err != nil {
			return nil, err
		}
		out[ck.Table] = &ck
	}
	return out, nil
}

// adopt moves a fenced run's checkpoints to a new run id, which resumes them: the fenced run may still
// wake up and write under its own id, into checkpoints nothing reads any more and files the next
// start removes. The carried-over files keep the fenced run's id in their names.
func adopt(ctx context.Context, st lake.Store, run *resumable, cks map[string]*streamCheckpoint, id string) (*resumable, error) {
	next := &resumable{RunID: id, StartedAt: run.StartedAt, Resumes: run.Resumes, From: run.RunID}
	for _, ck := range cks {
		if err := lake.WriteJSON(ctx, st, checkpointDir(id), ck.Table, ck); err != nil {
			return nil, err
		}
	}
	// run.json last: a run directory with one holds every checkpoint it had.
	if err := lake.WriteJSON(ctx, st, checkpointDir(id), "run", next); err != nil {
		return nil, err
	}
	return next, st.RemoveAll(ctx, checkpointDir(run.RunID))
}

// dropCheckpoint removes ck, a killed attempt's checkpoint of run that this attempt does not resume,
// and then the snapshot files it lists: they carry the run's id, so once the run commits nothing
// would remove them, and verify would name them as added to the run. Its evidence packs are left (a
// body in them may be listed by another stream); no manifest lists them.
func dropCheckpoint(ctx context.Context, st lake.Store, run string, ck *streamCheckpoint) error {
	if err := st.Remove(ctx, checkpointDir(run)+"/"+ck.Table+".json"); err != nil {
		return err
	}
	for _, f := range ck.Files {
		if !lake.RunsFile(f.Path, run) {
			continue
		}
		if err := st.Remove(ctx, f.Path); err != nil {
			return err
		}
	}
	return nil
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
