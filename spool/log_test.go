package spool

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/wal"
)

// walFS is the real file system under the spool's two logs, instrumented: it stamps frame
// writes and fdatasyncs of the record log on a logical clock, can hold each record-log
// fdatasync at a gate, and can fail the next n calls of one step in one of the logs.
type walFS struct {
	wal.OS
	clock atomic.Int64

	mu     sync.Mutex
	writes []walWrite
	syncs  []span
	fault  walFault
	gate   *fdGate
}

type walWrite struct {
	path string
	data []byte
	end  int64 // tick just after the write returned
}

type span struct {
	start, end int64
	path       string
	ok         bool
}

// walFault fails the next n calls of step ("create", "preallocate", "write", "fdatasync",
// "sync", "syncdir", "remove") in the log directory named where ("log" or "cursor"). A failed
// write is torn: half of it reaches the file, as a crash mid-write would leave it.
type walFault struct {
	step, where string
	n           int
}

// fdGate holds each record-log fdatasync: it announces itself on entered and returns what
// release sends (nil: the real fdatasync runs).
type fdGate struct {
	entered chan struct{}
	release chan error
}

func (f *walFS) setFault(step, where string, n int) {
	f.mu.Lock()
	f.fault = walFault{step, where, n}
	f.mu.Unlock()
}

func (f *walFS) setGate(g *fdGate) {
	f.mu.Lock()
	f.gate = g
	f.mu.Unlock()
}

// logOf names the spool log a path is in: a segment's directory, or the directory itself.
func logOf(path string) string {
	if strings.HasSuffix(path, ".seg") || strings.HasSuffix(path, ".broken") {
		path = filepath.Dir(path)
	}
	return filepath.Base(path)
}

func (f *walFS) hit(step, path string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fault.n > 0 && f.fault.step == step && filepath.Base(f.fault.where) == logOf(path) {
		f.fault.n--
		return true
	}
	return false
}

func (f *walFS) Create(name string) (wal.File, error) {
	if f.hit("create", name) {
		return nil, errInjected
	}
	file, err := f.OS.Create(name)
	if err != nil {
		return nil, err
	}
	return &walFile{File: file, fs: f}, nil
}

func (f *walFS) Open(name string) (wal.File, error) {
	file, err := f.OS.Open(name)
	if err != nil {
		return nil, err
	}
	return &walFile{File: file, fs: f}, nil
}

func (f *walFS) Remove(name string) error {
	if f.hit("remove", name) {
		return errInjected
	}
	return f.OS.Remove(name)
}

func (f *walFS) SyncDir(dir string) error {
	if f.hit("syncdir", dir) {
		return errInjected
	}
	return f.OS.SyncDir(dir)
}

type walFile struct {
	wal.File
	fs *walFS
}

func (f *walFile) WriteAt(p []byte, off int64) (int, error) {
	if f.fs.hit("write", f.Name()) {
		n, _ := f.File.WriteAt(p[:len(p)/2], off) // the injected error is the one reported
		return n, errInjected
	}
	n, err := f.File.WriteAt(p, off)
	end := f.fs.clock.Add(1)
	f.fs.mu.Lock()
	f.fs.writes = append(f.fs.writes, walWrite{f.Name(), bytes.Clone(p), end})
	f.fs.mu.Unlock()
	return n, err
}

func (f *walFile) Preallocate(size int64) error {
	if f.fs.hit("preallocate", f.Name()) {
		return errInjected
	}
	return f.File.Preallocate(size)
}

func (f *walFile) Sync() error {
	if f.fs.hit("sync", f.Name()) {
		return errInjected
	}
	return f.File.Sync()
}

func (f *walFile) Fdatasync() error {
	start := f.fs.clock.Add(1)
	err := f.fdatasync()
	end := f.fs.clock.Add(1)
	f.fs.mu.Lock()
	f.fs.syncs = append(f.fs.syncs, span{start, end, f.Name(), err == nil})
	f.fs.mu.Unlock()
	return err
}

func (f *walFile) fdatasync() error {
	if f.fs.hit("fdatasync", f.Name()) {
		return errInjected
	}
	f.fs.mu.Lock()
	g := f.fs.gate
	f.fs.mu.Unlock()
	if g != nil && logOf(f.Name()) == dirLog {
		g.entered <- struct{}{}
		if err := <-g.release; err != nil {
			return err
		}
	}
	return f.File.Fdatasync()
}

// openLogTest opens the spool in dir with its logs on fs (nil: a fresh walFS), in segments
// of segBytes first allocated at initBytes (0: the defaults).
func openLogTest(t testing.TB, dir string, fs *walFS, segBytes, initBytes int64) (*Spool, *bytes.Buffer) {
	t.Helper()
	if fs == nil {
		fs = &walFS{}
	}
	var logs bytes.Buffer
	s, err := open(dir, slog.New(slog.NewTextHandler(&logs, nil)), wal.Options{FS: fs, SegmentBytes: segBytes, InitialBytes: initBytes})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, &logs
}

// scanned lists the records ScanRecords finds in dir, each with "\n" appended, and fails the
// test on a warning.
func scanned(t testing.TB, dir string, pending bool, sources ...RecordSource) []string {
	t.Helper()
	var out []string
	warnings, err := ScanRecords(dir, pending, func(r ScannedRecord) error {
		if len(sources) == 0 || slices.Contains(sources, r.Source) {
			out = append(out, string(r.Line)+"\n")
		}
		return nil
	})
	if err != nil || len(warnings) > 0 {
		t.Fatalf("ScanRecords: %v, warnings %q", err, warnings)
	}
	return out
}

// recordLine is a record of about 100 bytes naming its id.
func recordLine(id string, n int) string {
	return fmt.Sprintf(`{"id":%q,"n":%d,"pad":"%s"}`, id, n, strings.Repeat("x", 40))
}

// commitConcurrently starts workers goroutines that each hand each new records (an id and its
// recordLine, numbered across workers) to commit, in turn, until commit returns false. The
// returned group is done when every worker is.
func commitConcurrently(workers, each int, commit func(w int, id, line string) bool) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := ulid.Make().String()
				if !commit(w, id, recordLine(id, w*each+i)) {
					return
				}
			}
		})
	}
	return &wg
}

// commitLines commits n records one after the other and returns their lines, "\n" included.
func commitLines(t testing.TB, s *Spool, n int) []string {
	t.Helper()
	var lines []string
	for i := range n {
		id := ulid.Make().String()
		line := recordLine(id, i)
		if err := s.Commit(id, []byte(line)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		lines = append(lines, line+"\n")
	}
	return lines
}

// checkWholeRecords fails the test unless every line is a valid record that was attempted.
func checkWholeRecords(t *testing.T, got []string, attempted map[string]bool) {
	t.Helper()
	for _, l := range got {
		if !json.Valid([]byte(l)) || !attempted[l] {
			t.Errorf("record %q is torn or was never committed", l)
		}
	}
}

// firstIndex maps each line to where it first appears.
func firstIndex(lines []string) map[string]int {
	m := map[string]int{}
	for i, l := range lines {
		if _, ok := m[l]; !ok {
			m[l] = i
		}
	}
	return m
}

// A Commit returns only once its record is durable: after an fdatasync of the record log
// that started after the write of its frame had ended.
func TestCommitReturnsOnlyAfterAnFdatasyncThatFollowedItsWrite(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, _ := openLogTest(t, dir, fs, 0, 0)

	const workers, each = 8, 25
	type result struct {
		line     string
		returned int64
	}
	results := make(chan result, workers*each)
	commitConcurrently(workers, each, func(_ int, id, line string) bool {
		if err := s.Commit(id, []byte(line)); err != nil {
			t.Errorf("Commit: %v", err)
			return false
		}
		results <- result{line, fs.clock.Add(1)}
		return true
	}).Wait()
	close(results)

	fs.mu.Lock()
	writes, syncs := slices.Clone(fs.writes), slices.Clone(fs.syncs)
	fs.mu.Unlock()
	n := 0
	for r := range results {
		n++
		i := slices.IndexFunc(writes, func(w walWrite) bool {
			return logOf(w.path) == dirLog && bytes.Contains(w.data, []byte(r.line))
		})
		if i < 0 {
			t.Errorf("record %s returned from Commit but was never written", r.line)
			continue
		}
		w := writes[i]
		if !slices.ContainsFunc(syncs, func(sp span) bool {
			return sp.ok && sp.path == w.path && sp.start > w.end && sp.end < r.returned
		}) {
			t.Errorf("record written at %d, returned at %d, had no fdatasync of %s in between", w.end, r.returned, w.path)
		}
	}
	if n != workers*each {
		t.Fatalf("%d commits returned, want %d", n, workers*each)
	}
	if got := scanned(t, dir, true, InLog); len(got) != n {
		t.Errorf("%d records in the log, want %d", len(got), n)
	}
	if u := s.Usage(); u.Records != n {
		t.Errorf("usage counts %d records, want %d", u.Records, n)
	}
	appends := 0
	for _, w := range writes {
		if logOf(w.path) == dirLog {
			appends++
		}
	}
	// Not asserted, since scheduling decides it, but the point of the exercise.
	t.Logf("%d commits shared %d appends and %d fdatasyncs", n, appends, len(syncs))
}

// While one round is at its fdatasync, every Commit that arrives joins the next round, and
// that round is one append and one fdatasync for all of them. A failed round fails all of its
// members, none of them is pending or counted, and their blobs are given back.
func TestCommitsArrivingDuringAnFdatasyncShareTheNextAppend(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, _ := openLogTest(t, dir, fs, 0, 0)
	gate := &fdGate{entered: make(chan struct{}), release: make(chan error)}
	fs.setGate(gate)

	data := []byte("an attachment of the round that fails")
	sum := sumOf(data)
	commit := func(ch chan<- error, sums ...string) {
		id := ulid.Make().String()
		line := recordNaming(id, sums...)
		go func() { ch <- s.Commit(id, line) }()
	}
	first := make(chan error, 1)
	commit(first)
	<-gate.entered // round 1 is at its fdatasync

	const k = 20
	rest := make(chan error, k)
	for i := range k {
		if i%2 == 0 {
			if err := putBlob(t, s, data, 7, sum); err != nil {
				t.Fatal(err)
			}
			commit(rest, sum)
		} else {
			commit(rest)
		}
	}
	waitQueued(t, s.commits, k)
	fs.mu.Lock()
	writesBefore := len(fs.writes)
	fs.mu.Unlock()
	gate.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-gate.entered // round 2: all k, in one write
	fs.mu.Lock()
	writes := fs.writes[writesBefore:]
	if len(writes) != 1 || bytes.Count(writes[0].data, []byte(`{"id":`)) != k {
		t.Errorf("round 2 made %d writes, want one holding all %d records", len(writes), k)
	}
	fs.mu.Unlock()
	if p, _ := s.Pending(); len(p) != 1 {
		t.Errorf("Pending during round 2's fdatasync = %+v, want only round 1", p)
	}
	gate.release <- errInjected
	for range k {
		if err := <-rest; !errors.Is(err, errInjected) {
			t.Errorf("a member of the failed round got %v, want the injected fault", err)
		}
	}
	if p, _ := s.Pending(); len(p) != 1 || p[0].Records != 1 {
		t.Errorf("Pending after the failed round = %+v, want only round 1's record", p)
	}
	if u := s.Usage(); u.Records != 1 || u.Blobs != 0 {
		t.Errorf("usage after the failed round = %+v, want 1 record and no blob", u)
	}
	if got := blobNames(t, dir); len(got) != 0 {
		t.Errorf("blobs/ = %v after their records failed, want empty", got)
	}

	// The same again, succeeding (in however many rounds they arrive).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-gate.entered:
				gate.release <- nil
			case <-stop:
				return
			}
		}
	}()
	for range k {
		commit(rest)
	}
	for range k {
		if err := <-rest; err != nil {
			t.Fatal(err)
		}
	}
	// The failed round reached the disk whole before its fdatasync failed, so the reopen
	// found it: delivered although its senders retry.
	if u, got := s.Usage(), scanned(t, dir, true, InLog); u.Records != len(got) || len(got) != 1+k+k {
		t.Errorf("usage %+v, %d records in the log; want both equal to %d", u, len(got), 1+k+k)
	}
}

// A fault in any of the log's operations fails the commits of its round and no other: later
// rounds reopen the log and succeed. Whatever was acknowledged is there after a restart, in
// commit order; a failed commit's record may be there too, whole, never torn.
func TestConcurrentCommitFaultsInTheLog(t *testing.T) {
	// Segments of 4 KiB first allocated at 512 bytes: the commits below grow the segment
	// three times and rotate to a new one at least once.
	for _, step := range []string{"write", "fdatasync", "preallocate", "sync", "create", "syncdir"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			fs := &walFS{}
			s, _ := openLogTest(t, dir, fs, 4096, 512)
			fs.setFault(step, dirLog, 1)

			const workers, each = 8, 12
			type result struct {
				line       string
				start, end int64
				err        error
			}
			results := make([][]result, workers)
			commitConcurrently(workers, each, func(w int, id, line string) bool {
				start := fs.clock.Add(1)
				err := s.Commit(id, []byte(line))
				results[w] = append(results[w], result{line + "\n", start, fs.clock.Add(1), err})
				return true
			}).Wait()

			attempted := map[string]bool{}
			var acked []result
			failed := 0
			for _, rs := range results {
				for _, r := range rs {
					attempted[r.line] = true
					switch {
					case r.err == nil:
						acked = append(acked, r)
					case errors.Is(r.err, errInjected):
						failed++
					default:
						t.Errorf("Commit = %v, want nil or the injected fault", r.err)
					}
				}
			}
			if failed == 0 {
				t.Fatalf("no Commit failed despite the %s fault", step)
			}
			// The fault is gone: the log, reopened once, takes commits again.
			last := commitLines(t, s, 1)[0]
			attempted[last] = true
			acked = append(acked, result{line: last, start: fs.clock.Add(1), end: fs.clock.Add(1)})
			if u, got := s.Usage(), scanned(t, dir, true, InLog); u.Records != len(got) || u.Broken != 0 {
				t.Errorf("usage %+v, want the %d records in the log and none broken", u, len(got))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}

			s2, _ := openLogTest(t, dir, nil, 4096, 512)
			got := scanned(t, dir, true, InLog)
			checkWholeRecords(t, got, attempted)
			at := firstIndex(got)
			for _, a := range acked {
				if _, ok := at[a.line]; !ok {
					t.Errorf("acknowledged record lost: %s", a.line)
				}
				for _, b := range acked {
					if a.end < b.start && at[a.line] > at[b.line] {
						t.Errorf("record committed before another comes after it in the log:\n%s%s", a.line, b.line)
					}
				}
			}
			if u := s2.Usage(); u.Records != len(got) || u.Broken != 0 {
				t.Errorf("after reopening: usage %+v, want %d records, none broken", u, len(got))
			}
			if got[len(got)-1] != last {
				t.Errorf("the log ends with %s, want the last record committed", got[len(got)-1])
			}
			t.Logf("%d acknowledged, %d failed, %d in the log", len(acked), failed, len(got))
		})
	}
}

// After a failed append the log refuses commits until it has been reopened, which a commit
// does at most once a second; then commits succeed again.
func TestCommitsFailUntilTheLogIsReopened(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, _ := openLogTest(t, dir, fs, 0, 0)
	before := commitLines(t, s, 1)
	fs.setFault("fdatasync", dirLog, 1)
	if err := commitOne(s); !errors.Is(err, errInjected) {
		t.Fatalf("Commit = %v, want the injected fault", err)
	}
	s.logMu.Lock()
	s.reopenedAt = time.Now()
	s.logMu.Unlock()
	if err := commitOne(s); !errors.Is(err, errInjected) {
		t.Errorf("Commit within a second of the last reopen = %v, want it refused with the cause", err)
	}
	if u := s.Usage(); u.Records != 1 {
		t.Errorf("usage %+v while the log is unusable, want the 1 record committed before", u)
	}
	s.logMu.Lock()
	s.reopenedAt = time.Time{}
	s.logMu.Unlock()
	after := commitLines(t, s, 1)
	got := scanned(t, dir, true, InLog)
	if got[0] != before[0] || got[len(got)-1] != after[0] {
		t.Errorf("log = %q; want %q first and %q last", got, before[0], after[0])
	}
	if u := s.Usage(); u.Records != len(got) {
		t.Errorf("usage %+v, want the %d records in the log", u, len(got))
	}
}

// A failure to save the cursor loses nothing: the batch is durable, and a restart before the
// cursor moves sends its records again. The next batch saves the cursor again.
func TestFailedCursorWriteLosesNoRecord(t *testing.T) {
	for _, step := range []string{"write", "fdatasync"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			fs := &walFS{}
			s, _ := openLogTest(t, dir, fs, 0, 0)
			lines := commitLines(t, s, 5)
			fs.setFault(step, dirCursor, 1)
			b := batchAll(t, s)
			if b.Records != 5 {
				t.Fatalf("batch = %+v, want the 5 records", b)
			}
			if p, _ := s.Pending(); len(p) != 0 {
				t.Errorf("Pending = %+v after the batch, want nothing", p)
			}
			_ = s.Close()

			s2, _ := openLogTest(t, dir, fs, 0, 0)
			if got := scanned(t, dir, true, InBatch); !slices.Equal(got, lines) {
				t.Errorf("batches = %q, want %q", got, lines)
			}
			// A torn cursor write is cut at Open: the records are pending again. A cursor
			// whose fdatasync failed may have reached the disk all the same.
			again := scanned(t, dir, true, InLog)
			if step == "write" && !slices.Equal(again, lines) {
				t.Errorf("pending after a restart = %q, want the batched records again %q", again, lines)
			}
			if step == "fdatasync" && len(again) != 0 && !slices.Equal(again, lines) {
				t.Errorf("pending after a restart = %q, want none or all of %q", again, lines)
			}
			if u := s2.Usage(); u.Records != len(again) {
				t.Errorf("usage %+v, want the %d records in the log", u, len(again))
			}

			// In the same run: the cursor log is opened again and the next batch moves it.
			fs.setFault(step, dirCursor, 1)
			more := commitLines(t, s2, 2)
			batchAll(t, s2) // fails to save the cursor
			extra := commitLines(t, s2, 1)
			batchAll(t, s2)
			_ = s2.Close()
			s3, _ := openLogTest(t, dir, nil, 0, 0)
			if p, _ := s3.Pending(); len(p) != 0 {
				t.Errorf("Pending after the cursor was saved and a restart = %+v, want nothing", p)
			}
			all := scanned(t, dir, true, InBatch)
			for _, l := range append(append(lines, more...), extra...) {
				if !slices.Contains(all, l) {
					t.Errorf("record lost: %s", l)
				}
			}
		})
	}
}

// Once everything is in batches, a restart finds nothing pending, and the segments wholly
// before the cursor are gone; a batch of only the older part keeps exactly the rest pending.
func TestBatchedSegmentsAreDeletedAndStayDelivered(t *testing.T) {
	dir := t.TempDir()
	s, _ := openLogTest(t, dir, nil, 1024, 1024)
	lines := commitLines(t, s, 40) // about 100 bytes each: several segments
	segs, err := Segments(dir)
	if err != nil || len(segs) < 4 {
		t.Fatalf("Segments = %d, %v; want at least 4", len(segs), err)
	}
	pending, _ := s.Pending()
	half := len(pending) / 2
	if _, err := s.FormBatch(pending[:half]); err != nil {
		t.Fatal(err)
	}
	cur, _ := parsePosition(pending[half].ID)
	if got, err := Cursor(dir); err != nil || got != cur.String() {
		t.Errorf("Cursor = %s, %v; want the first pending group %s", got, err, cur)
	}
	segs, _ = Segments(dir)
	if first := wal.SegmentPath(filepath.Join(dir, dirLog), cur.Segment); segs[0].Path != first {
		t.Errorf("first segment %s after batching up to %s, want %s: the older ones deleted", segs[0].Path, cur, first)
	}
	_ = s.Close()

	s2, _ := openLogTest(t, dir, nil, 1024, 1024)
	if got := scanned(t, dir, true, InLog); !slices.Equal(got, lines[half:]) {
		t.Errorf("pending after a restart = %d records, want the %d not batched", len(got), len(lines)-half)
	}
	if u := s2.Usage(); u.Records != len(lines)-half {
		t.Errorf("usage %+v, want %d records", u, len(lines)-half)
	}
	batchAll(t, s2)
	segs, _ = Segments(dir)
	if len(segs) != 1 {
		t.Errorf("segments after batching everything = %+v, want only the last", segs)
	}
	_ = s2.Close()

	s3, _ := openLogTest(t, dir, nil, 1024, 1024)
	if p, _ := s3.Pending(); len(p) != 0 || s3.Usage().Records != 0 {
		t.Errorf("Pending after batching everything and a restart = %+v, want nothing", p)
	}
	more := commitLines(t, s3, 2)
	if got := scanned(t, dir, true, InLog); !slices.Equal(got, more) {
		t.Errorf("pending = %q, want only the new %q", got, more)
	}
	if got := scanned(t, dir, true, InBatch); len(got) != len(lines) {
		t.Errorf("%d records in batches, want %d", len(got), len(lines))
	}
}

// copyDir copies a spool directory as a crash would leave it: every acknowledged write is in
// the page cache and so in the copy.
func copyDir(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			_ = out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// A crash between any two steps of forming a batch (batch file, cursor, deletion of the
// batched segments) loses no acknowledged record.
func TestCrashWhileBatchingLosesNoRecord(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, _ := openLogTest(t, dir, fs, 1024, 1024)
	lines := commitLines(t, s, 30)
	type crash struct {
		dir   string
		acked int // records acknowledged before it
	}
	crashes := map[string]crash{"after the commits": {copyDir(t, dir), len(lines)}}

	pending, _ := s.Pending()
	fs.setFault("fdatasync", dirCursor, 1)
	if _, err := s.FormBatch(pending[:len(pending)/3]); err != nil {
		t.Fatal(err)
	}
	crashes["after a batch whose cursor was not saved"] = crash{copyDir(t, dir), len(lines)}

	pending, _ = s.Pending()
	fs.setFault("remove", dirLog, 1)
	if _, err := s.FormBatch(pending[:len(pending)/2]); err != nil {
		t.Fatal(err)
	}
	crashes["after a batch whose segments were not deleted"] = crash{copyDir(t, dir), len(lines)}

	more := commitLines(t, s, 5)
	lines = append(lines, more...)
	batchAll(t, s)
	crashes["after batching everything"] = crash{copyDir(t, dir), len(lines)}

	for when, c := range crashes {
		s, _ := openLogTest(t, c.dir, nil, 1024, 1024)
		got := scanned(t, c.dir, true) // pending log records and batches
		for _, l := range lines[:c.acked] {
			if !slices.Contains(got, l) {
				t.Errorf("%s: record lost: %s", when, l)
			}
		}
		if u := s.Usage(); u.Broken != 0 {
			t.Errorf("%s: usage %+v, want nothing broken", when, u)
		}
	}
}

// lastSegment returns the path and the end of the data of the log's last segment.
func lastSegment(t *testing.T, dir string) (string, int64) {
	t.Helper()
	segs, err := Segments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("Segments = %v, %v", segs, err)
	}
	last := segs[len(segs)-1]
	return last.Path, last.Used
}

// A crash mid-append leaves a torn tail in the last segment: Open cuts it, only whole records
// are pending, nothing is counted broken, and later appends are read back after a restart.
func TestOpenCutsATornTail(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tear  func(t *testing.T, path string, end int64)
		whole int
	}{
		{"garbage after the last frame", func(t *testing.T, path string, end int64) {
			writeAt(t, path, end, []byte{0x20, 0, 0, 0, 1, 2, 3, 4, '{', '"'})
		}, 3},
		{"the last frame cut short", func(t *testing.T, path string, end int64) {
			if err := os.Truncate(path, end-5); err != nil {
				t.Fatal(err)
			}
		}, 2},
		{"the last frame's second half zero", func(t *testing.T, path string, end int64) {
			writeAt(t, path, end-20, make([]byte, 20))
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openLogTest(t, dir, nil, 0, 0)
			lines := commitLines(t, s, 3)
			_ = s.Close()
			path, end := lastSegment(t, dir)
			tc.tear(t, path, end)

			s2, _ := openLogTest(t, dir, nil, 0, 0)
			if got := scanned(t, dir, true, InLog); !slices.Equal(got, lines[:tc.whole]) {
				t.Errorf("pending = %q, want the %d whole records", got, tc.whole)
			}
			if u := s2.Usage(); u.Records != tc.whole || u.Broken != 0 {
				t.Errorf("usage %+v, want %d records, none broken", u, tc.whole)
			}
			more := commitLines(t, s2, 1)
			_ = s2.Close()
			s3, _ := openLogTest(t, dir, nil, 0, 0)
			want := append(slices.Clone(lines[:tc.whole]), more...)
			if got := scanned(t, dir, true, InLog); !slices.Equal(got, want) {
				t.Errorf("after another commit and restart: %q, want %q", got, want)
			}
			if u := s3.Usage(); u.Records != len(want) {
				t.Errorf("usage %+v, want %d records", u, len(want))
			}
		})
	}
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// Damage in a segment before the last (a bad block, not a crash) does not stop Open: the
// segment's frames before the damage and every later segment are pending, and the damage
// is counted broken. Once delivered, the damaged segment is kept aside for an operator.
func TestOpenReadsAroundADamagedMiddleSegment(t *testing.T) {
	dir := t.TempDir()
	s, _ := openLogTest(t, dir, nil, 512, 512)
	lines := commitLines(t, s, 15) // about 4 to a segment
	type rec struct {
		pos  wal.Position
		line string
	}
	var recs []rec
	if _, err := ScanRecords(dir, false, func(r ScannedRecord) error {
		p, _ := parsePosition(r.Where)
		recs = append(recs, rec{p, string(r.Line) + "\n"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	segs, _ := Segments(dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments, want at least 3", len(segs))
	}
	var victim wal.Position // the middle segment's second frame
	for _, r := range recs {
		if r.pos.Segment == recs[0].pos.Segment+1 && r.pos.Offset > 0 {
			victim = r.pos
			break
		}
	}
	writeAt(t, wal.SegmentPath(filepath.Join(dir, dirLog), victim.Segment), victim.Offset+wal.HeaderBytes+3, []byte("#"))
	var want []string
	for _, r := range recs {
		if r.pos.Segment != victim.Segment || r.pos.Before(victim) {
			want = append(want, r.line)
		}
	}

	s2, logs := openLogTest(t, dir, nil, 512, 512)
	var got []string
	warnings, err := ScanRecords(dir, true, func(r ScannedRecord) error {
		got = append(got, string(r.Line)+"\n")
		return nil
	})
	if err != nil || len(warnings) != 1 {
		t.Errorf("ScanRecords: %v, warnings %q; want one about the damage", err, warnings)
	}
	if !slices.Equal(got, want) || len(want) >= len(lines) {
		t.Errorf("pending = %d records, want the %d readable of %d", len(got), len(want), len(lines))
	}
	if u := s2.Usage(); u.Records != len(want) || u.Broken != 1 {
		t.Errorf("usage %+v, want %d records and 1 broken", u, len(want))
	}
	if !strings.Contains(logs.String(), "damaged") {
		t.Errorf("the damage is not logged:\n%s", logs)
	}
	b := batchAll(t, s2)
	if b.Records != len(want) {
		t.Errorf("batch of %d records, want %d", b.Records, len(want))
	}
	broken := wal.SegmentPath(filepath.Join(dir, dirLog), victim.Segment) + ".broken"
	if _, err := os.Stat(broken); err != nil {
		t.Errorf("the damaged segment is not kept aside once delivered: %v", err)
	}
}

// Bit rot in the log after Open checked it: FormBatch skips the group it cannot read back,
// counts it broken and batches the rest.
func TestFormBatchSkipsAGroupDamagedInTheLog(t *testing.T) {
	dir := t.TempDir()
	s, logs := openLogTest(t, dir, nil, 0, 0)
	lines := commitLines(t, s, 3) // a group each
	pending, _ := s.Pending()
	pos, _ := parsePosition(pending[1].ID)
	writeAt(t, wal.SegmentPath(filepath.Join(dir, dirLog), pos.Segment), pos.Offset+wal.HeaderBytes+2, []byte("#"))

	b, err := s.FormBatch(pending)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := readBatch(t, filepath.Join(dir, "batches", b.ID+".ndjson.gz"))
	if want := []string{lines[0], lines[2]}; !slices.Equal(got, want) || b.Records != 2 {
		t.Errorf("batch lines = %q (%d records), want the two readable records", got, b.Records)
	}
	if u := s.Usage(); u.Broken != 1 || u.Records != 0 || u.RecordBytes != 0 {
		t.Errorf("usage = %+v, want 1 broken and nothing pending", u)
	}
	if !strings.Contains(logs.String(), pending[1].ID) {
		t.Errorf("log does not name the damaged group %s:\n%s", pending[1].ID, logs)
	}
}

// A crash between appending a legacy file's records to the log and removing the file moves it
// again at the next Open: its records are delivered twice, never lost.
func TestLegacyFileLeftByACrashMidMoveIsDeliveredTwice(t *testing.T) {
	dir := t.TempDir()
	recs := filepath.Join(dir, dirRecords)
	if err := os.MkdirAll(recs, 0o700); err != nil {
		t.Fatal(err)
	}
	id := ulid.Make().String()
	lines := []string{recordLine(id, 0) + "\n", recordLine(ulid.Make().String(), 1) + "\n"}
	file := filepath.Join(recs, id+groupExt)
	content := []byte(strings.Join(lines, ""))
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	s, _ := openLogTest(t, dir, nil, 0, 0)
	_ = s.Close()
	// As if the crash came before the removal.
	if err := os.MkdirAll(recs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, content, 0o600); err != nil {
		t.Fatal(err)
	}
	s2, _ := openLogTest(t, dir, nil, 0, 0)
	want := append(slices.Clone(lines), lines...)
	if got := scanned(t, dir, true, InLog); !slices.Equal(got, want) {
		t.Errorf("pending = %q, want the file's records twice", got)
	}
	if u := s2.Usage(); u.Records != 4 {
		t.Errorf("usage %+v, want 4 records", u)
	}
	if _, err := os.Stat(recs); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("records/ still there: %v", err)
	}
}

// The inspection functions read a populated spool, batches included, and keep working while
// another goroutine commits.
func TestInspectionOfAPopulatedSpool(t *testing.T) {
	dir := t.TempDir()
	s, _ := openLogTest(t, dir, nil, 1024, 1024)
	lines := commitLines(t, s, 20)
	pending, _ := s.Pending()
	b, err := s.FormBatch(pending[:10])
	if err != nil {
		t.Fatal(err)
	}
	if got, want := scanned(t, dir, true, InLog), lines[10:]; !slices.Equal(got, want) {
		t.Errorf("pending log records = %d, want the %d not batched", len(got), len(want))
	}
	if got := scanned(t, dir, true, InBatch); !slices.Equal(got, lines[:10]) {
		t.Errorf("batched records = %q, want %q", got, lines[:10])
	}
	all := scanned(t, dir, false)
	inLog := scanned(t, dir, false, InLog)
	batchedInLog := scanned(t, dir, false, InLogBatched)
	if !slices.Equal(inLog, lines[10:]) || len(all) != len(inLog)+len(batchedInLog)+10 {
		t.Errorf("all records: %d in the log pending, %d batched in the log, %d in all; want %d pending and 10 in batch %s",
			len(inLog), len(batchedInLog), len(all), len(lines)-10, b.ID)
	}
	for _, l := range batchedInLog {
		if !slices.Contains(lines[:10], l) {
			t.Errorf("record %s counted as batched is not in the batch", l)
		}
	}
	cur, _ := parsePosition(pending[10].ID)
	if got, err := Cursor(dir); err != nil || got != cur.String() {
		t.Errorf("Cursor = %s, %v; want %s", got, err, cur)
	}
	segs, err := Segments(dir)
	if err != nil {
		t.Fatal(err)
	}
	records, pend := 0, 0
	for _, sg := range segs {
		records += sg.Records
		pend += sg.Pending
		if sg.Damage != "" || sg.Bytes != 1024 {
			t.Errorf("segment %+v, want undamaged, 1024 bytes", sg)
		}
	}
	if records != len(inLog)+len(batchedInLog) || pend != len(inLog) {
		t.Errorf("Segments count %d records, %d pending; want %d and %d", records, pend, len(inLog)+len(batchedInLog), len(inLog))
	}

	// Reading while commits go on sees a prefix of the log growing, every record whole.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := ulid.Make().String()
			if err := s.Commit(id, []byte(recordLine(id, i))); err != nil {
				t.Errorf("Commit: %v", err)
				return
			}
		}
	})
	for range 20 {
		got := scanned(t, dir, true, InLog)
		if len(got) < 10 || !slices.Equal(got[:10], lines[10:]) {
			t.Errorf("pending while committing: %d records, not starting with the 10 before", len(got))
		}
		for _, l := range got {
			if !json.Valid([]byte(l)) {
				t.Errorf("record read while committing is not whole: %q", l)
			}
		}
		if _, err := Segments(dir); err != nil {
			t.Errorf("Segments while committing: %v", err)
		}
		if got, err := Cursor(dir); err != nil || got != cur.String() {
			t.Errorf("Cursor while committing = %s, %v", got, err)
		}
	}
	close(stop)
	wg.Wait()
}

// frame is one log frame holding rec, as wal writes it.
func frame(rec []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(rec)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(rec, crc32.MakeTable(crc32.Castagnoli)))
	return append(b, rec...)
}

// A record whose append failed at the fdatasync may be on disk all the same: the reopen finds
// it, and it is counted, logged and sent. Its sender was told 451 and retries under a new id,
// a duplicate the pipeline sees under two ids; what must not happen is a record in the log
// the spool does not know about.
func TestFailedCommitThatReachedTheDiskIsCountedAndSent(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, logs := openLogTest(t, dir, fs, 0, 0)
	fs.setFault("fdatasync", dirLog, 1)
	if err := s.Commit(ulid.Make().String(), []byte(`{"a":1}`)); !errors.Is(err, errInjected) {
		t.Fatalf("Commit = %v, want the injected fault", err)
	}
	if u := s.Usage(); u.Records != 0 {
		t.Errorf("usage = %+v right after the failed commit, want nothing counted", u)
	}
	commitLines(t, s, 1) // reopens the log
	if u := s.Usage(); u.Records != 2 || u.RecordBytes != 8+int64(len(recordLine(ulid.Make().String(), 0))+1) {
		t.Errorf("usage = %+v, want the leftover counted with the new record", u)
	}
	p, err := s.Pending()
	if err != nil || len(p) != 2 || p[0].Records != 1 {
		t.Fatalf("Pending = %v, %v; want the leftover, then the new record", p, err)
	}
	if !strings.Contains(logs.String(), "failed commit reached the disk") {
		t.Errorf("the leftover is not logged:\n%s", logs)
	}
	b := batchAll(t, s)
	got, _ := readBatch(t, filepath.Join(dir, "batches", b.ID+".ndjson.gz"))
	if len(got) != 2 || got[0] != "{\"a\":1}\n" {
		t.Errorf("batch = %q, want the leftover first", got)
	}
}

// A record is not pending, counted or batched until the fdatasync of its append returned.
func TestRecordIsInvisibleUntilItsFdatasyncReturns(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, _ := openLogTest(t, dir, fs, 0, 0)
	gate := &fdGate{entered: make(chan struct{}), release: make(chan error)}
	fs.setGate(gate)
	done := make(chan error, 1)
	go func() { done <- s.Commit(ulid.Make().String(), []byte(`{"first":1}`)) }()
	<-gate.entered

	// Written to the log but not yet flushed: not committed.
	if got := scanned(t, dir, false, InLog); !slices.Equal(got, []string{"{\"first\":1}\n"}) {
		t.Fatalf("log = %q, want the written record", got)
	}
	if p, err := s.Pending(); err != nil || len(p) != 0 {
		t.Errorf("Pending mid-commit = %v, %v; want nothing", p, err)
	}
	if u := s.Usage(); u.Records != 0 {
		t.Errorf("usage mid-commit = %+v, want nothing counted", u)
	}
	if b := batchAll(t, s); b.ID != "" {
		t.Errorf("FormBatch mid-commit made %+v, want nothing", b)
	}

	gate.release <- nil
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(); err != nil || len(p) != 1 || p[0].Records != 1 {
		t.Errorf("Pending after commit = %v, %v; want one group", p, err)
	}
}

// A reopen that fails leaves the log refusing commits until a later reopen succeeds; nothing
// acknowledged before is lost, and batching works again once the log is open.
func TestFailedReopenIsRetried(t *testing.T) {
	dir := t.TempDir()
	fs := &walFS{}
	s, _ := openLogTest(t, dir, fs, 0, 0)
	before := commitLines(t, s, 2)
	fs.setFault("write", dirLog, 1) // torn: nothing of it survives the reopen
	if err := commitOne(s); !errors.Is(err, errInjected) {
		t.Fatalf("Commit = %v, want the injected fault", err)
	}
	fs.setFault("syncdir", dirLog, 1) // the reopen's directory fsync
	if err := commitOne(s); !errors.Is(err, errInjected) {
		t.Fatalf("Commit whose reopen fails = %v, want the injected fault", err)
	}
	if err := commitOne(s); err == nil {
		t.Error("Commit within a second of a failed reopen succeeded")
	}
	s.logMu.Lock()
	s.reopenedAt = time.Time{}
	s.logMu.Unlock()
	after := commitLines(t, s, 1)
	want := append(slices.Clone(before), after...)
	if got := groupLines(t, dir); !slices.Equal(got, want) {
		t.Errorf("log = %q, want %q", got, want)
	}
	b := batchAll(t, s)
	if got, _ := readBatch(t, filepath.Join(dir, "batches", b.ID+".ndjson.gz")); !slices.Equal(got, want) {
		t.Errorf("batch = %q, want %q", got, want)
	}
}

// Batching while sessions commit, with segments rotating and being deleted under the commits:
// every acknowledged record ends up exactly once in a batch or pending, before and after a
// restart.
func TestBatchingWhileCommittingDeliversEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	s, _ := openLogTest(t, dir, nil, 1024, 1024)
	const workers, each = 4, 50
	acked := make([][]string, workers)
	wg := commitConcurrently(workers, each, func(w int, id, line string) bool {
		if err := s.Commit(id, []byte(line)); err != nil {
			t.Errorf("Commit: %v", err)
			return false
		}
		acked[w] = append(acked[w], line+"\n")
		return true
	})
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Millisecond):
		}
		p, _ := s.Pending()
		if len(p) > 3 {
			p = p[:len(p)-2] // leave some behind, so the cursor stops mid-log
		}
		if _, err := s.FormBatch(p); err != nil {
			t.Fatal(err)
		}
	}
	var all []string
	for _, a := range acked {
		all = append(all, a...)
	}
	check := func(when string) {
		t.Helper()
		got := scanned(t, dir, true)
		slices.Sort(got)
		want := slices.Sorted(slices.Values(all))
		if !slices.Equal(got, want) {
			t.Errorf("%s: %d records pending or in batches, want each of the %d acknowledged once", when, len(got), len(want))
		}
	}
	check("while open")
	pendingBefore := scanned(t, dir, true, InLog)
	_ = s.Close()
	s2, _ := openLogTest(t, dir, nil, 1024, 1024)
	check("after a restart")
	if got := scanned(t, dir, true, InLog); !slices.Equal(got, pendingBefore) || s2.Usage().Records != len(got) {
		t.Errorf("pending after a restart = %d records, want the %d pending before", len(got), len(pendingBefore))
	}
}
