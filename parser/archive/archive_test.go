package archive

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

func text(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"alpha ", "beta ", "gamma ", "PK\x03\x04", "delta\n", "PK\x07\x08", "PK\x01\x02", "epsilon "}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
	}
	return b.Bytes()[:n]
}

func TestMethodsAndDescriptors(t *testing.T) {
	files := []file{
		{name: "deflate-desc.txt", data: text(100000, 1), method: zip.Deflate},
		{name: "stored-desc.txt", data: text(70000, 2), method: zip.Store},
		{name: "deflate-raw.txt", data: text(5000, 3), method: zip.Deflate, raw: true},
		{name: "stored-raw.bin", data: text(3000, 4), method: zip.Store, raw: true},
		{name: "empty-desc", data: nil, method: zip.Deflate},
		{name: "empty-stored-desc", data: nil, method: zip.Store},
		{name: "empty-raw", data: nil, method: zip.Store, raw: true},
	}
	data := makeZip(t, files...)
	for _, tc := range []struct {
		name string
		r    func() io.Reader
	}{
		{"whole", func() io.Reader { return bytes.NewReader(data) }},
		{"one byte at a time", func() io.Reader { return oneByteReader{bytes.NewReader(data)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := List(tc.r(), nil, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, res)
			if len(res.Members) != len(files) {
				t.Fatalf("members %v", names(res))
			}
			for i, f := range files {
				m := res.Members[i]
				if m.Name != f.name || m.Method != f.method || m.Depth != 0 || m.Parent != -1 || m.Encrypted {
					t.Errorf("member %d: %+v", i, m)
				}
				checkSums(t, m, sumOf(f.data))
			}
			if len(res.Anomalies) > 0 || len(res.LimitsHit) > 0 {
				t.Errorf("anomalies %v limits %v", res.Anomalies, res.LimitsHit)
			}
		})
	}
}

func TestDirectoryAndPaths(t *testing.T) {
	data := makeZip(t, file{name: "dir/", method: zip.Store}, file{name: "dir/a.txt", data: []byte("a"), method: zip.Deflate})
	res := list(t, data)
	if len(res.Members) != 2 || !res.Members[0].Dir || res.Members[0].Hashed || res.Members[1].Dir {
		t.Fatalf("%+v", res.Members)
	}
	if res.Members[0].Path != "1" || res.Members[1].Path != "2" {
		t.Errorf("paths %v", names(res))
	}
	checkSums(t, res.Members[1], sumOf([]byte("a")))
}

func TestEncrypted(t *testing.T) {
	// Traditional PKWARE encryption: flag bit 0; the data is opaque bytes to us.
	secret := text(500, 5)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, _ := zw.CreateRaw(&zip.FileHeader{Name: "secret.docx", Method: zip.Deflate, Flags: 1,
		CRC32: 0x12345678, CompressedSize64: uint64(len(secret)), UncompressedSize64: 9999})
	w.Write(secret)
	// WinZip AES: method 99 and extra field 0x9901 (version 2, "AE", strength 3, method 8).
	aes := []byte{0x01, 0x99, 7, 0, 2, 0, 'A', 'E', 3, 8, 0}
	w, _ = zw.CreateRaw(&zip.FileHeader{Name: "aes.exe", Method: 99, Flags: 1, Extra: aes,
		CompressedSize64: uint64(len(secret)), UncompressedSize64: 10})
	w.Write(secret)
	w, _ = zw.CreateHeader(&zip.FileHeader{Name: "plain.txt", Method: zip.Deflate})
	w.Write([]byte("plain"))
	zw.Close()

	res := list(t, buf.Bytes())
	if len(res.Members) != 3 {
		t.Fatalf("%v", names(res))
	}
	for _, m := range res.Members[:2] {
		if !m.Encrypted || m.Hashed || m.CompressedSize != int64(len(secret)) {
			t.Errorf("%+v", m)
		}
	}
	if res.Members[0].Size != 9999 || res.Members[1].Method != 99 {
		t.Errorf("%+v", res.Members[:2])
	}
	checkSums(t, res.Members[2], sumOf([]byte("plain")))
	if len(res.Anomalies) > 0 {
		t.Errorf("anomalies %v", res.Anomalies)
	}

	// Cut inside the encrypted data, which is skipped rather than read: still reported.
	cut := buf.Bytes()[:bytes.Index(buf.Bytes(), secret)+100]
	res = list(t, cut)
	found := false
	for _, a := range res.Anomalies {
		found = found || a.Code == "truncated" && a.Path == "1"
	}
	if !found {
		t.Errorf("anomalies %v", res.Anomalies)
	}
}

func TestNames(t *testing.T) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	// CP437: 0x80 is Ç, 0x81 ü, 0x82 é, 0xE1 ß (IBM code page 437 table; Python agrees:
	// b'\x80\x81\x82\xe1'.decode('cp437') == 'Çüéß').
	for _, h := range []*zip.FileHeader{
		{Name: "\x80\x81\x82\xe1.txt", NonUTF8: true},
		{Name: "naïve-日本.txt"}, // archive/zip sets the UTF-8 flag for this one
		{Name: "../../etc/passwd"},
		{Name: strings.Repeat("x", 3000)},
	} {
		h.Method = zip.Store
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
	}
	zw.Close()
	res := list(t, buf.Bytes())
	if len(res.Members) != 4 {
		t.Fatalf("%v", names(res))
	}
	if got := res.Members[0].Name; got != "Çüéß.txt" {
		t.Errorf("cp437 name %q", got)
	}
	if got := res.Members[1].Name; got != "naïve-日本.txt" {
		t.Errorf("utf-8 name %q", got)
	}
	if !hasAnomaly(res, "unsafe_name") || !hasAnomaly(res, "long_name") {
		t.Errorf("anomalies %v", res.Anomalies)
	}
	if got := res.Members[3].Name; got != strings.Repeat("x", maxNameBytes) {
		t.Errorf("long name of %d bytes", len(got))
	}
}

func TestNested(t *testing.T) {
	leaf := []byte("innermost payload")
	inner := makeZip(t, file{name: "leaf.txt", data: leaf, method: zip.Deflate})
	middle := makeZip(t, file{name: "readme", data: []byte("hi"), method: zip.Store},
		file{name: "inner.zip", data: inner, method: zip.Deflate})
	outer := makeZip(t, file{name: "middle.zip", data: middle, method: zip.Store},
		file{name: "after.txt", data: []byte("after"), method: zip.Deflate})

	res := list(t, outer)
	want := []struct {
		path, name string
		depth      int
		parent     int
		data       []byte
	}{
		{"1", "middle.zip", 0, -1, middle},
		{"1/1", "readme", 1, 0, []byte("hi")},
		{"1/2", "inner.zip", 1, 0, inner},
		{"1/2/1", "leaf.txt", 2, 2, leaf},
		{"2", "after.txt", 0, -1, []byte("after")},
	}
	if len(res.Members) != len(want) {
		t.Fatalf("members %v", names(res))
	}
	for i, w := range want {
		m := res.Members[i]
		if m.Path != w.path || m.Name != w.name || m.Depth != w.depth || m.Parent != w.parent {
			t.Errorf("member %d: %s %q depth %d parent %d; want %+v", i, m.Path, m.Name, m.Depth, m.Parent, w)
		}
		checkSums(t, m, sumOf(w.data))
	}
	if len(res.Anomalies) > 0 || len(res.LimitsHit) > 0 {
		t.Errorf("anomalies %v limits %v", res.Anomalies, res.LimitsHit)
	}
}

func TestNestingDepthLimit(t *testing.T) {
	z := makeZip(t, file{name: "core.txt", data: []byte("core"), method: zip.Deflate})
	for i := 0; i < 6; i++ {
		z = makeZip(t, file{name: "level.zip", data: z, method: zip.Deflate})
	}
	// Seven archives: depths 0..6. Default MaxDepth 4 lists members down to depth 4.
	res := list(t, z)
	if len(res.Members) != 5 || res.Members[4].Depth != 4 || res.Members[4].Path != "1/1/1/1/1" {
		t.Fatalf("members %v", names(res))
	}
	if !hasLimit(res, LimitDepth) || !res.Members[4].Hashed {
		t.Errorf("limits %v, deepest %+v", res.LimitsHit, res.Members[4])
	}
	res = listWith(t, z, nil, Options{MaxDepth: 16})
	if len(res.Members) != 7 || res.Members[6].Name != "core.txt" || hasLimit(res, LimitDepth) {
		t.Fatalf("members %v limits %v", names(res), res.LimitsHit)
	}
	checkSums(t, res.Members[6], sumOf([]byte("core")))
}

func TestNameMismatch(t *testing.T) {
	// The classic trick: the local header says one name, the central directory another.
	data := makeZip(t, file{name: "invoice.pdf", data: []byte("MZ..."), method: zip.Store, raw: true})
	i := bytes.Index(data, []byte("invoice.pdf"))
	copy(data[i:], "invoice.exe") // the local header's copy comes first
	res := list(t, data)
	if len(res.Members) != 1 || res.Members[0].Name != "invoice.pdf" || !hasAnomaly(res, "name_mismatch") {
		t.Fatalf("%v %v", names(res), res.Anomalies)
	}
}

func TestLocalOnlyAndCentralOnly(t *testing.T) {
	var z rawZip
	a := z.local(stored("listed.txt", []byte("a")))
	z.local(stored("hidden.exe", []byte("MZ")))
	z.cent(a)
	ghost := stored("ghost.txt", []byte("g"))
	ghost.offset = 5 // inside the first member's header: no local header starts there
	z.cent(ghost)
	res := list(t, z.bytes())
	if len(res.Members) != 3 {
		t.Fatalf("%v", names(res))
	}
	checkSums(t, byName(t, res, "hidden.exe"), sumOf([]byte("MZ")))
	if g := byName(t, res, "ghost.txt"); g.Hashed || g.Size != 1 {
		t.Errorf("%+v", g)
	}
	for _, c := range []string{"local_only", "central_only"} {
		if !hasAnomaly(res, c) {
			t.Errorf("no %s in %v", c, res.Anomalies)
		}
	}
}

func TestOverlappingEntries(t *testing.T) {
	// Two central entries for one local header, and one pointing inside another's data:
	// the shapes of overlapping-file zip bombs.
	var z rawZip
	a := z.local(stored("a", bytes.Repeat([]byte{'x'}, 100)))
	z.cent(a)
	z.cent(a)
	in := a
	in.offset = a.offset + 40
	z.cent(in)
	res := list(t, z.bytes())
	if len(res.Members) != 3 || !hasAnomaly(res, "overlapping_entries") {
		t.Fatalf("%v %v", names(res), res.Anomalies)
	}
}

func TestMismatchedHeaders(t *testing.T) {
	var z rawZip
	e := stored("a.txt", []byte("hello"))
	e.crc ^= 1 // wrong in both headers: the data disagrees
	e = z.local(e)
	c := e
	c.method = 8
	c.usize = 999
	z.cent(c)
	res := list(t, z.bytes())
	for _, code := range []string{"crc_mismatch", "header_mismatch"} {
		if !hasAnomaly(res, code) {
			t.Errorf("no %s in %v", code, res.Anomalies)
		}
	}
	m := res.Members[0]
	checkSums(t, m, sumOf([]byte("hello")))
	if m.Method != 8 { // the central directory is authoritative
		t.Errorf("%+v", m)
	}
}

func TestBadDeflate(t *testing.T) {
	var z rawZip
	junk := bytes.Repeat([]byte{0xff}, 64) // 0xff starts a block of reserved type 3
	e := z.local(rawEntry{name: "bad", method: 8, csize: uint32(len(junk)), usize: 10, data: junk})
	z.cent(e)
	g := z.local(stored("good", []byte("good")))
	z.cent(g)
	res := list(t, z.bytes())
	if len(res.Members) != 2 || res.Members[0].Hashed || !hasAnomaly(res, "bad_deflate") {
		t.Fatalf("%+v %v", res.Members, res.Anomalies)
	}
	checkSums(t, res.Members[1], sumOf([]byte("good")))
}

func TestStoredDescriptorLookalikes(t *testing.T) {
	// Stored data with a descriptor is ended by scanning; data full of signatures, and of
	// a descriptor signature followed by the right-looking fields for an earlier offset,
	// must not end it early.
	var fake bytes.Buffer
	fake.WriteString("PK\x07\x08")
	// With the signature read as data, these 12 bytes and the next signature look like a
	// descriptor without signature for 4 bytes; only the CRC-32 (0 here) tells it apart.
	fake.Write([]byte{0, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0})
	fake.WriteString("PK\x03\x04PK\x01\x02PK\x05\x06")
	fake.Write(text(200000, 6))
	data := makeZip(t, file{name: "tricky", data: fake.Bytes(), method: zip.Store},
		file{name: "next", data: []byte("n"), method: zip.Store})
	res := list(t, data)
	if len(res.Members) != 2 || len(res.Anomalies) > 0 {
		t.Fatalf("%v %v", names(res), res.Anomalies)
	}
	checkSums(t, res.Members[0], sumOf(fake.Bytes()))
}

func TestHooks(t *testing.T) {
	a, b := text(10000, 7), []byte("%PDF-1.7 ...")
	data := makeZip(t, file{name: "a.txt", data: a, method: zip.Deflate}, file{name: "b.pdf", data: b, method: zip.Store})
	got := map[string]*bytes.Buffer{}
	opts := Options{
		Sniff: func(head []byte) string {
			if bytes.HasPrefix(head, []byte("%PDF")) {
				return "application/pdf"
			}
			return "other"
		},
		Content: func(m *Member) (io.Writer, error) {
			got[m.Name] = &bytes.Buffer{}
			return got[m.Name], nil
		},
	}
	res := listWith(t, data, nil, opts)
	if res.Members[1].Type != "application/pdf" || res.Members[0].Type != "other" {
		t.Errorf("types %q %q", res.Members[0].Type, res.Members[1].Type)
	}
	if !bytes.Equal(got["a.txt"].Bytes(), a) || !bytes.Equal(got["b.pdf"].Bytes(), b) {
		t.Errorf("content hook got other bytes")
	}

	boom := errors.New("disk full")
	opts.Content = func(m *Member) (io.Writer, error) { return failWriter{boom}, nil }
	if _, err := List(bytes.NewReader(data), nil, opts); !errors.Is(err, boom) {
		t.Errorf("writer failure: %v", err)
	}
	opts.Content = func(m *Member) (io.Writer, error) { return nil, boom }
	if _, err := List(bytes.NewReader(data), nil, opts); !errors.Is(err, boom) {
		t.Errorf("hook failure: %v", err)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write(p []byte) (int, error) { return 0, f.err }

func TestReadError(t *testing.T) {
	inner := makeZip(t, file{name: "x", data: text(300000, 8), method: zip.Deflate})
	data := makeZip(t, file{name: "in.zip", data: inner, method: zip.Deflate})
	boom := errors.New("connection reset")
	for _, at := range []int64{0, 10, 100, int64(len(data) / 2), int64(len(data) - 1)} {
		r := io.MultiReader(io.LimitReader(bytes.NewReader(data), at), errReader{boom})
		res, err := List(r, nil, Options{})
		if !errors.Is(err, boom) || res == nil {
			t.Errorf("cut at %d: %v", at, err)
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read(p []byte) (int, error) { return 0, e.err }

func TestBudgetShared(t *testing.T) {
	payload := text(40000, 9)
	data := makeZip(t, file{name: "a", data: payload, method: zip.Deflate})
	b := NewBudget(100000)
	res := listWith(t, data, b, Options{})
	checkSums(t, res.Members[0], sumOf(payload))
	if b.Remaining() != 60000 {
		t.Fatalf("remaining %d", b.Remaining())
	}
	listWith(t, data, b, Options{})
	res = listWith(t, data, b, Options{}) // 20000 left: cut inside the member
	if res.Members[0].Hashed || !hasLimit(res, LimitBytes) || b.Remaining() != 0 {
		t.Errorf("%+v %v remaining %d", res.Members[0], res.LimitsHit, b.Remaining())
	}
	if res.Members[0].Size != int64(len(payload)) || res.Members[0].Name != "a" {
		t.Errorf("central directory facts lost: %+v", res.Members[0])
	}

	// A member that ends exactly where the budget does is whole.
	b = NewBudget(int64(len(payload)))
	res = listWith(t, data, b, Options{})
	checkSums(t, res.Members[0], sumOf(payload))
	if hasLimit(res, LimitBytes) {
		t.Errorf("limits %v", res.LimitsHit)
	}
}

func TestMaxMembers(t *testing.T) {
	var files []file
	for i := range 30 {
		files = append(files, file{name: strings.Repeat("f", i+1), data: []byte{byte(i)}, method: zip.Deflate})
	}
	data := makeZip(t, files...)
	res := listWith(t, data, nil, Options{MaxMembers: 10})
	if len(res.Members) != 10 || res.Unlisted != 20 || !hasLimit(res, LimitMembers) {
		t.Fatalf("%d members, %d unlisted, %v", len(res.Members), res.Unlisted, res.LimitsHit)
	}
	for i, m := range res.Members {
		checkSums(t, m, sumOf([]byte{byte(i)}))
	}
}

func TestManyMembersZip64End(t *testing.T) {
	// 70000 empty members: more than an EOCD can count, so archive/zip writes ZIP64 end
	// records, and a central directory larger than the default tail window.
	if testing.Short() {
		t.Skip("builds a 7 MB archive")
	}
	const n = 70000
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := range n {
		if _, err := zw.CreateRaw(&zip.FileHeader{Name: fmt.Sprintf("f%08d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	zw.Close()
	data := buf.Bytes()
	if !bytes.Contains(data, []byte("PK\x06\x06")) {
		t.Fatal("archive/zip wrote no zip64 end record")
	}
	for _, tail := range []int{0, 16 << 20} {
		res := listWith(t, data, nil, Options{TailBytes: tail})
		if len(res.Members) != DefaultMaxMembers || res.Unlisted != n-DefaultMaxMembers {
			t.Errorf("tail %d: %d members, %d unlisted", tail, len(res.Members), res.Unlisted)
		}
		if len(res.Anomalies) > 0 {
			t.Errorf("tail %d: anomalies %v", tail, res.Anomalies)
		}
		if m := res.Members[9999]; m.Name != "f00009999" || !m.Hashed || m.Size != 0 {
			t.Errorf("%+v", m)
		}
	}
}

func TestGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	inputs := [][]byte{
		nil,
		[]byte("PK"),
		[]byte("PK\x03\x04"),
		[]byte("not a zip at all, just text"),
		append([]byte("PK\x03\x04\x14\x00\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"), text(100, 1)...),
	}
	for range 50 {
		b := make([]byte, r.IntN(5000))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		// Sprinkle signatures so the parser gets past the first check.
		for range r.IntN(20) {
			if len(b) >= 4 {
				sigs := []string{"PK\x03\x04", "PK\x01\x02", "PK\x05\x06", "PK\x06\x06", "PK\x06\x07", "PK\x07\x08"}
				copy(b[r.IntN(len(b)-3):], sigs[r.IntN(len(sigs))])
			}
		}
		inputs = append(inputs, b)
	}
	for _, in := range inputs {
		res := list(t, in)
		if len(in) > 0 && len(res.Members) == 0 && len(res.Anomalies) == 0 {
			t.Errorf("%q: nothing to say", in[:min(len(in), 16)])
		}
	}
}

func TestHostileHeaders(t *testing.T) {
	var z rawZip
	// Name length far beyond the stream.
	z.buf.Write([]byte("PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x05\x00\x00\x00\xff\xff\x00\x00abc"))
	res := list(t, z.bytes())
	if !hasAnomaly(res, "truncated") {
		t.Errorf("%v", res.Anomalies)
	}

	// Huge declared sizes, ZIP64 ones past int64, and a central directory claiming more.
	z = rawZip{}
	big := make([]byte, 20)
	copy(big, []byte{1, 0, 16, 0})
	for i := 4; i < 20; i++ {
		big[i] = 0xff
	}
	e := z.local(rawEntry{name: "huge", csize: max32, usize: max32, extra: big, data: []byte("tiny")})
	z.cent(e)
	res = list(t, z.bytes())
	// With no usable size the stored data runs to the next record.
	if len(res.Members) != 1 || !hasAnomaly(res, "bad_zip64") || res.Members[0].CompressedSize != -1 {
		t.Errorf("%+v %v", res.Members, res.Anomalies)
	}
	checkSums(t, res.Members[0], sumOf([]byte("tiny")))

	// A 4 GiB stored member declared in a 100-byte stream.
	z = rawZip{}
	z.local(rawEntry{name: "big", csize: 0xfffffff0, usize: 0xfffffff0, data: []byte("short")})
	res = list(t, z.bytes())
	if !hasAnomaly(res, "truncated") || res.Members[0].Hashed {
		t.Errorf("%+v %v", res.Members, res.Anomalies)
	}
}

func TestTrailingAndPrependedData(t *testing.T) {
	z := makeZip(t, file{name: "a", data: []byte("a"), method: zip.Deflate})
	res := list(t, append(bytes.Clone(z), "trailing junk"...))
	if len(res.Members) != 1 || !hasAnomaly(res, "trailing_data") {
		t.Errorf("%v %v", names(res), res.Anomalies)
	}
	// A self-extracting stub before the archive: offsets are relative to the archive.
	res = list(t, append([]byte("MZ stub stub stub"), z...))
	if len(res.Members) != 1 || !res.Members[0].Hashed || !hasAnomaly(res, "garbage") || !hasAnomaly(res, "prepended_data") {
		t.Errorf("%v %v", names(res), res.Anomalies)
	}
}

func TestTruncated(t *testing.T) {
	inner := makeZip(t, file{name: "i.txt", data: text(3000, 11), method: zip.Deflate})
	files := []file{
		{name: "a.txt", data: text(2000, 12), method: zip.Deflate},
		{name: "b.bin", data: text(1500, 13), method: zip.Store},
		{name: "c.zip", data: inner, method: zip.Deflate},
		{name: "d.txt", data: text(1000, 14), method: zip.Deflate, raw: true},
		{name: "e.txt", data: text(900, 15), method: zip.Store, raw: true},
	}
	data := makeZip(t, files...)
	whole := list(t, data)
	for cut := 0; cut < len(data); cut++ {
		res := list(t, data[:cut])
		if cut > 0 && len(res.Anomalies) == 0 {
			t.Fatalf("cut at %d of %d: no anomaly", cut, len(data))
		}
		// Members whose data was all there are hashed as in the whole archive.
		for _, m := range res.Members {
			if !m.Hashed || m.Depth > 0 {
				continue
			}
			w := byName(t, whole, m.Name)
			if m.SHA256 != w.SHA256 {
				t.Fatalf("cut at %d: %s hashed differently", cut, m.Name)
			}
		}
	}
}

func TestIsZip(t *testing.T) {
	for in, want := range map[string]bool{
		"PK\x03\x04rest":       true,
		"PK\x05\x06":           true,
		"PK00PK\x03\x04":       true,
		"PK\x07\x08PK\x03\x04": true,
		"PK\x07\x08xxxx":       false,
		"PK\x01\x02":           false,
		"PK":                   false,
		"MZ\x90\x00":           false,
		"":                     false,
	} {
		if got := IsZip([]byte(in)); got != want {
			t.Errorf("IsZip(%q) = %v", in, got)
		}
	}
	empty := makeZip(t)
	res := list(t, empty)
	if !IsZip(empty) || len(res.Members) != 0 || len(res.Anomalies) != 0 {
		t.Errorf("empty archive: %v %v", names(res), res.Anomalies)
	}
}

func TestCRCOfStored(t *testing.T) {
	// Known size: the member is hashed as it is, and the mismatch reported.
	data := makeZip(t, file{name: "s", data: []byte("original"), method: zip.Store, raw: true},
		file{name: "t", data: []byte("t"), method: zip.Store})
	i := bytes.Index(data, []byte("original"))
	data[i] = 'O'
	res := list(t, data)
	if !hasAnomaly(res, "crc_mismatch") || len(res.Members) != 2 {
		t.Errorf("%v %v", names(res), res.Anomalies)
	}
	checkSums(t, res.Members[0], sumOf([]byte("Original")))
	checkSums(t, res.Members[1], sumOf([]byte("t")))

	// Stored with a data descriptor: the descriptor must match the data's CRC-32 to end it,
	// so none does; the member is not hashed, and the central directory (from the tail
	// window) still lists both members.
	data = makeZip(t, file{name: "s", data: []byte("original"), method: zip.Store},
		file{name: "t", data: []byte("t"), method: zip.Store})
	i = bytes.Index(data, []byte("original"))
	data[i] = 'O'
	res = list(t, data)
	if len(res.Members) != 2 || res.Members[0].Hashed || res.Members[1].Hashed || !hasAnomaly(res, "truncated") {
		t.Errorf("%+v %v", res.Members, res.Anomalies)
	}
	if res.Members[1].Name != "t" || res.Members[1].Size != 1 {
		t.Errorf("%+v", res.Members[1])
	}
}

// TestNegativeTailBytesIsTheDefault: TailBytes sizes a buffer; read as "no limit", a negative
// value would keep a whole archive stream in memory.
func TestNegativeTailBytesIsTheDefault(t *testing.T) {
	if got := (Options{TailBytes: -1}).withDefaults().TailBytes; got != DefaultTailBytes {
		t.Errorf("TailBytes -1 became %d, want the default %d", got, DefaultTailBytes)
	}
}
