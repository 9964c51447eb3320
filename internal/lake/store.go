package lake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/ledgerlake/ledgerlake/internal/durable"
)

// Store is where a lake lives: a local directory (Dir) or an object-store bucket (Bucket). Keys are
// slash-separated paths relative to the lake's root. A file written through a Store is either absent
// or complete at its key; what a run wrote counts only once a manifest lists it (see Commit).
// ctx bounds a call's requests and its waits between retries (a bucket's; a directory's calls are
// local system calls, not interrupted midway). Create's ctx also bounds the file's Publish or Commit.
type Store interface {
	// Create starts a file that appears at key, complete, on Publish or Commit.
	Create(ctx context.Context, key string) (File, error)
	// WriteFile replaces key with data, durably.
	WriteFile(ctx context.Context, key string, data []byte) error
	// WriteStream replaces key with what fill writes, durably, without holding it all in memory.
	WriteStream(ctx context.Context, key string, fill func(io.Writer) error) error
	// CreateExclusive writes key only if nothing is there yet; it fails with fs.ErrExist otherwise.
	CreateExclusive(ctx context.Context, key string, data []byte) error
	// CreateExclusiveStream is CreateExclusive with what fill writes, without holding it all in memory.
	CreateExclusiveStream(ctx context.Context, key string, fill func(io.Writer) error) error
	// ReadFile returns key's content (an error satisfying errors.Is(err, fs.ErrNotExist) when absent).
	ReadFile(ctx context.Context, key string) ([]byte, error)
	// Open reads key as a stream.
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// OpenRange reads n bytes of key from off as a stream (fewer where key ends sooner).
	OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error)
	// Exists reports whether key is there.
	Exists(ctx context.Context, key string) (bool, error)
	// List returns every committed key under prefix (a directory: "_manifests"; "" for all), sorted.
	List(ctx context.Context, prefix string) ([]Entry, error)
	// Remove deletes key; a missing key is not an error.
	Remove(ctx context.Context, key string) error
	// RemoveAll deletes every key under prefix.
	RemoveAll(ctx context.Context, prefix string) error
	// Sync makes everything placed or published so far durable.
	Sync(ctx context.Context) error
	// RemoveTemps deletes what a killed process left half written; it returns how many it removed.
	RemoveTemps(ctx context.Context) (int, error)
	// Lock takes the lake for one writer (a run) until release; another holder makes it fail with
	// ErrBusy. lost is closed if the lock is taken away (a bucket's lease expired): stop writing.
	Lock(ctx context.Context, owner string) (release func(), lost <-chan struct{}, err error)
	// Held checks, just before a write that must not follow a lost lock, that the lock taken with Lock
	// is still this store's: ErrLockLost if another run took it over (nil when no lock was taken).
	Held(ctx context.Context) error
	// LocalPath is key's path on the local filesystem, when the store is a directory.
	LocalPath(key string) (string, bool)
	// Close releases the store's connections.
	Close() error
	// String names the store in messages: a path or a URL without its query.
	String() string
}

// File is a file being written to a Store: it appears at its key, complete, on Publish or Commit.
type File interface {
	io.Writer
	// Publish makes the complete file visible (durable after its store's next sync).
	Publish() error
	// Commit makes the complete file visible and durable.
	Commit() error
	// Abort discards the file; a no-op once published.
	Abort()
}

// Entry is a key a Store lists.
type Entry struct {
	Key  string
	Size int64
}

// ErrBusy means another run holds the lake.
var ErrBusy = errors.New("another ledgerlake run is using this output directory")

// OpenStore opens the lake at location: a local directory, or an object-store URL (s3://bucket/prefix,
// gs://bucket/prefix, azblob://container/prefix, file:///dir, mem://). spool is a local directory
// where a bucket stages files before uploading them (unused by a directory).
func OpenStore(ctx context.Context, location, spool string) (Store, error) {
	if IsURL(location) {
		return OpenBucket(ctx, location, spool)
	}
	if err := os.MkdirAll(location, 0o755); err != nil {
		return nil, err
	}
	return Dir(location), nil
}

// IsURL reports whether an output_dir names an object store rather than a local directory.
func IsURL(location string) bool {
	scheme, _, ok := strings.Cut(location, "://")
	return ok && scheme != "" && !strings.ContainsAny(scheme, `/\.`)
}

// Dir is a lake in a local directory: files are written under a temporary name, fsynced and renamed
// into place (package durable).
type Dir string

func (d Dir) path(key string) string { return filepath.Join(string(d), filepath.FromSlash(key)) }

// Create implements Store.
func (d Dir) Create(_ context.Context, key string) (File, error) { return durable.Create(d.path(key)) }

// WriteFile implements Store.
func (d Dir) WriteFile(_ context.Context, key string, data []byte) error {
	return durable.WriteFile(d.path(key), data)
}

// WriteStream implements Store.
func (d Dir) WriteStream(_ context.Context, key string, fill func(io.Writer) error) error {
	return durable.WriteStream(d.path(key), fill)
}

// CreateExclusive implements Store: the data is made durable under a temporary name, then hard-linked
// to key, which fails if key exists (link(2) never replaces).
func (d Dir) CreateExclusive(ctx context.Context, key string, data []byte) error {
	return d.CreateExclusiveStream(ctx, key, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CreateExclusiveStream implements Store like CreateExclusive.
func (d Dir) CreateExclusiveStream(_ context.Context, key string, fill func(io.Writer) error) error {
	f, err := durable.Create(d.path(key))
	if err != nil {
		return err
	}
	defer f.Abort()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := os.Link(f.Name(), d.path(key)); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s: %w", key, fs.ErrExist)
		}
		return err
	}
	return durable.SyncDir(filepath.Dir(d.path(key)))
}

// ReadFile implements Store.
func (d Dir) ReadFile(_ context.Context, key string) ([]byte, error) { return os.ReadFile(d.path(key)) }

// Open implements Store.
func (d Dir) Open(_ context.Context, key string) (io.ReadCloser, error) { return os.Open(d.path(key)) }

// OpenRange implements Store.
func (d Dir) OpenRange(_ context.Context, key string, off, n int64) (io.ReadCloser, error) {
	f, err := os.Open(d.path(key))
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, n), f}, nil
}

// Exists implements Store.
func (d Dir) Exists(_ context.Context, key string) (bool, error) {
	_, err := os.Stat(d.path(key))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// List implements Store; files being written (durable.TempPrefix) are not listed.
func (d Dir) List(_ context.Context, prefix string) ([]Entry, error) {
	var out []Entry
	err := filepath.WalkDir(d.path(prefix), func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), durable.TempPrefix) || e.Name() == lockFile {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(string(d), p)
		out = append(out, Entry{Key: filepath.ToSlash(rel), Size: info.Size()})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, err
}

// Remove implements Store.
func (d Dir) Remove(_ context.Context, key string) error {
	if err := os.Remove(d.path(key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RemoveAll implements Store.
func (d Dir) RemoveAll(_ context.Context, prefix string) error { return os.RemoveAll(d.path(prefix)) }

// Sync implements Store with one syncfs(2) rather than an fsync per file.
func (d Dir) Sync(_ context.Context) error { return durable.SyncFS(string(d)) }

// RemoveTemps implements Store.
func (d Dir) RemoveTemps(_ context.Context) (int, error) { return durable.RemoveTemps(string(d)) }

// lockFile is the file a Dir's runs lock.
const lockFile = ".lock"

// Lock implements Store with flock(2): the kernel releases it when the process dies, so a killed run
// never leaves a stale lock, and it is never lost while held.
func (d Dir) Lock(context.Context, string) (func(), <-chan struct{}, error) {
	f, err := os.OpenFile(d.path(lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w (%s); wait for it to finish", ErrBusy, string(d))
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil, nil
}

// Held implements Store: a flock is never taken away while its process lives (a stopped process
// keeps it too), so no other run can have taken the lake.
func (Dir) Held(context.Context) error { return nil }

// LocalPath implements Store.
func (d Dir) LocalPath(key string) (string, bool) { return d.path(key), true }

// Close implements Store.
func (d Dir) Close() error { return nil }

// String implements Store.
func (d Dir) String() string { return string(d) }
