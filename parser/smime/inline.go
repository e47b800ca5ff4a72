package smime

import (
	"bytes"
	"strings"
)

// Inline spots inline OpenPGP in a text body written to it: cleartext-signed text
// (RFC 9580 §7), and armoured signatures, messages and key blocks pasted into the text
// (§6.2). Markers count only at the start of a line, so a quoted "> -----BEGIN PGP" in a
// reply does not. Each armoured block found is read as ReadPGP reads it, one at a time, and
// at most opts.MaxItems of them.
//
// Write never fails, so an Inline can sit in an io.MultiWriter beside the other consumers
// of the text. It holds at most opts.MaxBytes plus one line start.
type Inline struct {
	opts Options

	head    [64]byte // start of the current line: enough for any armour marker
	headLen int

	block   []byte // the armour block being collected; nil outside one
	full    bool   // the block outgrew opts.MaxBytes; the rest of it is dropped
	blocks  int
	message bool // the open block is a PGP MESSAGE

	info Info
}

// armourDashes begins every armour marker (RFC 9580 §6.2).
const armourDashes = "-----"

// NewInline returns an Inline bounded by opts.
func NewInline(opts Options) *Inline {
	return &Inline{opts: opts.withDefaults()}
}

// Write scans p. It always returns len(p), nil.
func (s *Inline) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i+1]
		}
		p = p[len(seg):]
		if s.headLen < len(s.head) {
			s.headLen += copy(s.head[s.headLen:], seg)
		}
		if s.block != nil {
			s.collect(seg)
		}
		if i >= 0 {
			s.endLine()
		}
	}
	return n, nil
}

func (s *Inline) collect(b []byte) {
	if s.full {
		return
	}
	if len(s.block)+len(b) > s.opts.MaxBytes {
		s.full = true
		return
	}
	s.block = append(s.block, b...)
}

func (s *Inline) endLine() {
	// Every marker starts with five dashes: most lines are done with here, without the
	// string each line cost, 33 allocations of an ordinary message's text.
	if s.headLen < len(armourDashes) || string(s.head[:len(armourDashes)]) != armourDashes {
		s.headLen = 0
		return
	}
	line := strings.TrimRight(string(s.head[:s.headLen]), " \t\r\n")
	s.headLen = 0
	if s.block != nil {
		if strings.HasPrefix(line, "-----END PGP ") {
			s.readBlock(true)
		}
		return
	}
	label, ok := strings.CutPrefix(line, "-----BEGIN PGP ")
	if !ok {
		return
	}
	label, ok = strings.CutSuffix(label, "-----")
	if !ok {
		return
	}
	s.info.Kind = PGP
	switch {
	case label == "SIGNED MESSAGE":
		s.info.Signed = true // its SIGNATURE block comes after the text
		return
	case label == "SIGNATURE", label == "PUBLIC KEY BLOCK", label == "MESSAGE",
		strings.HasPrefix(label, "MESSAGE, PART "):
	default:
		return // PRIVATE KEY BLOCK and unknown labels: noted as OpenPGP, not read
	}
	if label == "SIGNATURE" {
		s.info.Signed = true
	}
	if s.blocks >= s.opts.MaxItems {
		s.info.Truncated = true
		return
	}
	s.blocks++
	s.message = label != "SIGNATURE" && label != "PUBLIC KEY BLOCK"
	s.block = append(make([]byte, 0, 4096), line...)
	s.block = append(s.block, '\n')
	s.full = false
}

// readBlock reads the collected block and merges what it says.
func (s *Inline) readBlock(ended bool) {
	b := s.block
	s.block = nil
	info, err := ReadPGP(bytes.NewReader(b), s.opts)
	if s.full || !ended || err != nil {
		s.info.Truncated = true
	}
	if s.message && !info.Signed && !info.Encrypted {
		// An armoured MESSAGE whose packets show neither a signature nor encryption (they
		// are unreadable, or cut off before the first one): encrypted is by far the likeliest.
		info.Encrypted = true
	}
	s.info.merge(info, s.opts.MaxItems)
}

// Info returns what has been found so far, reading a block that the text left open.
func (s *Inline) Info() Info {
	if s.block != nil {
		s.readBlock(false)
	}
	return s.info
}

// merge adds what o found to i.
func (i *Info) merge(o Info, max int) {
	i.Signed = i.Signed || o.Signed
	i.Encrypted = i.Encrypted || o.Encrypted
	i.Truncated = i.Truncated || o.Truncated
	for _, a := range o.DigestAlgorithms {
		add(&i.DigestAlgorithms, a)
	}
	for _, a := range o.SignatureAlgorithms {
		add(&i.SignatureAlgorithms, a)
	}
	p := &pgpReader{opts: Options{MaxItems: max}, info: i}
	for _, id := range o.Signers {
		p.addID(&i.Signers, id)
	}
	for _, id := range o.Recipients {
		p.addID(&i.Recipients, id)
	}
	for _, id := range o.Keys {
		p.addID(&i.Keys, id)
	}
}
