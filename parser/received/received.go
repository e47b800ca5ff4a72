// Package received parses Received header fields into the record's trace entries: which host
// handed the message to which, by what protocol, from what address, and when.
//
// RFC 5321 §4.4 gives the field a grammar ("from" domain (TCP-info) "by" domain "via" ...
// "with" protocol "id" ... "for" ...; date-time), but real MTAs bend it in a dozen ways:
// qmail writes whole clauses as comments, Exchange puts the client address in parentheses
// without brackets, Exim writes helo=, Gmail's internal hops start at "by". So the parser
// reads the value as a sequence of words, comments and literals, splits it at the clause
// keywords wherever they appear, and takes from each clause what it can. It never fails: what
// it cannot find stays empty.
package received

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	"github.com/journalsensor/sensor/api"
)

const (
	// maxInput is how much of a value is read for its clauses. Real fields stay under 600
	// bytes; the bound keeps the work per field fixed whatever a sender writes.
	maxInput = 4 << 10
	// maxDateTail is how much of the end of a longer value is searched for its date.
	maxDateTail = 512
	maxTokens   = 1024
	maxField    = 255 // longest from, by or with kept
	maxWithWord = 3   // "Microsoft SMTP Server"
)

// Parse reads one Received field value (unfolded, RFC 2047 decoded). Any input yields a
// value; fields it cannot find are empty. Date is RFC 3339 in UTC.
func Parse(value string) api.Received {
	head := value
	if len(head) > maxInput {
		head = head[:maxInput]
	}
	toks := tokenize(head)

	// The date follows the last semicolon outside comments.
	clauses := toks
	var date string
	for i := len(toks) - 1; i >= 0; i-- {
		if toks[i].kind == tokSemi {
			clauses = toks[:i]
			date = head[toks[i].end:]
			break
		}
	}
	if len(value) > maxInput {
		// The clauses were cut short, so the date is somewhere in the tail.
		tail := value[len(value)-maxDateTail:]
		if i := strings.LastIndexByte(tail, ';'); i >= 0 {
			date = tail[i+1:]
		} else {
			date = ""
		}
	}

	var r api.Received
	c := splitClauses(clauses)
	r.From = hostWord(c.from)
	r.By = hostWord(c.by)
	r.With = withWords(c.with)
	r.IP = clientIP(c.from)
	if r.From == "" || strings.EqualFold(r.From, "unknown") {
		if n := fallbackName(c.from); n != "" {
			r.From = n
		}
	}
	if d, ok := ParseDate(date); ok {
		r.Date = d
	} else if date == "" && len(value) <= maxInput {
		// QUIRK: RFC 5321 §4.4 puts ";" before the date, but some hops leave it out
		// (SendGrid's "by None (SG) with ESMTP id ... Wed, 31 Oct 2012 ..."); the date is
		// then the last run of words that parses as one.
		r.Date = trailingDate(clauses, head)
	}
	return r
}

type tokKind uint8

const (
	tokWord    tokKind = iota
	tokComment         // text is the inside of the outermost parentheses
	tokLiteral         // [..], text is the inside
	tokAngle           // <..>
	tokSemi
)

type token struct {
	kind       tokKind
	text       string
	start, end int // offsets in the value; end is just past the token
}

// tokenize splits s into words, comments, literals, angle addresses and semicolons. An
// unclosed comment runs to the end; an unclosed bracket or angle is an ordinary character.
func tokenize(s string) []token {
	var toks []token
	i := 0
	for i < len(s) && len(toks) < maxTokens {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == ';':
			toks = append(toks, token{tokSemi, ";", i, i + 1})
			i++
		case c == '(':
			end := commentEnd(s, i)
			inner := s[i+1 : end]
			if end < len(s) {
				end++ // the closing parenthesis
			}
			toks = append(toks, token{tokComment, inner, i, end})
			i = end
		case c == '[' || c == '<':
			closer := byte(']')
			kind := tokLiteral
			if c == '<' {
				closer, kind = '>', tokAngle
			}
			if j := strings.IndexByte(s[i+1:], closer); j >= 0 {
				toks = append(toks, token{kind, s[i+1 : i+1+j], i, i + j + 2})
				i += j + 2
				continue
			}
			fallthrough
		default:
			j := i + 1
			for j < len(s) && !isSpace(s[j]) && s[j] != ';' && s[j] != '(' && s[j] != '[' && s[j] != '<' {
				j++
			}
			toks = append(toks, token{tokWord, s[i:j], i, j})
			i = j
		}
	}
	return toks
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// commentEnd returns the index of the parenthesis that closes the comment opening at i (or
// len(s)), honouring nesting and backslash quoting.
func commentEnd(s string, i int) int {
	depth := 0
	for j := i; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return j
			}
		}
	}
	return len(s)
}

type clauses struct {
	from, by, with []token
}

// splitClauses sorts the tokens after each keyword into its clause. Only the first clause of
// each kind counts (qmail-scanner writes "by host by uid 111"); id, for and via clauses are
// read past.
func splitClauses(toks []token) clauses {
	var c clauses
	var cur *[]token
	var seenFrom, seenBy, seenWith bool
	first := func(seen *bool, cl *[]token) *[]token {
		if *seen {
			return nil
		}
		*seen = true
		return cl
	}
	for _, t := range toks {
		if t.kind == tokWord && len(t.text) <= 4 {
			switch strings.ToLower(t.text) {
			case "from":
				cur = first(&seenFrom, &c.from)
				continue
			case "by":
				cur = first(&seenBy, &c.by)
				continue
			case "with":
				cur = first(&seenWith, &c.with)
				continue
			case "via", "id", "for":
				cur = nil
				continue
			}
		}
		if cur != nil {
			*cur = append(*cur, t)
		}
	}
	return c
}

// hostWord is the domain (or address literal) a from or by clause starts with.
func hostWord(cl []token) string {
	if len(cl) == 0 {
		return ""
	}
	switch t := cl[0]; {
	case t.kind == tokWord && hasAlnum(t.text):
		return clean(t.text)
	case t.kind == tokLiteral && hasAlnum(t.text):
		return clean("[" + t.text + "]")
	}
	return "" // a comment ("by (Postfix)") or punctuation ("from ....", cut short)
}

func hasAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i] | 0x20; c >= 'a' && c <= 'z' || s[i] >= '0' && s[i] <= '9' || s[i] >= 0x80 {
			return true
		}
	}
	return false
}

// withWords is the protocol: the words after "with" up to the first comment, three at most.
// IronPort appends the TLS version and cipher ("ESMTP/TLS/ECDHE-RSA-AES128-GCM-SHA256");
// they are not the protocol and are cut off.
func withWords(cl []token) string {
	var words []string
	for _, t := range cl {
		if t.kind != tokWord || len(words) == maxWithWord {
			break
		}
		w, _, cut := strings.Cut(t.text, "/")
		if w != "" {
			words = append(words, w)
		}
		if cut {
			break
		}
	}
	return clean(strings.Join(words, " "))
}

// clean makes a field taken from the header valid UTF-8 without control characters, and
// at most maxField bytes long.
func clean(s string) string {
	if len(s) > maxField {
		s = s[:maxField]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r // invalid bytes come back as U+FFFD
	}, s)
	for len(s) > maxField {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

// clientIP finds the connecting client's address in a from clause. In order of trust: an
// address literal inside a comment (Postfix "(host [1.2.3.4])", Sendmail, Exim
// "([1.2.3.4]:port helo=x)"), a bare address as a whole word of a comment (qmail
// "(HELO x) (1.2.3.4)", Exchange "(2603:10a6:...)", Sendmail "(user@1.2.3.4)"), an address
// literal right in the clause
// (Exim "from [1.2.3.4] (helo=x)"), and last the from word itself.
func clientIP(cl []token) string {
	for _, t := range cl {
		if t.kind != tokComment {
			continue
		}
		rest := t.text
		for {
			i := strings.IndexByte(rest, '[')
			if i < 0 {
				break
			}
			j := strings.IndexByte(rest[i:], ']')
			if j < 0 {
				break
			}
			if a, ok := parseIP(rest[i+1 : i+j]); ok {
				return a
			}
			rest = rest[i+j+1:]
		}
	}
	for _, t := range cl {
		if t.kind != tokComment {
			continue
		}
		for _, w := range strings.FieldsFunc(t.text, func(r rune) bool {
			return r == ' ' || r == '\t' || r == '(' || r == ')' || r == ','
		}) {
			if i := strings.LastIndexByte(w, '@'); i >= 0 {
				w = w[i+1:] // Sendmail's ident form, "(root@130.183.70.10)"
			}
			if a, ok := parseIP(w); ok {
				return a
			}
		}
	}
	for _, t := range cl {
		if t.kind == tokLiteral {
			if a, ok := parseIP(t.text); ok {
				return a
			}
		}
	}
	if len(cl) > 0 && cl[0].kind == tokWord {
		if a, ok := parseIP(cl[0].text); ok {
			return a
		}
	}
	return ""
}

// parseIP reads an IPv4 or IPv6 address as MTAs write them: "IPv6:" prefix (RFC 5321
// §4.1.3), IPv6 zone ("%14", Exchange's link-local hops), IPv4 with a port ("1.2.3.4:25",
// Exim), a trailing dot. It returns the canonical form.
func parseIP(s string) (string, bool) {
	s = strings.TrimSuffix(strings.Trim(s, "[] "), ".")
	if len(s) > 6 && strings.EqualFold(s[:5], "IPv6:") {
		s = s[5:]
	}
	if s == "" || len(s) > 64 {
		return "", false
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		// "1.2.3.4:25"
		host, port, ok := strings.Cut(s, ":")
		if !ok || strings.Contains(port, ":") || !allDigits(port) {
			return "", false
		}
		if a, err = netip.ParseAddr(host); err != nil || !a.Is4() {
			return "", false
		}
	}
	return a.WithZone("").Unmap().String(), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// fallbackName names the client when the from word is missing or "unknown": the HELO name
// from a comment (qmail "(HELO x)", Exim "helo=x", LMTP "LHLO x"), else the reverse-DNS name
// before an address literal ("(host.example [1.2.3.4])").
func fallbackName(cl []token) string {
	for _, t := range cl {
		if t.kind != tokComment {
			continue
		}
		words := strings.Fields(t.text)
		for i, w := range words {
			lw := strings.ToLower(w)
			switch {
			case (lw == "helo" || lw == "ehlo" || lw == "lhlo") && i+1 < len(words):
				return clean(words[i+1])
			case strings.HasPrefix(lw, "helo=") && len(w) > 5:
				return clean(w[5:])
			}
		}
	}
	for _, t := range cl {
		if t.kind != tokComment {
			continue
		}
		words := strings.Fields(t.text)
		if len(words) >= 2 && strings.HasPrefix(words[1], "[") {
			switch n := strings.ToLower(words[0]); n {
			case "unknown", "unverified", "localhost":
			default:
				if strings.Contains(n, ".") && !strings.ContainsAny(n, "@[(") {
					return clean(words[0])
				}
			}
		}
	}
	return ""
}

// trailingDate looks for a date at the end of a value that has no semicolon: it tries the
// text from each day-name or day-of-month word onwards, last first.
func trailingDate(toks []token, s string) string {
	tries := 0
	for i := len(toks) - 1; i >= 0 && tries < 8; i-- {
		t := toks[i]
		if t.kind != tokWord {
			continue
		}
		w := strings.TrimSuffix(t.text, ",")
		if !isDayName(w) && (i+1 >= len(toks) || !allDigits(w) || len(w) > 2 || !isMonth(toks[i+1].text)) {
			continue
		}
		tries++
		if d, ok := ParseDate(s[t.start:]); ok {
			return d
		}
	}
	return ""
}
