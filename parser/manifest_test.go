package parser

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// manifestAttachment is one entry of MANIFEST.tsv's attachments column
// (content-type|filename|decoded-size|sniffed-type), as an independent parser (Python's
// email package) saw it.
type manifestAttachment struct {
	file, ctype, name string
	size              int64
}

func readManifest(t *testing.T, dir string) []manifestAttachment {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "mail", "MANIFEST.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []manifestAttachment
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for first := true; sc.Scan(); first = false {
		cols := strings.Split(sc.Text(), "\t")
		if first || len(cols) < 12 || cols[11] == "" {
			continue
		}
		for _, a := range strings.Split(cols[11], ";") {
			f := strings.Split(a, "|")
			if len(f) != 4 {
				t.Fatalf("MANIFEST.tsv %s: attachment %q is not type|name|size|sniffed", cols[0], a)
			}
			size, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Fatalf("MANIFEST.tsv %s: size %q: %v", cols[0], f[2], err)
			}
			out = append(out, manifestAttachment{file: cols[0], ctype: f[0], name: f[1], size: size})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestManifestAttachments: every attachment the manifest lists is found, by filename and
// decoded size. Where the manifest is wrong, manifestDisagreements says what the bytes hold
// instead, and why; those cases are asserted too, so a change in either direction is seen.
func TestManifestAttachments(t *testing.T) {
	dir := testkit.CorpusDir(t)
	want := readManifest(t, dir)
	if len(want) < 250 {
		t.Fatalf("only %d attachments in MANIFEST.tsv", len(want))
	}
	p := newTestParser(t, Options{})
	records := map[string]*api.Record{}
	found, settled := 0, 0
	for _, m := range want {
		rec := records[m.file]
		if rec == nil {
			data, err := os.ReadFile(filepath.Join(dir, "mail", m.file))
			if err != nil {
				t.Fatal(err)
			}
			if rec, err = p.Parse(bytes.NewReader(data)); err != nil {
				t.Fatalf("%s: %v", m.file, err)
			}
			records[m.file] = rec
		}
		key := m.file + "|" + m.name
		if d, ok := manifestDisagreements[key]; ok {
			if !hasAttachment(rec, d.name, d.size) {
				t.Errorf("%s: expected %q (%d bytes) in place of the manifest's %q (%d bytes): %s; got %s",
					m.file, d.name, d.size, m.name, m.size, d.why, listAttachments(rec))
			}
			settled++
			continue
		}
		if !matchManifest(rec, m) {
			t.Errorf("%s: no attachment %q of %d bytes (%s); got %s", m.file, m.name, m.size, m.ctype, listAttachments(rec))
			continue
		}
		found++
	}
	if settled != len(manifestDisagreements) {
		t.Errorf("%d disagreements are listed but %d matched a manifest entry", len(manifestDisagreements), settled)
	}
	t.Logf("%d of %d manifest attachments found as listed, %d found as the bytes say instead", found, len(want), settled)
}

// matchManifest finds m in rec, allowing for two systematic habits of the manifest's
// parser (Python's email package, compat32): it cuts names at 60 characters, and it leaves
// RFC 2047 encoded words in parameters undecoded. Those names are compared as a prefix, or
// after decoding with the standard library's decoder, which shares no code with ours.
func matchManifest(rec *api.Record, m manifestAttachment) bool {
	if hasAttachment(rec, m.name, m.size) {
		return true
	}
	if utf8.RuneCountInString(m.name) == 60 {
		for _, a := range rec.Attachments {
			if a.Size == m.size && strings.HasPrefix(a.Filename, m.name) {
				return true
			}
		}
	}
	if strings.Contains(m.name, "=?") {
		dec := mime.WordDecoder{CharsetReader: func(cs string, r io.Reader) (io.Reader, error) {
			e, err := htmlindex.Get(cs)
			if err != nil {
				return nil, err
			}
			return e.NewDecoder().Reader(r), nil
		}}
		if name, err := dec.DecodeHeader(m.name); err == nil && hasAttachment(rec, name, m.size) {
			return true
		}
	}
	return false
}

func hasAttachment(rec *api.Record, name string, size int64) bool {
	for _, a := range rec.Attachments {
		if a.Filename == name && a.Size == size {
			return true
		}
	}
	return false
}

func listAttachments(rec *api.Record) string {
	var b strings.Builder
	for _, a := range rec.Attachments {
		b.WriteString("[" + a.Path + " " + strconv.Quote(a.Filename) + " " + strconv.FormatInt(a.Size, 10) + "]")
	}
	return b.String()
}

// manifestDisagreements are manifest entries the bytes contradict, keyed by file|name.
// Each was settled by reading the message's bytes; the reasoning is in why.
var manifestDisagreements = map[string]struct {
	name string
	size int64
	why  string
}{
	"enmime/testdata/low-quality/unk-encoding-part.raw|foo_9E5D72.zip": {"foo_9E5D72.zip", 7,
		"Content-Transfer-Encoding: base9000 is no encoding, and the body is the one line PGh0bWw+Cg==, " +
			"clearly base64: it is decoded (sniffed_base64) to the 7 bytes \"<html>\\n\", as in " +
			"bad-final-boundary.raw, which is this message with the encoding declared; the manifest kept the 13 raw bytes"},
	`james-mime4j/mimetools-testmsgs/multi-2evil.msg|/evil/because:of\path\3d-=?ISO-8859-1?Q?=63?=om=?US-ASCII*EN`: {
		`/evil/because:of\path\3d-compress.gif`, 419,
		"the name holds two encoded words, the second with an RFC 2231 language tag (US-ASCII*EN, " +
			"RFC 2231 §5): =63 is \"c\" and the second word is \"pr\", so the name is 3d-compress.gif; " +
			"the manifest cut it at 60 characters, undecoded"},
	"rspamd/mixed-html-zip.eml|ComplaintLetter_1508658544.zip": {"ComplaintLetter_1508658544.zip", 51,
		"the application/zip part has no Content-Transfer-Encoding, and its body is one 68-character line " +
			"of base64 (Rspamd's fixture for this evasion): decoded (sniffed_base64) it is 51 bytes starting " +
			"PK\\x03\\x04; the manifest kept the 68 raw bytes"},
	"enmime/testdata/mail/mime-bad-8bit-filename.raw|������.doc": {"管理.doc", 7,
		"the raw 8-bit name is valid UTF-8 (E7 AE A1 E7 90 86); the manifest replaced each byte"},
	"mikel-mail/attachment_emails/attachment_nonascii_filename.eml|ci��le.txt": {"ciële.txt", 11,
		"the raw name bytes are C3 AB, UTF-8 for ë; the manifest replaced each byte"},
	"flanker/outlook-express.eml|�������� ����������������.txt": {"�½� �ı��ĵ�.txt", 35,
		"the name bytes are valid UTF-8 that already holds U+FFFD (EF BF BD), so they are kept as they are"},
	"enmime/testdata/low-quality/bad-header-wrap.raw|": {"7DDA4_foo_9E5D72.zip", 7,
		"a name= line lost its indentation. A Content-Disposition field follows it, so it is read as " +
			"a broken fold (broken_fold), as Rspamd and enmime read it, and the attachment is the 7 bytes " +
			"its base64 holds. The manifest's parser ended the header at that line and decoded the rest " +
			"of the header as base64 (63 bytes, no name)"},
	"james-mime4j/mimetools-testmsgs/twopart.msg|/home1/eucyon/data/img_event/postcard/uk7200_110_6.jpg": {
		"/home1/eucyon/data/img_event/postcard/uk7200_110_6.jpg", 30631,
		"the header says \"base64 \" with a trailing space, which the manifest did not recognise, so it " +
			"counted the encoded text (41381 bytes); 40844 base64 characters ending in == decode to 30631"},
	"rspamd/fname.eml|=?UTF-8?B?W+yCvOyEseyDneuqhV0yMDIwLjA4Lg==?=  =?UTF-8?B?MTQg": {
		"[삼성생명]2020.08.14 데일리 경제뉴스.pdf", 3,
		"the body is the 5 characters yCvOy: four decode to 3 bytes and the fifth is a dangling sextet; " +
			"Python's base64 gave up and kept the 5 raw bytes. The name is the two encoded words joined"},
	"rspamd/fname.eml|=?utf-8?B?MDEwMjlfNDAyMTEwXzEwNjIwX1JHVDA2OTAyX1BSVDE4ME1MXz": {
		"01029_402110_10620_RGT06902_PRT180ML_20200803_101820.pdf", 3,
		"same 5-character body as the first part; the name is an unquoted encoded word (name==?utf-8?B?...)"},
	"rspamd/spam.eml|=?windows-1251?B?0e/o8e7qLcDz5Oju/e326Orr7u/l5OjoLnR4?=   =?": {
		"Список-Аудиоэнциклопедии.txt", 13470,
		"the manifest cut the undecoded name; its first encoded word alone is \"Список-Аудиоэнциклопедии.tx\""},
	"php-mime-mail-parser/m0018|=?ks_c_5601-1987?B?u+fB+C5KUEc=?=": {"사진.JPG", 174,
		"233 base64 characters: 232 decode to 174 bytes and one is left over; Python gave up and kept " +
			"the 233 raw bytes. The name is KS C 5601 (EUC-KR) for 사진.JPG"},
}
