package parser

import (
	"io"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2"
	"golang.org/x/text/encoding/charmap"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/charset"
)

// decodeHeaderValue turns a raw header value into text: bytes that are not UTF-8 are read as
// Windows-1252 (the usual culprit, and a superset of Latin-1), then RFC 2047 encoded words are
// decoded. It reports whether the 8-bit repair was needed.
func decodeHeaderValue(raw string) (string, bool) {
	fixed := false
	if !utf8.ValidString(raw) {
		raw, fixed = latin1ToUTF8(raw), true
	}
	if strings.Contains(raw, "=?") {
		raw = charset.UTF16Words(raw)
		raw = enmime.DecodeRFC2047(raw)
		if !utf8.ValidString(raw) {
			raw = strings.ToValidUTF8(raw, "\uFFFD")
		}
	}
	return raw, fixed
}

// decodeFilename is decodeHeaderValue for a name or filename parameter. Encoded words there
// are not standard, and the mailers that write them write them loosely: an RFC 2231 language
// tag in the charset (=?utf-8*en?...), base64 with its padding cut off. Clients decode them
// anyway, so the name a recipient sees is the decoded one, and a name left encoded would hide
// its extension from whatever matches on it.
func decodeFilename(raw string) (string, bool) {
	if strings.Contains(raw, "=?") {
		raw = encodedWord.ReplaceAllStringFunc(raw, looseWord)
	}
	return decodeHeaderValue(raw)
}

// encodedWord matches an RFC 2047 encoded word, allowing what looseWord repairs, and
// whitespace inside the text, left there by folding in the middle of a word.
var encodedWord = regexp.MustCompile(`=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=`)

// looseWord rewrites an encoded word as Go's strict decoder wants it: no language tag (RFC 2231
// §5), and base64 padded to whole quanta.
func looseWord(w string) string {
	m := encodedWord.FindStringSubmatch(w)
	cs, enc, text := m[1], m[2], m[3]
	if i := strings.IndexByte(cs, '*'); i > 0 {
		cs = cs[:i]
	}
	if enc == "b" || enc == "B" {
		text = strings.TrimRight(strings.Join(strings.Fields(text), ""), "=")
		if len(text)%4 == 1 {
			return w // a dangling sextet: not base64 any client decodes
		}
		text += strings.Repeat("=", (4-len(text)%4)%4)
	}
	return "=?" + cs + "?" + enc + "?" + text + "?="
}

func latin1ToUTF8(s string) string {
	out, err := charmap.Windows1252.NewDecoder().String(s)
	if err != nil {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return out
}

// parseAddresses reads an address list leniently: enmime's parser first (it decodes
// RFC 2047 names and repairs missing commas), then a crude split that still finds the
// addresses in a list no parser accepts, because a sender in a malformed From is evidence.
func parseAddresses(v string) (list []api.Address, ok bool) {
	if strings.TrimSpace(v) == "" {
		return nil, true
	}
	if as, err := enmime.ParseAddressList(v); err == nil {
		for _, a := range as {
			list = append(list, api.Address{Name: a.Name, Address: a.Address})
		}
		return list, true
	}
	for _, tok := range splitUnquoted(v, ',') {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		var a api.Address
		if i, j := strings.LastIndexByte(tok, '<'), strings.LastIndexByte(tok, '>'); i >= 0 && j > i {
			a.Address = strings.TrimSpace(tok[i+1 : j])
			a.Name = strings.Trim(strings.TrimSpace(tok[:i]), `"`)
			a.Name, _ = decodeHeaderValue(a.Name)
		} else if strings.Contains(tok, "@") {
			a.Address = strings.Trim(tok, `"' `)
		} else {
			continue // a group name or a display name alone
		}
		list = append(list, a)
	}
	return list, false
}

func splitUnquoted(s string, sep byte) []string {
	var parts []string
	quoted, esc, start := false, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case esc:
			esc = false
		case c == '\\':
			esc = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// parseDate returns the date as RFC 3339 in the sender's own offset, or false.
func parseDate(v string) (string, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", false
	}
	t, err := mail.ParseDate(v)
	if err != nil {
		return "", false
	}
	return t.Format(time.RFC3339), true
}

// msgIDs returns the <...> tokens of a References or In-Reply-To value, or the value's
// whitespace-separated words when it has none.
func msgIDs(v string) []string {
	var ids []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		ids = append(ids, v[i:i+j+1])
		v = v[i+j+1:]
	}
	if ids == nil {
		ids = strings.Fields(v)
	}
	return ids
}

// charsetReader converts text in the named charset to UTF-8 as a stream. It reports false
// for a charset it does not know; the text is then passed through unchanged.
func charsetReader(name string, r io.Reader) (io.Reader, bool) {
	return charset.NewReader(name, r)
}
