package spool

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// Known SHA-256 values, from FIPS 180-2 appendix B.1 ("abc") and for the empty string
// (both also what `printf abc | sha256sum` and `sha256sum </dev/null` print).
const (
	sumABC   = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	sumEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// sumOf hashes b in one call, independently of the writer, which hashes chunk by chunk.
func sumOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// putBlob writes data to a new blob in chunks of chunk bytes and commits it under sum.
func putBlob(t *testing.T, s *Spool, data []byte, chunk int, sum string) error {
	t.Helper()
	w, err := s.CreateBlob()
	if err != nil {
		return err
	}
	for rest := data; len(rest) > 0; {
		n := min(chunk, len(rest))
		if _, err := w.Write(rest[:n]); err != nil {
			w.Abort()
			return err
		}
		rest = rest[n:]
	}
	return w.Commit(sum)
}

// recordNaming returns a record line whose attachments name the given blobs.
func recordNaming(id string, sums ...string) []byte {
	var atts []string
	for i, s := range sums {
		atts = append(atts, fmt.Sprintf(`{"path":"%d","sha256":%q,"blob":%q}`, i+1, s, s))
	}
	return fmt.Appendf(nil, `{"id":%q,"attachments":[%s]}`, id, strings.Join(atts, ","))
}

// commitNaming commits a record naming sums and returns the id of the group it went into.
// Commits from one goroutine are alone in their groups, so that group is the newest.
func commitNaming(t *testing.T, s *Spool, sums ...string) string {
	t.Helper()
	id := ulid.Make().String()
	if err := s.Commit(id, recordNaming(id, sums...)); err != nil {
		t.Fatal(err)
	}
	p, err := s.Pending()
	if err != nil || len(p) == 0 {
		t.Fatalf("Pending = %v, %v", p, err)
	}
	return p[len(p)-1].ID
}

func blobNames(t *testing.T, dir string) []string {
	t.Helper()
	got := names(t, filepath.Join(dir, dirBlobs))
	slices.Sort(got)
	return got
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestBlobCommitStoresTheBytesUnderTheirSum(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	if err := putBlob(t, s, []byte("abc"), 1, sumABC); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := putBlob(t, s, nil, 1, sumEmpty); err != nil {
		t.Fatalf("Commit of an empty blob: %v", err)
	}
	// Larger than the writer's buffer, in odd chunks, so flushes fall mid-chunk.
	big := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 40000)
	bigSum := sumOf(big)
	if err := putBlob(t, s, big, 7777, bigSum); err != nil {
		t.Fatalf("Commit of a large blob: %v", err)
	}
	for sum, want := range map[string][]byte{sumABC: []byte("abc"), sumEmpty: {}, bigSum: big} {
		name := filepath.Join(dir, dirBlobs, sum)
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("blobs/%s: %d bytes, %v; want %d bytes", sum, len(got), err, len(want))
		}
		if m := mode(t, name); m != 0o600 {
			t.Errorf("blobs/%s mode %v, want 0600", sum, m)
		}
	}
	if m := mode(t, filepath.Join(dir, dirBlobs)); m != 0o700 {
		t.Errorf("blobs/ mode %v, want 0700", m)
	}
	if left := names(t, filepath.Join(dir, dirTmp)); len(left) != 0 {
		t.Errorf("tmp/ = %v after the commits", left)
	}
	if u := s.Usage(); u.Blobs != 3 || u.BlobBytes != 3+int64(len(big)) {
		t.Errorf("usage %+v, want 3 blobs of %d bytes", u, 3+len(big))
	}
	f, size, err := s.OpenBlob(sumABC)
	if err != nil || size != 3 {
		t.Fatalf("OpenBlob = %d, %v", size, err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != "abc" {
		t.Errorf("OpenBlob read %q", got)
	}
	if _, _, err := s.OpenBlob(sumOf([]byte("nope"))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenBlob of an absent blob: %v, want ErrNotExist", err)
	}
	if _, _, err := s.OpenBlob("../records"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenBlob of a path: %v, want ErrNotExist", err)
	}
}

func TestBlobCommitRefusesAWrongOrMalformedSum(t *testing.T) {
	for name, sum := range map[string]string{
		"other content": sumEmpty,
		"upper case":    strings.ToUpper(sumABC),
		"short":         sumABC[:63],
		"path":          "../" + sumABC[3:],
		"empty":         "",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openTest(t, dir)
			if err := putBlob(t, s, []byte("abc"), 2, sum); err == nil {
				t.Fatal("Commit accepted a sum that is not the bytes' SHA-256")
			}
			if got := names(t, filepath.Join(dir, dirBlobs)); len(got) != 0 {
				t.Errorf("blobs/ = %v", got)
			}
			if got := names(t, filepath.Join(dir, dirTmp)); len(got) != 0 {
				t.Errorf("tmp/ = %v", got)
			}
			if u := s.Usage(); u.Blobs != 0 || u.BlobBytes != 0 {
				t.Errorf("usage %+v", u)
			}
		})
	}
}

func TestBlobWriterAfterCommitOrAbort(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	w, err := s.CreateBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(sumABC); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if err := w.Commit(sumABC); err == nil {
		t.Error("a second Commit succeeded")
	}
	w.Abort() // must not remove the committed blob
	if _, err := os.Stat(filepath.Join(dir, dirBlobs, sumABC)); err != nil {
		t.Errorf("Abort after Commit removed the blob: %v", err)
	}

	w, err = s.CreateBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("discard me")); err != nil {
		t.Fatal(err)
	}
	w.Abort()
	w.Abort()
	if err := w.Commit(sumOf([]byte("discard me"))); err == nil {
		t.Error("Commit after Abort succeeded")
	}
	if got := names(t, filepath.Join(dir, dirTmp)); len(got) != 0 {
		t.Errorf("tmp/ = %v after Abort", got)
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{sumABC}) {
		t.Errorf("blobs/ = %v", got)
	}
}

// A hostile message can carry thousands of attachments, each a writer kept until the whole
// message is parsed. The spool keeps only a few files open and reopens on demand.
func TestManyBlobWritersKeepFewFilesOpen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	s.maxOpenBlobs = 4
	const n = 60
	ws := make([]*BlobWriter, n)
	want := make([][]byte, n)
	maxOpen := 0
	for i := range ws {
		w, err := s.CreateBlob()
		if err != nil {
			t.Fatal(err)
		}
		ws[i] = w
		s.openMu.Lock()
		maxOpen = max(maxOpen, s.open.Len())
		s.openMu.Unlock()
	}
	// Interleaved writes, the worst case: every write may find its file closed.
	for round := range 3 {
		for i, w := range ws {
			chunk := fmt.Appendf(nil, "writer %d round %d;", i, round)
			if _, err := w.Write(chunk); err != nil {
				t.Fatalf("Write: %v", err)
			}
			want[i] = append(want[i], chunk...)
			s.openMu.Lock()
			maxOpen = max(maxOpen, s.open.Len())
			s.openMu.Unlock()
		}
	}
	if maxOpen > s.maxOpenBlobs {
		t.Errorf("%d blob files open at once, want at most %d", maxOpen, s.maxOpenBlobs)
	}
	for i, w := range ws {
		if err := w.Commit(sumOf(want[i])); err != nil {
			t.Fatalf("Commit %d: %v", i, err)
		}
	}
	for i := range ws {
		got, err := os.ReadFile(filepath.Join(dir, dirBlobs, sumOf(want[i])))
		if err != nil || !bytes.Equal(got, want[i]) {
			t.Errorf("blob %d = %q, %v; want %q", i, got, err, want[i])
		}
	}
	if s.open.Len() != 0 {
		t.Errorf("%d writers still registered open after all commits", s.open.Len())
	}
}

func TestConcurrentIdenticalBlobsShareOneFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	data := bytes.Repeat([]byte("same attachment "), 5000)
	sum := sumOf(data)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = putBlob(t, s, data, 4096, sum) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("Commit: %v", err)
		}
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{sum}) {
		t.Errorf("blobs/ = %v, want just %s", got, sum)
	}
	if u := s.Usage(); u.Blobs != 1 || u.BlobBytes != int64(len(data)) {
		t.Errorf("usage %+v, want 1 blob of %d bytes", u, len(data))
	}
	got, _ := os.ReadFile(filepath.Join(dir, dirBlobs, sum))
	if !bytes.Equal(got, data) {
		t.Error("the shared blob's content changed")
	}
}

// isBlobTemp tells a blob's temp file from a record's.
func isBlobTemp(name string) bool { return strings.HasPrefix(filepath.Base(name), blobTempPrefix) }

// blobFaultFS fails one step of blob writes; record writes go through untouched.
type blobFaultFS struct {
	osFS
	step string
}

func (f blobFaultFS) CreateTemp(dir, pattern string) (tempFile, error) {
	if !strings.HasPrefix(pattern, blobTempPrefix) {
		return f.osFS.CreateTemp(dir, pattern)
	}
	if f.step == "create" {
		return nil, errInjected
	}
	tf, err := f.osFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	return faultFile{File: tf, Step: f.step}, nil
}

func (f blobFaultFS) Reopen(name string) (tempFile, error) {
	if f.step == "reopen" {
		return nil, errInjected
	}
	tf, err := f.osFS.Reopen(name)
	if err != nil {
		return nil, err
	}
	return faultFile{File: tf, Step: f.step}, nil
}

func (f blobFaultFS) Rename(oldpath, newpath string) error {
	if f.step == "rename" && isBlobTemp(oldpath) {
		return errInjected
	}
	return f.osFS.Rename(oldpath, newpath)
}

func (f blobFaultFS) SyncDir(dir string) error {
	if f.step == "syncdir" && filepath.Base(dir) == dirBlobs {
		return errInjected
	}
	return f.osFS.SyncDir(dir)
}

// Each step of a blob's commit can fail: the session is told (so it answers 451), and the
// spool holds exactly what it held before, on disk and in its usage, now and after a restart.
// A failure must not take away an identical blob a pending record already names.
func TestBlobCommitFaults(t *testing.T) {
	for _, step := range []string{"create", "write", "fsync", "rename", "syncdir", "reopen"} {
		for _, same := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/same=%v", step, same), func(t *testing.T) {
				dir := t.TempDir()
				s, _ := openTest(t, dir)
				kept := []byte("a blob a pending record names")
				keptSum := sumOf(kept)
				if err := putBlob(t, s, kept, 5, keptSum); err != nil {
					t.Fatal(err)
				}
				commitNaming(t, s, keptSum)

				victim := []byte("the blob whose commit fails")
				if same {
					victim = kept
				}
				s.fs = blobFaultFS{step: step}
				s.maxOpenBlobs = 1 // so that "reopen" is exercised: a second writer closes the first
				w, err := s.CreateBlob()
				if err == nil {
					other, oerr := s.CreateBlob()
					if oerr != nil {
						t.Fatal(oerr)
					}
					other.Abort()
					if _, werr := w.Write(victim); werr != nil {
						err = werr
						w.Abort()
					} else {
						err = w.Commit(sumOf(victim))
					}
				}
				if !errors.Is(err, errInjected) {
					t.Fatalf("blob commit with a failing %s = %v, want the injected fault", step, err)
				}
				s.fs = osFS{}
				check := func(s *Spool, when string) {
					t.Helper()
					if got := blobNames(t, dir); !slices.Equal(got, []string{keptSum}) {
						t.Errorf("%s: blobs/ = %v, want only the named blob", when, got)
					}
					if got := names(t, filepath.Join(dir, dirTmp)); len(got) != 0 {
						t.Errorf("%s: tmp/ = %v", when, got)
					}
					if u := s.Usage(); u.Blobs != 1 || u.BlobBytes != int64(len(kept)) {
						t.Errorf("%s: usage %+v, want 1 blob of %d bytes", when, u, len(kept))
					}
					got, err := os.ReadFile(filepath.Join(dir, dirBlobs, keptSum))
					if err != nil || !bytes.Equal(got, kept) {
						t.Errorf("%s: the named blob = %q, %v", when, got, err)
					}
				}
				check(s, "after the failure")
				s2, _ := openTest(t, dir)
				check(s2, "after reopening")
			})
		}
	}
}

// readGzipHeader returns a batch file's gzip header.
func readGzipHeader(t *testing.T, name string) gzip.Header {
	t.Helper()
	_, h := readBatch(t, name)
	return h
}

// The whole life of blobs: kept while a pending record or batch names them, removed when the
// last batch naming them is delivered; one nothing names is swept.
func TestBlobsLiveAsLongAsSomethingNamesThem(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	x, y, orphan := []byte("blob x"), []byte("blob y"), []byte("blob from a failed session")
	xs, ys := sumOf(x), sumOf(y)
	for _, b := range [][]byte{x, y, orphan} {
		if err := putBlob(t, s, b, 3, sumOf(b)); err != nil {
			t.Fatal(err)
		}
	}
	// Two records name x (one twice), one names x and y; nothing names the orphan.
	r1 := commitNaming(t, s, xs, xs)
	r2 := commitNaming(t, s, xs, ys)
	if n := s.SweepBlobs(); n != 0 {
		t.Fatalf("sweep removed %d blobs while the orphan's commit was recent", n)
	}
	s.mu.Lock()
	s.holdTTL = 0 // the orphan's session is long gone
	s.mu.Unlock()
	if n := s.SweepBlobs(); n != 1 {
		t.Errorf("sweep removed %d blobs, want the orphan only", n)
	}
	if got, want := blobNames(t, dir), sorted(xs, ys); !slices.Equal(got, want) {
		t.Fatalf("blobs/ = %v, want %v", got, want)
	}

	// Batch the records separately: each batch names its own blobs, in its gzip header.
	b1, err := s.FormBatch([]Entry{{ID: r1}})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := s.FormBatch([]Entry{{ID: r2}})
	if err != nil {
		t.Fatal(err)
	}
	if b1.Blobs != 1 || b2.Blobs != 2 {
		t.Errorf("batches name %d and %d blobs, want 1 and 2", b1.Blobs, b2.Blobs)
	}
	h := readGzipHeader(t, filepath.Join(dir, dirBatches, b2.ID+batchExt))
	if !strings.HasSuffix(h.Comment, " blobs=2") {
		t.Errorf("batch comment %q does not count its blobs", h.Comment)
	}
	if got, ok := decodeRefs(h.Extra); !ok || !slices.Equal(got, sorted(xs, ys)) {
		t.Errorf("batch extra field lists %v (%v), want %v", got, ok, sorted(xs, ys))
	}
	for _, b := range []Batch{b1, b2} {
		got, err := s.BatchBlobs(b.ID)
		want := []string{xs}
		if b == b2 {
			want = sorted(xs, ys)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("BatchBlobs(%s) = %v, %v; want %v", b.ID, got, err, want)
		}
	}
	if got := blobNames(t, dir); len(got) != 2 {
		t.Fatalf("blobs/ after batching = %v, want both kept", got)
	}

	// b2 delivered: y goes, x stays for b1.
	if err := s.DeleteBatch(b2.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{xs}) {
		t.Errorf("blobs/ after delivering b2 = %v, want only x", got)
	}
	if err := s.DeleteBatch(b1.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blobs/ after delivering both = %v, want empty", got)
	}
	if u := s.Usage(); u.Blobs != 0 || u.BlobBytes != 0 || u.Bytes() != 0 {
		t.Errorf("usage %+v, want nothing left", u)
	}
}

// Between the parser committing a blob and the session committing its record, the blob must
// survive a batch naming the same blob being delivered.
func TestBlobCommittedForARecordNotYetCommittedSurvivesDelivery(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	data := []byte("the same attachment, mailed twice")
	sum := sumOf(data)
	if err := putBlob(t, s, data, 4, sum); err != nil {
		t.Fatal(err)
	}
	commitNaming(t, s, sum)
	b := batchAll(t, s)
	// The second copy's parse commits the blob again; its record is not committed yet.
	if err := putBlob(t, s, data, 4, sum); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{sum}) {
		t.Fatalf("blobs/ = %v: delivery removed a blob a record was about to name", got)
	}
	commitNaming(t, s, sum) // the second copy's record
	s.mu.Lock()
	s.holdTTL = 0
	s.mu.Unlock()
	if n := s.SweepBlobs(); n != 0 {
		t.Errorf("sweep removed %d blobs a pending record names", n)
	}
	b = batchAll(t, s)
	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blobs/ = %v after the second delivery, want empty", got)
	}
}

// Two sessions parse the same attachment, so its blob holds twice, and the first session's
// record is committed and delivered before the second's record is: the second hold must keep
// the blob. A record's commit used to settle its holds twice, which let delivery delete it.
func TestOneRecordSettlesOneHoldOfEachBlob(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	data := []byte("one attachment, two copies parsed at once")
	sum := sumOf(data)
	for range 2 {
		if err := putBlob(t, s, data, 8, sum); err != nil {
			t.Fatal(err)
		}
	}
	commitNaming(t, s, sum) // the first session's record
	b := batchAll(t, s)
	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{sum}) {
		t.Fatalf("blobs/ = %v: delivery removed a blob the second session's record will name", got)
	}
}

// A crash after a blob's commit and before its record's leaves a blob nothing names; the next
// Open removes it. Blobs that records or batches name survive any number of restarts.
func TestCrashBetweenBlobAndRecordLeavesOnlyAnOrphanOpenRemoves(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	named, batched, orphan := []byte("named by a record"), []byte("named by a batch"), []byte("orphan")
	for _, b := range [][]byte{named, batched, orphan} {
		if err := putBlob(t, s, b, 100, sumOf(b)); err != nil {
			t.Fatal(err)
		}
	}
	commitNaming(t, s, sumOf(batched))
	b := batchAll(t, s)
	commitNaming(t, s, sumOf(named))
	// A blob half-written when the power went: only in tmp/.
	w, err := s.CreateBlob()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if err := w.bw.Flush(); err != nil {
		t.Fatal(err)
	}
	// "Crash": s is abandoned as it is; a new Open reads the directory.
	s2, _ := openTest(t, dir)
	want := sorted(sumOf(named), sumOf(batched))
	if got := blobNames(t, dir); !slices.Equal(got, want) {
		t.Errorf("blobs/ after restart = %v, want %v", got, want)
	}
	if got := names(t, filepath.Join(dir, dirTmp)); len(got) != 0 {
		t.Errorf("tmp/ after restart = %v", got)
	}
	if u := s2.Usage(); u.Blobs != 2 || u.BlobBytes != int64(len(named)+len(batched)) {
		t.Errorf("usage after restart %+v", u)
	}
	// The restarted spool knows the batch names its blob: delivering it removes the blob.
	if err := s2.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); !slices.Equal(got, []string{sumOf(named)}) {
		t.Errorf("blobs/ after delivering the batch = %v", got)
	}
}

func TestDeadLetteredBatchKeepsItsBlobs(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	data := []byte("bytes of a refused record's attachment")
	sum := sumOf(data)
	if err := putBlob(t, s, data, 9, sum); err != nil {
		t.Fatal(err)
	}
	commitNaming(t, s, sum)
	b := batchAll(t, s)
	if err := s.DeadLetter(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blobs/ = %v: a dead-lettered batch's blob is still pending", got)
	}
	got, err := os.ReadFile(filepath.Join(dir, dirDeadLetter, dirBlobs, sum))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("deadletter/blobs/%s = %q, %v; want the blob kept with its batch", sum, got, err)
	}
	u := s.Usage()
	if u.DeadLetters != 1 || u.DeadLetterBlobs != 1 || u.Blobs != 0 || u.BlobBytes != 0 {
		t.Errorf("usage %+v", u)
	}
	s2, _ := openTest(t, dir)
	if u2 := s2.Usage(); u2.DeadLetters != 1 || u2.DeadLetterBlobs != 1 {
		t.Errorf("usage after reopening %+v, want 1 dead letter and 1 dead blob", u2)
	}
}

func TestDeadLetterBlob(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	if err := putBlob(t, s, []byte("abc"), 3, sumABC); err != nil {
		t.Fatal(err)
	}
	commitNaming(t, s, sumABC)
	if err := s.DeadLetterBlob(sumABC); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blobs/ = %v", got)
	}
	if got, err := os.ReadFile(filepath.Join(dir, dirDeadLetter, dirBlobs, sumABC)); err != nil || string(got) != "abc" {
		t.Errorf("dead-lettered blob = %q, %v", got, err)
	}
	if u := s.Usage(); u.Blobs != 0 || u.DeadLetterBlobs != 1 {
		t.Errorf("usage %+v", u)
	}
	// The record still names it; batching and delivering it must cope with its absence.
	b := batchAll(t, s)
	if got, err := s.BatchBlobs(b.ID); err != nil || !slices.Equal(got, []string{sumABC}) {
		t.Errorf("BatchBlobs = %v, %v", got, err)
	}
	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeadLetterBlob("not-a-sum"); err == nil {
		t.Error("DeadLetterBlob accepted a name that is not a sum")
	}
}

func TestBudgetCountsBlobBytes(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	s.SetBudget(10_000)
	data := bytes.Repeat([]byte{7}, 9_000)
	if err := putBlob(t, s, data, 1000, sumOf(data)); err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u.Bytes() != 9_000 {
		t.Errorf("Usage.Bytes = %d, want the blob's 9000", u.Bytes())
	}
	if _, ok := s.Reserve(1_001); ok {
		t.Error("Reserve(1001) succeeded with 9000 of 10000 bytes in blobs")
	}
	release, ok := s.Reserve(1_000)
	if !ok {
		t.Error("Reserve(1000) refused with 1000 bytes free")
	}
	release()
	// The blob goes when nothing names it; the room comes back.
	s.mu.Lock()
	s.holdTTL = 0
	s.mu.Unlock()
	s.SweepBlobs()
	if _, ok := s.Reserve(10_000); !ok {
		t.Error("Reserve refused after the blob was removed")
	}
	// And a restart counts blobs on disk against the budget too.
	if err := putBlob(t, s, data, 1000, sumOf(data)); err != nil {
		t.Fatal(err)
	}
	commitNaming(t, s, sumOf(data))
	s2, _ := openTest(t, dir)
	s2.SetBudget(10_000)
	if _, ok := s2.Reserve(1_001); ok {
		t.Error("after a restart, Reserve ignored the blob on disk")
	}
}

// A batch naming more blobs than its gzip header can list says how many in its comment, and
// BatchBlobs reads them from its lines instead.
func TestBatchNamingMoreBlobsThanItsHeaderHolds(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	n := maxExtraRefs + 10
	sums := make([]string, n)
	for i := range sums {
		sums[i] = sumOf(fmt.Appendf(nil, "attachment %d", i))
	}
	commitNaming(t, s, sums[:n/2]...)
	commitNaming(t, s, sums[n/2:]...)
	b := batchAll(t, s)
	if b.Blobs != n {
		t.Errorf("batch names %d blobs, want %d", b.Blobs, n)
	}
	h := readGzipHeader(t, filepath.Join(dir, dirBatches, b.ID+batchExt))
	if h.Extra != nil || !strings.HasSuffix(h.Comment, fmt.Sprintf(" blobs=%d", n)) {
		t.Errorf("header: extra %d bytes, comment %q; want no extra and blobs=%d", len(h.Extra), h.Comment, n)
	}
	s2, _ := openTest(t, dir) // not indexed there: no blob on disk
	got, err := s2.BatchBlobs(b.ID)
	if err != nil || !slices.Equal(got, sorted(sums...)) {
		t.Errorf("BatchBlobs found %d sums, %v; want %d", len(got), err, n)
	}
	bs, err := s2.Batches()
	if err != nil || len(bs) != 1 || bs[0].Blobs != n {
		t.Errorf("Batches = %+v, %v", bs, err)
	}
}

// Records moved into the log from legacy files name their blobs like any other: a sweep
// after Open keeps the named blob and removes the orphan.
func TestLegacyBacklogWithBlobsKeepsNamedBlobs(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	named, orphan := []byte("named by the last record"), []byte("named by none")
	for _, b := range [][]byte{named, orphan} {
		if err := putBlob(t, s, b, 5, sumOf(b)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	recs := filepath.Join(dir, dirRecords)
	if err := os.MkdirAll(recs, dirPerm); err != nil {
		t.Fatal(err)
	}
	for i := range 300 {
		id := ulid.Make().String()
		line := append(fmt.Appendf(nil, `{"id":%q,"n":%d}`, id, i), '\n')
		if i == 299 {
			line = append(recordNaming(id, sumOf(named)), '\n')
		}
		if err := os.WriteFile(filepath.Join(recs, id+groupExt), line, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s2, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s2.mu.Lock()
	s2.holdTTL = 0
	s2.mu.Unlock()
	s2.SweepBlobs()
	if got := blobNames(t, dir); !slices.Equal(got, []string{sumOf(named)}) {
		t.Errorf("blobs/ after the move = %v, want only the named one", got)
	}
}

func TestRefsEncodingRoundTrips(t *testing.T) {
	sums := sorted(sumABC, sumEmpty)
	extra := encodeRefs(sums)
	// RFC 1952 §2.3.1.1: SI1 SI2, LEN little-endian, then the data.
	if len(extra) != 4+64 || extra[0] != 'J' || extra[1] != 'S' || extra[2] != 64 || extra[3] != 0 {
		t.Fatalf("extra field header % x", extra[:4])
	}
	if got, ok := decodeRefs(extra); !ok || !slices.Equal(got, sums) {
		t.Errorf("decodeRefs = %v, %v", got, ok)
	}
	// Another subfield before ours is skipped.
	other := append([]byte{'A', 'p', 2, 0, 9, 9}, extra...)
	if got, ok := decodeRefs(other); !ok || !slices.Equal(got, sums) {
		t.Errorf("decodeRefs after another subfield = %v, %v", got, ok)
	}
	for _, bad := range [][]byte{nil, {'J', 'S', 33, 0}, {'J', 'S', 32, 0, 1}, {'J', 'S', 1, 0, 5}} {
		if got, ok := decodeRefs(bad); ok {
			t.Errorf("decodeRefs(% x) = %v, accepted", bad, got)
		}
	}
	if encodeRefs(nil) != nil || encodeRefs(make([]string, maxExtraRefs+1)) != nil {
		t.Error("encodeRefs of none or too many is not nil")
	}
}

func TestLineRefs(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
	}{
		{`{"id":"x"}`, nil},
		{`{"attachments":[{"sha256":"` + sumABC + `"}]}`, nil},
		{`{"attachments":[{"blob":"` + sumABC + `"},{"blob":"` + sumABC + `"},{"blob":"` + sumEmpty + `"}]}`,
			[]string{sumABC, sumABC, sumEmpty}},
		{`{"attachments":[{"blob":"../../etc/passwd"},{"blob":"` + strings.ToUpper(sumABC) + `"}]}`, nil},
		{`{"subject":"\"blob\"","attachments":"no"}`, nil},
		{`{"attachments":[{"blob":"` + sumABC + `"}`, nil}, // cut short
	} {
		if got := lineRefs([]byte(tc.line)); !slices.Equal(got, tc.want) {
			t.Errorf("lineRefs(%s) = %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestScanRefsSurvivesLongAndBrokenLines(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	fmt.Fprintf(zw, "%s\n", recordNaming("a", sumABC))
	fmt.Fprintf(zw, `{"pad":"%s"}`+"\n", strings.Repeat("x", 200<<10)) // longer than the reader's buffer
	fmt.Fprintf(zw, "%s\n", recordNaming("b", sumEmpty))
	fmt.Fprintf(zw, "%s", recordNaming("c", sumABC)) // no final newline
	zw.Close()
	if got := scanRefs(bytes.NewReader(buf.Bytes())); !slices.Equal(got, sorted(sumABC, sumEmpty)) {
		t.Errorf("scanRefs = %v", got)
	}
	// Cut short: what comes before the cut is still found.
	cut := buf.Bytes()[:buf.Len()-20]
	if got := scanRefs(bytes.NewReader(cut)); !slices.Contains(got, sumABC) {
		t.Errorf("scanRefs of a truncated batch = %v, want at least the first record's blob", got)
	}
	if got := scanRefs(strings.NewReader("not gzip")); got != nil {
		t.Errorf("scanRefs of garbage = %v", got)
	}
}

func TestHoldsExpire(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	if err := putBlob(t, s, []byte("abc"), 1, sumABC); err != nil {
		t.Fatal(err)
	}
	if n := s.SweepBlobs(); n != 0 {
		t.Errorf("a fresh hold was swept (%d)", n)
	}
	s.mu.Lock()
	s.holds[sumABC].at = time.Now().Add(-defaultHoldTTL - time.Second)
	s.mu.Unlock()
	if n := s.SweepBlobs(); n != 1 {
		t.Errorf("an expired hold kept its blob (%d swept)", n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.holds) != 0 {
		t.Errorf("holds = %v after the sweep", s.holds)
	}
}

// A session refused after the parser committed its blobs gives them back: each leaves blobs/
// and the budget at once, unless a pending record names it or another session's commit of
// the same bytes still holds it. An attachment the message carried twice was committed twice
// and is named twice.
func TestReleasedBlobsLeaveAtOnceUnlessSomethingElseNeedsThem(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	s.SetBudget(10_000)
	put := func(data []byte) string {
		t.Helper()
		if err := putBlob(t, s, data, 100, sumOf(data)); err != nil {
			t.Fatal(err)
		}
		return sumOf(data)
	}
	alone := put(bytes.Repeat([]byte{1}, 6_000))
	twice := put([]byte("attached twice to the refused message"))
	put([]byte("attached twice to the refused message"))
	named := put([]byte("also named by a pending record"))
	commitNaming(t, s, named)
	shared := put([]byte("also on its way into another session's record"))
	put([]byte("also on its way into another session's record")) // the other session's commit

	if _, ok := s.Reserve(5_000); ok {
		t.Fatal("Reserve(5000) succeeded with 6000 of 10000 bytes in one blob")
	}
	s.ReleaseBlobs([]string{alone, twice, twice, named, shared, "not-a-sum", "../records"})

	if got, want := blobNames(t, dir), sorted(named, shared); !slices.Equal(got, want) {
		t.Errorf("blobs/ = %v, want only %v", got, want)
	}
	if u := s.Usage(); u.Blobs != 2 {
		t.Errorf("usage %+v, want the 2 blobs kept", u)
	}
	if release, ok := s.Reserve(5_000); !ok {
		t.Error("the released blob still counts against the budget")
	} else {
		release()
	}
	// The other session's record arrives and is delivered; then nothing needs the blob.
	commitNaming(t, s, shared)
	b := batchAll(t, s)
	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blobs/ = %v after delivery, want empty", got)
	}
}

// A record whose commit fails will not name its blobs for this session (its sender retries),
// so the spool gives them back itself, whichever step failed.
func TestFailedCommitReleasesItsBlobs(t *testing.T) {
	for _, step := range []string{"write", "fdatasync", "preallocate", "sync", "bad-id"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			fs := &walFS{}
			s, _ := openLogTest(t, dir, fs, 4096, 8) // the first append grows the segment
			data := []byte("the attachment of a record that fails to commit")
			sum := sumOf(data)
			if err := putBlob(t, s, data, 7, sum); err != nil {
				t.Fatal(err)
			}
			id := ulid.Make().String()
			line := recordNaming(id, sum)
			if step == "bad-id" {
				id = "not-a-ulid"
			} else {
				fs.setFault(step, dirLog, 1)
			}
			if err := s.Commit(id, line); err == nil {
				t.Fatal("Commit succeeded")
			}
			if got := blobNames(t, dir); len(got) != 0 {
				t.Errorf("blobs/ = %v after the record failed to commit, want empty", got)
			}
			if u := s.Usage(); u.Blobs != 0 || u.Bytes() != 0 {
				t.Errorf("usage %+v, want nothing", u)
			}
		})
	}
}
