package lake_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/ledgerlake/ledgerlake/internal/lake"
	"github.com/ledgerlake/ledgerlake/internal/spool"
)

const packRun = "20261206T010203.000Z-abcdef"

// body is a response body as the HTTP client hands it over: in memory, or spilled to a file past mem.
func body(t testing.TB, b []byte, mem int64) *spool.Body {
	t.Helper()
	sb, err := spool.Read(bytes.NewReader(b), t.TempDir(), mem, 1<<30, "body")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	return sb
}

// put stores b through p, as JSON or as a PDF.
func put(t *testing.T, p *lake.Pack, b []byte, mem int64, pdf bool) lake.Evidence {
	t.Helper()
	do := p.PutJSON
	if pdf {
		do = p.PutPDF
	}
	e, err := do(body(t, b, mem))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// keys lists what st holds under the evidence and PDF directories.
func keys(t *testing.T, st lake.Store) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{lake.EvidenceDir, lake.PDFDir} {
		es, err := st.List(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			out = append(out, e.Key)
		}
	}
	return out
}

// A stream's bodies go to one pack per kind, each read back exactly as received, from memory or
// spilled to disk; a body stored twice is stored once.
func TestPackedBodiesReadBackExactly(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "signicat_invoices")
			bodies := map[lake.Evidence][]byte{}
			for i := range 20 {
				b := []byte(fmt.Sprintf(`{"page":%d,"data":"%s"}`, i, strings.Repeat("x", i*500)))
				bodies[put(t, p, b, 4096, false)] = b // past 4 KB, streamed from a spilled file
			}
			pdf := append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0xff, 0x00}, 30000)...)
			bodies[put(t, p, pdf, 1<<20, true)] = pdf
			again := put(t, p, []byte(`{"page":3,"data":"`+strings.Repeat("x", 1500)+`"}`), 4096, false)
			if err := p.Seal(); err != nil {
				t.Fatal(err)
			}
			if _, ok := bodies[again]; !ok {
				t.Errorf("a body stored twice: %+v", again)
			}
			if ks := keys(t, st); len(ks) != 2 || !strings.HasPrefix(ks[0], lake.EvidenceDir+"/"+packRun+"/signicat_invoices-") || !strings.HasSuffix(ks[1], ".pdfs") {
				t.Errorf("stored %v, want one JSON pack and one PDF pack under the run", ks)
			}
			for e, want := range bodies {
				got, err := lake.ReadEvidence(t.Context(), st, e)
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("body at %s@%d: %d bytes, %v; want %d bytes", e.Path, e.Offset, len(got), err, len(want))
				}
			}
		})
	}
}

// A pack past PackLimit is published and the next body starts another; a stream that fails removes
// what it stored since its last seal, and keeps what it sealed.
func TestFailedStreamLeavesOnlyWhatItSealed(t *testing.T) {
	old := lake.PackLimit
	lake.PackLimit = 1000
	defer func() { lake.PackLimit = old }()
	st := lake.Dir(t.TempDir())
	p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
	sealed := put(t, p, []byte(`{"sealed":true}`), 1<<20, false)
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 5 { // random hex compresses to about half: each body fills a pack
		b := make([]byte, 1200)
		for i := range b {
			b[i] = "0123456789abcdef"[rnd.IntN(16)]
		}
		put(t, p, []byte(`{"b":"`+string(b)+`"}`), 1<<20, false)
	}
	if n := len(keys(t, st)); n != 6 {
		t.Fatalf("%d packs after 5 bodies each past the limit, want the sealed one and 5 rolled over", n)
	}
	p.Abort()
	if ks := keys(t, st); len(ks) != 1 || ks[0] != sealed.Path {
		t.Errorf("after the failure: %v, want only the sealed pack %s", ks, sealed.Path)
	}
	if _, err := lake.ReadEvidence(t.Context(), st, sealed); err != nil {
		t.Error(err)
	}
}

// A body a committed manifest lists, or another stream sealed, is listed where it is, not stored again.
func TestStoredBodiesAreNotStoredAgain(t *testing.T) {
	st := lake.Dir(t.TempDir())
	first := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
	e := put(t, first, []byte(`{"a":1}`), 1<<20, false)
	if err := first.Seal(); err != nil {
		t.Fatal(err)
	}
	e.Table = "t"
	next := lake.NewEvidenceStore(st, "20261207T010203.000Z-abcdef", &lake.Manifest{Evidence: []lake.Evidence{e}})
	a, b := next.Pack(t.Context(), "a"), next.Pack(t.Context(), "b")
	if got := put(t, a, []byte(`{"a":1}`), 1<<20, false); got.Path != e.Path || got.Offset != e.Offset || got.Stored != e.Stored {
		t.Errorf("a body the last run stored: %+v, want %+v", got, e)
	}
	fresh := put(t, a, []byte(`{"b":2}`), 1<<20, false)
	if err := a.Seal(); err != nil {
		t.Fatal(err)
	}
	if got := put(t, b, []byte(`{"b":2}`), 1<<20, false); got.Path != fresh.Path {
		t.Errorf("a body another stream sealed: %s, want %s", got.Path, fresh.Path)
	}
	if err := b.Seal(); err != nil {
		t.Fatal(err)
	}
	if n := len(keys(t, st)); n != 2 {
		t.Errorf("%d packs, want the first run's and stream a's", n)
	}
	// An entry whose path is not laid out as a pack or a file of its kind (an edited manifest) is not
	// where the body is taken to be; a file named by the sha256 in an older lake is.
	edited := lake.Evidence{SHA256: e.SHA256, Path: "t/run_date=2026-12-06/x.parquet", Offset: 0, Stored: 9}
	later := lake.NewEvidenceStore(st, "20261208T010203.000Z-abcdef", &lake.Manifest{Evidence: []lake.Evidence{edited}})
	if got := put(t, later.Pack(t.Context(), "c"), []byte(`{"a":1}`), 1<<20, false); got.Path == edited.Path || !strings.Contains(got.Path, "20261208T") {
		t.Errorf("a body an edited entry places in a snapshot file: listed at %s", got.Path)
	}
	sum := sha256.Sum256([]byte(`{"c":3}`))
	sha := hex.EncodeToString(sum[:])
	old := lake.Evidence{SHA256: sha, Bytes: 7, Path: lake.EvidenceDir + "/" + sha[:2] + "/" + sha + ".json.zst"}
	olds := lake.NewEvidenceStore(st, "20261208T010203.000Z-abcdef", &lake.Manifest{Evidence: []lake.Evidence{old}})
	if got := put(t, olds.Pack(t.Context(), "c"), []byte(`{"c":3}`), 1<<20, false); got.Path != old.Path || got.Stored != 0 {
		t.Errorf("a body an older lake stored as a file: listed at %+v, want %s", got, old.Path)
	}
	// The PDF with the same bytes as a JSON body is another kind: stored again, uncompressed.
	if got := put(t, b, []byte(`{"b":2}`), 1<<20, true); !strings.HasPrefix(got.Path, lake.PDFDir) {
		t.Errorf("a PDF with a JSON body's bytes: %s", got.Path)
	}
}

// What a manifest says of a packed body is not trusted: a range past the file's end, a negative
// offset and a changed byte are each an alteration, and a missing pack is missing.
func TestPackedBodyTamperingIsFound(t *testing.T) {
	st := lake.Dir(t.TempDir())
	p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
	e := put(t, p, []byte(`{"invoice":"INV-1","amount":"10.00"}`), 1<<20, false)
	pdf := put(t, p, []byte("%PDF-1.7 invoice"), 1<<20, true)
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	for what, bad := range map[string]lake.Evidence{
		"past the end":    {Path: e.Path, Offset: e.Offset + 1, Stored: e.Stored, SHA256: e.SHA256, Bytes: e.Bytes},
		"negative offset": {Path: e.Path, Offset: -1, Stored: e.Stored, SHA256: e.SHA256, Bytes: e.Bytes},
		"bigger":          {Path: pdf.Path, Offset: pdf.Offset, Stored: pdf.Stored - 1, SHA256: pdf.SHA256, Bytes: pdf.Bytes},
	} {
		if _, err := lake.ReadEvidence(t.Context(), st, bad); err == nil || !strings.Contains(err.Error(), "altered") {
			t.Errorf("%s: %v", what, err)
		}
	}
	if _, err := lake.ReadEvidence(t.Context(), st, lake.Evidence{Path: lake.PDFDir + "/" + packRun + "/gone.pdfs", Stored: 3}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing pack: %v", err)
	}
}

// A pack cut short before a body it holds (a truncated or edited pack) is an alteration on every
// store, found at once: a bucket answers a range that starts at or past an object's end with 416
// InvalidRange, which is no fault to retry and means the same as a directory's short read.
func TestTruncatedPackIsAlteredOnEveryStore(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) {
			p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
			first := put(t, p, []byte(`{"invoice":"INV-1"}`), 1<<20, false)
			last := put(t, p, []byte(`{"invoice":"INV-2"}`), 1<<20, false)
			if err := p.Seal(); err != nil {
				t.Fatal(err)
			}
			whole, err := st.ReadFile(t.Context(), first.Path)
			if err != nil {
				t.Fatal(err)
			}
			// Cut the pack where its last body begins.
			if err := st.WriteFile(t.Context(), first.Path, whole[:last.Offset]); err != nil {
				t.Fatal(err)
			}
			if _, err := lake.ReadEvidence(t.Context(), st, first); err != nil {
				t.Errorf("the body before the cut: %v", err)
			}
			start := time.Now()
			_, err = lake.ReadEvidence(t.Context(), st, last)
			if err == nil || !strings.HasPrefix(err.Error(), "altered") {
				t.Errorf("the body past the cut: %v, want altered", err)
			}
			if took := time.Since(start); took > 500*time.Millisecond {
				t.Errorf("the body past the cut took %v to find: retried as a fault", took)
			}
		})
	}
}

// An empty body (a JSON answer with no bytes, a zero-byte document) stores nothing in its pack: its
// entry must still read back as the empty body, not as the whole pack it names.
func TestEmptyBodyReadsBackEmpty(t *testing.T) {
	for name, st := range stores(t) {
		t.Run(name, func(t *testing.T) { emptyBodyReadsBackEmpty(t, st) })
	}
}

func emptyBodyReadsBackEmpty(t *testing.T, st lake.Store) {
	p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
	put(t, p, []byte(`{"before":1}`), 1<<20, false)
	put(t, p, []byte("%PDF-1.7 before"), 1<<20, true)
	var empties []lake.Evidence
	for _, pdf := range []bool{false, true} {
		empties = append(empties, put(t, p, nil, 1<<20, pdf))
	}
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	for _, e := range empties {
		if b, err := lake.ReadEvidence(t.Context(), st, e); err != nil || len(b) != 0 {
			t.Errorf("empty body listed as %+v: %q, %v", e, b, err)
		}
	}
}

// verify reads a pack once, not once per body (on a bucket a request each), and still names each body
// that is altered, cut off or missing, and only those.
func TestVerifyReadsEachPackOnce(t *testing.T) {
	type tamper func(t *testing.T, st lake.Store, js []lake.Evidence)
	rewrite := func(t *testing.T, st lake.Store, key string, edit func([]byte) []byte) {
		b, err := st.ReadFile(t.Context(), key)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.WriteFile(t.Context(), key, edit(b)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		do   tamper
		want func(js, pdfs []lake.Evidence) []string
	}{
		{"whole", func(*testing.T, lake.Store, []lake.Evidence) {}, func(js, pdfs []lake.Evidence) []string { return nil }},
		{"a byte changed", func(t *testing.T, st lake.Store, js []lake.Evidence) {
			rewrite(t, st, js[10].Path, func(b []byte) []byte { b[js[10].Offset+js[10].Stored/2] ^= 0xff; return b })
		}, func(js, pdfs []lake.Evidence) []string {
			return []string{fmt.Sprintf("1 body at byte %d %s", js[10].Offset, js[10].Path)}
		}},
		{"cut short", func(t *testing.T, st lake.Store, js []lake.Evidence) {
			rewrite(t, st, js[30].Path, func(b []byte) []byte { return b[:js[30].Offset+1] })
		}, func(js, pdfs []lake.Evidence) []string {
			var out []string
			for _, e := range js[30:] {
				out = append(out, fmt.Sprintf("1 body at byte %d %s", e.Offset, e.Path))
			}
			return out
		}},
		{"removed", func(t *testing.T, st lake.Store, js []lake.Evidence) {
			if err := st.Remove(t.Context(), js[0].Path); err != nil {
				t.Fatal(err)
			}
		}, func(js, pdfs []lake.Evidence) []string { return []string{"1 missing " + js[0].Path} }},
	}
	for _, c := range cases {
		for name, st := range stores(t) {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
				var js, pdfs []lake.Evidence
				for i := range 50 {
					js = append(js, put(t, p, fmt.Appendf(nil, `{"invoice":"INV-%d","lines":%q}`, i, strings.Repeat("x", i*40)), 1<<20, false))
				}
				for i := range 5 {
					pdfs = append(pdfs, put(t, p, fmt.Appendf(nil, "%%PDF-1.7 invoice %d", i), 1<<20, true))
				}
				if err := p.Seal(); err != nil {
					t.Fatal(err)
				}
				m := &lake.Manifest{RunID: packRun, Status: "ok", Evidence: js, PDFs: pdfs}
				if err := lake.Commit(t.Context(), st, m, 0); err != nil {
					t.Fatal(err)
				}
				c.do(t, st, js)
				rec := &recording{Store: st}
				v, err := lake.Check(t.Context(), rec, 1)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, p := range v.Problems {
					what, _, _ := strings.Cut(p.Issue, ":")
					got = append(got, fmt.Sprintf("%d %s %s", p.Commit, what, p.Path))
				}
				if want := c.want(js, pdfs); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				// Of a removed pack, one body is counted: the one found missing.
				if want := map[bool]int{true: 6, false: 55}[c.name == "removed"]; v.Checked != want {
					t.Errorf("checked %d bodies, want %d", v.Checked, want)
				}
				for _, key := range []string{js[0].Path, pdfs[0].Path} {
					if n := rec.times(key); n != 1 {
						t.Errorf("%s opened %d times, want once", key, n)
					}
				}
			})
		}
	}
}

// sealedPackRun commits one run of a stream's bodies with its packs recorded, as a run does.
func sealedPackRun(t *testing.T, st lake.Store) *lake.Manifest {
	t.Helper()
	p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
	m := &lake.Manifest{RunID: packRun, Status: "ok"}
	for i := range 20 {
		m.Evidence = append(m.Evidence, put(t, p, fmt.Appendf(nil, `{"invoice":"INV-%d"}`, i), 1<<20, false))
	}
	m.PDFs = append(m.PDFs, put(t, p, []byte("%PDF-1.7 invoice"), 1<<20, true))
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	m.Packs = p.Sealed()
	if err := lake.Commit(t.Context(), st, m, 0); err != nil {
		t.Fatal(err)
	}
	return m
}

// problems is what Check finds in st, a line each: commit, what happened, path.
func problems(t *testing.T, st lake.Store) []string {
	t.Helper()
	v, err := lake.Check(t.Context(), st, 1)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range v.Problems {
		what, _, _ := strings.Cut(p.Issue, ":")
		got = append(got, fmt.Sprintf("%d %s %s", p.Commit, what, p.Path))
	}
	return got
}

// A pack's recorded size and sha256 are those of its bytes, one record per pack.
func TestSealedRecordsEachPack(t *testing.T) {
	st := lake.Dir(t.TempDir())
	m := sealedPackRun(t, st)
	if len(m.Packs) != 2 {
		t.Fatalf("packs %v, want one JSON pack and one PDF pack", m.Packs)
	}
	for _, pi := range m.Packs {
		b, err := st.ReadFile(t.Context(), pi.Path)
		if err != nil {
			t.Fatal(err)
		}
		if sum := sha256.Sum256(b); int64(len(b)) != pi.Bytes || hex.EncodeToString(sum[:]) != pi.SHA256 {
			t.Errorf("%s: recorded %d bytes %s, holds %d bytes %x", pi.Path, pi.Bytes, pi.SHA256, len(b), sum)
		}
	}
}

// Bytes appended to a committed pack — a zstd frame holding a forged body, which `zstd -dc` prints
// among the API's, or junk — are found on every store, though every listed body is intact; so is a
// pack the run's commit does not list, put in its evidence directory.
func TestVerifyFindsBytesAddedToPacks(t *testing.T) {
	forged := zstdFrame(t, []byte(`[{"invoiceNumber":"FORGED-0001"}]`))
	cases := []struct {
		name string
		do   func(t *testing.T, st lake.Store, m *lake.Manifest) []string
	}{
		{"whole", func(*testing.T, lake.Store, *lake.Manifest) []string { return nil }},
		{"zstd frame appended", func(t *testing.T, st lake.Store, m *lake.Manifest) []string {
			appendTo(t, st, m.Evidence[0].Path, forged)
			return []string{"1 altered " + m.Evidence[0].Path}
		}},
		{"junk appended to the PDF pack", func(t *testing.T, st lake.Store, m *lake.Manifest) []string {
			appendTo(t, st, m.PDFs[0].Path, []byte("junk\n"))
			return []string{"1 altered " + m.PDFs[0].Path}
		}},
		{"pack added", func(t *testing.T, st lake.Store, m *lake.Manifest) []string {
			extra := lake.EvidenceDir + "/" + packRun + "/t-0000000000000000.json.zst"
			if err := st.WriteFile(t.Context(), extra, forged); err != nil {
				t.Fatal(err)
			}
			return []string{"1 added " + extra}
		}},
	}
	for _, c := range cases {
		for name, st := range stores(t) {
			t.Run(c.name+"/"+name, func(t *testing.T) {
				m := sealedPackRun(t, st)
				want := c.do(t, st, m)
				rec := &recording{Store: st}
				if got := problems(t, rec); strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				for _, pi := range m.Packs { // the whole pack in the read that checks its bodies
					if n := rec.times(pi.Path); n != 1 {
						t.Errorf("%s opened %d times, want once", pi.Path, n)
					}
				}
			})
		}
	}
}

// A lake whose manifests predate pack records still verifies: its bodies are checked as before (bytes
// past them cannot be told from a pack's own), and a pack its run does not list is named.
func TestVerifyPacksWithoutRecords(t *testing.T) {
	st := lake.Dir(t.TempDir())
	p := lake.NewEvidenceStore(st, packRun).Pack(t.Context(), "t")
	e := put(t, p, []byte(`{"invoice":"INV-1"}`), 1<<20, false)
	if err := p.Seal(); err != nil {
		t.Fatal(err)
	}
	if err := lake.Commit(t.Context(), st, &lake.Manifest{RunID: packRun, Status: "ok", Evidence: []lake.Evidence{e}}, 0); err != nil {
		t.Fatal(err)
	}
	if got := problems(t, st); len(got) > 0 {
		t.Errorf("problems in a lake without pack records: %v", got)
	}
	// A pack added to the committed run's directory is named; one of a run that never committed is not.
	extra := lake.EvidenceDir + "/" + packRun + "/t-0000000000000000.json.zst"
	uncommitted := lake.EvidenceDir + "/20261206T020304.000Z-fedcba/t-0000000000000000.json.zst"
	for _, key := range []string{extra, uncommitted} {
		if err := st.WriteFile(t.Context(), key, zstdFrame(t, []byte("{}"))); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := problems(t, st), []string{"1 added " + extra}; !slices.Equal(got, want) {
		t.Errorf("problems %v, want %v", got, want)
	}
}

func zstdFrame(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

func appendTo(t *testing.T, st lake.Store, key string, extra []byte) {
	t.Helper()
	b, err := st.ReadFile(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.WriteFile(t.Context(), key, append(b, extra...)); err != nil {
		t.Fatal(err)
	}
}
