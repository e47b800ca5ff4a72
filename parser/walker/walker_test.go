package walker

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// walked is what a test sees of one entity.
type walked struct {
	path, kind, mtype, body string
}

func (x walked) String() string {
	path := x.path
	if path == "" {
		path = "top"
	}
	return fmt.Sprintf("%s %s %s %q", path, x.kind, x.mtype, x.body)
}

type result struct {
	parts     []walked
	anomalies []string // "code@path"
	limits    []string
	taps      map[string]string // message part path → raw bytes of the encapsulated message
	consumed  int64
}

func walk(t *testing.T, r io.Reader, opts Options) result {
	t.Helper()
	var res result
	res.taps = map[string]string{}
	opts.Report = func(a Anomaly) { res.anomalies = append(res.anomalies, a.Code+"@"+a.Path) }
	opts.Limit = func(n string) { res.limits = append(res.limits, n) }
	w := New(r, opts)
	for {
		p, err := w.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		x := walked{path: p.Path, mtype: p.MediaType}
		switch p.Kind {
		case Leaf:
			x.kind = "leaf"
			b, err := io.ReadAll(w.Body())
			if err != nil {
				t.Fatalf("body of %s: %v", p.Path, err)
			}
			x.body = string(b)
		case Multipart:
			x.kind = "multipart"
		case Message:
			x.kind = "message"
			var buf bytes.Buffer
			path := p.Path
			w.Tap(&buf, func() { res.taps[path] = buf.String() })
		}
		res.parts = append(res.parts, x)
	}
	res.consumed = w.Consumed()
	return res
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func checkParts(t *testing.T, got []walked, want ...string) {
	t.Helper()
	var g []string
	for _, x := range got {
		g = append(g, x.String())
	}
	if strings.Join(g, "\n") != strings.Join(want, "\n") {
		t.Errorf("parts:\n got: %s\nwant: %s", strings.Join(g, "\n      "), strings.Join(want, "\n      "))
	}
}

func TestSinglePartBodyIsExact(t *testing.T) {
	msg := crlf("From: a@example.com\nSubject: hi\n\nline one\nline two\n")
	res := walk(t, strings.NewReader(msg), Options{})
	// The body runs to the end of input, so the final CRLF is body.
	checkParts(t, res.parts, `1 leaf text/plain "line one\r\nline two\r\n"`)
	if res.consumed != int64(len(msg)) {
		t.Errorf("consumed %d of %d bytes", res.consumed, len(msg))
	}
	if len(res.anomalies) != 0 {
		t.Errorf("anomalies: %v", res.anomalies)
	}
}

const nested = `From: a@example.com
Content-Type: multipart/mixed; boundary="outer"

preamble, skipped
--outer
Content-Type: multipart/alternative; boundary="outer-alt"

--outer-alt
Content-Type: text/plain

plain
--outer-alt
Content-Type: text/html

<p>html</p>
--outer-alt--
--outer
Content-Type: application/pdf
Content-Transfer-Encoding: base64

JVBERi0=
--outer--
epilogue, skipped
`

func TestMultipartTreeAndBoundaryPrefix(t *testing.T) {
	// "outer-alt" starts with "outer": a line "--outer-alt" must match the inner boundary
	// only, and the CRLF before each boundary line belongs to the boundary.
	res := walk(t, strings.NewReader(crlf(nested)), Options{})
	checkParts(t, res.parts,
		`top multipart multipart/mixed ""`,
		`1 multipart multipart/alternative ""`,
		`1.1 leaf text/plain "plain"`,
		`1.2 leaf text/html "<p>html</p>"`,
		`2 leaf application/pdf "JVBERi0="`,
	)
	if len(res.anomalies) != 0 {
		t.Errorf("anomalies: %v", res.anomalies)
	}
}

func TestLineEndingsGiveTheSameTree(t *testing.T) {
	for name, conv := range map[string]func(string) string{
		"lf":    func(s string) string { return s },
		"cr":    func(s string) string { return strings.ReplaceAll(s, "\n", "\r") },
		"crcr":  func(s string) string { return strings.ReplaceAll(s, "\n", "\r\r\n") },
		"mixed": func(s string) string { return strings.Replace(crlf(s), "\r\n", "\n", 5) },
	} {
		t.Run(name, func(t *testing.T) {
			msg := conv(nested)
			res := walk(t, strings.NewReader(msg), Options{})
			var paths []string
			for _, p := range res.parts {
				paths = append(paths, p.path+" "+p.mtype)
			}
			want := " multipart/mixed|1 multipart/alternative|1.1 text/plain|1.2 text/html|2 application/pdf"
			if got := strings.Join(paths, "|"); got != want {
				t.Errorf("got %s\nwant %s", got, want)
			}
			if res.parts[4].body != "JVBERi0=" {
				t.Errorf("pdf body %q", res.parts[4].body)
			}
			if res.consumed != int64(len(msg)) {
				t.Errorf("consumed %d of %d", res.consumed, len(msg))
			}
		})
	}
}

func TestUnclosedInnerMultipartDoesNotHideLaterParts(t *testing.T) {
	msg := crlf(`Content-Type: multipart/mixed; boundary=A

--A
Content-Type: multipart/alternative; boundary=B

--B
Content-Type: text/plain

inner
--A
Content-Type: image/png

PNG
--A--
`)
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts,
		`top multipart multipart/mixed ""`,
		`1 multipart multipart/alternative ""`,
		`1.1 leaf text/plain "inner"`,
		`2 leaf image/png "PNG"`,
	)
	if got := strings.Join(res.anomalies, ","); got != "unclosed_multipart@1" {
		t.Errorf("anomalies %s", got)
	}
}

func TestNeverClosedAndMissingBoundary(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: text/plain\n\ntruncated")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "truncated"`)
	if got := strings.Join(res.anomalies, ","); got != "unclosed_multipart@" {
		t.Errorf("anomalies %s", got)
	}

	msg = crlf("Content-Type: multipart/mixed; boundary=A\n\n--Z\nContent-Type: text/plain\n\nx\n")
	res = walk(t, strings.NewReader(msg), Options{})
	if got := strings.Join(res.anomalies, ","); got != "boundary_not_found@" {
		t.Errorf("anomalies %s", got)
	}
}

func TestMultipartWithoutBoundaryIsOnePart(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed\n\nhello\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `1 leaf multipart/mixed "hello\r\n"`)
	if got := strings.Join(res.anomalies, ","); got != "multipart_without_boundary@" {
		t.Errorf("anomalies %s", got)
	}
}

const withMessage = `Content-Type: multipart/mixed; boundary=A

--A
Content-Type: text/plain

cover
--A
Content-Type: message/rfc822

From: inner@example.com
Content-Type: multipart/mixed; boundary=B

--B
Content-Type: text/plain

inner text
--B
Content-Type: application/zip

UEsDBA==
--B--

--A--
`

func TestEncapsulatedMessagePathsAndTap(t *testing.T) {
	msg := crlf(withMessage)
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts,
		`top multipart multipart/mixed ""`,
		`1 leaf text/plain "cover"`,
		`2 message message/rfc822 ""`,
		`2 multipart multipart/mixed ""`,
		`2.1 leaf text/plain "inner text"`,
		`2.2 leaf application/zip "UEsDBA=="`,
	)
	// The tap holds the encapsulated message from its first header byte to the byte before
	// the CRLF that precedes "--A--", including the inner boundaries and the blank line
	// after "--B--".
	start := strings.Index(msg, "From: inner@")
	end := strings.Index(msg, "\r\n--A--")
	if got, want := res.taps["2"], msg[start:end]; got != want {
		t.Errorf("tap:\n got %q\nwant %q", got, want)
	}
}

func TestSinglePartEncapsulatedMessageAndDigestDefault(t *testing.T) {
	msg := crlf(`Content-Type: multipart/digest; boundary=D

--D

Subject: first

one
--D
Content-Type: text/plain

not a message
--D--
`)
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts,
		`top multipart multipart/digest ""`,
		`1 message message/rfc822 ""`,
		`1.1 leaf text/plain "one"`,
		`2 leaf text/plain "not a message"`,
	)
	if got, want := res.taps["1"], "Subject: first\r\n\r\none"; got != want {
		t.Errorf("tap %q, want %q", got, want)
	}
}

func TestTapAtEndOfInputKeepsFinalLineEnd(t *testing.T) {
	msg := "Content-Type: message/rfc822\n\nSubject: x\n\nbody\n"
	res := walk(t, strings.NewReader(msg), Options{})
	if got, want := res.taps["1"], "Subject: x\n\nbody\n"; got != want {
		t.Errorf("tap %q, want %q", got, want)
	}
}

func TestHeaderRepairs(t *testing.T) {
	msg := crlf("From sender@example.com Mon Jan  1 00:00:00 2024\n" +
		"Subject: folded\n\tsubject\n" +
		"Content-Type : text/plain\n" +
		"\nbody\n")
	res := walk(t, strings.NewReader(msg), Options{})
	w := New(strings.NewReader(msg), Options{})
	p, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	want := []Field{{"Subject", "folded\tsubject"}, {"Content-Type", "text/plain"}}
	if fmt.Sprint(p.Header.Fields) != fmt.Sprint(want) {
		t.Errorf("fields\n got %q\nwant %q", p.Header.Fields, want)
	}
	checkParts(t, res.parts, `1 leaf text/plain "body\r\n"`)
	if got := strings.Join(res.anomalies, ","); got != "mbox_from_line@" {
		t.Errorf("anomalies %s", got)
	}
}

// headerOf returns the fields of the first entity of msg.
func headerOf(t *testing.T, msg string) []Field {
	t.Helper()
	p, err := New(strings.NewReader(msg), Options{}).Next()
	if err != nil {
		t.Fatal(err)
	}
	return p.Header.Fields
}

func TestUnindentedLineEndsHeader(t *testing.T) {
	// Joining the line to X-Broken, as enmime does, would make body text a header value.
	msg := crlf("Subject: s\nX-Broken: first\nunindented line\nBad Name: x\nContent-Type : text/html\n\nbody\n")
	want := []Field{{"Subject", "s"}, {"X-Broken", "first"}}
	if got := headerOf(t, msg); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields\n got %q\nwant %q", got, want)
	}
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `1 leaf text/plain "unindented line\r\nBad Name: x\r\nContent-Type : text/html\r\n\r\nbody\r\n"`)
	if got := strings.Join(res.anomalies, ","); got != "missing_separator@" {
		t.Errorf("anomalies %s", got)
	}
	if res.consumed != int64(len(msg)) {
		t.Errorf("consumed %d of %d bytes", res.consumed, len(msg))
	}
}

func TestWhitespaceOnlyLineIsTheSeparator(t *testing.T) {
	for _, sep := range []string{" ", "\t", " \t "} {
		msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: text/html\n" + sep +
			"\nNote: body\n\tindented body\n--A--\n")
		res := walk(t, strings.NewReader(msg), Options{})
		checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/html "Note: body\r\n\tindented body"`)
		if got := strings.Join(res.anomalies, ","); got != "whitespace_separator@1" {
			t.Errorf("%q: anomalies %s", sep, got)
		}
	}
}

func TestWhitespaceOnlyLineBeforeTheHeaderIsSkipped(t *testing.T) {
	// flanker's iphone.eml starts with a line of spaces; there is no field it could end.
	msg := crlf(strings.Repeat(" ", 255) + "\nSubject: s\nContent-Type: text/html\n\n<p>\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `1 leaf text/html "<p>\r\n"`)
	if got := strings.Join(res.anomalies, ","); got != "header_leading_whitespace@" {
		t.Errorf("anomalies %s", got)
	}
}

func TestByteOrderMarkBeforeTheHeaderIsSkipped(t *testing.T) {
	msg := crlf("\xef\xbb\xbfFrom: a@example.com\nContent-Type: text/html\n\n<p>\n")
	want := []Field{{"From", "a@example.com"}, {"Content-Type", "text/html"}}
	if got := headerOf(t, msg); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fields\n got %q\nwant %q", got, want)
	}
}

func TestIndentedBodyTextWithoutHeaderIsBody(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\n  indented text\nNote: more\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "  indented text\r\nNote: more"`)
	if got := strings.Join(res.anomalies, ","); got != "missing_header@1" {
		t.Errorf("anomalies %s", got)
	}
}

func TestBoundaryRightAfterMultipartHeaderOpensItsFirstPart(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n--A\nContent-Type: text/html\n\n<p>\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/html "<p>"`)
	if got := strings.Join(res.anomalies, ","); got != "missing_separator@" {
		t.Errorf("anomalies %s", got)
	}
}

func TestBodyRightAfterMessageHeaderIsTheEncapsulatedBody(t *testing.T) {
	// The line that ends the message/rfc822 part's header is the first line of the message
	// inside, which has no header, and the raw copy of that message starts with it.
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: message/rfc822\nsecret text\nmore\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 message message/rfc822 ""`, `1.1 leaf text/plain "secret text\r\nmore"`)
	if got := strings.Join(res.anomalies, ","); got != "missing_separator@1,missing_header@1" {
		t.Errorf("anomalies %s", got)
	}
	if got, want := res.taps["1"], "secret text\r\nmore"; got != want {
		t.Errorf("tap %q, want %q", got, want)
	}
}

func TestMboxFromLineOfAnEncapsulatedMessageIsSkipped(t *testing.T) {
	// As in mikel-mail's attachment_message_rfc822.eml.
	msg := crlf("Content-Type: message/rfc822\n\nFrom x@example.com Tue May 10 11:28:07 2005\nSubject: in\n\nbody\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `1 message message/rfc822 ""`, `1.1 leaf text/plain "body\r\n"`)
	if got := strings.Join(res.anomalies, ","); got != "mbox_from_line@1" {
		t.Errorf("anomalies %s", got)
	}
}

func TestLongLineEndsHeaderAndStaysWhole(t *testing.T) {
	long := strings.Repeat("word ", 1000) // longer than the buffer: comes in fragments
	spaces := strings.Repeat(" ", 3000)
	for _, c := range []struct{ sep, body, code string }{
		{"", long, "missing_separator@"},
		// Of a line, only the first fragment is looked at; the rest is the body's start.
		{spaces + "\n", spaces[1024:] + "\r\n" + long, "whitespace_separator@"},
	} {
		msg := crlf("Subject: s\n" + c.sep + long + "\nend\n")
		res := walk(t, strings.NewReader(msg), Options{BufferSize: 1024})
		checkParts(t, res.parts, fmt.Sprintf(`1 leaf text/plain %q`, c.body+"\r\nend\r\n"))
		if got := strings.Join(res.anomalies, ","); got != c.code {
			t.Errorf("anomalies %s", got)
		}
		if got := headerOf(t, msg); len(got) != 1 || got[0].Value != "s" {
			t.Errorf("fields %q", got)
		}
	}
}

func TestPartWithoutHeaderStartsWithBody(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nno header here\nsecond line\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "no header here\r\nsecond line"`)
	if got := strings.Join(res.anomalies, ","); got != "missing_header@1" {
		t.Errorf("anomalies %s", got)
	}
}

func TestHeaderCutShortByBoundary(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: text/plain\n--A\nContent-Type: text/html\n\n<b>\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain ""`, `2 leaf text/html "<b>"`)
	if got := strings.Join(res.anomalies, ","); got != "header_unterminated@1" {
		t.Errorf("anomalies %s", got)
	}
}

func TestLongLinesComeInFragmentsAndBoundariesStillMatch(t *testing.T) {
	long := strings.Repeat("x", 5000) + "\r" + strings.Repeat("y", 3000) // a lone CR inside
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\n\n") + long + crlf("\n--A\nContent-Type: text/html\n\nz\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{BufferSize: 1024})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`,
		fmt.Sprintf(`1 leaf text/plain %q`, long), `2 leaf text/html "z"`)
	if res.consumed != int64(len(msg)) {
		t.Errorf("consumed %d of %d", res.consumed, len(msg))
	}
}

func TestOneByteReadsGiveTheSameResult(t *testing.T) {
	for _, msg := range []string{crlf(nested), crlf(withMessage), strings.ReplaceAll(nested, "\n", "\r")} {
		a := walk(t, strings.NewReader(msg), Options{})
		b := walk(t, iotest.OneByteReader(strings.NewReader(msg)), Options{BufferSize: 1024})
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Errorf("one-byte reads differ:\n%v\n%v", a, b)
		}
	}
}

func TestLimits(t *testing.T) {
	t.Run("parts", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("Content-Type: multipart/mixed; boundary=A\r\n\r\n")
		for range 50 {
			b.WriteString("--A\r\n\r\nx\r\n")
		}
		b.WriteString("--A--\r\n")
		res := walk(t, strings.NewReader(b.String()), Options{MaxParts: 10})
		if len(res.parts) != 10 { // MaxParts counts entities: the top-level one and 9 parts
			t.Errorf("got %d entities", len(res.parts))
		}
		if strings.Join(res.limits, ",") != "parts" {
			t.Errorf("limits %v", res.limits)
		}
		if res.consumed != int64(b.Len()) {
			t.Errorf("consumed %d of %d", res.consumed, b.Len())
		}
	})
	t.Run("depth", func(t *testing.T) {
		var b strings.Builder
		for i := range 100 {
			fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n", i, i)
		}
		b.WriteString("\r\ndeep\r\n")
		res := walk(t, strings.NewReader(b.String()), Options{MaxDepth: 5})
		last := res.parts[len(res.parts)-1]
		if last.kind != "leaf" || last.path != "1.1.1.1.1" || !strings.HasSuffix(last.body, "deep\r\n") {
			t.Errorf("last part %v", last)
		}
		if strings.Join(res.limits, ",") != "depth" {
			t.Errorf("limits %v", res.limits)
		}
	})
	t.Run("header bytes", func(t *testing.T) {
		msg := "Subject: " + strings.Repeat("s", 2000) + "\r\nX-A: 1\r\n\r\nbody"
		var fields []Field
		w := New(strings.NewReader(msg), Options{MaxHeaderBytes: 1000, Limit: func(string) {}})
		p, err := w.Next()
		if err != nil {
			t.Fatal(err)
		}
		fields = p.Header.Fields
		body, _ := io.ReadAll(w.Body())
		if len(fields) != 0 || string(body) != "body" {
			t.Errorf("fields %d, body %q", len(fields), body)
		}
	})
}

func TestReadErrorIsReturned(t *testing.T) {
	boom := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("Subject: x\r\n\r\npartial"), iotest.ErrReader(boom))
	w := New(r, Options{})
	if _, err := w.Next(); err != nil {
		t.Fatal(err)
	}
	_, err := io.ReadAll(w.Body())
	var re *ReadError
	if !errors.As(err, &re) || !errors.Is(err, boom) {
		t.Fatalf("body error %v, want a ReadError wrapping %v", err, boom)
	}
	if _, err := w.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next error %v", err)
	}
}

func TestRFC2231Charsets(t *testing.T) {
	cases := []struct{ in, param, want string }{
		// %E9 is é in ISO-8859-1; Go's mime package alone drops this parameter.
		{`attachment; filename*=iso-8859-1''caf%E9.txt`, "filename", "café.txt"},
		// Continuations carry the first segment's charset (RFC 2231 §4.1).
		{`attachment; filename*0*=iso-8859-1''na%EFve; filename*1*=%20r%E9sum%E9.pdf`, "filename", "naïve résumé.pdf"},
		// KOI8-R: F3 D0 C9 D3 CF CB is "Список".
		{`application/msword; name*=koi8-r'ru'%F3%D0%C9%D3%CF%CB.doc`, "name", "Список.doc"},
		// An unknown charset falls back to Windows-1252 for bytes that are not UTF-8.
		{`attachment; filename*=x-unknown''%E9t%E9.txt`, "filename", "été.txt"},
		// UTF-8 is left to the mime package, with quoted ';' in other parameters intact.
		{`attachment; x="a;b"; filename*=utf-8''%E2%82%AC.txt`, "filename", "€.txt"},
		// Extended values Go's parser drops whole, losing the file name: quoted, without the
		// charset'language' prefix, or holding characters that should have been escaped (here
		// a raw RFC 2047 word, which the caller decodes).
		{`attachment; filename*="report.exe"`, "filename", "report.exe"},
		{`attachment; filename*=report.exe`, "filename", "report.exe"},
		{`attachment; filename*="utf-8''r%C3%A9sum%C3%A9.exe"`, "filename", "résumé.exe"},
		{`attachment; filename*=utf-8''=?utf-8?B?w6lsw6h2ZQ==?=.exe`, "filename", "=?utf-8?B?w6lsw6h2ZQ==?=.exe"},
		{`attachment; filename*0*=utf-8''=?utf-8?B?w6ls; filename*1*=w6h2ZQ==?=.exe`, "filename", "=?utf-8?B?w6lsw6h2ZQ==?=.exe"},
		{`attachment; filename*=utf-8''100%.exe`, "filename", "100%.exe"},
	}
	for _, c := range cases {
		_, params, _ := ParseMediaType(c.in)
		if got := params[c.param]; got != c.want {
			t.Errorf("ParseMediaType(%q)[%s] = %q, want %q", c.in, c.param, got, c.want)
		}
	}
}

func TestHeaderFieldLengthCap(t *testing.T) {
	long := strings.Repeat("x", 5000)
	msg := "Subject: " + long + "\r\n continued " + long + "\r\nTo: a@example.com\r\n\r\nbody\r\n"
	var limits []string
	w := New(strings.NewReader(msg), Options{MaxLineLength: 4096, BufferSize: 1024, Limit: func(n string) { limits = append(limits, n) }})
	p, err := w.Next()
	if err != nil {
		t.Fatal(err)
	}
	subj := p.Header.Get("Subject")
	// "Subject: " is 9 bytes of the 4096; TrimSpace leaves the x's.
	if len(subj) != 4096-len("Subject: ") || strings.Trim(subj, "x") != "" {
		t.Errorf("Subject is %d bytes, want %d x's", len(subj), 4096-len("Subject: "))
	}
	if p.Header.Get("To") != "a@example.com" {
		t.Errorf("the field after the cut one is lost: %+v", p.Header.Fields)
	}
	if len(limits) == 0 || limits[0] != "line_length" {
		t.Errorf("limits = %v, want line_length", limits)
	}
}

// A Content-Type with thousands of parameters is cut before enmime's repair, which is
// quadratic in their number (found by a hostile-input hunt: 256 KB took 4 s).
func TestLongParameterListsAreCut(t *testing.T) {
	var b strings.Builder
	b.WriteString("application/octet-stream; name=x.bin")
	for i := 0; b.Len() < 250<<10; i++ {
		fmt.Fprintf(&b, "; p%d=\"a\"", i)
	}
	mt, params, problems := ParseMediaType(b.String())
	if mt != "application/octet-stream" || params["name"] != "x.bin" || len(problems) == 0 {
		t.Errorf("type %q name %q problems %v", mt, params["name"], problems)
	}
}

// TestParameterLineWithoutIndentKeepsTheHeaderGoing: a name= line that lost its folding
// whitespace ended the part's header, so the Content-Transfer-Encoding after it was read as
// body and the attachment was hashed undecoded. Rspamd and enmime read it as a fold.
func TestParameterLineWithoutIndentKeepsTheHeaderGoing(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: application/zip;\nname=\"a.zip\"\n" +
		"Content-Transfer-Encoding: base64\n\nUEsFBg==\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf application/zip "UEsFBg=="`)
	if got := strings.Join(res.anomalies, ","); got != "broken_fold@1" {
		t.Errorf("anomalies %s", got)
	}
}

// TestLineWithoutColonBeforeAnOrdinaryFieldEndsTheHeader: only a parameter followed by a
// Content- field is joined; other lines still end the header, so body text stays out of it.
func TestLineWithoutColonBeforeAnOrdinaryFieldEndsTheHeader(t *testing.T) {
	for _, body := range []string{"Dear Bob,\nhttps://x.example/\n", "a=b\nhttps://x.example/\n", "Dear Bob,\nContent-Type: text/plain\n"} {
		msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: text/plain\n" + body + "--A--\n")
		res := walk(t, strings.NewReader(msg), Options{})
		if got := strings.Join(res.anomalies, ","); got != "missing_separator@1" {
			t.Errorf("%q: anomalies %s", body, got)
		}
	}
}

// TestMediaTypeComments: a comment between the media type and its parameters made the whole
// Content-Type unparseable, so a multipart was read as one text part; a comment after a
// boundary value was kept as part of the boundary.
func TestMediaTypeComments(t *testing.T) {
	for _, tc := range []struct{ in, mtype, boundary string }{
		{`multipart/mixed (mixed content); boundary=b1`, "multipart/mixed", "b1"},
		{`multipart/mixed; boundary="b1" (a (nested) comment)`, "multipart/mixed", "b1"},
		{`multipart/mixed; (c) boundary="b(1)"`, "multipart/mixed", "b(1)"},
		{`multipart/mixed; boundary=b(1)`, "multipart/mixed", "b(1)"},
		// A "(" that starts or is inside an unquoted value is the value's, as Rspamd and
		// Python's email read it: stripping it lost a whole multipart.
		{`multipart/mixed; boundary=(abc)`, "multipart/mixed", "(abc)"},
		{`multipart/mixed; boundary= (abc)`, "multipart/mixed", "(abc)"},
		{`multipart/mixed; boundary=----=_NextPart (1)`, "multipart/mixed", "----=_NextPart (1)"},
		{`multipart/mixed; boundary="b1"(c); charset=x (d)`, "multipart/mixed", "b1"},
		{`multipart/mixed (unclosed; boundary=b1`, "multipart/mixed", ""},
		{`multipart/mixed; boundary="q\"(x)"`, "multipart/mixed", `q"(x)`},
	} {
		mt, params, _ := ParseMediaType(tc.in)
		if mt != tc.mtype || params["boundary"] != tc.boundary {
			t.Errorf("%s: %q boundary %q, want %q %q", tc.in, mt, params["boundary"], tc.mtype, tc.boundary)
		}
	}
}

func TestMediaTypeCommentsKeepUnquotedNames(t *testing.T) {
	for in, want := range map[string]string{
		`attachment; filename=invoice (1).pdf`: "invoice (1).pdf",
		`attachment; filename=(x).html`:        "(x).html",
		`attachment (c); filename="a.pdf" (d)`: "a.pdf",
	} {
		if _, params, _ := ParseMediaType(in); params["filename"] != want {
			t.Errorf("%s: filename %q, want %q", in, params["filename"], want)
		}
	}
}

// TestMediaTypeWithoutSemicolon: "multipart/mixed" folded onto a line of parameters with no
// ';' lost the parameters, so the parts (Rspamd and Python's email find them) were read as
// one body.
func TestMediaTypeWithoutSemicolon(t *testing.T) {
	mt, params, problems := ParseMediaType("multipart/mixed \t boundary=\"boundary\"")
	if mt != "multipart/mixed" || params["boundary"] != "boundary" || len(problems) != 1 {
		t.Errorf("got %q %q %q", mt, params, problems)
	}
	for _, v := range []string{"multipart/mixed junk", "text/plain x y=z", "a b=c"} {
		if mt, params, _ := ParseMediaType(v); mt != "" && len(params) > 0 {
			t.Errorf("%q read as %q %q", v, mt, params)
		}
	}
}

// TestPartAfterCloseIsRead: parts delimited after the closing delimiter were skipped with the
// epilogue, though Rspamd (and clients that match delimiters anywhere) show them.
func TestPartAfterCloseIsRead(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\n\none\n--A--\nepilogue\n--A\n\ntwo\n--A--\nmore\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 leaf text/plain "one"`, `2 leaf text/plain "two"`)
	if got := strings.Join(res.anomalies, ","); got != "part_after_close@" {
		t.Errorf("anomalies %s", got)
	}
}

// TestPartAfterCloseInANestedMultipart: an inner multipart's epilogue part is its own, and
// the outer multipart's next boundary still ends it without an unclosed anomaly.
func TestPartAfterCloseInANestedMultipart(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: multipart/alternative; boundary=B\n\n" +
		"--B\n\nin\n--B--\n--B\n\nlate\n--B--\n--A\n\nouter\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	checkParts(t, res.parts, `top multipart multipart/mixed ""`, `1 multipart multipart/alternative ""`,
		`1.1 leaf text/plain "in"`, `1.2 leaf text/plain "late"`, `2 leaf text/plain "outer"`)
	if got := strings.Join(res.anomalies, ","); got != "part_after_close@1" {
		t.Errorf("anomalies %s", got)
	}
}

// TestClosedMultipartSharingItsParentsBoundaryStaysClosed: with one boundary for both, the
// next delimiter is the enclosing multipart's, as before.
func TestClosedMultipartSharingItsParentsBoundaryStaysClosed(t *testing.T) {
	msg := crlf("Content-Type: multipart/mixed; boundary=A\n\n--A\nContent-Type: multipart/alternative; boundary=A\n\n" +
		"--A\n\nin\n--A--\n--A\n\nouter\n--A--\n")
	res := walk(t, strings.NewReader(msg), Options{})
	for _, a := range res.anomalies {
		if strings.HasPrefix(a, "part_after_close") {
			t.Errorf("anomalies %v", res.anomalies)
		}
	}
}
