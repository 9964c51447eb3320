// Package pipeline runs a configured extraction: every selected stream concurrently (bounded), each
// streaming API pages → typed Arrow batches → Parquet parts, then one manifest for the run and one
// warehouse transaction. A failing stream is reported and does not stop the others.
package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/models"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/sources/gsapi"
	"github.com/ledgerlake/ledgerlake/internal/sources/signicat"
)

// DefaultBatchRows is how many records a table gathers before they are converted and written. Up to
// eight streams each hold a batch of decoded records (maps) at once: a smaller batch converted faster
// and held less memory, with the same files and data (figures: bench/README.md, "Figures behind tuned
// constants").
const DefaultBatchRows = 1024

// Options of one run.
type Options struct {
	Config  *config.Config
	Streams []string // table names (signicat_accounts) or stream names (accounts); empty = all
	// FullRefresh ignores stored watermarks: incremental streams fetch everything again.
	FullRefresh bool
	Logger      *slog.Logger
	// HTTP overrides client settings (tests shorten backoff); zero fields come from the config.
	HTTP httpclient.Options
	// Observer, when set, hears what the run does, for a live view: the CLI sets it only when stderr is
	// a terminal.
	Observer Observer
	// BatchRows is the Arrow batch size (default DefaultBatchRows): memory is bounded by it, not by
	// stream size.
	BatchRows int
	// CheckpointEvery is how often streams with Checkpoints commit their progress (default 30 s): a
	// killed run loses at most this much of their fetching.
	CheckpointEvery time.Duration
	Now             func() time.Time
	// AcceptShrink names the snapshot streams (table or stream names) whose new snapshot is committed
	// even though it shrank past max_shrink.
	AcceptShrink []string
	// Client is the HTTP client the streams were built with (Run sets it): the run reports how each of
	// its hosts' concurrency went.
	Client *httpclient.Client
}

// Result of a run.
type Result struct {
	Manifest *lake.Manifest
	Failed   []lake.StreamReport
	Models   *models.Report // SQL models built and data tests run after the load
	// Iceberg is what the run registered in the Iceberg catalog (nil when iceberg.enabled is false).
	Iceberg *IcebergReport
	// Phases are what each part of the run took; FinishedAt is when all of it, Iceberg included, ended.
	Phases     Phases
	FinishedAt time.Time
}

// OK reports whether every stream succeeded with every item and every data test passed.
func (r *Result) OK() bool {
	for _, s := range r.Manifest.Streams {
		if s.FailedItems > 0 {
			return false
		}
	}
	return len(r.Failed) == 0 && (r.Models == nil || r.Models.OK())
}

// MemoryLimit is the Go heap's soft limit a run sets unless GOMEMLIMIT is given: the garbage
// collector works harder near it instead of letting the heap double its live size, which kept peak
// RSS growing with the dataset (make bench). A lower limit lowers the extraction's peak but costs
// conversion time steeply (figures: bench/README.md, "Figures behind tuned constants").
const MemoryLimit = 384 << 20

// checkpointGap is the least time between two commits of checkpoints (each a syncfs): streams that
// finish close together share one, and a crash loses at most this much of their progress plus the
// commit in flight. A syncfs per finished stream made the bench's conversion measurably slower
// (bench/README.md, "Figures behind tuned constants").
const checkpointGap = 200 * time.Millisecond

// GCPercent is the Go collector's growth target a run sets unless GOGC is given: the heap may grow by
// 75% of what is live before a collection, not 100%. The extraction's peak is the Go heap while eight
// streams run: at 75 the run's peak is the DuckDB load instead, at no cost in time, where a lower
// target slowed extraction and conversion (figures: bench/README.md, "Figures behind tuned constants").
const GCPercent = 75

// SetMemoryLimit applies MemoryLimit and GCPercent unless the environment sets GOMEMLIMIT or GOGC;
// commands that run pipelines call it once at start.
func SetMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(MemoryLimit)
	}
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}

// ErrBusy means another run holds the output directory.
var ErrBusy = lake.ErrBusy

// Streams builds the configured streams, filtered by names; now is the sources' clock (nil: time.Now),
// which ends their date windows and dates their watermarks.
func Streams(cfg *config.Config, client *httpclient.Client, names []string, now func() time.Time) ([]*sources.Stream, error) {
	var all []*sources.Stream
	if now == nil {
		now = time.Now
	}
	if cfg.Sources.Signicat != nil {
		ss, err := signicat.New(cfg.Sources.Signicat, cfg.Limits.OrDefaults(), client, now).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, ss...)
	}
	if cfg.Sources.GSAPI != nil {
		gs, err := gsapi.New(cfg.Sources.GSAPI, cfg.Limits.OrDefaults(), client, now).Streams()
		if err != nil {
			return nil, err
		}
		all = append(all, gs...)
	}
	if len(names) == 0 {
		return all, nil
	}
	return named(all, names, "--streams")
}

// named resolves names — table names (signicat_accounts) or stream names (accounts) — to streams of
// all; flag names the option in errors.
func named(all []*sources.Stream, names []string, flag string) ([]*sources.Stream, error) {
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
			return nil, &config.Error{Msg: fmt.Sprintf("%s: unknown stream %q (configured: %s)", flag, n, strings.Join(valid, ", "))}
		case 1:
			out = append(out, match[0])
		default:
			return nil, &config.Error{Msg: fmt.Sprintf("%s: %q is ambiguous; say %s or %s", flag, n, match[0].TableName(), match[1].TableName())}
		}
	}
	return out, nil
}

// Run extracts, writes the manifest, and loads the warehouse.
func Run(ctx context.Context, opts Options) (*Result, error) {
	opts.Logger = logger(opts.Logger)
	if opts.HTTP.Logger == nil {
		opts.HTTP.Logger = opts.Logger
	}
	opts.Client = Client(opts.Config, opts.HTTP)
	streams, err := Streams(opts.Config, opts.Client, opts.Streams, opts.Now)
	if err != nil {
		return nil, redact.Error(err)
	}
	return RunStreams(ctx, opts, streams)
}

// logger is log (or one that discards) behind the redacting handler: no record carries a credential.
func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(redact.Handler(log.Handler()))
}

// Client is the HTTP client a run of cfg uses: the config's per-host limits, waits and caps, and
// spooling into the output directory, where hopts leaves them unset.
func Client(cfg *config.Config, hopts httpclient.Options) *httpclient.Client {
	if hopts.PerHostConcurrency == 0 {
		hopts.PerHostConcurrency = cfg.PerHostConcurrency
	}
	if hopts.PerHostRate == 0 {
		hopts.PerHostRate = cfg.PerHostRate
	}
	limits := cfg.Limits.OrDefaults()
	if hopts.StallTimeout == 0 {
		hopts.StallTimeout = time.Duration(limits.StallTimeout)
	}
	if hopts.MaxRetryAfter == 0 {
		hopts.MaxRetryAfter = time.Duration(limits.MaxRetryAfter)
	}
	if hopts.MaxBodyBytes == 0 {
		hopts.MaxBodyBytes = int64(limits.MaxPageBytes)
	}
	if hopts.SpoolDir == "" {
		// Beside the data, on the disk sized for it (the system's temp dir may be small or in memory).
		hopts.SpoolDir = SpoolDir(cfg)
	}
	return httpclient.New(hopts)
}

// RunStreams runs the given streams with opts' config (Run builds them from the config). No error it
// returns, and nothing it writes or logs, carries a known credential (package redact).
func RunStreams(ctx context.Context, opts Options, streams []*sources.Stream) (*Result, error) {
	res, err := runStreams(ctx, opts, streams)
	return res, redact.Error(err)
}

func round(f float64) float64 { return float64(int(f*100+0.5)) / 100 }

// OpenLake opens cfg's output_dir: a local directory, or an object-store URL.
func OpenLake(ctx context.Context, cfg *config.Config) (lake.Store, error) {
	return lake.OpenStore(ctx, cfg.OutputDir, SpoolDir(cfg))
}

// SpoolDir is the local directory for a run's temporary files: responses spooled to disk, and with a
// lake in a bucket, files staged for upload and downloaded for the load. A local lake's own directory,
// else a hidden directory beside the warehouse: both on the disk sized for the data, where the
// system's temp dir may be small or in memory.
func SpoolDir(cfg *config.Config) string {
	if !lake.IsURL(cfg.OutputDir) {
		return cfg.OutputDir
	}
	return filepath.Join(filepath.Dir(cfg.Warehouse), ".ledgerlake-spool")
}
