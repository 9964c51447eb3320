package parquet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
	"github.com/klauspost/compress/zstd"

	"github.com/ledgerlake/ledgerlake/internal/durable"
	"github.com/ledgerlake/ledgerlake/internal/lake"
)

// TestMain registers the page codec as main does; run with LEDGERLAKE_TEST_CODEC=1, it instead
// prints the zstd codec of a process that imports this package and calls nothing.
func TestMain(m *testing.M) {
	if os.Getenv("LEDGERLAKE_TEST_CODEC") == "1" {
		codec, err := compress.GetCodec(compress.Codecs.Zstd)
		fmt.Printf("%T %v\n", codec, err)
		os.Exit(0)
	}
	if err := RegisterZstd(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// Importing the package changes no process-wide codec: until RegisterZstd, zstd is arrow-go's own.
func TestImportRegistersNoCodec(t *testing.T) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "LEDGERLAKE_TEST_CODEC=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := strings.TrimSpace(string(out)); strings.Contains(got, "pageCodec") || !strings.HasSuffix(got, "<nil>") {
		t.Errorf("a process that registered nothing has zstd codec %q", got)
	}
	if err := RegisterZstd(); err != nil { // again: a no-op
		t.Fatal(err)
	}
	if codec, _ := compress.GetCodec(compress.Codecs.Zstd); fmt.Sprintf("%T", codec) != "parquet.pageCodec" {
		t.Errorf("after RegisterZstd twice, the zstd codec is %T", codec)
	}
}

func TestPagesAreCompressedWithAPageSizedWindow(t *testing.T) {
	codec, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := codec.(pageCodec); !ok {
		t.Fatalf("the registered zstd codec is %T", codec)
	}
	var page bytes.Buffer
	for i := 0; page.Len() < 3<<20; i++ { // larger than the window
		fmt.Fprintf(&page, "INV-%08d|2024-%02d-01|%d.%02d;", i, 1+i%12, i%9973, i%100)
	}
	enc := codec.EncodeLevel(nil, page.Bytes(), compress.DefaultCompressionLevel)
	var h zstd.Header
	if err := h.Decode(enc); err != nil {
		t.Fatal(err)
	}
	if h.WindowSize > pageWindow {
		t.Errorf("frame window %d, want at most %d", h.WindowSize, pageWindow)
	}
	dec, err := compress.Decode(codec, nil, enc)
	if err != nil || !bytes.Equal(dec, page.Bytes()) {
		t.Fatalf("round trip: %d of %d bytes, %v", len(dec), page.Len(), err)
	}
	if len(enc) > page.Len()/3 {
		t.Errorf("compressed %d → %d bytes", page.Len(), len(enc))
	}
}

func TestWrittenFilesReadBack(t *testing.T) {
	root := t.TempDir()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "note", Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	const rows = 100_000
	for i := range rows {
		b.Field(0).(*array.Int64Builder).Append(int64(i))
		b.Field(1).(*array.StringBuilder).Append(fmt.Sprintf("note %d for invoice %d", i%977, i))
	}
	rec := b.NewRecordBatch()
	defer rec.Release()
	w := NewStreamWriter(t.Context(), lake.Dir(root), "t", "run1", schema)
	// Two partitions open at once; the rows span several row groups, so the file is written both while
	// it fills (a full row group) and when it is finished (through the finishing buffer).
	for _, p := range []string{"p=a", "p=b"} {
		if err := w.Write(p, rec); err != nil {
			t.Fatal(err)
		}
	}
	files, err := w.Close()
	if err != nil || len(files) != 2 {
		t.Fatalf("%v %v", files, err)
	}
	for _, fi := range files {
		// The manifest's size and hash are what reached the disk.
		b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(fi.Path)))
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); int64(len(b)) != fi.Bytes || hex.EncodeToString(sum[:]) != fi.SHA256 {
			t.Fatalf("%s: %d bytes, sha256 %x on disk; recorded %d, %s", fi.Path, len(b), sum, fi.Bytes, fi.SHA256)
		}
	}
	tbl := readTable(t, filepath.Join(root, filepath.FromSlash(files[1].Path)))
	defer tbl.Release()
	if tbl.NumRows() != rows {
		t.Fatalf("%d rows", tbl.NumRows())
	}
	var sum int64
	var last string
	for _, c := range tbl.Column(0).Data().Chunks() {
		for _, v := range c.(*array.Int64).Int64Values() {
			sum += v
		}
	}
	chunks := tbl.Column(1).Data().Chunks()
	lc := chunks[len(chunks)-1].(*array.String)
	last = lc.Value(lc.Len() - 1)
	if sum != rows*(rows-1)/2 || last != fmt.Sprintf("note %d for invoice %d", (rows-1)%977, rows-1) {
		t.Errorf("sum %d, last note %q", sum, last)
	}
}

// WriteLast finishes the partition's file at once (a stream's last flush then holds one partition's row
// group in memory, not all), and the file is the one Write and Close would have made, byte for byte.
func TestWriteLastFinishesThePartitionAtOnce(t *testing.T) {
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}}, nil)
	batch := func(from, n int) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for i := range n {
			b.Field(0).(*array.Int64Builder).Append(int64(from + i))
		}
		return b.NewRecordBatch()
	}
	first, second := batch(0, 300), batch(300, 200)
	defer first.Release()
	defer second.Release()
	finished := func(root, partition string) []string {
		names, _ := filepath.Glob(filepath.Join(root, "t", partition, "*"))
		return names
	}

	root := t.TempDir()
	w := NewStreamWriter(t.Context(), lake.Dir(root), "t", "run1", schema)
	if err := w.Write("p=a", first); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLast("p=a", second); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteLast("p=b", first); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"p=a", "p=b"} {
		if got := finished(root, p); len(got) != 1 || strings.Contains(got[0], durable.TempPrefix) {
			t.Errorf("%s before Close: %v, want its one finished file", p, got)
		}
	}
	files, err := w.Close()
	if err != nil || len(files) != 2 || files[0].Rows != 500 || files[1].Rows != 300 {
		t.Fatalf("%+v %v", files, err)
	}

	// The same rows through Write and Close.
	other := t.TempDir()
	w2 := NewStreamWriter(t.Context(), lake.Dir(other), "t", "run1", schema)
	for _, step := range []struct {
		p   string
		rec arrow.RecordBatch
	}{{"p=a", first}, {"p=a", second}, {"p=b", first}} {
		if err := w2.Write(step.p, step.rec); err != nil {
			t.Fatal(err)
		}
	}
	want, err := w2.Close()
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if files[i].SHA256 != want[i].SHA256 || files[i].Bytes != want[i].Bytes {
			t.Errorf("%s: %d bytes %s, through Write and Close %d bytes %s", files[i].Path, files[i].Bytes, files[i].SHA256, want[i].Bytes, want[i].SHA256)
		}
	}
}

// openFile opens the Parquet file at path for the rest of the test.
func openFile(t *testing.T, path string) *file.Reader {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.NewParquetReader(f)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { pf.Close() }) // closes f too
	return pf
}

// readTable reads the whole Parquet file at path into an Arrow table, as a reader of the lake would.
func readTable(t *testing.T, path string) arrow.Table {
	t.Helper()
	fr, err := pqarrow.NewFileReader(openFile(t, path), pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return tbl
}
