package sensor

import (
	"errors"
	"strings"
)

// Recipients is the set of RCPT TO addresses the sensor accepts: exact addresses, and
// *@domain for every address at a domain. The journal rule delivers to one of them; any
// other recipient gets 550 5.1.1. A nil *Recipients accepts every recipient.
//
// QUIRK: RFC 5321 §2.4 lets the local part be case-sensitive, but journal sources do not
// agree on keeping its case (some rewrite the address they were given), so local parts are
// matched case-insensitively, like domains.
type Recipients struct {
	exact   map[string]bool // lower-cased local@domain
	domains map[string]bool // lower-cased domain of *@domain
}

// NewRecipients returns the set of patterns, each local@domain or *@domain, or the first
// pattern's error (CheckRecipient says what is wrong with one). No patterns: nil, which
// accepts everyone.
func NewRecipients(patterns []string) (*Recipients, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	r := &Recipients{exact: map[string]bool{}, domains: map[string]bool{}}
	for _, p := range patterns {
		if err := CheckRecipient(p); err != nil {
			return nil, err
		}
		p = strings.ToLower(p)
		if domain, ok := strings.CutPrefix(p, "*@"); ok {
			r.domains[domain] = true
		} else {
			r.exact[p] = true
		}
	}
	return r, nil
}

// CheckRecipient says what is wrong with a pattern of NewRecipients, if anything.
func CheckRecipient(p string) error {
	at := strings.LastIndexByte(p, '@')
	if at < 0 {
		return errors.New("not an address: no @")
	}
	local, domain := p[:at], p[at+1:]
	switch {
	case local == "":
		return errors.New("not an address: nothing before the @")
	case domain == "":
		return errors.New("not an address: no domain after the @")
	case strings.ContainsAny(p, " \t<>,"):
		return errors.New("not an address: it holds a space, <, > or a comma")
	case strings.Contains(domain, "*"):
		return errors.New("a * matches a whole local part, never part of a domain")
	case local != "*" && strings.Contains(local, "*"):
		return errors.New("a * matches a whole local part (*@domain), never part of one")
	}
	return nil
}

// Accepts says whether addr, a parsed RCPT TO address, is one of r's.
func (r *Recipients) Accepts(addr string) bool {
	if r == nil {
		return true
	}
	addr = strings.ToLower(addr)
	if r.exact[addr] {
		return true
	}
	at := strings.LastIndexByte(addr, '@')
	return at >= 0 && r.domains[addr[at+1:]]
}
