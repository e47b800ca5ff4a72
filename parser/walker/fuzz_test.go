package walker

import (
	"bytes"
	"io"
	"testing"
)

// FuzzWalker: any input is walked to its end without an error, every byte is consumed
// exactly once, and the part cap holds.
func FuzzWalker(f *testing.F) {
	for _, s := range []string{
		"",
		"Subject: x\r\n\r\nbody\r\n",
		"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--\r\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\n--b--\n",
		"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--a--\r\n",
		"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nSubject: deep\r\n\r\nx",
		"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in\r\n\r\nx\r\n--d--",
		"From x\r\nno colon\r\n continuation\r\n\r\n",
		"Content-Type: multipart/mixed; boundary=b\rContent-Transfer-Encoding: base64\r\r--b\rx\r--b--\r",
		"Subject: s\r\nbody with no blank line before it\r\nNote: more\r\n",
		"Subject: s\r\n \t\r\nNote: body after a whitespace separator\r\n",
		"\xef\xbb\xbf\r\n \r\nFrom: a\r\n\tfolded\r\n\t\r\n\tindented body",
		"Content-Type: multipart/mixed; boundary=b\r\n--b\r\nContent-Type: message/rfc822\r\nbody\r\n--b--\r\n",
		"Content-Type: multipart/mixed; boundary=z\r\n\r\n--y\r\n\r\nx\r\n--y\r\n\r\nx\r\n--y--\r\n",
		"Content-Type: text/plain\r\nContent-Type: multipart/mixed; boundary=y\r\n\r\n--y\r\n\r\nx\r\n--y--\r\n",
		"Content-Type: message/rfc822\n\nFrom x Mon Jan  1 00:00:00 2024\nSubject: in\nbody\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		w := New(bytes.NewReader(data), Options{MaxParts: 200, MaxDepth: 16, BufferSize: 1024})
		parts := 0
		for {
			p, err := w.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Next: %v", err)
			}
			parts++
			if parts > 200 {
				t.Fatalf("more than MaxParts parts")
			}
			if p.Depth > 16+1 {
				t.Fatalf("depth %d beyond MaxDepth", p.Depth)
			}
			if p.Kind == Leaf && parts%2 == 0 { // read half the bodies, skip the others
				if _, err := io.Copy(io.Discard, w.Body()); err != nil {
					t.Fatalf("body: %v", err)
				}
			}
		}
		if got := w.Consumed(); got != int64(len(data)) {
			t.Fatalf("consumed %d of %d bytes", got, len(data))
		}
	})
}
