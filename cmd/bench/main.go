// Command bench measures how close a full sync comes to the bound the API sets (make bench).
//
// For each scale it starts the sandbox with per-request latency and a request-rate limit, runs a full
// sync of the demo pipeline in a child process (so peak RSS is the pipeline's alone), and computes the
// lower bound from the run's own request log: the longest chain of requests that had to wait for one
// another × latency, versus all requests ÷ the rate limit. It then converts what each stream took
// offline, in several fresh processes, each twice — through ledgerlake (JSON → Arrow → Parquet, then
// into DuckDB) and through DuckDB's own read_json → Parquet as the reference — and reports the run
// with the median ratio; finally it runs an incremental sync after ~1% new data.
// Results print as a table and are written as JSON for comparison between commits.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// Result is one scale's figures, as written to the JSON file.
type Result struct {
	Scale float64 `json:"scale"`
	Sync  struct {
		WallSeconds    float64 `json:"wall_seconds"`    // whole run: extract, load, models, tests
		ExtractSeconds float64 `json:"extract_seconds"` // API → Parquet
		Requests       int64   `json:"requests"`        // every attempt, logins and token fetches included
		Rows           int64   `json:"rows"`
		Bytes          int64   `json:"bytes"` // response bytes
		PeakRSSMB      float64 `json:"peak_rss_mb"`
		IcebergSeconds float64 `json:"iceberg_seconds"` // of the wall: registering the Iceberg tables
	} `json:"sync"`
	// SyncS3 is the same full sync with the lake in a bucket of a loopback S3 server (gofakes3, in this
	// process) instead of a local directory.
	SyncS3 struct {
		WallSeconds    float64 `json:"wall_seconds"`
		ExtractSeconds float64 `json:"extract_seconds"`
		IcebergSeconds float64 `json:"iceberg_seconds"`
		StoreRequests  int64   `json:"store_requests"`
		PeakRSSMB      float64 `json:"peak_rss_mb"`
		Ratio          float64 `json:"ratio"` // wall ÷ its own bound (the API's, as for the local sync)
	} `json:"sync_s3"`
	Bound struct {
		ChainRequests int     `json:"chain_requests"` // longest chain of dependent requests, auth included
		ChainSeconds  float64 `json:"chain_seconds"`
		RateSeconds   float64 `json:"rate_seconds"` // requests ÷ rate limit
		Seconds       float64 `json:"seconds"`      // the larger
		Ratio         float64 `json:"ratio"`        // sync wall ÷ bound (target ≤ 1.3)
	} `json:"bound"`
	Conversion Conversion `json:"conversion"` // the conversion child with the median ratio to DuckDB
	// ConversionRatios are every conversion child's ratio to DuckDB, in run order.
	ConversionRatios []float64 `json:"conversion_ratios"`
	Increment        struct {
		Requests int64   `json:"requests"`
		Share    float64 `json:"share"` // of the full sync's requests (target ≤ 0.05)
		Seconds  float64 `json:"seconds"`
	} `json:"incremental"`
}

// Conversion compares ledgerlake's conversion of the captured JSON bodies with DuckDB's.
type Conversion struct {
	Streams         int     `json:"streams"`
	JSONMB          float64 `json:"json_mb"`
	Rows            int64   `json:"rows"`
	ParquetSeconds  float64 `json:"parquet_seconds"`   // ledgerlake JSON → Arrow → Parquet
	LoadSeconds     float64 `json:"load_seconds"`      // ledgerlake Parquet → DuckDB (+ models)
	DuckDBSeconds   float64 `json:"duckdb_seconds"`    // reference: DuckDB read_json → Parquet
	RowsPerSecond   float64 `json:"rows_per_second"`   // ledgerlake, JSON → Parquet
	MBPerSecond     float64 `json:"mb_per_second"`     // ledgerlake, JSON → Parquet
	DuckDBMBPerSec  float64 `json:"duckdb_mb_per_sec"` // reference
	RatioToDuckDB   float64 `json:"ratio_to_duckdb"`   // ledgerlake MB/s ÷ DuckDB MB/s (target ≥ 1.0)
	PeakRSSMB       float64 `json:"peak_rss_mb"`
	DuckDBFallbacks int     `json:"duckdb_full_sample_streams,omitempty"` // streams DuckDB needed sample_size=-1 for
}

// Report is the JSON file.
type Report struct {
	Commit    string    `json:"commit,omitempty"`
	Date      time.Time `json:"date"`
	CPUs      int       `json:"cpus"`
	Latency   string    `json:"latency"`
	Rate      float64   `json:"rate_per_second"`
	PerHost   int       `json:"per_host_concurrency"`
	Results   []*Result `json:"results"`
	RSSGrowth float64   `json:"rss_growth"` // peak RSS at the largest scale ÷ at the smallest (target ≤ 1.5)
	// Hostile are syncs against a server sending one answer far larger than any page: memory must be
	// bounded by design, not by the answer (target: peak RSS < 512 MB).
	Hostile []Hostile `json:"hostile,omitempty"`
	// Shaped is a full sync shaped like the real APIs rather than the sandbox's convenience.
	Shaped *Shaped `json:"shaped,omitempty"`
	// ShapedQuiet is the same against APIs whose 429s above the limit carry no Retry-After: the client
	// finds the limit without a pause of the host, which shows what its fan-out costs apart from one.
	ShapedQuiet *Shaped `json:"shaped_quiet_limit,omitempty"`
}

// Shaped is a full sync against a sandbox shaped like the real APIs: a request per invoice header and
// per invoice (about 35 invoices a monthly window at scale 1), small lists, 20 ms a request, and each
// API answering 429 above its allowed requests in flight — which the client is not told.
type Shaped struct {
	Allowed        int              `json:"allowed_in_flight"` // per API
	QuietLimit     bool             `json:"quiet_limit"`       // 429s above it carry no Retry-After
	WallSeconds    float64          `json:"wall_seconds"`
	ExtractSeconds float64          `json:"extract_seconds"`
	Requests       map[string]int64 `json:"requests"`  // per API
	Throttled      map[string]int64 `json:"throttled"` // 429s per API
	// BoundSeconds is the busier API's requests × latency ÷ its allowed in flight (the two APIs are two
	// hosts, served at once); Ratio is the extraction's wall time ÷ it (target ≤ 1.2).
	BoundSeconds float64 `json:"bound_seconds"`
	Ratio        float64 `json:"ratio"`
	// PausedSeconds is how long each API's Retry-After answers closed its host (see lake.HostReport).
	// PausedBoundSeconds counts that time in the bound, as time no client may send in: the busier API's
	// requests × latency ÷ its allowed in flight, plus its own pauses; PausedRatio is the extraction's
	// wall time ÷ it. Ratio stays the figure; this one says what the client did with the time
	// the servers allowed.
	PausedSeconds      map[string]float64 `json:"paused_seconds"`
	PausedBoundSeconds float64            `json:"paused_bound_seconds"`
	PausedRatio        float64            `json:"paused_ratio"`
	// ServiceMS is each API's mean time an admitted request (not refused by the in-flight limit) spent
	// in its sandbox, latency included: above the latency when the sandboxes share the machine's CPUs
	// with the client. ServedBoundSeconds is the busier API's summed time of admitted requests ÷ its
	// allowed in flight, the least any client could have taken for them at those service times;
	// ServedRatio is the extraction's wall time ÷ it.
	ServiceMS          map[string]float64 `json:"service_ms"`
	ServedBoundSeconds float64            `json:"served_bound_seconds"`
	ServedRatio        float64            `json:"served_ratio"`
	Hosts              []lake.HostReport  `json:"hosts"` // the client's limit per host
	PeakRSSMB          float64            `json:"peak_rss_mb"`
	Resumed            *Resumed           `json:"resumed"`
}

// Resumed is the shaped scenario synced whole again (--full-refresh) into the same lake: the client
// starts each host at the limit the first sync found, as a nightly run does, so it neither probes
// nor meets the probe's Retry-After pause.
type Resumed struct {
	ExtractSeconds float64           `json:"extract_seconds"`
	Requests       map[string]int64  `json:"requests"`  // per API
	Throttled      map[string]int64  `json:"throttled"` // 429s per API
	BoundSeconds   float64           `json:"bound_seconds"`
	Ratio          float64           `json:"ratio"`
	Hosts          []lake.HostReport `json:"hosts"`
}

// measureShaped runs the sync shaped like the APIs (see Shaped), and with a Retry-After on the 429s
// (not quiet) the same again resumed at the limits found.
func measureShaped(dir string, latency time.Duration, allowed int, quiet, profile bool) *Shaped {
	fmt.Fprintf(os.Stderr, "shaped like the APIs: %d in flight allowed per API (quiet limit %v), %s a request…\n", allowed, quiet, latency)
	check(os.RemoveAll(dir))
	check(os.MkdirAll(dir, 0o755))
	// Two hosts, as the real APIs are: one sandbox serves Signicat, another (the same data) GSAPI.
	opts := sandbox.Options{Seed: 1, Scale: 1, Until: until, Latency: latency, Concurrency: allowed, QuietLimit: quiet}
	sig, err := sandbox.Start("127.0.0.1:0", opts)
	check(err)
	gs, err := sandbox.Start("127.0.0.1:0", opts)
	check(err)
	// The client's defaults: nothing says what the hosts allow.
	y := strings.ReplaceAll(string(pipelines.Demo), "${LEDGERLAKE_SANDBOX_URL}"+sandbox.GSAPIPrefix, gs.URL+sandbox.GSAPIPrefix)
	y = strings.ReplaceAll(y, "${LEDGERLAKE_SANDBOX_URL}", sig.URL)
	y = strings.Replace(y, "output_dir: data/demo/lake", "output_dir: "+filepath.Join(dir, "lake"), 1)
	y = strings.Replace(y, "warehouse: data/demo/warehouse.duckdb", "warehouse: "+filepath.Join(dir, "warehouse.duckdb"), 1)
	path := filepath.Join(dir, "pipeline.yaml")
	check(os.WriteFile(path, []byte(y), 0o644))
	var r syncResult
	stop := profileSandboxes(dir, profile)
	rss := runChild(dir, &r, profile, "sync", "--config", path, "--log", filepath.Join(dir, "requests.jsonl"))
	stop()
	sh := &Shaped{Allowed: allowed, QuietLimit: quiet, WallSeconds: r.Wall, ExtractSeconds: r.Extract, Requests: r.APIRequests, Throttled: r.APIThrottled, PeakRSSMB: rss,
		Hosts: withoutSamples(r.Hosts)}
	sh.BoundSeconds = shapedBound(r.APIRequests, latency, allowed)
	sh.Ratio = sh.ExtractSeconds / sh.BoundSeconds
	sh.PausedSeconds = pausedPerAPI(r.Hosts, map[string]string{"signicat": sig.URL, "gsapi": gs.URL})
	sh.PausedBoundSeconds = pausedBound(r.APIRequests, sh.PausedSeconds, latency, allowed)
	sh.PausedRatio = sh.ExtractSeconds / sh.PausedBoundSeconds
	sh.ServiceMS = map[string]float64{}
	for api, sb := range map[string]*sandbox.Server{"signicat": sig, "gsapi": gs} {
		busy := time.Duration(sb.Stats.Busy.Load())
		admitted := sb.Stats.Requests.Load() - sb.Stats.RateLimited.Load()
		sh.ServiceMS[api] = float64(busy.Microseconds()) / 1000 / float64(max(1, admitted))
		sh.ServedBoundSeconds = max(sh.ServedBoundSeconds, busy.Seconds()/float64(allowed))
	}
	sh.ServedRatio = sh.ExtractSeconds / sh.ServedBoundSeconds
	if !quiet {
		sh.Resumed = measureResumed(dir, path, latency, allowed)
	}
	sig.Close()
	gs.Close()
	return sh
}

// measureResumed syncs the shaped scenario whole again into its lake (see Resumed).
func measureResumed(dir, path string, latency time.Duration, allowed int) *Resumed {
	fmt.Fprintln(os.Stderr, "shaped like the APIs: everything again, resumed at the limits found…")
	var r syncResult
	runChild(dir, &r, false, "sync", "--config", path, "--full-refresh", "--log", filepath.Join(dir, "requests-resumed.jsonl"))
	res := &Resumed{ExtractSeconds: r.Extract, Requests: r.APIRequests, Throttled: r.APIThrottled, Hosts: withoutSamples(r.Hosts)}
	res.BoundSeconds = shapedBound(r.APIRequests, latency, allowed)
	res.Ratio = res.ExtractSeconds / res.BoundSeconds
	return res
}

// shapedBound is the busier API's requests × latency ÷ its allowed in flight.
func shapedBound(requests map[string]int64, latency time.Duration, allowed int) float64 {
	return float64(max(requests["signicat"], requests["gsapi"])) * latency.Seconds() / float64(allowed)
}

// pausedPerAPI is how long each API's host (named by its base URL) was closed by Retry-After answers.
func pausedPerAPI(hosts []lake.HostReport, urls map[string]string) map[string]float64 {
	out := map[string]float64{}
	for api, raw := range urls {
		u, err := url.Parse(raw)
		check(err)
		for _, h := range hosts {
			if h.Host == u.Host {
				out[api] = h.PausedSeconds
			}
		}
	}
	return out
}

// pausedBound is the longest of the APIs' requests × latency ÷ allowed in flight plus the time its host
// was closed by Retry-After answers.
func pausedBound(requests map[string]int64, paused map[string]float64, latency time.Duration, allowed int) float64 {
	bound := 0.0
	for api, n := range requests {
		bound = max(bound, float64(n)*latency.Seconds()/float64(allowed)+paused[api])
	}
	return bound
}

// withoutSamples is hosts without their limit's history, which the bench does not report.
func withoutSamples(hosts []lake.HostReport) []lake.HostReport {
	out := make([]lake.HostReport, len(hosts))
	for i, h := range hosts {
		h.Samples = nil
		out[i] = h
	}
	return out
}

// Hostile is one sync against a sandbox in a huge-* hostile mode.
type Hostile struct {
	Mode        string  `json:"mode"`
	AnswerMB    float64 `json:"answer_mb"`
	Rows        int64   `json:"rows"`
	WallSeconds float64 `json:"wall_seconds"`
	PeakRSSMB   float64 `json:"peak_rss_mb"`
}

// hostileSyncs are the huge answers the bench sends: a GSAPI list and a Signicat {data, next} page
// within max_page_bytes (read from disk, all of it loaded) and a PDF over max_pdf_bytes (refused as one
// invoice's reject).
var hostileSyncs = []struct {
	mode     string
	mb       int64
	pipeline string
}{
	{"huge-list", 300, `
sources:
  gsapi:
    base_url: %[1]s/api/interface/gsapi
    username: ${GSAPI_USERNAME}
    password: ${GSAPI_PASSWORD}
    streams: [organizations]
`},
	{"huge-page", 300, `
sources:
  signicat:
    base_url: %[1]s/account-management
    token_url: %[1]s/auth/open/connect/token
    client_id: ${SIGNICAT_CLIENT_ID}
    client_secret: ${SIGNICAT_CLIENT_SECRET}
    streams: [contacts]
`},
	{"huge-pdf", 500, `
sources:
  signicat:
    base_url: %[1]s/account-management
    token_url: %[1]s/auth/open/connect/token
    client_id: ${SIGNICAT_CLIENT_ID}
    client_secret: ${SIGNICAT_CLIENT_SECRET}
    organization_id: o-p-0TgcUq7CylltM7OkwB4t
    since: 2025-11-01
    pdfs: true
    streams: [invoices, invoice_pdfs]
`},
}

// measureHostile syncs against each huge-* mode in a child and reports its peak RSS.
func measureHostile(dir string) []Hostile {
	var out []Hostile
	for _, h := range hostileSyncs {
		fmt.Fprintf(os.Stderr, "hostile: %s of %d MB…\n", h.mode, h.mb)
		sub := filepath.Join(dir, h.mode)
		check(os.RemoveAll(sub))
		check(os.MkdirAll(sub, 0o755))
		srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: 0.1, Until: until, Hostile: h.mode, HostileBytes: h.mb << 20})
		check(err)
		y := fmt.Sprintf("output_dir: %s\nwarehouse: %s\niceberg: {enabled: false}\n", filepath.Join(sub, "lake"), filepath.Join(sub, "warehouse.duckdb")) +
			fmt.Sprintf(h.pipeline, srv.URL)
		path := filepath.Join(sub, "pipeline.yaml")
		check(os.WriteFile(path, []byte(y), 0o644))
		var r syncResult
		rss := runChild(sub, &r, false, "sync", "--config", path)
		srv.Close()
		out = append(out, Hostile{Mode: h.mode, AnswerMB: float64(h.mb), Rows: r.Rows, WallSeconds: r.Wall, PeakRSSMB: rss})
	}
	return out
}

// until ends the sandbox history of the full sync; the incremental sync adds ~1% of it.
var until = sandbox.DefaultUntil

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		os.Exit(child(os.Args[2:]))
	}
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	scales := fs.String("scales", "1,10", "sandbox scales to measure, comma-separated")
	latency := fs.Duration("latency", 20*time.Millisecond, "sandbox latency per request")
	rate := fs.Float64("rate", 1000, "sandbox request-rate limit per second (the client is configured to match)")
	perHost := fs.Int("per-host", 32, "client requests in flight per host")
	out := fs.String("out", "bench.json", "write the results here as JSON")
	keep := fs.String("keep", "", "keep lakes, request logs and profiles under this directory (default: a temp dir, removed)")
	profile := fs.Bool("pprof", false, "write CPU and heap profiles of the sync and conversion children, and a CPU profile of the sandbox during the sync")
	conversions := fs.Int("conversions", 3, "conversion children per scale (the median ratio to DuckDB is reported): the machine's speed drifts between runs")
	hostile := fs.Bool("hostile", true, "also sync against a 300 MB list, a 300 MB page and a 500 MB PDF (peak RSS must stay under 512 MB)")
	shaped := fs.Int("shaped", 16, "also sync against APIs shaped like the real ones, each allowing this many requests in flight (0: skip)")
	_ = fs.Parse(os.Args[1:])

	work := *keep
	if work == "" {
		d, err := os.MkdirTemp("", "ledgerlake-bench-")
		check(err)
		defer os.RemoveAll(d)
		work = d
	}
	rep := &Report{Date: time.Now().UTC(), CPUs: runtime.NumCPU(), Latency: latency.String(), Rate: *rate, PerHost: *perHost}
	if b, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		rep.Commit = strings.TrimSpace(string(b))
	}
	for _, s := range strings.Split(*scales, ",") {
		if strings.TrimSpace(s) == "" {
			continue // --scales "": the hostile syncs alone
		}
		scale, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		check(err)
		fmt.Fprintf(os.Stderr, "scale %g: full sync…\n", scale)
		r := measure(filepath.Join(work, "scale-"+s), scale, *latency, *rate, *perHost, max(1, *conversions), *profile)
		rep.Results = append(rep.Results, r)
	}
	if *shaped > 0 {
		rep.Shaped = measureShaped(filepath.Join(work, "shaped"), *latency, *shaped, false, *profile)
		rep.ShapedQuiet = measureShaped(filepath.Join(work, "shaped-quiet"), *latency, *shaped, true, false)
	}
	if *hostile {
		rep.Hostile = measureHostile(filepath.Join(work, "hostile"))
	}
	if n := len(rep.Results); n > 1 && rep.Results[0].Sync.PeakRSSMB > 0 {
		rep.RSSGrowth = rep.Results[n-1].Sync.PeakRSSMB / rep.Results[0].Sync.PeakRSSMB
	}
	print(os.Stdout, rep)
	b, err := json.MarshalIndent(rep, "", "  ")
	check(err)
	check(os.WriteFile(*out, append(b, '\n'), 0o644))
	fmt.Printf("\nresults: %s\n", *out)
}

func measure(dir string, scale float64, latency time.Duration, rate float64, perHost, conversions int, profile bool) *Result {
	// A lake left by an earlier (perhaps killed) bench would be resumed or be incremental: start empty.
	check(os.RemoveAll(dir))
	check(os.MkdirAll(dir, 0o755))
	r := &Result{Scale: scale}
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: scale, Until: until, Latency: latency, RatePerSec: rate})
	check(err)
	cfg := writeConfig(dir, srv.URL, rate, perHost)
	var sync syncResult
	stop := profileSandboxes(dir, profile)
	rss := runChild(dir, &sync, profile, "sync", "--config", cfg, "--log", filepath.Join(dir, "requests.jsonl"), "--capture", filepath.Join(dir, "capture"))
	srv.Close()
	stop()
	r.Sync.WallSeconds, r.Sync.ExtractSeconds = sync.Wall, sync.Extract
	r.Sync.Requests, r.Sync.Rows, r.Sync.Bytes, r.Sync.PeakRSSMB = sync.Requests, sync.Rows, sync.Bytes, rss
	r.Bound.ChainRequests = sync.MaxDepth + 1 // the token fetch or login before the first request
	r.Bound.ChainSeconds = float64(r.Bound.ChainRequests) * latency.Seconds()
	r.Bound.RateSeconds = float64(sync.Requests) / rate
	r.Bound.Seconds = max(r.Bound.ChainSeconds, r.Bound.RateSeconds)
	r.Bound.Ratio = r.Sync.WallSeconds / r.Bound.Seconds
	r.Sync.IcebergSeconds = sync.Iceberg

	fmt.Fprintf(os.Stderr, "scale %g: full sync with the lake on a loopback S3 server…\n", scale)
	store, err := s3test.Start("bench")
	check(err)
	srvS3, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: scale, Until: until, Latency: latency, RatePerSec: rate})
	check(err)
	s3dir := filepath.Join(dir, "s3")
	check(os.MkdirAll(s3dir, 0o755))
	var onS3 syncResult
	r.SyncS3.PeakRSSMB = runChild(s3dir, &onS3, profile, "sync", "--config", writeConfigAt(s3dir, store.URL("bench", "lake"), srvS3.URL, rate, perHost))
	srvS3.Close()
	r.SyncS3.StoreRequests = store.Requests.Load()
	store.Close()
	r.SyncS3.WallSeconds, r.SyncS3.ExtractSeconds, r.SyncS3.IcebergSeconds = onS3.Wall, onS3.Extract, onS3.Iceberg
	r.SyncS3.Ratio = onS3.Wall / max(float64(onS3.MaxDepth+1)*latency.Seconds(), float64(onS3.Requests)/rate)

	// Each child converts with ledgerlake and then with DuckDB; several children, each a fresh process,
	// and the median ratio, because the machine's speed drifts by 10-20% over minutes.
	fmt.Fprintf(os.Stderr, "scale %g: conversion of the captured bodies (%d runs)…\n", scale, conversions)
	var convs []Conversion
	for i := range conversions {
		var conv Conversion
		conv.PeakRSSMB = runChild(dir, &conv, profile && i == 0, "convert", "--config", cfg, "--capture", filepath.Join(dir, "capture"), "--out", filepath.Join(dir, "convert"))
		convs = append(convs, conv)
		r.ConversionRatios = append(r.ConversionRatios, conv.RatioToDuckDB)
	}
	sort.Slice(convs, func(i, j int) bool { return convs[i].RatioToDuckDB < convs[j].RatioToDuckDB })
	r.Conversion = convs[len(convs)/2]

	fmt.Fprintf(os.Stderr, "scale %g: incremental sync after ~1%% new data…\n", scale)
	later := until.Add(until.Sub(sandbox.SignicatHistoryStart) / 100)
	srv2, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Seed: 1, Scale: scale, Until: later, Latency: latency, RatePerSec: rate})
	check(err)
	cfg = writeConfig(dir, srv2.URL, rate, perHost)
	var inc syncResult
	runChild(dir, &inc, false, "sync", "--config", cfg)
	srv2.Close()
	r.Increment.Requests, r.Increment.Seconds = inc.Requests, inc.Wall
	r.Increment.Share = float64(inc.Requests) / float64(sync.Requests)
	return r
}

// writeConfig is the demo pipeline with the benchmark's client limits, writing under dir.
func writeConfig(dir, url string, rate float64, perHost int) string {
	return writeConfigAt(dir, filepath.Join(dir, "lake"), url, rate, perHost)
}

// writeConfigAt is writeConfig with the lake at outputDir (a directory or a bucket's URL).
func writeConfigAt(dir, outputDir, url string, rate float64, perHost int) string {
	y := string(pipelines.Demo)
	y = strings.ReplaceAll(y, "${LEDGERLAKE_SANDBOX_URL}", url)
	y = strings.Replace(y, "output_dir: data/demo/lake", "output_dir: "+outputDir, 1)
	y = strings.Replace(y, "warehouse: data/demo/warehouse.duckdb", fmt.Sprintf("warehouse: %s\nper_host_rate: %g\nper_host_concurrency: %d",
		filepath.Join(dir, "warehouse.duckdb"), rate, perHost), 1)
	path := filepath.Join(dir, "pipeline.yaml")
	check(os.WriteFile(path, []byte(y), 0o644))
	return path
}

// profileSandboxes starts a CPU profile of this process, which serves the sandboxes, into
// dir/sandbox.cpu.pprof when on, and returns what stops it. The sandboxes share the machine with the
// pipeline: their CPU is time the bound does not count.
func profileSandboxes(dir string, on bool) (stop func()) {
	if !on {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, "sandbox.cpu.pprof"))
	check(err)
	check(pprof.StartCPUProfile(f))
	return func() {
		pprof.StopCPUProfile()
		check(f.Close())
	}
}

// runChild runs this binary's child mode, decodes its JSON result into v and returns its peak RSS (MB).
func runChild(dir string, v any, profile bool, args ...string) float64 {
	if profile {
		args = append(args, "--pprof", filepath.Join(dir, args[0]))
	}
	cmd := exec.Command(os.Args[0], append([]string{"child"}, args...)...)
	cmd.Env = append(append(os.Environ(), s3test.Env()...),
		"SIGNICAT_CLIENT_ID="+sandbox.ClientID, "SIGNICAT_CLIENT_SECRET="+sandbox.ClientSecret,
		"GSAPI_USERNAME="+sandbox.GSAPIUser, "GSAPI_PASSWORD="+sandbox.GSAPIPassword)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench child %v: %v\n", args[0], err)
		os.Exit(1)
	}
	check(json.Unmarshal(out, v))
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

func print(w io.Writer, rep *Report) {
	fmt.Fprintf(w, "\nledgerlake bench %s · %d CPUs · latency %s · rate limit %g/s · %d per host\n\n", rep.Commit, rep.CPUs, rep.Latency, rep.Rate, rep.PerHost)
	fmt.Fprintf(w, "%-28s", "")
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%18s", fmt.Sprintf("scale %g", r.Scale))
	}
	fmt.Fprintln(w)
	row := func(name string, f func(*Result) string) {
		fmt.Fprintf(w, "%-28s", name)
		for _, r := range rep.Results {
			fmt.Fprintf(w, "%18s", f(r))
		}
		fmt.Fprintln(w)
	}
	row("rows", func(r *Result) string { return strconv.FormatInt(r.Sync.Rows, 10) })
	row("requests", func(r *Result) string { return strconv.FormatInt(r.Sync.Requests, 10) })
	row("response MB", func(r *Result) string { return fmt.Sprintf("%.1f", float64(r.Sync.Bytes)/1e6) })
	row("sync wall s", func(r *Result) string { return fmt.Sprintf("%.2f", r.Sync.WallSeconds) })
	row("  of which extract s", func(r *Result) string { return fmt.Sprintf("%.2f", r.Sync.ExtractSeconds) })
	row("bound: chain s (requests)", func(r *Result) string {
		return fmt.Sprintf("%.2f (%d)", r.Bound.ChainSeconds, r.Bound.ChainRequests)
	})
	row("bound: requests/rate s", func(r *Result) string { return fmt.Sprintf("%.2f", r.Bound.RateSeconds) })
	row("wall ÷ bound (≤ 1.3)", func(r *Result) string { return fmt.Sprintf("%.2f", r.Bound.Ratio) })
	row("  of which iceberg s", func(r *Result) string { return fmt.Sprintf("%.2f", r.Sync.IcebergSeconds) })
	row("peak RSS MB", func(r *Result) string { return fmt.Sprintf("%.0f", r.Sync.PeakRSSMB) })
	row("lake on S3: sync wall s", func(r *Result) string { return fmt.Sprintf("%.2f", r.SyncS3.WallSeconds) })
	row("  of which extract s", func(r *Result) string { return fmt.Sprintf("%.2f", r.SyncS3.ExtractSeconds) })
	row("  of which iceberg s", func(r *Result) string { return fmt.Sprintf("%.2f", r.SyncS3.IcebergSeconds) })
	row("  store requests", func(r *Result) string { return strconv.FormatInt(r.SyncS3.StoreRequests, 10) })
	row("  wall ÷ bound (≤ 1.3)", func(r *Result) string { return fmt.Sprintf("%.2f", r.SyncS3.Ratio) })
	row("  peak RSS MB", func(r *Result) string { return fmt.Sprintf("%.0f", r.SyncS3.PeakRSSMB) })
	row("conversion JSON MB", func(r *Result) string { return fmt.Sprintf("%.1f", r.Conversion.JSONMB) })
	row("  ledgerlake rows/s", func(r *Result) string { return fmt.Sprintf("%.0f", r.Conversion.RowsPerSecond) })
	row("  ledgerlake MB/s", func(r *Result) string { return fmt.Sprintf("%.1f", r.Conversion.MBPerSecond) })
	row("  DuckDB read_json MB/s", func(r *Result) string { return fmt.Sprintf("%.1f", r.Conversion.DuckDBMBPerSec) })
	row("  ratio to DuckDB (≥ 1.0)", func(r *Result) string {
		if len(r.ConversionRatios) < 2 {
			return fmt.Sprintf("%.2f", r.Conversion.RatioToDuckDB)
		}
		return fmt.Sprintf("%.2f (%.2f-%.2f)", r.Conversion.RatioToDuckDB, slices.Min(r.ConversionRatios), slices.Max(r.ConversionRatios))
	})
	row("  load into DuckDB s", func(r *Result) string { return fmt.Sprintf("%.2f", r.Conversion.LoadSeconds) })
	row("incremental requests", func(r *Result) string {
		return fmt.Sprintf("%d (%.1f%%)", r.Increment.Requests, 100*r.Increment.Share)
	})
	if rep.RSSGrowth > 0 {
		fmt.Fprintf(w, "\npeak RSS growth, largest ÷ smallest scale: %.2f (target ≤ 1.5)\n", rep.RSSGrowth)
	}
	for _, sh := range []*Shaped{rep.Shaped, rep.ShapedQuiet} {
		printShaped(w, sh, rep.Latency)
	}
	for _, h := range rep.Hostile {
		fmt.Fprintf(w, "hostile %s of %.0f MB: %d rows in %.1fs, peak RSS %.0f MB (target < 512)\n", h.Mode, h.AnswerMB, h.Rows, h.WallSeconds, h.PeakRSSMB)
	}
}

// printShaped prints a shaped scenario's figures (nothing when sh is nil: not measured).
func printShaped(w io.Writer, sh *Shaped, latency string) {
	if sh == nil {
		return
	}
	asks := "Retry-After: 1"
	if sh.QuietLimit {
		asks = "no Retry-After"
	}
	fmt.Fprintf(w, "\nshaped like the APIs (%d in flight allowed per API, 429 above with %s): extract %.2fs, bound %.2fs, ratio %.2f (target ≤ 1.2); requests %v, 429s %v\n",
		sh.Allowed, asks, sh.ExtractSeconds, sh.BoundSeconds, sh.Ratio, sh.Requests, sh.Throttled)
	if !sh.QuietLimit {
		fmt.Fprintf(w, "  with the time the servers' Retry-After closed each host counted in it (signicat %.2fs, gsapi %.2fs): bound %.2fs, ratio %.2f\n",
			sh.PausedSeconds["signicat"], sh.PausedSeconds["gsapi"], sh.PausedBoundSeconds, sh.PausedRatio)
	}
	fmt.Fprintf(w, "  time an admitted request spent in the sandboxes: signicat %.1f ms, gsapi %.1f ms (latency %s); at those times the bound is %.2fs, ratio %.2f\n",
		sh.ServiceMS["signicat"], sh.ServiceMS["gsapi"], latency, sh.ServedBoundSeconds, sh.ServedRatio)
	for _, h := range sh.Hosts {
		fmt.Fprintf(w, "  host %s: limit found %d (ceiling %d), mean in flight %.1f, peak %d, %d throttled\n", h.Host, h.Final, h.Ceiling, h.MeanInFlight, h.Peak, h.Throttled)
	}
	if rs := sh.Resumed; rs != nil {
		fmt.Fprintf(w, "  everything again, resumed at the limits found: extract %.2fs, bound %.2fs, ratio %.2f; requests %v, 429s %v\n",
			rs.ExtractSeconds, rs.BoundSeconds, rs.Ratio, rs.Requests, rs.Throttled)
		for _, h := range rs.Hosts {
			fmt.Fprintf(w, "    host %s: limit %d at the end, mean in flight %.1f, peak %d\n", h.Host, h.Final, h.MeanInFlight, h.Peak)
		}
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}
