package parser

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func attachmentAt(t *testing.T, rec *api.Record, path string) api.Attachment {
	t.Helper()
	for _, a := range rec.Attachments {
		if a.Path == path {
			return a
		}
	}
	t.Fatalf("no attachment at path %q; have %s", path, listAttachments(rec))
	return api.Attachment{}
}

// A base64-encoded multipart (forbidden by RFC 2045, sent by some webmail) is decoded and
// walked: its parts get the paths they would have had unencoded.
func TestEncodedMultipartIsWalked(t *testing.T) {
	payload := []byte("%PDF-1.4 pretend pdf\n")
	inner := crlf(`--in
Content-Type: text/plain

hello https://inside.example/x
--in
Content-Type: application/pdf; name=a.pdf
Content-Transfer-Encoding: base64

` + base64.StdEncoding.EncodeToString(payload) + `
--in--
`)
	msg := crlf(`From: a@example.com
Content-Type: multipart/mixed; boundary=out

--out
Content-Type: text/plain

top
--out
Content-Type: multipart/mixed; boundary=in
Content-Transfer-Encoding: base64

`) + testkit.Wrap76(base64.StdEncoding.EncodeToString([]byte(inner))) + crlf(`--out--
`)
	rec := parseString(t, Options{}, msg)
	a := attachmentAt(t, rec, "2.2")
	if a.Filename != "a.pdf" || a.Size != int64(len(payload)) || a.SHA256 != sha256Hex(payload) {
		t.Errorf("attachment 2.2 = %+v, want a.pdf with %d bytes", a, len(payload))
	}
	if !hasAnomaly(rec, "encoded_multipart") {
		t.Error("no encoded_multipart anomaly")
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://inside.example/x" {
		t.Errorf("urls = %+v, want the link from the encoded text part", rec.URLs)
	}
	want := "multipart/mixed(text/plain,multipart/mixed(text/plain,application/pdf))"
	if rec.Message.Structure != want {
		t.Errorf("structure = %s, want %s", rec.Message.Structure, want)
	}
}

// The top-level entity may be the encoded multipart; its parts are then "1", "2".
func TestEncodedTopLevelMultipart(t *testing.T) {
	inner := crlf("--b\nContent-Type: application/octet-stream; name=x.bin\n\nxyz\n--b--\n")
	msg := crlf("Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n\n") +
		testkit.Wrap76(base64.StdEncoding.EncodeToString([]byte(inner)))
	rec := parseString(t, Options{}, msg)
	if a := attachmentAt(t, rec, "1"); a.Filename != "x.bin" || a.Size != 3 {
		t.Errorf("attachment 1 = %+v, want x.bin of 3 bytes", a)
	}
}

// A multipart that declares base64 but is not encoded (its boundary is in plain sight) is
// walked as it is, like every other mail parser does.
func TestMislabelledEncodedMultipart(t *testing.T) {
	msg := crlf(`Content-Type: multipart/mixed; boundary=b
Content-Transfer-Encoding: base64

--b
Content-Type: application/octet-stream; name=x.bin

xyz
--b--
`)
	rec := parseString(t, Options{}, msg)
	if a := attachmentAt(t, rec, "1"); a.Filename != "x.bin" || a.Size != 3 {
		t.Errorf("attachment 1 = %+v, want x.bin of 3 bytes", a)
	}
}

// A base64-encoded message/rfc822 is an attachment hashed over its decoded bytes, and its
// parts are attachments in a message container.
func TestEncodedMessageIsWalked(t *testing.T) {
	innerMsg := crlf("From: x@example.com\nSubject: inner\nContent-Type: application/zip; name=z.zip\n\nPK\n")
	msg := crlf(`Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

hi
--b
Content-Type: message/rfc822
Content-Transfer-Encoding: base64

`) + testkit.Wrap76(base64.StdEncoding.EncodeToString([]byte(innerMsg))) + crlf("--b--\n")
	rec := parseString(t, Options{}, msg)
	m := attachmentAt(t, rec, "2")
	if m.Size != int64(len(innerMsg)) || m.SHA256 != sha256Hex([]byte(innerMsg)) {
		t.Errorf("message attachment: size %d sha256 %s, want %d %s", m.Size, m.SHA256, len(innerMsg), sha256Hex([]byte(innerMsg)))
	}
	z := attachmentAt(t, rec, "2.1")
	if z.Filename != "z.zip" || z.Container == nil || z.Container.Kind != "message" || z.Container.Path != "2" {
		t.Errorf("inner attachment = %+v, want z.zip in message container 2", z)
	}
}

// The first fragment of a message/partial holds the fragmented message's header and the
// start of its body: the parts visible there are listed, and the fragmenting is flagged.
func TestMessagePartialFirstFragment(t *testing.T) {
	msg := crlf(`Content-Type: message/partial; id="abc@example"; number=1; total=2

Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/x-msdownload; name=run.exe
Content-Transfer-Encoding: base64

TVqQ
`)
	rec := parseString(t, Options{}, msg)
	if !hasAnomaly(rec, "message_partial") {
		t.Error("no message_partial anomaly")
	}
	a := attachmentAt(t, rec, "1.1")
	if a.Filename != "run.exe" || a.Size != 3 {
		t.Errorf("attachment = %+v, want run.exe of 3 bytes (TVqQ)", a)
	}
}

// message/external-body points elsewhere: the reference becomes a URL.
func TestExternalBodyReference(t *testing.T) {
	msg := crlf(`Content-Type: multipart/mixed; boundary=b

--b
Content-Type: message/external-body; access-type=anon-ftp; site="ftp.example.net"; directory="pub"; name="payload.ps"

Content-Type: application/postscript

--b
Content-Type: message/external-body; access-type=URL; URL="https://files.example.org/
 doc.pdf"

Content-Type: application/pdf

--b--
`)
	rec := parseString(t, Options{}, msg)
	got := map[string]bool{}
	for _, u := range rec.URLs {
		got[u.URL] = true
	}
	for _, want := range []string{"ftp://ftp.example.net/pub/payload.ps", "https://files.example.org/doc.pdf"} {
		if !got[want] {
			t.Errorf("missing URL %s; got %v", want, got)
		}
	}
	if a := attachmentAt(t, rec, "1.1"); a.ContentType != "application/postscript" || a.Size != 0 {
		t.Errorf("phantom body = %+v, want an empty application/postscript", a)
	}
}

// Encoded containers nest: every level decodes, and depth stays capped.
func TestEncodedContainersNestWithinTheDepthCap(t *testing.T) {
	nest := func(levels int) string {
		body := crlf("--b\nContent-Type: application/octet-stream; name=deep.bin\n\nx\n--b--\n")
		for range levels {
			body = crlf("--b\nContent-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: base64\n\n") +
				testkit.Wrap76(base64.StdEncoding.EncodeToString([]byte(body))) + crlf("--b--\n")
		}
		return crlf("Content-Type: multipart/mixed; boundary=b\n\n") + body
	}
	rec := parseString(t, Options{}, nest(maxEncodedDepth))
	want := "1" + strings.Repeat(".1", maxEncodedDepth)
	if a := attachmentAt(t, rec, want); a.Filename != "deep.bin" {
		t.Errorf("attachment %s = %+v", want, a)
	}
	// Each level decodes everything below it again: past maxEncodedDepth the rest is one
	// undecoded leaf, and the limit is named.
	rec = parseString(t, Options{}, nest(maxEncodedDepth+2))
	if !hasLimit(rec, "encoded_depth") {
		t.Errorf("limits_hit = %v, want encoded_depth", rec.LimitsHit)
	}
	rec = parseString(t, Options{MaxDepth: 5}, nest(maxEncodedDepth))
	if !hasLimit(rec, "depth") {
		t.Errorf("limits_hit = %v, want depth", rec.LimitsHit)
	}
}

func hasLimit(rec *api.Record, name string) bool {
	for _, l := range rec.LimitsHit {
		if l == name {
			return true
		}
	}
	return false
}

func TestNestedMessageDepthCap(t *testing.T) {
	msg := "Content-Type: application/octet-stream; name=deepest.bin\r\n\r\nx\r\n"
	for range 6 {
		msg = "Content-Type: message/rfc822\r\n\r\n" + msg
	}
	rec := parseString(t, Options{MaxMessageDepth: 3}, msg)
	if !hasLimit(rec, "message_depth") {
		t.Errorf("limits_hit = %v, want message_depth", rec.LimitsHit)
	}
	for _, a := range rec.Attachments {
		if a.Filename == "deepest.bin" {
			t.Errorf("a part beyond the message depth cap was listed: %+v", a)
		}
	}
	rec = parseString(t, Options{}, msg)
	if hasLimit(rec, "message_depth") || len(rec.Attachments) == 0 || rec.Attachments[len(rec.Attachments)-1].Filename != "deepest.bin" {
		t.Errorf("within the default cap: limits %v attachments %s", rec.LimitsHit, listAttachments(rec))
	}
}

// Found in review: the plain-text check for a mislabelled encoded multipart looked past
// the part's end, so a sibling (or an enclosing boundary with the same prefix) using the
// same boundary made a real base64 multipart read as plain, hiding its parts.
func TestEncodedMultipartNotHiddenByALaterBoundary(t *testing.T) {
	inner := crlf("--a\nContent-Type: application/octet-stream; name=evil.exe\n\nMZevil\n--a--\n")
	encoded := base64.StdEncoding.EncodeToString([]byte(inner))
	cases := map[string]string{
		"sibling": crlf("Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/mixed; boundary=a\nContent-Transfer-Encoding: base64\n\n") +
			encoded + crlf("\n--o\nContent-Type: multipart/alternative; boundary=a\n\n--a\nContent-Type: text/plain\n\nhi\n--a--\n--o--\n"),
		"enclosing prefix": crlf("Content-Type: multipart/mixed; boundary=ab\n\n--ab\nContent-Type: multipart/mixed; boundary=a\nContent-Transfer-Encoding: base64\n\n") +
			encoded + crlf("\n--ab--\n"),
	}
	for name, msg := range cases {
		rec := parseString(t, Options{}, msg)
		found := false
		for _, a := range rec.Attachments {
			found = found || a.Filename == "evil.exe"
		}
		if !found {
			t.Errorf("%s: evil.exe not listed; have %s", name, listAttachments(rec))
		}
	}
}

// A multipart declared quoted-printable but not encoded is walked, with no limit named.
func TestMislabelledMultipartNamesNoLimit(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=b\nContent-Transfer-Encoding: quoted-printable\n\n--b\nContent-Type: text/plain\n\nx\n--b\nContent-Type: text/plain\n\ny\n--b--\n")
	rec := parseString(t, Options{}, msg)
	if len(rec.LimitsHit) != 0 {
		t.Errorf("limits_hit = %v, want none", rec.LimitsHit)
	}
}

// One cap covers attachments from every source, so uuencoded blocks in thousands of parts
// cannot multiply the record (found in review: 5.6 MB became 200,000 attachments).
func TestAttachmentCapCoversEverySource(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=b\r\n\r\n")
	for range 30 {
		b.WriteString("--b\r\nContent-Type: text/plain\r\n\r\n")
		for range 5 {
			b.WriteString("begin 644 x.bin\r\n!80``\r\n`\r\nend\r\n")
		}
	}
	b.WriteString("--b--\r\n")
	rec := parseString(t, Options{MaxAttachments: 40}, b.String())
	if len(rec.Attachments) != 40 || !hasLimit(rec, "attachments") {
		t.Errorf("%d attachments, limits %v; want 40 and the attachments limit", len(rec.Attachments), rec.LimitsHit)
	}
}

// Blocks past the per-part cap of the uuencode scanner are named as a limit.
func TestEncodedFilesPastTheCapAreNamed(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: text/plain\r\n\r\n")
	for range 101 {
		b.WriteString("begin 644 x.bin\r\n!80``\r\n`\r\nend\r\n")
	}
	rec := parseString(t, Options{}, b.String())
	if !hasLimit(rec, "encoded_files") {
		t.Errorf("limits_hit = %v, want encoded_files", rec.LimitsHit)
	}
}

// One Authentication-Results field cannot add unbounded results (found in review: 1 MiB of
// "a=b;" gave 256,000).
func TestAuthResultsCap(t *testing.T) {
	rec := parseString(t, Options{}, "Authentication-Results: x; "+strings.Repeat("a=b; ", 10000)+"\r\n\r\nbody\r\n")
	if len(rec.Message.AuthenticationResults) != 1 || len(rec.Message.AuthenticationResults[0].Results) != maxAuthResults ||
		!hasLimit(rec, "trace_fields") {
		t.Errorf("results %d, limits %v", len(rec.Message.AuthenticationResults[0].Results), rec.LimitsHit)
	}
}
