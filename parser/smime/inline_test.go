package smime

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"
)

// writeInChunks feeds text to a new Inline n bytes at a time.
func writeInChunks(t *testing.T, text []byte, n int, opts Options) Info {
	t.Helper()
	s := NewInline(opts)
	for len(text) > 0 {
		k := min(n, len(text))
		if m, err := s.Write(text[:k]); m != k || err != nil {
			t.Fatalf("Write = %d, %v", m, err)
		}
		text = text[k:]
	}
	return s.Info()
}

func TestInlineClearsigned(t *testing.T) {
	clear, err := os.ReadFile("testdata/pgp/clearsigned.txt")
	check(t, err)
	crlf := bytes.ReplaceAll(clear, []byte("\n"), []byte("\r\n"))
	text := append([]byte("Hi Bob,\r\nsee below.\r\n\r\n"), crlf...)
	text = append(text, "\r\n-- \r\nAlice\r\n"...)
	want := Info{Kind: PGP, Signed: true,
		DigestAlgorithms: []string{"sha512"}, SignatureAlgorithms: []string{"rsaEncryption"},
		Signers: []ID{{KeyID: bobKeyID, Fingerprint: bobFpr, SigningTime: "2026-11-23T20:46:09Z"}}}
	for _, n := range []int{1, 2, 3, 7, 64, 4096} {
		if got := writeInChunks(t, text, n, Options{}); !reflect.DeepEqual(got, want) {
			t.Errorf("%d-byte writes:\n got %+v\nwant %+v", n, got, want)
		}
	}
}

func TestInlineEncryptedAndKeys(t *testing.T) {
	enc, err := os.ReadFile("testdata/pgp/encrypted.asc")
	check(t, err)
	key, err := os.ReadFile("testdata/pgp/alice-pub.asc")
	check(t, err)
	text := bytes.Join([][]byte{[]byte("Here it is:\n"), enc, []byte("and my key:\n"), key, []byte("bye\n")}, nil)
	want := Info{Kind: PGP, Encrypted: true,
		Recipients: []ID{{KeyID: aliceSubID}, {KeyID: bobSubID}},
		Keys:       []ID{{KeyID: aliceKeyID, Fingerprint: aliceFpr}, {KeyID: aliceSubID, Fingerprint: aliceSub}}}
	if got := writeInChunks(t, text, 5, Options{}); !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %+v\nwant %+v", got, want)
	}
}

func TestInlineMarkers(t *testing.T) {
	tests := []struct {
		name string
		text string
		want Info
	}{
		{"plain text", "Hello,\nnothing to see.\n", Info{}},
		{"quoted marker is a reply, not a signature",
			"> -----BEGIN PGP SIGNED MESSAGE-----\n> Hash: SHA256\n", Info{}},
		{"marker inside a line", "see -----BEGIN PGP MESSAGE----- here\n", Info{}},
		{"signed message without its signature, last line unterminated",
			"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\ntext", Info{Kind: PGP, Signed: true}},
		{"unreadable message block is taken as encrypted",
			"-----BEGIN PGP MESSAGE-----\n\n*** ??? ***\n-----END PGP MESSAGE-----\n",
			Info{Kind: PGP, Encrypted: true}},
		{"message block never closed", "-----BEGIN PGP MESSAGE-----  \r\n\r\n",
			Info{Kind: PGP, Encrypted: true, Truncated: true}},
		{"private key block is noted only", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n", Info{Kind: PGP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeInChunks(t, []byte(tt.text), 3, Options{}); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestInlineLimits(t *testing.T) {
	detached, err := os.ReadFile("testdata/pgp/detached.asc")
	check(t, err)
	// Many blocks: only MaxItems are read.
	text := bytes.Repeat(detached, 10)
	got := writeInChunks(t, text, 100, Options{MaxItems: 3})
	if !got.Signed || !got.Truncated || len(got.Signers) != 1 {
		t.Errorf("10 blocks, MaxItems 3: %+v", got)
	}
	// A block larger than MaxBytes is cut, and what fits is still read.
	long := strings.Replace(string(detached), "\n-----END", "\n"+strings.Repeat("A", 1<<20)+"\n-----END", 1)
	got = writeInChunks(t, []byte(long), 4096, Options{MaxBytes: 4096})
	if !got.Truncated || len(got.Signers) != 1 || got.Signers[0].KeyID != aliceKeyID {
		t.Errorf("oversized block: %+v", got)
	}
	// Lines of any length cost nothing beyond the line start kept.
	s := NewInline(Options{})
	huge := bytes.Repeat([]byte("y"), 8<<20)
	if _, err := s.Write(huge); err != nil {
		t.Fatal(err)
	}
	if info := s.Info(); info.Kind != "" {
		t.Errorf("one long line: %+v", info)
	}
}
