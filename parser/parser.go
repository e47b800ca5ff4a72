// Package parser turns a raw message into an api.Record as a stream: envelope-independent
// metadata, attachment hashes and types, and URLs. Body text is read for URLs and dropped;
// no body byte is kept, logged or returned.
//
// The parser is total: any byte sequence yields a record. Malformed MIME becomes anomalies,
// and a panic is recovered into a degraded record. The only errors Parse returns are the
// input failing (the message did not arrive whole) and, in content mode, the blob sink
// failing — both mean the copy must not be acknowledged.
package parser

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"math"
	"path"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/archive"
	"github.com/journalsensor/sensor/parser/charset"
	"github.com/journalsensor/sensor/parser/smime"
	"github.com/journalsensor/sensor/parser/textfile"
	"github.com/journalsensor/sensor/parser/urls"
	"github.com/journalsensor/sensor/parser/walker"
)

// AttachmentMode says how much of each attachment the record keeps.
type AttachmentMode uint8

const (
	// AttachmentsMetadata keeps hashes, types and sizes. It is the zero value.
	AttachmentsMetadata AttachmentMode = iota
	// AttachmentsOff lists no attachments.
	AttachmentsOff
	// AttachmentsContent also streams each attachment's decoded bytes to Options.Blobs.
	AttachmentsContent
)

// ParseAttachmentMode reads "off", "metadata" or "content".
func ParseAttachmentMode(s string) (AttachmentMode, error) {
	switch s {
	case "metadata":
		return AttachmentsMetadata, nil
	case "off":
		return AttachmentsOff, nil
	case "content":
		return AttachmentsContent, nil
	}
	return 0, fmt.Errorf("attachments mode %q: want off, metadata or content", s)
}

func (m AttachmentMode) String() string {
	return [...]string{"metadata", "off", "content"}[m]
}

// BlobSink stores attachment bytes in content mode. It is the spool's blob writer in the
// sensor; the parser never decides where bytes go.
type BlobSink interface {
	Create() (BlobWriter, error)
}

// BlobWriter receives one attachment's decoded bytes.
type BlobWriter interface {
	io.Writer
	// Commit makes the blob durable under its SHA-256 (lowercase hex).
	Commit(sha256 string) error
	// Abort discards a blob that will not be committed.
	Abort()
}

// Options configure a Parser. For each limit (the Max fields), zero means the default and a
// negative value means no limit (the rule of go-message's ReadOptions). The defaults are
// meant for real mail; no limit also lifts the bound on memory and time that limit gives.
type Options struct {
	Attachments AttachmentMode
	NoURLs      bool
	Blobs       BlobSink // required in content mode
	// CRLFInput says the input came over SMTP, where every line ends in CRLF, so a bare LF
	// is worth an anomaly (a smuggling attempt, or a broken relay). Files on disk usually
	// use LF, so `sensor parse` leaves this off.
	CRLFInput bool
	Logger    *slog.Logger

	MaxDepth             int   // default 64
	MaxParts             int   // default 10000
	MaxHeaderBytes       int   // per entity, default 1 MiB
	MaxLineLength        int   // one header field, default 256 KiB
	MaxMessageDepth      int   // messages inside messages, default 8
	MaxAttachments       int   // attachments listed per message, from every source; default 10000
	MaxArchiveMembers    int   // zip members listed per archive, nested ones included; default 10000
	MaxArchiveBytes      int64 // decompressed bytes per message, across all archives; default 64 MiB
	MaxURLs              int   // default 10000
	MaxURLLength         int   // default 8192
	MaxAnomalies         int   // default 1000
	MaxJournalRecipients int   // default 100000
	MaxStructureBytes    int   // default 4096
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
	def(&o.MaxMessageDepth, 8)
	def(&o.MaxAttachments, 10000)
	def(&o.MaxArchiveMembers, 10000)
	switch {
	case o.MaxArchiveBytes == 0:
		o.MaxArchiveBytes = 64 << 20
	case o.MaxArchiveBytes < 0:
		o.MaxArchiveBytes = math.MaxInt64
	}
	// A negative URL limit is passed on as it is: the URL collector reads it as no limit
	// itself, keeping room for the sums it makes on MaxURLLength.
	if o.MaxURLs == 0 {
		o.MaxURLs = 10000
	}
	if o.MaxURLLength == 0 {
		o.MaxURLLength = 8192
	}
	def(&o.MaxAnomalies, 1000)
	def(&o.MaxJournalRecipients, 100000)
	def(&o.MaxStructureBytes, 4096)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Parser parses messages. It is safe for concurrent use; each Parse call has its own state.
type Parser struct {
	opts Options
	// scratch holds the buffers (*scratch) of finished parses for the next ones: allocated
	// afresh, the copy and URL-scan buffers were 48 KiB a message, the decoders' 36 KiB and
	// the sniffing buffers 4 KiB more: 88 of the 140 KiB that a 10 KiB copy cost the door
	// and the parser. A parse puts its buffers back
	// only when it returns normally, once no goroutine of its own (a CMS reader) is left to
	// touch them.
	scratch sync.Pool
}

// scratch is one parse's reusable buffers.
type scratch struct {
	buf   *[16 << 10]byte
	urls  []byte    // the URL collector's ScanText buffer, bounded by its options
	bufs  byteCache // the decoders' buffers, bounded by maxCachedBufs
	heads [][]byte  // a 4 KiB sniffing buffer for each level of containers (content)
}

// New returns a parser. In content mode opts.Blobs must be set.
func New(opts Options) (*Parser, error) {
	opts = opts.withDefaults()
	if opts.Attachments == AttachmentsContent && opts.Blobs == nil {
		return nil, errors.New("parser: content mode needs a blob sink")
	}
	return &Parser{opts: opts}, nil
}

// The two kinds of error Parse returns, for errors.Is. Neither may be acknowledged: the
// sender still owns the message and must be told to retry.
var (
	// ErrIncomplete: the input broke off before its end (the client went away or stalled).
	ErrIncomplete = errors.New("message not received whole")
	// ErrLocal: a failure on our side (the blob sink failed); the input was fine.
	ErrLocal = errors.New("local failure while parsing")
)

// LocalError is a failure on our side during parsing (the blob sink failed). It matches
// ErrLocal.
type LocalError struct{ Err error }

func (e *LocalError) Error() string        { return "storing attachment: " + e.Err.Error() }
func (e *LocalError) Unwrap() error        { return e.Err }
func (e *LocalError) Is(target error) bool { return target == ErrLocal }

// Parse reads r to its end and returns the record. The caller sets ID, ReceivedAt, Sensor
// and Envelope. An error matches either ErrIncomplete (the input failed) or ErrLocal; in both
// cases the record must not be acknowledged.
func (p *Parser) Parse(r io.Reader) (rec *api.Record, err error) {
	defer func() { err = exported(err) }() // runs last, after the panic recovery below
	in := &rawReader{r: r, h: sha256.New()}
	sc, _ := p.scratch.Get().(*scratch)
	if sc == nil {
		sc = &scratch{buf: new([16 << 10]byte)}
	}
	st := newState(&p.opts, sc)
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		p.opts.Logger.Error("parser panic recovered; record is degraded",
			"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		st.anomaly(anomalyParserPanic, "", "parser failed; record holds what was extracted before")
		st.blobs.abort(st.attachments)
		// Read the rest so the SMTP session stays in step with the client.
		if _, derr := io.Copy(io.Discard, in); derr != nil {
			rec, err = nil, &walker.ReadError{Err: derr}
			return
		}
		rec, err = st.record(in, false), nil
	}()

	w := walker.New(in, st.walkerOptions("", p.opts.MaxDepth, p.opts.MaxParts))
	if err := st.walk(w, false, "", 0); err != nil {
		st.blobs.abort(st.attachments)
		p.putScratch(st, sc)
		return nil, err
	}
	st.lineEndings(w.LineEndings())
	if err := st.blobs.commit(); err != nil {
		p.putScratch(st, sc)
		return nil, err
	}
	rec = st.record(in, true)
	p.putScratch(st, sc)
	return rec, nil
}

// putScratch gives the buffers of a parse that is over back to p; st must not be used after.
func (p *Parser) putScratch(st *state, sc *scratch) {
	sc.urls = st.urls.Buffer()
	st.sc, st.urls = nil, nil
	p.scratch.Put(sc)
}

// exported makes a reader failure match ErrIncomplete, so callers need not know the walker.
// A local failure can reach Parse wrapped in a read error (a blob write failing while the CMS
// reader goroutine pulls an opaque-signed part); it stays local: our disk, not the sender's
// connection, is at fault.
func exported(err error) error {
	var re *walker.ReadError
	if err != nil && !errors.Is(err, ErrLocal) && errors.As(err, &re) {
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	}
	return err
}

// rawReader hashes and counts every input byte, for the size and SHA-256 of the message.
type rawReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (r *rawReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	return n, err
}

// state is one Parse call: the walk's state machine (entity → walk → leaf → attachment →
// content) and the parts it keeps along the way. Only the parsing goroutine touches it;
// the handoff sees to that while a CMS reader goroutine pulls a walker.
type state struct {
	opts *Options

	findings              // attachments, URLs, anomalies and limits, for the record
	msgs     msgStack     // the messages being walked
	tree     tree         // the structure tree
	blobs    pendingBlobs // written, not yet committed
	handoff  handoff      // walker callbacks go through it: a CMS reader goroutine may pull a walker

	source  api.Source
	journal *api.Journal
	msg     api.Message
	scored  *msgCtx
	// scoredRaw hashes a journal's original as the walk passes through it.
	scoredRaw *hashes
	crypto    []api.Crypto
	cryptoCtx []*msgCtx // the message each crypto layer belongs to

	parts        int             // entities seen, across nested walkers
	encodedDepth int             // encoded containers being walked, one inside the other
	budget       *archive.Budget // decompressed bytes left for this message's archives
	zipTextBytes int             // bytes of zip members kept for reading links, up to maxZipTextBytes

	headsInUse int // sniffing buffers (scratch.heads) held by content calls in progress
	// sc is the buffers the parse borrows from its Parser (Parser.scratch).
	sc *scratch
}

func newState(o *Options, sc *scratch) *state {
	st := &state{
		opts:   o,
		source: api.Source{Kind: api.SourceDirect},
		findings: findings{
			maxAnomalies:   o.MaxAnomalies,
			maxAttachments: o.MaxAttachments,
			urls:           urls.NewCollector(urls.Options{MaxURLs: o.MaxURLs, MaxURLLength: o.MaxURLLength}),
		},
		sc: sc,
	}
	st.urls.UseBuffer(sc.urls)
	return st
}

// entity handles one entity from the walker.
func (st *state) entity(w *walker.Walker, p *walker.Part) error {
	st.msgs.leave(p.Depth)
	n := st.tree.add(p)
	if p.MessageRoot {
		st.enterMessage(p, n)
	}
	ctx := st.msgs.current()
	if st.msgs.depth() > st.opts.MaxMessageDepth {
		// Messages nested this deep are listed as attachments down to the cap (each one
		// hashed whole by its parent's tap); what is inside them is not walked for more.
		st.limit(limitMessageDepth)
		return nil
	}
	switch p.Kind {
	case walker.Multipart:
		st.noteCrypto(smime.Classify(p.MediaType, p.Params, ""), ctx, p.Path) // multipart/signed, /encrypted
		return nil
	case walker.Message:
		if h, done := st.messageSink(p, ctx); h != nil {
			w.Tap(h, done)
		}
		return nil
	}
	if multipart, ok := st.encodedContainer(p); ok {
		return st.walkEncoded(w, p, ctx, multipart)
	}
	return st.leaf(w, p, ctx)
}

// walk hands every entity of w to entity. A walker over a decoded container (walkEncoded)
// numbers its entities from its own root; skipRoot, base and offset map them into the
// enclosing message's paths and depths.
func (st *state) walk(w *walker.Walker, skipRoot bool, base string, offset int) error {
	for first := true; ; first = false {
		p, err := w.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if first && skipRoot {
			continue
		}
		st.parts++
		if offset > 0 || base != "" {
			if st.parts > st.opts.MaxParts {
				st.limit(walker.LimitParts)
				return nil // the caller drains the rest
			}
			p.Path = subPath(base, p.Path)
			p.Depth += offset
		}
		if err := st.entity(w, p); err != nil {
			return err
		}
	}
}

// subPath maps a path inside a decoded container onto the container's path.
func subPath(base, sub string) string {
	switch {
	case sub == "":
		return base
	case base == "":
		return sub
	}
	return base + "." + sub
}

// maxEncodedDepth caps encoded containers inside encoded containers. Each level decodes
// every byte below it again, so the cost of a message grows with the depth; real mail has
// one level, rarely two.
const maxEncodedDepth = 8

// encodedContainer reports whether a leaf is really a multipart or a message that was
// transfer-encoded. RFC 2045 §6.4 forbids that, but mailers do it (base64 multiparts from
// webmail, quoted-printable multipart/signed), and hiding the parts inside would hide
// attachments, so they are decoded and walked like any other.
func (st *state) encodedContainer(p *walker.Part) (multipart, ok bool) {
	if walker.IdentityEncoding(p.Encoding) {
		return false, false
	}
	multipart = strings.HasPrefix(p.MediaType, "multipart/")
	if multipart {
		ok = strings.TrimSpace(p.Params["boundary"]) != ""
	} else {
		ok = walker.IsMessage(p.MediaType, p.Params)
	}
	if ok && p.Depth+2 > st.opts.MaxDepth {
		st.limit(walker.LimitDepth)
		return false, false
	}
	if ok && st.encodedDepth >= maxEncodedDepth {
		st.limit(limitEncodedDepth)
		return false, false
	}
	return multipart, ok
}

// walkEncoded decodes an encoded multipart or message and walks it with a second walker.
// For a multipart the walker is given the part's own Content-Type as a one-line header, so
// the decoded bytes read as the multipart's body.
func (st *state) walkEncoded(w *walker.Walker, p *walker.Part, ctx *msgCtx, multipart bool) error {
	dec, _ := newDecoder(st.transferEncoding(p), w.Body(), st.decodeBufs())
	defer st.doneDecoding(dec, p)
	var in io.Reader = dec
	base, offset := p.Path, p.Depth+1
	if multipart {
		if p.MessageRoot {
			// The walker numbered it as a single-part body ("1" or "P.1"); as a multipart it
			// is its message's own path.
			base = strings.TrimSuffix(strings.TrimSuffix(p.Path, "1"), ".")
			p.Path = base // for its own anomalies too
		}
		offset = p.Depth
		ct := strings.NewReplacer("\r", " ", "\n", " ").Replace(p.Header.Get("Content-Type"))
		in = io.MultiReader(strings.NewReader("Content-Type: "+ct+"\r\n\r\n"), dec)
	} else if h, done := st.messageSink(p, ctx); h != nil {
		in = io.TeeReader(dec, h)
		defer done()
	}
	// Both caps are clamped to 1: a negative value would mean no limit at all.
	sub := walker.New(in, st.walkerOptions(base, max(st.opts.MaxDepth-offset, 1), max(st.opts.MaxParts-st.parts, 1)))
	st.encodedDepth++
	defer func() { st.encodedDepth-- }()
	if err := st.walk(sub, multipart, base, offset); err != nil {
		return err
	}
	return st.drain(in)
}

// walkerOptions configures a walker whose paths are relative to base. Its callbacks go
// through the handoff: a walker can be pulled by another goroutine (see readOpaque).
func (st *state) walkerOptions(base string, maxDepth, maxParts int) walker.Options {
	return walker.Options{
		MaxDepth:       maxDepth,
		MaxParts:       maxParts,
		MaxHeaderBytes: st.opts.MaxHeaderBytes,
		MaxLineLength:  st.opts.MaxLineLength,
		Report: func(a walker.Anomaly) {
			st.handoff.park(func() { st.anomaly(a.Code, subPath(base, a.Path), a.Detail) })
		},
		Limit: func(name string) { st.handoff.park(func() { st.limit(name) }) },
	}
}

// decodeBufs returns the cache a new decoder takes its buffers from. While a CMS reader
// goroutine pulls an enclosing walker (readOpaque), the decoders it reads through use the
// cache from that goroutine, so the decoders of the signed content make their own buffers:
// the cache is not safe for two goroutines.
func (st *state) decodeBufs() *byteCache {
	if st.handoff.held() {
		return nil
	}
	return &st.sc.bufs
}

// transferEncoding returns the part's Content-Transfer-Encoding, reading a misspelt base64
// as base64 as lenient clients do: left undecoded, the attachment's hash would be the hash of
// its base64 text, which no threat feed knows.
func (st *state) transferEncoding(p *walker.Part) string {
	if misspeltBase64(p.Encoding) {
		st.anomaly(anomalyMisspeltEncoding, p.Path, strconv.Quote(p.Header.Get("Content-Transfer-Encoding"))+" read as base64")
		return "base64"
	}
	return p.Encoding
}

// leafDecoder returns the decoder of a leaf's body. A body that declares no encoding the
// parser knows is decoded as base64 when it is clearly base64 (see sniff.go), but only where
// a file is expected.
func (st *state) leafDecoder(w *walker.Walker, p *walker.Part) decoder {
	enc := st.transferEncoding(p)
	dec, known := newDecoder(enc, w.Body(), st.decodeBufs())
	if !known {
		st.anomaly(anomalyUnknownEncoding, p.Path, p.Encoding)
	}
	if enc != "" && known || !sniffable(p) {
		return dec
	}
	dec, sniffed := sniffBase64(w.Body(), st.decodeBufs())
	if sniffed != nil {
		what := "absent"
		if enc != "" {
			what = strconv.Quote(p.Header.Get("Content-Transfer-Encoding"))
		}
		st.anomaly(anomalySniffedBase64, p.Path, "Content-Transfer-Encoding "+what+"; the body is base64 and was decoded")
	}
	return dec
}

// sniffable reports whether a leaf is where a file is expected rather than text: not a text
// part (clients never decode one without a declared encoding, and a plain-text attachment
// of one word such as "test" has the shape of base64), nor a message or multipart that was
// not walked.
func sniffable(p *walker.Part) bool {
	for _, prefix := range []string{"text/", "multipart/", "message/"} {
		if strings.HasPrefix(p.MediaType, prefix) {
			return false
		}
	}
	return true
}

// doneDecoding records how much of a body was not valid in its transfer encoding, and gives
// the decoder's buffers back: nothing reads the body after its part is done.
func (st *state) doneDecoding(dec decoder, p *walker.Part) {
	if s, ok := dec.(*sniffedBase64); ok && s.broken() {
		st.anomaly(anomalySniffedBase64Broken, p.Path, "the body stopped being base64 after the first "+strconv.Itoa(b64SniffBytes)+" bytes; decoded leniently to its end")
	}
	if n, code := dec.repairs(); n > 0 {
		st.anomaly(code, p.Path, strconv.FormatInt(n, 10)+" bytes skipped or kept undecoded")
	}
	dec.release()
}

// enterMessage begins the message whose root entity is p (its node n): it decides what the
// message is to the record (the scored one, a journal report, an attached message) and
// pushes it on the stack of messages being walked.
func (st *state) enterMessage(p *walker.Part, n *node) {
	if st.msgs.continued(p.Depth) {
		return
	}
	ctx := &msgCtx{depth: p.Depth, root: n}
	ctx.owner = ctx
	parent := st.msgs.current()
	if parent == nil {
		switch {
		case isExchangeJournal(p.Header.Has):
			ctx.role = roleWrapper
			st.source.Kind = api.SourceExchangeJournal
			st.journal = &api.Journal{}
		case isExchange2003Journal(&p.Header):
			ctx.role = roleWrapper
			st.source.Kind = api.SourceExchange2003Journal
			st.journal = &api.Journal{}
		default:
			ctx.role = roleScored
		}
		st.noteSource(&p.Header)
	} else {
		ctx.path = parentMessagePath(p)
		ctx.role = roleNested
		if parent.role == roleWrapper {
			if st.scored == nil {
				ctx.role = roleScored
			} else if st.journal.DecryptedCopy == "" {
				// Exchange's journal report decryption attaches a clear copy of a
				// rights-protected original as the report's second message. Its parts are
				// listed like any attached message's; the record says which one it is.
				st.journal.DecryptedCopy = ctx.path
			}
		}
	}
	if ctx.role == roleScored {
		st.scored = ctx
		st.describe(p)
		if parent != nil {
			st.noteSource(&p.Header)
		}
	}
	st.msgs.push(ctx)
}

// messageSink returns where the raw bytes of a message/rfc822 part go, and what to call
// when they end: the hash of a journal's original, or the hashes of an attached message that
// is itself an attachment. A nil writer means nobody needs them.
func (st *state) messageSink(p *walker.Part, ctx *msgCtx) (io.Writer, func()) {
	st.messageFacts(p)
	if ctx.role == roleWrapper && st.scored == nil {
		h := newHashes()
		st.scoredRaw = h
		return h, func() {}
	}
	if st.opts.Attachments == AttachmentsOff || !st.room() {
		return nil, nil
	}
	a := st.attachmentMeta(p, ctx)
	a.DetectedType = p.MediaType
	st.attachments = append(st.attachments, a)
	i := len(st.attachments) - 1
	h := newHashes()
	return h, func() { st.handoff.park(func() { h.fill(&st.attachments[i]) }) }
}

// messageFacts records what the message types other than message/rfc822 say by themselves:
// a fragment of a larger message (a way to slip content past scanners that see one
// fragment at a time), or a reference to content held elsewhere.
func (st *state) messageFacts(p *walker.Part) {
	switch p.MediaType {
	case "message/partial":
		st.anomaly(anomalyMessagePartial, p.Path, "fragment "+p.Params["number"]+" of "+p.Params["total"])
	case "message/external-body":
		if st.opts.NoURLs {
			return
		}
		if u := externalURL(p.Params); u != "" {
			st.urls.Add(u, api.URLSourceAttachment)
		}
	}
}

// externalURL turns message/external-body access parameters (RFC 2046 §5.2.3, RFC 2017)
// into the URL they reference, when they reference one over the network.
func externalURL(params map[string]string) string {
	switch strings.ToLower(params["access-type"]) {
	case "url":
		return strings.Join(strings.Fields(params["url"]), "")
	case "anon-ftp", "ftp", "tftp":
		site := params["site"]
		if site == "" || params["name"] == "" {
			return ""
		}
		scheme := "ftp://"
		if strings.EqualFold(params["access-type"], "tftp") {
			scheme = "tftp://"
		}
		path := strings.Trim(params["directory"], "/")
		if path != "" {
			path += "/"
		}
		return scheme + site + "/" + path + strings.TrimLeft(params["name"], "/")
	}
	return ""
}

// leaf reads one leaf body: the journal summary, body text (URLs only) or an attachment.
func (st *state) leaf(w *walker.Walker, p *walker.Part, ctx *msgCtx) error {
	dec := st.leafDecoder(w, p)
	defer st.doneDecoding(dec, p)
	bodyText := p.MediaType == "text/plain" || p.MediaType == "text/html"
	kind, isText := textSource(p.MediaType)

	if ctx.role == roleWrapper && !ctx.summaryDone && p.MediaType == "text/plain" {
		ctx.summaryDone = true
		cr, _ := charsetReader(p.Params["charset"], dec)
		if err := readJournalSummary(cr, st.journal, st.opts.MaxJournalRecipients, st.limit); err != nil {
			return readFailure(err)
		}
		return st.drain(dec)
	}

	a := st.attachmentMeta(p, ctx)
	named := a.Filename != "" || a.Disposition == "attachment"
	if ctx.role == roleScored && bodyText && !named {
		if !st.opts.NoURLs {
			if err := st.scanText(dec, p, ctx, kind); err != nil {
				return err
			}
		}
		return st.drain(dec)
	}

	urlSource := api.URLSourceAttachment
	if !named && isText && (ctx.role == roleNested || ctx.role == roleScored) {
		// The body text of an attached message: its links are the message's links. And an
		// inline invitation, style sheet or bounce report of either message stays listed as
		// an attachment, as it always was (its hash is evidence and in the dedupe key), but
		// its links are named by the part's kind.
		urlSource = kind
	}
	if st.opts.Attachments == AttachmentsOff {
		// Nothing is listed, but signatures still say who signed, and opaque-signed
		// content still holds the message's text.
		c := smime.Classify(p.MediaType, p.Params, a.Filename)
		if e := st.noteCrypto(c, ctx, p.Path); e >= 0 && c.Feed != smime.FeedNone {
			var err error
			if c.Feed == smime.FeedCMS && strings.HasSuffix(p.MediaType, "pkcs7-mime") {
				err = st.readOpaque(dec, e, p)
			} else {
				err = st.readCrypto(dec, c.Feed, e, p.Path)
			}
			if err != nil {
				return err
			}
			return st.drain(dec)
		}
		var err error
		switch {
		case st.opts.NoURLs:
		case isText:
			err = st.scanText(dec, p, ctx, urlSource)
		case opensAsHTML(a.Filename):
			err = st.scanHTMLFile(dec)
		}
		if err != nil {
			return err
		}
		return st.drain(dec)
	}
	i := len(st.attachments)
	err := st.attachment(p, ctx, a, dec, isText, urlSource)
	st.uuName(dec, i, p.Path)
	return err
}

func (st *state) scanText(r io.Reader, p *walker.Part, ctx *msgCtx, source string) error {
	if p.MediaType == "text/plain" {
		// uuencoded and yEnc files ride inside plain text. The scanner sees the bytes
		// before any charset conversion, which would corrupt yEnc's 8-bit data.
		tf := textfile.NewScanner(&textFiles{st: st, path: p.Path, cur: -1}, textfile.Options{})
		defer func() {
			tf.Close()
			if tf.Dropped() > 0 {
				st.limit(limitEncodedFiles) // blocks past the per-part cap were not listed
			}
		}()
		pgp := smime.NewInline(smime.Options{}) // inline PGP: -----BEGIN PGP SIGNED MESSAGE-----
		defer func() {
			if info := pgp.Info(); info.Kind != "" {
				st.mergeCrypto(st.cryptoLayer(info.Kind, ctx, p.Path), info)
			}
		}()
		r = io.TeeReader(r, io.MultiWriter(tf, pgp))
		defer st.drain(r) // the tee must see every byte, whatever the URL scanner read
	}
	var raw *boundedCopy
	if qpSniffable(p) {
		// After the tee: uuencoded and PGP blocks are read from the declared bytes.
		qp, sniffed := sniffQP(r, st.decodeBufs())
		defer qp.release()
		if sniffed {
			what := "absent"
			if p.Encoding != "" {
				what = strconv.Quote(p.Header.Get("Content-Transfer-Encoding"))
			}
			st.anomaly(anomalySniffedQP, p.Path, "Content-Transfer-Encoding "+what+"; the body is quoted-printable and its links were read decoded and as declared")
			raw = qp.(*sniffedQP).raw
		}
		r = qp
	}
	label := p.Params["charset"]
	var both *boundedCopy // UTF-16 whose label leaves the byte order open: see OtherByteOrder
	if _, open := charset.OtherByteOrder(label, nil); open && raw == nil {
		both = newBoundedCopy(maxSniffedRaw)
		r = io.TeeReader(r, both)
	}
	if err := st.scanAs(r, p, source, label, true); err != nil {
		return err
	}
	if both != nil {
		if other, ok := charset.OtherByteOrder(label, both.b); ok {
			raw, label = both, other
		}
	}
	if raw == nil {
		return nil
	}
	// A second reading of the same bytes, which a client may show instead: the declared
	// bytes of a body sniffed as quoted-printable (a client that honours 7bit shows them,
	// and a body can be written so that its decoding cuts a link its declared bytes hold
	// whole: href= and a line break is HTML, and a soft break to the decoder), or UTF-16 in
	// the other byte order.
	if raw.cut {
		st.limit(limitSniffedTextBytes)
	}
	st.urls.Reread(true)
	defer st.urls.Reread(false)
	return st.scanAs(bytes.NewReader(raw.b), p, source, label, false)
}

// scanAs reads the links of a text part's body r in the charset label, with the scanner for
// its media type. note says whether an unknown charset is to be reported (once per part).
func (st *state) scanAs(r io.Reader, p *walker.Part, source, label string, note bool) error {
	cr, ok := charsetReader(label, r)
	if !ok && note {
		st.anomaly(anomalyUnknownCharset, p.Path, label)
	}
	var err error
	switch p.MediaType {
	case "text/html":
		err = st.urls.ScanHTML(cr, source)
	case "text/css":
		err = st.urls.ScanCSS(cr, source)
	case "text/calendar":
		err = st.urls.ScanCalendar(cr, source)
	default:
		err = st.urls.ScanText(cr, source)
	}
	return readFailure(err)
}

// textSource reports whether a leaf of this media type is read for links, and the URL source
// its links get when it is body text rather than an attachment. Beyond the body text proper,
// invitations (text/calendar), style sheets and bounce reports carry links a reader is shown
// or a client fetches; each kind is named apart so that a link only they hold can be weighed.
// The global (RFC 6533) forms of the bounce parts are the same text in UTF-8.
func textSource(mediaType string) (source string, ok bool) {
	switch mediaType {
	case "text/plain":
		return api.URLSourceText, true
	case "text/html":
		return api.URLSourceHTML, true
	case "text/css":
		return api.URLSourceCSS, true
	case "text/calendar":
		return api.URLSourceCalendar, true
	case "message/delivery-status", "message/global-delivery-status":
		return api.URLSourceDeliveryStatus, true
	case "text/rfc822-headers", "message/global-headers":
		return api.URLSourceRFC822Headers, true
	}
	return "", false
}

// scanHTMLFile reads the links of an attachment that opensAsHTML, whatever its declared type:
// the desktop opens it by its name, in a browser.
func (st *state) scanHTMLFile(r io.Reader) error {
	return readFailure(st.urls.ScanHTML(r, api.URLSourceAttachment))
}

// opensAsHTML reports whether a file of this name opens in a web browser when the recipient
// opens it, so its links are links the recipient can follow. A phishing page sent as
// application/octet-stream (or any other type) named statement.html is the common form.
func opensAsHTML(filename string) bool {
	switch strings.ToLower(path.Ext(filename)) {
	case ".htm", ".html", ".shtml", ".xhtml", ".svg":
		return true
	}
	return false
}

// readFailure passes on input failures and drops anything else: a scanner's trouble with
// the text is never a reason to refuse the copy.
func readFailure(err error) error {
	var re *walker.ReadError
	if errors.As(err, &re) {
		return re
	}
	var le *LocalError
	if errors.As(err, &le) {
		return le
	}
	return nil
}

// drain reads the rest of r so the hashes and the walker see every byte.
func (st *state) drain(r io.Reader) error {
	for {
		_, err := r.Read(st.sc.buf[:])
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return readFailure(err)
		}
	}
}

func (st *state) attachmentMeta(p *walker.Part, ctx *msgCtx) api.Attachment {
	disp, dparams, _ := walker.ParseMediaType(p.Header.Get("Content-Disposition"))
	filename := dparams["filename"]
	if filename == "" {
		filename = p.Params["name"]
	}
	filename, fixed := decodeFilename(filename)
	if fixed {
		st.anomaly(anomaly8bitFilename, p.Path, "read as Windows-1252")
	}
	a := api.Attachment{
		Path:        p.Path,
		Filename:    filename,
		ContentType: p.MediaType,
		Disposition: disp,
		ContentID:   strings.Trim(p.Header.Get("Content-ID"), "<> \t"),
	}
	if ctx.role == roleNested {
		a.Container = &api.Container{Kind: "message", Path: ctx.path}
	}
	return a
}

func (st *state) attachment(p *walker.Part, ctx *msgCtx, a api.Attachment, dec io.Reader, isText bool, urlSource string) error {
	var inspect func(io.Reader) error
	c := smime.Classify(p.MediaType, p.Params, a.Filename)
	switch e := st.noteCrypto(c, ctx, p.Path); {
	case e >= 0 && c.Feed == smime.FeedCMS && strings.HasSuffix(p.MediaType, "pkcs7-mime"):
		inspect = func(r io.Reader) error { return st.readOpaque(r, e, p) }
	case e >= 0 && c.Feed != smime.FeedNone:
		inspect = func(r io.Reader) error { return st.readCrypto(r, c.Feed, e, p.Path) }
	case isText && !st.opts.NoURLs:
		inspect = func(r io.Reader) error { return st.scanText(r, p, ctx, urlSource) }
	case opensAsHTML(a.Filename) && !st.opts.NoURLs:
		inspect = st.scanHTMLFile
	}
	if !st.room() {
		if inspect != nil {
			if err := inspect(dec); err != nil {
				return err
			}
		}
		return st.drain(dec)
	}
	var blob BlobWriter
	var extra io.Writer
	kept := false
	if st.opts.Attachments == AttachmentsContent {
		var err error
		if blob, err = st.opts.Blobs.Create(); err != nil {
			return &LocalError{Err: err}
		}
		defer func() { // on an error or a panic the blob is not the attachment's
			if !kept {
				blob.Abort()
			}
		}()
		extra = localWriter{blob}
	}
	i := len(st.attachments)
	st.attachments = append(st.attachments, a)
	inspector := func() func(io.Reader) error { return inspect }
	if u, ok := dec.(*uuReader); ok && inspect == nil && a.Filename == "" && !st.opts.NoURLs {
		// A uuencoded file's name, when its header gave none, is on its begin line, which
		// the first bytes read have passed.
		inspector = func() func(io.Reader) error {
			if opensAsHTML(u.name) {
				return st.scanHTMLFile
			}
			return nil
		}
	}
	if err := st.content(dec, i, extra, 0, inspector); err != nil {
		return err
	}
	if blob != nil {
		st.attachments[i].Blob = st.attachments[i].SHA256
		st.blobs.add(blob, st.attachments[i].SHA256)
		kept = true
	}
	return nil
}

func (st *state) lineEndings(crlf, lf, cr int64) {
	if st.opts.CRLFInput && lf > 0 {
		st.anomaly(anomalyBareLF, "", strconv.FormatInt(lf, 10)+" lines end in LF alone")
	}
	if cr > 0 {
		st.anomaly(anomalyBareCR, "", strconv.FormatInt(cr, 10)+" lines end in CR alone")
	}
	if !st.opts.CRLFInput && crlf > 0 && lf > 0 {
		st.anomaly(anomalyMixedLineEndings, "", fmt.Sprintf("%d CRLF and %d LF", crlf, lf))
	}
}

// record assembles the record from what the walk found. whole is false after a recovered
// panic: the attachments may be cut short, and a dedupe key from them would split the
// message from its other copies instead of being absent.
func (st *state) record(in *rawReader, whole bool) *api.Record {
	rec := &api.Record{
		Schema:  api.SchemaV1,
		Source:  st.source,
		Journal: st.journal,
	}
	switch {
	case st.scored == nil:
		if st.journal != nil {
			st.anomaly(anomalyJournalOriginalMissing, "", "journal report without an attached original")
		}
	case st.scored.depth == 0:
		st.msg.Size = in.n
		st.msg.SHA256 = hex.EncodeToString(in.h.Sum(nil))
	case st.scoredRaw != nil:
		st.msg.Size = st.scoredRaw.n
		st.msg.SHA256 = hex.EncodeToString(st.scoredRaw.sha256.Sum(nil))
	}
	if st.scored != nil {
		var b strings.Builder
		if st.scored.root.render(&b, st.opts.MaxStructureBytes) {
			st.limit(limitStructure)
		}
		st.msg.Structure = b.String()
	}
	st.msg.Crypto = st.crypto
	if whole && st.scored != nil && st.opts.Attachments != AttachmentsOff {
		st.msg.DedupeKey = dedupeKey(&st.msg, st.scoredAttachmentHashes())
	}
	rec.Message = st.msg
	st.findings.fill(rec)
	return rec
}
