package uploader

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

const testToken = "s3cr3t-token-value"

func TestDeliversOverHTTPS(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{}
	srv, ca := startPipeline(t, p, true)
	cfg := f.config(srv.URL + "/pipe/")
	cfg.Token = testToken + "\n" // as read from a token file
	cfg.CAFile = ca
	cfg.UserAgent = "journal-sensor/test"
	u := f.newUploader(cfg)

	lines := f.commit(3)
	f.run(u)
	waitFor(t, "the batch to be delivered and deleted", func() bool {
		s := u.Stats()
		return s.BatchesDelivered == 1 && s.PendingBatches == 0 && s.PendingRecords == 0
	})

	reqs, _ := p.seen()
	if len(reqs) != 1 {
		t.Fatalf("pipeline saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/pipe/v1/records" {
		t.Errorf("request = %s %s, want POST /pipe/v1/records", r.method, r.path)
	}
	if r.proto != 2 {
		t.Errorf("request used HTTP/%d, want HTTP/2 when the server offers it", r.proto)
	}
	key := r.header.Get("Idempotency-Key")
	for name, want := range map[string]string{
		"Content-Type":     "application/x-ndjson",
		"Content-Encoding": "gzip",
		"Authorization":    "Bearer " + testToken,
		"User-Agent":       "journal-sensor/test",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if _, err := ulid.ParseStrict(key); err != nil {
		t.Errorf("Idempotency-Key %q is not a ULID: %v", key, err)
	}
	if r.gzipName != key+".ndjson" {
		t.Errorf("Idempotency-Key %q is not the batch id (gzip name %q)", key, r.gzipName)
	}
	if r.length <= 0 || r.length != int64(r.raw) {
		t.Errorf("Content-Length = %d, body was %d bytes; want the file size announced", r.length, r.raw)
	}
	if r.err != nil {
		t.Fatalf("body is not gzip NDJSON: %v", r.err)
	}
	if !slices.Equal(r.lines, lines) {
		t.Errorf("uploaded lines = %q\nwant %q", r.lines, lines)
	}
	if left := entries(t, filepath.Join(f.dir, "batches")); len(left) != 0 {
		t.Errorf("batches/ after a 2xx = %v, want empty", left)
	}
	s := u.Stats()
	if s.RecordsDelivered != 3 || s.Attempts != 1 || s.Failures != 0 || s.AuthFailing {
		t.Errorf("stats = %+v", s)
	}
	if logs := f.logs.String(); strings.Contains(logs, testToken) {
		t.Errorf("the token appears in the log:\n%s", logs)
	}
}

func TestLeftoverBatchesGoFirst(t *testing.T) {
	f := newFixture(t)
	old := f.commit(2)
	leftover := formPending(t, f.sp)[0] // as if an earlier run had batched them and died
	newer := f.commit(1)

	p := &pipeline{}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	u := f.newUploader(cfg)
	f.run(u)
	waitFor(t, "both batches", func() bool { return u.Stats().BatchesDelivered == 2 })

	reqs, _ := p.seen()
	if len(reqs) != 2 {
		t.Fatalf("pipeline saw %d requests, want 2", len(reqs))
	}
	if k := reqs[0].header.Get("Idempotency-Key"); k != leftover.ID {
		t.Errorf("first upload was %s, want the leftover batch %s", k, leftover.ID)
	}
	if !slices.Equal(reqs[0].lines, old) || !slices.Equal(reqs[1].lines, newer) {
		t.Errorf("uploads = %q then %q, want %q then %q", reqs[0].lines, reqs[1].lines, old, newer)
	}
	if reqs[0].header.Get("Authorization") != "" {
		t.Error("Authorization sent with no token configured")
	}
}

func TestRetries503ThenDelivers(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{answer: func(n int, w http.ResponseWriter) {
		if n < 2 {
			http.Error(w, "warming up", http.StatusServiceUnavailable)
		}
	}}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	u := f.newUploader(cfg)
	lines := f.commit(2)
	f.run(u)
	waitFor(t, "delivery", func() bool { return u.Stats().BatchesDelivered == 1 })

	reqs, _ := p.seen()
	if len(reqs) != 3 {
		t.Fatalf("pipeline saw %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if r.header.Get("Idempotency-Key") != reqs[0].header.Get("Idempotency-Key") {
			t.Errorf("attempt %d has another Idempotency-Key", i)
		}
		if !slices.Equal(r.lines, lines) {
			t.Errorf("attempt %d body = %q, want the whole batch again", i, r.lines)
		}
	}
	s := u.Stats()
	if s.Attempts != 3 || s.Failures != 2 || !strings.Contains(s.LastError, "503") {
		t.Errorf("stats = %+v, want 3 attempts, 2 failures, last error naming the 503", s)
	}
	if s.PendingBatches != 0 || s.RecordsDelivered != 2 {
		t.Errorf("stats = %+v, want everything delivered", s)
	}
}

func TestHonoursRetryAfter(t *testing.T) {
	for _, tc := range []struct {
		name          string
		retryAfter    string
		maxRetryAfter time.Duration
		atLeast       time.Duration
		below         time.Duration
	}{
		{"seconds", "1", 5 * time.Second, 950 * time.Millisecond, 3 * time.Second},
		{"capped", "3600", 150 * time.Millisecond, 140 * time.Millisecond, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := &pipeline{answer: func(n int, w http.ResponseWriter) {
				if n == 0 {
					w.Header().Set("Retry-After", tc.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
				}
			}}
			srv, ca := startPipeline(t, p, false)
			cfg := f.config(srv.URL)
			cfg.CAFile = ca
			cfg.MaxRetryAfter = tc.maxRetryAfter
			u := f.newUploader(cfg)
			f.commit(1)
			f.run(u)
			waitFor(t, "delivery", func() bool { return u.Stats().BatchesDelivered == 1 })

			_, at := p.seen()
			if len(at) != 2 {
				t.Fatalf("pipeline saw %d requests, want 2", len(at))
			}
			if gap := at[1].Sub(at[0]); gap < tc.atLeast || gap >= tc.below {
				t.Errorf("retried after %v, want within [%v, %v)", gap, tc.atLeast, tc.below)
			}
		})
	}
}

func TestUnauthorizedKeepsBatchAndSaysSo(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{answer: func(n int, w http.ResponseWriter) {
		http.Error(w, "token expired", http.StatusUnauthorized)
	}}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	cfg.Token = testToken
	u := f.newUploader(cfg)
	lines := f.commit(2)
	f.run(u)
	waitFor(t, "three refused attempts", func() bool { return p.count() >= 3 })

	s := u.Stats()
	if !s.AuthFailing || s.PendingBatches != 1 || s.BatchesDeadLettered != 0 {
		t.Errorf("stats = %+v, want auth failing and the batch kept", s)
	}
	_, at := p.seen()
	if gap := at[2].Sub(at[1]); gap < cfg.MaxBackoff {
		t.Errorf("retried after %v, want the slow MaxBackoff %v", gap, cfg.MaxBackoff)
	}
	logs := f.logs.String()
	if n := strings.Count(logs, "level=ERROR msg=\"pipeline rejected our credentials"); n < 2 {
		t.Errorf("%d ERROR lines about credentials, want one per refused attempt:\n%s", n, logs)
	}
	if !strings.Contains(logs, "token expired") {
		t.Error("the log does not carry the pipeline's reason")
	}
	if strings.Contains(logs, testToken) {
		t.Error("the token appears in the log")
	}

	p.setAnswer(nil) // the operator fixed the token
	waitFor(t, "delivery", func() bool { return u.Stats().BatchesDelivered == 1 })
	if s := u.Stats(); s.AuthFailing {
		t.Error("AuthFailing still set after a 2xx")
	}
	reqs, _ := p.seen()
	if last := reqs[len(reqs)-1]; !slices.Equal(last.lines, lines) {
		t.Errorf("delivered %q, want %q", last.lines, lines)
	}
}

func TestBadRequestSplitsBatch(t *testing.T) {
	// A pipeline that refuses a batch once, then takes its halves: nothing was poison after all
	// (or the pipeline changed its mind), and nothing may end up as a dead letter.
	f := newFixture(t)
	p := &pipeline{answer: func(n int, w http.ResponseWriter) {
		if n == 0 {
			http.Error(w, "record 2: schema violation", http.StatusBadRequest)
		}
	}}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	u := f.newUploader(cfg)
	lines := f.commit(3)
	f.run(u)
	waitFor(t, "both halves delivered", func() bool { return u.Stats().RecordsDelivered == 3 })

	reqs, _ := p.seen()
	if len(reqs) != 3 {
		t.Fatalf("pipeline saw %d requests, want the whole batch and its two halves", len(reqs))
	}
	if got := append(slices.Clone(reqs[1].lines), reqs[2].lines...); !slices.Equal(got, lines) {
		t.Errorf("halves carried %q, want %q in order", got, lines)
	}
	if len(reqs[1].lines) != 2 || len(reqs[2].lines) != 1 {
		t.Errorf("halves of %d and %d records, want 2 and 1", len(reqs[1].lines), len(reqs[2].lines))
	}
	keys := []string{reqs[0].header.Get("Idempotency-Key"), reqs[1].header.Get("Idempotency-Key"), reqs[2].header.Get("Idempotency-Key")}
	if keys[0] == keys[1] || keys[0] == keys[2] || keys[1] == keys[2] {
		t.Errorf("Idempotency-Keys %v, want each part to have its own", keys)
	}
	if dead := entries(t, filepath.Join(f.dir, "deadletter")); len(dead) != 0 {
		t.Errorf("deadletter/ = %v, want empty", dead)
	}
	s := u.Stats()
	if s.BatchesDelivered != 2 || s.BatchesSplit != 1 || s.RecordsDeadLettered != 0 || s.PendingBatches != 0 {
		t.Errorf("stats = %+v", s)
	}
	if !strings.Contains(f.logs.String(), "schema violation") {
		t.Error("the log does not carry the pipeline's reason")
	}

	// Later records still flow.
	f.commit(1)
	waitFor(t, "the next batch", func() bool { return u.Stats().BatchesDelivered == 3 })
	if n := p.count(); n != 4 {
		t.Errorf("pipeline saw %d requests, want 4", n)
	}
}

func TestClassify(t *testing.T) {
	for status, want := range map[int]class{
		200: classDelivered, 201: classDelivered, 204: classDelivered,
		400: classPoison, 413: classPoison, 422: classPoison, // DESIGN.md, "Upload protocol"
		401: classAuth, 403: classAuth,
		404: classRetry, 405: classRetry, 408: classRetry, 415: classRetry, 429: classRetry,
		500: classRetry, 502: classRetry, 503: classRetry,
		101: classRetry, 301: classRetry, 307: classRetry,
	} {
		if got := classify(status); got != want {
			t.Errorf("classify(%d) = %d, want %d", status, got, want)
		}
	}
}

func TestDeliversEverythingAfterOutage(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{}
	down := func(n int, w http.ResponseWriter) {
		if n%2 == 0 {
			// A dropped connection: a network error, not an HTTP answer.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}
	p.setAnswer(down)
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	cfg.BatchMaxRecords = 10
	u := f.newUploader(cfg)
	f.run(u)

	var want []string
	want = append(want, f.commit(5)...)
	waitFor(t, "failed attempts", func() bool { return u.Stats().Failures >= 4 })
	want = append(want, f.commit(20)...)
	time.Sleep(20 * time.Millisecond)
	want = append(want, f.commit(5)...)
	if s := u.Stats(); s.RecordsDelivered != 0 {
		t.Fatalf("delivered %d records while the pipeline was down", s.RecordsDelivered)
	}

	p.setAnswer(nil)
	waitFor(t, "everything delivered", func() bool {
		s := u.Stats()
		return s.RecordsDelivered >= int64(len(want)) && s.PendingRecords == 0 && s.PendingBatches == 0
	})

	got := map[string]bool{}
	reqs, _ := p.seen()
	for _, r := range reqs {
		if r.err != nil {
			continue
		}
		if len(r.lines) > cfg.BatchMaxRecords {
			t.Errorf("a batch of %d records, want at most %d", len(r.lines), cfg.BatchMaxRecords)
		}
		for _, l := range r.lines {
			got[l] = true
		}
	}
	for _, l := range want {
		if !got[l] {
			t.Errorf("record never delivered: %s", l)
		}
	}
}

func TestUntrustedCertificateIsRefused(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{}
	srv, _ := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = otherCA(t)
	u := f.newUploader(cfg)
	f.commit(1)
	stop := f.run(u)
	waitFor(t, "retried attempts", func() bool { return u.Stats().Attempts >= 3 })
	stop()

	if n := p.count(); n != 0 {
		t.Errorf("the server got %d requests through an untrusted certificate", n)
	}
	s := u.Stats()
	if !strings.Contains(s.LastError, "certificate") {
		t.Errorf("last error = %q, want it to name the certificate problem", s.LastError)
	}
	if left := entries(t, filepath.Join(f.dir, "batches")); len(left) != 1 {
		t.Errorf("batches/ = %v, want the batch kept", left)
	}
	if s.BatchesDelivered != 0 || s.BatchesDeadLettered != 0 {
		t.Errorf("stats = %+v, want the batch neither delivered nor dead-lettered", s)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string
	}{
		{"empty URL", func(c *Config) { c.URL = "" }, "URL"},
		{"plain http", func(c *Config) { c.URL = "http://pipeline.example" }, "URL"},
		{"unknown scheme", func(c *Config) { c.URL = "ftp://pipeline.example" }, "URL"},
		{"no host", func(c *Config) { c.URL = "https:///v1" }, "URL"},
		{"credentials in URL", func(c *Config) { c.URL = "https://u:p@pipeline.example" }, "URL"},
		{"relative file URL", func(c *Config) { c.URL = "file://sensor-data/outbox" }, "URL"},
		{"missing CA file", func(c *Config) { c.CAFile = filepath.Join(dir, "nope.pem") }, "CAFile"},
		{"CA file without PEM", func(c *Config) { c.CAFile = notPEM }, "CAFile"},
		{"cert without key", func(c *Config) { c.ClientCertFile = notPEM }, "ClientKeyFile"},
		{"unreadable client cert", func(c *Config) { c.ClientCertFile, c.ClientKeyFile = notPEM, notPEM }, "ClientCertFile"},
		{"token with newline inside", func(c *Config) { c.Token = "a\nb" }, "Token"},
		{"backoff upside down", func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second }, "MinBackoff"},
		{"negative batch size", func(c *Config) { c.BatchMaxRecords = -1 }, "BatchMaxRecords"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{URL: "https://pipeline.example"}
			tc.edit(&cfg)
			_, err := New(cfg, f.sp)
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			if !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
		})
	}
	for _, ok := range []string{"https://pipeline.example", "https://pipeline.example:8443/prefix/", "file:///" + dir[1:] + "/outbox"} {
		if _, err := New(Config{URL: ok}, f.sp); err != nil {
			t.Errorf("New(%q) = %v, want it accepted", ok, err)
		}
	}
}

func TestRequestTimeoutIsPerAttempt(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			f := newFixture(t)
			var mu sync.Mutex
			var held []time.Duration
			n := 0
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				mu.Lock()
				n++
				stall := n <= 2
				mu.Unlock()
				if !stall {
					return
				}
				// A pipeline that hangs: only the client's timeout ends the attempt.
				start := time.Now()
				select {
				case <-r.Context().Done():
				case <-time.After(5 * time.Second):
				}
				mu.Lock()
				held = append(held, time.Since(start))
				mu.Unlock()
				// A hung pipeline never answers: without this the handler's return would write
				// a 200 that, in a close race with the client's timeout, can still be read.
				panic(http.ErrAbortHandler)
			})
			srv, ca := startPipeline(t, h, h2)
			cfg := f.config(srv.URL)
			cfg.CAFile = ca
			cfg.RequestTimeout = 300 * time.Millisecond
			u := f.newUploader(cfg)
			start := time.Now()
			f.commit(1)
			f.run(u)
			waitFor(t, "delivery", func() bool { return u.Stats().BatchesDelivered == 1 })
			took := time.Since(start)

			// Two attempts of 300ms each went by before the third delivered the batch: a timeout
			// for the whole batch would have ended it at 300ms.
			if took < 2*cfg.RequestTimeout {
				t.Errorf("delivered after %v, want at least two timed-out attempts of %v", took, cfg.RequestTimeout)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(held) != 2 {
				t.Fatalf("%d stalled attempts ended, want 2", len(held))
			}
			for i, d := range held {
				if d < 250*time.Millisecond || d > 2*time.Second {
					t.Errorf("stalled attempt %d was cut after %v, want about %v", i, d, cfg.RequestTimeout)
				}
			}
			if s := u.Stats(); s.Attempts != 3 || s.Failures != 2 || !strings.Contains(s.LastError, "Timeout") {
				t.Errorf("stats = %+v, want 3 attempts, 2 timeouts", s)
			}
		})
	}
}

func TestReusesOneConnection(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "HTTP/1.1", true: "HTTP/2"}[h2], func(t *testing.T) {
			f := newFixture(t)
			p := &pipeline{answer: func(n int, w http.ResponseWriter) {
				switch n {
				case 1:
					// A retry must not cost a connection either.
					http.Error(w, "busy", http.StatusServiceUnavailable)
				case 3:
					// Nor a refusal, whose body (8 KB) is read only in part for the log.
					http.Error(w, strings.Repeat("refused ", 1000), http.StatusBadRequest)
				}
			}}
			var conns atomic.Int32
			srv := httptest.NewUnstartedServer(p)
			srv.EnableHTTP2 = h2
			srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
				if s == http.StateNew {
					conns.Add(1)
				}
			}
			srv.StartTLS()
			t.Cleanup(srv.Close)
			ca := filepath.Join(t.TempDir(), "ca.pem")
			writePEM(t, ca, srv.Certificate().Raw)

			cfg := f.config(srv.URL)
			cfg.CAFile = ca
			cfg.BatchMaxRecords = 2
			cfg.Concurrency = 1 // several at once over HTTP/1.1 need several connections
			u := f.newUploader(cfg)
			f.commit(10)
			f.run(u)
			waitFor(t, "all records", func() bool { return u.Stats().RecordsDelivered == 10 })

			reqs, _ := p.seen()
			// 5 batches, one retry, and the refused batch's two halves.
			if len(reqs) != 8 {
				t.Errorf("pipeline saw %d requests, want 8", len(reqs))
			}
			wantProto := map[bool]int{false: 1, true: 2}[h2]
			for i, r := range reqs {
				if r.proto != wantProto {
					t.Errorf("request %d used HTTP/%d, want HTTP/%d", i, r.proto, wantProto)
				}
			}
			if n := conns.Load(); n != 1 {
				t.Errorf("%d connections for %d requests, want 1 kept alive", n, len(reqs))
			}
		})
	}
}

// A backlog goes out Concurrency batches at a time: the pipeline here answers nothing until
// it holds that many requests at once, so sequential delivery would never finish.
func TestDeliversBatchesConcurrently(t *testing.T) {
	f := newFixture(t)
	const conc = 3
	var mu sync.Mutex
	inFlight, most := 0, 0
	opened := false
	gate := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == conc && most == conc && !opened {
			opened = true
			close(gate)
		}
		mu.Unlock()
		select {
		case <-gate:
		case <-time.After(3 * time.Second): // so a failure ends with an answer, not a hang
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	srv, ca := startPipeline(t, h, true)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	cfg.BatchMaxRecords = 1
	cfg.Concurrency = conc
	u := f.newUploader(cfg)
	f.commit(6)
	start := time.Now()
	f.run(u)
	waitFor(t, "all records", func() bool { return u.Stats().RecordsDelivered == 6 })
	mu.Lock()
	defer mu.Unlock()
	if most != conc || time.Since(start) > 2*time.Second {
		t.Errorf("at most %d requests in flight (delivered after %v), want %d at once", most, time.Since(start), conc)
	}
}
