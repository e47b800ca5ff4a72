package parser

import (
	"bytes"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// bodyURL rides in the body next to the secret sentence: finding it among the record's URLs
// shows the line was read as body, not dropped.
const bodyURL = "https://body.example/after-the-header"

// headerEndCases are the places a header can end without a proper blank line: the top-level
// message, a MIME part, and a message/rfc822 inside the message. Each places sep and then
// body right after the header whose end is under test.
var headerEndCases = []struct {
	name string
	msg  func(sep, body string) string
}{
	{"top-level message", func(sep, body string) string {
		return crlf("From: a@example.com\nTo: b@example.com\nSubject: hello\n" + sep + body + "\n")
	}},
	{"MIME part", func(sep, body string) string {
		// The part is an attachment, so its Content-ID is in the record.
		return crlf("From: a@example.com\nSubject: hello\nContent-Type: multipart/mixed; boundary=b\n\n" +
			"--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=notes.txt\n" +
			"Content-ID: <notes@example.com>\n" + sep + body + "\n--b--\n")
	}},
	{"nested message/rfc822", func(sep, body string) string {
		return crlf("From: a@example.com\nSubject: fwd\nContent-Type: message/rfc822\n\n" +
			"From: inner@example.com\nSubject: inner\n" + sep + body + "\n")
	}},
	{"original of a journal report", func(sep, body string) string {
		// The original's header is the record's message.headers.
		return crlf("X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=JR\n\n" +
			"--JR\nContent-Type: text/plain\n\nSender: a@example.com\nTo: b@example.com\n" +
			"--JR\nContent-Type: message/rfc822\n\nFrom: a@example.com\nTo: b@example.com\nSubject: minutes\n" +
			sep + body + "\n--JR--\n")
	}},
	{"message/rfc822 in a part", func(sep, body string) string {
		return crlf("From: a@example.com\nSubject: fwd\nContent-Type: multipart/mixed; boundary=b\n\n" +
			"--b\nContent-Type: message/rfc822\n\nFrom: inner@example.com\nSubject: inner\n" + sep + body + "\n--b--\n")
	}},
}

// checkBodyStaysOut parses msg and fails if any word of the secret sentence is in the record,
// if the body's link was not found, or if the anomaly code is missing.
func checkBodyStaysOut(t *testing.T, msg, code string) {
	t.Helper()
	rec := parseString(t, Options{}, msg)
	line, err := api.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{secret, "falcon", "old mill"} {
		if bytes.Contains(line, []byte(frag)) {
			t.Fatalf("record contains body text %q:\n%s", frag, line)
		}
	}
	found := false
	for _, u := range rec.URLs {
		found = found || u.URL == bodyURL
	}
	if !found {
		t.Errorf("the body's link %s was not found; urls %+v", bodyURL, rec.URLs)
	}
	if !hasAnomaly(rec, code) {
		t.Errorf("no %s anomaly: %+v", code, rec.Anomalies)
	}
}

func TestBodyAfterMissingSeparatorStaysOutOfHeaders(t *testing.T) {
	for _, c := range headerEndCases {
		for _, body := range []string{
			secret + " " + bodyURL,
			secret + ", see " + bodyURL, // still no field: a field name holds no space
			"Dear Bob, " + secret + ".\n" + bodyURL,
			"Hello Bob: " + secret + " " + bodyURL, // a colon, but no valid field name before it
		} {
			t.Run(c.name, func(t *testing.T) {
				checkBodyStaysOut(t, c.msg("", body), "missing_separator")
			})
		}
	}
}

func TestWhitespaceOnlySeparatorEndsHeader(t *testing.T) {
	for _, c := range headerEndCases {
		for sepName, sep := range map[string]string{"space": " \n", "tab": "\t\n", "mixed": " \t  \n"} {
			// The first body line looks like a field; the whitespace line before it ends the
			// header all the same.
			for _, body := range []string{
				secret + "\n" + bodyURL,
				"Note: " + secret + "\n" + bodyURL,
				"\t" + secret + " " + bodyURL,
			} {
				t.Run(c.name+"/"+sepName, func(t *testing.T) {
					checkBodyStaysOut(t, c.msg(sep, body), "whitespace_separator")
				})
			}
		}
	}
}
