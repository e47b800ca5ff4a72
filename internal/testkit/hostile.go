package testkit

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// Hostile is a message built to exhaust a parser: huge counts of parts, links or archive
// members, deep nesting, long lines.
type Hostile struct {
	Name  string
	Limit string // the limit the record must name; "" when none applies
	New   func() io.Reader
}

// HostileMessages returns the hostile inputs, each generated as a stream so that building
// one costs no more memory than parsing it should.
func HostileMessages() []Hostile {
	hs := []Hostile{
		{"100k-parts", "parts", func() io.Reader {
			var b bytes.Buffer
			b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
			for range 100_000 {
				b.WriteString("--b\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n")
			}
			b.WriteString("--b--\r\n")
			return &b
		}},
		{"nesting-5000", "depth", func() io.Reader {
			var b bytes.Buffer
			for i := range 5000 {
				fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
			}
			b.WriteString("Content-Type: text/plain\r\n\r\ndeep\r\n")
			return &b
		}},
		{"line-64MiB", "", func() io.Reader {
			return io.MultiReader(
				strings.NewReader("Content-Type: text/plain\r\n\r\n"),
				io.LimitReader(repeatByte('a'), 64<<20),
				strings.NewReader("\r\n"))
		}},
		{"header-8MiB", "header_bytes", func() io.Reader {
			var b bytes.Buffer
			for b.Len() < 8<<20 {
				b.WriteString("X-Filler: " + strings.Repeat("h", 990) + "\r\n")
			}
			b.WriteString("\r\nbody\r\n")
			return &b
		}},
		{"links-200k", "urls", func() io.Reader {
			var b bytes.Buffer
			b.WriteString("Content-Type: text/html\r\n\r\n")
			for i := range 200_000 {
				fmt.Fprintf(&b, "<a href=\"https://h%d.example/p\">x</a>\r\n", i)
			}
			return &b
		}},
	}
	bomb := ZipBomb()
	hs = append(hs, Hostile{"zip-bomb-2GiB", "archive_bytes", func() io.Reader {
		return io.MultiReader(
			strings.NewReader("Content-Type: application/zip; name=bomb.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n"),
			base64Lines(bytes.NewReader(bomb)),
			strings.NewReader("\r\n"))
	}})
	return hs
}

type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// base64Lines encodes r as base64 in 76-column CRLF lines, streaming.
func base64Lines(r io.Reader) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		enc := &lineWriter{w: pw}
		b64 := newBase64Encoder(enc)
		_, err := io.Copy(b64, r)
		if err == nil {
			err = b64.Close()
		}
		if err == nil {
			_, err = pw.Write([]byte("\r\n"))
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// lineWriter breaks a base64 stream into 76-column CRLF lines.
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(76-l.col, len(p))
		if _, err := l.w.Write(p[:k]); err != nil {
			return n, err
		}
		n, l.col, p = n+k, l.col+k, p[k:]
		if l.col == 76 {
			if _, err := l.w.Write([]byte("\r\n")); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}

func newBase64Encoder(w io.Writer) io.WriteCloser { return base64.NewEncoder(base64.StdEncoding, w) }
