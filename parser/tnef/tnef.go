// Package tnef lists the files inside a TNEF stream (application/ms-tnef, winmail.dat), as
// described by [MS-OXTNEF]. It reads the stream once, forward, handing each attachment's
// bytes to a callback as they go past, so an attachment of any size costs constant memory.
// Hostile senders write its input: every count and length is bounded, and garbage or a cut
// stream yields a result with anomalies rather than an error or a panic.
package tnef

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// Options bound one decode. For each limit, zero means the default and a negative value
// means no limit (the rule of go-message's ReadOptions), except MaxDepth: a negative
// MaxDepth means embedded messages are not decoded at all.
type Options struct {
	// MaxBytes is how much of the stream is read; past it decoding stops, nothing more is
	// read and "tnef_size" is hit. Default 256 MiB.
	MaxBytes int64
	// MaxAttributes bounds the attributes read, embedded streams included ("tnef_attributes").
	// Default 100000.
	MaxAttributes int
	// MaxFiles bounds the files listed, embedded ones included ("tnef_files"). Default 1000.
	MaxFiles int
	// MaxPropBytes caps any one attribute or MAPI value that is kept in memory (names, MIME
	// types, the message class); a longer one is skipped with an anomaly. It does not
	// apply to attachment bytes, which are streamed. Default 1 MiB; with no limit, an
	// attribute's declared length (up to 4 GiB) is what is held.
	MaxPropBytes int
	// MaxDepth bounds how deep embedded messages (attached messages carried as nested
	// TNEF streams) are decoded; deeper ones are handed to onData whole ("tnef_depth").
	// Default 4.
	MaxDepth int
}

// Default limits.
const (
	DefaultMaxBytes      = 256 << 20
	DefaultMaxAttributes = 100000
	DefaultMaxFiles      = 1000
	DefaultMaxPropBytes  = 1 << 20
	DefaultMaxDepth      = 4
)

// Names of the limits, as they appear in Result.LimitsHit.
const (
	LimitSize       = "tnef_size"
	LimitAttributes = "tnef_attributes"
	LimitFiles      = "tnef_files"
	LimitDepth      = "tnef_depth"
	LimitAnomalies  = "tnef_anomalies"
)

// Anomaly codes.
const (
	// AnomalyBadSignature: the stream does not start with the TNEF signature; nothing was
	// decoded.
	AnomalyBadSignature = "bad_signature"
	// AnomalyBadChecksum: an attribute's checksum does not match its bytes (they are kept).
	AnomalyBadChecksum = "bad_checksum"
	// AnomalyBadLevel: an attribute level byte is neither message (1) nor attachment (2).
	AnomalyBadLevel = "bad_level"
	// AnomalyTruncated: the stream, or an embedded one, ended inside an attribute.
	AnomalyTruncated = "truncated"
	// AnomalyAttributeTooLarge: an attribute that would be kept exceeds MaxPropBytes.
	AnomalyAttributeTooLarge = "attribute_too_large"
	// AnomalyPropertyTooLarge: a MAPI value that would be kept exceeds MaxPropBytes.
	AnomalyPropertyTooLarge = "property_too_large"
	// AnomalyBadProperty: a MAPI property list is malformed; the rest of it was skipped.
	AnomalyBadProperty = "bad_property"
	// AnomalyMissingRendData: an attachment attribute came before any attAttachRendData.
	AnomalyMissingRendData = "missing_rend_data"
	// AnomalyDuplicateData: an attachment carried its bytes twice (attAttachData and
	// PR_ATTACH_DATA_BIN); only the first copy was read.
	AnomalyDuplicateData = "duplicate_data"
	// AnomalyBadEmbedded: an attached message is not a TNEF stream; its bytes were handed
	// to onData as a file.
	AnomalyBadEmbedded = "bad_embedded"
)

// maxAnomalies bounds Result.Anomalies: a stream of a million bad checksums must not cost a
// million records.
const maxAnomalies = 64

// Anomaly is something malformed or cut short in the stream. Detail never carries content.
type Anomaly struct {
	Code   string
	Detail string
}

// File is one attachment of the stream, or of a message embedded in it.
type File struct {
	// Index is the file's position in Result.Files.
	Index int
	// Parent is the Index of the embedded message this file was found in, -1 at top level.
	Parent int
	// Title is attAttachTitle, decoded from the message code page.
	Title string
	// LongFilename is PR_ATTACH_LONG_FILENAME.
	LongFilename string
	// Filename is PR_ATTACH_FILENAME (an 8.3 name).
	Filename string
	// Extension is PR_ATTACH_EXTENSION, such as ".pdf".
	Extension string
	// DisplayName is PR_DISPLAY_NAME; for an attached message it is usually the subject.
	DisplayName string
	// MIMEType is PR_ATTACH_MIME_TAG.
	MIMEType string
	// ContentID is PR_ATTACH_CONTENT_ID.
	ContentID string
	// Method is PR_ATTACH_METHOD (1 by value, 5 embedded message, 6 OLE), 0 when absent.
	Method int
	// Size is the number of attachment bytes in the stream: those onData read plus those
	// it left, which Decode skipped. For a decoded embedded message it is the length of
	// the nested stream.
	Size int64
	// Data is what onData returned for this file; nil for a decoded embedded message.
	Data any
	// Embedded marks an attached message rather than a file.
	Embedded bool
	// MessageClass is the class of a decoded embedded message, such as "IPM.Note".
	MessageClass string
	// Truncated marks bytes that stopped before their declared length.
	Truncated bool
}

// Name is the best name the stream gives the file: the long filename, else the title, else
// the 8.3 filename, else the display name.
func (f File) Name() string {
	for _, s := range []string{f.LongFilename, f.Title, f.Filename, f.DisplayName} {
		if s != "" {
			return s
		}
	}
	return ""
}

// Result is what one decode found.
type Result struct {
	// MessageClass is attMessageClass, else PR_MESSAGE_CLASS from attMsgProps.
	MessageClass string
	// Files lists attachments in stream order; an embedded message comes before the files
	// found inside it.
	Files []File
	// Anomalies lists what was malformed or cut short, at most 64.
	Anomalies []Anomaly
	// LimitsHit names the limits that cut the decode short, each once.
	LimitsHit []string
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
	switch {
	case o.MaxBytes == 0:
		o.MaxBytes = DefaultMaxBytes
	case o.MaxBytes < 0:
		o.MaxBytes = math.MaxInt64
	}
	def(&o.MaxAttributes, DefaultMaxAttributes)
	def(&o.MaxFiles, DefaultMaxFiles)
	def(&o.MaxPropBytes, DefaultMaxPropBytes)
	switch {
	case o.MaxDepth == 0:
		o.MaxDepth = DefaultMaxDepth
	case o.MaxDepth < 0:
		o.MaxDepth = 0
	}
	return o
}

// Decode reads a TNEF stream from r. For each attachment it calls onData once, in stream
// order, with a reader of exactly that attachment's bytes (streamed, not buffered), and
// keeps the return value in File.Data; what onData leaves unread is skipped. A file whose
// bytes never appear gets an empty reader. A decoded embedded message gets no call; its
// files do. onData may be nil, to list files without reading them.
//
// Decode is total: garbage or a truncated stream gives a Result with anomalies. The error is
// non-nil only when r fails or onData returns an error (wrapped); the Result then holds what
// was found before.
func Decode(r io.Reader, opts Options, onData func(io.Reader) (any, error)) (*Result, error) {
	opts = opts.withDefaults()
	src := &root{r: r, left: opts.MaxBytes}
	d := &decoder{
		opts:   opts,
		src:    src,
		br:     bufio.NewReaderSize(src, 8<<10),
		onData: onData,
		res:    &Result{},
		buf:    make([]byte, 8<<10),
	}
	top := &level{parent: -1, cp: defaultCodepage, cur: -1}
	_ = d.run(d.br, top)
	d.res.MessageClass = top.class
	if d.fatal != nil {
		return d.res, d.fatal
	}
	return d.res, nil
}

// TNEF constants from [MS-OXTNEF] 2.1.3 and 2.1.3.2.
const (
	signature = 0x223E9F78

	levelMessage    = 1
	levelAttachment = 2

	// Attribute ids without their type half: a few writers get the type wrong, and the id
	// alone is unambiguous.
	attMessageClass   = 0x8008
	attAttachData     = 0x800F
	attAttachTitle    = 0x8010
	attAttachRendData = 0x9002
	attMsgProps       = 0x9003
	attAttachment     = 0x9005
	attOemCodepage    = 0x9007
)

// decoder is the state of one Decode call.
type decoder struct {
	opts   Options
	src    *root
	br     *bufio.Reader
	onData func(io.Reader) (any, error)
	res    *Result
	attrs  int
	hdr    [24]byte
	buf    []byte // scratch for skipping; never used by two callers at once
	fatal  error
}

// level is the state of one stream: the outer one or an embedded message.
type level struct {
	depth     int
	parent    int    // Index of the embedded File this stream is, -1 for the outer stream
	cp        uint32 // code page of PT_STRING8 values and legacy string attributes
	cur       int    // Index of the attachment being read, -1 before the first
	delivered bool   // cur has had its onData call or was decoded as a message
	class     string
	classAttr bool // class came from attMessageClass, which beats PR_MESSAGE_CLASS
}

func (d *decoder) offset() int64 { return d.src.consumed - int64(d.br.Buffered()) }

func (d *decoder) anomaly(code, format string, args ...any) {
	if len(d.res.Anomalies) >= maxAnomalies {
		d.limit(LimitAnomalies)
		return
	}
	d.res.Anomalies = append(d.res.Anomalies, Anomaly{Code: code, Detail: fmt.Sprintf(format, args...)})
}

func (d *decoder) limit(name string) {
	for _, l := range d.res.LimitsHit {
		if l == name {
			return
		}
	}
	d.res.LimitsHit = append(d.res.LimitsHit, name)
}

// halt records why the decode stops and returns errHalt, or returns nil when err only
// means that an embedded stream ended early, which ends that stream alone.
func (d *decoder) halt(err error, lv *level, where string) error {
	switch e := err.(type) {
	case *sourceError, *callbackError:
		if d.fatal == nil {
			d.fatal = e
		}
		return errHalt
	}
	switch err {
	case nil, errHalt:
		return err
	case errStreamEnd:
		d.anomaly(AnomalyTruncated, "stream ended in %s at offset %d", where, d.offset())
		return errHalt
	case errLimit:
		d.limit(LimitSize)
		return errHalt
	case io.EOF, io.ErrUnexpectedEOF:
		if lv.parent < 0 {
			d.anomaly(AnomalyTruncated, "stream ended in %s at offset %d", where, d.offset())
			return errHalt
		}
		d.anomaly(AnomalyTruncated, "embedded message %d ended in %s", lv.parent, where)
		return nil
	}
	if d.fatal == nil {
		d.fatal = fmt.Errorf("tnef: %w", err)
	}
	return errHalt
}

// run decodes one stream and then delivers its last attachment.
func (d *decoder) run(r io.Reader, lv *level) error {
	err := d.stream(r, lv)
	if d.fatal == nil {
		if ferr := d.finish(lv); ferr != nil {
			err = d.halt(ferr, lv, "end of stream")
		}
	}
	return err
}

func (d *decoder) stream(r io.Reader, lv *level) error {
	n, err := io.ReadFull(r, d.hdr[:6])
	if err != nil {
		if n == 0 && (err == io.EOF || err == errStreamEnd) {
			d.anomaly(AnomalyTruncated, "empty stream")
			return nil
		}
		return d.halt(err, lv, "signature")
	}
	if sig := binary.LittleEndian.Uint32(d.hdr[:4]); sig != signature {
		d.anomaly(AnomalyBadSignature, "signature %#08x", sig)
		return nil
	}
	for {
		at := d.offset()
		n, err := io.ReadFull(r, d.hdr[:9])
		if err != nil {
			if n == 0 && (err == io.EOF || err == errStreamEnd) {
				return nil
			}
			return d.halt(err, lv, "attribute header")
		}
		d.attrs++
		if d.attrs > d.opts.MaxAttributes {
			d.limit(LimitAttributes)
			return errHalt
		}
		lvl := d.hdr[0]
		id := binary.LittleEndian.Uint32(d.hdr[1:5])
		length := binary.LittleEndian.Uint32(d.hdr[5:9])
		if lvl != levelMessage && lvl != levelAttachment {
			d.anomaly(AnomalyBadLevel, "level %d of attribute %#08x at offset %d", lvl, id, at)
		}
		var sum uint32
		sp := &span{parent: r, left: int64(length), sum: &sum}
		err = d.attribute(sp, lv, id)
		if err == nil {
			err = skip(sp, sp.left, d.buf)
		}
		if err == nil {
			err = readFull(r, d.hdr[:2])
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
		}
		if err != nil {
			return d.halt(err, lv, fmt.Sprintf("attribute %#08x", id))
		}
		if want := binary.LittleEndian.Uint16(d.hdr[:2]); uint16(sum) != want {
			d.anomaly(AnomalyBadChecksum, "attribute %#08x at offset %d: sum %#04x, stored %#04x",
				id, at, uint16(sum), want)
		}
	}
}

// attribute reads what it needs of one attribute's data; the caller skips the rest.
func (d *decoder) attribute(sp *span, lv *level, id uint32) error {
	switch id & 0xFFFF {
	case attAttachRendData:
		return d.newAttachment(lv)
	case attAttachData:
		if err := d.needAttachment(lv, id); err != nil {
			return err
		}
		return d.data(sp, lv, sp.left, nil, "attAttachData")
	case attAttachTitle:
		if err := d.needAttachment(lv, id); err != nil {
			return err
		}
		b, err := d.keep(sp, id)
		if b != nil {
			d.res.Files[lv.cur].Title = decodeString8(b, lv.cp)
		}
		return err
	case attMessageClass:
		b, err := d.keep(sp, id)
		if b != nil {
			lv.class = decodeString8(b, lv.cp)
			lv.classAttr = true
		}
		return err
	case attOemCodepage:
		if sp.left >= 4 {
			if err := readFull(sp, d.hdr[:4]); err != nil {
				return err
			}
			lv.cp = binary.LittleEndian.Uint32(d.hdr[:4])
		}
		return nil
	case attAttachment:
		if err := d.needAttachment(lv, id); err != nil {
			return err
		}
		return d.properties(sp, lv, true)
	case attMsgProps:
		return d.properties(sp, lv, false)
	}
	return nil
}

// keep reads a whole small attribute into memory, or skips it with an anomaly when it is
// larger than MaxPropBytes.
func (d *decoder) keep(sp *span, id uint32) ([]byte, error) {
	if sp.left > int64(d.opts.MaxPropBytes) {
		d.anomaly(AnomalyAttributeTooLarge, "attribute %#08x of %d bytes", id, sp.left)
		return nil, nil
	}
	b, err := readAll(sp)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// readAll reads the rest of a span whose length is already known to be small. It grows its
// buffer as bytes arrive, so a declared length the stream does not back costs nothing.
func readAll(sp *span) ([]byte, error) {
	if sp.left <= 4096 {
		b := make([]byte, sp.left)
		return b, readFull(sp, b)
	}
	return io.ReadAll(sp)
}

// needAttachment starts an attachment for an attachment attribute that came without one.
func (d *decoder) needAttachment(lv *level, id uint32) error {
	if lv.cur >= 0 {
		return nil
	}
	d.anomaly(AnomalyMissingRendData, "attribute %#08x before any attAttachRendData", id)
	return d.newAttachment(lv)
}

func (d *decoder) newAttachment(lv *level) error {
	if err := d.finish(lv); err != nil {
		return err
	}
	if len(d.res.Files) >= d.opts.MaxFiles {
		d.limit(LimitFiles)
		return errHalt
	}
	i := len(d.res.Files)
	d.res.Files = append(d.res.Files, File{Index: i, Parent: lv.parent})
	lv.cur, lv.delivered = i, false
	return nil
}

// finish gives the current attachment its onData call if its bytes never came.
func (d *decoder) finish(lv *level) error {
	if lv.cur < 0 || lv.delivered {
		return nil
	}
	return d.data(bytes.NewReader(nil), lv, 0, nil, "")
}

// data hands n bytes of r, after prefix, to onData as the current attachment's bytes and
// then skips what onData left. An error it returns is the container's: the bytes reached
// onData as far as they went.
func (d *decoder) data(r io.Reader, lv *level, n int64, prefix []byte, what string) error {
	if lv.delivered {
		if n > 0 {
			d.anomaly(AnomalyDuplicateData, "file %d: second copy in %s ignored", lv.cur, what)
		}
		return skip(r, n, d.buf)
	}
	if n == 0 && what != "" {
		// An empty attAttachData is common when the bytes sit in PR_ATTACH_DATA_BIN
		// later on; finish delivers the empty file if nothing else comes.
		return nil
	}
	src := r
	if len(prefix) > 0 {
		src = io.MultiReader(bytes.NewReader(prefix), r)
	}
	dr := &dataReader{s: &span{parent: src, left: n + int64(len(prefix))}}
	var v any
	var cerr error
	if d.onData != nil {
		v, cerr = d.onData(dr)
	}
	dr.expired = true
	lv.delivered = true
	f := &d.res.Files[lv.cur]
	if _, ok := dr.err.(*sourceError); ok {
		return dr.err
	}
	if cerr != nil {
		return &callbackError{index: lv.cur, err: cerr}
	}
	err := dr.err
	if err == nil {
		err = skip(dr.s, dr.s.left, d.buf)
	}
	f.Data = v
	f.Size = n + int64(len(prefix)) - dr.s.left
	if err != nil {
		f.Truncated = true
	}
	return err
}
