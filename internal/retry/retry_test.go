package retry

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"testing"
	"time"
)

// One table is the whole policy: what each answer or error of an attempt leads to, for the HTTP
// client (answers with statuses) and the bucket (errors only).
func TestDecideIsThePolicy(t *testing.T) {
	p := Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, MaxRetryAfter: 15 * time.Minute,
		Jitter: func(n int64) int64 { return n / 2 }} // the middle of the range: waits are exact
	reset := errors.New("connection reset by peer")
	answerErr := errors.New("GET /x: the answer")
	answer := func(status int, retryAfter string) *Answer { return &Answer{Status: status, RetryAfter: retryAfter} }
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	cases := []struct {
		name    string
		ctx     context.Context
		attempt int
		a       *Answer
		err     error
		retry   bool
		wait    time.Duration
		asked   bool
		wantErr error // errors.Is the decision's error (nil: none)
	}{
		{"bucket call succeeded", nil, 1, nil, nil, false, 0, false, nil},
		{"200", nil, 1, answer(200, ""), nil, false, 0, false, nil},
		{"204 after the context ended: done is done", cancelled, 1, answer(204, ""), nil, false, 0, false, nil},
		{"reset, first attempt: backoff 50 ms + 50 ms", nil, 1, nil, reset, true, 100 * time.Millisecond, false, reset},
		{"reset, third attempt: doubled twice", nil, 3, nil, reset, true, 250 * time.Millisecond, false, reset},
		{"reset, tenth attempt: capped at MaxBackoff", nil, 10, nil, reset, true, 50*time.Millisecond + 2500*time.Millisecond, false, reset},
		{"reset after the context ended", cancelled, 1, nil, reset, false, 0, false, context.Canceled},
		{"final error", nil, 1, nil, Final(reset), false, 0, false, reset},
		{"bucket: missing key is final", nil, 1, nil, Final(fs.ErrNotExist), false, 0, false, fs.ErrNotExist},
		{"400", nil, 1, answer(400, ""), answerErr, false, 0, false, answerErr},
		{"401 (renewal is the client's)", nil, 1, answer(401, ""), answerErr, false, 0, false, answerErr},
		{"403", nil, 1, answer(403, ""), answerErr, false, 0, false, answerErr},
		{"404", nil, 1, answer(404, ""), answerErr, false, 0, false, answerErr},
		{"304", nil, 1, answer(304, ""), answerErr, false, 0, false, answerErr},
		{"501", nil, 1, answer(501, ""), answerErr, false, 0, false, answerErr},
		{"500", nil, 2, answer(500, ""), answerErr, true, 150 * time.Millisecond, false, answerErr},
		{"502", nil, 1, answer(502, ""), answerErr, true, 100 * time.Millisecond, false, answerErr},
		{"429 without Retry-After", nil, 1, answer(429, ""), answerErr, true, 100 * time.Millisecond, false, answerErr},
		{"429 Retry-After 3", nil, 1, answer(429, "3"), answerErr, true, 3 * time.Second, true, answerErr},
		{"503 Retry-After 15m (the limit)", nil, 1, answer(503, "900"), answerErr, true, 15 * time.Minute, true, answerErr},
		{"503 Retry-After a date in the past: no wait asked, the backoff", nil, 1, answer(503, past), answerErr, true, 100 * time.Millisecond, false, answerErr},
		{"429 Retry-After garbage", nil, 1, answer(429, "soon"), answerErr, true, 100 * time.Millisecond, false, answerErr},
		{"429 Retry-After a day", nil, 1, answer(429, "86400"), answerErr, false, 0, false, answerErr},
		{"429 Retry-After huge", nil, 1, answer(429, "99999999999999999"), answerErr, false, 0, false, answerErr},
		{"503 after the context ended", cancelled, 1, answer(503, "1"), answerErr, false, 0, false, context.Canceled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := c.ctx
			if ctx == nil {
				ctx = t.Context()
			}
			d := p.Decide(ctx, c.attempt, c.a, c.err)
			if d.Retry != c.retry || d.Wait != c.wait || d.Asked != c.asked {
				t.Errorf("retry %v wait %v asked %v; want %v %v %v", d.Retry, d.Wait, d.Asked, c.retry, c.wait, c.asked)
			}
			if (c.wantErr == nil) != (d.Err == nil) || c.wantErr != nil && !errors.Is(d.Err, c.wantErr) {
				t.Errorf("err %v; want one that is %v", d.Err, c.wantErr)
			}
		})
	}
}

// A Retry-After beyond the limit stops at once with an error naming the wait and the limit, and
// still wrapping the answer that asked for it.
func TestTooLongRetryAfterNamesTheWait(t *testing.T) {
	answerErr := errors.New("GET /x: 429 Too Many Requests")
	d := Policy{MaxRetryAfter: 15 * time.Minute}.Decide(t.Context(), 1, &Answer{Status: 429, RetryAfter: "86400"}, answerErr)
	var we *WaitError
	if d.Retry || !errors.As(d.Err, &we) || we.Wait != 24*time.Hour || we.Limit != 15*time.Minute || !errors.Is(d.Err, answerErr) {
		t.Fatalf("decision %+v", d)
	}
	const want = "GET /x: 429 Too Many Requests: the server asks to wait 24h0m0s (Retry-After), more than max_retry_after (15m0s): failing instead of waiting"
	if d.Err.Error() != want {
		t.Errorf("message %q\nwant    %q", d.Err, want)
	}
}

// A failing answer the caller did not describe still fails with a reason.
func TestUndescribedFailureHasAReason(t *testing.T) {
	d := Policy{}.Decide(t.Context(), 1, &Answer{Status: 404}, nil)
	if d.Retry || d.Err == nil || d.Err.Error() != "answer 404 Not Found" {
		t.Fatalf("decision %+v", d)
	}
}

// Wait ends with its context, not with its duration: Ctrl-C interrupts an hour's backoff at once.
func TestWaitEndsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	err := Wait(ctx, time.Hour)
	if took := time.Since(start); !errors.Is(err, context.Canceled) || took > 20*time.Millisecond+100*time.Millisecond {
		t.Fatalf("Wait returned %v after %v", err, took)
	}
	start = time.Now()
	if err := Wait(t.Context(), 30*time.Millisecond); err != nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("a 30 ms wait returned %v after %v", err, time.Since(start))
	}
	if err := Wait(t.Context(), 0); err != nil {
		t.Fatalf("no wait: %v", err)
	}
}

// Backoff without jitter stays within its bounds and never returns at once.
func TestBackoffBounds(t *testing.T) {
	p := Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}
	for attempt := 1; attempt <= 30; attempt++ {
		for range 20 {
			d := p.Backoff(attempt)
			hi := 50*time.Millisecond + min(time.Second, 100*time.Millisecond<<(attempt-1))
			if d < 50*time.Millisecond || d >= hi {
				t.Fatalf("attempt %d: backoff %v outside [50ms, %v)", attempt, d, hi)
			}
		}
	}
}

// Pause is the wait a whole server is asked for, exactly when Decide would honour it.
func TestPauseIsWhatDecideHonours(t *testing.T) {
	p := Policy{MinBackoff: time.Millisecond, MaxBackoff: time.Second, MaxRetryAfter: time.Minute}
	for _, c := range []struct {
		a    Answer
		want time.Duration
		ok   bool
	}{
		{Answer{Status: 429, RetryAfter: "1"}, time.Second, true},
		{Answer{Status: 503, RetryAfter: "0"}, 0, false}, // no wait asked: a backoff of its own
		{Answer{Status: 502, RetryAfter: " 2 "}, 2 * time.Second, true},
		{Answer{Status: 429}, 0, false},                      // no header: a backoff of its own
		{Answer{Status: 429, RetryAfter: "soon"}, 0, false},  // unreadable
		{Answer{Status: 429, RetryAfter: "86400"}, 0, false}, // over MaxRetryAfter: Decide fails instead
		{Answer{Status: 400, RetryAfter: "1"}, 0, false},     // not retried
		{Answer{Status: 501, RetryAfter: "1"}, 0, false},     // not retried
		{Answer{Status: 200, RetryAfter: "1"}, 0, false},     // not a refusal
	} {
		got, ok := p.Pause(c.a)
		if got != c.want || ok != c.ok {
			t.Errorf("%+v: %v %v, want %v %v", c.a, got, ok, c.want, c.ok)
		}
		d := p.Decide(context.Background(), 1, &c.a, nil)
		if c.ok != (d.Asked && d.Retry) || (c.ok && d.Wait != c.want) {
			t.Errorf("%+v: Pause %v %v but Decide %+v", c.a, got, ok, d)
		}
	}
}

// A Retry-After that asks for no wait — 0, a negative number, or a date already past (a server whose
// clock is behind) — is no pause: the retry backs off as if there were no header, instead of
// following at once. Otherwise a short outage answered "503, Retry-After: 0" (or a stale date) uses
// up every attempt within milliseconds and fails a request that a backoff would have carried over it.
// A negative or out-of-range number never overflows into a wait: "-9300000000" seconds multiplied out
// wrapped around to 290 years (failing at once with a WaitError), "-18446744073" to 0.7 s.
func TestRetryAfterAskingForNoWaitBacksOff(t *testing.T) {
	p := Policy{MinBackoff: 100 * time.Millisecond, MaxBackoff: 5 * time.Second, MaxRetryAfter: 15 * time.Minute,
		Jitter: func(n int64) int64 { return n / 2 }}
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	for _, ra := range []string{"0", "-1", past, "-9300000000", "-18446744073", "-99999999999999999999"} {
		d := p.Decide(t.Context(), 3, &Answer{Status: 503, RetryAfter: ra}, nil)
		if !d.Retry || d.Asked || d.Wait != p.Backoff(3) {
			t.Errorf("Retry-After %q: retry %v wait %v asked %v err %v; want the backoff, %v", ra, d.Retry, d.Wait, d.Asked, d.Err, p.Backoff(3))
		}
		if w, ok := p.Pause(Answer{Status: 503, RetryAfter: ra}); ok {
			t.Errorf("Retry-After %q pauses the host for %v", ra, w)
		}
	}
	// A number past int64 asks for longer than any limit, as one just within it does.
	var we *WaitError
	if d := p.Decide(t.Context(), 1, &Answer{Status: 429, RetryAfter: "99999999999999999999"}, nil); d.Retry || !errors.As(d.Err, &we) {
		t.Errorf("Retry-After past int64: %+v", d)
	}
}
