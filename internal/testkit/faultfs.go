package testkit

import (
	"errors"

	"github.com/journalsensor/sensor/internal/atomicfile"
)

// ErrInjected is the error FaultFS and FaultFile return for the step they fail.
var ErrInjected = errors.New("injected fault")

// FaultFS is the real file system but for one step of an atomic write, which fails with
// ErrInjected. Step is "create", "write", "fsync", "close", "rename" or "syncdir".
type FaultFS struct {
	atomicfile.OS
	Step string
}

// CreateTemp fails for "create"; the file it returns fails its own steps.
func (f FaultFS) CreateTemp(dir, pattern string) (atomicfile.File, error) {
	if f.Step == "create" {
		return nil, ErrInjected
	}
	tf, err := f.OS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return FaultFile{File: tf, Step: f.Step}, nil
}

// Rename fails for "rename".
func (f FaultFS) Rename(oldpath, newpath string) error {
	if f.Step == "rename" {
		return ErrInjected
	}
	return f.OS.Rename(oldpath, newpath)
}

// SyncDir fails for "syncdir".
func (f FaultFS) SyncDir(dir string) error {
	if f.Step == "syncdir" {
		return ErrInjected
	}
	return f.OS.SyncDir(dir)
}

// FaultFile fails its write for "write", its fsync for "fsync" and its close (after closing)
// for "close".
type FaultFile struct {
	atomicfile.File
	Step string
}

func (f FaultFile) Write(p []byte) (int, error) {
	if f.Step == "write" {
		return 0, ErrInjected
	}
	return f.File.Write(p)
}

func (f FaultFile) Sync() error {
	if f.Step == "fsync" {
		return ErrInjected
	}
	return f.File.Sync()
}

func (f FaultFile) Close() error {
	err := f.File.Close()
	if f.Step == "close" {
		return ErrInjected
	}
	return err
}
