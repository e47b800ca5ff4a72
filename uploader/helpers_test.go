package uploader

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/uploader/spool"
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
}

// pipeline is a test HTTPS pipeline whose answer to each request is set by the test.
type pipeline struct {
	mu       sync.Mutex
	requests []request
	at       []time.Time
	answer   func(n int, w http.ResponseWriter) // n counts requests from 0
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
	p.mu.Lock()
	n := len(p.requests)
	p.requests = append(p.requests, req)
	p.at = append(p.at, time.Now())
	answer := p.answer
	p.mu.Unlock()
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
