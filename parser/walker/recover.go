package walker

import (
	"bytes"
	"strconv"
	"strings"
)

// maxPrefix bounds how far into a multipart's body the walker looks for the boundary that is
// really used. The look is a peek at the scanner's buffer, so it also never goes past
// Options.BufferSize, and one buffer serves every open multipart.
const maxPrefix = 64 << 10

// maxMissedLook bounds the bytes per message that look-aheads which missed the wanted
// delimiter may scan. Nested multiparts that each miss can look over the same bytes again,
// once per level; without a budget a small message could cost MaxDepth full prefixes.
const maxMissedLook = 16 * maxPrefix

// prefixResult is what the start of a multipart's body says about its boundaries.
type prefixResult struct {
	found    int    // index of the wanted boundary whose delimiter line came first; -1 if none
	cand     []byte // a boundary the body really uses, when found is -1
	closer   []byte // a second token whose closing line ends the multipart opened by cand
	complete bool   // the multipart's end (or the input's) was in view: nothing past it can decide
}

// lookAhead reads the start of what is left of the input, without consuming it, for the
// delimiter lines of the wanted boundaries. Failing those, it looks for a line that is used
// as one: "--" and a token, repeated or followed by its closing "--token--" line.
//
// It starts small and doubles: in nearly every message the declared delimiter is the first
// or second line of the body, and growing the scanner's buffer for each multipart cost the
// small-message path its point of starting small.
func (w *Walker) lookAhead(want [][]byte) prefixResult {
	if w.missedLook >= maxMissedLook {
		return prefixResult{found: -1}
	}
	limit := min(maxPrefix, w.opts.BufferSize)
	for n := min(scannerStart, limit); ; n = min(2*n, limit) {
		data := w.sc.peek(n)
		eof := w.sc.err != nil && w.sc.start+len(data) == w.sc.end
		// Candidates are only counted once the wanted delimiters are known to be missing:
		// the common case then costs no map. A candidate alone does not end the look, as
		// the declared delimiter may still come within the prefix, and then it wins.
		r := w.scanPrefix(want, data, eof, false)
		if r.found >= 0 {
			return r
		}
		if r.complete || eof || n >= limit || len(data) < n {
			w.missedLook += len(data)
			r = w.scanPrefix(want, data, eof, true)
			r.complete = r.complete || eof
			return r
		}
	}
}

type candidate struct {
	opens, closes int
	first         int  // order of its first delimiter line
	opened        int  // line number of its first opening line; 0 if none
	closed        int  // line number of its first closing line; 0 if none
	headed        bool // its first opening line is followed by a header field
}

func (w *Walker) scanPrefix(want [][]byte, data []byte, eof, count bool) prefixResult {
	r := prefixResult{found: -1}
	var cands map[string]*candidate
	order, lineNo := 0, 0
	var headOf *candidate // the candidate whose first opening line came just before
	line := w.pending
	has := w.hasPending
	for {
		if !has {
			if len(data) == 0 {
				break
			}
			i := bytes.IndexAny(data, "\r\n")
			if i < 0 {
				if !eof {
					break // cut short by the peek
				}
				i = len(data)
			}
			line = data[:i]
			if i+1 < len(data) && data[i] == '\r' && data[i+1] == '\n' {
				i++ // one line end, so that the line after a delimiter is its part's first
			}
			data = data[min(i+1, len(data)):]
		}
		has = false
		lineNo++
		if headOf != nil {
			i := bytes.IndexByte(line, ':')
			headOf.headed = i > 0 && validFieldName(line[:i])
			headOf = nil
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) < 3 || line[0] != '-' || line[1] != '-' {
			continue
		}
		rest := line[2:]
		for k, b := range want {
			if bytes.Equal(rest, b) || (len(rest) == len(b)+2 && bytes.HasPrefix(rest, b) && bytes.HasSuffix(rest, []byte("--"))) {
				r.found = k
				return r
			}
		}
		if i, _ := w.matchBoundary(line); i >= 0 {
			// An enclosing multipart's delimiter: this one has ended.
			r.complete = true
			break
		}
		if !count {
			continue
		}
		tok, closing := rest, false
		if len(rest) > 2 && bytes.HasSuffix(rest, []byte("--")) {
			tok, closing = rest[:len(rest)-2], true
		}
		if !plausibleBoundary(tok) {
			continue
		}
		if cands == nil {
			cands = map[string]*candidate{}
		}
		c := cands[string(tok)]
		if c == nil {
			c = &candidate{first: order}
			order++
			cands[string(tok)] = c
		}
		if closing {
			if c.closes++; c.closes == 1 {
				c.closed = lineNo
			}
		} else {
			if c.opens++; c.opens == 1 {
				c.opened = lineNo
				headOf = c
			}
		}
	}
	best := -1
	for tok, c := range cands {
		if (c.opens >= 2 || c.opens >= 1 && c.closes >= 1) && (best < 0 || c.first < best) {
			best, r.cand = c.first, []byte(tok)
		}
	}
	if r.cand == nil && (eof || r.complete) {
		r.cand, r.closer = openedAndClosedApart(cands)
	}
	return r
}

// openedAndClosedApart finds a multipart whose one part was opened with one token and
// closed with another ("--A", a header, ..., "--B--"): mailers that make up a boundary for
// each line they write produce it. Neither token repeats, so the rule above sees nothing,
// and walking by the declared boundary hides the part and its links. It is only trusted
// when the whole multipart was in view and it is the only reading: exactly one token
// opens, once, on the line before a header field; exactly one other token closes, once,
// after it, and never opens. Tokens with a space are refused: PGP armour
// ("-----BEGIN PGP MESSAGE-----") and forwarding rules are delimiter-shaped, and no
// mailer's generated boundary has one.
func openedAndClosedApart(cands map[string]*candidate) (open, closer []byte) {
	var o, c *candidate
	var otok, ctok string
	for tok, k := range cands {
		if k.opens > 0 {
			if o != nil {
				return nil, nil
			}
			o, otok = k, tok
		}
		if k.closes > 0 {
			if c != nil {
				return nil, nil
			}
			c, ctok = k, tok
		}
	}
	if o == nil || c == nil || o == c || o.opens != 1 || !o.headed || c.closes != 1 || c.closed < o.opened ||
		strings.ContainsRune(otok, ' ') || strings.ContainsRune(ctok, ' ') {
		return nil, nil
	}
	return []byte(otok), []byte(ctok)
}

// plausibleBoundary reports whether tok can be a boundary (RFC 2046 §5.1.1 bchars, 1 to 70 of
// them, not ending in a space) that some mailer generated: it must hold a letter or a digit,
// or rules of dashes and underscores in a text part would pass for one.
func plausibleBoundary(tok []byte) bool {
	if len(tok) == 0 || len(tok) > 70 || tok[len(tok)-1] == ' ' {
		return false
	}
	alnum := false
	for _, c := range tok {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			alnum = true
		case strings.IndexByte("'()+_,-./:=? ", c) >= 0:
		default:
			return false
		}
	}
	return alnum
}

// pickContentType chooses among repeated Content-Type fields: the first, unless its boundary
// does not occur and another's does. Mailers that add a Content-Type without removing the
// old one leave the one that describes the body anywhere in the header.
func (w *Walker) pickContentType(cts []string, path string) string {
	var want [][]byte
	var idx []int
	for i, ct := range cts {
		mt, params, _ := ParseMediaType(ct)
		b := strings.TrimRight(params["boundary"], " \t")
		if strings.HasPrefix(mt, "multipart/") && b != "" {
			want = append(want, []byte(b))
			idx = append(idx, i)
		}
	}
	if len(want) == 0 {
		return cts[0]
	}
	r := w.lookAhead(want)
	if r.found < 0 || idx[r.found] == 0 {
		return cts[0]
	}
	i := idx[r.found]
	mt, _, _ := ParseMediaType(cts[i])
	w.report(AnomalyDuplicateContentType, path, "used Content-Type "+strconv.Itoa(i+1)+" of "+strconv.Itoa(len(cts))+
		" ("+mt+"), whose boundary occurs; the first one's does not")
	return cts[i]
}

// recoverBoundary returns the boundary to walk a multipart by: the declared one, unless it
// does not occur in the start of the body and another is used there instead. closer, when
// not nil, is a second token whose closing line also ends the multipart.
func (w *Walker) recoverBoundary(declared []byte, path string) (boundary, closer []byte) {
	r := w.lookAhead([][]byte{declared})
	switch {
	case r.found >= 0:
	case r.cand != nil:
		detail := "declared " + strconv.Quote(string(declared)) + ", used " + strconv.Quote(string(r.cand))
		if r.closer != nil {
			detail += ", closed by " + strconv.Quote(string(r.closer))
		}
		w.report(AnomalyBoundaryRecovered, path, detail)
		return r.cand, r.closer
	case !r.complete:
		// Neither found nor ruled out within the prefix: walked as declared, as before.
		w.limit(LimitBoundaryPrefix)
	}
	return declared, nil
}

// repeated reports whether h has more than one field named name. Unlike Values it does not
// allocate, and it runs for every entity.
func repeated(h *Header, name string) bool {
	n := 0
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			if n++; n > 1 {
				return true
			}
		}
	}
	return false
}
