package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
)

// A backlog above scanInBackground is counted by name at Open and sized in the background,
// so mail is accepted at once after a restart. Batches formed while the scan runs must not
// make the usage drift, whichever gets to a record first.
func TestLargeBacklogIsSizedInTheBackground(t *testing.T) {
	dir := t.TempDir()
	recs := filepath.Join(dir, dirRecords)
	if err := os.MkdirAll(recs, dirPerm); err != nil {
		t.Fatal(err)
	}
	const n = scanInBackground + 500
	var size int64
	for i := range n {
		id := ulid.Make().String()
		line := fmt.Sprintf("{\"id\":%q,\"n\":%d,\"pad\":\"%0100d\"}\n", id, i%10, 0)
		size = int64(len(line)) // every line has the same length
		if err := os.WriteFile(filepath.Join(recs, id+recordExt), []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u := s.Usage(); u.Records != n {
		t.Fatalf("Open counted %d records, want %d", u.Records, n)
	}
	if s.scanDone == nil {
		t.Fatal("a backlog this size was scanned before Open returned")
	}
	pending, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.FormBatch(pending[:700]); err != nil { // races the scan on purpose
		t.Fatal(err)
	}
	<-s.scanDone
	u := s.Usage()
	if u.Records != n-700 || u.RecordBytes != int64(n-700)*size || u.Batches != 1 {
		t.Errorf("usage %+v, want %d records of %d bytes and 1 batch", u, n-700, int64(n-700)*size)
	}
}
