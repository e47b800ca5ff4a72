package urls

import (
	"bytes"
)

// redactTokens drops the parts of a rewritten link that carry the recipient's identity, so that
// those identifiers are never uploaded in the clear (DESIGN.md, security rules). It works in
// place on the normalised URL u, whose host is u[host.start:host.end], and returns the
// shortened URL.
//
//   - Safe Links (*.safelinks.protection.outlook.com): data (the recipient's address and tenant),
//     sdata and reserved.
//   - Proofpoint URL Defense v1 and v2 (urldefense.proofpoint.com/v1/, /v2/): r, the
//     per-recipient token.
//   - Proofpoint URL Defense v3 (urldefense.com/v3/__URL__;BUFFER!CUSTOMER!SIGNATURE$):
//     everything after the '!' that ends BUFFER.
//   - Cisco Secure Email (secure-web.cisco.com): the fragment, which holds the recipient's
//     address in base64.
//
// Everything else in the URL is kept: the wrapped target is evidence, and unwrapping happens
// on what is left.
func redactTokens(u []byte, host span) []byte {
	h := u[host.start:host.end]
	var drop func(name []byte) bool
	switch {
	case under(h, "safelinks.protection.outlook.com"), under(h, "safelinks.protection.office365.us"):
		drop = func(n []byte) bool {
			return equalFoldASCII(n, "data") || equalFoldASCII(n, "sdata") || equalFoldASCII(n, "reserved")
		}
	case isProofpointHost(h):
		p := splitParts(u, host)
		path := u[p.path:p.pathEnd()]
		if bytes.HasPrefix(u[p.path:], []byte("/v3/__")) {
			rest := u[p.path+len("/v3/__"):]
			if t, end := v3Trailer(rest); t >= 0 && end < len(rest) {
				return u[:len(u)-len(rest)+end+1] // keep the '!' that ends BUFFER
			}
			return u
		}
		if !bytes.HasPrefix(path, []byte("/v1/")) && !bytes.HasPrefix(path, []byte("/v2/")) {
			return u
		}
		drop = func(n []byte) bool { return equalFoldASCII(n, "r") }
	case string(h) == "secure-web.cisco.com":
		return bytes.TrimRightFunc(u[:splitParts(u, host).frag], isURLSpace)
	default:
		return u
	}
	q := bytes.IndexByte(u[host.end:], '?')
	if q < 0 {
		return u
	}
	q += host.end
	end := len(u)
	if f := bytes.IndexByte(u[q:], '#'); f >= 0 {
		end = q + f
	}
	kept := u[:q+1]
	first := true
	for rest, more := u[q+1:end], true; more; {
		var param []byte
		param, rest, more = bytes.Cut(rest, []byte("&"))
		name, _, _ := bytes.Cut(param, []byte("="))
		// A name behind an "amp;" is the same parameter, from a link copied out of HTML
		// source, and so is one with white space around it; its token is no less the
		// recipient's.
		if drop(paramName(bytes.TrimFunc(name, isURLSpace))) {
			continue
		}
		if !first {
			kept = append(kept, '&')
		}
		kept = append(kept, param...)
		first = false
	}
	if first { // nothing left after '?'
		kept = kept[:q]
	}
	// kept shares u's backing array and never outruns the bytes it has already read. What
	// was before a dropped last parameter may end in white space, which normalising trims:
	// trim it here so that the result normalises to itself.
	return bytes.TrimRightFunc(append(kept, u[end:]...), isURLSpace)
}
