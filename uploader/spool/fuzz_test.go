package spool

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"testing"

	"github.com/oklog/ulid/v2"
)

// FuzzCommit feeds Commit arbitrary lines: it either refuses one and leaves nothing, or stores
// exactly the line (plus the newline it adds) and a batch gives it back unchanged.
func FuzzCommit(f *testing.F) {
	for _, seed := range []string{`{"a":1}`, "{\"a\":1}\n", `{"a":"\u2028"}`, "{\"a\":1}\r\n", "{}\n{}", `{`, "\x00", "", `{"a":[1,{"b":null}]}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		dir := t.TempDir()
		s, _ := openTest(t, dir)
		id := ulid.Make().String()
		err := s.Commit(id, bytes.Clone(line))
		if left := names(t, filepath.Join(dir, "tmp")); len(left) != 0 {
			t.Fatalf("tmp/ = %v", left)
		}
		if err != nil {
			if left := names(t, filepath.Join(dir, "records")); len(left) != 0 {
				t.Fatalf("refused line left %v", left)
			}
			return
		}
		want := line
		if !bytes.HasSuffix(want, []byte("\n")) {
			want = append(bytes.Clone(want), '\n')
		}
		got, rerr := os.ReadFile(filepath.Join(dir, "records", id+".json"))
		if rerr != nil || !bytes.Equal(got, want) {
			t.Fatalf("stored %q, %v; want %q", got, rerr, want)
		}
		if bytes.Count(got, []byte("\n")) != 1 || bytes.ContainsRune(got, '\r') {
			t.Fatalf("stored %q is not one NDJSON line", got)
		}
		b := batchAll(t, s)
		lines, _ := readBatch(t, filepath.Join(dir, "batches", b.ID+".ndjson.gz"))
		if len(lines) != 1 || lines[0] != string(want) {
			t.Fatalf("batch = %q, want [%q]", lines, want)
		}
	})
}

// FuzzOpen opens a spool whose record and batch files hold arbitrary bytes, as after disk
// corruption: Open must succeed, and the record is either counted as it is or set aside.
func FuzzOpen(f *testing.F) {
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Comment = "records=1 bytes=3"
	_, _ = zw.Write([]byte("{}\n"))
	_ = zw.Close()
	f.Add([]byte("{}\n"), gz.Bytes())
	f.Add([]byte(`{"cut":`), gz.Bytes()[:12])
	f.Add([]byte("\x00\xff"), []byte("\x1f\x8b\x08\x10"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, record, batch []byte) {
		dir := t.TempDir()
		for _, sub := range []string{"records", "batches"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		rid, bid := ulid.Make().String(), ulid.Make().String()
		if err := os.WriteFile(filepath.Join(dir, "records", rid+".json"), record, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "batches", bid+".ndjson.gz"), batch, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(dir, nil)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		u := s.Usage()
		switch {
		case u.Records == 1 && u.Broken == 0:
			if got, err := os.ReadFile(filepath.Join(dir, "records", rid+".json")); err != nil || !bytes.Equal(got, record) {
				t.Fatalf("kept record changed: %q, %v", got, err)
			}
		case u.Records == 0 && u.Broken == 1:
			if _, err := os.Stat(filepath.Join(dir, "records", rid+".json.broken")); err != nil {
				t.Fatalf("record counted broken but not set aside: %v", err)
			}
		default:
			t.Fatalf("usage = %+v: the record is neither kept nor set aside", u)
		}
		bs, err := s.Batches()
		if err != nil || len(bs) != 1 || bs[0].ID != bid || bs[0].Size != int64(len(batch)) {
			t.Fatalf("Batches = %+v, %v; want %s of %d bytes", bs, err, bid, len(batch))
		}
	})
}
