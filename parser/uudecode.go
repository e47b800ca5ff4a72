package parser

import (
	"bytes"
	"io"

	"github.com/journalsensor/sensor/parser/textfile"
)

// uuReader decodes a body sent with Content-Transfer-Encoding x-uuencode or one of its
// spellings. RFC 2045 does not know it, but MS-OXCMAIL has MIME readers decode x-uuencode and
// x-uue, as Exchange does; left undecoded, the attachment's hash is that of its uuencoded
// text, which no threat feed knows.
//
// Lines before "begin MODE NAME" are skipped, data lines are decoded until "end" or the
// zero-length line, and what follows is skipped. A body without a begin line starts at its
// first line of clear uuencode shape. Lines that are not uuencoded are skipped and counted.
// It holds one chunk of input, one line and one chunk of output, whatever the body's size.
type uuReader struct {
	r     io.Reader
	in    []byte // the chunk read last
	pos   int    // where its undecoded bytes start
	line  []byte // a line that spans chunks, up to uuMaxLine bytes
	long  bool   // the current line outgrew uuMaxLine; longN counts its bytes
	longN int64
	out   []byte // decoded bytes not yet returned
	off   int
	st    uuState
	err   error
	bad   int64  // bytes skipped inside the block and after it
	pre   int64  // bytes skipped before it, counted as bad if no block ever starts
	name  string // the file name of the begin line
	bufs  *byteCache
}

type uuState uint8

const (
	uuBefore uuState = iota // looking for the begin line
	uuData
	uuDone // after "end" or the zero-length line
)

const (
	uuChunk = 4 << 10
	// uuMaxLine is far beyond the 62 characters of a full uuencoded line, with room for a
	// checksum character and trailing white space. A longer line is not data.
	uuMaxLine = 256
)

func newUUReader(r io.Reader, bufs *byteCache) *uuReader {
	return &uuReader{
		r:    r,
		in:   bufs.get(uuChunk)[:0],
		line: bufs.get(uuMaxLine)[:0],
		out:  bufs.get(uuChunk)[:0],
		bufs: bufs,
	}
}

func (d *uuReader) release() {
	d.bufs.put(d.in)
	d.bufs.put(d.line)
	d.bufs.put(d.out)
	d.in, d.line, d.out = nil, nil, nil
}

// repairs uses the code of damaged uuencoded blocks in text: it is the same damage.
func (d *uuReader) repairs() (int64, string) {
	n := d.bad
	if d.st == uuBefore {
		n += d.pre
	}
	return n, anomalyEncodedFileDamaged
}

func (d *uuReader) Read(p []byte) (int, error) {
	for d.off == len(d.out) {
		d.out, d.off = d.out[:0], 0
		switch {
		case d.pos < len(d.in):
			d.lines()
		case d.err != nil:
			if len(d.line) == 0 && !d.long {
				return 0, d.err
			}
			d.lineEnd() // the last line had no line end
		default:
			n, err := d.r.Read(d.in[:cap(d.in)])
			d.in, d.pos, d.err = d.in[:n], 0, err
		}
	}
	n := copy(p, d.out[d.off:])
	d.off += n
	return n, nil
}

// lines decodes the complete lines of the chunk while the output has room for one more,
// keeping an incomplete last line for the next chunk.
func (d *uuReader) lines() {
	for d.pos < len(d.in) && cap(d.out)-len(d.out) >= textfile.MaxUULine {
		rest := d.in[d.pos:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			d.add(rest)
			d.pos = len(d.in)
			return
		}
		d.pos += i + 1
		if len(d.line) == 0 && !d.long {
			d.lineDone(rest[:i]) // the common case: no copy
			continue
		}
		d.add(rest[:i])
		d.lineEnd()
	}
}

// add appends part of a line that has not ended yet.
func (d *uuReader) add(seg []byte) {
	if !d.long && len(d.line)+len(seg) <= cap(d.line) {
		d.line = append(d.line, seg...)
		return
	}
	if !d.long {
		d.long, d.longN = true, int64(len(d.line))
		d.line = d.line[:0]
	}
	d.longN += int64(len(seg))
}

// lineEnd finishes the line gathered by add.
func (d *uuReader) lineEnd() {
	if d.long {
		d.skip(d.longN)
	} else {
		d.lineDone(d.line)
	}
	d.line, d.long, d.longN = d.line[:0], false, 0
}

// skip counts n bytes of a line that is not decoded.
func (d *uuReader) skip(n int64) {
	if d.st == uuBefore {
		d.pre += n
	} else {
		d.bad += n
	}
}

// lineDone handles one complete line, without its LF.
func (d *uuReader) lineDone(l []byte) {
	if len(l) > uuMaxLine {
		d.skip(int64(len(l))) // as add does with a line that spans chunks
		return
	}
	l = bytes.TrimSuffix(l, []byte("\r"))
	t := bytes.Trim(l, " \t")
	switch d.st {
	case uuBefore:
		if name, ok := textfile.UUBegin(l); ok {
			d.st, d.name = uuData, name
			return
		}
		if !textfile.UUDataLine(l) {
			d.skip(int64(len(l)))
			return
		}
		// QUIRK: some senders put the data of an x-uuencode part without its begin line,
		// as if the header gave it; the first line of clear uuencode shape starts it.
		d.st = uuData
	case uuDone:
		if len(t) > 0 && string(t) != "end" {
			d.skip(int64(len(l)))
		}
		return
	}
	switch {
	case string(t) == "end":
		d.st = uuDone
		return
	case len(t) == 0:
		// QUIRK: blank lines come from doubled line ends, or from the zero-length line
		// whose only character, a space, a mailer stripped.
		return
	case l[0] == '`' || l[0] == ' ':
		d.st = uuDone // the zero-length line: only "end" follows
		return
	}
	n, problem := textfile.DecodeUULine(d.out[len(d.out):cap(d.out)], l)
	if problem == textfile.UUBad {
		d.skip(int64(len(l)))
		return
	}
	d.out = d.out[:len(d.out)+n]
}

// uuName gives attachment i, the one of the part at path, the file name of the begin line its
// uuencoded body had, when its header named none: uudecode names the file so. The name is
// known only once the body is read, so what a file name decides before (smime.Classify's
// reading of a .p7m) went by the header alone.
func (st *state) uuName(dec decoder, i int, path string) {
	u, ok := dec.(*uuReader)
	if !ok || u.name == "" || i >= len(st.attachments) {
		return
	}
	a := &st.attachments[i]
	if a.Path != path || a.Filename != "" {
		return
	}
	name, fixed := decodeFilename(u.name)
	if fixed {
		st.anomaly(anomaly8bitFilename, path, "read as Windows-1252")
	}
	a.Filename = name
}
