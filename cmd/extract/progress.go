package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/vbauerster/cupwriter"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/pipeline"
	"github.com/ledgerlake/ledgerlake/internal/sources"
)

// liveView shows a run on a terminal, drawn by mpb: a line for the run (streams done, requests, data,
// elapsed, the estimated time left), a bar for each stream in flight (its requests, windows and units
// done, elapsed against what it took last time), then a bar for each phase after the streams (load,
// models, Iceberg). Log records are printed above the bars, never through them. The estimates come
// from the last run's figures: a stream's own time, and each phase's.
type liveView struct {
	p     *mpb.Progress
	out   io.Writer // where the log goes once the view has stopped
	began time.Time

	// mu guards the bars and is held while mpb is called; the decorators, which mpb calls while it
	// draws, take only counts (never mu), so drawing and updating cannot wait on each other.
	mu      sync.Mutex
	stopped bool
	plan    map[string]time.Duration
	bars    map[string]*streamBar
	run     *mpb.Bar
	phase   *mpb.Bar
	expect  time.Duration // the whole run, from the last one's phases (0: unknown)
	tick    chan struct{}

	counts  sync.Mutex
	streams []*sources.Stream // every stream started, for the totals
	done    int
	total   int
}

// streamBar is a stream in flight (or a phase: s nil).
type streamBar struct {
	bar   *mpb.Bar
	s     *sources.Stream
	began time.Time
	last  time.Duration

	counts           sync.Mutex
	windows, units   int
	seenWindow, unit map[string]bool
}

// newLiveView starts a view drawing to out; width 0 takes the terminal's.
func newLiveView(out io.Writer, width int, opts ...mpb.ContainerOption) *liveView {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(out), mpb.WithRefreshRate(150 * time.Millisecond)}, opts...)
	if width > 0 {
		opts = append(opts, mpb.WithWidth(width))
	} else {
		opts = append(opts, mpb.WithConsoleWriter(sizedConsole{cupwriter.New(out, false)}))
	}
	v := &liveView{p: mpb.New(opts...), out: out, began: time.Now(), bars: map[string]*streamBar{}, tick: make(chan struct{})}
	go v.ticking()
	return v
}

// sizedConsole is mpb's console writer with a size to draw in when the terminal reports none: mpb
// draws only as many columns and rows as the terminal reports, and a serial console or a pty nobody
// sized (some CI runners and containers) reports 0, so the view drew nothing at all. Assumed: 80x24,
// the size such terminals default to.
type sizedConsole struct{ mpb.ConsoleWriter }

// GetTermSize implements mpb.ConsoleWriter.
func (c sizedConsole) GetTermSize() (width, height int, err error) {
	width, height, err = c.ConsoleWriter.GetTermSize()
	if width <= 0 {
		width = 80
	}
	if height <= 0 {
		height = 24
	}
	return width, height, err
}

// Write prints log lines above the bars (after Stop, straight to the terminal).
func (v *liveView) Write(b []byte) (int, error) {
	v.mu.Lock()
	stopped := v.stopped
	v.mu.Unlock()
	if stopped {
		return v.out.Write(b)
	}
	if n, err := v.p.Write(b); err == nil {
		return n, nil
	}
	return v.out.Write(b)
}

// Start implements pipeline.Observer: the run line appears.
func (v *liveView) Start(plan pipeline.Plan) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.plan = map[string]time.Duration{}
	for _, p := range plan.Streams {
		v.plan[p.Table] = p.Last
	}
	v.counts.Lock()
	v.total = len(plan.Streams)
	v.counts.Unlock()
	last := plan.Last
	if last.Extract > 0 {
		v.expect = seconds(last.Extract + last.Load + last.Models + last.Iceberg)
	}
	v.run = v.p.New(max(int64(v.expect/time.Millisecond), 0), v.filler(v.expect), mpb.BarWidth(20), mpb.BarPriority(-1),
		mpb.PrependDecorators(label("run")),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return v.runLine() })))
}

// labelWidth fits the longest table name (gsapi_datasync_organization_billing_info) and the phases,
// so the bars stay in one column as streams come and go.
const labelWidth = 46

// label is a bar's name in the fixed first column.
func label(name string) decor.Decorator {
	if r := []rune(name); len(r) > labelWidth-1 {
		name = string(r[:labelWidth-2]) + "…"
	}
	return decor.Name(name, decor.WC{W: labelWidth, C: decor.DindentRight})
}

// filler is a bar where the time a thing should take is known, else a spinner.
func (v *liveView) filler(expect time.Duration) mpb.BarFillerBuilder {
	if expect > 0 {
		return mpb.BarStyle().Lbound("[").Rbound("]")
	}
	return mpb.SpinnerStyle().PositionLeft()
}

// runLine is the run's summary: streams done, requests, data, elapsed and the estimate.
func (v *liveView) runLine() string {
	v.counts.Lock()
	var req, bytes int64
	for _, s := range v.streams {
		t := s.Traffic()
		req += t.Requests
		bytes += t.Bytes
	}
	done, total := v.done, v.total
	v.counts.Unlock()
	line := fmt.Sprintf("%d/%d streams done · %s requests · %s · %s", done, total, humanize.Comma(req), humanize.Bytes(uint64(bytes)), clock(time.Since(v.began)))
	return line + left(time.Since(v.began), v.expect)
}

// left says how much of expect is left after elapsed: "· about 12s left", or nothing when unknown
// or overrun.
func left(elapsed, expect time.Duration) string {
	if expect <= 0 {
		return ""
	}
	if elapsed >= expect {
		if expect < time.Second {
			return " · longer than last time"
		}
		return fmt.Sprintf(" · longer than last time (%s)", clock(expect))
	}
	if expect-elapsed < time.Second {
		return " · about a second left"
	}
	return " · about " + clock(expect-elapsed) + " left"
}

// StreamStarted implements pipeline.Observer: a bar for the stream.
func (v *liveView) StreamStarted(s *sources.Stream) {
	v.counts.Lock()
	v.streams = append(v.streams, s)
	v.counts.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	sb := &streamBar{s: s, began: time.Now(), last: v.plan[s.TableName()], seenWindow: map[string]bool{}, unit: map[string]bool{}}
	sb.bar = v.p.New(max(int64(sb.last/time.Millisecond), 0), v.filler(sb.last), mpb.BarWidth(20), mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(label("  "+s.TableName())),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return sb.line() })))
	v.bars[s.TableName()] = sb
}

// line is what a stream has done so far.
func (sb *streamBar) line() string {
	sb.counts.Lock()
	windows, units := sb.windows, sb.units
	sb.counts.Unlock()
	parts := []string{humanize.Comma(sb.s.Traffic().Requests) + " requests"}
	if windows > 0 {
		parts = append(parts, fmt.Sprintf("%d windows", windows))
	}
	if units > 0 {
		parts = append(parts, humanize.Comma(int64(units))+" done")
	}
	if r := sb.s.Traffic().Retries; r > 0 {
		parts = append(parts, humanize.Comma(r)+" retries")
	}
	return strings.Join(parts, " · ") + " · " + clock(time.Since(sb.began)) + left(time.Since(sb.began), sb.last)
}

// Page implements pipeline.Observer: windows and units are counted once each.
func (v *liveView) Page(s *sources.Stream, p sources.Page) {
	v.mu.Lock()
	sb := v.bars[s.TableName()]
	v.mu.Unlock()
	if sb == nil {
		return
	}
	sb.counts.Lock()
	defer sb.counts.Unlock()
	if w := p.Window; w != nil {
		if k := w.Start.String(); !sb.seenWindow[k] {
			sb.seenWindow[k] = true
			sb.windows++
		}
	}
	if p.Done != "" && !sb.unit[p.Done] {
		sb.unit[p.Done] = true
		sb.units++
	}
}

// StreamDone implements pipeline.Observer: the stream's bar goes (the log line says how it ended).
func (v *liveView) StreamDone(s *sources.Stream, _ lake.StreamReport) {
	v.counts.Lock()
	v.done++
	v.counts.Unlock()
	v.mu.Lock()
	defer v.mu.Unlock()
	if sb := v.bars[s.TableName()]; sb != nil {
		delete(v.bars, s.TableName())
		sb.bar.SetTotal(-1, true)
	}
}

// phaseNames are the phases as the view names them.
var phaseNames = map[string]string{
	pipeline.PhaseLoad:    "loading the warehouse",
	pipeline.PhaseModels:  "building the models, running the data tests",
	pipeline.PhaseIceberg: "registering the Iceberg tables",
}

// Phase implements pipeline.Observer: the previous phase's bar completes and the next one's appears.
func (v *liveView) Phase(phase string, expect time.Duration) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.phase != nil {
		v.phase.SetTotal(-1, true)
	}
	began := time.Now()
	name := phaseNames[phase]
	v.phase = v.p.New(max(int64(expect/time.Millisecond), 0), v.filler(expect), mpb.BarWidth(20), mpb.BarRemoveOnComplete(),
		mpb.PrependDecorators(label("  "+name)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			return clock(time.Since(began)) + left(time.Since(began), expect)
		})))
	v.bars[""] = &streamBar{bar: v.phase, began: began, last: expect}
}

// ticking moves each bar along with time against what it took last time, stopping short of the end
// until it is done.
func (v *liveView) ticking() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-v.tick:
			return
		case <-t.C:
		}
		v.mu.Lock()
		for _, sb := range v.bars {
			advance(sb.bar, time.Since(sb.began), sb.last)
		}
		if v.run != nil {
			advance(v.run, time.Since(v.began), v.expect)
		}
		v.mu.Unlock()
	}
}

// advance sets a timed bar to elapsed out of expect, at most just short of full.
func advance(b *mpb.Bar, elapsed, expect time.Duration) {
	if expect <= 0 || b.Completed() {
		return
	}
	b.SetCurrent(min(int64(elapsed/time.Millisecond), int64(expect/time.Millisecond)-1))
}

// Stop completes every bar and waits for the last frame: the terminal is the log's alone again.
func (v *liveView) Stop() {
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return
	}
	v.stopped = true
	close(v.tick)
	for _, sb := range v.bars {
		sb.bar.Abort(true)
	}
	if v.run != nil {
		v.run.Abort(true)
	}
	v.mu.Unlock()
	v.p.Wait()
}

// clock writes a duration as people read it on a clock: 7s, 1m05s, 1h02m.
func clock(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	}
	return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// terminal returns stderr as a file when it is a terminal: the live view is drawn only there, so it
// never reaches a log file.
func terminal(stderr io.Writer) *os.File {
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			return f
		}
	}
	return nil
}

// runOutput is where a pipeline command's log and live view go. On a terminal the view shows what
// runs, and warnings and errors print above it (the view and the summary say what the INFO records
// would); elsewhere, under cron or Kubernetes, every record goes to stderr. --log-file takes every
// record as well, and stderr then keeps warnings and errors.
type runOutput struct {
	log  *slog.Logger
	view *liveView
	file *os.File
}

// logFlags are the flags of the commands that run a pipeline.
type logFlags struct{ format, file *string }

func addLogFlags(fs *flag.FlagSet) logFlags {
	return logFlags{
		format: fs.String("log-format", "text", "log format: text or json"),
		file:   fs.String("log-file", "", "also append every log record to this file (stderr then keeps warnings and errors)"),
	}
}

// newRunOutput makes the logger and, on a terminal, the view.
func newRunOutput(lf logFlags, stderr io.Writer) (*runOutput, error) {
	format := *lf.format
	if format != "text" && format != "json" {
		return nil, fmt.Errorf("--log-format must be text or json, not %q", format)
	}
	handler := func(w io.Writer, level slog.Level) slog.Handler {
		if format == "json" {
			return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
		}
		return slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})
	}
	o := &runOutput{}
	w, level := stderr, slog.LevelInfo
	if tty := terminal(stderr); tty != nil {
		o.view = newLiveView(tty, 0)
		w, level = o.view, slog.LevelWarn
	}
	if *lf.file == "" {
		o.log = slog.New(handler(w, level))
		return o, nil
	}
	f, err := os.OpenFile(*lf.file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		o.Stop()
		return nil, fmt.Errorf("--log-file: %w", err)
	}
	o.file = f
	o.log = slog.New(slog.NewMultiHandler(handler(f, slog.LevelInfo), handler(w, slog.LevelWarn)))
	return o, nil
}

// observer is the view as the pipeline's Observer (nil without a terminal).
func (o *runOutput) observer() pipeline.Observer {
	if o.view == nil {
		return nil
	}
	return o.view
}

// Stop ends the live view, if there is one, and closes the log file.
func (o *runOutput) Stop() {
	if o.view != nil {
		o.view.Stop()
	}
	if o.file != nil {
		o.file.Close()
		o.file = nil
	}
}
