package parser

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// An opaque-signed message (application/pkcs7-mime; smime-type=signed-data) hides its
// whole MIME entity inside the signature. openssl makes one here from a known entity; the
// parser must find the attachment inside, and the signer's certificate, whose sha256 the
// test computes from the certificate it generated.
func TestOpaqueSignedContentIsWalked(t *testing.T) {
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
	payload := []byte("MZ pretend executable\x00\x01\x02")
	entity := crlf("Content-Type: multipart/mixed; boundary=in\n\n--in\nContent-Type: text/plain\n\nrun https://signed.example/go\n--in\n"+
		"Content-Type: application/octet-stream; name=tool.exe\nContent-Transfer-Encoding: base64\n\n") +
		base64.StdEncoding.EncodeToString(payload) + crlf("\n--in--\n")
	in := write("entity.eml", []byte(entity))
	out, err := exec.Command("openssl", "smime", "-sign", "-nodetach", "-binary", "-in", in,
		"-signer", certFile, "-inkey", keyFile).Output()
	if err != nil {
		t.Fatalf("openssl smime -sign: %v", err)
	}
	msg := crlf("From: signer@example.com\nSubject: signed\n") + string(out)

	rec := parseString(t, Options{}, msg)
	var exe *struct{ path, sum string }
	for _, a := range rec.Attachments {
		if a.Filename == "tool.exe" {
			exe = &struct{ path, sum string }{a.Path, a.SHA256}
		}
	}
	if exe == nil || exe.sum != sha256Hex(payload) || exe.path != "1.2" {
		t.Fatalf("attachment inside the signed content: %+v; have %s", exe, listAttachments(rec))
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://signed.example/go" || rec.URLs[0].Sources[0] != "text" {
		t.Errorf("urls = %+v, want the signed body's link as text", rec.URLs)
	}
	if len(rec.Message.Crypto) != 1 || !rec.Message.Crypto[0].Signed || len(rec.Message.Crypto[0].Certificates) != 1 ||
		rec.Message.Crypto[0].Certificates[0].SHA256 != sha256Hex(der) || !rec.Message.Crypto[0].Certificates[0].Signer {
		t.Errorf("crypto = %+v, want one signer certificate with sha256 %s", rec.Message.Crypto, sha256Hex(der))
	}
}
