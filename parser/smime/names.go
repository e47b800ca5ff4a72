package smime

import (
	"crypto/sha1"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/binary"
	"encoding/hex"
	"math/big"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// Certificate and Name shapes (RFC 5280 §4.1). Every part that real certificates get wrong
// (serial numbers that are not minimally encoded or negative, strings with the wrong
// character set) is kept raw, so one odd field does not lose the rest; crypto/x509 refuses
// such certificates outright.
type certificate struct {
	TBS    tbsCertificate
	SigAlg asn1.RawValue
	Sig    asn1.RawValue
}

type tbsCertificate struct {
	Version    int `asn1:"optional,explicit,default:0,tag:0"`
	Serial     asn1.RawValue
	SigAlg     asn1.RawValue
	Issuer     asn1.RawValue
	Validity   validity
	Subject    asn1.RawValue
	SPKI       publicKeyInfo
	IssuerUID  asn1.RawValue `asn1:"optional,tag:1"`
	SubjectUID asn1.RawValue `asn1:"optional,tag:2"`
	Extensions []extension   `asn1:"optional,explicit,tag:3"`
}

type validity struct {
	NotBefore, NotAfter asn1.RawValue
}

type publicKeyInfo struct {
	Algorithm asn1.RawValue
	PublicKey asn1.BitString
}

type extension struct {
	ID       asn1.ObjectIdentifier
	Critical bool `asn1:"optional"`
	Value    []byte
}

type attributeTypeAndValue struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// rdnSET is one RelativeDistinguishedName; encoding/asn1 reads a type whose name ends in
// SET as a SET OF.
type rdnSET []attributeTypeAndValue

var oidSubjectKeyID = asn1.ObjectIdentifier{2, 5, 29, 14}

// parseCert describes one certificate from its encoding. The hashes are always filled in;
// the rest is left empty when the certificate cannot be read.
func parseCert(der []byte) (c Cert, ski []byte, issuerRaw []byte, serial *big.Int) {
	s1 := sha1.Sum(der)
	s256 := sha256.Sum256(der)
	c.SHA1 = hex.EncodeToString(s1[:])
	c.SHA256 = hex.EncodeToString(s256[:])

	var crt certificate
	if rest, err := asn1.Unmarshal(der, &crt); err != nil || len(rest) > 0 {
		c.Malformed = true
		return c, nil, nil, nil
	}
	tbs := &crt.TBS
	serial = integer(tbs.Serial)
	if serial != nil {
		c.Serial = serial.Text(16)
	}
	c.Issuer = formatName(tbs.Issuer.FullBytes)
	c.Subject = formatName(tbs.Subject.FullBytes)
	c.NotBefore = formatTime(tbs.Validity.NotBefore)
	c.NotAfter = formatTime(tbs.Validity.NotAfter)
	for _, e := range tbs.Extensions {
		if e.ID.Equal(oidSubjectKeyID) {
			if _, err := asn1.Unmarshal(e.Value, &ski); err != nil {
				ski = nil
			}
		}
	}
	return c, ski, tbs.Issuer.FullBytes, serial
}

// integer reads an INTEGER leniently: non-minimal encodings, which some CAs issue and
// encoding/asn1 refuses, read as their value.
func integer(v asn1.RawValue) *big.Int {
	if v.Class != classUniversal || v.Tag != tagInteger || v.IsCompound || len(v.Bytes) == 0 {
		return nil
	}
	return intBytes(v.Bytes)
}

func intBytes(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		// Two's complement: subtract 2^(8·len).
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
	}
	return n
}

// formatTime reads a UTCTime or GeneralizedTime as RFC 3339 in UTC; "" when unreadable.
func formatTime(v asn1.RawValue) string {
	var t time.Time
	if _, err := asn1.Unmarshal(v.FullBytes, &t); err != nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// formatName writes a Name in RFC 4514 form (last RDN first, as OpenSSL's -nameopt RFC2253
// prints it); "" when it cannot be read.
func formatName(raw []byte) string {
	var rdns []rdnSET
	if rest, err := asn1.Unmarshal(raw, &rdns); err != nil || len(rest) > 0 {
		return ""
	}
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		if i != len(rdns)-1 {
			b.WriteByte(',')
		}
		for j, atv := range rdns[i] {
			if j > 0 {
				b.WriteByte('+')
			}
			b.WriteString(attributeName(atv.Type.String()))
			b.WriteByte('=')
			if s, ok := directoryString(atv.Value); ok {
				escapeValue(&b, s)
			} else {
				b.WriteByte('#')
				b.WriteString(hex.EncodeToString(atv.Value.FullBytes))
			}
		}
	}
	return b.String()
}

// attributeName gives OpenSSL's short name for the attribute types seen in mail
// certificates, and the dotted OID for the rest (RFC 4514 §2.3).
func attributeName(oid string) string {
	switch oid {
	case "2.5.4.3":
		return "CN"
	case "2.5.4.4":
		return "SN"
	case "2.5.4.5":
		return "serialNumber"
	case "2.5.4.6":
		return "C"
	case "2.5.4.7":
		return "L"
	case "2.5.4.8":
		return "ST"
	case "2.5.4.9":
		return "street"
	case "2.5.4.10":
		return "O"
	case "2.5.4.11":
		return "OU"
	case "2.5.4.12":
		return "title"
	case "2.5.4.13":
		return "description"
	case "2.5.4.17":
		return "postalCode"
	case "2.5.4.42":
		return "GN"
	case "2.5.4.43":
		return "initials"
	case "2.5.4.46":
		return "dnQualifier"
	case "2.5.4.65":
		return "pseudonym"
	case "2.5.4.97":
		return "organizationIdentifier"
	case "1.2.840.113549.1.9.1":
		return "emailAddress"
	case "0.9.2342.19200300.100.1.1":
		return "UID"
	case "0.9.2342.19200300.100.1.25":
		return "DC"
	}
	return oid
}

// directoryString decodes the string types a DirectoryString can hold (RFC 5280 §4.1.2.4)
// plus IA5String for emailAddress.
func directoryString(v asn1.RawValue) (string, bool) {
	if v.Class != classUniversal || v.IsCompound {
		return "", false
	}
	switch v.Tag {
	case asn1.TagUTF8String, asn1.TagPrintableString, asn1.TagIA5String, asn1.TagNumericString, 26: // 26: VisibleString
		return string(v.Bytes), true
	case asn1.TagT61String:
		// Read as Latin-1, as OpenSSL and most CAs that still write T61String mean it.
		r := make([]rune, len(v.Bytes))
		for i, c := range v.Bytes {
			r[i] = rune(c)
		}
		return string(r), true
	case asn1.TagBMPString:
		if len(v.Bytes)%2 != 0 {
			return "", false
		}
		u := make([]uint16, len(v.Bytes)/2)
		for i := range u {
			u[i] = binary.BigEndian.Uint16(v.Bytes[2*i:])
		}
		return string(utf16.Decode(u)), true
	case 28: // UniversalString, UTF-32BE
		if len(v.Bytes)%4 != 0 {
			return "", false
		}
		r := make([]rune, len(v.Bytes)/4)
		for i := range r {
			r[i] = rune(binary.BigEndian.Uint32(v.Bytes[4*i:]))
		}
		return string(r), true
	}
	return "", false
}

// escapeValue writes s escaped per RFC 4514 §2.4, and also escapes control characters and
// invalid UTF-8 as \XX so that a hostile name cannot put raw control bytes into the record.
func escapeValue(b *strings.Builder, s string) {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1, r < 0x20, r == 0x7f:
			b.WriteByte('\\')
			b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{s[i]})))
		case strings.ContainsRune(`,+"\<>;`, r),
			i == 0 && (r == ' ' || r == '#'),
			i+size == len(s) && r == ' ':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
}

// algorithmName gives OpenSSL's name for the algorithms S/MIME uses, and the dotted OID for
// the rest.
func algorithmName(oid string) string {
	switch oid {
	case "1.2.840.113549.2.5":
		return "md5"
	case "1.3.14.3.2.26":
		return "sha1"
	case "2.16.840.1.101.3.4.2.1":
		return "sha256"
	case "2.16.840.1.101.3.4.2.2":
		return "sha384"
	case "2.16.840.1.101.3.4.2.3":
		return "sha512"
	case "2.16.840.1.101.3.4.2.4":
		return "sha224"
	case "2.16.840.1.101.3.4.2.8":
		return "sha3-256"
	case "2.16.840.1.101.3.4.2.9":
		return "sha3-384"
	case "2.16.840.1.101.3.4.2.10":
		return "sha3-512"
	case "1.2.840.113549.1.1.1":
		return "rsaEncryption"
	case "1.2.840.113549.1.1.4":
		return "md5WithRSAEncryption"
	case "1.2.840.113549.1.1.5":
		return "sha1WithRSAEncryption"
	case "1.2.840.113549.1.1.7":
		return "rsaesOaep"
	case "1.2.840.113549.1.1.10":
		return "rsassaPss"
	case "1.2.840.113549.1.1.11":
		return "sha256WithRSAEncryption"
	case "1.2.840.113549.1.1.12":
		return "sha384WithRSAEncryption"
	case "1.2.840.113549.1.1.13":
		return "sha512WithRSAEncryption"
	case "1.2.840.113549.1.1.14":
		return "sha224WithRSAEncryption"
	case "1.2.840.10045.2.1":
		return "id-ecPublicKey"
	case "1.2.840.10045.4.1":
		return "ecdsa-with-SHA1"
	case "1.2.840.10045.4.3.1":
		return "ecdsa-with-SHA224"
	case "1.2.840.10045.4.3.2":
		return "ecdsa-with-SHA256"
	case "1.2.840.10045.4.3.3":
		return "ecdsa-with-SHA384"
	case "1.2.840.10045.4.3.4":
		return "ecdsa-with-SHA512"
	case "1.2.840.10040.4.1":
		return "dsaEncryption"
	case "1.2.840.10040.4.3":
		return "dsaWithSHA1"
	case "2.16.840.1.101.3.4.3.2":
		return "dsa_with_SHA256"
	case "1.3.101.112":
		return "ED25519"
	case "1.3.101.113":
		return "ED448"
	case "2.16.840.1.101.3.4.1.2":
		return "aes-128-cbc"
	case "2.16.840.1.101.3.4.1.22":
		return "aes-192-cbc"
	case "2.16.840.1.101.3.4.1.42":
		return "aes-256-cbc"
	case "2.16.840.1.101.3.4.1.6":
		return "id-aes128-GCM"
	case "2.16.840.1.101.3.4.1.26":
		return "id-aes192-GCM"
	case "2.16.840.1.101.3.4.1.46":
		return "id-aes256-GCM"
	case "1.2.840.113549.3.7":
		return "des-ede3-cbc"
	case "1.3.14.3.2.7":
		return "des-cbc"
	case "1.2.840.113549.3.2":
		return "rc2-cbc"
	case "1.2.840.113549.1.9.16.3.18":
		return "id-alg-AEADChaCha20Poly1305"
	}
	return oid
}
