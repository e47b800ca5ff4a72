package archive

import (
	"bytes"
	"compress/flate"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"strconv"
)

// Record signatures and fixed lengths (APPNOTE.TXT 6.3.10, sections 4.3.7 to 4.3.16).
const (
	sigLocal        = 0x04034b50
	sigCentral      = 0x02014b50
	sigEOCD         = 0x06054b50
	sigZip64EOCD    = 0x06064b50
	sigZip64Locator = 0x07064b50
	sigDescriptor   = 0x08074b50
	sigSpanned      = 0x30304b50 // "PK00": a split archive that turned out to need one part

	localLen        = 30
	centralLen      = 46
	eocdLen         = 22
	zip64LocatorLen = 20
	zip64EOCDLen    = 56
	descMaxLen      = 24 // signature, CRC-32 and two 8-byte sizes

	flagEncrypted  = 1 << 0
	flagDescriptor = 1 << 3
	flagStrong     = 1 << 6
	flagUTF8       = 1 << 11

	methodStore   = 0
	methodDeflate = 8
	methodAES     = 99

	max32 = 0xffffffff
)

// lister is the state of one List call.
type lister struct {
	opts    Options
	budget  *Budget
	res     *Result
	scratch []byte                     // a header's name and extra fields
	copyBuf []byte                     // draining
	bufs    [maxDepthCap + 1]levelBufs // reused by successive archives at the same depth
}

// levelBufs are the buffers of one nesting depth: only one archive per depth is open at a
// time, so a zip of many small zips does not allocate a window per member.
type levelBufs struct {
	src      []byte
	tail     []byte
	head     []byte
	inflater io.ReadCloser
}

// level is one archive being read: the outer one, or a member being listed as an archive.
type level struct {
	s        *src
	tail     *ring
	depth    int    // Depth of this archive's members
	parent   int    // index of the member holding this archive, -1 for the outer one
	path     string // that member's path, "" for the outer one
	n        int    // members numbered so far
	members  []int  // indices in Result.Members of this archive's members
	locals   map[int64]*localRec
	order    []int64     // offsets of listed local headers, in stream order
	cd       *centralDir // the last central directory met in the stream
	eocd     *eocdRec    // the last End Of Central Directory record met in the stream
	z64      *eocdRec    // a ZIP64 end record met in the stream, waiting for its EOCD
	sawEnd   bool        // an EOCD was met: what follows is trailing data
	unlisted int         // local headers past MaxMembers
}

// localRec is what a local header (and data descriptor) declared, kept to compare with the
// central directory.
type localRec struct {
	idx          int
	nameSum      uint64
	nameLen      int
	flags        uint16
	method       uint16
	crc          uint32
	crcKnown     bool
	csize, usize int64
}

// entry is the member whose data the forward pass is reading.
type entry struct {
	at        int64 // local header offset
	dataStart int64
	flags     uint16
	method    uint16
	crc       uint32
	csize     int64 // -1 unknown
	usize     int64 // -1 unknown
	zip64     bool
	desc      bool // a data descriptor follows the data
	encrypted bool
	dir       bool
}

func (l *lister) newLevel(r io.Reader, depth, parent int, path string) *level {
	b := &l.bufs[depth]
	if b.src == nil {
		b.src = make([]byte, srcBufSize)
		b.head = make([]byte, HeadBytes)
	}
	t := &ring{b: b.tail[:0], max: l.opts.TailBytes}
	s := &src{r: r, buf: b.src, tail: t}
	return &level{s: s, tail: t, depth: depth, parent: parent, path: path, locals: map[int64]*localRec{}}
}

func (l *lister) anomaly(path, code, detail string) {
	if len(l.res.Anomalies) >= l.opts.MaxAnomalies {
		l.limit(LimitAnomalies)
		return
	}
	l.res.Anomalies = append(l.res.Anomalies, Anomaly{Code: code, Path: path, Detail: detail})
}

func (l *lister) limit(name string) {
	if !slices.Contains(l.res.LimitsHit, name) {
		l.res.LimitsHit = append(l.res.LimitsHit, name)
	}
}

// add lists m as the next member of lv and returns its index, or -1 past MaxMembers.
func (l *lister) add(lv *level, m Member) int {
	if len(l.res.Members) >= l.opts.MaxMembers {
		l.limit(LimitMembers)
		return -1
	}
	lv.n++
	m.Path = joinPath(lv.path, lv.n)
	m.Depth = lv.depth
	m.Parent = lv.parent
	l.res.Members = append(l.res.Members, m)
	idx := len(l.res.Members) - 1
	lv.members = append(lv.members, idx)
	return idx
}

func joinPath(parent string, n int) string {
	if parent == "" {
		return strconv.Itoa(n)
	}
	return parent + "/" + strconv.Itoa(n)
}

func isRecordSig(sig uint32) bool {
	switch sig {
	case sigLocal, sigCentral, sigEOCD, sigZip64EOCD, sigZip64Locator:
		return true
	}
	return false
}

// run reads one archive stream to its end. It returns an error only when List must stop.
func (l *lister) run(lv *level) error {
	s := lv.s
	var junk int64
	junkAt := int64(-1)
	flush := func() {
		if junk == 0 {
			return
		}
		code := AnomalyGarbage
		if lv.sawEnd {
			code = AnomalyTrailingData
		}
		l.anomaly(lv.path, code, fmt.Sprintf("%d bytes at offset %d", junk, junkAt))
		junk, junkAt = 0, -1
	}
	for {
		w := s.window(4)
		if len(w) < 4 {
			if len(w) > 0 {
				if junkAt < 0 {
					junkAt = s.pos
				}
				junk += int64(len(w))
				s.advance(len(w))
			}
			break
		}
		switch sig := le32(w); {
		case sig == sigLocal:
			flush()
			if err := l.local(lv); err != nil {
				return err
			}
		case sig == sigCentral:
			flush()
			if lv.cd != nil {
				l.anomaly(lv.path, AnomalyMultipleCentralDirectories, fmt.Sprintf("another one at offset %d", s.pos))
			}
			lv.cd = l.readCentral(lv, s)
		case sig == sigEOCD:
			flush()
			l.streamEOCD(lv)
		case sig == sigZip64EOCD:
			flush()
			l.streamZip64EOCD(lv)
		case sig == sigZip64Locator:
			flush()
			s.skip(zip64LocatorLen)
		case (sig == sigSpanned || sig == sigDescriptor) && s.pos == 0:
			s.advance(4) // a split-archive marker (APPNOTE 8.5.3)
		default:
			if junkAt < 0 {
				junkAt = s.pos
			}
			w = s.window(len(s.buf))
			k := 1 + nextRecord(w[1:])
			junk += int64(k)
			s.advance(k)
		}
	}
	flush()
	// Drain: the caller hashes the outer stream as List reads it, and a nested archive's
	// member is hashed as its listing reads it, so every byte must pass.
	s.skip(math.MaxInt64)
	if s.err != nil && fatal(s.err) {
		return s.err
	}
	l.finish(lv)
	return nil
}

// nextRecord returns the index of the first record signature in w, or of a "PK" too close to
// the end to tell, or len(w) (less a trailing 'P') when there is none.
func nextRecord(w []byte) int {
	i := 0
	for {
		j := bytes.Index(w[i:], []byte("PK"))
		if j < 0 {
			if len(w) > 0 && w[len(w)-1] == 'P' {
				return len(w) - 1
			}
			return len(w)
		}
		i += j
		if i+4 > len(w) || isRecordSig(le32(w[i:])) {
			return i
		}
		i++
	}
}

// read reads n header bytes into the scratch buffer, or returns nil when the stream ends.
func (l *lister) read(s *src, n int) []byte {
	if cap(l.scratch) < n {
		l.scratch = make([]byte, n)
	}
	b := l.scratch[:n]
	if !s.readFull(b) {
		return nil
	}
	return b
}

// size turns a declared size into an int64, -1 when it cannot be one.
func size(v uint64) int64 {
	if v > math.MaxInt64 {
		return -1
	}
	return int64(v)
}

// local reads a local file header and its member's data.
func (l *lister) local(lv *level) error {
	s := lv.s
	at := s.pos
	h := s.window(localLen)
	if len(h) < localLen {
		l.anomaly(lv.path, AnomalyTruncated, fmt.Sprintf("local header at offset %d cut short", at))
		s.advance(len(h))
		return nil
	}
	e := entry{at: at, flags: le16(h[6:]), method: le16(h[8:]), crc: le32(h[14:])}
	csize32, usize32 := le32(h[18:]), le32(h[22:])
	nameLen, extraLen := int(le16(h[26:])), int(le16(h[28:]))
	s.advance(localLen)
	raw := l.read(s, nameLen+extraLen)
	if raw == nil {
		l.anomaly(lv.path, AnomalyTruncated, fmt.Sprintf("local header at offset %d: name and extra fields cut short", at))
		return nil
	}
	x := parseExtra(raw[nameLen:])
	e.csize, e.usize = int64(csize32), int64(usize32)
	if csize32 == max32 || usize32 == max32 {
		// A local header's ZIP64 field holds both sizes (APPNOTE 4.5.3); tolerate writers
		// that put only the saturated ones, in central directory order.
		e.zip64 = true
		if x.n64 >= 2 {
			e.usize, e.csize = size(x.zip64[0]), size(x.zip64[1])
		} else {
			vals := x.zip64[:x.n64]
			if usize32 == max32 {
				e.usize = pop(&vals)
			}
			if csize32 == max32 {
				e.csize = pop(&vals)
			}
		}
	}
	if e.flags&flagDescriptor != 0 {
		// The sizes follow the data (APPNOTE 4.4.4); whatever the header says is not them.
		e.desc = true
		e.csize, e.usize = -1, -1
	} else if e.zip64 && (e.csize < 0 || e.usize < 0) {
		l.anomaly(lv.path, AnomalyBadZip64, fmt.Sprintf("local header at offset %d: ZIP64 sizes missing or out of range", at))
	}
	name, issue := decodeName(raw[:nameLen], e.flags, x)
	e.encrypted = e.flags&(flagEncrypted|flagStrong) != 0 || e.method == methodAES || x.aes
	e.dir = len(name) > 0 && name[len(name)-1] == '/'
	e.dataStart = s.pos

	idx := l.add(lv, Member{
		Name: name, Size: e.usize, CompressedSize: e.csize, Method: e.method,
		Encrypted: e.encrypted, Dir: e.dir, local: true, nameIssue: issue,
	})
	if idx >= 0 {
		lv.locals[at] = &localRec{
			idx: idx, nameSum: nameSum(raw[:nameLen]), nameLen: nameLen, flags: e.flags, method: e.method,
			crc: e.crc, crcKnown: e.flags&flagDescriptor == 0, csize: e.csize, usize: e.usize,
		}
		lv.order = append(lv.order, at)
	} else {
		lv.unlisted++
	}
	return l.data(lv, &e, idx)
}

func pop(vals *[]uint64) int64 {
	if len(*vals) == 0 {
		return -1
	}
	v := (*vals)[0]
	*vals = (*vals)[1:]
	return size(v)
}

// data reads the member's data, decompressing and hashing it when it can.
func (l *lister) data(lv *level, e *entry, idx int) error {
	switch {
	case idx < 0, e.encrypted, e.dir && e.csize == 0:
		return l.pass(lv, e, idx)
	case e.method == methodDeflate && l.budget.left <= 0:
		l.limit(LimitBytes)
		return l.pass(lv, e, idx)
	case e.method == methodDeflate:
		return l.inflate(lv, e, idx)
	case e.method == methodStore:
		return l.stored(lv, e, idx)
	}
	return l.pass(lv, e, idx)
}

// pass skips the member's data without decompressing it.
func (l *lister) pass(lv *level, e *entry, idx int) error {
	if e.csize >= 0 {
		if lv.s.skip(e.csize) < e.csize {
			l.cut(lv, idx, lv.s.shortErr())
		}
		return nil
	}
	return l.seekEnd(lv, e, idx)
}

// seekEnd finds the end of data whose size only a data descriptor tells, from wherever the
// stream is inside it, without decompressing anything.
func (l *lister) seekEnd(lv *level, e *entry, idx int) error {
	d := newDescReader(lv.s, e, false)
	for {
		_, err := d.Read(l.buffer())
		if err == io.EOF {
			break
		}
		if err != nil {
			if fatal(err) {
				return err
			}
			l.cut(lv, idx, err)
			return nil
		}
	}
	l.described(lv, e, idx, d.desc, nil)
	return nil
}

func (l *lister) buffer() []byte {
	if l.copyBuf == nil {
		l.copyBuf = make([]byte, 32<<10)
	}
	return l.copyBuf
}

func (l *lister) inflater(depth int, r flate.Reader) io.Reader {
	b := &l.bufs[depth]
	if b.inflater == nil {
		b.inflater = flate.NewReader(r)
	} else {
		_ = b.inflater.(flate.Resetter).Reset(r, nil) // only fails with a preset dictionary
	}
	return b.inflater
}

func (l *lister) inflate(lv *level, e *entry, idx int) error {
	s := lv.s
	var raw flate.Reader = s
	var lim *limited
	if e.csize >= 0 {
		lim = &limited{s: s, n: e.csize}
		raw = lim
	}
	h, err := l.take(lv, idx, &budgetReader{r: l.inflater(lv.depth, raw), b: l.budget})
	if fatal(err) {
		return err
	}
	l.cut(lv, idx, err)
	switch {
	case lim != nil:
		if err == nil && lim.n > 0 {
			l.anomaly(l.res.Members[idx].Path, AnomalyDeflateSlack, fmt.Sprintf("%d compressed bytes after the end of the deflate stream", lim.n))
		}
		if n := s.skip(lim.n); n < lim.n && err == nil {
			l.cut(lv, idx, s.shortErr())
		}
		if err == nil {
			l.declared(idx, e, h)
		}
	case err == nil && !e.desc:
		// Sizes saturated for ZIP64 without the field that holds them: the deflate
		// stream's end is the data's end.
	case err == nil:
		// The deflate stream ended by itself; its data descriptor comes next.
		d, ok := findDesc(s.window(descMaxLen+4), 0, []bool{true, false}, s.pos-e.dataStart, h.n, e.zip64, s.eof)
		if !ok {
			l.anomaly(l.res.Members[idx].Path, AnomalyBadDataDescriptor, fmt.Sprintf("no data descriptor after the deflate stream at offset %d", s.pos))
			return nil
		}
		s.advance(d.n)
		l.described(lv, e, idx, d, h)
	default:
		// Cut short: find the end without inflating another byte.
		return l.seekEnd(lv, e, idx)
	}
	return nil
}

func (l *lister) stored(lv *level, e *entry, idx int) error {
	s := lv.s
	if e.csize >= 0 {
		lim := &limited{s: s, n: e.csize}
		h, err := l.take(lv, idx, lim)
		if fatal(err) {
			return err
		}
		l.cut(lv, idx, err)
		s.skip(lim.n)
		if err == nil {
			l.declared(idx, e, h)
		}
		return nil
	}
	d := newDescReader(s, e, true)
	h, err := l.take(lv, idx, d)
	if fatal(err) {
		return err
	}
	if err == io.ErrUnexpectedEOF && s.err == nil {
		// Also what a stored member whose descriptor's CRC-32 is wrong looks like: the
		// search ran to the end of the stream. The central directory still lists the rest.
		l.anomaly(l.res.Members[idx].Path, AnomalyTruncated, "no data descriptor matches the stored data before the end of the stream")
		return nil
	}
	l.cut(lv, idx, err)
	if err == nil {
		l.described(lv, e, idx, d.desc, h)
	}
	return nil
}

// declared compares a hashed member with the sizes and CRC-32 its local header declared.
func (l *lister) declared(idx int, e *entry, h *hashes) {
	m := &l.res.Members[idx]
	if e.usize >= 0 && e.usize != h.n {
		l.anomaly(m.Path, AnomalySizeMismatch, fmt.Sprintf("declared %d bytes, holds %d", e.usize, h.n))
	}
	if e.crc != h.crc {
		l.anomaly(m.Path, AnomalyCRCMismatch, fmt.Sprintf("declared %08x, data has %08x", e.crc, h.crc))
	}
}

// described records what a data descriptor said, and checks it against the hashed data (h may
// be nil when the data was not decompressed).
func (l *lister) described(lv *level, e *entry, idx int, d descriptor, h *hashes) {
	if idx < 0 || d.n == 0 {
		return
	}
	m := &l.res.Members[idx]
	m.CompressedSize = size(d.csize)
	if !m.Hashed {
		m.Size = size(d.usize)
	}
	rec := lv.locals[e.at]
	rec.crc, rec.crcKnown, rec.csize, rec.usize = d.crc, true, size(d.csize), size(d.usize)
	if h == nil {
		return
	}
	if uint64(h.n) != d.usize {
		l.anomaly(m.Path, AnomalySizeMismatch, fmt.Sprintf("data descriptor says %d bytes, data holds %d", d.usize, h.n))
	}
	if d.crc != h.crc {
		l.anomaly(m.Path, AnomalyCRCMismatch, fmt.Sprintf("data descriptor says %08x, data has %08x", d.crc, h.crc))
	}
}

// cut records why a member's data ended early; err == nil means it did not.
func (l *lister) cut(lv *level, idx int, err error) {
	path := lv.path
	if idx >= 0 {
		path = l.res.Members[idx].Path
	}
	var ce flate.CorruptInputError
	switch {
	case err == nil || err == io.EOF:
	case errors.Is(err, ErrBudget):
		l.limit(LimitBytes)
	case lv.s.err != nil && errors.Is(err, lv.s.err):
		// The archive holding this one was cut short; that member reports why.
		l.anomaly(path, AnomalyTruncated, "the archive holding this member is cut short")
	case errors.As(err, &ce):
		l.anomaly(path, AnomalyBadDeflate, "corrupt deflate data")
	default:
		l.anomaly(path, AnomalyTruncated, "member data cut short")
	}
}

// hashes computes what Member reports, plus the CRC-32 to check against the headers.
type hashes struct {
	n                 int64
	crc               uint32
	md5, sha1, sha256 hash.Hash
}

func newHashes() *hashes {
	return &hashes{md5: md5.New(), sha1: sha1.New(), sha256: sha256.New()}
}

func (h *hashes) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	h.crc = crc32.Update(h.crc, crc32.IEEETable, p)
	h.md5.Write(p)
	h.sha1.Write(p)
	h.sha256.Write(p)
	return len(p), nil
}

// take reads member idx's bytes from r to their end: it hashes them, hands them to the hooks
// and lists them when they are an archive themselves. It returns r's error, nil when r
// ended cleanly, and then the member is Hashed.
func (l *lister) take(lv *level, idx int, r io.Reader) (*hashes, error) {
	h := newHashes()
	var w io.Writer = h
	if l.opts.Content != nil {
		m := l.res.Members[idx]
		cw, err := l.opts.Content(&m)
		if err != nil {
			return h, &hookError{err}
		}
		if cw != nil {
			w = io.MultiWriter(h, hookWriter{cw})
		}
	}
	tee := io.TeeReader(r, w)
	head := l.bufs[lv.depth].head
	n, err := readHead(tee, head)
	head = head[:n]
	if l.opts.Sniff != nil && (n > 0 || err == io.EOF) {
		l.res.Members[idx].Type = l.opts.Sniff(head)
	}
	if err == nil || err == io.EOF {
		switch {
		case !IsZip(head):
			if err == nil {
				err = l.drain(tee)
			}
		case lv.depth >= l.opts.MaxDepth:
			l.limit(LimitDepth)
			if err == nil {
				err = l.drain(tee)
			}
		default:
			rest := io.Reader(tee)
			if err == io.EOF {
				rest = bytes.NewReader(nil)
			}
			err = l.nested(lv, idx, io.MultiReader(bytes.NewReader(head), rest))
		}
	}
	if err == io.EOF {
		err = nil
	}
	if err == nil {
		m := &l.res.Members[idx]
		m.Hashed = true
		m.Size = h.n
		m.MD5 = hex.EncodeToString(h.md5.Sum(nil))
		m.SHA1 = hex.EncodeToString(h.sha1.Sum(nil))
		m.SHA256 = hex.EncodeToString(h.sha256.Sum(nil))
	}
	return h, err
}

// drain reads r to its end; nil means a clean end.
func (l *lister) drain(r io.Reader) error {
	buf := l.buffer()
	zero := 0
	for {
		n, err := r.Read(buf)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n == 0 {
			if zero++; zero >= maxZeroReads {
				return io.ErrNoProgress
			}
		} else {
			zero = 0
		}
	}
}

// nested lists member idx's bytes, read from r, as an archive one level down. It returns
// why r ended: nil for a clean end.
func (l *lister) nested(lv *level, idx int, r io.Reader) error {
	child := l.newLevel(r, lv.depth+1, idx, l.res.Members[idx].Path)
	if err := l.run(child); err != nil {
		return err
	}
	return child.s.err
}

// descriptor is a data descriptor (APPNOTE 4.3.9) and its length in the stream.
type descriptor struct {
	n            int
	crc          uint32
	csize, usize uint64
}

// parseDesc reads one layout of a data descriptor at w[at:]: with or without its signature,
// with 4- or 8-byte sizes.
func parseDesc(w []byte, at int, sig, wide bool) (descriptor, bool) {
	n := 12
	if wide {
		n = 20
	}
	if sig {
		n += 4
	}
	if at < 0 || at+n > len(w) {
		return descriptor{}, false
	}
	f := w[at:]
	if sig {
		if le32(f) != sigDescriptor {
			return descriptor{}, false
		}
		f = f[4:]
	}
	d := descriptor{n: n, crc: le32(f)}
	if wide {
		d.csize, d.usize = le64(f[4:]), le64(f[12:])
	} else {
		d.csize, d.usize = uint64(le32(f[4:])), uint64(le32(f[8:]))
	}
	return d, true
}

// findDesc looks for a data descriptor at w[at:] declaring csize compressed bytes and, when
// usize >= 0, usize uncompressed ones. It tries the layouts sigs allows, the ZIP64 one first
// when the header had ZIP64 sizes, and prefers one that a record signature (or, at eof, the
// end of the stream) follows.
func findDesc(w []byte, at int, sigs []bool, csize, usize int64, zip64, eof bool) (descriptor, bool) {
	var first descriptor
	found := false
	for _, sig := range sigs {
		for _, wide := range [2]bool{zip64, !zip64} {
			d, ok := parseDesc(w, at, sig, wide)
			if !ok || d.csize != uint64(csize) || usize >= 0 && d.usize != uint64(usize) {
				continue
			}
			end := at + d.n
			if end+4 <= len(w) && isRecordSig(le32(w[end:])) || eof && end == len(w) {
				return d, true
			}
			if !found {
				first, found = d, true
			}
		}
	}
	return first, found
}

// descReader reads data whose end only its data descriptor tells: stored data, or deflate
// data the forward pass will not inflate. The end is the first place where a descriptor
// declares exactly the number of bytes before it (and, for stored data, their CRC-32, as
// libarchive checks), either behind its own signature or right before the next record's
// signature. Bytes are handed out only once no descriptor can start among them.
//
// The CRC-32 of the data up to a candidate is kept incrementally (crcPos only moves
// forward, and candidates never start more than 20 bytes before the scan position), so
// hostile data full of candidates whose sizes fit cannot make the search quadratic.
type descReader struct {
	s      *src
	start  int64 // stream offset of the data
	stored bool  // the data is the member's bytes, so both sizes equal its length
	zip64  bool
	// bare: no descriptor follows (ZIP64 sizes lost), so the next record's signature is
	// taken as the end, unverified. The central directory has the last word anyway.
	bare   bool
	crc    uint32 // CRC-32 of the data from start to crcPos
	crcPos int64
	next   int64 // stream offset where the search resumes
	end    int64 // stream offset of the descriptor, -1 until found
	desc   descriptor
	err    error
}

func newDescReader(s *src, e *entry, stored bool) *descReader {
	return &descReader{s: s, start: e.dataStart, stored: stored, zip64: e.zip64, bare: !e.desc,
		crcPos: s.pos, next: s.pos, end: -1}
}

func (d *descReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	s := d.s
	for {
		if d.end >= 0 {
			if s.pos >= d.end {
				s.skip(int64(d.desc.n))
				d.err = io.EOF
				return 0, io.EOF
			}
			w := s.window(1)
			k := int(min(int64(len(p)), d.end-s.pos, int64(len(w))))
			d.emit(p, w, k)
			return k, nil
		}
		w := s.window(256)
		safe := d.search(w)
		if d.end >= 0 {
			continue
		}
		if safe > 0 {
			k := min(len(p), safe)
			d.emit(p, w, k)
			return k, nil
		}
		if s.eof {
			d.err = s.endErr()
			if d.err == io.EOF {
				d.err = io.ErrUnexpectedEOF
			}
			return 0, d.err
		}
		s.fill(len(w) + 1)
	}
}

// emit hands out the first k bytes of w, which starts at the stream's position.
func (d *descReader) emit(p, w []byte, k int) {
	d.crcTo(w, d.s.pos+int64(k))
	copy(p, w[:k])
	d.s.advance(k)
}

// crcTo extends the running CRC-32 to stream offset to, which w (starting at the stream's
// position) must reach.
func (d *descReader) crcTo(w []byte, to int64) {
	if to > d.crcPos {
		base := d.s.pos
		d.crc = crc32.Update(d.crc, crc32.IEEETable, w[d.crcPos-base:to-base])
		d.crcPos = to
	}
}

// crcMatches reports whether the data up to w[at] has CRC-32 want, without moving crcPos.
func (d *descReader) crcMatches(w []byte, at int, want uint32) bool {
	to := d.s.pos + int64(at)
	if to < d.crcPos {
		return false // the scan order never asks; refuse rather than guess
	}
	return crc32.Update(d.crc, crc32.IEEETable, w[d.crcPos-d.s.pos:at]) == want
}

// search looks for the descriptor in w, which starts at the stream's position. It sets d.end
// when it finds one and returns how many leading bytes of w are data for certain.
func (d *descReader) search(w []byte) int {
	s := d.s
	base := s.pos
	usize := func(csize int64) int64 {
		if d.stored {
			return csize
		}
		return -1
	}
	found := func(at int, desc descriptor) int {
		d.end = base + int64(at)
		d.desc = desc
		return at
	}
	// crcOK checks a stored member's candidate descriptor against the data before it. Only
	// candidates whose sizes fit get here; the CRC-32 is brought up to i-20 first, where no
	// later candidate can start before.
	crcOK := func(i, at int, desc descriptor) bool {
		if !d.stored {
			return true
		}
		d.crcTo(w, base+int64(max(i-20, 0)))
		return d.crcMatches(w, at, desc.crc)
	}
	i := int(max(d.next-base, 0))
	for {
		j := bytes.Index(w[i:], []byte("PK"))
		if j < 0 {
			i = len(w)
			if len(w) > 0 && w[len(w)-1] == 'P' {
				i--
			}
			break
		}
		i += j
		if i+4 > len(w) {
			break
		}
		switch sig := le32(w[i:]); {
		case d.bare:
			if sig == sigLocal || sig == sigCentral || sig == sigEOCD || sig == sigZip64EOCD {
				return found(i, descriptor{})
			}
		case sig == sigDescriptor:
			if i+descMaxLen+4 > len(w) && !s.eof {
				d.next = base + int64(i)
				return max(i-20, 0)
			}
			csize := base + int64(i) - d.start
			if desc, ok := findDesc(w, i, []bool{true}, csize, usize(csize), d.zip64, s.eof); ok && crcOK(i, i, desc) {
				return found(i, desc)
			}
		case sig == sigLocal || sig == sigCentral || sig == sigEOCD || sig == sigZip64EOCD:
			for _, wide := range [2]bool{d.zip64, !d.zip64} {
				at := i - 12
				if wide {
					at = i - 20
				}
				csize := base + int64(at) - d.start
				if at < 0 || csize < 0 {
					continue
				}
				if desc, ok := parseDesc(w, at, false, wide); ok && desc.csize == uint64(csize) &&
					(!d.stored || desc.usize == uint64(csize)) && crcOK(i, at, desc) {
					return found(at, desc)
				}
			}
		}
		i++
	}
	d.next = base + int64(i)
	if !s.eof {
		return max(i-20, 0)
	}
	if d.bare {
		return len(w)
	}
	// At the end of the stream a descriptor without a signature may end the data.
	for _, wide := range [2]bool{d.zip64, !d.zip64} {
		at := len(w) - 12
		if wide {
			at = len(w) - 20
		}
		csize := base + int64(at) - d.start
		if at < 0 || csize < 0 {
			continue
		}
		if desc, ok := parseDesc(w, at, false, wide); ok && desc.csize == uint64(csize) &&
			(!d.stored || desc.usize == uint64(csize)) && crcOK(len(w), at, desc) {
			return found(at, desc)
		}
	}
	return len(w)
}
