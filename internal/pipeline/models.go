package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

// buildModels builds the SQL models and runs the data tests over the run m just loaded into wh.
func buildModels(ctx context.Context, wh *duckdb.Warehouse, cfg *config.Config, limit string, m *lake.Manifest) (*models.Report, error) {
	var tables []lake.TableInfo
	for _, s := range m.Streams {
		if s.Status == "ok" {
			tables = append(tables, s.Tables...)
		}
	}
	if err := modelThreads(ctx, wh, limit); err != nil {
		return nil, fmt.Errorf("run %s is loaded, but the SQL models could not start: %w", m.RunID, err)
	}
	rep, err := models.Run(ctx, wh.DB, m.RunID, tables, cfg.Fields())
	if err != nil {
		return rep, fmt.Errorf("run %s is loaded, but the SQL models failed: %w", m.RunID, err)
	}
	if keyWarnings(m, rep) {
		// The run's row was written with the load; its streams gain the key warnings the tests found.
		streams, _ := json.Marshal(m.Streams)
		if _, err := wh.DB.ExecContext(ctx, "UPDATE "+duckdb.RunsTable+" SET streams = ? WHERE run_id = ?", string(streams), m.RunID); err != nil {
			return rep, fmt.Errorf("run %s: recording its key warnings: %w", m.RunID, err)
		}
	}
	return rep, nil
}

// modelThreads gives the models one thread under the default memory limit: DuckDB keeps each
// thread's join and aggregation state outside memory_limit, and one thread built the models with a
// lower peak RSS and no slower (figures: bench/README.md, "Figures behind tuned constants"). A limit
// set in the config leaves DuckDB its threads.
func modelThreads(ctx context.Context, wh *duckdb.Warehouse, limit string) error {
	if limit != config.DefaultWarehouseMemoryLimit {
		return nil
	}
	_, err := wh.DB.ExecContext(ctx, "SET threads = 1")
	return err
}

// keyWarnings adds each failed key test's message to the warnings of the stream whose table it tested,
// and reports whether it added any.
func keyWarnings(m *lake.Manifest, rep *models.Report) bool {
	added := false
	for _, t := range rep.Tests {
		if t.Table == "" || !t.Failed() {
			continue
		}
		for i := range m.Streams {
			s := &m.Streams[i]
			for _, tb := range s.Tables {
				if tb.Name != t.Table {
					continue
				}
				msg := t.Message
				if tb.Name != s.Table {
					msg = tb.Name + ": " + msg
				}
				if !slices.Contains(s.Warnings, msg) {
					s.Warnings = append(s.Warnings, msg)
					added = true
				}
			}
		}
	}
	return added
}
