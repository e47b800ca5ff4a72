package enforce

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// memProvider is a mailbox platform in memory, for the engine's unit tests: folders by
// name, groups, and knobs for throttling, transient failures, late delivery and a crash.
type memProvider struct {
	mu       sync.Mutex
	boxes    map[string]map[string]*memMsg // mailbox → ref → message
	groups   map[string][]string
	throttle map[string]time.Duration // mailbox → the next call is throttled this long
	failures map[string]int           // mailbox → transient failures to give
	hidden   map[string]int           // mailbox → finds that see nothing yet
	calls    map[string][]time.Time   // mailbox → when each Find ran
	applies  int
	// onApply, when set, runs after a change is made, and its error is returned.
	onApply func(mailbox string) error
}

type memMsg struct {
	id     string
	folder string
	tags   []string
}

func newMemProvider() *memProvider {
	return &memProvider{boxes: map[string]map[string]*memMsg{}, groups: map[string][]string{}, throttle: map[string]time.Duration{},
		failures: map[string]int{}, hidden: map[string]int{}, calls: map[string][]time.Time{}}
}

func (p *memProvider) deliver(mailbox, ref, messageID string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.boxes[mailbox] == nil {
		p.boxes[mailbox] = map[string]*memMsg{}
	}
	p.boxes[mailbox][ref] = &memMsg{id: messageID, folder: "inbox"}
}

func (p *memProvider) folder(mailbox, ref string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.boxes[mailbox][ref]; m != nil {
		return m.folder
	}
	return "(gone)"
}

func (p *memProvider) Name() string { return "graph" }

func (p *memProvider) gate(mailbox string) error {
	if d := p.throttle[mailbox]; d > 0 {
		delete(p.throttle, mailbox)
		return &ThrottledError{RetryAfter: d, Detail: "429"}
	}
	if p.failures[mailbox] > 0 {
		p.failures[mailbox]--
		return fmt.Errorf("503 Service Unavailable: %w", ErrTransient)
	}
	return nil
}

func (p *memProvider) Find(_ context.Context, mailbox, messageID string) ([]Copy, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[mailbox] = append(p.calls[mailbox], time.Now())
	if err := p.gate(mailbox); err != nil {
		return nil, err
	}
	if p.hidden[mailbox] > 0 {
		p.hidden[mailbox]--
		return nil, nil
	}
	var out []Copy
	for ref, m := range p.boxes[mailbox] {
		if m.id == messageID {
			out = append(out, Copy{Ref: ref, Folder: m.folder, Labels: slices.Clone(m.tags)})
		}
	}
	return out, nil
}

func (p *memProvider) Apply(_ context.Context, mailbox string, c Copy, s Step) (Result, error) {
	p.mu.Lock()
	if err := p.gate(mailbox); err != nil {
		p.mu.Unlock()
		return Result{}, err
	}
	m := p.boxes[mailbox][c.Ref]
	if m == nil {
		p.mu.Unlock()
		return Result{}, errors.New("404")
	}
	target := map[Action]string{Quarantine: "Quarantine", Delete: "deleteditems", HardDelete: "(purged)", Restore: s.From}[s.Action]
	res := Result{Status: Already, Ref: c.Ref, From: m.folder}
	switch {
	case s.Action == Tag:
		if !slices.Contains(m.tags, s.Tag) {
			res.Status = Done
			if !s.Observe {
				m.tags = append(m.tags, s.Tag)
			}
		}
	case m.folder != target:
		res.Status = Done
		if !s.Observe {
			m.folder = target
		}
	}
	if res.Status == Done && !s.Observe {
		p.applies++
	}
	hook := p.onApply
	p.mu.Unlock()
	if hook != nil {
		if err := hook(mailbox); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

func (p *memProvider) Members(_ context.Context, address string) ([]string, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.groups[address]
	return m, ok, nil
}

// memFeed serves verdicts by position (the cursor is the count served) and keeps outcomes.
type memFeed struct {
	mu       sync.Mutex
	verdicts []Verdict
	outcomes []Outcome
	afters   []string
	// poison is a recipient whose outcome the pipeline refuses (422), with the whole batch.
	poison string
}

func (f *memFeed) add(v ...Verdict) {
	f.mu.Lock()
	f.verdicts = append(f.verdicts, v...)
	f.mu.Unlock()
}

func (f *memFeed) Verdicts(_ context.Context, after string, limit int) ([]Verdict, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.afters = append(f.afters, after)
	i := 0
	if after != "" {
		i, _ = strconv.Atoi(after)
	}
	j := min(len(f.verdicts), i+limit)
	return slices.Clone(f.verdicts[i:j]), strconv.Itoa(j), nil
}

func (f *memFeed) Report(_ context.Context, o []Outcome) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.poison != "" && slices.ContainsFunc(o, func(x Outcome) bool { return x.Recipient == f.poison }) {
		return &RefusedError{Status: 422, err: errors.New("422 Unprocessable Entity: /recipient")}
	}
	f.outcomes = append(f.outcomes, o...)
	return nil
}

// outcome waits for the reported outcome of (verdict, recipient).
func (f *memFeed) outcome(t *testing.T, verdict, rcpt string) Outcome {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		f.mu.Lock()
		for _, o := range f.outcomes {
			if o.VerdictID == verdict && o.Recipient == rcpt {
				f.mu.Unlock()
				return o
			}
		}
		f.mu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no outcome for %s/%s; reported: %+v", verdict, rcpt, f.reported())
	return Outcome{}
}

func (f *memFeed) reported() []Outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.outcomes)
}

type engineKit struct {
	feed *memFeed
	prov *memProvider
	cfg  Config
}

func newKit(t *testing.T) *engineKit {
	k := &engineKit{feed: &memFeed{}, prov: newMemProvider()}
	k.cfg = Config{Feed: k.feed, JournalPath: filepath.Join(t.TempDir(), "enforce", "journal.ndjson"),
		Route: func(r string) Provider {
			if strings.HasSuffix(r, "@contoso.com") {
				return k.prov
			}
			return nil
		},
		Poll: 10 * time.Millisecond, FindWindow: time.Second, FindRetry: 20 * time.Millisecond}
	return k
}

// run starts an engine on the kit's journal; stop ends it and waits.
func (k *engineKit) run(t *testing.T) (stop func()) {
	t.Helper()
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func TestEngineQuarantinesEveryRecipientAndRestores(t *testing.T) {
	k := newKit(t)
	for _, m := range []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"} {
		k.prov.deliver(m, "ref-"+m, "<m1@example.org>")
	}
	k.prov.groups["team@contoso.com"] = []string{"b@contoso.com", "c@contoso.com"}
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m1@example.org>",
		Recipients: []string{"A@contoso.com", "team@contoso.com", "x@fabrikam.net"}})
	k.run(t)

	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done || o.FromFolder != "inbox" || o.MessageRef != "ref-a@contoso.com" || o.Provider != "graph" {
		t.Errorf("a: %+v", o)
	}
	if o := k.feed.outcome(t, "v1", "x@fabrikam.net"); o.Status != Skipped || !strings.Contains(o.Detail, "external") {
		t.Errorf("external: %+v", o)
	}
	if o := k.feed.outcome(t, "v1", "team@contoso.com"); o.Status != Skipped || !strings.Contains(o.Detail, "2 members") {
		t.Errorf("group: %+v", o)
	}
	for _, m := range []string{"b@contoso.com", "c@contoso.com"} {
		if o := k.feed.outcome(t, "v1", m); o.Status != Done {
			t.Errorf("%s, a member known only through the group: %+v", m, o)
		}
	}
	for _, m := range []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"} {
		if f := k.prov.folder(m, "ref-"+m); f != "Quarantine" {
			t.Errorf("%s: folder %q after quarantine", m, f)
		}
	}

	k.feed.add(Verdict{ID: "v2", Action: Restore, Undo: "v1", MessageID: "<m1@example.org>",
		Recipients: []string{"a@contoso.com", "team@contoso.com"}})
	k.feed.outcome(t, "v2", "c@contoso.com")
	for _, m := range []string{"a@contoso.com", "b@contoso.com", "c@contoso.com"} {
		if o := k.feed.outcome(t, "v2", m); o.Status != Done {
			t.Errorf("restore %s: %+v", m, o)
		}
		if f := k.prov.folder(m, "ref-"+m); f != "inbox" {
			t.Errorf("%s: folder %q after restore, want inbox", m, f)
		}
	}
}

// The same verdict served twice (a feed that repeats a page) is acted on once.
func TestEngineActsOnAVerdictOnce(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	v := Verdict{ID: "v1", Action: Tag, Tag: "Phish", MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}}
	k.feed.add(v, v)
	k.run(t)
	k.feed.outcome(t, "v1", "a@contoso.com")
	time.Sleep(100 * time.Millisecond)
	if n := len(k.feed.reported()); n != 1 {
		t.Errorf("%d outcomes reported, want 1: %+v", n, k.feed.reported())
	}
}

// A throttled mailbox waits exactly as long as asked, and does not hold up another.
func TestEngineThrottledMailboxWaitsAlone(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("slow@contoso.com", "r1", "<m@x>")
	k.prov.deliver("fast@contoso.com", "r2", "<m@x>")
	k.prov.throttle["slow@contoso.com"] = 400 * time.Millisecond
	k.feed.add(Verdict{ID: "v1", Action: Delete, MessageID: "<m@x>", Recipients: []string{"slow@contoso.com", "fast@contoso.com"}})
	start := time.Now()
	k.run(t)
	fast := k.feed.outcome(t, "v1", "fast@contoso.com")
	slow := k.feed.outcome(t, "v1", "slow@contoso.com")
	if fast.Status != Done || slow.Status != Done {
		t.Fatalf("fast %+v slow %+v", fast, slow)
	}
	if !fast.At.Before(slow.At) || fast.At.Sub(start) > 300*time.Millisecond {
		t.Errorf("the other mailbox waited: fast at +%v, slow at +%v", fast.At.Sub(start), slow.At.Sub(start))
	}
	k.prov.mu.Lock()
	calls := k.prov.calls["slow@contoso.com"]
	k.prov.mu.Unlock()
	if len(calls) < 2 || calls[1].Sub(calls[0]) < 400*time.Millisecond {
		t.Errorf("retried after %v, before the 400ms Retry-After", calls[1].Sub(calls[0]))
	}
}

// A transient failure is retried; a copy not in the mailbox yet is looked for again within
// the find window, and not_found only after it.
func TestEngineRetriesTransientAndLateDelivery(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	k.prov.deliver("late@contoso.com", "r2", "<m@x>")
	k.prov.failures["a@contoso.com"] = 1
	k.prov.hidden["late@contoso.com"] = 3
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com", "late@contoso.com", "never@contoso.com"}})
	start := time.Now()
	k.run(t)
	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done {
		t.Errorf("after a 503: %+v", o)
	}
	if o := k.feed.outcome(t, "v1", "late@contoso.com"); o.Status != Done {
		t.Errorf("late delivery: %+v", o)
	}
	o := k.feed.outcome(t, "v1", "never@contoso.com")
	if o.Status != NotFound || time.Since(start) < time.Second {
		t.Errorf("never delivered: %+v after %v, want not_found after the 1s window", o, time.Since(start))
	}
}

func TestEngineObserveAndHardDeleteGuard(t *testing.T) {
	k := newKit(t)
	k.cfg.Observe = true
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}},
		Verdict{ID: "v2", Action: HardDelete, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}})
	k.run(t)
	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done || !strings.Contains(o.Detail, "would quarantine") {
		t.Errorf("observe: %+v", o)
	}
	if o := k.feed.outcome(t, "v2", "a@contoso.com"); o.Status != Skipped || !strings.Contains(o.Detail, "--allow-hard-delete") {
		t.Errorf("hard delete: %+v", o)
	}
	if f := k.prov.folder("a@contoso.com", "r1"); f != "inbox" || k.prov.applies != 0 {
		t.Errorf("observe changed the mailbox: folder %q, %d changes", f, k.prov.applies)
	}
}

// A crash after the move and before its outcome was journaled: the restarted engine
// reports the move as done, with the folder the copy came from, so that a restore still
// puts it back; and it asks the feed from the cursor it had journaled.
func TestEngineCrashAfterTheMoveLosesNothing(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	crashed := make(chan struct{})
	k.prov.onApply = func(string) error {
		close(crashed)
		select {} // the process dies here
	}
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}})
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = e.Run(ctx) }()
	<-crashed
	cancel() // all but the stuck worker stop
	// The first engine is stuck for good, as a killed process would be; its journal is
	// what a restart reads.
	if f := k.prov.folder("a@contoso.com", "r1"); f != "Quarantine" {
		t.Fatalf("folder %q", f)
	}
	k.prov.mu.Lock()
	k.prov.onApply = nil
	k.prov.mu.Unlock()
	k.feed.mu.Lock()
	k.feed.afters = nil
	k.feed.mu.Unlock()
	k.run(t)
	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done || o.FromFolder != "inbox" {
		t.Errorf("after the restart: %+v, want done from inbox", o)
	}
	k.feed.mu.Lock()
	afters := slices.Clone(k.feed.afters)
	k.feed.mu.Unlock()
	if len(afters) == 0 || afters[0] != "1" {
		t.Errorf("the restarted engine asked the feed after %q, want the journaled cursor 1", afters)
	}
	k.feed.add(Verdict{ID: "v2", Action: Restore, Undo: "v1", Recipients: []string{"a@contoso.com"}})
	if o := k.feed.outcome(t, "v2", "a@contoso.com"); o.Status != Done {
		t.Errorf("restore: %+v", o)
	}
	if f := k.prov.folder("a@contoso.com", "r1"); f != "inbox" {
		t.Errorf("folder %q after restore", f)
	}
	if n := len(k.feed.reported()); n != 2 {
		t.Errorf("%d outcomes, want one each: %+v", n, k.feed.reported())
	}
}

func TestJournalTornTailAndCorruptLine(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "journal.ndjson")
	good := `{"k":"page","cursor":"3","verdicts":[{"id":"v1","action":"delete","message_id":"<m@x>","recipients":["a@contoso.com"]}],"at":"2026-12-01T00:00:00Z"}` + "\n"
	if err := os.WriteFile(path, []byte(good+`{"k":"outcome","verdict":"v1","rc`), 0o600); err != nil {
		t.Fatal(err)
	}
	k := newKit(t)
	k.cfg.JournalPath = path
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatalf("a torn last line (a crash mid-append) must be ignored: %v", err)
	}
	if s := e.Snapshot(); s.Cursor != "3" || s.Backlog != 1 {
		t.Errorf("replayed %+v, want cursor 3 and one open recipient", s)
	}
	e.j.close()

	if err := os.WriteFile(path, []byte(good+"not json\n"+good), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(k.cfg); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), path) {
		t.Errorf("a corrupt line: %v, want an error naming the file and line 2", err)
	}
}

// A hard delete that went through before a crash kept its outcome from the journal: the
// purged copy cannot be found again, and that is the proof it is done, not not_found after
// the find window.
func TestEngineHardDeleteBeforeACrashIsDone(t *testing.T) {
	k := newKit(t)
	k.cfg.AllowHardDelete = true
	k.cfg.FindWindow = time.Hour
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	crashed := make(chan struct{})
	k.prov.onApply = func(string) error {
		k.prov.mu.Lock()
		delete(k.prov.boxes["a@contoso.com"], "r1") // purged
		k.prov.mu.Unlock()
		close(crashed)
		select {}
	}
	k.feed.add(Verdict{ID: "v1", Action: HardDelete, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}})
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = e.Run(ctx) }()
	<-crashed
	cancel()
	k.prov.mu.Lock()
	k.prov.onApply = nil
	k.prov.mu.Unlock()
	k.run(t)
	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done || o.MessageRef != "r1" {
		t.Errorf("after the restart: %+v, want done", o)
	}
}

// Two copies of one message in one mailbox, in different folders: the quarantine takes both,
// the restore puts each back where it was.
func TestEngineRestoresEachCopyToItsOwnFolder(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	k.prov.deliver("a@contoso.com", "r2", "<m@x>")
	k.prov.mu.Lock()
	k.prov.boxes["a@contoso.com"]["r2"].folder = "junkemail"
	k.prov.mu.Unlock()
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}})
	k.run(t)
	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done {
		t.Fatalf("quarantine: %+v", o)
	}
	k.feed.add(Verdict{ID: "v2", Action: Restore, Undo: "v1", Recipients: []string{"a@contoso.com"}})
	if o := k.feed.outcome(t, "v2", "a@contoso.com"); o.Status != Done {
		t.Fatalf("restore: %+v", o)
	}
	if f1, f2 := k.prov.folder("a@contoso.com", "r1"), k.prov.folder("a@contoso.com", "r2"); f1 != "inbox" || f2 != "junkemail" {
		t.Errorf("after restore: r1 in %q, r2 in %q; want inbox and junkemail", f1, f2)
	}
}

// A restore that arrives while the action it undoes is still waiting (the copy not yet in
// the mailbox) undoes it once it lands, rather than skipping and leaving it quarantined.
func TestEngineRestoreWaitsForTheActionItUndoes(t *testing.T) {
	k := newKit(t)
	k.cfg.FindWindow = 5 * time.Second
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	k.prov.hidden["a@contoso.com"] = 8 // not visible for the first looks
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}},
		Verdict{ID: "v2", Action: Restore, Undo: "v1", Recipients: []string{"a@contoso.com"}})
	k.run(t)
	if o := k.feed.outcome(t, "v2", "a@contoso.com"); o.Status != Done {
		t.Fatalf("restore: %+v, want done after the quarantine it undoes", o)
	}
	if o := k.feed.outcome(t, "v1", "a@contoso.com"); o.Status != Done {
		t.Fatalf("quarantine: %+v", o)
	}
	if f := k.prov.folder("a@contoso.com", "r1"); f != "inbox" {
		t.Errorf("folder %q at the end, want inbox", f)
	}
}

// An outcome the pipeline refuses does not hold up the others: they are delivered, and the
// refused one is dropped rather than sent for ever.
func TestEngineRefusedOutcomeDoesNotBlockTheOthers(t *testing.T) {
	k := newKit(t)
	k.feed.poison = "bad@fabrikam.net"
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@fabrikam.net", "bad@fabrikam.net", "c@fabrikam.net"}})
	k.run(t)
	k.feed.outcome(t, "v1", "a@fabrikam.net")
	k.feed.outcome(t, "v1", "c@fabrikam.net")
	k.feed.add(Verdict{ID: "v2", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"d@fabrikam.net"}})
	k.feed.outcome(t, "v2", "d@fabrikam.net")
	for _, o := range k.feed.reported() {
		if o.Recipient == "bad@fabrikam.net" {
			t.Errorf("the refused outcome was delivered: %+v", o)
		}
	}
}

type stubIndex map[string][]string

func (s stubIndex) Recipients(id string) []string { return s[id] }

// A verdict without recipients is served from the sensor's index of its recent copies.
func TestEngineTakesRecipientsFromTheIndex(t *testing.T) {
	k := newKit(t)
	k.cfg.Index = stubIndex{"<m@x>": {"A@contoso.com", "b@contoso.com"}}
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	k.prov.deliver("b@contoso.com", "r2", "<m@x>")
	k.feed.add(Verdict{ID: "v1", Action: Delete, MessageID: "<m@x>"})
	k.run(t)
	for _, r := range []string{"a@contoso.com", "b@contoso.com"} {
		if o := k.feed.outcome(t, "v1", r); o.Status != Done {
			t.Errorf("%s: %+v", r, o)
		}
	}
}

// A journal that failed to write stops: nothing after the failed group is written (a line
// after a torn one would make the file unreadable at the next start), every waiter gets the
// error, and Snapshot says so.
func TestJournalStopsAfterAFailedWrite(t *testing.T) {
	k := newKit(t)
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.j.f.Close() // every write now fails
	if err := e.j.append(entry{Kind: "cursor", Cursor: "1"}); err == nil {
		t.Fatal("a write to a closed file succeeded")
	}
	reopened, err := os.OpenFile(e.j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	e.j.f = reopened
	if err := e.j.append(entry{Kind: "cursor", Cursor: "2"}); err == nil {
		t.Error("the journal wrote again after a failure")
	}
	if s := e.Snapshot(); s.JournalError == "" {
		t.Errorf("Snapshot does not show the journal's failure: %+v", s)
	}
	b, _ := os.ReadFile(e.j.path)
	if strings.Contains(string(b), `"cursor":"2"`) {
		t.Errorf("written after the failure:\n%s", b)
	}
}

// A long-running sensor compacts its journal: finished, reported verdicts older than the
// window go, the rest stays and a restart still knows it.
func TestEngineCompactsWhileRunning(t *testing.T) {
	k := newKit(t)
	now := time.Now()
	var mu sync.Mutex
	k.cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	k.cfg.Window = time.Hour
	k.cfg.CompactEvery = 20 * time.Millisecond
	k.cfg.CompactBytes = 1
	k.prov.deliver("a@contoso.com", "r1", "<old@x>")
	k.prov.deliver("a@contoso.com", "r2", "<new@x>")
	k.feed.add(Verdict{ID: "old", Action: Quarantine, MessageID: "<old@x>", Recipients: []string{"a@contoso.com"}})
	stop := k.run(t)
	k.feed.outcome(t, "old", "a@contoso.com")
	mu.Lock()
	now = now.Add(2 * time.Hour)
	mu.Unlock()
	k.feed.add(Verdict{ID: "new", Action: Quarantine, MessageID: "<new@x>", Recipients: []string{"a@contoso.com"}})
	k.feed.outcome(t, "new", "a@contoso.com")
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(k.cfg.JournalPath)
		if !strings.Contains(string(b), `"id":"old"`) && strings.Contains(string(b), `"id":"new"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("journal not compacted:\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	// The restarted engine still knows "new" (a repeat is not acted on) and its cursor.
	k.feed.add(Verdict{ID: "new", Action: Quarantine, MessageID: "<new@x>", Recipients: []string{"a@contoso.com"}})
	k.run(t)
	time.Sleep(100 * time.Millisecond)
	n := 0
	for _, o := range k.feed.reported() {
		if o.VerdictID == "new" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("verdict new reported %d times after compaction and restart, want 1", n)
	}
}

// Each final outcome is one observation of the verdict-to-outcome histogram.
func TestEngineObservesEachOutcomesLatency(t *testing.T) {
	k := newKit(t)
	k.feed.add(Verdict{ID: "v1", Action: Delete, MessageID: "<m@x>", Recipients: []string{"x@fabrikam.net", "y@fabrikam.net"}})
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	k.feed.outcome(t, "v1", "x@fabrikam.net")
	k.feed.outcome(t, "v1", "y@fabrikam.net")
	cancel()
	<-done
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collectors()...)
	families, err := reg.Gather()
	if err != nil || len(families) != 1 || families[0].GetName() != "sensor_enforce_verdict_to_outcome_seconds" ||
		families[0].GetMetric()[0].GetHistogram().GetSampleCount() != 2 {
		t.Errorf("gathered %v %v; want the latency histogram with 2 observations", families, err)
	}
}
