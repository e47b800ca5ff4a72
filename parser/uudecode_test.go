package parser

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// uuencodeForTest writes data as a uuencode block with LF line ends, zero as a backquote.
func uuencodeForTest(data []byte) string {
	enc := func(v byte) byte {
		if v == 0 {
			return '`'
		}
		return v + 32
	}
	var b strings.Builder
	b.WriteString("begin 644 f.bin\n")
	for len(data) > 0 {
		n := min(len(data), 45)
		b.WriteByte(enc(byte(n)))
		for i := 0; i < n; i += 3 {
			var t [3]byte
			copy(t[:], data[i:n])
			b.Write([]byte{enc(t[0] >> 2), enc((t[0]<<4 | t[1]>>4) & 0x3f), enc((t[1]<<2 | t[2]>>6) & 0x3f), enc(t[2] & 0x3f)})
		}
		b.WriteByte('\n')
		data = data[n:]
	}
	b.WriteString("`\nend\n")
	return b.String()
}

func TestUUDecode(t *testing.T) {
	payload := make([]byte, 100_000)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	big := uuencodeForTest(payload)
	// abc is "abc" uuencoded: binascii.b2a_uu(b'abc') == b'#86)C\n'.
	const abc = "#86)C"

	tests := []struct {
		name, in, want string
		repairs        int64
	}{
		{"large, LF", big, string(payload), 0},
		{"large, CRLF", strings.ReplaceAll(big, "\n", "\r\n"), string(payload), 0},
		{"text before begin is skipped", "Here it is:\r\n\r\nbegin 644 a\r\n" + abc + "\r\n`\r\nend\r\n", "abc", 0},
		{"missing begin", abc + "\n" + abc + "\n`\nend\n", "abcabc", 0},
		{"missing begin and end", abc + "\n" + abc + "\n", "abcabc", 0},
		{"no zero-length line", "begin 644 a\n" + abc + "\nend\n", "abc", 0},
		{"garbage line skipped", "begin 644 a\n" + abc + "\nthis is no uuencode\n" + abc + "\n`\nend\n", "abcabc", 19},
		{"cut mid-line", "begin 644 a\n" + abc + "\n" + abc[:3], "abc" + "a`\x00", 0}, // the missing characters read as zeros
		{"text after end is skipped", "begin 644 a\n" + abc + "\n`\nend\r\n\r\n-- \r\nsig\r\n", "abc", 6},
		{"overlong line skipped", "begin 644 a\n" + strings.Repeat("M", 1000) + "\n" + abc + "\nend\n", "abc", 1000},
		{"no uuencode at all", "SGVsbG8=\n", "", 8},
		{"empty", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkDecoding(t, func(r io.Reader) decoder { return newUUReader(r, nil) }, tc.in, tc.want, tc.repairs)
		})
	}
}

// A line of one length character announces 45 bytes from 2 bytes of input, so output could
// outgrow input twentyfold; the reader must keep its output buffer to its size regardless.
func TestUUDecodeOutputIsBounded(t *testing.T) {
	in := "begin 644 z\n" + strings.Repeat("M\n", 100_000) + "end\n"
	var bufs byteCache
	d := newUUReader(strings.NewReader(in), &bufs)
	n, err := io.Copy(io.Discard, d)
	if err != nil {
		t.Fatal(err)
	}
	if n != 45*100_000 {
		t.Errorf("decoded %d bytes, want %d", n, 45*100_000)
	}
	if cap(d.out) != uuChunk || cap(d.line) != uuMaxLine {
		t.Errorf("buffers grew: out %d, line %d", cap(d.out), cap(d.line))
	}
	d.release()
	if len(bufs.free) != 3 {
		t.Errorf("release gave back %d buffers, want 3", len(bufs.free))
	}
}

func TestNewDecoderKnowsUUEncode(t *testing.T) {
	for _, enc := range []string{"x-uuencode", "x-uue", "uuencode", "uue"} {
		d, known := newDecoder(enc, strings.NewReader("begin 644 a\n#86)C\nend\n"), nil)
		if !known {
			t.Errorf("%s: not known", enc)
			continue
		}
		got, _ := io.ReadAll(d)
		if !bytes.Equal(got, []byte("abc")) {
			t.Errorf("%s: decoded %q", enc, got)
		}
	}
}

// chunkReader returns at most n bytes a Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// FuzzUUDecode: where the reads split the body does not matter, and no more comes out than
// lines can announce.
func FuzzUUDecode(f *testing.F) {
	f.Add([]byte("text\nbegin 644 a\n#86)C\nM\n\r\n`\nend\nmore"), uint8(3))
	f.Add([]byte("#86)C\n#86)C"), uint8(0))
	f.Add([]byte(uuencodeForTest(bytes.Repeat([]byte{0xff, 0, 7}, 40))), uint8(10))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		want, wantBad := decodeAll(t, newUUReader(bytes.NewReader(data), nil))
		// A line of one length character and its LF announce at most 63 bytes.
		if len(want) > 32*len(data) {
			t.Fatalf("%d bytes out of %d in", len(want), len(data))
		}
		var bufs byteCache
		d := newUUReader(chunkReader{bytes.NewReader(data), 1 + int(chunk)}, &bufs)
		got, gotBad := decodeAll(t, d)
		d.release()
		if got != want || gotBad != wantBad {
			t.Fatalf("reads of %d: %d bytes/%d repairs, whole: %d/%d", 1+int(chunk), len(got), gotBad, len(want), wantBad)
		}
	})
}

// An x-uuencode part whose header names no file is listed under its begin line's name; one
// whose header names it keeps that name.
func TestUUEncodeAttachmentName(t *testing.T) {
	body := uuencodeForTest([]byte("%PDF-1.4 fake"))
	msg := crlf(`From: a@example.org
To: b@example.org
Subject: files
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/octet-stream
Content-Transfer-Encoding: x-uuencode

` + body + `
--b
Content-Type: application/pdf; name=header.pdf
Content-Transfer-Encoding: x-uue

` + body + `
--b--
`)
	rec := parseString(t, Options{}, msg)
	var names []string
	for _, a := range rec.Attachments {
		names = append(names, a.Filename)
		if a.SHA256 != sha256Hex([]byte("%PDF-1.4 fake")) {
			t.Errorf("%s: hash of %d bytes is not the decoded file's", a.Path, a.Size)
		}
	}
	if strings.Join(names, ",") != "f.bin,header.pdf" {
		t.Errorf("names %q, want f.bin and header.pdf", names)
	}
}

// TestUUEncodedHTMLNamedOnItsBeginLineIsScanned: an x-uuencode part whose only file name is
// its begin line's (statement.html) was listed under that name but never read for links,
// because what reads an attachment was chosen before the begin line was.
func TestUUEncodedHTMLNamedOnItsBeginLineIsScanned(t *testing.T) {
	body := strings.Replace(uuencodeForTest([]byte(`<a href="https://evil.example/phish">Sign in</a>`)), "f.bin", "statement.html", 1)
	msg := crlf("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n--b\n" +
		"Content-Type: application/octet-stream\nContent-Transfer-Encoding: x-uuencode\n\n" + body + "\n--b--\n")
	rec := parseString(t, Options{}, msg)
	if len(rec.Attachments) != 1 || rec.Attachments[0].Filename != "statement.html" {
		t.Fatalf("attachments %+v", rec.Attachments)
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://evil.example/phish" {
		t.Errorf("urls %+v, want the page's link", rec.URLs)
	}
}
