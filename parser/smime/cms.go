package smime

import (
	"bufio"
	"bytes"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/big"
)

var errNotCMS = errors.New("smime: not a CMS ContentInfo")

// ReadCMS describes a CMS ContentInfo (RFC 5652; PKCS #7 v1.5 has the same shape), DER or
// BER with indefinite lengths as Outlook and `openssl cms -stream` write it. For SignedData
// it lists every certificate and signer and the algorithms; for EnvelopedData and
// AuthEnvelopedData the recipients and the content-encryption algorithm.
//
// It reads r as a stream and holds at most opts.MaxBytes, however large the signed content
// or ciphertext. It stops reading as soon as it has what it describes (after the
// SignerInfos, or at the ciphertext), so the caller should drain r afterwards. On malformed
// or truncated input it returns what it found before the fault together with the error.
func ReadCMS(r io.Reader, opts Options) (info Info, err error) {
	defer guard(&err)
	opts = opts.withDefaults()
	c := &cmsReader{d: newBERReader(r, opts.MaxDepth), opts: opts, info: &info, budget: opts.MaxBytes}
	err = c.contentInfo()
	c.matchSigners()
	if err != nil && info.Kind != "" {
		info.Truncated = true
	}
	return info, err
}

type cmsReader struct {
	d      *berReader
	opts   Options
	info   *Info
	budget int // bytes still allowed for captures

	certs   []ref
	signers []ref
}

// ref keeps what matching a signer to its certificate needs, for either side.
type ref struct {
	issuer []byte // the Name's encoding
	serial *big.Int
	ski    []byte
}

// CMS content types (RFC 5652 §4–9, RFC 3274, RFC 5083).
func contentTypeName(oid string) string {
	switch oid {
	case "1.2.840.113549.1.7.1":
		return "data"
	case "1.2.840.113549.1.7.2":
		return "signed-data"
	case "1.2.840.113549.1.7.3":
		return "enveloped-data"
	case "1.2.840.113549.1.7.5":
		return "digested-data"
	case "1.2.840.113549.1.7.6":
		return "encrypted-data"
	case "1.2.840.113549.1.9.16.1.2":
		return "authenticated-data"
	case "1.2.840.113549.1.9.16.1.9":
		return "compressed-data"
	case "1.2.840.113549.1.9.16.1.23":
		return "authEnveloped-data"
	}
	return oid
}

func (c *cmsReader) contentInfo() error {
	h, err := c.d.readHeader()
	if err != nil {
		return fmt.Errorf("%w: %w", errNotCMS, err)
	}
	if !h.is(classUniversal, tagSequence) || !h.constructed {
		return errNotCMS
	}
	f := h.frame()
	oid, err := c.expectOID(f)
	if err != nil {
		return fmt.Errorf("%w: %w", errNotCMS, err)
	}
	c.info.Kind = SMIME
	c.info.ContentType = contentTypeName(oid)
	switch c.info.ContentType {
	case "signed-data":
		c.info.Signed = true
	case "enveloped-data", "authEnveloped-data", "encrypted-data":
		c.info.Encrypted = true
	}
	h, ok, err := c.d.next(f)
	if err != nil || !ok {
		return err // content is OPTIONAL in PKCS #7 v1.5
	}
	if !h.is(classContext, 0) || !h.constructed {
		return fmt.Errorf("smime: ContentInfo content is not [0] EXPLICIT")
	}
	inner := h.frame()
	h, ok, err = c.d.next(inner)
	if err != nil || !ok {
		return err
	}
	switch c.info.ContentType {
	case "signed-data":
		if !h.is(classUniversal, tagSequence) || !h.constructed {
			return fmt.Errorf("smime: SignedData is not a SEQUENCE")
		}
		return c.signedData(h.frame())
	case "enveloped-data", "authEnveloped-data":
		if !h.is(classUniversal, tagSequence) || !h.constructed {
			return fmt.Errorf("smime: EnvelopedData is not a SEQUENCE")
		}
		return c.envelopedData(h.frame())
	}
	return nil
}

// expectOID reads the next child of f, which must be an OBJECT IDENTIFIER.
func (c *cmsReader) expectOID(f frame) (string, error) {
	h, ok, err := c.d.next(f)
	if err != nil {
		return "", err
	}
	if !ok || !h.is(classUniversal, tagOID) {
		return "", errors.New("smime: expected an OBJECT IDENTIFIER")
	}
	return readOID(c.d, h)
}

func readOID(d *berReader, h header) (string, error) {
	b, ok, err := d.readSmall(h, 64)
	if err != nil {
		return "", err
	}
	if !ok || len(b) == 0 {
		return "", errors.New("smime: malformed OBJECT IDENTIFIER")
	}
	var oid asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(append([]byte{tagOID, byte(len(b))}, b...), &oid); err != nil {
		return "", fmt.Errorf("smime: malformed OBJECT IDENTIFIER: %w", err)
	}
	return oid.String(), nil
}

// algorithm reads an AlgorithmIdentifier (RFC 5280 §4.1.1.2) and returns its name.
func algorithm(d *berReader, h header) (string, error) {
	if !h.is(classUniversal, tagSequence) || !h.constructed {
		return "", d.skip(h)
	}
	f := h.frame()
	o, ok, err := d.next(f)
	if err != nil || !ok {
		return "", err
	}
	if !o.is(classUniversal, tagOID) {
		return "", d.finish(f)
	}
	oid, err := readOID(d, o)
	if err != nil {
		return "", err
	}
	return algorithmName(oid), d.finish(f)
}

// signedData walks SignedData (RFC 5652 §5.1): version, digestAlgorithms,
// encapContentInfo, [0] certificates, [1] crls, signerInfos.
func (c *cmsReader) signedData(f frame) error {
	d := c.d
	h, ok, err := d.next(f)
	if err != nil || !ok {
		return err
	}
	if err := d.skip(h); err != nil { // version
		return err
	}
	if h, ok, err = d.next(f); err != nil || !ok {
		return err
	}
	if h.is(classUniversal, tagSet) && h.constructed {
		af := h.frame()
		for {
			a, ok, err := d.next(af)
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			name, err := algorithm(d, a)
			if err != nil {
				return err
			}
			add(&c.info.DigestAlgorithms, name)
		}
	} else if err := d.skip(h); err != nil {
		return err
	}
	if h, ok, err = d.next(f); err != nil || !ok {
		return err
	}
	if err := c.encapContent(h); err != nil {
		return err
	}
	for {
		h, ok, err := d.next(f)
		if err != nil || !ok {
			return err
		}
		switch {
		case h.is(classContext, 0) && h.constructed:
			err = c.certificates(h.frame())
		case h.is(classUniversal, tagSet) && h.constructed:
			// signerInfos is the last field: nothing after it is needed.
			return c.signerInfos(h.frame())
		default: // [1] crls, or anything unexpected
			err = d.skip(h)
		}
		if err != nil {
			return err
		}
	}
}

// encapContent passes the signed content to opts.Content, or skips it: for an opaque
// signature it is the whole message, and it is never held.
func (c *cmsReader) encapContent(h header) error {
	d := c.d
	if !h.is(classUniversal, tagSequence) || !h.constructed {
		return d.skip(h)
	}
	f := h.frame()
	o, ok, err := d.next(f)
	if err != nil || !ok {
		return err
	}
	if err := d.skip(o); err != nil { // eContentType
		return err
	}
	e, ok, err := d.next(f)
	if err != nil || !ok {
		return err // detached signature: no content
	}
	if e.is(classContext, 0) && e.constructed {
		ef := e.frame()
		s, ok, err := d.next(ef)
		if err != nil {
			return err
		}
		if ok {
			if s.is(classUniversal, tagOctetString) {
				err = d.octets(s, c.opts.Content)
			} else {
				err = d.skip(s)
			}
			if err != nil {
				return err
			}
		}
		if err := d.finish(ef); err != nil {
			return err
		}
	} else if err := d.skip(e); err != nil {
		return err
	}
	return d.finish(f)
}

// capture keeps one element within the remaining byte budget.
func (c *cmsReader) capture(h header) ([]byte, error) {
	b, ok, err := c.d.capture(h, c.budget)
	if err != nil {
		return nil, err
	}
	if !ok {
		c.info.Truncated = true
		return nil, nil
	}
	c.budget -= len(b)
	return b, nil
}

func (c *cmsReader) certificates(f frame) error {
	for {
		h, ok, err := c.d.next(f)
		if err != nil || !ok {
			return err
		}
		// Only plain certificates (a SEQUENCE); the tagged CertificateChoices are
		// attribute certificates and obsolete forms (RFC 5652 §10.2.2).
		if !h.is(classUniversal, tagSequence) || len(c.info.Certificates) >= c.opts.MaxItems {
			if h.is(classUniversal, tagSequence) {
				c.info.Truncated = true
			}
			if err := c.d.skip(h); err != nil {
				return err
			}
			continue
		}
		b, err := c.capture(h)
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		cert, ski, issuer, serial := parseCert(b)
		c.info.Certificates = append(c.info.Certificates, cert)
		c.certs = append(c.certs, ref{issuer: issuer, serial: serial, ski: ski})
	}
}

func (c *cmsReader) signerInfos(f frame) error {
	seen := false
	for {
		h, ok, err := c.d.next(f)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		seen = true
		if len(c.info.Signers) >= c.opts.MaxItems {
			c.info.Truncated = true
			if err := c.d.skip(h); err != nil {
				return err
			}
			continue
		}
		b, err := c.capture(h)
		if err != nil {
			return err
		}
		if b != nil {
			c.signerInfo(b)
		}
	}
	if !seen {
		c.info.Signed = false // certs-only (RFC 8551 §3.6): a SignedData with no signers
	}
	return nil
}

// subReader reads an element already captured in memory.
func (c *cmsReader) subReader(b []byte) *berReader {
	return newBERReader(bufio.NewReaderSize(bytes.NewReader(b), 64), c.opts.MaxDepth)
}

// signerInfo reads one captured SignerInfo (RFC 5652 §5.3): version, sid, digestAlgorithm,
// [0] signedAttrs, signatureAlgorithm, ... What it cannot read is left out; the signer
// is listed as long as its identifier was read.
func (c *cmsReader) signerInfo(b []byte) {
	d := c.subReader(b)
	h, err := d.readHeader()
	if err != nil || !h.is(classUniversal, tagSequence) || !h.constructed {
		return
	}
	f := h.frame()
	if h, ok, err := d.next(f); err != nil || !ok || d.skip(h) != nil { // version
		return
	}
	h, ok, err := d.next(f)
	if err != nil || !ok {
		return
	}
	id, ref, err := identifier(d, h)
	if err != nil || (ref.issuer == nil && ref.ski == nil) {
		return
	}
	i := len(c.info.Signers)
	c.info.Signers = append(c.info.Signers, id)
	c.signers = append(c.signers, ref)

	if h, ok, err = d.next(f); err != nil || !ok {
		return
	}
	name, err := algorithm(d, h)
	if err != nil {
		return
	}
	add(&c.info.DigestAlgorithms, name)
	if h, ok, err = d.next(f); err != nil || !ok {
		return
	}
	if h.is(classContext, 0) && h.constructed {
		c.info.Signers[i].SigningTime = signingTime(d, h.frame())
		if h, ok, err = d.next(f); err != nil || !ok {
			return
		}
	}
	if name, err = algorithm(d, h); err == nil {
		add(&c.info.SignatureAlgorithms, name)
	}
}

const oidSigningTime = "1.2.840.113549.1.9.5"

// signingTime looks for the signingTime attribute (RFC 5652 §11.3) among signedAttrs, and
// consumes all of them.
func signingTime(d *berReader, f frame) string {
	found := ""
	for {
		a, ok, err := d.next(f)
		if err != nil || !ok {
			return found
		}
		if !a.is(classUniversal, tagSequence) || !a.constructed {
			if d.skip(a) != nil {
				return found
			}
			continue
		}
		af := a.frame()
		if o, ok, err := d.next(af); err != nil || !ok {
			return found
		} else if oid, err := readOIDOrSkip(d, o); err != nil {
			return found
		} else if oid == oidSigningTime && found == "" {
			found = attributeTime(d, af)
		}
		if d.finish(af) != nil {
			return found
		}
	}
}

// readOIDOrSkip reads an OBJECT IDENTIFIER, or skips another element and returns "".
func readOIDOrSkip(d *berReader, h header) (string, error) {
	if !h.is(classUniversal, tagOID) {
		return "", d.skip(h)
	}
	return readOID(d, h)
}

// attributeTime reads the first value of an attribute's SET as a Time.
func attributeTime(d *berReader, af frame) string {
	s, ok, err := d.next(af)
	if err != nil || !ok || !s.constructed {
		return ""
	}
	sf := s.frame()
	v, ok, err := d.next(sf)
	if err != nil || !ok {
		return ""
	}
	raw, ok, err := d.capture(v, 64)
	if err != nil || !ok {
		return ""
	}
	if d.finish(sf) != nil {
		return ""
	}
	return formatTime(asn1.RawValue{FullBytes: raw})
}

// identifier reads a SignerIdentifier or RecipientIdentifier (RFC 5652 §5.3, §6.2.1):
// issuerAndSerialNumber, or [0] subjectKeyIdentifier.
func identifier(d *berReader, h header) (ID, ref, error) {
	var id ID
	var ref ref
	switch {
	case h.is(classUniversal, tagSequence) && h.constructed:
		f := h.frame()
		n, ok, err := d.next(f)
		if err != nil || !ok {
			return id, ref, err
		}
		raw, ok, err := d.capture(n, 4096)
		if err != nil || !ok {
			return id, ref, err
		}
		s, ok, err := d.next(f)
		if err != nil || !ok || !s.is(classUniversal, tagInteger) {
			return id, ref, err
		}
		sb, ok, err := d.readSmall(s, 128)
		if err != nil || !ok || len(sb) == 0 {
			return id, ref, err
		}
		ref.issuer, ref.serial = raw, intBytes(sb)
		id.Issuer, id.Serial = formatName(raw), ref.serial.Text(16)
		return id, ref, d.finish(f)
	case h.is(classContext, 0):
		var ski bytes.Buffer
		if h.length > 256 {
			return id, ref, d.skip(h)
		}
		if err := d.octets(h, &ski); err != nil || ski.Len() > 256 {
			return id, ref, err
		}
		ref.ski = ski.Bytes()
		id.SubjectKeyID = hex.EncodeToString(ref.ski)
		return id, ref, nil
	}
	return id, ref, d.skip(h)
}

// envelopedData walks EnvelopedData (RFC 5652 §6.1) or AuthEnvelopedData (RFC 5083 §2.1),
// which share their start: version, [0] originatorInfo, recipientInfos,
// encryptedContentInfo. It stops at the ciphertext.
func (c *cmsReader) envelopedData(f frame) error {
	d := c.d
	h, ok, err := d.next(f)
	if err != nil || !ok {
		return err
	}
	if err := d.skip(h); err != nil { // version
		return err
	}
	if h, ok, err = d.next(f); err != nil || !ok {
		return err
	}
	if h.is(classContext, 0) {
		if err := d.skip(h); err != nil { // originatorInfo
			return err
		}
		if h, ok, err = d.next(f); err != nil || !ok {
			return err
		}
	}
	if !h.is(classUniversal, tagSet) || !h.constructed {
		return errors.New("smime: recipientInfos is not a SET")
	}
	rf := h.frame()
	for {
		r, ok, err := d.next(rf)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		b, err := c.capture(r)
		if err != nil {
			return err
		}
		if b != nil {
			c.recipientInfo(b)
		}
	}
	if h, ok, err = d.next(f); err != nil || !ok {
		return err
	}
	if !h.is(classUniversal, tagSequence) || !h.constructed {
		return nil
	}
	ef := h.frame()
	o, ok, err := d.next(ef)
	if err != nil || !ok {
		return err
	}
	if err := d.skip(o); err != nil { // contentType
		return err
	}
	a, ok, err := d.next(ef)
	if err != nil || !ok {
		return err
	}
	c.info.EncryptionAlgorithm, err = algorithm(d, a)
	return err
}

func (c *cmsReader) addRecipient(id ID) {
	if len(c.info.Recipients) >= c.opts.MaxItems {
		c.info.Truncated = true
		return
	}
	c.info.Recipients = append(c.info.Recipients, id)
}

// recipientInfo reads one captured RecipientInfo (RFC 5652 §6.2): the recipient
// identifiers of KeyTransRecipientInfo (RSA) and KeyAgreeRecipientInfo (ECDH). The other
// kinds (KEK, password, other) name no certificate.
func (c *cmsReader) recipientInfo(b []byte) {
	d := c.subReader(b)
	h, err := d.readHeader()
	if err != nil || !h.constructed {
		return
	}
	f := h.frame()
	if v, ok, err := d.next(f); err != nil || !ok || d.skip(v) != nil { // version
		return
	}
	switch {
	case h.is(classUniversal, tagSequence): // ktri
		r, ok, err := d.next(f)
		if err != nil || !ok {
			return
		}
		if id, ref, err := identifier(d, r); err == nil && (ref.issuer != nil || ref.ski != nil) {
			c.addRecipient(id)
		}
	case h.is(classContext, 1): // kari: originator [0], ukm [1] OPTIONAL, keyEncryptionAlgorithm, recipientEncryptedKeys
		for {
			r, ok, err := d.next(f)
			if err != nil || !ok {
				return
			}
			if !r.is(classUniversal, tagSequence) || !r.constructed {
				if d.skip(r) != nil {
					return
				}
				continue
			}
			// The first SEQUENCE is the keyEncryptionAlgorithm, the second the
			// recipientEncryptedKeys.
			if _, err := algorithm(d, r); err != nil {
				return
			}
			keys, ok, err := d.next(f)
			if err != nil || !ok || !keys.constructed {
				return
			}
			kf := keys.frame()
			for {
				k, ok, err := d.next(kf)
				if err != nil || !ok || !k.constructed {
					return
				}
				c.recipientEncryptedKey(d, k.frame())
			}
		}
	}
}

// recipientEncryptedKey reads the rid of a RecipientEncryptedKey (RFC 5652 §6.2.2):
// issuerAndSerialNumber, or [0] RecipientKeyIdentifier whose first field is the
// subjectKeyIdentifier.
func (c *cmsReader) recipientEncryptedKey(d *berReader, f frame) {
	defer func() { _ = d.finish(f) }() // the encryptedKey, so the next key can be read
	r, ok, err := d.next(f)
	if err != nil || !ok {
		return
	}
	if r.is(classContext, 0) && r.constructed {
		rf := r.frame()
		s, ok, err := d.next(rf)
		if err != nil || !ok || !s.is(classUniversal, tagOctetString) {
			return
		}
		s.class, s.tag = classContext, 0 // the [0] IMPLICIT form identifier reads
		id, ref, err := identifier(d, s)
		if err != nil || ref.ski == nil {
			return
		}
		c.addRecipient(id)
		_ = d.finish(rf) // the optional date and other fields, before f's encryptedKey
		return
	}
	if id, ref, err := identifier(d, r); err == nil && (ref.issuer != nil || ref.ski != nil) {
		c.addRecipient(id)
	}
}

// matchSigners marks the certificates that a SignerInfo names.
func (c *cmsReader) matchSigners() {
	for i, cert := range c.certs {
		for _, s := range c.signers {
			bySerial := s.issuer != nil && cert.issuer != nil && cert.serial != nil &&
				bytes.Equal(s.issuer, cert.issuer) && s.serial.Cmp(cert.serial) == 0
			byKey := s.ski != nil && cert.ski != nil && bytes.Equal(s.ski, cert.ski)
			if bySerial || byKey {
				c.info.Certificates[i].Signer = true
			}
		}
	}
}
