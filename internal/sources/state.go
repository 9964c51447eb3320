package sources

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// State is a stream's memory between runs.
type State struct {
	// Watermark is what the last successful run reached ("" on a first or full-refresh run).
	Watermark string `json:"watermark"`
	// Pending are the items (→ their dates) the last run could not fetch: this run asks for them again
	// whatever the watermark says.
	Pending map[string]string `json:"pending,omitempty"`
	// Ceiling, set by the pipeline before a run, is the latest day a date watermark may reach (the
	// run's start plus a day): a record dated later is kept, counted, and never moves the watermark,
	// so one bad date cannot stop every later run from fetching.
	Ceiling string `json:"-"`
	// Memo holds per-key facts a stream reuses next run (an account's products and when they were
	// read); each run stores the memo it built, so keys that disappeared drop out.
	Memo map[string]json.RawMessage `json:"memo,omitempty"`
	// Windows is set once a run has read the stream in whole-month windows recorded with its rows; a
	// watermark without it was left by an older ledgerlake, and the windows start over from since.
	Windows     bool `json:"windows,omitempty"`
	mu          sync.Mutex
	next        string
	nextMemo    map[string]json.RawMessage
	nextPending map[string]string
	future      int    // dates after Ceiling seen this run
	invalid     int    // dates that are not dates
	oddExample  string // one of them
}

// Recall reads key's memo from the last run into v.
func (s *State) Recall(key string, v any) bool {
	s.mu.Lock()
	raw, ok := s.Memo[key]
	s.mu.Unlock()
	return ok && json.Unmarshal(raw, v) == nil
}

// Remember keeps v as key's memo for the next run.
func (s *State) Remember(key string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		return
	}
	s.mu.Lock()
	if s.nextMemo == nil {
		s.nextMemo = map[string]json.RawMessage{}
	}
	s.nextMemo[strings.Clone(key)] = b // kept all run: not the decoder's shared memory (cut)
	s.mu.Unlock()
}

// Commit makes what this run reached the state to store: the advanced watermark, the new memo and
// the items to ask for again.
func (s *State) Commit() {
	w := s.Next()
	s.mu.Lock()
	s.Watermark, s.Memo, s.Pending = w, s.nextMemo, s.nextPending
	s.mu.Unlock()
}

// PendingItems are the items the last run could not fetch, sorted.
func (s *State) PendingItems() []string {
	if s == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(s.Pending))
}

// Fail records an item this run could not fetch, for the next run to ask for again.
func (s *State) Fail(item, date string) {
	s.mu.Lock()
	if s.nextPending == nil {
		s.nextPending = map[string]string{}
	}
	s.nextPending[strings.Clone(item)] = strings.Clone(date)
	s.mu.Unlock()
}

// AdvanceDate raises the watermark to day (YYYY-MM-DD) unless it is not a date or lies past Ceiling:
// those are counted (Odd) and change nothing.
func (s *State) AdvanceDate(day string) {
	_, err := time.Parse(time.DateOnly, day)
	s.mu.Lock()
	switch {
	case err != nil:
		s.invalid++
	case s.Ceiling != "" && day > s.Ceiling:
		s.future++
	default:
		s.mu.Unlock()
		s.Advance(day)
		return
	}
	if s.oddExample == "" {
		s.oddExample = strings.Clone(day)
	}
	s.mu.Unlock()
}

// Odd says what AdvanceDate passed over, for the stream's warnings.
func (s *State) Odd() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	if s.future > 0 {
		out = append(out, fmt.Sprintf("%d records are dated after the run's start (e.g. %s): kept, but not used to move the watermark, so they cannot stop later runs from fetching", s.future, s.oddExample))
	}
	if s.invalid > 0 {
		out = append(out, fmt.Sprintf("%d records have a date that is not a date (e.g. %q): kept, and not used to move the watermark", s.invalid, s.oddExample))
	}
	return out
}

// NextMemo is the memo this run has built so far (for checkpoints).
func (s *State) NextMemo() map[string]json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.nextMemo)
}

// RestoreMemo puts back the memo an earlier attempt of this run built.
func (s *State) RestoreMemo(m map[string]json.RawMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextMemo == nil {
		s.nextMemo = map[string]json.RawMessage{}
	}
	maps.Copy(s.nextMemo, m)
}

// Advance raises the watermark this run will store: numbers compare as numbers, anything else (ISO
// dates) as text.
func (s *State) Advance(w string) {
	s.mu.Lock()
	if later(w, s.next) {
		s.next = strings.Clone(w)
	}
	s.mu.Unlock()
}

// MarkWindows records that this run read the stream in recorded whole-month windows (see Windows).
func (s *State) MarkWindows() {
	s.mu.Lock()
	s.Windows = true
	s.mu.Unlock()
}

// Next is the watermark to store after this run: the highest seen, never below the previous one.
func (s *State) Next() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if later(s.Watermark, s.next) {
		return s.Watermark
	}
	return s.next
}

func later(a, b string) bool {
	if b == "" {
		return a != ""
	}
	fa, errA := strconv.ParseFloat(a, 64)
	fb, errB := strconv.ParseFloat(b, 64)
	if errA == nil && errB == nil {
		return fa > fb
	}
	return a > b
}
