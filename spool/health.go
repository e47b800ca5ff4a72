package spool

import (
	"fmt"
	"sync"
	"time"

	"github.com/journalsensor/sensor/internal/atomicfile"
)

// Whether the spool can commit, for the sensor's readiness. A failed commit alone proves
// little (one bad moment, one oversized write), and a healthy spool must not need traffic to
// show that it recovered, since a sensor that is not ready may get none. So the rule is:
//
//   - the spool is healthy while its latest commit (a record's, or a blob's in content mode)
//     succeeded;
//   - after a failed commit, Health writes a probe file through the same sequence a commit
//     uses (create in tmp/, write, fsync, close, then remove it), at most once per
//     probeEvery; if the probe fails too, the spool is unhealthy;
//   - a successful commit or probe makes it healthy again.
//
// A disk that is full or read-only, or a spool directory that has gone, fails both. The probe
// writes probeBytes, so a disk with a few blocks left can pass it while larger commits still
// fail; the next failed commit is then probed again after probeEvery.

const (
	defaultProbeEvery = time.Second
	probeBytes        = 64 << 10
	probePrefix       = "probe-"
)

// health is the commit health; its fields are guarded by mu.
type health struct {
	mu       sync.Mutex
	failures int       // consecutive failed commits; 0 after any success
	lastErr  error     // the latest of them
	failedAt time.Time // when the first of them failed
	probeErr error     // the latest probe's result
	probedAt time.Time // when it ran; zero before the first
	every    time.Duration

	probing sync.Mutex // held while a probe runs; others report without waiting
}

// noteCommit records the result of a commit that reached the file system. Validation
// failures (a malformed id, line or sum) are the caller's bugs, not the disk's, and are not
// noted.
func (s *Spool) noteCommit(err error) {
	h := &s.health
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.failures, h.lastErr = 0, nil
		return
	}
	if h.failures == 0 {
		h.failedAt = time.Now()
	}
	h.failures++
	h.lastErr = err
}

// Health returns nil while the spool can commit, and otherwise an error saying why not: the
// latest commits failed and a probe write to the spool's directory fails as well (see the
// rule above). It may write a probe, at most once per second and never two at once, so it
// is cheap enough for every /readyz request.
func (s *Spool) Health() error {
	h := &s.health
	h.mu.Lock()
	due := h.failures > 0 && time.Since(h.probedAt) >= h.every
	h.mu.Unlock()
	if due && h.probing.TryLock() {
		err := s.probe()
		h.mu.Lock()
		h.probeErr, h.probedAt = err, time.Now()
		if err == nil {
			h.failures, h.lastErr = 0, nil
		}
		h.mu.Unlock()
		h.probing.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failures == 0 || h.probeErr == nil || h.probedAt.Before(h.failedAt) {
		return nil
	}
	return fmt.Errorf("spool cannot commit: %d commit(s) failed in a row, the latest: %w; a test write fails too: %w",
		h.failures, h.lastErr, h.probeErr)
}

// probe writes and removes a probeBytes file in tmp/ by the durable sequence.
func (s *Spool) probe() error {
	f, err := s.fs.CreateTemp(s.path(dirTmp), probePrefix+"*")
	if err != nil {
		return fmt.Errorf("create in %s: %w", s.path(dirTmp), err)
	}
	name := f.Name()
	if _, err = f.Write(make([]byte, probeBytes)); err != nil {
		err = fmt.Errorf("write %s: %w", name, err)
	} else if err = f.Sync(); err != nil {
		err = fmt.Errorf("fsync %s: %w", name, err)
	}
	if cerr := f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", name, cerr)
	}
	if rmErr := atomicfile.RemoveIfExists(s.fs, name); rmErr != nil {
		// Open empties tmp/ at the next start; a failed removal says nothing about commits.
		s.log.Warn("spool: could not remove a probe file", "error", rmErr)
	}
	return err
}
