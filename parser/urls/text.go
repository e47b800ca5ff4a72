package urls

import (
	"bytes"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	defaultChunk = 32 << 10

	// slack lets the scanner look a little past MaxURLLength for the URL's end, so that a URL
	// of exactly the maximum followed by a full stop is kept whole rather than cut.
	slack = 16

	// tailKeep is how many unscanned bytes can still begin a URL whose separator has not
	// arrived: an opener, "hxxps" and the "[:]/" of a split "[:]//". It also covers the
	// boundary byte and "www[" of a schemeless link whose dot has not arrived.
	tailKeep = 1 + len("hxxps") + len("[:]/")

	// maxEmptyReads mirrors bufio: a reader that keeps returning nothing is broken, and
	// spinning on it would hang the message.
	maxEmptyReads = 100
)

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

// ScanText reads plain text from r and collects the http, https and ftp URLs in it, the
// mailto: URIs written out (never bare addresses), the schemeless ones that start with "www."
// (recorded as http://www...), and de-fanged ones (hxxp://, [.], [:]//, ...), made whole and
// marked Obfuscated. Memory stays bounded by twice
// MaxURLLength plus one 32 KiB chunk, whatever the size of r. Only a read error from r is
// returned; what was read before it is still scanned.
func (c *Collector) ScanText(r io.Reader, source string) error {
	c.skipping = false
	c.before = -1
	defer func() { c.skipping = false }()

	buf := c.buf[:0]
	for {
		var err error
		buf, err = c.readMore(r, buf)
		atEOF := err != nil
		keep := c.scanText(buf, atEOF, source)
		if keep > 0 {
			c.before = int(buf[keep-1])
		}
		if atEOF {
			if err == io.EOF {
				return nil
			}
			return err
		}
		buf = buf[:copy(buf, buf[keep:])]
	}
}

// readMore appends the next chunk of r to buf, the carried tail of the last one, growing
// c.buf as needed, and returns the longer buf with readFull's error. Fresh input at least as
// long as the carried tail keeps the rescanning of a pending URL amortised linear, whatever
// the chunk size.
func (c *Collector) readMore(r io.Reader, buf []byte) ([]byte, error) {
	want := max(c.chunk, len(buf))
	if cap(buf)-len(buf) < want {
		nb := make([]byte, len(buf), max(len(buf)+want, 2*cap(buf)))
		copy(nb, buf)
		buf = nb
		c.buf = nb
	}
	n, err := readFull(r, buf[len(buf):len(buf)+want])
	return buf[:len(buf)+n], err
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
	c.before = -1
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
	lo := from // no link may start inside a URL already taken
	// The next candidate of each kind is kept until the scan passes it, so that a run of
	// rejected candidates of one kind does not make the other kind's search start over.
	sc, wc := candidate{marker: -1}, candidate{marker: -1}
	for {
		if sc.marker != none && (sc.marker < from || sc.s < lo) {
			sc = nextScheme(b, from, lo)
		}
		if wc.marker != none && (wc.marker < from || wc.s < lo) {
			wc = nextWWW(b, from, lo, c.before)
		}
		var cd candidate
		switch {
		case sc.marker == none && wc.marker == none:
			if atEOF {
				return len(b)
			}
			return max(len(b)-tailKeep, lo)
		case wc.marker == none || sc.marker != none && sc.s < wc.s:
			cd = sc
		default:
			cd = wc
		}
		s, start := cd.s, cd.body
		var opener, closer byte
		if s > 0 {
			opener = b[s-1]
			closer = closerOf(opener)
		}
		end, depth := -1, 0
		if cd.www {
			hEnd, reach, obf, ok, more := wwwHost(b, s, min(maxScan, maxWWWHost), atEOF)
			if more {
				return max(s-1, 0)
			}
			if !ok {
				// Any other "www." in the host just read is glued to it ('.', a dot marker or
				// a letter comes before it), so the search goes on after it. Rescanning
				// from each would be quadratic in a run like "www.a(.)www.a(.)...".
				from = max(cd.marker+1, reach)
				continue
			}
			cd.obf = cd.obf || obf
			start = hEnd
			// Without a scheme to vouch for it, a link goes past its host only into a
			// path, query, fragment or port: "www.example.com,next" is prose.
			switch goesOn, more := pastHost(b, hEnd, atEOF); {
			case more:
				return max(s-1, 0)
			case !goesOn:
				end = hEnd
			}
		}
		j := start
	scan:
		for end < 0 && j < len(b) {
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
			c.addCandidate(b[s:cut], cd, source)
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
		e := s + trimTail(b[s:end], start-s)
		if e > start || cd.www && e == start {
			c.addCandidate(b[s:e], cd, source)
		}
		lo, from = end, end
	}
}

// none marks a candidate search that found nothing up to the end of the buffer.
const none = -2

// candidate is where a link may start in text.
type candidate struct {
	marker int  // the ':' of the scheme separator or the '.' after "www"; -1 unknown, or none
	s      int  // first byte of the link
	body   int  // first byte after "scheme://", or after "www" for a schemeless link
	www    bool // a schemeless www. link: "http://" goes in front
	mailto bool // a mailto: URI; body is the byte after the colon
	obf    bool // the link is de-fanged: hxxp://, http[:]//, www[.]
}

// nextScheme finds the first "scheme://" or "mailto:" whose ':' is at or after from. The
// separator may be de-fanged as "[:]//" or "[://]", the scheme as hxxp or hxxps.
func nextScheme(b []byte, from, lo int) candidate {
	for i := from; ; {
		k := bytes.IndexByte(b[i:], ':')
		if k < 0 {
			return candidate{marker: none}
		}
		m := i + k
		i = m + 1
		sep, body, obf := m, m+len("://"), false
		switch {
		case m >= len("mailto") && equalFoldASCII(b[m-len("mailto"):m], "mailto"):
			// Written out, a mailto: URI is a link; a bare address in prose is not.
			if s := m - len("mailto"); s >= lo {
				return candidate{marker: m, s: s, body: m + 1, mailto: true}
			}
			continue
		case m > 0 && b[m-1] == '[' && (hasAt(b, m, ":]//") || hasAt(b, m, "://]")):
			sep, body, obf = m-1, m+len(":]//"), true
		case hasAt(b, m, "://"):
		default:
			continue
		}
		s, defanged := schemeStart(b, sep, lo)
		if s < 0 {
			continue
		}
		return candidate{marker: m, s: s, body: body, obf: obf || defanged}
	}
}

// nextWWW finds the first "www." (or "www[.]", "www(.)") whose dot is at or after from and
// that begins a word. before is the byte that came before b[0] in the text, or -1.
func nextWWW(b []byte, from, lo, before int) candidate {
	for i := from; ; {
		k := bytes.IndexByte(b[i:], '.')
		if k < 0 {
			return candidate{marker: none}
		}
		d := i + k
		i = d + 1
		var s int
		obf := false
		switch {
		case d >= 3 && equalFoldASCII(b[d-3:d], "www"):
			s = d - 3
		case d >= 4 && d+1 < len(b) && isDotMarker(b[d-1:d+2]) && equalFoldASCII(b[d-4:d-1], "www"):
			s, obf = d-4, true
		default:
			continue
		}
		prev := before
		if s > 0 {
			prev = int(b[s-1])
		}
		if s < lo || prev >= 0 && !wordBoundary(byte(prev)) {
			continue
		}
		return candidate{marker: d, s: s, body: s + len("www"), www: true, obf: obf}
	}
}

// maxWWWHost bounds the host of a schemeless link: a name is at most 253 bytes, and this
// leaves room for de-fanged dots and UTF-8.
const maxWWWHost = 1024

// wwwHost reads the host of a schemeless link that starts at s and reports whether it looks
// like a name on the internet: www, then at least two labels, the last one a plausible top
// level domain. That is what keeps "www.-ish" and "www.foo" in prose from becoming links.
// end is where the host ends, trailing dots left out, and reach how far it was read; more
// means b ended first.
func wwwHost(b []byte, s, limit int, atEOF bool) (end, reach int, obf, ok, more bool) {
	j := s
	for j < len(b) {
		if j-s > limit {
			return 0, j, false, false, false
		}
		ch := b[j]
		if ch >= utf8.RuneSelf {
			n, stop, more := wideStop(b[j:], atEOF)
			if more {
				return 0, 0, false, false, true
			}
			if stop {
				break
			}
			j += n
			continue
		}
		if isAlnum(ch) || ch == '-' || ch == '_' || ch == '.' {
			j++
			continue
		}
		n, partial := dotMarkerAt(b[j:], atEOF)
		if partial {
			return 0, 0, false, false, true
		}
		if n == 0 {
			break
		}
		j += n
		obf = true
	}
	if j == len(b) && !atEOF {
		return 0, 0, false, false, true
	}
	reach = j
	for j > s && b[j-1] == '.' {
		j--
	}
	return j, reach, obf, validWWWHost(b[s:j]), false
}

// pastHost reports whether the schemeless link whose host ends at i goes on into a path,
// query, fragment or port.
func pastHost(b []byte, i int, atEOF bool) (goesOn, more bool) {
	if i >= len(b) {
		return false, !atEOF
	}
	switch b[i] {
	case '/', '?', '#':
		return true, false
	case ':':
		if i+1 >= len(b) {
			return false, !atEOF
		}
		return '0' <= b[i+1] && b[i+1] <= '9', false
	}
	return false, false
}

// validWWWHost checks a schemeless host, possibly de-fanged: www, at least two more labels,
// none empty, the last one letters only (ASCII or not) or an IDNA "xn--" label.
func validWWWHost(h []byte) bool {
	labels := 0
	var last []byte
	for len(h) > 0 {
		n := 0
		for n < len(h) && h[n] != '.' && h[n] != '[' && h[n] != '(' && h[n] != '{' {
			n++
		}
		if n == 0 {
			return false
		}
		last = h[:n]
		if labels == 0 && !equalFoldASCII(last, "www") {
			return false
		}
		labels++
		h = h[n:]
		if len(h) == 0 {
			break
		}
		m, _ := dotMarkerAt(h, true)
		if m == 0 {
			if h[0] != '.' {
				return false
			}
			m = 1
		}
		h = h[m:]
		if len(h) == 0 {
			return false
		}
	}
	if labels < 3 || len(last) < 2 {
		return false
	}
	if len(last) > 4 && equalFoldASCII(last[:4], "xn--") {
		return true
	}
	ascii, other := false, false
	for _, r := range string(last) {
		switch {
		case r < utf8.RuneSelf && isLetter(byte(r)):
			ascii = true
		case r >= utf8.RuneSelf && unicode.IsLetter(r):
			other = true
		default:
			return false
		}
	}
	return ascii != other
}

// dotMarkers are the ways de-fanged links write a dot.
var dotMarkers = []string{"[.]", "(.)", "{.}", "[dot]", "(dot)", "{dot}"}

// dotMarkerAt returns the length of the dot marker b starts with, or 0. partial means b ends
// inside what may still become one.
func dotMarkerAt(b []byte, atEOF bool) (n int, partial bool) {
	if len(b) == 0 || (b[0] != '[' && b[0] != '(' && b[0] != '{') {
		return 0, false
	}
	for _, m := range dotMarkers {
		if len(b) >= len(m) {
			if equalFoldASCII(b[:len(m)], m) {
				return len(m), false
			}
		} else if !atEOF && equalFoldASCII(b, m[:len(b)]) {
			partial = true
		}
	}
	return 0, partial
}

// isDotMarker reports whether b, three bytes, is "[.]", "(.)" or "{.}".
func isDotMarker(b []byte) bool {
	return len(b) == 3 && b[1] == '.' && closerOfDot(b[0]) != 0 && closerOfDot(b[0]) == b[2]
}

func closerOfDot(open byte) byte {
	switch open {
	case '[':
		return ']'
	case '(':
		return ')'
	case '{':
		return '}'
	}
	return 0
}

// wordBoundary reports whether a schemeless link may start after ch. Letters, digits and the
// characters of addresses and URLs glue "www." to what precedes it: "user@www.example.com"
// is a mail address, "x.www.example.com" a longer name, "/www.example.com" a path, and
// "x[.]www.example.com" a de-fanged longer name (a closing bracket counts as the end of a dot
// marker). Any non-ASCII character is a boundary: Chinese and Japanese text runs into links
// without a space.
func wordBoundary(ch byte) bool {
	if ch >= utf8.RuneSelf {
		return true
	}
	return !isAlnum(ch) && strings.IndexByte(`-_.@/\%=&?#~+$)]}`, ch) < 0
}

// addCandidate adds the link text raw found for cd, made whole first when it was written
// without a scheme or de-fanged. A link whose scheme is intact but whose host is de-fanged
// ("http://evil[.]example/") counts as de-fanged too.
func (c *Collector) addCandidate(raw []byte, cd candidate, source string) {
	if cd.mailto {
		c.addMailto(raw, source)
		return
	}
	body := min(cd.body-cd.s, len(raw))
	obf := cd.obf || hostDefanged(raw[body:])
	if !cd.www && !obf {
		c.add(raw, source, false)
		return
	}
	out := c.refang[:0]
	if cd.www {
		out = append(out, "http://"...)
		body = 0
	} else {
		// The scheme, lower-cased, with hxxp made http again; then "://" whatever its
		// spelling was.
		for _, ch := range raw {
			if ch == ':' || ch == '[' {
				break
			}
			ch |= 0x20
			if ch == 'x' {
				ch = 't'
			}
			out = append(out, ch)
		}
		out = append(out, "://"...)
	}
	if obf {
		out = appendRefanged(out, raw[body:])
	} else {
		out = append(out, raw[body:]...)
	}
	c.refang = out
	c.add(out, source, obf)
}

// hostDefanged reports whether the host part of rest (what follows "scheme://") holds a dot
// marker.
func hostDefanged(rest []byte) bool {
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '/', '\\', '?', '#':
			return false
		case '[', '(', '{':
			if n, _ := dotMarkerAt(rest[i:], true); n > 0 {
				return true
			}
		}
	}
	return false
}

// appendRefanged appends src with each dot marker made a '.' again and "[:]" a ':'. Only a
// link already known to be de-fanged comes here: elsewhere a "(.)" is the link's own.
func appendRefanged(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		if n, _ := dotMarkerAt(src[i:], true); n > 0 {
			dst = append(dst, '.')
			i += n
			continue
		}
		if hasAt(src, i, "[:]") {
			dst = append(dst, ':')
			i += len("[:]")
			continue
		}
		dst = append(dst, src[i])
		i++
	}
	return dst
}

// schemeStart returns where the scheme ending at sep begins, or -1: http, https or ftp, or
// the de-fanged hxxp and hxxps. The scheme may not begin before lo.
func schemeStart(b []byte, sep, lo int) (s int, defanged bool) {
	for _, scheme := range []string{"https", "http", "ftp", "hxxps", "hxxp"} {
		s := sep - len(scheme)
		if s >= lo && equalFoldASCII(b[s:sep], scheme) {
			return s, scheme[1] == 'x'
		}
	}
	return -1, false
}

func hasAt(b []byte, i int, s string) bool {
	return i >= 0 && i+len(s) <= len(b) && string(b[i:i+len(s)]) == s
}

func isAlnum(ch byte) bool { return isLetter(ch) || '0' <= ch && ch <= '9' }

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
