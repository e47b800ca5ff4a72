package tnef

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
)

// wantFile is what a corpus stream must yield for one file. The values come from the
// Debian tnef 1.4.18 and ytnef tools, not from this package: see testdata/README.md.
type wantFile struct {
	title, long, short, ext, mime string
	method                        int
	size                          int64
	sha256                        string
}

var corpusCases = []struct {
	name  string
	path  string // under the corpus directory
	eml   bool   // the stream is the application/ms-tnef part of a message
	class string
	files []wantFile
}{
	{
		name: "signed", path: "formats/tnef/uponu-signed.tnef",
		class: "IPM.Note.SMIME.MultipartSigned",
		files: []wantFile{{
			title: "smime.p7m", mime: "multipart/signed", method: 1, size: 11179,
			sha256: "8a860e61c797df820d9f74112d026e64ee061cf9b3480842535ed8fb5bf3d347",
		}},
	},
	{
		name: "umlaute", path: "formats/tnef/uponu-umlaute.tnef",
		class: "IPM.Microsoft Mail.Note",
		files: []wantFile{{
			// The title's bytes are "o\xa8a\xa8u\xa8" in code page 1252 (a diaeresis after
			// each vowel); the long name is UTF-16 with combining diaeresis U+0308.
			title: "Dog with o¨a¨u¨.jpg", long: "Dog with o\u0308a\u0308u\u0308.jpg",
			short: "Dogwit~1.jpg", ext: ".jpg", mime: "image/jpeg", method: 1, size: 59561,
			sha256: "68180ecf3aa5f71f523b0c219042b91d9556542d605d2a1f24237ea273b9cced",
		}},
	},
	{
		name: "ukr", path: "mail/mimekit/tnef/ukr.eml", eml: true,
		class: "IPM.Microsoft Mail.Note",
	},
	{
		name: "amazonworkmail", path: "mail/sisimai-set-of-emails/bsd/lhost-amazonworkmail-01.eml", eml: true,
		// No attMessageClass: the class is PR_MESSAGE_CLASS in attMsgProps.
		class: "REPORT.IPM.Note.NDR",
	},
	{
		name: "spamassassin-bounce", path: "mail/spamassassin/t.rules/BOUNCE_MESSAGE/fp-bug5882-att4301", eml: true,
		class: "IPM.Microsoft Mail.Read Receipt",
	},
}

func corpusStream(t *testing.T, dir, path string, eml bool) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, path))
	if err != nil {
		t.Fatal(err)
	}
	if !eml {
		return raw
	}
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	got := findTNEF(t, m.Header.Get("Content-Type"), m.Header.Get("Content-Transfer-Encoding"), m.Body)
	if got == nil {
		t.Fatalf("%s: no application/ms-tnef part", path)
	}
	return got
}

// findTNEF returns the decoded body of the first application/ms-tnef part, walking nested
// multiparts.
func findTNEF(t *testing.T, ctype, cte string, body io.Reader) []byte {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return nil
	}
	switch {
	case mt == "application/ms-tnef":
		if !strings.EqualFold(strings.TrimSpace(cte), "base64") {
			t.Fatalf("ms-tnef part in %q", cte)
		}
		b, err := io.ReadAll(base64.NewDecoder(base64.StdEncoding, body))
		if err != nil {
			t.Fatal(err)
		}
		return b
	case strings.HasPrefix(mt, "multipart/"):
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return nil
			}
			if b := findTNEF(t, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); b != nil {
				return b
			}
		}
	}
	return nil
}

func TestCorpus(t *testing.T) {
	dir := testkit.CorpusDir(t)
	for _, tc := range corpusCases {
		t.Run(tc.name, func(t *testing.T) {
			in := corpusStream(t, dir, tc.path, tc.eml)
			res, h := decodeHash(t, in, Options{})
			checkInvariants(t, res, Options{})
			if res.MessageClass != tc.class {
				t.Errorf("MessageClass %q, want %q", res.MessageClass, tc.class)
			}
			if len(res.Anomalies) != 0 || len(res.LimitsHit) != 0 {
				t.Errorf("anomalies %v, limits %v", res.Anomalies, res.LimitsHit)
			}
			if len(res.Files) != len(tc.files) || h.calls != len(tc.files) {
				t.Fatalf("%d files, %d onData calls, want %d: %+v", len(res.Files), h.calls, len(tc.files), res.Files)
			}
			for i, w := range tc.files {
				f := res.Files[i]
				got := wantFile{f.Title, f.LongFilename, f.Filename, f.Extension, f.MIMEType, f.Method, f.Size, f.Data.(string)}
				if got != w {
					t.Errorf("file %d:\n got %+v\nwant %+v", i, got, w)
				}
				if f.Parent != -1 || f.Embedded || f.Truncated {
					t.Errorf("file %d: %+v", i, f)
				}
			}
		})
	}
}

// TestCorpusCut cuts each corpus stream at (nearly) every offset: the decoder must return
// quickly with a result whose files are a prefix of the whole stream's, and report
// truncation exactly when the cut is inside an attribute.
func TestCorpusCut(t *testing.T) {
	dir := testkit.CorpusDir(t)
	for _, tc := range corpusCases {
		t.Run(tc.name, func(t *testing.T) {
			cutEverywhere(t, corpusStream(t, dir, tc.path, tc.eml))
		})
	}
	for _, name := range []string{"multi.tnef", "inner.tnef"} {
		t.Run(name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			cutEverywhere(t, in)
		})
	}
}

func cutEverywhere(t *testing.T, in []byte) {
	full, _ := decodeHash(t, in, Options{})
	bounds := boundaries(in)
	// Every offset of the first 12 KiB (2 KiB under -race) and of the last 256 bytes, and
	// every 61st between.
	dense := 12 << 10
	if raceEnabled {
		dense = 2 << 10
	}
	for n := 0; n < len(in); n++ {
		if n >= dense && n < len(in)-256 && n%61 != 0 {
			continue
		}
		res, h := decodeHash(t, in[:n], Options{})
		checkInvariants(t, res, Options{})
		if len(res.Files) > len(full.Files) {
			t.Fatalf("cut %d: %d files, whole stream has %d", n, len(res.Files), len(full.Files))
		}
		calls := 0
		for i, f := range res.Files {
			w := full.Files[i]
			if f.Size > w.Size || f.Parent != w.Parent {
				t.Fatalf("cut %d file %d: %+v, whole: %+v", n, i, f, w)
			}
			if f.Data != nil {
				calls++
			}
			if f.Size == w.Size && !f.Truncated && f.Data != nil && f.Data != w.Data {
				t.Fatalf("cut %d file %d: same size, different bytes", n, i)
			}
		}
		if h.calls != calls {
			t.Fatalf("cut %d: %d onData calls, %d files with data", n, h.calls, calls)
		}
		if bounds[n] == hasCode(res, AnomalyTruncated) {
			t.Fatalf("cut %d (boundary %v): anomalies %v", n, bounds[n], res.Anomalies)
		}
	}
}

// boundaries marks the offsets where a stream can end cleanly: after the header and after
// each top-level attribute. A cut before the header is reported as truncated too.
func boundaries(in []byte) map[int]bool {
	b := map[int]bool{}
	off := 6
	for off <= len(in) {
		b[off] = true
		if off+9 > len(in) {
			break
		}
		n := int(le32u(in[off+5:]))
		off += 9 + n + 2
	}
	return b
}

func le32u(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
