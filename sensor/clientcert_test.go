package sensor

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// clientAuthServer starts a server whose STARTTLS and implicit-TLS doors ask for a client
// certificate under auth. Its log is ts.log.
func clientAuthServer(t *testing.T, auth *ClientAuth) (ts *testServer, smtpsAddr string) {
	t.Helper()
	certFile, keyFile := testkit.WriteCertPair(t, t.TempDir(), "sensor")
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ts = startServer(t, SMTPConfig{
		TLSConfig:  ServerTLSConfig(func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &pair, nil }),
		ClientAuth: auth,
	})
	auth.CountIn(ts.metrics)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.srv.ServeTLS(ln) }()
	t.Cleanup(func() {
		ts.srv.Close()
		if err := <-done; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	})
	return ts, ln.Addr().String()
}

func newClientAuth(t *testing.T, caFile string, names ...string) *ClientAuth {
	t.Helper()
	a, err := NewClientAuth(caFile, names, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// showing is a client TLS configuration that shows cert (none when nil) and trusts any
// server: the server's side is what is under test.
func showing(cert *tls.Certificate) *tls.Config {
	cfg := &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// overStartTLS opens a session and starts TLS under cfg.
func overStartTLS(t *testing.T, addr string, cfg *tls.Config) *conversation {
	t.Helper()
	c := dial(t, addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("STARTTLS", "220 2.0.0")
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	c.conn = tc
	c.r.Reset(tc)
	c.cmd("EHLO client.test", "250")
	return c
}

// overImplicitTLS opens a session on the implicit-TLS door under cfg.
func overImplicitTLS(t *testing.T, addr string, cfg *tls.Config) *conversation {
	t.Helper()
	tc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &conversation{t: t, conn: tc}
	c.r = bufio.NewReader(tc)
	c.expect("220")
	c.cmd("EHLO client.test", "250")
	return c
}

// mailOn sends MAIL and, when it is accepted, a message; it returns the reply to MAIL and
// the record the message made (nil when MAIL was refused).
func mailOn(t *testing.T, ts *testServer, c *conversation) (string, *api.Record) {
	t.Helper()
	c.send("MAIL FROM:<sender@example.org>\r\n")
	mail := c.reply()
	if !strings.HasPrefix(mail, "250") {
		return mail, nil
	}
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	id := queuedID(t, c.expect("250"))
	rec, ok := ts.spool.get(id)
	if !ok {
		t.Fatalf("no record %s", id)
	}
	return mail, &rec
}

func TestClientCertAtMail(t *testing.T) {
	dir := t.TempDir()
	ca, other := testkit.MakeCA(t, "partner CA"), testkit.MakeCA(t, "someone else's CA")
	caFile := ca.WriteFile(t, filepath.Join(dir, "ca.pem"))
	ts, _ := clientAuthServer(t, newClientAuth(t, caFile, "mx1.partner.test", "MX2.Partner.Test."))
	server, client := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	inter := ca.SubCA(t, "partner issuing CA")

	const refused = "550 5.7.1 Client certificate not accepted: "
	for _, tc := range []struct {
		name   string
		cert   *tls.Certificate
		tls12  bool
		reply  string // its start
		client string // the record's envelope.tls.client_name, when accepted
	}{
		{name: "none", reply: refused + "no certificate presented (ref "},
		{name: "another CA", cert: issue(t, other, testkit.Leaf{DNSNames: []string{"mx1.partner.test"}, Usages: server}),
			reply: refused + "not issued by a CA this server trusts (ref "},
		{name: "the CA, another name", cert: issue(t, ca, testkit.Leaf{DNSNames: []string{"mx9.elsewhere.test"}, Usages: server}),
			reply: refused + "its names are not the ones this server accepts (ref "},
		{name: "expired", cert: issue(t, ca, testkit.Leaf{DNSNames: []string{"mx1.partner.test"},
			NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}),
			reply: refused + "expired or not yet valid (ref "},
		{name: "for code signing only", cert: issue(t, ca, testkit.Leaf{DNSNames: []string{"mx1.partner.test"},
			Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}}),
			reply: refused + "not for client or server authentication (ref "},
		{name: "CN only counts without DNS names", cert: issue(t, ca, testkit.Leaf{CN: "mx1.partner.test", DNSNames: []string{"other.partner.test"}}),
			reply: refused + "its names are not the ones this server accepts (ref "},
		{name: "a server certificate, as MTAs show", cert: issue(t, ca, testkit.Leaf{DNSNames: []string{"mx1.partner.test"}, Usages: server}),
			reply: "250 2.1.0", client: "mx1.partner.test"},
		{name: "a client certificate over TLS 1.2", cert: issue(t, ca, testkit.Leaf{DNSNames: []string{"smtp.partner.test", "mx1.partner.test"}, Usages: client}),
			tls12: true, reply: "250 2.1.0", client: "mx1.partner.test"},
		{name: "the second name, case and final dot aside", cert: issue(t, ca, testkit.Leaf{DNSNames: []string{"mx2.partner.test"}}),
			reply: "250 2.1.0", client: "mx2.partner.test"},
		{name: "the CN of a certificate without DNS names", cert: issue(t, ca, testkit.Leaf{CN: "MX1.partner.test"}),
			reply: "250 2.1.0", client: "mx1.partner.test"},
		{name: "through an intermediate", cert: issue(t, inter, testkit.Leaf{DNSNames: []string{"mx1.partner.test"}, Usages: server}),
			reply: "250 2.1.0", client: "mx1.partner.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := showing(tc.cert)
			if tc.tls12 {
				cfg.MaxVersion = tls.VersionTLS12
			}
			c := overStartTLS(t, ts.addr, cfg)
			mail, rec := mailOn(t, ts, c)
			if !strings.HasPrefix(mail, tc.reply) {
				t.Fatalf("MAIL: %q, want %q", mail, tc.reply)
			}
			if rec == nil {
				// The ref is the connection id, which names the log line that says why.
				ref := regexp.MustCompile(`\(ref ([0-9A-Z]{26})\)$`).FindStringSubmatch(mail)
				if ref == nil {
					t.Fatalf("MAIL: %q names no connection", mail)
				}
				var line string
				for _, l := range strings.Split(ts.log.String(), "\n") {
					if strings.Contains(l, "conn="+ref[1]) && strings.Contains(l, "client certificate not accepted") {
						line = l
					}
				}
				if !strings.Contains(line, "level=WARN") {
					t.Fatalf("no warning for conn %s:\n%s", ref[1], ts.log.String())
				}
				if tc.cert != nil {
					leaf := tc.cert.Leaf
					for _, want := range []string{"subject=", "issuer=\"CN=" + leaf.Issuer.CommonName, "dns_names=", "reason="} {
						if !strings.Contains(line, want) {
							t.Errorf("log line lacks %s: %s", want, line)
						}
					}
				}
				// The session goes on: the sender may try again with RSET, or QUIT.
				c.cmd("QUIT", "221")
				return
			}
			if got := rec.Envelope.TLS; got == nil || got.ClientName != tc.client {
				t.Errorf("envelope.tls %+v, want client_name %q", got, tc.client)
			}
			c.cmd("QUIT", "221")
		})
	}

	var metrics strings.Builder
	(&Admin{Metrics: ts.metrics}).writeMetrics(&metrics)
	for _, want := range []string{
		`sensor_smtp_client_cert_refused_total{reason="no_certificate"} 1`,
		`sensor_smtp_client_cert_refused_total{reason="untrusted"} 3`,
		`sensor_smtp_client_cert_refused_total{reason="name"} 2`,
		"sensor_tls_client_ca_reload_failures_total 0",
	} {
		if !strings.Contains(metrics.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, metrics.String())
		}
	}
}

// issue is ca.Issue for a table.
func issue(t *testing.T, ca *testkit.CA, l testkit.Leaf) *tls.Certificate {
	t.Helper()
	c := ca.Issue(t, l)
	return &c
}

// TestClientCertWithoutTLS: a session that never starts TLS is told what --require-tls
// says, a 451 its sender retries, though RequireTLS is not set.
func TestClientCertWithoutTLS(t *testing.T) {
	ca := testkit.MakeCA(t, "partner CA")
	ts, _ := clientAuthServer(t, newClientAuth(t, ca.WriteFile(t, filepath.Join(t.TempDir(), "ca.pem"))))
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "451 4.7.0 Must issue a STARTTLS command first")
	if ts.spool.count() != 0 {
		t.Error("a record without TLS")
	}
}

// TestClientCertWildcards: a configured *. stands for one label; a certificate's *. for
// one label too.
func TestClientCertWildcards(t *testing.T) {
	ca := testkit.MakeCA(t, "CA")
	caFile := ca.WriteFile(t, filepath.Join(t.TempDir(), "ca.pem"))
	ts, _ := clientAuthServer(t, newClientAuth(t, caFile, "*.protection.outlook.test", "mx.partner.test"))
	for _, tc := range []struct {
		dns  string
		want string // the client name, "" for a refusal
	}{
		{"mail.protection.outlook.test", "mail.protection.outlook.test"},
		{"a.b.protection.outlook.test", ""},
		{"protection.outlook.test", ""},
		{"*.partner.test", "*.partner.test"},
		{"*.protection.outlook.test", "*.protection.outlook.test"},
		{"*.test", ""},
	} {
		c := overStartTLS(t, ts.addr, showing(issue(t, ca, testkit.Leaf{DNSNames: []string{tc.dns}})))
		mail, rec := mailOn(t, ts, c)
		switch {
		case tc.want == "" && rec != nil:
			t.Errorf("%s: accepted as %q", tc.dns, rec.Envelope.TLS.ClientName)
		case tc.want == "" && !strings.HasPrefix(mail, "550 5.7.1"):
			t.Errorf("%s: MAIL %q, want 550 5.7.1", tc.dns, mail)
		case tc.want != "" && (rec == nil || rec.Envelope.TLS.ClientName != tc.want):
			t.Errorf("%s: MAIL %q, record %+v, want client_name %q", tc.dns, mail, rec, tc.want)
		}
	}
}

func TestNameMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, name string
		want          bool
	}{
		{"mx.example.com", "mx.example.com", true},
		{"mx.example.com", "mx2.example.com", false},
		{"*.example.com", "mx.example.com", true},
		{"*.example.com", "example.com", false},
		{"*.example.com", "a.mx.example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "*.example.com", true},
		{"*.example.com", "f*.example.com", false},
		{"*.example.com", "*.mx.example.com", false},
		{"mx.example.com", "*.example.com", true},
		{"a.mx.example.com", "*.example.com", false},
		{"example.com", "*.example.com", false},
		{"mx.example.com", "f*.example.com", false}, // only a whole first label is a wildcard
		{"mx.example.com", "mx.example.com.evil.test", false},
	} {
		if got := nameMatches(tc.pattern, tc.name); got != tc.want {
			t.Errorf("nameMatches(%q, %q) = %v", tc.pattern, tc.name, got)
		}
	}
}

func TestCheckClientName(t *testing.T) {
	for _, ok := range []string{"mail.protection.outlook.com", "*.protection.outlook.com", "MX.Example.COM.", "smtp_relay.example.org", "xn--bcher-kva.example"} {
		if err := CheckClientName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for name, want := range map[string]string{
		"":               "empty name",
		"a*.b":           "whole first label",
		"mx.*.example":   "whole first label",
		"*":              "two labels after it",
		"*.com":          "two labels after it",
		"mx..example":    "empty label",
		".example.com":   "empty label",
		"bücher.example": "xn--",
		"mx example.com": "letters, digits and hyphens",
	} {
		if err := CheckClientName(name); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", name, err, want)
		}
	}
}

// TestClientCertCAOnly: with a CA and no names, any certificate it signed is accepted, and
// the record keeps the name it is for.
func TestClientCertCAOnly(t *testing.T) {
	ca := testkit.MakeCA(t, "CA")
	ts, smtpsAddr := clientAuthServer(t, newClientAuth(t, ca.WriteFile(t, filepath.Join(t.TempDir(), "ca.pem"))))
	cert := issue(t, ca, testkit.Leaf{CN: "ignored", DNSNames: []string{"First.Partner.Test", "second.partner.test"}})
	if _, rec := mailOn(t, ts, overStartTLS(t, ts.addr, showing(cert))); rec == nil || rec.Envelope.TLS.ClientName != "first.partner.test" {
		t.Errorf("STARTTLS: record %+v, want client_name first.partner.test", rec)
	}
	// The implicit-TLS door asks and decides the same way.
	if _, rec := mailOn(t, ts, overImplicitTLS(t, smtpsAddr, showing(cert))); rec == nil || rec.Envelope.TLS.ClientName != "first.partner.test" {
		t.Errorf("implicit TLS: record %+v, want client_name first.partner.test", rec)
	}
	mail, _ := mailOn(t, ts, overImplicitTLS(t, smtpsAddr, showing(nil)))
	if !strings.HasPrefix(mail, "550 5.7.1 Client certificate not accepted: no certificate presented") {
		t.Errorf("implicit TLS without a certificate: MAIL %q", mail)
	}
}

// TestClientCertSystemRoots: with names and no CA, the chain must verify against the
// system roots, which know nothing of a test CA.
func TestClientCertSystemRoots(t *testing.T) {
	ca := testkit.MakeCA(t, "private CA")
	ts, _ := clientAuthServer(t, newClientAuth(t, "", "mx.partner.test"))
	mail, _ := mailOn(t, ts, overStartTLS(t, ts.addr, showing(issue(t, ca, testkit.Leaf{DNSNames: []string{"mx.partner.test"}}))))
	if !strings.HasPrefix(mail, "550 5.7.1 Client certificate not accepted: not issued by a CA this server trusts") {
		t.Errorf("MAIL %q", mail)
	}
	var metrics strings.Builder
	(&Admin{Metrics: ts.metrics}).writeMetrics(&metrics)
	if strings.Contains(metrics.String(), "sensor_tls_client_ca_reload_failures_total") {
		t.Error("reload failures of a CA file there is not")
	}
}

// TestClientCertKeepsTLS12Floor: asking for a client certificate changes nothing of the
// versions the door takes.
func TestClientCertKeepsTLS12Floor(t *testing.T) {
	ca := testkit.MakeCA(t, "CA")
	ts, _ := clientAuthServer(t, newClientAuth(t, ca.WriteFile(t, filepath.Join(t.TempDir(), "ca.pem"))))
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("STARTTLS", "220 2.0.0")
	cfg := showing(issue(t, ca, testkit.Leaf{DNSNames: []string{"mx.partner.test"}}))
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if err := tls.Client(c.conn, cfg).Handshake(); err == nil || !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: %v, want the server's protocol_version alert", err)
	}
}

// TestClientCAReload: the CA bundle is read again when the file changes and on Reload; one
// that does not load is refused, counted and logged, and the one before stays.
func TestClientCAReload(t *testing.T) {
	dir := t.TempDir()
	first, second := testkit.MakeCA(t, "first CA"), testkit.MakeCA(t, "second CA")
	caFile := first.WriteFile(t, filepath.Join(dir, "ca.pem"))
	logs := &testkit.LogBuffer{}
	auth, err := NewClientAuth(caFile, []string{"mx.partner.test"}, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts, _ := clientAuthServer(t, auth)
	cert := issue(t, second, testkit.Leaf{DNSNames: []string{"mx.partner.test"}})
	try := func() string {
		mail, _ := mailOn(t, ts, overStartTLS(t, ts.addr, showing(cert)))
		return mail
	}
	if mail := try(); !strings.HasPrefix(mail, "550 5.7.1") {
		t.Fatalf("before the rollover: MAIL %q", mail)
	}

	// The partner's new CA joins the bundle, written in place.
	watchDone := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { defer close(watchDone); auth.Watch(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-watchDone })
	if err := os.WriteFile(caFile, append(first.PEM(), second.PEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "client CA bundle loaded") })
	if mail := try(); !strings.HasPrefix(mail, "250") {
		t.Fatalf("after the rollover: MAIL %q", mail)
	}

	// A broken bundle, reloaded by hand (SIGHUP's path) with Watch stopped so that it counts
	// once.
	cancel()
	<-watchDone
	if err := os.WriteFile(caFile, []byte("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := auth.Reload(); err == nil {
		t.Fatal("a broken bundle loaded")
	}
	if !strings.Contains(logs.String(), "client CA bundle not reloaded") || !strings.Contains(logs.String(), caFile) {
		t.Errorf("log: %s", logs.String())
	}
	var metrics strings.Builder
	(&Admin{Metrics: ts.metrics}).writeMetrics(&metrics)
	if !strings.Contains(metrics.String(), "\nsensor_tls_client_ca_reload_failures_total 1\n") {
		t.Errorf("metrics:\n%s", metrics.String())
	}
	if mail := try(); !strings.HasPrefix(mail, "250") {
		t.Fatalf("after a broken bundle: MAIL %q, want the bundle before to stay", mail)
	}
}

func TestLoadClientCAs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	key, _ := testkit.SelfSignedPEM(t, "x")
	_, keyOnly := testkit.SelfSignedPEM(t, "y")
	for _, tc := range []struct {
		file, want string
	}{
		{filepath.Join(dir, "missing.pem"), "no such file"},
		{write("empty.pem", ""), "holds no PEM certificate"},
		{write("key.pem", string(keyOnly)), "holds no PEM certificate"},
		{write("broken.pem", string(key)+"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "certificate 2:"},
	} {
		if _, err := LoadClientCAs(tc.file); err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
			t.Errorf("%s: %v, want %q and the file named", filepath.Base(tc.file), err, tc.want)
		}
	}
	if _, err := LoadClientCAs(write("self-signed.pem", string(key))); err != nil {
		t.Errorf("a self-signed certificate: %v", err)
	}
	if _, err := NewClientAuth("", []string{"a*.b"}, nil); err == nil {
		t.Error("NewClientAuth took a bad name")
	}
}

// TestClientCertNotSkippedByResumption: a sender refused for showing no certificate, then
// set up to show one, is asked again even though it holds a session ticket from before.
func TestClientCertNotSkippedByResumption(t *testing.T) {
	ca := testkit.MakeCA(t, "CA")
	ts, _ := clientAuthServer(t, newClientAuth(t, ca.WriteFile(t, filepath.Join(t.TempDir(), "ca.pem"))))
	cache := tls.NewLRUClientSessionCache(4)
	before := showing(nil)
	before.ClientSessionCache = cache
	c := overStartTLS(t, ts.addr, before)
	if mail, _ := mailOn(t, ts, c); !strings.HasPrefix(mail, "550 5.7.1") {
		t.Fatalf("without a certificate: MAIL %q", mail)
	}
	c.cmd("QUIT", "221") // the client reads the ticket that TLS 1.3 sends after the handshake
	after := showing(issue(t, ca, testkit.Leaf{DNSNames: []string{"mx.partner.test"}}))
	after.ClientSessionCache = cache
	c = overStartTLS(t, ts.addr, after)
	if mail, _ := mailOn(t, ts, c); !strings.HasPrefix(mail, "250") {
		t.Errorf("with a certificate, after a session without one: MAIL %q", mail)
	}
}
