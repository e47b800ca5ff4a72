package smime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/smallstep/pkcs7"
)

// checkBounded fails on a recovered panic or on lists past their caps.
func checkBounded(t *testing.T, info Info, err error, opts Options) {
	t.Helper()
	if errors.Is(err, errInternal) {
		t.Fatal(err)
	}
	o := opts.withDefaults()
	for name, n := range map[string]int{"certificates": len(info.Certificates), "signers": len(info.Signers),
		"recipients": len(info.Recipients), "keys": len(info.Keys)} {
		if n > o.MaxItems {
			t.Fatalf("%d %s, cap %d", n, name, o.MaxItems)
		}
	}
}

func FuzzReadCMS(f *testing.F) {
	// Seeds made here in pure Go; the BER ones from openssl are in testdata/fuzz/FuzzReadCMS.
	p := newPKI(f)
	for _, detach := range []bool{false, true} {
		sd, err := pkcs7.NewSignedData(p.content)
		check(f, err)
		check(f, sd.AddSigner(p.ec, p.ecKey, pkcs7.SignerInfoConfig{}))
		if detach {
			sd.Detach()
		}
		der, err := sd.Finish()
		check(f, err)
		f.Add(der)
	}
	f.Add(signedDataPrefix())
	f.Add([]byte{0x30, 0x80, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03, 0xa0, 0x80, 0x30, 0x80})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, opts := range []Options{{}, {MaxBytes: 700, MaxItems: 2, MaxDepth: 4}} {
			var content bytes.Buffer
			opts.Content = &content
			info, err := ReadCMS(bytes.NewReader(in), opts)
			checkBounded(t, info, err, opts)
			if content.Len() > len(in) {
				t.Fatalf("%d bytes of content from %d of input", content.Len(), len(in))
			}
		}
	})
}

func FuzzReadPGP(f *testing.F) {
	files, err := filepath.Glob("testdata/pgp/*")
	check(f, err)
	for _, name := range files {
		b, err := os.ReadFile(name)
		check(f, err)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, opts := range []Options{{}, {MaxBytes: 200, MaxItems: 1}} {
			info, err := ReadPGP(bytes.NewReader(in), opts)
			checkBounded(t, info, err, opts)
		}
	})
}

func FuzzInline(f *testing.F) {
	for _, name := range []string{"clearsigned.txt", "encrypted.asc", "alice-pub.asc"} {
		b, err := os.ReadFile(filepath.Join("testdata", "pgp", name))
		check(f, err)
		f.Add(b, uint8(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		opts := Options{MaxBytes: 1024, MaxItems: 3}
		s := NewInline(opts)
		n := int(chunk) + 1
		for b := in; len(b) > 0; {
			k := min(n, len(b))
			if m, err := s.Write(b[:k]); m != k || err != nil {
				t.Fatalf("Write = %d, %v", m, err)
			}
			b = b[k:]
		}
		checkBounded(t, s.Info(), nil, opts)
	})
}
