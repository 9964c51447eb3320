package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// A reset makes the next run fetch streams again from since, without touching anything committed:
// snapshots, manifests and the warehouse's history stay as they are; the re-fetched rows replace the
// current state as any newer fetch does. `extract reset` writes one file, the reset record
// (_state/resets/<id>.json: when, by whom, the streams and their states before), with one atomic
// write while holding the lake's lock — the record is the reset, so a crash leaves either no reset or
// a whole one, and the lake keeps every reset ever made. A run applies the resets newer than the one
// each stream's state last took up (its "reset" marker): it starts that stream from nothing (and
// drops a checkpoint a killed run made before the reset), and when the stream commits, its state
// records the reset as taken up. A stream that fails, or is not run, keeps its reset pending.

// ResetDir holds the reset records, under the lake's state directory.
const ResetDir = lake.StateDir + "/resets"

// ResetRecord is one `extract reset`.
type ResetRecord struct {
	ID      string        `json:"id"` // sorts by time: 20261204T181031.340Z-7ccb24
	At      time.Time     `json:"at"`
	By      string        `json:"by"` // user@host, for the audit trail
	Streams []ResetStream `json:"streams"`
}

// ResetStream is one stream a reset sent back to since, with the state it had.
type ResetStream struct {
	Table    string          `json:"table"`
	Previous json.RawMessage `json:"previous,omitempty"` // the state before, as stored (absent: none yet)
}

// stateFile is a stream's stored state with the newest reset it took up.
type stateFile struct {
	*sources.State
	Reset string `json:"reset,omitempty"`
}

// Reset records a reset of tables (warehouse table names or stream names of cfg's streams with a
// state) and returns the record. A stream without state (fetched whole every run) is named in the
// error. The lake's lock is held while the record is written, so no run is between its start and
// commit meanwhile (a busy lake is a refused start, ErrRefused).
func Reset(ctx context.Context, cfg *config.Config, names []string, now time.Time) (*ResetRecord, error) {
	streams, err := Streams(cfg, Client(cfg, httpclient.Options{}), names, nil)
	if err != nil {
		return nil, err
	}
	var whole []string
	for _, s := range streams {
		if s.State == nil {
			whole = append(whole, s.TableName())
		}
	}
	if len(whole) > 0 {
		return nil, &config.Error{Msg: fmt.Sprintf("%s: fetched whole every run, so there is nothing to reset (the next run fetches it all again anyway)", strings.Join(whole, ", "))}
	}
	st, release, _, err := LockLake(ctx, cfg, "extract reset")
	if err != nil {
		return nil, err
	}
	defer release()
	rec := &ResetRecord{ID: lake.NewRunID(now), At: now.UTC(), By: whoami()}
	for _, s := range streams {
		prev, err := st.ReadFile(ctx, lake.StateDir+"/"+s.TableName()+".json")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading the state of %s: %w", s.TableName(), err)
		}
		rec.Streams = append(rec.Streams, ResetStream{Table: s.TableName(), Previous: json.RawMessage(prev)})
	}
	if err := lake.WriteJSON(ctx, st, ResetDir, rec.ID, rec); err != nil {
		return nil, refused(err)
	}
	return rec, nil
}

// whoami names the person or job that made a reset, for the record.
func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

// ReadResets returns every reset record in st, oldest first.
func ReadResets(ctx context.Context, st lake.Store) ([]*ResetRecord, error) {
	es, err := st.List(ctx, ResetDir)
	if err != nil {
		return nil, err
	}
	var out []*ResetRecord
	for _, e := range es {
		name := path.Base(e.Key)
		if !strings.HasSuffix(name, ".json") || path.Dir(e.Key) != ResetDir {
			continue
		}
		var r ResetRecord
		if _, err := lake.ReadJSON(ctx, st, ResetDir, strings.TrimSuffix(name, ".json"), &r); err != nil {
			return nil, err
		}
		out = append(out, &r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// PendingReset is the newest reset of table that its state has not taken up (nil: none). taken is
// the reset id the state records.
func PendingReset(resets []*ResetRecord, table, taken string) *ResetRecord {
	for _, r := range slices.Backward(resets) {
		if r.ID <= taken {
			return nil
		}
		for _, s := range r.Streams {
			if s.Table == table {
				return r
			}
		}
	}
	return nil
}

// readState loads a stream's stored state into s.State and returns the reset it records.
func readState(ctx context.Context, st lake.Store, s *sources.Stream) (string, error) {
	f := stateFile{State: s.State}
	_, err := lake.ReadJSON(ctx, st, lake.StateDir, s.TableName(), &f)
	return f.Reset, err
}

// applyResets starts each stream with a pending reset from nothing, drops the checkpoint a run
// killed before the reset left for it, and returns the reset each stream's state is to record when
// it commits.
func applyResets(ctx context.Context, st lake.Store, streams []*sources.Stream, taken map[string]string, run *resumable, cks map[string]*streamCheckpoint, fullRefresh bool) (map[string]string, error) {
	resets, err := ReadResets(ctx, st)
	if err != nil {
		return nil, fmt.Errorf("reading the reset records: %w", err)
	}
	marks := map[string]string{}
	for _, s := range streams {
		if s.State == nil {
			continue
		}
		marks[s.TableName()] = taken[s.TableName()]
		r := PendingReset(resets, s.TableName(), taken[s.TableName()])
		if r == nil {
			continue
		}
		marks[s.TableName()] = r.ID
		if fullRefresh {
			continue // a full refresh starts from nothing anyway
		}
		s.State.Watermark, s.State.Memo, s.State.Windows = "", nil, false
		if ck := cks[s.TableName()]; ck != nil && run != nil && run.StartedAt.Before(r.At) {
			if err := dropCheckpoint(ctx, st, run.RunID, ck); err != nil {
				return nil, fmt.Errorf("dropping the checkpoint of %s, made before its reset: %w", s.TableName(), err)
			}
			delete(cks, s.TableName())
		}
	}
	return marks, nil
}
