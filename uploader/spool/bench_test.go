package spool

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// naiveCommit is what Commit did before group commit, kept as the benchmark's reference: the
// whole sequence, directory fsync included, for each record on its own.
func naiveCommit(s *Spool, id string, line []byte) error {
	if !validID(id) || !validLine(line) {
		return fmt.Errorf("bad record %s", id)
	}
	dst := s.path(dirRecords, id+recordExt)
	err := writeAtomic(s.fs, s.path(dirTmp), id+".*", dst, func(w io.Writer) error {
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

func (f countFS) syncDir(dir string) error {
	f.n.Add(1)
	return f.osFS.syncDir(dir)
}

// BenchmarkCommit measures commits per second on the disk under b.TempDir (set TMPDIR to
// measure another) at 1, 8 and 64 concurrent committers (SMTP sessions), for Commit's group
// commit and for the naive per-record sequence. The two alternate in slices within one run,
// so that a neighbour's burst of disk traffic hits both alike; x-naive is their ratio. Where
// the per-file fsync dominates (ext4 on a VM disk, measured: a directory fsync there costs a
// fraction of a file fsync), the ratio stays near 1 whatever dirsyncs/commit shows.
func BenchmarkCommit(b *testing.B) {
	// About the size of a real record with a few headers and attachments.
	line := []byte(`{"schema":"sensor.record/v1","pad":"` + strings.Repeat("x", 1500) + `"}` + "\n")
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("c=%d", conc), func(b *testing.B) {
			group := benchMode{commit: (*Spool).Commit}
			naive := benchMode{commit: naiveCommit}
			for _, m := range []*benchMode{&group, &naive} {
				var err error
				if m.s, err = Open(b.TempDir(), nil); err != nil {
					b.Fatal(err)
				}
				m.s.fs = countFS{n: &m.dirSyncs}
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
			b.ReportMetric(float64(group.dirSyncs.Load())/float64(b.N), "group-dirsyncs/commit")
		})
	}
}

type benchMode struct {
	s        *Spool
	commit   func(*Spool, string, []byte) error
	dirSyncs atomic.Int64
	elapsed  time.Duration
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
