package sensor

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// tlsServer starts a server with a reloadable certificate named cn, on a STARTTLS listener
// (ts.addr) and an implicit-TLS one (the address returned).
func tlsServer(t *testing.T, cn string, requireTLS bool) (ts *testServer, certs *CertReloader, dir, smtpsAddr string) {
	t.Helper()
	return tlsServerConfig(t, cn, SMTPConfig{RequireTLS: requireTLS})
}

func tlsServerConfig(t *testing.T, cn string, cfg SMTPConfig) (ts *testServer, certs *CertReloader, dir, smtpsAddr string) {
	t.Helper()
	dir = t.TempDir()
	certFile, keyFile := testkit.WriteCertPair(t, dir, cn)
	logs := &testkit.LogBuffer{}
	certs, err := NewCertReloader(certFile, keyFile, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLSConfig = ServerTLSConfig(certs.GetCertificate)
	ts = startServer(t, cfg)
	certs.CountIn(ts.metrics)
	ts.log = logs // the certificate's log lines, for the reload tests
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
	return ts, certs, dir, ln.Addr().String()
}

var clientTLS = &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true}

// peerCN is the common name of the certificate the server showed c.
func peerCN(t *testing.T, c *smtp.Client) string {
	t.Helper()
	if err := c.Noop(); err != nil { // the handshake happens with the first command
		t.Fatal(err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 {
		t.Fatal("no TLS")
	}
	return st.PeerCertificates[0].Subject.CommonName
}

func TestTLSVersionsAndSuites(t *testing.T) {
	ts, _, _, _ := tlsServer(t, "one", false)

	// TLS 1.1 is refused.
	raw := dial(t, ts.addr)
	raw.cmd("EHLO client.test", "250")
	raw.cmd("STARTTLS", "220 2.0.0")
	old := tls.Client(raw.conn, &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true,
		MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err := old.Handshake(); err == nil {
		t.Errorf("a TLS 1.1 handshake succeeded: %s", tls.VersionName(old.ConnectionState().Version))
	} else if !strings.Contains(err.Error(), "protocol version") {
		t.Errorf("TLS 1.1 handshake: %v, want the server's protocol_version alert", err)
	}

	// Under TLS 1.2 the server picks an ECDHE suite with AEAD, whatever the client prefers.
	c, err := smtp.DialStartTLS(ts.addr, &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true,
		MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
	st, _ := c.TLSConnectionState()
	if st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 {
		t.Errorf("negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
	}
	sendOn(t, c, simpleMessage)
	for _, rec := range ts.spool.records {
		if tl := rec.Envelope.TLS; tl == nil || tl.Version != "TLS 1.2" || tl.Cipher != "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" || tl.ServerName != "sensor.test" {
			t.Errorf("record's TLS %+v", tl)
		}
	}
}

func TestRequireTLS(t *testing.T) {
	ts, _, _, smtpsAddr := tlsServer(t, "one", true)
	raw := dial(t, ts.addr)
	raw.cmd("EHLO client.test", "250")
	raw.cmd("MAIL FROM:<sender@example.org>", "451 4.7.0 Must issue a STARTTLS command first")
	raw.cmd("STARTTLS", "220 2.0.0")
	tc := tls.Client(raw.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	raw.conn = tc
	raw.r.Reset(tc)
	raw.cmd("EHLO client.test", "250")
	raw.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
	raw.cmd("QUIT", "221")

	// The implicit-TLS listener is TLS from the start.
	c, err := smtp.DialTLS(smtpsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	sendOn(t, c, simpleMessage)
	if ts.spool.count() != 1 {
		t.Fatalf("%d records", ts.spool.count())
	}
}

func TestImplicitTLS(t *testing.T) {
	ts, _, _, smtpsAddr := tlsServer(t, "one", false)
	c, err := smtp.DialTLS(smtpsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised over implicit TLS")
	}
	sendOn(t, c, simpleMessage)
	if ts.spool.count() != 1 {
		t.Fatalf("%d records", ts.spool.count())
	}
	for _, rec := range ts.spool.records {
		if tl := rec.Envelope.TLS; tl == nil || tl.Version != "TLS 1.3" || tl.ServerName != "sensor.test" || tl.Cipher == "" {
			t.Errorf("record's TLS %+v", tl)
		}
	}

	// Plain text on the implicit-TLS port is a failed handshake, not a session.
	plain, err := net.Dial("tcp", smtpsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	plain.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(plain, "EHLO client.test\r\n")
	if b, _ := io.ReadAll(plain); strings.Contains(string(b), "250") {
		t.Errorf("got %q over plain text", b)
	}
}

func TestCertReload(t *testing.T) {
	ts, certs, dir, smtpsAddr := tlsServer(t, "first", false)

	// A session opened before the renewal.
	before, err := smtp.DialStartTLS(ts.addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if cn := peerCN(t, before); cn != "first" {
		t.Fatalf("certificate %q", cn)
	}

	// Renewed in place; Watch sees it.
	watchDone := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { defer close(watchDone); certs.Watch(ctx, 10*time.Millisecond) }()
	t.Cleanup(func() { cancel(); <-watchDone })
	testkit.WriteCertPair(t, dir, "second-renewed")
	waitFor(t, func() bool { return certs.cur.Load().Leaf.Subject.CommonName == "second-renewed" })

	for _, addr := range []string{ts.addr, smtpsAddr} {
		var c *smtp.Client
		if addr == ts.addr {
			c, err = smtp.DialStartTLS(addr, clientTLS)
		} else {
			c, err = smtp.DialTLS(addr, clientTLS)
		}
		if err != nil {
			t.Fatal(err)
		}
		if cn := peerCN(t, c); cn != "second-renewed" {
			t.Errorf("%s: a new connection got %q", addr, cn)
		}
		c.Close()
	}
	// The older session still works.
	sendOn(t, before, simpleMessage)
	if ts.spool.count() != 1 {
		t.Fatalf("%d records", ts.spool.count())
	}

	// A broken pair (the key of another certificate) is refused; the one in use stays.
	// Reloaded by hand (SIGHUP's path), with Watch stopped so that it counts once.
	cancel()
	<-watchDone
	_, otherKey := testkit.SelfSignedPEM(t, "third")
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.Reload(); err == nil {
		t.Fatal("a mismatched pair loaded")
	}
	if certs.Failures() == 0 {
		t.Error("failure not counted")
	}
	var metrics strings.Builder
	(&Admin{Metrics: ts.metrics}).writeMetrics(&metrics)
	for _, want := range []string{
		"\nsensor_tls_certificate_reload_failures_total 1\n",
		// The exposition writes a float: 1.796204332e+09.
		"\nsensor_tls_certificate_expiry_seconds " + strconv.FormatFloat(float64(certs.NotAfter().Unix()), 'g', -1, 64) + "\n",
	} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics.String())
		}
	}
	logs := ts.log.String()
	if !strings.Contains(logs, "TLS certificate not reloaded") || !strings.Contains(logs, filepath.Join(dir, "cert.pem")) ||
		!strings.Contains(logs, filepath.Join(dir, "key.pem")) {
		t.Errorf("log: %s", logs)
	}
	c, err := smtp.DialStartTLS(ts.addr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if cn := peerCN(t, c); cn != "second-renewed" {
		t.Errorf("after a broken pair: %q", cn)
	}
	sendOn(t, c, simpleMessage)
}

func TestNewCertReloaderRefusesBrokenPair(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testkit.WriteCertPair(t, dir, "x")
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewCertReloader(certFile, keyFile, nil)
	if err == nil || !strings.Contains(err.Error(), certFile) {
		t.Errorf("error %v", err)
	}
}

// TestImplicitTLSRefusals: past a connection cap, and while shutting down, the implicit-TLS
// listener says its 421 over TLS, where the client can read it.
func TestImplicitTLSRefusals(t *testing.T) {
	ts, _, _, smtpsAddr := tlsServerConfig(t, "one", SMTPConfig{Conns: ConnLimits{Total: 1}})
	first, err := smtp.DialTLS(smtpsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if err := first.Noop(); err != nil {
		t.Fatal(err)
	}
	greeting := func() error { // the client reads the greeting with its first command
		c, err := smtp.DialTLS(smtpsAddr, clientTLS)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Hello("client.test")
	}
	var se *smtp.SMTPError
	if err := greeting(); !errors.As(err, &se) || se.Code != 421 {
		t.Errorf("over the cap: %v, want 421 over TLS", err)
	}
	first.Close()
	waitFor(t, func() bool { return ts.metrics.conns.open.Load() == 0 })

	ts.srv.draining.Store(true)
	if err := greeting(); !errors.As(err, &se) || se.Code != 421 {
		t.Errorf("shutting down: %v, want 421 over TLS", err)
	}
}
