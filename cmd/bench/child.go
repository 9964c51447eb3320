package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"iter"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/httpclient"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// syncResult is what a sync child reports.
type syncResult struct {
	Wall, Extract float64
	Requests      int64 // attempts observed, logins and token fetches included
	Rows, Bytes   int64
	MaxDepth      int
	Iceberg       float64 // seconds registering the run's files as Iceberg tables
	Hosts         []lake.HostReport
	// APIRequests and APIThrottled count the attempts (and 429s) per simulated API: both share the
	// sandbox's address but each has its own in-flight limit, as two real hosts would.
	APIRequests, APIThrottled map[string]int64
}

// child runs one measured step in its own process and prints its result as JSON on stdout.
func child(args []string) int {
	fs := flag.NewFlagSet("child", flag.ExitOnError)
	cfgPath := fs.String("config", "", "pipeline")
	logPath := fs.String("log", "", "request log (JSON lines)")
	capture := fs.String("capture", "", "directory for the JSON array bodies, one subdirectory per stream")
	out := fs.String("out", "", "conversion output directory")
	prof := fs.String("pprof", "", "profile path prefix")
	fullRefresh := fs.Bool("full-refresh", false, "sync everything again, as extract run --full-refresh")
	_ = fs.Parse(args[1:])
	if *prof != "" {
		f, err := os.Create(*prof + ".cpu.pprof")
		check(err)
		check(pprof.StartCPUProfile(f))
		defer func() {
			pprof.StopCPUProfile()
			h, err := os.Create(*prof + ".heap.pprof")
			check(err)
			check(pprof.WriteHeapProfile(h))
			h.Close()
		}()
	}
	pipeline.SetMemoryLimit() // as extract does
	check(parquet.RegisterZstd())
	cfg, err := config.Load(*cfgPath)
	check(err)
	var v any
	switch args[0] {
	case "sync":
		v = syncOnce(cfg, *logPath, *capture, *fullRefresh)
	case "convert":
		v = convert(cfg, *capture, *out)
	default:
		check(fmt.Errorf("unknown child step %q", args[0]))
	}
	check(json.NewEncoder(os.Stdout).Encode(v))
	return 0
}

// syncOnce runs the pipeline once, logging every request and keeping the records of every stream as JSON
// arrays (capturePages).
func syncOnce(cfg *config.Config, logPath, capture string, fullRefresh bool) syncResult {
	var (
		mu   sync.Mutex
		res  syncResult
		logw *bufio.Writer
	)
	if logPath != "" {
		f, err := os.Create(logPath)
		check(err)
		defer f.Close()
		logw = bufio.NewWriter(f)
		defer logw.Flush()
	}
	res.APIRequests, res.APIThrottled = map[string]int64{}, map[string]int64{}
	observe := func(o httpclient.Observation) {
		mu.Lock()
		defer mu.Unlock()
		res.Requests++
		res.MaxDepth = max(res.MaxDepth, o.Depth)
		api := "gsapi"
		if strings.Contains(o.URL, sandbox.SignicatPrefix) || strings.Contains(o.URL, sandbox.SignicatToken) {
			api = "signicat"
		}
		res.APIRequests[api]++
		if o.Status == http.StatusTooManyRequests {
			res.APIThrottled[api]++
		}
		if logw == nil {
			return
		}
		b, _ := json.Marshal(map[string]any{"stream": o.Stream, "method": o.Method, "status": o.Status, "depth": o.Depth,
			"start_us": o.Start.UnixMicro(), "end_us": o.End.UnixMicro(), "bytes": o.Bytes})
		logw.Write(append(b, '\n'))
	}
	client := pipeline.Client(cfg, httpclient.Options{Observe: observe})
	streams, err := pipeline.Streams(cfg, client, nil, nil)
	check(err)
	if capture != "" {
		for _, s := range streams {
			capturePages(s, filepath.Join(capture, s.TableName()))
		}
	}
	start := time.Now()
	r, err := pipeline.RunStreams(context.Background(), pipeline.Options{Config: cfg, Client: client, FullRefresh: fullRefresh}, streams)
	check(err)
	res.Wall = time.Since(start).Seconds()
	m := r.Manifest
	res.Extract = m.FinishedAt.Sub(m.StartedAt).Seconds()
	res.Hosts = m.Hosts
	if r.Iceberg != nil {
		res.Iceberg = r.Iceberg.Seconds
	}
	for _, s := range m.Streams {
		res.Rows += s.Rows
		res.Bytes += s.Bytes
		if s.Status != "ok" {
			check(fmt.Errorf("stream %s failed: %s", s.Table, s.Error))
		}
	}
	return res
}

// convert replays the captured bodies through ledgerlake's pipeline (no network) and through DuckDB's
// read_json → Parquet, and compares the two.
func convert(cfg *config.Config, capture, out string) Conversion {
	check(os.RemoveAll(out))
	real, err := pipeline.Streams(cfg, httpclient.New(httpclient.Options{}), nil, nil)
	check(err)
	var c Conversion
	var streams []*sources.Stream
	dirs := map[string][]string{}
	for _, s := range real {
		files, _ := filepath.Glob(filepath.Join(capture, s.TableName(), "*.json"))
		if len(files) == 0 {
			continue
		}
		sort.Strings(files)
		dirs[s.TableName()] = files
		for _, f := range files {
			st, err := os.Stat(f)
			check(err)
			c.JSONMB += float64(st.Size()) / 1e6
		}
		replay := &sources.Stream{Source: s.Source, Name: s.Name, Declared: s.Declared, Key: s.Key, MapPaths: s.MapPaths,
			Partition: s.Partition, Mode: s.Mode, FanOut: s.FanOut}
		replay.Pages = func(context.Context, sources.Resume) iter.Seq2[sources.Page, error] {
			return func(yield func(sources.Page, error) bool) {
				for _, f := range files {
					b, err := os.ReadFile(f)
					if err != nil {
						yield(sources.Page{}, err)
						return
					}
					if !yield(sources.Page{Body: spool.Bytes(b), Where: f}, nil) {
						return
					}
				}
			}
		}
		streams = append(streams, replay)
	}
	c.Streams = len(streams)
	lakeCfg := *cfg
	lakeCfg.OutputDir, lakeCfg.Warehouse = filepath.Join(out, "lake"), filepath.Join(out, "warehouse.duckdb")
	start := time.Now()
	res, err := pipeline.RunStreams(context.Background(), pipeline.Options{Config: &lakeCfg}, streams)
	check(err)
	total := time.Since(start).Seconds()
	c.ParquetSeconds = res.Manifest.FinishedAt.Sub(res.Manifest.StartedAt).Seconds()
	c.LoadSeconds = total - c.ParquetSeconds
	for _, s := range res.Manifest.Streams {
		c.Rows += s.Rows
	}
	c.RowsPerSecond = float64(c.Rows) / c.ParquetSeconds
	c.MBPerSecond = c.JSONMB / c.ParquetSeconds

	// The reference: DuckDB reads the same files with read_json and writes zstd Parquet.
	wh, err := duckdb.Open("")
	check(err)
	defer wh.Close()
	_, err = wh.DB.Exec("SET memory_limit = '2GB'; SET preserve_insertion_order = false")
	check(err)
	check(os.MkdirAll(filepath.Join(out, "duckdb"), 0o755))
	names := make([]string, 0, len(dirs))
	for n := range dirs {
		names = append(names, n)
	}
	sort.Strings(names)
	start = time.Now()
	for _, n := range names {
		if fallback := duckdbCopy(wh.DB, dirs[n], filepath.Join(out, "duckdb", n+".parquet")); fallback {
			c.DuckDBFallbacks++
		}
	}
	c.DuckDBSeconds = time.Since(start).Seconds()
	c.DuckDBMBPerSec = c.JSONMB / c.DuckDBSeconds
	c.RatioToDuckDB = c.MBPerSecond / c.DuckDBMBPerSec
	return c
}

// duckdbCopy converts files with DuckDB, retrying with full-file type detection when the sampled
// types do not fit every row (it reports whether that was needed).
func duckdbCopy(db *sql.DB, files []string, out string) bool {
	q := make([]string, len(files))
	for i, f := range files {
		q[i] = "'" + f + "'"
	}
	list := "[" + strings.Join(q, ", ") + "]"
	copyWith := func(opts string) error {
		_, err := db.Exec(fmt.Sprintf("COPY (SELECT * FROM read_json(%s, format = 'array', union_by_name = true%s)) TO '%s' (FORMAT parquet, COMPRESSION zstd)", list, opts, out))
		return err
	}
	if err := copyWith(""); err == nil {
		return false
	}
	check(copyWith(", sample_size = -1"))
	return true
}

// capturePages makes s keep, under dir, what each of its pages turns into rows, as JSON arrays: the
// response itself where a page is a whole JSON array the pipeline takes as it is, else the records it
// takes (a detail call's lines, a PDF's row, a window's records less those seen in the previous window),
// gathered into files of about a megabyte. Replaying the files converts the stream's rows, no more.
func capturePages(s *sources.Stream, dir string) {
	check(os.MkdirAll(dir, 0o755))
	c := &pageCapture{dir: dir}
	pages := s.Pages
	s.Pages = func(ctx context.Context, resume sources.Resume) iter.Seq2[sources.Page, error] {
		return func(yield func(sources.Page, error) bool) {
			defer c.flush()
			for p, err := range pages(ctx, resume) {
				if err != nil {
					yield(p, err)
					return
				}
				whole := p.Records == nil && p.Keep == nil
				switch {
				case whole && p.Body != nil:
					c.raw(p.Body.Reader())
				default:
					for _, r := range p.Records {
						c.record(r)
					}
					// The body's records, as the pipeline decodes them: those Keep keeps (all without one).
					keep := p.Keep
					p.Keep = func(r sources.Record, raw []byte) bool {
						if keep != nil && !keep(r, raw) {
							return false
						}
						c.record(r)
						return true
					}
				}
				// The pipeline reads the page (Each, and with it Keep) before the loop asks for the next.
				if !yield(p, nil) {
					return
				}
			}
		}
	}
}

// pageCapture writes one stream's captured arrays, numbered in the order the stream yields them.
type pageCapture struct {
	dir  string
	n    int
	f    *os.File
	w    *bufio.Writer
	size int
}

func (c *pageCapture) create() *os.File {
	f, err := os.Create(filepath.Join(c.dir, fmt.Sprintf("%06d.json", c.n)))
	check(err)
	c.n++
	return f
}

func (c *pageCapture) raw(r io.Reader) {
	c.flush()
	f := c.create()
	_, err := io.Copy(f, r)
	check(err)
	check(f.Close())
}

func (c *pageCapture) record(r sources.Record) {
	b, err := json.Marshal(r) // numbers are json.Number: written exactly as the API sent them
	check(err)
	if c.f == nil {
		c.f = c.create()
		c.w = bufio.NewWriter(c.f)
		c.w.WriteByte('[')
	} else {
		c.w.WriteByte(',')
	}
	c.w.Write(b)
	if c.size += len(b); c.size >= 1<<20 {
		c.flush()
	}
}

// flush ends the array of records being gathered.
func (c *pageCapture) flush() {
	if c.f == nil {
		return
	}
	c.w.WriteByte(']')
	check(c.w.Flush())
	check(c.f.Close())
	c.f, c.w, c.size = nil, nil, 0
}
