package parser

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// dedupeMsg is a small message with one attachment ("hello\n", base64) and two From
// mailboxes. Its key is worked out by hand in TestDedupeKeyLiteral.
const dedupeMsg = "Message-ID: < Abc.123@Example.COM >\r\n" +
	"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n" +
	"From: \"Ann\" <Ann@Example.com>, Bob <bob@example.org>\r\n" +
	"To: carol@example.net\r\n" +
	"Subject: =?UTF-8?Q?hi?=\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b\"\r\n" +
	"\r\n" +
	"--b\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"hello\r\n" +
	"--b\r\n" +
	"Content-Type: application/octet-stream\r\n" +
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"aGVsbG8K\r\n" +
	"--b--\r\n"

func dedupeKeyOf(t *testing.T, o Options, msg string) string {
	t.Helper()
	rec, err := newTestParser(t, o).Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	return rec.Message.DedupeKey
}

// TestDedupeKeyLiteral pins the canonical encoding. The expected value was computed outside
// the code under test, from the encoding in docs/dedupe-key.md:
//
//	ns() { printf '%d:%s,' "${#1}" "$1"; }   # LC_ALL=C
//	{ ns dedupe-key/v1; ns Abc.123@example.com; ns 2026-03-02T09:00:00Z; ns 2;
//	  ns ann@example.com; ns bob@example.org; ns 1;
//	  ns "$(printf 'hello\n' | sha256sum | cut -d' ' -f1)"; } | sha256sum
func TestDedupeKeyLiteral(t *testing.T) {
	const want = "v1:90cd72ceb82d7dd63fef1bb5ce1dc4eaa7eb26e570ff83f58eb517c2933ee56a"
	got := dedupeKeyOf(t, Options{}, dedupeMsg)
	if got != want {
		t.Errorf("key %s, want %s", got, want)
	}
	if !regexp.MustCompile(`^v1:[0-9a-f]{64}$`).MatchString(got) {
		t.Errorf("key %q is not v1: and 64 hex digits", got)
	}
}

func TestDedupeKeySameMessage(t *testing.T) {
	base := dedupeKeyOf(t, Options{}, dedupeMsg)
	same := map[string]string{
		// A BCC copy: another recipient, trace fields added on the way, its own Delivered-To.
		"bcc copy": "Return-Path: <ann@example.com>\r\n" +
			"Delivered-To: dave@example.net\r\n" +
			"Received: from mx.example.com (mx.example.com [192.0.2.1]) by mx.example.net; Mon, 02 Mar 2026 10:00:05 +0100\r\n" +
			"X-Relay-Stamp: 7\r\n" +
			strings.Replace(dedupeMsg, "To: carol@example.net\r\n", "To: carol@example.net\r\nBcc: dave@example.net\r\n", 1),
		// A gateway's second batch of recipients, with the header refolded.
		"split delivery": strings.Replace(dedupeMsg, "To: carol@example.net\r\n", "To: erin@example.net,\r\n frank@example.net\r\nCc: gina@example.net\r\n", 1),
		// Another way to write the same id, instant and addresses.
		"id brackets and domain case": strings.Replace(dedupeMsg, "< Abc.123@Example.COM >", "<Abc.123@example.com> (comment)", 1),
		"date in another zone":        strings.Replace(dedupeMsg, "Mon, 02 Mar 2026 10:00:00 +0100", "Mon, 2 Mar 2026 04:00:00 -0500", 1),
		"from case, names and order":  strings.Replace(dedupeMsg, "\"Ann\" <Ann@Example.com>, Bob <bob@example.org>", "=?UTF-8?B?Qm9i?= <BOB@example.org>, ann@example.com", 1),
		"subject re-encoded":          strings.Replace(dedupeMsg, "=?UTF-8?Q?hi?=", "hi", 1),
		// A relay that re-encodes the attachment: same decoded bytes.
		"attachment rewrapped": strings.Replace(dedupeMsg, "aGVsbG8K\r\n", "aGVs\r\nbG8K\r\n", 1),
		// The body text is not in the key (gateways rewrite links and add disclaimers).
		"body text changed": strings.Replace(dedupeMsg, "hello\r\n--b", "hello\r\n-- \r\nScanned by a gateway\r\n--b", 1),
	}
	for name, msg := range same {
		if got := dedupeKeyOf(t, Options{}, msg); got != base {
			t.Errorf("%s: key %s, want the original's %s", name, got, base)
		}
	}
	if got := dedupeKeyOf(t, Options{Attachments: AttachmentsContent, Blobs: discardBlobs{}}, dedupeMsg); got != base {
		t.Errorf("content mode: key %s, want metadata mode's %s", got, base)
	}
}

func TestDedupeKeyDifferentMessage(t *testing.T) {
	keys := map[string]string{"original": dedupeKeyOf(t, Options{}, dedupeMsg)}
	different := map[string]string{
		"date":                strings.Replace(dedupeMsg, "10:00:00 +0100", "10:00:01 +0100", 1),
		"from":                strings.Replace(dedupeMsg, "Bob <bob@example.org>", "Bob <bob@example.com>", 1),
		"one from less":       strings.Replace(dedupeMsg, ", Bob <bob@example.org>", "", 1),
		"attachment bytes":    strings.Replace(dedupeMsg, "aGVsbG8K", "aGVsbG8h", 1),
		"attachment repeated": strings.Replace(dedupeMsg, "--b--", "--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8K\r\n--b--", 1),
		"id local part case":  strings.Replace(dedupeMsg, "Abc.123", "abc.123", 1),
		"no message-id":       strings.Replace(dedupeMsg, "Message-ID: < Abc.123@Example.COM >\r\n", "", 1),
		"unparseable date":    strings.Replace(dedupeMsg, "Mon, 02 Mar 2026 10:00:00 +0100", "yesterday", 1),
	}
	// An unnamed octet-stream part is still an attachment; without one the part is text.
	different["no attachment"] = strings.Replace(dedupeMsg, "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8K", "Content-Type: text/plain\r\n\r\nhello", 1)
	for name, msg := range different {
		k := dedupeKeyOf(t, Options{}, msg)
		if k == "" {
			t.Errorf("%s: no key", name)
			continue
		}
		for other, ok := range keys {
			if ok == k {
				t.Errorf("%s and %s share key %s", name, other, k)
			}
		}
		keys[name] = k
	}
}

func TestDedupeKeyAbsent(t *testing.T) {
	noID := strings.Replace(dedupeMsg, "Message-ID: < Abc.123@Example.COM >\r\n", "", 1)
	absent := map[string]struct {
		opts Options
		msg  string
	}{
		"attachments off":    {Options{Attachments: AttachmentsOff}, dedupeMsg},
		"no id, no date":     {Options{}, strings.Replace(noID, "Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n", "", 1)},
		"no id, no from":     {Options{}, strings.Replace(noID, "From: \"Ann\" <Ann@Example.com>, Bob <bob@example.org>\r\n", "", 1)},
		"journal, no report": {Options{}, "X-MS-Journal-Report:\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nSender: a@example.com\r\n--b--\r\n"},
	}
	for name, c := range absent {
		if k := dedupeKeyOf(t, c.opts, c.msg); k != "" {
			t.Errorf("%s: key %s, want none", name, k)
		}
	}
}

// journalOriginal cuts the attached original out of a corpus journal report: the bytes after
// the message/rfc822 part's blank line, up to the line break before the closing boundary.
func journalOriginal(t *testing.T, report []byte) []byte {
	t.Helper()
	const start = "Content-Type: message/rfc822\n\n"
	s := bytes.Index(report, []byte(start))
	e := bytes.LastIndex(report, []byte("\n--_1d193813-fafc-4b56-8a91-eb0391210649_--"))
	if s < 0 || e < s {
		t.Fatal("journal report does not have the expected layout")
	}
	return report[s+len(start) : e]
}

func TestDedupeKeyJournalReport(t *testing.T) {
	dir := testkit.CorpusDir(t)
	report, err := os.ReadFile(filepath.Join(dir, "formats", "exo-journal-report-single-rcpt.eml"))
	if err != nil {
		t.Fatal(err)
	}
	p := newTestParser(t, Options{})
	key := func(name string, b []byte) string {
		t.Helper()
		rec, err := p.Parse(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rec.Message.DedupeKey == "" {
			t.Fatalf("%s: no key", name)
		}
		return rec.Message.DedupeKey
	}
	wrapped := key("report", report)

	original := journalOriginal(t, report)
	if got := key("original sent directly", original); got != wrapped {
		t.Errorf("original sent directly: key %s, the journal report's is %s", got, wrapped)
	}
	// The original as a BCC copy delivered to another mailbox.
	bcc := append([]byte("Delivered-To: audit@example.net\nReceived: from edge.example.net by mx.example.net; Tue, 17 Jul 2018 12:13:40 +0000\n"), original...)
	if got := key("bcc copy", bcc); got != wrapped {
		t.Errorf("bcc copy: key %s, the journal report's is %s", got, wrapped)
	}

	// A second report of the same message for another recipient batch: Exchange writes a
	// new wrapper (its own id, date, envelope and summary) around the same original.
	second := string(report)
	for old, repl := range map[string]string{
		"Recipient: lulu.zingzing@company.com\n":                                      "Recipient: bob.smith@company.com\nRecipient: charlie.jones@company.com\n",
		"To: <lulu.zingzing@company.com>\n":                                           "To: <bob.smith@company.com>\n",
		"Message-ID: <b86315c6-3a8a-46d4-b1dd-662670136736@journal.report.generator>": "Message-ID: <0f0e0d0c-0b0a-4909-8807-060504030201@journal.report.generator>",
		"Date: Tue, 17 Jul 2018 12:13:28 +0000":                                       "Date: Tue, 17 Jul 2018 12:13:31 +0000",
	} {
		if !strings.Contains(second, old) {
			t.Fatalf("report lacks %q", old)
		}
		second = strings.Replace(second, old, repl, 1)
	}
	rec, err := p.Parse(strings.NewReader(second))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Journal.Recipients); n != 2 {
		t.Fatalf("second report lists %d recipients, want 2", n)
	}
	if rec.Message.DedupeKey != wrapped {
		t.Errorf("second report: key %s, the first's is %s", rec.Message.DedupeKey, wrapped)
	}
}

// knownCorpusVariants are corpus files that share a key with another file whose body is
// not byte for byte theirs. Copies says whether they are still copies of one message.
var knownCorpusVariants = map[string]struct {
	copy   bool
	reason string
}{
	"mail/thunderbird-comm-central/20-plaintext+(HTML+embedded-image)+attachment.eml": {true, "file 10 with its text part 8bit instead of base64 (and the number in Subject)"},
	// Test fixtures made by editing one message's body or MIME header. The key does not see
	// body text (docs/dedupe-key.md), so they share a key by design.
	"mail/zbateson-mail-mime-parser/invalid-charset.txt":                      {false, "github-102-01.txt with another body text"},
	"mail/enmime/testdata/low-quality/malformed-base64-attach.raw":            {false, "bad-final-boundary.raw with its parts' headers edited"},
	"mail/enmime/testdata/low-quality/bad-header-wrap.raw":                    {false, "bad-final-boundary.raw with a name= line's indentation removed; read as a broken fold, its attachment hashes alike"},
	"mail/enmime/testdata/low-quality/unk-encoding-part.raw":                  {false, "bad-final-boundary.raw with its attachment's encoding renamed base9000; the body is sniffed as the base64 it is, so the attachment hashes alike"},
	"mail/enmime/testdata/mail/mime-blank-media-name.raw":                     {false, "mime-bad-content-type.raw with parameters edited"},
	"mail/enmime/testdata/mail/mime-duplicate-param.raw":                      {false, "mime-bad-content-type.raw with parameters edited"},
	"mail/enmime/testdata/mail/mime-unquoted-tspecials-param.raw":             {false, "mime-bad-content-type.raw with parameters edited"},
	"mail/thunderbird-comm-central/smime/alice.dsig.SHA256.multipart.bad.eml": {false, "the signed message with its text tampered"},
}

// TestDedupeKeyCorpus computes the key of every corpus message and checks that messages that
// share one are copies: the same original bytes, the same original body once line endings
// are ignored, or a file listed in knownCorpusVariants.
func TestDedupeKeyCorpus(t *testing.T) {
	dir := testkit.CorpusDir(t)
	files := testkit.CorpusMessages(t, dir)
	p := newTestParser(t, Options{})
	type entry struct {
		rel  string
		rec  *api.Record
		body []byte
	}
	byKey := map[string][]entry{}
	keyed := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := p.Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, f)
		rel = filepath.ToSlash(rel)
		k := rec.Message.DedupeKey
		if k == "" {
			continue
		}
		keyed++
		byKey[k] = append(byKey[k], entry{rel, rec, originalBody(data, rec.Journal != nil)})
	}
	pairs, identical, sameBody, reencoded, edited := 0, 0, 0, 0, 0
	for _, group := range byKey {
		for i := range group {
			for j := i + 1; j < len(group); j++ {
				a, b := group[i], group[j]
				pairs++
				va, aok := knownCorpusVariants[a.rel]
				vb, bok := knownCorpusVariants[b.rel]
				switch {
				case a.rec.Message.SHA256 == b.rec.Message.SHA256:
					identical++
				case bytes.Equal(a.body, b.body):
					sameBody++
				case (aok && !va.copy) || (bok && !vb.copy):
					edited++
				case aok || bok:
					reencoded++
				default:
					t.Errorf("%s and %s share key %s but their bodies differ", a.rel, b.rel, a.rec.Message.DedupeKey)
				}
			}
		}
	}
	t.Logf("%d messages, %d with a key, %d distinct keys; %d pairs share a key: %d with identical originals, %d with the same body under another header, %d re-encoded copies, %d edited fixtures",
		len(files), keyed, len(byKey), pairs, identical, sameBody, reencoded, edited)
}

// originalBody is the body of the scored message in a message file, with line endings made
// LF (the corpus keeps some messages with CR or CRLF line ends). For a journal report it is
// the attached original's body.
func originalBody(b []byte, journal bool) []byte {
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	b = bytes.ReplaceAll(b, []byte("\r"), []byte("\n"))
	if journal {
		if _, after, ok := bytes.Cut(b, []byte("Content-Type: message/rfc822\n\n")); ok {
			b = after
		}
	}
	if _, after, ok := bytes.Cut(b, []byte("\n\n")); ok {
		return after
	}
	return b
}

// discardBlobs is a content-mode sink that keeps nothing.
type discardBlobs struct{}

func (discardBlobs) Create() (BlobWriter, error) { return discardBlob{}, nil }

type discardBlob struct{}

func (discardBlob) Write(p []byte) (int, error) { return len(p), nil }
func (discardBlob) Commit(string) error         { return nil }
func (discardBlob) Abort()                      {}
