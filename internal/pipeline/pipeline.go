// Package pipeline runs a configured extraction: every selected stream concurrently (bounded), each
// streaming API pages → typed Arrow batches → Parquet parts, then one manifest for the run and one
// warehouse transaction. A failing stream is reported and does not stop the others.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"golang.org/x/sync/errgroup"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sinks/parquet"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/sources/gsapi"
	"github.com/ledgerlake/ledgerlake/internal/sources/signicat"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// Options of one run.
type Options struct {
	Config  *config.Config
	Streams []string // table names (signicat_accounts) or stream names (accounts); empty = all
	Logger  *slog.Logger
	// HTTP overrides client settings (tests shorten backoff); zero fields come from the config.
	HTTP httpclient.Options
	// BatchRows is the Arrow batch size (default 16384): memory is bounded by it, not by stream size.
	BatchRows int
	Now       func() time.Time
}

// Result of a run.
type Result struct {
	Manifest *lake.Manifest
	Failed   []lake.StreamReport
}

// ErrBusy means another run holds the output directory.
var ErrBusy = errors.New("another ledgerlake run is using this output directory")

// Streams builds the configured streams, filtered by names.
func Streams(cfg *config.Config, client *httpclient.Client, names []string) ([]*sources.Stream, error) {
	var all []*sources.Stream
	if cfg.Sources.Signicat != nil {
		ss, err := signicat.New(cfg.Sources.Signicat, client).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, ss...)
	}
	if cfg.Sources.GSAPI != nil {
		gs, err := gsapi.New(cfg.Sources.GSAPI, client).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, gs...)
	}
	if len(names) == 0 {
		return all, nil
	}
	var out []*sources.Stream
	for _, n := range names {
		var match []*sources.Stream
		for _, s := range all {
			if s.TableName() == n || s.Name == n {
				match = append(match, s)
			}
		}
		switch len(match) {
		case 0:
			valid := make([]string, len(all))
			for i, s := range all {
				valid[i] = s.TableName()
			}
			return nil, &config.Error{Msg: fmt.Sprintf("--streams: unknown stream %q (configured: %s)", n, strings.Join(valid, ", "))}
		case 1:
			out = append(out, match[0])
		default:
			return nil, &config.Error{Msg: fmt.Sprintf("--streams: %q is ambiguous; say %s or %s", n, match[0].TableName(), match[1].TableName())}
		}
	}
	return out, nil
}

// Run extracts, writes the manifest, and loads the warehouse.
func Run(ctx context.Context, opts Options) (*Result, error) {
	cfg, log := opts.Config, opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BatchRows <= 0 {
		opts.BatchRows = 16384
	}
	hopts := opts.HTTP
	if hopts.PerHostConcurrency == 0 {
		hopts.PerHostConcurrency = cfg.PerHostConcurrency
	}
	if hopts.PerHostRate == 0 {
		hopts.PerHostRate = cfg.PerHostRate
	}
	client := httpclient.New(hopts)
	streams, err := Streams(cfg, client, opts.Streams)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.OutputDir, 0o755); err != nil {
		return nil, err
	}
	unlock, err := lockDir(cfg.OutputDir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if n, err := durable.RemoveTemps(cfg.OutputDir); err != nil {
		return nil, err
	} else if n > 0 {
		log.Warn("removed unfinished files of an interrupted run", "files", n)
	}

	m := &lake.Manifest{RunID: lake.NewRunID(opts.Now()), StartedAt: opts.Now().UTC()}
	log.Info("run started", "run_id", m.RunID, "streams", len(streams))
	var (
		mu      sync.Mutex
		rejects []typing.Reject
	)
	reports := make([]lake.StreamReport, len(streams))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, cfg.Concurrency))
	for i, s := range streams {
		g.Go(func() error {
			rep, files, rej := runStream(gctx, cfg.OutputDir, m.RunID, opts.Now(), s, opts.BatchRows)
			if rep.Status == "ok" {
				log.Info("stream done", "table", rep.Table, "rows", rep.Rows, "requests", rep.Requests, "retries", rep.Retries, "seconds", round(rep.Seconds))
			} else {
				log.Error("stream failed", "table", rep.Table, "error", rep.Error)
			}
			if len(rep.Unknown) > 0 {
				log.Warn("API sent fields the declared schema does not have; they are not loaded", "table", rep.Table, "fields", strings.Join(rep.Unknown, ","))
			}
			mu.Lock()
			defer mu.Unlock()
			reports[i] = rep
			m.Files = append(m.Files, files...)
			rejects = append(rejects, rej...)
			return nil
		})
	}
	_ = g.Wait()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("run %s interrupted; completed streams' files are kept but not loaded: %w", m.RunID, ctx.Err())
	}
	sort.Slice(m.Files, func(i, j int) bool { return m.Files[i].Path < m.Files[j].Path })
	m.Streams = reports
	m.FinishedAt = opts.Now().UTC()
	m.Status = "ok"
	res := &Result{Manifest: m}
	for _, r := range reports {
		if r.Status != "ok" {
			m.Status = "partial"
			res.Failed = append(res.Failed, r)
		}
	}
	if err := lake.WriteManifest(cfg.OutputDir, m); err != nil {
		return nil, fmt.Errorf("writing manifest: %w", err)
	}
	if err := Load(ctx, cfg, m, streams, rejects); err != nil {
		return res, err
	}
	log.Info("run finished", "run_id", m.RunID, "status", m.Status, "seconds", round(m.FinishedAt.Sub(m.StartedAt).Seconds()))
	return res, nil
}

// Load loads a written run into the warehouse.
func Load(ctx context.Context, cfg *config.Config, m *lake.Manifest, streams []*sources.Stream, rejects []typing.Reject) error {
	if dir := filepath.Dir(cfg.Warehouse); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	wh, err := duckdb.Open(cfg.Warehouse)
	if err != nil {
		return err
	}
	defer wh.Close()
	specs := map[string]duckdb.TableSpec{}
	for _, s := range streams {
		specs[s.TableName()] = duckdb.TableSpec{Key: s.Table.Key, Incremental: s.Mode == sources.Incremental}
	}
	if err := wh.LoadRun(ctx, cfg.OutputDir, m, specs, rejects); err != nil {
		return fmt.Errorf("loading run %s into %s: %w", m.RunID, cfg.Warehouse, err)
	}
	return nil
}

// runStream moves one stream from the API to Parquet. On failure its files are discarded: the next run
// fetches the stream again, and nothing half-done is ever loaded.
func runStream(ctx context.Context, root, runID string, extractedAt time.Time, s *sources.Stream, batchRows int) (lake.StreamReport, []parquet.FileInfo, []typing.Reject) {
	start := time.Now()
	rep := lake.StreamReport{Table: s.TableName(), Status: "ok"}
	conv := typing.NewConverter(memory.DefaultAllocator, s.Table, runID, extractedAt.UTC())
	defer conv.Release()
	w := parquet.NewStreamWriter(root, s.TableName(), runID, conv.Schema())
	fail := func(err error) (lake.StreamReport, []parquet.FileInfo, []typing.Reject) {
		w.Abort()
		files, _ := w.Close()
		for _, f := range files {
			_ = os.Remove(filepath.Join(root, filepath.FromSlash(f.Path)))
		}
		rep.Status, rep.Error = "failed", fmt.Sprintf("%s: %v", s.TableName(), err)
		rep.Seconds = time.Since(start).Seconds()
		fillStats(&rep, s)
		return rep, nil, nil
	}
	flush := func() error {
		rec := conv.Flush()
		defer rec.Release()
		rep.Rows += rec.NumRows()
		return w.Write("", rec)
	}
	for page, err := range s.Pages(ctx) {
		if err != nil {
			return fail(err)
		}
		for _, r := range page.Records {
			conv.Append(r)
			if conv.Len() >= batchRows {
				if err := flush(); err != nil {
					return fail(err)
				}
			}
		}
	}
	if err := flush(); err != nil {
		return fail(err)
	}
	if rep.Rows == 0 {
		// An empty snapshot still gets a file, so the table exists with its declared types and is empty.
		empty := conv.Flush()
		err := w.WriteEmpty("", empty)
		empty.Release()
		if err != nil {
			return fail(err)
		}
	}
	files, err := w.Close()
	if err != nil {
		return fail(err)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.Rejects = len(conv.Rejects)
	rep.Unknown = conv.UnknownFields()
	fillStats(&rep, s)
	return rep, files, conv.Rejects
}

func fillStats(rep *lake.StreamReport, s *sources.Stream) {
	rep.Requests = s.Stats.Requests.Load()
	rep.Retries = s.Stats.Retries.Load()
	rep.Bytes = s.Stats.Bytes.Load()
}

func round(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// lockDir takes an exclusive, non-blocking lock on the output directory for the run's duration; the
// kernel releases it if the process dies, so a killed run never leaves a stale lock.
func lockDir(dir string) (func(), error) {
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w (%s); wait for it to finish", ErrBusy, dir)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}
