package sensor

import (
	"errors"

	"github.com/emersion/go-smtp"
)

// SMTP reply codes the sensor decides, RFC 5321 §4.2.2 and §4.2.3. The session
// (smtpconn.go) sends others itself (greeting, EHLO, RCPT, syntax errors, SIZE at MAIL, the
// idle timeout).
const (
	// c250Completed: "Requested mail action okay, completed". The record is durable.
	c250Completed = 250
	// c421ServiceUnavail: "Service not available, closing transmission channel". We are
	// shutting down; the sender retries later, against this sensor's replacement.
	c421ServiceUnavail = 421
	// c451LocalError: "Requested action aborted: local error in processing".
	c451LocalError = 451
	// c452InsufficientStorage: "Requested action not taken: insufficient system storage";
	// RFC 1870 names it for a SIZE that does not fit for now.
	c452InsufficientStorage = 452
	// c550NotTaken: "Requested action not taken: mailbox unavailable", which §3.8 and
	// §4.2.2 also give to a refusal for policy reasons: a copy whose origin is not proven.
	c550NotTaken = 550
	// c552ExceededStorage: "Requested mail action aborted: exceeded storage allocation";
	// RFC 1870 names it for a message over the SIZE limit. The session decides it
	// (errTooBig); a Refused outcome passes it through.
	c552ExceededStorage = 552
)

// decidedCodes are the codes smtpReply answers with, exposed at 0 before the first one so
// that a rate can be taken from the start.
var decidedCodes = []int{c250Completed, c421ServiceUnavail, c451LocalError, c452InsufficientStorage, c550NotTaken, c552ExceededStorage}

// Enhanced status codes, RFC 3463 §3.
var (
	// se200Other: X.0.0 "Other undefined status" (§3.1).
	se200Other = smtp.EnhancedCode{2, 0, 0}
	// se430OtherSystem: X.3.0 "Other or undefined mail system status" (§3.4).
	se430OtherSystem = smtp.EnhancedCode{4, 3, 0}
	// se431SystemFull: X.3.1 "Mail system full" (§3.4).
	se431SystemFull = smtp.EnhancedCode{4, 3, 1}
	// se432NotAccepting: X.3.2 "System not accepting network messages" (§3.4).
	se432NotAccepting = smtp.EnhancedCode{4, 3, 2}
	// se442BadConnection: X.4.2 "Bad connection" (§3.5).
	se442BadConnection = smtp.EnhancedCode{4, 4, 2}
	// se571NotAuthorized: X.7.1 "Delivery not authorized, message refused" (§3.8): the
	// sender is not allowed to send this message here.
	se571NotAuthorized = smtp.EnhancedCode{5, 7, 1}
)

// smtpReply is the SMTP reply to an outcome, and the only place one is decided:
//
//	Accepted      250 2.0.0 OK queued as <id>
//	SpoolFull     452 4.3.1 Insufficient storage; try again later (ref <ref>)
//	Incomplete    451 4.4.2 Message not received completely; try again (ref <ref>)
//	ShuttingDown  421 4.3.2 Shutting down; try again later (ref <ref>)
//	Refused       the door's own 5xx (552 5.3.4 for an oversized message)
//	Untrusted     550 5.7.1 Origin not proven: <Outcome.Reason> (ref <ref>)
//	LocalFault    451 4.3.0 Local error, message not accepted; try again later (ref <ref>)
//	anything else as LocalFault: never an error's text, never a 5xx
//
// Every 4xx names Outcome.Ref, so that the sender's log (or the bounce it sends after
// retrying for days) can be matched to the line of ours that says why: the record id once a
// message was read (the id=... of Receive's log line), else the connection id (conn=..., as
// for 452 at MAIL or 421 while draining). The 250 names the record id as Postfix names its
// queue id. A 5xx is the sender's to fix and names nothing, but for Untrusted: a journal
// rule's bounce of a copy refused for its origin goes to an administrator, who needs the ref
// to find which proof failed in our log.
//
// Local trouble is always a 4xx: Google does not retry a 5xx, and Exchange Online disables a
// journal rule whose destination keeps failing. The reply is go-smtp's SMTPError type, kept
// from when its server ran the sessions.
//
// Accepted at MAIL (room reserved) is the session's own 250, not this one.
//
// Each reply is counted in m by its code (sensor_smtp_replies_total), here and nowhere
// else; m may be nil for a reply that will not be sent.
func smtpReply(o Outcome, m *Metrics) *smtp.SMTPError {
	r := decide(o)
	if (r.Code/100 == 4 || o.Kind == Untrusted) && o.Ref != "" {
		r.Message += " (ref " + o.Ref + ")"
	}
	if m != nil {
		m.countReply(r.Code)
	}
	return r
}

// decide is smtpReply without the ref. Each call returns a fresh reply, but for the SMTP
// layer's own 5xx, which passes through as it is.
func decide(o Outcome) *smtp.SMTPError {
	switch o.Kind {
	case Accepted:
		return &smtp.SMTPError{Code: c250Completed, EnhancedCode: se200Other, Message: "OK queued as " + o.ID}
	case SpoolFull:
		// Temporary: the sender keeps the message and retries while uploads drain the spool.
		return &smtp.SMTPError{Code: c452InsufficientStorage, EnhancedCode: se431SystemFull,
			Message: "Insufficient storage; try again later"}
	case Incomplete:
		return &smtp.SMTPError{Code: c451LocalError, EnhancedCode: se442BadConnection,
			Message: "Message not received completely; try again"}
	case ShuttingDown:
		return &smtp.SMTPError{Code: c421ServiceUnavail, EnhancedCode: se432NotAccepting,
			Message: "Shutting down; try again later"}
	case Untrusted:
		// What the sender must fix: its configuration (the journal rule's route, the
		// header a gateway adds), or the copy is not from the customer's own platform.
		msg := "Origin not proven"
		if o.Reason != "" {
			msg += ": " + o.Reason
		}
		return &smtp.SMTPError{Code: c550NotTaken, EnhancedCode: se571NotAuthorized, Message: msg}
	case Refused:
		// The SMTP layer's own refusal, for what the sender must fix, passes through.
		var se *smtp.SMTPError
		if errors.As(o.Err, &se) && se.Code/100 == 5 {
			return se
		}
	}
	return &smtp.SMTPError{Code: c451LocalError, EnhancedCode: se430OtherSystem,
		Message: "Local error, message not accepted; try again later"}
}
