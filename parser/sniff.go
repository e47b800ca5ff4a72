package parser

import (
	"bytes"
	"io"
	"strings"

	"github.com/journalsensor/sensor/parser/walker"
)

// A body whose Content-Transfer-Encoding was removed or mangled is still base64 to the
// mail clients and scanners that look at it (Rspamd decodes it), and to the recipient who
// saves it through one of them. Hashing the base64 text instead of the file would give the
// threat feeds a hash nobody else computes, which is the point of stripping the header. So a
// body that is clearly base64 is decoded, and the record says so.

// b64SniffBytes is how much of a body is read before deciding. The decision has to be made
// before the first byte is hashed, and a part is read once; 8 KiB is a hundred 76-column
// lines, far more than text that only looks like base64 for a few lines survives.
const b64SniffBytes = 8 << 10

// misspeltBase64 reports whether a Content-Transfer-Encoding that is not "base64" is a
// spelling of it that mailers and hand-written scripts produce ("base-64", "base 64",
// "b64", a quoted "base64") and that lenient readers accept.
func misspeltBase64(enc string) bool {
	if enc == "base64" {
		return false
	}
	var b strings.Builder
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; 'a' <= c && c <= 'z' || '0' <= c && c <= '9' {
			b.WriteByte(c)
		}
	}
	s := b.String()
	return s == "base64" || s == "b64"
}

// b64Shape checks bytes against the shape a MIME base64 encoder writes: only the alphabet,
// padding only at the end, lines of at most 76 characters, every line but the last as long
// as the first. Anything else means the bytes were not written by an encoder, however much
// they look like one: the test must not fire on text.
type b64Shape struct {
	line    int   // characters on the current line
	first   int   // length of the first non-empty line; 0 until it ends
	lines   int   // non-empty lines ended
	pad     int   // '=' seen
	total   int64 // characters seen
	ended   bool  // a line shorter than the first ended: it must be the last
	blank   bool  // a blank line after data: only blank lines may follow
	invalid bool
}

func (s *b64Shape) write(p []byte) {
	if s.invalid {
		return
	}
	for _, c := range p {
		switch {
		case c == '\n':
			s.endLine()
		case c == '\r':
			// CRLF or LF: both are line ends.
		case c == '=':
			s.pad++
			s.char()
		case b64Alphabet[c] == 1:
			if s.pad > 0 {
				s.invalid = true // data after padding: not one encoder's output
			}
			s.char()
		default:
			s.invalid = true
		}
		if s.invalid {
			return
		}
	}
}

func (s *b64Shape) char() {
	if s.ended || s.blank || s.pad > 2 {
		s.invalid = true
	}
	s.line++
	s.total++
	if s.line > 76 {
		s.invalid = true
	}
}

func (s *b64Shape) endLine() {
	switch {
	case s.line == 0:
		s.blank = s.lines > 0
	case s.lines == 0:
		s.first = s.line
	case s.line > s.first:
		s.invalid = true
	case s.line < s.first:
		s.ended = true
	}
	if s.line > 0 {
		s.lines++
	}
	if s.lines > 1 && s.first%4 != 0 {
		s.invalid = true // encoders break lines on whole quanta
	}
	s.line = 0
}

// complete reports whether the bytes written were a whole encoded body.
func (s *b64Shape) complete() bool {
	if s.line > 0 {
		s.endLine()
	}
	return !s.invalid && s.total > 0 && s.total%4 == 0
}

// sniffCheck passes a sniffed body on and keeps checking its shape past the prefix the
// decision was made on.
type sniffCheck struct {
	r     io.Reader
	shape *b64Shape
}

func (c sniffCheck) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.shape.write(p[:n])
	return n, err
}

// sniffedBase64 is the decoder of a body that was sniffed as base64.
type sniffedBase64 struct {
	*base64Reader
	shape  b64Shape
	prefix []byte
}

func (d *sniffedBase64) release() {
	d.base64Reader.release()
	d.bufs.put(d.prefix)
	d.prefix = nil
}

// broken reports whether the body stopped looking like base64 after the decision to
// decode it.
func (d *sniffedBase64) broken() bool {
	return !d.shape.complete()
}

// sniffBase64 reads up to b64SniffBytes of r and returns a decoder for the whole body: a
// base64 one when the bytes read are clearly base64 (all of the body when it is that short,
// else a prefix with the shape of an encoder's output), else one that passes the body on
// unchanged. The bytes read are always handed on first, so nothing is lost either way.
func sniffBase64(r io.Reader, bufs *byteCache) (decoder, *sniffedBase64) {
	buf, prefix, rest, err := readPrefix(r, bufs)
	var shape b64Shape
	shape.write(prefix)
	var looks bool
	switch err {
	case nil: // more to come: the prefix must already be many lines of an encoder's
		looks = !shape.invalid && shape.lines > 1
	case io.EOF, io.ErrUnexpectedEOF: // the whole body
		looks = shape.complete()
	} // a failed read decides nothing; the error is passed on
	if !looks {
		return &prefixed{Reader: io.MultiReader(bytes.NewReader(prefix), rest), buf: buf, bufs: bufs}, nil
	}
	d := &sniffedBase64{shape: shape, prefix: buf}
	d.base64Reader = newBase64Reader(io.MultiReader(bytes.NewReader(prefix), sniffCheck{rest, &d.shape}), bufs)
	return d, d
}

// readPrefix reads up to b64SniffBytes of r into a buffer from bufs, for a sniffer to look
// at. rest is what follows the prefix: r itself, a reader at its end, or one that returns
// the read's error again, so that the body handed on fails where r failed. err is the read's.
func readPrefix(r io.Reader, bufs *byteCache) (buf, prefix []byte, rest io.Reader, err error) {
	buf = bufs.get(b64SniffBytes)
	n, err := io.ReadFull(r, buf)
	switch err {
	case nil:
		rest = r
	case io.EOF, io.ErrUnexpectedEOF:
		rest = eofReader{}
	default:
		rest = errReader{err}
	}
	return buf, buf[:n], rest, err
}

// prefixed passes a body through after the bytes read to sniff it.
type prefixed struct {
	io.Reader
	buf  []byte
	bufs *byteCache
}

func (*prefixed) repairs() (int64, string) { return 0, "" }
func (p *prefixed) release() {
	p.bufs.put(p.buf)
	p.buf = nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// A text part that declares 7bit, 8bit or no encoding but whose body is quoted-printable
// still has its links cut by soft line breaks ("https://evil.exa=\r\nmple.com/") in the
// declared bytes, so the URL scanner would list a stump. The part itself is not decoded: the
// declared bytes are what the recipient's client shows, its hashes stay theirs, and plenty of
// 7bit text has an "=" at a line end (a signature rule, a formula). Only the URL scanner is
// fed the quoted-printable decoding, and only when the start of the body has a shape that
// text written by hand does not: see qpShape. It reads the declared bytes as well, from a
// copy of at most maxSniffedRaw: a sender can shape a body so that its decoding cuts the
// links its declared bytes hold ("<a href=" and a line break is HTML, and a soft break to the
// decoder), so neither reading alone is safe. The price is the stumps of links the decoding
// holds whole, listed too: they are what a client that honours 7bit opens.

// qpShape checks bytes for the shape a quoted-printable encoder writes: every "=" starts a
// soft line break or an uppercase hex escape, and no line is longer than 76 characters. The
// body must also hold the encoding's marks: soft breaks on two lines, or one and an escape.
// A lone "=" at a line end is not enough, and one stray "=" (as in "a = b", or base64
// padding) rules the body out.
type qpShape struct {
	line    int  // characters on the current line
	eq      int  // 1 or 2 after "=" and a hex digit: an escape or soft break being read
	soft    int  // soft line breaks
	escapes int  // =XX escapes
	invalid bool // bytes no encoder writes
}

func (s *qpShape) write(p []byte) {
	for _, c := range p {
		if s.invalid {
			return
		}
		switch {
		case s.eq > 0 && (c == '\r' || c == '\n'):
			if s.eq == 2 {
				s.invalid = true // "=X" then a line end
			} else if c == '\n' {
				s.soft++
				s.eq, s.line = 0, 0
			} else {
				s.eq = -1 // "=" CR: the LF must follow
			}
		case s.eq == -1:
			if c != '\n' {
				s.invalid = true
			}
			s.soft++
			s.eq, s.line = 0, 0
		case s.eq > 0:
			if !('0' <= c && c <= '9' || 'A' <= c && c <= 'F') {
				s.invalid = true
			} else if s.eq++; s.eq == 3 {
				s.escapes++
				s.eq = 0
			}
			s.char()
		case c == '\n':
			s.line = 0
		case c == '\r':
		case c == '=':
			s.eq = 1
			s.char()
		default:
			s.char()
		}
	}
}

func (s *qpShape) char() {
	if s.line++; s.line > 76 {
		s.invalid = true
	}
}

// looks reports whether the bytes written were quoted-printable. A prefix cut inside an
// escape is judged on what came before it.
func (s *qpShape) looks() bool {
	return !s.invalid && (s.soft >= 2 || s.soft >= 1 && s.escapes >= 1)
}

// qpSniffable reports whether a part's links are looked for in its quoted-printable
// decoding when its body has the shape: body text that declares no real encoding.
func qpSniffable(p *walker.Part) bool {
	switch p.Encoding {
	case "", "7bit", "8bit":
		return p.MediaType == "text/plain" || p.MediaType == "text/html"
	}
	return false
}

// sniffQP reads up to b64SniffBytes of r and returns the text the URL scanner reads: the
// quoted-printable decoding of the body when those bytes have its shape, else the body as it
// is. The bytes read are handed on first either way. The returned decoder is to be
// released when the scanner is done.
func sniffQP(r io.Reader, bufs *byteCache) (d decoder, sniffed bool) {
	buf, prefix, rest, _ := readPrefix(r, bufs)
	var shape qpShape
	shape.write(prefix)
	body := &prefixed{Reader: io.MultiReader(bytes.NewReader(prefix), rest), buf: buf, bufs: bufs}
	if !shape.looks() {
		return body, false
	}
	raw := newBoundedCopy(maxSniffedRaw)
	return &sniffedQP{qpReader: newQPReader(io.TeeReader(body, raw), bufs), body: body, raw: raw}, true
}

// maxSniffedRaw is how much of a text part is kept for a second reading (a sniffed
// quoted-printable body as declared, UTF-16 in its other byte order): text parts are small,
// and a cap keeps hostile ones bounded.
const maxSniffedRaw = 1 << 20

// boundedCopy keeps the bytes written to it while its budget lasts: a count of bytes kept
// (used) against a maximum, its own or one that several copies share. It says whether it
// dropped any, and never fails a write, so a tee or a zip listing goes on past its end.
type boundedCopy struct {
	b    []byte
	cut  bool
	used *int
	max  int
	own  int // used, when the budget is the copy's own
}

// newBoundedCopy returns a copy with a budget of its own of limit bytes.
func newBoundedCopy(limit int) *boundedCopy {
	c := &boundedCopy{max: limit}
	c.used = &c.own
	return c
}

func (c *boundedCopy) Write(p []byte) (int, error) {
	keep := min(len(p), max(c.max-*c.used, 0))
	if keep < len(p) {
		c.cut = true
	}
	c.b = append(c.b, p[:keep]...)
	*c.used += keep
	return len(p), nil
}

// sniffedQP is the quoted-printable decoding of a sniffed body. Escapes it cannot decode are
// not reported: the part never claimed to be quoted-printable.
type sniffedQP struct {
	*qpReader
	body *prefixed
	raw  *boundedCopy // the declared bytes, read for links too once the decoding has been
}

func (*sniffedQP) repairs() (int64, string) { return 0, "" }
func (d *sniffedQP) release() {
	d.qpReader.release()
	d.body.release()
	d.raw.b = nil
}
