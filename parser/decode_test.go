package parser

import (
	"bytes"
	"encoding/base64"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/journalsensor/sensor/internal/testkit"
)

func decodeAll(t *testing.T, d decoder) (string, int64) {
	t.Helper()
	out, err := io.ReadAll(d)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := d.repairs()
	return string(out), n
}

// checkDecoding decodes in with a decoder from newDec, whole and one byte at a time, and
// checks the output and the count of repaired bytes against want and repairs.
func checkDecoding(t *testing.T, newDec func(io.Reader) decoder, in, want string, repairs int64) {
	t.Helper()
	got, rep := decodeAll(t, newDec(strings.NewReader(in)))
	if got != want {
		if len(got) < 100 && len(want) < 100 {
			t.Errorf("got %q, want %q", got, want)
		} else {
			t.Errorf("decoded %d bytes, want %d", len(got), len(want))
		}
	}
	if rep != repairs {
		t.Errorf("repairs %d, want %d", rep, repairs)
	}
	// Lines split across reads must decode the same way.
	got1, rep1 := decodeAll(t, newDec(iotest.OneByteReader(strings.NewReader(in))))
	if got1 != got || rep1 != rep {
		t.Errorf("one-byte reads differ: %d bytes/%d repairs vs %d/%d", len(got1), rep1, len(got), rep)
	}
}

func TestBase64(t *testing.T) {
	payload := make([]byte, 200_000)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(payload)

	tests := []struct {
		name, in, want string
		repairs        int64
	}{
		{"wrapped lines, large", testkit.Wrap76(enc), string(payload), 0},
		{"one long line", enc, string(payload), 0},
		{"LF lines and blanks", strings.ReplaceAll(testkit.Wrap76(enc), "\r\n", "\n\n"), string(payload), 0},
		// QUIRK: garbage bytes inside the encoding are skipped and counted, as enmime does.
		{"garbage bytes", "SGVs*bG8s!IHdv\r\ncmxk", "Hello, world", 2},
		{"concatenated blobs", "SGk=\r\nSGk=\r\n", "HiHi", 0},
		{"missing padding", "SGk", "Hi", 0},
		{"one stray char at end", "SGVsbG8x\r\nQ", "Hello1", 1},
		{"empty", "", "", 0},
		{"urlsafe chars are not base64", "SGk-", "Hi", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkDecoding(t, func(r io.Reader) decoder { return newBase64Reader(r, nil) }, tc.in, tc.want, tc.repairs)
		})
	}
}

func TestQuotedPrintable(t *testing.T) {
	tests := []struct {
		name, in, want string
		repairs        int64
	}{
		{"escapes and soft breaks", "caf=C3=A9 =\r\nsoft\r\nhard\r\n", "café soft\r\nhard\r\n", 0},
		{"LF line ends are kept", "a=3Db\nc\n", "a=b\nc\n", 0},
		{"trailing whitespace is padding", "x  \t\r\ny\r\n", "x\r\ny\r\n", 0},
		{"soft break before padding", "x= \r\ny", "xy", 0},
		// QUIRK: lowercase hex is invalid by RFC 2045 §6.7 but common; decode it.
		{"lowercase hex", "=c3=a9", "é", 0},
		{"invalid escapes pass through", "100% =ZZ =\x00 done=", "100% =ZZ =\x00 done", 2},
		{"link split by soft breaks", "<a href=3D\"http://exa=\r\nmple.com/p\">", `<a href="http://example.com/p">`, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkDecoding(t, func(r io.Reader) decoder { return newQPReader(r, nil) }, tc.in, tc.want, tc.repairs)
		})
	}
}

func TestQuotedPrintableLongLineIsBounded(t *testing.T) {
	// 300 KiB without a line break, with escapes straddling every internal piece boundary.
	in := strings.Repeat("ab=3D", 60_000)
	got, _ := decodeAll(t, newQPReader(strings.NewReader(in), nil))
	if want := strings.Repeat("ab=", 60_000); got != want {
		t.Fatalf("decoded %d bytes, want %d", len(got), len(want))
	}
	q := newQPReader(strings.NewReader(in), nil)
	buf := make([]byte, 1024)
	maxBuf := 0
	for {
		_, err := q.Read(buf)
		maxBuf = max(maxBuf, cap(q.buf))
		if err != nil {
			break
		}
	}
	if maxBuf > 200<<10 {
		t.Errorf("pending buffer grew to %d bytes on one long line", maxBuf)
	}
}

func TestUnknownEncodingPassesThrough(t *testing.T) {
	const binhex = "(This file must be converted with BinHex 4.0)\n"
	d, known := newDecoder("x-binhex", bytes.NewReader([]byte(binhex)), nil)
	if known {
		t.Fatal("x-binhex reported as known")
	}
	got, _ := decodeAll(t, d)
	if got != binhex {
		t.Errorf("got %q", got)
	}
}
