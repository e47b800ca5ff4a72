package smime

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smallstep/pkcs7"
)

// testPKI is a CA and three end-entity certificates made for one test.
type testPKI struct {
	ca      *x509.Certificate
	caKey   *ecdsa.PrivateKey
	rsa     *x509.Certificate // Alice: RSA, serial with the top bit set, SKI extension
	rsaKey  *rsa.PrivateKey
	ec      *x509.Certificate // Bob: ECDSA P-256, validity past 2049 (GeneralizedTime)
	ecKey   *ecdsa.PrivateKey
	odd     *x509.Certificate // a name full of characters RFC 4514 must escape
	oddKey  *ecdsa.PrivateKey
	dir     string // PEM files for openssl: ca.pem, alice.pem, alice.key, bob.pem, bob.key
	content []byte
}

var oidEmail = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	p := &testPKI{dir: t.TempDir(), content: []byte("Content-Type: text/plain\r\n\r\nHello.\r\n")}
	var err error
	p.caKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{Country: []string{"DE"}, Organization: []string{"Journal Sensor Tests"}, CommonName: "Test CA"},
		NotBefore:             time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC),
		NotAfter:              time.Date(2044, 1, 2, 3, 4, 5, 0, time.UTC),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	p.ca = makeCert(t, caTmpl, caTmpl, &p.caKey.PublicKey, p.caKey)

	p.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
	check(t, err)
	serial, _ := new(big.Int).SetString("8badf00ddeadbeef", 16)
	p.rsa = makeCert(t, &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{Country: []string{"DE"}, Organization: []string{"Example"}, CommonName: "Alice Example",
			ExtraNames: []pkix.AttributeTypeAndValue{{Type: oidEmail, Value: "alice@example.com"}}},
		NotBefore:      time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC),
		NotAfter:       time.Date(2027, 2, 3, 4, 5, 6, 0, time.UTC),
		SubjectKeyId:   []byte{0xa1, 0x1c, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17},
		KeyUsage:       x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		EmailAddresses: []string{"alice@example.com"},
	}, p.ca, &p.rsaKey.PublicKey, p.caKey)

	p.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	p.ec = makeCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(0x0102),
		Subject:      pkix.Name{CommonName: "Bob"},
		NotBefore:    time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC),
		NotAfter:     time.Date(2051, 6, 7, 8, 9, 10, 0, time.UTC),
		SubjectKeyId: []byte{0xb0, 0xb0},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyAgreement,
	}, p.ca, &p.ecKey.PublicKey, p.caKey)

	p.oddKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	p.odd = makeCert(t, &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject: pkix.Name{
			Organization: []string{"#hash, \"quoted\" <a+b>; back\\slash "},
			CommonName:   "Ünïcødé\x01ctl",
		},
		NotBefore: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:  time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	}, p.ca, &p.oddKey.PublicKey, p.caKey)

	writePEM(t, filepath.Join(p.dir, "ca.pem"), "CERTIFICATE", p.ca.Raw)
	writePEM(t, filepath.Join(p.dir, "alice.pem"), "CERTIFICATE", p.rsa.Raw)
	writePEM(t, filepath.Join(p.dir, "bob.pem"), "CERTIFICATE", p.ec.Raw)
	k, err := x509.MarshalPKCS8PrivateKey(p.rsaKey)
	check(t, err)
	writePEM(t, filepath.Join(p.dir, "alice.key"), "PRIVATE KEY", k)
	k, err = x509.MarshalPKCS8PrivateKey(p.ecKey)
	check(t, err)
	writePEM(t, filepath.Join(p.dir, "bob.key"), "PRIVATE KEY", k)
	check(t, os.WriteFile(filepath.Join(p.dir, "msg.txt"), p.content, 0o600))
	return p
}

func makeCert(t testing.TB, tmpl, parent *x509.Certificate, pub crypto.PublicKey, key crypto.Signer) *x509.Certificate {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, key)
	check(t, err)
	c, err := x509.ParseCertificate(der)
	check(t, err)
	return c
}

func writePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	check(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantCert is what a Cert must say about c. Hashes, serial and dates come from the
// certificate as crypto/x509 made and parsed it; ReadCMS uses neither.
func wantCert(c *x509.Certificate, subject, issuer string, signer bool) Cert {
	s1 := sha1.Sum(c.Raw)
	s256 := sha256.Sum256(c.Raw)
	return Cert{
		SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]),
		Subject: subject, Issuer: issuer,
		Serial:    c.SerialNumber.Text(16),
		NotBefore: c.NotBefore.UTC().Format(time.RFC3339), NotAfter: c.NotAfter.UTC().Format(time.RFC3339),
		Signer: signer,
	}
}

// Names written by hand from RFC 4514: last RDN first, specials escaped.
const (
	caName    = "CN=Test CA,O=Journal Sensor Tests,C=DE"
	aliceName = "emailAddress=alice@example.com,CN=Alice Example,O=Example,C=DE"
	bobName   = "CN=Bob"
	oddName   = `CN=Ünïcødé\01ctl,O=\#hash\, \"quoted\" \<a\+b\>\; back\\slash\ `
)

func TestSignedDataDERFromSmallstep(t *testing.T) {
	p := newPKI(t)
	sd, err := pkcs7.NewSignedData(p.content)
	check(t, err)
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	before := time.Now().UTC().Truncate(time.Second)
	check(t, sd.AddSigner(p.rsa, p.rsaKey, pkcs7.SignerInfoConfig{}))
	sd.AddCertificate(p.ca)
	sd.Detach()
	der, err := sd.Finish()
	check(t, err)
	after := time.Now().UTC()

	info, err := ReadCMS(bytes.NewReader(der), Options{})
	check(t, err)
	wantCerts := []Cert{
		wantCert(p.rsa, aliceName, caName, true),
		wantCert(p.ca, caName, caName, false),
	}
	if !slices.Equal(info.Certificates, wantCerts) {
		t.Errorf("certificates:\n got %+v\nwant %+v", info.Certificates, wantCerts)
	}
	if info.Kind != SMIME || !info.Signed || info.Encrypted || info.ContentType != "signed-data" || info.Truncated {
		t.Errorf("info = %+v", info)
	}
	if !slices.Equal(info.DigestAlgorithms, []string{"sha256"}) ||
		!slices.Equal(info.SignatureAlgorithms, []string{"sha256WithRSAEncryption"}) {
		t.Errorf("algorithms = %v %v", info.DigestAlgorithms, info.SignatureAlgorithms)
	}
	if len(info.Signers) != 1 {
		t.Fatalf("signers = %+v", info.Signers)
	}
	s := info.Signers[0]
	if s.Issuer != caName || s.Serial != "8badf00ddeadbeef" {
		t.Errorf("signer = %+v", s)
	}
	st, err := time.Parse(time.RFC3339, s.SigningTime)
	if err != nil || st.Before(before) || st.After(after) {
		t.Errorf("signing time %q not within [%v, %v]", s.SigningTime, before, after)
	}

	// Cross-check against smallstep's own parser, which reads this DER correctly.
	lib, err := pkcs7.Parse(der)
	check(t, err)
	for i, c := range lib.Certificates {
		sum := sha256.Sum256(c.Raw)
		if info.Certificates[i].SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("certificate %d differs from smallstep/pkcs7's", i)
		}
	}
}

func TestNamesAndGeneralizedTime(t *testing.T) {
	p := newPKI(t)
	sd, err := pkcs7.NewSignedData(p.content)
	check(t, err)
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	check(t, sd.AddSigner(p.ec, p.ecKey, pkcs7.SignerInfoConfig{}))
	sd.AddCertificate(p.odd)
	der, err := sd.Finish()
	check(t, err)
	info, err := ReadCMS(bytes.NewReader(der), Options{})
	check(t, err)
	want := []Cert{
		wantCert(p.ec, bobName, caName, true),
		wantCert(p.odd, oddName, caName, false),
	}
	if !slices.Equal(info.Certificates, want) {
		t.Errorf("certificates:\n got %+v\nwant %+v", info.Certificates, want)
	}
	if info.Certificates[0].NotAfter != "2051-06-07T08:09:10Z" {
		t.Errorf("GeneralizedTime NotAfter = %q", info.Certificates[0].NotAfter)
	}
	if !slices.Equal(info.SignatureAlgorithms, []string{"ecdsa-with-SHA256"}) {
		t.Errorf("signature algorithms = %v", info.SignatureAlgorithms)
	}
}

// openssl runs the openssl command in dir. Tests that need it fail, not skip, without it:
// the BER samples they check come from nowhere else.
func openssl(t *testing.T, dir string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("this test needs the openssl command (OpenSSL 3) in PATH to make its BER samples: %v", err)
	}
	cmd := exec.Command("openssl", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	check(t, err)
	return b
}

// isIndefinite says whether a CMS sample uses the BER indefinite-length form at its root,
// as `openssl cms -stream` does: 30 80 (X.690 §8.1.3.6).
func isIndefinite(b []byte) bool { return len(b) > 2 && b[0] == 0x30 && b[1] == 0x80 }

func TestOpaqueSignedBERFromOpenSSL(t *testing.T) {
	p := newPKI(t)
	openssl(t, p.dir, "cms", "-sign", "-stream", "-nodetach", "-binary", "-outform", "DER",
		"-md", "sha384", "-in", "msg.txt", "-signer", "alice.pem", "-inkey", "alice.key",
		"-certfile", "ca.pem", "-out", "sig.der")
	ber := readFile(t, filepath.Join(p.dir, "sig.der"))
	if !isIndefinite(ber) {
		t.Fatalf("openssl did not write indefinite lengths: % x", ber[:4])
	}
	var content bytes.Buffer
	info, err := ReadCMS(bytes.NewReader(ber), Options{Content: &content})
	check(t, err)
	if !bytes.Equal(content.Bytes(), p.content) {
		t.Errorf("content = %q, want %q", content.Bytes(), p.content)
	}
	want := []Cert{wantCert(p.rsa, aliceName, caName, true), wantCert(p.ca, caName, caName, false)}
	if !sameCerts(info.Certificates, want) {
		t.Errorf("certificates:\n got %+v\nwant %+v", info.Certificates, want)
	}
	// OpenSSL signs RSA with rsaEncryption as the signature algorithm (RFC 3370 §3.2).
	if !slices.Equal(info.DigestAlgorithms, []string{"sha384"}) ||
		!slices.Equal(info.SignatureAlgorithms, []string{"rsaEncryption"}) {
		t.Errorf("algorithms = %v %v", info.DigestAlgorithms, info.SignatureAlgorithms)
	}
}

func TestSignerBySubjectKeyIdentifier(t *testing.T) {
	p := newPKI(t)
	openssl(t, p.dir, "cms", "-sign", "-keyid", "-binary", "-outform", "DER",
		"-in", "msg.txt", "-signer", "alice.pem", "-inkey", "alice.key",
		"-certfile", "ca.pem", "-out", "sig.der")
	info, err := ReadCMS(bytes.NewReader(readFile(t, filepath.Join(p.dir, "sig.der"))), Options{})
	check(t, err)
	if len(info.Signers) != 1 || info.Signers[0].SubjectKeyID != "a11ce00102030405060708090a0b0c0d0e0f1011" ||
		info.Signers[0].Issuer != "" {
		t.Errorf("signers = %+v", info.Signers)
	}
	want := []Cert{wantCert(p.rsa, aliceName, caName, true), wantCert(p.ca, caName, caName, false)}
	if !sameCerts(info.Certificates, want) {
		t.Errorf("certificates:\n got %+v\nwant %+v", info.Certificates, want)
	}
}

// countingReader counts how much of the input a reader took.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestEnvelopedRecipientsAndEarlyStop(t *testing.T) {
	p := newPKI(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB of plaintext
	check(t, os.WriteFile(filepath.Join(p.dir, "big.bin"), big, 0o600))
	tests := []struct {
		name, ctype, alg string
		args             []string
		ski              bool
	}{
		{"rsa and ecdh, issuer and serial", "enveloped-data", "aes-256-cbc",
			[]string{"-aes256"}, false},
		{"subject key identifiers, streamed BER", "enveloped-data", "aes-128-cbc",
			[]string{"-aes128", "-keyid", "-stream"}, true},
		{"AES-GCM gives AuthEnvelopedData", "authEnveloped-data", "id-aes256-GCM",
			[]string{"-aes-256-gcm"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"cms", "-encrypt", "-binary", "-outform", "DER", "-in", "big.bin", "-out", "env.der"}, tt.args...)
			openssl(t, p.dir, append(args, "alice.pem", "bob.pem")...)
			env := readFile(t, filepath.Join(p.dir, "env.der"))
			cr := &countingReader{r: bytes.NewReader(env)}
			info, err := ReadCMS(cr, Options{})
			check(t, err)
			if info.ContentType != tt.ctype || !info.Encrypted || info.Signed || info.EncryptionAlgorithm != tt.alg {
				t.Errorf("info = %+v", info)
			}
			want := []ID{{Issuer: caName, Serial: "8badf00ddeadbeef"}, {Issuer: caName, Serial: "102"}}
			if tt.ski {
				want = []ID{{SubjectKeyID: "a11ce00102030405060708090a0b0c0d0e0f1011"}, {SubjectKeyID: "b0b0"}}
			}
			if !slices.Equal(info.Recipients, want) {
				t.Errorf("recipients = %+v, want %+v", info.Recipients, want)
			}
			if cr.n > 64<<10 {
				t.Errorf("read %d bytes of %d: should stop at the ciphertext", cr.n, len(env))
			}
		})
	}
}

// TestOpaqueSignedLargerThanMaxBytes checks the point of reading a stream: an opaque-signed
// message much larger than the limit still gives its certificates, in bounded memory.
func TestOpaqueSignedLargerThanMaxBytes(t *testing.T) {
	p := newPKI(t)
	big := bytes.Repeat([]byte("All work and no play makes Jack a dull boy.\r\n"), 200000) // 9 MB
	check(t, os.WriteFile(filepath.Join(p.dir, "big.txt"), big, 0o600))
	openssl(t, p.dir, "cms", "-sign", "-stream", "-nodetach", "-binary", "-outform", "DER",
		"-in", "big.txt", "-signer", "alice.pem", "-inkey", "alice.key", "-out", "sig.der")
	ber := readFile(t, filepath.Join(p.dir, "sig.der"))
	h := sha256.New()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	info, err := ReadCMS(bytes.NewReader(ber), Options{MaxBytes: 64 << 10, Content: h})
	runtime.ReadMemStats(&m1)
	check(t, err)
	if want := sha256.Sum256(big); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Error("content passed to Options.Content differs from what was signed")
	}
	if len(info.Certificates) != 1 || !info.Certificates[0].Signer {
		t.Errorf("certificates = %+v", info.Certificates)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 1<<20 {
		t.Errorf("allocated %d bytes reading %d", alloc, len(ber))
	}
	t.Logf("%d-byte opaque signature read with %d bytes allocated", len(ber), m1.TotalAlloc-m0.TotalAlloc)
}

func TestCertsOnlyIsNotSigned(t *testing.T) {
	p := newPKI(t)
	openssl(t, p.dir, "crl2pkcs7", "-nocrl", "-certfile", "alice.pem", "-certfile", "ca.pem",
		"-outform", "DER", "-out", "certs.p7c")
	info, err := ReadCMS(bytes.NewReader(readFile(t, filepath.Join(p.dir, "certs.p7c"))), Options{})
	check(t, err)
	if info.Signed || info.ContentType != "signed-data" || len(info.Certificates) != 2 {
		t.Errorf("info = %+v", info)
	}
}

// samples returns CMS encodings to cut up: DER from smallstep/pkcs7, BER from openssl.
func samples(t *testing.T) map[string][]byte {
	p := newPKI(t)
	sd, err := pkcs7.NewSignedData(p.content)
	check(t, err)
	check(t, sd.AddSigner(p.rsa, p.rsaKey, pkcs7.SignerInfoConfig{}))
	sd.AddCertificate(p.ca)
	der, err := sd.Finish()
	check(t, err)
	openssl(t, p.dir, "cms", "-sign", "-stream", "-nodetach", "-binary", "-outform", "DER",
		"-in", "msg.txt", "-signer", "bob.pem", "-inkey", "bob.key", "-certfile", "alice.pem", "-out", "sig.der")
	openssl(t, p.dir, "cms", "-encrypt", "-stream", "-binary", "-outform", "DER",
		"-in", "msg.txt", "-out", "env.der", "alice.pem", "bob.pem")
	return map[string][]byte{
		"der-signed": der,
		"ber-signed": readFile(t, filepath.Join(p.dir, "sig.der")),
		"ber-env":    readFile(t, filepath.Join(p.dir, "env.der")),
	}
}

// sameCerts compares certificate lists in any order: OpenSSL puts the -certfile
// certificates before the signer's.
func sameCerts(a, b []Cert) bool {
	key := func(x, y Cert) int { return strings.Compare(x.SHA256, y.SHA256) }
	return slices.Equal(slices.SortedFunc(slices.Values(a), key), slices.SortedFunc(slices.Values(b), key))
}

// TestTruncatedAtEveryOffset cuts each sample at every length: each prefix must give an
// error or a result flagged as truncated, or else the whole sample's result (the reader
// stops before the ciphertext and the final end-of-contents octets, so cutting those goes
// unnoticed, rightly). Never a panic, and every certificate listed must be the whole's.
func TestTruncatedAtEveryOffset(t *testing.T) {
	for name, b := range samples(t) {
		full, err := ReadCMS(bytes.NewReader(b), Options{})
		check(t, err)
		for n := range len(b) {
			info, err := ReadCMS(bytes.NewReader(b[:n]), Options{})
			if errors.Is(err, errInternal) {
				t.Fatalf("%s[:%d]: %v", name, n, err)
			}
			if err == nil && !info.Truncated && !reflect.DeepEqual(info, full) {
				t.Errorf("%s[:%d] of %d: no error, not truncated, but incomplete: %+v", name, n, len(b), info)
			}
			for _, c := range info.Certificates {
				if !slices.ContainsFunc(full.Certificates, func(f Cert) bool { return f.SHA256 == c.SHA256 }) {
					t.Errorf("%s[:%d]: certificate %s not in the whole", name, n, c.SHA256)
				}
			}
		}
	}
}

// tlv encodes one element with a definite length, for the hand-built inputs below.
func tlv(tag byte, content ...[]byte) []byte {
	body := bytes.Join(content, nil)
	n := len(body)
	var l []byte
	switch {
	case n < 0x80:
		l = []byte{byte(n)}
	case n < 0x100:
		l = []byte{0x81, byte(n)}
	case n < 0x10000:
		l = []byte{0x82, byte(n >> 8), byte(n)}
	default:
		l = []byte{0x83, byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return append(append([]byte{tag}, l...), body...)
}

// signedDataPrefix is ContentInfo { signed-data, [0] { SignedData { version,
// digestAlgorithms, ... with indefinite lengths, up to where a test appends its own part.
func signedDataPrefix() []byte {
	b := []byte{0x30, 0x80}
	b = append(b, tlv(0x06, []byte{0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02})...) // 1.2.840.113549.1.7.2
	b = append(b, 0xa0, 0x80, 0x30, 0x80)
	b = append(b, tlv(0x02, []byte{1})...)
	b = append(b, tlv(0x31)...)
	return b
}

func TestHostileInputs(t *testing.T) {
	const depth = 500000
	deepOctets := append(signedDataPrefix(), 0x30, 0x80, 0x06, 0x01, 0x00, 0xa0, 0x80)
	deepOctets = append(deepOctets, bytes.Repeat([]byte{0x24, 0x80}, depth)...)
	deepCert := append(signedDataPrefix(), tlv(0x30, tlv(0x06, []byte{0x2a}))...)
	deepCert = append(deepCert, 0xa0, 0x80)
	deepCert = append(deepCert, bytes.Repeat([]byte{0x30, 0x80}, depth)...)
	nulls := append(signedDataPrefix(), tlv(0x30, tlv(0x06, []byte{0x2a}))...)
	nulls = append(nulls, 0xa0, 0x80)
	nulls = append(nulls, bytes.Repeat([]byte{0x05, 0x00}, depth)...)
	hugeCert := append(signedDataPrefix(), tlv(0x30, tlv(0x06, []byte{0x2a}))...)
	hugeCert = append(hugeCert, 0xa0, 0x80, 0x30, 0x86, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3)

	tests := []struct {
		name  string
		in    []byte
		err   error // nil: any error
		certs int
	}{
		{"empty", nil, errNotCMS, 0},
		{"not a sequence", []byte("-----BEGIN PKCS7-----"), errNotCMS, 0},
		{"nested constructed OCTET STRING", deepOctets, errTooDeep, 0},
		{"nested indefinite certificate", deepCert, errTooDeep, 0},
		{"a million bytes of NULLs among the certificates", nulls, io.ErrUnexpectedEOF, 0},
		{"certificate declaring 2^48 bytes", hugeCert, io.ErrUnexpectedEOF, 0},
		{"length of 9 octets", []byte{0x30, 0x89, 1, 2, 3, 4, 5, 6, 7, 8, 9}, errBadLength, 0},
		{"length 0xff", []byte{0x30, 0xff}, errBadLength, 0},
		{"indefinite primitive", []byte{0x04, 0x80, 0, 0}, errBadLength, 0},
		{"tag number of 5 octets", []byte{0x3f, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00}, errBadTag, 0},
		{"child longer than parent", append(signedDataPrefix()[:2], 0x30, 0x03, 0x06, 0x09, 1), nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			start := time.Now()
			info, err := ReadCMS(bytes.NewReader(tt.in), Options{})
			elapsed := time.Since(start)
			runtime.ReadMemStats(&m1)
			if err == nil || errors.Is(err, errInternal) || (tt.err != nil && !errors.Is(err, tt.err)) {
				t.Errorf("err = %v, want %v", err, tt.err)
			}
			if len(info.Certificates) != tt.certs {
				t.Errorf("certificates = %+v", info.Certificates)
			}
			if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > 256<<10 {
				t.Errorf("allocated %d bytes for %d of input", alloc, len(tt.in))
			}
			if elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	p := newPKI(t)
	sd, err := pkcs7.NewSignedData(p.content)
	check(t, err)
	check(t, sd.AddSigner(p.rsa, p.rsaKey, pkcs7.SignerInfoConfig{}))
	for range 5 {
		sd.AddCertificate(p.ca)
	}
	der, err := sd.Finish()
	check(t, err)

	info, err := ReadCMS(bytes.NewReader(der), Options{MaxItems: 3})
	check(t, err)
	if len(info.Certificates) != 3 || !info.Truncated || len(info.Signers) != 1 {
		t.Errorf("MaxItems 3: %d certificates, truncated %v, %d signers", len(info.Certificates), info.Truncated, len(info.Signers))
	}
	// Room for the RSA certificate only: the CA copies no longer fit, the SignerInfo does
	// not either, and all that is reported.
	budget := len(p.rsa.Raw) + 10
	info, err = ReadCMS(bytes.NewReader(der), Options{MaxBytes: budget})
	check(t, err)
	if len(info.Certificates) != 1 || !info.Truncated || len(info.Signers) != 0 {
		t.Errorf("MaxBytes %d: %+v", budget, info)
	}
}

func TestMalformedCertificateIsStillHashed(t *testing.T) {
	junk := tlv(0x30, tlv(0x02, []byte{1}), tlv(0x05)) // a SEQUENCE, but no certificate
	in := append(signedDataPrefix(), tlv(0x30, tlv(0x06, []byte{0x2a}))...)
	in = append(in, tlv(0xa0, junk)...)
	in = append(in, tlv(0x31)...)
	in = append(in, 0, 0, 0, 0, 0, 0)
	info, err := ReadCMS(bytes.NewReader(in), Options{})
	check(t, err)
	sum := sha256.Sum256(junk)
	if len(info.Certificates) != 1 || !info.Certificates[0].Malformed ||
		info.Certificates[0].SHA256 != hex.EncodeToString(sum[:]) || info.Certificates[0].Subject != "" {
		t.Errorf("certificates = %+v", info.Certificates)
	}
	if info.Signed {
		t.Error("a SignedData with an empty signerInfos SET is certs-only, not signed")
	}
}

func TestGarbageNeverPanics(t *testing.T) {
	seeds := samples(t)
	r := newRand(1)
	for i := range 10000 {
		var in []byte
		if i%2 == 0 {
			in = make([]byte, r.intn(300))
			r.fill(in)
		} else { // flip bytes in a real sample
			for _, s := range seeds {
				in = slices.Clone(s)
				break
			}
			for range 1 + r.intn(8) {
				in[r.intn(len(in))] = byte(r.intn(256))
			}
		}
		if _, err := ReadCMS(bytes.NewReader(in), Options{}); errors.Is(err, errInternal) {
			t.Fatalf("input % x: %v", in, err)
		}
		if _, err := ReadPGP(bytes.NewReader(in), Options{}); errors.Is(err, errInternal) {
			t.Fatalf("input % x: %v", in, err)
		}
	}
}

// rng is a small deterministic generator, so a failure can be replayed.
type rng struct{ s uint64 }

func newRand(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) next() uint64 {
	r.s ^= r.s << 13
	r.s ^= r.s >> 7
	r.s ^= r.s << 17
	return r.s
}

func (r *rng) intn(n int) int {
	if n <= 0 {
		return 0
	}
	return int(r.next() % uint64(n))
}

func (r *rng) fill(b []byte) {
	for i := range b {
		b[i] = byte(r.next())
	}
}
