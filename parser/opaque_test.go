package parser

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signOpaque has openssl sign entity opaquely (application/pkcs7-mime; smime-type=
// signed-data) with a certificate generated here, and returns the S/MIME entity openssl
// wrote and the certificate's DER.
func signOpaque(t *testing.T, entity string) (string, []byte) {
	t.Helper()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("this test needs the openssl command to make an opaque-signed message: %v", err)
	}
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x5eed), Subject: pkix.Name{CommonName: "Signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, EmailAddresses: []string{"signer@example.com"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("cert.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	keyFile := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
	in := write("entity.eml", []byte(entity))
	out, err := exec.Command("openssl", "smime", "-sign", "-nodetach", "-binary", "-in", in,
		"-signer", certFile, "-inkey", keyFile).Output()
	if err != nil {
		t.Fatalf("openssl smime -sign: %v", err)
	}
	return string(out), der
}

// An opaque-signed message hides its whole MIME entity inside the signature. The parser
// must find the attachment inside, and the signer's certificate, whose sha256 the test
// computes from the certificate it generated.
func TestOpaqueSignedContentIsWalked(t *testing.T) {
	payload := []byte("MZ pretend executable\x00\x01\x02")
	entity := crlf("Content-Type: multipart/mixed; boundary=in\n\n--in\nContent-Type: text/plain\n\nrun https://signed.example/go\n--in\n"+
		"Content-Type: application/octet-stream; name=tool.exe\nContent-Transfer-Encoding: base64\n\n") +
		base64.StdEncoding.EncodeToString(payload) + crlf("\n--in--\n")
	p7, der := signOpaque(t, entity)
	rec := parseString(t, Options{}, crlf("From: signer@example.com\nSubject: signed\n")+p7)

	exe := attachmentAt(t, rec, "1.2")
	if exe.Filename != "tool.exe" || exe.SHA256 != sha256Hex(payload) {
		t.Errorf("attachment inside the signed content = %+v", exe)
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://signed.example/go" || rec.URLs[0].Sources[0] != "text" {
		t.Errorf("urls = %+v, want the signed body's link as text", rec.URLs)
	}
	if len(rec.Message.Crypto) != 1 || !rec.Message.Crypto[0].Signed || len(rec.Message.Crypto[0].Certificates) != 1 ||
		rec.Message.Crypto[0].Certificates[0].SHA256 != sha256Hex(der) || !rec.Message.Crypto[0].Certificates[0].Signer {
		t.Errorf("crypto = %+v, want one signer certificate with sha256 %s", rec.Message.Crypto, sha256Hex(der))
	}
}

// Found in review: the signed content adding a layer of its own (PGP here) moved the
// slice the S/MIME layer was written through, losing its certificate, and the content
// got an S/MIME layer of its own for the same message.
func TestOpaqueLayerSurvivesInnerLayers(t *testing.T) {
	inner := crlf("Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=s\n\n--s\nContent-Type: text/plain\n\nhi\n--s\nContent-Type: application/pgp-signature\n\nxx\n--s--\n")
	p7, der := signOpaque(t, inner)
	rec := parseString(t, Options{}, crlf("From: a@example.com\n")+p7)
	var smimeLayers int
	for _, c := range rec.Message.Crypto {
		if c.Kind == "smime" {
			smimeLayers++
			if len(c.Certificates) != 1 || c.Certificates[0].SHA256 != sha256Hex(der) {
				t.Errorf("smime layer = %+v, want the signer certificate", c)
			}
		}
	}
	if smimeLayers != 1 {
		t.Errorf("crypto = %+v, want exactly one smime layer", rec.Message.Crypto)
	}
}

// Found in review: while the CMS reader's goroutine pulled the enclosing walker, that
// walker's callbacks (a nested message's hashes, anomalies) raced with the walk of the
// signed content. Run with -race; the nested message's hashes must be filled.
//
// The decoders of the signed content's parts shared the parse's buffer cache with the
// decoder the CMS reader pulls, so the parts alternate: base64, then no encoding at all
// (sniffed, since the body is base64-shaped), then raw long lines.
func TestOpaqueSignedInsideAttachedMessage(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=in\n\n")
	for i := range 200 {
		switch i % 3 {
		case 0:
			b.WriteString("--in\nContent-Type: application/octet-stream; name=f.bin\nContent-Transfer-Encoding: base64\n\n" + strings.Repeat(strings.Repeat("A", 76)+"\n", 3))
		case 1:
			b.WriteString("--in\nContent-Type: application/octet-stream; name=f.bin\n\n" + strings.Repeat(strings.Repeat("A", 76)+"\n", 3))
		default:
			b.WriteString("--in\nContent-Type: application/octet-stream; name=f.bin\n\n" + strings.Repeat("A", 700) + "\n")
		}
	}
	b.WriteString("--in--\n")
	p7, _ := signOpaque(t, crlf(b.String()))
	msg := crlf("Content-Type: multipart/mixed; boundary=out\n\n--out\nContent-Type: text/plain\n\nx\n--out\nContent-Type: message/rfc822\n\nFrom: q@example.com\n") + p7
	rec := parseString(t, Options{}, msg)
	if m := attachmentAt(t, rec, "2"); m.SHA256 == "" || m.Size == 0 {
		t.Errorf("attached message = %+v, want its hashes", m)
	}
	n := 0
	for _, a := range rec.Attachments {
		if a.Filename == "f.bin" {
			n++
		}
	}
	if n != 200 {
		t.Errorf("%d f.bin inside the signed content, want 200", n)
	}
}

// With attachments off, signatures and the signed content's text still count.
func TestOpaqueSignedWithAttachmentsOff(t *testing.T) {
	p7, _ := signOpaque(t, crlf("Content-Type: text/plain\n\nclick https://evil.example/x\n"))
	rec := parseString(t, Options{Attachments: AttachmentsOff}, crlf("From: a@example.com\n")+p7)
	if len(rec.URLs) != 1 || len(rec.Message.Crypto) != 1 || len(rec.Attachments) != 0 {
		t.Errorf("urls %v crypto %v attachments %v", rec.URLs, rec.Message.Crypto, rec.Attachments)
	}
}

// Found in review: a blob sink failure inside signed content was dropped when the
// signature was also malformed, and the blobs and their sums went out of step.
func TestOpaqueBlobFailureIsNotSwallowed(t *testing.T) {
	p7, _ := signOpaque(t, crlf("Content-Type: multipart/mixed; boundary=in\n\n--in\nContent-Type: application/octet-stream; name=a.bin\n\nAAAA\n--in--\n"))
	hdr, b64, _ := strings.Cut(p7, "\n\n")
	der, err := base64.StdEncoding.DecodeString(strings.NewReplacer("\n", "", "\r", "").Replace(b64))
	if err != nil {
		t.Fatal(err)
	}
	der = der[:len(der)-40] // the signature is cut short after the content
	msg := crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\n") + strings.ReplaceAll(hdr, "\n", "\r\n") + "\r\n\r\n" +
		base64.StdEncoding.EncodeToString(der) + crlf("\n--o\nContent-Type: application/octet-stream; name=b.bin\n\nBBBBBBBB\n--o--\n")
	sink := &failingNth{failN: 2} // blob 1: the p7m; blob 2: a.bin inside it
	_, err = newTestParser(t, Options{Attachments: AttachmentsContent, Blobs: sink}).Parse(strings.NewReader(msg))
	var le *LocalError
	if !errors.As(err, &le) {
		t.Errorf("Parse error = %v, want the blob failure", err)
	}
	if sink.committed != 0 {
		t.Errorf("%d blobs committed for a refused copy", sink.committed)
	}
}

// failingNth is a blob sink whose n-th blob fails to write.
type failingNth struct {
	n, failN, committed int
}

type failingBlob struct {
	s    *failingNth
	fail bool
	buf  bytes.Buffer
}

func (s *failingNth) Create() (BlobWriter, error) {
	s.n++
	return &failingBlob{s: s, fail: s.n == s.failN}, nil
}

func (b *failingBlob) Write(p []byte) (int, error) {
	if b.fail {
		return 0, errors.New("disk full")
	}
	return b.buf.Write(p)
}

func (b *failingBlob) Commit(string) error { b.s.committed++; return nil }
func (b *failingBlob) Abort()              {}

// lateFailSink's blobs fail once more than 6,000 bytes are written to one of them: past the
// first buffer an opaque-signed attachment's reader goroutine has handed over.
type lateFailSink struct{}

type lateFailBlob struct{ n int }

func (lateFailSink) Create() (BlobWriter, error) { return &lateFailBlob{}, nil }

func (b *lateFailBlob) Write(p []byte) (int, error) {
	if b.n+len(p) > 6000 {
		return 0, errors.New("disk full")
	}
	b.n += len(p)
	return len(p), nil
}

func (b *lateFailBlob) Commit(string) error { return nil }
func (b *lateFailBlob) Abort()              {}

// TestBlobFailureInsideSignedContentIsLocal: a blob write that fails while the CMS reader
// goroutine pulls an opaque-signed attachment reaches Parse wrapped in the walker's read
// error. It is still our disk's fault, not the sender's connection: it must match ErrLocal
// and not ErrIncomplete, so the sender is told of a local error and the log says so.
func TestBlobFailureInsideSignedContentIsLocal(t *testing.T) {
	p7, _ := signOpaque(t, crlf("Content-Type: text/plain\n\n"+strings.Repeat("hello world line\n", 2000)))
	hdr, b64, _ := strings.Cut(p7, "\n\n")
	msg := crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\n") + strings.ReplaceAll(hdr, "\n", "\r\n") + "\r\n\r\n" +
		strings.ReplaceAll(b64, "\n", "\r\n") + crlf("\n--o--\n")
	rec, err := newTestParser(t, Options{Attachments: AttachmentsContent, Blobs: lateFailSink{}}).Parse(strings.NewReader(msg))
	if rec != nil || !errors.Is(err, ErrLocal) || errors.Is(err, ErrIncomplete) {
		t.Fatalf("Parse = %v, %v; want no record and an error that is ErrLocal and not ErrIncomplete", rec, err)
	}
}
