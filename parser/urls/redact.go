package urls

import (
	"bytes"
	"strings"
)

// redactTokens drops the query parameters that rewriting gateways use to carry the
// recipient's identity, so that those identifiers are never uploaded in the clear (DESIGN.md,
// security rules). It works in place on the normalised URL u, whose host is u[host.start:
// host.end], and returns the shortened URL.
//
//   - Safe Links (*.safelinks.protection.outlook.com): data (the recipient's address and tenant),
//     sdata and reserved.
//   - Proofpoint URL Defense v1 and v2 (urldefense.proofpoint.com/v1/, /v2/): r, the
//     per-recipient token.
//
// Everything else in the URL is kept: the wrapped target is evidence, and unwrapping happens
// on what is left.
func redactTokens(u []byte, host span) []byte {
	h := string(u[host.start:host.end])
	var drop func(name string) bool
	switch {
	case strings.HasSuffix(h, ".safelinks.protection.outlook.com"):
		drop = func(n string) bool { return n == "data" || n == "sdata" || n == "reserved" }
	case h == "urldefense.proofpoint.com":
		path := u[host.end:]
		if !bytes.HasPrefix(path, []byte("/v1/")) && !bytes.HasPrefix(path, []byte("/v2/")) {
			return u
		}
		drop = func(n string) bool { return n == "r" }
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
	for _, param := range bytes.Split(u[q+1:end], []byte("&")) {
		name, _, _ := bytes.Cut(param, []byte("="))
		if drop(strings.ToLower(string(name))) {
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
	// kept shares u's backing array and never outruns the bytes it has already read.
	return append(kept, u[end:]...)
}
