// A stream writes its records through table sinks: its own table and one per array of objects, each
// converting batches of records to Arrow and writing them as Parquet parts, partition by partition.

package pipeline

import (
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/parquet"
	"github.com/ledgerlake/ledgerlake/internal/sources"
	"github.com/ledgerlake/ledgerlake/internal/typing"
	"github.com/ledgerlake/ledgerlake/schemas"
)

// tableSink is one table a stream writes: its own, or a child table of an array of objects.
type tableSink struct {
	info    lake.TableInfo
	maps    []string // API paths kept as maps, relative to this table's records
	fresh   bool     // an inferred table seen for the first time: discovering its columns is not news
	sch     *typing.Schema
	conv    *typing.Converter
	w       *parquet.StreamWriter
	pending []typing.Record
	pendLin []lineage // with evidence or windows: each pending record's
	// unlinked counts the records whose child rows carry no parent link: the fields that identify a
	// record (its key or ident) were missing, so the rows cannot be joined back to it.
	unlinked int64
}

// lineage is a record's values of the lineage columns beyond its run's: the response body (evidence
// streams, _evidence_sha256) and the date window (windowed streams, _window_start and _window_end, as
// an index into streamRun.windows; -1 for none).
type lineage struct {
	evidence string
	window   int32
}

// keys are the identifying columns of a table (see sources.Stream): the key in force, what replaces
// older rows of an incremental table, and the ident that links child rows and names rejects.
type keys struct {
	key, group, ident []string
}

// sink returns the sink of table, starting its schema from the declared one and the persisted one.
func (r *streamRun) sink(table string, k keys, declared *schemas.Table, mapPaths []string) (*tableSink, error) {
	if ts := r.sinks[table]; ts != nil {
		return ts, nil
	}
	var persisted typing.Schema
	found, err := lake.ReadJSON(r.ctx, r.st, lake.SchemaDir, table, &persisted)
	if err != nil {
		return nil, err
	}
	prev := &persisted
	if !found {
		prev = nil
	}
	// The schema's key links child rows and names rejects: the key in force, else the ident.
	link := k.key
	if len(link) == 0 {
		link = k.ident
	}
	sch, err := typing.NewSchema(table, link, declared, prev, mapPaths)
	if err != nil {
		return nil, err
	}
	sch.Evidence = r.s.Evidence && table == r.s.TableName()
	sch.Window = r.s.Windowed
	ts := &tableSink{info: lake.TableInfo{Name: table, Key: k.key, Group: k.group, Incremental: r.s.Mode == sources.Incremental, Windowed: r.s.Windowed},
		sch: sch, maps: mapPaths, fresh: !found && declared == nil}
	if r.prev != nil {
		ts.info.Rows = r.prev.rows(table)
	}
	ts.w = parquet.NewStreamWriter(r.ctx, r.st, table, r.runID, sch.Arrow())
	ts.w.Resume = r.resumes
	r.sinks[table] = ts
	r.order = append(r.order, table)
	return ts, nil
}

func (r *streamRun) add(ts *tableSink, rec typing.Record, lin lineage) error {
	ts.pending = append(ts.pending, rec)
	if ts.sch.Evidence || ts.sch.Window {
		ts.pendLin = append(ts.pendLin, lin)
	}
	if len(ts.pending) >= r.batchRows {
		return r.flush(ts, false)
	}
	return nil
}

// flush converts the pending records and writes them, one batch per partition, and hands their child
// arrays to the child tables. A settled schema takes them in one pass (TryAppend); a batch with anything
// new widens the schema first (Observe) and is converted again from the start. With last, no rows follow
// for the table: each partition's file is finished as soon as it is written.
func (r *streamRun) flush(ts *tableSink, last bool) error {
	if len(ts.pending) == 0 {
		return nil
	}
	took, err := r.acquire(true)
	if err != nil {
		return err
	}
	defer r.letGo(took)
	recs, lins := ts.pending, ts.pendLin
	ts.pending, ts.pendLin = nil, nil
	parts, order := r.partitions(recs)
	batches, ok := r.convertBatches(ts.conv, recs, lins, parts, order, true)
	if !ok {
		if ts.conv != nil {
			r.takeRejects(ts)
			ts.conv.Release()
		}
		ts.sch.Observe(recs)
		ts.conv = typing.NewConverter(memory.DefaultAllocator, ts.sch, r.runID, r.extracted)
		if err := ts.w.SetSchema(ts.conv.Schema()); err != nil {
			return err
		}
		batches, _ = r.convertBatches(ts.conv, recs, lins, parts, order, false)
	}
	if err := r.feedChildren(ts, recs, lins); err != nil {
		for _, b := range batches {
			b.Release()
		}
		return err
	}
	for i, p := range order {
		if err == nil {
			ts.info.Rows += batches[i].NumRows()
			if last {
				err = ts.w.WriteLast(p, batches[i])
			} else {
				err = ts.w.Write(p, batches[i])
			}
		}
		batches[i].Release()
	}
	return err
}

// partitions groups recs by partition: the indexes of each partition's records, and the partitions in
// the order first seen.
func (r *streamRun) partitions(recs []typing.Record) (map[string][]int, []string) {
	parts := map[string][]int{}
	var order []string
	for i, rec := range recs {
		p := r.partition(rec)
		if _, ok := parts[p]; !ok {
			order = append(order, p)
		}
		parts[p] = append(parts[p], i)
	}
	return parts, order
}

// feedChildren hands the child arrays of recs (ts's records) to their child tables, each child row in
// its parent's window.
func (r *streamRun) feedChildren(ts *tableSink, recs []typing.Record, lins []lineage) error {
	kids := map[string]*tableSink{} // by child path: naming a child table takes a regexp
	for i, rec := range recs {
		lin := lineage{window: -1}
		if lins != nil {
			lin.window = lins[i].window // children come from the parent's window; evidence stays on the parent
		}
		for path, children := range ts.sch.ChildRecords(rec) {
			child := kids[path]
			if child == nil {
				var childMaps []string
				for _, m := range ts.maps {
					if rest, ok := strings.CutPrefix(m, path+"."); ok {
						childMaps = append(childMaps, rest)
					}
				}
				var err error
				if child, err = r.sink(ts.sch.Child(path), r.childKeys(ts), nil, childMaps); err != nil {
					return err
				}
				kids[path] = child
			}
			if unlinked(children[0], child.sch.Key) {
				ts.unlinked++
			}
			for _, c := range children {
				if err := r.add(child, c, lin); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// unlinked reports whether a child row cannot be joined to its parent: its table's link (_parent_ columns
// and _position) has no parent column, or the row lacks a value in one.
func unlinked(child typing.Record, link []string) bool {
	parents := 0
	for _, c := range link {
		if strings.HasPrefix(c, "_parent_") {
			parents++
			if child[c] == nil {
				return true
			}
		}
	}
	return parents == 0
}

// childKeys are the keys of a child table of ts: its parent's link columns (_parent_<k>) and _position.
// They are in force only where the parent's key is, and an incremental parent's newer fetch replaces
// all of its children.
func (r *streamRun) childKeys(ts *tableSink) keys {
	k := keys{ident: ts.sch.ChildKey()}
	if len(ts.info.Key) > 0 {
		k.key = k.ident
		k.group = k.ident[:len(k.ident)-1]
	}
	return k
}

// convertBatches appends recs partition by partition (in order) and returns one batch per partition.
// With try it uses TryAppend and gives up at the first record the schema does not hold: what it built is
// dropped, the converter's rejects are as before, and the caller replaces the converter.
func (r *streamRun) convertBatches(conv *typing.Converter, recs []typing.Record, lins []lineage, parts map[string][]int, order []string, try bool) ([]arrow.RecordBatch, bool) {
	if conv == nil {
		return nil, false
	}
	mark := len(conv.Rejects)
	batches := make([]arrow.RecordBatch, 0, len(order))
	for _, p := range order {
		conv.Reserve(len(parts[p]))
		for _, i := range parts[p] {
			if lins != nil {
				conv.SetEvidence(lins[i].evidence)
				if w := lins[i].window; w >= 0 {
					conv.SetWindow(r.windows[w].Start, r.windows[w].End)
				} else {
					conv.SetWindow(time.Time{}, time.Time{})
				}
			}
			if !try {
				conv.Append(recs[i])
			} else if !conv.TryAppend(recs[i]) {
				for _, b := range batches {
					b.Release()
				}
				conv.Rejects = conv.Rejects[:mark]
				return nil, false
			}
		}
		batches = append(batches, conv.Flush())
	}
	return batches, true
}

func (r *streamRun) partition(rec typing.Record) string {
	if r.s.Partition == nil {
		return r.runDate
	}
	p := r.s.Partition(rec)
	if r.safe[p] {
		return p
	}
	if !lake.ValidPartition(p) {
		// The source checks its values; this holds whatever a source returns.
		key, _, _ := strings.Cut(p, "=")
		if !lake.ValidPartition(key + "=x") {
			key = "partition"
		}
		p = sources.InvalidPartition(key)
	}
	if strings.HasSuffix(p, "=invalid") {
		r.invalid, r.under = r.invalid+1, p
	} else {
		r.safe[p] = true // a stream has a partition per month: checked once each
	}
	return p
}

// flushAll converts every table's pending records, children last (flushing a parent feeds them, and
// the loop sees tables added while it runs), and finishes the files it writes to.
func (r *streamRun) flushAll() error {
	for i := 0; i < len(r.order); i++ {
		if err := r.flush(r.sinks[r.order[i]], true); err != nil {
			return err
		}
	}
	return nil
}

// finish flushes every table (children last, as flushing a parent feeds them) and writes an empty file
// for a table without rows so it still exists with its declared columns.
func (r *streamRun) finish() error {
	if err := r.flushAll(); err != nil {
		return err
	}
	for _, name := range r.order {
		ts := r.sinks[name]
		if ts.info.Rows == 0 {
			if ts.conv == nil {
				ts.conv = typing.NewConverter(memory.DefaultAllocator, ts.sch, r.runID, r.extracted)
				if err := ts.w.SetSchema(ts.conv.Schema()); err != nil {
					return err
				}
			}
			empty := ts.conv.Flush()
			err := ts.w.WriteEmpty(r.partition(nil), empty)
			empty.Release()
			if err != nil {
				return err
			}
		}
		fs, err := ts.w.Close()
		if err != nil {
			return err
		}
		r.files = append(r.files, fs...)
		r.takeRejects(ts)
		if ts.unlinked > 0 {
			what := "no field that identifies them (set a key in sources.<source>.keys)"
			if len(ts.sch.Key) > 0 {
				what = "no value in " + strings.Join(ts.sch.Key, ", ")
			}
			r.notes.add(r.log, r.s.TableName(), fmt.Sprintf("%d records of %s have child rows but %s: those rows are kept, without a link to their parent", ts.unlinked, name, what))
		}
		for _, c := range ts.sch.TakeChanges(r.runID) {
			// A table's first run discovers all its columns; only widenings (and columns whose values
			// came after records without them) are worth a report then.
			if !ts.fresh || c.From != "" {
				r.changes = append(r.changes, c)
			}
		}
	}
	return nil
}

// saveSchemas persists every table's schema (after finish; apart from it, as each write waits for
// the disk and finish holds a CPU).
func (r *streamRun) saveSchemas() error {
	for _, name := range r.order {
		if err := lake.WriteJSON(r.ctx, r.st, lake.SchemaDir, name, r.sinks[name].sch); err != nil {
			return err
		}
	}
	return nil
}

// takeRejects moves the converter's rejects to the stream's (before the converter is replaced).
func (r *streamRun) takeRejects(ts *tableSink) {
	if ts.conv != nil {
		r.rejects = append(r.rejects, ts.conv.Rejects...)
		ts.conv.Rejects = nil
	}
}

func (r *streamRun) release() {
	r.pack.Abort()
	for _, ts := range r.sinks {
		ts.w.Abort()
		if ts.conv != nil {
			ts.conv.Release()
		}
	}
}
