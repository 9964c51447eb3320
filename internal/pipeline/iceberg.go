package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/iceberg"
)

// IcebergReport is a run's registration of the lake's files as Iceberg tables.
type IcebergReport struct {
	Catalog   string  `json:"catalog"`
	Snapshots int     `json:"snapshots"` // one per table and run registered (earlier runs caught up included)
	Files     int     `json:"files"`
	Seconds   float64 `json:"seconds"`
	Error     string  `json:"error,omitempty"`
}

// publish registers the committed runs' files as Iceberg tables when iceberg.enabled is set. A failure
// is the run's error, yet the run stays committed and loaded, and the next run catches up.
func (r *runner) publish(ctx context.Context) error {
	if !r.cfg.Iceberg.On() {
		return nil
	}
	r.w.enter(PhaseIceberg)
	r.res.Iceberg = registerIceberg(ctx, r.cfg, append(r.rec.manifests, r.manifest), r.log)
	if r.res.Iceberg.Error != "" {
		return fmt.Errorf("run %s is committed and loaded, but %s", r.manifest.RunID, r.res.Iceberg.Error)
	}
	return nil
}

// registerIceberg registers the committed runs' files the Iceberg catalog lacks: this run's, and
// any earlier run's whose registration failed or came before the catalog.
func registerIceberg(ctx context.Context, cfg *config.Config, ms []*lake.Manifest, log *slog.Logger) *IcebergReport {
	began := time.Now()
	uri, err := icebergCatalog(ctx, cfg)
	rep := &IcebergReport{Catalog: iceberg.Redact(uri)}
	var cat *iceberg.Catalog
	if err == nil {
		cat, err = iceberg.Open(ctx, uri, cfg.IcebergNamespace(), cfg.OutputDir)
	}
	if err == nil {
		var r iceberg.Registered
		r, err = cat.Register(ctx, ms)
		rep.Snapshots, rep.Files = r.Snapshots, r.Files
		if len(r.Reregistered) > 0 {
			log.Warn("iceberg tables whose metadata the lake no longer held were registered again from the lake", "tables", r.Reregistered)
		}
		cat.Close()
	}
	rep.Seconds = round(time.Since(began).Seconds())
	if err != nil {
		rep.Error = err.Error()
		log.Error("iceberg registration failed (the lake and warehouse are complete; the next run catches up)", "error", err)
	} else {
		log.Info("iceberg tables registered", "catalog", rep.Catalog, "snapshots", rep.Snapshots, "files", rep.Files, "seconds", rep.Seconds)
	}
	return rep
}

// icebergCatalog is cfg's Iceberg catalog. By default that is the one named for the warehouse,
// unless it does not exist yet and the previous default, iceberg.db beside the warehouse, holds this
// lake's tables and no other lake's: then that one stays in use, so an existing lake keeps its tables
// and their history. One that holds another lake's tables too is left as it is.
func icebergCatalog(ctx context.Context, cfg *config.Config) (string, error) {
	uri, legacy := cfg.IcebergCatalog(), cfg.LegacyIcebergCatalog()
	if legacy == "" {
		return uri, nil
	}
	if _, err := os.Stat(uri); err == nil {
		return uri, nil
	}
	owns, err := iceberg.Owns(ctx, legacy, cfg.IcebergNamespace(), cfg.OutputDir)
	if owns {
		return legacy, err
	}
	return uri, err
}
