// Package parquet writes typed snapshots as Parquet files (zstd, Arrow schema stored) that appear
// atomically in a hive-style layout under the output directory, and the run manifest that lists every
// file with its rows, bytes, sha256 and schema fingerprint. Snapshots are append-only: a run only ever
// adds files, named with its run id.
package parquet

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path"
	"sort"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// Fingerprint identifies a schema by its column names and types (metadata excluded).
func Fingerprint(s *arrow.Schema) string {
	h := sha256.New()
	for _, f := range s.Fields() {
		fmt.Fprintf(h, "%s:%s:%v;", f.Name, f.Type, f.Nullable)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// StreamWriter writes one table's batches of one run into part files, one open file per hive partition
// (<table>/<partition>/<run id>[-r<resume>]-<seq>.parquet), rolling to a new part after MaxRowsPerFile rows.
type StreamWriter struct {
	ctx          context.Context // NewStreamWriter's: it bounds creating and publishing the files
	files        Creator
	table, runID string
	schema       *arrow.Schema
	// MaxRowsPerFile bounds a part file (0 = 1,000,000); row groups hold up to 32k rows.
	MaxRowsPerFile int64
	// Resume is the attempt of a run resumed after a crash (0 = first): it goes into the file names, so
	// an attempt never overwrites the parts an earlier one committed.
	Resume int

	open    map[string]*partFile
	seq     map[string]int
	written []lake.FileInfo
	buf     *bufio.Writer // finishing a file: shared, as a stream finishes one file at a time
}

// Creator starts part files by key (a lake.Store).
type Creator interface {
	Create(ctx context.Context, key string) (lake.File, error)
}

type partFile struct {
	f    lake.File
	fw   *pqarrow.FileWriter
	hash hash.Hash
	cw   *countingWriter
	rel  string
	rows int64
}

// NewStreamWriter prepares a writer for table (e.g. "signicat_accounts") whose files files creates
// while ctx lasts.
func NewStreamWriter(ctx context.Context, files Creator, table, runID string, schema *arrow.Schema) *StreamWriter {
	return &StreamWriter{ctx: ctx, files: files, table: table, runID: runID, schema: schema, MaxRowsPerFile: 1_000_000,
		open: map[string]*partFile{}, seq: map[string]int{}}
}

// SetSchema switches the writer to a widened schema: files open with the old one are committed first, so
// every file is self-describing. Field metadata counts (a column's field id is in its footer).
func (w *StreamWriter) SetSchema(s *arrow.Schema) error {
	if s.Equal(w.schema) {
		return nil
	}
	parts := make([]string, 0, len(w.open))
	for p := range w.open {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	for _, p := range parts {
		pf := w.open[p]
		delete(w.open, p)
		if err := w.commit(p, pf); err != nil {
			return err
		}
	}
	w.schema = s
	return nil
}

// Write appends a batch to the partition's current file ("" = unpartitioned, else e.g.
// "invoice_month=2024-01").
func (w *StreamWriter) Write(partition string, rec arrow.RecordBatch) error {
	if rec.NumRows() == 0 {
		return nil
	}
	pf := w.open[partition]
	if pf == nil {
		var err error
		if pf, err = w.create(partition); err != nil {
			return err
		}
		w.open[partition] = pf
	}
	if err := pf.fw.WriteBuffered(rec); err != nil {
		return fmt.Errorf("parquet: write %s: %w", pf.rel, err)
	}
	pf.rows += rec.NumRows()
	if pf.rows >= w.MaxRowsPerFile {
		delete(w.open, partition)
		return w.commit(partition, pf)
	}
	return nil
}

// WriteLast writes rec as the last rows of partition and finishes the partition's file. Every open
// file holds its buffered row group in memory until it is finished: a stream's last flush writes each
// of its (say 84 monthly) partitions once, and finishing each at once keeps one of them in memory,
// not all.
func (w *StreamWriter) WriteLast(partition string, rec arrow.RecordBatch) error {
	if err := w.Write(partition, rec); err != nil {
		return err
	}
	pf := w.open[partition]
	if pf == nil {
		return nil // finished by Write (MaxRowsPerFile), or nothing was ever written to it
	}
	delete(w.open, partition)
	return w.commit(partition, pf)
}

// WriteEmpty writes a file with the schema and no rows, so an empty snapshot still defines its table.
func (w *StreamWriter) WriteEmpty(partition string, rec arrow.RecordBatch) error {
	if w.open[partition] != nil {
		return nil
	}
	pf, err := w.create(partition)
	if err != nil {
		return err
	}
	w.open[partition] = pf
	return pf.fw.Write(rec)
}

func (w *StreamWriter) create(partition string) (*partFile, error) {
	n := w.seq[partition]
	w.seq[partition] = n + 1
	name := fmt.Sprintf("%s-%05d.parquet", w.runID, n)
	if w.Resume > 0 {
		name = fmt.Sprintf("%s-r%d-%05d.parquet", w.runID, w.Resume, n)
	}
	rel := path.Join(w.table, partition, name)
	f, err := w.files.Create(w.ctx, rel)
	if err != nil {
		return nil, fmt.Errorf("parquet: %w", err)
	}
	h := sha256.New()
	cw := &countingWriter{out: io.MultiWriter(f, h)}
	cw.w = cw.out
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Zstd),
		// A buffered row group stays in memory (compressed) until it is full: 32k rows bounds what an
		// open part file holds, whatever the stream's size (128k made RSS grow with the data).
		parquet.WithMaxRowGroupLength(32*1024),
		parquet.WithCreatedBy("ledgerlake"),
		// Dictionary pages cost a hash per value and, measured on the sandbox's streams (make bench),
		// made files larger than plain zstd pages: most text columns are ids, names and timestamps.
		parquet.WithDictionaryDefault(false),
	)
	fw, err := pqarrow.NewFileWriter(w.schema, cw, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Abort()
		return nil, fmt.Errorf("parquet: %s: %w", rel, err)
	}
	return &partFile{f: f, fw: fw, hash: h, cw: cw, rel: rel}, nil
}

func (w *StreamWriter) commit(partition string, pf *partFile) error {
	// Finishing writes every page of the buffered row group and the footer as many small writes (a
	// page header, a page, a column's metadata): a buffer makes them a few system calls per file.
	if w.buf == nil {
		w.buf = bufio.NewWriterSize(pf.cw.out, 64<<10)
	}
	w.buf.Reset(pf.cw.out)
	pf.cw.w = w.buf
	// Close finalises the footer; its error is the file's validity.
	err := pf.fw.Close()
	if err == nil {
		err = w.buf.Flush()
	}
	pf.cw.w = pf.cw.out
	if err != nil {
		pf.f.Abort()
		return fmt.Errorf("parquet: finish %s: %w", pf.rel, err)
	}
	// Published without an fsync per file (a stream can write hundreds of partitions): the pipeline
	// makes them durable with one syncfs before a checkpoint or manifest lists them.
	if err := pf.f.Publish(); err != nil {
		return fmt.Errorf("parquet: commit %s: %w", pf.rel, err)
	}
	w.written = append(w.written, lake.FileInfo{
		Path: pf.rel, Table: w.table, Partition: partition, Rows: pf.rows, Bytes: pf.cw.n,
		SHA256: hex.EncodeToString(pf.hash.Sum(nil)), SchemaFingerprint: Fingerprint(w.schema),
	})
	return nil
}

// Close commits every open file and returns all files written, sorted by path.
func (w *StreamWriter) Close() ([]lake.FileInfo, error) {
	parts := make([]string, 0, len(w.open))
	for p := range w.open {
		parts = append(parts, p)
	}
	sort.Strings(parts)
	var firstErr error
	for _, p := range parts {
		if err := w.commit(p, w.open[p]); err != nil && firstErr == nil {
			firstErr = err
		}
		delete(w.open, p)
	}
	sort.Slice(w.written, func(i, j int) bool { return w.written[i].Path < w.written[j].Path })
	return w.written, firstErr
}

// Abort discards files not yet committed. Committed files stay: they are complete, and the manifest
// decides whether a run counts.
func (w *StreamWriter) Abort() {
	for p, pf := range w.open {
		_ = pf.fw.Close()
		pf.f.Abort()
		delete(w.open, p)
	}
}

// countingWriter counts what reaches out (the file and its hash), through w: out itself, or a buffer
// in front of it while the file is finished.
type countingWriter struct {
	w, out io.Writer
	n      int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
