package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/wal"
)

func commitPadded(t *testing.T, s *Spool, n, pad int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		id := ulid.Make().String()
		line := fmt.Sprintf(`{"id":%q,"n":%d,"pad":%q}`, id, i, strings.Repeat("x", pad))
		if err := s.Commit(id, []byte(line)); err != nil {
			t.Fatalf("Commit %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

// removeSegments deletes the log's segment files by hand, leaving its cursor.
func removeSegments(t *testing.T, dir string) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, dirLog, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range segs {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// A cursor left from segments removed by hand used to stop Open ("no record at position")
// when it pointed into the new first segment.
func TestOpenWithACursorFromRemovedSegments(t *testing.T) {
	dir := t.TempDir()
	opts := wal.Options{SegmentBytes: 4096, InitialBytes: 4096}
	s, err := open(dir, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	commitPadded(t, s, 5, 100)
	batchAll(t, s)
	s.Close()
	removeSegments(t, dir)
	s2, err := open(dir, nil, opts)
	if err != nil {
		t.Fatalf("Open after the segments were removed: %v", err)
	}
	defer s2.Close()
	ids := commitPadded(t, s2, 2, 10)
	if u := s2.Usage(); u.Records != len(ids) {
		t.Errorf("%d records pending, want %d", u.Records, len(ids))
	}
}

// A cursor left from removed segments, once ignored, stayed on disk; when the new log's
// segments reached its index, a restart believed it and deleted acknowledged records.
func TestStaleCursorDeletesNoAcknowledgedRecord(t *testing.T) {
	dir := t.TempDir()
	opts := wal.Options{SegmentBytes: 4096, InitialBytes: 4096}
	s, err := open(dir, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	last := func() uint64 { segs := s.recs.Segments(); return segs[len(segs)-1] }
	for last() < 3 {
		commitPadded(t, s, 1, 200)
	}
	commitPadded(t, s, 3, 200)
	batchAll(t, s)
	s.Close()
	removeSegments(t, dir)
	if s, err = open(dir, nil, opts); err != nil {
		t.Fatal(err)
	}
	var acked []string
	for last() < 3 {
		acked = append(acked, commitPadded(t, s, 1, 200)...)
	}
	acked = append(acked, commitPadded(t, s, 5, 200)...)
	s.Close()
	if s, err = open(dir, nil, opts); err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Close()
	if u := s.Usage(); u.Records != len(acked) {
		t.Fatalf("after restart: %d records pending, want the %d acknowledged (segments %v)", u.Records, len(acked), s.recs.Segments())
	}
}

// A record too large for a segment is refused, and the log goes on: it used to be taken
// for a failed log, which then refused every commit for a second while it was reopened.
func TestTooLargeRecordDoesNotStopOtherCommits(t *testing.T) {
	dir := t.TempDir()
	s, err := open(dir, nil, wal.Options{SegmentBytes: 4096, InitialBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	commitPadded(t, s, 1, 10)
	for range 2 {
		id := ulid.Make().String()
		if err := s.Commit(id, fmt.Appendf(nil, `{"id":%q,"pad":%q}`, id, strings.Repeat("x", 5000))); err == nil {
			t.Fatal("a record larger than a segment was committed")
		}
	}
	id := ulid.Make().String()
	if err := s.Commit(id, fmt.Appendf(nil, `{"id":%q}`, id)); err != nil {
		t.Fatalf("a small commit after an oversized one: %v", err)
	}
}
