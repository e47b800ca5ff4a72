package spool

import (
	"bufio"
	"container/list"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/journalsensor/sensor/internal/atomicfile"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

const (
	dirBlobs = "blobs"

	// blobTempPrefix names blob temp files in tmp/ (record temp files start with a ULID).
	blobTempPrefix = "blob-"

	// defaultMaxOpenBlobs bounds the blob files held open, each with a write buffer, across
	// all writers of a spool. The parser keeps every blob of a message uncommitted until the
	// whole message is parsed, and a hostile message can carry thousands of attachments: one
	// descriptor and buffer each would exhaust both. Past the bound the writer open longest
	// is flushed and closed; it reopens if written again, which, since the parser writes one
	// attachment after another, it almost never is.
	defaultMaxOpenBlobs = 256

	blobBufSize = 32 << 10

	// defaultHoldTTL is how long a committed blob is kept for a record that may still name
	// it (see blobHold). Parsing ends with the blob commits and the record commit follows at
	// once, so this only needs to outlast a slow disk.
	defaultHoldTTL = 10 * time.Minute
)

var errBlobDone = errors.New("blob already committed or aborted")

// BlobWriter receives one attachment's bytes, hashing them as they come, and either commits
// them as blobs/<sha256> or aborts. It satisfies the parser's BlobWriter interface. A writer
// is used by one goroutine; the spool may flush and close its file from another (see
// defaultMaxOpenBlobs), which the writer's mutex orders.
type BlobWriter struct {
	s   *Spool
	tmp string // its temp file in tmp/

	mu   sync.Mutex
	h    hash.Hash
	n    int64
	f    tempFile      // nil while closed to make room for other writers
	bw   *bufio.Writer // nil while f is
	err  error         // the first write failure; the blob can then only be aborted
	done bool          // committed or aborted

	slot *list.Element // its place in s.open while f is set; guarded by s.openMu
}

// CreateBlob starts a blob: a temp file in tmp/ that Commit renames to blobs/<sha256>.
// In content mode the SMTP session hands the parser a sink whose Create calls this.
func (s *Spool) CreateBlob() (*BlobWriter, error) {
	f, err := s.fs.CreateTemp(s.path(dirTmp), blobTempPrefix+"*")
	if err != nil {
		s.noteCommit(err)
		return nil, fmt.Errorf("spool: create blob: %w", err)
	}
	w := &BlobWriter{s: s, tmp: f.Name(), h: sha256.New()}
	w.mu.Lock()
	w.attachLocked(f)
	w.mu.Unlock()
	return w, nil
}

// attachLocked gives the writer an open file and a buffer, making room among the open ones.
func (w *BlobWriter) attachLocked(f tempFile) {
	w.f = f
	w.bw = w.s.bufs.Get().(*bufio.Writer)
	w.bw.Reset(f)
	w.s.opened(w)
}

// opened registers w as holding an open file and closes the longest-open writers past the
// bound. A writer busy in another goroutine is passed over rather than waited for: nobody
// holding openMu ever blocks on a writer's mutex, which is what keeps the two locks from
// deadlocking.
func (s *Spool) opened(w *BlobWriter) {
	s.openMu.Lock()
	defer s.openMu.Unlock()
	w.slot = s.open.PushBack(w)
	for e := s.open.Front(); e != nil && s.open.Len() > s.maxOpenBlobs; {
		next := e.Next()
		if v := e.Value.(*BlobWriter); v != w && v.mu.TryLock() {
			v.detachLocked(true)
			v.mu.Unlock()
		}
		e = next
	}
}

// detachLocked flushes and closes the writer's file and returns its buffer. openHeld says
// whether the caller already holds s.openMu.
func (w *BlobWriter) detachLocked(openHeld bool) { w.closeLocked(openHeld, true) }

// discardLocked closes the writer's file without writing out what is buffered: the blob is
// being thrown away.
func (w *BlobWriter) discardLocked() { w.closeLocked(false, false) }

func (w *BlobWriter) closeLocked(openHeld, flush bool) {
	if w.f == nil {
		return
	}
	if !flush {
		w.bw.Reset(nil)
	} else if err := w.bw.Flush(); err != nil && w.err == nil {
		w.err = fmt.Errorf("write %s: %w", w.tmp, err)
	}
	if err := w.f.Close(); err != nil && w.err == nil {
		w.err = fmt.Errorf("close %s: %w", w.tmp, err)
	}
	w.bw.Reset(nil)
	w.s.bufs.Put(w.bw)
	w.f, w.bw = nil, nil
	if !openHeld {
		w.s.openMu.Lock()
		defer w.s.openMu.Unlock()
	}
	if w.slot != nil {
		w.s.open.Remove(w.slot)
		w.slot = nil
	}
}

// Write appends p to the blob.
func (w *BlobWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, errBlobDone
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.f == nil {
		f, err := w.s.fs.Reopen(w.tmp)
		if err != nil {
			w.err = fmt.Errorf("spool: reopen blob: %w", err)
			w.s.noteCommit(w.err)
			return 0, w.err
		}
		w.attachLocked(f)
	}
	n, err := w.bw.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	if err != nil {
		w.err = fmt.Errorf("spool: write blob %s: %w", w.tmp, err)
		w.s.noteCommit(w.err)
		return n, w.err
	}
	return n, nil
}

// Commit makes the blob durable as blobs/<sum>. sum must be the SHA-256 of what was written,
// in lowercase hex: the writer hashed the bytes itself and refuses any other name, so a bug
// upstream cannot file bytes under a wrong sum. When Commit returns nil the file and its
// directory entry are fsync'd. On error nothing of this writer is left; the session must
// not acknowledge the message.
//
// Identical blobs committed by concurrent sessions each rename their file over the same
// name; the content is the same, so whichever rename lands last wins and nothing is lost.
func (w *BlobWriter) Commit(sum string) error {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return errBlobDone
	}
	w.done = true
	n, err := w.finishLocked(sum)
	w.mu.Unlock()
	if err != nil {
		if !errors.Is(err, errBadSum) {
			w.s.noteCommit(err)
		}
		return errors.Join(fmt.Errorf("spool: commit blob %.16s: %w", sum, err), atomicfile.RemoveIfExists(w.s.fs, w.tmp))
	}
	err = w.s.commitBlob(w.tmp, sum, n)
	w.s.noteCommit(err)
	if err != nil {
		return fmt.Errorf("spool: commit blob %s: %w", sum, err)
	}
	return nil
}

// errBadSum marks a Commit refused for its sum rather than for the disk.
var errBadSum = errors.New("bad sum")

// finishLocked checks the sum and makes the temp file's data durable, leaving it closed.
func (w *BlobWriter) finishLocked(sum string) (int64, error) {
	if !validSum(sum) {
		w.discardLocked()
		return 0, fmt.Errorf("%w: not a lowercase hex SHA-256", errBadSum)
	}
	if w.err != nil {
		w.discardLocked()
		return 0, w.err
	}
	if got := hex.EncodeToString(w.h.Sum(nil)); got != sum {
		w.discardLocked()
		return 0, fmt.Errorf("%w: the bytes written hash to %s", errBadSum, got)
	}
	if w.f == nil {
		// Closed to make room: reopened only to fsync. On Linux fsync covers the file's data
		// whichever descriptor wrote it.
		f, err := w.s.fs.Reopen(w.tmp)
		if err != nil {
			return 0, fmt.Errorf("reopen: %w", err)
		}
		w.attachLocked(f)
	}
	f := w.f
	if err := w.bw.Flush(); err != nil {
		w.discardLocked()
		return 0, fmt.Errorf("write %s: %w", w.tmp, err)
	}
	if err := f.Sync(); err != nil {
		w.discardLocked()
		return 0, fmt.Errorf("fsync %s: %w", w.tmp, err)
	}
	w.detachLocked(false) // flushes nothing more; a close error lands in w.err
	if w.err != nil {
		return 0, w.err
	}
	return w.n, nil
}

// Abort discards the blob. It is harmless after Commit or a second Abort.
func (w *BlobWriter) Abort() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done = true
	w.discardLocked() // the file is removed next: a close error cannot lose anything
	w.mu.Unlock()
	if err := atomicfile.RemoveIfExists(w.s.fs, w.tmp); err != nil {
		// Open empties tmp/ at the next start.
		w.s.log.Warn("spool: could not remove an aborted blob", "error", err)
	}
}

// commitBlob renames a durable temp file to blobs/<sum> and fsyncs blobs/, sharing the fsync
// with concurrent commits. blobMu makes the rename and the usage one step with respect to
// removals, so a removal can never delete the file a commit has just put in place.
func (s *Spool) commitBlob(tmp, sum string, n int64) error {
	s.blobMu.Lock()
	err := s.fs.Rename(tmp, s.path(dirBlobs, sum))
	if err == nil {
		s.mu.Lock()
		s.hold(sum)
		if old, ok := s.blobs[sum]; ok {
			s.usage.BlobBytes -= old
		} else {
			s.usage.Blobs++
		}
		s.blobs[sum] = n
		s.usage.BlobBytes += n
		s.mu.Unlock()
	}
	s.blobMu.Unlock()
	if err != nil {
		return errors.Join(err, atomicfile.RemoveIfExists(s.fs, tmp))
	}
	if err := s.blobSync.wait(func() error { return s.fs.SyncDir(s.path(dirBlobs)) }); err != nil {
		// The session will not acknowledge the message, so no record will name the blob for
		// it. The file itself stays if another record names it (identical content).
		s.mu.Lock()
		s.unhold(sum)
		s.mu.Unlock()
		s.dropBlobs([]string{sum})
		return err
	}
	return nil
}

// dropBlobs removes those of sums that are unneeded (see unneeded). The removals are not
// fsync'd: a blob that comes back after a crash names nothing and is swept at Open.
func (s *Spool) dropBlobs(sums []string) int {
	if len(sums) == 0 {
		return 0
	}
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	now := time.Now()
	removed := 0
	for _, sum := range sums {
		s.mu.Lock()
		ok := s.unneeded(sum, now)
		s.mu.Unlock()
		if !ok {
			continue
		}
		err := s.fs.Remove(s.path(dirBlobs, sum))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("spool: could not remove a blob nothing names", "sha256", sum, "error", err)
			continue
		}
		s.mu.Lock()
		s.forgetBlob(sum)
		s.mu.Unlock()
		removed++
	}
	return removed
}

// ReleaseBlobs gives back the blobs a session committed for a record it will not commit (it
// was refused for want of room, or could not be encoded): sums are the record's
// attachments[].blob, one per attachment as lineRefs reads them, so each settles the hold of
// one blob commit. A blob leaves blobs/, and the usage, at once unless a pending record or
// batch names it or another session's commit still holds it (identical bytes on their way
// into another record). Without this the blob would count against the budget until its hold
// expired, refusing later messages for room the refused one no longer needs. Values that are
// not sums are ignored.
//
// A failed Commit needs no call: the spool releases the blobs of the records it could not
// commit itself.
func (s *Spool) ReleaseBlobs(sums []string) {
	var valid []string
	for _, sum := range sums {
		if validSum(sum) {
			valid = append(valid, sum)
		}
	}
	s.releaseHolds(valid)
}

// releaseHolds settles one hold per occurrence in sums and removes the blobs that leaves
// unneeded.
func (s *Spool) releaseHolds(occurrences []string) {
	if len(occurrences) == 0 {
		return
	}
	s.mu.Lock()
	for _, sum := range occurrences {
		s.unhold(sum)
	}
	s.mu.Unlock()
	s.dropBlobs(distinct(occurrences))
}

// forgetBlob takes a blob that left blobs/ out of the usage. The caller holds s.mu.
func (s *Spool) forgetBlob(sum string) {
	if n, ok := s.blobs[sum]; ok {
		delete(s.blobs, sum)
		s.usage.Blobs--
		s.usage.BlobBytes -= n
	}
}

// SweepBlobs removes every blob that no pending record or batch names and no recent commit
// holds, and returns how many it removed. Blobs leave as soon as their last reference goes
// (a batch delivered or dead-lettered), so what this finds is what a failed session or a
// crash left: the uploader calls it now and then.
func (s *Spool) SweepBlobs() int {
	s.mu.Lock()
	var cand []string
	for sum := range s.blobs {
		if s.refs[sum] == 0 {
			cand = append(cand, sum)
		}
	}
	s.mu.Unlock()
	n := s.dropBlobs(cand)
	if n > 0 {
		s.log.Info("spool: removed blobs that no record names", "count", n)
	}
	return n
}

// OpenBlob opens blobs/<sum> for reading and returns its size. An error wrapping
// fs.ErrNotExist means the spool does not hold that blob. Each upload attempt opens it
// afresh, so no blob is ever held in memory.
func (s *Spool) OpenBlob(sum string) (*os.File, int64, error) {
	if !validSum(sum) {
		return nil, 0, fmt.Errorf("spool: blob name %q is not a SHA-256: %w", sum, fs.ErrNotExist)
	}
	f, err := os.Open(s.path(dirBlobs, sum))
	if err != nil {
		return nil, 0, fmt.Errorf("spool: open blob: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close() // read-only
		return nil, 0, fmt.Errorf("spool: open blob: %w", err)
	}
	return f, info.Size(), nil
}

// DeadLetterBlob moves a blob the pipeline refused for good to deadletter/blobs/, where it
// stays for an operator. Records that name it are still delivered; they go without it.
func (s *Spool) DeadLetterBlob(sum string) error {
	if !validSum(sum) {
		return fmt.Errorf("spool: blob name %q is not a SHA-256", sum)
	}
	dir, err := s.deadBlobDir()
	if err != nil {
		return err
	}
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	dst := filepath.Join(dir, sum)
	_, statErr := os.Lstat(dst)
	if err := s.fs.Rename(s.path(dirBlobs, sum), dst); err != nil {
		return fmt.Errorf("spool: dead-letter blob: %w", err)
	}
	s.mu.Lock()
	s.forgetBlob(sum)
	if statErr != nil {
		s.usage.DeadLetterBlobs++
	}
	s.mu.Unlock()
	// The new name first, as for batches.
	if err := s.fs.SyncDir(dir); err != nil {
		return fmt.Errorf("spool: dead-letter blob: %w", err)
	}
	if err := s.fs.SyncDir(s.path(dirBlobs)); err != nil {
		return fmt.Errorf("spool: dead-letter blob: %w", err)
	}
	return nil
}

// keepWithDeadLetter links the blobs a dead-lettered batch names into deadletter/blobs/, so
// an operator who replays its records has their bytes too. A link costs no space while the
// blob is also pending elsewhere.
func (s *Spool) keepWithDeadLetter(batch string, sums []string) {
	if len(sums) == 0 {
		return
	}
	dir, err := s.deadBlobDir()
	if err != nil {
		s.log.Error("spool: dead-lettered batch's blobs not kept", "batch", batch, "error", err)
		return
	}
	s.blobMu.Lock()
	defer s.blobMu.Unlock()
	kept := 0
	for _, sum := range sums {
		s.mu.Lock()
		_, ok := s.blobs[sum]
		s.mu.Unlock()
		if !ok {
			continue
		}
		err := os.Link(s.path(dirBlobs, sum), filepath.Join(dir, sum))
		switch {
		case err == nil:
			kept++
		case errors.Is(err, fs.ErrExist):
		default:
			s.log.Error("spool: dead-lettered batch's blob not kept", "batch", batch, "sha256", sum, "error", err)
		}
	}
	s.mu.Lock()
	s.usage.DeadLetterBlobs += kept
	s.mu.Unlock()
	if kept > 0 {
		if err := s.fs.SyncDir(dir); err != nil {
			s.log.Warn("spool: dead-lettered blobs' links not durable", "batch", batch, "error", err)
		}
	}
}

func (s *Spool) deadBlobDir() (string, error) {
	dir := s.path(dirDeadLetter, dirBlobs)
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return "", fmt.Errorf("spool: %w", err)
	}
	return dir, nil
}

// scanBlobs counts blobs/ at Open. Anything not named by a SHA-256 is not ours to touch.
func (s *Spool) scanBlobs() error {
	entries, err := os.ReadDir(s.path(dirBlobs))
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !validSum(name) || !e.Type().IsRegular() {
			s.log.Error("spool: unexpected entry in blobs directory", "file", name)
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed under us: not a blob any more
		}
		s.blobs[name] = info.Size()
		s.usage.Blobs++
		s.usage.BlobBytes += info.Size()
	}
	dead, err := os.ReadDir(s.path(dirDeadLetter, dirBlobs))
	if err == nil {
		s.usage.DeadLetterBlobs = len(dead)
	}
	return nil
}
