package sources

import (
	"fmt"
	"strings"
	"testing"
)

// Identifiers go into one path segment each, escaped; those a server would resolve as directories are
// refused.
func TestPathSegment(t *testing.T) {
	for id, want := range map[string]string{"INV-1.2": "INV-1.2", "a/b": "a%2Fb", "x y": "x%20y", "...": "...", "%2e%2e": "%252e%252e"} {
		if got, err := PathSegment(id); err != nil || got != want {
			t.Errorf("PathSegment(%q) = %q, %v; want %q", id, got, err, want)
		}
	}
	for _, id := range []string{"", ".", ".."} {
		if _, err := PathSegment(id); err == nil {
			t.Errorf("PathSegment(%q) accepted", id)
		}
	}
}

// A date watermark never passes the ceiling and never takes a value that is not a date; both are
// counted for the warnings. Items that failed are asked for again by the next run, and drop out once
// a run fetches them.
func TestStateWatermarkAndPending(t *testing.T) {
	st := &State{Watermark: "2026-11-01", Ceiling: "2026-12-05"}
	for _, d := range []string{"2026-11-30", "9999-12-31", "zzzz-99-99", "2026-12-05", "/../../xyz", "2026-12-06"} {
		st.AdvanceDate(d)
	}
	st.Fail("INV-7", "2026-03-02")
	st.Commit()
	if st.Watermark != "2026-12-05" {
		t.Fatalf("watermark %q", st.Watermark)
	}
	odd := strings.Join(st.Odd(), "\n")
	if !strings.Contains(odd, "2 records are dated after the run's start (e.g. 9999-12-31)") || !strings.Contains(odd, "2 records have a date that is not a date") {
		t.Fatalf("odd: %s", odd)
	}
	if got := fmt.Sprint(st.PendingItems()); got != "[INV-7]" || st.Pending["INV-7"] != "2026-03-02" {
		t.Fatalf("pending %v", st.Pending)
	}
	next := &State{Watermark: st.Watermark, Pending: st.Pending}
	next.Commit()
	if len(next.Pending) != 0 {
		t.Fatalf("an item fetched again is still pending: %v", next.Pending)
	}
}
