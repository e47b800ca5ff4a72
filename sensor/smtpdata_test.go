package sensor

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readAllIn reads r with buffers of n bytes.
func readAllIn(r io.Reader, n int) (string, error) {
	var sb strings.Builder
	buf := make([]byte, n)
	for {
		k, err := r.Read(buf)
		sb.Write(buf[:k])
		if err == io.EOF {
			return sb.String(), nil
		}
		if err != nil {
			return sb.String(), err
		}
	}
}

func TestDotReader(t *testing.T) {
	for _, tc := range []struct {
		name, in, want, rest string
		broken               bool // the input ends before CRLF.CRLF
	}{
		{"empty message", ".\r\nNOOP\r\n", "", "NOOP\r\n", false},
		{"plain", "a\r\nb\r\n.\r\nQUIT\r\n", "a\r\nb\r\n", "QUIT\r\n", false},
		{"dot-stuffed", "..a\r\n..\r\n.\r\n", ".a\r\n.\r\n", "", false},
		{"dot then bare LF is data", "a\r\n.\nb\r\n.\r\n", "a\r\n\nb\r\n", "", false},
		{"bare LF dot bare LF", "x\n.\nMAIL\r\n.\r\n", "x\n.\nMAIL\r\n", "", false},
		{"LF dot CRLF", "x\n.\r\n.\r\n", "x\n.\r\n", "", false},
		{"CR dot CRLF", "x\r.\r\n.\r\n", "x\r.\r\n", "", false},
		{"bare CR before the final CRLF", "x\r\r\n.\r\nNOOP\r\n", "x\r\r\n", "NOOP\r\n", false},
		{"dot CR not LF", "a\r\n.\rb\r\n.\r\n", "a\r\n\rb\r\n", "", false},
		{"binary", "\x00\xff\r\n.\r\n", "\x00\xff\r\n", "", false},
		{"long line", strings.Repeat("y", 300000) + "\r\n.\r\n", strings.Repeat("y", 300000) + "\r\n", "", false},
		{"cut off", "a\r\nb", "a\r\n", "", true}, // what is left of a broken message is dropped
		{"cut off after CRLF", "a\r\n", "a\r\n", "", true},
		{"cut off at the dot", "a\r\n.\r", "a\r\n", "", true},
		{"nothing", "", "", "", true},
	} {
		for _, n := range []int{1, 2, 3, 7, 4096} {
			for _, slow := range []bool{false, true} {
				var src io.Reader = strings.NewReader(tc.in)
				if slow {
					src = iotest.OneByteReader(src)
				}
				br := bufio.NewReaderSize(src, 16)
				d := newDotReader(br)
				got, err := readAllIn(d, n)
				if got != tc.want {
					t.Errorf("%s (buf %d, slow %v): got %q, want %q", tc.name, n, slow, got, tc.want)
				}
				if tc.broken {
					if !errors.Is(err, io.ErrUnexpectedEOF) {
						t.Errorf("%s: err %v, want unexpected EOF", tc.name, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", tc.name, err)
				}
				if rest, _ := io.ReadAll(br); string(rest) != tc.rest {
					t.Errorf("%s: after the data %q, want %q", tc.name, rest, tc.rest)
				}
			}
		}
	}
}

func TestLimitReaderRefusesPastMax(t *testing.T) {
	l := &limitReader{r: strings.NewReader(strings.Repeat("x", 11)), max: 10}
	_, err := io.ReadAll(l)
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code != 552 {
		t.Fatalf("err %v, want a 552 refusal", err)
	}
	l = &limitReader{r: strings.NewReader(strings.Repeat("x", 10)), max: 10}
	if b, err := io.ReadAll(l); err != nil || len(b) != 10 {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
}

// BenchmarkDotReader reads DATA of 76-byte lines, as base64 attachments come.
func BenchmarkDotReader(b *testing.B) {
	line := strings.Repeat("QUJD", 19) + "\r\n"
	body := strings.Repeat(line, (4<<20)/len(line)) + ".\r\n"
	b.SetBytes(int64(len(body)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		d := newDotReader(bufio.NewReaderSize(strings.NewReader(body), 64<<10))
		for {
			if _, err := d.Read(buf); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}
