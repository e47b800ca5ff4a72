// Package textfile finds files encoded inside body text (uuencode, its begin-base64 variant,
// and yEnc) and decodes them as the text streams past, so that they can be recorded as
// attachments like any MIME part.
//
// The Scanner is push-style: the parser writes each text part's transfer-decoded bytes into
// it once, in chunks of any size, and it calls a Handler at the start and end of every
// encoded block, writing the decoded bytes in between. It holds at most one line of text
// (Options.MaxLine) and one output buffer, whatever the size of the part or of the files in it.
package textfile

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
)

// Block kinds.
const (
	KindUUEncode = "uuencode"        // begin MODE NAME ... end
	KindUUBase64 = "uuencode-base64" // begin-base64 MODE NAME ... ==== (uuencode -m)
	KindYEnc     = "yenc"            // =ybegin ... =yend
)

// Default limits.
const (
	DefaultMaxLine   = 64 << 10
	DefaultMaxBlocks = 100

	minMaxLine = 16   // room for the keyword at the start of a line
	maxName    = 1024 // longest file name kept, in bytes
	maxNotes   = 8    // anomalies kept per block
	outSize    = 32 << 10
)

// Options bound the work and memory of a Scanner. For each limit, zero means the default
// and a negative value means no limit (the rule of go-message's ReadOptions).
type Options struct {
	// MaxLine is the longest text line considered: a longer line never starts a block, and
	// the Scanner buffers no more than this. Longer lines inside a yEnc or begin-base64
	// block are still decoded, piece by piece; uuencode lines are 61 characters, so below
	// that no uuencoded block is found. Values from 1 to 15 are raised to 16.
	MaxLine int
	// MaxBlocks is how many blocks one Scanner reports; later ones are decoded to nowhere
	// and counted in Dropped.
	MaxBlocks int
}

// withDefaults is written out, without a helper, so that NewScanner stays small enough to
// be inlined: a caller whose Scanner does not escape then keeps it off the heap.
func (o Options) withDefaults() Options {
	switch {
	case o.MaxLine == 0:
		o.MaxLine = DefaultMaxLine
	case o.MaxLine < 0:
		o.MaxLine = math.MaxInt
	}
	o.MaxLine = max(o.MaxLine, minMaxLine)
	switch {
	case o.MaxBlocks == 0:
		o.MaxBlocks = DefaultMaxBlocks
	case o.MaxBlocks < 0:
		o.MaxBlocks = math.MaxInt
	}
	return o
}

// Handler receives the blocks a Scanner finds. The Scanner calls it from inside Write and
// Close, never concurrently.
type Handler interface {
	// Begin is called when a block starts and returns where its decoded bytes go (nil
	// discards them). name is the file name from the header line, raw bytes, possibly empty;
	// kind is one of the Kind constants.
	Begin(kind, name string) io.Writer
	// End is called once for every Begin, when the block's end line is read or when the
	// text ends or turns into something else first (Complete is then false). After a
	// writer failed, the open block ends at Close.
	End(b Block)
}

// Block describes one encoded file found in the text.
type Block struct {
	Kind     string
	Name     string
	Size     int64 // decoded bytes written to the Begin writer
	Complete bool  // the end line (end, ====, =yend) was read
	// Part and Total number a yEnc multi-part post (part= and total= of =ybegin; 0 when
	// absent). Such a block holds only that part's bytes, which belong at Offset in the
	// whole file of FileSize bytes.
	Part, Total int
	Offset      int64
	FileSize    int64 // size= of =ybegin (the whole file); -1 when absent or not yEnc
	// Anomalies says what was wrong with the block, each kind once, for example
	// "yenc: crc32 mismatch" or "uuencode: bad line".
	Anomalies []string
}

type state uint8

const (
	stIdle       state = iota
	stUUPending        // saw a begin line; the next line decides
	stB64Pending       // saw a begin-base64 line; the next line decides
	stUU
	stB64
	stYEnc
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("textfile: write after Close")

// Scanner finds and decodes encoded files in text written to it. It implements io.Writer;
// Close must be called at the end of the text to finish a block still open.
type Scanner struct {
	h    Handler
	opts Options

	line   []byte // the current line so far, when it spans Write calls (≤ MaxLine)
	long   bool   // the current line passed MaxLine; its remaining bytes go to overlong
	skipLF bool   // the last byte was a CR: a LF right after it belongs to the same line end

	st       state
	pendKind string // header of a block waiting for its first data line
	pendName string
	pendNote string

	// The open block.
	blk    Block
	w      io.Writer
	muted  bool   // past MaxBlocks: decode, but tell nobody
	out    []byte // decoded bytes not yet written to w
	crc    uint32 // of the decoded bytes (yEnc only)
	zero   bool   // uuencode: the zero-length line was read, only "end" may follow
	bits   uint32 // base64: pending bits
	nbits  uint
	padded bool  // base64: "=" padding was read
	esc    bool  // yEnc: an escape '=' ended the previous piece of an overlong line
	yPart  bool  // yEnc: =ybegin had part=, so =ypart may follow
	yData  bool  // yEnc: a data line was read
	yEnd   int64 // yEnc: end= of =ypart, 0 when absent
	drop   bool  // the rest of an overlong line is ignored

	blocks  int
	dropped int
	err     error
	closed  bool
}

// NewScanner returns a Scanner that reports to h.
func NewScanner(h Handler, opts Options) *Scanner {
	return &Scanner{h: h, opts: opts.withDefaults()}
}

// Dropped returns how many blocks were not reported because MaxBlocks was reached.
func (s *Scanner) Dropped() int { return s.dropped }

// Write scans p. It fails only when a Begin writer fails (or after Close); that error is
// sticky, wrapped with %w, and Write then reports 0 bytes consumed.
func (s *Scanner) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.closed {
		return 0, ErrClosed
	}
	s.feed(p)
	s.flush()
	if s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}

// Close finishes the last line and ends any open block as incomplete. It returns the
// sticky error of a failed writer, if any. Calling it again does nothing.
func (s *Scanner) Close() error {
	if s.closed {
		return s.err
	}
	s.closed = true
	if s.err == nil {
		if s.long {
			s.overlongEnd()
		} else if len(s.line) > 0 {
			s.lineDone(s.line)
		}
	}
	s.line = nil
	if s.st == stUU || s.st == stB64 || s.st == stYEnc {
		if s.err == nil {
			s.note(s.kindPrefix() + ": text ended inside the block")
		}
		s.end(false) // even after a writer failed: every Begin gets its End
	}
	s.st = stIdle
	return s.err
}

// feed splits p into lines. A line ends at CR, LF or CRLF; a CRLF split across two Writes
// is still one line end.
func (s *Scanner) feed(p []byte) {
	// Positions of the next CR and LF at or after off; -1 once there are no more, so each
	// byte of p is searched once.
	lf, cr := -2, -2
	off := 0
	if s.skipLF && len(p) > 0 {
		s.skipLF = false
		if p[0] == '\n' {
			off = 1
		}
	}
	for off < len(p) && s.err == nil {
		if lf != -1 && lf < off {
			lf = indexFrom(p, off, '\n')
		}
		if cr != -1 && cr < off {
			cr = indexFrom(p, off, '\r')
		}
		eol := lf
		if eol < 0 || (cr >= 0 && cr < eol) {
			eol = cr
		}
		if eol < 0 {
			s.add(p[off:])
			return
		}
		seg := p[off:eol]
		switch {
		case s.long:
			s.overlong(seg)
			s.overlongEnd()
		case len(s.line) == 0 && len(seg) <= s.opts.MaxLine:
			s.lineDone(seg) // the common case: the whole line is in p, no copy
		default:
			s.add(seg)
			if s.long {
				s.overlongEnd()
			} else {
				s.lineDone(s.line)
				s.line = s.line[:0]
			}
		}
		off = eol + 1
		if p[eol] == '\r' {
			if off == len(p) {
				s.skipLF = true
			} else if p[off] == '\n' {
				off++
			}
		}
	}
}

func indexFrom(p []byte, off int, c byte) int {
	i := bytes.IndexByte(p[off:], c)
	if i < 0 {
		return -1
	}
	return off + i
}

// add appends part of a line that has not ended yet.
func (s *Scanner) add(seg []byte) {
	if s.long {
		s.overlong(seg)
		return
	}
	if len(s.line)+len(seg) <= s.opts.MaxLine {
		s.line = append(s.line, seg...)
		return
	}
	s.long = true
	s.overlongStart(s.line, seg)
	s.line = s.line[:0]
}

// lineDone handles one complete line (without its end) of at most MaxLine bytes.
func (s *Scanner) lineDone(l []byte) {
	// A line that ends a block may start the next one, so it is looked at again; the
	// second look is always in stIdle, which never loops.
	for s.err == nil {
		switch s.st {
		case stIdle:
			s.idleLine(l)
			return
		case stUUPending, stB64Pending:
			if len(l) == 0 {
				return // QUIRK: blank lines from doubled line ends (CRCRLF) are not text
			}
			ok := s.st == stUUPending && firstUULine(l) ||
				s.st == stB64Pending && (isB64Line(l) || isB64End(l))
			if !ok {
				s.st = stIdle
				continue
			}
			s.startPending()
			continue
		case stUU:
			if s.uuLine(l) {
				return
			}
		case stB64:
			if s.b64Line(l) {
				return
			}
		case stYEnc:
			if s.yencLine(l) {
				return
			}
		}
	}
}

// idleLine looks for a header line outside any block.
func (s *Scanner) idleLine(l []byte) {
	switch {
	case bytes.HasPrefix(l, []byte("begin")):
		kind, name, note, ok := parseBegin(l)
		if !ok {
			return
		}
		s.pendKind, s.pendName, s.pendNote = kind, name, note
		if kind == KindUUEncode {
			s.st = stUUPending
		} else {
			s.st = stB64Pending
		}
	case bytes.HasPrefix(l, []byte("=ybegin")):
		h, ok := parseYBegin(l)
		if !ok {
			return
		}
		s.begin(KindYEnc, h.name)
		s.blk.Part, s.blk.Total, s.blk.FileSize = h.part, h.total, h.size
		for _, n := range h.notes {
			s.note(n)
		}
		s.yPart = h.part > 0
		s.st = stYEnc
	}
}

// startPending opens the block whose header line was read last.
func (s *Scanner) startPending() {
	next := stB64
	if s.st == stUUPending {
		next = stUU
	}
	s.begin(s.pendKind, s.pendName)
	if s.pendNote != "" {
		s.note(s.pendNote)
	}
	s.st = next
}

// overlongStart is called once when a line outgrows MaxLine, with its first bytes in two
// pieces; overlong then gets the rest, and overlongEnd the line end.
func (s *Scanner) overlongStart(a, b []byte) {
	switch s.st {
	case stIdle:
		s.drop = true
	case stUUPending:
		s.st = stIdle
		s.drop = true
	case stB64Pending:
		// Base64 lines may be long; judge this one by the part that fits.
		if !isB64Chars(a) || !isB64Chars(b[:min(len(b), s.opts.MaxLine-len(a))]) {
			s.st = stIdle
			s.drop = true
			return
		}
		s.startPending()
		s.drop = false
		s.overlong(a)
		s.overlong(b)
	case stUU:
		// No uuencoded line is this long: the text has moved on.
		s.note("uuencode: line too long")
		s.end(false)
		s.drop = true
	case stB64, stYEnc:
		var head [2]byte
		n := copy(head[:], a)
		copy(head[n:], b)
		if s.st == stYEnc && head == [2]byte{'=', 'y'} {
			s.note("yenc: keyword line too long")
			s.end(false)
			s.drop = true
			return
		}
		s.drop = false
		s.overlong(a)
		s.overlong(b)
	}
}

func (s *Scanner) overlong(seg []byte) {
	if s.drop || s.err != nil {
		return
	}
	switch s.st {
	case stB64:
		if !s.b64Data(seg) {
			s.note("uuencode-base64: bad line")
			s.end(false)
			s.drop = true
		}
	case stYEnc:
		s.yencData(seg)
	}
}

func (s *Scanner) overlongEnd() {
	if !s.drop && s.st == stYEnc {
		s.yencLineEnd()
	}
	s.long, s.drop = false, false
}

// begin opens a block.
func (s *Scanner) begin(kind, name string) {
	s.blk = Block{Kind: kind, Name: name, FileSize: -1}
	s.w, s.muted = nil, false
	s.crc, s.zero, s.bits, s.nbits, s.padded, s.esc = 0, false, 0, 0, false, false
	s.yPart, s.yData, s.yEnd = false, false, 0
	if s.out == nil {
		s.out = make([]byte, 0, outSize)
	}
	if s.blocks >= s.opts.MaxBlocks {
		s.dropped++
		s.muted = true
		return
	}
	s.blocks++
	s.w = s.h.Begin(kind, name)
}

// end closes the open block and reports it.
func (s *Scanner) end(complete bool) {
	s.flush()
	s.st = stIdle
	if s.muted {
		return
	}
	s.blk.Complete = complete
	b := s.blk
	s.blk, s.w = Block{}, nil
	s.h.End(b)
}

// note records an anomaly of the open block once.
func (s *Scanner) note(msg string) {
	for _, a := range s.blk.Anomalies {
		if a == msg {
			return
		}
	}
	if len(s.blk.Anomalies) < maxNotes {
		s.blk.Anomalies = append(s.blk.Anomalies, msg)
	}
}

func (s *Scanner) kindPrefix() string {
	switch s.st {
	case stYEnc:
		return KindYEnc
	case stB64:
		return KindUUBase64
	}
	return KindUUEncode
}

// room returns the free part of the output buffer, flushing it first when less than n
// bytes are free.
func (s *Scanner) room(n int) []byte {
	if cap(s.out)-len(s.out) < n {
		s.flush()
	}
	return s.out[len(s.out):cap(s.out)]
}

// emitted accounts for n bytes decoded into room.
func (s *Scanner) emitted(n int) {
	if s.blk.Kind == KindYEnc {
		s.crc = crc32.Update(s.crc, crc32.IEEETable, s.out[len(s.out):len(s.out)+n])
	}
	s.out = s.out[:len(s.out)+n]
	s.blk.Size += int64(n)
}

func (s *Scanner) flush() {
	if len(s.out) == 0 {
		return
	}
	out := s.out
	s.out = s.out[:0]
	if s.w == nil || s.err != nil || s.muted {
		return
	}
	n, err := s.w.Write(out)
	if err == nil && n < len(out) {
		err = io.ErrShortWrite
	}
	if err != nil {
		s.err = fmt.Errorf("textfile: writing %s block %q: %w", s.blk.Kind, s.blk.Name, err)
	}
}

// trimSpace trims the white space editors and mailers add to or leave at line ends.
func trimSpace(b []byte) []byte {
	return bytes.Trim(b, " \t\f\v")
}
