package smime

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/flate"
	"compress/zlib"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// OpenPGP packet tags (RFC 9580 §5).
const (
	pktPKESK        = 1
	pktSignature    = 2
	pktSKESK        = 3
	pktOnePass      = 4
	pktPublicKey    = 6
	pktCompressed   = 8
	pktSED          = 9
	pktLiteral      = 11
	pktPublicSubkey = 14
	pktSEIPD        = 18
	pktAEAD         = 20
)

var errNoPGP = errors.New("smime: no OpenPGP data found")

// ReadPGP describes OpenPGP data (RFC 9580, RFC 4880), ASCII-armoured or binary: a detached
// signature, a cleartext-signed text, an encrypted message or a key block. It lists the
// signers (issuer key ID and fingerprint, from subpackets 16 and 33, and the signature
// time), the recipients of public-key encrypted session keys, and the fingerprints of the
// public keys carried.
//
// It reads at most about 2×opts.MaxBytes of r and keeps at most opts.MaxBytes of decoded
// packets; an encrypted message is described from its first packets, which is all it
// needs. The caller should drain r afterwards.
func ReadPGP(r io.Reader, opts Options) (info Info, err error) {
	defer guard(&err)
	opts = opts.withDefaults()
	br := bufio.NewReaderSize(r, 4096)
	if bom, _ := br.Peek(3); string(bom) == "\xef\xbb\xbf" {
		// QUIRK: RFC 9580 §6.2 armour is plain ASCII, but .asc files saved by Windows
		// editors start with a UTF-8 byte order mark.
		_, _ = br.Discard(3)
	}
	first, err := skipSpace(br)
	if err != nil {
		return info, errNoPGP
	}
	p := &pgpReader{opts: opts, info: &info, budget: opts.MaxBytes}
	var data []byte
	if first&0x80 != 0 {
		data, err = io.ReadAll(io.LimitReader(br, int64(opts.MaxBytes)))
		if err != nil {
			return info, err
		}
		p.budget -= len(data)
	} else {
		label, armoured, complete, rerr := dearmor(br, opts.MaxBytes)
		if rerr != nil {
			return info, rerr
		}
		if label == "" {
			return info, errNoPGP
		}
		data = armoured
		info.Kind = PGP
		info.Signed = label == "SIGNATURE" || label == "SIGNED MESSAGE"
		info.Truncated = !complete
		p.budget -= len(data)
	}
	if p.packets(data, 0) {
		info.Kind = PGP
	}
	if info.Kind == "" {
		return Info{}, errNoPGP
	}
	return info, nil
}

func skipSpace(br *bufio.Reader) (byte, error) {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		if c != ' ' && c != '\t' && c != '\r' && c != '\n' {
			return c, br.UnreadByte()
		}
	}
}

// dearmor finds the first armour block (RFC 9580 §6.2) and decodes it, keeping at most max
// bytes. A cleartext-signed message (§7) is skipped over to the signature block that follows
// its text. label is the armour type ("SIGNATURE", "MESSAGE", ...), "" when none was found;
// complete is false when the block was cut short by the limit or the end of the input. err
// is only a failure to read r.
func dearmor(br *bufio.Reader, max int) (label string, data []byte, complete bool, err error) {
	const (
		seek = iota
		headers
		body
	)
	state := seek
	raw := 0        // bytes read: a huge text without armour is not read to its end
	var quad []byte // base64 characters not yet decoded (fewer than 4)
	start := true   // the next read begins a line
	for {
		line, rerr := br.ReadSlice('\n')
		raw += len(line)
		if raw > 2*max+4096 {
			return label, data, false, nil
		}
		atStart := start
		start = rerr == nil
		text := strings.TrimRight(string(line), " \t\r\n")
		switch {
		case !atStart:
			// The rest of a line longer than the read buffer: armour lines are at most 76
			// characters, so this is text, or damage that the base64 filter drops.
		case state == seek:
			if l, ok := strings.CutPrefix(text, "-----BEGIN PGP "); ok {
				l, _ = strings.CutSuffix(l, "-----")
				label = l
				if l != "SIGNED MESSAGE" { // else look for the SIGNATURE block after the text
					state = headers
				}
			}
		case state == headers:
			if text == "" {
				state = body
				break
			}
			if k, _, ok := strings.Cut(text, ":"); ok && k != "" && !strings.ContainsAny(k, " \t") {
				break // an armour header such as Version: or Comment:
			}
			// QUIRK: RFC 9580 §6.2 wants a blank line after the armour headers; some
			// webmail forms drop it, so a line that is not a header starts the base64.
			state = body
			fallthrough
		case state == body:
			if strings.HasPrefix(text, "-----END PGP") || (strings.HasPrefix(text, "=") && len(text) <= 5) {
				return label, data, true, nil // the end, or the CRC-24 line just before it
			}
		}
		if state == body {
			for _, c := range line {
				if !isBase64(c) {
					continue
				}
				quad = append(quad, c)
				if len(quad) < 4 {
					continue
				}
				var out [3]byte
				n, derr := base64.StdEncoding.Decode(out[:], quad)
				quad = quad[:0]
				if len(data)+n > max {
					return label, data, false, nil
				}
				data = append(data, out[:n]...)
				if derr != nil || n < 3 {
					return label, data, true, nil // padding: the base64 is complete
				}
			}
		}
		switch {
		case rerr == io.EOF:
			return label, data, state == seek && label == "", nil
		case rerr != nil && rerr != bufio.ErrBufferFull:
			return label, data, false, rerr
		}
	}
}

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' ||
		c == '+' || c == '/' || c == '='
}

type pgpReader struct {
	opts   Options
	info   *Info
	budget int // bytes still allowed for decompression
}

// packets reads a sequence of packets and reports whether any was recognised. It stops at
// the first encrypted data packet, which is all an encrypted message has to say.
func (p *pgpReader) packets(data []byte, depth int) bool {
	seen := false
	keys := false // after a key packet, signatures certify keys; they sign no message
	for len(data) > 0 {
		tag, body, rest, complete := nextPacket(data)
		if tag < 0 {
			return seen
		}
		if !complete {
			p.info.Truncated = true
		}
		switch tag {
		case pktPKESK:
			seen = true
			p.info.Encrypted = true
			p.pkesk(body)
		case pktSKESK:
			seen = true
			p.info.Encrypted = true
		case pktSED, pktSEIPD, pktAEAD:
			p.info.Encrypted = true
			return true
		case pktSignature:
			seen = true
			if !keys {
				p.info.Signed = true
				p.signature(body)
			}
		case pktOnePass:
			seen = true
			p.info.Signed = true
			p.onePass(body)
		case pktPublicKey, pktPublicSubkey:
			seen, keys = true, true
			if complete {
				p.publicKey(body)
			}
		case pktCompressed:
			seen = true
			// Inflated even when cut short: the one-pass signature packets come first.
			if depth < 2 {
				p.packets(p.decompress(body), depth+1)
			}
		case pktLiteral:
			seen = true
		}
		data = rest
	}
	return seen
}

// nextPacket splits the first packet off data (RFC 9580 §4.2). tag is -1 when data does not
// start with a packet header. Partial body lengths (§4.2.1.4) are joined. complete is false
// when data ends inside the packet; body then holds what there is.
func nextPacket(data []byte) (tag int, body, rest []byte, complete bool) {
	if len(data) < 2 || data[0]&0x80 == 0 {
		return -1, nil, nil, false
	}
	b := data[0]
	if b&0x40 == 0 { // legacy format (§4.2.2)
		tag = int(b>>2) & 0x0f
		var n int
		data = data[1:]
		switch b & 3 {
		case 0:
			n, data = int(data[0]), data[1:]
		case 1:
			if len(data) < 2 {
				return -1, nil, nil, false
			}
			n, data = int(binary.BigEndian.Uint16(data)), data[2:]
		case 2:
			if len(data) < 4 {
				return -1, nil, nil, false
			}
			u := binary.BigEndian.Uint32(data)
			data = data[4:]
			if uint64(u) > uint64(len(data)) {
				return tag, data, nil, false
			}
			n = int(u)
		case 3: // indeterminate: to the end of the data
			return tag, data, nil, true
		}
		if n > len(data) {
			return tag, data, nil, false
		}
		return tag, data[:n], data[n:], true
	}
	tag = int(b & 0x3f)
	data = data[1:]
	var joined []byte
	for {
		n, partial, hl := newLength(data)
		if hl == 0 {
			return tag, joined, nil, false
		}
		data = data[hl:]
		if n > len(data) {
			return tag, append(joined, data...), nil, false
		}
		if !partial {
			if joined == nil {
				return tag, data[:n], data[n:], true
			}
			return tag, append(joined, data[:n]...), data[n:], true
		}
		joined = append(joined, data[:n]...)
		data = data[n:]
	}
}

// newLength reads a new-format body length (RFC 9580 §4.2.1); hl is 0 when it is cut off.
func newLength(b []byte) (n int, partial bool, hl int) {
	if len(b) == 0 {
		return 0, false, 0
	}
	switch c := b[0]; {
	case c < 192:
		return int(c), false, 1
	case c < 224:
		if len(b) < 2 {
			return 0, false, 0
		}
		return (int(c)-192)<<8 + int(b[1]) + 192, false, 2
	case c < 255:
		return 1 << (c & 0x1f), true, 1
	default:
		if len(b) < 5 {
			return 0, false, 0
		}
		u := binary.BigEndian.Uint32(b[1:])
		if u > 1<<30 {
			return 1 << 30, false, 5 // longer than any input we hold: reads as cut off
		}
		return int(u), false, 5
	}
}

// decompress inflates a Compressed Data packet (RFC 9580 §5.6) within the byte budget.
func (p *pgpReader) decompress(body []byte) []byte {
	if len(body) < 1 || p.budget <= 0 {
		p.info.Truncated = true
		return nil
	}
	src := bytes.NewReader(body[1:])
	var r io.Reader
	switch body[0] {
	case 0:
		r = src
	case 1:
		r = flate.NewReader(src)
	case 2:
		zr, err := zlib.NewReader(src)
		if err != nil {
			return nil
		}
		r = zr
	case 3:
		r = bzip2.NewReader(src)
	default:
		return nil
	}
	out, err := io.ReadAll(io.LimitReader(r, int64(p.budget)+1))
	if len(out) > p.budget {
		out = out[:p.budget]
		p.info.Truncated = true
	} else if err != nil {
		p.info.Truncated = true
	}
	p.budget -= len(out)
	return out
}

func (p *pgpReader) pkesk(b []byte) {
	switch {
	case len(b) >= 10 && b[0] == 3: // version, key ID, algorithm
		p.addID(&p.info.Recipients, ID{KeyID: hex.EncodeToString(b[1:9])})
	case len(b) >= 2 && b[0] == 6: // version, length, key version, fingerprint (RFC 9580 §5.1.2)
		n := int(b[1])
		if n > 1 && len(b) >= 2+n {
			p.addID(&p.info.Recipients, pgpFingerprintID(b[3:2+n]))
		} else if n == 0 {
			p.addID(&p.info.Recipients, ID{KeyID: "0000000000000000"}) // anonymous recipient
		}
	}
}

func (p *pgpReader) onePass(b []byte) {
	switch {
	case len(b) >= 13 && b[0] == 3: // version, type, hash, public-key algorithm, key ID, flag
		p.algorithms(b[2], b[3])
		p.addID(&p.info.Signers, ID{KeyID: hex.EncodeToString(b[4:12])})
	case len(b) >= 5 && b[0] == 6: // ..., salt length, salt, fingerprint (32), flag
		p.algorithms(b[2], b[3])
		n := int(b[4])
		if len(b) >= 5+n+32 {
			p.addID(&p.info.Signers, pgpFingerprintID(b[5+n:5+n+32]))
		}
	}
}

// signature reads a Signature packet (RFC 9580 §5.2): version 3 names its key directly;
// versions 4 to 6 name it in subpackets: 16 issuer key ID, 33 issuer fingerprint, and
// 2 creation time.
func (p *pgpReader) signature(b []byte) {
	if len(b) < 1 {
		return
	}
	var id ID
	switch b[0] {
	case 2, 3:
		if len(b) < 17 || b[1] != 5 {
			return
		}
		id.SigningTime = formatUnix(int64(binary.BigEndian.Uint32(b[3:7])))
		id.KeyID = hex.EncodeToString(b[7:15])
		p.algorithms(b[16], b[15])
	case 4, 5, 6:
		if len(b) < 4 {
			return
		}
		p.algorithms(b[3], b[2])
		rest := b[4:]
		for range 2 { // hashed, then unhashed subpackets
			var n int
			if b[0] != 6 {
				if len(rest) < 2 {
					break
				}
				n, rest = int(binary.BigEndian.Uint16(rest)), rest[2:]
			} else { // v6 counts the areas in four octets (RFC 9580 §5.2.3); v4 and v5 in two
				if len(rest) < 4 {
					break
				}
				u := binary.BigEndian.Uint32(rest)
				rest = rest[4:]
				n = int(min(u, uint32(len(rest)+1)))
			}
			if n > len(rest) {
				p.info.Truncated = true
				n = len(rest)
			}
			subpackets(rest[:n], &id)
			rest = rest[n:]
		}
	default:
		return
	}
	if id.KeyID != "" || id.Fingerprint != "" {
		p.addID(&p.info.Signers, id)
	}
}

func subpackets(b []byte, id *ID) {
	for len(b) > 0 {
		// Subpacket lengths (RFC 9580 §5.2.3.7) differ from packet lengths: the two-octet
		// form runs up to 254 and there is no partial form.
		var n, hl int
		switch c := b[0]; {
		case c < 192:
			n, hl = int(c), 1
		case c < 255 && len(b) >= 2:
			n, hl = (int(c)-192)<<8+int(b[1])+192, 2
		case c == 255 && len(b) >= 5:
			n, hl = int(min(binary.BigEndian.Uint32(b[1:]), 1<<30)), 5
		default:
			return
		}
		if n < 1 || n > len(b)-hl {
			return
		}
		sp := b[hl : hl+n]
		b = b[hl+n:]
		data := sp[1:]
		switch sp[0] & 0x7f {
		case 2:
			if len(data) == 4 {
				id.SigningTime = formatUnix(int64(binary.BigEndian.Uint32(data)))
			}
		case 16:
			if len(data) == 8 {
				id.KeyID = hex.EncodeToString(data)
			}
		case 33:
			if len(data) == 21 || len(data) == 33 {
				fp := pgpFingerprintID(data[1:])
				id.Fingerprint = fp.Fingerprint
				if id.KeyID == "" {
					id.KeyID = fp.KeyID
				}
			}
		}
	}
}

// pgpFingerprintID derives the key ID from a fingerprint: the low 64 bits of a v4
// fingerprint, the high 64 bits of a v5 or v6 one (RFC 9580 §5.5.4).
func pgpFingerprintID(fp []byte) ID {
	id := ID{Fingerprint: hex.EncodeToString(fp)}
	switch len(fp) {
	case 20:
		id.KeyID = hex.EncodeToString(fp[12:])
	case 32:
		id.KeyID = hex.EncodeToString(fp[:8])
	}
	return id
}

// publicKey computes the fingerprint of a Public-Key or Public-Subkey packet
// (RFC 9580 §5.5.4): SHA-1 over 0x99, a two-octet length and the body for v4; SHA-256 over
// 0x9B (v6) or 0x9A (v5), a four-octet length and the body.
func (p *pgpReader) publicKey(b []byte) {
	if len(b) < 6 {
		return
	}
	var fp []byte
	switch b[0] {
	case 4:
		if len(b) > 0xffff {
			return
		}
		h := sha1.New()
		h.Write([]byte{0x99, byte(len(b) >> 8), byte(len(b))})
		h.Write(b)
		fp = h.Sum(nil)
	case 5, 6:
		h := sha256.New()
		h.Write([]byte{0x95 + b[0], byte(len(b) >> 24), byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))})
		h.Write(b)
		fp = h.Sum(nil)
	default:
		return // v3 keys: the key ID comes from the RSA modulus; not worth the code
	}
	p.addID(&p.info.Keys, pgpFingerprintID(fp))
}

// addID appends id to *list, or merges it into an entry for the same key: a one-pass
// signature packet and the signature packet that ends the message name the same signer.
func (p *pgpReader) addID(list *[]ID, id ID) {
	for i := range *list {
		e := &(*list)[i]
		if e.KeyID == id.KeyID && id.KeyID != "" && id.KeyID != "0000000000000000" {
			if e.Fingerprint == "" {
				e.Fingerprint = id.Fingerprint
			}
			if e.SigningTime == "" {
				e.SigningTime = id.SigningTime
			}
			return
		}
	}
	if len(*list) >= p.opts.MaxItems {
		p.info.Truncated = true
		return
	}
	*list = append(*list, id)
}

func (p *pgpReader) algorithms(hash, pub byte) {
	add(&p.info.DigestAlgorithms, pgpHashName(hash))
	add(&p.info.SignatureAlgorithms, pgpPublicKeyName(pub))
}

// pgpHashName names an OpenPGP hash algorithm (RFC 9580 §9.5) as OpenSSL does.
func pgpHashName(id byte) string {
	switch id {
	case 1:
		return "md5"
	case 2:
		return "sha1"
	case 3:
		return "ripemd160"
	case 8:
		return "sha256"
	case 9:
		return "sha384"
	case 10:
		return "sha512"
	case 11:
		return "sha224"
	case 12:
		return "sha3-256"
	case 14:
		return "sha3-512"
	}
	return "pgp-hash-" + strconv.Itoa(int(id))
}

// pgpPublicKeyName names an OpenPGP public-key algorithm (RFC 9580 §9.1).
func pgpPublicKeyName(id byte) string {
	switch id {
	case 1, 3:
		return "rsaEncryption"
	case 17:
		return "dsaEncryption"
	case 19:
		return "ecdsa"
	case 22:
		return "eddsa-legacy"
	case 27:
		return "ED25519"
	case 28:
		return "ED448"
	}
	return "pgp-pubkey-" + strconv.Itoa(int(id))
}

// formatUnix formats seconds since the epoch as RFC 3339 UTC.
func formatUnix(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }
