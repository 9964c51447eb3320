package lake_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/lake/s3test"
)

// stores opens an empty lake on each backend: a directory, a bucket on the loopback S3 server, and a
// file:// URL (gocloud's fileblob).
func stores(t *testing.T) map[string]lake.Store {
	t.Helper()
	srv := s3test.StartT(t, "lake")
	out := map[string]lake.Store{}
	for name, loc := range map[string]string{"dir": t.TempDir(), "file": "file://" + t.TempDir(), "s3": srv.URL("lake", "team/"+strings.ReplaceAll(t.Name(), "/", "_"))} {
		st, err := lake.OpenStore(context.Background(), loc, t.TempDir())
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { st.Close() })
		out[name] = st
	}
	return out
}

// Both backends keep the same promises: a file appears whole only when published, an exclusive
// create fails when taken, a missing key reads as fs.ErrNotExist, and listing shows every key once.
func TestStoresBehaveAlike(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			f, err := st.Create(t.Context(), "t/p=1/a.parquet")
			if err != nil {
				t.Fatal(err)
			}
			big := bytes.Repeat([]byte("ledgerlake "), 200_000) // 2.2 MB
			f.Write(big)
			if ok, _ := st.Exists(t.Context(), "t/p=1/a.parquet"); ok {
				t.Error("a file being written is visible")
			}
			if es, _ := st.List(t.Context(), "t"); len(es) != 0 {
				t.Errorf("a file being written is listed: %v", es)
			}
			if err := f.Publish(); err != nil {
				t.Fatal(err)
			}
			if got, err := st.ReadFile(t.Context(), "t/p=1/a.parquet"); err != nil || !bytes.Equal(got, big) {
				t.Fatalf("read back %d bytes, %v", len(got), err)
			}
			g, _ := st.Create(t.Context(), "t/p=1/b.parquet")
			g.Write([]byte("gone"))
			g.Abort()
			if ok, _ := st.Exists(t.Context(), "t/p=1/b.parquet"); ok {
				t.Error("an aborted file is visible")
			}
			if _, err := st.ReadFile(t.Context(), "nope/x.json"); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("missing key: %v, want fs.ErrNotExist", err)
			}
			if err := st.CreateExclusive(t.Context(), "_commits/1.json", []byte("a")); err != nil {
				t.Fatal(err)
			}
			if err := st.CreateExclusive(t.Context(), "_commits/1.json", []byte("b")); !errors.Is(err, fs.ErrExist) {
				t.Errorf("second exclusive create: %v, want fs.ErrExist", err)
			}
			if got, _ := st.ReadFile(t.Context(), "_commits/1.json"); string(got) != "a" {
				t.Errorf("the exclusive create replaced the first: %q", got)
			}
			st.WriteFile(t.Context(), "_state/x.json", []byte("1"))
			st.WriteFile(t.Context(), "_state/x.json", []byte("2"))
			es, err := st.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for _, e := range es {
				keys = append(keys, e.Key)
			}
			if want := "_commits/1.json _state/x.json t/p=1/a.parquet"; strings.Join(keys, " ") != want {
				t.Errorf("listed %q, want %q", strings.Join(keys, " "), want)
			}
			if err := st.RemoveAll(t.Context(), "_state"); err != nil {
				t.Fatal(err)
			}
			if err := st.Remove(t.Context(), "_state/x.json"); err != nil {
				t.Errorf("removing a missing key: %v", err)
			}
		})
	}
}

// Of two runs that start from the same state, exactly one commits; the other fails with ErrConflict
// and its manifest is never written. A run whose claim was made (then killed) commits at the next
// number when resumed, and a reader sees each run once.
func TestOnlyOneOfTwoRunsCommits(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			head, _ := lake.Head(t.Context(), st)
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = lake.Commit(t.Context(), st, &lake.Manifest{RunID: fmt.Sprintf("run-%d", i), Status: "ok"}, head)
				}()
			}
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, lake.ErrConflict):
					t.Errorf("a losing commit: %v, want ErrConflict", err)
				}
			}
			ms, err := lake.ReadManifests(t.Context(), st)
			if err != nil || won != 1 || len(ms) != 1 || ms[0].Commit != head+1 {
				t.Fatalf("%d commits won, %d manifests (%v), want 1 at commit %d", won, len(ms), err, head+1)
			}
			// The same run committing again at the same number (an answer lost, retried) is fine.
			if err := lake.Commit(t.Context(), st, &lake.Manifest{RunID: ms[0].RunID, Status: "ok"}, head); err != nil {
				t.Errorf("re-commit by the claim's own run: %v", err)
			}
		})
	}
}

// The bucket's lock: a second run is refused while the first holds it, a holder killed on this
// machine (its process gone) is taken over at once, and a released lock is free.
func TestBucketLease(t *testing.T) {
	st := stores(t)["s3"]
	release, lost, err := st.Lock(t.Context(), "run-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.Lock(t.Context(), "run-b"); !errors.Is(err, lake.ErrBusy) || !strings.Contains(err.Error(), "run-a") {
		t.Fatalf("second lock: %v, want ErrBusy naming run-a", err)
	}
	release()
	select {
	case <-lost:
		t.Error("a released lock reported lost")
	default:
	}
	release2, _, err := st.Lock(t.Context(), "run-c")
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	defer release2()
	// A lease of a process that no longer exists on this host: what a kill -9 leaves.
	es, _ := st.List(t.Context(), "_lease")
	newest := es[len(es)-1].Key
	host, _ := os.Hostname()
	dead := fmt.Sprintf(`{"owner":"killed","host":%q,"pid":%d,"expires":%q}`, host, 1<<30, time.Now().Add(time.Hour).Format(time.RFC3339Nano))
	if err := st.WriteFile(t.Context(), newest, []byte(dead)); err != nil {
		t.Fatal(err)
	}
	r3, _, err := st.Lock(t.Context(), "run-d")
	if err != nil {
		t.Fatalf("a dead holder's lease was not taken over: %v", err)
	}
	r3()
}

// bucket is a store at prefix of a bucket on a loopback S3 server of the test's own, whose faults it
// sets.
func bucket(t *testing.T, prefix string) (*s3test.Server, lake.Store) {
	t.Helper()
	srv := s3test.StartT(t, "lake")
	st, err := lake.OpenStore(t.Context(), srv.URL("lake", prefix), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return srv, st
}

// Faults at the store: PUTs that fail and GETs that stall are retried, and every byte arrives.
func TestBucketRetriesFailedPutsAndStalledGets(t *testing.T) {
	srv, st := bucket(t, "faults")
	old := lake.StallTimeout
	lake.StallTimeout = time.Second // far above a loopback GET, even under -race on a busy machine
	defer func() { lake.StallTimeout = old }()
	srv.SetFaults(s3test.Faults{FailPutEvery: 3, StallGetEvery: 4, Stall: 3 * time.Second})
	var files []lake.FileInfo
	for i := range 10 {
		body := bytes.Repeat([]byte{byte(i)}, 100_000+i)
		f, err := st.Create(t.Context(), fmt.Sprintf("t/p/%02d.parquet", i))
		if err != nil {
			t.Fatal(err)
		}
		f.Write(body)
		if err := f.Commit(); err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		files = append(files, lake.FileInfo{Path: fmt.Sprintf("t/p/%02d.parquet", i), Bytes: int64(len(body)), SHA256: sha(body)})
	}
	paths, release, err := lake.Local(t.Context(), st, files, t.TempDir(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	for i, p := range paths {
		b, _ := os.ReadFile(p)
		if len(b) != 100_000+i || b[0] != byte(i) {
			t.Errorf("file %d: %d bytes downloaded", i, len(b))
		}
	}
	if srv.FailedPuts.Load() == 0 || srv.StalledGets.Load() == 0 {
		t.Errorf("faults injected: %d failed PUTs, %d stalled GETs; the test proves little", srv.FailedPuts.Load(), srv.StalledGets.Load())
	}
	t.Logf("%d failed PUTs and %d stalled GETs retried, %d requests", srv.FailedPuts.Load(), srv.StalledGets.Load(), srv.Requests.Load())
	rc, err := st.Open(t.Context(), files[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if n, err := io.Copy(io.Discard, rc); err != nil || n != files[0].Bytes {
		t.Errorf("streamed %d bytes, %v", n, err)
	}
}

func sha(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A holder whose lease was taken over (it stalled past the lease's life, and another run took the
// next generation) learns it at its next renewal and must stop: lost is closed.
func TestBucketLeaseHolderLearnsItWasTakenOver(t *testing.T) {
	st := stores(t)["s3"]
	old := lake.LeaseTTL
	lake.LeaseTTL = 400 * time.Millisecond // renewals every 100 ms
	defer func() { lake.LeaseTTL = old }()
	release, lost, err := st.Lock(t.Context(), "run-a")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	es, _ := st.List(t.Context(), "_lease")
	mine := es[len(es)-1].Key
	var gen int
	fmt.Sscanf(mine, "_lease/%d.json", &gen)
	if err := st.CreateExclusive(t.Context(), fmt.Sprintf("_lease/%012d.json", gen+1), []byte(`{"owner":"run-b"}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(2 * time.Second):
		t.Fatal("the holder did not learn that its lease was taken over")
	}
	// Releasing a lost lease must not mark the newer holder's generation released.
	release()
	if b, _ := st.ReadFile(t.Context(), fmt.Sprintf("_lease/%012d.json", gen+1)); string(b) != `{"owner":"run-b"}` {
		t.Errorf("the newer generation was changed: %s", b)
	}
}

// A location's credentials never reach a message or a page, even when the driver refuses the URL and
// its own message repeats it.
func TestRedactedLocations(t *testing.T) {
	for in, want := range map[string]string{
		"data/lake": "data/lake",
		"s3://bucket/prefix?region=eu-north-1&secret_access_key=s3cr3t": "s3://bucket/prefix",
		"postgres://ledger:hunter2@db.internal:5432/iceberg":            "postgres://db.internal:5432/iceberg",
	} {
		if got := lake.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	_, err := lake.OpenBucket(context.Background(), "s3://bucket/p?region=x&secret_access_key=s3cr3t", t.TempDir())
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "s3://bucket/p") {
		t.Errorf("error %v, want one naming the bucket without the secret", err)
	}
}

// A bucket call that is retrying a failing server stops waiting when its context ends (Ctrl-C): it
// returns the cancellation at once, rather than after its remaining backoff (seconds).
func TestBucketRetryEndsWithItsContext(t *testing.T) {
	srv, st := bucket(t, "cancel")
	srv.SetFaults(s3test.Faults{FailPutEvery: 1})
	ctx, cancel := context.WithCancel(t.Context())
	cancelled := make(chan time.Time, 1)
	go func() { // once the call has been refused twice, it is retrying
		for srv.FailedPuts.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		cancelled <- time.Now()
		cancel()
	}()
	err := st.WriteFile(ctx, "k.json", []byte("{}"))
	took := time.Since(<-cancelled)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteFile after cancel: %v, want context.Canceled", err)
	}
	if took > 100*time.Millisecond {
		t.Errorf("WriteFile returned %v after its context was cancelled", took)
	}
	t.Logf("returned %v after the cancel, %d failed PUTs", took, srv.FailedPuts.Load())
}

// A read over a connection that drops goes on for as long as each GET moves it well forward (a pack
// or a large PDF is tens of MiB), and ends with an error naming the object when the GETs hardly do.
func TestBucketReadResumesWhileGetsMakeProgress(t *testing.T) {
	srv, st := bucket(t, "cuts")
	body := make([]byte, 10<<20)
	for i := range body {
		body[i] = byte(i * 7 / 3)
	}
	f, err := st.Create(t.Context(), "t/big.pdfs")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(body)
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	read := func(open func() (io.ReadCloser, error)) ([]byte, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		return io.ReadAll(rc)
	}
	whole := func() (io.ReadCloser, error) { return st.Open(t.Context(), "t/big.pdfs") }
	ranged := func() (io.ReadCloser, error) { return st.OpenRange(t.Context(), "t/big.pdfs", 1000, 9<<20) }

	// Every GET cut after 1.25 MiB: eight cuts in a whole read, more than the failures allowed in a row.
	srv.SetFaults(s3test.Faults{CutGetAfter: 5 << 18})
	before := srv.CutGets.Load()
	if got, err := read(whole); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("whole read through cuts: %d bytes, %v", len(got), err)
	}
	if got, err := read(ranged); err != nil || !bytes.Equal(got, body[1000:1000+9<<20]) {
		t.Fatalf("range read through cuts: %d bytes, %v", len(got), err)
	}
	if cuts := srv.CutGets.Load() - before; cuts < 14 {
		t.Fatalf("%d GETs cut; the test proves little", cuts)
	}

	// Every GET cut after 4 KiB: the read ends, naming the object and where it stopped.
	srv.SetFaults(s3test.Faults{CutGetAfter: 4 << 10})
	got, err := read(whole)
	if err == nil || !strings.Contains(err.Error(), "t/big.pdfs") || len(got) >= len(body) {
		t.Fatalf("a read that hardly moves: %d bytes, error %v", len(got), err)
	}
	t.Logf("ended after %d bytes: %v", len(got), err)
}
