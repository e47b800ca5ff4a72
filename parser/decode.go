package parser

import (
	"bytes"
	"encoding/base64"
	"io"
)

// decoder undoes a Content-Transfer-Encoding as a stream and counts what it had to repair.
type decoder interface {
	io.Reader
	// repairs returns the bytes skipped or passed through because they were not valid in the
	// encoding, and the anomaly code that reports them.
	repairs() (n int64, code string)
	// release gives the decoder's buffers back to the cache they came from; the decoder is
	// not used after.
	release()
}

// byteCache lends one parse's decoders their buffers and takes them back when a part is
// done, so that each part of each message does not allocate its own: one base64
// attachment's came to 36 KiB of the 140 KiB that a 10 KiB copy cost the door and the
// parser. A buffer is lent sliced to the length and capacity asked for, so a decoder works
// exactly as it would with one made for it. Only the parsing goroutine uses it. A nil
// *byteCache makes every buffer afresh.
type byteCache struct{ free [][]byte }

// maxCachedBufs bounds what a cache keeps: a base64 decoder holds three buffers, and an
// encoded container nests a second decoder inside the first.
const maxCachedBufs = 12

// get returns a buffer of length and capacity n: the smallest kept one that is large enough,
// or a new one.
func (c *byteCache) get(n int) []byte {
	if c != nil {
		best := -1
		for i, b := range c.free {
			if cap(b) >= n && (best < 0 || cap(b) < cap(c.free[best])) {
				best = i
			}
		}
		if best >= 0 {
			b := c.free[best]
			last := len(c.free) - 1
			c.free[best], c.free[last] = c.free[last], nil
			c.free = c.free[:last]
			return b[:n:n]
		}
	}
	return make([]byte, n)
}

// put keeps b for a later get; b is not used after.
func (c *byteCache) put(b []byte) {
	if c == nil || cap(b) == 0 {
		return
	}
	if len(c.free) < maxCachedBufs {
		c.free = append(c.free, b[:0])
		return
	}
	// Full: keep the larger of b and the smallest kept.
	small := 0
	for i, f := range c.free {
		if cap(f) < cap(c.free[small]) {
			small = i
		}
	}
	if cap(b) > cap(c.free[small]) {
		c.free[small] = b[:0]
	}
}

// newDecoder returns a decoding reader for the encoding, and false when the encoding is not
// one it knows (the body is then passed through as it is). Its buffers come from bufs.
func newDecoder(encoding string, r io.Reader, bufs *byteCache) (decoder, bool) {
	switch encoding {
	case "base64":
		return newBase64Reader(r, bufs), true
	case "quoted-printable":
		return newQPReader(r, bufs), true
	case "x-uuencode", "x-uue", "uuencode", "uue":
		return newUUReader(r, bufs), true
	case "", "7bit", "8bit", "binary":
		return identity{r}, true
	}
	return identity{r}, false
}

type identity struct{ io.Reader }

func (identity) repairs() (int64, string) { return 0, "" }
func (identity) release()                 {}

// base64Reader decodes base64 leniently: line breaks, whitespace and bytes outside the
// alphabet are skipped (and counted), padding may appear in the middle (concatenated blobs),
// and a truncated final quantum yields the bytes it holds.
//
// The fast path copies whole lines into a clean buffer and lets encoding/base64 validate
// them; only a chunk that fails is filtered byte by byte. Real attachments take the fast path
// almost always, so decoding runs at encoding/base64's speed.
type base64Reader struct {
	r     io.Reader
	in    []byte // raw input chunk
	clean []byte // alphabet bytes waiting to be decoded; starts with the carried-over tail
	out   []byte // decoded bytes not yet returned
	off   int
	err   error
	bad   int64
	bufs  *byteCache
}

// Buffers start at b64Start and double, up to b64Chunk, while reads keep filling them:
// most parts are a few KiB, and a 96 KiB set of buffers for each was most of the parser's
// allocation on ordinary mail.
const (
	b64Start = 4 << 10
	b64Chunk = 32 << 10
)

func newBase64Reader(r io.Reader, bufs *byteCache) *base64Reader {
	return &base64Reader{
		r:     r,
		in:    bufs.get(b64Start),
		clean: bufs.get(b64Start + 4)[:0],
		out:   bufs.get(b64Start)[:0],
		bufs:  bufs,
	}
}

// enlarge doubles the buffers, keeping the carried quantum and the undelivered output.
func (d *base64Reader) enlarge() {
	size := 2 * len(d.in)
	d.bufs.put(d.in)
	d.in = d.bufs.get(size)
	clean := append(d.bufs.get(size + 4)[:0], d.clean...)
	d.bufs.put(d.clean)
	d.clean = clean
	out := append(d.bufs.get(size)[:0], d.out...)
	d.bufs.put(d.out)
	d.out = out
}

func (d *base64Reader) release() {
	d.bufs.put(d.in)
	d.bufs.put(d.clean)
	d.bufs.put(d.out)
	d.in, d.clean, d.out = nil, nil, nil
}

func (d *base64Reader) repairs() (int64, string) { return d.bad, anomalyBadBase64 }

func (d *base64Reader) Read(p []byte) (int, error) {
	for d.off == len(d.out) {
		if d.err != nil {
			return 0, d.err
		}
		d.out, d.off = d.out[:0], 0
		n, err := d.r.Read(d.in)
		if n > 0 {
			d.feed(d.in[:n])
		}
		if n == len(d.in) && len(d.in) < b64Chunk {
			d.enlarge()
		}
		if err != nil {
			d.flushTail()
			d.err = err
		}
	}
	n := copy(p, d.out[d.off:])
	d.off += n
	return n, nil
}

// feed decodes one raw chunk, keeping an incomplete quantum for the next.
func (d *base64Reader) feed(raw []byte) {
	carry := len(d.clean)
	if d.compactFast(raw) {
		k := len(d.clean) &^ 3
		// The tail waits for the next chunk, so check it here: Decode will never see it
		// in this chunk, and the next one trusts its carry.
		if !alphabetOnly(d.clean[k:]) {
			d.clean = d.clean[:carry]
			d.compactSlow(raw)
			return
		}
		if m, err := base64.RawStdEncoding.Decode(d.out[len(d.out):cap(d.out)], d.clean[:k]); err == nil {
			d.out = d.out[:len(d.out)+m]
			d.keepTail(k)
			return
		}
	}
	d.clean = d.clean[:carry]
	d.compactSlow(raw)
}

// compactFast appends raw to clean without line breaks, and reports false at the first sign
// that the slow path is needed (padding, or a chunk that does not fit).
func (d *base64Reader) compactFast(raw []byte) bool {
	for len(raw) > 0 {
		line := raw
		i := bytes.IndexByte(raw, '\n')
		if i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimRight(line, "\r \t")
		if bytes.IndexByte(line, '=') >= 0 || len(d.clean)+len(line) > cap(d.clean) {
			return false
		}
		d.clean = append(d.clean, line...)
	}
	return true
}

// b64Alphabet marks the bytes of the standard alphabet; whitespace is marked 2 so that it
// is skipped without counting as a repair.
var b64Alphabet = func() (t [256]uint8) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/") {
		t[c] = 1
	}
	for _, c := range []byte(" \t\r\n") {
		t[c] = 2
	}
	return t
}()

func (d *base64Reader) compactSlow(raw []byte) {
	for _, c := range raw {
		switch b64Alphabet[c] {
		case 1:
			d.clean = append(d.clean, c)
			if len(d.clean) == cap(d.clean) {
				d.decodeClean(false)
			}
		case 2:
		default:
			if c == '=' {
				// Padding ends a quantum. Decode what we have so the next quantum starts
				// aligned, as it does when two encoded blobs were concatenated.
				d.decodeClean(true)
				continue
			}
			d.bad++
		}
	}
	d.decodeClean(false)
}

// decodeClean decodes every whole quantum in clean, and with partial also the final short
// quantum, keeping any remainder.
func (d *base64Reader) decodeClean(partial bool) {
	k := len(d.clean) &^ 3
	if partial {
		k = len(d.clean)
		if k%4 == 1 { // one character carries no whole byte
			d.bad++
			k--
		}
	}
	d.grow(k/4*3 + 3)
	m, _ := base64.RawStdEncoding.Decode(d.out[len(d.out):cap(d.out)], d.clean[:k]) // clean holds only alphabet bytes
	d.out = d.out[:len(d.out)+m]
	if partial {
		d.clean = d.clean[:0]
		return
	}
	d.keepTail(k)
}

func (d *base64Reader) keepTail(k int) {
	n := copy(d.clean, d.clean[k:])
	d.clean = d.clean[:n]
}

func (d *base64Reader) flushTail() {
	if len(d.clean) > 0 {
		d.decodeClean(true)
	}
}

func (d *base64Reader) grow(n int) {
	if cap(d.out)-len(d.out) < n {
		out := d.bufs.get(len(d.out) + n + b64Chunk)[:len(d.out)]
		copy(out, d.out)
		d.bufs.put(d.out)
		d.out = out
	}
}

// qpReader decodes quoted-printable leniently (RFC 2045 §6.7): invalid escapes pass through
// as they are, trailing whitespace is dropped, "=" at the end of a line (even before
// trailing whitespace) is a soft break, and hard line breaks keep the line ending they came
// with, as Go's mime/quotedprintable does, so hashes match other decoders.
type qpReader struct {
	r    io.Reader
	buf  []byte // raw bytes not yet decoded
	in   []byte
	out  []byte
	off  int
	err  error
	bad  int64
	bufs *byteCache
}

func newQPReader(r io.Reader, bufs *byteCache) *qpReader {
	return &qpReader{r: r, in: bufs.get(32 << 10), bufs: bufs}
}

func (q *qpReader) release() {
	q.bufs.put(q.in)
	q.in = nil
}

func (q *qpReader) repairs() (int64, string) { return q.bad, anomalyBadQuotedPrintable }

func (q *qpReader) Read(p []byte) (int, error) {
	for q.off == len(q.out) {
		if q.err != nil {
			return 0, q.err
		}
		q.out, q.off = q.out[:0], 0
		n, err := q.r.Read(q.in)
		q.buf = append(q.buf, q.in[:n]...)
		if err != nil {
			q.err = err
		}
		q.decodeLines(err != nil)
	}
	n := copy(p, q.out[q.off:])
	q.off += n
	return n, nil
}

// decodeLines decodes every complete line in buf; at the end of input, the rest too. A line
// that grows past 64 KiB without a break is decoded in pieces (keeping a possible partial
// escape), so memory stays bounded.
func (q *qpReader) decodeLines(final bool) {
	rest := q.buf
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		q.line(rest[:i+1])
		rest = rest[i+1:]
	}
	switch {
	case final:
		if len(rest) > 0 {
			q.line(rest)
		}
		rest = nil
	case len(rest) > 64<<10:
		keep := 0 // an escape ("=" or "=X") cut off at the end waits for its other half
		if i := bytes.LastIndexByte(rest[len(rest)-2:], '='); i >= 0 {
			keep = 2 - i
		}
		q.decode(rest[:len(rest)-keep])
		rest = rest[len(rest)-keep:]
	}
	q.buf = append(q.buf[:0], rest...)
}

func (q *qpReader) line(l []byte) {
	eol := 0
	if bytes.HasSuffix(l, []byte("\r\n")) {
		eol = 2
	} else if bytes.HasSuffix(l, []byte("\n")) {
		eol = 1
	}
	body := bytes.TrimRight(l[:len(l)-eol], " \t\r")
	if bytes.HasSuffix(body, []byte("=")) {
		q.decode(body[:len(body)-1])
		return
	}
	q.decode(body)
	q.out = append(q.out, l[len(l)-eol:]...)
}

func (q *qpReader) decode(b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '=')
		if i < 0 {
			q.out = append(q.out, b...)
			return
		}
		q.out = append(q.out, b[:i]...)
		b = b[i:]
		if len(b) >= 3 {
			if h, ok := unhex(b[1]); ok {
				if l, ok := unhex(b[2]); ok {
					q.out = append(q.out, h<<4|l)
					b = b[3:]
					continue
				}
			}
		}
		q.bad++ // a "=" that starts no escape is kept as it is
		q.out = append(q.out, '=')
		b = b[1:]
	}
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f': // QUIRK: RFC 2045 §6.7 requires uppercase; many encoders don't
		return c - 'a' + 10, true
	}
	return 0, false
}

func alphabetOnly(b []byte) bool {
	for _, c := range b {
		if b64Alphabet[c] != 1 {
			return false
		}
	}
	return true
}
