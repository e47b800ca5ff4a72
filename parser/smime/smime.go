// Package smime recognises signed and encrypted mail, S/MIME (RFC 8551) and OpenPGP
// (RFC 3156, RFC 9580), and describes the certificates and keys it carries for the
// threat-analysis record. It never verifies or decrypts anything.
//
// The MIME walker asks Classify about each part. When the answer's Feed says so, it passes
// the part's decoded body to ReadCMS or ReadPGP; body text goes through an Inline writer to
// spot inline PGP. All three read a stream and hold about Options.MaxBytes at most, however
// large the part. ReadCMS and ReadPGP stop reading once they have their answer, so a caller
// that also hashes the part reads through a tee and drains it afterwards:
//
//	tee := io.TeeReader(decoded, hashes)
//	info, err := smime.ReadCMS(tee, smime.Options{}) // err: an anomaly; info is still good
//	_, _ = io.Copy(io.Discard, tee)
//
// Options.MaxBytes bounds what is held, not the size of the part: the certificates of an
// opaque-signed message come after the whole signed content, and are found however long
// that is, without buffering it.
//
// # Why not github.com/smallstep/pkcs7
//
// smallstep/pkcs7 v0.2.3 is in go.mod and was evaluated first. It does read BER with
// indefinite lengths (its ber2der transcodes to DER before encoding/asn1 sees the input),
// and 200,000 random inputs did not make it panic. It is still unfit for hostile input:
//
//   - ber2der recurses once per nesting level without a cap, and re-encodes every level
//     into a fresh buffer, so the work is quadratic in the depth: 800 KB of nested
//     indefinite SEQUENCEs took 28 s and allocated 95 GB in total.
//   - Its end-of-contents test searches the whole rest of the input on each child, which is
//     quadratic in the number of children: 1 MB of NULLs in one indefinite SEQUENCE took 26 s.
//   - It needs the whole blob in memory, signed content included, so an opaque-signed
//     message larger than the cap could never give its certificates.
//   - It ignores the error of the SignedData unmarshal, fails every certificate when
//     crypto/x509 rejects one, cannot read a SignerInfo that names its signer by
//     subjectKeyIdentifier, does not know AuthEnvelopedData, and keeps recipient
//     identifiers unexported.
//
// So this package has its own small BER reader (ber.go): it reads one element header at a
// time from a stream, skips or copies out large contents (the signed message, the
// ciphertext) without holding them, walks indefinite lengths with a depth cap, and captures
// only the small elements it needs (certificates, SignerInfos, RecipientInfos) within a
// byte budget. Those captured elements are DER in practice and are decoded with
// encoding/asn1 or the same reader. smallstep/pkcs7 is used only by the tests, to sign.
package smime

import (
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
)

// Kind is the family of a protected part.
type Kind string

// Kinds.
const (
	SMIME Kind = "smime"
	PGP   Kind = "pgp"
)

// Feed says where a part's decoded body should go.
type Feed uint8

const (
	// FeedNone: the body carries nothing to extract (a container, or a control part).
	FeedNone Feed = iota
	// FeedCMS: the body is a CMS ContentInfo; pass it to ReadCMS.
	FeedCMS
	// FeedPGP: the body is OpenPGP data, armoured or binary; pass it to ReadPGP.
	FeedPGP
)

// Class is what a part's media type, parameters and filename say about it. Signed and
// Encrypted are what the labels claim; ReadCMS and ReadPGP say what the bytes hold.
type Class struct {
	Kind      Kind // "" when the part is neither S/MIME nor OpenPGP
	Signed    bool
	Encrypted bool
	Feed      Feed
}

// Info describes one signed, encrypted or key-carrying object.
type Info struct {
	Kind      Kind
	Signed    bool // carries at least one signature (a certs-only SignedData does not)
	Encrypted bool
	// ContentType is the CMS content type in RFC 8551 smime-type spelling ("signed-data",
	// "enveloped-data", "authEnveloped-data", "compressed-data", ...), or the dotted OID.
	// Empty for OpenPGP.
	ContentType string

	DigestAlgorithms    []string // OpenSSL names ("sha256"), or dotted OIDs / OpenPGP ids
	SignatureAlgorithms []string // OpenSSL names ("rsaEncryption", "ecdsa-with-SHA256"), ...
	EncryptionAlgorithm string   // CMS content-encryption algorithm ("aes-256-cbc")

	Certificates []Cert // every certificate carried, in order
	Signers      []ID   // one per SignerInfo or OpenPGP signature
	Recipients   []ID   // one per recipient the message is encrypted to
	Keys         []ID   // OpenPGP public keys and subkeys carried

	// Truncated is set when a limit, the end of the input or a fault in it cut the
	// description short: what is here was read, but there may have been more.
	Truncated bool
}

// Cert describes one X.509 certificate. SHA256 and SHA1 are of its encoding as carried
// (DER) and are always set; the other fields are empty when the certificate is malformed.
type Cert struct {
	SHA256, SHA1 string // lowercase hex
	Subject      string // RFC 4514, as `openssl x509 -nameopt RFC2253` prints it
	Issuer       string
	Serial       string // lowercase hex without leading zeros; "-" prefix when negative
	NotBefore    string // RFC 3339, UTC
	NotAfter     string
	Signer       bool // a SignerInfo names this certificate
	Malformed    bool
}

// ID names a signer, recipient or key. CMS uses Issuer and Serial, or SubjectKeyID;
// OpenPGP uses KeyID and, when given, Fingerprint.
type ID struct {
	Issuer       string // RFC 4514
	Serial       string // lowercase hex, as Cert.Serial
	SubjectKeyID string // lowercase hex
	KeyID        string // OpenPGP 64-bit key ID, 16 lowercase hex digits
	Fingerprint  string // OpenPGP v4 (40 hex digits) or v6 (64)
	SigningTime  string // RFC 3339 UTC; the signer's own claim, not a verified time
}

// Options bound the readers. For each limit, zero means the default and a negative value
// means no limit (the rule of go-message's ReadOptions).
type Options struct {
	// MaxBytes is the most input the readers keep: captured CMS elements, decoded and
	// decompressed OpenPGP packets, one inline armour block. Default 1 MiB.
	MaxBytes int
	// MaxItems caps each of the certificate, signer, recipient and key lists, and the number
	// of inline armour blocks read. Default 64.
	MaxItems int
	// MaxDepth caps BER nesting in the parts that are walked. Default 32.
	MaxDepth int
	// Content, when set, receives the encapsulated content of a CMS SignedData: for an
	// opaque-signed message (application/pkcs7-mime; smime-type=signed-data) that is the
	// signed MIME entity itself, which the caller may want to walk.
	Content io.Writer
}

// unlimited stands for no limit: never reached, and small enough that the sums the readers
// make on a limit (twice MaxBytes and a margin, one past the budget) cannot overflow.
const unlimited = math.MaxInt / 4

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0:
			*v = unlimited
		}
	}
	def(&o.MaxBytes, 1<<20)
	def(&o.MaxItems, 64)
	def(&o.MaxDepth, 32)
	return o
}

// Classify says what a part is from its media type (lowercase or not), its Content-Type
// parameters (names lowercase, as the walker gives them) and its filename (the
// Content-Disposition filename; when empty, the Content-Type name parameter is used).
func Classify(mediaType string, params map[string]string, filename string) Class {
	param := func(k string) string { return strings.ToLower(strings.TrimSpace(params[k])) }
	switch strings.ToLower(strings.TrimSpace(mediaType)) {
	case "multipart/signed":
		c := Class{Kind: protocolKind(param("protocol")), Signed: true}
		if c.Kind == "" && strings.HasPrefix(param("micalg"), "pgp-") {
			c.Kind = PGP // RFC 3156 §5: only OpenPGP spells micalg this way
		}
		return c
	case "multipart/encrypted":
		return Class{Kind: protocolKind(param("protocol")), Encrypted: true}
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		c := Class{Kind: SMIME, Feed: FeedCMS}
		switch param("smime-type") {
		case "signed-data":
			c.Signed = true
		case "enveloped-data", "authenveloped-data":
			c.Encrypted = true
		}
		return c
	case "application/pkcs7-signature", "application/x-pkcs7-signature":
		return Class{Kind: SMIME, Signed: true, Feed: FeedCMS}
	case "application/pgp-signature":
		return Class{Kind: PGP, Signed: true, Feed: FeedPGP}
	case "application/pgp-encrypted":
		// RFC 3156 §4: the "Version: 1" control part; the ciphertext is the next sibling.
		return Class{Kind: PGP, Encrypted: true}
	case "application/pgp-keys":
		return Class{Kind: PGP, Feed: FeedPGP}
	case "application/pgp":
		// QUIRK: not in RFC 3156; the older "traditional PGP" label, as mutt writes it
		// (x-action=pgp-signed, pgp-encrypted; older tools used sign, encrypt, signclear).
		act := param("x-action")
		return Class{Kind: PGP, Signed: strings.Contains(act, "sign"),
			Encrypted: strings.Contains(act, "encrypt"), Feed: FeedPGP}
	}
	name := filename
	if name == "" {
		name = params["name"]
	}
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	switch strings.ToLower(path.Ext(strings.TrimSpace(name))) {
	case ".p7s":
		return Class{Kind: SMIME, Signed: true, Feed: FeedCMS}
	case ".p7m", ".p7c", ".p7z":
		return Class{Kind: SMIME, Feed: FeedCMS}
	case ".asc", ".gpg", ".pgp":
		return Class{Kind: PGP, Feed: FeedPGP}
	}
	return Class{}
}

func protocolKind(p string) Kind {
	switch p {
	case "application/pkcs7-signature", "application/x-pkcs7-signature",
		"application/pkcs7-mime", "application/x-pkcs7-mime":
		return SMIME
	case "application/pgp-signature", "application/pgp-encrypted":
		return PGP
	}
	return ""
}

// errInternal marks a recovered panic: a bug here, never a property of the input. Tests and
// the fuzz targets fail on it.
var errInternal = errors.New("smime: internal error")

// guard turns a panic in a reader into an error. The readers are meant to be total; if one
// is not, the cost must be one part's description, not the message's record.
func guard(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%w: %v", errInternal, r)
	}
}

// add appends s to *list unless it is empty or already there.
func add(list *[]string, s string) {
	if s == "" {
		return
	}
	for _, x := range *list {
		if x == s {
			return
		}
	}
	*list = append(*list, s)
}
