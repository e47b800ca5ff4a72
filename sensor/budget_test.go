package sensor

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
	"github.com/journalsensor/sensor/spool"
)

// A full spool answers 452 4.3.1: at MAIL when the sender declared SIZE (so it never sends
// the body), after the body otherwise. Never a 5xx.
func TestSpoolFullIs452(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	ts.spool.mu.Lock()
	ts.spool.full = true
	ts.spool.mu.Unlock()
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org> SIZE=1000", "452 4.3.1")

	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("452 4.3.1")
	if ts.spool.count() != 0 {
		t.Errorf("%d records committed with a full spool", ts.spool.count())
	}
}

// Every reservation is given back, whatever ends the transaction.
func TestReservationsAreReleased(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	// Reserved at MAIL, and again after the body: its record is larger than the 100 bytes
	// declared.
	c.cmd("MAIL FROM:<a@example.org> SIZE=100", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250")
	c.cmd("MAIL FROM:<a@example.org>", "250") // reserved after the body
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250")
	c.cmd("MAIL FROM:<a@example.org> SIZE=100", "250") // abandoned with RSET
	c.cmd("RSET", "250")
	c.cmd("QUIT", "221")
	waitFor(t, func() bool {
		ts.spool.mu.Lock()
		defer ts.spool.mu.Unlock()
		return ts.spool.reserved == 4 && ts.spool.released == 4
	})
}

// spoolBlobs hands the parser the real spool's blob writers, as `sensor serve` does in
// content mode.
type spoolBlobs struct{ sp *spool.Spool }

func (s spoolBlobs) Create() (parser.BlobWriter, error) {
	w, err := s.sp.CreateBlob()
	if err != nil {
		return nil, err
	}
	return w, nil
}

// In content mode a message sent without SIZE is checked against the budget only after its
// body, when the parser has already committed its attachments' blobs. Refused with 452, it
// must not leave them behind: they would keep counting against the budget, so every later
// copy, however small, would get 452 too, while blobs/ filled with bytes no record names.
func TestRefusedContentModeMessageLeavesNoBlobToFillTheBudget(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp.SetBudget(4 << 10)
	p, err := parser.New(parser.Options{Attachments: parser.AttachmentsContent, Blobs: spoolBlobs{sp}, CRLFInput: true})
	if err != nil {
		t.Fatal(err)
	}
	log := &testkit.LogBuffer{}
	logger := slog.New(slog.NewTextHandler(log, nil))
	m := &Metrics{}
	in := NewIntake(IntakeConfig{SensorID: "sensor-1", Version: "v-test", Logger: logger}, p, sp, m)
	srv := NewSMTPServer(SMTPConfig{Domain: "sensor.test", MaxMessageBytes: 10 << 20, Logger: logger}, in, m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})

	payload := bytes.Repeat([]byte("attachment bytes the budget cannot hold. "), 200) // 8 KiB
	big := "From: a@example.org\r\nSubject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--b\r\n" +
		"Content-Type: application/octet-stream; name=data.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
		base64Lines(payload) + "--b--\r\n.\r\n"

	c := dial(t, ln.Addr().String())
	c.envelope() // no SIZE: the budget is checked after the body
	c.cmd("DATA", "354")
	c.send(big)
	c.expect("452 4.3.1")

	if left, _ := os.ReadDir(filepath.Join(dir, "blobs")); len(left) != 0 {
		t.Errorf("blobs/ holds %d file(s) after the only message naming them was refused", len(left))
	}
	if u := sp.Usage(); u.Blobs != 0 || u.BlobBytes != 0 || u.Bytes() != 0 {
		t.Errorf("usage after the refusal: %+v, want nothing counted", u)
	}
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250")
}

// base64Lines encodes b in 76-character lines, each ending in CRLF.
func base64Lines(b []byte) string {
	s := base64.StdEncoding.EncodeToString(b)
	var out strings.Builder
	for len(s) > 76 {
		out.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	out.WriteString(s + "\r\n")
	return out.String()
}
