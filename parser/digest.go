package parser

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"sync"

	"github.com/journalsensor/sensor/api"
)

// Past parallelAfter bytes a stream's hashes move off the parsing goroutine. MD5 alone
// costs about as much as SHA-1 and SHA-256 together (both have CPU instructions, MD5 does
// not), so one worker takes MD5 and another the two SHAs; on a large attachment the parse
// then runs at the speed of the slowest of decoding, MD5 and SHA-1+SHA-256, not their sum.
// Small parts, the vast majority, never pay for goroutines.
const (
	parallelAfter = 1 << 20
	chunkSize     = 256 << 10
	chunks        = 4 // in flight per stream: 1 MiB
)

// hashes computes size, MD5, SHA-1 and SHA-256 of one stream in one pass. close must be
// called before the sums are read, and on every path that abandons the stream, so the
// workers (if any) end.
type hashes struct {
	n                 int64
	md5, sha1, sha256 hash.Hash
	// mayFork allows the workers. Only streams whose owner closes them on every path (a
	// leaf attachment, with a defer) set it; walker taps may be abandoned mid-stream.
	mayFork bool
	par     *parallel
}

type parallel struct {
	bufs [chunks]*chunk
	next int
	cur  *chunk
	work [2]chan *chunk
	done sync.WaitGroup
}

type chunk struct {
	b       []byte
	pending sync.WaitGroup
}

func newHashes() *hashes {
	return &hashes{md5: md5.New(), sha1: sha1.New(), sha256: sha256.New()}
}

func (h *hashes) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	if h.par == nil {
		if h.n <= parallelAfter || !h.mayFork {
			h.md5.Write(p)
			h.sha1.Write(p)
			h.sha256.Write(p)
			return len(p), nil
		}
		h.startParallel()
	}
	for rest := p; len(rest) > 0; {
		c := h.par.cur
		k := copy(c.b[len(c.b):cap(c.b)], rest)
		c.b = c.b[:len(c.b)+k]
		rest = rest[k:]
		if len(c.b) == cap(c.b) {
			h.dispatch()
		}
	}
	return len(p), nil
}

func (h *hashes) startParallel() {
	par := &parallel{}
	for i := range par.bufs {
		par.bufs[i] = &chunk{b: make([]byte, 0, chunkSize)}
	}
	par.cur = par.bufs[0]
	for i := range par.work {
		par.work[i] = make(chan *chunk, chunks)
	}
	par.done.Add(2)
	go func() {
		defer par.done.Done()
		for c := range par.work[0] {
			h.md5.Write(c.b)
			c.pending.Done()
		}
	}()
	go func() {
		defer par.done.Done()
		for c := range par.work[1] {
			h.sha1.Write(c.b)
			h.sha256.Write(c.b)
			c.pending.Done()
		}
	}()
	h.par = par
}

// dispatch hands the current chunk to both workers and waits for the next one to be free.
func (h *hashes) dispatch() {
	par := h.par
	if len(par.cur.b) > 0 {
		par.cur.pending.Add(2)
		par.work[0] <- par.cur
		par.work[1] <- par.cur
	}
	par.next = (par.next + 1) % chunks
	par.cur = par.bufs[par.next]
	par.cur.pending.Wait()
	par.cur.b = par.cur.b[:0]
}

// close hashes what is buffered and stops the workers. It is safe to call twice.
func (h *hashes) close() {
	if h.par == nil {
		return
	}
	h.dispatch()
	close(h.par.work[0])
	close(h.par.work[1])
	h.par.done.Wait()
	h.par = nil
}

func (h *hashes) fill(a *api.Attachment) {
	h.close()
	a.Size = h.n
	a.MD5 = hex.EncodeToString(h.md5.Sum(nil))
	a.SHA1 = hex.EncodeToString(h.sha1.Sum(nil))
	a.SHA256 = hex.EncodeToString(h.sha256.Sum(nil))
}
