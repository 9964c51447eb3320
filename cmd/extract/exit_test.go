package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/pipelines"
)

// TestMain lets a test run this binary as the extract command itself (asMain), so that signals reach
// a process of its own, as they reach the real command. Tests that call Main write Parquet as main does.
// It removes the demo copyOfDemo ran.
func TestMain(m *testing.M) {
	if os.Getenv("LEDGERLAKE_TEST_AS_MAIN") == "1" {
		main()
	}
	if err := parquet.RegisterZstd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Once for the process, not per test: t.Setenv would panic in the tests that run in parallel.
	if err := s3test.SetProcessEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if demoDir != "" {
		os.RemoveAll(demoDir)
	}
	os.Exit(code)
}

// asMain is the extract command, as a process, with args and env.
func asMain(t *testing.T, env []string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "LEDGERLAKE_TEST_AS_MAIN=1"), env...)
	return cmd
}

// sandboxPipeline writes the demo pipeline, pointed at a sandbox slow enough to interrupt, into dir.
func sandboxPipeline(t *testing.T, dir string, opts sandbox.Options) (cfg string, env []string) {
	t.Helper()
	cfg, env, _ = startSandbox(t, dir, opts)
	return cfg, env
}

// startSandbox is sandboxPipeline, also returning the sandbox.
func startSandbox(t *testing.T, dir string, opts sandbox.Options) (cfg string, env []string, srv *sandbox.Server) {
	t.Helper()
	srv, err := sandbox.Start("127.0.0.1:0", opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	y := strings.Replace(string(pipelines.Demo), "output_dir: data/demo/lake", "output_dir: "+filepath.Join(dir, "lake"), 1)
	y = strings.Replace(y, "warehouse: data/demo/warehouse.duckdb", "warehouse: "+filepath.Join(dir, "warehouse.duckdb"), 1)
	cfg = filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, []string{"LEDGERLAKE_SANDBOX_URL=" + srv.URL, "SIGNICAT_CLIENT_ID=" + sandbox.ClientID, "SIGNICAT_CLIENT_SECRET=" + sandbox.ClientSecret,
		"GSAPI_USERNAME=" + sandbox.GSAPIUser, "GSAPI_PASSWORD=" + sandbox.GSAPIPassword}, srv
}

// setEnv sets each NAME=value of env for the test.
func setEnv(t *testing.T, env []string) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
}

// Ctrl-C and SIGTERM stop a run as cron and Kubernetes expect: exit 130 and 143, and the one word
// "interrupted" in the summary's header, the streams cut short, and the report; the streams that
// completed are kept.
func TestInterruptedRunExits130Or143(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(signalName(c.sig), func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			cfg, env := sandboxPipeline(t, dir, sandbox.Options{Seed: 1, Scale: 0.2, Latency: 40 * time.Millisecond})
			cmd := asMain(t, env, "run", "--config", cfg)
			var stdout bytes.Buffer
			cmd.Stdout = &stdout
			stderr, err := cmd.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signal once the first stream is done: some completed, the long ones are cut short.
			var log strings.Builder
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
				if strings.Contains(sc.Text(), `msg="stream done"`) {
					break
				}
			}
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			for sc.Scan() {
				log.WriteString(sc.Text() + "\n")
			}
			err = cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != c.code {
				t.Fatalf("exit %v, want %d\n%s\n%s", err, c.code, stdout.String(), log.String())
			}
			out := stdout.String()
			if !strings.Contains(out, ": interrupted in ") || !strings.Contains(out, "interrupted before they finished (the next run fetches them): ") ||
				strings.Contains(out, "context canceled") || strings.Contains(out, "partial") || strings.Contains(out, " failed:") {
				t.Errorf("summary:\n%s", out)
			}
			var rep pipeline.Report
			reports, _ := filepath.Glob(filepath.Join(dir, "lake", lake.ManifestDir, "*"+lake.ReportSuffix))
			if len(reports) != 1 {
				t.Fatalf("%d reports", len(reports))
			}
			b, _ := os.ReadFile(reports[0])
			if err := json.Unmarshal(b, &rep); err != nil {
				t.Fatal(err)
			}
			ok, cut := 0, 0
			for _, s := range rep.Streams {
				switch s.Status {
				case "ok":
					ok++
				case "interrupted":
					cut++
				default:
					t.Errorf("stream %s: %s %s", s.Table, s.Status, s.Error)
				}
			}
			if rep.Status != "interrupted" || ok == 0 || cut == 0 {
				t.Errorf("report status %s, %d streams ok, %d interrupted", rep.Status, ok, cut)
			}
		})
	}
}

// A second run on a busy lake is refused with exit 75, distinct from a failed stream (1) and a bad
// config (2), and fetches nothing.
func TestRefusedStartExits75(t *testing.T) {
	// Not parallel: t.Setenv (the run reads the sandbox's credentials from the environment).
	dir := t.TempDir()
	cfg, env := sandboxPipeline(t, dir, sandbox.Options{Seed: 1, Scale: 0.05})
	setEnv(t, env)
	st, err := lake.OpenStore(t.Context(), filepath.Join(dir, "lake"), "")
	if err != nil {
		t.Fatal(err)
	}
	release, _, err := st.Lock(t.Context(), "another run")
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, "run", "--config", cfg)
	release()
	if code != exitRefused || !strings.Contains(stderr, "start refused: another ledgerlake run is using") || out != "" {
		t.Fatalf("busy lake: exit %d\n%s\n%s", code, out, stderr)
	}
	if ms, _ := filepath.Glob(filepath.Join(dir, "lake", lake.ManifestDir, "*")); len(ms) != 0 {
		t.Errorf("a refused run left %v", ms)
	}
	// The warehouse's directory cannot take a file (it is a file): refused before anything is fetched.
	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	y, _ := os.ReadFile(cfg)
	y = bytes.Replace(y, []byte("warehouse: "+filepath.Join(dir, "warehouse.duckdb")), []byte("warehouse: "+filepath.Join(blocked, "wh.duckdb")), 1)
	if err := os.WriteFile(cfg, y, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := cli(t, "run", "--config", cfg); code != exitRefused || !strings.Contains(stderr, "start refused: the warehouse's directory") {
		t.Errorf("warehouse directory a file: exit %d %s", code, stderr)
	}
}

// --version says what a bug report needs: the build, its commit, Go and the DuckDB linked in.
func TestVersion(t *testing.T) {
	t.Parallel()
	code, out, _ := cli(t, "--version")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasPrefix(lines[0], "extract ") || !strings.HasPrefix(lines[1], "commit  ") ||
		lines[2] != "go      "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH || !regexp.MustCompile(`^duckdb  v1\.\d+\.\d+ \(\w+\)$`).MatchString(lines[3]) {
		t.Errorf("--version: exit %d\n%s", code, out)
	}
}

// docs/config.md, linked from the README, is the reference extract config writes: regenerate it
// with `go run ./cmd/extract config --markdown > docs/config.md` after adding a key.
func TestConfigReferenceIsCurrent(t *testing.T) {
	t.Parallel()
	code, out, stderr := cli(t, "config", "--markdown")
	if code != 0 {
		t.Fatalf("config --markdown: %d %s", code, stderr)
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "config.md"))
	if err != nil || string(b) != out {
		t.Errorf("docs/config.md is not what extract config --markdown writes (%v): regenerate it", err)
	}
	readme, _ := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if !strings.Contains(string(readme), "](docs/config.md)") {
		t.Error("the README does not link docs/config.md")
	}
	code, _, stderr = cli(t, "config", "--help")
	if code != 0 || !strings.Contains(stderr, "sources.gsapi.datatables[].sortorder  (list of text, required)") {
		t.Errorf("config --help: %d\n%s", code, stderr)
	}
}

// An auditor holds no API credential: with the nightly pipeline (its ${SIGNICAT_…} and ${GSAPI_…}
// unset), every command that only reads works from its paths.
func TestReadersNeedNoCredentials(t *testing.T) {
	// Not parallel: t.Setenv and os.Unsetenv of the credentials.
	dir, _ := copyOfDemo(t)
	nightly, err := os.ReadFile(filepath.Join("..", "..", "pipelines", "nightly.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	y := strings.Replace(string(nightly), "output_dir: data/lake", "output_dir: "+filepath.Join(dir, "lake"), 1)
	y = strings.Replace(y, "warehouse: data/warehouse.duckdb", "warehouse: "+filepath.Join(dir, "warehouse.duckdb"), 1)
	cfg := filepath.Join(dir, "nightly.yaml")
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"SIGNICAT_CLIENT_ID", "SIGNICAT_CLIENT_SECRET", "SIGNICAT_ORGANIZATION_ID", "GSAPI_USERNAME", "GSAPI_PASSWORD"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for _, args := range [][]string{
		{"verify", "--config", cfg, "--no-record"},
		{"invoices", "--config", cfg, "--source", "signicat", "--format", "csv"},
		{"docs", "--html", filepath.Join(dir, "site2"), "--config", cfg},
		{"status", "--config", cfg},
		{"docs", "--config", cfg},
		{"fields", "--config", cfg},
		{"query", "--config", cfg, "SELECT count(*) FROM signicat_invoices"},
	} {
		if code, out, stderr := cli(t, args...); code != 0 || strings.Contains(stderr, "environment variable") {
			t.Errorf("%v: exit %d\n%s\n%s", args, code, out, stderr)
		}
	}
	// The command that calls the APIs still says what is missing.
	if code, _, stderr := cli(t, "run", "--config", cfg); code != exitUsage || !strings.Contains(stderr, "environment variable SIGNICAT_CLIENT_ID is not set") {
		t.Errorf("run without credentials: exit %d %s", code, stderr)
	}
}

// check tries a pipeline without fetching: one token from each source (two requests in all), the
// lake writable; wrong credentials exit 1 naming the source, a wrong file 2.
func TestCheckSignsInAndFetchesNothing(t *testing.T) {
	// Not parallel: t.Setenv and os.Unsetenv of the credentials.
	dir := t.TempDir()
	cfg, env, srv := startSandbox(t, dir, sandbox.Options{Seed: 1, Scale: 0.05})
	setEnv(t, env)
	code, out, stderr := cli(t, "check", "--config", cfg)
	if code != 0 || srv.Stats.Requests.Load() != 2 {
		t.Fatalf("check: exit %d, %d requests\n%s%s", code, srv.Stats.Requests.Load(), out, stderr)
	}
	for _, want := range []string{"valid, 36 streams; environment variables: LEDGERLAKE_SANDBOX_URL, SIGNICAT_CLIENT_ID, SIGNICAT_CLIENT_SECRET, GSAPI_USERNAME, GSAPI_PASSWORD set",
		"signicat  signed in: a token from " + srv.URL, "gsapi     signed in: a VompApiToken from " + srv.URL, "lake      " + filepath.Join(dir, "lake") + ": writable, no run in progress", "ok; nothing was fetched"} {
		if !strings.Contains(out, want) {
			t.Errorf("check lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, sandbox.ClientSecret) || strings.Contains(out, sandbox.GSAPIPassword) {
		t.Error("check printed a secret")
	}
	t.Setenv("GSAPI_PASSWORD", "wrong")
	if code, out, _ := cli(t, "check", "--config", cfg); code != exitFailed || !strings.Contains(out, "gsapi     FAILED: ") || !strings.Contains(out, "rejected") || !strings.Contains(out, "signicat  signed in") {
		t.Errorf("wrong password: exit %d\n%s", code, out)
	}
	os.Unsetenv("GSAPI_PASSWORD")
	if code, _, stderr := cli(t, "check", "--config", cfg); code != exitUsage || !strings.Contains(stderr, "GSAPI_PASSWORD is not set") {
		t.Errorf("unset password: exit %d %s", code, stderr)
	}
}
