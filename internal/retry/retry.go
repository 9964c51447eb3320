// Package retry is ledgerlake's one retry policy: what an attempt's answer or error means (done, try
// again and after how long, or give up with which error), and a wait that ends with its context. The
// HTTP client and the lake's bucket both decide through Policy.Decide.
package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Policy bounds the waits between attempts.
type Policy struct {
	// MinBackoff and MaxBackoff bound the backoff: full jitter, doubling per attempt from MinBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter is the longest wait a server may ask for (Retry-After); a longer one fails at once.
	MaxRetryAfter time.Duration
	// Jitter returns a number in [0, n) (nil: math/rand/v2's Int64N); tests make it fixed.
	Jitter func(n int64) int64
}

// Answer is what the policy reads of a server's answer to an attempt.
type Answer struct {
	Status     int    // HTTP status
	RetryAfter string // the Retry-After header ("" when absent)
}

// Decision is what to do after an attempt.
type Decision struct {
	Retry bool          // try again, after Wait
	Wait  time.Duration // the server's Retry-After when Asked, else the backoff of this attempt
	Asked bool          // Wait is what the server asked for: it holds for every request to that server
	Err   error         // why the attempt did not succeed (nil: it did); final when !Retry
}

// Decide is the policy, for attempt (1 = the first) that got answer a (nil when none came) or err;
// when a is an answer other than 2xx, err describes it. In order:
//   - no error, or a 2xx answer: done;
//   - ctx ended: stop, with ctx's error;
//   - an error marked Final: stop with it;
//   - any other error (a reset, a stall, a cut-short body, a timeout): retry after the backoff;
//   - 429, and 5xx but 501: retry, after the Retry-After the answer asks for when it is within
//     MaxRetryAfter (a longer one stops with a *WaitError), else after the backoff;
//   - any other answer (4xx, 501, 1xx, 3xx): stop.
//
// It never sleeps: the caller waits (Wait) and counts attempts.
func (p Policy) Decide(ctx context.Context, attempt int, a *Answer, err error) Decision {
	if a != nil && a.Status/100 != 2 && err == nil {
		err = fmt.Errorf("answer %d %s", a.Status, http.StatusText(a.Status)) // never a failure without a reason
	}
	switch {
	case a == nil && err == nil, a != nil && a.Status/100 == 2:
		return Decision{}
	case ctx.Err() != nil:
		return Decision{Err: ctx.Err()}
	case IsFinal(err):
		return Decision{Err: err}
	case a == nil:
		return Decision{Retry: true, Wait: p.Backoff(attempt), Err: err}
	case !retryableStatus(a.Status):
		return Decision{Err: err}
	}
	ra, ok := parseRetryAfter(a.RetryAfter)
	switch {
	case !ok:
		return Decision{Retry: true, Wait: p.Backoff(attempt), Err: err}
	case ra > p.MaxRetryAfter:
		return Decision{Err: &WaitError{Answer: err, Wait: ra, Limit: p.MaxRetryAfter}}
	}
	return Decision{Retry: true, Wait: ra, Asked: true, Err: err}
}

// Pause is how long answer a asks every request to its server to wait, when Decide would honour it: a
// 429 or retryable 5xx whose Retry-After is within MaxRetryAfter. The caller can stop the server's
// other requests at once, before the request that met it has gone through Decide.
func (p Policy) Pause(a Answer) (time.Duration, bool) {
	if !retryableStatus(a.Status) {
		return 0, false
	}
	ra, ok := parseRetryAfter(a.RetryAfter)
	if !ok || ra > p.MaxRetryAfter {
		return 0, false
	}
	return ra, true
}

// Backoff is full-jitter exponential: uniform in [0, min(MaxBackoff, MinBackoff·2^(attempt-1))],
// plus MinBackoff/2 so that no retry follows at once.
func (p Policy) Backoff(attempt int) time.Duration {
	d := p.MinBackoff << min(max(attempt, 1)-1, 20)
	if d > p.MaxBackoff || d <= 0 {
		d = p.MaxBackoff
	}
	if d <= 0 {
		return p.MinBackoff / 2
	}
	jitter := p.Jitter
	if jitter == nil {
		jitter = rand.Int64N
	}
	return p.MinBackoff/2 + time.Duration(jitter(int64(d)))
}

// Wait waits d, or until ctx ends (then it returns ctx's error): a retrying call stops at Ctrl-C.
func Wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Final marks err as one no retry can mend: Decide stops at it. The message is err's.
func Final(err error) error {
	if err == nil {
		return nil
	}
	return final{err}
}

// IsFinal reports whether err, or an error it wraps, was marked Final.
func IsFinal(err error) bool {
	var f final
	return errors.As(err, &f)
}

type final struct{ error }

func (f final) Unwrap() error { return f.error }

// WaitError is a Retry-After longer than the caller honours: failing names the wait instead of
// silently pausing an unattended run.
type WaitError struct {
	Answer      error // the answer that asked for the wait
	Wait, Limit time.Duration
}

func (e *WaitError) Error() string {
	return fmt.Sprintf("%v: the server asks to wait %s (Retry-After), more than max_retry_after (%s): failing instead of waiting", e.Answer, e.Wait, e.Limit)
}

func (e *WaitError) Unwrap() error { return e.Answer }

// retryableStatus: too many requests, and server errors but "not implemented" (which stays so).
func retryableStatus(s int) bool {
	return s == http.StatusTooManyRequests || (s >= 500 && s != http.StatusNotImplemented)
}

// parseRetryAfter reads delay-seconds or an HTTP date; a number past int64 is the longest wait. It is
// not ok when it asks for no wait (0, a negative number, a date already past): that is read as no
// header, a backoff, not a retry at once that would spend every attempt within milliseconds of an
// outage, nor a pause of the host.
func parseRetryAfter(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if s, err := strconv.ParseInt(v, 10, 64); err == nil || errors.Is(err, strconv.ErrRange) {
		// Clamped before multiplying: a huge negative number must not wrap around into a long wait.
		d = time.Duration(min(max(s, 0), int64(math.MaxInt64/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	} else {
		return 0, false
	}
	return d, d > 0
}
