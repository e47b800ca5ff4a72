package sensor

import (
	"testing"
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
	c.cmd("MAIL FROM:<a@example.org> SIZE=100", "250") // reserved at MAIL
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
		return ts.spool.reserved == 3 && ts.spool.released == 3
	})
}
