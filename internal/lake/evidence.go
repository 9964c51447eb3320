package lake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"github.com/ledgerlake/ledgerlake/internal/spool"
)

// Evidence and PDF directories. Both are content-addressed: a file is named by the sha256 of the bytes
// the API sent, so the same body fetched by many runs is stored once and a name proves its content.
const (
	EvidenceDir = "_evidence" // raw JSON response bodies, zstd-compressed: <sha[:2]>/<sha>.json.zst
	PDFDir      = "_pdfs"     // invoice PDFs as received: <sha[:2]>/<sha>.pdf
)

// evidenceWindow is the zstd window for evidence bodies.
const evidenceWindow = 1 << 20

// Evidence is one stored API response (a JSON body or a PDF), as a manifest lists it.
type Evidence struct {
	Table    string `json:"table"`
	Endpoint string `json:"endpoint"`      // method, path and query of the request that returned it
	Key      string `json:"key,omitempty"` // PDFs: the invoice number
	SHA256   string `json:"sha256"`        // of the body exactly as received
	Bytes    int64  `json:"bytes"`         // size of the body as received
	Path     string `json:"path"`          // the stored file, relative to the output directory
}

// EvidenceStore writes evidence files under a lake root. It is safe for concurrent use. Files are
// placed without a per-file fsync; Sync makes them all durable before the manifest refers to them.
type EvidenceStore struct {
	st   Store
	enc  *zstd.Encoder
	mu   sync.Mutex
	have map[string]bool // relative paths known to exist
}

// NewEvidenceStore prepares to store evidence in st. held are manifests (committed, or a killed
// attempt's checkpoints) whose evidence is known to be stored: a body among them is not stored again,
// and any other is written without first asking whether it exists — the start of the run removed
// every file no manifest lists, and an object store's existence check is a request per body.
func NewEvidenceStore(st Store, held ...*Manifest) *EvidenceStore {
	// EncodeAll takes one of the encoder's workers: one per CPU, so the streams that keep evidence do
	// not queue behind each other. The fastest level: on invoice bodies it compresses about as
	// well as the default level, in less time. A window smaller than the level's own (each worker keeps
	// twice the window of history) compresses evidence to the same size: bodies are pages of a few
	// kilobytes (figures: bench/README.md, "Figures behind tuned constants").
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
		zstd.WithWindowSize(evidenceWindow), zstd.WithLowerEncoderMem(true))
	return &EvidenceStore{st: st, enc: enc, have: bodyPaths(held)}
}

// bodyPaths is the set of evidence and PDF files the manifests list.
func bodyPaths(ms []*Manifest) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for _, e := range m.Evidence {
			out[e.Path] = true
		}
		for _, e := range m.PDFs {
			out[e.Path] = true
		}
	}
	return out
}

// PutJSON stores a response body compressed and returns its entry (Table and Endpoint set by the caller).
func (s *EvidenceStore) PutJSON(ctx context.Context, body *spool.Body) (Evidence, error) {
	return s.put(ctx, body, EvidenceDir, ".json.zst", func(w io.Writer, r io.Reader) error {
		enc, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(evidenceWindow))
		if err != nil {
			return err
		}
		if _, err := io.Copy(enc, r); err != nil {
			enc.Close()
			return err
		}
		return enc.Close()
	}, func(b []byte) []byte { return s.enc.EncodeAll(b, nil) })
}

// PutPDF stores a PDF as received (PDFs are compressed already).
func (s *EvidenceStore) PutPDF(ctx context.Context, body *spool.Body) (Evidence, error) {
	return s.put(ctx, body, PDFDir, ".pdf", func(w io.Writer, r io.Reader) error {
		_, err := io.Copy(w, r)
		return err
	}, func(b []byte) []byte { return b })
}

// put stores body under dir, named by its sha256: a body in memory encoded at once, one spilled to a
// file streamed from it, so a large answer is never held in memory.
func (s *EvidenceStore) put(ctx context.Context, body *spool.Body, dir, ext string, stream func(io.Writer, io.Reader) error, encode func([]byte) []byte) (Evidence, error) {
	h := sha256.New()
	if _, err := io.Copy(h, body.Reader()); err != nil {
		return Evidence{}, fmt.Errorf("hashing evidence: %w", err)
	}
	hexSum := hex.EncodeToString(h.Sum(nil))
	rel := dir + "/" + hexSum[:2] + "/" + hexSum + ext
	e := Evidence{SHA256: hexSum, Bytes: body.Len(), Path: rel}
	s.mu.Lock()
	known := s.have[rel]
	s.mu.Unlock()
	if known {
		return e, nil
	}
	var err error
	if body.InMemory() {
		err = s.st.Place(ctx, rel, encode(body.Mem()))
	} else {
		err = publish(ctx, s.st, rel, func(w io.Writer) error { return stream(w, body.Reader()) })
	}
	if err != nil {
		return e, fmt.Errorf("storing evidence %s: %w", rel, err)
	}
	s.mu.Lock()
	s.have[rel] = true
	s.mu.Unlock()
	return e, nil
}

// publish writes key from fill through st.Create, visible once complete and durable after the
// store's next Sync, like Place.
func publish(ctx context.Context, st Store, key string, fill func(io.Writer) error) error {
	f, err := st.Create(ctx, key)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Abort()
		return err
	}
	return f.Publish()
}

// Sync makes every file placed so far durable.
func (s *EvidenceStore) Sync(ctx context.Context) error { return s.st.Sync(ctx) }

// ReadEvidence returns the body exactly as the API sent it, checked against its sha256.
func ReadEvidence(ctx context.Context, st Store, e Evidence) ([]byte, error) {
	if !insideLake(e.Path) {
		return nil, errors.New(outside)
	}
	b, err := st.ReadFile(ctx, e.Path)
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(e.Path, ".zst") {
		dec, err := zstd.NewReader(bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		defer dec.Close()
		if b, err = io.ReadAll(dec); err != nil {
			return nil, fmt.Errorf("altered: does not decompress (%v)", err)
		}
	}
	sum := sha256.Sum256(b)
	if got := hex.EncodeToString(sum[:]); got != e.SHA256 || int64(len(b)) != e.Bytes {
		return nil, fmt.Errorf("altered: content sha256 %.12s… (%d bytes), manifest says %.12s… (%d bytes)", got, len(b), e.SHA256, e.Bytes)
	}
	return b, nil
}
