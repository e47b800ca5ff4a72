package urls

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// span is a byte range of the normalised URL.
type span struct{ start, end int }

// normaliser holds the scratch space normalise reuses, so that a message with many links does
// not allocate per link.
type normaliser struct {
	maxLen  int    // bytes per URL; longer ones are cut
	cut     bool   // set when normalise cut a URL; the caller clears it
	clean   []byte // candidate with tabs and newlines removed
	host    []byte // host with invalid UTF-8 escaped
	hostDec []byte // host percent-decoded
	norm    []byte // the normalised URL
}

// idnaProfile converts hosts the way browsers do (WHATWG URL "domain to ASCII"): UTS 46
// non-transitional mapping, '_' and odd hyphens allowed, bidi and joiner rules checked. A
// stricter profile would fail on hosts phishing mail really uses, and a failed host is one we
// can only keep as it was written.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
	idna.BidiRule(),
)

// prepare trims a candidate, takes it out of <...> or quotes, and removes its tabs and line
// breaks; the result may live in n.clean until the next call.
func (n *normaliser) prepare(raw []byte) []byte {
	s := unenclose(bytes.TrimFunc(raw, isURLSpace))
	if bytes.ContainsAny(s, "\t\n\r") {
		// QUIRK: WHATWG URL, basic URL parser: every tab and newline is removed before
		// parsing, so href="ht&#10;tp://evil.example" still leads to evil.example. Header
		// folding leaves the same marks in a URL handed to Add.
		n.clean = appendWithout(n.clean[:0], s, "\t\n\r")
		s = n.clean
	}
	return s
}

// normalise turns a candidate into the form URLs are deduped on: scheme and host lower-cased,
// the host in IDNA ASCII form, a default port and an empty fragment dropped. Everything else
// is kept as found, since the exact path and query are evidence. ok is false for anything
// that is not an http, https, ftp or protocol-relative URL, and for a bare scheme.
//
// The host is found the way a browser finds it, not with net/url, which rejects many of the
// URLs phishing mail is made of: "http://evil.example\@bank.example/" goes to evil.example in
// a browser, while net/url fails on it and a parser that splits at the '@' sees bank.example.
// So every candidate gets the host a click would reach, even one net/url cannot parse.
//
// The result lives in n.norm until the next call. A URL longer than the limit is cut, and
// n.cut set, rather than dropped: its start is the evidence.
func (n *normaliser) normalise(raw []byte) (u []byte, host span, ok bool) {
	s := n.prepare(raw)

	var scheme string
	if len(s) >= 2 && isSlash(s[0]) && isSlash(s[1]) {
		// Protocol-relative: webmail serves the message over https, so that is where it goes.
		scheme = "https"
	} else {
		k := bytes.IndexByte(s, ':')
		if k <= 0 {
			return nil, span{}, false
		}
		switch {
		case equalFoldASCII(s[:k], "http"):
			scheme = "http"
		case equalFoldASCII(s[:k], "https"):
			scheme = "https"
		case equalFoldASCII(s[:k], "ftp"):
			scheme = "ftp"
		default:
			return nil, span{}, false
		}
		s = s[k+1:]
	}
	// QUIRK: WHATWG URL, special authority ignore slashes state: browsers read "http:\\host",
	// "http:/host" and "http:///host" all as http://host/, so any run of slashes and
	// backslashes is the separator.
	i := 0
	for i < len(s) && isSlash(s[i]) {
		i++
	}
	s = s[i:]
	if len(s) == 0 {
		return nil, span{}, false
	}

	a := authorityEnd(s)
	auth, rest := s[:a], s[a:]
	out := append(n.norm[:0], scheme...)
	out = append(out, "://"...)
	if at := bytes.LastIndexByte(auth, '@'); at >= 0 {
		out = appendEscaped(out, auth[:at+1])
		auth = auth[at+1:]
	}
	h, port, hasPort := splitHostPort(auth)
	host.start = len(out)
	out = n.appendHost(out, h)
	host.end = len(out)
	if host.end-host.start >= 2 && out[host.start] == '[' && out[host.end-1] == ']' {
		// Host carries the address alone, as net/url's Hostname does.
		host.start++
		host.end--
	}
	// With no host, the colon is all that keeps "http://:/x" from reading as "http:///x",
	// which is http://x/ to a second pass.
	if hasPort && (host.start == host.end || !isDefaultPort(scheme, port)) {
		out = append(out, ':')
		out = appendEscaped(out, port)
	}
	if n := len(rest); n > 0 && rest[n-1] == '#' && bytes.IndexByte(rest, '#') == n-1 {
		// An empty fragment never reaches the server and carries nothing.
		rest = rest[:n-1]
	}
	out = appendEscaped(out, rest)

	if len(out) > n.maxLen {
		out = out[:cutPoint(out, n.maxLen)]
		n.cut = true
	}
	// Dropping the fragment or cutting can leave white space or a control character at the
	// end, which a second pass would trim: trim it now so the result is stable.
	out = bytes.TrimRightFunc(out, isURLSpace)
	if len(out) <= len(scheme)+len("://") {
		return nil, span{}, false // "http://#" is a bare scheme too
	}
	host.start, host.end = min(host.start, len(out)), min(host.end, len(out))
	n.norm = out
	return out, host, true
}

// appendHost appends h as a browser would look it up: percent-decoded, lower-cased, IDNA ASCII.
// A host that will not convert is kept lower-cased rather than dropped: it is still evidence.
// Invalid UTF-8 is escaped first, so that normalising the result again changes nothing.
func (n *normaliser) appendHost(out, h []byte) []byte {
	if len(h) == 0 {
		return out
	}
	if !utf8.Valid(h) {
		n.host = appendEscaped(n.host[:0], h)
		h = n.host
	}
	if h[0] == '[' {
		return appendLower(out, h)
	}
	if bytes.IndexByte(h, '%') >= 0 {
		// QUIRK: WHATWG URL, host parser: the host is percent-decoded before lookup, so
		// "http://%65vil.example" goes to evil.example.
		if d, ok := percentDecodeHost(n.hostDec[:0], h); ok {
			n.hostDec = d
			h = d
		}
	}
	start := len(out)
	out = appendLower(out, h)
	lower := out[start:]
	if isASCII(lower) {
		return out
	}
	if hasForbidden(lower) {
		// A browser refuses a host with a forbidden character ('%' left over from a failed
		// decode, say), and feeding one to IDNA would shuffle it into a new form that a
		// second pass reads differently.
		return out
	}
	if !idnaSized(lower) {
		// Punycode encoding is quadratic in a label's distinct characters (one 8 KiB host
		// takes 0.1 s, and a message can carry thousands), and a host this long cannot be
		// looked up anyway.
		return out
	}
	// Converting the lower-cased form, not h, makes a second pass over a host IDNA refused
	// see the very string that was refused.
	if a, err := idnaProfile.ToASCII(string(lower)); err == nil {
		return append(out[:start], a...)
	}
	return out
}

// A resolvable name has at most 253 bytes, and each label at most 63, in ASCII form; these
// bounds leave room for the same name in UTF-8.
const (
	maxIDNAHost  = 1024
	maxIDNALabel = 63 // characters
)

// idnaSized reports whether h is short enough to be worth converting to IDNA form.
func idnaSized(h []byte) bool {
	if len(h) > maxIDNAHost {
		return false
	}
	n := 0
	for _, r := range string(h) {
		if r == '.' {
			n = 0
			continue
		}
		if n++; n > maxIDNALabel {
			return false
		}
	}
	return true
}

// unenclose strips the quotes and angle brackets a URL is written between ("<http://...>").
func unenclose(s []byte) []byte {
	for len(s) >= 2 {
		first, last := s[0], s[len(s)-1]
		if !(first == '<' && last == '>' || first == '"' && last == '"' || first == '\'' && last == '\'') {
			break
		}
		s = bytes.TrimFunc(s[1:len(s)-1], isURLSpace)
	}
	return s
}

// authorityEnd returns where the authority of s ends. '\' ends it too: browsers treat it as
// '/' in http, https and ftp URLs.
func authorityEnd(s []byte) int {
	for i, ch := range s {
		switch ch {
		case '/', '\\', '?', '#':
			return i
		}
	}
	return len(s)
}

// splitHostPort splits "host:port" and "[v6]:port"; hasPort reports a colon even with no
// digits after it.
func splitHostPort(auth []byte) (host, port []byte, hasPort bool) {
	if len(auth) > 0 && auth[0] == '[' {
		k := bytes.IndexByte(auth, ']')
		if k >= 0 && k+1 < len(auth) && auth[k+1] == ':' {
			return auth[:k+1], auth[k+2:], true
		}
		return auth, nil, false
	}
	if k := bytes.IndexByte(auth, ':'); k >= 0 {
		return auth[:k], auth[k+1:], true
	}
	return auth, nil, false
}

// isDefaultPort reports a port a browser would leave out: the scheme's own, however many
// leading zeros it is written with, or none at all after the colon.
func isDefaultPort(scheme string, port []byte) bool {
	if len(port) == 0 {
		return true
	}
	for _, ch := range port {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	p := bytes.TrimLeft(port, "0")
	switch scheme {
	case "http":
		return string(p) == "80"
	case "https":
		return string(p) == "443"
	case "ftp":
		return string(p) == "21"
	}
	return false
}

// percentDecodeHost decodes %XX escapes in h into dst. ok is false when the host is not
// well-formed or would decode to something that cannot be a host, in which case it is kept as
// written.
func percentDecodeHost(dst, h []byte) ([]byte, bool) {
	for i := 0; i < len(h); i++ {
		ch := h[i]
		if ch == '%' {
			if i+2 >= len(h) || unhex(h[i+1]) < 0 || unhex(h[i+2]) < 0 {
				return dst, false
			}
			ch = byte(unhex(h[i+1])<<4 | unhex(h[i+2]))
			i += 2
		}
		if forbiddenInHost(ch) {
			return dst, false
		}
		dst = append(dst, ch)
	}
	return dst, utf8.Valid(dst)
}

func hasForbidden(h []byte) bool {
	for _, ch := range h {
		if forbiddenInHost(ch) {
			return true
		}
	}
	return false
}

// forbiddenInHost is WHATWG's forbidden domain code point set, restricted to ASCII.
func forbiddenInHost(ch byte) bool {
	if ch <= ' ' || ch == 0x7f {
		return true
	}
	return strings.IndexByte("#/:<>?@[\\]^|%", ch) >= 0
}

func unhex(ch byte) int {
	switch {
	case '0' <= ch && ch <= '9':
		return int(ch - '0')
	case 'a' <= ch && ch <= 'f':
		return int(ch-'a') + 10
	case 'A' <= ch && ch <= 'F':
		return int(ch-'A') + 10
	}
	return -1
}

// appendEscaped appends src with each byte that is not part of valid UTF-8 written as %XX:
// the record is JSON, which cannot carry such bytes, and %XX is what a browser would send.
func appendEscaped(dst, src []byte) []byte {
	if utf8.Valid(src) {
		return append(dst, src...)
	}
	for len(src) > 0 {
		r, n := utf8.DecodeRune(src)
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, '%', "0123456789ABCDEF"[src[0]>>4], "0123456789ABCDEF"[src[0]&0xf])
		} else {
			dst = append(dst, src[:n]...)
		}
		src = src[n:]
	}
	return dst
}

// cutPoint returns where to cut u to at most n bytes without splitting a UTF-8 sequence or a
// %XX escape.
func cutPoint(u []byte, n int) int {
	i := n
	for k := 0; k < utf8.UTFMax-1 && i > 0 && !utf8.RuneStart(u[i]); k++ {
		i--
	}
	switch {
	case i >= 1 && u[i-1] == '%':
		i--
	case i >= 2 && u[i-2] == '%':
		i -= 2
	}
	return i
}

func appendWithout(dst, src []byte, drop string) []byte {
	for _, ch := range src {
		if strings.IndexByte(drop, ch) < 0 {
			dst = append(dst, ch)
		}
	}
	return dst
}

// appendLower lower-cases src outside %XX escapes; escapes keep the case they are written in
// (and that appendEscaped writes), so normalising is idempotent. src must be valid UTF-8.
func appendLower(dst, src []byte) []byte {
	for i := 0; i < len(src); {
		ch := src[i]
		switch {
		case ch == '%' && i+2 < len(src) && unhex(src[i+1]) >= 0 && unhex(src[i+2]) >= 0:
			dst = append(dst, src[i:i+3]...)
			i += 3
		case ch < utf8.RuneSelf:
			if 'A' <= ch && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			dst = append(dst, ch)
			i++
		default:
			r, n := utf8.DecodeRune(src[i:])
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
			i += n
		}
	}
	return dst
}

func isASCII(b []byte) bool {
	for _, ch := range b {
		if ch >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func isSlash(ch byte) bool { return ch == '/' || ch == '\\' }

// isURLSpace is what is trimmed around a candidate: WHATWG's C0 control or space, plus the
// Unicode spaces HTML and mail put around links.
func isURLSpace(r rune) bool { return r <= ' ' || unicode.IsSpace(r) }
