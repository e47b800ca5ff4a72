package textfile

import "bytes"

// parseBegin reads a uuencode header, "begin MODE NAME" or "begin-base64 MODE NAME", where
// MODE is three or four octal digits. note is an anomaly to record if the block is real.
func parseBegin(l []byte) (kind, name, note string, ok bool) {
	rest := l[len("begin"):]
	kind = KindUUEncode
	if bytes.HasPrefix(rest, []byte("-base64")) {
		kind = KindUUBase64
		rest = rest[len("-base64"):]
	}
	i := skipBlank(rest)
	if i == 0 {
		return "", "", "", false
	}
	rest = rest[i:]
	d := 0
	for d < len(rest) && d < 5 && rest[d] >= '0' && rest[d] <= '7' {
		d++
	}
	if d < 3 || d > 4 {
		return "", "", "", false
	}
	rest = rest[d:]
	if len(rest) > 0 {
		// QUIRK: "begin 644 " with no name at all is in the wild (mime-tools' sig-uu.msg);
		// uudecode would refuse it, but it is still a file the sender attached.
		i = skipBlank(rest)
		if i == 0 {
			return "", "", "", false // "begin 6440", "begin 644x"
		}
		rest = rest[i:]
	}
	nb := bytes.TrimRight(rest, " \t\f\v")
	switch {
	case len(nb) == 0:
		note = kind + ": no file name"
	case len(nb) > maxName:
		nb = nb[:maxName]
		note = kind + ": file name truncated"
	}
	return kind, string(nb), note, true
}

func skipBlank(b []byte) int {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	return i
}

// uuChar reports whether c is in uuencode's alphabet: space (or backtick, its stand-in for
// zero) through underscore.
func uuChar(c byte) bool { return c >= 0x20 && c <= 0x60 }

// uuLen returns the byte count a uuencoded line's first character announces, and how many
// characters carry them: the fewest that can (need) and a whole number of quads (full).
func uuLen(c byte) (n, need, full int) {
	n = int(c-0x20) & 63
	return n, (n*4 + 2) / 3, (n + 2) / 3 * 4
}

// firstUULine decides whether the line after a begin line makes it a real block. It is
// stricter than uuLine: every character in the alphabet and enough of them for the
// announced length, at most one character past the last quad (some encoders append a
// checksum character). Lower-case letters are outside the alphabet, so prose never passes.
func firstUULine(l []byte) bool {
	if !uuChar(l[0]) {
		return false
	}
	n, need, full := uuLen(l[0])
	body := l[1:]
	if n == 0 {
		return l[0] == '`' && len(trimSpace(body)) == 0
	}
	if len(body) < need || len(body) > full+1 {
		return false
	}
	for _, c := range body {
		if !uuChar(c) {
			return false
		}
	}
	return true
}

// uuLine handles a line inside a uuencode block. It returns false when the line is not part
// of the block, which has then been ended; the caller looks at the line again.
func (s *Scanner) uuLine(l []byte) bool {
	t := trimSpace(l)
	if string(t) == "end" {
		s.end(true)
		return true
	}
	if len(t) == 0 {
		// QUIRK: blank lines inside a block come from doubled line ends, or from a
		// zero-length line whose only character, a space, a mailer stripped.
		return true
	}
	if s.zero {
		s.note("uuencode: no end line")
		s.end(false)
		return false
	}
	if !uuChar(l[0]) {
		s.note("uuencode: bad line")
		s.end(false)
		return false
	}
	if n, _, _ := uuLen(l[0]); n == 0 {
		s.zero = true
		return true
	}
	n, p := DecodeUULine(s.room(MaxUULine), l)
	switch p {
	case UUBad:
		s.note("uuencode: bad line")
		s.end(false)
		return false
	case UUTrailing:
		s.note("uuencode: trailing garbage")
	case UUShort:
		s.note("uuencode: short line")
	}
	s.emitted(n)
	return true
}

// MaxUULine is the most bytes one uuencoded line can carry: its length character holds six
// bits.
const MaxUULine = 63

// UUProblem says what DecodeUULine found wrong with a line.
type UUProblem uint8

const (
	UUOK       UUProblem = iota
	UUShort              // characters were missing and were read as zeros
	UUTrailing           // characters past the last quad (and a checksum character) were dropped
	UUBad                // the line is no uuencoded line; nothing was decoded
)

// DecodeUULine decodes one uuencoded line, given without its line end, into dst, which must
// have room for MaxUULine bytes, and returns how many bytes it wrote. A zero-length line
// (the one before "end") decodes to nothing.
func DecodeUULine(dst, l []byte) (int, UUProblem) {
	if len(l) == 0 || !uuChar(l[0]) {
		return 0, UUBad
	}
	n, need, full := uuLen(l[0])
	if n == 0 {
		return 0, UUOK
	}
	body := l[1:]
	problem := UUOK
	if len(body) > full {
		// Some encoders append one checksum character; Python's uu module drops what
		// follows the last quad the same way.
		for _, c := range body[full+1:] {
			if c != ' ' && c != '`' {
				problem = UUTrailing
				break
			}
		}
		body = body[:full]
	}
	for _, c := range body {
		if !uuChar(c) {
			return 0, UUBad
		}
	}
	if len(body) < need {
		// Old encoders wrote zero as a space, and mailers strip trailing spaces; the
		// missing characters are zeros (as binascii.a2b_uu reads them).
		problem = UUShort
	}
	i, o := 0, 0
	for ; o+3 <= n && i+4 <= len(body); i, o = i+4, o+3 {
		v := uint32((body[i]-0x20)&63)<<18 | uint32((body[i+1]-0x20)&63)<<12 |
			uint32((body[i+2]-0x20)&63)<<6 | uint32((body[i+3]-0x20)&63)
		dst[o], dst[o+1], dst[o+2] = byte(v>>16), byte(v>>8), byte(v)
	}
	for ; o < n; i += 4 { // the last, partial quad, or characters a mailer stripped
		var q [4]byte
		for j := range 4 {
			if i+j < len(body) {
				q[j] = (body[i+j] - 0x20) & 63
			}
		}
		v := uint32(q[0])<<18 | uint32(q[1])<<12 | uint32(q[2])<<6 | uint32(q[3])
		for k := 0; k < 3 && o < n; k++ {
			dst[o] = byte(v >> (16 - 8*k))
			o++
		}
	}
	return n, problem
}

// UUDataLine reports whether l, a line without its end, has the shape of uuencoded data
// strictly enough to be believed without a begin line before it.
func UUDataLine(l []byte) bool { return len(l) > 0 && firstUULine(l) }

// UUBegin reports whether l is a uuencode header line, "begin MODE NAME", and returns the
// file name it gives (possibly empty).
func UUBegin(l []byte) (name string, ok bool) {
	if !bytes.HasPrefix(l, []byte("begin")) {
		return "", false
	}
	kind, name, _, ok := parseBegin(l)
	if !ok || kind != KindUUEncode {
		return "", false
	}
	return name, true
}

// b64Value maps a base64 character to its value, 64 for '=' and 0xff for anything else.
var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i, c := range "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/" {
		t[c] = byte(i)
	}
	t['='] = 64
	return t
}()

// isB64Line is the gate after a begin-base64 line: a whole number of quads of base64.
func isB64Line(l []byte) bool {
	return len(l) > 0 && len(l)%4 == 0 && isB64Chars(l)
}

func isB64Chars(b []byte) bool {
	for _, c := range b {
		if b64Value[c] == 0xff {
			return false
		}
	}
	return true
}

func isB64End(l []byte) bool { return string(trimSpace(l)) == "====" }

// b64Line handles a line inside a begin-base64 block, returning false as uuLine does.
func (s *Scanner) b64Line(l []byte) bool {
	t := trimSpace(l)
	if string(t) == "====" {
		s.end(true)
		return true
	}
	if !isB64Chars(t) {
		s.note("uuencode-base64: bad line")
		s.end(false)
		return false
	}
	s.b64Data(t)
	return true
}

// b64Data decodes base64 characters until the first one outside the alphabet, and reports
// whether there was none. Bits carry over between calls, so lines need not hold whole quads.
func (s *Scanner) b64Data(seg []byte) bool {
	for len(seg) > 0 {
		dst := s.room(min(len(seg), outSize))
		n, i := 0, 0
		for ; i < len(seg) && n < len(dst); i++ {
			v := b64Value[seg[i]]
			switch {
			case v == 0xff:
				s.emitted(n)
				return false
			case v == 64:
				s.padded = true
				s.bits, s.nbits = 0, 0
				continue
			case s.padded:
				s.note("uuencode-base64: data after padding")
				s.padded = false
			}
			s.bits = s.bits<<6 | uint32(v)
			s.nbits += 6
			if s.nbits >= 8 {
				s.nbits -= 8
				dst[n] = byte(s.bits >> s.nbits)
				n++
			}
		}
		s.emitted(n)
		seg = seg[i:]
	}
	return true
}
