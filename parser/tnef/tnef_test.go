package tnef

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// TestMulti decodes testdata/multi.tnef, written by testdata/gen.py. The expected sizes and
// hashes are those of the files the Debian tnef tool extracted from it (README.md).
func TestMulti(t *testing.T) {
	in, err := os.ReadFile("testdata/multi.tnef")
	if err != nil {
		t.Fatal(err)
	}
	res, h := decodeHash(t, in, Options{})
	checkInvariants(t, res, Options{})
	if res.MessageClass != "IPM.Note" {
		t.Errorf("MessageClass %q", res.MessageClass)
	}
	if len(res.Anomalies) != 0 || len(res.LimitsHit) != 0 {
		t.Errorf("anomalies %v, limits %v", res.Anomalies, res.LimitsHit)
	}
	want := []File{
		{Index: 0, Parent: -1, Title: "отчёт.txt", LongFilename: "отчёт 2024.txt", MIMEType: "text/plain",
			ContentID: "part1@example", Method: 1, Size: 12,
			Data: "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447"},
		{Index: 1, Parent: -1, Title: "DATA.BIN", LongFilename: "data file.bin", Method: 1, Size: 1001,
			Data: "90329d7ece063ce33f103289803ca129a3584b7c505d0ac375fef62964934b2e"},
		{Index: 2, Parent: -1, Title: "Fwd: inner", DisplayName: "inner subject", Method: 5, Size: 477,
			Embedded: true, MessageClass: "IPM.Note"},
		{Index: 3, Parent: 2, Title: "inner.pdf", MIMEType: "application/pdf", Method: 1, Size: 309,
			Data: "86b8439ff1f26b6a9e200d55a14d9d4217f8a39ae33bad40dd0eec18e9fb3248"},
		{Index: 4, Parent: -1, Title: "ole.doc", Method: 6, Size: 64,
			Data: "386c84f9a0ab5d3d813bf2a33284b397f2987910ff37238662edf431dbe1c80f"},
	}
	if len(res.Files) != len(want) {
		t.Fatalf("%d files: %+v", len(res.Files), res.Files)
	}
	for i := range want {
		if res.Files[i] != want[i] {
			t.Errorf("file %d:\n got %+v\nwant %+v", i, res.Files[i], want[i])
		}
	}
	if h.calls != 4 {
		t.Errorf("%d onData calls, want 4 (none for the decoded message)", h.calls)
	}
	if got := res.Files[0].Name(); got != "отчёт 2024.txt" {
		t.Errorf("Name %q", got)
	}
	if got := res.Files[2].Name(); got != "Fwd: inner" {
		t.Errorf("Name %q", got)
	}
}

func TestBadChecksumKeepsData(t *testing.T) {
	in, err := os.ReadFile("testdata/badsum.tnef")
	if err != nil {
		t.Fatal(err)
	}
	res, _ := decodeHash(t, in, Options{})
	if got := codes(res); len(got) != 1 || got[0] != AnomalyBadChecksum {
		t.Fatalf("anomalies %v", res.Anomalies)
	}
	// sha256sum of "checksum is wrong\n".
	if len(res.Files) != 1 || res.Files[0].Size != 18 ||
		res.Files[0].Data != "da00ac4c67afbda76a1ce276807a03017ec9cef2ed41fa47edb308773c2c7851" {
		t.Fatalf("files %+v", res.Files)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		f    File
		want string
	}{
		{File{LongFilename: "a", Title: "b", Filename: "c", DisplayName: "d"}, "a"},
		{File{Title: "b", Filename: "c", DisplayName: "d"}, "b"},
		{File{Filename: "c", DisplayName: "d"}, "c"},
		{File{DisplayName: "d"}, "d"},
		{File{}, ""},
	} {
		if got := tc.f.Name(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
}

func TestCodepages(t *testing.T) {
	for _, tc := range []struct {
		cp    uint32
		title []byte
		want  string
	}{
		{1252, []byte("caf\xe9.txt\x00"), "café.txt"},
		{1251, []byte("\xf4\xe0\xe9\xeb.doc\x00\x00"), "файл.doc"},
		{65001, []byte("caf\xc3\xa9\xff.txt\x00"), "café\uFFFD.txt"},
		{932, []byte("\x83e\x83X\x83g.txt\x00"), "テスト.txt"},
		{999999, []byte("caf\xe9.txt"), "café.txt"}, // unknown: Windows-1252
	} {
		in := stream(append(header("IPM.Note", tc.cp), fileAttrs(string(tc.title), []byte("x"))...)...)
		res, _ := decodeHash(t, in, Options{})
		if len(res.Files) != 1 || res.Files[0].Title != tc.want {
			t.Errorf("cp %d: %+v, want title %q", tc.cp, res.Files, tc.want)
		}
	}
}

func TestMessagePropsClass(t *testing.T) {
	// PR_MESSAGE_CLASS counts only when attMessageClass is absent, whichever comes first.
	mp := attr(1, tMsgProps, props(prop(0x001F, 0x001A, vals(utf16z("IPM.Props")))))
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{stream(mp), "IPM.Props"},
		{stream(mp, attr(1, tClass, []byte("IPM.Attr\x00"))), "IPM.Attr"},
		{stream(attr(1, tClass, []byte("IPM.Attr\x00")), mp), "IPM.Attr"},
	} {
		res, _ := decodeHash(t, tc.in, Options{})
		if res.MessageClass != tc.want {
			t.Errorf("class %q, want %q", res.MessageClass, tc.want)
		}
	}
}

func TestDataPlacement(t *testing.T) {
	bin := func(b []byte) []byte {
		return attr(2, tAttachment, props(prop(0x0102, 0x3701, vals(b))))
	}
	rend := attr(2, tRendData, make([]byte, 14))
	for _, tc := range []struct {
		name  string
		attrs [][]byte
		size  int64
		data  string
		codes []string
	}{
		{"data only", [][]byte{rend, attr(2, tData, []byte("abc"))}, 3, "abc", nil},
		{"bin only", [][]byte{rend, bin([]byte("abcde"))}, 5, "abcde", nil},
		{"empty data then bin", [][]byte{rend, attr(2, tData, nil), bin([]byte("abcde"))}, 5, "abcde", nil},
		{"bin then empty data", [][]byte{rend, bin([]byte("abcde")), attr(2, tData, nil)}, 5, "abcde", nil},
		{"both", [][]byte{rend, attr(2, tData, []byte("abc")), bin([]byte("zzzzz"))}, 3, "abc",
			[]string{AnomalyDuplicateData}},
		{"neither", [][]byte{rend, attr(2, tTitle, []byte("t\x00"))}, 0, "", nil},
		{"no rend data", [][]byte{attr(2, tData, []byte("abc"))}, 3, "abc",
			[]string{AnomalyMissingRendData}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, h := decodeHash(t, stream(tc.attrs...), Options{})
			if len(res.Files) != 1 || h.calls != 1 {
				t.Fatalf("files %+v, %d calls", res.Files, h.calls)
			}
			f := res.Files[0]
			if f.Size != tc.size || f.Data != sha([]byte(tc.data)) {
				t.Errorf("file %+v, want size %d of %q", f, tc.size, tc.data)
			}
			if got := codes(res); strings.Join(got, ",") != strings.Join(tc.codes, ",") {
				t.Errorf("anomalies %v, want %v", res.Anomalies, tc.codes)
			}
		})
	}
}

// TestPartialRead: bytes onData leaves are skipped, and the next file still decodes.
func TestPartialRead(t *testing.T) {
	a := bytes.Repeat([]byte("A"), 100000)
	in := stream(append(fileAttrs("a", a), fileAttrs("b", []byte("bee"))...)...)
	var got []string
	res, err := Decode(bytes.NewReader(in), Options{}, func(r io.Reader) (any, error) {
		b := make([]byte, 3)
		n, _ := io.ReadFull(r, b)
		got = append(got, string(b[:n]))
		return n, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Files) != 2 || res.Files[0].Size != 100000 || res.Files[1].Size != 3 ||
		strings.Join(got, ",") != "AAA,bee" || len(res.Anomalies) != 0 {
		t.Fatalf("files %+v, read %q, anomalies %v", res.Files, got, res.Anomalies)
	}
}

func TestReaderExpires(t *testing.T) {
	in := stream(fileAttrs("a", []byte("abc"))...)
	var kept io.Reader
	_, err := Decode(bytes.NewReader(in), Options{}, func(r io.Reader) (any, error) {
		kept = r
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kept.Read(make([]byte, 1)); !errors.Is(err, errExpired) {
		t.Fatalf("read after return: %v", err)
	}
}

func TestNilOnData(t *testing.T) {
	in := stream(append(header("IPM.Note", 1252), fileAttrs("a", []byte("abc"))...)...)
	res, err := Decode(bytes.NewReader(in), Options{}, nil)
	if err != nil || len(res.Files) != 1 || res.Files[0].Size != 3 || res.Files[0].Data != nil {
		t.Fatalf("%v %+v", err, res)
	}
}

func TestOnDataError(t *testing.T) {
	boom := errors.New("boom")
	in := stream(append(fileAttrs("a", []byte("abc")), fileAttrs("b", []byte("def"))...)...)
	calls := 0
	res, err := Decode(bytes.NewReader(in), Options{}, func(r io.Reader) (any, error) {
		calls++
		return nil, boom
	})
	if !errors.Is(err, boom) || calls != 1 || res == nil || len(res.Files) != 1 {
		t.Fatalf("err %v, %d calls, %+v", err, calls, res)
	}

	// The empty reader given to a file without bytes at the end of the stream, too.
	in = stream(attr(2, tRendData, nil), attr(2, tTitle, []byte("nodata\x00")))
	calls = 0
	res, err = Decode(bytes.NewReader(in), Options{}, func(r io.Reader) (any, error) {
		calls++
		return nil, boom
	})
	if !errors.Is(err, boom) || calls != 1 || res == nil || len(res.Files) != 1 {
		t.Fatalf("no data: err %v, %d calls, %+v", err, calls, res)
	}
}

func TestReaderError(t *testing.T) {
	boom := errors.New("disk on fire")
	in := stream(fileAttrs("a", bytes.Repeat([]byte("x"), 5000))...)
	for _, cut := range []int{3, 20, 40, 1000} {
		r := io.MultiReader(bytes.NewReader(in[:cut]), iotest.ErrReader(boom))
		res, err := Decode(r, Options{}, (&hashData{}).fn)
		if !errors.Is(err, boom) || res == nil {
			t.Errorf("cut %d: err %v", cut, err)
		}
	}
	// An onData that swallows the read error does not hide it.
	r := io.MultiReader(bytes.NewReader(in[:1000]), iotest.ErrReader(boom))
	_, err := Decode(r, Options{}, func(r io.Reader) (any, error) {
		_, _ = io.Copy(io.Discard, r)
		return nil, nil
	})
	if !errors.Is(err, boom) {
		t.Errorf("swallowed: err %v", err)
	}
}

// TestChunking: how the reader splits the stream does not change the result.
func TestChunking(t *testing.T) {
	in, err := os.ReadFile("testdata/multi.tnef")
	if err != nil {
		t.Fatal(err)
	}
	whole, _ := decodeHash(t, in, Options{})
	for _, r := range []io.Reader{
		iotest.OneByteReader(bytes.NewReader(in)),
		iotest.DataErrReader(bytes.NewReader(in)),
		iotest.HalfReader(bytes.NewReader(in)),
	} {
		res, err := Decode(r, Options{}, (&hashData{}).fn)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Files) != len(whole.Files) {
			t.Fatalf("%d files, want %d", len(res.Files), len(whole.Files))
		}
		for i := range res.Files {
			if res.Files[i] != whole.Files[i] {
				t.Errorf("file %d: %+v, want %+v", i, res.Files[i], whole.Files[i])
			}
		}
	}
}

func TestBadSignature(t *testing.T) {
	for _, in := range [][]byte{
		[]byte("PK\x03\x04 not tnef at all"),
		stream(fileAttrs("a", []byte("abc"))...)[1:],
	} {
		res, h := decodeHash(t, in, Options{})
		if got := codes(res); len(got) != 1 || got[0] != AnomalyBadSignature || len(res.Files) != 0 || h.calls != 0 {
			t.Errorf("%+v", res)
		}
	}
}

func TestBadLevel(t *testing.T) {
	in := stream(attr(7, tClass, []byte("IPM.Note\x00")))
	res, _ := decodeHash(t, in, Options{})
	if got := codes(res); len(got) != 1 || got[0] != AnomalyBadLevel || res.MessageClass != "IPM.Note" {
		t.Errorf("%+v", res)
	}
}

// TestHugeLengths: lengths far past the input cost neither memory nor time.
func TestHugeLengths(t *testing.T) {
	big := func(level byte, id uint32, data []byte) []byte {
		return cat([]byte{level}, le32(id), le32(0xFFFFFFF0), data)
	}
	for _, tc := range []struct {
		name string
		in   []byte
		code string
	}{
		{"title", stream(attr(2, tRendData, nil), big(2, tTitle, []byte("abc"))), AnomalyTruncated},
		{"data", stream(attr(2, tRendData, nil), big(2, tData, []byte("abc"))), AnomalyTruncated},
		{"props", stream(attr(2, tRendData, nil), big(2, tAttachment, le32(0xFFFFFFFF))), AnomalyTruncated},
		{"value", stream(attr(2, tRendData, nil), attr(2, tAttachment, cat(le32(1), le16(0x0102), le16(0x3701), le32(1), le32(0xFFFFFFFF), []byte("abc")))), AnomalyBadProperty},
		{"count", stream(attr(2, tRendData, nil), attr(2, tAttachment, cat(le32(1), le16(0x1003), le16(0x6000), le32(0xFFFFFFFF)))), AnomalyBadProperty},
		{"name", stream(attr(2, tRendData, nil), attr(2, tAttachment, cat(le32(1), le16(0x0003), le16(0x8000), make([]byte, 16), le32(1), le32(0xFFFFFFFF)))), AnomalyBadProperty},
		{"name kind", stream(attr(2, tRendData, nil), attr(2, tAttachment, cat(le32(1), le16(0x0003), le16(0x8000), make([]byte, 16), le32(9)))), AnomalyBadProperty},
		{"type", stream(attr(2, tRendData, nil), attr(2, tAttachment, cat(le32(1), le16(0x0001), le16(0x3707), le32(0)))), AnomalyBadProperty},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			res, _ := decodeHash(t, tc.in, Options{})
			checkInvariants(t, res, Options{})
			if !hasCode(res, tc.code) {
				t.Errorf("anomalies %v, want %s", res.Anomalies, tc.code)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	three := stream(append(append(fileAttrs("a", []byte("1")), fileAttrs("b", []byte("2"))...), fileAttrs("c", []byte("3"))...)...)

	t.Run("size exact", func(t *testing.T) {
		res, _ := decodeHash(t, three, Options{MaxBytes: int64(len(three))})
		if len(res.Files) != 3 || len(res.LimitsHit) != 0 || len(res.Anomalies) != 0 {
			t.Errorf("%+v", res)
		}
	})
	t.Run("size short", func(t *testing.T) {
		res, _ := decodeHash(t, three, Options{MaxBytes: int64(len(three) - 1)})
		if len(res.Files) != 3 || !hasLimit(res, LimitSize) || hasCode(res, AnomalyTruncated) {
			t.Errorf("%+v", res)
		}
	})
	t.Run("size stops reading", func(t *testing.T) {
		r := &countingReader{r: bytes.NewReader(three)}
		res, _ := Decode(r, Options{MaxBytes: 40}, nil)
		if !hasLimit(res, LimitSize) || r.n > 41 {
			t.Errorf("read %d bytes, %+v", r.n, res)
		}
	})
	t.Run("files", func(t *testing.T) {
		res, h := decodeHash(t, three, Options{MaxFiles: 2})
		if len(res.Files) != 2 || h.calls != 2 || !hasLimit(res, LimitFiles) {
			t.Errorf("%+v", res)
		}
	})
	t.Run("attributes", func(t *testing.T) {
		res, _ := decodeHash(t, three, Options{MaxAttributes: 4})
		if len(res.Files) != 2 || !hasLimit(res, LimitAttributes) {
			t.Errorf("%+v", res)
		}
	})
	t.Run("unlimited", func(t *testing.T) {
		res, _ := decodeHash(t, three, Options{MaxBytes: -1, MaxFiles: -1, MaxAttributes: -1})
		if len(res.Files) != 3 || len(res.LimitsHit) != 0 {
			t.Errorf("%+v", res)
		}
	})
	t.Run("prop bytes", func(t *testing.T) {
		long := strings.Repeat("n", 100)
		in := stream(append(fileAttrs(long, []byte("x")),
			attr(2, tAttachment, props(prop(0x001E, 0x3707, vals([]byte(long+"\x00"))),
				prop(0x001E, 0x370E, vals([]byte("text/plain\x00"))))))...)
		res, _ := decodeHash(t, in, Options{MaxPropBytes: 50})
		f := res.Files[0]
		if f.Title != "" || f.LongFilename != "" || f.MIMEType != "text/plain" || f.Size != 1 ||
			!hasCode(res, AnomalyAttributeTooLarge) || !hasCode(res, AnomalyPropertyTooLarge) {
			t.Errorf("%+v", res)
		}
	})
	t.Run("anomalies", func(t *testing.T) {
		var attrs [][]byte
		for range 200 {
			attrs = append(attrs, attr(9, 0x00010001, nil))
		}
		res, _ := decodeHash(t, stream(attrs...), Options{})
		if len(res.Anomalies) != maxAnomalies || !hasLimit(res, LimitAnomalies) {
			t.Errorf("%d anomalies, limits %v", len(res.Anomalies), res.LimitsHit)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// nest wraps payload in depth attached messages.
func nest(depth int, payload []byte) []byte {
	in := stream(append(header("IPM.Note", 1252), fileAttrs("leaf.txt", payload)...)...)
	for range depth {
		in = stream(append(header("IPM.Note", 1252), attr(2, tRendData, nil), embedded(in))...)
	}
	return in
}

func TestEmbeddedDepth(t *testing.T) {
	in := nest(3, []byte("leaf"))
	res, h := decodeHash(t, in, Options{})
	// Three messages, each inside the one before, then the leaf file.
	if len(res.Files) != 4 || h.calls != 1 || len(res.LimitsHit) != 0 {
		t.Fatalf("%+v", res)
	}
	for i, f := range res.Files {
		if f.Parent != i-1 || f.Embedded != (i < 3) {
			t.Errorf("file %d: %+v", i, f)
		}
	}
	if leaf := res.Files[3]; leaf.Title != "leaf.txt" || leaf.Data != sha([]byte("leaf")) {
		t.Errorf("leaf %+v", leaf)
	}

	// With MaxDepth 1 the second message is not opened: its stream goes to onData.
	res, h = decodeHash(t, in, Options{MaxDepth: 1})
	if len(res.Files) != 2 || h.calls != 1 || !hasLimit(res, LimitDepth) {
		t.Fatalf("%+v", res)
	}
	second := nest(1, []byte("leaf"))
	if f := res.Files[1]; !f.Embedded || f.Parent != 0 || f.Size != int64(len(second)) || f.Data != sha(second) {
		t.Errorf("second %+v, want the %d-byte stream", f, len(second))
	}

	// A negative MaxDepth opens none.
	res, _ = decodeHash(t, in, Options{MaxDepth: -1})
	if len(res.Files) != 1 || !res.Files[0].Embedded || !hasLimit(res, LimitDepth) {
		t.Fatalf("%+v", res)
	}
}

func TestEmbeddedNotTNEF(t *testing.T) {
	in := stream(attr(2, tRendData, nil), embedded([]byte("From: x\r\n\r\nbody")))
	res, h := decodeHash(t, in, Options{})
	if len(res.Files) != 1 || h.calls != 1 || !hasCode(res, AnomalyBadEmbedded) ||
		res.Files[0].Data != sha([]byte("From: x\r\n\r\nbody")) || !res.Files[0].Embedded {
		t.Fatalf("%+v", res)
	}
}

// TestEmbeddedCut: an attached message whose stream ends inside an attribute is reported,
// and the outer stream goes on.
func TestEmbeddedCut(t *testing.T) {
	inner := nest(0, []byte("leafdata"))
	in := stream(attr(2, tRendData, nil), embedded(inner[:len(inner)-5]), attr(2, tRendData, nil), attr(2, tData, []byte("after")))
	res, _ := decodeHash(t, in, Options{})
	if len(res.Files) != 3 || !hasCode(res, AnomalyTruncated) || res.Files[2].Data != sha([]byte("after")) {
		t.Fatalf("%+v", res)
	}
	if !res.Files[1].Truncated {
		t.Errorf("leaf not marked truncated: %+v", res.Files[1])
	}
}

// TestGarbage: random bytes, with and without a valid start, never fail and end quickly.
func TestGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	for i := range 2000 {
		b := make([]byte, rng.IntN(4096))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 0 && len(b) >= 6 {
			copy(b, stream())
		}
		if i%4 == 0 && len(b) >= 15 {
			// A plausible attribute header with a small length.
			b[6] = 2
			copy(b[7:], le32(tAttachment))
			copy(b[11:], le32(uint32(rng.IntN(len(b)))))
		}
		for _, lim := range []Options{{}, {MaxPropBytes: 8, MaxFiles: 2, MaxDepth: 1, MaxAttributes: 5}} {
			res, _ := decodeHash(t, b, lim)
			checkInvariants(t, res, lim)
		}
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %v", d)
	}
}

func TestChecksum(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 7, 8, 9, 1023, 1024, 1025, 70000} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		var want uint16
		for _, c := range b {
			want += uint16(c)
		}
		if got := uint16(checksum(b)); got != want {
			t.Errorf("n=%d: %#x, want %#x", n, got, want)
		}
	}
	all := bytes.Repeat([]byte{0xFF}, 1<<20)
	if got, want := uint16(checksum(all)), uint16((255*(1<<20))%65536); got != want {
		t.Errorf("all 0xFF: %#x, want %#x", got, want)
	}
}
