package smime

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser/walker"
)

// oracleBlob is what testdata/corpus-oracle.tsv says about one decoded part body. The file
// is written by testdata/oracle.py from OpenSSL's and GnuPG's reading of the corpus.
type oracleBlob struct {
	kind, content string // content: CMS content type, "error", or "signature"
	certs         [][]string
	recipients    [][]string
	pgpSigners    [][]string
}

func loadOracle(t *testing.T) (files map[string]bool, blobs map[string]*oracleBlob) {
	t.Helper()
	f, err := os.Open("testdata/corpus-oracle.tsv")
	check(t, err)
	defer f.Close()
	files, blobs = map[string]bool{}, map[string]*oracleBlob{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "#") {
			continue
		}
		row := strings.Split(sc.Text(), "\t")
		switch row[0] {
		case "file":
			files[row[2]] = true
		case "blob":
			blobs[row[1]] = &oracleBlob{kind: row[2], content: row[3]}
		case "cert":
			blobs[row[1]].certs = append(blobs[row[1]].certs, row[2:])
		case "recipient":
			blobs[row[1]].recipients = append(blobs[row[1]].recipients, row[2:])
		case "pgpsigner":
			blobs[row[1]].pgpSigners = append(blobs[row[1]].pgpSigners, row[2:])
		}
	}
	check(t, sc.Err())
	return files, blobs
}

// decodeBody undoes the transfer encoding well enough for these samples; the parser's own
// decoder is not this package's to use.
func decodeBody(t *testing.T, raw []byte, encoding string) []byte {
	if encoding != "base64" {
		return raw
	}
	clean := bytes.Map(func(r rune) rune {
		if strings.ContainsRune(" \t\r\n", r) {
			return -1
		}
		return r
	}, raw)
	out, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(string(clean), "="))
	check(t, err)
	return out
}

// TestCorpusAgainstOpenSSLAndGnuPG reads every S/MIME and OpenPGP part of the corpus
// messages and compares the result with what OpenSSL and GnuPG say (testdata/README.md).
func TestCorpusAgainstOpenSSLAndGnuPG(t *testing.T) {
	corpus := testkit.CorpusDir(t)
	files, blobs := loadOracle(t)
	seen := map[string]bool{}
	for file := range files {
		t.Run(file, func(t *testing.T) {
			f, err := os.Open(filepath.Join(corpus, file))
			check(t, err)
			defer f.Close()
			w := walker.New(f, walker.Options{})
			for {
				p, err := w.Next()
				if err == io.EOF {
					break
				}
				check(t, err)
				if p.Kind != walker.Leaf {
					continue
				}
				_, dparams, _ := walker.ParseMediaType(p.Header.Get("Content-Disposition"))
				class := Classify(p.MediaType, p.Params, dparams["filename"])
				if class.Feed == FeedNone {
					continue
				}
				raw, err := io.ReadAll(w.Body())
				check(t, err)
				body := decodeBody(t, raw, p.Encoding)
				sum := sha256.Sum256(body)
				id := hex.EncodeToString(sum[:])
				want, ok := blobs[id]
				if !ok {
					t.Errorf("part %s (%s): body %s is not in the oracle", p.Path, p.MediaType, id)
					continue
				}
				seen[id] = true
				if string(class.Kind) != want.kind {
					t.Errorf("part %s: Classify kind %q, oracle %q", p.Path, class.Kind, want.kind)
				}
				if class.Feed == FeedCMS {
					checkCMS(t, p.Path, body, want)
				} else {
					checkPGP(t, p.Path, body, want)
				}
			}
		})
	}
	for id := range blobs {
		if !seen[id] {
			t.Errorf("oracle blob %s was never found in the corpus", id)
		}
	}
}

func checkCMS(t *testing.T, path string, body []byte, want *oracleBlob) {
	t.Helper()
	info, err := ReadCMS(bytes.NewReader(body), Options{})
	if want.content == "error" {
		// OpenSSL cannot read it either; what is found before the fault may be reported.
		if err == nil {
			t.Errorf("part %s: OpenSSL fails on it, ReadCMS did not: %+v", path, info)
		}
		return
	}
	if err != nil || info.ContentType != want.content {
		t.Errorf("part %s: content type %q, err %v; want %q", path, info.ContentType, err, want.content)
		return
	}
	if len(info.Certificates) != len(want.certs) {
		t.Errorf("part %s: %d certificates, OpenSSL lists %d", path, len(info.Certificates), len(want.certs))
		return
	}
	for i, c := range info.Certificates {
		signer := "-"
		if c.Signer {
			signer = "signer"
		}
		got := []string{c.SHA256, c.SHA1, c.Serial, c.NotBefore, c.NotAfter, signer, c.Subject, c.Issuer}
		if strings.Join(got, "\t") != strings.Join(want.certs[i], "\t") {
			t.Errorf("part %s certificate %d:\n got %q\nwant %q", path, i, got, want.certs[i])
		}
	}
	if len(info.Recipients) != len(want.recipients) {
		t.Errorf("part %s: recipients %+v, OpenSSL lists %q", path, info.Recipients, want.recipients)
		return
	}
	for i, r := range info.Recipients {
		if got := []string{r.Issuer, r.Serial}; strings.Join(got, "\t") != strings.Join(want.recipients[i], "\t") {
			t.Errorf("part %s recipient %d: got %q, want %q", path, i, got, want.recipients[i])
		}
	}
}

func checkPGP(t *testing.T, path string, body []byte, want *oracleBlob) {
	t.Helper()
	info, err := ReadPGP(bytes.NewReader(body), Options{})
	if err != nil || !info.Signed || len(info.Signers) != len(want.pgpSigners) {
		t.Errorf("part %s: err %v, info %+v; GnuPG lists %q", path, err, info, want.pgpSigners)
		return
	}
	for i, s := range info.Signers {
		fpr := s.Fingerprint
		if fpr == "" {
			fpr = "-"
		}
		if got := []string{s.KeyID, fpr, s.SigningTime}; strings.Join(got, "\t") != strings.Join(want.pgpSigners[i], "\t") {
			t.Errorf("part %s signer %d: got %q, want %q", path, i, got, want.pgpSigners[i])
		}
	}
}

// TestWholeCorpusSweep feeds every part of every corpus message to whichever reader its
// class names, and every text/plain body to an Inline: nothing may fail internally. It logs
// what it found, for the record.
func TestWholeCorpusSweep(t *testing.T) {
	corpus := testkit.CorpusDir(t)
	counts := map[string]int{}
	for _, file := range testkit.CorpusMessages(t, corpus) {
		f, err := os.Open(file)
		check(t, err)
		w := walker.New(f, walker.Options{})
		for {
			p, err := w.Next()
			if err != nil {
				break
			}
			_, dparams, _ := walker.ParseMediaType(p.Header.Get("Content-Disposition"))
			class := Classify(p.MediaType, p.Params, dparams["filename"])
			if class.Kind != "" {
				counts["classified "+string(class.Kind)]++
			}
			if p.Kind != walker.Leaf {
				continue
			}
			raw, err := io.ReadAll(w.Body())
			check(t, err)
			var info Info
			switch {
			case class.Feed == FeedCMS:
				info, err = ReadCMS(bytes.NewReader(decodeLenient(raw, p.Encoding)), Options{})
			case class.Feed == FeedPGP:
				info, err = ReadPGP(bytes.NewReader(decodeLenient(raw, p.Encoding)), Options{})
			case p.MediaType == "text/plain":
				s := NewInline(Options{})
				_, _ = s.Write(decodeLenient(raw, p.Encoding))
				info = s.Info()
			}
			if errors.Is(err, errInternal) {
				t.Errorf("%s part %s: %v", file, p.Path, err)
			}
			if info.Kind != "" {
				counts[fmt.Sprintf("read %s signed=%v encrypted=%v", info.Kind, info.Signed, info.Encrypted)]++
				counts["certificates"] += len(info.Certificates)
			}
		}
		check(t, f.Close())
	}
	t.Logf("%v", counts)
}

// decodeLenient is decodeBody for arbitrary corpus parts: bad base64 just gives less.
func decodeLenient(raw []byte, encoding string) []byte {
	if encoding != "base64" {
		return raw
	}
	var clean []byte
	for _, c := range raw {
		if isBase64(c) && c != '=' {
			clean = append(clean, c)
		}
	}
	out, _ := base64.RawStdEncoding.DecodeString(string(clean[:len(clean)/4*4]))
	return out
}
