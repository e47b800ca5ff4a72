package walker

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jhillyerd/enmime/v2/mediatype"
	"github.com/journalsensor/sensor/parser/charset"
	"golang.org/x/text/encoding/charmap"
)

// Field is one header field. Value is unfolded (line breaks removed, the whitespace that
// followed them kept) and trimmed, but otherwise raw: no RFC 2047 decoding, and 8-bit bytes
// are passed through as they came.
type Field struct {
	Name  string
	Value string
}

// Header is a header block in its original order. Order matters: Received chains are read
// top down, and a repeated field is evidence.
type Header struct {
	Fields []Field
}

// Get returns the value of the first field named name (case-insensitive), or "".
func (h *Header) Get(name string) string {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether a field named name is present, even with an empty value.
func (h *Header) Has(name string) bool {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Values returns the values of every field named name, in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// maxMediaTypeBytes bounds the Content-Type or Content-Disposition value that is parsed.
const maxMediaTypeBytes = 16 << 10

// ParseMediaType parses a Content-Type or Content-Disposition value with enmime's lenient
// parser (missing semicolons, repeated and unquoted parameters, RFC 2231 continuations). It
// returns the lowercased type, its parameters (names lowercased), and a note for each repair
// it had to make. A value it cannot parse at all gives an empty type.
func ParseMediaType(v string) (mtype string, params map[string]string, problems []string) {
	if strings.TrimSpace(v) == "" {
		return "", nil, nil
	}
	if len(v) > maxMediaTypeBytes {
		// enmime's repair of mangled values is quadratic in the number of parameters
		// (16k parameters took a second); no real Content-Type is this long.
		cut := strings.LastIndexByte(v[:maxMediaTypeBytes], ';')
		if cut < 0 {
			cut = maxMediaTypeBytes
		}
		v = v[:cut]
		problems = append(problems, "parameters past "+strconv.Itoa(maxMediaTypeBytes)+" bytes dropped")
	}
	if strings.IndexByte(v, '(') >= 0 {
		v = stripComments(v)
	}
	if fixed, ok := insertSemicolon(v); ok {
		// A field folded before its parameters without the ';' (Content-Type:
		// multipart/mixed<LF><TAB>boundary="b"): Rspamd and Python's email still find the
		// parameters, so the parts are there for whoever reads them that way.
		v = fixed
		problems = append(problems, "no ';' between the media type and its parameters")
	}
	mt, ps, invalid, err := mediatype.Parse(charset.UTF16Words(reencode2231(v)))
	if err != nil {
		return "", nil, append(problems, err.Error())
	}
	for _, name := range invalid {
		problems = append(problems, "parameter without value: "+name)
	}
	return strings.ToLower(mt), ps, problems
}

// stripComments removes RFC 5322 comments, "(...)", which RFC 2045 allows around the media
// type and its parameters and which the parser underneath takes for part of a type or value
// ("multipart/mixed (mixed content); boundary=b" lost the whole multipart). Only where a
// comment can stand is one removed: after the media type, after a quoted value, and before a
// parameter's name. A "(" inside or at the start of an unquoted value is the value's:
// boundary=(abc) and filename=invoice (1).pdf are written, and read as written by Rspamd and
// Python's email. An unclosed comment runs to the end, as it would for a strict reader.
func stripComments(v string) string {
	b := make([]byte, 0, len(v))
	quoted := false
	inValue := false // in an unquoted parameter value, from its '=' to the next ';'
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted && c == '\\' && i+1 < len(v):
			b = append(b, c)
			i++
			c = v[i]
		case c == '"':
			quoted = !quoted
			inValue = false // a quoted value ends at its closing quote
		case quoted:
		case c == '=':
			inValue = true
		case c == ';':
			inValue = false
		case c == '(' && !inValue:
			// The comment and the whitespace around it go; a space stays between two words.
			b = bytes.TrimRight(b, " \t")
			i = commentEnd(v, i)
			for i+1 < len(v) && (v[i+1] == ' ' || v[i+1] == '\t') {
				i++
			}
			if len(b) > 0 && i+1 < len(v) && v[i+1] != ';' && b[len(b)-1] != ';' {
				b = append(b, ' ')
			}
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

// commentEnd returns the index of the ')' that closes the comment opening at v[i], allowing
// nesting and quoted pairs, or the last index of v when it is not closed.
func commentEnd(v string, i int) int {
	depth := 0
	for ; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return i
			}
		}
	}
	return len(v) - 1
}

// insertSemicolon puts the missing ';' after the media type when what follows it is
// whitespace and a parameter (name=value), and reports whether it did.
func insertSemicolon(v string) (string, bool) {
	v = strings.TrimSpace(v)
	end := strings.IndexAny(v, " \t")
	if end < 0 || strings.IndexByte(v[:end], '/') < 0 || strings.ContainsAny(v[:end], ";=") {
		return "", false
	}
	rest := strings.TrimLeft(v[end:], " \t")
	name, _, ok := strings.Cut(rest, "=")
	if !ok || name == "" || strings.ContainsAny(strings.TrimSpace(name), " \t;\"") {
		return "", false
	}
	return v[:end] + "; " + rest, true
}

// validFieldName reports whether b is a field name RFC 5322 allows (printable ASCII but
// colon and space).
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// reencode2231 rewrites RFC 2231 extended parameters (name*=charset'lang'%XX..., and their
// name*1*= continuations) from any charset into UTF-8. Go's mime package, under enmime's
// parser, only understands UTF-8 and US-ASCII there and silently drops every other value,
// so without this a filename*=iso-8859-1'fr'caf%E9 attachment would have no filename at all.
// Unknown charsets are read as UTF-8 when the bytes are valid UTF-8, else as Windows-1252,
// the same fallback the parser uses for raw 8-bit header bytes.
func reencode2231(v string) string {
	if !strings.Contains(v, "*=") {
		return v
	}
	charsets := map[string]string{} // parameter base name -> charset of its first segment
	segs := splitParams(v)
	changed := false
	for i, seg := range segs {
		if out, ok := reencodeParam(seg, charsets); ok {
			segs[i] = out
			changed = true
		}
	}
	if !changed {
		return v
	}
	return strings.Join(segs, ";")
}

// splitParams splits v at the semicolons outside quoted strings.
func splitParams(v string) []string {
	var segs []string
	start, inQuote := 0, false
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			inQuote = !inQuote
		case c == '\\' && inQuote:
			i++
		case c == ';' && !inQuote:
			segs = append(segs, v[start:i])
			start = i + 1
		}
	}
	return append(segs, v[min(start, len(v)):])
}

// reencodeParam converts one "name*=..." or "name*N*=..." parameter to UTF-8. It also
// repairs the extended values Go's parser would drop whole, and with them the file name:
// a quoted value, one without the charset'language' prefix (both read as UTF-8 text, as
// Thunderbird and Python do), and one holding bytes that should have been percent-encoded,
// such as the raw RFC 2047 encoded word some mailers put there.
func reencodeParam(seg string, charsets map[string]string) (string, bool) {
	eq := strings.IndexByte(seg, '=')
	if eq < 0 {
		return seg, false
	}
	key := strings.ToLower(strings.TrimSpace(seg[:eq]))
	val := strings.TrimSpace(seg[eq+1:])
	if !strings.HasSuffix(key, "*") {
		return seg, false
	}
	quoted := len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"'
	if quoted {
		val = unquote(val[1 : len(val)-1])
	}
	base := strings.TrimSuffix(key, "*")
	first := true
	if j := strings.IndexByte(base, '*'); j >= 0 {
		first = base[j+1:] == "0"
		base = base[:j]
	}
	var cs, lang, data string
	literal := false // text as it is, not percent-encoded
	if first {
		parts := strings.SplitN(val, "'", 3)
		if len(parts) == 3 {
			cs, lang, data = strings.ToLower(strings.TrimSpace(parts[0])), parts[1], parts[2]
		} else {
			data, literal = val, true
		}
		charsets[base] = cs
	} else {
		cs, data = charsets[base], val
	}
	plain := false
	switch cs {
	case "", "utf-8", "utf8", "us-ascii":
		if !quoted && !literal && cs != "" && attributeChars(data) {
			return seg, false // Go's parser reads it as it is
		}
		plain = true
	}
	raw := []byte(data)
	if !literal {
		var ok bool
		if raw, ok = percentDecode(data); !ok {
			if !plain {
				return seg, false
			}
			raw = []byte(data) // a stray '%' in UTF-8 text is the text
		}
	}
	text := string(raw)
	if !plain || !utf8.Valid(raw) {
		text = toUTF8(cs, raw)
	}
	var b strings.Builder
	b.WriteString(seg[:eq+1])
	if first {
		b.WriteString("utf-8'" + lang + "'")
	}
	percentEncode(&b, text)
	return b.String(), true
}

// attributeChars reports whether s is a valid RFC 2231 extended value: attribute-chars and
// percent escapes.
func attributeChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) || unhex(s[i+1]) < 0 || unhex(s[i+2]) < 0 {
				return false
			}
			i += 2
			continue
		}
		if !isTokenChar(c) || c == '*' || c == '\'' || c == '{' || c == '}' {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may stand in an RFC 2045 token: printable ASCII but the
// tspecials.
func isTokenChar(c byte) bool {
	return ' ' < c && c < 0x7f && strings.IndexByte(`()<>@,;:\"/[]?=`, c) < 0
}

// unquote undoes quoted-string escapes.
func unquote(s string) string {
	if !strings.Contains(s, "\\") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func toUTF8(cs string, raw []byte) string {
	if out, ok := charset.String(cs, raw); ok {
		return out
	}
	if utf8.Valid(raw) {
		return string(raw)
	}
	out, _ := charmap.Windows1252.NewDecoder().Bytes(raw)
	return string(out)
}

func percentDecode(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '%' {
			if i+2 >= len(s) {
				return nil, false
			}
			hi, lo := unhex(s[i+1]), unhex(s[i+2])
			if hi < 0 || lo < 0 {
				return nil, false
			}
			out = append(out, byte(hi<<4|lo))
			i += 2
			continue
		}
		out = append(out, c)
	}
	return out, true
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// percentEncode writes s with every byte outside RFC 2231's attribute-char set escaped.
func percentEncode(b *strings.Builder, s string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c > ' ' && c < 0x7f && !strings.ContainsRune("*'%()<>@,;:\\\"/[]?={}", rune(c)) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}
