package spool

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
)

// A sensor from before the log left its records as records/<ULID>.ndjson files. Open moves
// every valid line into the log and removes the file; a file with a line that is not a record
// keeps that line as <name>.broken; and every record moved is delivered exactly once.
func TestLegacyRecordFilesMoveIntoTheLog(t *testing.T) {
	dir := t.TempDir()
	recs := filepath.Join(dir, dirRecords)
	if err := os.MkdirAll(recs, dirPerm); err != nil {
		t.Fatal(err)
	}
	const files = 1500
	var ids []string
	for i := range files {
		var group []byte
		for j := range 2 {
			id := ulid.Make().String()
			ids = append(ids, id)
			group = fmt.Appendf(group, "{\"id\":%q,\"n\":%d,\"pad\":\"%0100d\"}\n", id, (i+j)%10, 0)
		}
		if err := os.WriteFile(filepath.Join(recs, ulid.Make().String()+groupExt), group, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	damaged := ulid.Make().String() + groupExt
	good := ulid.Make().String()
	ids = append(ids, good)
	if err := os.WriteFile(filepath.Join(recs, damaged), fmt.Appendf(nil, "{\"id\":%q}\nnot json\n", good), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if u := s.Usage(); u.Records != len(ids) || u.Broken != 1 {
		t.Fatalf("after Open: %d records, %d broken; want %d and 1", u.Records, u.Broken, len(ids))
	}
	left, err := os.ReadDir(recs)
	if err != nil || len(left) != 1 || left[0].Name() != damaged+brokenSuffix {
		t.Fatalf("records/ after the move: %v, %v; want only %s", left, err, damaged+brokenSuffix)
	}
	pending, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(pending) > 0 {
		n := min(len(pending), 100)
		b, err := s.FormBatch(pending[:n])
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, batchIDs(t, s, b.ID)...)
		pending = pending[n:]
	}
	if fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Fatalf("batched %d records, want the %d moved, in order", len(got), len(ids))
	}
	// Reopened, nothing is pending again and nothing moves twice.
	s.Close()
	s2, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if u := s2.Usage(); u.Records != 0 {
		t.Errorf("after reopening: %d records pending, want 0", u.Records)
	}
}

// batchIDs returns the record ids in batch id, in order.
func batchIDs(t *testing.T, s *Spool, id string) []string {
	t.Helper()
	lines, _ := readBatch(t, s.path(dirBatches, id+batchExt))
	var out []string
	for _, line := range lines {
		if rest, ok := bytes.CutPrefix([]byte(line), idPrefix); ok && len(rest) >= ulid.EncodedSize {
			out = append(out, string(rest[:ulid.EncodedSize]))
		}
	}
	return out
}
