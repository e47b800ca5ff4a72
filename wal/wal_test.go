package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const tinySeg = 256

func open(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = tinySeg
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

type entry struct {
	pos Position
	rec []byte
}

func scanAll(t testing.TB, l *Log, from Position) []entry {
	t.Helper()
	var out []entry
	if err := l.Scan(from, func(pos Position, rec []byte) error {
		out = append(out, entry{pos, bytes.Clone(rec)}) // Scan reuses rec's memory
		return nil
	}); err != nil {
		t.Fatalf("Scan(%v): %v", from, err)
	}
	return out
}

func records(es []entry) [][]byte {
	out := make([][]byte, len(es))
	for i, e := range es {
		out[i] = e.rec
	}
	return out
}

func equalRecords(t testing.TB, what string, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d\ngot  %q\nwant %q", what, len(got), len(want), got, want)
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("%s: record %d = %q, want %q", what, i, got[i], want[i])
		}
	}
}

// group makes n records of varying length, tagged so every one in a test is distinct.
func group(rng *rand.Rand, tag string, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, "%s.%d:%s", tag, i, strings.Repeat("x", rng.IntN(30)))
	}
	return out
}

// appendGroups appends n groups and returns every record in order and each group's first
// position.
func appendGroups(t testing.TB, l *Log, rng *rand.Rand, tag string, n int) (all [][]byte, firsts []Position) {
	t.Helper()
	for g := range n {
		recs := group(rng, fmt.Sprintf("%s%d", tag, g), 1+rng.IntN(4))
		pos, err := l.Append(recs)
		if err != nil {
			t.Fatalf("Append group %d: %v", g, err)
		}
		all = append(all, recs...)
		firsts = append(firsts, pos)
	}
	return all, firsts
}

func TestRoundTripAcrossSegments(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	defer l.Close()
	rng := rand.New(rand.NewPCG(1, 2))

	var want [][]byte
	var starts []Position // each record's position, by following Read from each group's first
	for g := range 40 {
		recs := group(rng, fmt.Sprint("g", g), 1+rng.IntN(4))
		pos, err := l.Append(recs)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			got, next, err := l.Read(pos)
			if err != nil {
				t.Fatalf("Read(%v): %v", pos, err)
			}
			if !bytes.Equal(got, r) {
				t.Fatalf("Read(%v) = %q, want %q", pos, got, r)
			}
			starts = append(starts, pos)
			pos = next
		}
		want = append(want, recs...)
	}
	if n := len(l.Segments()); n < 5 {
		t.Fatalf("%d segments; the test wants several", n)
	}

	all := scanAll(t, l, Position{})
	equalRecords(t, "scan", records(all), want)
	for i, e := range all {
		if e.pos != starts[i] {
			t.Fatalf("scan position %d = %v, Append/Read said %v", i, e.pos, starts[i])
		}
	}
	// From the middle: the suffix.
	mid := len(all) / 2
	equalRecords(t, "scan from middle", records(scanAll(t, l, all[mid].pos)), want[mid:])

	// The end: io.EOF, and the position where the next record lands.
	last := all[len(all)-1].pos
	_, end, err := l.Read(last)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Read(end); !errors.Is(err, io.EOF) {
		t.Fatalf("Read at end: %v, want io.EOF", err)
	}
	pos, err := l.Append([][]byte{[]byte("after")})
	if err != nil {
		t.Fatal(err)
	}
	if rec, _, err := l.Read(end); err != nil || string(rec) != "after" {
		t.Fatalf("Read(end after append) = %q, %v (append said %v)", rec, err, pos)
	}

	// Segment files: 20-digit names, preallocated to the segment size.
	for _, idx := range l.Segments() {
		name := filepath.Join(dir, fmt.Sprintf("%020d.seg", idx))
		st, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != tinySeg {
			t.Fatalf("%s is %d bytes, want %d", name, st.Size(), tinySeg)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "00000000000000000001.seg")); err != nil {
		t.Fatal(err)
	}
}

func TestAppendRefusesWithoutFailing(t *testing.T) {
	l := open(t, t.TempDir(), Options{})
	defer l.Close()
	if _, err := l.Append([][]byte{[]byte("a"), nil}); !errors.Is(err, ErrEmptyRecord) {
		t.Fatalf("empty record: %v", err)
	}
	if _, err := l.Append([][]byte{make([]byte, tinySeg)}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("record larger than a segment: %v", err)
	}
	// A group that fits exactly in a fresh segment is fine.
	if _, err := l.Append([][]byte{bytes.Repeat([]byte("z"), tinySeg-HeaderBytes)}); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([][]byte{[]byte("ok")}); err != nil {
		t.Fatalf("after refusals: %v", err)
	}
	equalRecords(t, "scan", records(scanAll(t, l, Position{})),
		[][]byte{bytes.Repeat([]byte("z"), tinySeg-HeaderBytes), []byte("ok")})
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(3, 4))
	l := open(t, dir, Options{})
	want, _ := appendGroups(t, l, rng, "a", 20)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([][]byte{[]byte("x")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}

	l = open(t, dir, Options{})
	equalRecords(t, "after reopen", records(scanAll(t, l, Position{})), want)
	more, _ := appendGroups(t, l, rng, "b", 20)
	want = append(want, more...)
	equalRecords(t, "after more", records(scanAll(t, l, Position{})), want)
	l.Close()

	l = open(t, dir, Options{})
	defer l.Close()
	equalRecords(t, "after second reopen", records(scanAll(t, l, Position{})), want)
}

func segFile(dir string, idx uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%020d.seg", idx))
}

func frame(rec []byte) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(len(rec)))
	b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(rec, castagnoli))
	return append(b, rec...)
}

func writeAt(t testing.TB, name string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestTornTail(t *testing.T) {
	// Each case damages the last segment after the log was closed, and says how many of the
	// records survive: the ones before the first bad frame.
	type setup struct {
		dir  string
		all  []entry // every record, in order
		tail Position
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, s setup) (keep int)
	}{
		{"partial frame after the tail", func(t *testing.T, s setup) int {
			hdr := binary.LittleEndian.AppendUint32(nil, 100)
			hdr = binary.LittleEndian.AppendUint32(hdr, 0xdeadbeef)
			writeAt(t, segFile(s.dir, s.tail.Segment), append(hdr, "only ten b"...), s.tail.Offset)
			return len(s.all)
		}},
		{"CRC of the last frame", func(t *testing.T, s setup) int {
			last := s.all[len(s.all)-1].pos
			writeAt(t, segFile(s.dir, last.Segment), []byte{0xff}, last.Offset+HeaderBytes)
			return len(s.all) - 1
		}},
		{"truncated mid-frame", func(t *testing.T, s setup) int {
			last := s.all[len(s.all)-1].pos
			if err := os.Truncate(segFile(s.dir, last.Segment), last.Offset+HeaderBytes+2); err != nil {
				t.Fatal(err)
			}
			return len(s.all) - 1
		}},
		{"length past the segment end", func(t *testing.T, s setup) int {
			last := s.all[len(s.all)-1].pos
			writeAt(t, segFile(s.dir, last.Segment), binary.LittleEndian.AppendUint32(nil, tinySeg), last.Offset)
			return len(s.all) - 1
		}},
		{"torn first frame of a group whose later frame survived", func(t *testing.T, s setup) int {
			// A bad 10-byte frame at the tail, then a valid frame right after it: the
			// valid one must never come back, even once a new 10-byte record fills the hole
			// exactly (the new record's end would be the stale frame's start).
			bad := frame([]byte("0123456789"))
			bad[4] ^= 1
			stale := frame([]byte("stale"))
			writeAt(t, segFile(s.dir, s.tail.Segment), append(bad, stale...), s.tail.Offset)
			return len(s.all)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, Options{})
			rng := rand.New(rand.NewPCG(5, 6))
			appendGroups(t, l, rng, "a", 12)
			// Two small records, so the last segment surely holds more than one frame.
			if _, err := l.Append([][]byte{[]byte("penultimate"), []byte("last")}); err != nil {
				t.Fatal(err)
			}
			all := scanAll(t, l, Position{})
			_, tail, err := l.Read(all[len(all)-1].pos)
			if err != nil {
				t.Fatal(err)
			}
			l.Close()

			keep := tc.damage(t, setup{dir, all, tail})
			want := records(all[:keep])

			l = open(t, dir, Options{})
			equalRecords(t, "after recovery", records(scanAll(t, l, Position{})), want)
			// The last segment is zero after the data; one cut short stays short until an
			// append needs more, which grows it.
			segs := l.Segments()
			name := segFile(dir, segs[len(segs)-1])
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			_, end, err := l.Read(all[keep-1].pos)
			if err != nil {
				t.Fatal(err)
			}
			if end.Segment == segs[len(segs)-1] && !allZero(data[end.Offset:]) {
				t.Fatalf("%s not zero after the data at %d", name, end.Offset)
			}

			newRecs := [][]byte{[]byte("new-0123"), []byte("new2")} // 10+8+8+4 bytes
			if _, err := l.Append(newRecs); err != nil {
				t.Fatal(err)
			}
			want = append(want, newRecs...)
			equalRecords(t, "after append", records(scanAll(t, l, Position{})), want)
			l.Close()

			l = open(t, dir, Options{})
			defer l.Close()
			equalRecords(t, "after second reopen", records(scanAll(t, l, Position{})), want)
		})
	}
}

func TestCorruptMiddleSegment(t *testing.T) {
	for _, tc := range []struct {
		name    string
		damage  func(off int64) ([]byte, int64)
		message string
	}{
		{"CRC", func(off int64) ([]byte, int64) { return []byte{0xff}, off + HeaderBytes }, "CRC mismatch"},
		{"length", func(off int64) ([]byte, int64) {
			return binary.LittleEndian.AppendUint32(nil, 1<<20), off
		}, "runs past the segment end"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, dir, Options{})
			appendGroups(t, l, rand.New(rand.NewPCG(7, 8)), "a", 30)
			all := scanAll(t, l, Position{})
			segs := l.Segments()
			l.Close()
			if len(segs) < 3 {
				t.Fatalf("%d segments, want at least 3", len(segs))
			}
			// The second frame of the second segment.
			var victim Position
			for _, e := range all {
				if e.pos.Segment == segs[1] && e.pos.Offset > 0 {
					victim = e.pos
					break
				}
			}
			b, off := tc.damage(victim.Offset)
			name := segFile(dir, victim.Segment)
			writeAt(t, name, b, off)

			// Open goes on: one bad block must not stop all intake.
			l2, err := Open(dir, Options{SegmentBytes: tinySeg})
			if err != nil {
				t.Fatalf("Open with a damaged middle segment: %v", err)
			}
			dmg := l2.Damage()
			if len(dmg) != 1 {
				t.Fatalf("Damage() = %v, want one entry", dmg)
			}
			for _, s := range []string{name, fmt.Sprintf("offset %d", victim.Offset), tc.message} {
				if !strings.Contains(dmg[0].String(), s) {
					t.Errorf("damage %q does not say %q", dmg[0], s)
				}
			}
			// Everything but the damaged segment's frames from the bad one on is readable.
			var want [][]byte
			for _, e := range all {
				if e.pos.Segment != victim.Segment || e.pos.Offset < victim.Offset {
					want = append(want, e.rec)
				}
			}
			equalRecords(t, "after damage", records(scanAll(t, l2, Position{})), want)
			got := 0
			ro, err := ScanDir(dir, Position{}, func(Position, []byte) error { got++; return nil })
			if err != nil || len(ro) != 1 || got != len(want) {
				t.Errorf("ScanDir: %d records, damage %v, %v; want %d records and the one damage", got, ro, err, len(want))
			}
			// Delete sets the damaged segment aside rather than removing it.
			if err := l2.Delete(segs[2]); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(name + ".broken"); err != nil {
				t.Errorf("damaged segment not kept as .broken: %v", err)
			}
			if _, err := os.Stat(name); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged segment still in the log: %v", err)
			}
			l2.Close()
		})
	}
}

func TestDelete(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{})
	defer l.Close()
	appendGroups(t, l, rand.New(rand.NewPCG(9, 10)), "a", 30)
	all := scanAll(t, l, Position{})
	segs := l.Segments()
	if len(segs) < 4 {
		t.Fatalf("%d segments, want at least 4", len(segs))
	}
	if err := l.Delete(segs[2]); err != nil {
		t.Fatal(err)
	}
	var want []entry
	for _, e := range all {
		if e.pos.Segment >= segs[2] {
			want = append(want, e)
		}
	}
	got := scanAll(t, l, Position{})
	equalRecords(t, "after delete", records(got), records(want))
	if got[0].pos != want[0].pos {
		t.Fatalf("first position %v, want %v", got[0].pos, want[0].pos)
	}
	if _, _, err := l.Read(all[0].pos); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("Read in a deleted segment: %v", err)
	}
	for _, idx := range segs[:2] {
		if _, err := os.Stat(segFile(dir, idx)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("segment %d still there: %v", idx, err)
		}
	}
	// Never the last segment.
	if err := l.Delete(^uint64(0)); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Segments()); n != 1 {
		t.Fatalf("%d segments after deleting all, want the last one", n)
	}
	if _, err := l.Append([][]byte{[]byte("still")}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, dir, Options{})
	defer l.Close()
	got = scanAll(t, l, Position{})
	if string(got[len(got)-1].rec) != "still" {
		t.Fatalf("after reopen, last record %q", got[len(got)-1].rec)
	}
}

// TestFaults fails each file operation in turn, in the middle of a run of Appends, and
// checks the durability rule: after a reopen with a healthy file system, every record whose
// Append returned nil is there, in order, followed at most by a prefix of the failed group,
// each record of it whole; and appends go on after them.
func TestFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		step  string
		after int   // successful calls before the fault: past Open's own
		grow  int64 // InitialBytes, when segments are to grow before they rotate
	}{
		{"write", "write", 5, 0},
		{"fdatasync", "fdatasync", 5, 0},
		{"rotate/create", "create", 1, 0},                   // the first rotation
		{"rotate/preallocate", "preallocate", 1, 0},         // the first rotation
		{"rotate/sync", "sync", 2, 0},                       // the second rotation
		{"rotate/syncdir", "syncdir", 1, 0},                 // the first rotation
		{"grow/preallocate", "preallocate", 1, tinySeg / 4}, // the first growth
		{"grow/sync", "sync", 2, tinySeg / 4},               // the second growth
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			ffs := &faultFS{step: tc.step, after: tc.after}
			l := open(t, dir, Options{FS: ffs, InitialBytes: tc.grow})
			rng := rand.New(rand.NewPCG(11, 12))
			var acked, failed [][]byte
			var appendErr error
			for g := 0; g < 100 && appendErr == nil; g++ {
				recs := group(rng, fmt.Sprint("g", g), 1+rng.IntN(4))
				if _, appendErr = l.Append(recs); appendErr == nil {
					acked = append(acked, recs...)
				} else {
					failed = recs
				}
			}
			if !errors.Is(appendErr, errInjected) {
				t.Fatalf("Append error %v, want the injected fault", appendErr)
			}
			if _, err := l.Append([][]byte{[]byte("more")}); !errors.Is(err, ErrFailed) || !errors.Is(err, errInjected) {
				t.Fatalf("Append after a failure: %v, want ErrFailed wrapping the fault", err)
			}
			l.Close()

			l = open(t, dir, Options{})
			got := records(scanAll(t, l, Position{}))
			if len(got) < len(acked) {
				t.Fatalf("%d records after reopen, %d were acknowledged", len(got), len(acked))
			}
			equalRecords(t, "acknowledged", got[:len(acked)], acked)
			extra := got[len(acked):]
			if len(extra) > len(failed) {
				t.Fatalf("%d records after the acknowledged ones, the failed group had %d", len(extra), len(failed))
			}
			equalRecords(t, "failed group's survivors", extra, failed[:len(extra)])

			after := [][]byte{[]byte("after-1"), []byte("after-2")}
			if _, err := l.Append(after); err != nil {
				t.Fatal(err)
			}
			want := append(got, after...)
			l.Close()
			l = open(t, dir, Options{})
			defer l.Close()
			equalRecords(t, "after reopen and append", records(scanAll(t, l, Position{})), want)
		})
	}
}

func TestDeleteFault(t *testing.T) {
	dir := t.TempDir()
	ffs := &faultFS{step: "remove", after: 1}
	l := open(t, dir, Options{FS: ffs})
	appendGroups(t, l, rand.New(rand.NewPCG(13, 14)), "a", 30)
	all := scanAll(t, l, Position{})
	segs := l.Segments()
	if err := l.Delete(segs[3]); !errors.Is(err, errInjected) {
		t.Fatalf("Delete: %v, want the injected fault", err)
	}
	l.Close()
	// The segment whose removal failed comes back at Open: delivered twice, never lost.
	l = open(t, dir, Options{})
	defer l.Close()
	var want []entry
	for _, e := range all {
		if e.pos.Segment >= segs[1] {
			want = append(want, e)
		}
	}
	equalRecords(t, "after failed delete", records(scanAll(t, l, Position{})), records(want))
}

func TestConcurrentAppends(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{SegmentBytes: 4096})
	defer l.Close()
	const writers, groups = 8, 40
	type result struct {
		pos  Position
		recs [][]byte
	}
	results := make([][]result, writers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var readerErr error
	readerDone := make(chan struct{})
	go func() { // a reader scanning while the log grows
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := l.Scan(Position{}, func(Position, []byte) error { return nil }); err != nil {
				readerErr = err
				return
			}
		}
	}()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 15))
			for g := range groups {
				recs := group(rng, fmt.Sprintf("w%d.g%d", w, g), 1+rng.IntN(3))
				pos, err := l.Append(recs)
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], result{pos, recs})
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-readerDone
	if readerErr != nil {
		t.Fatalf("concurrent Scan: %v", readerErr)
	}

	total := 0
	for w := range results {
		for _, r := range results[w] {
			pos := r.pos
			for _, want := range r.recs {
				got, next, err := l.Read(pos)
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("Read(%v) = %q, %v; want %q", pos, got, err, want)
				}
				pos = next
				total++
			}
		}
	}
	if n := len(scanAll(t, l, Position{})); n != total {
		t.Fatalf("scan found %d records, appended %d", n, total)
	}
}

// fuzzLog is a log of two segments, the last holding several frames, built once per fuzz
// run and copied for each input.
type fuzzLog struct {
	dir  string
	all  []entry
	last uint64 // the last segment's index
}

func buildFuzzLog(f *testing.F) fuzzLog {
	dir := f.TempDir()
	l := open(f, dir, Options{SegmentBytes: 512})
	rng := rand.New(rand.NewPCG(16, 17))
	for g := 0; len(l.Segments()) < 2 || g < 25; g++ {
		if _, err := l.Append(group(rng, fmt.Sprint("g", g), 1+rng.IntN(3))); err != nil {
			f.Fatal(err)
		}
		if g > 200 {
			f.Fatal("log does not grow")
		}
	}
	fl := fuzzLog{dir: dir, all: scanAll(f, l, Position{})}
	segs := l.Segments()
	fl.last = segs[len(segs)-1]
	l.Close()
	return fl
}

func copyDir(t testing.TB, from, to string) {
	ents, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzRecover writes arbitrary bytes over the last segment from an arbitrary offset and
// checks that Open neither panics nor fails, keeps every frame that ends before the damage,
// and that the log is appendable and readable afterwards.
func FuzzRecover(f *testing.F) {
	fl := buildFuzzLog(f)
	f.Add(uint16(0), []byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add(uint16(20), []byte{0xff, 0xff, 0xff, 0xff})
	f.Add(uint16(100), bytes.Repeat([]byte{0}, 50))
	f.Add(uint16(40), frame([]byte("looks valid")))
	f.Add(uint16(511), []byte{7})
	f.Fuzz(func(t *testing.T, at uint16, damage []byte) {
		dir := t.TempDir()
		copyDir(t, fl.dir, dir)
		const size = 512
		off := int64(at) % size
		damage = damage[:min(int64(len(damage)), size-off)]
		writeAt(t, segFile(dir, fl.last), damage, off)

		var intact [][]byte
		for _, e := range fl.all {
			if e.pos.Segment < fl.last || e.pos.Offset+HeaderBytes+int64(len(e.rec)) <= off {
				intact = append(intact, e.rec)
			}
		}
		l, err := Open(dir, Options{SegmentBytes: size})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		got := records(scanAll(t, l, Position{}))
		if len(got) < len(intact) {
			t.Fatalf("%d records after damage at %d, %d were before it", len(got), off, len(intact))
		}
		equalRecords(t, "before the damage", got[:len(intact)], intact)
		if _, err := l.Append([][]byte{[]byte("after")}); err != nil {
			t.Fatal(err)
		}
		l.Close()
		l, err = Open(dir, Options{SegmentBytes: size})
		if err != nil {
			t.Fatalf("second Open: %v", err)
		}
		defer l.Close()
		equalRecords(t, "after append", records(scanAll(t, l, Position{})), append(got, []byte("after")))
	})
}

// TestGrowth: a segment starts small and grows, each step at least doubling it and never past
// SegmentBytes, and the records written across the steps read back, also after a reopen.
func TestGrowth(t *testing.T) {
	dir := t.TempDir()
	l := open(t, dir, Options{SegmentBytes: 8 << 10, InitialBytes: 1 << 10})
	size := func() int64 {
		segs := l.Segments()
		st, err := os.Stat(segFile(dir, segs[len(segs)-1]))
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if got := size(); got != 1<<10 {
		t.Fatalf("new segment is %d bytes, want 1024", got)
	}
	rec := bytes.Repeat([]byte("g"), 600)
	var want [][]byte
	var sizes []int64
	for i := range 12 {
		r := append([]byte(fmt.Sprint(i)), rec...)
		if _, err := l.Append([][]byte{r}); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
		sizes = append(sizes, size())
	}
	// 608-byte frames: the 2nd needs 1216 bytes (grow to 2048), the 4th 2432 (4096), the 7th
	// 4256 (8192); the 14th would rotate.
	wantSizes := []int64{1024, 2048, 2048, 4096, 4096, 4096, 8192, 8192, 8192, 8192, 8192, 8192}
	if !slices.Equal(sizes, wantSizes) {
		t.Errorf("segment sizes %v, want %v", sizes, wantSizes)
	}
	equalRecords(t, "grown", records(scanAll(t, l, Position{})), want)
	l.Close()
	l = open(t, dir, Options{SegmentBytes: 8 << 10, InitialBytes: 1 << 10})
	defer l.Close()
	equalRecords(t, "reopened", records(scanAll(t, l, Position{})), want)
}
