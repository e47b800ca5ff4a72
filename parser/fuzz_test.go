package parser

import (
	"bytes"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// FuzzParse: any input gives one record and no error, and the parser never needs its panic
// recovery (a recovered panic is a bug the fuzzer should report).
func FuzzParse(f *testing.F) {
	f.Add([]byte(crlf(journalReport)))
	f.Add([]byte(mixedMessage([]byte("%PDF-1.4"))))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\nContent-Transfer-Encoding: base64\r\n\r\nLS1iDQpDb250ZW50LVR5cGU6IHRleHQvcGxhaW4NCg0KeA0KLS1iLS0NCg==\r\n"))
	f.Add([]byte("Content-Type: message/partial; number=1\r\n\r\nContent-Type: text/html\r\n\r\n<a href=x>"))
	f.Add([]byte("Content-Identifier: ExJournalReport\n\nRecipients: a@b, c@d\n"))
	f.Add([]byte("Authentication-Results: x; spf=pass (a(b)c) smtp.mailfrom=\"q;\"\r\n\r\n"))
	p, err := New(Options{MaxParts: 300, MaxDepth: 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := p.Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		for _, a := range rec.Anomalies {
			if a.Code == "parser_panic" {
				t.Fatalf("parser panicked")
			}
		}
		if rec.Message.Size != int64(len(data)) && rec.Source.Kind != api.SourceExchangeJournal &&
			rec.Source.Kind != api.SourceExchange2003Journal {
			t.Fatalf("message.size %d for %d bytes", rec.Message.Size, len(data))
		}
	})
}

// FuzzJournalSummary: any summary text is read without error, within the recipient cap,
// and every recipient has an address and one of the four types.
func FuzzJournalSummary(f *testing.F) {
	f.Add("Sender: a@b.example\nSubject: =?UTF-8?B?w6k=?=\nMessage-Id: <x@y>\nTo: c@d, Expanded: g@d\nBcc: e@f, Forwarded: h@f\n")
	f.Add("Recipients: a@b, <c@d>, , e@f\r\nOn-Behalf-Of: x@y\r\n")
	f.Add("Recipient: \nTo:,,,\nCc: :\n")
	f.Fuzz(func(t *testing.T, s string) {
		var j api.Journal
		if err := readJournalSummary(strings.NewReader(s), &j, 5, func(string) {}); err != nil {
			t.Fatal(err)
		}
		if len(j.Recipients) > 5 {
			t.Fatalf("%d recipients beyond the cap of 5", len(j.Recipients))
		}
		for _, r := range j.Recipients {
			switch r.Type {
			case api.RecipientTo, api.RecipientCc, api.RecipientBcc, api.RecipientRecipient:
			default:
				t.Fatalf("recipient type %q", r.Type)
			}
			if r.Address == "" {
				t.Fatalf("recipient without an address: %+v", r)
			}
		}
	})
}
