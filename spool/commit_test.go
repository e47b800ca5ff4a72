package spool

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// clockFS timestamps renames and directory fsyncs on a logical clock, so a test can check the
// group-commit promise: a Commit returns only after a directory fsync that started after its
// rename has finished successfully.
type clockFS struct {
	osFS
	clock   *atomic.Int64
	mu      *sync.Mutex
	renamed map[string]int64 // destination base name → tick just after its rename
	syncs   *[]span
}

type span struct {
	start, end int64
	ok         bool
}

func (f clockFS) Rename(oldpath, newpath string) error {
	err := f.osFS.Rename(oldpath, newpath)
	tick := f.clock.Add(1)
	f.mu.Lock()
	f.renamed[filepath.Base(newpath)] = tick
	f.mu.Unlock()
	return err
}

func (f clockFS) SyncDir(dir string) error {
	start := f.clock.Add(1)
	err := f.osFS.SyncDir(dir)
	end := f.clock.Add(1)
	f.mu.Lock()
	*f.syncs = append(*f.syncs, span{start, end, err == nil})
	f.mu.Unlock()
	return err
}

// groupOf maps each record id to the base name of the group file in records/ that holds it.
func groupOf(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range names(t, filepath.Join(dir, "records")) {
		data, err := os.ReadFile(filepath.Join(dir, "records", name))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if tm, ok := lineTime([]byte(line)); ok && !tm.IsZero() {
				out[line[len(`{"id":"`):len(`{"id":"`)+26]] = name
			}
		}
	}
	return out
}

func TestCommitReturnsOnlyAfterAnFsyncThatFollowedItsRename(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	var clock atomic.Int64
	var syncs []span
	fs := clockFS{clock: &clock, mu: &sync.Mutex{}, renamed: map[string]int64{}, syncs: &syncs}
	s.fs = fs

	const workers, each = 8, 25
	type result struct {
		id       string
		returned int64
	}
	results := make(chan result, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				id := ulid.Make().String()
				if err := s.Commit(id, fmt.Appendf(nil, `{"id":%q}`, id)); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
				results <- result{id, clock.Add(1)}
			}
		})
	}
	wg.Wait()
	close(results)

	groups := groupOf(t, dir)
	n := 0
	for r := range results {
		n++
		g, ok := groups[r.id]
		if !ok {
			t.Errorf("record %s returned from Commit but is in no group file", r.id)
			continue
		}
		renamed := fs.renamed[g]
		covered := slices.ContainsFunc(syncs, func(sp span) bool {
			return sp.ok && sp.start > renamed && sp.end < r.returned
		})
		if !covered {
			t.Errorf("record %s (group %s renamed at %d, returned at %d) had no directory fsync in between", r.id, g, renamed, r.returned)
		}
	}
	if n != workers*each || len(groups) != n {
		t.Fatalf("%d commits returned and %d records on disk, want %d", n, len(groups), workers*each)
	}
	if u := s.Usage(); u.Records != n {
		t.Errorf("usage counts %d records, want %d", u.Records, n)
	}
	// Not asserted, since scheduling decides it, but the point of the exercise.
	t.Logf("%d commits shared %d group files and %d directory fsyncs", n, len(fs.renamed), len(syncs))
}

// gateFS holds each records/ directory fsync until the test lets it go, and can fail it.
type gateFS struct {
	osFS
	entered chan struct{}
	release chan error // what the held fsync returns; nil lets the real fsync run
}

func (f gateFS) SyncDir(dir string) error {
	f.entered <- struct{}{}
	if err := <-f.release; err != nil {
		return err
	}
	return f.osFS.SyncDir(dir)
}

// While one round is being written, every Commit that arrives joins the next round, and that
// round is one file with one file fsync and one directory fsync for all of them. A failed
// round fails all of its members and leaves no file.
func TestCommitsWaitingTogetherShareOneFile(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	fs := gateFS{entered: make(chan struct{}), release: make(chan error)}
	s.fs = fs
	commit := func(ch chan<- error) string {
		id := ulid.Make().String()
		go func() { ch <- s.Commit(id, fmt.Appendf(nil, `{"id":%q}`, id)) }()
		return id
	}
	first := make(chan error, 1)
	firstID := commit(first)
	<-fs.entered // round 1 is at its directory fsync

	const k = 20
	rest := make(chan error, k)
	for range k {
		commit(rest)
	}
	waitQueued(t, s.commits, k)
	fs.release <- nil
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	<-fs.entered // round 2: all k
	fs.release <- errInjected
	for range k {
		if err := <-rest; !errors.Is(err, errInjected) {
			t.Errorf("a member of the failed round got %v, want the injected fault", err)
		}
	}
	if got := groupOf(t, dir); len(got) != 1 || got[firstID] == "" {
		t.Errorf("records on disk = %v, want only the first round's", got)
	}

	// The same again, succeeding (in however many rounds they arrive).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-fs.entered:
				fs.release <- nil
			case <-stop:
				return
			}
		}
	}()
	for range k {
		commit(rest)
	}
	for range k {
		if err := <-rest; err != nil {
			t.Fatal(err)
		}
	}
	files := names(t, filepath.Join(dir, "records"))
	if len(files) < 2 {
		t.Fatalf("records/ = %v", files)
	}
	if got := groupOf(t, dir); len(got) != k+1 {
		t.Errorf("%d records on disk, want %d", len(got), k+1)
	}
	if p, _ := s.Pending(); len(p) != len(files) || s.Usage().Records != k+1 {
		t.Errorf("Pending = %+v, usage %+v; want %d groups holding %d records", p, s.Usage(), len(files), k+1)
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

// roundFS fails one step of the first commit round: the first temp file created in tmp/, its
// rename, or the records/ directory fsync that follows that rename. Other rounds are left
// alone, so commits racing the faulty round must either land whole or fail whole.
type roundFS struct {
	osFS
	step        string
	created     *atomic.Int32
	victim      *atomic.Value // the faulty round's temp file name
	armed       *atomic.Bool  // the faulty round's rename happened; its directory fsync fails
	failRemoval bool          // also fail removing the faulty round's file from records/
}

func (f roundFS) CreateTemp(dir, pattern string) (tempFile, error) {
	if f.created.Add(1) != 1 {
		return f.osFS.CreateTemp(dir, pattern)
	}
	if f.step == "create" {
		return nil, errInjected
	}
	tf, err := f.osFS.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	f.victim.Store(tf.Name())
	return faultFile{File: tf, Step: f.step}, nil
}

func (f roundFS) Rename(oldpath, newpath string) error {
	if v, _ := f.victim.Load().(string); v != oldpath {
		return f.osFS.Rename(oldpath, newpath)
	}
	if f.step == "rename" {
		return errInjected
	}
	f.victim.Store(newpath)
	err := f.osFS.Rename(oldpath, newpath)
	if f.step == "syncdir" {
		f.armed.Store(true)
	}
	return err
}

func (f roundFS) SyncDir(dir string) error {
	if f.step == "syncdir" && f.armed.CompareAndSwap(true, false) {
		return errInjected
	}
	return f.osFS.SyncDir(dir)
}

func (f roundFS) Remove(name string) error {
	if v, _ := f.victim.Load().(string); f.failRemoval && v == name {
		return errInjected
	}
	return f.osFS.Remove(name)
}

func newRoundFS(step string) roundFS {
	return roundFS{step: step, created: new(atomic.Int32), victim: new(atomic.Value), armed: new(atomic.Bool)}
}

func TestConcurrentCommitFaults(t *testing.T) {
	for _, step := range []string{"create", "write", "fsync", "rename", "syncdir"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openTest(t, dir)
			ids := make([]string, 16)
			for i := range ids {
				ids[i] = ulid.Make().String()
			}
			s.fs = newRoundFS(step)

			errs := make([]error, len(ids))
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Go(func() {
					<-start
					errs[i] = s.Commit(id, fmt.Appendf(nil, `{"id":%q}`, id))
				})
			}
			close(start)
			wg.Wait()

			var committed []string
			failed := 0
			for i, id := range ids {
				switch err := errs[i]; {
				case err == nil:
					committed = append(committed, id)
				case errors.Is(err, errInjected):
					failed++
				default:
					t.Errorf("Commit %s = %v, want nil or the injected fault", id, err)
				}
			}
			if failed == 0 {
				t.Fatalf("no Commit failed despite the %s fault", step)
			}
			slices.Sort(committed)
			check := func(s *Spool, when string) {
				t.Helper()
				got := slices.Sorted(maps.Keys(groupOf(t, dir)))
				if !slices.Equal(got, committed) {
					t.Errorf("%s: records on disk = %v\nwant exactly the committed %v", when, got, committed)
				}
				if got := names(t, filepath.Join(dir, "tmp")); len(got) != 0 {
					t.Errorf("%s: tmp/ = %v, want empty", when, got)
				}
				if u := s.Usage(); u.Records != len(committed) || u.Broken != 0 {
					t.Errorf("%s: usage = %+v, want %d records, none broken", when, u, len(committed))
				}
				p, err := s.Pending()
				n := 0
				for _, e := range p {
					n += e.Records
				}
				if err != nil || n != len(committed) {
					t.Errorf("%s: Pending = %v, %v; want the %d committed", when, p, err, len(committed))
				}
			}
			check(s, "after the commits")
			s.fs = osFS{}
			s2, _ := openTest(t, dir)
			check(s2, "after reopening")
		})
	}
}

func TestRecordThatCannotBeWithdrawnIsCountedAndSent(t *testing.T) {
	dir := t.TempDir()
	s, logs := openTest(t, dir)
	id := ulid.Make().String()
	fs := newRoundFS("syncdir")
	fs.failRemoval = true
	s.fs = fs
	if err := s.Commit(id, []byte(`{"a":1}`)); !errors.Is(err, errInjected) {
		t.Fatalf("Commit = %v, want the injected fault", err)
	}
	// The sender was told 451 and will retry under a new id; this copy goes out anyway, a
	// duplicate the pipeline sees under two ids. What must not happen is a file the spool
	// does not know about.
	if u := s.Usage(); u.Records != 1 || u.RecordBytes != 8 { // len(`{"a":1}` + "\n") = 8
		t.Errorf("usage = %+v, want the leftover counted: 1 record of 8 bytes", u)
	}
	p, err := s.Pending()
	if err != nil || len(p) != 1 || p[0].Records != 1 {
		t.Fatalf("Pending = %v, %v; want the leftover", p, err)
	}
	if !strings.Contains(logs.String(), p[0].ID) {
		t.Errorf("the leftover group %s is not logged:\n%s", p[0].ID, logs)
	}
}

// blockFS holds every directory fsync until release is closed.
type blockFS struct {
	osFS
	entered chan struct{}
	release chan struct{}
}

func (f blockFS) SyncDir(dir string) error {
	select {
	case f.entered <- struct{}{}:
	default:
	}
	<-f.release
	return f.osFS.SyncDir(dir)
}

func TestRecordIsInvisibleUntilCommitted(t *testing.T) {
	dir := t.TempDir()
	s, _ := openTest(t, dir)
	fs := blockFS{entered: make(chan struct{}, 1), release: make(chan struct{})}
	s.fs = fs
	id := ulid.Make().String()
	done := make(chan error, 1)
	go func() { done <- s.Commit(id, []byte(`{"first":1}`)) }()
	<-fs.entered

	// Renamed into records/ but its directory fsync has not finished: not committed yet.
	if got := names(t, filepath.Join(dir, "records")); len(got) != 1 {
		t.Fatalf("records/ = %v, want the renamed file", got)
	}
	if p, err := s.Pending(); err != nil || len(p) != 0 {
		t.Errorf("Pending mid-commit = %v, %v; want nothing", p, err)
	}
	if u := s.Usage(); u.Records != 0 {
		t.Errorf("usage mid-commit = %+v, want nothing counted", u)
	}

	close(fs.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p, err := s.Pending(); err != nil || len(p) != 1 || p[0].Records != 1 {
		t.Errorf("Pending after commit = %v, %v; want one group", p, err)
	}
	if got := groupLines(t, dir); !slices.Equal(got, []string{"{\"first\":1}\n"}) {
		t.Errorf("records = %q; want the line", got)
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
	// Broken: asDir's .broken and stuck's pre-existing .broken directory; the stuck one
	// itself stays under its record name.
	want := Usage{Records: 1, RecordBytes: 3, Batches: 1, BatchBytes: int64(len("not gzip")), Broken: 2, DeadLetters: 2}
	if u != want {
		t.Errorf("usage = %+v\nwant %+v", u, want)
	}
	if got := names(t, filepath.Join(dir, "records")); !slices.Contains(got, asDir+".ndjson.broken") {
		t.Errorf("records/ = %v, want the directory set aside as %s.ndjson.broken", got, asDir)
	}
	if p, err := s.Pending(); err != nil || len(p) != 1 || p[0].ID != good {
		t.Errorf("Pending = %v, %v; want only %s", p, err, good)
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
