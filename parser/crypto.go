package parser

import (
	"errors"
	"io"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/smime"
	"github.com/journalsensor/sensor/parser/walker"
)

// maxCryptoItems caps certificates and key IDs kept per layer: a real signature carries a
// chain of three or four, and each one costs the record a few hundred bytes.
const maxCryptoItems = 32

// cryptoLayer returns the index of the record's entry for this kind of layer in the
// message being walked, creating it at path. Indexes, not pointers: walking signed
// content can add layers, which moves the slice.
func (st *state) cryptoLayer(kind smime.Kind, ctx *msgCtx, path string) int {
	for i := range st.crypto {
		if st.crypto[i].Kind == string(kind) && st.cryptoCtx[i] == ctx.owner {
			return i
		}
	}
	st.crypto = append(st.crypto, api.Crypto{Kind: string(kind), Path: path})
	st.cryptoCtx = append(st.cryptoCtx, ctx.owner)
	return len(st.crypto) - 1
}

// noteCrypto records what a part's labels say (multipart/signed, application/pkcs7-mime,
// smime.p7s, ...). It returns the layer's index, or -1 when the part is neither S/MIME
// nor PGP.
func (st *state) noteCrypto(c smime.Class, ctx *msgCtx, path string) int {
	if c.Kind == "" {
		return -1
	}
	i := st.cryptoLayer(c.Kind, ctx, path)
	e := &st.crypto[i]
	e.Signed = e.Signed || c.Signed
	e.Encrypted = e.Encrypted || c.Encrypted
	return i
}

// readCrypto reads a signature or encrypted body and adds what the bytes say to layer i.
// A body that does not parse is an anomaly, never a reason to refuse the copy.
func (st *state) readCrypto(r io.Reader, feed smime.Feed, i int, path string) error {
	var info smime.Info
	var err error
	if feed == smime.FeedCMS {
		info, err = smime.ReadCMS(r, smime.Options{})
	} else {
		info, err = smime.ReadPGP(r, smime.Options{})
	}
	st.mergeCrypto(i, info)
	if err != nil {
		if rerr := readFailure(err); rerr != nil {
			return rerr
		}
		st.anomaly(badCrypto(st.crypto[i].Kind), path, clip(err.Error(), 200))
	}
	return nil
}

// badCrypto names the anomaly for a body of this kind of layer that does not parse.
func badCrypto(kind string) string {
	if kind == string(smime.PGP) {
		return anomalyBadPGP
	}
	return anomalyBadSMIME
}

func (st *state) mergeCrypto(i int, info smime.Info) {
	e := &st.crypto[i]
	e.Signed = e.Signed || info.Signed
	e.Encrypted = e.Encrypted || info.Encrypted
	for _, c := range info.Certificates {
		if len(e.Certificates) >= maxCryptoItems {
			st.limit(limitCryptoItems)
			break
		}
		e.Certificates = append(e.Certificates, api.Certificate{
			SHA256: c.SHA256, SHA1: c.SHA1, Subject: c.Subject, Issuer: c.Issuer, Serial: c.Serial,
			NotBefore: c.NotBefore, NotAfter: c.NotAfter, Signer: c.Signer,
		})
	}
	if info.Kind != smime.PGP {
		return
	}
	for _, ids := range [][]smime.ID{info.Signers, info.Recipients} {
		for _, id := range ids {
			k := id.Fingerprint
			if k == "" {
				k = id.KeyID
			}
			if k == "" {
				continue
			}
			if len(e.KeyIDs) >= maxCryptoItems {
				st.limit(limitCryptoItems)
				return
			}
			e.KeyIDs = append(e.KeyIDs, k)
		}
	}
}

var errAbandoned = errors.New("parser: walk of signed content abandoned")

// readOpaque reads an application/pkcs7-mime body into layer i. When it is opaque-signed
// data, the signed MIME entity inside is the real message (its text, its attachments), so
// it is walked as part of the message that holds it, at paths below the part's own.
//
// The CMS reader runs on a goroutine and hands the content over a pipe to the walk here.
// While it runs, it pulls the enclosing walkers, whose callbacks touch the state; the
// handoff parks those until the reader is done, so the state stays the parsing goroutine's.
func (st *state) readOpaque(r io.Reader, i int, p *walker.Part) (err error) {
	pr, pw := io.Pipe()
	var info smime.Info
	var cmsErr error
	done := make(chan struct{})
	st.handoff.hold()
	go func() {
		defer close(done)
		info, cmsErr = smime.ReadCMS(r, smime.Options{Content: pw})
		pw.CloseWithError(cmsErr) // nil closes cleanly
	}()
	// Whatever happens below (an error, a panic), the reader must stop before anyone else
	// reads r: closing the pipe fails its next write. Then the parked callbacks run.
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		pr.CloseWithError(errAbandoned)
		<-done
		st.handoff.release()
	}
	defer stop()

	sub := walker.New(pr, st.walkerOptions(p.Path, max(st.opts.MaxDepth-p.Depth-1, 1), max(st.opts.MaxParts-st.parts, 1)))
	st.msgs.inherit = true
	walkErr := st.walk(sub, false, p.Path, p.Depth+1)
	st.msgs.inherit = false
	if _, err := io.Copy(io.Discard, pr); err != nil && walkErr == nil {
		walkErr = err
	}
	stop()
	st.mergeCrypto(i, info)
	// Our own failures (the input, a blob sink) come first: a malformed signature must not
	// hide them.
	if walkErr != nil && !errors.Is(walkErr, errAbandoned) {
		if rerr := readFailure(walkErr); rerr != nil {
			return rerr
		}
	}
	if cmsErr != nil {
		if rerr := readFailure(cmsErr); rerr != nil {
			return rerr
		}
		st.anomaly(anomalyBadSMIME, p.Path, clip(cmsErr.Error(), 200))
	}
	return nil
}
