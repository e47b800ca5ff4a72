package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash/crc32"
	"io"
	"strings"
	"testing"
)

// sums are the expected hashes of some bytes, computed here with the crypto packages
// directly, never by the lister.
type sums struct {
	size              int64
	md5, sha1, sha256 string
}

func sumOf(b []byte) sums {
	m, s1, s2 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b)
	return sums{int64(len(b)), hex.EncodeToString(m[:]), hex.EncodeToString(s1[:]), hex.EncodeToString(s2[:])}
}

// sumZeros hashes n zero bytes, streaming.
func sumZeros(n int64) sums {
	hm, h1, h2 := md5.New(), sha1.New(), sha256.New()
	w := io.MultiWriter(hm, h1, h2)
	zero := make([]byte, 1<<20)
	for left := n; left > 0; {
		k := min(left, int64(len(zero)))
		w.Write(zero[:k])
		left -= k
	}
	return sums{n, hex.EncodeToString(hm.Sum(nil)), hex.EncodeToString(h1.Sum(nil)), hex.EncodeToString(h2.Sum(nil))}
}

func checkSums(t *testing.T, m Member, want sums) {
	t.Helper()
	if !m.Hashed {
		t.Errorf("%s (%q): not hashed", m.Path, m.Name)
		return
	}
	got := sums{m.Size, m.MD5, m.SHA1, m.SHA256}
	if got != want {
		t.Errorf("%s (%q): sums\n got %+v\nwant %+v", m.Path, m.Name, got, want)
	}
}

// countReader counts what List read, to check it consumed its input.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// oneByteReader hands out one byte per Read, the worst a stream can do.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// list runs List over data with default options and a fresh budget, and checks that it
// read all of data without error.
func list(t *testing.T, data []byte) *Result {
	t.Helper()
	return listWith(t, data, nil, Options{})
}

func listWith(t *testing.T, data []byte, b *Budget, opts Options) *Result {
	t.Helper()
	cr := &countReader{r: bytes.NewReader(data)}
	res, err := List(cr, b, opts)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if cr.n != int64(len(data)) {
		t.Fatalf("List read %d of %d bytes", cr.n, len(data))
	}
	checkInvariants(t, res)
	return res
}

// checkInvariants checks what must hold for any result, whatever the input.
func checkInvariants(t *testing.T, res *Result) {
	t.Helper()
	for i, m := range res.Members {
		if m.Parent >= i || m.Parent < -1 {
			t.Errorf("member %d: parent %d", i, m.Parent)
		}
		if m.Parent >= 0 {
			p := res.Members[m.Parent]
			if m.Depth != p.Depth+1 || !strings.HasPrefix(m.Path, p.Path+"/") {
				t.Errorf("member %d %q: depth %d path %q under %q depth %d", i, m.Name, m.Depth, m.Path, p.Path, p.Depth)
			}
		} else if m.Depth != 0 || strings.Contains(m.Path, "/") {
			t.Errorf("member %d: top-level with depth %d path %q", i, m.Depth, m.Path)
		}
		if m.Hashed != (m.SHA256 != "") {
			t.Errorf("member %d: hashed %v sha256 %q", i, m.Hashed, m.SHA256)
		}
		if len(m.Name) > maxNameBytes {
			t.Errorf("member %d: name of %d bytes", i, len(m.Name))
		}
	}
	seen := map[string]bool{}
	for _, l := range res.LimitsHit {
		if seen[l] {
			t.Errorf("limit %q twice", l)
		}
		seen[l] = true
	}
}

func hasAnomaly(res *Result, code string) bool {
	for _, a := range res.Anomalies {
		if a.Code == code {
			return true
		}
	}
	return false
}

func hasLimit(res *Result, name string) bool {
	for _, l := range res.LimitsHit {
		if l == name {
			return true
		}
	}
	return false
}

func byName(t *testing.T, res *Result, name string) Member {
	t.Helper()
	for _, m := range res.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("no member %q in %v", name, names(res))
	return Member{}
}

func names(res *Result) []string {
	var n []string
	for _, m := range res.Members {
		n = append(n, m.Path+":"+m.Name)
	}
	return n
}

// file is one member to write with archive/zip.
type file struct {
	name   string
	data   []byte
	method uint16
	raw    bool   // CreateRaw: sizes in the local header, no data descriptor
	flags  uint16 // extra flags (CreateRaw only)
}

// makeZip writes files with archive/zip: Create/CreateHeader members get data descriptors,
// raw ones get their sizes in the local header.
func makeZip(t testing.TB, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		var w io.Writer
		var err error
		if f.raw {
			comp := f.data
			if f.method == zip.Deflate {
				comp = deflate(t, f.data)
			}
			w, err = zw.CreateRaw(&zip.FileHeader{
				Name: f.name, Method: f.method, Flags: f.flags, CRC32: crc32.ChecksumIEEE(f.data),
				CompressedSize64: uint64(len(comp)), UncompressedSize64: uint64(len(f.data)),
			})
			if err == nil {
				_, err = w.Write(comp)
			}
		} else {
			w, err = zw.CreateHeader(&zip.FileHeader{Name: f.name, Method: f.method})
			if err == nil {
				_, err = w.Write(f.data)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func deflate(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(b)
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rawZip writes zip records field by field, for layouts archive/zip refuses to make.
type rawZip struct {
	buf     bytes.Buffer
	central bytes.Buffer
	entries int
}

type rawEntry struct {
	name         string
	flags        uint16
	method       uint16
	crc          uint32
	csize, usize uint32
	extra        []byte
	data         []byte // written after the local header as is
	offset       uint32 // central only: local header offset (set by local)
}

func (z *rawZip) u16(b *bytes.Buffer, v uint16) { binary.Write(b, binary.LittleEndian, v) }
func (z *rawZip) u32(b *bytes.Buffer, v uint32) { binary.Write(b, binary.LittleEndian, v) }

// local writes a local header and data, and returns the entry with its offset set.
func (z *rawZip) local(e rawEntry) rawEntry {
	e.offset = uint32(z.buf.Len())
	b := &z.buf
	z.u32(b, sigLocal)
	z.u16(b, 20)
	z.u16(b, e.flags)
	z.u16(b, e.method)
	z.u32(b, 0) // time, date
	z.u32(b, e.crc)
	z.u32(b, e.csize)
	z.u32(b, e.usize)
	z.u16(b, uint16(len(e.name)))
	z.u16(b, uint16(len(e.extra)))
	b.WriteString(e.name)
	b.Write(e.extra)
	b.Write(e.data)
	return e
}

// cent adds a central directory entry.
func (z *rawZip) cent(e rawEntry) {
	b := &z.central
	z.u32(b, sigCentral)
	z.u16(b, 20)
	z.u16(b, 20)
	z.u16(b, e.flags)
	z.u16(b, e.method)
	z.u32(b, 0)
	z.u32(b, e.crc)
	z.u32(b, e.csize)
	z.u32(b, e.usize)
	z.u16(b, uint16(len(e.name)))
	z.u16(b, uint16(len(e.extra)))
	z.u16(b, 0) // comment
	z.u16(b, 0) // disk
	z.u16(b, 0) // internal attributes
	z.u32(b, 0) // external attributes
	z.u32(b, e.offset)
	b.WriteString(e.name)
	b.Write(e.extra)
	z.entries++
}

// bytes appends the central directory and end record.
func (z *rawZip) bytes() []byte {
	out := bytes.Clone(z.buf.Bytes())
	cdOff := len(out)
	out = append(out, z.central.Bytes()...)
	var e bytes.Buffer
	z.u32(&e, sigEOCD)
	z.u16(&e, 0)
	z.u16(&e, 0)
	z.u16(&e, uint16(z.entries))
	z.u16(&e, uint16(z.entries))
	z.u32(&e, uint32(z.central.Len()))
	z.u32(&e, uint32(cdOff))
	z.u16(&e, 0)
	return append(out, e.Bytes()...)
}

// stored returns a raw entry storing data.
func stored(name string, data []byte) rawEntry {
	return rawEntry{name: name, crc: crc32.ChecksumIEEE(data), csize: uint32(len(data)), usize: uint32(len(data)), data: data}
}
