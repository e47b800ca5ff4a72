package textfile

import (
	"bytes"
	"strconv"
)

// yEnc (http://www.yenc.org/yenc-draft.1.3.txt): each byte is written as byte+42 mod 256,
// except that NUL, LF, CR and '=' (and, by some encoders, TAB, space and '.') are written as
// '=' followed by byte+42+64. Lines starting with "=y" are keyword lines.

type yHeader struct {
	name        string
	part, total int
	size        int64
	notes       []string
}

// parseYBegin reads "=ybegin [part=N] [total=N] line=N size=N name=NAME". The name runs to
// the end of the line and may hold spaces. A line without name= is not a header.
func parseYBegin(l []byte) (yHeader, bool) {
	h := yHeader{size: -1}
	rest := l[len("=ybegin"):]
	if len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t') {
		return h, false
	}
	named := false
	for len(rest) > 0 {
		rest = rest[skipBlank(rest):]
		if bytes.HasPrefix(rest, []byte("name=")) {
			nb := trimSpace(rest[len("name="):])
			if len(nb) > maxName {
				nb = nb[:maxName]
				h.notes = append(h.notes, "yenc: file name truncated")
			}
			if len(nb) == 0 {
				h.notes = append(h.notes, "yenc: no file name")
			}
			h.name, named = string(nb), true
			break
		}
		var key, val []byte
		key, val, rest = nextParam(rest)
		var err error
		switch string(key) {
		case "size":
			h.size, err = strconv.ParseInt(string(val), 10, 64)
			if err != nil || h.size < 0 {
				h.size = -1
				h.notes = append(h.notes, "yenc: bad size")
			}
		case "part":
			h.part, err = strconv.Atoi(string(val))
			if err != nil || h.part < 1 {
				h.part = 0
				h.notes = append(h.notes, "yenc: bad part")
			}
		case "total":
			h.total, err = strconv.Atoi(string(val))
			if err != nil || h.total < 1 {
				h.total = 0
				h.notes = append(h.notes, "yenc: bad total")
			}
		}
	}
	return h, named
}

// nextParam splits "key=value rest" at the first blank.
func nextParam(b []byte) (key, val, rest []byte) {
	end := bytes.IndexAny(b, " \t")
	if end < 0 {
		end = len(b)
	}
	tok := b[:end]
	key, val, _ = bytes.Cut(tok, []byte("="))
	return key, val, b[end:]
}

// params reads the key=value pairs of a =ypart or =yend line.
func params(l []byte, f func(key, val string)) {
	rest := l
	if i := bytes.IndexAny(rest, " \t"); i >= 0 {
		rest = rest[i:]
	} else {
		return
	}
	for len(rest) > 0 {
		rest = rest[skipBlank(rest):]
		if len(rest) == 0 {
			return
		}
		var k, v []byte
		k, v, rest = nextParam(rest)
		f(string(k), string(v))
	}
}

// keyword reports whether l is the keyword line kw ("=yend", ...).
func keyword(l []byte, kw string) bool {
	return bytes.HasPrefix(l, []byte(kw)) && (len(l) == len(kw) || l[len(kw)] == ' ' || l[len(kw)] == '\t')
}

// yencLine handles a line inside a yEnc block, returning false as uuLine does.
func (s *Scanner) yencLine(l []byte) bool {
	if !bytes.HasPrefix(l, []byte("=y")) {
		s.yencData(l)
		s.yencLineEnd()
		return true
	}
	switch {
	case keyword(l, "=yend"):
		s.yend(l)
	case keyword(l, "=ypart"):
		s.ypart(l)
	case keyword(l, "=ybegin"):
		s.note("yenc: no =yend")
		s.end(false)
		return false
	default:
		s.note("yenc: unknown keyword line")
	}
	return true
}

func (s *Scanner) yencData(seg []byte) {
	if len(seg) > 0 {
		s.yData = true
	}
	for len(seg) > 0 {
		dst := s.room(min(len(seg), outSize))
		n, i := 0, 0
		for i < len(seg) && n < len(dst) {
			if s.esc {
				dst[n] = seg[i] - 64 - 42
				n, i, s.esc = n+1, i+1, false
				continue
			}
			// Escapes are rare (4 bytes in 256): copy the run up to the next one.
			run := seg[i:min(len(seg), i+len(dst)-n)]
			if e := bytes.IndexByte(run, '='); e >= 0 {
				run = run[:e]
				s.esc = true
				i++ // the '='
			}
			d := dst[n : n+len(run)]
			for k, c := range run {
				d[k] = c - 42
			}
			n += len(run)
			i += len(run)
		}
		s.emitted(n)
		seg = seg[i:]
	}
}

func (s *Scanner) yencLineEnd() {
	if s.esc {
		s.note("yenc: escape at end of line")
		s.esc = false
	}
}

func (s *Scanner) ypart(l []byte) {
	if !s.yPart {
		s.note("yenc: =ypart without part=")
	}
	if s.yData {
		s.note("yenc: =ypart after data")
	}
	s.yPart = false // seen
	params(l, func(k, v string) {
		n, err := strconv.ParseInt(v, 10, 64)
		switch k {
		case "begin":
			if err != nil || n < 1 {
				s.note("yenc: bad =ypart begin")
				return
			}
			s.blk.Offset = n - 1
		case "end":
			if err != nil || n < 1 {
				s.note("yenc: bad =ypart end")
				return
			}
			s.yEnd = n
		}
	})
}

// yend checks the trailer against what was decoded and ends the block.
func (s *Scanner) yend(l []byte) {
	if s.yPart {
		s.note("yenc: no =ypart line")
	}
	crc := s.crc
	// The part's own checksum is pcrc32; crc32 is the whole file's, so it can only be
	// checked when this block is the whole file.
	whole := s.blk.Part == 0 || (s.blk.Total == 1 && s.blk.Offset == 0)
	checkCRC := func(v, what string) {
		want, err := strconv.ParseUint(v, 16, 32)
		switch {
		case err != nil:
			s.note("yenc: bad " + what)
		case uint32(want) != crc:
			s.note("yenc: " + what + " mismatch")
		}
	}
	params(l, func(k, v string) {
		switch k {
		case "size":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n != s.blk.Size {
				s.note("yenc: size mismatch")
			}
		case "part":
			if n, err := strconv.Atoi(v); err != nil || n != s.blk.Part {
				s.note("yenc: part mismatch")
			}
		case "pcrc32":
			checkCRC(v, "pcrc32")
		case "crc32":
			if whole {
				checkCRC(v, "crc32")
			}
		}
	})
	if whole && s.blk.FileSize >= 0 && s.blk.FileSize != s.blk.Size {
		s.note("yenc: size mismatch")
	}
	if s.blk.Part > 0 && s.yEnd > 0 && s.yEnd-s.blk.Offset != s.blk.Size {
		s.note("yenc: part size mismatch")
	}
	s.end(true)
}
