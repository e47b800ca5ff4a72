//go:build e2e

// Package gateway puts real mail gateways in front of the built sensor: a private Postfix
// (its own config_directory, queue_directory and maillog_file) relays each message to a
// mailbox server and sends an always_bcc copy to the sensor, as a customer's gateway would;
// or, in milter_test.go, consults the sensor as its milter and delivers to discard (or to
// smtp-sink, where the message as the milter left it can be read). The tests need Postfix
// (postfix, smtp-sink, smtp-source, sendmail) and swaks, and fail without them. They are
// left out of `go test ./...` by the e2e build tag; .ci/run runs them:
//
//	go test -tags e2e -count=1 -v ./scripts/gateway/
package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// gatewayMessage is one message sent through the gateway, and what its record must say.
type gatewayMessage struct {
	name    string
	subject string
	body    []byte // the message as it travels over SMTP, lines ending in CRLF, before dot-stuffing
	check   func(t *testing.T, rec record)
}

// record is the part of a Record v1 the checks read.
type record struct {
	ID       string `json:"id"`
	Envelope struct {
		Transport string   `json:"transport"`
		QueueID   string   `json:"queue_id"`
		ClientIP  string   `json:"client_ip"`
		MailFrom  string   `json:"mail_from"`
		RcptTo    []string `json:"rcpt_to"`
		Size      int64    `json:"size"`
		TLS       *struct {
			Version    string `json:"version"`
			Cipher     string `json:"cipher"`
			ClientName string `json:"client_name"`
		} `json:"tls"`
	} `json:"envelope"`
	Message struct {
		Subject   string     `json:"subject"`
		MessageID string     `json:"message_id"`
		Size      int64      `json:"size"`
		SHA256    string     `json:"sha256"`
		Headers   [][]string `json:"headers"`
		DedupeKey string     `json:"dedupe_key"`
	} `json:"message"`
	Source struct {
		Kind string `json:"kind"`
	} `json:"source"`
	URLs []struct {
		URL string `json:"url"`
	} `json:"urls"`
	Attachments []struct {
		Filename string `json:"filename"`
		SHA256   string `json:"sha256"`
	} `json:"attachments"`
	Anomalies []struct {
		Code string `json:"code"`
	} `json:"anomalies"`
}

// gatewayMessages are the copies a gateway must get through whole: everyday mail, and the
// shapes that used to keep a message out of the sensor.
func gatewayMessages() []gatewayMessage {
	attachment := bytes.Repeat([]byte("%PDF-1.7 gateway attachment\n"), 3000)
	sum := sha256.Sum256(attachment)
	longLine := strings.Repeat("A", 2<<20) // 2 MiB in one body line
	head := func(subject string) string {
		return "From: Alice <alice@gw.test>\r\nTo: user@example.net\r\nSubject: " + subject +
			"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", "-") + "@gw.test>\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
	}
	return []gatewayMessage{
		{
			name: "plain", subject: "gateway plain",
			body: []byte(head("gateway plain") + "\r\nsee https://example.com/login\r\n"),
		},
		{
			// The data ends in "\r\r\n.\r\n". Postfix 3.7 (Debian 12) drops that bare CR
			// before relaying (seen on the wire with a capturing server), so the copy must
			// simply arrive; the sensor's own tests send the bare CR to it directly.
			name: "bare CR on the last line", subject: "gateway bare cr",
			body: []byte(head("gateway bare cr") + "\r\nfirst line\r\nthe last line ends in a bare CR\r\r\n"),
		},
		{
			name: "2 MiB body line", subject: "gateway long line",
			body: []byte(head("gateway long line") + "\r\n" + longLine + "\r\n"),
			check: func(t *testing.T, rec record) {
				if rec.Message.Size < int64(len(longLine)) {
					t.Errorf("record %s: message size %d, want at least the 2 MiB line", rec.ID, rec.Message.Size)
				}
			},
		},
		{
			name: "attachment", subject: "gateway attachment",
			body: []byte(head("gateway attachment") + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
				"--b\r\nContent-Type: text/plain\r\n\r\nreport attached\r\n" +
				"--b\r\nContent-Type: application/pdf; name=report.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
				wrap76(base64.StdEncoding.EncodeToString(attachment)) + "--b--\r\n"),
			check: func(t *testing.T, rec record) {
				want := hex.EncodeToString(sum[:])
				if !slices.ContainsFunc(rec.Attachments, func(a struct {
					Filename string `json:"filename"`
					SHA256   string `json:"sha256"`
				}) bool {
					return a.Filename == "report.pdf" && a.SHA256 == want
				}) {
					t.Errorf("record %s: no report.pdf with sha256 %s in %+v", rec.ID, want, rec.Attachments)
				}
			},
		},
	}
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	return b.String() + s + "\r\n"
}

// TestPostfixAlwaysBCC sends each message to a private Postfix, which delivers it to a mailbox
// server (smtp-sink) and an always_bcc copy to the sensor. Every copy must become exactly
// one correct record, and Postfix's queue must end empty: nothing deferred, nothing bounced.
func TestPostfixAlwaysBCC(t *testing.T) {
	msgs := gatewayMessages()
	checkRecords(t, "Postfix", msgs, throughPostfix(t, msgs))
}

// throughPostfix sends msgs through a private Postfix to a new sensor and returns the
// records the sensor made of the copies.
func throughPostfix(t *testing.T, msgs []gatewayMessage) []record {
	t.Helper()
	for _, tool := range []string{"postfix", "smtp-sink"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y postfix", tool)
		}
	}
	sensorAddr, sinkAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	s := startSensor(t, sensorAddr)
	startSink(t, sinkAddr)
	pf := testkit.StartPostfix(t, gatewayAddr, map[string]string{"sensor.test": sensorAddr, "example.net": sinkAddr},
		"# A copy the sensor does not answer is deferred after this, and the test fails on it.\nsmtp_data_done_timeout = 30s\n")
	for _, m := range msgs {
		if err := sendRaw(gatewayAddr, "alice@gw.test", "user@example.net", m.body); err != nil {
			t.Fatalf("%s: sending to Postfix: %v", m.name, err)
		}
	}
	recs := s.waitRecords(t, len(msgs), 90*time.Second, pf.Maillog)
	pf.WaitQueueEmpty(t, 30*time.Second)
	if log := pf.Maillog(t); strings.Contains(log, "status=deferred") || strings.Contains(log, "status=bounced") {
		t.Errorf("Postfix deferred or bounced a copy:\n%s", testkit.LastLines(log, 30))
	}
	return recs
}

// checkRecords holds each message to exactly one record that says what the message is.
func checkRecords(t *testing.T, gateway string, msgs []gatewayMessage, recs []record) {
	t.Helper()
	bySubject := map[string][]record{}
	for _, r := range recs {
		bySubject[r.Message.Subject] = append(bySubject[r.Message.Subject], r)
	}
	for _, m := range msgs {
		got := bySubject[m.subject]
		if len(got) != 1 {
			t.Errorf("%s, %s: %d records, want exactly 1", gateway, m.name, len(got))
			continue
		}
		rec := got[0]
		if rec.Envelope.Transport != "smtp" || rec.Envelope.MailFrom != "alice@gw.test" ||
			!slices.Equal(rec.Envelope.RcptTo, []string{"journal@sensor.test"}) {
			t.Errorf("%s, %s: envelope %+v, want smtp from alice@gw.test to journal@sensor.test", gateway, m.name, rec.Envelope)
		}
		if want := strings.ReplaceAll(m.subject, " ", "-") + "@gw.test"; strings.Trim(rec.Message.MessageID, "<>") != want {
			t.Errorf("%s, %s: message id %q, want %s", gateway, m.name, rec.Message.MessageID, want)
		}
		if m.check != nil {
			m.check(t, rec)
		}
	}
}

// sensor is the built sensor, recording to its file:// outbox.
type sensor struct {
	outbox string
	logs   *bytes.Buffer
}

func startSensor(t *testing.T, addr string, args ...string) *sensor {
	t.Helper()
	dir := t.TempDir()
	bin := testkit.BuildSensor(t, dir)
	s := &sensor{outbox: filepath.Join(dir, "data", "outbox"), logs: &bytes.Buffer{}}
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", addr,
		"--admin-listen", "127.0.0.1:0"}, args...)...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sensor log:\n%s", testkit.LastLines(s.logs.String(), 40))
		}
	})
	testkit.WaitListening(t, addr)
	return s
}

// waitRecords waits until the outbox holds n records and returns them.
func (s *sensor) waitRecords(t *testing.T, n int, timeout time.Duration, gatewayLog func(testing.TB) string) []record {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		recs := s.records(t)
		if len(recs) >= n {
			return recs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records after %s, want %d; the gateway's log:\n%s", len(recs), timeout, n, testkit.LastLines(gatewayLog(t), 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *sensor) records(t *testing.T) []record {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.outbox, "*.ndjson"))
	var recs []record
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var r record
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			recs = append(recs, r)
		}
	}
	return recs
}

// startSink runs smtp-sink as the mailbox server the gateway relays to.
func startSink(t *testing.T, addr string) {
	t.Helper()
	args := []string{"-c", addr, "64"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...) // smtp-sink refuses to run as root
	}
	cmd := exec.Command("smtp-sink", args...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	testkit.WaitListening(t, addr)
}

// sendRaw sends body as one message with a plain SMTP dialogue, so that its bytes (a bare CR,
// a 2 MiB line) reach the server as written; only dot-stuffing is applied.
func sendRaw(addr, from, to string, body []byte) error {
	return sendRawTo(addr, from, []string{to}, body)
}

// sendRawTo is sendRaw to several recipients in one transaction.
func sendRawTo(addr, from string, to []string, body []byte) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(60 * time.Second))
	r := bufio.NewReader(c)
	expect := func(code string) error {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(line, code) {
				return fmt.Errorf("got %q, want %s", strings.TrimSpace(line), code)
			}
			if len(line) < 4 || line[3] != '-' {
				return nil
			}
		}
	}
	cmd := func(line, code string) error {
		if _, err := fmt.Fprintf(c, "%s\r\n", line); err != nil {
			return err
		}
		return expect(code)
	}
	if err := expect("220"); err != nil {
		return err
	}
	steps := [][2]string{{"EHLO client.gw.test", "250"}, {"MAIL FROM:<" + from + ">", "250"}}
	for _, rcpt := range to {
		steps = append(steps, [2]string{"RCPT TO:<" + rcpt + ">", "250"})
	}
	for _, step := range append(steps, [2]string{"DATA", "354"}) {
		if err := cmd(step[0], step[1]); err != nil {
			return fmt.Errorf("%s: %w", step[0], err)
		}
	}
	var data bytes.Buffer
	for _, line := range bytes.SplitAfter(body, []byte("\r\n")) {
		if len(line) > 0 && line[0] == '.' {
			data.WriteByte('.')
		}
		data.Write(line)
	}
	data.WriteString(".\r\n")
	if _, err := c.Write(data.Bytes()); err != nil {
		return err
	}
	if err := expect("250"); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return cmd("QUIT", "221")
}
