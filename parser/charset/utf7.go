package charset

import (
	"errors"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/transform"
)

// utf7 is UTF-7 (RFC 2152). The WHATWG Standard dropped it, since a browser that read it
// let "+ADw-script" through filters, but Thunderbird still decodes it in mail, and a scanner
// that does not sees none of the markup a shifted run spells. Only decoding is implemented.
type utf7 struct{}

func (utf7) NewDecoder() *encoding.Decoder {
	return &encoding.Decoder{Transformer: &utf7Decoder{}}
}

func (utf7) NewEncoder() *encoding.Encoder {
	return &encoding.Encoder{Transformer: noEncoder{}}
}

// noEncoder fails: nothing here writes UTF-7.
type noEncoder struct{ transform.NopResetter }

func (noEncoder) Transform(dst, src []byte, atEOF bool) (int, int, error) {
	return 0, 0, errors.New("charset: no UTF-7 encoder")
}

// utf7Decoder turns UTF-7 into UTF-8. Outside a run, bytes are themselves. "+" starts a run
// of modified base64 (no padding) holding UTF-16 code units; any byte outside the base64
// alphabet ends it, and a "-" that does is absorbed; "+-" is a literal "+". What cannot be
// decoded (an 8-bit byte, a lone surrogate, bits left over at the end of a run that are not
// the zero padding of the last unit) becomes U+FFFD, as Python's decoder with errors="replace"
// does.
//
// Its state lives between calls, so a run may be split anywhere across them.
type utf7Decoder struct {
	shifted bool   // inside a run
	fresh   bool   // the run's "+" was the last byte: a "-" now means "+"
	bits    uint32 // bits of the run not yet making up a unit, nbits of them
	nbits   uint
	high    uint16 // a high surrogate waiting for its low half, or 0
}

func (d *utf7Decoder) Reset() { *d = utf7Decoder{} }

// utf7MaxOut is the most one source byte can write: a stranded high surrogate's U+FFFD and
// then a unit of three bytes, or a surrogate pair's four.
const utf7MaxOut = 6

func (d *utf7Decoder) Transform(dst, src []byte, atEOF bool) (nDst, nSrc int, err error) {
	for nSrc < len(src) {
		if len(dst)-nDst < utf7MaxOut {
			return nDst, nSrc, transform.ErrShortDst
		}
		c := src[nSrc]
		if !d.shifted {
			switch {
			case c == '+':
				d.shifted, d.fresh = true, true
			case c < utf8.RuneSelf:
				dst[nDst] = c
				nDst++
			default: // UTF-7 is 7-bit
				nDst += utf8.EncodeRune(dst[nDst:], utf8.RuneError)
			}
			nSrc++
			continue
		}
		if v := b64Value(c); v >= 0 {
			d.fresh = false
			d.bits = d.bits<<6 | uint32(v)
			d.nbits += 6
			if d.nbits >= 16 {
				d.nbits -= 16
				nDst += d.unit(dst[nDst:], uint16(d.bits>>d.nbits))
				d.bits &= 1<<d.nbits - 1
			}
			nSrc++
			continue
		}
		if d.fresh && c == '-' {
			dst[nDst] = '+'
			nDst++
			d.shifted, d.fresh = false, false
			nSrc++
			continue
		}
		nDst += d.endRun(dst[nDst:])
		if c == '-' {
			nSrc++ // absorbed; any other byte is read again as direct text
		}
	}
	if atEOF && d.shifted {
		if len(dst)-nDst < utf7MaxOut {
			return nDst, nSrc, transform.ErrShortDst
		}
		nDst += d.endRun(dst[nDst:])
	}
	return nDst, nSrc, nil
}

// unit writes the UTF-8 of one UTF-16 code unit, pairing surrogates.
func (d *utf7Decoder) unit(dst []byte, u uint16) int {
	n := 0
	if d.high != 0 {
		if utf16.IsSurrogate(rune(u)) && u >= 0xDC00 {
			r := utf16.DecodeRune(rune(d.high), rune(u))
			d.high = 0
			return utf8.EncodeRune(dst, r)
		}
		n = utf8.EncodeRune(dst, utf8.RuneError)
		d.high = 0
	}
	switch {
	case u >= 0xD800 && u < 0xDC00:
		d.high = u
	case u >= 0xDC00 && u < 0xE000:
		n += utf8.EncodeRune(dst[n:], utf8.RuneError) // a low surrogate alone
	default:
		n += utf8.EncodeRune(dst[n:], rune(u))
	}
	return n
}

// endRun closes a run: a high surrogate without its low half, or six or more bits left, or
// nonzero padding bits, mean the run was cut or forged.
func (d *utf7Decoder) endRun(dst []byte) int {
	bad := d.high != 0 || d.nbits >= 6 || d.bits != 0
	*d = utf7Decoder{}
	if bad {
		return utf8.EncodeRune(dst, utf8.RuneError)
	}
	return 0
}

// b64Value returns the value of a base64 character, or -1.
func b64Value(c byte) int {
	switch {
	case 'A' <= c && c <= 'Z':
		return int(c - 'A')
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 26
	case '0' <= c && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}
