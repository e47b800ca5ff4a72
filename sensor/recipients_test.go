package sensor

import (
	"fmt"
	"strings"
	"testing"
)

func TestRecipientsOverSMTP(t *testing.T) {
	r, err := NewRecipients([]string{"journal-7Qx2@Example.org", "*@journal.example.net"})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, SMTPConfig{Recipients: r})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	for _, tc := range []struct{ rcpt, want string }{
		{"journal-7Qx2@example.org", "250 2.1.5"},
		{"JOURNAL-7qx2@EXAMPLE.ORG", "250 2.1.5"}, // QUIRK: local parts too are matched in any case
		{"anyone@journal.example.net", "250 2.1.5"},
		{"Someone@Journal.Example.NET", "250 2.1.5"},
		{"journal-7Qx2@example.org.evil.test", "550 5.1.1 Recipient not accepted"},
		{"journal@example.org", "550 5.1.1 Recipient not accepted"},
		{"anyone@sub.journal.example.net", "550 5.1.1 Recipient not accepted"},
		{"postmaster", "550 5.1.1 Recipient not accepted"},
	} {
		c.cmd("RCPT TO:<"+tc.rcpt+">", tc.want)
	}
	// The refused ones are not recipients of the message.
	c.cmd("DATA", "354")
	id := queuedID(t, c.cmd(simpleMessage+".", "250"))
	rec, ok := ts.spool.get(id)
	if !ok {
		t.Fatalf("record %s not committed", id)
	}
	if got := strings.Join(rec.Envelope.RcptTo, " "); got !=
		"journal-7Qx2@example.org JOURNAL-7qx2@EXAMPLE.ORG anyone@journal.example.net Someone@Journal.Example.NET" {
		t.Errorf("RcptTo = %s", got)
	}
}

func TestNoRecipientsAcceptsEveryone(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	c.cmd("RCPT TO:<whoever@wherever.test>", "250 2.1.5")
	c.cmd("RCPT TO:<postmaster>", "250 2.1.5")
}

func TestCheckRecipient(t *testing.T) {
	for _, ok := range []string{"a@x", "journal-7Qx2@example.org", "*@example.org", "Journal@Example.ORG"} {
		if err := CheckRecipient(ok); err != nil {
			t.Errorf("CheckRecipient(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "journal", "@example.org", "journal@", "*", "*@", "j*@x", "a@*.x", "a@x,b@y", "<a@x>", "a @x"} {
		if err := CheckRecipient(bad); err == nil {
			t.Errorf("CheckRecipient(%q) = nil, want an error", bad)
		}
	}
	if r, err := NewRecipients(nil); r != nil || err != nil {
		t.Errorf("NewRecipients(nil) = %v, %v", r, err)
	}
	if _, err := NewRecipients([]string{"a@x", "bad"}); err == nil {
		t.Error("NewRecipients accepted a bad pattern")
	}
}

// The journal address is a secret shared with the journal rule: a client that keeps guessing
// loses its session, as it would for any run of errors.
func TestGuessingTheJournalAddressEndsTheSession(t *testing.T) {
	r, err := NewRecipients([]string{"journal-7Qx2@example.org"})
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, SMTPConfig{Recipients: r})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	for i := 1; i < maxErrors; i++ {
		c.cmd(fmt.Sprintf("RCPT TO:<journal-%d@example.org>", i), "550 5.1.1")
	}
	c.send("RCPT TO:<journal@example.org>\r\n")
	c.expect("550 5.1.1")
	c.expect("421 4.7.0")
}
