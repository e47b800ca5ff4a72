package urls

import (
	"bytes"
	"encoding/base64"
	"strings"
)

// Wrapper scheme names, as a record's "wrappers" carries them. They are stable: the pipeline
// keys on them.
const (
	WrapperSafeLinks    = "ms_safelinks"       // *.safelinks.protection.outlook.com/?url=
	WrapperProofpointV1 = "proofpoint_v1"      // urldefense.proofpoint.com/v1/url?u=
	WrapperProofpointV2 = "proofpoint_v2"      // urldefense.proofpoint.com/v2/url?u= with -XX and _
	WrapperProofpointV3 = "proofpoint_v3"      // urldefense.com/v3/__URL__;BUFFER!...
	WrapperGoogle       = "google_redirect"    // www.google.com/url?q=
	WrapperBarracuda    = "barracuda"          // linkprotect.cudasvc.com/url?a=
	WrapperCisco        = "cisco_secure_email" // secure-web.cisco.com/TOKEN/URL
	WrapperTrendMicro   = "trendmicro"         // *.trendmicro.com/wis/clicktime/...?url=
	WrapperSophos       = "sophos"             // *.protection.sophos.com/?u=BASE64URL
	WrapperMimecast     = "mimecast"           // protect-*.mimecast.com/s/..., opaque
	WrapperAzureEmail   = "azure_email"        // emails.azure.microsoft.com/redirect/?destination=
	WrapperEsvaLabs     = "esvalabs"           // urlsand.esvalabs.com/?u=
	WrapperFireEye      = "fireeye"            // protect2.fireeye.com/v1/url?u=
	WrapperSESTrack     = "ses_awstrack"       // *.awstrack.me/L0/URL/...
	WrapperWhatsApp     = "whatsapp"           // l.wl.co/l?u=
)

// peeled is one wrapper layer taken off.
type peeled struct {
	name    string // the wrapper's scheme; "" when the URL is no wrapper
	inner   []byte // the target, decoded once; nil when the wrapper does not give it away
	payload span   // where the target rides in the wrapping URL
}

// peel recognises the wrapper that the normalised URL u is, if any, and decodes the target it
// carries. Recognition goes by host and path alone, so that a look-alike on another host is
// never taken for a trusted gateway. The target lives in w's scratch space until the next call.
func (w *unwrapper) peel(u []byte, host span) peeled {
	h := u[host.start:host.end]
	p := splitParts(u, host)
	path := u[p.path:p.pathEnd()]
	switch {
	case under(h, "safelinks.protection.outlook.com"), under(h, "safelinks.protection.office365.us"):
		return w.param(u, p, WrapperSafeLinks, "url")
	case isProofpointHost(h):
		switch {
		case bytes.HasPrefix(path, []byte("/v1/")):
			return w.param(u, p, WrapperProofpointV1, "u")
		case bytes.HasPrefix(path, []byte("/v2/")):
			return w.proofpointV2(u, p)
		case bytes.HasPrefix(u[p.path:], []byte("/v3/__")):
			return w.proofpointV3(u, p)
		}
	case isGoogleHost(h):
		if string(path) == "/url" {
			return w.param(u, p, WrapperGoogle, "q", "url")
		}
	case string(h) == "linkprotect.cudasvc.com":
		return w.param(u, p, WrapperBarracuda, "a")
	case string(h) == "secure-web.cisco.com":
		return w.cisco(u, p)
	case under(h, "trendmicro.com"), under(h, "trendmicro.eu"):
		if bytes.HasPrefix(path, []byte("/wis/clicktime/")) {
			return w.param(u, p, WrapperTrendMicro, "url")
		}
	case under(h, "protection.sophos.com"):
		return w.sophos(u, p)
	case isMimecastHost(h):
		if bytes.HasPrefix(path, []byte("/s")) {
			return peeled{name: WrapperMimecast}
		}
	case string(h) == "emails.azure.microsoft.com":
		if bytes.HasPrefix(path, []byte("/redirect")) {
			return w.param(u, p, WrapperAzureEmail, "destination")
		}
	case string(h) == "urlsand.esvalabs.com":
		return w.param(u, p, WrapperEsvaLabs, "u")
	case string(h) == "protect2.fireeye.com":
		return w.param(u, p, WrapperFireEye, "u")
	case under(h, "awstrack.me"):
		return w.sesTrack(u, p)
	case string(h) == "l.wl.co":
		if string(path) == "/l" {
			return w.param(u, p, WrapperWhatsApp, "u")
		}
	}
	return peeled{}
}

// param takes the target from the first of the named query parameters that is present,
// percent-decoded once. '+' stays '+': a wrapper that encodes its target writes a space as
// %20 or '+' and a '+' as %2B, and one that does not encode it (Barracuda's a=, FireEye's u=)
// leaves a '+' that means '+' in the path and a space in the query, which '+' still says.
func (w *unwrapper) param(u []byte, p parts, name string, keys ...string) peeled {
	v, ok := queryParam(u, p, keys...)
	if !ok {
		return peeled{}
	}
	w.dec = percentDecode(w.dec[:0], u[v.start:v.end])
	return peeled{name: name, inner: w.dec, payload: v}
}

// proofpointV2 decodes u=, in which Proofpoint wrote '%' as '-' and '/' as '_'. Like
// Proofpoint's own decoder, it undoes the query's escaping first.
func (w *unwrapper) proofpointV2(u []byte, p parts) peeled {
	v, ok := queryParam(u, p, "u")
	if !ok {
		return peeled{}
	}
	w.tmp = percentDecode(w.tmp[:0], u[v.start:v.end])
	for i, ch := range w.tmp {
		switch ch {
		case '-':
			w.tmp[i] = '%'
		case '_':
			w.tmp[i] = '/'
		}
	}
	w.dec = percentDecode(w.dec[:0], w.tmp)
	return peeled{name: WrapperProofpointV2, inner: w.dec, payload: v}
}

// v3RunAlphabet gives a run's length: "**X" copies 2 + (X's index here) bytes.
const v3RunAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// proofpointV3 decodes /v3/__URL__;BUFFER!CUSTOMER!SIGNATURE$. Proofpoint replaced each
// character it would have had to escape in URL by '*', and collected the characters in
// BUFFER (base64url): a lone '*' takes the next byte of the decoded buffer, "**X" a run of
// 2 + index(X) bytes. Runs count bytes, not characters, so a run may end inside a multi-byte
// UTF-8 sequence and the next token finish it. A token that asks for more than the buffer
// holds leaves the link unresolved rather than half decoded.
func (w *unwrapper) proofpointV3(u []byte, p parts) peeled {
	start := p.path + len("/v3/__")
	rest := u[start:]
	t, bufEnd := v3Trailer(rest)
	if t < 0 {
		return peeled{name: WrapperProofpointV3}
	}
	payload := span{start, start + bufEnd}
	enc := rest[t+len("__;") : bufEnd]
	n := base64.RawURLEncoding.DecodedLen(len(enc))
	w.b64 = grow(w.b64, n)
	n, err := base64.RawURLEncoding.Decode(w.b64, enc)
	if err != nil {
		return peeled{name: WrapperProofpointV3, payload: payload}
	}
	buf := w.b64[:n]
	// Proofpoint's decoder percent-decodes URL before it replaces the tokens.
	w.tmp = percentDecode(w.tmp[:0], rest[:t])
	body := w.tmp
	out := w.dec[:0]
	for i := 0; i < len(body); i++ {
		if body[i] != '*' {
			out = append(out, body[i])
			continue
		}
		run := 1
		if i+2 < len(body) && body[i+1] == '*' {
			k := strings.IndexByte(v3RunAlphabet, body[i+2])
			if k < 0 {
				w.dec = out
				return peeled{name: WrapperProofpointV3, payload: payload}
			}
			run = 2 + k
			i += 2
		}
		if run > len(buf) {
			w.dec = out
			return peeled{name: WrapperProofpointV3, payload: payload}
		}
		out = append(out, buf[:run]...)
		buf = buf[run:]
	}
	w.dec = out
	return peeled{name: WrapperProofpointV3, inner: out, payload: payload}
}

// v3Trailer finds where in rest (what follows "/v3/__") the "__;BUFFER" trailer starts, and
// where BUFFER ends. URL itself may hold "__;", so the trailer is the first one followed by a
// base64url run and then '!' or the end (a link cut short, or one whose customer section was
// redacted). t is -1 when there is none.
func v3Trailer(rest []byte) (t, bufEnd int) {
	for from := 0; ; {
		k := bytes.Index(rest[from:], []byte("__;"))
		if k < 0 {
			return -1, 0
		}
		t = from + k
		j := t + len("__;")
		for j < len(rest) && isBase64URL(rest[j]) {
			j++
		}
		if j == len(rest) || rest[j] == '!' {
			return t, j
		}
		from = t + 1
	}
}

// cisco decodes secure-web.cisco.com/TOKEN/URL. URL is percent-encoded, so it is normally
// the last path segment; everything after TOKEN is taken, so that a target whose slashes
// were left unencoded still comes out whole. The fragment is Cisco's own (it carries the
// recipient's address) and is not part of the target.
func (w *unwrapper) cisco(u []byte, p parts) peeled {
	rest := u[p.path:p.frag]
	if len(rest) < 2 || rest[0] != '/' {
		return peeled{}
	}
	k := bytes.IndexByte(rest[1:], '/')
	if k <= 0 || bytes.IndexByte(rest[1:1+k], '?') >= 0 {
		return peeled{}
	}
	v := span{p.path + 1 + k + 1, p.frag}
	if v.start >= v.end {
		return peeled{}
	}
	w.dec = percentDecode(w.dec[:0], u[v.start:v.end])
	return peeled{name: WrapperCisco, inner: w.dec, payload: v}
}

// sophos decodes u=, the target in base64url (standard base64 and padding are accepted too).
func (w *unwrapper) sophos(u []byte, p parts) peeled {
	v, ok := queryParam(u, p, "u")
	if !ok {
		return peeled{}
	}
	w.tmp = percentDecode(w.tmp[:0], u[v.start:v.end])
	enc := bytes.TrimRight(w.tmp, "=")
	for i, ch := range enc {
		switch ch {
		case '+':
			enc[i] = '-'
		case '/':
			enc[i] = '_'
		}
	}
	w.dec = grow(w.dec, base64.RawURLEncoding.DecodedLen(len(enc)))
	n, err := base64.RawURLEncoding.Decode(w.dec, enc)
	if err != nil {
		return peeled{name: WrapperSophos, payload: v}
	}
	w.dec = w.dec[:n]
	return peeled{name: WrapperSophos, inner: w.dec, payload: v}
}

// sesTrack decodes Amazon SES click tracking, /L0/URL/..., where URL is one percent-encoded
// path segment.
func (w *unwrapper) sesTrack(u []byte, p parts) peeled {
	const prefix = "/L0/"
	path := u[p.path:p.pathEnd()]
	if !bytes.HasPrefix(path, []byte(prefix)) {
		return peeled{}
	}
	seg := path[len(prefix):]
	if k := bytes.IndexByte(seg, '/'); k >= 0 {
		seg = seg[:k]
	}
	if len(seg) == 0 {
		return peeled{}
	}
	v := span{p.path + len(prefix), p.path + len(prefix) + len(seg)}
	w.dec = percentDecode(w.dec[:0], seg)
	return peeled{name: WrapperSESTrack, inner: w.dec, payload: v}
}

// parts locates the pieces of a normalised URL that come after its host.
type parts struct {
	path  int // where the path starts (after any port)
	query int // just after the '?', or -1 when there is no query
	frag  int // where the '#' is, or len(u)
}

func splitParts(u []byte, host span) parts {
	i := host.end
	if i < len(u) && u[i] == ']' {
		i++
	}
	for i < len(u) && u[i] != '/' && u[i] != '\\' && u[i] != '?' && u[i] != '#' {
		i++ // the port, or a host that normalise kept as written
	}
	p := parts{path: i, query: -1, frag: len(u)}
	if k := bytes.IndexByte(u[i:], '#'); k >= 0 {
		p.frag = i + k
	}
	if k := bytes.IndexByte(u[i:p.frag], '?'); k >= 0 {
		p.query = i + k + 1
	}
	return p
}

// pathEnd is where the path ends: at the '?' or the '#'.
func (p parts) pathEnd() int {
	if p.query >= 0 {
		return p.query - 1
	}
	return p.frag
}

// queryParam finds the value of the first of keys present in u's query. Names are matched
// without regard to case, and an "amp;" left in front of a name by an HTML-escaped '&' that
// nothing unescaped is ignored: a link copied from HTML source still unwraps.
func queryParam(u []byte, p parts, keys ...string) (span, bool) {
	if p.query < 0 {
		return span{}, false
	}
	for _, key := range keys {
		for i := p.query; i <= p.frag; {
			e := bytes.IndexByte(u[i:p.frag], '&')
			if e < 0 {
				e = p.frag
			} else {
				e += i
			}
			if eq := bytes.IndexByte(u[i:e], '='); eq >= 0 && equalFoldASCII(paramName(u[i:i+eq]), key) {
				return span{i + eq + 1, e}, true
			}
			i = e + 1
		}
	}
	return span{}, false
}

// paramName strips the "amp;" that an unescaped "&amp;" leaves in front of a parameter name.
func paramName(name []byte) []byte {
	for len(name) > 4 && equalFoldASCII(name[:4], "amp;") {
		name = name[4:]
	}
	return name
}

// percentDecode appends src to dst with each %XX replaced by its byte. A '%' that does not
// start an escape is kept.
func percentDecode(dst, src []byte) []byte {
	for i := 0; i < len(src); i++ {
		ch := src[i]
		if ch == '%' && i+2 < len(src) && unhex(src[i+1]) >= 0 && unhex(src[i+2]) >= 0 {
			ch = byte(unhex(src[i+1])<<4 | unhex(src[i+2]))
			i += 2
		}
		dst = append(dst, ch)
	}
	return dst
}

// grow returns b resized to n bytes, reusing its array when it is large enough.
func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}

func isBase64URL(ch byte) bool {
	return 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_'
}

// under reports whether host h is a subdomain of domain.
func under(h []byte, domain string) bool {
	n := len(h) - len(domain)
	return n > 1 && h[n-1] == '.' && string(h[n:]) == domain
}

func isProofpointHost(h []byte) bool {
	switch string(h) {
	case "urldefense.proofpoint.com", "urldefense.com", "urldefense.us":
		return true
	}
	return false
}

// isGoogleHost accepts google.com and its subdomains, and Google's country sites
// (google.de, www.google.co.uk, google.com.au). The check is strict on purpose: a
// "google.evil.example" must not pass for Google's redirector.
func isGoogleHost(h []byte) bool {
	if string(h) == "google.com" || under(h, "google.com") {
		return true
	}
	s := string(h)
	if len(s) > 4 && s[:4] == "www." {
		s = s[4:]
	}
	if len(s) < len("google.") || s[:len("google.")] != "google." {
		return false
	}
	tld := s[len("google."):]
	if len(tld) > 3 && (tld[:3] == "co." || (len(tld) > 4 && tld[:4] == "com.")) {
		tld = tld[strings.IndexByte(tld, '.')+1:]
	}
	return len(tld) == 2 && isLetter(tld[0]) && isLetter(tld[1])
}

// isMimecastHost accepts protect-XX.mimecast.com, protect.mimecast.com and the hosts under
// mimecastprotect.com.
func isMimecastHost(h []byte) bool {
	if under(h, "mimecastprotect.com") {
		return true
	}
	if !under(h, "mimecast.com") {
		return false
	}
	label := h[:len(h)-len(".mimecast.com")]
	return string(label) == "protect" || bytes.HasPrefix(label, []byte("protect-")) &&
		bytes.IndexByte(label, '.') < 0
}

func isLetter(ch byte) bool { return 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z' }
