package archive

import (
	"bytes"
	"cmp"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// maxNameBytes caps a stored member name. Names may be 64 KiB long, and MaxMembers of them
// would be more memory than a listing deserves; comparisons use a hash of the whole name.
const maxNameBytes = 1024

// central is one central directory entry (APPNOTE 4.3.12).
type central struct {
	name         string
	nameIssue    Anomaly
	nameSum      uint64
	nameLen      int
	flags        uint16
	method       uint16
	crc          uint32
	csize, usize int64 // -1 unknown
	offset       int64 // of the local header, from the start of the archive; -1 unknown
	encrypted    bool
	dir          bool
}

// centralDir is a run of central directory entries.
type centralDir struct {
	pos     int64 // stream offset of the first entry
	entries []central
	count   int // entries read, including those past MaxMembers that were not kept
}

// eocdRec is what an End Of Central Directory record (or its ZIP64 version) says.
type eocdRec struct {
	pos      int64 // stream offset of the record; the central directory ends there
	entries  uint64
	cdSize   uint64
	cdOffset uint64
}

func (e *eocdRec) saturated() bool {
	return e.entries == 0xffff || e.cdSize == max32 || e.cdOffset == max32
}

// readCentral reads central directory entries from s until something else starts.
func (l *lister) readCentral(lv *level, s *src) *centralDir {
	cd := &centralDir{pos: s.pos}
	for {
		w := s.window(centralLen)
		if len(w) < 4 || le32(w) != sigCentral {
			break
		}
		at := s.pos
		if len(w) < centralLen {
			l.anomaly(lv.path, AnomalyTruncated, fmt.Sprintf("central directory entry at offset %d cut short", at))
			s.advance(len(w))
			break
		}
		c := central{flags: le16(w[8:]), method: le16(w[10:]), crc: le32(w[16:])}
		csize32, usize32 := le32(w[20:]), le32(w[24:])
		nameLen, extraLen, commentLen := int(le16(w[28:])), int(le16(w[30:])), int64(le16(w[32:]))
		extAttr, off32 := le32(w[38:]), le32(w[42:])
		s.advance(centralLen)
		raw := l.read(s, nameLen+extraLen)
		if raw == nil || s.skip(commentLen) < commentLen {
			l.anomaly(lv.path, AnomalyTruncated, fmt.Sprintf("central directory entry at offset %d cut short", at))
			break
		}
		x := parseExtra(raw[nameLen:])
		// Only the saturated fields are in the ZIP64 extra field, in this order (APPNOTE 4.5.3).
		vals := x.zip64[:x.n64]
		c.usize, c.csize, c.offset = int64(usize32), int64(csize32), int64(off32)
		if usize32 == max32 {
			c.usize = pop(&vals)
		}
		if csize32 == max32 {
			c.csize = pop(&vals)
		}
		if off32 == max32 {
			c.offset = pop(&vals)
		}
		if c.usize < 0 || c.csize < 0 || c.offset < 0 {
			l.anomaly(lv.path, AnomalyBadZip64, fmt.Sprintf("central directory entry at offset %d: ZIP64 fields missing or out of range", at))
		}
		c.name, c.nameIssue = decodeName(raw[:nameLen], c.flags, x)
		c.nameSum, c.nameLen = nameSum(raw[:nameLen]), nameLen
		c.encrypted = c.flags&(flagEncrypted|flagStrong) != 0 || c.method == methodAES || x.aes
		c.dir = strings.HasSuffix(c.name, "/") || extAttr&0x10 != 0 // MS-DOS directory attribute
		cd.count++
		if len(cd.entries) < l.opts.MaxMembers {
			cd.entries = append(cd.entries, c)
		}
	}
	return cd
}

// streamEOCD reads an End Of Central Directory record met by the forward pass.
func (l *lister) streamEOCD(lv *level) {
	s := lv.s
	w := s.window(eocdLen)
	if len(w) < eocdLen {
		l.anomaly(lv.path, AnomalyTruncated, fmt.Sprintf("end of central directory record at offset %d cut short", s.pos))
		s.advance(len(w))
		return
	}
	e := parseEOCD(w, s.pos)
	comment := int64(le16(w[20:]))
	s.advance(eocdLen)
	s.skip(comment)
	if e.saturated() && lv.z64 != nil {
		e = lv.z64
	}
	lv.eocd, lv.z64, lv.sawEnd = e, nil, true
}

func parseEOCD(w []byte, pos int64) *eocdRec {
	return &eocdRec{pos: pos, entries: uint64(le16(w[10:])), cdSize: uint64(le32(w[12:])), cdOffset: uint64(le32(w[16:]))}
}

func parseZip64EOCD(w []byte, pos int64) *eocdRec {
	return &eocdRec{pos: pos, entries: le64(w[32:]), cdSize: le64(w[40:]), cdOffset: le64(w[48:])}
}

// streamZip64EOCD reads a ZIP64 End Of Central Directory record met by the forward pass.
func (l *lister) streamZip64EOCD(lv *level) {
	s := lv.s
	w := s.window(zip64EOCDLen)
	if len(w) < zip64EOCDLen {
		l.anomaly(lv.path, AnomalyTruncated, fmt.Sprintf("zip64 end of central directory record at offset %d cut short", s.pos))
		s.advance(len(w))
		return
	}
	lv.z64 = parseZip64EOCD(w, s.pos)
	rest := le64(w[4:]) // the record's size, less its first 12 bytes
	s.advance(zip64EOCDLen)
	if rest > zip64EOCDLen-12 {
		s.skip(size(rest - (zip64EOCDLen - 12)))
	}
}

// findEOCD finds the last End Of Central Directory record in the tail window t (which starts
// at stream offset start), as extractors do, and follows it to its ZIP64 record when it has
// one. problem says what did not add up.
func findEOCD(t []byte, start int64) (e *eocdRec, problem string) {
	lo := max(0, len(t)-(eocdLen+0xffff))
	end := len(t)
	sig := []byte{'P', 'K', 5, 6}
	for {
		i := bytes.LastIndex(t[lo:end], sig)
		if i < 0 {
			return nil, ""
		}
		i += lo
		end = i + 3
		if i+eocdLen > len(t) || i+eocdLen+int(le16(t[i+20:])) > len(t) {
			continue // its comment would run past the end: a signature inside some data
		}
		e = parseEOCD(t[i:], start+int64(i))
		loc := i - zip64LocatorLen
		if loc < 0 || le32(t[loc:]) != sigZip64Locator {
			if e.saturated() {
				problem = "saturated fields but no zip64 locator"
			}
			return e, problem
		}
		// The locator gives the record's offset from the start of the archive; the record
		// also normally sits right before the locator.
		for _, at := range []int64{size(le64(t[loc+8:])) - start, int64(loc - zip64EOCDLen)} {
			if at >= 0 && at+zip64EOCDLen <= int64(loc) && le32(t[at:]) == sigZip64EOCD {
				return parseZip64EOCD(t[at:], start+at), ""
			}
		}
		return e, "zip64 locator points to no zip64 end record"
	}
}

// finish reads the central directory at the end of the archive and merges it with what the
// forward pass saw.
func (l *lister) finish(lv *level) {
	defer l.names(lv)
	s := lv.s
	cut := s.err != nil // the member holding this archive was cut short; it says so itself
	tail, tstart := lv.tail.bytes()
	l.bufs[lv.depth].tail = tail // reuse the window's memory for the next archive at this depth
	e, problem := findEOCD(tail, tstart)
	if problem != "" {
		l.anomaly(lv.path, AnomalyBadEOCD, problem)
	}
	if e == nil {
		e = lv.eocd
	}
	if e == nil {
		switch {
		case lv.cd != nil:
			if !cut {
				l.anomaly(lv.path, AnomalyEOCDMissing, "no end of central directory record")
			}
			l.merge(lv, lv.cd, 0)
		case !cut && (lv.n > 0 || lv.unlisted > 0):
			l.anomaly(lv.path, AnomalyCentralDirectoryMissing, "no central directory: the archive is cut short or lost its end")
			l.unlisted(lv, 0)
		default:
			l.unlisted(lv, 0)
		}
		return
	}
	cdSize := size(e.cdSize)
	cdStart := e.pos - cdSize
	base := cdStart - size(e.cdOffset)
	if cdSize < 0 || cdStart < 0 || base < 0 || e.cdOffset > uint64(e.pos) {
		l.anomaly(lv.path, AnomalyBadEOCD, fmt.Sprintf("central directory of %d bytes at offset %d does not fit before the end record at %d", e.cdSize, e.cdOffset, e.pos))
		cdStart, base = size(e.cdOffset), 0
		cdSize = max(e.pos-cdStart, 0)
	}
	if base > 0 {
		l.anomaly(lv.path, AnomalyPrependedData, fmt.Sprintf("the archive's offsets start at stream offset %d", base))
	}
	var cd *centralDir
	tend := tstart + int64(len(tail))
	switch {
	case lv.cd != nil && lv.cd.pos == cdStart:
		cd = lv.cd
	case cdStart >= tstart && cdStart+cdSize <= tend && cdStart >= 0:
		cs := newSrc(bytes.NewReader(tail[cdStart-tstart:cdStart-tstart+cdSize]), cdStart, nil)
		cd = l.readCentral(lv, cs)
		if lv.cd != nil {
			l.anomaly(lv.path, AnomalyCentralDirectoryMismatch, fmt.Sprintf("the end record points to offset %d, the stream had one at %d", cdStart, lv.cd.pos))
		}
	case lv.cd != nil:
		l.anomaly(lv.path, AnomalyCentralDirectoryMismatch, fmt.Sprintf("the end record points to offset %d, the stream had one at %d", cdStart, lv.cd.pos))
		cd = lv.cd
		base = max(cd.pos-size(e.cdOffset), 0)
	default:
		l.anomaly(lv.path, AnomalyCentralDirectoryUnread, fmt.Sprintf("%d bytes at offset %d, outside the %d-byte tail window", cdSize, cdStart, l.opts.TailBytes))
		l.unlisted(lv, 0)
		return
	}
	if uint64(cd.count) != e.entries {
		l.anomaly(lv.path, AnomalyEntryCountMismatch, fmt.Sprintf("end record says %d entries, central directory has %d", e.entries, cd.count))
	}
	l.merge(lv, cd, base)
}

// unlisted adds this archive's members that went unlisted for MaxMembers: central entries
// and local headers are two counts of the same members, so the larger one counts.
func (l *lister) unlisted(lv *level, central int) {
	l.res.Unlisted += max(lv.unlisted, central)
}

// merge matches central directory entries with local headers by offset. The central
// directory is authoritative; members found in only one of the two are still listed.
func (l *lister) merge(lv *level, cd *centralDir, base int64) {
	claimed := make(map[int64]bool, len(cd.entries))
	unlisted := cd.count - len(cd.entries)
	overlap := 0
	for i := range cd.entries {
		c := &cd.entries[i]
		at := base + c.offset
		rec, ok := lv.locals[at]
		if ok && !claimed[at] {
			claimed[at] = true
			l.reconcile(rec, c)
			continue
		}
		if ok {
			overlap++ // a second entry for the same local header
		}
		idx := l.add(lv, Member{
			Name: c.name, Size: c.usize, CompressedSize: c.csize, Method: c.method,
			Encrypted: c.encrypted, Dir: c.dir, central: true, nameIssue: c.nameIssue,
		})
		if idx < 0 {
			unlisted++
			continue
		}
		if !ok {
			l.anomaly(l.res.Members[idx].Path, AnomalyCentralOnly, fmt.Sprintf("no local header seen at offset %d", at))
		}
	}
	l.unlisted(lv, unlisted)
	for _, at := range lv.order {
		if !claimed[at] {
			l.anomaly(l.res.Members[lv.locals[at].idx].Path, AnomalyLocalOnly, fmt.Sprintf("local header at offset %d is not in the central directory", at))
		}
	}
	// Entries whose data overlaps are how the densest zip bombs reuse one deflate stream
	// for many members.
	type span struct{ at, end int64 }
	spans := make([]span, 0, len(cd.entries))
	for _, c := range cd.entries {
		if c.csize >= 0 && c.offset >= 0 {
			spans = append(spans, span{base + c.offset, base + c.offset + localLen + int64(c.nameLen) + c.csize})
		}
	}
	slices.SortFunc(spans, func(a, b span) int { return cmp.Compare(a.at, b.at) })
	var reach int64 = -1
	for i, sp := range spans {
		if i > 0 && sp.at < reach {
			overlap++
		}
		reach = max(reach, sp.end)
	}
	if overlap > 0 {
		l.anomaly(lv.path, AnomalyOverlappingEntries, fmt.Sprintf("%d central directory entries overlap another entry", overlap))
	}
}

// reconcile merges a central directory entry into the member its local header made.
func (l *lister) reconcile(rec *localRec, c *central) {
	m := &l.res.Members[rec.idx]
	m.central = true
	if rec.nameSum != c.nameSum || rec.nameLen != c.nameLen {
		l.anomaly(m.Path, AnomalyNameMismatch, fmt.Sprintf("local header %q, central directory %q", clip(m.Name), clip(c.name)))
	}
	var diff []string
	if rec.method != c.method {
		diff = append(diff, fmt.Sprintf("method %d/%d", rec.method, c.method))
	}
	if m.Encrypted != c.encrypted {
		diff = append(diff, fmt.Sprintf("encrypted %t/%t", m.Encrypted, c.encrypted))
	}
	if rec.crcKnown && rec.crc != c.crc {
		diff = append(diff, fmt.Sprintf("crc %08x/%08x", rec.crc, c.crc))
	}
	if rec.csize >= 0 && c.csize >= 0 && rec.csize != c.csize {
		diff = append(diff, fmt.Sprintf("compressed size %d/%d", rec.csize, c.csize))
	}
	if rec.usize >= 0 && c.usize >= 0 && rec.usize != c.usize {
		diff = append(diff, fmt.Sprintf("size %d/%d", rec.usize, c.usize))
	}
	if len(diff) > 0 {
		l.anomaly(m.Path, AnomalyHeaderMismatch, "local/central: "+strings.Join(diff, ", "))
	}
	m.Name, m.nameIssue = c.name, c.nameIssue
	m.Method, m.Encrypted, m.Dir = c.method, c.encrypted, c.dir || m.Dir
	if c.csize >= 0 {
		m.CompressedSize = c.csize
	}
	if !m.Hashed && c.usize >= 0 {
		m.Size = c.usize
	}
}

// names reports what is wrong with this archive's final member names.
func (l *lister) names(lv *level) {
	for _, idx := range lv.members {
		m := &l.res.Members[idx]
		if m.nameIssue.Code != "" {
			l.anomaly(m.Path, m.nameIssue.Code, m.nameIssue.Detail)
		}
		if unsafeName(m.Name) {
			l.anomaly(m.Path, AnomalyUnsafeName, clip(m.Name))
		}
	}
}

// unsafeName reports names that would write outside the extraction directory.
func unsafeName(name string) bool {
	n := strings.ReplaceAll(name, `\`, "/")
	if strings.HasPrefix(n, "/") || len(n) >= 2 && n[1] == ':' {
		return true
	}
	for seg := range strings.SplitSeq(n, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

func clip(s string) string {
	const n = 200
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}

// extraInfo is what List uses from a header's extra fields (APPNOTE 4.5).
type extraInfo struct {
	zip64   [4]uint64 // ZIP64 extended information (0x0001), in field order
	n64     int
	aes     bool // WinZip AES (0x9901)
	upath   string
	upathOK bool   // an Info-ZIP Unicode Path field (0x7075) was found
	upCRC   uint32 // CRC-32 of the header name it stands for
}

func parseExtra(b []byte) extraInfo {
	var x extraInfo
	seen64 := false
	for len(b) >= 4 {
		id, n := le16(b), int(le16(b[2:]))
		b = b[4:]
		if n > len(b) {
			break
		}
		data := b[:n]
		b = b[n:]
		switch id {
		case 0x0001:
			if seen64 {
				continue
			}
			seen64 = true
			for len(data) >= 8 && x.n64 < len(x.zip64) {
				x.zip64[x.n64] = le64(data)
				x.n64++
				data = data[8:]
			}
		case 0x9901:
			x.aes = true
		case 0x7075:
			if len(data) >= 5 && data[0] == 1 && !x.upathOK {
				x.upCRC, x.upath, x.upathOK = le32(data[1:]), string(data[5:min(len(data), 5+maxNameBytes)]), true
			}
		}
	}
	return x
}

// decodeName decodes a header's name: UTF-8 when flag bit 11 says so, else IBM code page 437
// (APPNOTE appendix D), unless an Info-ZIP Unicode Path field vouches for a UTF-8 version.
func decodeName(raw []byte, flags uint16, x extraInfo) (string, Anomaly) {
	var issue Anomaly
	var name string
	switch {
	case x.upathOK && x.upCRC == crc32.ChecksumIEEE(raw) && utf8.ValidString(x.upath):
		name = x.upath
	case flags&flagUTF8 != 0:
		name = string(raw)
		if !utf8.ValidString(name) {
			name = strings.ToValidUTF8(name, "\uFFFD")
			issue = Anomaly{Code: AnomalyBadUTF8Name, Detail: "name flagged UTF-8 is not"}
		}
	default:
		ascii := true
		for _, c := range raw {
			if c >= utf8.RuneSelf {
				ascii = false
				break
			}
		}
		if ascii {
			name = string(raw)
		} else {
			var b strings.Builder
			for _, c := range raw[:min(len(raw), maxNameBytes)] {
				b.WriteRune(charmap.CodePage437.DecodeByte(c))
			}
			name = b.String()
		}
	}
	if len(raw) > maxNameBytes {
		if len(name) > maxNameBytes {
			i := maxNameBytes
			for i > 0 && !utf8.RuneStart(name[i]) {
				i--
			}
			name = name[:i]
		}
		issue = Anomaly{Code: AnomalyLongName, Detail: fmt.Sprintf("name of %d bytes cut to %d", len(raw), len(name))}
	}
	return name, issue
}

// nameSum identifies a raw name, so names cut to maxNameBytes still compare in full.
func nameSum(raw []byte) uint64 {
	h := fnv.New64a()
	h.Write(raw)
	return h.Sum64()
}
