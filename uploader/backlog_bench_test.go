package uploader

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/receiver"
	"github.com/journalsensor/sensor/spool"
)

// BenchmarkBacklog measures how fast a backlog drains: a spool holding 100,000 committed
// records of about 2 KB (what a sensor holds after a pipeline outage of an hour or so at a
// busy site) delivered to the reference receiver over HTTPS on loopback. Two references run in
// the same process on the same data, so the uploader's own cost can be told apart from the
// receiver's:
//
//	uploader    spool → batches of 500 → gzip → HTTPS POST → receiver, as the sensor runs
//	uploader-sink  the same into a sink that only gunzips and counts lines (no schema
//	            validation, no fsync): the sensor's own ceiling on this machine
//	spool-only  the spool's part alone: list, form the batches and delete them, no network
//	plain-post  the same records, gzip'd in batches of 500 in memory and POSTed in a plain
//	            loop of http.Client requests to a fresh receiver: no spool, no files
//	gzip        the gzip of those batches alone, the CPU floor of any upload
//
// Setup (committing the records, one fsync'd file each) is not timed. Run it with
//
//	go test -run '^$' -bench Backlog -benchtime 1x ./uploader/
//
// SENSOR_BACKLOG_RECORDS overrides the record count.
func BenchmarkBacklog(b *testing.B) {
	n := 100_000
	if v := os.Getenv("SENSOR_BACKLOG_RECORDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("SENSOR_BACKLOG_RECORDS=%q: want a positive count", v)
		}
	}
	ids := make([]string, n)
	lines := make([][]byte, n)
	var total int64
	for i := range n {
		ids[i] = ulid.Make().String()
		lines[i] = sampleRecord(b, ids[i], i, false)
		total += int64(len(lines[i])) + 1
	}
	b.Logf("%d records, %.1f MB of NDJSON, %d bytes per record on average", n, float64(total)/1e6, total/int64(n))
	report := func(b *testing.B, elapsed time.Duration) {
		b.ReportMetric(float64(n)*float64(b.N)/elapsed.Seconds(), "records/s")
		b.ReportMetric(float64(total)*float64(b.N)/1e6/elapsed.Seconds(), "MB/s")
		b.ReportMetric(elapsed.Seconds()/float64(b.N), "s/drain")
	}

	for _, to := range []struct {
		name  string
		start func(*testing.B, string) *benchReceiver
	}{{"uploader", startBenchReceiver}, {"uploader-sink", startBenchSink}} {
		b.Run(to.name, func(b *testing.B) {
			var elapsed time.Duration
			for range b.N {
				b.StopTimer()
				dir := b.TempDir()
				sp, err := spool.Open(filepath.Join(dir, "spool"), nil)
				if err != nil {
					b.Fatal(err)
				}
				commitAll(b, sp, ids, lines)
				r := to.start(b, dir)
				u, err := New(Config{URL: r.url, CAFile: r.caFile}, sp)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)

				b.StartTimer()
				start := time.Now()
				go func() { done <- u.Run(ctx) }()
				for {
					s := u.Stats()
					if s.RecordsDelivered >= int64(n) && s.PendingBatches == 0 && s.PendingRecords == 0 {
						break
					}
					if s.RecordsDeadLettered > 0 {
						b.Fatalf("records dead-lettered: %+v", s)
					}
					time.Sleep(time.Millisecond)
				}
				elapsed += time.Since(start)
				b.StopTimer()

				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				s := u.Stats()
				b.Logf("uploader: %d batches, %d attempts, %d failures", s.BatchesDelivered, s.Attempts, s.Failures)
				r.check(b, n)
			}
			report(b, elapsed)
		})
	}

	b.Run("spool-only", func(b *testing.B) {
		var elapsed time.Duration
		for range b.N {
			b.StopTimer()
			sp, err := spool.Open(filepath.Join(b.TempDir(), "spool"), nil)
			if err != nil {
				b.Fatal(err)
			}
			commitAll(b, sp, ids, lines)
			b.StartTimer()
			start := time.Now()
			pending, err := sp.Pending()
			if err != nil {
				b.Fatal(err)
			}
			for _, chunk := range chunks(pending, defaultBatchMaxRecords, defaultBatchMaxBytes) {
				bt, err := sp.FormBatch(chunk)
				if err != nil {
					b.Fatal(err)
				}
				if err := sp.DeleteBatch(bt.ID); err != nil {
					b.Fatal(err)
				}
			}
			elapsed += time.Since(start)
			b.StopTimer()
			if us := sp.Usage(); us.Records != 0 || us.Batches != 0 {
				b.Fatalf("spool not empty: %+v", us)
			}
		}
		report(b, elapsed)
	})

	b.Run("plain-post", func(b *testing.B) {
		var elapsed time.Duration
		for range b.N {
			b.StopTimer()
			r := startBenchReceiver(b, b.TempDir())
			pool := x509.NewCertPool()
			pem, err := os.ReadFile(r.caFile)
			if err != nil || !pool.AppendCertsFromPEM(pem) {
				b.Fatalf("CA file: %v", err)
			}
			client := &http.Client{Transport: &http.Transport{
				TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
				ForceAttemptHTTP2: true,
			}}
			b.StartTimer()
			start := time.Now()
			var body bytes.Buffer
			for lo := 0; lo < n; lo += defaultBatchMaxRecords {
				body.Reset()
				gzipLines(b, &body, lines[lo:min(lo+defaultBatchMaxRecords, n)])
				req, err := http.NewRequest(http.MethodPost, r.url+"/v1/records", bytes.NewReader(body.Bytes()))
				if err != nil {
					b.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-ndjson")
				req.Header.Set("Content-Encoding", "gzip")
				req.Header.Set("Idempotency-Key", ulid.Make().String())
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("receiver answered %s", resp.Status)
				}
			}
			elapsed += time.Since(start)
			b.StopTimer()
			client.CloseIdleConnections()
			r.check(b, n)
		}
		report(b, elapsed)
	})

	b.Run("gzip", func(b *testing.B) {
		start := time.Now()
		for range b.N {
			for lo := 0; lo < n; lo += defaultBatchMaxRecords {
				gzipLines(b, io.Discard, lines[lo:min(lo+defaultBatchMaxRecords, n)])
			}
		}
		report(b, time.Since(start))
	})
}

func gzipLines(b *testing.B, w io.Writer, lines [][]byte) {
	zw := gzip.NewWriter(w)
	for _, l := range lines {
		if _, err := zw.Write(l); err != nil {
			b.Fatal(err)
		}
		if _, err := zw.Write([]byte{'\n'}); err != nil {
			b.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		b.Fatal(err)
	}
}

// commitAll commits the records through the spool's own Commit, from several goroutines as
// SMTP sessions would, since one fsync'd file each is slow.
func commitAll(b *testing.B, sp *spool.Spool, ids []string, lines [][]byte) {
	const workers = 16
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(ids); i += workers {
				if err := sp.Commit(ids[i], lines[i]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.Logf("setup: committed %d records in %v", len(ids), time.Since(start).Round(time.Millisecond))
}

// startBenchSink runs a pipeline that reads each batch, counts its lines and answers 200:
// what any pipeline must do at least.
func startBenchSink(b *testing.B, dir string) *benchReceiver {
	caFile, srvTLS := testkit.NewCA(b, dir)
	var mu sync.Mutex
	lines := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		data, err := io.ReadAll(zr)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		n := bytes.Count(data, []byte("\n"))
		mu.Lock()
		lines += n
		mu.Unlock()
		fmt.Fprintf(w, `{"accepted":%d,"duplicates":0}`, n)
	}))
	srv.TLS = srvTLS
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	b.Cleanup(srv.Close)
	return &benchReceiver{url: srv.URL, caFile: caFile, count: func() int {
		mu.Lock()
		defer mu.Unlock()
		return lines
	}}
}

type benchReceiver struct {
	url, caFile, outDir string
	count               func() int // for a sink, which stores nothing
}

// startBenchReceiver runs the reference receiver over TLS (HTTP/2 offered) with a testkit CA.
func startBenchReceiver(b *testing.B, dir string) *benchReceiver {
	caFile, srvTLS := testkit.NewCA(b, dir)
	out := filepath.Join(dir, "out")
	rcv, err := receiver.New(receiver.Config{OutDir: out, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(rcv)
	srv.TLS = srvTLS
	srv.EnableHTTP2 = true
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	b.Cleanup(func() {
		srv.Close()
		if err := rcv.Close(); err != nil {
			b.Error(err)
		}
	})
	return &benchReceiver{url: srv.URL, caFile: caFile, outDir: out}
}

// check confirms the receiver stored exactly n records.
func (r *benchReceiver) check(b *testing.B, n int) {
	if r.count != nil {
		if got := r.count(); got != n {
			b.Fatalf("sink received %d records, want %d", got, n)
		}
		return
	}
	data, err := os.ReadFile(filepath.Join(r.outDir, "records.ndjson"))
	if err != nil {
		b.Fatal(err)
	}
	if got := bytes.Count(data, []byte("\n")); got != n {
		b.Fatalf("receiver stored %d records, want %d", got, n)
	}
}
