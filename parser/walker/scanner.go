package walker

import (
	"bytes"
	"errors"
	"io"
)

// scanner splits a byte stream into lines without ever holding more than one buffer of it.
//
// Mail arrives with CRLF, bare LF, CR-only and mixed line endings, and with lines far longer
// than any buffer (a 64 MiB base64 blob with no line breaks is legal enough to meet). So a
// line may come back in fragments: only the first fragment of a line has start set, and only
// the last one carries its end-of-line bytes. Concatenating line+eol of every fragment gives
// back the input exactly; the walker relies on that to hash raw bytes.
type scanner struct {
	r          io.Reader
	buf        []byte
	max        int // buf starts small and doubles up to this while lines or reads need it
	start, end int
	err        error // sticky error from r, returned once the buffer is drained
	lineStart  bool  // the next fragment begins a line
	consumed   int64 // bytes handed out so far

	crlf, lf, cr int64 // line endings seen, by kind
}

// scannerStart is the initial buffer: most messages are a few KiB, and a full-size buffer
// for each was a large share of the parser's allocations.
const scannerStart = 4 << 10

func newScanner(r io.Reader, size int) *scanner {
	return &scanner{r: r, buf: make([]byte, min(scannerStart, size)), max: size, lineStart: true}
}

// grow doubles the buffer, up to max, keeping the unread bytes.
func (s *scanner) grow() {
	nb := make([]byte, min(2*len(s.buf), s.max))
	s.end = copy(nb, s.buf[s.start:s.end])
	s.start = 0
	s.buf = nb
}

// errNoProgress guards against a reader that keeps returning 0, nil.
var errNoProgress = errors.New("walker: reader returned no data and no error 100 times")

// next returns the next line fragment. line excludes the terminator; eol is "\r\n", "\n",
// "\r", "\r\r\n" or empty (a fragment of a longer line, or the last line of the input). The
// slices are valid until the next call. err is io.EOF at a clean end, or the reader's error,
// and is only returned with an empty fragment.
func (s *scanner) next() (line, eol []byte, start bool, err error) {
	start = s.lineStart
	for {
		data := s.buf[s.start:s.end]
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			j := bytes.IndexByte(data[:i], '\r')
			switch {
			case j < 0:
				s.lf++
				return s.take(i, 1)
			case j == i-1:
				s.crlf++
				return s.take(j, 2)
			case j == i-2 && data[j+1] == '\r':
				// QUIRK: "\r\r\n" comes from a CRLF file that went through one more LF→CRLF
				// conversion (seen from Outlook add-ins and some webmail exports). Treating
				// the lone CR as a line end would invent a blank line, and a blank line ends
				// a header block early.
				s.crlf++
				return s.take(j, 3)
			default:
				s.cr++
				return s.take(j, 1)
			}
		}
		// No LF buffered. A CR followed by something other than LF still ends a line
		// (CR-only mail from classic Mac OS tools and some gateways).
		if j := bytes.IndexByte(data, '\r'); j >= 0 {
			if j+1 < len(data) && !(data[j+1] == '\r' && j+2 == len(data)) {
				s.cr++
				return s.take(j, 1)
			}
			if s.err != nil { // trailing CR (or CRCR) at end of input
				s.cr++
				return s.take(j, len(data)-j)
			}
		} else if s.err != nil {
			if len(data) == 0 {
				return nil, nil, start, s.err
			}
			return s.take(len(data), 0)
		}
		if s.start == 0 && s.end == len(s.buf) && len(s.buf) < s.max {
			s.grow()
			continue
		}
		if s.start == 0 && s.end == len(s.buf) {
			// A line longer than the buffer: hand out a fragment, holding back a trailing
			// CR that may be the first half of a CRLF.
			n := len(data)
			for n > 0 && data[n-1] == '\r' {
				n--
			}
			if n == 0 { // the buffer is all CRs; give one out as a CR-only line end
				s.cr++
				return s.take(0, 1)
			}
			return s.take(n, 0)
		}
		s.fill()
	}
}

// take hands out data[:n] as the line and the following e bytes as its terminator.
func (s *scanner) take(n, e int) (line, eol []byte, start bool, err error) {
	start = s.lineStart
	data := s.buf[s.start:s.end]
	line, eol = data[:n:n], data[n:n+e:n+e]
	s.start += n + e
	s.consumed += int64(n + e)
	s.lineStart = e > 0
	return line, eol, start, nil
}

// peek returns up to n of the next bytes without consuming them (fewer at the end of the
// input, and never more than the buffer holds).
func (s *scanner) peek(n int) []byte {
	for len(s.buf) < min(n, s.max) {
		s.grow()
	}
	n = min(n, len(s.buf))
	for s.end-s.start < n && s.err == nil {
		s.fill()
	}
	return s.buf[s.start:min(s.end, s.start+n)]
}

func (s *scanner) fill() {
	if s.start > 0 {
		copy(s.buf, s.buf[s.start:s.end])
		s.end -= s.start
		s.start = 0
	}
	for range 100 {
		free := len(s.buf) - s.end
		n, err := s.r.Read(s.buf[s.end:])
		s.end += n
		if n == free && len(s.buf) < s.max {
			// The reader had at least a buffer's worth ready: a big message, so read
			// in bigger pieces from now on.
			s.grow()
		}
		if err != nil {
			s.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	s.err = errNoProgress
}
