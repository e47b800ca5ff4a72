package wal

import (
	"errors"
	"sync"
)

// errInjected is what faultFS returns for the step it fails.
var errInjected = errors.New("injected fault")

// faultFS is the real file system but for one step, which succeeds `after` times and then
// fails every time: "create", "preallocate", "write", "fdatasync", "sync" (a new segment's
// fsync), "syncdir" or "remove". A failed write is torn: the first half of the bytes is
// written before the error, as a crash in the middle of a write would leave them.
type faultFS struct {
	OS
	step  string
	after int

	mu    sync.Mutex
	calls int
}

func (f *faultFS) hit(step string) bool {
	if step != f.step {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.calls > f.after
}

func (f *faultFS) Create(name string) (File, error) {
	if f.hit("create") {
		return nil, errInjected
	}
	file, err := f.OS.Create(name)
	if err != nil {
		return nil, err
	}
	return faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Open(name string) (File, error) {
	file, err := f.OS.Open(name)
	if err != nil {
		return nil, err
	}
	return faultFile{File: file, fs: f}, nil
}

func (f *faultFS) Remove(name string) error {
	if f.hit("remove") {
		return errInjected
	}
	return f.OS.Remove(name)
}

func (f *faultFS) SyncDir(dir string) error {
	if f.hit("syncdir") {
		return errInjected
	}
	return f.OS.SyncDir(dir)
}

type faultFile struct {
	File
	fs *faultFS
}

func (f faultFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.hit("write") {
		n, _ := f.File.WriteAt(p[:len(p)/2], off) // the injected error is the one reported
		return n, errInjected
	}
	return f.File.WriteAt(p, off)
}

func (f faultFile) Preallocate(size int64) error {
	if f.fs.hit("preallocate") {
		return errInjected
	}
	return f.File.Preallocate(size)
}

func (f faultFile) Fdatasync() error {
	if f.fs.hit("fdatasync") {
		return errInjected
	}
	return f.File.Fdatasync()
}

func (f faultFile) Sync() error {
	if f.fs.hit("sync") {
		return errInjected
	}
	return f.File.Sync()
}
