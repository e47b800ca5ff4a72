package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// TestServeTLS runs `sensor serve` with --tls-cert, --tls-key, --smtps-listen and
// --require-tls: plain MAIL is refused, a message over STARTTLS reaches the pipeline with
// its TLS facts, implicit TLS works, and SIGHUP puts a renewed certificate in use.
func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testkit.WriteCertPair(t, dir, "first")
	smtpsAddr := testkit.FreePort(t)
	e := startE2E(t, "--tls-cert", certFile, "--tls-key", keyFile, "--smtps-listen", smtpsAddr, "--require-tls")
	clientTLS := &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true}

	plain, err := smtp.Dial(e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := plain.Mail("sender@example.org", nil); !errors.As(err, &se) || se.Code != 451 {
		t.Errorf("plain MAIL: %v, want 451 (temporary: the sender keeps the copy)", err)
	}
	plain.Close()

	c, err := smtp.DialStartTLS(e.smtp, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	id := sendTLS(t, c)
	rec, _, _ := e.await(id)
	env, _ := rec["envelope"].(map[string]any)
	tl, _ := env["tls"].(map[string]any)
	if tl["version"] != "TLS 1.3" || tl["server_name"] != "sensor.test" || tl["cipher"] == "" || tl["cipher"] == nil {
		t.Errorf("envelope.tls %v", tl)
	}

	cn := func() string {
		c, err := smtp.DialTLS(smtpsAddr, clientTLS)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Noop(); err != nil {
			t.Fatal(err)
		}
		st, _ := c.TLSConnectionState()
		return st.PeerCertificates[0].Subject.CommonName
	}
	if got := cn(); got != "first" {
		t.Fatalf("implicit TLS certificate %q", got)
	}

	testkit.WriteCertPair(t, dir, "renewed")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for cn() != "renewed" {
		if time.Now().After(deadline) {
			t.Fatal("the renewed certificate was never used")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(e.logs.String(), "SIGHUP: reloading the TLS certificate") {
		t.Error("SIGHUP not logged")
	}

	c, err = smtp.DialTLS(smtpsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	e.await(sendTLS(t, c))
}

// sendTLS sends one message on c, quits, and returns the record id of the 250 reply.
func sendTLS(t *testing.T, c *smtp.Client) string {
	t.Helper()
	defer c.Close()
	if err := c.Hello("client.e2e.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("journal@sensor.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: a@example.org\r\nTo: b@example.org\r\nSubject: over TLS\r\n\r\nHello.\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`queued as ([0-9A-Z]{26})$`).FindStringSubmatch(resp.StatusText)
	if m == nil {
		t.Fatalf("250 reply %q names no record id", resp.StatusText)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	return m[1]
}

// TestServeClientCert runs `sensor serve` with --tls-client-ca and --tls-client-name: a
// sender whose CA is not in the bundle is refused at MAIL for good, and once the bundle
// names its CA (rewritten in place, then SIGHUP) its copy reaches the pipeline with the
// certificate's name in envelope.tls.client_name. The receiver's schema check passes the
// field.
func TestServeClientCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := testkit.WriteCertPair(t, dir, "sensor")
	ours, partners := testkit.MakeCA(t, "our CA"), testkit.MakeCA(t, "partner CA")
	caFile := ours.WriteFile(t, filepath.Join(dir, "client-ca.pem"))
	e := startE2E(t, "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-client-ca", caFile, "--tls-client-name", "*.partner.test")
	cert := partners.Issue(t, testkit.Leaf{DNSNames: []string{"mx1.partner.test"}, Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	clientTLS := &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}

	c, err := smtp.DialStartTLS(e.smtp, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := c.Mail("sender@example.org", nil); !errors.As(err, &se) || se.Code != 550 ||
		!strings.Contains(se.Message, "Client certificate not accepted: not issued by a CA this server trusts") {
		t.Errorf("MAIL with a certificate of an unknown CA: %v, want 550 5.7.1", err)
	}
	c.Close()

	if err := os.WriteFile(caFile, append(ours.PEM(), partners.PEM()...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.logs.String(), "client CA bundle loaded") {
		if time.Now().After(deadline) {
			t.Fatal("the client CA bundle was never reloaded")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c, err = smtp.DialStartTLS(e.smtp, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	rec, _, _ := e.await(sendTLS(t, c))
	env, _ := rec["envelope"].(map[string]any)
	if tl, _ := env["tls"].(map[string]any); tl["client_name"] != "mx1.partner.test" {
		t.Errorf("envelope.tls %v, want client_name mx1.partner.test", tl)
	}
	if src, _ := rec["source"].(map[string]any); !reflect.DeepEqual(src["verified_by"], []any{"tls_client_cert"}) {
		t.Errorf("source %v, want verified_by [tls_client_cert]", src)
	}
}
