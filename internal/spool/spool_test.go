package spool

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"testing/iotest"
)

// A body stays in memory up to mem bytes, is spilled to an unlinked file past that, and is refused
// past max — whatever the reader's chunks — with nothing left behind in the spool directory.
func TestReadKeepsMemoryBoundedAndCapsTheBody(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		size     int
		inMemory bool
		tooLarge bool
	}{{0, true, false}, {100, true, false}, {1000, true, false}, {1001, false, false}, {5000, false, false}, {5001, false, true}, {1 << 20, false, true}}
	for _, c := range cases {
		body := bytes.Repeat([]byte("z"), c.size)
		for _, r := range []io.Reader{bytes.NewReader(body), iotest.OneByteReader(bytes.NewReader(body)), iotest.HalfReader(bytes.NewReader(body))} {
			b, err := Read(r, dir, 1000, 5000, "page")
			var tl *TooLargeError
			if c.tooLarge {
				if !errors.As(err, &tl) || !strings.Contains(err.Error(), "the page is over the cap of 4.9 KiB") {
					t.Fatalf("%d bytes: err %v", c.size, err)
				}
				continue
			}
			if err != nil || b.Len() != int64(c.size) || b.InMemory() != c.inMemory {
				t.Fatalf("%d bytes: err %v, len %d, in memory %v", c.size, err, b.Len(), b.InMemory())
			}
			got, _ := io.ReadAll(b.Reader())
			again, _ := io.ReadAll(b.Reader())
			if !bytes.Equal(got, body) || !bytes.Equal(again, body) {
				t.Fatalf("%d bytes: read back %d and %d", c.size, len(got), len(again))
			}
			if _, err := b.Load(int64(c.size)-1, "answer"); c.size > 0 && !errors.As(err, &tl) {
				t.Fatalf("Load under the size: %v", err)
			}
			if whole, err := b.Load(int64(c.size), "answer"); err != nil || !bytes.Equal(whole, body) {
				t.Fatalf("Load: %v", err)
			}
			if err := b.Close(); err != nil || b.Close() != nil {
				t.Fatalf("close: %v", err)
			}
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the spool directory holds %v", left)
	}
}

// A read error is returned with how much had arrived, and leaves no file.
func TestReadErrorLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	r := io.MultiReader(bytes.NewReader(make([]byte, 3000)), iotest.ErrReader(io.ErrUnexpectedEOF))
	if _, err := Read(r, dir, 1000, 1<<20, "page"); err == nil || !strings.Contains(err.Error(), "3000 bytes before the error") {
		t.Fatalf("err %v", err)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("the spool directory holds %v", left)
	}
}
