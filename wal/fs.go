package wal

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// FS is every file operation the log performs that can fail in a way that matters for
// durability, so tests can fail each one (see fault_test.go) and check what a reopen finds.
// Listing the directory is not part of it: a failed listing only fails Open.
type FS interface {
	// Create makes a new segment file, failing if it exists (O_EXCL), mode 0600.
	Create(name string) (File, error)
	// Open opens an existing segment for reading and writing.
	Open(name string) (File, error)
	// Remove deletes a segment.
	Remove(name string) error
	// Rename sets a damaged segment aside.
	Rename(from, to string) error
	// SyncDir makes the directory's entries (a created or removed segment) durable.
	SyncDir(dir string) error
}

// File is one open segment.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Preallocate extends the file to size bytes, the new bytes zero and allocated.
	Preallocate(size int64) error
	// Fdatasync flushes the file's data and the metadata needed to read it back, not its
	// timestamps: the one flush of a group commit.
	Fdatasync() error
	// Sync is a full fsync, used once per new segment so its size is durable too.
	Sync() error
	Size() (int64, error)
	Close() error
	Name() string
}

// OS is the real file system.
type OS struct {
	// Fallocate makes Preallocate use fallocate(2) instead of writing zeros. It is off by
	// default: fallocate leaves "unwritten" extents, and the first write into each one must
	// convert it, a metadata change that every fdatasync then has to commit through the file
	// system journal. Writing real zeros once per segment makes every later append a plain
	// overwrite, whose fdatasync flushes data only. BenchmarkAppend measures both.
	Fallocate bool
}

var _ FS = OS{}

// Create is os.OpenFile with O_EXCL: a segment name is never reused, so finding one is a bug
// or a second writer, not something to overwrite.
func (o OS) Create(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return osFile{File: f, fallocate: o.Fallocate}, nil
}

// Open opens name read-write.
func (o OS) Open(name string) (File, error) {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return osFile{File: f, fallocate: o.Fallocate}, nil
}

// Remove is os.Remove.
func (OS) Remove(name string) error { return os.Remove(name) }

// Rename is os.Rename.
func (OS) Rename(from, to string) error { return os.Rename(from, to) }

// SyncDir opens dir and fsyncs it.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		_ = d.Close() // the sync error is the one that matters
		return err
	}
	return d.Close()
}

type osFile struct {
	*os.File
	fallocate bool
}

// zeroChunk bounds the buffer Preallocate writes from; 1 MiB keeps the syscall count low
// (64 per default segment) without a large allocation.
const zeroChunk = 1 << 20

func (f osFile) Preallocate(size int64) error {
	cur, err := f.Size()
	if err != nil {
		return err
	}
	if cur >= size {
		return nil
	}
	if f.fallocate {
		// Mode 0 extends the file size too, so the frames' bound is the file size either way.
		return unix.Fallocate(int(f.Fd()), 0, cur, size-cur)
	}
	zeros := make([]byte, min(zeroChunk, size-cur))
	for off := cur; off < size; {
		n := min(int64(len(zeros)), size-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func (f osFile) Fdatasync() error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return st.Size(), nil
}
