package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
)

// A backlog above scanInBackground is listed by name at Open and read in the background, so
// mail is accepted at once after a restart. Groups become pending as they are read, and
// batches formed while the scan runs must not make the usage drift.
func TestLargeBacklogIsReadInTheBackground(t *testing.T) {
	dir := t.TempDir()
	recs := filepath.Join(dir, dirRecords)
	if err := os.MkdirAll(recs, dirPerm); err != nil {
		t.Fatal(err)
	}
	const files = scanInBackground + 500
	var size int64
	for i := range files {
		var group []byte
		for j := range 2 {
			id := ulid.Make().String()
			group = fmt.Appendf(group, "{\"id\":%q,\"n\":%d,\"pad\":\"%0100d\"}\n", id, (i+j)%10, 0)
		}
		size = int64(len(group)) // every group has the same length
		if err := os.WriteFile(filepath.Join(recs, ulid.Make().String()+groupExt), group, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u.Records < files {
		t.Fatalf("Open counted %d records, want at least one per file (%d)", u.Records, files)
	}
	if s.scanDone == nil {
		t.Fatal("a backlog this size was read before Open returned")
	}
	var pending []Entry
	for len(pending) < 300 {
		if pending, err = s.Pending(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := s.FormBatch(pending[:300]) // races the scan on purpose
	if err != nil || b.Records != 600 {
		t.Fatalf("FormBatch = %+v, %v; want 600 records", b, err)
	}
	<-s.scanDone
	u := s.Usage()
	if u.Records != 2*(files-300) || u.RecordBytes != int64(files-300)*size || u.Batches != 1 {
		t.Errorf("usage %+v, want %d records of %d bytes and 1 batch", u, 2*(files-300), int64(files-300)*size)
	}
	if pending, err = s.Pending(); err != nil || len(pending) != files-300 {
		t.Errorf("Pending lists %d groups, %v; want %d", len(pending), err, files-300)
	}
}
