package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/sql/fieldmap"
)

// BuildResult is what a build did.
type BuildResult struct {
	// RunID is the newest loaded run: the data the models were built over, under whose id the test
	// results are recorded (the site shows a run's newest results).
	RunID   string
	Models  *models.Report
	Seconds float64
}

// Build rebuilds the models sel chooses and runs its data tests over what the warehouse holds, as
// `dbt build` does: nothing is fetched or loaded. The key tests are those of each table's key in
// force as its newest load recorded it. It works on a copy of the warehouse that replaces it when
// done (duckdb.Update), so queries meanwhile answer from the last state; a warehouse another process
// is writing (a run loading) refuses it (ErrRefused).
func Build(ctx context.Context, warehouse, limit string, fields fieldmap.Mapping, sel *models.Selection) (*BuildResult, error) {
	if _, err := os.Stat(warehouse); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no warehouse at %s yet: extract run loads one", warehouse)
	}
	began := time.Now()
	res := &BuildResult{}
	err := duckdb.Update(warehouse, limit, func(wh *duckdb.Warehouse) (bool, error) {
		runID, tables, err := loadedTables(ctx, wh)
		if err != nil {
			return false, err
		}
		if runID == "" {
			return false, fmt.Errorf("the warehouse %s holds no run yet: extract run loads one", warehouse)
		}
		res.RunID = runID
		if err := modelThreads(ctx, wh, limit); err != nil {
			return false, err
		}
		res.Models, err = models.RunSelected(ctx, wh.DB, runID, tables, fields, sel)
		return res.Models != nil, err
	})
	res.Seconds = round(time.Since(began).Seconds())
	if errors.Is(err, duckdb.ErrLocked) {
		err = fmt.Errorf("%w: %w", ErrRefused, err)
	}
	return res, err
}

// loadedTables is the newest loaded run and every table its newest successful load describes (with
// the key in force then).
func loadedTables(ctx context.Context, wh *duckdb.Warehouse) (string, []lake.TableInfo, error) {
	runs, err := wh.LoadedRuns(ctx)
	if err != nil || len(runs) == 0 {
		return "", nil, err
	}
	rows, err := wh.DB.QueryContext(ctx, "SELECT run_id, streams::VARCHAR FROM "+duckdb.RunsTable+" ORDER BY loaded_at, run_id")
	if err != nil {
		return "", nil, err
	}
	defer rows.Close()
	newest := map[string]lake.TableInfo{}
	var order []string
	last := ""
	for rows.Next() {
		var streams string
		if err := rows.Scan(&last, &streams); err != nil {
			return "", nil, err
		}
		var reps []lake.StreamReport
		if err := json.Unmarshal([]byte(streams), &reps); err != nil {
			return "", nil, fmt.Errorf("%s of run %s: %w", duckdb.RunsTable, last, err)
		}
		for _, r := range reps {
			if r.Status != "ok" {
				continue
			}
			for _, t := range r.Tables {
				if _, ok := newest[t.Name]; !ok {
					order = append(order, t.Name)
				}
				newest[t.Name] = t
			}
		}
	}
	tables := make([]lake.TableInfo, 0, len(order))
	for _, name := range order {
		tables = append(tables, newest[name])
	}
	return last, tables, rows.Err()
}
