// Package walker is a tolerant streaming MIME walker: it turns a raw message into a sequence
// of entities (header, then body as a stream) without ever holding a whole part in memory.
//
// It is built for hostile and broken mail, where go-message's multipart reader gives up and
// enmime reads everything into memory first. Three choices make that work:
//
//   - One line scanner serves the whole message, and one stack holds the boundaries of every
//     open multipart. A boundary line of any enclosing multipart ends the current part, so an
//     inner multipart that is never closed cannot swallow the rest of the message.
//   - The walk is iterative (an explicit stack), so nesting depth costs heap, not goroutine
//     stack, and is capped by Options.MaxDepth.
//   - Nothing is fatal. Every repair is reported as an Anomaly with the part's path, and every
//     cap that cuts something short is reported through Options.Limit.
//
// Paths follow IMAP section numbers (RFC 3501 §6.4.5): children of the top-level multipart
// are "1", "2", ...; the body of a single-part message is "1"; the entities inside a
// message/rfc822 part "2" are "2.1", "2.2", ... The top-level header has the empty path.
package walker

import (
	"bytes"
	"io"
	"math"
	"strconv"
	"strings"
)

// Kind says how an entity's body is walked.
type Kind uint8

const (
	// Leaf bodies are read as a stream through Walker.Body.
	Leaf Kind = iota
	// Multipart bodies are split into parts; the parts come from the following calls to Next.
	Multipart
	// Message bodies are an encapsulated message (see IsMessage), not transfer-encoded; its
	// root entity comes from the next call to Next.
	Message
)

// Part is one MIME entity.
type Part struct {
	Path        string
	Depth       int // 0 for the top-level entity; children are one deeper than their parent
	Header      Header
	MediaType   string            // lowercased; the RFC 2045/2046 default when absent or unparseable
	Params      map[string]string // Content-Type parameters, names lowercased
	Encoding    string            // Content-Transfer-Encoding, lowercased and trimmed; "" when absent
	Kind        Kind
	MessageRoot bool // the root entity of a message: the top-level one, or that of a message/rfc822 part
}

// Anomaly is a repair the walker made. Detail never carries body bytes, save a recovered
// boundary: at most 70 bchars, and structure rather than content.
type Anomaly struct {
	Code   string
	Path   string
	Detail string
}

// Anomaly codes, as they appear in Anomaly.Code.
const (
	// AnomalyUnclosedMultipart: a multipart was ended by an enclosing multipart's boundary or
	// by the end of the message, not by its own closing boundary.
	AnomalyUnclosedMultipart = "unclosed_multipart"
	// AnomalyEmptyMultipart: the closing boundary came before any part.
	AnomalyEmptyMultipart = "empty_multipart"
	// AnomalyBoundaryNotFound: no line matched the declared boundary.
	AnomalyBoundaryNotFound = "boundary_not_found"
	// AnomalyHeaderUnterminated: a header was cut short by a boundary or the end of the
	// input, with no blank line after it; the entity has no body.
	AnomalyHeaderUnterminated = "header_unterminated"
	// AnomalyBadContentType: the Content-Type did not parse, wholly or in part.
	AnomalyBadContentType = "bad_content_type"
	// AnomalyMultipartWithoutBoundary: a multipart without a boundary, read as a single part.
	AnomalyMultipartWithoutBoundary = "multipart_without_boundary"
	// AnomalyEncodedMultipart: a multipart with a Content-Transfer-Encoding (RFC 2045 §6.4
	// forbids it).
	AnomalyEncodedMultipart = "encoded_multipart"
	// AnomalyBoundaryRecovered: the declared boundary did not occur in the start of the
	// multipart's body, but another one was used there as a boundary and was walked by.
	AnomalyBoundaryRecovered = "boundary_recovered"
	// AnomalyDuplicateContentType: of repeated Content-Type fields, a later one was used
	// because its boundary occurs and the first one's does not.
	AnomalyDuplicateContentType = "duplicate_content_type"
	// AnomalyHeaderFieldTruncated: a header field longer than MaxLineLength was cut.
	AnomalyHeaderFieldTruncated = "header_field_truncated"
	// AnomalyHeaderTruncated: header fields past MaxHeaderBytes were dropped.
	AnomalyHeaderTruncated = "header_truncated"
	// AnomalyMboxFromLine: a message (the top-level one, or one encapsulated in it) started
	// with an mbox "From " line, which was skipped.
	AnomalyMboxFromLine = "mbox_from_line"
	// AnomalyMissingHeader: an entity started with body text instead of a header.
	AnomalyMissingHeader = "missing_header"
	// AnomalyHeaderLeadingWhitespace: the first header line started with whitespace (or a
	// UTF-8 byte order mark), or a line of only whitespace came before it.
	AnomalyHeaderLeadingWhitespace = "header_leading_whitespace"
	// AnomalyMissingSeparator: a header ended at a line that is no field and no continuation,
	// with no blank line before it; that line is the body's first.
	AnomalyMissingSeparator = "missing_separator"
	// AnomalyBrokenFold: a header line with no colon and no leading whitespace, followed by
	// another field, was read as the continuation of the field before it.
	AnomalyBrokenFold = "broken_fold"
	// AnomalyPartAfterClose: a multipart's delimiter came after its closing delimiter, in
	// what RFC 2046 calls the epilogue, and the part it opened was read.
	AnomalyPartAfterClose = "part_after_close"
	// AnomalyWhitespaceSeparator: a header ended at a line of only spaces and tabs, read as
	// the blank line.
	AnomalyWhitespaceSeparator = "whitespace_separator"
)

// Limit names, as passed to Options.Limit.
const (
	LimitParts       = "parts"        // entities past MaxParts were skipped
	LimitDepth       = "depth"        // an entity deeper than MaxDepth was not walked into
	LimitLineLength  = "line_length"  // a header field was cut at MaxLineLength
	LimitHeaderBytes = "header_bytes" // header fields past MaxHeaderBytes were dropped
	// The start of a multipart's body held neither its declared delimiter nor another
	// boundary in use, nor its end, or the message's budget for looking was spent: it was
	// walked by the declared boundary.
	LimitBoundaryPrefix = "boundary_prefix"
)

// Options bound the walk. For each limit, zero means the default and a negative value means
// no limit (the rule of go-message's ReadOptions). BufferSize is a size, not a limit: zero
// or negative means the default.
type Options struct {
	MaxDepth       int // deepest entity that is still walked into; default 64
	MaxParts       int // entities per message; default 10000; the rest of the input is skipped
	MaxHeaderBytes int // stored header bytes per entity; default 1 MiB; later fields are dropped
	MaxLineLength  int // bytes of one header field, unfolded; default 256 KiB; the rest is cut
	BufferSize     int // read buffer, and the longest line fragment handed out; default 64 KiB, at least 1 KiB

	Report func(Anomaly)     // receives each repair; nil drops them
	Limit  func(name string) // receives the name of each limit that cut something short
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = math.MaxInt
		}
	}
	def(&o.MaxDepth, 64)
	def(&o.MaxParts, 10000)
	def(&o.MaxHeaderBytes, 1<<20)
	def(&o.MaxLineLength, 256<<10)
	if o.BufferSize <= 0 {
		o.BufferSize = 64 << 10
	}
	if o.BufferSize < 1024 {
		o.BufferSize = 1024
	}
	return o
}

type state uint8

const (
	stateHeader state = iota // the next line starts an entity's header
	stateBody                // inside a leaf body
	stateSkip                // in a preamble or epilogue: skip to the next boundary
	stateEOF
)

// frame is an open multipart.
type frame struct {
	boundary []byte
	closer   []byte // a recovered second token whose closing line ends the multipart too
	path     string
	depth    int
	children int
	digest   bool // multipart/digest: parts default to message/rfc822
	// The boundary has not been checked against the body yet. The check waits for the
	// first read of the body, so that Next hands out the multipart's header before the
	// walker reads past it.
	unchecked bool
	// closed: the closing delimiter has been read. The frame stays until the enclosing
	// multipart's next boundary (or the end), so that a part delimited in the epilogue is
	// still seen; see onBoundary.
	closed bool
}

// spec describes the entity whose header comes next.
type spec struct {
	path        string
	depth       int
	messageRoot bool
	digest      bool
}

// Walker walks one message. It is not safe for concurrent use.
type Walker struct {
	sc     *scanner
	opts   Options
	frames []frame
	state  state
	next   spec
	parts  int
	err    error // sticky error from the underlying reader

	missedLook int // bytes scanned by boundary look-aheads that missed (see maxMissedLook)

	prevEOL  [3]byte // end-of-line of the previous line, held back until we know the next
	prevEOLn int     // line is not a boundary (RFC 2046 §5.1.1: that CRLF belongs to it)

	body   bodyReader
	taps   []*tap
	tapEOL [3]byte

	// A line that ended a header without being part of it, read again by the next call to
	// nextLine: it is the first line of what follows (a body, a preamble or boundary, or
	// the header of an encapsulated message).
	pending      []byte
	pendingPrev  [3]byte
	pendingPrevN int
	hasPending   bool
}

// New returns a walker over the raw message r.
func New(r io.Reader, opts Options) *Walker {
	opts = opts.withDefaults()
	w := &Walker{
		sc:    newScanner(r, opts.BufferSize),
		opts:  opts,
		state: stateHeader,
		next:  spec{messageRoot: true},
	}
	w.body.w = w
	w.body.done = true
	return w
}

// Next returns the next entity in depth-first order, skipping whatever the caller left unread
// of the previous leaf's body. It returns io.EOF after the last one, and the reader's error
// (wrapped) if reading the message failed.
func (w *Walker) Next() (*Part, error) {
	if w.state == stateBody {
		w.body.drain()
	}
	for {
		if w.err != nil {
			return nil, w.err
		}
		switch w.state {
		case stateHeader:
			return w.readEntity()
		case stateSkip:
			w.skip()
		default:
			return nil, io.EOF
		}
	}
}

// Body returns the raw (still transfer-encoded) body of the leaf that Next just returned. It
// ends at the next boundary line of any open multipart, or at the end of the input.
func (w *Walker) Body() io.Reader {
	return &w.body
}

// Tap copies the raw bytes of the message encapsulated in the Message part that Next just
// returned to dst, from its first header byte to its last body byte, and calls done when it
// has ended. Nothing is buffered: dst sees the bytes as the walk reads them.
func (w *Walker) Tap(dst io.Writer, done func()) {
	w.taps = append(w.taps, &tap{dst: dst, done: done, level: len(w.frames)})
}

// Consumed returns the number of input bytes read so far.
func (w *Walker) Consumed() int64 { return w.sc.consumed }

// LineEndings returns how many lines ended in CRLF, in a bare LF and in a bare CR.
func (w *Walker) LineEndings() (crlf, lf, cr int64) { return w.sc.crlf, w.sc.lf, w.sc.cr }

func (w *Walker) report(code, path, detail string) {
	if w.opts.Report != nil {
		w.opts.Report(Anomaly{Code: code, Path: path, Detail: detail})
	}
}

func (w *Walker) limit(name string) {
	if w.opts.Limit != nil {
		w.opts.Limit(name)
	}
}

// lineInfo is one line fragment with what the walker knows about it.
type lineInfo struct {
	data, eol []byte
	start     bool
	bidx      int // index in w.frames of the multipart whose boundary this line is; -1 if none
	closing   bool
	prev      [3]byte // end-of-line of the line before
	prevN     int
}

// nextLine reads one line fragment, recognises boundary lines and feeds the raw taps. Every
// byte of the input passes through here.
func (w *Walker) nextLine() (li lineInfo, err error) {
	li.bidx = -1
	if w.hasPending {
		return w.pendingLine(), nil
	}
	li.prev, li.prevN = w.prevEOL, w.prevEOLn
	line, eol, start, err := w.sc.next()
	if err != nil {
		if err != io.EOF && w.err == nil {
			w.err = &ReadError{Err: err}
		}
		w.tapEOL = li.prev
		w.endTaps(w.tapEOL[:li.prevN])
		w.prevEOLn = 0
		return li, err
	}
	li.data, li.eol, li.start = line, eol, start
	if start && len(w.frames) > 0 && len(line) >= 2 && line[0] == '-' && line[1] == '-' {
		li.bidx, li.closing = w.matchBoundary(line)
	}
	if len(w.taps) > 0 {
		w.feedTaps(&li)
	}
	w.prevEOLn = copy(w.prevEOL[:], eol)
	return li, nil
}

// unread hands the header line li back, to be read again as the first line of what follows
// the header. The line has been consumed and fed to the taps already.
func (w *Walker) unread(li lineInfo) {
	w.pending = append(w.pending[:0:0], li.data...)
	w.pendingPrev, w.pendingPrevN = li.prev, li.prevN
	w.hasPending = true
}

// pendingLine returns the line handed back by unread. Its boundary match is made again, as
// the multipart that the header opened may be the one it delimits, and the taps opened since
// it was first read get it.
func (w *Walker) pendingLine() lineInfo {
	w.hasPending = false
	li := lineInfo{data: w.pending, start: true, bidx: -1, prev: w.pendingPrev, prevN: w.pendingPrevN}
	w.pending = nil
	if len(w.frames) > 0 && len(li.data) >= 2 && li.data[0] == '-' && li.data[1] == '-' {
		li.bidx, li.closing = w.matchBoundary(li.data)
	}
	for _, t := range w.taps {
		if !t.started {
			t.started = true
			t.write(li.data)
		}
	}
	return li
}

// ReadError is a failure of the underlying reader: the message did not arrive whole. It is the
// only error the walker returns besides io.EOF.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "reading message: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

func (w *Walker) matchBoundary(line []byte) (int, bool) {
	rest := line[2:]
	// Trailing whitespace is transport padding (RFC 2046 §5.1.1).
	for len(rest) > 0 && (rest[len(rest)-1] == ' ' || rest[len(rest)-1] == '\t') {
		rest = rest[:len(rest)-1]
	}
	for i := len(w.frames) - 1; i >= 0; i-- {
		if c := w.frames[i].closer; c != nil && len(rest) == len(c)+2 && bytes.HasPrefix(rest, c) && bytes.HasSuffix(rest, []byte("--")) {
			return i, true
		}
		b := w.frames[i].boundary
		if len(rest) < len(b) || !bytes.Equal(rest[:len(b)], b) {
			continue
		}
		tail := rest[len(b):]
		if len(tail) == 0 {
			return i, false
		}
		if len(tail) == 2 && tail[0] == '-' && tail[1] == '-' {
			return i, true
		}
	}
	return -1, false
}

// onBoundary acts on a boundary line of frame i.
//
// RFC 2046 §5.1.1 has the epilogue after a closing delimiter ignored, but Rspamd, and clients
// that match delimiters wherever they occur, show a part that is delimited there. A closed
// frame therefore stays on the stack while its epilogue is read: a delimiter of its own
// reopens it (part_after_close), and the enclosing multipart's next boundary, or the end,
// removes it. Not when an enclosing multipart uses the same boundary: that delimiter is the
// enclosing one's.
func (w *Walker) onBoundary(i int, closing bool) {
	for j := len(w.frames) - 1; j > i; j-- {
		if !w.frames[j].closed {
			w.report(AnomalyUnclosedMultipart, w.frames[j].path, "ended by an enclosing multipart's boundary")
		}
	}
	w.frames = w.frames[:i+1]
	f := &w.frames[i]
	if closing {
		if f.closed {
			w.state = stateSkip
			return
		}
		if f.children == 0 {
			w.report(AnomalyEmptyMultipart, f.path, "closing boundary before any part")
		}
		if f.children == 0 || w.sharesBoundary(i) {
			w.frames = w.frames[:i]
		} else {
			f.closed = true
		}
		w.state = stateSkip
		return
	}
	if f.closed {
		f.closed = false
		w.report(AnomalyPartAfterClose, f.path, "a delimiter after the closing one opened part "+strconv.Itoa(f.children+1))
	}
	f.children++
	w.next = spec{path: joinPath(f.path, f.children), depth: f.depth + 1, digest: f.digest}
	w.state = stateHeader
}

// sharesBoundary reports whether a multipart enclosing frame i uses frame i's boundary.
func (w *Walker) sharesBoundary(i int) bool {
	for j := range i {
		if bytes.Equal(w.frames[j].boundary, w.frames[i].boundary) {
			return true
		}
	}
	return false
}

func (w *Walker) atEOF() {
	for j := len(w.frames) - 1; j >= 0; j-- {
		f := w.frames[j]
		if f.closed {
			continue
		}
		if f.children == 0 {
			w.report(AnomalyBoundaryNotFound, f.path, "no line matched the declared boundary")
		} else {
			w.report(AnomalyUnclosedMultipart, f.path, "ended by the end of the message")
		}
	}
	w.frames = nil
	w.state = stateEOF
}

// skip reads a preamble or epilogue up to the next boundary.
func (w *Walker) skip() {
	if n := len(w.frames); n > 0 && w.frames[n-1].unchecked {
		f := &w.frames[n-1]
		f.unchecked = false
		// recoverBoundary must not see f itself among the enclosing boundaries.
		w.frames = w.frames[:n-1]
		b, c := w.recoverBoundary(f.boundary, f.path)
		w.frames = w.frames[:n]
		w.frames[n-1].boundary, w.frames[n-1].closer = b, c
	}
	for {
		li, err := w.nextLine()
		if err != nil {
			w.atEOF()
			return
		}
		if li.bidx >= 0 {
			w.onBoundary(li.bidx, li.closing)
			return
		}
	}
}

type headerEnd struct {
	kind    uint8 // endBlank, endBoundary or endEOF
	bidx    int
	closing bool
}

const (
	endBlank uint8 = iota
	endBoundary
	endEOF
)

func (w *Walker) readEntity() (*Part, error) {
	sp := w.next
	w.parts++
	if w.parts > w.opts.MaxParts {
		w.limit(LimitParts)
		w.state = stateSkip
		w.frames = nil // nothing can match: skip reads to the end
		w.skip()
		if w.err != nil {
			return nil, w.err
		}
		return nil, io.EOF
	}
	p := &Part{Path: sp.path, Depth: sp.depth, MessageRoot: sp.messageRoot}
	end := w.readHeader(&p.Header, sp.path, sp.messageRoot)
	if w.err != nil {
		return nil, w.err
	}
	w.classify(p, sp, end.kind == endBlank)

	if end.kind != endBlank {
		// The header was cut short by a boundary or the end of input: there is no body.
		w.report(AnomalyHeaderUnterminated, p.Path, "no blank line after the header")
		p.Kind = Leaf
		w.body = bodyReader{w: w, done: true}
		w.state = stateBody
		if end.kind == endBoundary {
			w.onBoundary(end.bidx, end.closing)
		} else {
			w.atEOF()
		}
		return p, nil
	}
	switch p.Kind {
	case Multipart:
		w.frames = append(w.frames, frame{
			boundary:  []byte(strings.TrimRight(p.Params["boundary"], " \t")),
			path:      p.Path,
			depth:     p.Depth,
			digest:    p.MediaType == "multipart/digest",
			unchecked: true,
		})
		w.state = stateSkip
	case Message:
		w.next = spec{path: p.Path, depth: p.Depth + 1, messageRoot: true}
		w.state = stateHeader
	default:
		w.body = bodyReader{w: w, first: true}
		w.state = stateBody
	}
	return p, nil
}

// classify sets the media type, encoding, kind and final path of p from its header. body
// says whether a body follows the header, to look into for the boundary in use.
func (w *Walker) classify(p *Part, sp spec, body bool) {
	ct := p.Header.Get("Content-Type")
	if body && repeated(&p.Header, "Content-Type") {
		ct = w.pickContentType(p.Header.Values("Content-Type"), sp.path)
	}
	mt, params, problems := ParseMediaType(ct)
	for _, pr := range problems {
		w.report(AnomalyBadContentType, sp.path, pr)
	}
	if mt == "" || strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		if strings.TrimSpace(ct) != "" {
			w.report(AnomalyBadContentType, sp.path, "unparseable Content-Type, using the default")
		}
		mt = "text/plain"
		if sp.digest {
			mt = "message/rfc822" // RFC 2046 §5.1.5
		}
	}
	if params == nil {
		params = map[string]string{}
	}
	p.MediaType, p.Params = mt, params
	p.Encoding = strings.ToLower(strings.TrimSpace(p.Header.Get("Content-Transfer-Encoding")))

	p.Kind = Leaf
	deeper := p.Depth+1 <= w.opts.MaxDepth
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		switch {
		case strings.TrimRight(params["boundary"], " \t") == "":
			w.report(AnomalyMultipartWithoutBoundary, sp.path, "read as a single part")
		case !IdentityEncoding(p.Encoding) && !w.boundaryAhead(params["boundary"]):
			w.report(AnomalyEncodedMultipart, sp.path, "multipart with Content-Transfer-Encoding "+p.Encoding)
		case !deeper:
			w.limit(LimitDepth)
		case !IdentityEncoding(p.Encoding):
			// Declared encoded, but its boundary is right there in plain text: the
			// declaration is wrong (seen from mailers that copy the parts' encoding up).
			w.report(AnomalyEncodedMultipart, sp.path, "declared "+p.Encoding+" but not encoded; walked as is")
			p.Kind = Multipart
		default:
			p.Kind = Multipart
		}
	case IsMessage(mt, params):
		switch {
		case !IdentityEncoding(p.Encoding):
			// Not walkable in line; the caller may decode it and walk the result.
		case !deeper:
			w.limit(LimitDepth)
		default:
			p.Kind = Message
		}
	}
	p.Path = sp.path
	if sp.messageRoot && p.Kind != Multipart {
		// A single-part message's body is section 1 of that message.
		p.Path = joinPath(sp.path, 1)
	}
}

// boundaryAhead reports whether the multipart's own delimiter line comes next in plain
// text, within the first few KiB of what is left, before anything that says otherwise: a
// delimiter of an enclosing multipart (the part has ended), or a line of base64 (the body
// really is encoded, whatever lines follow it).
//
// A boundary that an enclosing multipart also uses proves nothing (its delimiter lines are
// the enclosing part's), and an encoded multipart may legally reuse it, since its lines are
// hidden by the encoding.
func (w *Walker) boundaryAhead(boundary string) bool {
	b := []byte(strings.TrimRight(boundary, " \t"))
	for _, f := range w.frames {
		if bytes.Equal(f.boundary, b) {
			return false
		}
	}
	data := w.sc.peek(16 << 10)
	for len(data) > 0 {
		line := data
		if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil // possibly cut short by the peek: not trusted either way
			break
		}
		line = bytes.TrimRight(line, " \t")
		if len(line) >= 2 && line[0] == '-' && line[1] == '-' {
			rest := line[2:]
			if bytes.Equal(rest, b) || (len(rest) == len(b)+2 && bytes.HasPrefix(rest, b) && bytes.HasSuffix(rest, []byte("--"))) {
				return true
			}
			if i, _ := w.matchBoundary(line); i >= 0 {
				return false
			}
		}
		if looksBase64(line) {
			return false
		}
	}
	return false
}

// looksBase64 reports whether a line is a full-width line of base64 text.
func looksBase64(line []byte) bool {
	if len(line) < 40 {
		return false
	}
	for _, c := range line {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// IsMessage reports whether an entity of this media type holds an encapsulated message
// that is walked like message/rfc822:
//   - message/rfc822 and message/global (RFC 6532);
//   - message/partial number=1, whose body starts with the header of the fragmented
//     message, so its first fragment's parts are visible (later fragments are leaves);
//   - message/external-body, whose body is the header of the external entity (RFC 2046
//     §5.2.3) followed by a phantom body.
func IsMessage(mt string, params map[string]string) bool {
	switch mt {
	case "message/rfc822", "message/global", "message/external-body":
		return true
	case "message/partial":
		return strings.TrimSpace(params["number"]) == "1"
	}
	return false
}

// IdentityEncoding reports whether a Content-Transfer-Encoding leaves the bytes as they
// are, so that a multipart or message body can be walked in line.
func IdentityEncoding(e string) bool {
	switch e {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// readHeader reads header lines into h up to the end of the header: a blank line, a line of
// only spaces and tabs, a line that is no field and no continuation, a boundary line or the
// end of input. A line that ends the header without being blank is handed back (unread) to be
// read as the first line of what follows, so no byte after the header ever lands in a field.
func (w *Walker) readHeader(h *Header, path string, messageRoot bool) headerEnd {
	var cur []byte // the field being assembled: "Name: value" unfolded
	have, dropping, cut := false, false, false
	inField := false // a field has begun (stored or dropped), so a folded line continues it
	first := true
	stored := 0
	flush := func() {
		if have {
			h.Fields = append(h.Fields, makeField(cur))
			have, cur = false, cur[:0]
		}
		cut = false
	}
	add := func(b []byte) {
		if cut {
			return
		}
		if room := w.opts.MaxLineLength - len(cur); len(b) > room {
			// One field this long is no header anyone wrote: keep its start as evidence.
			w.limit(LimitLineLength)
			w.report(AnomalyHeaderFieldTruncated, path, "field cut at "+strconv.Itoa(w.opts.MaxLineLength)+" bytes")
			b, cut = b[:max(room, 0)], true
		}
		if stored+len(b) > w.opts.MaxHeaderBytes {
			if !dropping {
				w.limit(LimitHeaderBytes)
				w.report(AnomalyHeaderTruncated, path, "header fields past "+strconv.Itoa(w.opts.MaxHeaderBytes)+" bytes dropped")
			}
			dropping, have, cur = true, false, cur[:0]
			return
		}
		stored += len(b)
		cur = append(cur, b...)
	}
	bodyStarts := func(li lineInfo) headerEnd {
		flush()
		if inField {
			w.report(AnomalyMissingSeparator, path, "a line that is no field and no continuation ended the header; read as body")
		} else {
			w.report(AnomalyMissingHeader, path, "entity starts with body text")
		}
		w.unread(li)
		return headerEnd{kind: endBlank}
	}
	for {
		li, err := w.nextLine()
		if err != nil {
			flush()
			return headerEnd{kind: endEOF}
		}
		if li.bidx >= 0 {
			flush()
			return headerEnd{kind: endBoundary, bidx: li.bidx, closing: li.closing}
		}
		line := li.data
		if !li.start { // the rest of a line longer than the buffer
			if have && !dropping {
				add(line)
			}
			continue
		}
		if len(line) == 0 {
			flush()
			return headerEnd{kind: endBlank}
		}
		if onlySpace(line) && !inField {
			// Nothing to continue, so no body can be joined to a field: skip it, as Python's
			// email package does (flanker's iphone.eml starts with a line of 255 spaces).
			w.report(AnomalyHeaderLeadingWhitespace, path, "line of only whitespace before the header skipped")
			continue
		}
		if onlySpace(line) {
			// QUIRK: RFC 5322 §4.2 (obs-FWS) lets a folded line hold only whitespace, but
			// a separator line that picked up a space or a tab is far likelier, and reading
			// it as a continuation would put the body into the last field. (Of a line longer
			// than the buffer only the first fragment is looked at; the rest of the line is
			// read as the start of the body.)
			flush()
			w.report(AnomalyWhitespaceSeparator, path, "a line of only spaces and tabs read as the blank line")
			return headerEnd{kind: endBlank}
		}
		if first {
			first = false
			if messageRoot && bytes.HasPrefix(line, []byte(utf8BOM)) {
				// QUIRK: a file saved by a Windows editor starts with a UTF-8 byte order
				// mark (MimeKit's feedback-report.txt); RFC 5322 has no place for one.
				w.report(AnomalyHeaderLeadingWhitespace, path, "UTF-8 byte order mark before the header skipped")
				if line = line[len(utf8BOM):]; len(line) == 0 {
					continue
				}
			}
			if messageRoot && bytes.HasPrefix(line, []byte("From ")) {
				w.report(AnomalyMboxFromLine, path, "leading mbox From_ line skipped")
				continue
			}
		}
		if line[0] == ' ' || line[0] == '\t' {
			if inField {
				if !dropping {
					add(line) // folded continuation: keep the whitespace, drop the line break
				}
				continue
			}
			trimmed := bytes.TrimLeft(line, " \t")
			if !isField(trimmed) {
				return bodyStarts(li)
			}
			w.report(AnomalyHeaderLeadingWhitespace, path, "first header line starts with whitespace")
			line = trimmed
		} else if !isField(line) {
			// RFC 5322 §2.2 requires folded lines to start with whitespace. A mailer that
			// forgets is indistinguishable from a header with no blank line after it, and
			// joining the line to the field (as enmime does) would put body text into it.
			// Except for a parameter that lost its indentation (name="x.zip") followed by a
			// Content- field: the header plainly goes on, and ending it there would read its
			// remaining fields (a Content-Transfer-Encoding, a file name) as body, which one
			// stray line could then hide. Rspamd and enmime join such a line to the field
			// before it, as done here. Both tests together keep body text out: a body's first
			// lines are rarely a parameter, and a link in the body ("https://...") reads as a
			// field but never as a Content- one.
			if !inField || !looksLikeParam(line) {
				return bodyStarts(li)
			}
			line = bytes.Clone(line) // the peek may move the buffer it points into
			li.data = line
			if !w.nextIsMIMEField() {
				return bodyStarts(li)
			}
			w.report(AnomalyBrokenFold, path, "a line with no colon between two fields read as a folded continuation")
			if !dropping {
				add([]byte{' '}) // the folding whitespace the line lost
				add(line)
			}
			continue
		}
		flush()
		inField = true
		if !dropping {
			add(line)
			have = !dropping // add starts dropping when this field passes MaxHeaderBytes
		}
	}
}

const utf8BOM = "\xef\xbb\xbf"

// nextIsMIMEField reports whether the line after the one just read starts a MIME field
// (Content-*, MIME-Version). It looks at the buffered input without consuming it; the peek
// can move the buffer, so the current line's bytes must be copied first.
func (w *Walker) nextIsMIMEField() bool {
	if w.hasPending {
		return false
	}
	next := w.sc.peek(maxFieldPeek)
	i := bytes.IndexAny(next, "\r\n")
	if i < 0 || !isField(next[:i]) {
		return false
	}
	name := bytes.TrimRight(next[:bytes.IndexByte(next, ':')], " \t")
	return len(name) > 8 && bytes.EqualFold(name[:8], []byte("content-")) || bytes.EqualFold(name, []byte("mime-version"))
}

// looksLikeParam reports whether a header line reads as a MIME parameter: an attribute
// token, then '=', after an optional ';'.
func looksLikeParam(line []byte) bool {
	line = bytes.TrimLeft(line, " \t;")
	n := 0
	for n < len(line) && isTokenChar(line[n]) {
		n++
	}
	return n > 0 && bytes.HasPrefix(bytes.TrimLeft(line[n:], " \t"), []byte("="))
}

// maxFieldPeek is how far nextIsMIMEField looks for the end of the next line; a field name and
// its colon come well within it.
const maxFieldPeek = 1 << 10

// isField reports whether a header line starts a field: a valid name, then a colon
// (whitespace before the colon is tolerated).
func isField(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	return colon > 0 && validFieldName(bytes.TrimRight(line[:colon], " \t"))
}

// onlySpace reports whether line holds nothing but spaces and tabs.
func onlySpace(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' {
			return false
		}
	}
	return true
}

func makeField(raw []byte) Field {
	colon := bytes.IndexByte(raw, ':')
	return Field{
		Name:  string(bytes.TrimRight(raw[:colon], " \t")),
		Value: string(bytes.TrimSpace(raw[colon+1:])),
	}
}

func joinPath(parent string, n int) string {
	if parent == "" {
		return strconv.Itoa(n)
	}
	return parent + "." + strconv.Itoa(n)
}

// bodyReader streams the raw body of the current leaf.
type bodyReader struct {
	w     *Walker
	done  bool
	first bool    // the next line is the body's first: the line end before it belongs to the header
	eol   [3]byte // a line end waiting to be handed out before rem
	eolN  int
	rem   []byte // the rest of the current line (in the scanner's buffer, or a held copy)
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if b.eolN > 0 {
			c := copy(p[n:], b.eol[:b.eolN])
			copy(b.eol[:], b.eol[c:b.eolN])
			b.eolN -= c
			n += c
			continue
		}
		if len(b.rem) > 0 {
			c := copy(p[n:], b.rem)
			b.rem = b.rem[c:]
			n += c
			continue
		}
		if b.done {
			break
		}
		b.pull()
	}
	if n == 0 && b.done {
		if b.w.err != nil {
			return 0, b.w.err
		}
		return 0, io.EOF
	}
	return n, nil
}

// pull reads the next line into the output queue, or ends the body.
func (b *bodyReader) pull() {
	w := b.w
	li, err := w.nextLine()
	if err != nil {
		b.done = true
		if !b.first {
			// Nothing follows the last line, so its line end is body.
			b.eolN = copy(b.eol[:], li.prev[:li.prevN])
		}
		w.atEOF()
		return
	}
	if li.bidx >= 0 {
		b.done = true
		w.onBoundary(li.bidx, li.closing)
		return
	}
	if !b.first {
		b.eolN = copy(b.eol[:], li.prev[:li.prevN])
	}
	b.first = false
	b.rem = li.data
}

func (b *bodyReader) drain() {
	for !b.done {
		b.pull()
		b.rem, b.eolN = nil, 0
	}
}

// tap copies the raw bytes of one encapsulated message.
type tap struct {
	dst     io.Writer
	done    func()
	level   int // the message ends at a boundary of w.frames[:level], or at the end of input
	started bool
}

func (w *Walker) feedTaps(li *lineInfo) {
	// The previous line end goes out through w.tapEOL, a field of the walker: slicing li's
	// own array would make li escape, costing one heap allocation per line.
	w.tapEOL = li.prev
	kept := w.taps[:0]
	for _, t := range w.taps {
		if li.bidx >= 0 && li.bidx < t.level {
			t.end()
			continue
		}
		if t.started {
			t.write(w.tapEOL[:li.prevN])
		}
		t.started = true
		t.write(li.data)
		kept = append(kept, t)
	}
	clear(w.taps[len(kept):])
	w.taps = kept
}

// endTaps ends every tap at the end of input; the last line end is part of the message.
func (w *Walker) endTaps(lastEOL []byte) {
	for _, t := range w.taps {
		if t.started {
			t.write(lastEOL)
		}
		t.end()
	}
	w.taps = nil
}

func (t *tap) write(b []byte) {
	if len(b) > 0 {
		_, _ = t.dst.Write(b) // taps are hashers; a hash.Hash never fails
	}
}

func (t *tap) end() {
	if t.done != nil {
		t.done()
	}
}
