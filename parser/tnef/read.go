package tnef

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors that travel up through the nested readers. Only io.EOF and io.ErrUnexpectedEOF mean
// "this container ended"; everything else ends the whole decode.
var (
	// errStreamEnd is the caller's stream ending. It replaces io.EOF at the root so that a
	// nested reader can tell "the whole stream stopped" from "my container stopped".
	errStreamEnd = errors.New("tnef: stream ended")
	// errLimit is MaxBytes running out while the stream still had bytes.
	errLimit = errors.New("tnef: size limit")
	// errHalt is a stop that has already been recorded (a limit, an onData failure).
	errHalt = errors.New("tnef: halted")
	// errExpired answers reads of a data reader after its onData call returned.
	errExpired = errors.New("tnef: data reader used after onData returned")
)

// sourceError is a failure of the caller's reader, which Decode hands back.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "tnef: reading stream: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// callbackError is a failure returned by onData, which Decode hands back.
type callbackError struct {
	index int
	err   error
}

func (e *callbackError) Error() string {
	return fmt.Sprintf("tnef: file %d: %v", e.index, e.err)
}
func (e *callbackError) Unwrap() error { return e.err }

// ended reports whether err only means that the current container ran out of bytes.
func ended(err error) bool {
	return err == io.EOF || err == io.ErrUnexpectedEOF
}

// root sits between the caller's reader and the buffer. It spends the MaxBytes budget, turns
// the stream's EOF into errStreamEnd and wraps the caller's errors, and it is sticky so that
// a consumer retrying a read cannot move past a failure.
type root struct {
	r        io.Reader
	left     int64 // budget still unspent
	consumed int64
	err      error
}

func (s *root) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if s.left <= 0 {
		// Read one byte past the budget so that a stream of exactly MaxBytes is not
		// reported as cut. That byte is never decoded.
		s.err = s.probe()
		return 0, s.err
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	if n < 0 || n > len(p) {
		n, err = 0, errors.New("invalid read count")
	}
	s.left -= int64(n)
	s.consumed += int64(n)
	switch {
	case err == nil:
	case err == io.EOF:
		s.err = errStreamEnd
	default:
		s.err = &sourceError{err}
	}
	return n, s.err
}

func (s *root) probe() error {
	var b [1]byte
	for range 100 {
		n, err := s.r.Read(b[:])
		if n > 0 {
			return errLimit
		}
		if err == io.EOF {
			return errStreamEnd
		}
		if err != nil {
			return &sourceError{err}
		}
	}
	return &sourceError{io.ErrNoProgress}
}

// span reads at most left bytes of its parent: one attribute, one MAPI value. When sum is
// set it adds every byte it passes to the attribute checksum.
type span struct {
	parent io.Reader
	left   int64
	sum    *uint32
}

func (s *span) Read(p []byte) (int, error) {
	if s.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.parent.Read(p)
	s.left -= int64(n)
	if s.sum != nil {
		*s.sum += checksum(p[:n])
	}
	if err == io.EOF {
		if s.left > 0 {
			return n, io.ErrUnexpectedEOF
		}
		err = nil
	}
	return n, err
}

// dataReader is what onData sees: the bytes of one attachment, ending with io.EOF whether
// they were complete or cut short (the decoder records which). The caller's own read
// failures pass through unchanged.
type dataReader struct {
	s       *span
	err     error // why the bytes stopped early, kept for the decoder
	expired bool
}

func (r *dataReader) Read(p []byte) (int, error) {
	if r.expired {
		return 0, errExpired
	}
	if r.err != nil {
		return 0, io.EOF
	}
	n, err := r.s.Read(p)
	if err == nil || err == io.EOF {
		return n, err
	}
	r.err = err
	var se *sourceError
	if errors.As(err, &se) {
		return n, se.err
	}
	return n, io.EOF
}

// readFull reads exactly len(p) bytes, treating a container that ends early as
// io.ErrUnexpectedEOF (or io.EOF when it ended before the first byte).
func readFull(r io.Reader, p []byte) error {
	_, err := io.ReadFull(r, p)
	return err
}

// skip discards n bytes of r using buf.
func skip(r io.Reader, n int64, buf []byte) error {
	for n > 0 {
		k := int64(len(buf))
		if k > n {
			k = n
		}
		m, err := r.Read(buf[:k])
		n -= int64(m)
		if n == 0 {
			return nil
		}
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		if err != nil {
			return err
		}
		if m == 0 {
			// Every reader below us makes progress or fails; this guards the loop anyway.
			return io.ErrNoProgress
		}
	}
	return nil
}

// checksum is the TNEF attribute checksum of p before the final mod 65536: the sum of its
// bytes. Attachments can be 100 MiB, so it adds 32 bytes a step in 16-bit lanes of two
// accumulators; a lane gains at most 4*255 per step, so 64 steps cannot overflow it.
func checksum(p []byte) uint32 {
	const lo = 0x00FF00FF00FF00FF
	var total uint32
	for len(p) >= 32 {
		steps := min(len(p)/32, 64)
		var a, b uint64
		for i := range steps {
			q := p[i*32 : i*32+32]
			v1 := binary.LittleEndian.Uint64(q[0:])
			v2 := binary.LittleEndian.Uint64(q[8:])
			v3 := binary.LittleEndian.Uint64(q[16:])
			v4 := binary.LittleEndian.Uint64(q[24:])
			a += v1&lo + (v1>>8)&lo + v2&lo + (v2>>8)&lo
			b += v3&lo + (v3>>8)&lo + v4&lo + (v4>>8)&lo
		}
		p = p[steps*32:]
		total += lanes(a) + lanes(b)
	}
	for _, c := range p {
		total += uint32(c)
	}
	return total
}

// lanes adds the four 16-bit lanes of v.
func lanes(v uint64) uint32 {
	return uint32(v&0xFFFF + (v>>16)&0xFFFF + (v>>32)&0xFFFF + v>>48)
}
