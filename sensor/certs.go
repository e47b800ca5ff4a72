package sensor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// tls12Suites are the TLS 1.2 suites the SMTP door offers: forward secret (ECDHE) and
// authenticated encryption (AEAD) only, in the server's order of preference. TLS 1.3 suites
// are Go's and cannot be configured; all of them qualify.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerTLSConfig is the TLS configuration of the SMTP door (STARTTLS and implicit TLS):
// TLS 1.2 or later, ECDHE with AEAD suites under TLS 1.2, the certificate from getCert at
// each handshake. Go servers never renegotiate and never compress.
func ServerTLSConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   tls12Suites,
		GetCertificate: getCert,
	}
}

// CertReloader holds the SMTP door's certificate and key, read from two PEM files, and
// reads them again on Reload (SIGHUP) and when Watch sees either file change. New handshakes
// get the pair read last; sessions already under way keep theirs. A pair that does not load
// is refused and logged, and the one before stays in use.
type CertReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	cur      atomic.Pointer[tls.Certificate]
	failures atomic.Int64
	m        *Metrics // set by CountIn; nil: not counted

	mu    sync.Mutex // serialises Reload
	stamp fileStamp  // of the files as last read, loaded or not
}

// fileStamp is what Watch compares: the files' modification times and sizes.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// NewCertReloader reads the pair. An error here is for the operator to fix before the
// sensor starts.
func NewCertReloader(certFile, keyFile string, log *slog.Logger) (*CertReloader, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &CertReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, _ := r.statFiles()
	cert, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	r.cur.Store(cert)
	r.stamp = stamp
	return r, nil
}

// loadPair reads and checks a certificate and its key.
func loadPair(certFile, keyFile string) (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate %s and key %s: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("parsing the TLS certificate %s: %w", certFile, err)
		}
	}
	return &cert, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load(), nil
}

// NotAfter is when the certificate in use expires.
func (r *CertReloader) NotAfter() time.Time { return r.cur.Load().Leaf.NotAfter }

// CountIn makes /metrics tell m's readers of the certificate in use and of refused reloads.
// Call it before Reload or Watch.
func (r *CertReloader) CountIn(m *Metrics) {
	r.m = m
	r.count()
}

func (r *CertReloader) count() {
	if r.m != nil {
		r.m.conns.tls.notAfter.Store(r.NotAfter().Unix())
		r.m.conns.tls.reloadFailures.Store(r.failures.Load())
	}
}

// tlsMetrics is what /metrics tells of the SMTP door's certificate.
type tlsMetrics struct {
	notAfter       atomic.Int64 // Unix seconds; 0 without a certificate
	reloadFailures atomic.Int64
}

func (t *tlsMetrics) collect(s series) {
	if t.notAfter.Load() == 0 {
		return
	}
	s.gauge("sensor_tls_certificate_expiry_seconds", "When the SMTP door's certificate in use expires, in Unix seconds.", float64(t.notAfter.Load()))
	s.counter("sensor_tls_certificate_reload_failures_total", "Certificate reloads refused (the previous pair stayed in use).", float64(t.reloadFailures.Load()))
}

// Failures counts the reloads that were refused.
func (r *CertReloader) Failures() int64 { return r.failures.Load() }

// Reload reads the pair again. If it does not load, the pair in use stays, and the error is
// logged and returned.
func (r *CertReloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	defer r.count()
	stamp, _ := r.statFiles()
	r.stamp = stamp
	cert, err := loadPair(r.certFile, r.keyFile)
	if err != nil {
		r.failures.Add(1)
		old := r.cur.Load().Leaf
		r.log.Error("TLS certificate not reloaded; the previous one stays in use",
			"cert_file", r.certFile, "key_file", r.keyFile, "error", err,
			"in_use_subject", old.Subject.String(), "in_use_not_after", old.NotAfter)
		return err
	}
	r.cur.Store(cert)
	r.log.Info("TLS certificate loaded", "cert_file", r.certFile, "key_file", r.keyFile,
		"subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	return nil
}

// Watch reloads the pair whenever either file's modification time or size changes, checking
// every interval until ctx is done. Certificate renewers (certbot, cert-manager) rewrite the
// files in place; a pair caught half-written fails to load, is refused, and is read again
// when the second file changes.
func (r *CertReloader) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := r.statFiles()
		if err != nil {
			continue // a renewer may be replacing a file; look again next time
		}
		r.mu.Lock()
		changed := stamp != r.stamp
		r.mu.Unlock()
		if changed {
			_ = r.Reload() // logged there
		}
	}
}

func (r *CertReloader) statFiles() (fileStamp, error) {
	ci, cerr := os.Stat(r.certFile)
	ki, kerr := os.Stat(r.keyFile)
	if err := errors.Join(cerr, kerr); err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: ci.ModTime(), keyMod: ki.ModTime(), certSize: ci.Size(), keySize: ki.Size()}, nil
}
