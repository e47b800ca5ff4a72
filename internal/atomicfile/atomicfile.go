// Package atomicfile writes files so that a crash at any instant leaves either nothing or the
// whole file: temp file in the same file system, write, fsync, close, rename, fsync the
// directory. The spool, the file:// outbox and the reference receiver all write this way.
//
// Every step goes through FS, so tests can fail each one (create, write, fsync, rename,
// directory fsync) and check that nothing half-done survives.
package atomicfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// FS is the seam through which every durable write passes.
type FS interface {
	CreateTemp(dir, pattern string) (File, error)
	Rename(oldpath, newpath string) error
	SyncDir(dir string) error
	Remove(name string) error
}

// File is the part of *os.File an atomic write uses.
type File interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

// OS is the real file system.
type OS struct{}

var _ FS = OS{}

// CreateTemp makes the file 0600 (os.CreateTemp does), which is what the spool and the outbox
// want.
func (OS) CreateTemp(dir, pattern string) (File, error) { return os.CreateTemp(dir, pattern) }

// Rename is os.Rename.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove is os.Remove.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir is the package's SyncDir.
func (OS) SyncDir(dir string) error { return SyncDir(dir) }

// SyncDir makes the directory's entries (a rename into it, a removal from it) durable; without
// it a crash can forget a rename even though the file's data was fsync'd.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close() // the sync error is the one that matters
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("close dir %s: %w", dir, err)
	}
	return nil
}

// Write writes dst so that, after a crash at any point, dst is either absent or complete:
// temp file in tmpDir (same file system as dst) named by pattern (see os.CreateTemp), fill,
// fsync, close, rename, fsync dst's directory. On failure it removes what it created, dst
// included if the rename happened but the directory fsync failed: the caller is told "not
// durable", so it must not find the file later and believe otherwise.
func Write(fs FS, tmpDir, pattern, dst string, fill func(io.Writer) error) error {
	if err := WriteRename(fs, tmpDir, pattern, dst, fill); err != nil {
		return err
	}
	if err := fs.SyncDir(filepath.Dir(dst)); err != nil {
		return errors.Join(fmt.Errorf("commit %s: %w", dst, err), RemoveIfExists(fs, dst))
	}
	return nil
}

// WriteRename is Write without the final directory fsync, for callers that share one fsync
// among many files (the spool's group commit). When it returns nil, dst holds the fsync'd data
// but its name is not yet durable; on error, the temp file is removed and dst untouched.
func WriteRename(fs FS, tmpDir, pattern, dst string, fill func(io.Writer) error) (err error) {
	f, err := fs.CreateTemp(tmpDir, pattern)
	if err != nil {
		return fmt.Errorf("create temp file for %s: %w", dst, err)
	}
	tmp := f.Name()
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			_ = f.Close() // the write already failed; this close only releases the descriptor
		}
		err = errors.Join(err, RemoveIfExists(fs, tmp))
	}()

	bw := bufio.NewWriterSize(f, 64<<10)
	if err = fill(bw); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	closed = true
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = fs.Rename(tmp, dst); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
	}
	return nil
}

// RemoveIfExists removes name; a name already gone is not an error.
func RemoveIfExists(fs FS, name string) error {
	if err := fs.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clean up %s: %w", name, err)
	}
	return nil
}

// WriteFile is Write on the real file system. The uploader's file:// outbox uses it with
// tmpDir == filepath.Dir(dst) and a pattern starting with "." so readers of the outbox can
// skip files in progress.
func WriteFile(tmpDir, pattern, dst string, fill func(w io.Writer) error) error {
	return Write(OS{}, tmpDir, pattern, dst, fill)
}
