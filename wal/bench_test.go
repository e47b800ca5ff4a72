package wal

import (
	"bytes"
	"fmt"
	"io"
	"path/filepath"
	"testing"

	"github.com/journalsensor/sensor/internal/atomicfile"
)

// BenchmarkAppend measures one group commit of 1 KiB records, in groups of 1 and 16, on the
// disk under b.TempDir (set TMPDIR to measure another):
//
//   - wal: Append on segments zero-filled in advance (the default);
//   - wal-fallocate: Append on segments made by fallocate(2), whose unwritten extents make
//     each fdatasync commit metadata too;
//   - atomicfile: the spool's current commit path for the same bytes, one new file per group
//     (temp file, write, fsync, rename, directory fsync).
//
// Each reports µs per group commit as "µs/append". The segment is made before the timer
// starts; rotations during the run are counted.
func BenchmarkAppend(b *testing.B) {
	rec := bytes.Repeat([]byte("r"), 1024)
	for _, n := range []int{1, 16} {
		recs := make([][]byte, n)
		for i := range recs {
			recs[i] = rec
		}
		for _, fallocate := range []bool{false, true} {
			name := "wal"
			if fallocate {
				name = "wal-fallocate"
			}
			b.Run(fmt.Sprintf("%s/group=%d", name, n), func(b *testing.B) {
				l, err := Open(b.TempDir(), Options{FS: OS{Fallocate: fallocate}})
				if err != nil {
					b.Fatal(err)
				}
				defer l.Close()
				b.SetBytes(int64(n * len(rec)))
				b.ResetTimer()
				for b.Loop() {
					if _, err := l.Append(recs); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/append")
			})
		}
		b.Run(fmt.Sprintf("atomicfile/group=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			b.SetBytes(int64(n * len(rec)))
			i := 0
			for b.Loop() {
				i++
				dst := filepath.Join(dir, fmt.Sprintf("%d.ndjson", i))
				err := atomicfile.WriteFile(dir, ".tmp-*", dst, func(w io.Writer) error {
					for _, r := range recs {
						if _, err := w.Write(r); err != nil {
							return err
						}
					}
					return nil
				})
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/append")
		})
	}
}
