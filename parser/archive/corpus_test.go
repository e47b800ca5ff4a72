package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/jhillyerd/enmime/v2"

	"github.com/journalsensor/sensor/internal/testkit"
)

// corpusZip is a zip attachment of the shared corpus and its members as Python's zipfile
// lists them; see testdata/README.md for how these values were derived.
type corpusZip struct {
	file      string // under mail/
	zipSHA256 string // of the decoded attachment, to be sure we list the same bytes
	members   []corpusMember
}

type corpusMember struct {
	name              string
	size, csize       int64
	method            uint16
	encrypted         bool
	md5, sha1, sha256 string // "" when Python cannot read it (encrypted)
}

var corpusZips = []corpusZip{
	{"tika/testRFC822_normal_zip", "ba47f40835ec17e264042e259d74bcb7a6bf995d3703714d7f92ebf48dfb10c1", []corpusMember{
		{"text.txt", 120, 111, 8, false, "e74bc7bd934b3de165d305078ff0e24e", "dcf7e0ae4d38feef041ab5956cb29d3a770de55e", "47d666be7e8158bf8d83ff9c460f83b847db576cc95e8dc0c2f6a402c2f628f6"},
	}},
	{"tika/testRFC822_encrypted_zip", "2e689127e9dc60539489d095b8ba54cc736fad3c717d20e578d0a59d09a500b5", []corpusMember{
		{"text.txt", 78, 85, 8, true, "", "", ""},
	}},
	{"mox/dmarc-reports/google.eml", "952628e0cb9381157f35908cdfa1e2c4ddfdeba5bd76ddcae4226e5bb62f0ca9", []corpusMember{
		{"google.com!ueber.net!1633996800!1634083199.xml", 1795, 535, 8, false, "924ced33a098af716c7f10c1b9a11bf8", "0b3704d3927adea90f5bb0a4ad607548267e76c2", "971cf718c276d37a408407e0edec4a1b2c95e6dd99410a3b1eea4d3667c42b92"},
	}},
	{"rspamd/zip-doublebad.eml", "7f06d601841f1698862149dc690d0e2cd9a131c2242e132bad99c0a553fe4204", []corpusMember{
		{"fake.pdf.exe", 0, 0, 0, false, "d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}},
}

func TestCorpusZips(t *testing.T) {
	dir := testkit.CorpusDir(t)
	for _, cz := range corpusZips {
		t.Run(cz.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, "mail", cz.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			env, err := enmime.ReadEnvelope(f)
			if err != nil {
				t.Fatal(err)
			}
			var zips [][]byte
			for _, parts := range [][]*enmime.Part{env.Attachments, env.Inlines, env.OtherParts} {
				for _, p := range parts {
					if IsZip(p.Content) {
						zips = append(zips, p.Content)
					}
				}
			}
			if len(zips) != 1 {
				t.Fatalf("%d zip attachments", len(zips))
			}
			if s := sha256.Sum256(zips[0]); hex.EncodeToString(s[:]) != cz.zipSHA256 {
				t.Fatalf("attachment decoded to other bytes")
			}
			res := list(t, zips[0])
			if len(res.Members) != len(cz.members) || len(res.Anomalies) > 0 || len(res.LimitsHit) > 0 {
				t.Fatalf("%v %v %v", names(res), res.Anomalies, res.LimitsHit)
			}
			for i, w := range cz.members {
				m := res.Members[i]
				if m.Name != w.name || m.CompressedSize != w.csize || m.Method != w.method || m.Encrypted != w.encrypted {
					t.Errorf("%+v, want %+v", m, w)
				}
				if w.sha256 == "" {
					if m.Hashed || m.Size != w.size {
						t.Errorf("%+v", m)
					}
					continue
				}
				checkSums(t, m, sums{w.size, w.md5, w.sha1, w.sha256})
			}
		})
	}
}

// TestCorpusNonZips checks that the corpus's attachments named or typed zip that are not
// zips (see testdata/README.md) are not taken for one.
func TestCorpusNonZips(t *testing.T) {
	dir := testkit.CorpusDir(t)
	for _, name := range []string{
		"rspamd/mixed-html-zip.eml",
		"enmime/testdata/low-quality/unk-encoding-part.raw",
		"enmime/testdata/low-quality/bad-final-boundary.raw",
		"enmime/testdata/low-quality/bad-header-wrap.raw",
	} {
		f, err := os.Open(filepath.Join(dir, "mail", name))
		if err != nil {
			t.Fatal(err)
		}
		env, err := enmime.ReadEnvelope(f)
		f.Close()
		if err != nil {
			continue // enmime gives up on some of these; nothing to check then
		}
		for _, parts := range [][]*enmime.Part{env.Attachments, env.Inlines, env.OtherParts} {
			for _, p := range parts {
				if IsZip(p.Content) {
					t.Errorf("%s: %q taken for a zip", name, p.FileName)
				}
				list(t, p.Content) // and listing it anyway is harmless
			}
		}
	}
}
