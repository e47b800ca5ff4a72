package testkit

import (
	"bytes"
	"encoding/base64"
	"html"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf16"
)

var kebab = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

func TestEvasionCasesShape(t *testing.T) {
	cs := EvasionCases()
	if len(cs) < 32 {
		t.Errorf("%d cases, want at least 32", len(cs))
	}
	names, links, atts := map[string]bool{}, map[string]bool{}, map[string]string{}
	for _, c := range cs {
		if !kebab.MatchString(c.Name) {
			t.Errorf("name %q is not kebab-case", c.Name)
		}
		if names[c.Name] {
			t.Errorf("name %q used twice", c.Name)
		}
		names[c.Name] = true
		if strings.TrimSpace(c.Client) == "" {
			t.Errorf("%s: Client is empty", c.Name)
		}
		if !strings.HasPrefix(c.Link, "https://") && !strings.HasPrefix(c.Link, "mailto:") {
			t.Errorf("%s: link %q is neither https nor mailto", c.Name, c.Link)
		}
		if links[c.Link] {
			t.Errorf("%s: link %q used twice", c.Name, c.Link)
		}
		links[c.Link] = true
		if c.Attachment != nil {
			if other, ok := atts[string(c.Attachment)]; ok {
				t.Errorf("%s: attachment same as %s's", c.Name, other)
			}
			atts[string(c.Attachment)] = c.Name
		}
	}
}

func TestEvasionCasesDeterministic(t *testing.T) {
	if !reflect.DeepEqual(EvasionCases(), EvasionCases()) {
		t.Error("two calls gave different cases")
	}
}

// TestEvasionCasesHoldTheirPayload checks each message carries its link and attachment in
// some decodable form, so a builder mistake cannot make a case that no parser could pass.
func TestEvasionCasesHoldTheirPayload(t *testing.T) {
	for _, c := range EvasionCases() {
		forms := decodedForms(c.Message)
		if !anyHolds(forms, []byte(c.Link)) && !holdsBaseAndRest(forms, c.Link) {
			t.Errorf("%s: link %q not found in any decoded form of the message", c.Name, c.Link)
		}
		if c.Attachment != nil && !anyHolds(forms, c.Attachment) {
			t.Errorf("%s: attachment not found in any decoded form of the message", c.Name)
		}
	}
}

func anyHolds(forms [][]byte, want []byte) bool {
	for _, f := range forms {
		if bytes.Contains(f, want) {
			return true
		}
	}
	return false
}

// holdsBaseAndRest accepts a link written as a <base href> and a relative reference.
func holdsBaseAndRest(forms [][]byte, link string) bool {
	i := strings.LastIndex(link, "/") + 1
	base, rest := `<base href="`+link[:i]+`"`, `href="`+link[i:]+`"`
	for _, f := range forms {
		if bytes.Contains(f, []byte(base)) && bytes.Contains(f, []byte(rest)) {
			return true
		}
	}
	return false
}

// decodedForms returns the message as it is and as the decodings the cases use would leave
// it: QP soft breaks and folds removed, HTML references resolved, UTF-7 runs decoded, each run of base64 lines
// decoded (and read as UTF-16 too), each uuencode block decoded.
func decodedForms(msg []byte) [][]byte {
	lf := bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))
	forms := [][]byte{
		msg,
		bytes.ReplaceAll(lf, []byte("=\n"), nil),
		bytes.ReplaceAll(lf, []byte("\n "), nil),
		[]byte(html.UnescapeString(string(msg))),
		utf7Runs.ReplaceAllFunc(msg, func(run []byte) []byte {
			d, err := base64.RawStdEncoding.DecodeString(string(run[1 : len(run)-1]))
			if err != nil {
				return run
			}
			return utf16BE(d)
		}),
	}
	for _, run := range base64Runs(lf) {
		d, err := base64.StdEncoding.DecodeString(run)
		if err != nil {
			continue
		}
		forms = append(forms, d)
		forms = append(forms, decodedForms(d)...) // a message or multipart inside base64
		forms = append(forms, utf16BE(d))
	}
	return append(forms, uudecodeBlocks(lf)...)
}

// utf7Runs matches UTF-7 shifted runs ('+', base64, '-').
var utf7Runs = regexp.MustCompile(`\+[A-Za-z0-9+/]+-`)

var b64Line = regexp.MustCompile(`^[A-Za-z0-9+/=]+!?$`)

// base64Runs returns the runs of consecutive base64-looking lines, joined, with the stray
// characters the base64-junk-chars case adds removed.
func base64Runs(lf []byte) []string {
	var runs []string
	var cur strings.Builder
	for line := range strings.SplitSeq(string(lf), "\n") {
		if len(line) >= 4 && b64Line.MatchString(line) {
			cur.WriteString(strings.TrimSuffix(line, "!"))
			continue
		}
		if cur.Len() > 0 {
			runs = append(runs, cur.String())
			cur.Reset()
		}
	}
	if cur.Len() > 0 {
		runs = append(runs, cur.String())
	}
	return runs
}

func utf16BE(b []byte) []byte {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
	}
	return []byte(string(utf16.Decode(u)))
}

// uudecodeBlocks decodes every "begin ... end" block, independently of the encoder.
func uudecodeBlocks(lf []byte) [][]byte {
	var out [][]byte
	var cur []byte
	in := false
	for line := range strings.SplitSeq(string(lf), "\n") {
		switch {
		case strings.HasPrefix(line, "begin "):
			in, cur = true, nil
		case in && line == "end":
			in = false
			out = append(out, cur)
		case in && line != "":
			dec := func(c byte) byte { return (c - ' ') & 0x3f }
			n := int(dec(line[0]))
			var b []byte
			for i := 1; i+4 <= len(line); i += 4 {
				q := line[i : i+4]
				b = append(b, dec(q[0])<<2|dec(q[1])>>4, dec(q[1])<<4|dec(q[2])>>2, dec(q[2])<<6|dec(q[3]))
			}
			cur = append(cur, b[:min(n, len(b))]...)
		}
	}
	return out
}
