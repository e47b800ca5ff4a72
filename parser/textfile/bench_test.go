package textfile

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

const benchSize = 8 << 20

// The encoders below only make benchmark input; the tests' expected values come from
// testdata/gen.py and testdata/oracle.py.

func benchData() []byte {
	b := make([]byte, benchSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func benchUU(data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("Some text first.\r\n\r\nbegin 644 big.bin\r\n")
	enc := func(c byte) byte {
		if c == 0 {
			return '`'
		}
		return c + 0x20
	}
	for len(data) > 0 {
		n := min(45, len(data))
		var l [64]byte
		l[0] = enc(byte(n))
		k := 1
		for i := 0; i < n; i += 3 {
			var q [3]byte
			copy(q[:], data[i:n])
			v := uint32(q[0])<<16 | uint32(q[1])<<8 | uint32(q[2])
			for j := 18; j >= 0; j -= 6 {
				l[k] = enc(byte(v>>j) & 63)
				k++
			}
		}
		b.Write(l[:k])
		b.WriteString("\r\n")
		data = data[n:]
	}
	b.WriteString("`\r\nend\r\n")
	return b.Bytes()
}

func benchYEnc(data []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "=ybegin line=128 size=%d name=big.bin\r\n", len(data))
	col := 0
	for _, d := range data {
		c := d + 42
		switch c {
		case 0, '\n', '\r', '=':
			b.WriteByte('=')
			c += 64
			col++
		}
		b.WriteByte(c)
		col++
		if col >= 128 {
			b.WriteString("\r\n")
			col = 0
		}
	}
	fmt.Fprintf(&b, "\r\n=yend size=%d\r\n", len(data))
	return b.Bytes()
}

func benchB64(data []byte) []byte {
	var b bytes.Buffer
	b.WriteString("begin-base64 644 big.bin\n")
	s := base64.StdEncoding.EncodeToString(data)
	for len(s) > 0 {
		n := min(76, len(s))
		b.WriteString(s[:n])
		b.WriteByte('\n')
		s = s[n:]
	}
	b.WriteString("====\n")
	return b.Bytes()
}

func benchText() []byte {
	line := []byte("Dear customer, thank you for your continued trust in our services; begin here.\r\n")
	return bytes.Repeat(line, benchSize/len(line))
}

type discard struct{ n int64 }

func (d *discard) Begin(string, string) io.Writer { return io.Discard }
func (d *discard) End(b Block)                    { d.n += b.Size }

func benchScan(b *testing.B, in []byte, want int64) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		h := &discard{}
		s := NewScanner(h, Options{})
		for p := in; len(p) > 0; {
			n := min(32<<10, len(p))
			if _, err := s.Write(p[:n]); err != nil {
				b.Fatal(err)
			}
			p = p[n:]
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if h.n != want {
			b.Fatalf("decoded %d bytes, want %d", h.n, want)
		}
	}
}

func BenchmarkUUEncode(b *testing.B) { benchScan(b, benchUU(benchData()), benchSize) }
func BenchmarkYEnc(b *testing.B)     { benchScan(b, benchYEnc(benchData()), benchSize) }
func BenchmarkBase64(b *testing.B)   { benchScan(b, benchB64(benchData()), benchSize) }
func BenchmarkPlainText(b *testing.B) {
	benchScan(b, benchText(), 0)
}
