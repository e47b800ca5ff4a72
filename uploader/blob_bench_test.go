package uploader

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/spool"
)

// BenchmarkBlobUpload delivers one batch naming one 50 MiB blob to the reference receiver over
// HTTPS (HTTP/2, loopback) and, as the reference in the same run, PUTs the same file with a
// plain http.Client:
//
//	uploader   the sender's whole job: HEAD (404), PUT streamed from the spool file through
//	           retryablehttp, then the batch's POST
//	plain-put  http.Client.Do of one PUT with the *os.File as body and its length set
//
// The receiver's copy is removed before each iteration (not timed), so every iteration
// uploads. B/op is what the process allocated per upload, the receiver's share included;
// it stays far below the blob's size because no one reads the body into memory. Run it with
//
//	go test -run '^$' -bench BlobUpload -benchtime 5x ./uploader/
func BenchmarkBlobUpload(b *testing.B) {
	const size = 50 << 20
	dir := b.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), nil)
	if err != nil {
		b.Fatal(err)
	}
	w, err := sp.CreateBlob()
	if err != nil {
		b.Fatal(err)
	}
	data := pattern(size)
	if _, err := w.Write(data); err != nil {
		b.Fatal(err)
	}
	sum := sumOf(data)
	if err := w.Commit(sum); err != nil {
		b.Fatal(err)
	}
	data = nil
	id := ulid.Make().String()
	if err := sp.Commit(id, blobRecord(b, id, 0, sum)); err != nil {
		b.Fatal(err)
	}
	pending, err := sp.Pending()
	if err != nil {
		b.Fatal(err)
	}
	batch, err := sp.FormBatch(pending)
	if err != nil {
		b.Fatal(err)
	}
	r := startBenchReceiver(b, dir)
	stored := filepath.Join(r.outDir, "blobs", sum)
	reset := func(b *testing.B) {
		b.Helper()
		if err := os.Remove(stored); err != nil && !os.IsNotExist(err) {
			b.Fatal(err)
		}
	}
	check := func(b *testing.B) {
		b.Helper()
		if info, err := os.Stat(stored); err != nil || info.Size() != size {
			b.Fatalf("receiver holds %v, %v; want %d bytes", info, err, size)
		}
	}

	b.Run("uploader", func(b *testing.B) {
		u, err := New(Config{URL: r.url, CAFile: r.caFile, RequestTimeout: time.Minute}, sp)
		if err != nil {
			b.Fatal(err)
		}
		h := u.sender.(*httpSender)
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			reset(b)
			b.StartTimer()
			v, err := h.send(context.Background(), batch)
			if err != nil || !v.delivered {
				b.Fatalf("send = %+v, %v", v, err)
			}
		}
		check(b)
		if s := u.Stats(); s.BlobsUploaded != int64(b.N) {
			b.Fatalf("%d blobs uploaded in %d iterations", s.BlobsUploaded, b.N)
		}
	})

	b.Run("plain-put", func(b *testing.B) {
		pem, err := os.ReadFile(r.caFile)
		if err != nil {
			b.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		client := &http.Client{Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		}}
		b.SetBytes(size)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			reset(b)
			b.StartTimer()
			f, n, err := sp.OpenBlob(sum)
			if err != nil {
				b.Fatal(err)
			}
			req, err := http.NewRequest(http.MethodPut, r.url+"/v1/blobs/"+sum, f)
			if err != nil {
				b.Fatal(err)
			}
			req.ContentLength = n
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("PUT answered %d", resp.StatusCode)
			}
		}
		check(b)
	})
}
