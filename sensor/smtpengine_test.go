package sensor

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestGreetingAndEHLO(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 5000, MaxRecipients: 7})
	c := dial(t, ts.addr) // reads the 220
	c.send("EHLO client.test\r\n")
	want := "250-sensor.test Hello client.test\n250-PIPELINING\n250-8BITMIME\n250-ENHANCEDSTATUSCODES\n" +
		"250-CHUNKING\n250-SMTPUTF8\n250-BINARYMIME\n250-SIZE 5000\n250 LIMITS RCPTMAX=7\n"
	if got := ehloLines(t, c); got != want {
		t.Errorf("EHLO reply:\n%swant:\n%s", got, want)
	}
	c.cmd("HELO client.test", "250 sensor.test")
	c.cmd("VRFY someone", "252 2.5.0")
	c.cmd("HELP", "214")
	c.cmd("NOOP", "250 2.0.0")
	c.cmd("EXPN list", "502 5.5.1")
	c.cmd("STARTTLS", "502 5.5.1") // no TLS configured
	c.cmd("QUIT", "221 2.0.0")
}

func TestCommandSyntaxAndSequence(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxRecipients: 2})
	c := dial(t, ts.addr)
	c.cmd("MAIL FROM:<a@example.org>", "503 5.5.1") // before EHLO
	c.cmd("EHLO", "501 5.5.2")
	c.cmd("EHLO client.test", "250")
	c.cmd("RCPT TO:<j@sensor.test>", "503 5.5.1")
	c.cmd("DATA", "503 5.5.1")
	c.cmd("MAIL FROM:<a b@example.org>", "501 5.1.7")
	c.cmd("MAIL FROM:a@example.org", "501 5.1.7")
	c.cmd("MAIL FROM:<a@example.org> SIZE=big", "501 5.5.4")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("DATA", "503 5.5.1") // no RCPT yet
	c.cmd("RCPT TO:<no-domain@>", "501 5.1.3")
	c.cmd("RCPT TO:<>", "501 5.1.3")
	c.cmd("RCPT TO:<j1@sensor.test>", "250")
	c.cmd("RCPT TO:<j2@sensor.test>", "250")
	c.cmd("RCPT TO:<j3@sensor.test>", "452 4.5.3")
	c.cmd("DATA extra", "501 5.5.4")
	c.cmd("\x01garbage", "500 5.5.2")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	id := queuedID(t, c.expect("250 2.0.0"))
	if rec, _ := ts.spool.get(id); strings.Join(rec.Envelope.RcptTo, ",") != "j1@sensor.test,j2@sensor.test" {
		t.Errorf("recipients %v", rec.Envelope.RcptTo)
	}
	c.cmd("MAIL FROM:<a@example.org> BODY=BINARYMIME", "250")
	c.cmd("RCPT TO:<j@sensor.test>", "250")
	c.cmd("DATA", "503 5.5.1") // BINARYMIME needs BDAT
	c.send("BDAT 5 LAST\r\nhello")
	c.expect("250 2.0.0")
}

// A command line over the limit is answered 500 and skipped whole; the session goes on.
func TestCommandLineTooLong(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("NOOP "+strings.Repeat("x", 200000), "500 5.5.2")
	c.cmd("NOOP "+strings.Repeat("x", 5000), "500 5.5.2")
	c.cmd("NOOP", "250")
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250 2.0.0")
}

// Pipelined BDAT: NOOP between chunks is answered, a chunk past the size limit is refused
// after its bytes, and chunks pipelined after the refusal are skipped, not read as commands.
func TestBDATPipelined(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 1000})
	c := dial(t, ts.addr)
	c.envelope()
	c.send("BDAT 10\r\nSubject: xNOOP\r\nBDAT 4 LAST\r\n\r\n\r\n")
	c.expect("250 2.0.0 Continue")
	c.expect("250 2.0.0 OK")
	id := queuedID(t, c.expect("250 2.0.0 OK queued as"))
	if rec, ok := ts.spool.get(id); !ok || rec.Envelope.Size != 14 {
		t.Fatalf("record %v %+v", ok, rec.Envelope)
	}
	big := strings.Repeat("y", 1500)
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<j@sensor.test>", "250")
	c.send(fmt.Sprintf("BDAT %d\r\n%sBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n", len(big), big))
	c.expect("552 5.3.4")
	c.expect("503 5.5.1")
	c.expect("250")
	if ts.spool.count() != 1 {
		t.Errorf("%d records", ts.spool.count())
	}
}

// A transaction that outlasts MaxTransactionTime ends with a 4xx and no record, however
// lively the sender.
func TestTransactionTimeLimit(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxTransactionTime: 500 * time.Millisecond})
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	start := time.Now()
	go func() {
		for range 30 {
			if _, err := io.WriteString(c.conn, "more\r\n"); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.expect("451 4.4.2")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("cut off after %s", d)
	}
	if ts.spool.count() != 0 {
		t.Error("a record was committed")
	}

	// Also between MAIL and the message.
	c2 := dial(t, ts.addr)
	c2.envelope()
	c2.expect("451 4.4.2")
	waitFor(t, func() bool { return ts.srv.inflightCount() == 0 })
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"sensor.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestSTARTTLS(t *testing.T) {
	ts := startServer(t, SMTPConfig{TLSConfig: &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12}})
	raw := dial(t, ts.addr)
	raw.send("EHLO client.test\r\n")
	if !strings.Contains(ehloLines(t, raw), "250-STARTTLS\n") {
		t.Error("STARTTLS not advertised")
	}
	c, err := smtp.DialStartTLS(ts.addr, &tls.Config{ServerName: "sensor.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS advertised over TLS")
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

	// A command pipelined after STARTTLS (CVE-2011-0411) ends the session.
	raw = dial(t, ts.addr)
	raw.cmd("EHLO client.test", "250")
	raw.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
	if l, err := raw.r.ReadString('\n'); err == nil {
		t.Errorf("got %q, want the connection closed", l)
	}
}

// ehloLines reads a multi-line reply whole.
func ehloLines(t *testing.T, c *conversation) string {
	t.Helper()
	var sb strings.Builder
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		sb.WriteString(strings.TrimRight(l, "\r\n") + "\n")
		if len(l) < 4 || l[3] != '-' {
			return sb.String()
		}
	}
}

// A client that pipelines commands but never reads the replies is cut off once a write to
// it has waited writeTimeout, idle timeout or not.
func TestClientThatNeverReadsIsCutOff(t *testing.T) {
	ts := startServer(t, SMTPConfig{IdleTimeout: time.Minute})
	ts.srv.mu.Lock()
	ts.srv.writeTimeout = 300 * time.Millisecond
	ts.srv.mu.Unlock()
	c := dial(t, ts.addr)
	c.conn.SetDeadline(time.Now().Add(time.Minute))
	done := make(chan error, 1)
	go func() {
		noops := strings.Repeat("NOOP\r\n", 1<<16)
		for {
			if _, err := io.WriteString(c.conn, noops); err != nil {
				done <- err
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the server still reads from a client that reads nothing")
	}
	waitFor(t, func() bool {
		ts.srv.door.mu.Lock()
		defer ts.srv.door.mu.Unlock()
		return len(ts.srv.door.conns) == 0
	})
}
