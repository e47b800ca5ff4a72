package sensor

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A last line that ends in a bare CR ("...\r\r\n.\r\n") still ends DATA at its CRLF.CRLF: the
// sender is answered and its next command is a command, not body.
func TestBareCRBeforeFinalCRLFEndsData(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.conn.SetDeadline(time.Now().Add(3 * time.Second))
	c.envelope()
	c.cmd("DATA", "354")
	c.send("Subject: cr\r\n\r\nbody ends in a bare CR\r\r\n.\r\n")
	id := queuedID(t, c.expect("250 2.0.0"))
	rec, ok := ts.spool.get(id)
	if !ok || rec.Message.Subject != "cr" {
		t.Fatalf("250 for %s: committed %v, subject %q", id, ok, rec.Message.Subject)
	}
	if want := int64(len("Subject: cr\r\n\r\nbody ends in a bare CR\r\r\n")); rec.Envelope.Size != want {
		t.Errorf("size %d, want %d: the bare CR is data", rec.Envelope.Size, want)
	}
	c.cmd("NOOP", "250")
}

// A BDAT LAST chunk that the connection cuts short is an incomplete message: nothing is
// committed.
func TestBDATLastChunkCutShortIsNotCommitted(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.envelope()
	c.send(fmt.Sprintf("BDAT %d LAST\r\n%s", 1000, simpleMessage))
	c.conn.(*net.TCPConn).CloseWrite()
	waitFor(t, func() bool { return strings.Contains(ts.log.String(), "id=") })
	time.Sleep(100 * time.Millisecond)
	if n := ts.spool.count(); n != 0 {
		t.Errorf("%d records committed for a chunk cut short", n)
	}
	if !strings.Contains(ts.log.String(), "not received whole") {
		t.Errorf("log does not say the message broke off:\n%s", ts.log.String())
	}
}

// A body line of 2 MiB is data like any other: no line limit applies inside DATA.
func TestDataLineOver1MiBIsAccepted(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	c.envelope()
	c.cmd("DATA", "354")
	body := "Subject: long\r\n\r\n" + strings.Repeat("x", 2<<20) + "\r\n"
	c.send(body + ".\r\n")
	id := queuedID(t, c.expect("250 2.0.0"))
	rec, ok := ts.spool.get(id)
	if !ok || rec.Envelope.Size != int64(len(body)) {
		t.Fatalf("committed %v, size %d, want %d", ok, rec.Envelope.Size, len(body))
	}
	c.cmd("NOOP", "250")
}

// A BDAT whose size cannot be read leaves the end of its chunk unknown: were the session to go
// on, the chunk's bytes (here a forged transaction) would be read as commands. It closes, and
// nothing is committed.
func TestMalformedBDATClosesTheSession(t *testing.T) {
	forged := "MAIL FROM:<forged@evil.example>\r\nRCPT TO:<journal@sensor.test>\r\nDATA\r\n" + simpleMessage + ".\r\n"
	for _, tc := range []struct {
		name, script string
		replies      []string
	}{
		{"first chunk", "BDAT 99999999999999999999 LAST\r\n" + forged, []string{"421 4.5.4"}},
		{"later chunk", fmt.Sprintf("BDAT %d\r\n%sBDAT 12x LAST\r\n%s", len(simpleMessage), simpleMessage, forged),
			[]string{"250 2.0.0 Continue", "451 4.4.2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, SMTPConfig{})
			c := dial(t, ts.addr)
			c.conn.SetDeadline(time.Now().Add(5 * time.Second))
			c.envelope()
			c.send(tc.script)
			var line string
			for _, r := range tc.replies {
				line += c.expect(r)
			}
			for {
				l, err := c.r.ReadString('\n')
				if err != nil {
					break // closed, as it must be
				}
				line += l
			}
			if strings.Contains(line, "250 2.0.0 OK queued") {
				t.Errorf("the forged transaction was served: %q", line)
			}
			time.Sleep(50 * time.Millisecond)
			if n := ts.spool.count(); n != 0 {
				t.Errorf("%d records committed after a malformed BDAT", n)
			}
		})
	}
}

// emfileListener fails its first Accepts as a process out of file descriptors does.
type emfileListener struct {
	net.Listener
	fails int
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// Running out of file descriptors for a moment must not end the sensor: Serve waits and
// accepts again.
func TestAcceptOutOfFileDescriptorsKeepsServing(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ts.srv.Serve(&emfileListener{Listener: l, fails: 3}) }()
	c := dial(t, l.Addr().String())
	c.cmd("NOOP", "250")
	select {
	case err := <-done:
		t.Fatalf("Serve returned %v after EMFILE", err)
	default:
	}
}
