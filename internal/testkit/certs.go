package testkit

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SelfSignedPEM makes a self-signed certificate for sensor.test named cn, and its key, as PEM.
func SelfSignedPEM(tb testing.TB, cn string) (certPEM, keyPEM []byte) {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{SerialNumber: serial(tb), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"sensor.test"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	return encodeCert(der), encodeKey(tb, key)
}

// WriteCertPair writes a new self-signed pair named cn to dir/cert.pem and dir/key.pem, in
// place, as a certificate renewer does, and returns their paths.
func WriteCertPair(tb testing.TB, dir, cn string) (certFile, keyFile string) {
	tb.Helper()
	c, k := SelfSignedPEM(tb, cn)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, k, 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

// NewCA makes a CA and a server certificate for 127.0.0.1 and localhost signed by it. It
// writes the CA to dir/ca.pem and returns that path and the server's TLS config.
func NewCA(tb testing.TB, dir string) (caFile string, server *tls.Config) {
	tb.Helper()
	ca := MakeCA(tb, "journal sensor test CA")
	caFile = ca.WriteFile(tb, filepath.Join(dir, "ca.pem"))
	srv := ca.Issue(tb, Leaf{CN: "localhost", DNSNames: []string{"localhost"},
		IPs: []net.IP{net.ParseIP("127.0.0.1")}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return caFile, &tls.Config{Certificates: []tls.Certificate{srv}, MinVersion: tls.VersionTLS12}
}

// CA is a throwaway certificate authority that issues leaf certificates for tests: for
// servers, for clients, and for MTAs that show one certificate in both roles.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// chain is what a leaf's holder sends after the leaf: this CA's certificate and those
	// above it, up to and without the root. Empty for a root.
	chain [][]byte
}

// MakeCA makes a root CA named cn, valid from an hour ago to an hour from now.
func MakeCA(tb testing.TB, cn string) *CA {
	tb.Helper()
	return makeCA(tb, cn, nil)
}

// SubCA makes an intermediate CA named cn, signed by ca. The certificates it issues carry
// it in their chain, as a server's or client's certificate file does.
func (ca *CA) SubCA(tb testing.TB, cn string) *CA {
	tb.Helper()
	return makeCA(tb, cn, ca)
}

func makeCA(tb testing.TB, cn string, parent *CA) *CA {
	tb.Helper()
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.Cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	ca := &CA{Cert: cert, key: key}
	if parent != nil {
		ca.chain = append([][]byte{der}, parent.chain...)
	}
	return ca
}

// PEM is the CA's certificate as PEM.
func (ca *CA) PEM() []byte { return encodeCert(ca.Cert.Raw) }

// WriteFile writes the CA's certificate to path (0644: Postfix's unprivileged processes
// may read it) and returns path.
func (ca *CA) WriteFile(tb testing.TB, path string) string {
	tb.Helper()
	if err := os.WriteFile(path, ca.PEM(), 0o644); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Leaf describes a certificate for CA.Issue to make.
type Leaf struct {
	CN       string
	DNSNames []string
	IPs      []net.IP
	// Usages are the extended key usages; none means any usage, as x509 reads a certificate
	// without the extension.
	Usages []x509.ExtKeyUsage
	// NotBefore and NotAfter default to an hour ago and an hour from now.
	NotBefore, NotAfter time.Time
}

// Issue makes a certificate and key as l describes, signed by ca, followed by ca's chain
// up to the root. Its Leaf is parsed.
func (ca *CA) Issue(tb testing.TB, l Leaf) tls.Certificate {
	tb.Helper()
	key := newKey(tb)
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = time.Now().Add(time.Hour)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		Subject:      pkix.Name{CommonName: l.CN},
		NotBefore:    l.NotBefore,
		NotAfter:     l.NotAfter,
		DNSNames:     l.DNSNames,
		IPAddresses:  l.IPs,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  l.Usages,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: append([][]byte{der}, ca.chain...), PrivateKey: key, Leaf: leaf}
}

// WriteCert writes c's certificate chain and key as PEM to dir/name.pem and dir/name.key
// and returns their paths. Both are 0644: the files are a test's throwaway, and Postfix's
// unprivileged processes may need to read them.
func WriteCert(tb testing.TB, dir, name string, c tls.Certificate) (certFile, keyFile string) {
	tb.Helper()
	var chain []byte
	for _, der := range c.Certificate {
		chain = append(chain, encodeCert(der)...)
	}
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		tb.Fatalf("WriteCert: a %T key", c.PrivateKey)
	}
	certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+".key")
	if err := os.WriteFile(certFile, chain, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, encodeKey(tb, key), 0o644); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return key
}

// serial is random, as RFC 5280 §4.1.2.2 asks of a CA: two certificates of one test must
// not share one.
func serial(tb testing.TB) *big.Int {
	tb.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(tb testing.TB, key *ecdsa.PrivateKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
