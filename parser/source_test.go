package parser

import (
	"encoding/base64"
	"mime/quotedprintable"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

func TestSourceKinds(t *testing.T) {
	cases := []struct {
		name, header  string
		kind, gateway string
	}{
		{"plain", "From: a@example.com\n", api.SourceDirect, ""},
		{"google routing copy", "X-Gm-Original-To: user@corp.example\nFrom: a@example.com\n", api.SourceGoogleCopy, ""},
		{"gmail inbound verdict", "X-Gm-Spam: 0\nX-Gm-Phishy: 0\n", api.SourceGoogleCopy, ""},
		// Sent by a Gmail user, not received by Google: not a Google copy.
		{"gmail sender", "X-Google-Smtp-Source: AGHT+IE\nX-Gm-Message-State: AOJu0Y\n", api.SourceDirect, ""},
		{"cisco", "X-IronPort-AV: E=Sophos;i=\"6.0\"\n", api.SourceGatewayCopy, "cisco"},
		{"cisco ipas", "X-IPAS-Result: A0C0kgB\n", api.SourceGatewayCopy, "cisco"},
		{"proofpoint", "X-Proofpoint-Spam-Details: rule=notspam\n", api.SourceGatewayCopy, "proofpoint"},
		{"mimecast", "X-MC-Unique: 1RMELhQ6PISbfzgFDBhzkg-1\n", api.SourceGatewayCopy, "mimecast"},
		// A Google copy of mail that passed a gateway first: Google sent it to us.
		{"google after gateway", "X-Gm-Original-To: u@corp.example\nX-MC-Unique: x\n", api.SourceGoogleCopy, "mimecast"},
	}
	for _, c := range cases {
		rec := parseString(t, Options{}, crlf(c.header+"Subject: s\n\nbody\n"))
		if rec.Source.Kind != c.kind || rec.Source.Gateway != c.gateway {
			t.Errorf("%s: source %+v, want kind %s gateway %q", c.name, rec.Source, c.kind, c.gateway)
		}
	}
}

// An Exchange 2003 envelope report: marked by Content-Identifier, recipients on one line.
func TestExchange2003Journal(t *testing.T) {
	msg := crlf(`Content-Identifier: ExJournalReport
From: journal@corp.example
Content-Type: multipart/mixed; boundary=J

--J
Content-Type: text/plain

Sender: alice@corp.example
Subject: Q3 numbers
Message-ID: <q3@corp.example>
Recipients: bob@corp.example, <carol@corp.example>, dl-all@corp.example
--J
Content-Type: message/rfc822

From: alice@corp.example
Message-ID: <q3@corp.example>
Subject: Q3 numbers

see https://share.example/q3
--J--
`)
	rec := parseString(t, Options{}, msg)
	if rec.Source.Kind != api.SourceExchange2003Journal {
		t.Errorf("source = %+v", rec.Source)
	}
	var got []string
	for _, r := range rec.Journal.Recipients {
		got = append(got, r.Type+":"+r.Address)
	}
	want := "recipient:bob@corp.example recipient:carol@corp.example recipient:dl-all@corp.example"
	if strings.Join(got, " ") != want {
		t.Errorf("recipients = %v, want %s", got, want)
	}
	if rec.Message.MessageID != "<q3@corp.example>" || rec.Journal.MessageID != "<q3@corp.example>" {
		t.Errorf("message id: message %q journal %q", rec.Message.MessageID, rec.Journal.MessageID)
	}
}

// The summary's subject arrives 8-bit, quoted-printable or RFC 2047 encoded.
func TestJournalSubjectEncodings(t *testing.T) {
	var qp strings.Builder
	w := quotedprintable.NewWriter(&qp)
	w.Write([]byte("Sender: a@corp.example\nSubject: Caf\xe9 m\xe9nu\nTo: b@corp.example\n"))
	w.Close()
	cases := []struct{ name, part, want string }{
		{"quoted-printable latin-1",
			"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n" + qp.String(),
			"Café ménu"},
		{"8-bit utf-8",
			"Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nSubject: Grüße aus Köln\n",
			"Grüße aus Köln"},
		{"8-bit without charset", // not UTF-8: read as Windows-1252
			"Content-Type: text/plain\n\nSubject: \x93Urgent\x94 \xe9t\xe9\n",
			"“Urgent” été"},
		{"rfc 2047",
			"Content-Type: text/plain\n\nSubject: =?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte("Счёт №42")) + "?=\n",
			"Счёт №42"},
	}
	for _, c := range cases {
		msg := crlf("X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=J\n\n--J\n" + c.part +
			"\n--J\nContent-Type: message/rfc822\n\nSubject: x\n\nx\n--J--\n")
		rec := parseString(t, Options{}, msg)
		if rec.Journal == nil || rec.Journal.Subject != c.want {
			t.Errorf("%s: journal %+v, want subject %q", c.name, rec.Journal, c.want)
		}
	}
}

// With journal report decryption on, Exchange attaches a clear copy of a rights-protected
// original after the original. Its parts are listed, and the record says where it is.
func TestJournalDecryptedCopy(t *testing.T) {
	msg := crlf(`X-MS-Journal-Report:
Content-Type: multipart/mixed; boundary=J

--J
Content-Type: text/plain

Sender: a@corp.example
To: b@corp.example
--J
Content-Type: message/rfc822

From: a@corp.example
Subject: protected
Content-Type: multipart/mixed; boundary=P

--P
Content-Type: application/x-microsoft-rpmsg-message; name=message.rpmsg

opaque
--P--
--J
Content-Type: message/rfc822

From: a@corp.example
Subject: protected
Content-Type: multipart/mixed; boundary=C

--C
Content-Type: text/html

<a href="https://payload.example/dropper">open</a>
--C
Content-Type: application/pdf; name=plan.pdf

%PDF-1.7
--C--
--J--
`)
	rec := parseString(t, Options{}, msg)
	if rec.Journal.DecryptedCopy != "3" {
		t.Errorf("decrypted_copy = %q, want 3", rec.Journal.DecryptedCopy)
	}
	if rec.Message.Subject != "protected" || !strings.Contains(rec.Message.Structure, "application/x-microsoft-rpmsg-message") {
		t.Errorf("the scored message must be the original: %+v", rec.Message.Structure)
	}
	a := attachmentAt(t, rec, "3.2")
	if a.Filename != "plan.pdf" || a.Container == nil || a.Container.Path != "3" {
		t.Errorf("decrypted attachment = %+v", a)
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://payload.example/dropper" || rec.URLs[0].Sources[0] != api.URLSourceHTML {
		t.Errorf("urls = %+v, want the decrypted copy's link as html", rec.URLs)
	}
}
