package sensor

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// scrape returns the admin endpoint's /metrics text.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	(&Admin{Metrics: m}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/metrics: %d", rec.Code)
	}
	return rec.Body.String()
}

// The replies the sensor decides are counted by code, each once, and the protocol's own replies
// (EHLO, MAIL and RCPT accepted, 354, BDAT's 250 Continue, RSET) are not.
func TestRepliesAreCountedByCode(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 1000})
	before := scrape(t, ts.metrics)
	for _, code := range []string{"250", "421", "451", "452", "550", "552"} {
		if line := `sensor_smtp_replies_total{code="` + code + `"} 0`; !strings.Contains(before, line+"\n") {
			t.Errorf("before any session, /metrics lacks %q:\n%s", line, before)
		}
	}

	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250 2.0.0") // 250 #1

	ts.spool.mu.Lock()
	ts.spool.full = true
	ts.spool.mu.Unlock()
	c.cmd("MAIL FROM:<a@example.org> SIZE=100", "452 4.3.1") // 452 #1
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("452 4.3.1") // 452 #2

	ts.spool.mu.Lock()
	ts.spool.full, ts.spool.fail = false, errors.New("fsync: input/output error")
	ts.spool.mu.Unlock()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("451 4.3.0") // 451 #1

	// A BDAT transaction reset before its LAST chunk gets no reply to its message, so
	// nothing is counted for it.
	failed := ts.metrics.messagesFailed.Load()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.send(fmt.Sprintf("BDAT %d\r\n%s", 20, simpleMessage[:20]))
	c.expect("250")
	c.cmd("RSET", "250")
	waitFor(t, func() bool { return ts.metrics.messagesFailed.Load() == failed+1 })

	big := dial(t, ts.addr)
	big.envelope()
	big.cmd("DATA", "354")
	big.send(simpleMessage + strings.Repeat("x", 2000) + "\r\n.\r\n")
	big.expect("552 5.3.4") // 552 #1

	ts.srv.draining.Store(true)
	c.cmd("MAIL FROM:<a@example.org>", "421 4.3.2") // 421 #1
	late, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.SetDeadline(time.Now().Add(5 * time.Second))
	if g, err := bufio.NewReader(late).ReadString('\n'); err != nil || !strings.HasPrefix(g, "421 4.3.2") {
		t.Fatalf("greeting while draining %q, %v", g, err) // 421 #2
	}

	got := scrape(t, ts.metrics)
	for code, n := range map[string]int{"250": 1, "421": 2, "451": 1, "452": 2, "550": 0, "552": 1} {
		if line := fmt.Sprintf(`sensor_smtp_replies_total{code="%s"} %d`, code, n); !strings.Contains(got, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if n := strings.Count(got, "sensor_smtp_replies_total{"); n != 6 {
		t.Errorf("%d reply codes counted, want 6", n)
	}
	for _, line := range []string{"# HELP sensor_smtp_replies_total ", "# TYPE sensor_smtp_replies_total counter\n"} {
		if strings.Count(got, line) != 1 {
			t.Errorf("/metrics has %q %d times", line, strings.Count(got, line))
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", got)
	}
}

// A session over the real client library, as a journal source would hold it, counts what it
// was told.
func TestRepliesCountedForAClientLibrarySession(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	for range 3 {
		sendWithClient(t, ts.addr, simpleMessage)
	}
	if got := scrape(t, ts.metrics); !strings.Contains(got, "sensor_smtp_replies_total{code=\"250\"} 3\n") {
		t.Errorf("three messages accepted, /metrics says:\n%s", got)
	}
}

// sendWithClient sends one message with go-smtp's client and fails unless it gets a 250.
func sendWithClient(t *testing.T, addr, msg string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	sendOn(t, c, msg)
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}
