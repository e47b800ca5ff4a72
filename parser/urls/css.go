package urls

import (
	"bytes"
	"io"
)

// ScanCSS reads a style sheet (a text/css part) from r and collects its links as an HTML
// <style> element's are: url(...) values, @import strings, and absolute links anywhere else
// in the text, comments included. Memory stays bounded as in ScanText: the sheet is cut into
// pieces at a declaration or rule end, or at a line end, and a piece that runs on without one
// is cut once it holds more than two URLs' worth past the chunk. Only a read error from r is
// returned.
func (c *Collector) ScanCSS(r io.Reader, source string) error {
	buf := c.buf[:0]
	for {
		var err error
		buf, err = c.readMore(r, buf)
		if err != nil {
			c.scanCSS(buf, source)
			if err == io.EOF {
				return nil
			}
			return err
		}
		cut := cssCut(buf, c.opts.MaxURLLength+slack)
		c.scanCSS(buf[:cut], source)
		buf = buf[:copy(buf, buf[cut:])]
	}
}

// cssCut returns where b can be split without splitting a url() or @import value: after its
// last '}', ';' or line end. A quoted value can hold any of them, so the cut can still land
// inside one; that costs one link, not memory. With none in the last keep bytes, b is cut
// keep bytes from its end, so that the carried tail never outgrows one URL.
func cssCut(b []byte, keep int) int {
	if k := bytes.LastIndexAny(b, "};\n"); k >= 0 && len(b)-(k+1) <= keep {
		return k + 1
	}
	return max(len(b)-keep, 0)
}

// scanCSS adds the targets of CSS url(...) values, quoted or not, and of @import strings, and
// scans the rest of the style sheet as text (which finds links in comments). Each byte is
// looked at by one of the two, so a link is counted once.
func (c *Collector) scanCSS(b []byte, source string) {
	for {
		k, imp := indexCSSLink(b)
		if k < 0 {
			break
		}
		c.scanBlock(b[:k], source)
		var v []byte
		if imp {
			v, b = cssImportValue(b[k+len("@import"):])
		} else {
			v, b = cssURLValue(b[k+len("url("):])
		}
		// An @import's relative or protocol-relative target is a link too; add keeps only
		// what it can resolve.
		c.add(v, source, false)
	}
	c.scanBlock(b, source)
}

// indexCSSLink finds the first "url(" or `@import "` / "@import '" in any case, in one pass.
// imp says it is an @import with a string; "@import url(" is found as the url( it holds.
func indexCSSLink(b []byte) (k int, imp bool) {
	for i := 0; i < len(b); {
		j := bytes.IndexAny(b[i:], "(@")
		if j < 0 {
			return -1, false
		}
		j += i
		if b[j] == '(' {
			if j >= 3 && equalFoldASCII(b[j-3:j], "url") {
				return j - 3, false
			}
		} else if len(b)-j > len("@import") && equalFoldASCII(b[j+1:j+len("@import")], "import") {
			rest := trimLeftHTMLSpace(b[j+len("@import"):])
			if len(rest) > 0 && (rest[0] == '"' || rest[0] == '\'') {
				return j, true
			}
		}
		i = j + 1
	}
	return -1, false
}

// cssImportValue splits the string after "@import" from what follows it. A string ends at
// its quote or, as CSS has it, at a newline.
func cssImportValue(b []byte) (v, rest []byte) {
	b = trimLeftHTMLSpace(b)
	q := b[0]
	for i := 1; i < len(b); i++ {
		switch b[i] {
		case q:
			return b[1:i], b[i+1:]
		case '\n', '\r', '\f':
			return b[1:i], b[i:]
		}
	}
	return b[1:], nil
}
