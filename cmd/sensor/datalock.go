package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes the data directory for this process alone, for as long as it runs:
// serve and drain both open the spool, and two at once would each count the other's records
// as theirs, and one's start-up clean-up could delete the files the other is writing. The
// lock is an flock, so a process that dies releases it.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	path := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("--data-dir %s is in use by another sensor process (serve or drain); stop it first", dir)
		}
		return nil, fmt.Errorf("--data-dir: locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
