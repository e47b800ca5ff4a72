package smime

import (
	"bytes"
	"compress/flate"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The files under testdata/pgp were made with GnuPG 2.2.40; the expected values are
// gpg --list-packets output, as recorded in testdata/README.md.
const (
	aliceKeyID = "50896c1a624a125b"
	aliceFpr   = "6a589484cee35dab26877cfd50896c1a624a125b"
	aliceSubID = "f53be9b45e715bd2"
	aliceSub   = "03de49d487f95e5cb9440f7bf53be9b45e715bd2"
	bobKeyID   = "d6c84f32d7e7a61f"
	bobFpr     = "87c9d7249230f3746d12006dd6c84f32d7e7a61f"
	bobSubID   = "4dd77895d47e0b45"
)

func readPGPFile(t *testing.T, name string) Info {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "pgp", name))
	check(t, err)
	info, err := ReadPGP(bytes.NewReader(b), Options{})
	check(t, err)
	return info
}

func TestReadPGPFiles(t *testing.T) {
	tests := []struct {
		file string
		want Info
	}{
		{"detached.asc", Info{Kind: PGP, Signed: true,
			DigestAlgorithms: []string{"sha256"}, SignatureAlgorithms: []string{"eddsa-legacy"},
			Signers: []ID{{KeyID: aliceKeyID, Fingerprint: aliceFpr, SigningTime: "2026-11-23T20:45:54Z"}}}},
		{"clearsigned.txt", Info{Kind: PGP, Signed: true,
			DigestAlgorithms: []string{"sha512"}, SignatureAlgorithms: []string{"rsaEncryption"},
			Signers: []ID{{KeyID: bobKeyID, Fingerprint: bobFpr, SigningTime: "2026-11-23T20:46:09Z"}}}},
		{"signed.gpg", Info{Kind: PGP, Signed: true, // binary, inside a compressed packet
			DigestAlgorithms: []string{"sha256"}, SignatureAlgorithms: []string{"eddsa-legacy"},
			Signers: []ID{{KeyID: aliceKeyID, Fingerprint: aliceFpr, SigningTime: "2026-11-23T20:46:09Z"}}}},
		{"encrypted.asc", Info{Kind: PGP, Encrypted: true,
			Recipients: []ID{{KeyID: aliceSubID}, {KeyID: bobSubID}}}},
		{"alice-pub.asc", Info{Kind: PGP, // its self-signatures certify the key: not Signed
			Keys: []ID{{KeyID: aliceKeyID, Fingerprint: aliceFpr}, {KeyID: aliceSubID, Fingerprint: aliceSub}}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			if got := readPGPFile(t, tt.file); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// RFC 9580 Appendix A.3: the sample v6 Ed25519 primary key, and its fingerprint as the RFC
// prints it.
var (
	rfc9580Key = unhex("0663877fe31b00000020f94da7bb48d60a61e567706a6587d0331999bb9d891a08242ead84543df895a3")
	rfc9580Fpr = "cb186c4f0609a697e4d52dfa6c722b0c1f1e27c18a56708f6525ec27bad9acc9"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}

// packet builds a new-format packet (RFC 9580 §4.2.1) with a one-octet length.
func packet(tag byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	if len(b) >= 192 {
		panic("test packet too long")
	}
	return append([]byte{0xc0 | tag, byte(len(b))}, b...)
}

func TestArmourAfterByteOrderMark(t *testing.T) {
	b, err := os.ReadFile("testdata/pgp/detached.asc")
	check(t, err)
	info, err := ReadPGP(bytes.NewReader(append([]byte("\xef\xbb\xbf"), b...)), Options{})
	check(t, err)
	if len(info.Signers) != 1 || info.Signers[0].KeyID != aliceKeyID {
		t.Errorf("info = %+v", info)
	}
}

func TestV6Packets(t *testing.T) {
	fpr := unhex(rfc9580Fpr)
	// Signature v6 (§5.2.3): version, type, public-key algorithm 27, hash 10, a four-octet
	// hashed area with creation time (2) and issuer fingerprint (33), an empty unhashed area.
	hashed := bytes.Join([][]byte{{5, 2, 0x63, 0x87, 0x7f, 0xe3}, {34, 33, 6}, fpr}, nil)
	sig := packet(2, []byte{6, 0x01, 27, 10, 0, 0, 0, byte(len(hashed))}, hashed, []byte{0, 0, 0, 0, 0xab, 0xcd})
	// PKESK v6 (§5.1.2): version, octet count, key version, fingerprint, algorithm 25.
	pkesk := packet(1, []byte{6, 33, 6}, fpr, []byte{25, 1, 2, 3})
	key := packet(6, rfc9580Key)

	for _, tt := range []struct {
		name string
		in   []byte
		want Info
	}{
		{"signature", sig, Info{Kind: PGP, Signed: true,
			DigestAlgorithms: []string{"sha512"}, SignatureAlgorithms: []string{"ED25519"},
			Signers: []ID{{KeyID: "cb186c4f0609a697", Fingerprint: rfc9580Fpr, SigningTime: "2022-11-30T16:08:03Z"}}}},
		{"pkesk and an encrypted packet", append(pkesk, packet(18, []byte{2, 9, 9})...), Info{Kind: PGP, Encrypted: true,
			Recipients: []ID{{KeyID: "cb186c4f0609a697", Fingerprint: rfc9580Fpr}}}},
		{"public key", key, Info{Kind: PGP, Keys: []ID{{KeyID: "cb186c4f0609a697", Fingerprint: rfc9580Fpr}}}},
		{"anonymous v3 recipient", packet(1, []byte{3, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7}), Info{Kind: PGP, Encrypted: true,
			Recipients: []ID{{KeyID: "0000000000000000"}}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadPGP(bytes.NewReader(tt.in), Options{})
			check(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestPartialBodyLengthsAreJoined(t *testing.T) {
	// A compressed packet (algorithm 0, uncompressed) split as a 2-octet partial chunk
	// (length octet 0xe1 = 2^1) and a final 13-octet chunk, around a v3 one-pass signature.
	inner := packet(4, []byte{3, 0, 8, 1}, unhex(bobKeyID), []byte{1})
	body := append([]byte{0}, inner...)
	in := append([]byte{0xc8, 0xe1}, body[:2]...)
	in = append(in, byte(len(body)-2))
	in = append(in, body[2:]...)
	got, err := ReadPGP(bytes.NewReader(in), Options{})
	check(t, err)
	want := Info{Kind: PGP, Signed: true, DigestAlgorithms: []string{"sha256"},
		SignatureAlgorithms: []string{"rsaEncryption"}, Signers: []ID{{KeyID: bobKeyID}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
}

func TestReadPGPHostile(t *testing.T) {
	detached, err := os.ReadFile("testdata/pgp/detached.asc")
	check(t, err)
	signed, err := os.ReadFile("testdata/pgp/signed.gpg")
	check(t, err)
	for n := range len(detached) {
		if _, err := ReadPGP(bytes.NewReader(detached[:n]), Options{}); errors.Is(err, errInternal) {
			t.Fatalf("detached.asc[:%d]: %v", n, err)
		}
	}
	for n := range len(signed) {
		info, err := ReadPGP(bytes.NewReader(signed[:n]), Options{})
		if errors.Is(err, errInternal) {
			t.Fatalf("signed.gpg[:%d]: %v", n, err)
		}
		for _, s := range info.Signers {
			if s.KeyID != aliceKeyID {
				t.Fatalf("signed.gpg[:%d]: signer %+v", n, s)
			}
		}
	}

	// Cut inside the compressed packet: the one-pass signature at its start still names
	// the signer.
	half, err := ReadPGP(bytes.NewReader(signed[:len(signed)/2]), Options{})
	check(t, err)
	if !half.Signed || !half.Truncated || len(half.Signers) != 1 || half.Signers[0].KeyID != aliceKeyID {
		t.Errorf("signed.gpg cut in half: %+v", half)
	}

	// A compression bomb: 64 MiB of zeros deflate to about 64 KiB; only MaxBytes come out.
	var z bytes.Buffer
	zw := newDeflate(t, &z)
	zeros := make([]byte, 1<<20)
	for range 64 {
		_, err := zw.Write(zeros)
		check(t, err)
	}
	check(t, zw.Close())
	bomb := append([]byte{0xa3, 1}, z.Bytes()...) // legacy format, indeterminate length
	info, err := ReadPGP(bytes.NewReader(bomb), Options{MaxBytes: 1 << 20})
	check(t, err)
	if !info.Truncated {
		t.Error("a decompressed packet past MaxBytes should mark the result truncated")
	}

	// Text with no armour is read only up to about twice MaxBytes.
	cr := &countingReader{r: strings.NewReader(strings.Repeat("just text\n", 1<<20))}
	if _, err := ReadPGP(cr, Options{MaxBytes: 64 << 10}); !errors.Is(err, errNoPGP) {
		t.Errorf("err = %v, want errNoPGP", err)
	}
	if cr.n > 256<<10 {
		t.Errorf("read %d bytes looking for armour", cr.n)
	}
}

func newDeflate(t *testing.T, w io.Writer) *flate.Writer {
	t.Helper()
	zw, err := flate.NewWriter(w, flate.BestCompression)
	check(t, err)
	return zw
}
