package parser

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// A winmail.dat lists the files inside it. Expected values from the Debian tnef tool:
// `tnef -C out uponu-umlaute.tnef; sha256sum out/*` gives one file, "Dog with öäü.jpg"
// with combining diaereses (o U+0308 ...), 59561 bytes, sha256 68180ecf...
func TestTNEFFilesAreAttachments(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testkit.CorpusDir(t), "formats", "tnef", "uponu-umlaute.tnef"))
	if err != nil {
		t.Fatal(err)
	}
	msg := crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n\nsee attached\n--b\n"+
		"Content-Type: application/ms-tnef; name=winmail.dat\nContent-Transfer-Encoding: base64\n\n") +
		testkit.Wrap76(base64.StdEncoding.EncodeToString(data)) + crlf("--b--\n")
	rec := parseString(t, Options{}, msg)
	w := attachmentAt(t, rec, "2")
	if w.Filename != "winmail.dat" || w.Size != int64(len(data)) || w.SHA256 != sha256Hex(data) {
		t.Errorf("winmail.dat = %+v", w)
	}
	f := attachmentAt(t, rec, "2/1")
	want := "Dog with o\u0308a\u0308u\u0308.jpg"
	if f.Filename != want || f.Size != 59561 || f.ContentType != "image/jpeg" || f.DetectedType != "image/jpeg" ||
		f.SHA256 != "68180ecf3aa5f71f523b0c219042b91d9556542d605d2a1f24237ea273b9cced" {
		t.Errorf("file in TNEF = %+v, want %q of 59561 bytes", f, want)
	}
	if f.Container == nil || f.Container.Kind != "tnef" || f.Container.Path != "2" {
		t.Errorf("container = %+v, want tnef at 2", f.Container)
	}
}

// uuencoded and yEnc blocks in plain text become attachments. The uuencoded bytes are
// "hello\n" (the line &:&5L;&\* : length 6, then 6-bit groups plus 32, checked with
// Python's binascii.b2a_uu);
// the yEnc bytes are "abc": each byte plus 42 gives 0x8b 0x8c 0x8d.
func TestEncodedFilesInText(t *testing.T) {
	msg := crlf("Content-Type: text/plain\n\nSee below.\nbegin 644 hello.txt\n&:&5L;&\\*\n`\nend\n") +
		"=ybegin line=128 size=3 name=abc.bin\r\n\x8b\x8c\x8d\r\n=yend size=3\r\n"
	rec := parseString(t, Options{}, msg)
	u := attachmentAt(t, rec, "1/1")
	if u.Filename != "hello.txt" || u.Size != 6 || u.SHA256 != sha256Hex([]byte("hello\n")) || u.Container.Kind != "uuencode" {
		t.Errorf("uuencoded = %+v", u)
	}
	y := attachmentAt(t, rec, "1/2")
	if y.Filename != "abc.bin" || y.Size != 3 || y.SHA256 != sha256Hex([]byte("abc")) || y.Container.Kind != "yenc" {
		t.Errorf("yEnc = %+v", y)
	}
}

// A signed message gets its crypto layer with the signer's certificate hashed. Expected
// values are openssl's, from parser/smime/testdata/corpus-oracle.tsv (the signature part
// decoded, `openssl pkcs7 -inform DER -print_certs`, each certificate's DER through
// sha256sum).
func TestSignedMessageCrypto(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testkit.CorpusDir(t), "mail", "flanker", "signed.eml"))
	if err != nil {
		t.Fatal(err)
	}
	rec := parseString(t, Options{}, string(data))
	if len(rec.Message.Crypto) != 1 {
		t.Fatalf("crypto = %+v, want one S/MIME layer", rec.Message.Crypto)
	}
	c := rec.Message.Crypto[0]
	if c.Kind != "smime" || !c.Signed || c.Encrypted || c.Path != "" || len(c.Certificates) != 1 {
		t.Fatalf("crypto = %+v", c)
	}
	cert := c.Certificates[0]
	if cert.SHA256 != "bed659c8b4044a839c5aa8a05301fc196ddb6d68ef1d709de119b5f4e57ec109" || !cert.Signer ||
		cert.Serial != "9b8dd753c2803742" || cert.NotAfter != "2010-06-20T18:28:45Z" {
		t.Errorf("certificate = %+v", cert)
	}
}

// Inline PGP in a text body is flagged too.
func TestInlinePGPSigned(t *testing.T) {
	msg := crlf("Content-Type: text/plain\n\n-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nhello\n-----BEGIN PGP SIGNATURE-----\n\nnot really a signature\n-----END PGP SIGNATURE-----\n")
	rec := parseString(t, Options{}, msg)
	if len(rec.Message.Crypto) != 1 || rec.Message.Crypto[0].Kind != "pgp" || rec.Message.Crypto[0].Path != "1" {
		t.Errorf("crypto = %+v, want one pgp layer at 1", rec.Message.Crypto)
	}
}

// Zip members are attachments in a zip container, nested zips included; hashes are of the
// member bytes the test wrote.
func TestZipMembersAreAttachments(t *testing.T) {
	inner := zipOf(t, map[string][]byte{"payload.js": []byte("WScript.Shell")})
	doc := []byte("%PDF-1.7 invoice")
	outer := zipOf(t, map[string][]byte{"invoice.pdf": doc, "more.zip": inner})
	msg := crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/zip; name=files.zip\n"+
		"Content-Transfer-Encoding: base64\n\n") + testkit.Wrap76(base64.StdEncoding.EncodeToString(outer)) + crlf("--b--\n")
	rec := parseString(t, Options{}, msg)
	byName := map[string]api.Attachment{}
	for _, a := range rec.Attachments {
		byName[a.Filename] = a
	}
	pdf, js := byName["invoice.pdf"], byName["payload.js"]
	if pdf.SHA256 != sha256Hex(doc) || pdf.Container == nil || pdf.Container.Kind != "zip" || pdf.Container.Path != "1" {
		t.Errorf("invoice.pdf = %+v", pdf)
	}
	if js.SHA256 != sha256Hex([]byte("WScript.Shell")) || js.Container == nil || js.Container.Path != byName["more.zip"].Path {
		t.Errorf("payload.js = %+v, want it in the container more.zip (%s)", js, byName["more.zip"].Path)
	}
}

func zipOf(t *testing.T, files map[string][]byte) []byte {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(files[n])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}
