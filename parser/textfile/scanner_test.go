package textfile

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
)

// want is an expected block: name, size and sha256 come from testdata/oracle.py or
// testdata/gen.py (see testdata/README.md), never from this package.
type want struct {
	kind, name string
	size       int64
	sha256     string
	complete   bool
	notes      []string
}

func check(t *testing.T, got []found, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("got %d blocks, want %d:\n%v", len(got), len(wants), got)
	}
	for i, w := range wants {
		g := got[i]
		sum := sha256.Sum256(g.Data)
		if g.Kind != w.kind || g.Name != w.name || g.Size != w.size || hex.EncodeToString(sum[:]) != w.sha256 ||
			g.Complete != w.complete || strings.Join(g.Anomalies, "|") != strings.Join(w.notes, "|") {
			t.Errorf("block %d:\n got %v sha256=%x\nwant %+v", i, g, sum, w)
		}
	}
}

// readExpected loads testdata/expected.tsv, written by testdata/gen.py.
func readExpected(t *testing.T) (files []string, byFile map[string][]want) {
	t.Helper()
	f, err := os.Open("testdata/expected.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	byFile = map[string][]want{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 7 {
			t.Fatalf("bad expected.tsv line %q", sc.Text())
		}
		size, err := strconv.ParseInt(c[3], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		w := want{kind: c[1], name: c[2], size: size, sha256: c[4], complete: c[5] == "true"}
		if c[6] != "" {
			w.notes = strings.Split(c[6], "|")
		}
		if byFile[c[0]] == nil {
			files = append(files, c[0])
		}
		byFile[c[0]] = append(byFile[c[0]], w)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return files, byFile
}

func TestSynthetic(t *testing.T) {
	files, byFile := readExpected(t)
	for _, name := range files {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			check(t, scanAll(t, in, Options{}), byFile[name])
		})
	}
}

// Lines longer than MaxLine inside a yEnc or begin-base64 block are decoded piece by piece,
// with the same result.
func TestOverlongDataLines(t *testing.T) {
	_, byFile := readExpected(t)
	for name, maxLine := range map[string]int{
		"yenc-single.txt":    64, // data lines are 128 characters and more
		"yenc-multipart.txt": 64,
		"yenc-mismatch.txt":  64,
		"uu-base64.txt":      32, // 60
	} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			check(t, scanAll(t, in, Options{MaxLine: maxLine}), byFile[name])
		})
	}
}

func TestYEncPartInfo(t *testing.T) {
	in, err := os.ReadFile("testdata/yenc-multipart.txt")
	if err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, in, Options{})
	// gen.py: part 2 of 3, bytes 2001..3500 of a 5000-byte file.
	if len(got) != 1 || got[0].Part != 2 || got[0].Total != 3 || got[0].Offset != 2000 || got[0].FileSize != 5000 {
		t.Errorf("got %v, want part 2/3 at offset 2000 of 5000", got)
	}
	in, err = os.ReadFile("testdata/yenc-single.txt")
	if err != nil {
		t.Fatal(err)
	}
	got = scanAll(t, in, Options{})
	if len(got) != 1 || got[0].Part != 0 || got[0].Total != 0 || got[0].Offset != 0 || got[0].FileSize != 3000 {
		t.Errorf("got %v, want single part of 3000", got)
	}
}

// The corpus messages go in whole (headers and MIME boundaries are just more text);
// testdata/oracle.py derived every expected value.
func TestCorpus(t *testing.T) {
	dir := filepath.Join(testkit.CorpusDir(t), "mail")
	gif110 := want{"uuencode", "up.gif", 110, "3714b7bf6df15c3f650e224c76228db1ea642944af4301b78ff82d32b09749d1", true, nil}
	gif4834 := want{"uuencode", "zeegee.gif", 4834, "2ecf8cdc2d1a976d54a58ff697465db8296a36ec430e68db8513445a3704f844", true, nil}
	for file, wants := range map[string][]want{
		"mimekit/yenc/simple.msg": {
			{"yenc", "testfile.txt", 584, "75e137c6aa0d2ee8e48dbb20d3fed7f3efca16158705c51ab2eaebf7c9f6e82b", true, nil},
		},
		"james-mime4j/mimetools-testmsgs/sig-uu.msg": {
			// No zero-length line before "end". GNU uudecode reads "end" as a 5-byte data
			// line here (281 bytes); Python's uu module, and this package, stop at it.
			{"uuencode", ".signature", 276, "8d13ccb71881ee1744c62952c647f751452dc8abb45bd997c613b65ce7f5d32d", true, nil},
			{"uuencode", "", 236, "025b56cc60fb9cd2f8cdcec0bf7c0dbb20f046b1b867e385e7cc0301f73475d0", true,
				[]string{"uuencode: no file name"}},
		},
		"james-mime4j/mimetools-testmsgs/uu-junk.msg":   {gif110, gif4834},
		"james-mime4j/mimetools-testmsgs/uu-zeegee.msg": {gif110, gif4834},
	} {
		t.Run(file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			check(t, scanAll(t, in, Options{}), wants)
		})
	}
}

// No other corpus message holds a block (grep '^begin [0-7]\|^=ybegin' finds only the four
// above), so the scanner must find none in them.
func TestCorpusNoFalsePositives(t *testing.T) {
	dir := testkit.CorpusDir(t)
	n := 0
	for _, path := range testkit.CorpusMessages(t, dir) {
		switch filepath.Base(path) {
		case "simple.msg", "sig-uu.msg", "uu-junk.msg", "uu-zeegee.msg":
			continue
		}
		in, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := scan(t, in, Options{}, whole); len(got) > 0 {
			t.Errorf("%s: found %v", path, got)
		}
		n++
	}
	t.Logf("%d messages without blocks", n)
}

// Line ends do not change what is found: the same text with LF, CRLF, CR and a mix.
func TestLineEndings(t *testing.T) {
	in, err := os.ReadFile("testdata/uu-backtick-lf.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := scanAll(t, in, Options{})
	lines := strings.Split(string(in), "\n")
	var mixed strings.Builder
	for i, l := range lines {
		mixed.WriteString(l)
		if i < len(lines)-1 {
			mixed.WriteString([]string{"\r\n", "\n", "\r", "\r\r\n"}[i%4])
		}
	}
	for name, text := range map[string]string{
		"crlf":  strings.ReplaceAll(string(in), "\n", "\r\n"),
		"cr":    strings.ReplaceAll(string(in), "\n", "\r"),
		"mixed": mixed.String(),
		"no final line end": strings.TrimSuffix(strings.ReplaceAll(string(in), "\n", "\r\n"),
			"\r\n"),
	} {
		got := scanAll(t, []byte(text), Options{})
		if len(got) != 1 || !sameFound(got[0], want[0]) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

// abc is "abc" uuencoded: binascii.b2a_uu(b'abc') == b'#86)C\n'.
const abc = "#86)C"

// hello is "hello world" uuencoded with backtick padding: binascii.b2a_uu(b'hello world',
// backtick=True) == b'+:&5L;&\\@=V]R;&0`\n'.
const hello = "+:&5L;&\\@=V]R;&0`"

func TestShapes(t *testing.T) {
	uu := func(name, data string, complete bool, notes ...string) want {
		sum := sha256.Sum256([]byte(data))
		return want{"uuencode", name, int64(len(data)), hex.EncodeToString(sum[:]), complete, notes}
	}
	yenc := func(name, data string, complete bool, notes ...string) want {
		w := uu(name, data, complete, notes...)
		w.kind = "yenc"
		return w
	}
	for _, tc := range []struct {
		name, in string
		want     []want
	}{
		{"plain", "begin 644 a.txt\n" + abc + "\n`\nend\n", []want{uu("a.txt", "abc", true)}},
		{"space padding", "begin 644 h\n+:&5L;&\\@=V]R;&0 \n \nend\n", []want{uu("h", "hello world", true)}},
		{"padding stripped", "begin 644 h\n+:&5L;&\\@=V]R;&0\n\nend\n", []want{uu("h", "hello world", true)}},
		{"checksum character", "begin 644 h\n" + hello + "X\n`\nend\n", []want{uu("h", "hello world", true)}},
		{"trailing garbage", "begin 644 h\n" + abc + "\n" + hello + "XYZ\n`\nend\n",
			[]want{uu("h", "abchello world", true, "uuencode: trailing garbage")}},
		{"blank line after begin", "begin 600 b\n\n" + abc + "\nend", []want{uu("b", "abc", true)}},
		{"tab and spaces", "begin\t0644  two words.txt \t\n" + abc + "\n`\nend \n", []want{uu("two words.txt", "abc", true)}},
		{"no name", "begin 644\n" + abc + "\nend\n", []want{uu("", "abc", true, "uuencode: no file name")}},
		{"bad line ends the block", "begin 644 a\n" + abc + "\nthat was it\nbegin 644 b\n" + hello + "\n`\nend\n",
			[]want{uu("a", "abc", false, "uuencode: bad line"), uu("b", "hello world", true)}},
		{"no end line", "begin 644 a\n" + abc + "\n`\nBye now\n", []want{uu("a", "abc", false, "uuencode: no end line")}},
		{"text ends", "begin 644 a\n" + abc, []want{uu("a", "abc", false, "uuencode: text ended inside the block")}},
		{"begin inside block", "begin 644 a\n" + abc + "\nbegin 644 b\n" + abc + "\nend\n",
			[]want{uu("a", "abc", false, "uuencode: bad line"), uu("b", "abc", true)}},
		{"empty file", "begin 644 e\n`\nend\n", []want{uu("e", "", true)}},
		// yEnc by hand: 'a'+42 = 0x8b, NUL+42 = '*', '='-42 = 0x13 escapes to "=S"
		// (0x13+42 = '=', then +64 = 'S' per the spec).
		{"yenc escapes", "=ybegin line=128 size=3 name=y.bin\n\x8b*=}\n=yend size=3\n",
			[]want{yenc("y.bin", "a\x00\x13", true)}},
		{"yenc name with spaces", "=ybegin size=1 line=128 name= my file .txt  \r\n\x8b\r\n=yend size=1\r\n",
			[]want{yenc("my file .txt", "a", true)}},
		{"yenc no end", "=ybegin line=128 size=1 name=y\n\x8b\n", []want{yenc("y", "a", false, "yenc: text ended inside the block")}},
		{"yenc new begin", "=ybegin size=1 name=y\n\x8b\n=ybegin size=1 name=z\n\x8b\n=yend\n",
			[]want{yenc("y", "a", false, "yenc: no =yend"), yenc("z", "a", true)}},
		{"yenc escape at line end", "=ybegin size=1 name=y\n\x8b=\n=yend size=1\n",
			[]want{yenc("y", "a", true, "yenc: escape at end of line")}},
		{"yenc unknown keyword", "=ybegin size=1 name=y\n=yfoo bar\n\x8b\n=yend size=1\n",
			[]want{yenc("y", "a", true, "yenc: unknown keyword line")}},
		{"yenc bad numbers", "=ybegin size=x part=0 total=-1 name=y\n\x8b\n=yend size=2 crc32=zz\n",
			[]want{yenc("y", "a", true, "yenc: bad size", "yenc: bad part", "yenc: bad total",
				"yenc: size mismatch", "yenc: bad crc32")}},
		{"yenc part without ypart", "=ybegin part=1 total=2 size=9 name=y\n\x8b\n=yend size=1 part=1\n",
			[]want{yenc("y", "a", true, "yenc: no =ypart line")}},
		// crc32 of "a" is e8b7be43 (python3 -c 'import zlib; print(hex(zlib.crc32(b"a")))').
		{"yenc crc ok", "=ybegin size=1 name=y\n\x8b\n=yend size=1 crc32=E8B7BE43\n", []want{yenc("y", "a", true)}},
		{"yenc pcrc wrong", "=ybegin part=1 size=2 name=y\n=ypart begin=1 end=1\n\x8b\n=yend size=1 part=1 pcrc32=e8b7be44 crc32=0\n",
			[]want{yenc("y", "a", true, "yenc: pcrc32 mismatch")}},
		{"yenc part size", "=ybegin part=1 size=9 name=y\n=ypart begin=1 end=5\n\x8b\n=yend size=1 part=1\n",
			[]want{yenc("y", "a", true, "yenc: part size mismatch")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			check(t, scanAll(t, []byte(tc.in), Options{}), tc.want)
		})
	}
}

func TestNotABlock(t *testing.T) {
	for _, in := range []string{
		"begin 644 the meeting at noon\nMake sure everyone has the agenda.\n",
		"begin 644 file.txt\n\nThanks\n",
		"begin 644 x\nM" + strings.Repeat("a", 60) + "\n",
		"begin 644 x\nOK\n`\nend\n",                                      // too short for 'O'
		"begin 644 x\nM" + strings.Repeat("A", 70) + "\n`\nend\n",        // too long for 'M'
		"begin 64 x\n" + abc + "\nend\n",                                 // two mode digits
		"begin 64444 x\n" + abc + "\nend\n",                              // five
		"begin 648 x\n" + abc + "\nend\n",                                // not octal
		"begin644 x\n" + abc + "\nend\n",                                 // no blank
		"begin 644x\n" + abc + "\nend\n",                                 //
		"Begin 644 x\n" + abc + "\nend\n",                                // capital
		" begin 644 x\n" + abc + "\nend\n",                               // indented
		"beginning 644 x\n" + abc + "\nend\n",                            //
		"begin 644 x",                                                    // text ends
		"begin 644 x\n",                                                  //
		"begin 644 x\n`X\nend\n",                                         // zero line with more
		"=ybegin line=128 size=1\n\x8b\n=yend\n",                         // no name
		"=ybeginx name=a\n\x8b\n=yend\n",                                 //
		"begin-base64 644 x\nHello world\n====\n",                        //
		"begin-base64 644 x\nHi==x\n====\n",                              //
		"begin 644 " + strings.Repeat("n", 100) + "\n" + abc + "\nend\n", // over MaxLine below
	} {
		if got := scanAll(t, []byte(in), Options{MaxLine: 64}); len(got) > 0 {
			t.Errorf("%q: found %v", in, got)
		}
	}
}

func TestMaxBlocks(t *testing.T) {
	in := strings.Repeat("begin 644 a\n"+abc+"\nend\n=ybegin name=y\n\x8b\n=yend\n", 3)
	for _, tc := range []struct{ max, found, dropped int }{{0, 6, 0}, {2, 2, 4}, {-1, 6, 0}, {5, 5, 1}} {
		got, s := scan(t, []byte(in), Options{MaxBlocks: tc.max}, whole)
		if len(got) != tc.found || s.Dropped() != tc.dropped {
			t.Errorf("MaxBlocks %d: found %d, dropped %d; want %d, %d", tc.max, len(got), s.Dropped(), tc.found, tc.dropped)
		}
	}
}

// A text with no line ends keeps at most MaxLine bytes, and a long line is not a header.
func TestLongLineMemory(t *testing.T) {
	r := &recorder{t: t}
	s := NewScanner(r, Options{MaxLine: 1000})
	chunk := bytes.Repeat([]byte("begin 644 x "), 1000)
	for range 100 {
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
		if cap(s.line) > 2000 {
			t.Fatalf("line buffer grew to %d", cap(s.line))
		}
	}
	if _, err := s.Write([]byte("\n" + abc + "\nend\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(r.blocks) != 0 {
		t.Errorf("found %v", r.blocks)
	}
}

type failWriter struct{ err error }

func (f failWriter) Write([]byte) (int, error) { return 0, f.err }

type failHandler struct {
	recorder
	err error
}

func (f *failHandler) Begin(kind, name string) io.Writer {
	f.recorder.Begin(kind, name)
	return failWriter{f.err}
}

func (f *failHandler) End(b Block) {
	f.recorder.buf.Reset() // the writer took nothing
	f.recorder.End(Block{Kind: b.Kind, Name: b.Name, Complete: b.Complete})
}

func TestWriterError(t *testing.T) {
	disk := errors.New("disk full")
	h := &failHandler{recorder: recorder{t: t}, err: disk}
	s := NewScanner(h, Options{})
	if _, err := s.Write([]byte("begin 644 a\n" + abc + "\n")); !errors.Is(err, disk) {
		t.Fatalf("Write: %v, want %v", err, disk)
	}
	if _, err := s.Write([]byte("`\nend\n")); !errors.Is(err, disk) {
		t.Errorf("second Write: %v, want the same error", err)
	}
	if err := s.Close(); !errors.Is(err, disk) {
		t.Errorf("Close: %v, want the same error", err)
	}
	if len(h.blocks) != 1 || h.blocks[0].Complete || h.buf != nil {
		t.Errorf("blocks %v, want one ended incomplete", h.blocks)
	}
}

type nilHandler struct{ ends []Block }

func (*nilHandler) Begin(string, string) io.Writer { return nil }
func (h *nilHandler) End(b Block)                  { h.ends = append(h.ends, b) }

func TestNilWriter(t *testing.T) {
	h := &nilHandler{}
	s := NewScanner(h, Options{})
	if _, err := s.Write([]byte("begin 644 a\n" + hello + "\n`\nend\n")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if len(h.ends) != 1 || h.ends[0].Size != 11 || !h.ends[0].Complete {
		t.Errorf("got %+v", h.ends)
	}
}

func TestWriteAfterClose(t *testing.T) {
	s := NewScanner(&nilHandler{}, Options{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
}
