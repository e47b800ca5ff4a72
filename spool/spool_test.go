package spool

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/internal/testkit"
)

func openTest(t testing.TB, dir string) (*Spool, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := Open(dir, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s, &logs
}

// batchAll forms one batch of everything pending.
func batchAll(t *testing.T, s *Spool) Batch {
	t.Helper()
	pending, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.FormBatch(pending)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func commitN(t *testing.T, s *Spool, n int) (ids []string, lines []string) {
	t.Helper()
	for i := range n {
		id := ulid.Make().String()
		line := fmt.Sprintf(`{"id":%q,"n":%d}`, id, i)
		if err := s.Commit(id, []byte(line)); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		ids = append(ids, id)
		lines = append(lines, line+"\n")
	}
	return ids, lines
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func mode(t *testing.T, name string) os.FileMode {
	t.Helper()
	info, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return info.Mode().Perm()
}

// groupLines returns the lines of the records in the log not yet batched, in log order.
func groupLines(t *testing.T, dir string) []string {
	t.Helper()
	return scanned(t, dir, true, InLog)
}

func TestCommitWritesOneLinePerRecord(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	s, _ := openTest(t, dir)
	ids, lines := commitN(t, s, 2) // one after the other: a group each

	for _, sub := range []string{"", "tmp", "log", "log/cursor", "batches", "deadletter"} {
		if m := mode(t, filepath.Join(dir, sub)); m != 0o700 {
			t.Errorf("dir %q mode %v, want 0700", sub, m)
		}
	}
	pending, err := s.Pending()
	if err != nil || len(pending) != 2 {
		t.Fatalf("Pending = %v, %v; want two groups", pending, err)
	}
	if got := groupLines(t, dir); !slices.Equal(got, lines) {
		t.Errorf("records in the log = %q, want %q", got, lines)
	}
	for _, seg := range names(t, filepath.Join(dir, "log")) {
		if seg == "cursor" {
			continue
		}
		if m := mode(t, filepath.Join(dir, "log", seg)); m != 0o600 {
			t.Errorf("segment mode %v, want 0600", m)
		}
	}
	for i, e := range pending {
		u, _ := ulid.ParseStrict(ids[i])
		want := Entry{ID: e.ID, Records: 1, Bytes: int64(len(lines[i])), Oldest: u.Timestamp()}
		if _, ok := parsePosition(e.ID); e != want || !ok {
			t.Errorf("Pending[%d] = %+v, want %+v", i, e, want)
		}
	}
	if got := names(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ not empty after commit: %v", got)
	}
	u := s.Usage()
	if u.Records != 2 || u.RecordBytes != int64(len(lines[0])+len(lines[1])) {
		t.Errorf("usage = %+v, want 2 records of %d bytes", u, len(lines[0])+len(lines[1]))
	}
}

func TestCommitKeepsTrailingNewline(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	id := ulid.Make().String()
	if err := s.Commit(id, []byte("{\"a\":1}\n")); err != nil {
		t.Fatal(err)
	}
	if got := groupLines(t, dir); !slices.Equal(got, []string{"{\"a\":1}\n"}) {
		t.Errorf("records = %q, want one line with one newline", got)
	}
}

func TestCommitRejectsWhatWouldCorruptTheSpool(t *testing.T) {
	good := ulid.Make().String()
	for _, tc := range []struct {
		name, id, line string
	}{
		{"lowercase id sorts out of order", strings.ToLower(good), `{}`},
		{"path in id", "../" + good, `{}`},
		{"empty id", "", `{}`},
		{"not json", good, `hello`},
		{"not an object", good, `[1,2]`},
		{"two lines", good, "{\"a\":\n1}"},
		{"two objects", good, "{}\n{}"},
		{"empty", good, ``},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openTest(t, dir)
			if err := s.Commit(tc.id, []byte(tc.line)); err == nil {
				t.Fatal("Commit succeeded, want an error")
			}
			if got := scanned(t, dir, false); len(got) != 0 {
				t.Errorf("records in the spool = %q, want none", got)
			}
			select {
			case <-s.Notify():
				t.Error("Notify signalled for a failed commit")
			default:
			}
		})
	}
}

func TestNotifyCoalesces(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	select {
	case <-s.Notify():
		t.Fatal("signal before any commit")
	default:
	}
	commitN(t, s, 3) // must not block although nobody receives
	select {
	case <-s.Notify():
	default:
		t.Fatal("no signal after commits")
	}
	select {
	case <-s.Notify():
		t.Fatal("three commits gave more than one pending signal")
	default:
	}
}

func TestOpenRecoversFromCrash(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"tmp/half-dir", "records", "batches"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	good := ulid.Make().String()
	truncated := ulid.Make().String()
	garbage := ulid.Make().String()
	noNewline := ulid.Make().String()
	mixed := ulid.Make().String()
	files := map[string]string{
		"tmp/" + good + ".123":                `{"half`,
		"tmp/half-dir/x":                      "x",
		"records/" + good + ".ndjson":         "{\"ok\":true}\n",
		"records/" + truncated + ".ndjson":    `{"cut":`,
		"records/" + garbage + ".ndjson":      "\x00\x01\x02",
		"records/" + noNewline + ".ndjson":    `{"a":1}`,
		"records/" + mixed + ".ndjson":        "{\"a\":1}\n{bitrot\n{\"b\":2}\n",
		"records/not-a-ulid.ndjson":           "{}\n",
		"records/" + good + "1.ndjson.broken": "from an earlier run",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s, logs := openTest(t, dir)

	if got := names(t, filepath.Join(dir, "tmp")); len(got) != 0 {
		t.Errorf("tmp/ = %v, want crash leftovers deleted", got)
	}
	// Readable lines move into the log, in file name order; a file with any unreadable line
	// is set aside once its readable lines are in the log.
	wantRecords := []string{
		garbage + ".ndjson.broken",
		noNewline + ".ndjson.broken",
		truncated + ".ndjson.broken",
		mixed + ".ndjson.broken",
		good + "1.ndjson.broken",
	}
	slices.Sort(wantRecords)
	if got := names(t, filepath.Join(dir, "records")); !slices.Equal(got, wantRecords) {
		t.Errorf("records/ = %v\nwant %v", got, wantRecords)
	}
	u := s.Usage()
	if u.Records != 4 || u.Broken != 5 {
		t.Errorf("usage = %+v, want 4 records (1 + 2 readable in the mixed file + 1 in not-a-ulid) and 5 broken", u)
	}
	if !strings.Contains(logs.String(), truncated) {
		t.Errorf("log does not name the broken file %s:\n%s", truncated, logs)
	}
	want := []string{"{\"ok\":true}\n", "{\"a\":1}\n", "{\"b\":2}\n", "{}\n"}
	if got := groupLines(t, dir); !slices.Equal(got, want) {
		t.Errorf("records in the log = %q, want %q", got, want)
	}
	if p, err := s.Pending(); err != nil || len(p) != 3 || p[1].Records != 2 {
		t.Errorf("Pending = %+v, %v; want a group per moved file, 2 records from the mixed one", p, err)
	}
}

func TestOpenCountsWhatAnEarlierRunLeft(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	commitN(t, s, 3)
	pending, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.FormBatch(pending[:2])
	if err != nil {
		t.Fatal(err)
	}

	s2, _ := openTest(t, dir)
	u := s2.Usage()
	if u.Records != 1 || u.Batches != 1 || u.BatchBytes != b.Size {
		t.Errorf("reopened usage = %+v, want 1 record and 1 batch of %d bytes", u, b.Size)
	}
	if p, err := s2.Pending(); err != nil || len(p) != 1 || p[0] != pending[2] {
		t.Errorf("Pending after reopen = %+v, %v; want %+v", p, err, pending[2])
	}
	bs, err := s2.Batches()
	if err != nil || len(bs) != 1 || bs[0] != b {
		t.Errorf("Batches after reopen = %+v, %v; want %+v", bs, err, b)
	}
}

func readBatch(t *testing.T, name string) (lines []string, header gzip.Header) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return strings.SplitAfter(string(data), "\n")[:strings.Count(string(data), "\n")], zr.Header
}

func TestFormBatchThenDeliver(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	_, lines := commitN(t, s, 3)
	b := batchAll(t, s)
	total := int64(len(strings.Join(lines, "")))
	if b.Records != 3 || b.Bytes != total || !validID(b.ID) {
		t.Errorf("batch = %+v, want 3 records, %d bytes, ULID id", b, total)
	}

	name := filepath.Join(dir, "batches", b.ID+".ndjson.gz")
	got, hdr := readBatch(t, name)
	if !slices.Equal(got, lines) {
		t.Errorf("batch lines = %q\nwant %q", got, lines)
	}
	if want := fmt.Sprintf("records=3 bytes=%d", total); hdr.Comment != want {
		t.Errorf("gzip comment = %q, want %q", hdr.Comment, want)
	}
	if m := mode(t, name); m != 0o600 {
		t.Errorf("batch mode %v, want 0600", m)
	}
	if left := groupLines(t, dir); len(left) != 0 {
		t.Errorf("pending in the log after batching = %q, want none", left)
	}
	if u := s.Usage(); u.Records != 0 || u.RecordBytes != 0 || u.Batches != 1 || u.BatchBytes != b.Size {
		t.Errorf("usage = %+v, want only the batch", u)
	}
	listed, err := s.Batches()
	if err != nil || len(listed) != 1 || listed[0] != b {
		t.Errorf("Batches = %+v, %v; want [%+v]", listed, err, b)
	}

	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if left := names(t, filepath.Join(dir, "batches")); len(left) != 0 {
		t.Errorf("batches/ after delete = %v", left)
	}
	if u := s.Usage(); u.Batches != 0 || u.BatchBytes != 0 {
		t.Errorf("usage after delete = %+v", u)
	}
}

func TestBatchesOldestFirst(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	var want []string
	for range 3 {
		commitN(t, s, 1)
		b := batchAll(t, s)
		want = append(want, b.ID)
	}
	bs, err := s.Batches()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bs {
		got = append(got, b.ID)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Batches order = %v, want formation order %v", got, want)
	}
}

func TestFormBatchOfNothingUsable(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	b, err := s.FormBatch([]Entry{{ID: ulid.Make().String(), Bytes: 3}})
	if err != nil || b.ID != "" {
		t.Errorf("FormBatch(vanished) = %+v, %v; want zero batch, nil", b, err)
	}
	if left := names(t, filepath.Join(dir, "batches")); len(left) != 0 {
		t.Errorf("batches/ = %v, want empty", left)
	}
	if left := names(t, filepath.Join(dir, "tmp")); len(left) != 0 {
		t.Errorf("tmp/ = %v, want empty", left)
	}
}

func TestDeadLetterKeepsTheBatch(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	_, lines := commitN(t, s, 2)
	b := batchAll(t, s)
	if err := s.DeadLetter(b.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := readBatch(t, filepath.Join(dir, "deadletter", b.ID+".ndjson.gz"))
	if !slices.Equal(got, lines) {
		t.Errorf("dead-lettered lines = %q, want %q", got, lines)
	}
	if left := names(t, filepath.Join(dir, "batches")); len(left) != 0 {
		t.Errorf("batches/ = %v, want empty", left)
	}
	if u := s.Usage(); u.Batches != 0 || u.DeadLetters != 1 {
		t.Errorf("usage = %+v, want 0 batches, 1 dead letter", u)
	}
}

// faultFS fails one step of the atomic write sequence (testkit.FaultFS), and reopens for
// real.
type faultFS struct{ testkit.FaultFS }

func (faultFS) Reopen(name string) (tempFile, error) { return osFS{}.Reopen(name) }

// faultFile fails one step of a file's writing.
type faultFile = testkit.FaultFile

var errInjected = testkit.ErrInjected

// A failed commit is not counted, signalled or batched; a torn write leaves nothing in the
// log; once the fault clears, the next commit reopens the log and succeeds.
func TestFailedCommitIsNotCountedOrSignalled(t *testing.T) {
	for _, step := range []string{"write", "fdatasync", "preallocate", "sync"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			fs := &walFS{}
			s, _ := openLogTest(t, dir, fs, 4096, 8) // the first append grows the segment
			fs.setFault(step, dirLog, 1)

			err := s.Commit(ulid.Make().String(), []byte(`{"a":1}`))
			if !errors.Is(err, errInjected) {
				t.Fatalf("Commit = %v, want the injected %s failure", err, step)
			}
			if left := names(t, filepath.Join(dir, "tmp")); len(left) != 0 {
				t.Errorf("tmp/ = %v after a failed commit, want empty", left)
			}
			if u := s.Usage(); u.Records != 0 || u.RecordBytes != 0 {
				t.Errorf("usage = %+v after a failed commit", u)
			}
			if p, _ := s.Pending(); len(p) != 0 {
				t.Errorf("Pending = %+v after a failed commit", p)
			}
			select {
			case <-s.Notify():
				t.Error("Notify signalled for a failed commit")
			default:
			}

			if err := s.Commit(ulid.Make().String(), []byte(`{"b":2}`)); err != nil {
				t.Fatalf("Commit after the fault cleared: %v", err)
			}
			got := groupLines(t, dir)
			if step != "fdatasync" && !slices.Equal(got, []string{"{\"b\":2}\n"}) {
				t.Errorf("log = %q, want only the record committed after the fault", got)
			}
			if step == "fdatasync" && !slices.Equal(got, []string{"{\"a\":1}\n", "{\"b\":2}\n"}) {
				t.Errorf("log = %q, want the failed record as it reached the disk, then the new one", got)
			}
			if u := s.Usage(); u.Records != len(got) {
				t.Errorf("usage %+v, want the %d records in the log", u, len(got))
			}
		})
	}
}

func TestFormBatchFailureKeepsTheRecords(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	commitN(t, s, 2)
	p, err := s.Pending()
	if err != nil {
		t.Fatal(err)
	}
	s.fs = faultFS{testkit.FaultFS{Step: "fsync"}}
	if _, err := s.FormBatch(p); !errors.Is(err, errInjected) {
		t.Fatalf("FormBatch = %v, want the injected failure", err)
	}
	if left := groupLines(t, dir); len(left) != 2 {
		t.Errorf("pending in the log = %q, want both records kept", left)
	}
	if got, err := s.Pending(); err != nil || !slices.Equal(got, p) {
		t.Errorf("Pending = %+v, %v; want %+v", got, err, p)
	}
	for _, sub := range []string{"batches", "tmp"} {
		if left := names(t, filepath.Join(dir, sub)); len(left) != 0 {
			t.Errorf("%s/ = %v, want empty", sub, left)
		}
	}
	if u := s.Usage(); u.Records != 2 || u.Batches != 0 {
		t.Errorf("usage = %+v, want 2 records, no batch", u)
	}
}
