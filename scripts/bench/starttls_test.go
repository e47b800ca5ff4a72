package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// BenchmarkSTARTTLS measures what STARTTLS costs the built sensor: messages per second over
// 20 concurrent sessions of 10 KiB messages, in plain text and over STARTTLS, in the same
// run and into the same sensor (which offers STARTTLS and does not require it), in two
// shapes: 50 messages per session (one handshake for 50 messages, as a journal stream
// sends), and one message per session (a handshake for every message: the worst case,
// measured twice, with Go's default key exchange and with X25519 alone). Postfix's
// smtp-source, which cannot speak TLS, sends the same load in plain text, both shapes, as
// the reference line. Each b.N is 1,000 messages in each of the seven, in an order that
// rotates from one b.N to the next so that a neighbour's burst of load does not always hit
// the same one.
//
//	go test -run '^$' -bench STARTTLS -benchtime 3x -count 3 ./scripts/bench/
//
// The client verifies the sensor's certificate (ECDSA P-256, from a test CA) as a careful
// sender would and keeps no session tickets. It runs on the same cores as the sensor, so
// the client's half of each handshake, which a real sender pays on its own machine, is
// paid here too: the ratios overstate what TLS costs the sensor alone. Needs the postfix
// package (smtp-source); it fails without it.
func BenchmarkSTARTTLS(b *testing.B) {
	const sessions, perRun, perSession, size = 20, 1000, 50, 10 << 10
	needTools(b, "smtp-source")
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)
	ca := testkit.MakeCA(b, "bench CA")
	srv := ca.Issue(b, testkit.Leaf{CN: "localhost", DNSNames: []string{"localhost"}, IPs: []net.IP{net.ParseIP("127.0.0.1")},
		Usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	certFile, keyFile := testkit.WriteCert(b, dir, "sensor", srv)
	addr := testkit.FreePort(b)
	start(b, exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", addr,
		"--admin-listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile))
	waitSMTP(b, addr)

	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	clientTLS := &tls.Config{ServerName: "localhost", RootCAs: roots}
	// Go offers a post-quantum hybrid key exchange first and takes it when both ends are
	// Go; senders built on OpenSSL before 3.5 (Postfix on Debian 12, among others) offer
	// X25519 alone, which costs less per handshake. Both are measured where handshakes
	// dominate.
	classicTLS := clientTLS.Clone()
	classicTLS.CurvePreferences = []tls.CurveID{tls.X25519}
	b.Logf("TLS: %s; with X25519 alone: %s", describeTLS(b, addr, clientTLS), describeTLS(b, addr, classicTLS))
	msg := tenKiBMessage(size)

	source := func(extra ...string) func() time.Duration {
		return func() time.Duration {
			t0 := time.Now()
			args := append([]string{"-s", fmt.Sprint(sessions), "-m", fmt.Sprint(perRun), "-l", fmt.Sprint(size),
				"-f", "alice@gw.test", "-t", "journal@sensor.test"}, extra...)
			out, err := exec.Command("smtp-source", append(args, addr)...).CombinedOutput()
			if err != nil {
				b.Fatalf("smtp-source %v: %v\n%s", args, err, out)
			}
			return time.Since(t0)
		}
	}
	modes := []struct {
		name string
		run  func() time.Duration
	}{
		{"plain", func() time.Duration { return sendAll(b, addr, nil, sessions, perRun, perSession, msg) }},
		{"starttls", func() time.Duration { return sendAll(b, addr, clientTLS, sessions, perRun, perSession, msg) }},
		{"plain-1", func() time.Duration { return sendAll(b, addr, nil, sessions, perRun, 1, msg) }},
		{"starttls-1", func() time.Duration { return sendAll(b, addr, clientTLS, sessions, perRun, 1, msg) }},
		{"starttls-x25519-1", func() time.Duration { return sendAll(b, addr, classicTLS, sessions, perRun, 1, msg) }},
		// smtp-source's -d keeps a session for the next message; without it, one message a
		// session.
		{"smtp-source", source("-d")},
		{"smtp-source-1", source()},
	}
	took := make([]time.Duration, len(modes))
	b.ResetTimer()
	for i := range b.N {
		for j := range modes {
			k := (i + j) % len(modes)
			took[k] += modes[k].run()
		}
	}
	b.StopTimer()
	rate := map[string]float64{}
	for k, m := range modes {
		rate[m.name] = float64(b.N*perRun) / took[k].Seconds()
		b.ReportMetric(rate[m.name], m.name+"-msgs/s")
	}
	b.ReportMetric(rate["starttls"]/rate["plain"], "tls/plain")
	b.ReportMetric(rate["starttls-1"]/rate["plain-1"], "tls/plain-1")
	b.ReportMetric(rate["starttls-x25519-1"]/rate["plain-1"], "tls-x25519/plain-1")
}

// sendAll sends total messages from sessions concurrent clients and returns the time it
// took. Each client opens a connection (and starts TLS under cfg, when set), sends up to
// perConn messages on it, quits, and opens the next, until its share is sent. Every message
// must be answered 250.
func sendAll(b *testing.B, addr string, cfg *tls.Config, sessions, total, perConn int, msg []byte) time.Duration {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	t0 := time.Now()
	for s := range sessions {
		share := total / sessions
		if s < total%sessions {
			share++
		}
		wg.Go(func() {
			for share > 0 {
				n := min(share, perConn)
				if err := sendOnOne(addr, cfg, n, msg); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				share -= n
			}
		})
	}
	wg.Wait()
	d := time.Since(t0)
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return d
}

// sendOnOne sends n messages over one connection, over STARTTLS when cfg is set.
func sendOnOne(addr string, cfg *tls.Config, n int, msg []byte) error {
	var c *smtp.Client
	var err error
	if cfg != nil {
		c, err = smtp.DialStartTLS(addr, cfg)
	} else {
		c, err = smtp.Dial(addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("bench.test"); err != nil {
		return err
	}
	for range n {
		if err := c.SendMail("alice@gw.test", []string{"journal@sensor.test"}, strings.NewReader(string(msg))); err != nil {
			return err
		}
	}
	return c.Quit()
}

// describeTLS says what a STARTTLS session with the sensor negotiates.
func describeTLS(b *testing.B, addr string, cfg *tls.Config) string {
	c, err := smtp.DialStartTLS(addr, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		b.Fatal(err)
	}
	st, _ := c.TLSConnectionState()
	return fmt.Sprintf("%s %s, key exchange %v", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID)
}

// tenKiBMessage is a plain-text message of exactly size bytes, lines ending in CRLF, with
// a link, as a journal sink's smaller everyday mail.
func tenKiBMessage(size int) []byte {
	var sb strings.Builder
	sb.WriteString("From: Alice <alice@gw.test>\r\nTo: bob@example.com\r\nSubject: weekly report\r\n" +
		"Message-ID: <bench-tls@gw.test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nThe figures are at https://example.com/report?week=48 as usual.\r\n")
	line := strings.Repeat("lorem ipsum dolor sit amet ", 2)[:52] + "\r\n"
	for sb.Len()+len(line) <= size-2 {
		sb.WriteString(line)
	}
	sb.WriteString(strings.Repeat("x", size-2-sb.Len()) + "\r\n")
	return []byte(sb.String())
}
