package parser

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"

	"github.com/journalsensor/sensor/api"
)

// isExchangeJournal reports whether a top-level header marks an Exchange (2007 and later,
// including Exchange Online) journal report. The header's value is empty; only its presence
// counts. X-MS-Exchange-Organization-Journal-Report is the same marker as it appears inside
// an Exchange organisation, before the public name is stamped.
func isExchangeJournal(has func(string) bool) bool {
	return has("X-MS-Journal-Report") || has("X-MS-Exchange-Organization-Journal-Report")
}

// readJournalSummary reads the envelope summary of a journal report (the first text/plain
// part) line by line into j. Lines longer than the buffer are skipped whole, which keeps
// memory bounded; the buffer is large enough for an Exchange 2003 Recipients: line of a few
// thousand addresses. It returns only read errors.
func readJournalSummary(r io.Reader, j *api.Journal, maxRecipients int, limit func(string)) error {
	br := bufio.NewReaderSize(r, 256<<10)
	skipping := false
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
			continue
		case skipping:
			skipping = false
		default:
			if len(j.Recipients) < maxRecipients {
				parseJournalLine(string(bytes.TrimRight(line, "\r\n")), j)
			} else if len(line) > 0 {
				limit(limitJournalRecipients)
			}
			if len(j.Recipients) > maxRecipients { // one Exchange 2003 line can hold many
				j.Recipients = j.Recipients[:maxRecipients]
				limit(limitJournalRecipients)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// parseJournalLine applies one summary line. The grammar (Exchange 2007 and later):
//
//	Sender: addr
//	Subject: text
//	Message-Id: <id>
//	On-Behalf-Of: addr
//	To|Cc|Bcc|Recipient: addr[, Expanded: group][, Forwarded: addr]
//
// Exchange 2003 envelope journaling lists the recipients on one line instead:
//
//	Recipients: addr, addr, ...
//
// Keywords are matched without regard to case. Unknown lines are ignored: later Exchange
// versions add lines, and they are not evidence we score.
func parseJournalLine(line string, j *api.Journal) {
	key, val, ok := strings.Cut(line, ":")
	if !ok {
		return
	}
	key = strings.ToLower(strings.TrimSpace(key))
	val = strings.TrimSpace(val)
	switch key {
	case "sender":
		j.Sender = bareAddress(val)
	case "subject":
		j.Subject, _ = decodeHeaderValue(val)
	case "message-id":
		j.MessageID = val
	case "on-behalf-of":
		j.OnBehalfOf = bareAddress(val)
	case "recipients":
		// Exchange 2003: one line listing every envelope recipient.
		for _, a := range strings.Split(val, ",") {
			if a = bareAddress(a); a != "" {
				j.Recipients = append(j.Recipients, api.JournalRecipient{Address: a, Type: api.RecipientRecipient})
			}
		}
	case "to", "cc", "bcc", "recipient":
		rcpt := api.JournalRecipient{Type: key}
		fields := strings.Split(val, ",")
		rcpt.Address = bareAddress(fields[0])
		for _, f := range fields[1:] {
			k, v, _ := strings.Cut(f, ":")
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "expanded":
				rcpt.ExpandedFrom = bareAddress(v)
			case "forwarded":
				rcpt.ForwardedFrom = bareAddress(v)
			}
		}
		if rcpt.Address != "" {
			j.Recipients = append(j.Recipients, rcpt)
		}
	}
}

// bareAddress strips the angle brackets and whitespace some Exchange versions put around
// summary addresses.
func bareAddress(s string) string {
	return strings.TrimSpace(strings.Trim(strings.TrimSpace(s), "<>"))
}
