package sources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// Fan fetches each task as soon as it arrives, up to its limit at once, while the consumer pauses:
// fetched pages wait (up to the limit) instead of holding their slots, and every page comes out once.
func TestFanKeepsFetchingWhileTheConsumerPauses(t *testing.T) {
	var inflight, peak, fetched atomic.Int64
	tasks := func(yield func(int, error) bool) {
		for i := range 40 {
			if !yield(i, nil) {
				return
			}
		}
	}
	fetch := func(ctx context.Context, i int) (Page, error) {
		n := inflight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		inflight.Add(-1)
		fetched.Add(1)
		return Page{Done: fmt.Sprint(i)}, nil
	}
	var got []string
	for p, err := range Fan(context.Background(), 4, tasks, fetch) {
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			time.Sleep(50 * time.Millisecond) // the consumer pauses on the first page
			if f := fetched.Load(); f < 8 {
				t.Errorf("only %d pages fetched while the consumer paused; want the limit fetched and the limit waiting", f)
			}
		}
		got = append(got, p.Done)
	}
	if len(got) != 40 || peak.Load() != 4 {
		t.Fatalf("%d pages, peak %d in flight", len(got), peak.Load())
	}
	slices.Sort(got)
	if len(slices.Compact(got)) != 40 {
		t.Fatal("a page came out twice")
	}
}

// An error from the tasks stops the fan and is yielded; a consumer that stops early closes every page
// fetched and not taken.
func TestFanStopsOnErrorsAndClosesWhatIsLeft(t *testing.T) {
	boom := errors.New("listing failed")
	tasks := func(yield func(int, error) bool) {
		for i := range 3 {
			if !yield(i, nil) {
				return
			}
		}
		yield(0, boom)
	}
	ok := func(ctx context.Context, i int) (Page, error) { return Page{}, nil }
	var last error
	for _, err := range Fan(context.Background(), 2, tasks, ok) {
		last = err
	}
	if !errors.Is(last, boom) {
		t.Fatalf("last error %v", last)
	}
	dir := t.TempDir()
	var opened atomic.Int64
	many := func(yield func(int, error) bool) {
		for i := range 50 {
			if !yield(i, nil) {
				return
			}
		}
	}
	spilled := func(ctx context.Context, i int) (Page, error) {
		b, err := spool.Read(bytesOf(100), dir, 10, 1000, "page")
		opened.Add(1)
		return Page{Body: b}, err
	}
	for p := range Fan(context.Background(), 4, many, spilled) {
		p.Close()
		break
	}
	time.Sleep(50 * time.Millisecond)
	if n, _ := filesIn(dir); n != 0 {
		t.Fatalf("%d spilled bodies left open after %d fetched", n, opened.Load())
	}
}

func bytesOf(n int) *strings.Reader { return strings.NewReader(strings.Repeat("x", n)) }

// filesIn counts this process's open files under dir (spilled bodies are unlinked at once, so only
// /proc/self/fd sees them; without it, 0).
func filesIn(dir string) (int, error) {
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, nil
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, dir) {
			n++
		}
	}
	return n, nil
}
