package spool

import (
	"errors"
	"sync"
)

// groupSync lets concurrent commits share one fsync of a directory. Each caller has already
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
