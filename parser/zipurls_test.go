package parser

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// zipMessage is a message with data attached as docs.zip.
func zipMessage(data []byte) string {
	return crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nDocuments attached.\n"+
		"--b\nContent-Type: application/zip; name=docs.zip\nContent-Transfer-Encoding: base64\n\n") +
		testkit.Wrap76(base64.StdEncoding.EncodeToString(data)) + crlf("\n--b--\n")
}

// urlSources maps each URL of the record to its sources.
func urlSources(rec *api.Record) map[string][]string {
	out := map[string][]string{}
	for _, u := range rec.URLs {
		out[u.URL] = u.Sources
	}
	return out
}

// A phishing page or a readme with a link, zipped: the recipient opens the zip in the
// desktop's archive view and double-clicks the file. The members were hashed and their
// links never read.
func TestZipMemberLinksWereNeverRead(t *testing.T) {
	page := []byte(`<html><body><a href="https://page.example/login">Sign in</a></body></html>`)
	for _, c := range []struct {
		name  string
		files map[string][]byte
		opts  Options
		want  []string // links the record must hold, from an attachment
		never []string // links it must not hold
	}{
		{name: "html member",
			files: map[string][]byte{"statement.html": page},
			want:  []string{"https://page.example/login"}},
		{name: "text member, any case",
			files: map[string][]byte{"docs/README.TXT": []byte("Download the full document at https://text.example/doc\r\n")},
			want:  []string{"https://text.example/doc"}},
		{name: "svg member",
			files: map[string][]byte{"logo.svg": []byte(`<svg xmlns="http://www.w3.org/2000/svg"><a href="https://svg.example/x"><text>x</text></a></svg>`)},
			want:  []string{"https://svg.example/x"}},
		{name: "html member of a nested zip",
			files: map[string][]byte{"more.zip": zipOf(t, map[string][]byte{"inner.htm": page})},
			want:  []string{"https://page.example/login"}},
		{name: "html inside a member named otherwise",
			files: map[string][]byte{"invoice.pdf": page, "notes.doc": []byte("see https://doc.example/x")},
			never: []string{"https://page.example/login", "https://doc.example/x"}},
		{name: "no URLs wanted",
			files: map[string][]byte{"statement.html": page, "readme.txt": []byte("https://text.example/doc")},
			opts:  Options{NoURLs: true},
			never: []string{"https://page.example/login", "https://text.example/doc"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := parseString(t, c.opts, zipMessage(zipOf(t, c.files)))
			got := urlSources(rec)
			for _, u := range c.want {
				if !slices.Equal(got[u], []string{api.URLSourceAttachment}) {
					t.Errorf("%s: sources %v, want [%s]; urls %v", u, got[u], api.URLSourceAttachment, got)
				}
			}
			for _, u := range c.never {
				if _, ok := got[u]; ok {
					t.Errorf("%s listed, want it unread", u)
				}
			}
		})
	}
}

// Only members read whole are read for links: the bytes of one the budget cut short are
// not known to be the member's.
func TestZipMemberPastTheBudgetIsNotRead(t *testing.T) {
	page := "<a href=\"https://page.example/login\">x</a>" + strings.Repeat("<p>filler</p>\n", 1000)
	rec := parseString(t, Options{MaxArchiveBytes: 1000}, zipMessage(zipOf(t, map[string][]byte{"statement.html": []byte(page)})))
	if !slices.Contains(rec.LimitsHit, "archive_bytes") {
		t.Fatalf("limits %v, want archive_bytes", rec.LimitsHit)
	}
	if len(rec.URLs) != 0 {
		t.Errorf("urls %v, want none", urlSources(rec))
	}
}

// Members are kept for reading up to maxZipTextBytes per message: past it the limit is
// recorded, what was kept is still read, and a link the cap cuts in two is not listed as
// the half it kept.
func TestZipTextCap(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("first https://first.example/a\n")
	for b.Len() < maxZipTextBytes-100 {
		b.WriteString("filler text, no links here\n")
	}
	b.WriteString(strings.Repeat(" ", maxZipTextBytes-10-b.Len()))
	b.WriteString("https://cut.example/some/long/path\n")
	b.WriteString("after https://after.example/b\n")
	files := map[string][]byte{
		"a.txt":  b.Bytes(),
		"b.html": []byte(`<a href="https://later.example/c">x</a>`), // after the cap is spent
	}
	rec := parseString(t, Options{}, zipMessage(zipOf(t, files)))
	if !slices.Contains(rec.LimitsHit, limitZipTextBytes) {
		t.Errorf("limits %v, want %s", rec.LimitsHit, limitZipTextBytes)
	}
	got := urlSources(rec)
	if _, ok := got["https://first.example/a"]; !ok {
		t.Errorf("the link before the cap is missing; urls %v", got)
	}
	for u := range got {
		if !strings.HasPrefix(u, "https://first.example/") {
			t.Errorf("%s listed, want only links before the cap", u)
		}
	}
}

// Each member kept costs zipScanCost on top of its bytes: a zip of many one-line pages would
// otherwise set up a scanner for each.
func TestZipTextCapCountsMembers(t *testing.T) {
	const n = maxZipTextBytes/zipScanCost + 50
	files := map[string][]byte{}
	for i := range n {
		files[fmt.Sprintf("p%04d.html", i)] = fmt.Appendf(nil, `<a href="https://p%d.example/">x</a>`, i)
	}
	rec := parseString(t, Options{MaxArchiveMembers: -1, MaxAttachments: -1}, zipMessage(zipOf(t, files)))
	if !slices.Contains(rec.LimitsHit, limitZipTextBytes) {
		t.Errorf("limits %v, want %s", rec.LimitsHit, limitZipTextBytes)
	}
	got := urlSources(rec)
	if _, ok := got["https://p0.example/"]; !ok || len(got) >= n {
		t.Errorf("%d of %d pages read for links, want the first ones and fewer than all", len(got), n)
	}
}
