package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits bound what a server can make a run do: how long it waits, how much it reads, how far it
// pages, how much a snapshot may shrink. They sit at the top level of a pipeline file; the defaults
// are generous, so they only ever stop a server that misbehaves.
type Limits struct {
	// StallTimeout abandons and retries a request that receives (almost) nothing for this long: a
	// server that accepts and never answers, or trickles a byte at a time (default 60s).
	StallTimeout Duration `yaml:"stall_timeout" example:"2m"`
	// MaxRetryAfter is the longest Retry-After a run waits; a server asking for more fails the stream at
	// once, naming the wait (default 15m).
	MaxRetryAfter Duration `yaml:"max_retry_after" example:"30m"`
	// MaxRunTime ends a run cleanly after this long: what completed is committed and loaded, the rest
	// is fetched by the next run (default none; also --max-run-time).
	MaxRunTime Duration `yaml:"max_run_time" example:"3h"`
	// MaxPages stops a listing that pages on and on (a next token that never ends): past this many
	// pages the stream fails, naming the limit (default 10000: a million records at 100 a page).
	MaxPages int `yaml:"max_pages" example:"20000"`
	// MaxShrink is how much a snapshot stream may shrink from one run to the next before the run
	// refuses the new snapshot and keeps the previous current state (default 50%; a fall to zero rows
	// is always refused). The same holds for the month windows a windowed stream fetches again:
	// together they may not hold fewer rows by more than this, and a window that held rows may not
	// come back empty. Accept a real shrink with extract run --accept-shrink STREAM.
	MaxShrink Percent `yaml:"max_shrink" example:"20%"`
	// MaxPageBytes caps one response body (default 1GiB); bodies past 4 MiB are read from disk, never
	// held in memory.
	MaxPageBytes ByteSize `yaml:"max_page_bytes" example:"256MiB"`
	// MaxValueBytes caps one JSON value decoded at once — a record, or an invoice's detail (default
	// 64MiB): memory follows it, not the size of an answer.
	MaxValueBytes ByteSize `yaml:"max_value_bytes" example:"16MiB"`
	// MaxPDFBytes caps one invoice PDF (default 256MiB); a larger one is a reject of that invoice.
	MaxPDFBytes ByteSize `yaml:"max_pdf_bytes" example:"64MiB"`
}

// DefaultLimits are the limits a pipeline file leaves unset.
var DefaultLimits = Limits{
	StallTimeout:  Duration(time.Minute),
	MaxRetryAfter: Duration(15 * time.Minute),
	MaxPages:      10000,
	MaxShrink:     50,
	MaxPageBytes:  1 << 30,
	MaxValueBytes: 64 << 20,
	MaxPDFBytes:   256 << 20,
}

// OrDefaults is l with every limit it leaves unset at its default (DefaultLimits).
func (l Limits) OrDefaults() Limits {
	d := DefaultLimits
	or(&l.StallTimeout, d.StallTimeout)
	or(&l.MaxRetryAfter, d.MaxRetryAfter)
	or(&l.MaxPages, d.MaxPages)
	or(&l.MaxShrink, d.MaxShrink)
	or(&l.MaxPageBytes, d.MaxPageBytes)
	or(&l.MaxValueBytes, d.MaxValueBytes)
	or(&l.MaxPDFBytes, d.MaxPDFBytes)
	return l
}

func or[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// validate refuses negative limits, a max_shrink outside 0–100% and a value larger than a page.
func (l *Limits) validate() error {
	switch {
	case l.StallTimeout < 0 || l.MaxRetryAfter < 0 || l.MaxRunTime < 0:
		return &Error{Msg: "stall_timeout, max_retry_after and max_run_time must not be negative"}
	case l.MaxPages < 0:
		return &Error{Msg: "max_pages must be positive"}
	case l.MaxShrink < 0 || l.MaxShrink > 100:
		return &Error{Msg: fmt.Sprintf("max_shrink: %v is not a share from 0%% to 100%%", l.MaxShrink)}
	case l.MaxPageBytes < 0 || l.MaxValueBytes < 0 || l.MaxPDFBytes < 0:
		return &Error{Msg: "max_page_bytes, max_value_bytes and max_pdf_bytes must be positive"}
	case l.MaxValueBytes > l.MaxPageBytes:
		return &Error{Msg: fmt.Sprintf("max_value_bytes (%s) is larger than max_page_bytes (%s): a value is part of a page", l.MaxValueBytes, l.MaxPageBytes)}
	}
	return nil
}

// Duration is a span of time in a config: 90s, 15m, 2h30m.
type Duration time.Duration

// UnmarshalYAML reads a Go duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration such as 90s, 15m or 2h", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// String prints it as Go does (1h0m0s).
func (d Duration) String() string { return time.Duration(d).String() }

// ByteSize is a size in a config: 512MB, 1GiB, 64MiB, or a plain count of bytes.
type ByteSize int64

var sizeUnits = map[string]int64{"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30, "TIB": 1 << 40}

// UnmarshalYAML reads a size with an optional unit.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v := strings.TrimSpace(n.Value)
	i := strings.IndexFunc(v, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(v)
	}
	num, err := strconv.ParseFloat(v[:i], 64)
	unit, ok := sizeUnits[strings.ToUpper(strings.TrimSpace(v[i:]))]
	if err != nil || !ok || num < 0 {
		return fmt.Errorf("line %d: %q is not a size such as 512MB or 1GiB", n.Line, n.Value)
	}
	*b = ByteSize(num * float64(unit))
	return nil
}

// String prints the size in binary units.
func (b ByteSize) String() string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	}
	return fmt.Sprintf("%d bytes", int64(b))
}

// Percent is a share in a config: 50% (or 50).
type Percent float64

// UnmarshalYAML reads a number of percent, with or without the sign.
func (p *Percent) UnmarshalYAML(n *yaml.Node) error {
	v, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(n.Value), "%"), 64)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a percentage such as 50%%", n.Line, n.Value)
	}
	*p = Percent(v)
	return nil
}

// String prints it with its sign.
func (p Percent) String() string { return strconv.FormatFloat(float64(p), 'f', -1, 64) + "%" }
