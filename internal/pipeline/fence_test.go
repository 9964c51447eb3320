package pipeline

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { stalledRun(t, backend) })
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
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(marker); err == nil {
			break
		}
		select {
		case err := <-aDone:
			t.Fatalf("the run ended before its commit: %v\n%s", err, aStderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the run never reached its commit")
		}
	}
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
