package parser

import (
	"encoding/base64"
	"strings"
	"testing"
)

// One message with a part of each kind read for links: each link is recorded with the kind
// of the part it came from; the parts that were always listed as attachments still are.
func TestTextPartKindsNameTheirLinks(t *testing.T) {
	ics := "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nORGANIZER;CN=Boss:mailto:boss@cal.example\r\n" +
		"URL:https://event.example/e\r\nATTACH;VALUE=BINARY;ENCODING=BASE64:aHR0cDovL2JpbmFyeS5leGFtcGxlLw==\r\n" +
		"DESCRIPTION:Join https://meet.exa\r\n mple/j\\,1 now\\nhttp://desc.example/d\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	msg := crlf(`From: a@corp.example
To: b@corp.example
Subject: parts
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain

See http://plain.example/p
--mix
Content-Type: text/css

@import "http://import.example/s.css";
/* http://comment.example/c */
body { background: url('http://css.example/bg.png') }
--mix
Content-Type: text/calendar; method=REQUEST; charset=utf-8
Content-Transfer-Encoding: base64

`) + base64.StdEncoding.EncodeToString([]byte(ics)) + crlf(`
--mix
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.corp.example
Diagnostic-Code: smtp; 550 5.7.1 blocked, see https://postmaster.example/why
--mix
Content-Type: text/rfc822-headers

List-Unsubscribe: <https://unsub.example/u>
--mix
Content-Type: text/calendar
Content-Disposition: attachment; filename=invite.ics

URL:http://attached.example/a
--mix--
`)
	for _, mode := range []AttachmentMode{AttachmentsMetadata, AttachmentsOff} {
		rec := parseString(t, Options{Attachments: mode}, msg)
		var got []string
		for _, u := range rec.URLs {
			got = append(got, u.URL+" "+strings.Join(u.Sources, "+"))
		}
		want := []string{
			"http://plain.example/p text",
			"http://import.example/s.css css",
			"http://comment.example/c css",
			"http://css.example/bg.png css",
			"mailto:boss@cal.example calendar",
			"https://event.example/e calendar",
			"https://meet.example/j,1 calendar",
			"http://desc.example/d calendar",
			"https://postmaster.example/why delivery-status",
			"https://unsub.example/u rfc822-headers",
			// A named part is an attachment, whatever its kind, as a named text/plain is.
			"http://attached.example/a attachment",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: urls:\n%s\nwant:\n%s", mode, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		var types []string
		for _, a := range rec.Attachments {
			types = append(types, a.Path+" "+a.ContentType)
		}
		wantTypes := []string{"2 text/css", "3 text/calendar", "4 message/delivery-status", "5 text/rfc822-headers", "6 text/calendar"}
		if mode == AttachmentsOff {
			wantTypes = nil
		}
		if strings.Join(types, ",") != strings.Join(wantTypes, ",") {
			t.Errorf("%s: attachments %q, want %q", mode, types, wantTypes)
		}
		if err := validateRecord(t, rec); err != nil {
			t.Errorf("%s: record does not validate: %v", mode, err)
		}
	}
}

// The links of an attached message's parts are the message's links, named by part kind as
// its text and HTML are.
func TestNestedMessageTextPartKinds(t *testing.T) {
	msg := crlf(`From: a@corp.example
To: b@corp.example
Subject: bounce
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="out"

--out
Content-Type: message/rfc822

From: c@corp.example
Subject: inner
Content-Type: text/calendar

URL:http://inner.example/i
--out--
`)
	rec := parseString(t, Options{}, msg)
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "http://inner.example/i" || strings.Join(rec.URLs[0].Sources, "+") != "calendar" {
		t.Errorf("urls %+v", rec.URLs)
	}
}

// TestUTF16PartByteOrder: a text/html part labelled utf-16 but written big-endian with a byte
// order mark was decoded little-endian and its links lost, while clients that follow the
// WHATWG decode algorithm (the mark wins over the label) showed them. Without a mark, an
// explicit label's order holds, and the bare "utf-16" label is read in both orders (WHATWG
// says little-endian, RFC 2781 and Rspamd big-endian): a guess from the text would be the
// sender's to steer.
func TestUTF16PartByteOrder(t *testing.T) {
	be := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r>>8), byte(r))
		}
		return b
	}
	le := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r), byte(r>>8))
		}
		return b
	}
	part := func(label string, body []byte) string {
		return "--b\nContent-Type: text/html; charset=" + label + "\nContent-Transfer-Encoding: base64\n\n" +
			base64.StdEncoding.EncodeToString(body) + "\n"
	}
	msg := crlf("MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=b\n\n" +
		part("utf-16", append([]byte{0xFE, 0xFF}, be(`<a href="https://marked.example/">x</a>`)...)) +
		part("utf-16be", be(`<a href="https://unmarked.example/">x</a>`)) +
		part("utf-16le", append([]byte{0xFE, 0xFF}, be(`<a href="https://mislabelled.example/">x</a>`)...)) +
		part("utf-16", be(`<a href="https://bare-be.example/">x</a>`)) +
		part("utf-16", le(`<a href="https://bare-le.example/">x</a>`)) +
		part("utf-16le", be(`<a href="https://explicit-le.example/">x</a>`)) +
		"--b--\n")
	rec := parseString(t, Options{}, msg)
	var got []string
	for _, u := range rec.URLs {
		got = append(got, u.URL)
	}
	// The explicit utf-16le label holds big-endian bytes: read as labelled, they are noise.
	want := []string{"https://marked.example/", "https://unmarked.example/", "https://mislabelled.example/",
		"https://bare-be.example/", "https://bare-le.example/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("urls %q, want %q", got, want)
	}
}

// TestHTMLFileOfAnyTypeIsScanned: an attachment named .html (or .svg) but declared
// application/octet-stream was hashed and never read for links, though the recipient's
// desktop opens it in a browser, links and all.
func TestHTMLFileOfAnyTypeIsScanned(t *testing.T) {
	part := func(ctype, name, body string) string {
		return "--b\nContent-Type: " + ctype + "\nContent-Disposition: attachment; filename=\"" + name +
			"\"\nContent-Transfer-Encoding: base64\n\n" + base64.StdEncoding.EncodeToString([]byte(body)) + "\n"
	}
	msg := crlf("MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n" +
		part("application/octet-stream", "Statement.HTML", `<form action="https://phish.example/login"></form>`) +
		part("application/octet-stream", "logo.svg", `<svg><a xlink:href="https://svg.example/x"><text>x</text></a></svg>`) +
		part("application/octet-stream", "data.bin", `<a href="https://not-opened.example/">x</a>`) +
		"--b--\n")
	for _, mode := range []AttachmentMode{AttachmentsMetadata, AttachmentsOff} {
		rec := parseString(t, Options{Attachments: mode}, msg)
		var got []string
		for _, u := range rec.URLs {
			got = append(got, u.URL+" "+strings.Join(u.Sources, "+"))
		}
		// Links count without attachments listed, as a named text part's do.
		want := "https://phish.example/login attachment\nhttps://svg.example/x attachment"
		if strings.Join(got, "\n") != want {
			t.Errorf("%s: urls\n%s\nwant\n%s", mode, strings.Join(got, "\n"), want)
		}
	}
}
