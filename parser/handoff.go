package parser

import "sync"

// handoff keeps the state the parsing goroutine's own while a CMS reader goroutine pulls a
// walker (readOpaque). Walker callbacks touch the state; between hold and release they are
// parked, and release runs them on the parsing goroutine.
type handoff struct {
	mu     sync.Mutex // guards holds and parked, which the CMS reader goroutine reaches
	holds  int
	parked []func()
}

// park runs f now, or, while a CMS reader goroutine may be pulling a walker, queues it to
// run when the last hold is released.
func (h *handoff) park(f func()) {
	h.mu.Lock()
	if h.holds > 0 {
		h.parked = append(h.parked, f)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	f()
}

// hold parks every callback until the matching release. Holds nest.
func (h *handoff) hold() {
	h.mu.Lock()
	h.holds++
	h.mu.Unlock()
}

// release ends a hold; the last one runs the parked callbacks, in order, on the calling
// goroutine. The goroutine that was pulling the walker must have stopped.
func (h *handoff) release() {
	h.mu.Lock()
	h.holds--
	var run []func()
	if h.holds == 0 {
		run, h.parked = h.parked, nil
	}
	h.mu.Unlock()
	for _, f := range run {
		f()
	}
}

// held reports whether a hold is in force: a CMS reader goroutine may be reading.
func (h *handoff) held() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.holds > 0
}
