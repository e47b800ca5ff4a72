package urls

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxCalendarHead bounds a content line's name and parameters, on top of one URL (a
// parameter such as ALTREP holds one). Past it the line is skipped: no real property needs more.
const maxCalendarHead = 1 << 10

// ScanCalendar reads an iCalendar object (a text/calendar part, RFC 5545) from r and collects
// the links in it: the URI-valued properties (URL, ATTACH and IMAGE unless they hold inline
// BINARY data, CONFERENCE, TZURL, ORGANIZER and ATTENDEE, whose mailto: is recorded), ALTREP
// parameters, the text of DESCRIPTION, LOCATION, SUMMARY and COMMENT as running text, and
// X-ALT-DESC as HTML when its FMTTYPE says so. Content lines are unfolded and text values
// unescaped on the fly, so a long DESCRIPTION streams through the text scanner like a body;
// memory stays bounded by one line head plus the scanners' own bounds. Only a read error from
// r is returned.
func (c *Collector) ScanCalendar(r io.Reader, source string) error {
	u := &unfolder{r: bufio.NewReader(r)}
	headMax := maxCalendarHead + c.opts.MaxURLLength + slack
	var head []byte
	for {
		var ok bool
		head, ok = u.head(head[:0], headMax)
		if u.err != nil {
			return u.readErr()
		}
		if !ok {
			u.skipLine()
			continue
		}
		name, params := splitCalendarHead(head)
		var binary, html bool
		for len(params) > 0 {
			var k, v []byte
			k, v, params = nextCalendarParam(params)
			switch {
			case equalFoldASCII(k, "altrep"):
				c.addLink(v, source)
			case equalFoldASCII(k, "value"):
				binary = equalFoldASCII(v, "binary")
			case equalFoldASCII(k, "encoding"):
				binary = binary || equalFoldASCII(v, "base64")
			case equalFoldASCII(k, "fmttype"):
				html = equalFoldASCII(v, "text/html")
			}
		}
		switch {
		case equalFoldASCII(name, "url"), equalFoldASCII(name, "conference"),
			equalFoldASCII(name, "tzurl"), equalFoldASCII(name, "organizer"),
			equalFoldASCII(name, "attendee"),
			!binary && (equalFoldASCII(name, "attach") || equalFoldASCII(name, "image")):
			// A URI value is not escaped (RFC 5545 §3.3.13). Whatever outruns the longest
			// URL kept is passed over; normalise cuts and reports what it was given.
			v := u.value(head[:0], c.opts.MaxURLLength+slack)
			c.addLink(v, source)
		case equalFoldASCII(name, "description"), equalFoldASCII(name, "location"),
			equalFoldASCII(name, "summary"), equalFoldASCII(name, "comment"),
			equalFoldASCII(name, "x-alt-desc"):
			// textValue never fails: a read error stops it and waits in u.err.
			vr := &textValue{u: u}
			if html && equalFoldASCII(name, "x-alt-desc") {
				_ = c.ScanHTML(vr, source)
			} else {
				_ = c.ScanText(vr, source)
			}
		}
		u.skipLine()
		if u.err != nil {
			return u.readErr()
		}
	}
}

// unfolder reads an iCalendar stream as unfolded content lines: a line break followed by a
// space or tab is removed (RFC 5545 §3.1), CRLF and LF both end a line.
type unfolder struct {
	r   *bufio.Reader
	err error // the first read error, io.EOF included; nothing is read after it
	eol bool  // the current line has ended
}

// next returns the next byte of the current line; ok is false at its end.
func (u *unfolder) next() (b byte, ok bool) {
	for !u.eol && u.err == nil {
		b, err := u.r.ReadByte()
		if err != nil {
			u.err = err
			return 0, false
		}
		if b == '\r' {
			if u.peek() == '\n' {
				continue
			}
			return b, true
		}
		if b != '\n' {
			return b, true
		}
		if p := u.peek(); p == ' ' || p == '\t' {
			_, _ = u.r.ReadByte() // just peeked
			continue
		}
		u.eol = true
	}
	return 0, false
}

// peek returns the next byte without reading it, or 0 at the end of the input. Peek hands a
// read error over once, so it is kept here for the next read to stop at.
func (u *unfolder) peek() byte {
	p, err := u.r.Peek(1)
	if len(p) == 0 {
		u.err = err
		return 0
	}
	return p[0]
}

// head appends the current line's name and parameters to dst, up to the ':' that starts its
// value (a ':' inside a quoted parameter value does not). ok is false for a line with no value
// or a head longer than max.
func (u *unfolder) head(dst []byte, max int) (_ []byte, ok bool) {
	u.eol = false
	quoted := false
	for {
		b, more := u.next()
		if !more {
			return dst, false
		}
		switch {
		case b == '"':
			quoted = !quoted
		case b == ':' && !quoted:
			return dst, true
		}
		if len(dst) >= max {
			return dst, false
		}
		dst = append(dst, b)
	}
}

// value appends up to max bytes of the current line's value to dst, trimmed of white space.
func (u *unfolder) value(dst []byte, max int) []byte {
	for len(dst) < max {
		b, more := u.next()
		if !more {
			break
		}
		dst = append(dst, b)
	}
	return bytes.TrimFunc(dst, isURLSpace)
}

// skipLine passes over the rest of the current line.
func (u *unfolder) skipLine() {
	for {
		if _, more := u.next(); !more {
			return
		}
	}
}

func (u *unfolder) readErr() error {
	if errors.Is(u.err, io.EOF) {
		return nil
	}
	return u.err
}

// textValue reads the current line's value as TEXT (RFC 5545 §3.3.11), unescaped: "\n" and
// "\N" are line breaks, and a backslash before anything else stands for that byte ("\,",
// "\;", "\\"). It ends at the end of the line.
type textValue struct{ u *unfolder }

func (t *textValue) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		b, more := t.u.next()
		if !more {
			break
		}
		if b == '\\' {
			if b, more = t.u.next(); !more {
				break
			}
			if b == 'n' || b == 'N' {
				b = '\n'
			}
		}
		p[n] = b
		n++
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// splitCalendarHead splits a line head into its name and its parameters (after the ';').
func splitCalendarHead(h []byte) (name, params []byte) {
	if k := bytes.IndexByte(h, ';'); k >= 0 {
		return h[:k], h[k+1:]
	}
	return h, nil
}

// nextCalendarParam splits the first "NAME=value" off a parameter list. A quoted value loses
// its quotes and may hold ';'; of a list of values ("a","b") the first is kept.
func nextCalendarParam(ps []byte) (k, v, rest []byte) {
	end := len(ps)
	quoted := false
	for i, b := range ps {
		if b == '"' {
			quoted = !quoted
		} else if b == ';' && !quoted {
			end = i
			break
		}
	}
	p, rest := ps[:end], ps[min(end+1, len(ps)):]
	eq := bytes.IndexByte(p, '=')
	if eq < 0 {
		return p, nil, rest
	}
	k, v = p[:eq], p[eq+1:]
	if len(v) > 0 && v[0] == '"' {
		if q := bytes.IndexByte(v[1:], '"'); q >= 0 {
			v = v[1 : 1+q]
		} else {
			v = v[1:]
		}
	}
	return k, v, rest
}
