package urls

import (
	"bytes"
	"io"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// ScanHTML reads an HTML document from r and collects the URLs in its link-bearing attributes,
// its CSS and its text. The text counts too: the link text a reader sees often differs from
// the href it leads to, and both are evidence. Malformed markup is never an error; only a read
// error from r is returned.
func (c *Collector) ScanHTML(r io.Reader, source string) error {
	// The tokenizer may hold a read error back until its buffer is drained, and a restarted
	// tokenizer must still see it, even from a reader that reports an error only once.
	var in io.Reader = &stickyReader{r: r}
	z := c.tokenizer(in)
	c.base = nil // a <base> applies to its own document only
	defer func() { c.base = nil }()
	inStyle := false
	for {
		tt := z.Next()
		style := false
		switch tt {
		case html.ErrorToken:
			switch err := z.Err(); err {
			case io.EOF:
				return nil
			case html.ErrBufferExceeded:
				// One token (typically a multi-megabyte data: image) outgrew the buffer.
				// Salvage what of it is held (a tag's earlier attributes can be a link), then
				// go on with a fresh tokenizer over what was buffered but not tokenized and
				// the rest of r. The rest of the giant token reads as text there.
				c.limit(LimitHTMLToken)
				c.scanBlock(z.Raw(), source)
				in = io.MultiReader(bytes.NewReader(z.Buffered()), in)
				z = c.tokenizer(in)
			default:
				return err
			}
		case html.TextToken:
			if inStyle {
				c.scanCSS(z.Text(), source)
			} else {
				c.scanBlock(z.Text(), source)
			}
		case html.CommentToken:
			// Outlook's conditional comments (<!--[if mso]><v:roundrect href=...>) carry links
			// that only Outlook users see.
			c.scanBlock(z.Text(), source)
		case html.StartTagToken, html.SelfClosingTagToken:
			style = c.scanTag(z, tt, source)
		}
		inStyle = style
	}
}

func (c *Collector) tokenizer(r io.Reader) *html.Tokenizer {
	z := html.NewTokenizer(r)
	z.SetMaxBuf(c.opts.MaxHTMLToken)
	return z
}

// scanTag collects the URLs in one tag's attributes and reports whether it opened a <style>
// element, whose text is CSS.
func (c *Collector) scanTag(z *html.Tokenizer, tt html.TokenType, source string) (styleOpened bool) {
	name, more := z.TagName()
	tag := string(name)
	switch tag {
	case "noscript", "noembed", "noframes", "iframe":
		// The tokenizer reads these as raw text, as a browser with scripting on would. Mail
		// clients run no scripts and render their content as markup, links included.
		if tt == html.StartTagToken {
			z.NextIsNotRawText()
		}
	}
	var refresh bool
	var content []byte
	for more {
		var key, val []byte
		key, val, more = z.TagAttr()
		switch string(key) {
		case "href", "xlink:href", "action", "formaction":
			if tag == "base" && string(key) == "href" && c.base == nil {
				c.setBase(val)
			}
			// The links a reader follows, mailto: among them (<a>, <area>, SVG's <a>), and the
			// forms a reader submits: one that posts to mailto: opens the reader's mail client
			// with the attacker's address filled in, as a mailto: href does.
			c.addLink(c.resolve(val), source)
		case "src", "background", "poster":
			c.add(c.resolve(val), source, false)
		case "data":
			if tag == "object" {
				c.add(c.resolve(val), source, false)
			}
		case "srcset":
			c.scanSrcset(val, source)
		case "style":
			c.scanCSS(val, source)
		case "srcdoc":
			// A whole document in an attribute; its absolute links are found as text.
			c.scanBlock(val, source)
		case "http-equiv":
			refresh = tag == "meta" && equalFoldASCII(bytes.TrimFunc(val, isURLSpace), "refresh")
		case "content":
			if tag == "meta" {
				content = val // TagAttr returns a copy, so it outlives the next TagAttr call
			}
		}
	}
	if refresh {
		c.add(refreshURL(content), source, false)
	}
	return tt == html.StartTagToken && tag == "style"
}

// setBase keeps the document's base URL, from its first <base href>, when it is an absolute
// http or https URL. Relative links are resolved against it as the clients that render the
// HTML resolve them: a message can then spell a link in two halves, neither of which is a
// link alone.
func (c *Collector) setBase(val []byte) {
	u, err := url.Parse(string(bytes.TrimFunc(val, isURLSpace)))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return
	}
	c.base = u
}

// resolve returns a relative link resolved against the document's base URL, and anything
// else (an absolute link, or any link when there is no base) as it is.
func (c *Collector) resolve(val []byte) []byte {
	if c.base == nil {
		return val
	}
	ref := bytes.TrimFunc(val, isURLSpace)
	if len(ref) == 0 || ref[0] == '#' || hasScheme(ref) {
		return val
	}
	// Browsers read a backslash in an http(s) reference as a slash, and drop tabs and line
	// breaks: \\evil.example/a is a link to evil.example, not a path under the base.
	clean := strings.Map(func(r rune) rune {
		switch r {
		case '\\':
			return '/'
		case '\t', '\n', '\r':
			return -1
		}
		return r
	}, string(ref))
	u, err := url.Parse(clean)
	if err != nil {
		return val
	}
	return []byte(c.base.ResolveReference(u).String())
}

// hasScheme reports whether a link starts with a URI scheme (RFC 3986 §3.1) and its colon.
func hasScheme(b []byte) bool {
	for i, ch := range b {
		switch {
		case 'a' <= ch && ch <= 'z' || 'A' <= ch && ch <= 'Z':
		case i > 0 && ('0' <= ch && ch <= '9' || ch == '+' || ch == '-' || ch == '.'):
		case i > 0 && ch == ':':
			return true
		default:
			return false
		}
	}
	return false
}

// scanSrcset adds each image candidate URL of a srcset attribute, following the HTML
// standard's parsing: a URL is a run of non-space bytes (commas inside it are part of it),
// and its descriptors run to the next comma outside parentheses.
func (c *Collector) scanSrcset(v []byte, source string) {
	i := 0
	for i < len(v) {
		for i < len(v) && (isHTMLSpace(v[i]) || v[i] == ',') {
			i++
		}
		start := i
		for i < len(v) && !isHTMLSpace(v[i]) {
			i++
		}
		if start == i {
			return
		}
		u := v[start:i]
		if u[len(u)-1] == ',' {
			c.add(c.resolve(bytes.TrimRight(u, ",")), source, false)
			continue
		}
		c.add(c.resolve(u), source, false)
		depth := 0
	descriptors:
		for ; i < len(v); i++ {
			switch v[i] {
			case '(':
				depth++
			case ')':
				if depth > 0 {
					depth--
				}
			case ',':
				if depth == 0 {
					i++
					break descriptors
				}
			}
		}
	}
}

// refreshURL returns the URL of a meta refresh content value such as `0; url='http://...'`.
// It is lenient where browsers are strict (a missing delay), since the target is evidence
// either way.
func refreshURL(content []byte) []byte {
	s := trimLeftHTMLSpace(content)
	i := 0
	for i < len(s) && ('0' <= s[i] && s[i] <= '9' || s[i] == '.') {
		i++
	}
	s = trimLeftHTMLSpace(s[i:])
	if len(s) > 0 && (s[0] == ';' || s[0] == ',') {
		s = trimLeftHTMLSpace(s[1:])
	}
	if len(s) >= 3 && equalFoldASCII(s[:3], "url") {
		if t := trimLeftHTMLSpace(s[3:]); len(t) > 0 && t[0] == '=' {
			s = trimLeftHTMLSpace(t[1:])
		}
	}
	if len(s) > 0 && (s[0] == '"' || s[0] == '\'') {
		if k := bytes.IndexByte(s[1:], s[0]); k >= 0 {
			return s[1 : 1+k]
		}
		return s[1:]
	}
	return s
}

// cssURLValue splits the argument of url( from what follows its closing parenthesis. A quoted
// string ends at its quote or, as CSS has it, at a newline.
func cssURLValue(b []byte) (v, rest []byte) {
	b = trimLeftHTMLSpace(b)
	if len(b) > 0 && (b[0] == '"' || b[0] == '\'') {
		q := b[0]
		for i := 1; i < len(b); i++ {
			switch b[i] {
			case q:
				rest = trimLeftHTMLSpace(b[i+1:])
				if len(rest) > 0 && rest[0] == ')' {
					rest = rest[1:]
				}
				return b[1:i], rest
			case '\n', '\r', '\f':
				return b[1:i], b[i:]
			}
		}
		return b[1:], nil
	}
	if k := bytes.IndexByte(b, ')'); k >= 0 {
		return b[:k], b[k+1:]
	}
	return b, nil
}

func isHTMLSpace(ch byte) bool {
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f'
}

func trimLeftHTMLSpace(b []byte) []byte {
	for len(b) > 0 && isHTMLSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// stickyReader keeps returning the first error its reader gave.
type stickyReader struct {
	r   io.Reader
	err error
}

func (s *stickyReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	s.err = err
	return n, err
}
