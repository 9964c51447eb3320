package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/ledgerlake/ledgerlake/internal/config"
	"github.com/ledgerlake/ledgerlake/internal/dates"
	"github.com/ledgerlake/ledgerlake/internal/jsonrec"
	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/redact"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
)

// runEnv is what every stream of a run shares.
type runEnv struct {
	st        lake.Store
	runID     string
	resumes   int // how many times this run was resumed after a crash (names new part files apart)
	extracted time.Time
	batchRows int
	store     *lake.EvidenceStore
	every     time.Duration // checkpoint interval of streams with Checkpoints (0: only at the end)
	// cpu admits as many streams to converting at once as there are CPUs: more streams run to keep
	// requests in flight, but converting more at once than CPUs only adds contention (bench/README.md,
	// "Figures behind tuned constants").
	cpu         *semaphore.Weighted
	checkpoints *checkpointer
	log         *slog.Logger
	limits      config.Limits
	// before is each snapshot table's rows in the newest committed run that loaded it; accept names the
	// tables allowed to shrink past limits.MaxShrink this run (--accept-shrink).
	before map[string]int64
	accept map[string]bool
	// windowsBefore is, by table, the rows of each window in the newest committed run that fetched it.
	windowsBefore map[string]map[windowKey]int64
	// held are, by table, the units a committed run holds (heldUnits), which the stream skips.
	held map[string]map[string]bool
	obs  Observer // hears of every page a stream hands over (nil: none)
}

// cpu runs CPU-bound work — decoding a body, converting and writing a batch, compressing a large
// evidence body — once a CPU is free; work inside such work runs at once. Taking a page of records
// already decoded (an invoice's detail) needs no CPU of its own: a fan-out stream waiting for one per
// page would hold its fetched pages, and with them its requests, behind the conversions of others.
func (r *streamRun) cpu(work func() error) error {
	took, err := r.acquire(true)
	if err != nil {
		return err
	}
	defer r.letGo(took)
	return work()
}

// acquire takes a CPU for heavy work unless the stream holds one already; letGo(took) gives back
// what it took.
func (r *streamRun) acquire(heavy bool) (took bool, err error) {
	if !heavy || r.holding {
		return false, nil
	}
	if err := r.runEnv.cpu.Acquire(r.ctx, 1); err != nil {
		return false, err
	}
	r.holding = true
	return true, nil
}

// letGo gives back the CPU acquire took, if it took one.
func (r *streamRun) letGo(took bool) {
	if took {
		r.holding = false
		r.runEnv.cpu.Release(1)
	}
}

// largeEvidence is the body size past which storing evidence counts as CPU-bound work (compression).
const largeEvidence = 64 << 10

// streamRun moves one stream from the API to Parquet.
type streamRun struct {
	*runEnv
	s       *sources.Stream
	sinks   map[string]*tableSink
	order   []string
	rejects []typing.Reject
	changes []typing.Change
	prev    *streamCheckpoint // what an earlier attempt of this run committed (nil: none)
	runDate string            // the partition of streams without their own: asked once per record
	notes   notes
	windows []dates.Window // the windows of a windowed stream's pages as sent, in the order first seen
	winRows []int64        // the records each of windows held
	quirks  jsonrec.Quirks
	invalid int    // records whose partition value could not name a directory
	under   string // the partition they went to
	safe    map[string]bool
	failed  int // items that could not be fetched
	inARow  int // items that failed one after another, with no success in between
	ctx     context.Context
	holding bool // this stream holds a CPU (see cpu)

	top          *tableSink      // the stream's own table
	start        time.Time       // when this attempt began
	base         []lake.FileInfo // the files an earlier attempt checkpointed
	basePacks    []lake.PackInfo // the packs an earlier attempt checkpointed
	done         []string        // the units completed, by earlier attempts too (streams with Checkpoints)
	checkpointed time.Time       // when this attempt last committed a checkpoint
	out          streamOutput    // what the stream adds to the manifest: evidence as it is kept, files at the end
	pack         *lake.Pack      // where its evidence is kept: listable once sealed
	files        []lake.FileInfo // the files this attempt wrote, once finished
}

// notes gathers a stream's warnings: each distinct one once, and past maxNotes only a count, so 60
// windows that all answer null make ten lines and "and 50 more".
type notes struct {
	list []string
	seen map[string]bool
	more int
}

const maxNotes = 10

// requestColumn is the column of the reject kept for an item that could not be fetched.
const requestColumn = "_request"

func (n *notes) add(log *slog.Logger, table, msg string) {
	if n.seen[msg] {
		return
	}
	if n.seen == nil {
		n.seen = map[string]bool{}
	}
	n.seen[msg] = true
	if len(n.list) >= maxNotes {
		n.more++
		return
	}
	msg = redact.String(msg)
	n.list = append(n.list, msg)
	log.Warn("stream warning", "table", table, "warning", msg)
}

func (n *notes) report() []string {
	if n.more == 0 {
		return slices.Clone(n.list)
	}
	return append(slices.Clone(n.list), fmt.Sprintf("and %d more warnings like these", n.more))
}

// streamOutput is what a successful stream adds to the run's manifest.
type streamOutput struct {
	files    []lake.FileInfo
	evidence []lake.Evidence
	pdfs     []lake.Evidence
	packs    []lake.PackInfo // the packs it sealed, whole: the commit seals their bytes
}

// runStream moves one stream from the API to Parquet. On failure its files are discarded: the next run
// fetches the stream again, and nothing half-done is ever loaded. Streams with Checkpoints commit their
// files and completed units every env.every, so a run killed mid-stream resumes after the last
// checkpoint (prev) rather than from the start. A read that found the source moving under it
// (sources.MovedError) is discarded and read again from the start, up to sources.Rereads times.
func runStream(ctx context.Context, env *runEnv, s *sources.Stream, prev *streamCheckpoint) (lake.StreamReport, streamOutput, []typing.Reject) {
	for again := 0; ; again++ {
		r := newStreamRun(ctx, env, s, prev)
		err := r.fetch()
		var moved *sources.MovedError
		switch {
		case !errors.As(err, &moved) || ctx.Err() != nil:
			return r.end(err)
		case again == sources.Rereads:
			return r.end(fmt.Errorf("read %d times, and the source changed during each read; the last: %w", again+1, err))
		}
		env.log.Warn("the source changed during the read: reading the stream again from the start", "table", s.TableName(), "reread", again+1, "of", sources.Rereads, "error", redact.String(err.Error()))
		r.discard()
		r.release()
		prev = nil
	}
}

// end reports the stream fetched (err nil) or failed, and releases what it held.
func (r *streamRun) end(err error) (lake.StreamReport, streamOutput, []typing.Reject) {
	defer r.release()
	if err != nil {
		return r.fail(err), streamOutput{}, nil
	}
	rep := r.succeed() // before r.out is read: it completes the output's files
	return rep, r.out, r.rejects
}

// newStreamRun starts a stream's run, from what an earlier attempt of the run checkpointed (prev,
// nil: from the start).
func newStreamRun(ctx context.Context, env *runEnv, s *sources.Stream, prev *streamCheckpoint) *streamRun {
	r := &streamRun{runEnv: env, s: s, sinks: map[string]*tableSink{}, prev: prev, safe: map[string]bool{}, ctx: ctx,
		start: time.Now(), runDate: "run_date=" + env.extracted.Format("2006-01-02"), pack: env.store.Pack(ctx, s.TableName())}
	if prev == nil {
		return r
	}
	r.base, r.basePacks = prev.Files, prev.Packs
	r.out = streamOutput{evidence: slices.Clone(prev.Evidence), pdfs: slices.Clone(prev.PDFs)}
	r.pack.Resume(slices.Concat(prev.Evidence, prev.PDFs))
	r.rejects = slices.Clone(prev.Rejects)
	for _, w := range prev.Report.Warnings {
		r.notes.add(env.log, s.TableName(), w)
	}
	r.done = slices.Clone(prev.Done)
	if s.State != nil {
		s.State.Advance(prev.Next)
		s.State.RestoreMemo(prev.Memo)
	}
	return r
}

// fetch takes every page of the stream, then finishes its files and saves its schemas.
func (r *streamRun) fetch() error {
	s := r.s
	var err error
	if r.top, err = r.sink(s.TableName(), keys{key: s.Key, group: s.Group, ident: s.Ident}, s.Declared, s.MapPaths); err != nil {
		return err
	}
	r.checkpointed = time.Now()
	for page, err := range s.Pages(r.ctx, r.resume()) {
		if err == nil && r.obs != nil {
			r.obs.Page(s, page)
		}
		if err == nil {
			err = r.take(page)
		}
		if err != nil {
			return err
		}
	}
	if err := r.cpu(r.finish); err != nil {
		return err
	}
	if err := r.pack.Seal(); err != nil {
		return err
	}
	if err := r.shrank(r.top.info.Rows); err != nil {
		return err
	}
	if err := r.windowsShrank(); err != nil {
		return err
	}
	return r.saveSchemas()
}

// take converts one page's records (or records the item it failed to fetch), keeps its evidence, and
// commits a checkpoint when one is due.
func (r *streamRun) take(page sources.Page) error {
	if page.Failed != nil {
		return r.failItem(page.Failed)
	}
	sum, err := r.keepRaw(page)
	if err != nil {
		page.Close()
		return err
	}
	if err := r.decode(page, lineage{evidence: sum, window: r.window(page.Window)}); err != nil {
		return err
	}
	if page.Note != "" {
		r.notes.add(r.log, r.s.TableName(), page.Note)
	}
	if page.Done != "" {
		r.inARow = 0
		r.done = append(r.done, strings.Clone(page.Done))
	}
	return r.checkpointIfDue()
}

// decode adds the page's records to the stream's table, on a CPU when the page has a body to decode.
// A body that is JSON null is a warning, not a failure.
func (r *streamRun) decode(page sources.Page, lin lineage) error {
	page.MaxValue = int(r.limits.MaxValueBytes)
	took, err := r.acquire(page.Body != nil)
	if err != nil {
		return err
	}
	n := int64(0)
	q, err := page.Each(func(rec typing.Record) error { n++; return r.add(r.top, rec, lin) })
	r.letGo(took)
	if lin.window >= 0 {
		r.winRows[lin.window] += n
	}
	r.quirks.Add(q)
	if errors.Is(err, jsonrec.ErrNull) {
		r.notes.add(r.log, r.s.TableName(), err.Error())
		return nil
	}
	return err
}

// checkpointIfDue commits the stream's progress when it has Checkpoints and env.every has passed since
// the last commit.
func (r *streamRun) checkpointIfDue() error {
	if !r.s.Checkpoints || r.every <= 0 || time.Since(r.checkpointed) < r.every {
		return nil
	}
	files, err := r.commitSoFar()
	if err != nil {
		return err
	}
	r.checkpoints.put(r.checkpointOf(files))
	r.checkpointed = time.Now()
	return nil
}

// fail discards what the stream wrote and reports why it failed.
func (r *streamRun) fail(err error) lake.StreamReport {
	r.discard()
	rep := lake.StreamReport{Table: r.s.TableName(), Status: "failed", Error: redact.String(fmt.Sprintf("%s: %v", r.s.TableName(), err))}
	rep.Seconds = time.Since(r.start).Seconds()
	fillStats(&rep, r.s, r.prev)
	return rep
}

// discard removes the stream's checkpoint and every file and evidence pack this attempt and the
// earlier ones it resumed wrote, which no manifest will list — unless the lake's lock is no longer
// this run's: the run that took the lake over may have adopted the checkpoint, and its manifest lists
// those files now. They are then left to the sweeps of later runs, which remove what no claim names.
func (r *streamRun) discard() {
	// Not cut short by an interruption (the usual reason to get here), which would leave everything
	// to the next run's sweep.
	cleanup := context.WithoutCancel(r.ctx)
	if err := r.st.Held(cleanup); err != nil {
		r.log.Warn("the stream's files are left in the lake: the lock is not this run's", "table", r.s.TableName(), "error", err)
		return
	}
	// What this attempt wrote, and what the earlier ones it resumed did (base): theirs carry this
	// run's id, so once the run commits nothing would remove them, and verify would name them as
	// added to the run.
	var files []lake.FileInfo
	for _, f := range r.base {
		if lake.RunsFile(f.Path, r.runID) {
			files = append(files, f)
		}
	}
	for _, ts := range r.sinks {
		ts.w.Abort()
		written, _ := ts.w.Close()
		files = append(files, written...)
	}
	// The checkpoint goes first: a crash in between leaves unlisted files, which are removed as
	// orphans, never a checkpoint naming deleted files.
	if err := r.checkpoints.remove(cleanup, r.s.TableName()); err != nil {
		r.log.Warn("the stream's files are left in the lake: its checkpoint, which lists them, could not be removed", "table", r.s.TableName(), "error", err)
		r.pack.Abort() // only what no checkpoint lists
		return
	}
	for _, f := range files {
		_ = r.st.Remove(cleanup, f.Path)
	}
	r.pack.Discard() // the evidence it and its earlier attempts sealed that no other stream lists
}

// succeed reports the finished stream and commits it whole: a crash before the run's manifest does
// not fetch it again.
func (r *streamRun) succeed() lake.StreamReport {
	r.noteOddities()
	r.out.files = append(slices.Clone(r.base), r.files...)
	r.out.packs = r.packs()
	rep := lake.StreamReport{Table: r.s.TableName(), Status: "ok", Seconds: time.Since(r.start).Seconds()}
	if r.prev != nil {
		rep.Seconds += r.prev.Report.Seconds
		rep.Resumed = true
	}
	rep.Rows = r.top.info.Rows
	rep.Rejects = len(r.rejects)
	rep.FailedItems = r.failed
	for _, c := range r.changes {
		rep.SchemaChanges = append(rep.SchemaChanges, c.String())
	}
	rep.Tables = r.tables()
	rep.Warnings = r.notes.report()
	rep.Windows, rep.WindowRows = slices.Clone(r.windows), slices.Clone(r.winRows)
	fillStats(&rep, r.s, r.prev)
	ck := &streamCheckpoint{Table: r.s.TableName(), Complete: true, Report: rep, Files: r.out.files, Evidence: r.out.evidence, PDFs: r.out.pdfs, Packs: r.out.packs, Rejects: r.rejects}
	if r.s.State != nil {
		ck.Next, ck.Memo = r.s.State.Next(), r.s.State.NextMemo()
	}
	r.checkpoints.put(ck)
	return rep
}

// resume tells the stream's pages to skip the units a committed run holds and those an earlier
// attempt of this run checkpointed.
func (r *streamRun) resume() sources.Resume {
	held := r.held[r.s.TableName()]
	checkpointed := make(map[string]bool, len(r.done))
	for _, d := range r.done {
		checkpointed[d] = true
	}
	return sources.Resume{Done: func(unit string) bool { return held[unit] || checkpointed[unit] }}
}

// maxInARow is how many items may fail one after another before the stream stops: then the API is
// failing, not the items, and asking on would only wait out every item's retries.
const maxInARow = 20

// failItem records an item the source could not fetch: a reject naming it and why, and, where asking
// again may succeed, an item for the next run to ask for (State.Pending).
func (r *streamRun) failItem(f *sources.Failure) error {
	r.failed++
	r.inARow++
	msg := redact.String(f.Err.Error())
	if r.inARow >= maxInARow {
		return fmt.Errorf("%d items failed one after another, the last %s: %s", r.inARow, f.Item, msg)
	}
	reason := "could not be fetched; the next run asks for it again"
	if !f.Retry {
		reason = "cannot be fetched"
	} else if r.s.State != nil {
		r.s.State.Fail(f.Item, f.Date)
	}
	r.rejects = append(r.rejects, typing.Reject{Stream: r.s.TableName(), Key: redact.String(f.Item), Column: requestColumn, Raw: msg, Reason: reason})
	r.log.Warn("item failed", "table", r.s.TableName(), "item", f.Item, "error", msg)
	return nil
}

// keepRaw stores the page's response as evidence where the stream keeps it (every PDF is kept), and
// returns its sha256 for the rows it produced. A large body is compressed on a CPU (see cpu).
func (r *streamRun) keepRaw(page sources.Page) (string, error) {
	raw := page.Raw
	if raw == nil || !(r.s.Evidence || raw.PDF) {
		return "", nil
	}
	took, err := r.acquire(raw.Body.Len() > largeEvidence)
	if err != nil {
		return "", err
	}
	defer r.letGo(took)
	put := r.pack.PutJSON
	if raw.PDF {
		put = r.pack.PutPDF
	}
	e, err := put(raw.Body)
	if raw.Body != page.Body {
		raw.Body.Close()
	}
	if err != nil {
		return "", err
	}
	// Kept until the run ends: copied, as a decoded value shares its memory with its neighbours.
	e.Table, e.Endpoint, e.Key = r.s.TableName(), raw.Endpoint, strings.Clone(raw.Key)
	if raw.PDF {
		r.out.pdfs = append(r.out.pdfs, e)
	} else {
		r.out.evidence = append(r.out.evidence, e)
	}
	return e.SHA256, nil
}

// shrank reports, for a snapshot stream, a new snapshot that falls to zero rows or by more than
// max_shrink from the newest committed one, unless --accept-shrink names it.
func (r *streamRun) shrank(rows int64) error {
	name := r.s.TableName()
	prev, ok := r.before[name]
	if r.s.Mode != sources.Snapshot || !ok || prev == 0 || r.accept[name] {
		return nil
	}
	if rows > 0 && !r.pastMaxShrink(prev, rows) {
		return nil
	}
	return fmt.Errorf("the new snapshot has %d rows, down from %d (more than max_shrink %s): it is not committed and the current state stays as it was; if the API really holds fewer, run again with --accept-shrink %s",
		rows, prev, r.limits.MaxShrink, name)
}

// pastMaxShrink reports whether rows falling from was to now fall by more than max_shrink allows.
func (r *streamRun) pastMaxShrink(was, now int64) bool {
	return float64(was-now) > float64(r.limits.MaxShrink)/100*float64(was)
}

// windowsShrank reports, for a windowed stream, windows fetched again that replace rows with none, or
// together with fewer than max_shrink allows, unless --accept-shrink names the stream: a window
// answered null or empty by a server having a bad night would otherwise erase its rows from the current
// state. Windows no committed run recorded the rows of are not compared.
func (r *streamRun) windowsShrank() error {
	name := r.s.TableName()
	before := r.windowsBefore[name]
	if r.accept[name] || len(before) == 0 {
		return nil
	}
	var was, now int64
	var emptied []string
	for i, w := range r.windows {
		prev, ok := before[keyOf(w)]
		if !ok {
			continue
		}
		was, now = was+prev, now+r.winRows[i]
		if prev > 0 && r.winRows[i] == 0 {
			emptied = append(emptied, fmt.Sprintf("%s..%s (%d rows before)", w.Start.Format(time.DateOnly), w.End.Format(time.DateOnly), prev))
		}
	}
	switch {
	case len(emptied) > 0:
		return fmt.Errorf("%d windows fetched again came back with no rows: %s; they are not committed and the current state stays as it was; if the API really holds none, run again with --accept-shrink %s",
			len(emptied), strings.Join(emptied, ", "), name)
	case was > 0 && r.pastMaxShrink(was, now):
		return fmt.Errorf("the windows fetched again hold %d rows, down from %d (more than max_shrink %s): they are not committed and the current state stays as it was; if the API really holds fewer, run again with --accept-shrink %s",
			now, was, r.limits.MaxShrink, name)
	}
	return nil
}

// window returns the index of w among the stream's windows (-1 for none), adding it when new.
func (r *streamRun) window(w *dates.Window) int32 {
	if w == nil || !r.s.Windowed {
		return -1
	}
	if i := slices.Index(r.windows, *w); i >= 0 {
		return int32(i)
	}
	r.windows = append(r.windows, *w)
	r.winRows = append(r.winRows, 0)
	return int32(len(r.windows) - 1)
}

// noteOddities adds to the warnings what the stream met without failing: decoding quirks, dates past
// the run's start, partition values that could not name a directory.
func (r *streamRun) noteOddities() {
	name := r.s.TableName()
	for _, n := range r.quirks.Notes() {
		r.notes.add(r.log, name, n)
	}
	if r.s.State != nil {
		for _, n := range r.s.State.Odd() {
			r.notes.add(r.log, name, n)
		}
	}
	if r.invalid > 0 {
		r.notes.add(r.log, name, fmt.Sprintf("%d records have a value that cannot name a partition: they are under %s", r.invalid, r.under))
	}
	r.noteRejects()
}

// noteRejects names each column with values that are NULL in its table for fitting no type the column
// can take: a count in the report's table is easily missed, and the value the API sent is not in the
// table. Items that could not be fetched (column _request) have their own line.
func (r *streamRun) noteRejects() {
	type column struct{ table, name string }
	type tally struct {
		count  int
		reason string // the first value's
	}
	seen := map[column]*tally{}
	var order []column
	for _, j := range r.rejects {
		c := column{j.Stream, j.Column}
		if c.name == requestColumn {
			continue
		}
		if seen[c] == nil {
			seen[c] = &tally{reason: j.Reason}
			order = append(order, c)
		}
		seen[c].count++
	}
	for _, c := range order {
		r.notes.add(r.log, r.s.TableName(), fmt.Sprintf("%s.%s: %d values fit no type the column can take (%s) and are NULL in the table; each is in _ledgerlake_rejects with its raw value",
			c.table, c.name, seen[c].count, seen[c].reason))
	}
}

// tables is the stream's tables with their rows so far, including tables only an earlier attempt wrote.
func (r *streamRun) tables() []lake.TableInfo {
	var out []lake.TableInfo
	for _, name := range r.order {
		out = append(out, r.sinks[name].info)
	}
	if r.prev != nil {
		for _, t := range r.prev.Report.Tables {
			if r.sinks[t.Name] == nil {
				out = append(out, t)
			}
		}
	}
	return out
}

// commitSoFar converts every pending record and commits the open part files (later rows go to new
// parts), returning every file this attempt has committed.
func (r *streamRun) commitSoFar() ([]lake.FileInfo, error) {
	if err := r.pack.Seal(); err != nil {
		return nil, err
	}
	if err := r.flushAll(); err != nil {
		return nil, err
	}
	var files []lake.FileInfo
	for _, name := range r.order {
		ts := r.sinks[name]
		fs, err := ts.w.Close()
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
		r.takeRejects(ts)
	}
	// Later attempts start from these schemas, so files they add are never narrower.
	return files, r.saveSchemas()
}

// packs are the packs the stream has sealed, in earlier attempts too.
func (r *streamRun) packs() []lake.PackInfo { return slices.Concat(r.basePacks, r.pack.Sealed()) }

// checkpointOf is the stream's progress so far, with files the parts this attempt has committed.
func (r *streamRun) checkpointOf(files []lake.FileInfo) *streamCheckpoint {
	ck := &streamCheckpoint{Table: r.s.TableName(), Done: r.done, Files: append(slices.Clone(r.base), files...),
		Evidence: r.out.evidence, PDFs: r.out.pdfs, Packs: r.packs(), Rejects: r.rejects}
	ck.Report = lake.StreamReport{Table: ck.Table, Tables: r.tables(), Seconds: time.Since(r.start).Seconds(), Warnings: r.notes.report()}
	fillStats(&ck.Report, r.s, r.prev)
	if r.prev != nil {
		ck.Report.Seconds += r.prev.Report.Seconds
	}
	if r.s.State != nil {
		ck.Next, ck.Memo = r.s.State.Next(), r.s.State.NextMemo()
	}
	return ck
}

func fillStats(rep *lake.StreamReport, s *sources.Stream, prev *streamCheckpoint) {
	t := s.Traffic()
	rep.Requests, rep.Retries, rep.Throttled, rep.Bytes = t.Requests, t.Retries, t.Throttled, t.Bytes
	if prev != nil {
		rep.Requests += prev.Report.Requests
		rep.Retries += prev.Report.Retries
		rep.Throttled += prev.Report.Throttled
		rep.Bytes += prev.Report.Bytes
	}
}
