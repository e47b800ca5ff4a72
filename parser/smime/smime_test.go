package smime

import (
	"errors"
	"testing"
)

func TestClassify(t *testing.T) {
	type params = map[string]string
	tests := []struct {
		name      string
		mediaType string
		params    params
		filename  string
		want      Class
	}{
		{"smime multipart/signed", "multipart/signed",
			params{"protocol": "application/pkcs7-signature", "micalg": "sha-256"}, "",
			Class{Kind: SMIME, Signed: true}},
		{"old x-pkcs7 protocol, odd case and spaces", "MULTIPART/SIGNED",
			params{"protocol": " Application/X-PKCS7-Signature "}, "",
			Class{Kind: SMIME, Signed: true}},
		{"pgp multipart/signed", "multipart/signed",
			params{"protocol": "application/pgp-signature", "micalg": "pgp-sha256"}, "",
			Class{Kind: PGP, Signed: true}},
		{"multipart/signed without protocol, pgp micalg", "multipart/signed",
			params{"micalg": "pgp-sha1"}, "", Class{Kind: PGP, Signed: true}},
		{"multipart/signed without protocol (enmime mime-signed.raw)", "multipart/signed",
			nil, "", Class{Signed: true}},
		{"pgp multipart/encrypted", "multipart/encrypted",
			params{"protocol": "application/pgp-encrypted"}, "", Class{Kind: PGP, Encrypted: true}},
		{"unknown multipart/encrypted", "multipart/encrypted",
			params{"protocol": "application/x-other"}, "", Class{Encrypted: true}},
		{"enveloped", "application/pkcs7-mime",
			params{"smime-type": "enveloped-data", "name": "smime.p7m"}, "smime.p7m",
			Class{Kind: SMIME, Encrypted: true, Feed: FeedCMS}},
		{"authEnveloped, mixed case value", "application/pkcs7-mime",
			params{"smime-type": "authEnveloped-data"}, "",
			Class{Kind: SMIME, Encrypted: true, Feed: FeedCMS}},
		{"opaque signed", "application/x-pkcs7-mime",
			params{"smime-type": "signed-data"}, "", Class{Kind: SMIME, Signed: true, Feed: FeedCMS}},
		{"compressed", "application/pkcs7-mime",
			params{"smime-type": "compressed-data"}, "", Class{Kind: SMIME, Feed: FeedCMS}},
		{"certs-only", "application/pkcs7-mime",
			params{"smime-type": "certs-only"}, "smime.p7c", Class{Kind: SMIME, Feed: FeedCMS}},
		{"pkcs7-mime without smime-type", "application/pkcs7-mime",
			nil, "", Class{Kind: SMIME, Feed: FeedCMS}},
		{"detached signature", "application/pkcs7-signature",
			nil, "smime.p7s", Class{Kind: SMIME, Signed: true, Feed: FeedCMS}},
		{"old detached signature", "application/x-pkcs7-signature",
			nil, "", Class{Kind: SMIME, Signed: true, Feed: FeedCMS}},
		{"pgp signature", "application/pgp-signature",
			nil, "signature.asc", Class{Kind: PGP, Signed: true, Feed: FeedPGP}},
		{"pgp control part", "application/pgp-encrypted",
			nil, "", Class{Kind: PGP, Encrypted: true}},
		{"pgp keys", "application/pgp-keys",
			nil, "", Class{Kind: PGP, Feed: FeedPGP}},
		{"traditional pgp", "application/pgp",
			params{"format": "text", "x-action": "pgp-encrypted"}, "",
			Class{Kind: PGP, Encrypted: true, Feed: FeedPGP}},
		{"p7s by filename", "application/octet-stream",
			nil, "SMIME.P7S", Class{Kind: SMIME, Signed: true, Feed: FeedCMS}},
		{"p7m by filename with a path", "application/octet-stream",
			nil, `C:\mail\smime.p7m`, Class{Kind: SMIME, Feed: FeedCMS}},
		{"asc by filename", "application/octet-stream",
			nil, "encrypted.asc", Class{Kind: PGP, Feed: FeedPGP}},
		{"gpg by filename", "application/octet-stream",
			nil, "report.pdf.gpg", Class{Kind: PGP, Feed: FeedPGP}},
		{"pgp by filename", "application/octet-stream",
			nil, "x.PGP", Class{Kind: PGP, Feed: FeedPGP}},
		{"name parameter when there is no filename", "application/octet-stream",
			params{"name": "smime.p7m"}, "", Class{Kind: SMIME, Feed: FeedCMS}},
		{"plain text", "text/plain", params{"charset": "utf-8"}, "", Class{}},
		{"pdf", "application/pdf", nil, "invoice.pdf", Class{}},
		{"name that only contains an extension", "application/octet-stream",
			nil, "p7m.pdf", Class{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.mediaType, tt.params, tt.filename); got != tt.want {
				t.Errorf("Classify(%q, %v, %q) = %+v, want %+v", tt.mediaType, tt.params, tt.filename, got, tt.want)
			}
		})
	}
}

func TestGuardTurnsPanicIntoError(t *testing.T) {
	err := func() (err error) {
		defer guard(&err)
		var s []int
		i := 3
		s[i] = 1 // a real runtime panic (index out of range), not a panic(value) call
		return nil
	}()
	if !errors.Is(err, errInternal) {
		t.Fatalf("err = %v, want errInternal", err)
	}
	if err := func() (err error) { defer guard(&err); return nil }(); err != nil {
		t.Fatalf("guard without a panic: err = %v", err)
	}
}
