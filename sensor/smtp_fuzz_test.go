package sensor

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// scriptConn is a net.Conn whose client side is a script: reads come from in and end with
// EOF, writes are kept.
type scriptConn struct {
	in  io.Reader
	out bytes.Buffer
}

func (c *scriptConn) Read(p []byte) (int, error)  { return c.in.Read(p) }
func (c *scriptConn) Write(p []byte) (int, error) { return c.out.Write(p) }
func (c *scriptConn) Close() error                { return nil }
func (c *scriptConn) LocalAddr() net.Addr         { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25} }
func (c *scriptConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 4000}
}
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// drainParser reads the whole message, as the real parser does, and fails as it does when
// the reader fails.
var drainParser = parseFunc(func(r io.Reader) (*api.Record, error) {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return nil, fmt.Errorf("%w: %w", parser.ErrIncomplete, err)
	}
	return &api.Record{}, nil
})

// FuzzSession drives whole sessions (commands, DATA and BDAT, pipelined) through the
// engine. It must never panic or hang, must end every transaction it counted, must give
// back every reservation, and must commit exactly the messages it answered 250 for.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b> SIZE=20\r\nRCPT TO:<j@s>\r\nBDAT 5\r\nhelloBDAT 3 LAST\r\nabcQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nBDAT 5\r\nhelloRSET\r\nMAIL FROM:<>\r\nRCPT TO:<j@s>\r\nDATA\r\nx\r\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nBDAT 100 LAST\r\nshort",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nDATA\r\nx\n.\nMAIL FROM:<e@v>\r\n.\r\nNOOP\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nBDAT 2000\r\n" + strings.Repeat("z", 2000) + "BDAT 1 LAST\r\nz",
		"EHLO c\r\nMAIL FROM:<a@b> BODY=BINARYMIME\r\nRCPT TO:<j@s>\r\nDATA\r\nBDAT 0 LAST\r\n",
		"HELO c\r\nRCPT TO:<j@s>\r\nBDAT 3\r\nabcMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nRCPT TO:<k@s>\r\nBDAT 1\r\nxNOOP\r\nBDAT 1 LAST\r\nyDATA\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nDATA\r\n" + strings.Repeat("x", 1500) + "\r\n.\r\nVRFY x\r\nHELP\r\nSTARTTLS\r\n",
		"EHLO " + strings.Repeat("h", 5000) + "\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@s>\r\nDATA\r\n..\r\n.\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, session []byte) {
		spool := &memSpool{}
		logs := &testkit.LogBuffer{}
		log := slog.New(slog.NewTextHandler(logs, nil))
		in := NewIntake(IntakeConfig{SensorID: "fuzz", Logger: log}, drainParser, spool, nil)
		srv := NewSMTPServer(SMTPConfig{Domain: "sensor.test", MaxMessageBytes: 1000, MaxRecipients: 3, Logger: log}, in, nil)
		conn := &scriptConn{in: bytes.NewReader(session)}
		done := make(chan struct{})
		go func() {
			defer close(done)
			newSMTPConn(srv, conn, nil).serve()
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("session did not end after its input did")
		}
		if strings.Contains(logs.String(), "panic in SMTP session") {
			t.Fatalf("the session panicked:\n%s", logs.String())
		}
		told := map[string]bool{}
		for line := range strings.Lines(conn.out.String()) {
			if id, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "250 2.0.0 OK queued as "); ok {
				told[id] = true
			}
		}
		spool.mu.Lock()
		defer spool.mu.Unlock()
		for id := range spool.records {
			if !told[id] {
				t.Errorf("record %s committed without a 250", id)
			}
		}
		for id := range told {
			if _, ok := spool.records[id]; !ok {
				t.Errorf("250 for %s without a record", id)
			}
		}
		if spool.reserved != spool.released {
			t.Errorf("%d reservations, %d released", spool.reserved, spool.released)
		}
		if n := srv.inflightCount(); n != 0 {
			t.Errorf("%d transactions still counted in flight", n)
		}
	})
}
