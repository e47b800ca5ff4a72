package enforce

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// ctxProvider blocks Apply until ctx is done and returns ctx's error, as graph.go/gmail.go do.
type ctxProvider struct {
	*memProvider
	entered chan struct{}
	once    sync.Once
	block   bool
}

func (p *ctxProvider) Apply(ctx context.Context, mailbox string, c Copy, s Step) (Result, error) {
	if p.block {
		p.once.Do(func() { close(p.entered) })
		<-ctx.Done()
		return Result{}, fmt.Errorf("POST /x: %w", ctx.Err())
	}
	return p.memProvider.Apply(ctx, mailbox, c, s)
}

// A call cut short by the sensor stopping is not a failed action: the next start does it.
func TestEngineShutdownMidCallIsRetriedAfterRestart(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	cp := &ctxProvider{memProvider: k.prov, entered: make(chan struct{}), block: true}
	k.cfg.Route = func(string) Provider { return cp }
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}})
	e, err := NewEngine(k.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- e.Run(ctx) }()
	<-cp.entered
	cancel()
	<-done
	cp.block = false
	k.run(t)
	o := k.feed.outcome(t, "v1", "a@contoso.com")
	if o.Status != Done {
		t.Errorf("after a clean shutdown and restart: %+v; folder %s", o, k.prov.folder("a@contoso.com", "r1"))
	}
}

// throttleSecond throttles the Apply of ref r2 once.
type throttleSecond struct {
	*memProvider
	mu   sync.Mutex
	done bool
}

func (p *throttleSecond) Apply(ctx context.Context, mailbox string, c Copy, s Step) (Result, error) {
	p.mu.Lock()
	if c.Ref == "r2" && !p.done && s.Action == Quarantine {
		p.done = true
		p.mu.Unlock()
		return Result{}, &ThrottledError{RetryAfter: 20 * time.Millisecond, Detail: "429"}
	}
	p.mu.Unlock()
	return p.memProvider.Apply(ctx, mailbox, c, s)
}

// memProvider.Find iterates a map: make order deterministic r1 then r2.
func (p *throttleSecond) Find(ctx context.Context, mailbox, id string) ([]Copy, error) {
	cs, err := p.memProvider.Find(ctx, mailbox, id)
	if len(cs) == 2 && cs[0].Ref == "r2" {
		cs[0], cs[1] = cs[1], cs[0]
	}
	return cs, err
}

// Two copies, the second throttled once: the retry must not journal the first copy's
// quarantine folder as where it came from, or the restore leaves it quarantined.
func TestEngineRetryKeepsEachCopysOrigin(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("a@contoso.com", "r1", "<m@x>")
	k.prov.deliver("a@contoso.com", "r2", "<m@x>")
	tp := &throttleSecond{memProvider: k.prov}
	k.cfg.Route = func(string) Provider { return tp }
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"a@contoso.com"}})
	k.run(t)
	o := k.feed.outcome(t, "v1", "a@contoso.com")
	t.Logf("quarantine outcome: %+v", o)
	k.feed.add(Verdict{ID: "v2", Action: Restore, Undo: "v1", Recipients: []string{"a@contoso.com"}})
	o2 := k.feed.outcome(t, "v2", "a@contoso.com")
	t.Logf("restore outcome: %+v", o2)
	if f1, f2 := k.prov.folder("a@contoso.com", "r1"), k.prov.folder("a@contoso.com", "r2"); f1 != "inbox" || f2 != "inbox" {
		t.Errorf("after restore: r1 in %q, r2 in %q; want both inbox", f1, f2)
	}
}

// flakyMembers fails Members for the group once (transient), only on the first call.
type flakyMembers struct {
	*memProvider
	mu    sync.Mutex
	fails int
}

func (p *flakyMembers) Members(ctx context.Context, a string) ([]string, bool, error) {
	p.mu.Lock()
	if a == "team@contoso.com" && p.fails > 0 {
		p.fails--
		p.mu.Unlock()
		return nil, false, fmt.Errorf("503: %w", ErrTransient)
	}
	p.mu.Unlock()
	return p.memProvider.Members(ctx, a)
}

// A restore to a group while the undone verdict has not expanded the group yet waits for it.
func TestEngineRestoreOfAGroupWaitsForItsExpansion(t *testing.T) {
	k := newKit(t)
	k.prov.deliver("b@contoso.com", "rb", "<m@x>")
	k.prov.groups["team@contoso.com"] = []string{"b@contoso.com"}
	fp := &flakyMembers{memProvider: k.prov, fails: 1}
	k.cfg.Route = func(string) Provider { return fp }
	k.cfg.Workers = 1
	k.feed.add(Verdict{ID: "v1", Action: Quarantine, MessageID: "<m@x>", Recipients: []string{"team@contoso.com"}},
		Verdict{ID: "v2", Action: Restore, Undo: "v1", Recipients: []string{"team@contoso.com"}})
	k.run(t)
	o1 := k.feed.outcome(t, "v1", "b@contoso.com")
	o2 := k.feed.outcome(t, "v2", "b@contoso.com")
	t.Logf("v1: %+v\nv2: %+v", o1, o2)
	if f := k.prov.folder("b@contoso.com", "rb"); f != "inbox" {
		t.Errorf("b's copy in %q after quarantine then restore; want inbox", f)
	}
}

// sameFeed answers a full page of known verdicts with the same cursor each time.
type sameFeed struct {
	memFeed
	calls int
	mu2   sync.Mutex
}

func (f *sameFeed) Verdicts(_ context.Context, after string, limit int) ([]Verdict, string, error) {
	f.mu2.Lock()
	f.calls++
	f.mu2.Unlock()
	var out []Verdict
	for i := range limit {
		out = append(out, Verdict{ID: fmt.Sprint("v", i), Action: Tag, Tag: "x", MessageID: "<m@x>", Recipients: []string{"ext@fabrikam.net"}})
	}
	return out, "c1", nil
}

// A full page that does not move the cursor waits --verdict-poll like an empty one.
func TestEngineFullPageWithoutProgressDoesNotSpin(t *testing.T) {
	k := newKit(t)
	f := &sameFeed{}
	k.cfg.Feed = f
	k.cfg.PageSize = 2
	k.cfg.Poll = time.Second
	stop := k.run(t)
	time.Sleep(300 * time.Millisecond)
	stop()
	f.mu2.Lock()
	defer f.mu2.Unlock()
	if f.calls > 5 {
		t.Errorf("%d feed calls in 300ms with --verdict-poll 1s", f.calls)
	}
}
