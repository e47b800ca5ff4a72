package spool

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/wal"
)

var errRandomFault = errors.New("random injected fault")

// randomFaultFS fails a share (rate) of the writes and fdatasyncs in the log and its cursor
// while on; a failed write is torn, half of it written.
type randomFaultFS struct {
	wal.OS
	on   atomic.Bool
	rate float64
}

func (f *randomFaultFS) Create(name string) (wal.File, error) {
	file, err := f.OS.Create(name)
	if err != nil {
		return nil, err
	}
	return randomFaultFile{file, f}, nil
}

func (f *randomFaultFS) Open(name string) (wal.File, error) {
	file, err := f.OS.Open(name)
	if err != nil {
		return nil, err
	}
	return randomFaultFile{file, f}, nil
}

type randomFaultFile struct {
	wal.File
	fs *randomFaultFS
}

func (f randomFaultFile) inject() bool {
	return f.fs.on.Load() && strings.Contains(f.Name(), "/log/") && rand.Float64() < f.fs.rate
}

func (f randomFaultFile) WriteAt(b []byte, off int64) (int, error) {
	if f.inject() {
		n, _ := f.File.WriteAt(b[:len(b)/2], off) // torn
		return n, errRandomFault
	}
	return f.File.WriteAt(b, off)
}

func (f randomFaultFile) Fdatasync() error {
	if f.inject() {
		_ = f.File.Fdatasync()
		return errRandomFault
	}
	return f.File.Fdatasync()
}

// Four sessions commit while a batcher takes shuffled, partial lists of pending groups (so
// groups are batched out of order), torn writes and failed fdatasyncs hit the log and its
// cursor at random, and 8 KiB segments rotate and are deleted all the time. After a reopen
// without faults every record that got its nil from Commit is still pending or in a batch.
func TestRandomLogFaultsLoseNoAcknowledgedRecord(t *testing.T) {
	dir := t.TempDir()
	fs := &randomFaultFS{rate: 0.002}
	opts := wal.Options{SegmentBytes: 8192, InitialBytes: 2048, FS: fs}
	s, err := open(dir, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	fs.on.Store(true)
	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := ulid.Make().String()
				line := fmt.Sprintf(`{"id":%q,"w":%d,"pad":%q}`, id, w, strings.Repeat("y", rand.IntN(600)+1))
				if err := s.Commit(id, []byte(line)); err == nil {
					mu.Lock()
					acked[id] = true
					mu.Unlock()
				} else if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			p, _ := s.Pending()
			// out of order on purpose, and partial
			rand.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
			if len(p) > 3 {
				p = p[:len(p)/2+1]
			}
			if _, err := s.FormBatch(p); err != nil {
				t.Logf("FormBatch: %v", err)
			}
			_ = s.Usage()
		}
	}()
	time.Sleep(2 * time.Second)
	close(stop)
	wg.Wait()
	fs.on.Store(false)
	u := s.Usage()
	s.Close()
	s2, err := open(dir, nil, wal.Options{SegmentBytes: 8192, InitialBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	t.Logf("acked %d; usage before close %+v; after reopen %+v", len(acked), u, s2.Usage())
	seen := map[string]bool{}
	if _, err := ScanRecords(dir, true, func(r ScannedRecord) error {
		var v struct{ ID string }
		if err := json.Unmarshal(r.Line, &v); err != nil {
			return err
		}
		seen[v.ID] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	lost := 0
	for id := range acked {
		if !seen[id] {
			lost++
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(acked))
	}
}
