package received

import (
	"net/mail"
	"strings"
	"time"
)

// maxDate is how much text ParseDate looks at; a date with its comments fits in far less.
const maxDate = 256

// ParseDate reads an RFC 5322 date-time the way MTAs really write it and returns it as
// RFC 3339 in UTC. Besides what net/mail accepts it takes: comments anywhere ("(PDT)",
// "(envelope-from x)"), extra or missing blanks and commas, a full or missing day name,
// North American and a few other zone names (RFC 5322 §4.3 gives the US ones; net/mail
// would read every name as +0000), "+01:00" zones, a missing zone (read as UTC, as
// RFC 5322 reads -0000), ctime order ("Jan 2 15:04:05 2006") and RFC 3339 itself.
func ParseDate(s string) (string, bool) {
	if len(s) > maxDate {
		s = s[:maxDate]
	}
	s = strings.TrimSpace(stripComments(s))
	if s == "" {
		return "", false
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return utc(t)
	}
	f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' || r == '\r' || r == '\n' })
	if len(f) > 0 && isDayName(f[0]) {
		f = f[1:]
	}
	if len(f) > 8 {
		f = f[:8]
	}
	f = fixZone(f)
	norm := strings.Join(f, " ")
	t, err := mail.ParseDate(norm)
	if err != nil {
		for _, layout := range []string{
			"2 January 2006 15:04:05 -0700",
			"2 January 2006 15:04 -0700",
			"Jan 2 15:04:05 2006 -0700", // ctime, as some qmail and Lotus hops write it
			"Jan 2 2006 15:04:05 -0700",
			"2-Jan-2006 15:04:05 -0700",
			"2006-01-02 15:04:05 -0700",
			"2006/01/02 15:04:05 -0700",
		} {
			if t, err = time.Parse(layout, norm); err == nil {
				break
			}
		}
	}
	if err != nil {
		return "", false
	}
	return utc(t)
}

func utc(t time.Time) (string, bool) {
	t = t.UTC()
	if t.Year() < 1 || t.Year() > 9999 {
		return "", false // RFC 3339 has four year digits
	}
	return t.Format(time.RFC3339), true
}

// stripComments blanks out parenthesised text, nested or unclosed.
func stripComments(s string) string {
	if !strings.ContainsRune(s, '(') {
		return s
	}
	var b strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
			if depth == 0 {
				b.WriteByte(' ')
			}
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// fixZone rewrites the fields after the time of day so that exactly one numeric zone
// follows it (and the year, in ctime order): net/mail reads a zone name as +0000 whatever
// it is, and fails on a missing zone or a second one ("+0000 UTC").
func fixZone(f []string) []string {
	k := -1
	for i, w := range f {
		if w[0] >= '0' && w[0] <= '9' && strings.IndexByte(w, ':') > 0 {
			k = i
			break
		}
	}
	if k < 0 {
		return f
	}
	out := append([]string(nil), f[:k+1]...)
	rest := f[k+1:]
	if len(rest) > 0 && len(rest[0]) == 4 && allDigits(rest[0]) {
		out = append(out, rest[0]) // ctime: the year follows the time
		rest = rest[1:]
	}
	zone := "+0000"
	if len(rest) > 0 {
		if z, ok := numericZone(rest[0]); ok {
			zone = z
		}
	}
	return append(out, zone)
}

// numericZone turns a zone as written into ±hhmm. Names it does not know are read as UTC,
// as RFC 5322 §4.3 says of unknown obsolete zones.
func numericZone(z string) (string, bool) {
	if len(z) > 3 && (strings.HasPrefix(strings.ToUpper(z), "GMT") || strings.HasPrefix(strings.ToUpper(z), "UTC")) &&
		(z[3] == '+' || z[3] == '-') {
		z = z[3:] // "GMT+0100"
	}
	if z[0] == '+' || z[0] == '-' {
		d := strings.ReplaceAll(z[1:], ":", "")
		switch {
		case len(d) == 4 && allDigits(d):
		case len(d) <= 2 && allDigits(d): // "+1", "-05"
			d = strings.Repeat("0", 2-len(d)) + d + "00"
		default:
			return "", false
		}
		return z[:1] + d, true
	}
	switch strings.ToUpper(z) {
	case "EDT":
		return "-0400", true
	case "EST", "CDT":
		return "-0500", true
	case "CST", "MDT":
		return "-0600", true
	case "MST", "PDT":
		return "-0700", true
	case "PST", "AKDT":
		return "-0800", true
	case "AKST":
		return "-0900", true
	case "HST":
		return "-1000", true
	case "AST":
		return "-0400", true
	case "ADT":
		return "-0300", true
	case "CET", "MET", "MEZ", "BST", "WEST":
		return "+0100", true
	case "CEST", "MEST", "MESZ", "EET":
		return "+0200", true
	case "EEST", "MSK":
		return "+0300", true
	case "HKT", "SGT", "AWST":
		return "+0800", true
	case "JST", "KST":
		return "+0900", true
	case "AEST":
		return "+1000", true
	case "AEDT":
		return "+1100", true
	case "NZST":
		return "+1200", true
	case "NZDT":
		return "+1300", true
	}
	for i := 0; i < len(z); i++ {
		if c := z[i] | 0x20; c < 'a' || c > 'z' {
			return "", false
		}
	}
	return "+0000", true // UT, GMT, UTC, Z, WET and names nobody agrees on
}

func isDayName(w string) bool {
	w = strings.ToLower(strings.TrimSuffix(w, "."))
	switch w {
	case "mon", "tue", "wed", "thu", "fri", "sat", "sun",
		"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
		"tues", "thur", "thurs":
		return true
	}
	return false
}

func isMonth(w string) bool {
	w = strings.ToLower(w)
	if len(w) < 3 {
		return false
	}
	switch w[:3] {
	case "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec":
		return true
	}
	return false
}
