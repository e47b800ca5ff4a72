package enforce

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/journalsensor/sensor/internal/retry"
)

// Feed is the pipeline's side of enforcement: the verdicts to act on, and where outcomes go.
type Feed interface {
	// Verdicts returns the verdicts after cursor (empty: from the start), at most limit, and
	// the cursor that follows them.
	Verdicts(ctx context.Context, after string, limit int) (verdicts []Verdict, next string, err error)
	// Report delivers outcomes; the pipeline ignores one it already has.
	Report(ctx context.Context, outcomes []Outcome) error
}

// Index answers which recipients the sensor's recent records had for a Message-ID, for a
// verdict that names none.
type Index interface {
	Recipients(messageID string) []string
}

// Config configures an Engine. Zero values mean the documented defaults.
type Config struct {
	Feed Feed
	// Route returns the provider for a recipient's mailbox, nil when the recipient is in no
	// domain the sensor may act on (the outcome is then skipped).
	Route func(recipient string) Provider
	// Index serves verdicts without recipients; nil: such a verdict is skipped.
	Index Index
	// Observe looks every copy up and reports what would be done, changing nothing.
	Observe bool
	// AllowHardDelete lets hard_delete run; without it the outcome is skipped.
	AllowHardDelete bool
	// JournalPath is the action journal's file.
	JournalPath string
	// Poll is how often the feed is asked when its last page was not full. Default 5s.
	Poll time.Duration
	// FindWindow is how long a copy not found is looked for again before not_found is final:
	// a journal copy can reach the sensor before the mailbox has the message. Default 15m.
	FindWindow time.Duration
	// FindRetry is the wait between those looks. Default 30s.
	FindRetry time.Duration
	// Window is how long a verdict is remembered: a verdict seen again within it is not acted
	// on again, and a restore can undo it. Default 30 days.
	Window time.Duration
	// Workers is how many (verdict, recipient) run at once; each provider bounds its own
	// requests further. Default 8.
	Workers int
	// PageSize is the feed's limit parameter. Default 100.
	PageSize int
	// CompactEvery is how often the journal's size is looked at, and CompactBytes the size
	// past which it is rewritten with only what is still needed. Defaults 1h and 16 MiB.
	CompactEvery time.Duration
	CompactBytes int64
	Logger       *slog.Logger
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Engine pulls verdicts, journals them, acts on every recipient's copies through its
// provider, and reports each outcome. A throttled mailbox waits without holding up the
// others.
type Engine struct {
	cfg Config
	log *slog.Logger
	j   *journal

	// jmu orders journal writes against a rewrite: each append holds it shared, together
	// with the change to the state it records; a compaction holds it alone.
	jmu        sync.RWMutex
	mu         sync.Mutex
	cursor     string
	verdicts   map[string]*verdictState
	queue      []*task
	blocked    map[string]time.Time // mailbox → throttled until
	unreported []Outcome
	// changed is closed, and replaced, whenever a task is queued or an outcome waits to be
	// reported: every idle worker and the reporter wake up.
	changed  chan struct{}
	outcomes map[string]int64     // by "provider/status"
	latency  prometheus.Histogram // verdict taken to a recipient's final outcome
}

// verdictState is one verdict and the progress of its recipients.
type verdictState struct {
	V        Verdict
	At       time.Time                   // when the sensor took it from the feed
	members  []string                    // recipients added by expanding a group
	open     map[string]bool             // recipients without a final outcome
	outcomes map[string]Outcome          // final outcomes
	acting   map[string]map[string]entry // recipient → copy ref → where it was just before a change
	reported map[string]bool
}

// task is one recipient of one verdict waiting to be worked on.
type task struct {
	key      taskKey
	due      time.Time
	attempts int
	// firstMiss is when a look first found no copy; not journaled, so a restart gives a
	// late delivery a fresh window.
	firstMiss time.Time
}

// Stats is what /status and /metrics show of enforcement.
type Stats struct {
	Backlog    int // recipients without a final outcome
	Unreported int // outcomes the pipeline has not acknowledged
	Cursor     string
	Outcomes   map[string]int64 // by "provider/status"
	// JournalError is the write failure that stopped the action journal, and with it all
	// enforcement until a restart; "" while it works.
	JournalError string
}

// NewEngine replays the action journal and returns an engine ready to Run.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Feed == nil || cfg.Route == nil || cfg.JournalPath == "" {
		return nil, errors.New("enforce: Feed, Route and JournalPath are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Poll, 5*time.Second)
	def(&cfg.FindWindow, 15*time.Minute)
	def(&cfg.FindRetry, 30*time.Second)
	def(&cfg.Window, 30*24*time.Hour)
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = 100
	}
	def(&cfg.CompactEvery, time.Hour)
	if cfg.CompactBytes <= 0 {
		cfg.CompactBytes = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	e := &Engine{cfg: cfg, log: cfg.Logger, verdicts: map[string]*verdictState{}, blocked: map[string]time.Time{},
		changed: make(chan struct{}), outcomes: map[string]int64{},
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sensor_enforce_verdict_to_outcome_seconds",
			Help: "Time from taking a verdict from the feed to each recipient's final outcome.",
			// Half a second (a mailbox that answers at once) to an hour (the find window
			// and throttling at their longest).
			Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600},
		})}
	j, err := openJournal(cfg.JournalPath, e.replay, e.compact)
	if err != nil {
		return nil, err
	}
	e.j = j
	now := cfg.Now()
	for _, vs := range e.verdicts {
		for r := range vs.open {
			e.queue = append(e.queue, &task{key: taskKey{vs.V.ID, r}, due: now})
		}
		for r, o := range vs.outcomes {
			if !vs.reported[r] {
				e.unreported = append(e.unreported, o)
			}
		}
	}
	if n := len(e.queue) + len(e.unreported); n > 0 {
		e.log.Info("action journal replayed", "open", len(e.queue), "unreported", len(e.unreported), "cursor", e.cursor)
	}
	return e, nil
}

func (e *Engine) newState(v Verdict, at time.Time) *verdictState {
	vs := &verdictState{V: v, At: at, open: map[string]bool{}, outcomes: map[string]Outcome{},
		acting: map[string]map[string]entry{}, reported: map[string]bool{}}
	rcpts := v.Recipients
	if len(rcpts) == 0 {
		rcpts = []string{""} // a task of its own, to report that nobody could be acted on
	}
	for _, r := range rcpts {
		vs.open[r] = true
	}
	return vs
}

// replay applies one journal entry to the engine's state.
func (e *Engine) replay(en entry) error {
	switch en.Kind {
	case "page":
		for _, v := range en.Verdicts {
			if _, ok := e.verdicts[v.ID]; !ok {
				e.verdicts[v.ID] = e.newState(v, en.At)
			}
		}
		if en.Cursor != "" {
			e.cursor = en.Cursor
		}
	case "cursor":
		e.cursor = en.Cursor
	case "members", "acting", "outcome", "reported":
		if en.Kind == "reported" {
			for _, k := range en.Keys {
				if vs := e.verdicts[k.VerdictID]; vs != nil {
					vs.reported[k.Recipient] = true
				}
			}
			return nil
		}
		vs := e.verdicts[en.VerdictID]
		if vs == nil {
			return fmt.Errorf("%s entry for verdict %q, which no page entry brought", en.Kind, en.VerdictID)
		}
		switch en.Kind {
		case "members":
			for _, m := range en.Members {
				if _, done := vs.outcomes[m]; !done && !vs.open[m] {
					vs.open[m] = true
					vs.members = append(vs.members, m)
				}
			}
		case "acting":
			vs.setActing(en)
		case "outcome":
			if en.Outcome == nil {
				return errors.New("outcome entry without its outcome")
			}
			vs.outcomes[en.Recipient] = *en.Outcome
			delete(vs.open, en.Recipient)
		}
	default:
		return fmt.Errorf("unknown entry kind %q", en.Kind)
	}
	return nil
}

// compact is what the rewritten journal holds: the cursor, and every verdict still open,
// unreported or within the window, with its progress.
func (e *Engine) compact() []entry {
	horizon := e.cfg.Now().Add(-e.cfg.Window)
	out := []entry{{Kind: "cursor", Cursor: e.cursor}}
	ids := make([]string, 0, len(e.verdicts))
	for id := range e.verdicts {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b string) int { return e.verdicts[a].At.Compare(e.verdicts[b].At) })
	for _, id := range ids {
		vs := e.verdicts[id]
		allReported := len(vs.open) == 0 && len(vs.reported) == len(vs.outcomes)
		if allReported && vs.At.Before(horizon) {
			delete(e.verdicts, id)
			continue
		}
		out = append(out, entry{Kind: "page", Verdicts: []Verdict{vs.V}, At: vs.At})
		if len(vs.members) > 0 {
			out = append(out, entry{Kind: "members", VerdictID: id, Members: vs.members})
		}
		for _, r := range slices.Sorted(maps.Keys(vs.acting)) {
			if !vs.open[r] {
				continue
			}
			for _, ref := range slices.Sorted(maps.Keys(vs.acting[r])) {
				out = append(out, vs.acting[r][ref])
			}
		}
		var keys []taskKey
		for _, r := range slices.Sorted(maps.Keys(vs.outcomes)) {
			o := vs.outcomes[r]
			out = append(out, entry{Kind: "outcome", VerdictID: id, Recipient: r, Outcome: &o})
			if vs.reported[r] {
				keys = append(keys, taskKey{id, r})
			}
		}
		if len(keys) > 0 {
			out = append(out, entry{Kind: "reported", Keys: keys})
		}
	}
	return out
}

// Run polls the feed, works the queue and reports outcomes until ctx is done, then closes
// the journal. Work under way when ctx ends is finished by the next start.
func (e *Engine) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { e.poll(ctx) })
	wg.Go(func() { e.report(ctx) })
	wg.Go(func() { e.compactLoop(ctx) })
	for range e.cfg.Workers {
		wg.Go(func() { e.work(ctx) })
	}
	wg.Wait()
	return e.j.close()
}

func (e *Engine) signal() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
}

// changes returns the channel the next signal closes. Take it before looking for work, so
// that work queued in between is not missed.
func (e *Engine) changes() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changed
}

// poll takes pages from the feed. A page's new verdicts and the cursor after them are
// journaled in one entry before any is acted on: a crash before it re-reads the page, a
// crash after it finds the work in the journal.
func (e *Engine) poll(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		e.mu.Lock()
		cursor := e.cursor
		e.mu.Unlock()
		vs, next, err := e.cfg.Feed.Verdicts(ctx, cursor, e.cfg.PageSize)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("verdict feed unavailable; trying again", "error", err, "in", backoff)
			if !retry.Sleep(ctx, retry.Jitter(backoff)) {
				return
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		if err := e.take(vs, cursor, next); err != nil {
			e.log.Error("verdicts not journaled; not acted on", "error", err)
			if !retry.Sleep(ctx, retry.Jitter(backoff)) {
				return
			}
			continue
		}
		// Again at once only while full pages move the cursor on: a full page that does
		// not (a feed that repeats itself) waits like an empty one.
		if (len(vs) < e.cfg.PageSize || next == cursor) && !retry.Sleep(ctx, e.cfg.Poll) {
			return
		}
	}
}

// take journals a page and queues its new verdicts' recipients.
func (e *Engine) take(page []Verdict, cursor, next string) error {
	now := e.cfg.Now()
	e.mu.Lock()
	var fresh []Verdict
	seen := map[string]bool{}
	for _, v := range page {
		if _, ok := e.verdicts[v.ID]; ok || seen[v.ID] || v.ID == "" {
			continue // acted on once: the id is the idempotency key
		}
		seen[v.ID] = true
		if len(v.Recipients) == 0 && e.cfg.Index != nil {
			v.Recipients = e.cfg.Index.Recipients(v.MessageID)
		}
		v.Recipients = normalise(v.Recipients)
		fresh = append(fresh, v)
	}
	e.mu.Unlock()
	if len(fresh) == 0 && next == cursor {
		return nil
	}
	var states []*verdictState
	err := e.record(func() {
		if next != "" {
			e.cursor = next
		}
		for _, v := range fresh {
			vs := e.newState(v, now)
			e.verdicts[v.ID] = vs
			states = append(states, vs)
			for r := range vs.open {
				e.queue = append(e.queue, &task{key: taskKey{v.ID, r}, due: now})
			}
		}
	}, entry{Kind: "page", Cursor: next, Verdicts: fresh, At: now})
	if err != nil {
		return err
	}
	for _, vs := range states {
		e.log.Info("verdict taken", "verdict", vs.V.ID, "action", vs.V.Action, "message_id", vs.V.MessageID, "recipients", len(vs.open))
	}
	e.signal()
	return nil
}

func normalise(rcpts []string) []string {
	var out []string
	for _, r := range rcpts {
		if r = strings.ToLower(strings.TrimSpace(r)); r != "" && !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

// next takes the earliest due task whose mailbox is not throttled, or says how long to wait.
func (e *Engine) next() (*task, time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.cfg.Now()
	wait := time.Minute
	best := -1
	for i, t := range e.queue {
		due := t.due
		if until, ok := e.blocked[t.key.Recipient]; ok && until.After(due) {
			due = until
		}
		if !due.After(now) {
			if best < 0 || t.due.Before(e.queue[best].due) {
				best = i
			}
			continue
		}
		wait = min(wait, due.Sub(now))
	}
	if best < 0 {
		return nil, wait
	}
	t := e.queue[best]
	e.queue = slices.Delete(e.queue, best, best+1)
	return t, 0
}

func (e *Engine) work(ctx context.Context) {
	for ctx.Err() == nil {
		changed := e.changes()
		t, wait := e.next()
		if t == nil {
			timer := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-changed:
			case <-timer.C:
			}
			timer.Stop()
			continue
		}
		again, err := e.do(ctx, t)
		if ctx.Err() != nil {
			return // the journal has it; the next start finishes it
		}
		if err != nil {
			e.log.Error("action not journaled", "verdict", t.key.VerdictID, "recipient", t.key.Recipient, "error", err)
			again = e.cfg.Now().Add(retry.Jitter(time.Minute))
		}
		if !again.IsZero() {
			t.due, t.attempts = again, t.attempts+1
			e.mu.Lock()
			e.queue = append(e.queue, t)
			e.mu.Unlock()
		}
	}
}

// do works on one task: it returns when to try again (zero: finished), or an error when
// the journal could not be written.
func (e *Engine) do(ctx context.Context, t *task) (time.Time, error) {
	e.mu.Lock()
	vs := e.verdicts[t.key.VerdictID]
	v := vs.V
	acting := maps.Clone(vs.acting[t.key.Recipient]) // by copy ref
	e.mu.Unlock()
	rcpt := t.key.Recipient
	o := Outcome{VerdictID: v.ID, Recipient: rcpt, Action: v.Action}
	finish := func(s Status, detail string) (time.Time, error) {
		o.Status, o.Detail = s, detail
		return time.Time{}, e.finish(vs, o)
	}
	if rcpt == "" {
		return finish(Skipped, "no recipients: the verdict named none, and no recent record of this Message-ID is known")
	}
	p := e.cfg.Route(rcpt)
	if p == nil {
		return finish(Skipped, "external recipient: its domain is in neither --graph-domain nor --gmail-domain")
	}
	o.Provider = p.Name()
	// A group is acted on through its members, whatever the action.
	if !e.isMember(vs, rcpt) {
		members, isGroup, err := p.Members(ctx, rcpt)
		if err != nil {
			return e.retryAfter(ctx, t, vs, o, rcpt, err)
		}
		if isGroup {
			if err := e.addMembers(vs, members); err != nil {
				return time.Time{}, err
			}
			return finish(Skipped, fmt.Sprintf("a group: acted on its %d members", len(members)))
		}
	}
	step := Step{Action: v.Action, Tag: v.Tag, Observe: e.cfg.Observe}
	msgID := v.MessageID
	var undoFrom map[string]string // for a restore: each copy's ref → where it was
	switch v.Action {
	case Quarantine, Delete, Tag:
	case HardDelete:
		if !e.cfg.AllowHardDelete {
			return finish(Skipped, "hard_delete is not allowed without --allow-hard-delete")
		}
	case Restore:
		e.mu.Lock()
		undone := e.verdicts[v.Undo]
		var prior Outcome
		var ok, pending bool
		if undone != nil {
			prior, ok = undone.outcomes[rcpt]
			// Any open recipient may still be a group to expand into this one.
			pending = len(undone.open) > 0
			msgID = undone.V.MessageID
		}
		e.mu.Unlock()
		switch {
		case undone == nil:
			return finish(Failed, fmt.Sprintf("undoes verdict %q, which this sensor has not acted on (or longer ago than --enforce-window)", v.Undo))
		case pending:
			// The action to undo is still under way (a copy not delivered yet, a throttled
			// mailbox): undo it once it is done, not skip it and let it land after.
			return e.cfg.Now().Add(e.cfg.FindRetry), nil
		case undone.V.Action == HardDelete:
			return finish(Skipped, "a hard delete cannot be undone")
		case undone.V.Action == Tag:
			return finish(Skipped, "a tag is not undone by the sensor; remove the category or label in the mailbox")
		case !ok || prior.Status != Done:
			return finish(Skipped, "nothing to undo for this recipient")
		case strings.HasPrefix(prior.Detail, observeDetail):
			return finish(Skipped, "the undone verdict was only observed (--enforce-mode observe): nothing was changed")
		case prior.FromFolder == "":
			return finish(Failed, "the undone action did not journal where the message was")
		}
		undoFrom = priorFolders(prior)
	default:
		return finish(Failed, fmt.Sprintf("unknown action %q", v.Action))
	}
	copies, err := p.Find(ctx, rcpt, msgID)
	if err != nil {
		return e.retryAfter(ctx, t, vs, o, rcpt, err)
	}
	if undoFrom != nil {
		// Only the copies the undone action changed go back, each where it came from. A
		// single copy whose id changed anyway (moved to the archive mailbox) is still that
		// copy.
		var ours []Copy
		for _, c := range copies {
			if _, ok := undoFrom[c.Ref]; ok {
				ours = append(ours, c)
			}
		}
		if len(ours) == 0 && len(undoFrom) == 1 {
			for _, from := range undoFrom {
				undoFrom = map[string]string{}
				for _, c := range copies {
					undoFrom[c.Ref] = from
				}
			}
			ours = copies
		}
		copies = ours
	}
	if len(copies) == 0 && v.Action == HardDelete && len(acting) > 0 && !e.cfg.Observe {
		// The purge of the copies journaled before the calls went through, and a crash (or
		// a call's lost answer) kept the outcome from the journal: a purged message cannot
		// be found again.
		var refs, froms []string
		for _, ref := range slices.Sorted(maps.Keys(acting)) {
			refs, froms = append(refs, ref), append(froms, acting[ref].From)
		}
		o.MessageRef, o.FromFolder = strings.Join(refs, refSep), strings.Join(froms, fromSep)
		return finish(Done, "purged; its outcome is journaled after a restart or a retry")
	}
	if len(copies) == 0 {
		// The window runs from the first look that found nothing, not from the verdict:
		// a sensor that was down for a while still gives a late delivery its full window.
		now := e.cfg.Now()
		if t.firstMiss.IsZero() {
			t.firstMiss = now
		}
		if end := t.firstMiss.Add(e.cfg.FindWindow); now.Before(end) {
			return now.Add(min(e.cfg.FindRetry, end.Sub(now)+time.Millisecond)), nil
		}
		return finish(NotFound, fmt.Sprintf("no copy of %s in the mailbox after %v", msgID, e.cfg.FindWindow))
	}
	status := Already
	var refs, froms []string
	for _, c := range copies {
		from := c.Folder
		if from == "" {
			from = strings.Join(c.Labels, ",")
		}
		// An earlier attempt looked at this copy and may have changed it before a crash
		// kept its outcome from the journal: where the copy was then is where it came from.
		movedByUs := false
		if ac, ok := acting[c.Ref]; ok {
			movedByUs = ac.From != from
			from = ac.From
		} else if !e.cfg.Observe && v.Action != Restore && v.Action != Tag {
			en := entry{Kind: "acting", VerdictID: v.ID, Recipient: rcpt, Ref: c.Ref, From: from}
			if err := e.record(func() { vs.setActing(en) }, en); err != nil {
				return time.Time{}, err
			}
		}
		if undoFrom != nil {
			step.From = undoFrom[c.Ref]
		}
		res, err := p.Apply(ctx, rcpt, c, step)
		if err != nil {
			return e.retryAfter(ctx, t, vs, o, rcpt, err)
		}
		switch {
		case res.Status == Done:
			status = Done
			if res.From != "" {
				from = res.From
			}
		case movedByUs:
			status = Done
		}
		refs = append(refs, res.Ref)
		froms = append(froms, from)
	}
	o.MessageRef, o.FromFolder = strings.Join(refs, refSep), strings.Join(froms, fromSep)
	detail := ""
	if e.cfg.Observe {
		detail = observeDetail + " nothing was changed"
		if status == Done {
			detail = observeDetail + " would " + string(v.Action) + "; nothing was changed"
		}
	}
	return finish(status, detail)
}

func (e *Engine) isMember(vs *verdictState, rcpt string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Contains(vs.members, rcpt)
}

// addMembers journals a group's members as recipients of the verdict, and queues them.
func (e *Engine) addMembers(vs *verdictState, members []string) error {
	members = normalise(members)
	e.mu.Lock()
	var fresh []string
	for _, m := range members {
		if _, done := vs.outcomes[m]; !done && !vs.open[m] {
			fresh = append(fresh, m)
		}
	}
	e.mu.Unlock()
	if len(fresh) == 0 {
		return nil
	}
	now := e.cfg.Now()
	err := e.record(func() {
		for _, m := range fresh {
			vs.open[m] = true
			vs.members = append(vs.members, m)
			e.queue = append(e.queue, &task{key: taskKey{vs.V.ID, m}, due: now})
		}
	}, entry{Kind: "members", VerdictID: vs.V.ID, Members: fresh})
	if err != nil {
		return err
	}
	e.signal()
	return nil
}

// retryAfter decides what an API error means for a task: a throttled mailbox waits exactly
// as long as the server asked (and holds its other tasks, not the others'); a transient
// error backs off with jitter; anything else is a final failure.
func (e *Engine) retryAfter(ctx context.Context, t *task, vs *verdictState, o Outcome, rcpt string, err error) (time.Time, error) {
	now := e.cfg.Now()
	if ctx.Err() != nil {
		// The sensor is stopping, and the call was cut short with it: not a failure of the
		// action. The journal still has the task; the next start does it.
		return now, nil
	}
	var th *ThrottledError
	switch {
	case errors.As(err, &th):
		// A throttled answer that asks for no wait is taken as a second's, like one that
		// gives none: retrying at once would only be throttled again.
		wait := th.RetryAfter
		if wait <= 0 {
			wait = time.Second
		}
		until := now.Add(wait)
		e.mu.Lock()
		if until.After(e.blocked[rcpt]) {
			e.blocked[rcpt] = until
		}
		e.mu.Unlock()
		e.log.Info("mailbox throttled; waiting as asked", "verdict", o.VerdictID, "recipient", rcpt, "retry_after", th.RetryAfter)
		return until, nil
	case errors.Is(err, ErrGone) && t.attempts < 3:
		// Moved out from under us between the look and the step: look again at once.
		return now, nil
	case errors.Is(err, ErrTransient):
		d := min(time.Second<<min(t.attempts, 8), 5*time.Minute)
		e.log.Warn("mailbox action failed; trying again", "verdict", o.VerdictID, "recipient", rcpt, "error", err, "attempt", t.attempts+1)
		return now.Add(retry.Jitter(d)), nil
	}
	o.Status, o.Detail = Failed, err.Error()
	return time.Time{}, e.finish(vs, o)
}

// finish journals a recipient's final outcome and queues it for the pipeline.
func (e *Engine) finish(vs *verdictState, o Outcome) error {
	o.At = e.cfg.Now().UTC()
	err := e.record(func() {
		vs.outcomes[o.Recipient] = o
		delete(vs.open, o.Recipient)
		e.unreported = append(e.unreported, o)
		e.outcomes[o.Provider+"/"+string(o.Status)]++
	}, entry{Kind: "outcome", VerdictID: o.VerdictID, Recipient: o.Recipient, Outcome: &o})
	if err != nil {
		return err
	}
	e.latency.Observe(o.At.Sub(vs.At).Seconds())
	e.signal()
	level := slog.LevelInfo
	if o.Status == Failed {
		level = slog.LevelError
	}
	e.log.Log(context.Background(), level, "mailbox action", "verdict", o.VerdictID, "recipient", o.Recipient,
		"provider", o.Provider, "action", o.Action, "status", o.Status, "detail", o.Detail, "message_ref", o.MessageRef)
	return nil
}

// report delivers outcomes to the pipeline in batches, and journals what it acknowledged.
func (e *Engine) report(ctx context.Context) {
	backoff := time.Second
	for ctx.Err() == nil {
		changed := e.changes()
		e.mu.Lock()
		batch := slices.Clone(e.unreported[:min(len(e.unreported), 500)])
		e.mu.Unlock()
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		err := e.cfg.Feed.Report(ctx, batch)
		var refused *RefusedError
		if errors.As(err, &refused) {
			// One outcome the pipeline will never take must not hold up the others: send
			// them one by one, and give up on the one refused alone.
			batch, err = e.reportEach(ctx, batch)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("outcomes not delivered; trying again", "outcomes", len(batch), "error", err)
			if !retry.Sleep(ctx, retry.Jitter(backoff)) {
				return
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		keys := make([]taskKey, len(batch))
		for i, o := range batch {
			keys[i] = taskKey{o.VerdictID, o.Recipient}
		}
		settle := func() {
			e.unreported = e.unreported[len(batch):]
			for _, k := range keys {
				if vs := e.verdicts[k.VerdictID]; vs != nil {
					vs.reported[k.Recipient] = true
				}
			}
		}
		if err := e.record(settle, entry{Kind: "reported", Keys: keys}); err != nil {
			// Reported but not journaled: sent again after a restart; the pipeline ignores it.
			e.log.Error("acknowledged outcomes not journaled", "error", err)
			e.mu.Lock()
			settle()
			e.mu.Unlock()
		}
	}
}

// Collectors are the engine's Prometheus series of its own: the latency histogram.
func (e *Engine) Collectors() []prometheus.Collector { return []prometheus.Collector{e.latency} }

// Snapshot returns the current stats.
func (e *Engine) Snapshot() Stats {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := Stats{Cursor: e.cursor, Unreported: len(e.unreported), Outcomes: maps.Clone(e.outcomes)}
	if err := e.j.err(); err != nil {
		s.JournalError = err.Error()
	}
	for _, vs := range e.verdicts {
		s.Backlog += len(vs.open)
	}
	return s
}

// observeDetail begins the detail of every outcome of observe mode.
const observeDetail = "observe mode:"

// Copies of one message in one mailbox are reported in one outcome: their refs joined with
// "," and where each was joined with ";" in the same order (Gmail's label lists use ",").
const refSep, fromSep = ",", ";"

// priorFolders pairs the copies an outcome names with where each was.
func priorFolders(o Outcome) map[string]string {
	refs := strings.Split(o.MessageRef, refSep)
	froms := strings.Split(o.FromFolder, fromSep)
	out := map[string]string{}
	for i, r := range refs {
		switch {
		case len(froms) == len(refs):
			out[r] = froms[i]
		case len(froms) == 1:
			out[r] = froms[0]
		}
	}
	return out
}

// reportEach sends a refused batch's outcomes one at a time. It returns the outcomes that are
// settled (delivered, or refused on their own and dropped with an error logged), up to the
// first that failed otherwise, and that failure.
func (e *Engine) reportEach(ctx context.Context, batch []Outcome) ([]Outcome, error) {
	for i, o := range batch {
		err := e.cfg.Feed.Report(ctx, []Outcome{o})
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			e.log.Error("the pipeline refused an outcome; it is dropped", "verdict", o.VerdictID, "recipient", o.Recipient,
				"status", o.Status, "error", err)
		case err != nil:
			if i == 0 {
				return nil, err
			}
			return batch[:i], nil
		}
	}
	return batch, nil
}

func (vs *verdictState) setActing(en entry) {
	if vs.acting[en.Recipient] == nil {
		vs.acting[en.Recipient] = map[string]entry{}
	}
	vs.acting[en.Recipient][en.Ref] = en
}

// record journals entries and, once they are durable, applies their effect to the state
// (under e.mu). A compaction waits for both, so the file it writes matches the state.
func (e *Engine) record(apply func(), entries ...entry) error {
	e.jmu.RLock()
	defer e.jmu.RUnlock()
	if err := e.j.append(entries...); err != nil {
		return err
	}
	e.mu.Lock()
	apply()
	e.mu.Unlock()
	return nil
}

// compactNow rewrites the journal with what is still needed, dropping the verdicts that are
// finished, reported and older than the window, and forgets expired throttles.
func (e *Engine) compactNow() error {
	e.jmu.Lock()
	defer e.jmu.Unlock()
	e.mu.Lock()
	entries := e.compact()
	now := e.cfg.Now()
	for m, until := range e.blocked {
		if !until.After(now) {
			delete(e.blocked, m)
		}
	}
	e.mu.Unlock()
	return e.j.rewrite(entries)
}

// compactLoop keeps the journal (and the state) bounded while the sensor runs for months:
// it compacts whenever the file has grown past CompactBytes, looked at every CompactEvery.
func (e *Engine) compactLoop(ctx context.Context) {
	t := time.NewTicker(e.cfg.CompactEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if size, err := e.j.size(); err != nil || size < e.cfg.CompactBytes {
			continue
		}
		if err := e.compactNow(); err != nil {
			e.log.Error("action journal not compacted", "error", err)
			continue
		}
		e.log.Info("action journal compacted")
	}
}
