package pipeline

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
	"github.com/ledgerlake/ledgerlake/internal/sinks/duckdb"
)

// readerQuery is what the polling reader asks: the runs the warehouse lists, a snapshot table's
// history rows (each run adds the same number), rows of runs the run list lacks (a half-loaded run),
// and runs still loading.
const readerQuery = `SELECT (SELECT count(*) FROM _ledgerlake_runs),
	(SELECT count(*) FROM signicat_accounts_history),
	(SELECT count(*) FROM signicat_accounts_history WHERE _run_id NOT IN (SELECT run_id FROM _ledgerlake_runs)),
	(SELECT count(*) FROM _ledgerlake_loading),
	(SELECT count(*) FROM signicat_accounts)`

// pollWarehouse is the reader process (TestMain runs it when LEDGERLAKE_CHILD_READER names a
// warehouse): it opens the warehouse read-only as `extract query` does, asks readerQuery, closes it,
// and prints one line per answer ("ok <ms> <runs> <history> <orphans> <loading> <current>" or
// "err <ms> <message>") until its stdin closes.
func pollWarehouse(path string) {
	stop := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(stop) }()
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for {
		select {
		case <-stop:
			return
		default:
		}
		began := time.Now()
		var runs, hist, orphans, loading, current int64
		wh, err := duckdb.OpenReadOnly(path)
		if err == nil {
			err = wh.DB.QueryRow(readerQuery).Scan(&runs, &hist, &orphans, &loading, &current)
			wh.Close()
		}
		ms := time.Since(began).Milliseconds()
		if err != nil {
			fmt.Fprintf(out, "err %d %s\n", ms, strings.ReplaceAll(err.Error(), "\n", " "))
		} else {
			fmt.Fprintf(out, "ok %d %d %d %d %d %d\n", ms, runs, hist, orphans, loading, current)
		}
		out.Flush()
		time.Sleep(5 * time.Millisecond)
	}
}

// An analyst querying while the nightly run loads is never refused and never sees a half-loaded run:
// a reader process polls the warehouse through three loads and every answer is a complete state,
// first the old one, then the new.
func TestReadersAreNeverBlockedByALoad(t *testing.T) {
	t.Parallel()
	srv, cfg := setup(t, sandbox.Options{Scale: 0.2}, nil)
	d := srv.Data()
	perRun := int64(2 + d.SignicatAccounts + d.SignicatDeleted)
	run(t, cfg) // a warehouse to read

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEDGERLAKE_CHILD_READER="+cfg.Warehouse)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1<<16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	waitFor := func(n int) {
		deadline := time.After(30 * time.Second)
		for len(lines) < n {
			select {
			case <-deadline:
				t.Fatalf("the reader answered %d queries in 30 s", len(lines))
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	waitFor(3)
	var loads []time.Duration
	for range 3 {
		began := time.Now()
		run(t, cfg)
		loads = append(loads, time.Since(began))
	}
	waitFor(len(lines) + 3) // answers after the last load
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	answered, longest, lastRuns := 0, int64(0), int64(0)
	seen := map[int64]bool{}
	for l := range lines {
		f := strings.Fields(l)
		ms, _ := strconv.ParseInt(f[1], 10, 64)
		longest = max(longest, ms)
		if f[0] != "ok" {
			t.Errorf("a query failed during a load after %d ms: %s", ms, strings.Join(f[2:], " "))
			continue
		}
		answered++
		v := make([]int64, 5)
		for i := range v {
			v[i], _ = strconv.ParseInt(f[2+i], 10, 64)
		}
		runs, hist, orphans, loading, current := v[0], v[1], v[2], v[3], v[4]
		if hist != runs*perRun || orphans != 0 || loading != 0 || current != perRun {
			t.Errorf("a mixed state: %d runs, %d history rows (want %d), %d rows of unlisted runs, %d tables loading, %d current rows (want %d)",
				runs, hist, runs*perRun, orphans, loading, current, perRun)
		}
		if runs < lastRuns {
			t.Errorf("the state went back from %d runs to %d", lastRuns, runs)
		}
		lastRuns = runs
		seen[runs] = true
	}
	if len(seen) != 4 || lastRuns != 4 {
		t.Errorf("the reader saw run counts %v, want each of 1-4", seen)
	}
	t.Logf("%d queries answered during 3 runs (%v), none refused; longest answer %d ms; states seen %v", answered, loads, longest, seen)
}

// A run whose lease on a bucket is taken over mid-run (it stalled past the lease's life, say) stops
// and commits nothing, not even its completed streams: the run that took over may have removed its
// files as a dead run's.
// Not parallel: it shortens lake.LeaseTTL, which every run on a bucket in this process reads.
func TestRunThatLostItsLeaseCommitsNothing(t *testing.T) {
	_, cfg := setup(t, sandbox.Options{Scale: 0.05, Latency: 20 * time.Millisecond}, nil)
	lakeOn(t, cfg, "s3")
	old := lake.LeaseTTL
	lake.LeaseTTL = 400 * time.Millisecond // renewed every 100 ms
	defer func() { lake.LeaseTTL = old }()
	st, err := OpenLake(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	go func() {
		// Once the run holds generation 1 and a stream has completed (its checkpoint beside run.json),
		// another run takes generation 2.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if es, _ := st.List(t.Context(), lake.CheckpointDir); len(es) > 1 {
				_ = st.CreateExclusive(t.Context(), "_lease/000000000002.json", []byte(`{"owner":"another run"}`))
				return
			}
		}
	}()
	_, err = Run(context.Background(), Options{Config: cfg, HTTP: fastRetries})
	if err == nil || !strings.Contains(err.Error(), "committed nothing") || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("run: %v, want it to commit nothing because its lock was lost", err)
	}
	if ms, err := lake.ReadManifests(t.Context(), st); err != nil || len(ms) != 0 {
		t.Errorf("%d manifests committed (%v), want none", len(ms), err)
	}
}
