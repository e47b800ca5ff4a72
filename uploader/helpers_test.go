package uploader

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/receiver"
	"github.com/journalsensor/sensor/spool"
)

// logBuffer collects log output written from Run's goroutine.
type logBuffer = testkit.LogBuffer

type fixture struct {
	t    *testing.T
	dir  string // spool dir
	sp   *spool.Spool
	logs *logBuffer
	log  *slog.Logger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	dir := filepath.Join(t.TempDir(), "spool")
	sp, err := spool.Open(dir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})
	return &fixture{t: t, dir: dir, sp: sp, logs: logs, log: log}
}

// config returns a Config with durations small enough for tests.
func (f *fixture) config(url string) Config {
	return Config{
		URL:            url,
		BatchLinger:    -1,
		RequestTimeout: 2 * time.Second,
		MinBackoff:     5 * time.Millisecond,
		MaxBackoff:     40 * time.Millisecond,
		MaxRetryAfter:  time.Second,
		Logger:         f.log,
	}
}

// commit commits n records and returns their NDJSON lines in order.
func (f *fixture) commit(n int) []string {
	f.t.Helper()
	var lines []string
	for i := range n {
		id := ulid.Make().String()
		line := fmt.Sprintf(`{"schema":"sensor.record/v1","id":%q,"n":%d}`, id, i)
		if err := f.sp.Commit(id, []byte(line)); err != nil {
			f.t.Fatal(err)
		}
		lines = append(lines, line+"\n")
	}
	return lines
}

// run starts u.Run and, at cleanup, stops it and checks it returned nil promptly.
func (f *fixture) run(u *Uploader) (stop func()) {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					f.t.Errorf("Run returned %v, want nil", err)
				}
			case <-time.After(2 * time.Second):
				f.t.Error("Run did not return after its context was cancelled")
			}
		})
	}
	f.t.Cleanup(stop)
	return stop
}

func (f *fixture) newUploader(cfg Config) *Uploader {
	f.t.Helper()
	u, err := New(cfg, f.sp)
	if err != nil {
		f.t.Fatalf("New: %v", err)
	}
	return u
}

// waitFor polls cond until it holds, failing the test after a few seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// request is what the test pipeline saw of one upload.
type request struct {
	method, path string
	proto        int
	header       http.Header
	length       int64 // Content-Length as sent
	raw          int   // bytes actually received
	gzipName     string
	lines        []string
	err          error // the body could not be read as gzip NDJSON
	status       int   // what judge answered; 0 when answer did
}

// pipeline is a test HTTPS pipeline whose answer to each request is set by the test.
type pipeline struct {
	mu       sync.Mutex
	requests []request
	at       []time.Time
	answer   func(n int, w http.ResponseWriter) // n counts requests from 0
	judge    func(r request) int                // when set, answers by content instead
}

func (p *pipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	req := request{method: r.Method, path: r.URL.Path, proto: r.ProtoMajor, header: r.Header.Clone(), length: r.ContentLength}
	raw, err := io.ReadAll(r.Body)
	req.raw = len(raw)
	if err == nil {
		var zr *gzip.Reader
		zr, err = gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			req.gzipName = zr.Name
			var data []byte
			data, err = io.ReadAll(zr)
			req.lines = strings.SplitAfter(string(data), "\n")
			req.lines = req.lines[:len(req.lines)-1] // the empty string after the last "\n"
		}
	}
	req.err = err
	if p.judge != nil {
		req.status = p.judge(req)
	}
	p.mu.Lock()
	n := len(p.requests)
	p.requests = append(p.requests, req)
	p.at = append(p.at, time.Now())
	answer := p.answer
	p.mu.Unlock()
	if req.status != 0 {
		http.Error(w, http.StatusText(req.status), req.status)
		return
	}
	if answer == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	answer(n, w)
}

func (p *pipeline) setAnswer(a func(n int, w http.ResponseWriter)) {
	p.mu.Lock()
	p.answer = a
	p.mu.Unlock()
}

func (p *pipeline) seen() ([]request, []time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]request(nil), p.requests...), append([]time.Time(nil), p.at...)
}

func (p *pipeline) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.requests)
}

// startPipeline starts an HTTPS server (HTTP/2 when h2) and writes its certificate to a PEM
// file to use as the CA file.
func startPipeline(t *testing.T, h http.Handler, h2 bool) (srv *httptest.Server, caFile string) {
	t.Helper()
	srv = httptest.NewUnstartedServer(h)
	srv.EnableHTTP2 = h2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake failures are expected in some tests
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	writePEM(t, caFile, srv.Certificate().Raw)
	return srv, caFile
}

func writePEM(t *testing.T, name string, der []byte) {
	t.Helper()
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// otherCA writes a CA certificate that signed nothing the test servers present.
func otherCA(t *testing.T) string {
	t.Helper()
	caFile, _ := testkit.NewCA(t, t.TempDir())
	return caFile
}

// idAt returns a fresh record id whose time is t.
func idAt(t time.Time) string {
	return ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()
}

// sampleRecord returns a schema-valid record line (no newline) of roughly 2 KB, shaped like
// what the parser makes of an ordinary message. A bad record breaks the schema (an unknown
// source kind), which the reference receiver answers with 422.
func sampleRecord(tb testing.TB, id string, n int, bad bool) []byte {
	tb.Helper()
	kind := api.SourceDirect
	if bad {
		kind = "not-a-kind"
	}
	from := api.Address{Name: "Sender Person", Address: fmt.Sprintf("sender%d@example.com", n)}
	sum := sha256.Sum256([]byte(id))
	rec := &api.Record{
		Schema:     api.SchemaV1,
		ID:         id,
		ReceivedAt: api.FormatTime(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)),
		Sensor:     api.Sensor{ID: "sensor-test", Version: "test"},
		Envelope: &api.Envelope{Transport: api.TransportSMTP, ClientIP: "192.0.2.10", ClientPort: 40000,
			HELO: "mx.example.com", MailFrom: from.Address, RcptTo: []string{"journal@sensor.example"}, Size: 48213},
		Source: api.Source{Kind: kind},
		Message: api.Message{
			MessageID: fmt.Sprintf("<%d.%s@mail.example.com>", n, id),
			Date:      "2026-03-01T11:59:58Z",
			Subject:   fmt.Sprintf("Quarterly report %d: figures attached", n),
			From:      []api.Address{from},
			To:        []api.Address{{Name: "Recipient One", Address: "one@example.org"}, {Address: "two@example.org"}},
			Headers: [][2]string{
				{"Return-Path", "<" + from.Address + ">"},
				{"Received", "from mx.example.com (mx.example.com [192.0.2.10]) by sensor.example with ESMTPS id " + id},
				{"Received", "from internal.example.com by mx.example.com with ESMTP; Sun, 1 Mar 2026 11:59:58 +0000"},
				{"DKIM-Signature", "v=1; a=rsa-sha256; d=example.com; s=s1; h=from:to:subject:date; bh=" + hex.EncodeToString(sum[:])},
				{"Message-ID", fmt.Sprintf("<%d.%s@mail.example.com>", n, id)},
				{"Date", "Sun, 1 Mar 2026 11:59:58 +0000"},
				{"From", "Sender Person <" + from.Address + ">"},
				{"To", "Recipient One <one@example.org>, two@example.org"},
				{"Subject", fmt.Sprintf("Quarterly report %d: figures attached", n)},
				{"MIME-Version", "1.0"},
				{"Content-Type", "multipart/mixed; boundary=\"b1_" + id + "\""},
			},
			Received: []api.Received{
				{From: "mx.example.com", By: "sensor.example", With: "ESMTPS", IP: "192.0.2.10", Date: "2026-03-01T11:59:59Z"},
				{From: "internal.example.com", By: "mx.example.com", With: "ESMTP", Date: "2026-03-01T11:59:58Z"},
			},
			AuthenticationResults: []api.AuthResult{{AuthServID: "mx.example.com", Results: []api.AuthMethodResult{
				{Method: "spf", Result: "pass"}, {Method: "dkim", Result: "pass"}, {Method: "dmarc", Result: "pass"},
			}}},
			Size:      48213,
			SHA256:    hex.EncodeToString(sum[:]),
			Structure: "multipart/mixed[text/plain,application/pdf]",
		},
		Attachments: []api.Attachment{{
			Path: "1", Filename: fmt.Sprintf("report-%d.pdf", n), ContentType: "application/pdf",
			DetectedType: "application/pdf", Disposition: "attachment", Size: 40211, SHA256: hex.EncodeToString(sum[:]),
		}},
		URLs: []api.URL{
			{URL: fmt.Sprintf("https://portal.example.com/reports/%d?ref=mail", n), Host: "portal.example.com",
				Sources: []string{api.URLSourceHTML}, Count: 2},
			{URL: "https://www.example.com/unsubscribe", Host: "www.example.com", Sources: []string{api.URLSourceHTML}, Count: 1},
		},
	}
	line, err := api.MarshalRecord(rec)
	if err != nil {
		tb.Fatal(err)
	}
	return line
}

// commitRecords commits n sample records made from time at on, bad where bad(i); it returns their
// ids and lines (with "\n") in order.
func (f *fixture) commitRecords(n int, at time.Time, bad func(int) bool) (ids, lines []string) {
	f.t.Helper()
	for i := range n {
		// A millisecond apart: ids within one millisecond would sort at random.
		id := idAt(at.Add(time.Duration(i) * time.Millisecond))
		line := sampleRecord(f.t, id, i, bad != nil && bad(i))
		if err := f.sp.Commit(id, line); err != nil {
			f.t.Fatal(err)
		}
		ids = append(ids, id)
		lines = append(lines, string(line)+"\n")
	}
	return ids, lines
}

// refReceiver is the reference pipeline (receiver.Receiver) behind a real HTTPS listener, with a
// record of every request it answered.
type refReceiver struct {
	srv    *httptest.Server
	caFile string
	outDir string

	mu     sync.Mutex
	keys   []string // Idempotency-Key of each request, in order
	status []int
	protos []int
	// Per request in the order they arrived: "METHOD /path", Content-Length as sent, and the
	// status answered (0 until answered).
	calls      []string
	lengths    []int64
	callStatus []int
	// intercept, when set, may answer a request instead of the receiver (returning true).
	intercept func(w http.ResponseWriter, req *http.Request) bool
}

// startReceiver starts the reference receiver over TLS with a testkit CA; h2 offers HTTP/2.
func startReceiver(t testing.TB, h2 bool) *refReceiver {
	t.Helper()
	dir := t.TempDir()
	caFile, srvTLS := testkit.NewCA(t, dir)
	out := filepath.Join(dir, "out")
	rcv, err := receiver.New(receiver.Config{OutDir: out, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	r := &refReceiver{caFile: caFile, outDir: out}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		r.mu.Lock()
		intercept := r.intercept
		i := len(r.calls)
		r.calls = append(r.calls, req.Method+" "+req.URL.Path)
		r.lengths = append(r.lengths, req.ContentLength)
		r.callStatus = append(r.callStatus, 0)
		r.mu.Unlock()
		if intercept == nil || !intercept(sw, req) {
			rcv.ServeHTTP(sw, req)
		}
		r.mu.Lock()
		r.keys = append(r.keys, req.Header.Get("Idempotency-Key"))
		r.status = append(r.status, sw.status)
		r.protos = append(r.protos, req.ProtoMajor)
		r.callStatus[i] = sw.status
		r.mu.Unlock()
	}))
	r.srv.TLS = srvTLS
	r.srv.EnableHTTP2 = h2
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	t.Cleanup(func() {
		r.srv.Close()
		if err := rcv.Close(); err != nil {
			t.Error(err)
		}
	})
	return r
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (r *refReceiver) seen() (keys []string, status, protos []int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.keys), slices.Clone(r.status), slices.Clone(r.protos)
}

// stored returns the lines in the receiver's records.ndjson, in order.
func (r *refReceiver) stored(t testing.TB) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(r.outDir, "records.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	return lines[:len(lines)-1]
}

// deadLetters returns the records in each file of the dead-letter folder, by file name.
func (f *fixture) deadLetters() map[string][]string {
	f.t.Helper()
	out := map[string][]string{}
	dir := filepath.Join(f.dir, "deadletter")
	for _, name := range entries(f.t, dir) {
		if name == "blobs" {
			continue // deadletter/blobs/: attachment bytes, not batches
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			f.t.Fatal(err)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			f.t.Fatalf("dead letter %s: %v", name, err)
		}
		plain, err := io.ReadAll(zr)
		if err != nil {
			f.t.Fatalf("dead letter %s: %v", name, err)
		}
		lines := strings.SplitAfter(string(plain), "\n")
		out[name] = lines[:len(lines)-1]
	}
	return out
}

// httpsConfig returns a test Config for the receiver r.
func (f *fixture) httpsConfig(r *refReceiver) Config {
	cfg := f.config(r.srv.URL)
	cfg.CAFile = r.caFile
	return cfg
}

// formPending forms every pending record into batches, cut at the given indexes (none: one
// batch), as the uploader would, and returns them.
func formPending(t testing.TB, sp *spool.Spool, cuts ...int) []spool.Batch {
	t.Helper()
	pending, err := sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	var out []spool.Batch
	start := 0
	for _, end := range append(cuts, len(pending)) {
		b, err := sp.FormBatch(pending[start:end])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
		start = end
	}
	return out
}
