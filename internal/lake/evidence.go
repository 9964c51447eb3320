package lake

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"math"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// Evidence and PDF directories. A run appends each stream's bodies to pack files,
// <dir>/<run id>/<table>-<random>.<ext>, and its manifest lists each body by pack, offset and sha256:
// a file per body cost a file creation each, slow on a local disk and a request each on an object
// store. A body already stored (by an earlier run, or sealed by another stream of the run) is not
// stored again. Lakes written before packs hold a file per body, <dir>/<sha[:2]>/<sha><ext>; they
// are read as they are.
const (
	EvidenceDir = "_evidence" // raw JSON response bodies, each a zstd frame: packs end in .json.zst
	PDFDir      = "_pdfs"     // invoice PDFs as received, one after another: packs end in .pdfs
)

// evidenceWindow is the zstd window for evidence bodies.
const evidenceWindow = 1 << 20

// PackLimit is the size past which a pack is closed and the next body starts another: it bounds what
// an object store stages locally before an upload.
var PackLimit int64 = 64 << 20

// Evidence is one stored API response (a JSON body or a PDF), as a manifest lists it.
type Evidence struct {
	Table    string `json:"table"`
	Endpoint string `json:"endpoint"`      // method, path and query of the request that returned it
	Key      string `json:"key,omitempty"` // PDFs: the invoice number
	SHA256   string `json:"sha256"`        // of the body exactly as received
	Bytes    int64  `json:"bytes"`         // size of the body as received
	Path     string `json:"path"`          // the stored file, relative to the output directory
	// Offset and Stored locate the body in a pack: Stored bytes from Offset, compressed if Path ends
	// in .zst. Stored 0: the whole file is the body (lakes written before packs).
	Offset int64 `json:"offset,omitempty"`
	Stored int64 `json:"stored,omitempty"`
}

// PackInfo is one pack a run wrote, as its manifest records it (and so its commit seals it): the
// whole file's size and sha256. A body's range covers only its own bytes; the pack's record covers
// the rest, so bytes appended after the last body (another zstd frame `zstd -dc` would print) are found.
type PackInfo struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// EvidenceStore keeps the bodies of a run's streams (see Pack). It is safe for concurrent use. Packs
// are published without an fsync; Sync makes them all durable before a manifest refers to them.
type EvidenceStore struct {
	st   Store
	run  string
	enc  *zstd.Encoder
	mu   sync.Mutex
	have map[string]Evidence // bodies stored and listed (or about to be), by kind and sha256: where they are
	// referred are the packs sealed this run whose bodies another stream listed (through have): a
	// stream that fails keeps them (see Pack.Discard).
	referred map[string]bool
}

// NewEvidenceStore prepares to store run's evidence in st. held are manifests (committed, or a
// killed attempt's checkpoints) whose evidence is known to be stored: a body among them is not stored
// again but listed where they list it.
func NewEvidenceStore(st Store, run string, held ...*Manifest) *EvidenceStore {
	// EncodeAll takes one of the encoder's workers: one per CPU, so the streams that keep evidence do
	// not queue behind each other. The fastest level: on invoice bodies it compresses about as
	// well as the default level, in less time. A window smaller than the level's own (each worker keeps
	// twice the window of history) compresses evidence to the same size: bodies are pages of a few
	// kilobytes (figures: bench/README.md, "Figures behind tuned constants").
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(evidenceWindow), zstd.WithLowerEncoderMem(true))
	return &EvidenceStore{st: st, run: run, enc: enc, have: stored(held), referred: listedByOthers(run, held)}
}

// listedByOthers are run's packs (sealed by a killed attempt of it) that a held checkpoint of another
// stream lists a body of: a resumed stream that fails keeps them (see Pack.Resume).
func listedByOthers(run string, held []*Manifest) map[string]bool {
	out := map[string]bool{}
	for _, m := range held {
		for _, e := range slices.Concat(m.Evidence, m.PDFs) {
			if packRun(e.Path) == run && !packOf(e.Path, run, e.Table) {
				out[e.Path] = true
			}
		}
	}
	return out
}

// stored is where the manifests keep each body, by kind and sha256. An entry is taken only where its
// path is laid out as its kind's: an edited entry cannot make later runs list a body anywhere else.
func stored(ms []*Manifest) map[string]Evidence {
	out := map[string]Evidence{}
	for _, m := range ms {
		for k, es := range map[*kind][]Evidence{jsonKind: m.Evidence, pdfKind: m.PDFs} {
			for _, e := range es {
				if k.holds(e) {
					out[k.of(e.SHA256)] = e
				}
			}
		}
	}
	return out
}

// kind is how a kind of body is stored.
type kind struct {
	dir, ext string // where its packs go, and how their names end
	fileExt  string // how its files end in lakes written before packs (a file per body)
	// stream writes a body read from r; encode returns one held in memory as stored.
	stream func(s *EvidenceStore, w io.Writer, r io.Reader) error
	encode func(s *EvidenceStore, b []byte) []byte
}

func (k *kind) of(sha string) string { return k.dir + ":" + sha }

// holds reports whether e's path is laid out as one of k's: a pack of k (a range in it), or, in a lake
// written before packs, the file named by e's sha256.
func (k *kind) holds(e Evidence) bool {
	if e.Stored > 0 {
		return strings.HasPrefix(e.Path, k.dir+"/") && strings.HasSuffix(e.Path, k.ext) && packRun(e.Path) != ""
	}
	return len(e.SHA256) == 64 && e.Path == k.dir+"/"+e.SHA256[:2]+"/"+e.SHA256+k.fileExt
}

var (
	jsonKind = &kind{dir: EvidenceDir, ext: ".json.zst", fileExt: ".json.zst", stream: compress,
		encode: func(s *EvidenceStore, b []byte) []byte { return s.enc.EncodeAll(b, nil) }}
	pdfKind = &kind{dir: PDFDir, ext: ".pdfs", fileExt: ".pdf", stream: func(_ *EvidenceStore, w io.Writer, r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	}, encode: func(_ *EvidenceStore, b []byte) []byte { return b }}
)

// compress writes r to w as one zstd frame, streamed: for a body too large to hold in memory.
func compress(_ *EvidenceStore, w io.Writer, r io.Reader) error {
	enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(evidenceWindow))
	if err != nil {
		return err
	}
	if _, err := io.Copy(enc, r); err != nil {
		enc.Close()
		return err
	}
	return enc.Close()
}

// Pack stores one stream's bodies: appended to that stream's open packs, one per kind. Its bodies are
// listable once Seal has published their packs. A Pack is used by one goroutine at a time.
type Pack struct {
	s     *EvidenceStore
	ctx   context.Context
	table string
	open  map[*kind]*packFile
	// rolled are packs published because they grew past PackLimit, whose bodies are not yet sealed:
	// Abort removes them.
	rolled []*packFile
	// sealed are the packs this stream sealed (Discard removes those no other stream refers to).
	sealed map[string]bool
	// infos are the packs this attempt sealed, as the manifest records them (see Sealed).
	infos []PackInfo
}

// packFile is a pack being written, and the bodies in it.
type packFile struct {
	f      File
	path   string
	size   int64
	sum    hash.Hash // of every byte written: the pack's sha256 once published
	bodies map[string]Evidence
}

func (p *packFile) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.size += int64(n)
	p.sum.Write(b[:n])
	return n, err
}

// info is the pack's record, once nothing more is written to it.
func (p *packFile) info() PackInfo {
	return PackInfo{Path: p.path, Bytes: p.size, SHA256: hex.EncodeToString(p.sum.Sum(nil))}
}

// Pack starts storing table's bodies; ctx bounds the writes.
func (s *EvidenceStore) Pack(ctx context.Context, table string) *Pack {
	return &Pack{s: s, ctx: ctx, table: table, open: map[*kind]*packFile{}, sealed: map[string]bool{}}
}

// PutJSON stores a response body compressed and returns its entry (Table and Endpoint set by the caller).
func (p *Pack) PutJSON(body *spool.Body) (Evidence, error) { return p.put(body, jsonKind) }

// PutPDF stores a PDF as received (PDFs are compressed already).
func (p *Pack) PutPDF(body *spool.Body) (Evidence, error) { return p.put(body, pdfKind) }

// put appends body to the open pack of its kind, unless it is stored already: a body in memory is
// encoded at once, one spilled to a file streamed from it, so a large answer is never held in memory.
func (p *Pack) put(body *spool.Body, k *kind) (Evidence, error) {
	h := sha256.New()
	if _, err := io.Copy(h, body.Reader()); err != nil {
		return Evidence{}, fmt.Errorf("hashing evidence: %w", err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if e, ok := p.find(k.of(sum)); ok {
		return Evidence{SHA256: sum, Bytes: body.Len(), Path: e.Path, Offset: e.Offset, Stored: e.Stored}, nil
	}
	pf, err := p.file(k)
	if err != nil {
		return Evidence{}, err
	}
	e := Evidence{SHA256: sum, Bytes: body.Len(), Path: pf.path, Offset: pf.size}
	if body.InMemory() {
		_, err = pf.Write(k.encode(p.s, body.Mem()))
	} else {
		err = k.stream(p.s, pf, body.Reader())
	}
	if err != nil {
		p.discard(k)
		return Evidence{}, fmt.Errorf("storing evidence in %s: %w", pf.path, err)
	}
	e.Stored = pf.size - e.Offset
	pf.bodies[k.of(sum)] = e
	if pf.size >= PackLimit {
		return e, p.roll(k)
	}
	return e, nil
}

// find is where a body is stored already: in a listed pack, or in one of this stream's.
func (p *Pack) find(key string) (Evidence, bool) {
	for _, pf := range p.rolled {
		if e, ok := pf.bodies[key]; ok {
			return e, true
		}
	}
	for _, pf := range p.open {
		if e, ok := pf.bodies[key]; ok {
			return e, true
		}
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	e, ok := p.s.have[key]
	if ok && !p.sealed[e.Path] {
		p.s.referred[e.Path] = true // this stream lists it: a failure of the stream that sealed it keeps it
	}
	return e, ok
}

// file is the open pack of kind k, started if there is none.
func (p *Pack) file(k *kind) (*packFile, error) {
	if pf := p.open[k]; pf != nil {
		return pf, nil
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	key := k.dir + "/" + p.s.run + "/" + p.table + "-" + hex.EncodeToString(r[:]) + k.ext
	f, err := p.s.st.Create(p.ctx, key)
	if err != nil {
		return nil, fmt.Errorf("starting evidence pack %s: %w", key, err)
	}
	pf := &packFile{f: f, path: key, sum: sha256.New(), bodies: map[string]Evidence{}}
	p.open[k] = pf
	return pf, nil
}

// roll publishes kind k's open pack; the next body of that kind starts another.
func (p *Pack) roll(k *kind) error {
	pf := p.open[k]
	delete(p.open, k)
	if err := pf.f.Publish(); err != nil {
		return fmt.Errorf("publishing evidence pack %s: %w", pf.path, err)
	}
	p.rolled = append(p.rolled, pf)
	return nil
}

// discard drops kind k's open pack, written only in part.
func (p *Pack) discard(k *kind) {
	if pf := p.open[k]; pf != nil {
		pf.f.Abort()
		delete(p.open, k)
	}
}

// Seal publishes the open packs, so every body stored so far can be listed (durable after Sync), and
// lets other streams refer to its bodies.
func (p *Pack) Seal() error {
	for _, k := range []*kind{jsonKind, pdfKind} {
		if p.open[k] != nil {
			if err := p.roll(k); err != nil {
				return err
			}
		}
	}
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	for _, pf := range p.rolled {
		maps.Copy(p.s.have, pf.bodies)
		p.sealed[pf.path] = true
		p.infos = append(p.infos, pf.info())
	}
	p.rolled = nil
	return nil
}

// Sealed are the packs this stream has sealed, for its manifest (and checkpoints, so an attempt that
// resumes it records them too): the commit then seals each pack's exact bytes.
func (p *Pack) Sealed() []PackInfo { return slices.Clone(p.infos) }

// Abort discards what was stored since the last Seal, for a stream that failed: no manifest or
// checkpoint will list it.
func (p *Pack) Abort() {
	p.discard(jsonKind)
	p.discard(pdfKind)
	for _, pf := range p.rolled {
		_ = p.s.st.Remove(context.WithoutCancel(p.ctx), pf.path)
	}
	p.rolled = nil
}

// Resume counts the packs among prev (what a killed attempt of this stream checkpointed) that the
// attempt sealed as this stream's own: if the resumed stream fails, Discard removes them too.
func (p *Pack) Resume(prev []Evidence) {
	for _, e := range prev {
		if packOf(e.Path, p.s.run, p.table) {
			p.sealed[e.Path] = true
		}
	}
}

// packOf reports whether key is a pack of run's stream of table: <dir>/<run>/<table>-<random><ext>.
func packOf(key, run, table string) bool {
	return packRun(key) == run && strings.HasPrefix(path.Base(key), table+"-")
}

// Discard is Abort for a stream that failed after sealing: its output is dropped, so no manifest
// will list its bodies, and the packs it sealed (and those of the attempts it resumed) are removed
// too, except those another stream refers to (their bodies stop being offered to other streams
// first). Call it once the stream's checkpoint is removed; a run killed before Discard leaves the
// packs unlisted, removed at the next start, but a run that commits never removes its own files.
func (p *Pack) Discard() {
	p.Abort()
	var drop []string
	p.s.mu.Lock()
	for path := range p.sealed {
		if !p.s.referred[path] {
			drop = append(drop, path)
		}
	}
	maps.DeleteFunc(p.s.have, func(_ string, e Evidence) bool { return p.sealed[e.Path] && !p.s.referred[e.Path] })
	p.s.mu.Unlock()
	for _, path := range drop {
		_ = p.s.st.Remove(context.WithoutCancel(p.ctx), path)
	}
	p.sealed = map[string]bool{}
	p.infos = nil
}

// Sync makes every pack published so far durable.
func (s *EvidenceStore) Sync(ctx context.Context) error { return s.st.Sync(ctx) }

// ReadEvidence returns the body exactly as the API sent it, checked against its sha256.
func ReadEvidence(ctx context.Context, st Store, e Evidence) ([]byte, error) {
	if !insideLake(e.Path) {
		return nil, errors.New(outside)
	}
	var b []byte
	var err error
	// A pack's entry is a range of it even when empty: an empty body stores no bytes (Stored 0).
	if e.Stored > 0 || packRun(e.Path) != "" {
		r := &packReader{ctx: ctx, st: st, key: e.Path}
		b, err = r.read(e.Offset, e.Stored)
		r.close()
	} else {
		b, err = st.ReadFile(ctx, e.Path)
	}
	if err != nil {
		return nil, err
	}
	return checkBody(e, b)
}

// checkBody is body e as received, from b as stored: decompressed where its pack is, and its size
// and sha256 those e records, else an alteration.
func checkBody(e Evidence, b []byte) ([]byte, error) {
	if strings.HasSuffix(e.Path, ".zst") {
		dec, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		// No further than one byte past the size the manifest gives: a small frame may claim gigabytes.
		if b, err = io.ReadAll(io.LimitReader(dec, e.Bytes+1)); err != nil {
			return nil, fmt.Errorf("altered: does not decompress (%v)", err)
		}
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != e.SHA256 || int64(len(b)) != e.Bytes {
		return nil, fmt.Errorf("altered: content sha256 %.12s… (%d bytes), manifest says %.12s… (%d bytes)", got, len(b), e.SHA256, e.Bytes)
	}
	return b, nil
}

// packReader reads ranges of one pack in rising order through as few reads of it as it can.
type packReader struct {
	ctx context.Context
	st  Store
	key string
	end int64 // where the last range read ends
	// whole, when set, is the pack's recorded size and sha256: it is read from its start in one
	// stream, every byte hashed (see rest).
	whole *PackInfo

	rc  io.ReadCloser
	pos int64     // where rc is
	sum hash.Hash // of the bytes rc has given, with whole
}

// maxSkip is the most a packReader reads past to reach the next range before it opens a new read
// there instead: about what one more request costs in time on an object store.
const maxSkip = 1 << 20

// read is n bytes from off; a pack that ends before them is altered.
func (r *packReader) read(off, n int64) ([]byte, error) {
	if off < 0 || n < 0 {
		return nil, fmt.Errorf("altered: offset %d, %d bytes", off, n)
	}
	if r.rc == nil || off < r.pos || off-r.pos > maxSkip && r.whole == nil {
		if err := r.open(off, n); err != nil {
			return nil, err
		}
	}
	skipped, err := io.CopyN(io.Discard, r.rc, off-r.pos)
	r.pos += skipped
	var b []byte
	if err == nil {
		// Never more than the pack holds: n is the manifest's word.
		b, err = io.ReadAll(io.LimitReader(r.rc, n))
		r.pos += int64(len(b))
	}
	switch {
	case err != nil && err != io.EOF:
		r.close() // the next range opens a read of its own
		return nil, err
	case int64(len(b)) < n:
		return nil, fmt.Errorf("altered: the file ends %d bytes into the body of %d at offset %d", len(b), n, off)
	}
	return b, nil
}

// open starts a read at off for n bytes and those to the end of the last range; a whole pack is read
// from its start, one byte past its recorded size so that bytes added after it show.
func (r *packReader) open(off, n int64) error {
	r.close()
	if r.whole != nil {
		off, n = 0, min(r.whole.Bytes, math.MaxInt64-1)+1
	} else {
		// To the end of the last range, or of this one where a manifest's figures went past int64.
		n = min(max(r.end-off, n), math.MaxInt64-off)
	}
	rc, err := r.st.OpenRange(r.ctx, r.key, off, n)
	if err != nil {
		return err
	}
	r.rc, r.pos = rc, off
	if r.whole != nil {
		r.sum = sha256.New()
		r.rc = struct {
			io.Reader
			io.Closer
		}{io.TeeReader(rc, r.sum), rc}
	}
	return nil
}

// rest reads a whole pack on to its end (opening it if no body was read) and compares what it read
// with its record: an error says how the pack differs.
func (r *packReader) rest() error {
	if r.rc == nil {
		if err := r.open(0, 0); err != nil {
			return err
		}
	}
	n, err := io.Copy(io.Discard, r.rc)
	if err != nil {
		return err
	}
	r.pos += n
	if got := hex.EncodeToString(r.sum.Sum(nil)); r.pos != r.whole.Bytes || got != r.whole.SHA256 {
		return fmt.Errorf("altered: the pack's sha256 is %.12s… (%s bytes), the manifest records %.12s… (%d bytes)",
			got, sizeAtLeast(r.pos, r.whole.Bytes), r.whole.SHA256, r.whole.Bytes)
	}
	return nil
}

// sizeAtLeast is n for a message, "more than" the recorded size when the read stopped one past it.
func sizeAtLeast(n, recorded int64) string {
	if n > recorded {
		return fmt.Sprintf("more than %d", recorded)
	}
	return fmt.Sprint(n)
}

func (r *packReader) close() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
}
