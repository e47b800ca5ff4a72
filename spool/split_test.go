package spool

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"
)

func gz(t testing.TB, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestEachLine(t *testing.T) {
	long := `{"a":"` + strings.Repeat("x", 100<<10) + `"}` // longer than the 64 KiB read buffer
	whole := gz(t, "{\"a\":1}\n\n{\"b\":2}\n"+long+"\n{\"c\":3}")
	for _, tc := range []struct {
		name     string
		in       []byte
		max      int
		want     []string
		complete bool
	}{
		{"lines, a blank one and no final newline", whole, 1 << 20, []string{`{"a":1}`, `{"b":2}`, long, `{"c":3}`}, true},
		{"a line over the bound stops it", whole, 1000, []string{`{"a":1}`, `{"b":2}`}, false},
		{"empty", gz(t, ""), 100, nil, true},
		{"not gzip", []byte("plain text\n"), 100, nil, false},
		{"empty file", nil, 100, nil, false},
		{"truncated: the cut line is dropped", whole[:len(whole)-10], 1 << 20, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			complete, err := eachLine(bytes.NewReader(tc.in), tc.max, func(l []byte) error {
				got = append(got, string(l))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if complete != tc.complete {
				t.Errorf("complete = %v, want %v", complete, tc.complete)
			}
			if tc.name == "truncated: the cut line is dropped" {
				// Whatever was decoded before the cut, never a partial line.
				for _, l := range got {
					if !slices.Contains([]string{`{"a":1}`, `{"b":2}`, long}, l) {
						t.Errorf("got a line that is not whole: %.40q", l)
					}
				}
				return
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("lines = %.60q, want %.60q", got, tc.want)
			}
		})
	}
	stop := errors.New("stop here")
	n := 0
	_, err := eachLine(bytes.NewReader(whole), 1<<20, func([]byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("an error from fn: got %v after %d calls, want it returned after 1", err, n)
	}
}

// FuzzEachLine feeds batch files a split reads back: any bytes as the file, and any bytes as
// the NDJSON inside a valid gzip stream. Nothing may panic, no line may be longer than the
// bound or hold a newline, and a readable stream must come back line for line.
func FuzzEachLine(f *testing.F) {
	for _, s := range []string{
		"",
		"{}\n",
		"{\"id\":\"01ARZ3NDEKTSV4RRFFQ69G5FAV\"}\n{\"n\":2}\n",
		"\n\n\n",
		"no newline at the end",
		"{\"a\":\"\r\"}\r\n",
		strings.Repeat("x", 300) + "\nshort\n",
		"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", // a gzip header and nothing more
	} {
		f.Add([]byte(s))
	}
	const maxLine = 256
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(l []byte) error {
			if len(l) == 0 || len(l) > maxLine || bytes.IndexByte(l, '\n') >= 0 {
				t.Fatalf("bad line %q", l)
			}
			_ = validLine(append(l, '\n'))
			return nil
		}
		// As the whole file.
		if _, err := eachLine(bytes.NewReader(data), maxLine, check); err != nil {
			t.Fatal(err)
		}
		// As the data inside a good gzip stream.
		var got []string
		complete, err := eachLine(bytes.NewReader(gz(t, string(data))), maxLine, func(l []byte) error {
			if err := check(l); err != nil {
				return err
			}
			got = append(got, string(l))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		tooLong := false
		for l := range strings.SplitSeq(string(data), "\n") {
			if len(l) > maxLine {
				tooLong = true
				break
			}
			if l != "" {
				want = append(want, l)
			}
		}
		if complete == tooLong {
			t.Fatalf("complete = %v with a line over the bound: %v", complete, tooLong)
		}
		if !tooLong && !slices.Equal(got, want) {
			t.Fatalf("lines = %q, want %q", got, want)
		}
	})
}

func TestSplitBatch(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	_, lines := commitN(t, s, 5)
	b := batchAll(t, s)
	parts, complete, err := s.SplitBatch(b.ID)
	if err != nil || !complete || len(parts) != 2 {
		t.Fatalf("SplitBatch = %+v, %v, %v; want two parts, complete", parts, complete, err)
	}
	var got []string
	for i, p := range parts {
		pl, hdr := readBatch(t, filepath.Join(dir, "batches", p.ID+".ndjson.gz"))
		if want := [][]string{lines[:3], lines[3:]}[i]; !slices.Equal(pl, want) {
			t.Errorf("part %d = %q, want %q", i, pl, want)
		}
		if want := fmt.Sprintf("records=%d bytes=%d", len(pl), len(strings.Join(pl, ""))); hdr.Comment != want || p.Records != len(pl) {
			t.Errorf("part %d: header %q, Records %d; want %q", i, hdr.Comment, p.Records, want)
		}
		got = append(got, pl...)
	}
	if !slices.Equal(got, lines) {
		t.Errorf("parts hold %q, want every line once, in order: %q", got, lines)
	}
	// The original stays until the caller removes it.
	if u := s.Usage(); u.Batches != 3 || u.Records != 0 {
		t.Errorf("usage = %+v, want the batch and its two parts", u)
	}
	one, _, err := s.SplitBatch(parts[0].ID)
	if err != nil || len(one) != 2 || one[0].Records != 2 || one[1].Records != 1 {
		t.Errorf("splitting 3 records = %+v, %v; want 2 and 1", one, err)
	}
}

// Two lines with the same record id (the pipeline keeps one) are still two lines: both reach
// a part.
func TestSplitBatchKeepsDuplicateIDs(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	id := ulid.Make().String()
	for i := range 2 {
		if err := s.Commit(ulid.Make().String(), fmt.Appendf(nil, `{"id":%q,"n":%d}`, id, i)); err != nil {
			t.Fatal(err)
		}
	}
	parts, complete, err := s.SplitBatch(batchAll(t, s).ID)
	if err != nil || !complete || len(parts) != 2 || parts[0].Records != 1 || parts[1].Records != 1 {
		t.Fatalf("SplitBatch = %+v, %v, %v; want two parts of one", parts, complete, err)
	}
}

// A batch with lines that are not records, or cut short, is split as far as it can be read
// and reported incomplete, so the caller keeps the file.
func TestSplitBatchOfADamagedFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	write := func(data []byte) string {
		id := ulid.Make().String()
		if err := os.WriteFile(filepath.Join(dir, "batches", id+".ndjson.gz"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		return id
	}
	good := "{\"a\":1}\n{\"b\":2}\n"
	for _, tc := range []struct {
		name  string
		data  []byte
		lines int
	}{
		{"a line that is not a record", gz(t, good+"not json\n{\"c\":3}\n"), 3},
		{"cut short", gz(t, good+"{\"c\":3}\n"+strings.Repeat("{\"pad\":1}\n", 5000))[:300], -1},
		{"not gzip", []byte("plain\n"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := write(tc.data)
			parts, complete, err := s.SplitBatch(id)
			if err != nil || complete {
				t.Fatalf("SplitBatch = %v, %v, %v; want incomplete, no error", parts, complete, err)
			}
			n := 0
			for _, p := range parts {
				pl, _ := readBatch(t, filepath.Join(dir, "batches", p.ID+".ndjson.gz"))
				for _, l := range pl {
					if !validLine([]byte(l)) {
						t.Errorf("part holds %q, not a record", l)
					}
				}
				n += len(pl)
			}
			if tc.lines >= 0 && n != tc.lines {
				t.Errorf("parts hold %d lines, want %d", n, tc.lines)
			}
			if tc.lines < 0 && n < 2 {
				t.Errorf("parts hold %d lines, want at least the 2 before the cut", n)
			}
		})
	}
}
