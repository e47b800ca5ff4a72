package tnef

import (
	"bytes"
	"io"
	"testing"
)

// writerOnly hides io.Discard's ReadFrom so that the copy goes through a 32 KiB buffer, as
// a hashing consumer's would.
type writerOnly struct{ io.Writer }

// readerOnly hides bytes.Reader's WriteTo for the same reason.
type readerOnly struct{ io.Reader }

// BenchmarkDecodeLarge decodes a stream holding one 32 MiB attachment, which the callback
// reads through in 32 KiB steps. Memory per op must not grow with the attachment.
func BenchmarkDecodeLarge(b *testing.B) {
	payload := make([]byte, 32<<20)
	for i := range payload {
		payload[i] = byte(i * 31)
	}
	in := stream(append(append(header("IPM.Note", 1252), fileAttrs("big.bin", payload)...),
		attr(2, tAttachment, props(prop(0x001F, 0x3707, vals(utf16z("big file.bin"))))))...)
	buf := make([]byte, 32<<10)
	onData := func(r io.Reader) (any, error) {
		n, err := io.CopyBuffer(writerOnly{io.Discard}, r, buf)
		return n, err
	}
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		res, err := Decode(bytes.NewReader(in), Options{}, onData)
		if err != nil || len(res.Files) != 1 || res.Files[0].Size != int64(len(payload)) || len(res.Anomalies) != 0 {
			b.Fatalf("%v %+v", err, res)
		}
	}
}

// BenchmarkCopyBaseline is the same copy without the decoder, for comparison.
func BenchmarkCopyBaseline(b *testing.B) {
	payload := make([]byte, 32<<20)
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := io.CopyBuffer(writerOnly{io.Discard}, readerOnly{bytes.NewReader(payload)}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChecksum measures the attribute checksum alone.
func BenchmarkChecksum(b *testing.B) {
	p := make([]byte, 32<<10)
	b.SetBytes(int64(len(p)))
	var s uint32
	for b.Loop() {
		s += checksum(p)
	}
	_ = s
}
