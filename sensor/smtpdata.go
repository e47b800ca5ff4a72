package sensor

import (
	"bufio"
	"bytes"
	"errors"
	"io"

	"github.com/emersion/go-smtp"
)

// errTooBig is the door's refusal of a message over MaxMessageBytes: RFC 1870's 552 5.3.4.
// It passes through smtpReply unchanged (a Refused outcome).
var errTooBig = &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Maximum message size exceeded"}

// errBDATAborted ends a BDAT message's stream when the sender sent a command other than BDAT
// (or NOOP) before the LAST chunk: the transaction is abandoned, and the command is served
// once the intake has given up on the message.
var errBDATAborted = errors.New("BDAT transaction abandoned before its LAST chunk")

// errMalformedBDAT ends a BDAT message whose next chunk's size cannot be read.
var errMalformedBDAT = errors.New("malformed BDAT arguments")

// unexpectedEOF turns the connection's EOF, which inside a message means it broke off, into
// an error, so that the intake never takes a cut-off message for a whole one.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// dotReader reads the body of DATA (RFC 5321 §4.1.1.4): it ends at CRLF.CRLF and nowhere
// else, a line beginning with "." loses that dot (§4.5.2), and every other byte, bare CR and
// bare LF included, is passed on as it came. It finds line ends with bytes.IndexByte over
// what the bufio.Reader holds, and never holds a line whole, so lines have no length limit.
type dotReader struct {
	br     *bufio.Reader
	bol    bool // the next byte begins a line: the start, or just after CRLF
	prevCR bool // the last byte passed on was CR
	done   bool // CRLF.CRLF was read
	err    error
}

func newDotReader(br *bufio.Reader) *dotReader { return &dotReader{br: br, bol: true} }

func (d *dotReader) Read(p []byte) (int, error) {
	if d.done {
		return 0, io.EOF
	}
	if d.err != nil {
		return 0, d.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if d.bol {
		// At a line start at least three bytes must still come: ".\r\n" at the least.
		b, err := d.br.Peek(3)
		if len(b) > 0 && b[0] == '.' {
			if len(b) == 3 && b[1] == '\r' && b[2] == '\n' {
				d.br.Discard(3)
				d.done = true
				return 0, io.EOF
			}
			if len(b) == 3 {
				d.br.Discard(1) // dot-stuffing
			}
		}
		if err != nil && len(b) < 3 {
			d.err = unexpectedEOF(err)
			return 0, d.err
		}
		d.bol, d.prevCR = false, false
	}
	if d.br.Buffered() == 0 {
		if _, err := d.br.Peek(1); err != nil {
			d.err = unexpectedEOF(err)
			return 0, d.err
		}
	}
	buf, _ := d.br.Peek(min(len(p), d.br.Buffered()))
	n := len(buf)
	for off := 0; off < n; {
		i := bytes.IndexByte(buf[off:n], '\n')
		if i < 0 {
			break
		}
		j := off + i
		if (j > 0 && buf[j-1] == '\r') || (j == 0 && d.prevCR) {
			n = j + 1
			d.bol = true
			break
		}
		off = j + 1
	}
	copy(p, buf[:n])
	d.br.Discard(n)
	d.prevCR = buf[n-1] == '\r'
	return n, nil
}

// limitReader refuses a message once more than max bytes of it were read.
type limitReader struct {
	r   io.Reader
	n   int64
	max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.max > 0 && l.n > l.max {
		return 0, &RefusedError{Err: errTooBig, Code: errTooBig.Code}
	}
	return n, err
}

// bdatReader reads a message sent in BDAT chunks (RFC 3030): exactly the bytes each chunk
// announces, through the chunk sent with LAST. When a chunk that is not the last is read
// whole, it answers it and reads the next command itself: BDAT goes on, NOOP is answered,
// anything else abandons the message (held in abort for the session to serve).
type bdatReader struct {
	c     *smtpConn
	left  int64 // bytes of the current chunk still to read
	last  bool  // the current chunk is the LAST one
	done  bool  // the LAST chunk was read whole
	acked bool  // the current chunk, read whole, was answered
	err   error // the connection failed
	abort *command
}

func (b *bdatReader) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	if b.err != nil {
		return 0, b.err
	}
	if b.abort != nil {
		return 0, errBDATAborted
	}
	for b.left == 0 {
		if b.last {
			b.done = true
			return 0, io.EOF
		}
		if !b.acked {
			b.c.reply(250, "2.0.0", "Continue")
			b.acked = true
		}
		line, err := b.c.readCommand()
		if errors.Is(err, errLineTooLong) {
			b.c.reply(500, "5.5.2", "Line too long")
			continue
		}
		if err != nil {
			b.err = unexpectedEOF(err)
			return 0, b.err
		}
		cmd, ok := parseCommand(line)
		switch {
		case ok && cmd.verb == "BDAT":
			size, last, err := parseBDAT(cmd.arg)
			if err != nil {
				// Where this chunk ends is unknown, so the message cannot be read whole,
				// nor the session go on: the message is Incomplete and the connection
				// closes (its bytes would otherwise be read as commands).
				b.err = errMalformedBDAT
				return 0, b.err
			}
			b.left, b.last, b.acked = size, last, false
		case ok && cmd.verb == "NOOP":
			b.c.reply(250, "2.0.0", "OK")
		default:
			if !ok {
				cmd = command{}
			}
			b.abort = &cmd
			return 0, errBDATAborted
		}
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.c.br.Read(p)
	b.left -= int64(n)
	if err != nil {
		b.err = unexpectedEOF(err)
		return n, b.err
	}
	return n, nil
}

// skipChunk discards what is left of the current chunk, so that the next command is read
// where it begins.
func (b *bdatReader) skipChunk() error {
	if b.err != nil || b.left == 0 {
		return b.err
	}
	n, err := b.c.br.Discard(int(min(b.left, 1<<62)))
	b.left -= int64(n)
	if err != nil {
		b.err = unexpectedEOF(err)
	}
	return b.err
}
