package sensor

import (
	"errors"
	"fmt"
	"strings"
	"testing"

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
		{Outcome{Kind: SpoolFull, ID: "01ID", Ref: "01ID"}, "452 4.3.1 Insufficient storage; try again later"},
		{Outcome{Kind: Incomplete, ID: "01ID", Ref: "01ID", Err: secret}, "451 4.4.2 Message not received completely; try again"},
		{Outcome{Kind: ShuttingDown, Ref: "conn"}, "421 4.3.2 Shutting down; try again later"},
		{Outcome{Kind: LocalFault, ID: "01ID", Ref: "01ID", Err: secret}, "451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		{Outcome{Kind: Refused, ID: "01ID", Ref: "01ID", Err: &RefusedError{Err: tooBig}}, "552 5.3.4 Maximum message size exceeded"},
		// What the sender cannot be told to fix is ours: a generic 451, never the error's text.
		{Outcome{Kind: Refused, Ref: "01ID", Err: &RefusedError{Err: secret}}, "451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		{Outcome{Kind: Refused, Ref: "01ID", Err: &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 0, 0}, Message: "x"}},
			"451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
		{Outcome{Kind: OutcomeKind(99), Ref: "01ID", Err: secret}, "451 4.3.0 Local error, message not accepted; try again later (ref 01ID)"},
	} {
		r := smtpReply(tc.o)
		e := r.EnhancedCode
		got := fmt.Sprintf("%d %d.%d.%d %s", r.Code, e[0], e[1], e[2], r.Message)
		if got != tc.want {
			t.Errorf("%v: %q, want %q", tc.o.Kind, got, tc.want)
		}
		if strings.Contains(r.Message, "input/output") {
			t.Errorf("%v: the reply leaks the internal error: %q", tc.o.Kind, r.Message)
		}
		if r.Code/100 == 5 && tc.o.Kind != Refused {
			t.Errorf("%v: a 5xx for a local condition", tc.o.Kind)
		}
	}
	if r := smtpReply(Outcome{Kind: Refused, Err: &RefusedError{Err: tooBig}}); r != tooBig {
		t.Errorf("the SMTP layer's own refusal is not passed through unchanged: %+v", r)
	}
}
