package spool

import "math"

// The spool budget is a non-blocking counting semaphore over bytes, kept under s.mu next to the
// usage it is measured against: what the spool holds for delivery (Usage.Bytes: pending records,
// batches and blobs) plus outstanding reservations must stay within the budget. A session's
// reservation covers its blobs while they are written to tmp/; once committed they count in
// Usage.BlobBytes, until the last batch naming them is delivered. It is written here
// rather than with x/sync's semaphore.Weighted because the sessions never wait for room (a full
// spool answers 452 at once, so there is no queue of waiters to manage) and because committed
// bytes enter and leave the count outside any Acquire/Release pair.
//
// Not counted: tmp/ (short-lived), *.broken files and deadletter/. Dead letters are kept for
// an operator to inspect and move away; counting them would let one poison batch shrink the
// budget for months and end in 452s that only a person can clear.

// SetBudget sets the spool budget in bytes; maxBytes <= 0 removes it. Reservations already held
// keep their bytes; a lower budget only refuses new ones until enough is released or delivered.
func (s *Spool) SetBudget(maxBytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxBytes = max(maxBytes, 0)
}

// Reserve claims n bytes of the budget for a message about to be received, without blocking.
// ok is false when the spool's committed bytes plus outstanding reservations plus n would
// exceed the budget: the SMTP session then answers 452 4.3.1. n is clamped to [1, budget], so
// even a message declared larger than the whole budget is accepted into an empty spool, and a
// full spool refuses even a zero-sized claim. With no budget set Reserve always succeeds.
//
// release gives the bytes back; it is never nil (a no-op when ok is false) and calling it more
// than once is harmless, so `defer release()` right after Reserve cannot leak. Commit does not
// take a reservation: the session commits while still holding its reservation and releases it
// afterwards, so between the two the record is counted twice, which errs on the side of 452.
func (s *Spool) Reserve(n int64) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n = max(n, 1)
	if s.maxBytes > 0 {
		n = min(n, s.maxBytes)
		// Written as a subtraction so no sum can overflow: every term is at most a budget's
		// worth of reservations or what is on disk.
		if n > s.maxBytes-s.usage.Bytes()-s.reserved {
			return func() {}, false
		}
	} else {
		// No budget: still counted for Usage.Reserved, saturated so hostile sizes cannot wrap.
		n = min(n, math.MaxInt64-s.reserved)
	}
	s.reserved += n
	released := false
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if !released {
			released = true
			s.reserved -= n
		}
	}, true
}
