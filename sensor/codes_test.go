package sensor

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

func TestSMTPReplyTable(t *testing.T) {
	tooBig := &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Maximum message size exceeded"}
	secret := errors.New("open /var/spool/x: input/output error")
	for _, tc := range []struct {
		o    Outcome
		want string // code, enhanced code and text
	}{
		{Outcome{Kind: Accepted, ID: "01ID", Ref: "01ID"}, "250 2.0.0 OK queued as 01ID"},
		{Outcome{Kind: SpoolFull, ID: "01ID", Ref: "01ID"}, "452 4.3.1 Insufficient storage; try again later (ref 01ID)"},
		{Outcome{Kind: Incomplete, ID: "01ID", Ref: "01ID", Err: secret}, "451 4.4.2 Message not received completely; try again (ref 01ID)"},
		{Outcome{Kind: ShuttingDown, Ref: "01CONN"}, "421 4.3.2 Shutting down; try again later (ref 01CONN)"},
		{Outcome{Kind: SpoolFull, Ref: "01CONN"}, "452 4.3.1 Insufficient storage; try again later (ref 01CONN)"},
		{Outcome{Kind: LocalFault, ID: "01ID", Ref: "01ID", Err: secret}, "451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		{Outcome{Kind: Refused, ID: "01ID", Ref: "01ID", Err: &RefusedError{Err: tooBig}}, "552 5.3.4 Maximum message size exceeded"},
		// What the sender cannot be told to fix is ours: a generic 451, never the error's text.
		{Outcome{Kind: Refused, Ref: "01ID", Err: &RefusedError{Err: secret}}, "451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		{Outcome{Kind: Refused, Ref: "01ID", Err: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "x"}},
			"451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		{Outcome{Kind: OutcomeKind(99), Ref: "01ID", Err: secret}, "451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		// A copy whose origin is not proven is the sender's to fix, and the ref leads its
		// administrator to our log line.
		{Outcome{Kind: Untrusted, ID: "01ID", Ref: "01ID", Reason: "names no Microsoft 365 tenant", Err: secret},
			"550 5.7.1 Origin not proven: names no Microsoft 365 tenant (ref 01ID)"},
	} {
		r := smtpReply(tc.o, nil)
		e := r.EnhancedCode
		got := fmt.Sprintf("%d %d.%d.%d %s", r.Code, e[0], e[1], e[2], r.Message)
		if got != tc.want {
			t.Errorf("%v: %q, want %q", tc.o.Kind, got, tc.want)
		}
		if strings.Contains(r.Message, "input/output") {
			t.Errorf("%v: the reply leaks the internal error: %q", tc.o.Kind, r.Message)
		}
		if r.Code/100 == 5 && tc.o.Kind != Refused && tc.o.Kind != Untrusted {
			t.Errorf("%v: a 5xx for a local condition", tc.o.Kind)
		}
	}
	if r := smtpReply(Outcome{Kind: Refused, Ref: "01ID", Err: &RefusedError{Err: tooBig}}, nil); r != tooBig || r.Message != "Maximum message size exceeded" {
		t.Errorf("the SMTP layer's own refusal is not passed through unchanged: %+v", r)
	}
	// Each reply is fresh: naming one ref must not change the next reply.
	smtpReply(Outcome{Kind: SpoolFull, Ref: "A"}, nil)
	if r := smtpReply(Outcome{Kind: SpoolFull, Ref: "B"}, nil); r.Message != "Insufficient storage; try again later (ref B)" {
		t.Errorf("second reply %q", r.Message)
	}
}

var refRE = regexp.MustCompile(`\(ref ([0-9A-Z]{26})\)$`)

// refLogged returns the ref a 4xx reply names, and checks that a log line names it too and
// says why.
func refLogged(t *testing.T, ts *testServer, reply, why string) string {
	t.Helper()
	m := refRE.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("4xx reply %q names no ref", reply)
	}
	for line := range strings.Lines(ts.log.String()) {
		if strings.Contains(line, m[1]) && strings.Contains(line, why) {
			return m[1]
		}
	}
	t.Fatalf("no log line names ref %s and says %q:\n%s", m[1], why, ts.log.String())
	return ""
}

// Every 4xx the sensor decides names a ref that an operator finds in the log: the record id
// once a message was read, the connection id before that.
func TestEvery4xxNamesARefInTheLog(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.cmd("EHLO client.test", "250")

	ts.spool.mu.Lock()
	ts.spool.full = true
	ts.spool.mu.Unlock()
	connRef := refLogged(t, ts, c.cmd("MAIL FROM:<a@example.org> SIZE=1000", "452 4.3.1 Insufficient storage; try again later (ref "),
		"spool budget reached")
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	recRef := refLogged(t, ts, c.expect("452 4.3.1 Insufficient storage; try again later (ref "), "spool budget reached")
	if !strings.Contains(ts.log.String(), "id="+recRef) || recRef == connRef {
		t.Errorf("452 after the body names %s, which is not the record id in the log", recRef)
	}
	ts.spool.mu.Lock()
	ts.spool.full, ts.spool.fail = false, errors.New("fsync: input/output error")
	ts.spool.mu.Unlock()
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	refLogged(t, ts, c.expect("451 4.3.0 Local error, message not accepted; try again later (ref "), "spool commit failed")

	// A sender that stalls mid-DATA past the idle timeout is told so before the connection
	// closes.
	slow := startServer(t, SMTPConfig{IdleTimeout: 300 * time.Millisecond})
	stalled := dial(t, slow.addr)
	stalled.envelope()
	stalled.cmd("DATA", "354")
	stalled.send(simpleMessage[:20])
	refLogged(t, slow, stalled.expect("451 4.4.2 Message not received completely; try again (ref "), "not received whole")

	ts.srv.draining.Store(true)
	refLogged(t, ts, c.cmd("MAIL FROM:<a@example.org>", "421 4.3.2 Shutting down; try again later (ref "), "MAIL refused")
	late, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	late.SetDeadline(time.Now().Add(5 * time.Second))
	greeting, err := bufio.NewReader(late).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	greeting = strings.TrimRight(greeting, "\r\n")
	if !strings.HasPrefix(greeting, "421 4.3.2 sensor.test Shutting down; try again later (ref ") {
		t.Errorf("greeting while draining %q", greeting)
	}
	refLogged(t, ts, greeting, "connection refused")
}
