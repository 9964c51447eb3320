package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// loadPending loads the committed runs the warehouse lacks. The warehouse is derived from the lake: a
// missing one is rebuilt from every run, and so is one a kill left unreadable (set aside, not deleted).
func loadPending(ctx context.Context, cfg *config.Config, st lake.Store, log *slog.Logger, ms []*lake.Manifest) error {
	if len(ms) == 0 {
		return nil
	}
	loaded, err := loadedRuns(ctx, cfg.Warehouse, log)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if loaded[m.RunID] {
			continue
		}
		var rejects []typing.Reject
		if _, err := lake.ReadJSON(ctx, st, lake.RejectsDir, m.RunID, &rejects); err != nil {
			return err
		}
		log.Warn("loading a committed run the warehouse lacks (interrupted before its load finished, or a warehouse rebuilt from the lake)", "run_id", m.RunID)
		if _, err := Load(ctx, cfg, st, m, rejects); err != nil {
			return err
		}
	}
	return nil
}

// loadedRuns lists the runs the warehouse holds (none when there is no warehouse). A warehouse DuckDB
// cannot read — not a database (a kill while DuckDB created it), truncated, or with a corrupt block —
// is set aside and counts as none, so it is rebuilt from the lake: failing instead would fail every
// run from then on. A warehouse another process holds locked is not damaged and fails the run.
func loadedRuns(ctx context.Context, path string, log *slog.Logger) (map[string]bool, error) {
	loaded := map[string]bool{}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return loaded, nil
	}
	wh, err := duckdb.OpenReadOnly(path)
	var runs []string
	if err == nil {
		runs, err = wh.LoadedRuns(ctx)
		wh.Close()
	}
	if duckdb.IsDamaged(err) {
		aside, serr := duckdb.SetAside(path)
		if serr != nil {
			return nil, errors.Join(err, serr)
		}
		log.Warn("the warehouse file is damaged; set it aside, rebuilding the warehouse from the lake", "set_aside", aside, "error", err)
		return loaded, nil
	}
	for _, r := range runs {
		loaded[r] = true
	}
	return loaded, err
}

// load stores the watermarks of the streams that succeeded (storeWatermarks), then loads the
// committed run into the warehouse and builds the models over it.
func (r *runner) load(ctx context.Context) error {
	if err := r.storeWatermarks(ctx); err != nil {
		return err
	}
	// The load does not read the manifest's evidence and PDF lists, the largest thing the run still
	// holds (an entry per response body kept): they are let go while DuckDB has its memory and read
	// back from the committed manifest afterwards.
	m := r.res.Manifest
	lists := len(m.Evidence) + len(m.PDFs)
	m.Evidence, m.PDFs = nil, nil
	// Extraction's garbage goes back to the OS before DuckDB allocates its own memory, so the two do
	// not add up in the run's peak RSS. Two collections: sync.Pool keeps what it holds through one
	// (encoding/json's pool holds the buffer the manifest was encoded in).
	runtime.GC()
	debug.FreeOSMemory()
	var err error
	r.res.Models, err = loadTimed(ctx, r.cfg, r.st, m, r.rejects, r.w)
	if lists > 0 {
		var back lake.Manifest
		if _, rerr := lake.ReadJSON(ctx, r.st, lake.ManifestDir, m.RunID, &back); rerr != nil {
			return errors.Join(err, fmt.Errorf("reading back the manifest's evidence: %w", rerr))
		}
		m.Evidence, m.PDFs = back.Evidence, back.PDFs
	}
	return err
}

// Load loads a written run into the warehouse, then builds the SQL models and runs the data tests.
// A failing model or test leaves the loaded data in place. With the default memory limit, a load that
// runs out of memory is tried once more with a larger one, from the table that ran out (each table is
// loaded in a transaction of its own; see duckdb.LoadRun).
func Load(ctx context.Context, cfg *config.Config, st lake.Store, m *lake.Manifest, rejects []typing.Reject) (*models.Report, error) {
	return loadTimed(ctx, cfg, st, m, rejects, nil)
}

// loadTimed is Load, timing its phases in w (nil: untimed).
func loadTimed(ctx context.Context, cfg *config.Config, st lake.Store, m *lake.Manifest, rejects []typing.Reject, w *watch) (*models.Report, error) {
	retry := ""
	if cfg.WarehouseMemoryLimit == config.DefaultWarehouseMemoryLimit {
		retry = config.RetryWarehouseMemoryLimit
	}
	return loadRetrying(ctx, cfg, st, retry, m, rejects, w)
}

// loadRetrying loads with the configured memory limit and, if that runs out and retry is set, once more
// with retry.
func loadRetrying(ctx context.Context, cfg *config.Config, st lake.Store, retry string, m *lake.Manifest, rejects []typing.Reject, w *watch) (*models.Report, error) {
	rep, err := loadWith(ctx, cfg, st, cfg.WarehouseMemoryLimit, m, rejects, w)
	if err != nil && retry != "" && duckdb.IsOutOfMemory(err) {
		w.enter(PhaseLoad)
		rep, err = loadWith(ctx, cfg, st, retry, m, rejects, w)
	}
	return rep, err
}

// loadWith loads m and builds the models in a new generation of the warehouse (duckdb.Update), which
// replaces the current one once the run is loaded: queries during the load answer from the last one.
func loadWith(ctx context.Context, cfg *config.Config, st lake.Store, limit string, m *lake.Manifest, rejects []typing.Reject, w *watch) (*models.Report, error) {
	var rep *models.Report
	err := duckdb.Update(cfg.Warehouse, limit, func(wh *duckdb.Warehouse) (bool, error) {
		if err := wh.LoadRun(ctx, st, SpoolDir(cfg), m, rejects); err != nil {
			hint := ""
			if duckdb.IsOutOfMemory(err) {
				hint = fmt.Sprintf(" (DuckDB's memory is limited to %s: raise warehouse_memory_limit; the run is in the lake and loads at the next start)", limit)
			}
			return false, fmt.Errorf("loading run %s into %s: %w%s", m.RunID, cfg.Warehouse, err, hint)
		}
		w.enter(PhaseModels)
		var err error
		rep, err = buildModels(ctx, wh, cfg, limit, m)
		return true, err // the loaded data stays whatever the models do
	})
	return rep, err
}
