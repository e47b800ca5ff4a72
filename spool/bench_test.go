package spool

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/internal/atomicfile"
	"github.com/journalsensor/sensor/wal"
)

// naiveCommit is what Commit did before group commit, kept as the benchmark's reference: the
// whole sequence, directory fsync included, for each record on its own.
func naiveCommit(s *Spool, id string, line []byte) error {
	if !validID(id) || !validLine(line) {
		return fmt.Errorf("bad record %s", id)
	}
	dst := s.path(dirRecords, id+groupExt)
	err := atomicfile.Write(s.fs, s.path(dirTmp), id+".*", dst, func(w io.Writer) error {
		_, err := w.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.usage.Records++
	s.usage.RecordBytes += int64(len(line))
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return nil
}

// countFS counts directory fsyncs, to show how many commits share one.
type countFS struct {
	osFS
	n *atomic.Int64
}

func (f countFS) SyncDir(dir string) error {
	f.n.Add(1)
	return f.osFS.SyncDir(dir)
}

// syncCountFS counts the record log's fdatasyncs: one per group commit round.
type syncCountFS struct {
	wal.OS
	n *atomic.Int64
}

func (f syncCountFS) Create(name string) (wal.File, error) {
	file, err := f.OS.Create(name)
	return syncCountFile{file, f.n}, err
}

func (f syncCountFS) Open(name string) (wal.File, error) {
	file, err := f.OS.Open(name)
	return syncCountFile{file, f.n}, err
}

type syncCountFile struct {
	wal.File
	n *atomic.Int64
}

func (f syncCountFile) Fdatasync() error {
	f.n.Add(1)
	return f.File.Fdatasync()
}

// BenchmarkCommit measures commits per second on the disk under b.TempDir (set TMPDIR to
// measure another) at 1, 8, 20 and 64 concurrent committers (SMTP sessions), for Commit's
// group commit and for the per-record sequence it replaced (a file, its fsync, its rename and
// a directory fsync for each record). The two alternate in slices within one run, so that a
// neighbour's burst of disk traffic hits both alike; x-naive is their ratio, and
// rounds/commit how many log appends (each one fdatasync) a commit cost on average.
func BenchmarkCommit(b *testing.B) {
	// About the size of a real record with a few headers and attachments.
	line := []byte(`{"schema":"sensor.record/v1","pad":"` + strings.Repeat("x", 1500) + `"}` + "\n")
	for _, conc := range []int{1, 8, 20, 64} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			group := benchMode{commit: (*Spool).Commit}
			naive := benchMode{commit: naiveCommit}
			var err error
			if group.s, err = open(b.TempDir(), nil, wal.Options{FS: syncCountFS{n: &group.syncs}}); err != nil {
				b.Fatal(err)
			}
			if naive.s, err = Open(b.TempDir(), nil); err != nil {
				b.Fatal(err)
			}
			naive.s.fs = countFS{n: &naive.syncs}
			if err := os.MkdirAll(naive.s.path(dirRecords), dirPerm); err != nil {
				b.Fatal(err)
			}
			slice := max(8*conc, 64)
			b.SetBytes(2 * int64(len(line))) // an op is one commit of each kind
			b.ResetTimer()
			for done := 0; done < b.N; done += slice {
				n := min(slice, b.N-done)
				group.run(b, conc, n, line)
				naive.run(b, conc, n, line)
			}
			b.StopTimer()
			g, nv := float64(b.N)/group.elapsed.Seconds(), float64(b.N)/naive.elapsed.Seconds()
			b.ReportMetric(g, "group-commits/s")
			b.ReportMetric(nv, "naive-commits/s")
			b.ReportMetric(g/nv, "x-naive")
			b.ReportMetric(float64(group.syncs.Load())/float64(b.N), "rounds/commit")
		})
	}
}

type benchMode struct {
	s       *Spool
	commit  func(*Spool, string, []byte) error
	syncs   atomic.Int64 // fdatasyncs of the log (group), directory fsyncs (naive)
	elapsed time.Duration
}

// run makes n commits from conc goroutines and adds the wall time to m.elapsed.
func (m *benchMode) run(b *testing.B, conc, n int, line []byte) {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := m.commit(m.s, ulid.Make().String(), bytes.Clone(line)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	m.elapsed += time.Since(start)
}

// BenchmarkBlobWrite commits a 50 MiB attachment the way the parser writes one in content
// mode (32 KiB at a time, then Commit: hash check, fsync, rename, directory fsync), against
// the floor of writing and fsyncing the same bytes to a plain file. B/op shows the writer holds
// no copy of the bytes.
func BenchmarkBlobWrite(b *testing.B) {
	const size = 50 << 20
	data := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	chunk := 32 << 10
	b.Run("spool", func(b *testing.B) {
		s, _ := openTest(b, b.TempDir())
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			w, err := s.CreateBlob()
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < size; i += chunk {
				if _, err := w.Write(data[i : i+chunk]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Commit(hexSum); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("plain-file", func(b *testing.B) {
		dir := b.TempDir()
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			f, err := os.Create(filepath.Join(dir, "f"))
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < size; i += chunk {
				if _, err := f.Write(data[i : i+chunk]); err != nil {
					b.Fatal(err)
				}
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
