package spool

import (
	"errors"
	"sync"
	"time"
)

// groupSync lets concurrent blob commits share one fsync of blobs/. Each caller has already
// renamed its file into the directory; it needs an fsync that started after that rename, and
// any fsync that starts after the caller joined will do. So callers join the next round, one
// of them runs it for all, and the rest wait for its result. While a round runs, newcomers
// gather in the following one, which is why n concurrent commits cost about two directory
// fsyncs rather than n.
//
// There is no background goroutine: the leader of a round is one of its own callers, so a
// caller runs at most one fsync (its own round's) and waits at most for the round in progress
// plus its own.
type groupSync struct {
	mu      sync.Mutex
	cond    *sync.Cond // on mu; broadcast when a round ends
	running bool       // a round's fsync is in progress
	next    *syncRound // the round that has not started yet; nil until someone joins
}

type syncRound struct {
	joined int // callers waiting on it, for tests
	done   bool
	err    error
}

func newGroupSync() *groupSync {
	g := &groupSync{}
	g.cond = sync.NewCond(&g.mu)
	return g
}

// wait returns once a call of fsync that started after wait was entered has returned, with
// that call's error. Every caller in a round gets the same error.
func (g *groupSync) wait(fsync func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.next == nil {
		g.next = &syncRound{}
	}
	r := g.next
	r.joined++
	for !r.done {
		if g.running {
			g.cond.Wait()
			continue
		}
		// Nothing is running, so r has not started (a round leaves next only when it starts,
		// and running stays set until it is done): lead it.
		g.lead(r, fsync)
	}
	return r.err
}

// lead runs round r. It is entered and left with g.mu held. The round is finished even if
// fsync panics, so the other callers are not left waiting forever.
func (g *groupSync) lead(r *syncRound, fsync func() error) {
	g.running = true
	g.next = nil
	g.mu.Unlock()
	err := errFsyncPanicked
	defer func() {
		g.mu.Lock()
		r.done, r.err = true, err
		g.running = false
		g.cond.Broadcast()
	}()
	err = fsync()
}

var errFsyncPanicked = errors.New("directory fsync panicked")

// commitQueue gathers concurrent Commits into rounds, each written as one append to the log
// with one fdatasync. A caller joins the newest round that has not started and has room, or
// opens a new one; the rounds run one after another, each led by one of its own callers, and
// while one runs the next fills. So a burst of n commits costs about two rounds' flushes
// rather than n, and a lone commit runs at once, with no timer to wait for.
type commitQueue struct {
	mu      sync.Mutex
	cond    *sync.Cond // on mu; broadcast when a round ends
	running bool       // queue[0] is being written
	queue   []*commitRound
}

// commitReq is one record waiting in a round.
type commitReq struct {
	line []byte    // the record: one JSON object, without a newline
	made time.Time // from the record id
	refs []string  // the blobs it names, one per attachment (lineRefs)
}

type commitRound struct {
	reqs    []commitReq
	bytes   int
	started bool // no more joiners
	done    bool
	err     error
}

func newCommitQueue() *commitQueue {
	q := &commitQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

// fits reports whether a line of n bytes may join r. An empty round takes anything, so a
// record larger than the bound still commits, alone.
func (r *commitRound) fits(n int) bool {
	return !r.started && len(r.reqs) < maxGroupRecords && (len(r.reqs) == 0 || r.bytes+n <= maxGroupBytes)
}

// join adds req to a round and returns that round's result once it is written: write runs
// once per round, in one of its callers, and every caller in the round gets its error.
func (q *commitQueue) join(req commitReq, write func(*commitRound) error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	var r *commitRound
	if n := len(q.queue); n > 0 && q.queue[n-1].fits(len(req.line)+1) {
		r = q.queue[n-1]
	} else {
		r = &commitRound{}
		q.queue = append(q.queue, r)
	}
	r.reqs = append(r.reqs, req)
	r.bytes += len(req.line) + 1 // as NDJSON, for the usage
	for !r.done {
		if !q.running && q.queue[0] == r {
			q.lead(r, write)
			continue
		}
		q.cond.Wait()
	}
	return r.err
}

// lead runs round r, the head of the queue. It is entered and left with q.mu held. The round
// is finished even if write panics, so the other callers are not left waiting forever.
func (q *commitQueue) lead(r *commitRound, write func(*commitRound) error) {
	q.running, r.started = true, true
	q.mu.Unlock()
	err := errCommitPanicked
	defer func() {
		q.mu.Lock()
		r.done, r.err = true, err
		q.running = false
		q.queue = q.queue[1:]
		q.cond.Broadcast()
	}()
	err = write(r)
}

var errCommitPanicked = errors.New("group commit panicked")
