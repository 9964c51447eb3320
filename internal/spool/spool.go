// Package spool holds response bodies with memory bounded by design: a small body stays in memory, a
// larger one is spilled to an unlinked temporary file as it arrives, and a body over its cap is refused
// before it is all read. Readers decode a body from wherever it is, so what a server sends decides
// the disk a run uses, never its memory.
package spool

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/ledgerlake/ledgerlake/internal/durable"
)

// Body is a response body, in memory or in a temporary file.
type Body struct {
	mem    []byte
	f      *os.File
	size   int64
	name   string // still to remove on Close where the file could not be unlinked at once; "" otherwise
	closed bool
}

// Bytes is a body held in memory.
func Bytes(b []byte) *Body { return &Body{mem: b, size: int64(len(b))} }

// TooLargeError is a body over its cap: what was read of it is discarded.
type TooLargeError struct {
	What  string // "body", "PDF", …
	Limit int64
	Size  int64 // the declared or read size when known (-1: more than Limit)
}

func (e *TooLargeError) Error() string {
	if e.Size > 0 {
		return fmt.Sprintf("the %s is %s, over the cap of %s", e.What, Size(e.Size), Size(e.Limit))
	}
	return fmt.Sprintf("the %s is over the cap of %s", e.What, Size(e.Limit))
}

// Size prints a byte count for people (1.5 MiB).
func Size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// Read copies r into a new Body: in memory while it is at most mem bytes, in a temporary file in dir
// (the system's temp dir when "") once it grows past that. More than max bytes fails with a
// *TooLargeError naming what; any read error is returned with how much had arrived.
func Read(r io.Reader, dir string, mem, max int64, what string) (*Body, error) {
	head := make([]byte, 0, min(mem, 32<<10))
	lr := io.LimitReader(r, max+1)
	for int64(len(head)) <= mem {
		if len(head) == cap(head) {
			head = append(head, 0)[:len(head)]
		}
		n, err := lr.Read(head[len(head):min(cap(head), int(mem+1))])
		head = head[:len(head)+n]
		if err == io.EOF {
			if int64(len(head)) > max {
				return nil, &TooLargeError{What: what, Limit: max}
			}
			return Bytes(head), nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading body (%d bytes before the error): %w", len(head), err)
		}
	}
	f, err := os.CreateTemp(dir, durable.TempPrefix+"response-*")
	if err != nil {
		return nil, fmt.Errorf("spooling the body: %w", err)
	}
	b := &Body{f: f, name: f.Name()}
	if os.Remove(b.name) == nil {
		b.name = ""
	}
	n, err := f.Write(head)
	if err == nil {
		var m int64
		m, err = io.Copy(f, lr)
		n += int(m)
	}
	b.size = int64(n)
	switch {
	case err != nil:
		b.Close()
		return nil, fmt.Errorf("reading body (%d bytes before the error): %w", n, err)
	case b.size > max:
		b.Close()
		return nil, &TooLargeError{What: what, Limit: max}
	}
	return b, nil
}

// Len is the body's length in bytes.
func (b *Body) Len() int64 { return b.size }

// InMemory reports whether the body is held in memory (Mem returns it).
func (b *Body) InMemory() bool { return b.f == nil }

// Mem is the body when it is held in memory, else nil.
func (b *Body) Mem() []byte { return b.mem }

// Reader reads the body from its start; readers are independent of each other.
func (b *Body) Reader() io.Reader {
	if b.f == nil {
		return bytes.NewReader(b.mem)
	}
	return io.NewSectionReader(b.f, 0, b.size)
}

// Load returns the whole body in memory when it is at most limit bytes: for answers that are decoded
// whole (one object), where the cap bounds the memory the decoding takes.
func (b *Body) Load(limit int64, what string) ([]byte, error) {
	if b.size > limit {
		return nil, &TooLargeError{What: what, Limit: limit, Size: b.size}
	}
	if b.f == nil {
		return b.mem, nil
	}
	out := make([]byte, b.size)
	if _, err := io.ReadFull(b.Reader(), out); err != nil {
		return nil, fmt.Errorf("reading the spooled body: %w", err)
	}
	return out, nil
}

// Close releases the file of a spilled body; a body in memory has nothing to release.
func (b *Body) Close() error {
	if b == nil || b.f == nil || b.closed {
		return nil
	}
	b.closed = true
	err := b.f.Close()
	if b.name != "" {
		if rerr := os.Remove(b.name); rerr != nil && err == nil {
			err = rerr
		}
		b.name = ""
	}
	return err
}
