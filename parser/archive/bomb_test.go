package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"hash/crc32"
	"io"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// zeroChunks caches the deflate building blocks of zeroDeflate.
var zeroChunks = sync.OnceValues(func() (mib, final []byte) {
	var b bytes.Buffer
	fw, _ := flate.NewWriter(&b, flate.BestCompression)
	fw.Write(make([]byte, 1<<20))
	fw.Flush() // ends byte-aligned with non-final blocks that refer only to their own output
	mib = bytes.Clone(b.Bytes())
	b.Reset()
	fw, _ = flate.NewWriter(&b, flate.BestCompression)
	fw.Close() // an empty final block
	return mib, bytes.Clone(b.Bytes())
})

// zeroDeflate returns a deflate stream of mib MiB of zeros without compressing them all:
// the flushed stream of one MiB repeats, then an empty final block ends it. It is about
// 1000 times smaller than its output, so a 2 GiB member costs 2 MB.
func zeroDeflate(mib int) []byte {
	chunk, final := zeroChunks()
	return append(bytes.Repeat(chunk, mib), final...)
}

// crcZeros is the CRC-32 of mib MiB of zeros.
func crcZeros(mib int) uint32 {
	zero := make([]byte, 1<<20)
	var c uint32
	for range mib {
		c = crc32.Update(c, crc32.IEEETable, zero)
	}
	return c
}

func TestZeroDeflateGenerator(t *testing.T) {
	// The generator itself, checked with compress/flate: 3 MiB of zeros exactly.
	n, err := io.Copy(io.Discard, flate.NewReader(bytes.NewReader(zeroDeflate(3))))
	if err != nil || n != 3<<20 {
		t.Fatalf("%d, %v", n, err)
	}
	r := flate.NewReader(bytes.NewReader(zeroDeflate(1)))
	b, _ := io.ReadAll(r)
	if !bytes.Equal(b, make([]byte, 1<<20)) {
		t.Fatal("not zeros")
	}
}

// bombMember is one member of zeros for bomb.
type bombMember struct {
	mib   int
	desc  bool   // sizes in a data descriptor instead of the local header
	extra []byte // local header extra field
}

// bomb writes an archive of deflated zero members with archive/zip's CreateRaw.
//
// From Go 1.27, CreateRaw adds a ZIP64 extra field of its own to a local header whose sizes
// pass 32 bits; earlier versions wrote 0xffffffff with no field. The tests choose the local
// header's extra fields themselves (bombMember.extra), so bomb renames that added field to an
// ID no reader knows, and the archive is the same whichever Go built the test.
func bomb(t testing.TB, members ...bombMember) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	crcs := map[int]uint32{}
	var added []int // offsets of the ZIP64 fields archive/zip added to local headers
	for i, m := range members {
		comp := zeroDeflate(m.mib)
		c, ok := crcs[m.mib]
		if !ok {
			c = crcZeros(m.mib)
			crcs[m.mib] = c
		}
		fh := &zip.FileHeader{Name: "zeros" + strconv.Itoa(i), Method: zip.Deflate, CRC32: c, Extra: m.extra,
			CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(m.mib) << 20}
		if m.desc {
			fh.Flags = flagDescriptor
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
		at := buf.Len()
		w, err := zw.CreateRaw(fh)
		if err != nil {
			t.Fatal(err)
		}
		if err := zw.Flush(); err != nil {
			t.Fatal(err)
		}
		b := buf.Bytes()
		if nameEnd := at + 30 + len(fh.Name); int(binary.LittleEndian.Uint16(b[at+28:])) == len(m.extra)+20 &&
			binary.LittleEndian.Uint16(b[nameEnd+len(m.extra):]) == 0x0001 {
			added = append(added, nameEnd+len(m.extra))
		}
		w.Write(comp)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	for _, at := range added {
		binary.LittleEndian.PutUint16(b[at:], 0xcafe)
	}
	return b
}

// measure lists data and reports the process CPU time (wall time is noise on a shared
// machine) and the bytes allocated.
func measure(t *testing.T, data []byte, b *Budget) (*Result, time.Duration, uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := cpuTime()
	res := listWith(t, data, b, Options{})
	d := cpuTime() - start
	runtime.ReadMemStats(&after)
	// The budget's 64 MiB cost about 0.2 s of CPU to inflate and hash; the rest of a bomb
	// must cost little more, even under the race detector.
	if d > 5*time.Second {
		t.Errorf("%v of CPU", d)
	}
	return res, d, after.TotalAlloc - before.TotalAlloc
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func TestBombOneHugeMember(t *testing.T) {
	for _, desc := range []bool{false, true} {
		t.Run("descriptor="+strconv.FormatBool(desc), func(t *testing.T) {
			data := bomb(t, bombMember{mib: 2048, desc: desc})
			b := NewBudget(0)
			res, d, alloc := measure(t, data, b)
			t.Logf("2 GiB in %d bytes: listed in %v of CPU, %d bytes allocated", len(data), d, alloc)
			if len(res.Members) != 1 || !hasLimit(res, LimitBytes) || b.Remaining() != 0 {
				t.Fatalf("%+v %v remaining %d", res.Members, res.LimitsHit, b.Remaining())
			}
			m := res.Members[0]
			if m.Hashed || m.Size != 2<<30 || m.CompressedSize != int64(len(zeroDeflate(2048))) {
				t.Errorf("%+v", m)
			}
			if len(res.Anomalies) > 0 {
				t.Errorf("anomalies %v", res.Anomalies)
			}
			// Constant memory: buffers, not the 64 MiB that passed through them.
			if alloc > 16<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
		})
	}
}

func TestBombManyMembers(t *testing.T) {
	// 100 members of 20 MiB of zeros each: 2000 MiB. With the default 64 MiB budget the
	// first three are hashed whole, the fourth is cut at 4 MiB, the rest are skipped, and
	// all are listed with the sizes the central directory declares.
	want := sumZeros(20 << 20)
	for _, desc := range []bool{false, true} {
		t.Run("descriptor="+strconv.FormatBool(desc), func(t *testing.T) {
			ms := make([]bombMember, 100)
			for i := range ms {
				ms[i] = bombMember{mib: 20, desc: desc}
			}
			data := bomb(t, ms...)
			res, d, alloc := measure(t, data, nil)
			t.Logf("100 x 20 MiB in %d bytes: listed in %v of CPU, %d bytes allocated", len(data), d, alloc)
			if len(res.Members) != 100 || !hasLimit(res, LimitBytes) || len(res.Anomalies) > 0 {
				t.Fatalf("%d members, %v, %v", len(res.Members), res.LimitsHit, res.Anomalies)
			}
			for i, m := range res.Members {
				if i < 3 {
					checkSums(t, m, want)
					continue
				}
				if m.Hashed || m.Size != 20<<20 || m.Name != "zeros"+strconv.Itoa(i) {
					t.Errorf("%+v", m)
				}
			}
			if alloc > 16<<20 {
				t.Errorf("allocated %d bytes", alloc)
			}
		})
	}
}

func TestBombNested(t *testing.T) {
	// 42.zip's shape: an outer archive storing ten copies of a 100 x 20 MiB bomb. Stored
	// members cost no budget, so every inner archive is listed; their members are not
	// inflated past the shared budget.
	ms := make([]bombMember, 100)
	for i := range ms {
		ms[i] = bombMember{mib: 20, desc: i%2 == 0}
	}
	inner := bomb(t, ms...)
	var files []file
	for i := range 10 {
		files = append(files, file{name: "bomb" + strconv.Itoa(i) + ".zip", data: inner, method: zip.Store, raw: i%2 == 0})
	}
	data := makeZip(t, files...)
	res, d, alloc := measure(t, data, nil)
	t.Logf("10 x 100 x 20 MiB in %d bytes: listed in %v of CPU, %d bytes allocated", len(data), d, alloc)
	if len(res.Members) != 10+1000 || len(res.Anomalies) > 0 {
		t.Fatalf("%d members, %v", len(res.Members), res.Anomalies)
	}
	hashed := 0
	for _, m := range res.Members {
		if m.Depth == 1 && m.Hashed {
			hashed++
		}
		if m.Depth == 0 && !m.Hashed {
			t.Errorf("outer member %s not hashed", m.Name)
		}
	}
	if hashed != 3 {
		t.Errorf("%d inner members hashed", hashed)
	}
}

func TestZip64Member(t *testing.T) {
	// 5 GiB of zeros: sizes past 32 bits. A conformant local header carries a ZIP64
	// extra field with both sizes (APPNOTE 4.5.3); archive/zip's CreateRaw alone puts
	// 0xffffffff in the local header with no field, which is reported, and the central
	// directory (where archive/zip does write the field) still has the sizes.
	comp := zeroDeflate(5 << 10)
	extra := make([]byte, 20)
	binary.LittleEndian.PutUint16(extra, 1)
	binary.LittleEndian.PutUint16(extra[2:], 16)
	binary.LittleEndian.PutUint64(extra[4:], 5<<30)
	binary.LittleEndian.PutUint64(extra[12:], uint64(len(comp)))
	for _, tc := range []struct {
		name  string
		m     bombMember
		clean bool
	}{
		{"local zip64 field", bombMember{mib: 5 << 10, extra: extra}, true},
		{"descriptor", bombMember{mib: 5 << 10, desc: true}, true},
		{"no local zip64 field", bombMember{mib: 5 << 10}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := bomb(t, tc.m, bombMember{mib: 1})
			res := list(t, data)
			if len(res.Members) != 2 {
				t.Fatalf("%v %v", names(res), res.Anomalies)
			}
			m := res.Members[0]
			if m.Hashed || m.Size != 5<<30 || m.CompressedSize != int64(len(comp)) || !hasLimit(res, LimitBytes) {
				t.Errorf("%+v %v", m, res.LimitsHit)
			}
			if tc.clean != (len(res.Anomalies) == 0) {
				t.Errorf("anomalies %v", res.Anomalies)
			}
			if n := res.Members[1]; n.Name != "zeros1" || n.Size != 1<<20 {
				t.Errorf("%+v", n)
			}
		})
	}
}
