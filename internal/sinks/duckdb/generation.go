package duckdb

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ledgerlake/ledgerlake/internal/durable"
)

// Update changes the warehouse at path without ever holding it: fn works on a copy (a reflink where
// the filesystem has them, else a kernel-side copy), which replaces path by an atomic rename when fn
// asks to publish. DuckDB locks a file it writes against every other process, readers included, so a
// load in place would make each `extract query` during it fail with "locked"; this way a reader, or
// any DuckDB client opening the warehouse read-only, keeps answering from the last complete state
// (the file it opened) and the next one it opens is the new state, whole — never a half-loaded one.
// A writer killed midway leaves its copy behind, removed by the next Update, and the warehouse as it
// was. Writers are serialised by a lock beside the file (ErrLocked if another holds it).
//
// fn returns whether to publish what it did even when it also returns an error (a load that
// succeeded, followed by a model that failed), and its error.
func Update(path, limit string, fn func(*Warehouse) (publish bool, err error)) error {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return fmt.Errorf("%s: %w", path, ErrLocked)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	prefix := durable.TempPrefix + base + "-"
	if left, _ := filepath.Glob(filepath.Join(dir, prefix+"*")); len(left) > 0 {
		for _, p := range left {
			os.RemoveAll(p) // a killed writer's copy (and its .wal or spill directory)
		}
	}
	if err := settleWAL(path, limit); err != nil {
		return err
	}
	tmp := filepath.Join(dir, prefix+randomName()+".duckdb")
	defer func() {
		os.Remove(tmp)
		os.Remove(tmp + ".wal")
	}()
	if err := cloneFile(path, tmp); err != nil {
		return err
	}
	wh, err := OpenLimit(tmp, limit)
	if err != nil {
		if IsDamaged(err) {
			return setAsideDamaged(path, err)
		}
		return err
	}
	publish, err := fn(wh)
	if !publish {
		wh.Close()
		if err != nil && classify(err, tmp) == ErrDamaged {
			return setAsideDamaged(path, err)
		}
		return err
	}
	// A checkpoint folds the write-ahead log into the file, so the file alone is the whole state.
	if _, cerr := wh.DB.Exec("CHECKPOINT"); cerr != nil {
		wh.Close()
		return errors.Join(err, fmt.Errorf("checkpointing the new warehouse: %w", cerr))
	}
	if cerr := wh.Close(); cerr != nil {
		return errors.Join(err, cerr)
	}
	if perr := publishFile(tmp, path); perr != nil {
		return errors.Join(err, fmt.Errorf("publishing the new warehouse: %w", perr))
	}
	return err
}

// setAsideDamaged sets aside the warehouse at path, whose copy DuckDB could not read (err): a block
// that only a load or a model reads can be damaged in a file that opens. The writer lock is held, so
// no writer uses it; the next run finds no warehouse and rebuilds it from the lake.
func setAsideDamaged(path string, err error) error {
	aside, serr := SetAside(path)
	if serr != nil {
		return errors.Join(fmt.Errorf("%s: %w: %w", path, ErrDamaged, err), serr)
	}
	return fmt.Errorf("%s: %w (set aside as %s; the next extract run rebuilds it from the lake): %w", path, ErrDamaged, aside, err)
}

// settleWAL folds a write-ahead log left beside path (by a writer of the file in place, before
// Update, killed) into the file: a copy of the file alone would lose the transactions it holds.
func settleWAL(path, limit string) error {
	if _, err := os.Stat(path + ".wal"); err != nil {
		return nil
	}
	wh, err := OpenLimit(path, limit)
	if err != nil {
		return err
	}
	if _, err := wh.DB.Exec("CHECKPOINT"); err != nil {
		wh.Close()
		return err
	}
	return wh.Close()
}

// cloneFile copies src to a new dst: a reflink (FICLONE) where the filesystem shares blocks, else
// copy_file_range through io.Copy. A missing src leaves dst absent (DuckDB creates it).
func cloneFile(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copying the warehouse: %w", err)
		}
	}
	return out.Close()
}

// publishFile makes tmp durable and renames it over path.
func publishFile(tmp, path string) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Dir(path))
}

func randomName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
