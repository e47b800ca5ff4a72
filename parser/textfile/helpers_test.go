package textfile

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
)

// found is one block as a Handler saw it.
type found struct {
	Block
	Data []byte
}

func (f found) String() string {
	sum := sha256.Sum256(f.Data)
	return fmt.Sprintf("%s %q size=%d/%d complete=%v part=%d/%d off=%d file=%d sha256=%s notes=%q",
		f.Kind, f.Name, f.Size, len(f.Data), f.Complete, f.Part, f.Total, f.Offset, f.FileSize,
		hex.EncodeToString(sum[:8]), f.Anomalies)
}

// recorder is a Handler that keeps everything and checks the call order.
type recorder struct {
	t      testing.TB
	blocks []found
	buf    *bytes.Buffer // the open block's bytes; nil when none is open
}

func (r *recorder) Begin(kind, name string) io.Writer {
	if r.buf != nil {
		r.t.Errorf("Begin(%s, %q) while a block is open", kind, name)
	}
	r.buf = new(bytes.Buffer)
	r.blocks = append(r.blocks, found{Block: Block{Kind: kind, Name: name}})
	return r.buf
}

func (r *recorder) End(b Block) {
	if r.buf == nil {
		r.t.Fatalf("End(%+v) without Begin", b)
	}
	last := &r.blocks[len(r.blocks)-1]
	if b.Kind != last.Kind || b.Name != last.Name {
		r.t.Errorf("End(%s, %q) after Begin(%s, %q)", b.Kind, b.Name, last.Kind, last.Name)
	}
	if b.Size != int64(r.buf.Len()) {
		r.t.Errorf("End says size %d, writer got %d bytes", b.Size, r.buf.Len())
	}
	last.Block, last.Data = b, r.buf.Bytes()
	r.buf = nil
}

// chunker splits input into Write calls.
type chunker func(p []byte) [][]byte

func whole(p []byte) [][]byte { return [][]byte{p} }

func oneByte(p []byte) [][]byte {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i : i+1]
	}
	return out
}

func randomChunks(seed uint64) chunker {
	return func(p []byte) [][]byte {
		rng := rand.New(rand.NewPCG(seed, seed))
		var out [][]byte
		for len(p) > 0 {
			n := min(len(p), 1+rng.IntN(200))
			out = append(out, p[:n])
			p = p[n:]
		}
		return out
	}
}

var chunkers = map[string]chunker{
	"whole":    whole,
	"one byte": oneByte,
	"random1":  randomChunks(1),
	"random2":  randomChunks(2),
	"random3":  randomChunks(3),
}

// scan runs a Scanner over in, written as split says.
func scan(t testing.TB, in []byte, lim Options, split chunker) ([]found, *Scanner) {
	t.Helper()
	r := &recorder{t: t}
	s := NewScanner(r, lim)
	for _, c := range split(in) {
		n, err := s.Write(c)
		if err != nil || n != len(c) {
			t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(c))
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if r.buf != nil {
		t.Errorf("block %q still open after Close", r.blocks[len(r.blocks)-1].Name)
	}
	return r.blocks, s
}

// scanAll runs every chunker and checks they agree; it returns the blocks.
func scanAll(t testing.TB, in []byte, lim Options) []found {
	t.Helper()
	want, _ := scan(t, in, lim, whole)
	for name, split := range chunkers {
		got, _ := scan(t, in, lim, split)
		if !slices.EqualFunc(got, want, sameFound) {
			t.Errorf("written %s:\n got %v\nwant %v", name, got, want)
		}
	}
	return want
}

func sameFound(a, b found) bool {
	return a.String() == b.String() && bytes.Equal(a.Data, b.Data)
}
