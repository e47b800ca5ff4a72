package spool_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser"
	"github.com/journalsensor/sensor/spool"
)

// The spool's writer is what the parser's content mode writes to; this is the adapter the
// sensor wires in (cmd/sensor), checked against the parser's own interfaces.
var _ parser.BlobWriter = (*spool.BlobWriter)(nil)

type blobSink struct{ sp *spool.Spool }

func (s blobSink) Create() (parser.BlobWriter, error) {
	w, err := s.sp.CreateBlob()
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return w, nil
}

// A message parsed in content mode leaves its attachment in blobs/ under the sum the record
// names, and the batch formed from that record lists it.
func TestParserContentModeWritesIntoTheSpool(t *testing.T) {
	dir := t.TempDir()
	sp, err := spool.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parser.New(parser.Options{Attachments: parser.AttachmentsContent, Blobs: blobSink{sp}})
	if err != nil {
		t.Fatal(err)
	}
	// The attachment decodes to "%PDF-1.4\n% a tiny attachment for the spool contract test\n%%EOF\n";
	// its SHA-256 is from Python's hashlib over those bytes.
	const want = "e6610f9dcd5940aa890de91db9721a2f6c5fce250e97a9754093aa9ac4b0b7c2"
	msg := strings.Join([]string{
		"From: a@example.com",
		"To: b@example.org",
		"Subject: contract",
		"MIME-Version: 1.0",
		`Content-Type: multipart/mixed; boundary="b"`,
		"",
		"--b",
		"Content-Type: text/plain",
		"",
		"body text, dropped",
		"--b",
		`Content-Type: application/pdf; name="t.pdf"`,
		"Content-Transfer-Encoding: base64",
		`Content-Disposition: attachment; filename="t.pdf"`,
		"",
		"JVBERi0xLjQKJSBhIHRpbnkgYXR0YWNobWVudCBmb3IgdGhlIHNwb29sIGNvbnRyYWN0IHRlc3QKJSVFT0YK",
		"--b--",
		"",
	}, "\r\n")
	rec, err := p.Parse(strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.Attachments) != 1 || rec.Attachments[0].Blob != want {
		t.Fatalf("attachments = %+v, want one naming blob %s", rec.Attachments, want)
	}
	got, err := os.ReadFile(filepath.Join(dir, "blobs", want))
	if err != nil || string(got) != "%PDF-1.4\n% a tiny attachment for the spool contract test\n%%EOF\n" {
		t.Fatalf("blobs/%s = %q, %v", want, got, err)
	}
	rec.ID = ulid.Make().String()
	line, err := api.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := sp.Commit(rec.ID, line); err != nil {
		t.Fatal(err)
	}
	pending, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	b, err := sp.FormBatch(pending)
	if err != nil {
		t.Fatal(err)
	}
	if sums, err := sp.BatchBlobs(b.ID); err != nil || !slices.Equal(sums, []string{want}) {
		t.Errorf("BatchBlobs = %v, %v; want [%s]", sums, err, want)
	}
	if n := sp.SweepBlobs(); n != 0 {
		t.Errorf("sweep removed %d blobs a batch names", n)
	}
	if err := sp.DeleteBatch(b.ID); err != nil {
		t.Fatal(err)
	}
	if u := sp.Usage(); u.Blobs != 0 {
		t.Errorf("usage %+v after delivery, want no blobs", u)
	}
}
