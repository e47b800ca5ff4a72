package spool

import (
	"os"

	"github.com/journalsensor/sensor/internal/atomicfile"
)

// fsys is the seam through which every durable write passes, so tests can fail each step
// (create, write, fsync, rename, directory fsync) and check that nothing half-done survives.
// Beyond an atomic write, the blob writer reopens a temp file it closed earlier to append.
type fsys interface {
	atomicfile.FS
	Reopen(name string) (tempFile, error)
}

// tempFile is the part of *os.File the atomic write uses.
type tempFile = atomicfile.File

// osFS is the real file system.
type osFS struct{ atomicfile.OS }

var _ fsys = osFS{}

// Reopen opens a temp file closed earlier for appending.
func (osFS) Reopen(name string) (tempFile, error) {
	return os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
}
