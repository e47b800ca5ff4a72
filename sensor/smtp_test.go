package sensor

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// memSpool is a Committer that keeps records in memory and can be told to fail.
type memSpool struct {
	mu      sync.Mutex
	records map[string]api.Record
	fail    error

	full               bool // Reserve refuses
	reserved, released int
}

func (m *memSpool) Commit(id string, line []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	var r api.Record
	if err := json.Unmarshal(line, &r); err != nil {
		return err
	}
	if m.records == nil {
		m.records = map[string]api.Record{}
	}
	m.records[id] = r
	return nil
}

// Reserve grants room unless full is set.
func (m *memSpool) Reserve(int64) (func(), bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.full {
		return func() {}, false
	}
	m.reserved++
	return func() {
		m.mu.Lock()
		m.released++
		m.mu.Unlock()
	}, true
}

func (m *memSpool) get(id string) (api.Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.records[id]
	return r, ok
}

func (m *memSpool) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

type testServer struct {
	addr    string
	srv     *SMTPServer
	spool   *memSpool
	log     *testkit.LogBuffer
	metrics *Metrics
}

// startServer runs a real SMTP server with the real parser on a loopback port. Each of
// intake, when given, changes the intake's config.
func startServer(t *testing.T, cfg SMTPConfig, intake ...func(*IntakeConfig)) *testServer {
	t.Helper()
	p, err := parser.New(parser.Options{CRLFInput: true})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{spool: &memSpool{}, log: &testkit.LogBuffer{}}
	cfg.Logger = slog.New(slog.NewTextHandler(ts.log, nil))
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = 10 << 20
	}
	cfg.Domain = "sensor.test"
	m := &Metrics{}
	ts.metrics = m
	icfg := IntakeConfig{SensorID: "sensor-1", Version: "v-test", Logger: cfg.Logger}
	for _, f := range intake {
		f(&icfg)
	}
	in := NewIntake(icfg, p, ts.spool, m)
	srv := NewSMTPServer(cfg, in, m)
	ts.srv = srv
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ts
}

// conversation is a raw SMTP client, for the exchanges a library client will not produce.
type conversation struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *conversation {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cv := &conversation{t: t, conn: c, r: bufio.NewReader(c)}
	cv.expect("220")
	return cv
}

// reply reads one (possibly multi-line) reply and returns its last line.
func (c *conversation) reply() string {
	c.t.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading reply: %v", err)
		}
		if len(line) < 4 || line[3] != '-' {
			return strings.TrimRight(line, "\r\n")
		}
	}
}

func (c *conversation) expect(prefix string) string {
	c.t.Helper()
	r := c.reply()
	if !strings.HasPrefix(r, prefix) {
		c.t.Fatalf("reply %q, want %s", r, prefix)
	}
	return r
}

func (c *conversation) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

func (c *conversation) cmd(line, want string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(want)
}

func (c *conversation) envelope() {
	c.t.Helper()
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
}

const simpleMessage = "From: a@example.org\r\nTo: b@example.org\r\nSubject: hello\r\n\r\nbody text\r\n"

func queuedID(t *testing.T, reply string) string {
	t.Helper()
	const marker = "queued as "
	i := strings.Index(reply, marker)
	if i < 0 {
		t.Fatalf("reply %q names no id", reply)
	}
	return reply[i+len(marker):]
}

func TestEHLOAdvertisesWhatJournalSourcesUse(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 1234567})
	c, err := smtp.Dial(ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.test"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "CHUNKING", "ENHANCEDSTATUSCODES"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("EHLO does not advertise %s", ext)
		}
	}
	if n, ok := c.MaxMessageSize(); !ok || n != 1234567 {
		t.Errorf("SIZE %d, %v", n, ok)
	}
}

func TestDataIsCommittedBefore250(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	reply := c.expect("250 2.0.0")
	id := queuedID(t, reply)
	rec, ok := ts.spool.get(id)
	if !ok {
		t.Fatalf("250 for %s, but no record was committed", id)
	}
	if rec.ID != id || rec.Message.Subject != "hello" || rec.Envelope.MailFrom != "sender@example.org" ||
		strings.Join(rec.Envelope.RcptTo, ",") != "journal@sensor.test" || rec.Envelope.HELO != "client.test" ||
		rec.Envelope.Size != int64(len(simpleMessage)) || rec.Envelope.Transport != "smtp" || rec.Envelope.ClientIP != "127.0.0.1" {
		t.Errorf("record %+v envelope %+v", rec, rec.Envelope)
	}
	// The session goes on after a message.
	c.cmd("MAIL FROM:<>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	id2 := queuedID(t, c.expect("250"))
	if rec, _ := ts.spool.get(id2); rec.Envelope == nil || rec.Envelope.MailFrom != "" {
		t.Errorf("null sender: %+v", rec.Envelope)
	}
}

func TestCommitFailureIs451NeverA5xx(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	ts.spool.fail = errors.New("fsync: input/output error")
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	reply := c.expect("451 4.3.0")
	if strings.Contains(reply, "fsync") || strings.Contains(reply, "input/output") {
		t.Errorf("reply leaks the internal error: %q", reply)
	}
	ref := reply[strings.Index(reply, "ref ")+4 : len(reply)-1]
	if !strings.Contains(ts.log.String(), ref) {
		t.Errorf("reply ref %s is not in the log, so an operator cannot match it", ref)
	}
	// The connection stays usable, and the next attempt works once the spool does.
	ts.spool.mu.Lock()
	ts.spool.fail = nil
	ts.spool.mu.Unlock()
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250")
}

func TestSizeLimit(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 1000})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org> SIZE=5000", "552 5.3.4")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + strings.Repeat("x", 2000) + "\r\n.\r\n")
	c.expect("552 5.3.4")
	if ts.spool.count() != 0 {
		t.Error("an oversized message was committed")
	}
}

func TestBDATChunksAreStreamed(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.envelope()
	msg := simpleMessage + "binary\x00\r\n.\r\n.line that starts with a dot\r\n"
	half := len(msg) / 2
	c.send(fmt.Sprintf("BDAT %d\r\n%s", half, msg[:half]))
	c.expect("250")
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(msg)-half, msg[half:]))
	id := queuedID(t, c.expect("250 2.0.0"))
	rec, ok := ts.spool.get(id)
	if !ok || rec.Envelope.Size != int64(len(msg)) {
		t.Fatalf("record %v %+v; BDAT is not dot-stuffed, so every byte counts", ok, rec.Envelope)
	}
}

func TestClientVanishingMidDataCommitsNothing(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage[:20])
	c.conn.Close()
	time.Sleep(200 * time.Millisecond)
	if ts.spool.count() != 0 {
		t.Error("a message that never ended was committed")
	}
	if !strings.Contains(ts.log.String(), "not received whole") {
		t.Errorf("log does not say the message broke off:\n%s", ts.log.String())
	}
}

func TestOnlyCRLFDotCRLFEndsData(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	// "\n.\n" is data: a smuggled second message must stay inside the first.
	c.send("Subject: one\r\n\r\nx\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n")
	id := queuedID(t, c.expect("250"))
	rec, _ := ts.spool.get(id)
	if ts.spool.count() != 1 || rec.Message.Subject != "one" {
		t.Fatalf("%d records; subject %q", ts.spool.count(), rec.Message.Subject)
	}
	found := false
	for _, a := range rec.Anomalies {
		found = found || a.Code == "bare_lf"
	}
	if !found {
		t.Errorf("bare LF not recorded as an anomaly: %+v", rec.Anomalies)
	}
}

func TestIdleTimeoutClosesTheConnection(t *testing.T) {
	ts := startServer(t, SMTPConfig{IdleTimeout: 300 * time.Millisecond})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	start := time.Now()
	c.expect("421")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("idle connection closed after %s", d)
	}
}

func TestSlowButLiveSenderIsNotCutOff(t *testing.T) {
	// The idle timeout is per read: a sender that trickles DATA for longer than the timeout
	// in total, but never pauses that long, must get its 250.
	ts := startServer(t, SMTPConfig{IdleTimeout: 400 * time.Millisecond})
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	for _, line := range strings.SplitAfter(simpleMessage, "\r\n") {
		c.send(line)
		time.Sleep(150 * time.Millisecond)
	}
	c.send(".\r\n")
	c.expect("250")
}

// sendOn sends msg as one message on c, a go-smtp client past EHLO, and fails unless it is
// answered 250.
func sendOn(t *testing.T, c *smtp.Client, msg string) {
	t.Helper()
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
	if _, err := io.WriteString(w, msg); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
}
