package smime

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ASN.1 classes and the universal tags the CMS walk looks at (X.680 §8.4, X.690 §8.1.2).
const (
	classUniversal = 0
	classContext   = 2

	tagInteger     = 2
	tagOctetString = 4
	tagOID         = 6
	tagSequence    = 16
	tagSet         = 17
)

var (
	errTooDeep   = errors.New("ber: nesting too deep")
	errOverrun   = errors.New("ber: element overruns its container")
	errBadLength = errors.New("ber: invalid length")
	errBadTag    = errors.New("ber: invalid tag")
)

// header is one BER identifier and length (X.690 §8.1.2–8.1.3), and where it started.
type header struct {
	class       int
	tag         int
	constructed bool
	length      int64 // -1: indefinite (X.690 §8.1.3.6), ended by an end-of-contents
	start       int64 // input offset of the first identifier octet
	raw         [16]byte
	rawLen      int
}

func (h *header) is(class, tag int) bool { return h.class == class && h.tag == tag }

func (h *header) eoc() bool {
	return h.class == classUniversal && h.tag == 0 && !h.constructed && h.length == 0
}

// end is the input offset just past the element, or -1 when it is indefinite.
func (h *header) end() int64 {
	if h.length < 0 {
		return -1
	}
	return h.start + int64(h.rawLen) + h.length
}

// frame is an open constructed element whose children are being read.
type frame struct{ end int64 } // -1: indefinite

func (h *header) frame() frame { return frame{end: h.end()} }

// berReader reads BER from a stream, one element header at a time, so that large contents
// (the signed message, the encrypted payload) are skipped or copied out without being held.
// Only elements the caller asks to capture are kept, within a byte budget.
type berReader struct {
	r        *bufio.Reader
	pos      int64
	maxDepth int

	rec    []byte // capture in progress; nil when not capturing
	recMax int
	recBad bool // the capture outgrew recMax; its bytes are incomplete
}

func newBERReader(r io.Reader, maxDepth int) *berReader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 4096)
	}
	return &berReader{r: br, maxDepth: maxDepth}
}

func (d *berReader) readByte() (byte, error) {
	c, err := d.r.ReadByte()
	if err != nil {
		return 0, eof(err)
	}
	d.pos++
	if d.rec != nil && !d.recBad {
		if len(d.rec) < d.recMax {
			d.rec = append(d.rec, c)
		} else {
			d.recBad = true
		}
	}
	return c, nil
}

// eof turns a clean EOF in the middle of a structure into the error it is.
func eof(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (d *berReader) readHeader() (header, error) {
	h := header{start: d.pos}
	put := func(c byte) { // at most 1 + 4 tag + 1 + 6 length octets: raw has room
		h.raw[h.rawLen] = c
		h.rawLen++
	}
	c, err := d.readByte()
	if err != nil {
		return h, err
	}
	put(c)
	h.class = int(c >> 6)
	h.constructed = c&0x20 != 0
	h.tag = int(c & 0x1f)
	if h.tag == 0x1f {
		// High tag number form (X.690 §8.1.2.4); four octets reach 2^28, more than any
		// real tag, so a longer one is garbage.
		h.tag = 0
		for i := 0; ; i++ {
			if i == 4 {
				return h, errBadTag
			}
			if c, err = d.readByte(); err != nil {
				return h, err
			}
			put(c)
			h.tag = h.tag<<7 | int(c&0x7f)
			if c&0x80 == 0 {
				break
			}
		}
	}
	if c, err = d.readByte(); err != nil {
		return h, err
	}
	put(c)
	switch {
	case c < 0x80:
		h.length = int64(c)
	case c == 0x80:
		if !h.constructed {
			return h, fmt.Errorf("%w: indefinite length on a primitive", errBadLength)
		}
		h.length = -1
	case c == 0xff:
		return h, fmt.Errorf("%w: reserved length octet", errBadLength)
	default:
		n := int(c & 0x7f)
		if n > 6 {
			// 2^48 bytes is past anything the sensor could be sent; refusing longer length
			// fields keeps the arithmetic below far from overflow.
			return h, fmt.Errorf("%w: %d length octets", errBadLength, n)
		}
		for range n {
			if c, err = d.readByte(); err != nil {
				return h, err
			}
			put(c)
			h.length = h.length<<8 | int64(c)
		}
	}
	return h, nil
}

// next reads the next child header of f; ok is false at f's end. A child that would reach
// past a definite-length parent is an error rather than a reinterpretation, so every input
// byte is read at most once.
func (d *berReader) next(f frame) (h header, ok bool, err error) {
	if f.end >= 0 {
		if d.pos == f.end {
			return h, false, nil
		}
		if d.pos > f.end {
			return h, false, errOverrun
		}
	}
	if h, err = d.readHeader(); err != nil {
		return h, false, err
	}
	if h.eoc() {
		if f.end >= 0 {
			return h, false, fmt.Errorf("ber: end-of-contents inside a definite-length element at %d", h.start)
		}
		return h, false, nil
	}
	if f.end >= 0 && h.length >= 0 && h.end() > f.end {
		return h, false, errOverrun
	}
	return h, true, nil
}

// discard consumes n content bytes, keeping them when a capture is running.
func (d *berReader) discard(n int64) error {
	for n > 0 {
		chunk := n
		if chunk > 1<<20 {
			chunk = 1 << 20
		}
		if d.rec != nil && !d.recBad {
			if len(d.rec)+int(chunk) > d.recMax {
				d.recBad = true
			} else {
				start := len(d.rec)
				d.rec = slices.Grow(d.rec, int(chunk))[:start+int(chunk)]
				m, err := io.ReadFull(d.r, d.rec[start:])
				d.pos += int64(m)
				if err != nil {
					return eof(err)
				}
				n -= chunk
				continue
			}
		}
		m, err := d.r.Discard(int(chunk))
		d.pos += int64(m)
		if err != nil {
			return eof(err)
		}
		n -= chunk
	}
	return nil
}

// skip consumes the contents of h. Definite lengths are skipped without looking inside;
// indefinite ones need their children walked to find the end-of-contents, and only the count
// of open indefinite elements is kept, capped at maxDepth.
func (d *berReader) skip(h header) error {
	if h.length >= 0 {
		return d.discard(h.length)
	}
	open := 1
	for open > 0 {
		c, err := d.readHeader()
		if err != nil {
			return err
		}
		switch {
		case c.eoc():
			open--
		case c.length < 0:
			open++
			if open > d.maxDepth {
				return errTooDeep
			}
		default:
			if err := d.discard(c.length); err != nil {
				return err
			}
		}
	}
	return nil
}

// capture consumes h's contents and returns the whole element, header included. ok is false
// when the element is larger than max: it is then skipped, not kept.
func (d *berReader) capture(h header, max int) (b []byte, ok bool, err error) {
	if h.rawLen > max || (h.length >= 0 && h.length > int64(max-h.rawLen)) {
		return nil, false, d.skip(h)
	}
	d.rec = append(make([]byte, 0, min(max, 4096)), h.raw[:h.rawLen]...)
	d.recMax, d.recBad = max, false
	err = d.skip(h)
	b, bad := d.rec, d.recBad
	d.rec, d.recBad = nil, false
	if err != nil || bad {
		return nil, false, err
	}
	return b, true, nil
}

// readSmall returns the contents of a primitive element of at most max bytes; a larger or
// constructed one is skipped and ok is false.
func (d *berReader) readSmall(h header, max int) (b []byte, ok bool, err error) {
	if h.constructed || h.length > int64(max) {
		return nil, false, d.skip(h)
	}
	b = make([]byte, h.length)
	n, err := io.ReadFull(d.r, b)
	d.pos += int64(n)
	if err != nil {
		return nil, false, eof(err)
	}
	if d.rec != nil && !d.recBad {
		if len(d.rec)+len(b) <= d.recMax {
			d.rec = append(d.rec, b...)
		} else {
			d.recBad = true
		}
	}
	return b, true, nil
}

// octets copies the contents of an OCTET STRING to w, joining the segments of a constructed
// (BER) one (X.690 §8.7.3), as streaming signers such as Outlook and `openssl cms -stream`
// write it.
func (d *berReader) octets(h header, w io.Writer) error {
	if !h.constructed {
		return d.copyN(w, h.length)
	}
	stack := []frame{h.frame()}
	for len(stack) > 0 {
		c, ok, err := d.next(stack[len(stack)-1])
		if err != nil {
			return err
		}
		if !ok {
			stack = stack[:len(stack)-1]
			continue
		}
		if c.constructed {
			if len(stack) >= d.maxDepth {
				return errTooDeep
			}
			stack = append(stack, c.frame())
			continue
		}
		if err := d.copyN(w, c.length); err != nil {
			return err
		}
	}
	return nil
}

// copyN passes n content bytes to w straight from the read buffer. A nil w discards them.
func (d *berReader) copyN(w io.Writer, n int64) error {
	if w == nil {
		return d.discard(n)
	}
	for n > 0 {
		k := int(min(n, int64(d.r.Size())))
		b, err := d.r.Peek(k)
		if len(b) > 0 {
			if _, werr := w.Write(b); werr != nil {
				return fmt.Errorf("smime: writing the signed content: %w", werr)
			}
			_, _ = d.r.Discard(len(b)) // cannot fail: Peek has just buffered these bytes
			d.pos += int64(len(b))
			n -= int64(len(b))
		}
		if err != nil && len(b) < k {
			return eof(err)
		}
	}
	return nil
}

// finish consumes whatever is left of f (children not looked at).
func (d *berReader) finish(f frame) error {
	for {
		c, ok, err := d.next(f)
		if err != nil || !ok {
			return err
		}
		if err := d.skip(c); err != nil {
			return err
		}
	}
}
