package spool

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// fsys is the seam through which every durable write passes, so tests can fail each step
// (create, write, fsync, rename, directory fsync) and check that nothing half-done survives.
type fsys interface {
	createTemp(dir, pattern string) (tempFile, error)
	reopen(name string) (tempFile, error) // for appending to a temp file closed earlier
	rename(oldpath, newpath string) error
	syncDir(dir string) error
	remove(name string) error
}

// tempFile is the part of *os.File the atomic write uses.
type tempFile interface {
	io.Writer
	Sync() error
	Close() error
	Name() string
}

// osFS is the real file system.
type osFS struct{}

var _ fsys = osFS{}

func (osFS) createTemp(dir, pattern string) (tempFile, error) {
	// os.CreateTemp makes the file 0600, which is what the spool and outbox want.
	return os.CreateTemp(dir, pattern)
}

func (osFS) reopen(name string) (tempFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
}

func (osFS) rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osFS) remove(name string) error { return os.Remove(name) }

func (osFS) syncDir(dir string) error { return syncDir(dir) }

// syncDir makes the directory's entries (a rename into it, a removal from it) durable; without
// it a crash can forget a rename even though the file's data was fsync'd.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open dir %s: %w", dir, err)
	}
	if err := d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("fsync dir %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("close dir %s: %w", dir, err)
	}
	return nil
}

// writeAtomic writes dst so that, after a crash at any point, dst is either absent or complete:
// temp file in tmpDir (same file system as dst), fill, fsync, close, rename, fsync dst's
// directory. On failure it removes what it created, dst included if the rename happened but the
// directory fsync failed: the caller is told "not durable", so it must not find the file
// later and believe otherwise.
func writeAtomic(fs fsys, tmpDir, pattern, dst string, fill func(io.Writer) error) error {
	if err := writeRename(fs, tmpDir, pattern, dst, fill); err != nil {
		return err
	}
	if err := fs.syncDir(filepath.Dir(dst)); err != nil {
		return errors.Join(fmt.Errorf("commit %s: %w", dst, err), removeIfExists(fs, dst))
	}
	return nil
}

// writeRename is writeAtomic without the final directory fsync, for callers that share one
// fsync among many files (Commit's group commit). When it returns nil, dst holds the fsync'd
// data but its name is not yet durable; on error, the temp file is removed and dst untouched.
func writeRename(fs fsys, tmpDir, pattern, dst string, fill func(io.Writer) error) (err error) {
	f, err := fs.createTemp(tmpDir, pattern)
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
		err = errors.Join(err, removeIfExists(fs, tmp))
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
	if err = fs.rename(tmp, dst); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, dst, err)
	}
	return nil
}

func removeIfExists(fs fsys, name string) error {
	if err := fs.remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("clean up %s: %w", name, err)
	}
	return nil
}

// WriteFileAtomic durably writes dst with what fill writes: a temp file named by pattern (see
// os.CreateTemp) in tmpDir, which must be on the same file system as dst, is fsync'd, renamed
// to dst and dst's directory fsync'd. When it returns an error, neither dst nor the temp file
// is left behind. The uploader's file:// outbox uses it with tmpDir == filepath.Dir(dst) and a
// pattern starting with "." so readers of the outbox can skip files in progress.
func WriteFileAtomic(tmpDir, pattern, dst string, fill func(w io.Writer) error) error {
	return writeAtomic(osFS{}, tmpDir, pattern, dst, fill)
}
