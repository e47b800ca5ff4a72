package sensor

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// command is one SMTP command line, split into its verb (upper case) and the rest.
type command struct {
	verb string
	arg  string
}

// parseCommand splits a command line (without its CRLF) at the first space. A verb is
// letters only; anything else is a syntax error.
func parseCommand(line string) (command, bool) {
	verb, arg, _ := strings.Cut(line, " ")
	if verb == "" || len(verb) > 10 {
		return command{}, false
	}
	for i := 0; i < len(verb); i++ {
		if c := verb[i] | 0x20; c < 'a' || c > 'z' {
			return command{}, false
		}
	}
	return command{verb: strings.ToUpper(verb), arg: strings.TrimSpace(arg)}, true
}

// mailArgs is what MAIL carries besides the reverse-path.
type mailArgs struct {
	from     string
	size     int64 // 0 when not declared
	body     string
	smtputf8 bool
}

var (
	errPathSyntax  = errors.New("bad path syntax")
	errParamSyntax = errors.New("bad parameter syntax")
	errSizeSyntax  = errors.New("bad SIZE value")
	errBodyValue   = errors.New("unknown BODY value")
)

// parseMail parses the argument of MAIL: "FROM:<path> [params]".
func parseMail(arg string) (mailArgs, error) {
	var m mailArgs
	rest, ok := cutPrefixFold(arg, "FROM:")
	if !ok {
		return m, errPathSyntax
	}
	from, params, err := parsePath(strings.TrimLeft(rest, " "), true)
	if err != nil {
		return m, err
	}
	m.from = from
	for _, p := range strings.Fields(params) {
		k, v, _ := strings.Cut(p, "=")
		switch strings.ToUpper(k) {
		case "SIZE":
			if v == "" || strings.TrimLeft(v, "0123456789") != "" {
				return m, errSizeSyntax // RFC 1870: digits only, so no sign
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				// RFC 1870 allows 20 digits, more than an int64 holds: such a message is
				// over any limit we set, which the size check answers with 552 (not a
				// syntax error); it cannot fit a budget either.
				n = math.MaxInt64
			}
			m.size = n
		case "BODY":
			switch strings.ToUpper(v) {
			case "7BIT", "8BITMIME", "BINARYMIME":
				m.body = strings.ToUpper(v)
			default:
				return m, errBodyValue
			}
		case "SMTPUTF8":
			if v != "" {
				return m, errParamSyntax
			}
			m.smtputf8 = true
		default:
			// QUIRK: RFC 5321 §4.1.1.11 lets a server refuse unknown parameters with 555;
			// a journal sink that refuses is evaded, so those it does not know (AUTH=,
			// RET=, ENVID=) are ignored.
			if k == "" {
				return m, errParamSyntax
			}
		}
	}
	return m, nil
}

// parseRcpt parses the argument of RCPT: "TO:<path> [params]". Parameters are ignored.
func parseRcpt(arg string) (string, error) {
	rest, ok := cutPrefixFold(arg, "TO:")
	if !ok {
		return "", errPathSyntax
	}
	to, _, err := parsePath(strings.TrimLeft(rest, " "), false)
	if err != nil {
		return "", err
	}
	if to == "" {
		return "", errPathSyntax
	}
	return to, nil
}

// parsePath reads "<address>" from the start of s and returns the address and what
// follows it. "<>" is the null reverse-path, allowed when null is set. A source route
// (<@a,@b:user@d>) is dropped, as RFC 5321 §4.1.1.3 asks. The address is checked loosely:
// local@domain with a non-empty domain, or postmaster; no controls or spaces outside a
// quoted local part; UTF-8 allowed (SMTPUTF8).
func parsePath(s string, null bool) (addr, rest string, err error) {
	if !strings.HasPrefix(s, "<") {
		return "", "", errPathSyntax
	}
	end := -1
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == '>' && !quoted:
			end = i
		}
		if end >= 0 {
			break
		}
	}
	if end < 0 {
		return "", "", errPathSyntax
	}
	addr, rest = s[1:end], s[end+1:]
	if rest != "" && rest[0] != ' ' {
		return "", "", errPathSyntax
	}
	if strings.HasPrefix(addr, "@") {
		_, after, ok := strings.Cut(addr, ":")
		if !ok {
			return "", "", errPathSyntax
		}
		addr = after
	}
	if addr == "" {
		if !null {
			return "", "", errPathSyntax
		}
		return "", rest, nil
	}
	if !validAddress(addr) {
		return "", "", errPathSyntax
	}
	return addr, rest, nil
}

func validAddress(a string) bool {
	if !utf8.ValidString(a) {
		return false
	}
	at := strings.LastIndexByte(a, '@')
	if at < 0 {
		return strings.EqualFold(a, "postmaster")
	}
	local, domain := a[:at], a[at+1:]
	if local == "" || domain == "" {
		return false
	}
	quoted := false
	for i := 0; i < len(local); i++ {
		c := local[i]
		switch {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c < 0x20 || c == 0x7f || (c == ' ' && !quoted):
			return false
		}
	}
	if quoted {
		return false
	}
	for i := 0; i < len(domain); i++ {
		if c := domain[i]; c <= 0x20 || c == 0x7f || c == '<' || c == '>' || c == '"' || c == '\\' || c == '@' {
			return false
		}
	}
	return true
}

// parseBDAT parses the argument of BDAT: "<size> [LAST]".
func parseBDAT(arg string) (size int64, last bool, err error) {
	f := strings.Fields(arg)
	if len(f) == 0 || len(f) > 2 {
		return 0, false, errParamSyntax
	}
	for _, c := range []byte(f[0]) {
		if c < '0' || c > '9' {
			return 0, false, errParamSyntax
		}
	}
	size, err = strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return 0, false, errParamSyntax
	}
	if len(f) == 2 {
		if !strings.EqualFold(f[1], "LAST") {
			return 0, false, errParamSyntax
		}
		last = true
	}
	return size, last, nil
}

// parseHello returns the domain or address literal of HELO/EHLO.
func parseHello(arg string) (string, bool) {
	f := strings.Fields(arg)
	if len(f) == 0 {
		return "", false
	}
	return f[0], true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}
