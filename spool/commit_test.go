package spool

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// waitJoined waits until n callers have joined g's next round, i.e. are blocked in wait.
func waitJoined(t *testing.T, g *groupSync, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		joined := 0
		if g.next != nil {
			joined = g.next.joined
		}
		g.mu.Unlock()
		if joined == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined the next round, want %d", joined, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGroupSyncLateJoinersShareTheNextFsync(t *testing.T) {
	g := newGroupSync()
	var calls atomic.Int32
	started := make(chan struct{}, 4)
	results := make(chan error) // each fsync returns what the test sends here
	fsync := func() error {
		calls.Add(1)
		started <- struct{}{}
		return <-results
	}

	first := make(chan error, 1)
	go func() { first <- g.wait(fsync) }()
	<-started // round 1 is in progress

	// These join while round 1 runs: round 1 started before they joined, so it must not
	// release them.
	const k = 10
	rest := make(chan error, k)
	for range k {
		go func() { rest <- g.wait(fsync) }()
	}
	waitJoined(t, g, k)
	results <- nil
	if err := <-first; err != nil {
		t.Fatalf("first caller: %v", err)
	}
	<-started // round 2, led by one of the k
	select {
	case err := <-rest:
		t.Fatalf("a late joiner returned (%v) before the fsync that started after it joined", err)
	default:
	}
	results <- errInjected
	for range k {
		if err := <-rest; !errors.Is(err, errInjected) {
			t.Errorf("late joiner got %v, want round 2's error", err)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("%d fsyncs for 11 callers in two rounds, want 2", n)
	}

	// A failed round leaves nothing behind: the next caller gets a fresh fsync.
	if err := g.wait(func() error { return nil }); err != nil {
		t.Errorf("wait after a failed round: %v", err)
	}
}

func TestGroupSyncSurvivesAPanickingFsync(t *testing.T) {
	g := newGroupSync()
	func() {
		defer func() {
			if recover() == nil {
				t.Error("the leader's panic was swallowed")
			}
		}()
		_ = g.wait(func() error { panic("boom") })
	}()
	done := make(chan error, 1)
	go func() { done <- g.wait(func() error { return nil }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("wait after a panicked round: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("wait deadlocked after a panicked round")
	}
}

// waitQueued waits until n commits wait in rounds that have not started.
func waitQueued(t *testing.T, q *commitQueue, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		q.mu.Lock()
		queued := 0
		for _, r := range q.queue {
			if !r.started {
				queued += len(r.reqs)
			}
		}
		q.mu.Unlock()
		if queued == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d commits queued, want %d", queued, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestReserve(t *testing.T) {
	s, _ := openTest(t, t.TempDir())

	// No budget: everything fits, and is still counted.
	rel, ok := s.Reserve(1 << 40)
	if !ok {
		t.Fatal("Reserve refused with no budget set")
	}
	if u := s.Usage(); u.Reserved != 1<<40 || u.MaxBytes != 0 {
		t.Errorf("usage = %+v, want 1 TiB reserved, no budget", u)
	}
	rel()
	rel() // idempotent
	if u := s.Usage(); u.Reserved != 0 {
		t.Errorf("reserved after a double release = %d, want 0", u.Reserved)
	}

	s.SetBudget(100)
	r60, ok := s.Reserve(60)
	if !ok {
		t.Fatal("Reserve(60) of 100 refused")
	}
	if _, ok := s.Reserve(50); ok {
		t.Error("Reserve(50) succeeded with 60 of 100 held")
	}
	r40, ok := s.Reserve(40)
	if !ok {
		t.Fatal("Reserve(40) refused with 60 of 100 held")
	}
	if rel, ok := s.Reserve(0); ok {
		rel()
		t.Error("Reserve(0) succeeded on a full budget; it counts as 1 byte")
	}
	if rel, ok := s.Reserve(-5); ok {
		rel()
		t.Error("Reserve(-5) succeeded on a full budget; it counts as 1 byte")
	}
	r60()
	r60() // must not give back 60 more
	if rel, ok := s.Reserve(61); ok {
		rel()
		t.Error("Reserve(61) succeeded with 40 of 100 held after one release counted twice")
	}
	r50, ok := s.Reserve(50)
	if !ok {
		t.Error("Reserve(50) refused with 40 of 100 held")
	}
	r40()
	r50()

	// Larger than the whole budget: clamped, so an empty spool still takes it.
	big, ok := s.Reserve(1 << 62)
	if !ok {
		t.Fatal("Reserve larger than the budget refused on an empty spool")
	}
	if u := s.Usage(); u.Reserved != 100 {
		t.Errorf("reserved = %d, want the clamp of 100", u.Reserved)
	}
	if _, ok := s.Reserve(1); ok {
		t.Error("Reserve(1) succeeded beside a clamped reservation of the whole budget")
	}
	big()

	s.SetBudget(0)
	if rel, ok := s.Reserve(1 << 62); !ok {
		t.Error("Reserve refused after the budget was removed")
	} else {
		rel()
	}
}

func TestBudgetCountsCommittedRecordsAndBatches(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	const budget = 100
	s.SetBudget(budget)

	// The session's flow: reserve, commit while holding it, release.
	release, ok := s.Reserve(1 << 20)
	if !ok {
		t.Fatal("Reserve refused on an empty spool")
	}
	if err := s.Commit(ulid.Make().String(), []byte(`{"a":"0123456789"}`)); err != nil {
		t.Fatal(err)
	}
	release()
	const line = 19 // len(`{"a":"0123456789"}`) = 18, plus "\n"

	if _, ok := s.Reserve(budget - line + 1); ok {
		t.Errorf("Reserve(%d) succeeded beside a %d-byte record in a %d budget", budget-line+1, line, budget)
	}
	rel, ok := s.Reserve(budget - line)
	if !ok {
		t.Fatalf("Reserve(%d) refused beside a %d-byte record in a %d budget", budget-line, line, budget)
	}
	rel()

	// A batch counts its compressed size instead.
	b := batchAll(t, s)
	if u := s.Usage(); u.Bytes() != b.Size {
		t.Fatalf("usage bytes = %d, want the batch's %d", u.Bytes(), b.Size)
	}
	if rel, ok := s.Reserve(budget - b.Size + 1); ok {
		rel()
		t.Errorf("Reserve ignored the %d-byte batch", b.Size)
	}

	// Dead letters do not count: the budget is whole again.
	if err := s.DeadLetter(b.ID); err != nil {
		t.Fatal(err)
	}
	if rel, ok := s.Reserve(budget); !ok {
		t.Error("Reserve(budget) refused with only a dead letter in the spool")
	} else {
		rel()
	}

	// Delivering a batch frees its bytes.
	commitN(t, s, 1)
	b = batchAll(t, s)
	if rel, ok := s.Reserve(budget); ok {
		rel()
		t.Error("Reserve(budget) succeeded beside a pending batch")
	}
	if err := s.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if rel, ok := s.Reserve(budget); !ok {
		t.Error("Reserve(budget) refused after the batch was delivered")
	} else {
		rel()
	}
}

func TestBudgetAppliesToWhatAnEarlierRunLeft(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	commitN(t, s, 3)
	s2, _ := openTest(t, dir)
	s2.SetBudget(s2.Usage().RecordBytes)
	if rel, ok := s2.Reserve(1); ok {
		rel()
		t.Error("Reserve succeeded although what the spool holds fills the budget")
	}
}

func TestReserveUnderContention(t *testing.T) {
	s, _ := openTest(t, t.TempDir())
	const budget = 1000
	s.SetBudget(budget)
	var over atomic.Int64
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 500 {
				release, ok := s.Reserve(int64(1 + (w*131+i*17)%400))
				if u := s.Usage(); u.Reserved > budget {
					over.Store(u.Reserved)
				}
				if ok {
					release()
				}
				release() // a second call, or a call after a refusal, is harmless
			}
		})
	}
	wg.Wait()
	if n := over.Load(); n != 0 {
		t.Errorf("reservations reached %d, over the %d budget", n, budget)
	}
	if u := s.Usage(); u.Reserved != 0 {
		t.Errorf("reserved = %d after every release, want 0", u.Reserved)
	}
}

func TestOpenRecoversOddEntries(t *testing.T) {
	dir := t.TempDir()
	for _, sub := range []string{"records", "batches", "deadletter"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	good := ulid.Make().String()
	asDir := ulid.Make().String()
	stuck := ulid.Make().String()
	badBatch := ulid.Make().String()
	if err := os.WriteFile(filepath.Join(dir, "records", good+".ndjson"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory with a record's name is not a record.
	if err := os.Mkdir(filepath.Join(dir, "records", asDir+".ndjson"), 0o700); err != nil {
		t.Fatal(err)
	}
	// One that cannot be set aside, because <name>.broken is a non-empty directory already:
	// it must not be listed as pending either.
	for _, d := range []string{stuck + ".ndjson", stuck + ".ndjson.broken/x"} {
		if err := os.MkdirAll(filepath.Join(dir, "records", d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"batches/" + badBatch + ".ndjson.gz": "not gzip",
		"batches/notes.txt":                  "an operator's file",
		"batches/not-a-ulid.ndjson.gz":       "x",
		"deadletter/a.ndjson.gz":             "x",
		"deadletter/b.ndjson.gz":             "x",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	s, err := Open(dir, nil) // a nil logger is allowed
	if err != nil {
		t.Fatal(err)
	}
	u := s.Usage()
	// Broken: stuck's pre-existing .broken directory. Directories under a record file's name
	// are no sensor's files: they are logged and left where they are.
	want := Usage{Records: 1, RecordBytes: 3, Batches: 1, BatchBytes: int64(len("not gzip")), Broken: 1, DeadLetters: 2}
	if u != want {
		t.Errorf("usage = %+v\nwant %+v", u, want)
	}
	if got := names(t, filepath.Join(dir, "records")); !slices.Contains(got, asDir+".ndjson") || !slices.Contains(got, stuck+".ndjson") {
		t.Errorf("records/ = %v, want the directories %s.ndjson and %s.ndjson left as they were", got, asDir, stuck)
	}
	if p, err := s.Pending(); err != nil || len(p) != 1 || p[0].Records != 1 || p[0].Oldest != idTime(good) {
		t.Errorf("Pending = %v, %v; want only %s's record", p, err, good)
	}
	bs, err := s.Batches()
	if err != nil {
		t.Fatal(err)
	}
	wantBatch := Batch{ID: badBatch, Records: -1, Bytes: -1, Size: int64(len("not gzip")), Blobs: -1}
	if len(bs) != 1 || bs[0] != wantBatch {
		t.Errorf("Batches = %+v, want only %+v", bs, wantBatch)
	}
}

func TestOpenFailsWhenTheDirectoryCannotBeMade(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "spool"), nil); err == nil {
		t.Error("Open under a regular file succeeded")
	}
}
