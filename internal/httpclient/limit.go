package httpclient

import (
	"context"
	"math"
	"runtime"
	"sync"
	"time"
)

// A host's concurrency limit is found, not guessed: real APIs document none (gsapi-notes.md), and a
// guess is either too timid (half of what the host allows left unused) or too bold (every request past
// the limit a 429 and a Retry-After pause). The limit starts at InitialConcurrency (or where an earlier
// run's ended: Client.Resume) and grows by one a round trip while the host keeps up — answers as fast
// as they have been, no 429 or 503 — up to the configured ceiling (per_host_concurrency). Not by
// doubling, as TCP's slow start does: that overshoots the host's limit by up to as much again, and the
// refusals' burst (see next) then left it above the limit, for a second burst and pause (tried:
// bench/README.md, session 37). A 429 or 503 brings it to one below the number that was in flight and
// pins it there: the host has said how many it takes, and a probe one higher is made only after
// quietPeriod without refusals, so a run meets few 429s. Refusals that took it well below the level the
// host took before them (a 503 storm, a dip in capacity) are not a level to pin: after a quiet period
// it climbs back towards that level by one per round trip, meeting at most the one burst of refusals a
// probe meets. Answers that turn slow while requests queue — the recent latency over slowFactor × the
// long-run latency, as in Netflix's Gradient2 — lower it by a tenth once per round trip; one slow
// answer (a large export, a busy moment) does not, nor does a host that is steadily slow.

// InitialConcurrency is where a host's limit starts: today's fixed default, so that finding the limit
// is never slower than not looking for it.
const InitialConcurrency = 8

const (
	quietPeriod = 30 * time.Second // without a refusal, before probing past the level a host refused
	slowFactor  = 2                // recent latency this many times the long-run latency means queueing
)

// aimd is the limit's state: a pure value, moved by next.
type aimd struct {
	Limit   float64
	Ceiling float64
	// Known is the level a host refused above (0 before any refusal): growth stops there until a
	// quiet period has passed.
	Known float64
	// SRTT is the recent latency (an eighth of each new answer, as TCP's), LRTT the long-run one (a
	// sixty-fourth; it falls at once to SRTT, so that it tracks the host at its fastest).
	SRTT, LRTT time.Duration
	Cut        time.Time // the last cut for slowness
	Quiet      time.Time // the last refusal, or the last probe past Known
	// Burst is when the burst of refusals began: its first refusal's answer. Anchored there, not at
	// the last refusal, so that refusals answered slowly one after another (a loaded host) do not chain
	// into one endless burst that the limit never moves through.
	Burst    time.Time
	Before   float64 // the limit when the last burst of refusals began
	Refusals float64 // in that burst
	// Top is the highest limit a burst of refusals began at: the level the host took before it
	// refused. After a quiet period the limit climbs back towards it, not one past Known per period.
	Top float64
}

// outcome is what one limited request met.
type outcome struct {
	Refused  bool          // 429 or 503
	RTT      time.Duration // to the answer's headers (0: no answer: a connection error says nothing)
	InFlight int           // requests in flight to the host when it was sent, itself included
	// Released is whether it was sent as a Retry-After pause ended, at once with every request that
	// held a slot through the pause: which of those the host counted first is chance.
	Released bool
	// AtHost is the requests sent and unanswered when it was sent, itself included: slots whose request
	// waits for the rate's token are not, and a limit they fill has not been tested (0: as InFlight).
	AtHost   int
	Sent, At time.Time // when it was sent, and answered
}

// next is the limit after o: a refusal sets it below what was in flight (a tenth lower if it was within
// the limit and is not of the same burst as the last refusal); answers slow on average,
// while several were in flight, lower it by a tenth per round trip; a fast answer to a request sent
// while the requests in flight filled the limit as it is now raises it — by one before any refusal
// (only the requests sent since the last raise fill it: one a round trip), below Known by 1/limit
// (also one a round trip), and past Known by one per quiet period (or, below Top, back towards it by
// one per round trip).
func (a aimd) next(o outcome) aimd {
	if o.RTT > 0 {
		if a.SRTT == 0 {
			a.SRTT, a.LRTT = o.RTT, o.RTT
		}
		a.SRTT += (o.RTT - a.SRTT) / 8
		a.LRTT += (o.RTT - a.LRTT) / 64
		a.LRTT = min(a.LRTT, a.SRTT)
	}
	switch {
	case o.Refused:
		// Refusals of requests sent before the burst's first refusal came are one burst: together they
		// cut a quarter at most, as the order in which a host counted them is not the order they were
		// sent. A request sent after it was sent knowing of the refusal: its refusal is news.
		burst := !o.Sent.After(a.Burst)
		if !burst {
			a.Before, a.Burst, a.Refusals = a.Limit, o.At, 0
			a.Top = max(a.Top, a.Limit)
		}
		a.Refusals++
		l := min(a.Limit, float64(o.InFlight-1))
		floor := a.Before * 0.75
		if o.Released {
			// Sent together, they all count the slots held through the pause: how many of them were
			// refused says how many the host took, not which — no guess from an order that is chance,
			// so not held to a quarter.
			l, floor = min(a.Limit, float64(o.InFlight)-a.Refusals), 1
		}
		if l == a.Limit && !burst {
			l = a.Limit * 0.9 // refused within the limit: the host's capacity fell, or others share it
		}
		a.Limit = max(1, math.Floor(max(l, floor)))
		a.Known, a.Quiet = a.Limit, o.At
	case o.RTT == 0:
	case a.SRTT > slowFactor*a.LRTT && o.InFlight > 1:
		if o.At.Sub(a.Cut) >= a.SRTT {
			a.Limit, a.Cut = max(1, a.Limit*0.9), o.At
		}
	case float64(o.InFlight) < math.Floor(a.Limit), o.AtHost > 0 && float64(o.AtHost) < math.Floor(a.Limit):
		// The limit was not full when this was sent: it has not been tested, so it does not grow.
	case a.Known == 0:
		a.Limit++
	case a.Limit < a.Known:
		a.Limit = min(a.Known, a.Limit+1/a.Limit)
	case o.At.Sub(a.Quiet) >= quietPeriod:
		// One past Known; or back towards Top, by one per round trip (the case above), when refusals
		// took the limit below what the host took before them.
		a.Known = max(a.Known+1, a.Top)
		a.Limit, a.Quiet = a.Limit+1, o.At
	}
	a.Limit = min(a.Limit, a.Ceiling)
	return a
}

// hostLimit admits requests to one host within its found limit, and records how the limit moved.
type hostLimit struct {
	mu       sync.Mutex
	state    aimd
	inflight int // slots taken
	// sent is the requests sent and not yet answered: slots whose request waits for the rate's next
	// token or out a pause are not at the host, and the report (peak, mean) counts only these.
	sent    int
	waiting []chan struct{} // FIFO; each is handed its slot
	start   time.Time
	peak    int
	refused int
	samples []HostSample
	// busy is the requests sent integrated over time (request-seconds) from the first request, at
	// first, to the last change of the count, at last: their quotient is the mean in flight.
	busy        float64
	first, last time.Time
}

func newHostLimit(ceiling int) *hostLimit {
	c := float64(max(1, ceiling))
	l := &hostLimit{state: aimd{Limit: min(InitialConcurrency, c), Ceiling: c}, start: time.Now()}
	l.sample(l.start)
	return l
}

// resume sets the limit an earlier run ended with, before any request (see Client.Resume).
func (l *hostLimit) resume(limit float64, refused bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state.Limit = min(limit, l.state.Ceiling)
	if refused {
		l.state.Known, l.state.Quiet = l.state.Limit, time.Now()
	}
	l.samples = l.samples[:0]
	l.sample(l.start)
}

// acquire waits for a slot.
func (l *hostLimit) acquire(ctx context.Context) error {
	l.mu.Lock()
	if len(l.waiting) == 0 && l.inflight < int(l.state.Limit) {
		l.inflight++
		l.mu.Unlock()
		return nil
	}
	ready := make(chan struct{}, 1)
	l.waiting = append(l.waiting, ready)
	l.mu.Unlock()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		select {
		case <-ready: // handed a slot meanwhile: give it back
			l.inflight--
			l.handOff()
		default:
			for i, w := range l.waiting {
				if w == ready {
					l.waiting = append(l.waiting[:i], l.waiting[i+1:]...)
					break
				}
			}
		}
		return ctx.Err()
	}
}

// send counts a request as it is sent (past the rate limit and any pause) and returns the slots taken
// now and the requests sent, itself included in both: what the limit learns from (outcome.InFlight,
// outcome.AtHost).
func (l *hostLimit) send() (slots, sent int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.countSent(1)
	l.peak = max(l.peak, l.sent)
	return l.inflight, l.sent
}

// othersOnTheirWay is the requests holding a slot (sent, or about to be), but for the one asking when
// it holds one itself (held: it was sent within the limit, not as one of the unlimited logins).
func (l *hostLimit) othersOnTheirWay(held bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if held {
		return max(0, l.inflight-1)
	}
	return l.inflight
}

// countSent moves the requests sent by d, integrating the count until now; l.mu is held.
func (l *hostLimit) countSent(d int) {
	now := time.Now()
	if l.first.IsZero() {
		l.first = now
	} else {
		l.busy += float64(l.sent) * now.Sub(l.last).Seconds()
	}
	l.sent += d
	l.last = now
}

// meanInFlight is the mean of the requests in flight from the first request to the last answer (0
// before any); l.mu is held.
func (l *hostLimit) meanInFlight() float64 {
	if d := l.last.Sub(l.first).Seconds(); d > 0 {
		return l.busy / d
	}
	return 0
}

// handOff gives the slots the limit allows to the waiters, in order, and reports whether it gave
// any; l.mu is held.
func (l *hostLimit) handOff() bool {
	gave := false
	for len(l.waiting) > 0 && l.inflight < int(l.state.Limit) {
		w := l.waiting[0]
		l.waiting = l.waiting[1:]
		l.inflight++
		w <- struct{}{} // buffered: never blocks
		gave = true
	}
	return gave
}

// release frees a slot and moves the limit by what the request met. A waiter handed the slot is run
// at once: woken here, it would wait for this goroutine to block, and the caller goes on to decode
// and convert the answer — with every CPU busy, up to a scheduler time slice with the slot unused.
func (l *hostLimit) release(o outcome) {
	if l.free(o) {
		runtime.Gosched()
	}
}

// free is release under l.mu, reporting whether a waiter was handed a slot.
func (l *hostLimit) free(o outcome) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if !o.Sent.IsZero() {
		l.countSent(-1)
	}
	before := int(l.state.Limit)
	l.state = l.state.next(o)
	if o.Refused {
		l.refused++
	}
	if int(l.state.Limit) != before {
		l.sample(o.At)
	}
	return l.handOff()
}

// maxSamples bounds a host's recorded history: past it, every other sample is dropped.
const maxSamples = 512

func (l *hostLimit) sample(at time.Time) {
	if len(l.samples) == maxSamples {
		kept := l.samples[:0]
		for i := 0; i < len(l.samples); i += 2 {
			kept = append(kept, l.samples[i])
		}
		l.samples = kept
	}
	l.samples = append(l.samples, HostSample{Seconds: at.Sub(l.start).Seconds(), Limit: int(l.state.Limit), InFlight: l.sent})
}

// HostSample is a host's limit at a moment of the run.
type HostSample struct {
	Seconds  float64 `json:"s"` // since the host's first request
	Limit    int     `json:"limit"`
	InFlight int     `json:"in_flight"`
}

// HostReport is how one host's concurrency went during a run.
type HostReport struct {
	Host      string       `json:"host"`
	Ceiling   int          `json:"ceiling"`   // per_host_concurrency
	Peak      int          `json:"peak"`      // the most requests in flight (sent, unanswered) at once
	Final     int          `json:"final"`     // the limit at the end
	Throttled int          `json:"throttled"` // 429 and 503 answers
	Samples   []HostSample `json:"samples"`   // each change of the limit
	// MeanInFlight is the mean of the requests in flight from the first request to the last answer:
	// how much of what the host allowed the run used, pauses and idle moments included.
	MeanInFlight float64 `json:"mean_in_flight"`
	// PausedSeconds is how long Retry-After answers closed the host, overlapping pauses counted once.
	PausedSeconds float64 `json:"paused_seconds"`
}

func (l *hostLimit) report(host string) HostReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return HostReport{Host: host, Ceiling: int(l.state.Ceiling), Peak: l.peak, Final: int(l.state.Limit), Throttled: l.refused,
		Samples: append([]HostSample(nil), l.samples...), MeanInFlight: l.meanInFlight()}
}
