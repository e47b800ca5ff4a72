package sensor

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// TestPoisonMessagesDoNotBlockTheStream sends the hostile messages of testkit.Hostile one after another
// in one SMTP session, as a journal source would, then an ordinary message. Each is
// answered 250 with a committed record, so none of them can wedge the sender's queue.
// The 64 MiB single line is among them: SMTP sets no limit on a body line.
func TestPoisonMessagesDoNotBlockTheStream(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 80 << 20})
	c := dial(t, ts.addr)
	// Megabytes of hostile MIME under the race detector on a shared machine: dial's 10 s
	// deadline is for ordinary conversations.
	c.conn.SetDeadline(time.Now().Add(3 * time.Minute))
	c.cmd("EHLO client.test", "250")
	for _, h := range testkit.HostileMessages() {
		data, err := io.ReadAll(h.New())
		if err != nil {
			t.Fatal(err)
		}
		stuffed := strings.ReplaceAll("\r\n"+string(data), "\r\n.", "\r\n..")[2:]
		if !strings.HasSuffix(stuffed, "\r\n") {
			stuffed += "\r\n"
		}
		c.cmd("MAIL FROM:<sender@example.org>", "250")
		c.cmd("RCPT TO:<journal@sensor.test>", "250")
		c.cmd("DATA", "354")
		c.send(stuffed + ".\r\n")
		id := queuedID(t, c.expect("250 2.0.0"))
		rec, ok := ts.spool.get(id)
		if !ok {
			t.Fatalf("%s: 250 without a committed record", h.Name)
		}
		if h.Limit != "" && !strings.Contains(strings.Join(rec.LimitsHit, ","), h.Limit) {
			t.Errorf("%s: limits_hit %v, want %s", h.Name, rec.LimitsHit, h.Limit)
		}
	}
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250 2.0.0")
}
