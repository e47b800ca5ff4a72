package testkit

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"hash/crc32"
)

// ZipBomb returns a zip file of about 2 MB holding one member that inflates to 2 GiB of
// zeros. It is built without compressing 2 GiB: once the deflate window is all zeros,
// every flushed 1 MiB of zeros compresses to the same bytes, so the stream is the first
// chunk, that repeating chunk 2047 times, and the final block. The CRC-32 is computed over
// the real 2 GiB (about a second), so the archive is valid.
func ZipBomb() []byte {
	const chunk, chunks = 1 << 20, 2048
	zeros := make([]byte, chunk)
	var buf bytes.Buffer
	fw, _ := flate.NewWriter(&buf, flate.BestCompression)
	emit := func() []byte {
		buf.Reset()
		fw.Write(zeros)
		fw.Flush()
		return append([]byte(nil), buf.Bytes()...)
	}
	first, repeat := emit(), emit()
	if again := emit(); !bytes.Equal(again, repeat) {
		panic("testkit: flushed deflate chunks of zeros differ; the bomb would be wrong")
	}
	buf.Reset()
	fw.Close()
	final := append([]byte(nil), buf.Bytes()...)

	crc := crc32.NewIEEE()
	for range chunks {
		crc.Write(zeros)
	}
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	w, err := zw.CreateRaw(&zip.FileHeader{
		Name:               "zeros.bin",
		Method:             zip.Deflate,
		CRC32:              crc.Sum32(),
		CompressedSize64:   uint64(len(first) + (chunks-1)*len(repeat) + len(final)),
		UncompressedSize64: chunks * chunk,
	})
	if err != nil {
		panic(err)
	}
	w.Write(first)
	for range chunks - 1 {
		w.Write(repeat)
	}
	w.Write(final)
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return out.Bytes()
}
