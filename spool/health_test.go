package spool

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/internal/testkit"
)

func setProbeEvery(s *Spool, d time.Duration) {
	s.health.mu.Lock()
	s.health.every = d
	s.health.mu.Unlock()
}

func commitOne(s *Spool) error {
	return s.Commit(ulid.Make().String(), []byte(`{"a":1}`))
}

// With the disk refusing writes, a failed commit and a failed probe make the spool unhealthy;
// it recovers by itself once a probe gets through, with no commit needed, and leaves no probe
// file behind.
func TestHealthFailsWhenCommitsAndAProbeFailAndRecoversByProbe(t *testing.T) {
	// Each probe step paired with the log step that fails the commit on the same disk.
	for step, logStep := range map[string]string{"create": "write", "write": "write", "fsync": "fdatasync"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			fs := &walFS{}
			s, _ := openLogTest(t, dir, fs, 0, 0)
			if err := s.Health(); err != nil {
				t.Fatalf("Health of a new spool: %v", err)
			}
			s.fs = faultFS{testkit.FaultFS{Step: step}}
			fs.setFault(logStep, dirLog, 1<<30)
			if err := commitOne(s); err == nil {
				t.Fatal("Commit succeeded")
			}
			err := s.Health()
			if !errors.Is(err, errInjected) {
				t.Fatalf("Health after a failed commit on a failing disk = %v, want the injected fault", err)
			}
			s.fs = osFS{}
			fs.setFault("", "", 0)
			if err := s.Health(); err == nil {
				t.Error("Health probed again within a second of the last probe")
			}
			setProbeEvery(s, 0)
			if err := s.Health(); err != nil {
				t.Errorf("Health once the disk takes writes again: %v", err)
			}
			if left := names(t, filepath.Join(dir, dirTmp)); len(left) != 0 {
				t.Errorf("tmp/ = %v after probing, want empty", left)
			}
		})
	}
}

// A successful commit makes the spool healthy again without a probe.
func TestHealthRecoversByCommit(t *testing.T) {
	fs := &walFS{}
	s, _ := openLogTest(t, t.TempDir(), fs, 0, 0)
	s.fs = faultFS{testkit.FaultFS{Step: "create"}}
	fs.setFault("write", dirLog, 1<<30)
	if err := commitOne(s); err == nil {
		t.Fatal("Commit succeeded")
	}
	if err := s.Health(); err == nil {
		t.Fatal("Health = nil with commits and probes failing")
	}
	s.fs = osFS{}
	fs.setFault("", "", 0)
	if err := commitOne(s); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health after a successful commit: %v", err)
	}
}

// A failed commit whose cause the probe does not meet (here one fdatasync of the log) is one
// bad moment, not a spool that cannot commit.
func TestHealthIgnoresAFailedCommitWhenTheProbeSucceeds(t *testing.T) {
	fs := &walFS{}
	s, _ := openLogTest(t, t.TempDir(), fs, 0, 0)
	fs.setFault("fdatasync", dirLog, 1)
	if err := commitOne(s); err == nil {
		t.Fatal("Commit succeeded")
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health = %v, though a test write succeeds", err)
	}
}

// Blob writes are commits too (content mode); a blob refused for a wrong sum is the caller's
// bug and says nothing about the disk.
func TestHealthCountsBlobFailuresButNotBadSums(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	s.fs = faultFS{testkit.FaultFS{Step: "fsync"}}
	if err := putBlob(t, s, []byte("bytes"), 2, sumABC); err == nil {
		t.Fatal("blob commit with a wrong sum succeeded")
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health after a wrong sum = %v, want nil", err)
	}
	if err := putBlob(t, s, []byte("abc"), 2, sumABC); !errors.Is(err, errInjected) {
		t.Fatalf("blob commit = %v, want the injected fault", err)
	}
	if err := s.Health(); !errors.Is(err, errInjected) {
		t.Errorf("Health after a failed blob commit = %v, want the injected fault", err)
	}
	s.fs = faultFS{testkit.FaultFS{Step: "create"}}
	setProbeEvery(s, 0)
	if _, err := s.CreateBlob(); !errors.Is(err, errInjected) {
		t.Fatalf("CreateBlob = %v, want the injected fault", err)
	}
	if err := s.Health(); !errors.Is(err, errInjected) {
		t.Errorf("Health after a failed CreateBlob = %v", err)
	}
}
