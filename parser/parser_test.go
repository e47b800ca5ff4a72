package parser

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

const secret = "The falcon lands at midnight behind the old mill"

// mixedMessage carries the secret sentence in every kind of body text: plain, quoted-printable
// HTML, base64 plain, and the body of an attached message.
func mixedMessage(pdf []byte) string {
	var qp bytes.Buffer
	w := quotedprintable.NewWriter(&qp)
	fmt.Fprintf(w, `<html><body><p>%s</p><a href="https://evil.example/login?a=1&amp;b=2">Sign in</a></body></html>`, secret)
	w.Close()
	return crlf(`From: "Mallory" <m@evil.example>
To: victim@corp.example
Subject: Invoice
Message-ID: <1@evil.example>
Date: Mon, 02 Jan 2006 15:04:05 -0700
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=alt

--alt
Content-Type: text/plain; charset=utf-8

` + secret + ` see https://evil.example/plain
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

` + qp.String() + `
--alt--
--outer
Content-Type: application/pdf; name="invoice.pdf"
Content-Disposition: attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf
Content-Transfer-Encoding: base64

` + testkit.Wrap76(base64.StdEncoding.EncodeToString(pdf)) + `--outer
Content-Type: message/rfc822

From: inner@example.com
Subject: fwd
Content-Type: text/plain
Content-Transfer-Encoding: base64

` + base64.StdEncoding.EncodeToString([]byte(secret+" http://inner.example/x")) + `
--outer--
`)
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func parseString(t *testing.T, o Options, msg string) *api.Record {
	t.Helper()
	rec, err := newTestParser(t, o).Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return rec
}

func TestBodyTextNeverReachesTheRecord(t *testing.T) {
	rec := parseString(t, Options{}, mixedMessage([]byte("%PDF-1.4 fake")))
	line, err := api.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{secret, "falcon", "old mill"} {
		if bytes.Contains(line, []byte(frag)) {
			t.Errorf("record contains body text %q:\n%s", frag, line)
		}
	}
	// The links in those bodies are what we keep.
	var urls []string
	for _, u := range rec.URLs {
		urls = append(urls, u.URL+" "+strings.Join(u.Sources, "+"))
	}
	want := []string{
		"https://evil.example/plain text",
		"https://evil.example/login?a=1&b=2 html",
		"http://inner.example/x text",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Errorf("urls:\n%s\nwant:\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
}

func TestAttachmentHashesAreOfTheDecodedBytes(t *testing.T) {
	pdf := bytes.Repeat([]byte("%PDF-1.7\n binary \x00\xff\xfe stream\n"), 5000)
	rec := parseString(t, Options{}, mixedMessage(pdf))
	var got *api.Attachment
	for i := range rec.Attachments {
		if rec.Attachments[i].Path == "2" {
			got = &rec.Attachments[i]
		}
	}
	if got == nil {
		t.Fatalf("no attachment at path 2: %+v", rec.Attachments)
	}
	m, s1, s256 := md5.Sum(pdf), sha1.Sum(pdf), sha256.Sum256(pdf)
	want := api.Attachment{
		Path: "2", Filename: "résumé.pdf", ContentType: "application/pdf", DetectedType: "application/pdf",
		Disposition: "attachment", Size: int64(len(pdf)),
		MD5: hex.EncodeToString(m[:]), SHA1: hex.EncodeToString(s1[:]), SHA256: hex.EncodeToString(s256[:]),
	}
	if *got != want {
		t.Errorf("attachment\n got %+v\nwant %+v", *got, want)
	}
}

func TestNestedMessagePartsAreAttachmentsInAContainer(t *testing.T) {
	rec := parseString(t, Options{}, mixedMessage([]byte("x")))
	var paths []string
	for _, a := range rec.Attachments {
		c := "-"
		if a.Container != nil {
			c = a.Container.Kind + "@" + a.Container.Path
		}
		paths = append(paths, a.Path+" "+a.ContentType+" "+c)
	}
	want := "2 application/pdf -|3 message/rfc822 -|3.1 text/plain message@3"
	if got := strings.Join(paths, "|"); got != want {
		t.Errorf("attachments %s\nwant %s", got, want)
	}
	if rec.Message.Structure != "multipart/mixed(multipart/alternative(text/plain,text/html),application/pdf,message/rfc822(text/plain))" {
		t.Errorf("structure %s", rec.Message.Structure)
	}
}

const journalReport = `From: Journal Agent <journal@tenant.example>
To: sensor@journal.example
Subject: wrapper subject
X-MS-Journal-Report:
Content-Type: multipart/mixed; boundary=JR

--JR
Content-Type: text/plain; charset=us-ascii

Sender: ceo@tenant.example
Subject: Board minutes https://not-a-body-link.example/
Message-Id: <orig@tenant.example>
To: board@tenant.example, Expanded: board-list@tenant.example
Cc: counsel@law.example
Bcc: auditor@tenant.example

--JR
Content-Type: message/rfc822

From: CEO <ceo@tenant.example>
To: board-list@tenant.example
Subject: Board minutes
Message-ID: <orig@tenant.example>
Content-Type: text/plain

minutes at https://docs.tenant.example/minutes
--JR--
`

func TestJournalReportDescribesTheOriginal(t *testing.T) {
	msg := crlf(journalReport)
	rec := parseString(t, Options{}, msg)
	if rec.Source.Kind != api.SourceExchangeJournal {
		t.Errorf("source %+v", rec.Source)
	}
	wantJ := api.Journal{
		Sender: "ceo@tenant.example", Subject: "Board minutes https://not-a-body-link.example/", MessageID: "<orig@tenant.example>",
		Recipients: []api.JournalRecipient{
			{Address: "board@tenant.example", Type: "to", ExpandedFrom: "board-list@tenant.example"},
			{Address: "counsel@law.example", Type: "cc"},
			{Address: "auditor@tenant.example", Type: "bcc"},
		},
	}
	if fmt.Sprintf("%+v", *rec.Journal) != fmt.Sprintf("%+v", wantJ) {
		t.Errorf("journal\n got %+v\nwant %+v", *rec.Journal, wantJ)
	}
	m := rec.Message
	if m.Subject != "Board minutes" || m.MessageID != "<orig@tenant.example>" || len(m.From) != 1 || m.From[0].Address != "ceo@tenant.example" {
		t.Errorf("message describes the wrapper, not the original: %+v", m)
	}
	start := strings.Index(msg, "From: CEO")
	end := strings.Index(msg, "\r\n--JR--")
	sum := sha256.Sum256([]byte(msg[start:end]))
	if m.Size != int64(end-start) || m.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("message size/sha256 %d %s, want those of the original (%d bytes)", m.Size, m.SHA256, end-start)
	}
	if len(rec.URLs) != 1 || rec.URLs[0].URL != "https://docs.tenant.example/minutes" {
		t.Errorf("urls %+v (the summary is not body text)", rec.URLs)
	}
	if len(rec.Attachments) != 0 {
		t.Errorf("attachments %+v", rec.Attachments)
	}
}

func TestJournalReportWithoutOriginal(t *testing.T) {
	msg := crlf("X-MS-Journal-Report:\nContent-Type: multipart/mixed; boundary=JR\n\n--JR\nContent-Type: text/plain\n\nSender: a@b.example\nTo: c@d.example\n--JR--\n")
	rec := parseString(t, Options{}, msg)
	if rec.Journal == nil || len(rec.Journal.Recipients) != 1 {
		t.Fatalf("journal %+v", rec.Journal)
	}
	if !hasAnomaly(rec, "journal_original_missing") {
		t.Errorf("anomalies %+v", rec.Anomalies)
	}
	if rec.Message.MessageID != "" || len(rec.Message.Headers) != 0 {
		t.Errorf("message must not describe the wrapper: %+v", rec.Message)
	}
}

func hasAnomaly(rec *api.Record, code string) bool {
	for _, a := range rec.Anomalies {
		if a.Code == code {
			return true
		}
	}
	return false
}

// panicOnce panics on its first Read after n bytes, then behaves.
type panicOnce struct {
	r      io.Reader
	n      int
	read   int
	panicd bool
}

func (p *panicOnce) Read(b []byte) (int, error) {
	if !p.panicd && p.read >= p.n {
		p.panicd = true
		panic("boom")
	}
	n, err := p.r.Read(b[:min(len(b), 64)])
	p.read += n
	return n, err
}

func TestPanicBecomesADegradedRecordAndTheInputIsDrained(t *testing.T) {
	msg := mixedMessage(bytes.Repeat([]byte("pdf"), 10000))
	src := strings.NewReader(msg)
	rec, err := newTestParser(t, Options{}).Parse(&panicOnce{r: src, n: 400})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !hasAnomaly(rec, "parser_panic") {
		t.Errorf("no parser_panic anomaly: %+v", rec.Anomalies)
	}
	if rec.Message.Subject != "Invoice" {
		t.Errorf("what was extracted before the panic is lost: %+v", rec.Message)
	}
	if src.Len() != 0 {
		t.Errorf("%d bytes of input left unread; the SMTP session would fall out of step", src.Len())
	}
}

func TestInputFailureIsAnError(t *testing.T) {
	boom := errors.New("connection reset by peer")
	msg := mixedMessage([]byte("x"))
	r := io.MultiReader(strings.NewReader(msg[:len(msg)/2]), iotest.ErrReader(boom))
	rec, err := newTestParser(t, Options{}).Parse(r)
	if rec != nil || !errors.Is(err, ErrIncomplete) || errors.Is(err, ErrLocal) || !errors.Is(err, boom) {
		t.Fatalf("got %v, %v; want no record and ErrIncomplete wrapping %v", rec, err, boom)
	}
}

// memSink is a BlobSink in memory, with injectable failures.
type memSink struct {
	committed map[string][]byte
	aborted   int
	failWrite error
	failAt    int // Commit of the failAt-th blob (1-based) fails
	commits   int
}

type memBlob struct {
	s   *memSink
	buf bytes.Buffer
}

func (s *memSink) Create() (BlobWriter, error) { return &memBlob{s: s}, nil }

func (b *memBlob) Write(p []byte) (int, error) {
	if b.s.failWrite != nil {
		return 0, b.s.failWrite
	}
	return b.buf.Write(p)
}

func (b *memBlob) Commit(sum string) error {
	b.s.commits++
	if b.s.commits == b.s.failAt {
		return errors.New("disk full")
	}
	if b.s.committed == nil {
		b.s.committed = map[string][]byte{}
	}
	b.s.committed[sum] = b.buf.Bytes()
	return nil
}

func (b *memBlob) Abort() { b.s.aborted++ }

func TestContentModeStreamsAttachmentsToTheSink(t *testing.T) {
	pdf := bytes.Repeat([]byte("%PDF-1.4 "), 20000)
	sink := &memSink{}
	rec := parseString(t, Options{Attachments: AttachmentsContent, Blobs: sink}, mixedMessage(pdf))
	sum := sha256.Sum256(pdf)
	want := hex.EncodeToString(sum[:])
	if !bytes.Equal(sink.committed[want], pdf) {
		t.Fatalf("sink has %d blobs; pdf blob missing or wrong", len(sink.committed))
	}
	for _, a := range rec.Attachments {
		if a.Path == "2" && a.Blob != want {
			t.Errorf("attachment blob %q, want %q", a.Blob, want)
		}
	}
}

func TestContentModeSinkFailuresRefuseTheCopy(t *testing.T) {
	msg := mixedMessage([]byte("%PDF"))
	var le *LocalError

	sink := &memSink{failWrite: errors.New("EIO")}
	_, err := newTestParser(t, Options{Attachments: AttachmentsContent, Blobs: sink}).Parse(strings.NewReader(msg))
	if !errors.As(err, &le) || !errors.Is(err, ErrLocal) || errors.Is(err, ErrIncomplete) || sink.aborted == 0 {
		t.Errorf("write failure: err %v, aborted %d", err, sink.aborted)
	}

	sink = &memSink{failAt: 1}
	_, err = newTestParser(t, Options{Attachments: AttachmentsContent, Blobs: sink}).Parse(strings.NewReader(msg))
	if !errors.As(err, &le) || sink.aborted == 0 {
		t.Errorf("commit failure: err %v, aborted %d", err, sink.aborted)
	}
	if _, err := New(Options{Attachments: AttachmentsContent}); err == nil {
		t.Error("content mode without a sink accepted")
	}
}

func TestAttachmentsOffAndURLsOff(t *testing.T) {
	msg := mixedMessage([]byte("x"))
	rec := parseString(t, Options{Attachments: AttachmentsOff}, msg)
	if len(rec.Attachments) != 0 || len(rec.URLs) != 3 {
		t.Errorf("attachments off: %d attachments, %d urls", len(rec.Attachments), len(rec.URLs))
	}
	rec = parseString(t, Options{NoURLs: true}, msg)
	if len(rec.URLs) != 0 || len(rec.Attachments) != 3 {
		t.Errorf("urls off: %d attachments, %d urls", len(rec.Attachments), len(rec.URLs))
	}
}

func TestLineEndingAnomalies(t *testing.T) {
	msg := "Subject: x\r\nFrom: a@b\n\r\nbody\n"
	rec := parseString(t, Options{CRLFInput: true}, msg)
	if !hasAnomaly(rec, "bare_lf") {
		t.Errorf("SMTP input with bare LF: %+v", rec.Anomalies)
	}
	rec = parseString(t, Options{}, "Subject: x\nFrom: a@b\n\nbody\n")
	if len(rec.Anomalies) != 0 {
		t.Errorf("an LF file is not an anomaly: %+v", rec.Anomalies)
	}
}

func TestAnomalyAndStructureCaps(t *testing.T) {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=A\r\n\r\n")
	for range 300 {
		b.WriteString("--A\r\nno header line\r\n")
	}
	b.WriteString("--A--\r\n")
	rec := parseString(t, Options{MaxAnomalies: 50, MaxStructureBytes: 100}, b.String())
	if len(rec.Anomalies) != 50 {
		t.Errorf("%d anomalies, cap 50", len(rec.Anomalies))
	}
	if !strings.HasSuffix(rec.Message.Structure, "…") || len(rec.Message.Structure) > 130 {
		t.Errorf("structure %d bytes: %q", len(rec.Message.Structure), rec.Message.Structure)
	}
	for _, l := range []string{"anomalies", "structure"} {
		if !strings.Contains(strings.Join(rec.LimitsHit, ","), l) {
			t.Errorf("limits_hit %v lacks %s", rec.LimitsHit, l)
		}
	}
}

// A mailto link is a link: reply-to phishing lives in them. The bare address in the same
// body is not.
func TestMailtoLinksReachTheRecord(t *testing.T) {
	msg := crlf(`From: ceo@corp.example
To: ap@corp.example
Subject: urgent
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=utf-8

Reply to mailto:ceo.private@Reply.example?subject=Wire, not to ceo@corp.example.
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Write to <a href=3D"mailto:CEO.Private@REPLY.example?subject=3DWire&amp;cc=3Dx@=
y.example">ceo@corp.example</a></p>
--alt--
`)
	rec := parseString(t, Options{}, msg)
	var got []string
	for _, u := range rec.URLs {
		got = append(got, u.URL+" host="+u.Host+" "+strings.Join(u.Sources, "+"))
	}
	want := []string{
		"mailto:ceo.private@reply.example?subject=Wire host=reply.example text",
		"mailto:CEO.Private@reply.example?subject=Wire&cc=x@y.example host=reply.example html",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("urls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, u := range rec.URLs {
		if scheme, _, _ := strings.Cut(u.URL, ":"); scheme != "mailto" {
			t.Errorf("scheme of %q is %q", u.URL, scheme)
		}
	}
	if err := validateRecord(t, rec); err != nil {
		t.Errorf("record does not validate: %v", err)
	}
}
