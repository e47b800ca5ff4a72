package archive

import (
	"encoding/binary"
	"io"
)

func le16(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// srcBufSize is the read buffer of each level; it bounds how far ahead the forward pass can
// look, which must cover a data descriptor and the signature after it.
const srcBufSize = 64 << 10

// maxZeroReads is how many empty reads in a row we accept from a reader before calling it
// stuck: io.Reader allows (0, nil), but a loop that trusts it forever never ends.
const maxZeroReads = 100

// src is one archive stream: a forward-only buffered reader that knows its offset and keeps
// the last bytes read from r in a tail window, where the central directory is looked for.
type src struct {
	r      io.Reader
	buf    []byte
	lo, hi int   // unread bytes are buf[lo:hi]
	pos    int64 // stream offset of buf[lo]
	eof    bool  // r is done, at its end or failed
	err    error // why r failed; nil at a clean end
	tail   *ring // nil when no window is kept
}

func newSrc(r io.Reader, pos int64, tail *ring) *src {
	return &src{r: r, buf: make([]byte, srcBufSize), pos: pos, tail: tail}
}

// fill reads until n bytes are buffered (n <= len(buf)) or r is done.
func (s *src) fill(n int) {
	n = min(n, len(s.buf))
	if s.lo == s.hi {
		s.lo, s.hi = 0, 0
	}
	zero := 0
	for s.hi-s.lo < n && !s.eof {
		if len(s.buf)-s.lo < n {
			s.hi = copy(s.buf, s.buf[s.lo:s.hi])
			s.lo = 0
		}
		k, err := s.r.Read(s.buf[s.hi:])
		if k > 0 {
			if s.tail != nil {
				s.tail.write(s.buf[s.hi : s.hi+k])
			}
			s.hi += k
			zero = 0
		} else if err == nil {
			if zero++; zero >= maxZeroReads {
				err = io.ErrNoProgress
			}
		}
		if err != nil {
			s.eof = true
			if err != io.EOF {
				s.err = err
			}
		}
	}
}

// window returns the buffered bytes, at least n of them unless r is done.
func (s *src) window(n int) []byte {
	if s.hi-s.lo < n {
		s.fill(n)
	}
	return s.buf[s.lo:s.hi]
}

// advance consumes n buffered bytes.
func (s *src) advance(n int) {
	s.lo += n
	s.pos += int64(n)
}

// endErr is what reads return once the buffer is empty and r is done.
func (s *src) endErr() error {
	if s.err != nil {
		return s.err
	}
	return io.EOF
}

// shortErr is why the stream ended before something it declared.
func (s *src) shortErr() error {
	if s.err != nil {
		return s.err
	}
	return io.ErrUnexpectedEOF
}

// Read implements io.Reader over the stream.
func (s *src) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.lo == s.hi {
		s.fill(1)
		if s.lo == s.hi {
			return 0, s.endErr()
		}
	}
	n := copy(p, s.buf[s.lo:s.hi])
	s.advance(n)
	return n, nil
}

// ReadByte implements io.ByteReader, which lets compress/flate read exactly up to the end of
// a deflate stream and no further: that is how the end of a member with a data descriptor is
// found.
func (s *src) ReadByte() (byte, error) {
	if s.lo == s.hi {
		s.fill(1)
		if s.lo == s.hi {
			return 0, s.endErr()
		}
	}
	c := s.buf[s.lo]
	s.lo++
	s.pos++
	return c, nil
}

// skip consumes up to n bytes and returns how many it consumed; fewer means r is done.
func (s *src) skip(n int64) int64 {
	var done int64
	for done < n {
		if s.lo == s.hi {
			s.fill(1)
			if s.lo == s.hi {
				break
			}
		}
		k := int(min(int64(s.hi-s.lo), n-done))
		s.advance(k)
		done += int64(k)
	}
	return done
}

// readFull reads exactly len(p) bytes, or reports false when r is done first.
func (s *src) readFull(p []byte) bool {
	for len(p) > 0 {
		n, err := s.Read(p)
		p = p[n:]
		if err != nil {
			return len(p) == 0
		}
	}
	return true
}

// ring keeps the last max bytes written to it.
type ring struct {
	b     []byte // grows to max, then wraps at w
	max   int
	w     int
	total int64
}

func (t *ring) write(p []byte) {
	t.total += int64(len(p))
	if len(p) >= t.max {
		p = p[len(p)-t.max:]
		t.b = append(t.b[:0], p...)
		t.w = 0
		return
	}
	if len(t.b) < t.max {
		k := min(t.max-len(t.b), len(p))
		if len(t.b)+k > cap(t.b) {
			// Grow by hand: append's growth could overshoot max, and small archives should
			// not pay for a full window.
			nb := make([]byte, len(t.b), min(t.max, max(2*cap(t.b), len(t.b)+k, 4096)))
			copy(nb, t.b)
			t.b = nb
		}
		t.b = append(t.b, p[:k]...)
		p = p[k:]
	}
	for len(p) > 0 {
		k := copy(t.b[t.w:], p)
		p = p[k:]
		t.w = (t.w + k) % t.max
	}
}

// bytes returns the window in stream order and the stream offset of its first byte.
func (t *ring) bytes() ([]byte, int64) {
	if t.w != 0 {
		// Rotate left by w in place.
		reverse(t.b[:t.w])
		reverse(t.b[t.w:])
		reverse(t.b)
		t.w = 0
	}
	return t.b, t.total - int64(len(t.b))
}

func reverse(b []byte) {
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
}

// limited reads the next n bytes of the stream: member data of known size.
type limited struct {
	s *src
	n int64
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.s.Read(p)
	l.n -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (l *limited) ReadByte() (byte, error) {
	if l.n <= 0 {
		return 0, io.EOF
	}
	c, err := l.s.ReadByte()
	if err == nil {
		l.n--
	} else if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

// budgetReader charges what r produces to a budget, and fails with ErrBudget rather than
// produce a byte past it.
type budgetReader struct {
	r io.Reader
	b *Budget
}

func (br *budgetReader) Read(p []byte) (int, error) {
	if br.b.left <= 0 {
		// A zero-length read asks the inflater whether the member ends here: it decodes at
		// most one more block step and hands out nothing.
		if _, err := br.r.Read(p[:0]); err != nil {
			return 0, err
		}
		return 0, ErrBudget
	}
	if int64(len(p)) > br.b.left {
		p = p[:br.b.left]
	}
	n, err := br.r.Read(p)
	br.b.left -= int64(n)
	return n, err
}

// readHead fills p from r and returns r's error as is (io.EOF for a clean end), unlike
// io.ReadFull, which would blur a short member with an inflater's io.ErrUnexpectedEOF.
func readHead(r io.Reader, p []byte) (int, error) {
	n, zero := 0, 0
	for n < len(p) {
		k, err := r.Read(p[n:])
		n += k
		if err != nil {
			return n, err
		}
		if k == 0 {
			if zero++; zero >= maxZeroReads {
				return n, io.ErrNoProgress
			}
		}
	}
	return n, nil
}
