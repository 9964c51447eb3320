package pipeline

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/laketest"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
	"github.com/ledgerlake/ledgerlake/internal/sandbox"
)

// A run that stalls (SIGSTOP) just before its commit, longer than its lease, can never write into the
// lake again. On S3 the next run takes the lake over: it fences the stalled run's commit number,
// resumes its checkpoints under a new run id and commits; the stalled run, woken, fails and writes
// nothing. On a directory the lock is held while the process lives, stopped or not: the next run is
// refused and the woken run commits. Either way verify is clean and every commit names one run.
// Run it many times on a loaded machine: where in the commit the stall falls varies (see below).
func TestStalledRunCannotWriteAfterItsLease(t *testing.T) {
	t.Parallel()
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { t.Parallel(); stalledRun(t, backend) })
	}
}

func stalledRun(t *testing.T, backend string) {
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.1, Latency: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	env, openLake, _ := chaosLake(t, backend, dir, s3test.Faults{})
	st := openLake()
	marker := filepath.Join(t.TempDir(), "stopped")
	a, aStderr, aDone := startChild(t, srv, dir, resumePipeline, append(env, "LEDGERLAKE_CHECKPOINT_EVERY=50ms",
		"LEDGERLAKE_CHILD_LEASE_TTL=2s", "LEDGERLAKE_CHILD_STOP_BEFORE_COMMIT="+marker)...)
	defer func() { _ = a.Process.Kill() }()
	awaitChild(t, aDone, aStderr, "its commit", func() bool { _, err := os.Stat(marker); return err == nil })
	es, _ := st.List(t.Context(), lake.CheckpointDir)
	if len(es) == 0 {
		t.Fatal("the stalled run left no checkpoints: the takeover would resume nothing")
	}
	stalledID, _, _ := strings.Cut(strings.TrimPrefix(es[0].Key, lake.CheckpointDir+"/"), "/")
	time.Sleep(3 * time.Second) // past the stalled run's 2 s lease

	_, bErr := childWhen(t, srv, dir, resumePipeline, func() bool { return false }, 0, env...)
	before := laketest.Content(t, st)
	if err := syscall.Kill(a.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	aErr := <-aDone
	ms, err := lake.ReadManifests(t.Context(), st)
	if err != nil || len(ms) != 1 {
		t.Fatalf("%d committed runs (%v), want 1", len(ms), err)
	}
	v, err := lake.Check(t.Context(), st, 1)
	if err != nil || len(v.Problems) > 0 {
		t.Errorf("verify: %+v %v", v.Problems, err)
	}
	switch backend {
	case "s3":
		if bErr != nil {
			t.Fatalf("the run that took the lake over: %v", bErr)
		}
		if aErr == nil || !strings.Contains(aStderr.String(), "taken over") {
			t.Errorf("the stalled run woke and did not fail on its lost lock: %v\n%s", aErr, aStderr)
		}
		// The stall is a SIGSTOP the run sends itself; the thread that sends it may run on for a few
		// milliseconds before the stop reaches it (the signal goes to the main thread first), so the
		// run stops anywhere in its commit: before or after its lock check, its manifest's PUT or its
		// claim's. Wherever it stopped, the store refuses what it writes once awake (the fence's
		// claim, and its mark at the run's manifest key), so the lake is as the taker left it.
		if after := laketest.Content(t, st); after != before {
			t.Errorf("the stalled run wrote into the lake after waking:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if ms[0].RunID == stalledID || ms[0].ResumedFrom != stalledID || v.Head != 2 || fmt.Sprint(v.Fences) != "[1]" {
			t.Errorf("committed run %s resumed from %q (stalled %s), head %d, fences %v; want a new run id at commit 2 after a fence",
				ms[0].RunID, ms[0].ResumedFrom, stalledID, v.Head, v.Fences)
		}
	default:
		if bErr == nil || !strings.Contains(bErr.Error(), "another ledgerlake run") {
			t.Errorf("a run started while the lake's lock is held by a stopped run: %v", bErr)
		}
		if aErr != nil || ms[0].RunID != stalledID || v.Head != 1 || len(v.Fences) != 0 {
			t.Errorf("the woken run: %v, committed %s (stalled %s), head %d, fences %v", aErr, ms[0].RunID, stalledID, v.Head, v.Fences)
		}
	}
}

// awaitChild polls until the child run started with done and stderr reaches what (reached), failing
// the test if it ends first or takes over three minutes.
func awaitChild(t *testing.T, done <-chan error, stderr *strings.Builder, what string, reached func() bool) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); !reached(); time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("the run ended before %s: %v\n%s", what, err, stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never reached %s", what)
		}
	}
}

// startChild starts pipeline (a format with the directory as %[1]s) in a subprocess; done receives how
// it ended.
func startChild(t *testing.T, srv *sandbox.Server, dir, pipeline string, env ...string) (*exec.Cmd, *strings.Builder, <-chan error) {
	t.Helper()
	path := filepath.Join(dir, "pipeline.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(pipeline, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LEDGERLAKE_CHILD_CONFIG="+path, "LEDGERLAKE_SANDBOX_URL="+srv.URL,
		"SIGNICAT_CLIENT_ID="+sandbox.ClientID, "SIGNICAT_CLIENT_SECRET="+sandbox.ClientSecret,
		"GSAPI_USERNAME="+sandbox.GSAPIUser, "GSAPI_PASSWORD="+sandbox.GSAPIPassword)
	cmd.Env = append(cmd.Env, env...)
	stderr := &strings.Builder{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wrap(cmd.Wait(), stderr.String()) }()
	return cmd, stderr, done
}

// A run stalled mid-stream past its lease, whose checkpoints the next run adopted and committed, wakes
// and fails its streams: it must remove neither the files nor the checkpoints it had, as the run that
// took the lake over lists them now. Only a bucket's lease can be taken over (a directory's lock is
// held while the stopped process lives).
func TestStalledStreamRemovesNothingTheTakerAdopted(t *testing.T) {
	t.Parallel()
	srv, err := sandbox.Start("127.0.0.1:0", sandbox.Options{Scale: 0.2, Latency: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	env, openLake, _ := chaosLake(t, "s3", dir, s3test.Faults{})
	st := openLake()
	env = append(env, "LEDGERLAKE_CHECKPOINT_EVERY=50ms", "LEDGERLAKE_CHILD_LEASE_TTL=2s")
	a, aStderr, aDone := startChild(t, srv, dir, resumePipeline, env...)
	defer func() { _ = a.Process.Kill() }()
	// Stall it once a per-invoice stream has checkpointed part of its files, and is still running.
	partial := func() bool {
		es, _ := st.List(t.Context(), lake.CheckpointDir)
		for _, e := range es {
			var ck streamCheckpoint
			if b, err := st.ReadFile(t.Context(), e.Key); err == nil && json.Unmarshal(b, &ck) == nil && !ck.Complete && len(ck.Files) > 0 {
				return true
			}
		}
		return false
	}
	awaitChild(t, aDone, aStderr, "a stream's checkpoint of part of its files", partial)
	if err := syscall.Kill(a.Process.Pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // past the stalled run's 2 s lease
	es, _ := st.List(t.Context(), lake.CheckpointDir)
	stalledID, _, _ := strings.Cut(strings.TrimPrefix(es[0].Key, lake.CheckpointDir+"/"), "/")
	if _, err := childWhen(t, srv, dir, resumePipeline, func() bool { return false }, 0, env...); err != nil {
		t.Fatalf("the run that took the lake over: %v", err)
	}
	before := laketest.Content(t, st)
	if err := syscall.Kill(a.Process.Pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if err := <-aDone; err == nil {
		t.Errorf("the stalled run woke and succeeded\n%s", aStderr)
	}
	ms, err := lake.ReadManifests(t.Context(), st)
	if err != nil || len(ms) != 1 || ms[0].ResumedFrom == "" {
		t.Fatalf("committed %+v (%v): want one run, resumed from the stalled one", ms, err)
	}
	if v, err := lake.Check(t.Context(), st, 1); err != nil || len(v.Problems) > 0 {
		t.Errorf("verify after the stalled run woke: %+v %v", v.Problems, err)
	}
	// Until it notices the lost lease (at its next renewal) it may finish a part file or a pack: under
	// its own run id, which no claim names, for the next run's sweep. Nothing that was there changes.
	after := strings.Split(laketest.Content(t, st), "\n")
	for _, line := range strings.Split(before, "\n") {
		if !slices.Contains(after, line) {
			t.Errorf("the stalled run removed or changed %q after waking", line)
		}
	}
	for _, line := range after {
		if key, _, _ := strings.Cut(line, " "); !strings.Contains(before, line) && !strings.Contains(key, stalledID) {
			t.Errorf("the stalled run wrote %q after waking, not under its own run id %s", line, stalledID)
		}
	}
}
