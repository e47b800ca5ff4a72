// Package charset converts text in a MIME charset to UTF-8 the way mail clients read it.
//
// Labels are resolved as the WHATWG Encoding Standard does (htmlindex), since that is what
// browsers and the clients built on them (Thunderbird, web mail) use. Text labelled UTF-16 is
// read by its byte order mark when it has one, as the Standard's decode algorithm has it:
// htmlindex's decoders ignore the mark, so big-endian text with one was read as noise and its
// links lost. Without a mark the label decides ("utf-16" is little-endian, as in the
// Standard, Thunderbird and Python). The byte order is never guessed from the text: a sender
// chooses the text, and a guess it can steer hides links from us and not from the reader.
// A mark under any other label is left alone, so text that starts with those bytes by
// accident is read as its label says. UTF-7, which the Standard dropped, is decoded too
// (utf7.go): Thunderbird's mail charsets and Python's email kept it.
package charset

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/transform"
)

// bomBytes is the smallest buffer bufio allows, room enough for a UTF-16 byte order mark.
const bomBytes = 16

// NewReader returns r's text converted from the named charset to UTF-8 as a stream. It reports
// false for a charset it does not know; the text is then passed through unchanged.
func NewReader(label string, r io.Reader) (io.Reader, bool) {
	enc, ok := lookup(label)
	if !ok {
		return r, false
	}
	if enc == nil {
		return r, true
	}
	if !isUTF16(enc) {
		return transform.NewReader(r, enc.NewDecoder()), true
	}
	br := bufio.NewReaderSize(r, bomBytes)
	head, _ := br.Peek(2) // a short text gives a short head; errors come back on Read
	return transform.NewReader(br, byMark(enc, head).NewDecoder()), true
}

// String converts raw from the named charset to UTF-8. It reports false for a charset it does
// not know or bytes it cannot decode.
func String(label string, raw []byte) (string, bool) {
	enc, ok := lookup(label)
	if !ok {
		return "", false
	}
	if enc == nil {
		return string(raw), true
	}
	if isUTF16(enc) {
		enc = byMark(enc, raw)
	}
	out, err := enc.NewDecoder().Bytes(raw)
	if err != nil {
		return "", false
	}
	return string(out), true
}

// lookup resolves a charset label. A nil encoding means the text is UTF-8 (or ASCII) already.
func lookup(label string) (encoding.Encoding, bool) {
	label = normal(label)
	switch label {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return nil, true
	case "utf-7", "unicode-1-1-utf-7", "x-utf-7", "csunicode11utf7":
		// QUIRK: WHATWG has no UTF-7 (the Encoding Standard maps no label to it), but
		// Thunderbird decodes it in mail; these are its IANA names and their variants.
		return utf7{}, true
	}
	enc, err := htmlindex.Get(label)
	if err != nil {
		return nil, false
	}
	if enc == encoding.Nop || enc == unicode.UTF8 {
		return nil, true
	}
	return enc, true
}

// OtherByteOrder returns the label for reading text in the byte order its UTF-16 label leaves
// open: "utf-16" (and its aliases) without a byte order mark is little-endian to the WHATWG
// Standard, Thunderbird and Python, but big-endian to RFC 2781 and to ICU-based readers such
// as Rspamd. A sender picks whichever order the scanner does not read, so such text is read
// both ways. ok is false for every other label, and for text whose mark settles it.
func OtherByteOrder(label string, head []byte) (other string, ok bool) {
	switch normal(label) {
	case "utf-16", "utf16", "unicode", "ucs-2", "csunicode", "iso-10646-ucs-2":
	default:
		return "", false
	}
	if hasMark(head) {
		return "", false
	}
	return "utf-16be", true
}

// hasMark reports whether text starts with a UTF-16 byte order mark.
func hasMark(head []byte) bool {
	return len(head) >= 2 && (head[0] == 0xFE && head[1] == 0xFF || head[0] == 0xFF && head[1] == 0xFE)
}

// normal is a charset label as written in a parameter, in the form the tables know.
func normal(label string) string {
	return strings.Trim(strings.ToLower(strings.TrimSpace(label)), `"'`)
}

// isUTF16 reports whether an encoding from lookup is one of the UTF-16 ones.
func isUTF16(enc encoding.Encoding) bool {
	name, _ := htmlindex.Name(enc)
	return name == "utf-16le" || name == "utf-16be"
}

// byMark returns the UTF-16 decoding a text's byte order mark asks for, which drops the mark,
// or label when it has none.
func byMark(label encoding.Encoding, head []byte) encoding.Encoding {
	switch {
	case bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM)
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}):
		return unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM)
	}
	return label
}

// encodedWord matches an RFC 2047 encoded word in a UTF-16 charset.
var encodedWord = regexp.MustCompile(`(?i)=\?(utf-16(?:be|le)?)\?([bq])\?([^?]*)\?=`)

// UTF16Words rewrites the RFC 2047 encoded words in s whose charset is UTF-16 as the same text
// in UTF-8 words, read as a UTF-16 body is read here: a byte order mark wins over the label,
// and without one the label decides. The decoders underneath read every "utf-16" word as
// little-endian and keep its mark as a character, so a big-endian file name with a mark came
// out as CJK noise with its extension hidden. Other words, and words that do not decode,
// are left as they are.
func UTF16Words(s string) string {
	if !hasUTF16Word(s) {
		return s
	}
	return encodedWord.ReplaceAllStringFunc(s, func(w string) string {
		m := encodedWord.FindStringSubmatch(w)
		var raw []byte
		var err error
		if m[2] == "b" || m[2] == "B" {
			raw, err = base64.StdEncoding.DecodeString(m[3])
		} else {
			raw, err = qBytes(m[3])
		}
		if err != nil {
			return w
		}
		text, ok := String(m[1], raw)
		if !ok || !utf8.ValidString(text) {
			return w
		}
		return "=?utf-8?b?" + base64.StdEncoding.EncodeToString([]byte(text)) + "?="
	})
}

// qBytes decodes the text of a Q-encoded word (RFC 2047 §4.2).
func qBytes(s string) ([]byte, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '_':
			out = append(out, ' ')
		case '=':
			if i+2 >= len(s) {
				return nil, errors.New("cut escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("escape %q: %w", s[i:i+3], err)
			}
			out = append(out, byte(v))
			i += 2
		default:
			out = append(out, c)
		}
	}
	return out, nil
}

// hasUTF16Word reports whether s may hold an encoded word in a UTF-16 charset: "?utf-16" in
// any case. Every header value and parameter passes here, so it looks only after each '?'.
func hasUTF16Word(s string) bool {
	const tag = "?utf-16"
	for {
		i := strings.IndexByte(s, '?')
		if i < 0 || len(s)-i < len(tag) {
			return false
		}
		if strings.EqualFold(s[i:i+len(tag)], tag) {
			return true
		}
		s = s[i+1:]
	}
}
