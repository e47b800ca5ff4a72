package parser

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// wrapN breaks encoded text into n-character lines ending in eol.
func wrapN(s string, n int, eol string) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + eol)
		s = s[n:]
	}
	b.WriteString(s + eol)
	return b.String()
}

func TestMisspeltBase64(t *testing.T) {
	for enc, want := range map[string]bool{
		"base-64": true, "base 64": true, "b64": true, `"base64"`: true, "base_64": true, "base64;": true,
		"base64": false, "": false, "7bit": false, "quoted-printable": false, "base32": false,
		"bas64":      false, // not a spelling of it: sniffed like any unknown encoding instead
		"x-uuencode": false, "binary": false,
	} {
		if got := misspeltBase64(enc); got != want {
			t.Errorf("misspeltBase64(%q) = %v, want %v", enc, got, want)
		}
	}
}

func TestSniffBase64(t *testing.T) {
	small := randomBytes(200, 1)
	large := randomBytes(30_000, 2) // well past the sniffed prefix
	enc := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	text := "Hello team,\r\nthe report is attached.\r\n"
	tests := []struct {
		name    string
		in      string
		decoded bool   // sniffed as base64
		want    string // the bytes read; the input itself when not decoded
		broken  bool
	}{
		{"76 columns CRLF", testkit.Wrap76(enc(small)), true, string(small), false},
		{"76 columns LF, trailing blank lines", wrapN(enc(small), 76, "\n") + "\n\n", true, string(small), false},
		{"64 columns (PEM-style encoders)", wrapN(enc(small), 64, "\r\n"), true, string(small), false},
		{"one short line", "PGh0bWw+Cg==", true, "<html>\n", false},
		{"large, past the prefix", testkit.Wrap76(enc(large)), true, string(large), false},
		{"large, no final line break", strings.TrimSuffix(testkit.Wrap76(enc(large)), "\r\n"), true, string(large), false},

		{"empty", "", false, "", false},
		{"only blank lines", "\r\n\r\n", false, "\r\n\r\n", false},
		{"7bit text", text, false, text, false},
		{"alphabet line longer than 76", strings.Repeat("A", 100), false, strings.Repeat("A", 100), false},
		{"long 7bit lines", strings.Repeat(strings.Repeat("word", 30)+"\r\n", 3), false, strings.Repeat(strings.Repeat("word", 30)+"\r\n", 3), false},
		{"not a whole quantum", "SGVsbG8", false, "SGVsbG8", false},
		{"a line longer than the first", "SGVsbG8s\r\nIHdvcmxkIQ==\r\n", false, "SGVsbG8s\r\nIHdvcmxkIQ==\r\n", false},
		{"a line after the short last one", "SGVsbG8sIHdv\r\ncmxk\r\nISEh\r\n", false, "SGVsbG8sIHdv\r\ncmxk\r\nISEh\r\n", false},
		{"lines of 75 (not whole quanta)", wrapN(enc(small), 75, "\r\n"), false, wrapN(enc(small), 75, "\r\n"), false},
		{"padding in the middle", "SGk=\r\nSGk=\r\n", false, "SGk=\r\nSGk=\r\n", false},
		{"data after a blank line", "SGVsbG8s\r\n\r\nSGVsbG8s\r\n", false, "SGVsbG8s\r\n\r\nSGVsbG8s\r\n", false},
		{"base64 for a few lines, then text", testkit.Wrap76(enc(small)) + text, false, testkit.Wrap76(enc(small)) + text, false},
		{"urlsafe alphabet", "SGk-SGk_", false, "SGk-SGk_", false},
		// The prefix decides; a later line that breaks the shape is reported, and the
		// lenient decoder skips what is not base64 (the stray text's letters still decode).
		{"clean prefix, text later", testkit.Wrap76(enc(large)) + "-- \r\nsent from my phone\r\n", true, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, s := sniffBase64(iotest.HalfReader(strings.NewReader(tc.in)), nil)
			out, err := io.ReadAll(d)
			if err != nil {
				t.Fatal(err)
			}
			if (s != nil) != tc.decoded {
				t.Fatalf("sniffed = %v, want %v", s != nil, tc.decoded)
			}
			if tc.want != "" || !tc.broken {
				if string(out) != tc.want {
					t.Errorf("read %d bytes %.40q, want %d bytes %.40q", len(out), out, len(tc.want), tc.want)
				}
			} else if !strings.HasPrefix(string(out), string(large)) {
				t.Errorf("the bytes decoded before the break are not the file's")
			}
			if s != nil && s.broken() != tc.broken {
				t.Errorf("broken = %v, want %v", s.broken(), tc.broken)
			}
			d.release()
		})
	}
}

func TestSniffPassesReadErrors(t *testing.T) {
	boom := errors.New("boom")
	d, s := sniffBase64(io.MultiReader(strings.NewReader("SGVsbG8s\r\n"), iotest.ErrReader(boom)), nil)
	if s != nil {
		t.Error("a failed read must not decide for base64")
	}
	out, err := io.ReadAll(d)
	if !errors.Is(err, boom) || string(out) != "SGVsbG8s\r\n" {
		t.Errorf("got %q, %v; want the bytes read, then the error", out, err)
	}
	// A failure past the prefix reaches the reader of the decoded body too.
	long := testkit.Wrap76(base64.StdEncoding.EncodeToString(randomBytes(20_000, 3)))
	d, s = sniffBase64(io.MultiReader(strings.NewReader(long), iotest.ErrReader(boom)), nil)
	if s == nil {
		t.Fatal("clean prefix not sniffed")
	}
	if _, err := io.ReadAll(d); !errors.Is(err, boom) {
		t.Errorf("err = %v, want boom", err)
	}
}

func anomalyAt(rec *api.Record, code, path string) bool {
	for _, a := range rec.Anomalies {
		if a.Code == code && a.Path == path {
			return true
		}
	}
	return false
}

// TestSniffedAttachmentHash is the point of sniffing: an attachment whose encoding header was
// removed or misspelt is hashed as the file it is, the hash threat feeds know.
func TestSniffedAttachmentHash(t *testing.T) {
	file := randomBytes(20_000, 4)
	sum := sha256.Sum256(file)
	want := hex.EncodeToString(sum[:])
	body := testkit.Wrap76(base64.StdEncoding.EncodeToString(file))
	lookalike := "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\nMjM0NTY3ODk=\r\n"
	longLines := strings.Repeat("0123456789", 12) + "\r\n" + strings.Repeat("abcdefghij", 9) + "\r\n"
	rawSum := func(s string) string {
		s = strings.TrimSuffix(s, "\r\n") // the last line break belongs to the boundary
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	msg := crlf(`From: a@example.com
To: b@example.com
Subject: files
Message-ID: <sniff@example.com>
Date: Mon, 02 Jan 2006 15:04:05 -0700
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: text/plain

see attached
--b
Content-Type: application/octet-stream; name="stripped.exe"

`) + body + crlf(`--b
Content-Type: application/octet-stream; name="misspelt.exe"
Content-Transfer-Encoding: Base-64

`) + body + crlf(`--b
Content-Type: application/octet-stream; name="unknown.exe"
Content-Transfer-Encoding: bas64

`) + body + crlf(`--b
Content-Type: text/plain; name="lookalike.txt"

`) + lookalike + crlf(`--b
Content-Type: application/octet-stream; name="long.bin"

`) + longLines + crlf(`--b--
`)
	rec := parseString(t, Options{}, msg)
	for _, c := range []struct{ path, sha256, anomaly string }{
		{"2", want, anomalySniffedBase64},
		{"3", want, anomalyMisspeltEncoding},
		{"4", want, anomalySniffedBase64},
		{"5", rawSum(lookalike), ""},
		{"6", rawSum(longLines), ""},
	} {
		a := attachmentAt(t, rec, c.path)
		if a.SHA256 != c.sha256 {
			t.Errorf("%s (%s): sha256 %s, want %s", c.path, a.Filename, a.SHA256, c.sha256)
		}
		if c.anomaly != "" && !anomalyAt(rec, c.anomaly, c.path) {
			t.Errorf("%s: no %s anomaly: %+v", c.path, c.anomaly, rec.Anomalies)
		}
	}
	if !anomalyAt(rec, anomalyUnknownEncoding, "4") {
		t.Errorf("bas64 is still an unknown encoding: %+v", rec.Anomalies)
	}
	for _, a := range rec.Anomalies {
		switch {
		case a.Code == anomalySniffedBase64 && a.Path != "2" && a.Path != "4",
			a.Code == anomalyMisspeltEncoding && a.Path != "3",
			a.Code == anomalySniffedBase64Broken, a.Code == anomalyBadBase64:
			t.Errorf("unexpected anomaly %+v", a)
		}
	}
}

// TestSniffedBase64Broken: past the prefix the decision was made on, a body that stops being
// base64 keeps the bytes decoded so far and says so.
func TestSniffedBase64Broken(t *testing.T) {
	file := randomBytes(20_000, 5)
	msg := crlf(`From: a@example.com
Content-Type: multipart/mixed; boundary=b

--b
Content-Type: application/zip; name="a.zip"

`) + testkit.Wrap76(base64.StdEncoding.EncodeToString(file)) + crlf(`not base64 at all!
--b--
`)
	rec := parseString(t, Options{}, msg)
	a := attachmentAt(t, rec, "1")
	if a.Size < int64(len(file)) {
		t.Errorf("size %d, want at least the file's %d", a.Size, len(file))
	}
	if !anomalyAt(rec, anomalySniffedBase64, "1") || !anomalyAt(rec, anomalySniffedBase64Broken, "1") {
		t.Errorf("anomalies %+v", rec.Anomalies)
	}
}

func TestQPShape(t *testing.T) {
	long := strings.Repeat("x", 77)
	for _, tt := range []struct {
		name, in string
		want     bool
	}{
		{"soft breaks inside a link", "see https://evil.exa=\r\nmple.com/pa=\r\nth now\r\n", true},
		{"one soft break and an escape", "caf=C3=A9 au lait, https://a.exa=\r\nmple/\r\n", true},
		{"html attribute escapes", "<a href=3D\"https://x.example/\">go</a>=\n<p>=20</p>\n", true},
		{"prefix cut inside an escape", "a=\r\nb=\r\nc=3", true},
		{"a signature rule ending in =", "Regards,\r\nAnn\r\n~~~~~~~~=\r\n", false},
		{"one soft break alone", "the total is x=\r\nand that is all\r\n", false},
		{"a = b", "let a = b=\r\nand c=\r\n", false},
		{"base64 with padding", wrapN(base64.StdEncoding.EncodeToString(randomBytes(100, 3)), 76, "\r\n"), false},
		{"lowercase escapes", "caf=c3=a9=\r\nau=\r\n", false},
		{"a line past 76 characters", long + "=\r\nb=\r\n", false},
		{"whitespace after the =", "a= \r\nb=\r\n", false},
		{"plain text", "Hello,\r\nsee https://example.com/x?a=1&b=2\r\n", false},
	} {
		var s qpShape
		s.write([]byte(tt.in))
		if got := s.looks(); got != tt.want {
			t.Errorf("%s: looks() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestSoftBreaksInUndeclaredQuotedPrintableCutLinks(t *testing.T) {
	msg := crlf(`From: a@example.com
To: b@example.com
Subject: links
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 7bit

Pay at https://evil.exa=
mple.com/pa=
th today.
--alt
Content-Type: text/html; charset=utf-8

<p>Pay <a href=3D"https://html.exa=
mple.com/lo=
gin">here</a></p>
--alt--
`)
	rec := parseString(t, Options{}, msg)
	var got []string
	for _, u := range rec.URLs {
		got = append(got, u.URL+" "+strings.Join(u.Sources, "+"))
	}
	// The declared bytes are read too, so the stump a client that honours 7bit would open is
	// listed beside the whole link.
	want := "https://evil.example.com/path text\nhttps://evil.exa= text\nhttps://html.example.com/login html"
	if strings.Join(got, "\n") != want {
		t.Errorf("urls:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
	var paths []string
	for _, a := range rec.Anomalies {
		if a.Code == "sniffed_quoted_printable" {
			paths = append(paths, a.Path)
		}
	}
	if strings.Join(paths, ",") != "1,2" {
		t.Errorf("sniffed_quoted_printable at %q, want 1,2; anomalies %+v", paths, rec.Anomalies)
	}
	if err := validateRecord(t, rec); err != nil {
		t.Errorf("record does not validate: %v", err)
	}
}

func TestSevenBitTextWithAnEqualsAtALineEndIsScannedAsIs(t *testing.T) {
	msg := crlf(`From: a@example.com
To: b@example.com
Subject: sig
MIME-Version: 1.0
Content-Type: text/plain
Content-Transfer-Encoding: 7bit

See https://example.com/path and more.
Regards, Ann =
`)
	rec := parseString(t, Options{}, msg)
	if hasAnomaly(rec, "sniffed_quoted_printable") {
		t.Errorf("sniffed a body with one soft break and no escape: %+v", rec.Anomalies)
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://example.com/path" {
		t.Errorf("urls %+v, want the link as written", rec.URLs)
	}
}

func TestSniffedQuotedPrintableKeepsTheDeclaredBytesHashes(t *testing.T) {
	body := "Pay at https://evil.exa=\r\nmple.com/pa=\r\nth today.\r\n"
	msg := crlf(`From: a@example.com
To: b@example.com
Subject: notes
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="mix"

--mix
Content-Type: text/plain

see the notes
--mix
Content-Type: text/plain; name="notes.txt"
Content-Disposition: attachment; filename="notes.txt"

`) + body + "--mix--\r\n"
	rec := parseString(t, Options{}, msg)
	if len(rec.Attachments) != 1 {
		t.Fatalf("attachments %+v", rec.Attachments)
	}
	sum := sha256.Sum256([]byte(strings.TrimSuffix(body, "\r\n"))) // the CRLF is the delimiter's
	if got, want := rec.Attachments[0].SHA256, hex.EncodeToString(sum[:]); got != want {
		t.Errorf("sha256 %s, want %s (the declared bytes)", got, want)
	}
	if len(rec.URLs) == 0 || rec.URLs[0].URL != "https://evil.example.com/path" {
		t.Errorf("urls %+v, want the whole link first", rec.URLs)
	}
}

// TestSniffedQuotedPrintableReadAsDeclaredToo: a 7bit HTML body that has the shape of
// quoted-printable but whose decoding cuts its links (href= then a line break is HTML, and a
// soft break to the decoder) was read decoded only, and lost both links a client shows.
func TestSniffedQuotedPrintableReadAsDeclaredToo(t *testing.T) {
	msg := crlf(`MIME-Version: 1.0
Content-Type: text/html

<html><body>Your invoice is ready. <a href=
"https://evil.example/inv">Open invoice</a> <img src=
"https://track.example/p.gif"></body></html>
`)
	rec := parseString(t, Options{}, msg)
	var got []string
	for _, u := range rec.URLs {
		got = append(got, u.URL)
	}
	if want := "https://evil.example/inv https://track.example/p.gif"; strings.Join(got, " ") != want {
		t.Errorf("urls %q, want %s", got, want)
	}
}

// TestSniffedQuotedPrintableDeclaredCopyIsCapped: the declared bytes kept for the second
// reading stop at maxSniffedRaw, and the record says so.
func TestSniffedQuotedPrintableDeclaredCopyIsCapped(t *testing.T) {
	body := strings.Repeat("some words in a line of text=3D=\r\n", maxSniffedRaw/30) + "https://late.example/x\r\n"
	msg := "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" + body
	rec := parseString(t, Options{}, msg)
	if !slices.Contains(rec.LimitsHit, "sniffed_text_bytes") {
		t.Errorf("limits %q, want sniffed_text_bytes", rec.LimitsHit)
	}
	if len(rec.URLs) == 0 || !strings.HasPrefix(rec.URLs[len(rec.URLs)-1].URL, "https://late.example/") {
		t.Errorf("urls %+v, want the decoded link", rec.URLs)
	}
}

// TestSniffedQuotedPrintableCountsEachLinkOnce: a link that both readings of a sniffed body
// find was counted twice.
func TestSniffedQuotedPrintableCountsEachLinkOnce(t *testing.T) {
	msg := "MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n" +
		"See https://same.example/x today,=\r\nor tomorrow=3D=\r\nlater.\r\n"
	rec := parseString(t, Options{}, msg)
	if !hasAnomaly(rec, "sniffed_quoted_printable") {
		t.Fatalf("not sniffed: %+v", rec.Anomalies)
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://same.example/x" || rec.URLs[0].Count != 1 {
		t.Errorf("urls %+v, want https://same.example/x counted once", rec.URLs)
	}
}
