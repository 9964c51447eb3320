// Package durable writes files so that a crash at any moment leaves either the old file or the complete
// new one: data goes to a hidden temporary name in the same directory, is fsynced, renamed into place,
// and the directory is fsynced so the rename itself survives a power cut.
package durable

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// TempPrefix starts the name of every file that is not yet committed; readers skip such files.
const TempPrefix = ".tmp-"

// File is a file being written; it becomes visible at its path only on Commit.
type File struct {
	*os.File
	path string
	done bool
}

// Create opens a temporary file beside path, creating parent directories.
func Create(path string) (*File, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	f, err := os.OpenFile(filepath.Join(dir, TempPrefix+hex.EncodeToString(r[:])+"-"+filepath.Base(path)), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit flushes the data to disk and atomically moves the file to its final path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("durable: %s already committed or aborted", f.path)
	}
	if err := f.Sync(); err != nil {
		f.Abort()
		return err
	}
	if err := f.Publish(); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(f.path))
}

// Abort discards the temporary file; it is a no-op after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.Close()
	os.Remove(f.Name())
}

// WriteFile atomically replaces path with data.
func WriteFile(path string, data []byte) error {
	return write(path, writeAll(data))
}

// WriteStream atomically replaces path with what fill writes: for data encoded as it is written,
// never whole in memory.
func WriteStream(path string, fill func(io.Writer) error) error {
	return write(path, fill)
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// RemoveTemps deletes temporary files left under root by a crashed run; it returns how many it removed.
func RemoveTemps(root string) (int, error) {
	n := 0
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		if !d.IsDir() && strings.HasPrefix(d.Name(), TempPrefix) {
			if err := os.Remove(p); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func writeAll(data []byte) func(io.Writer) error {
	return func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}
}

// write fills a new temporary file beside path and commits it.
func write(path string, fill func(io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}

// Publish moves the complete file to its final path without an fsync: many files published so are
// made durable together by one SyncFS before anything refers to them. A killed process loses nothing
// of it, and after a power cut an unsynced file is one that nothing refers to yet.
func (f *File) Publish() error {
	if f.done {
		return fmt.Errorf("durable: %s already committed or aborted", f.path)
	}
	f.done = true
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), f.path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// SyncFS flushes every file of the filesystem holding dir (syncfs(2)): one call instead of an fsync
// per file, before the manifest that lists them is committed.
func SyncFS(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return unix.Syncfs(int(d.Fd()))
}
