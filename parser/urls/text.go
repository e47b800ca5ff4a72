package urls

import (
	"bytes"
	"io"
	"unicode"
	"unicode/utf8"
)

const (
	defaultChunk = 32 << 10

	// slack lets the scanner look a little past MaxURLLength for the URL's end, so that a URL
	// of exactly the maximum followed by a full stop is kept whole rather than cut.
	slack = 16

	// tailKeep is how many unscanned bytes can still begin a URL whose "://" has not arrived:
	// an opener, "https" and the ":/" of a split "://".
	tailKeep = 1 + len("https") + len(":/")

	// maxEmptyReads mirrors bufio: a reader that keeps returning nothing is broken, and
	// spinning on it would hang the message.
	maxEmptyReads = 100
)

var schemeSep = []byte("://")

// textStop marks the ASCII bytes that end a URL in running text.
var textStop = func() (t [utf8.RuneSelf]bool) {
	for b := 0; b < 0x20; b++ {
		t[b] = true
	}
	for _, b := range []byte{' ', 0x7f, '<', '>', '"', '`'} {
		t[b] = true
	}
	return t
}()

// ScanText reads plain text from r and collects the http, https and ftp URLs in it. Memory
// stays bounded by twice MaxURLLength plus one 32 KiB chunk, whatever the size of r. Only a
// read error from r is returned; what was read before it is still scanned.
func (c *Collector) ScanText(r io.Reader, source string) error {
	c.skipping = false
	defer func() { c.skipping = false }()

	buf := c.buf[:0]
	for {
		// Fresh input at least as long as the carried tail keeps the rescanning of a pending
		// URL amortised linear, whatever the chunk size.
		want := max(c.chunk, len(buf))
		if cap(buf)-len(buf) < want {
			nb := make([]byte, len(buf), max(len(buf)+want, 2*cap(buf)))
			copy(nb, buf)
			buf = nb
			c.buf = nb
		}
		n, err := readFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+n]
		atEOF := err != nil
		keep := c.scanText(buf, atEOF, source)
		if atEOF {
			if err == io.EOF {
				return nil
			}
			return err
		}
		buf = buf[:copy(buf, buf[keep:])]
	}
}

// readFull fills p unless r ends or fails first. Scanning only full chunks is what keeps the
// work per byte constant when r hands out one byte at a time.
func readFull(r io.Reader, p []byte) (int, error) {
	n, empty := 0, 0
	for n < len(p) {
		m, err := r.Read(p[n:])
		n += m
		if err != nil {
			return n, err
		}
		if m > 0 {
			empty = 0
			continue
		}
		if empty++; empty >= maxEmptyReads {
			return n, io.ErrNoProgress
		}
	}
	return n, nil
}

// scanBlock scans one self-contained piece of text, such as an HTML text token: whatever ends
// the block ends a URL in it.
func (c *Collector) scanBlock(b []byte, source string) {
	c.skipping = false
	c.scanText(b, true, source)
	c.skipping = false
}

// scanText adds the URLs in b and returns the offset of the first byte that must be presented
// again, with more input appended, because a URL may continue past the end of b. With atEOF
// the whole of b is consumed.
func (c *Collector) scanText(b []byte, atEOF bool, source string) (keep int) {
	maxLen := c.opts.MaxURLLength
	maxScan := maxLen + slack
	from := 0
	if c.skipping {
		var done bool
		if from, done = skipURL(b, 0, atEOF); !done {
			return from
		}
		c.skipping = false
	}
	lo := from // no scheme may start inside a URL already taken
	for {
		k := bytes.Index(b[from:], schemeSep)
		if k < 0 {
			break
		}
		sep := from + k
		s := schemeStart(b, sep, lo)
		if s < 0 {
			from = sep + 1
			continue
		}
		var opener, closer byte
		if s > 0 {
			opener = b[s-1]
			closer = closerOf(opener)
		}
		start := sep + len(schemeSep)
		end, depth := -1, 0
		j := start
	scan:
		for j < len(b) {
			if j-s >= maxScan {
				break
			}
			ch := b[j]
			if ch < utf8.RuneSelf {
				switch {
				case textStop[ch]:
					end = j
					break scan
				case closer == 0:
				case ch == closer:
					if depth == 0 {
						end = j
						break scan
					}
					depth--
				case ch == opener:
					depth++
				}
				j++
				continue
			}
			n, stop, more := wideStop(b[j:], atEOF)
			if more {
				break
			}
			if stop {
				end = j
				break
			}
			j += n
		}
		switch {
		case end >= 0:
		case j-s >= maxScan:
			// Too long to be kept whole: keep its first MaxURLLength bytes and pass over the
			// rest, so nothing inside it is mistaken for a link of its own.
			cut := runeStart(b, s+maxLen, s)
			c.limit(LimitURLLength)
			c.add(b[s:cut], source)
			next, done := skipURL(b, j, atEOF)
			if !done {
				c.skipping = true
				return next
			}
			lo, from = next, next
			continue
		case atEOF:
			end = len(b)
		default:
			// The URL may go on in the next chunk; keep it with its opener.
			return max(s-1, 0)
		}
		if e := s + trimTail(b[s:end], start-s); e > start {
			c.add(b[s:e], source)
		}
		lo, from = end, end
	}
	if atEOF {
		return len(b)
	}
	return max(len(b)-tailKeep, lo)
}

// schemeStart returns where the http, https or ftp scheme ending at sep begins, or -1. The
// scheme may not begin before lo.
func schemeStart(b []byte, sep, lo int) int {
	for _, scheme := range []string{"https", "http", "ftp"} {
		s := sep - len(scheme)
		if s >= lo && equalFoldASCII(b[s:sep], scheme) {
			return s
		}
	}
	return -1
}

// closerOf gives the byte that ends a URL written right after opener. '<' and '"' need no
// entry: '>' and '"' end every URL anyway.
func closerOf(opener byte) byte {
	switch opener {
	case '(':
		return ')'
	case '[':
		return ']'
	case '\'':
		return '\''
	}
	return 0
}

// wideStop reports whether the non-ASCII character at the start of b ends a URL: Unicode white
// space (a no-break space from &nbsp; is the usual one) and C1 controls do. more means b
// ends inside the character and the caller must wait for the rest.
func wideStop(b []byte, atEOF bool) (n int, stop, more bool) {
	r, n := utf8.DecodeRune(b)
	if r == utf8.RuneError && n <= 1 {
		if !atEOF && !utf8.FullRune(b) {
			return 0, false, true
		}
		return 1, false, false // invalid byte: part of the URL, encoded later
	}
	return n, unicode.IsSpace(r) || (r >= 0x80 && r <= 0x9f), false
}

// skipURL passes over the remainder of a URL that was cut, up to the next byte that ends a
// URL. done is false when b ended first; next is then where skipping must resume, which is
// before a character b holds only the start of.
func skipURL(b []byte, j int, atEOF bool) (next int, done bool) {
	for j < len(b) {
		ch := b[j]
		if ch < utf8.RuneSelf {
			if textStop[ch] {
				return j, true
			}
			j++
			continue
		}
		n, stop, more := wideStop(b[j:], atEOF)
		if more {
			return j, false
		}
		if stop {
			return j, true
		}
		j += n
	}
	return len(b), atEOF
}

// runeStart moves i back, not below lo, so that b[:i] does not end inside a UTF-8 sequence.
func runeStart(b []byte, i, lo int) int {
	for k := 0; k < utf8.UTFMax-1 && i > lo && i < len(b) && !utf8.RuneStart(b[i]); k++ {
		i--
	}
	return i
}

// trimTail returns the length of u once the punctuation that ends sentences around links is
// taken off. A closing bracket stays while it has an opening partner in the URL, so
// Wikipedia's "Foo_(bar)" keeps its parenthesis. min protects "scheme://".
func trimTail(u []byte, min int) int {
	// Counted once up front; each trimmed closer then updates the count, keeping this linear
	// even for a URL that ends in thousands of brackets.
	var open, shut [3]int
	for _, ch := range u[min:] {
		if k := bracketKind(ch); k >= 0 {
			if ch == "([{"[k] {
				open[k]++
			} else {
				shut[k]++
			}
		}
	}
	e := len(u)
	for e > min {
		ch := u[e-1]
		switch ch {
		case '.', ',', ';', ':', '!', '?', '\'', '"':
			e--
			continue
		case ')', ']', '}':
			k := bracketKind(ch)
			if shut[k] > open[k] {
				shut[k]--
				e--
				continue
			}
		}
		break
	}
	return e
}

func bracketKind(ch byte) int {
	switch ch {
	case '(', ')':
		return 0
	case '[', ']':
		return 1
	case '{', '}':
		return 2
	}
	return -1
}

// equalFoldASCII compares b with lower, which must be lower-case ASCII letters, ignoring case.
func equalFoldASCII(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		if b[i]|0x20 != lower[i] {
			return false
		}
	}
	return true
}
