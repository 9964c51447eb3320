package sources

import (
	"testing"
	"time"
)

// Month windows tile [since, until) with no gap and no overlap: each ends a millisecond before the next
// starts, so a record stamped at any millisecond falls in exactly one window.
func TestMonthWindowsTileTheRange(t *testing.T) {
	since := time.Date(2024, 1, 15, 0, 0, 0, 0, time.UTC)
	until := time.Date(2024, 4, 3, 0, 0, 0, 0, time.UTC)
	ws := MonthWindows(since, until)
	want := [][2]string{
		{"2024-01-15T00:00:00.000", "2024-01-31T23:59:59.999"},
		{"2024-02-01T00:00:00.000", "2024-02-29T23:59:59.999"},
		{"2024-03-01T00:00:00.000", "2024-03-31T23:59:59.999"},
		{"2024-04-01T00:00:00.000", "2024-04-02T23:59:59.999"},
	}
	if len(ws) != len(want) {
		t.Fatalf("%d windows, want %d: %v", len(ws), len(want), ws)
	}
	const layout = "2006-01-02T15:04:05.000"
	for i, w := range ws {
		if got := [2]string{w.Start.Format(layout), w.End.Format(layout)}; got != want[i] {
			t.Errorf("window %d = %v, want %v", i, got, want[i])
		}
		if i > 0 && !ws[i-1].End.Add(time.Millisecond).Equal(w.Start) {
			t.Errorf("window %d starts at %v, not a millisecond after window %d ends (%v)", i, w.Start, i-1, ws[i-1].End)
		}
	}
	if ws := MonthWindows(until, until); len(ws) != 0 {
		t.Errorf("an empty range has windows: %v", ws)
	}
}
