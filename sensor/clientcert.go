package sensor

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ClientAuth is what the SMTP door asks of a sender's client certificate
// (--tls-client-ca, --tls-client-name): a chain that verifies against the CA bundle, or the
// system roots without one, and, when names are given, one of them among the certificate's
// names. Exchange Online shows mail.protection.outlook.com when its connector is asked for a
// certificate; a Postfix gateway shows its smtp_tls_cert_file.
//
// The handshake only asks (tls.RequestClientCert) and never fails for want of a good
// certificate: a failed handshake makes a sender fall back to plain text or give up with an
// error nobody can read, while a reply at MAIL names the problem in the sender's own log. So
// the chain is verified here, once the handshake is done, and MAIL is refused when it fails
// (smtpConn.clientCertOK). Go checks the client's CertificateVerify signature whenever a
// certificate is sent, whatever ClientAuth says, so a chain that verifies here is one whose
// key the client holds.
//
// The CA bundle is read again on Reload (SIGHUP) and when Watch sees the file change, as the
// server certificate is (CertReloader): the CA that signs a partner's gateway can be rolled
// over without a restart. A bundle that does not load is refused and logged, and the one
// before stays in use.
type ClientAuth struct {
	caFile string   // "": the system roots
	names  []string // lower case; "*." first stands for one whole label
	log    *slog.Logger

	roots    atomic.Pointer[x509.CertPool] // nil: the system roots
	failures atomic.Int64
	m        *Metrics // set by CountIn; nil: not counted

	mu    sync.Mutex // serialises Reload
	stamp caStamp    // of the file as last read, loaded or not
}

// caStamp is what Watch compares: the CA file's modification time and size.
type caStamp struct {
	mod  time.Time
	size int64
}

// NewClientAuth reads caFile ("" for the system roots) and checks the name patterns. An
// error here is for the operator to fix before the sensor starts.
func NewClientAuth(caFile string, names []string, log *slog.Logger) (*ClientAuth, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &ClientAuth{caFile: caFile, log: log}
	for _, n := range names {
		if err := CheckClientName(n); err != nil {
			return nil, fmt.Errorf("client certificate name %q: %w", n, err)
		}
		a.names = append(a.names, normalName(n))
	}
	if caFile == "" {
		return a, nil
	}
	a.stamp, _ = statCA(caFile)
	pool, err := LoadClientCAs(caFile)
	if err != nil {
		return nil, err
	}
	a.roots.Store(pool)
	return a, nil
}

// LoadClientCAs reads a PEM bundle of the CAs that sign client certificates. Each
// certificate in it must parse (x509.CertPool.AppendCertsFromPEM would skip a broken one
// without a word, and the sender it signs would be refused without a clue), and there must
// be at least one. Blocks of other types are passed over. The certificates need not be CAs:
// a self-signed certificate in the bundle is trusted as itself.
func LoadClientCAs(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		n++
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: certificate %d: %w", file, n, err)
		}
		pool.AddCert(c)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	return pool, nil
}

// CheckClientName says what is wrong with a --tls-client-name pattern: a host name, or
// "*." and a host name of at least two labels, which stands for any one label below it.
// Case and one final dot do not matter.
func CheckClientName(pattern string) error {
	n := normalName(pattern)
	if n == "" {
		return errors.New("empty name")
	}
	host := n
	if rest, ok := strings.CutPrefix(n, "*."); ok || n == "*" {
		host = rest
		if !strings.Contains(rest, ".") {
			return errors.New("a wildcard needs at least two labels after it, such as *.example.com")
		}
	}
	if len(host) > 253 {
		return errors.New("longer than a host name can be (253)")
	}
	for _, l := range strings.Split(host, ".") {
		switch {
		case strings.Contains(l, "*"):
			return errors.New("a * may only be the whole first label, as in *.example.com")
		case l == "":
			return errors.New("an empty label (two dots in a row, or a dot first)")
		case len(l) > 63:
			return fmt.Errorf("label %q is longer than 63", l)
		case strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "":
			return fmt.Errorf("label %q: a host name has letters, digits and hyphens only (write an international name in its xn-- form)", l)
		}
	}
	return nil
}

func normalName(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".") }

// nameMatches reports whether a certificate's name satisfies a configured pattern, both
// lower case. A pattern's "*." stands for one whole label. So does a certificate's, as
// RFC 6125 §6.4.3 has it, and only as the whole first label: "f*.example.com" is taken as
// written. Equal names match, so a pattern *.example.com accepts a certificate for
// *.example.com.
func nameMatches(pattern, name string) bool {
	if pattern == name {
		return true
	}
	if parent, ok := strings.CutPrefix(pattern, "*."); ok {
		label, rest, ok := strings.Cut(name, ".")
		return ok && label != "" && !strings.Contains(label, "*") && rest == parent
	}
	if parent, ok := strings.CutPrefix(name, "*."); ok {
		label, rest, ok := strings.Cut(pattern, ".")
		return ok && label != "" && rest == parent
	}
	return false
}

// certNames are the names a certificate is for: its DNS names, or its common name when it
// has none (RFC 6125 §6.4.4: the CN counts only without a DNS-ID), lower case.
func certNames(c *x509.Certificate) []string {
	var out []string
	for _, n := range c.DNSNames {
		out = append(out, normalName(n))
	}
	if len(out) == 0 && c.Subject.CommonName != "" {
		out = append(out, normalName(c.Subject.CommonName))
	}
	return out
}

// Reasons a client certificate is refused, as sensor_smtp_client_cert_refused_total labels
// them.
const (
	certNone      = "no_certificate"
	certUntrusted = "untrusted"
	certName      = "name"
)

// certVerdict is what a session's client certificate proved, decided once after the
// handshake and told at each MAIL.
type certVerdict struct {
	name   string            // the verified name, for api.TLS.ClientName; may be "" when accepted
	reason string            // "" when accepted, else one of the cert* reasons
	words  string            // the reason as the 550 says it
	err    error             // why the chain did not verify, for the log
	leaf   *x509.Certificate // nil when none was shown
}

// verify decides on the chain a client showed, leaf first, at now.
func (a *ClientAuth) verify(chain []*x509.Certificate, now time.Time) *certVerdict {
	if len(chain) == 0 {
		return &certVerdict{reason: certNone, words: "no certificate presented"}
	}
	v := &certVerdict{leaf: chain[0]}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// Either usage: MTAs show their server certificate when asked for a client one
	// (Postfix's smtp_tls_cert_file is usually smtpd's too, and Exchange Online's
	// mail.protection.outlook.com is a server certificate). A certificate without the
	// extension is good for both, as x509 reads it.
	_, err := v.leaf.Verify(x509.VerifyOptions{
		Roots:         a.roots.Load(),
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		v.reason, v.words, v.err = certUntrusted, untrustedWords(err), err
		return v
	}
	names := certNames(v.leaf)
	if len(a.names) == 0 {
		// Any certificate the CA signed: the record keeps the name it is for.
		if len(names) > 0 {
			v.name = names[0]
		}
		return v
	}
	for _, n := range names {
		for _, p := range a.names {
			if nameMatches(p, n) {
				v.name = n
				return v
			}
		}
	}
	v.reason, v.words = certName, "its names are not the ones this server accepts"
	return v
}

// untrustedWords says in a few words why a chain did not verify: the sender's
// administrator reads them in a bounce.
func untrustedWords(err error) string {
	var unknown x509.UnknownAuthorityError
	var invalid x509.CertificateInvalidError
	switch {
	case errors.As(err, &unknown):
		return "not issued by a CA this server trusts"
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		return "expired or not yet valid"
	case errors.As(err, &invalid) && invalid.Reason == x509.IncompatibleUsage:
		return "not for client or server authentication"
	}
	return "its chain does not verify"
}

// clientCertOK answers MAIL when the session has not proved its origin with a client
// certificate, and says whether MAIL may go on. Without TLS the answer is --require-tls's
// 451: the sender's TLS setting is a thing to fix while it retries. With TLS and no good
// certificate it is 550 5.7.1: failing proof of origin is the one refusal made for good,
// and the ref finds the log line that tells the sender's administrator, through ours, what
// the certificate was.
func (c *smtpConn) clientCertOK() bool {
	if c.srv.cfg.ClientAuth == nil {
		return true
	}
	if c.tls == nil {
		c.log.Info("MAIL before STARTTLS with a client certificate required; deferred")
		c.reply(451, "4.7.0", "Must issue a STARTTLS command first")
		return false
	}
	v := c.cert
	if v == nil { // not decided: refuse rather than let it through
		v = &certVerdict{reason: certNone, words: "no certificate presented"}
	}
	if v.reason == "" {
		return true
	}
	c.srv.metrics.clientCerts.count(v.reason)
	attrs := []any{"reason", v.reason}
	if v.leaf != nil {
		attrs = append(attrs, "subject", v.leaf.Subject.String(), "dns_names", v.leaf.DNSNames,
			"issuer", v.leaf.Issuer.String(), "not_after", v.leaf.NotAfter)
	}
	if v.err != nil {
		attrs = append(attrs, "error", v.err)
	}
	if v.reason == certName {
		attrs = append(attrs, "wanted", c.srv.cfg.ClientAuth.names)
	}
	c.log.Warn("client certificate not accepted; MAIL refused", attrs...)
	// RFC 5321 §4.2.2 550 "not taken ... for policy reasons"; RFC 3463 X.7.1 "Delivery not
	// authorized, message refused".
	c.reply(550, "5.7.1", "Client certificate not accepted: "+v.words+" (ref "+c.cid+")")
	return false
}

// CountIn makes /metrics tell m's readers of the client certificates refused and of
// refused reloads of the CA bundle. Call it before Reload or Watch.
func (a *ClientAuth) CountIn(m *Metrics) {
	a.m = m
	m.clientCerts.asked.Store(true)
	m.clientCerts.caFile.Store(a.caFile != "")
	m.clientCerts.reloadFailures.Store(a.failures.Load())
}

// clientCertMetrics is what /metrics tells of client certificates.
type clientCertMetrics struct {
	asked, caFile         atomic.Bool
	none, untrusted, name atomic.Int64
	reloadFailures        atomic.Int64
}

func (m *clientCertMetrics) count(reason string) {
	switch reason {
	case certNone:
		m.none.Add(1)
	case certUntrusted:
		m.untrusted.Add(1)
	case certName:
		m.name.Add(1)
	}
}

func (m *clientCertMetrics) collect(s series) {
	if !m.asked.Load() {
		return
	}
	const refusedHelp = "MAIL answered 550 5.7.1 over TLS for want of an acceptable client certificate, by reason: none shown, a chain that does not verify (untrusted), or no configured name."
	for _, r := range []struct {
		label string
		n     *atomic.Int64
	}{{certNone, &m.none}, {certUntrusted, &m.untrusted}, {certName, &m.name}} {
		s.counter("sensor_smtp_client_cert_refused_total", refusedHelp, float64(r.n.Load()), "reason", r.label)
	}
	if m.caFile.Load() {
		s.counter("sensor_tls_client_ca_reload_failures_total", "Reloads of --tls-client-ca refused (the previous bundle stayed in use).", float64(m.reloadFailures.Load()))
	}
}

// Failures counts the reloads that were refused.
func (a *ClientAuth) Failures() int64 { return a.failures.Load() }

// Reload reads the CA bundle again. If it does not load, the bundle in use stays, and the
// error is logged and returned. Without a CA file (the system roots) it does nothing.
func (a *ClientAuth) Reload() error {
	if a.caFile == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.stamp, _ = statCA(a.caFile)
	pool, err := LoadClientCAs(a.caFile)
	if err != nil {
		n := a.failures.Add(1)
		if a.m != nil {
			a.m.clientCerts.reloadFailures.Store(n)
		}
		a.log.Error("client CA bundle not reloaded; the previous one stays in use", "ca_file", a.caFile, "error", err)
		return err
	}
	a.roots.Store(pool)
	a.log.Info("client CA bundle loaded", "ca_file", a.caFile)
	return nil
}

// Watch reloads the CA bundle whenever the file's modification time or size changes,
// checking every interval until ctx is done. Without a CA file it returns at once.
func (a *ClientAuth) Watch(ctx context.Context, interval time.Duration) {
	if a.caFile == "" {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		stamp, err := statCA(a.caFile)
		if err != nil {
			continue // a renewer may be replacing the file; look again next time
		}
		a.mu.Lock()
		changed := stamp != a.stamp
		a.mu.Unlock()
		if changed {
			_ = a.Reload() // logged there
		}
	}
}

func statCA(file string) (caStamp, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return caStamp{}, err
	}
	return caStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}
