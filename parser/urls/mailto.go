package urls

import (
	"bytes"
	"strings"
)

// mailto links (RFC 6068) are recorded as one entry per URI, whatever number of addresses it
// names: reply-to phishing and BEC hide the address a reply goes to in them. Only explicit
// links count: an href, or "mailto:" written out in text. A bare user@example.com in running
// text is not a link and is not listed.
//
// The entry's url is the URI as written, with three changes: the scheme is lower-cased, the
// domain of its first address is written as its host (percent-decoded, lower-cased, IDNA
// ASCII, as for http), and bytes that are not valid UTF-8 are escaped. The host is that
// domain. The rest (further addresses, subject=, cc=, body=) is kept as written: it is
// evidence, as an http query is. No recipient token is removed: mailto is no gateway's
// rewriting, and the addresses in it are the sender's choice.

const mailtoScheme = "mailto:"

// hasMailtoScheme reports whether raw, as normalise would read it (white space around it,
// enclosing quotes or brackets, tabs and newlines anywhere), starts with "mailto:".
func hasMailtoScheme(raw []byte) bool {
	raw = bytes.TrimLeftFunc(raw, isURLSpace)
	for len(raw) > 0 && (raw[0] == '<' || raw[0] == '"' || raw[0] == '\'') {
		raw = bytes.TrimLeftFunc(raw[1:], isURLSpace)
	}
	i, k := 0, 0
	for ; i < len(raw) && k < len(mailtoScheme); i++ {
		ch := raw[i]
		if ch == '\t' || ch == '\n' || ch == '\r' {
			continue
		}
		if ch|0x20 != mailtoScheme[k] && ch != mailtoScheme[k] {
			return false
		}
		k++
	}
	return k == len(mailtoScheme)
}

// normaliseMailto is normalise for a mailto URI. ok is false for anything that is not one, and
// for a mailto URI with no address whose domain is not empty: "mailto:", "mailto:?subject=x",
// "mailto:postmaster". The address is the first one of the URI's to part, or, when that names
// none, of its to= header field ("mailto:?to=a@b.example"). The result lives in n.norm until
// the next call; a URI longer than the limit is cut and n.cut set.
func (n *normaliser) normaliseMailto(raw []byte) (u []byte, host span, ok bool) {
	s := n.prepare(raw)
	if len(s) < len(mailtoScheme) || !equalFoldASCII(s[:len(mailtoScheme)-1], "mailto") || s[len(mailtoScheme)-1] != ':' {
		return nil, span{}, false
	}
	s = s[len(mailtoScheme):]
	ds, de, ok := mailtoDomain(s)
	if !ok {
		return nil, span{}, false
	}
	out := append(n.norm[:0], mailtoScheme...)
	out = appendEscaped(out, s[:ds])
	host.start = len(out)
	dom := s[ds:de]
	if bytes.IndexByte(dom, '%') >= 0 {
		// A host that decodes to a separator of the URI (',' between addresses, '&' between
		// fields) would be read differently by a second pass: it is kept as written.
		if d, ok := percentDecodeHost(n.hostDec[:0], dom); ok {
			n.hostDec = d
			if bytes.ContainsAny(d, ",&;=") {
				out = appendLower(out, appendEscaped(n.host[:0], dom))
				dom = nil
			}
		}
	}
	if dom != nil {
		out = n.appendHost(out, dom)
	}
	host.end = len(out)
	if host.end-host.start >= 2 && out[host.start] == '[' && out[host.end-1] == ']' {
		host.start++
		host.end--
	}
	out = appendEscaped(out, s[de:])
	if len(out) > n.maxLen {
		out = out[:cutPoint(out, n.maxLen)]
		n.cut = true
	}
	out = bytes.TrimRightFunc(out, isURLSpace)
	host.start, host.end = min(host.start, len(out)), min(host.end, len(out))
	if host.start == host.end && !n.cut {
		return nil, span{}, false
	}
	n.norm = out
	return out, host, true
}

// mailtoDomain finds, in what follows "mailto:", the domain of the first address: the part
// after its last '@' (written as such or as %40). ok is false when there is no address with
// a domain.
func mailtoDomain(s []byte) (start, end int, ok bool) {
	to := len(s)
	if k := bytes.IndexAny(s, "?#"); k >= 0 {
		to = k
	}
	if start, end, ok := firstDomain(s, 0, to, ","); ok {
		return start, end, true
	}
	if to == len(s) || s[to] != '?' {
		return 0, 0, false
	}
	// RFC 6068 §2: the addresses may also be given as a to= header field.
	fe := len(s)
	if k := bytes.IndexByte(s[to:], '#'); k >= 0 {
		fe = to + k
	}
	for i := to + 1; i < fe; {
		j := i
		for j < fe && s[j] != '&' {
			j++
		}
		f := s[i:j]
		if len(f) >= 3 && equalFoldASCII(f[:3], "to=") {
			if start, end, ok := firstDomain(s, i+3, j, ","); ok {
				return start, end, true
			}
		}
		i = j + 1
	}
	return 0, 0, false
}

// firstDomain returns the domain of the first address in s[from:to] that has one, addresses
// being separated by any byte of seps.
func firstDomain(s []byte, from, to int, seps string) (start, end int, ok bool) {
	for i := from; i < to; {
		j := i
		for j < to && strings.IndexByte(seps, s[j]) < 0 {
			j++
		}
		if at := lastAt(s[i:j]); at >= 0 && i+at < j {
			return i + at, j, true
		}
		i = j + 1
	}
	return 0, 0, false
}

// lastAt returns where the domain of addr starts: after its last '@' or "%40", or -1.
func lastAt(addr []byte) int {
	for i := len(addr) - 1; i >= 0; i-- {
		switch {
		case addr[i] == '@':
			return i + 1
		case addr[i] == '%' && i+2 < len(addr) && addr[i+1] == '4' && addr[i+2] == '0':
			return i + 3
		}
	}
	return -1
}

// mailto normalises raw as a mailto URI and stores it as the one layer of a chain: a mailto
// link wraps nothing and no gateway wraps one in a form that is unwrapped here.
func (w *unwrapper) mailto(raw []byte) (ch chainInfo, ok bool) {
	w.cut = false
	u, host, ok := w.normaliseMailto(raw)
	if !ok {
		return chainInfo{}, false
	}
	if len(w.layers) == 0 {
		w.layers = append(w.layers, layer{})
	}
	l := &w.layers[0]
	*l = layer{url: append(l.url[:0], u...), host: host}
	return chainInfo{n: 1, cut: w.cut}, true
}

// addLink adds a candidate from an attribute that holds a link to follow (href): a mailto
// URI there is recorded, as well as the http, https and ftp URLs add takes.
func (c *Collector) addLink(raw []byte, source string) {
	if !hasMailtoScheme(raw) {
		c.add(raw, source, false)
		return
	}
	c.addMailto(raw, source)
}

// addMailto records one mailto URI; anything else, and a mailto URI without an address, is
// ignored.
func (c *Collector) addMailto(raw []byte, source string) {
	ch, ok := c.w.mailto(raw)
	if !ok {
		return
	}
	if ch.cut {
		c.limit(LimitURLLength)
	}
	c.record(ch, source, false)
}
