package sensor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/uploader"
)

type fixedStats uploader.Stats

func (f fixedStats) Stats() uploader.Stats { return uploader.Stats(f) }

// Every key /status returns, at any depth, is snake_case, the uploader's counters included:
// scripts and dashboards read them, and one spelling is all they should need to know.
func TestStatusKeysAreSnakeCase(t *testing.T) {
	a := &Admin{
		Metrics: &Metrics{},
		// AuthFailing makes /status include not_ready_reason, which is omitted when ready.
		Uploads: fixedStats{RecordsDelivered: 3, AuthFailing: true, LastError: "x", LastErrorAt: time.Now()},
		// A failing spool adds spool_error, also omitted when all is well.
		Spool:   &fakeHealth{err: errors.New("disk full")},
		Started: time.Now(),
		Version: "v-test",
	}
	rec := httptest.NewRecorder()
	a.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/status", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("/status: %d %s", rec.Code, rec.Body)
	}
	var doc any
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, rec.Body)
	}
	snake := regexp.MustCompile(`^[a-z0-9_]+$`)
	var keys int
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, child := range v {
				keys++
				if !snake.MatchString(k) {
					t.Errorf("/status key %q at %s is not snake_case", k, path)
				}
				walk(path+"."+k, child)
			}
		case []any:
			for _, child := range v {
				walk(path+"[]", child)
			}
		}
	}
	walk("$", doc)
	m := doc.(map[string]any)
	for _, k := range []string{"not_ready_reason", "uploads", "spool_ok", "spool_error"} {
		if _, ok := m[k]; !ok {
			t.Errorf("/status has no %q, so the walk did not see it: %s", k, rec.Body)
		}
	}
	if up, _ := m["uploads"].(map[string]any); up["records_delivered"] != float64(3) {
		t.Errorf("uploads.records_delivered = %v, want 3", up["records_delivered"])
	}
	if keys < 20 {
		t.Errorf("only %d keys walked: %s", keys, rec.Body)
	}
}

// fakeHealth is a spool whose health the test sets.
type fakeHealth struct {
	mu  sync.Mutex
	err error
}

func (f *fakeHealth) Health() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeHealth) set(err error) {
	f.mu.Lock()
	f.err = err
	f.mu.Unlock()
}

// A spool that cannot commit makes the sensor not ready: /readyz fails naming it, /status
// says spool_ok false and why, and the change is logged once however often it is asked.
// Readiness comes back when the spool does, logged once too.
func TestReadinessFollowsTheSpool(t *testing.T) {
	spool := &fakeHealth{}
	logs := &testkit.LogBuffer{}
	a := &Admin{Metrics: &Metrics{}, Spool: spool, Started: time.Now(), Version: "v-test",
		Listening: func() bool { return true }, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	h := a.Handler()
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	status := func() map[string]any {
		t.Helper()
		_, body := get("/status")
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	if code, _ := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with a healthy spool: %d", code)
	}
	if s := status(); s["spool_ok"] != true || s["ready"] != true {
		t.Errorf("/status with a healthy spool: %v", s)
	}

	full := &fs.PathError{Op: "write", Path: "/var/lib/sensor/spool/tmp/probe-1", Err: syscall.ENOSPC}
	spool.set(fmt.Errorf("spool cannot commit: 1 commit(s) failed: %w", full))
	get("/readyz")
	// The details change; the cause does not. Only the log names the path.
	spool.set(fmt.Errorf("spool cannot commit: 2 commit(s) failed: %w", full))
	const why = "spool cannot commit: no space left on device"
	for range 3 {
		if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, why) {
			t.Fatalf("/readyz: %d %q, want 503 saying %q", code, body, why)
		}
		s := status()
		if s["spool_ok"] != false || s["ready"] != false || s["not_ready_reason"] != why || s["spool_error"] != "no space left on device" {
			t.Fatalf("/status: %v", s)
		}
	}
	if n := strings.Count(logs.String(), `msg="not ready`); n != 1 {
		t.Errorf("%d not-ready log lines for one change, want 1:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), full.Path) {
		t.Errorf("the log does not name the failing path:\n%s", logs)
	}

	spool.set(nil)
	for range 3 {
		if code, _ := get("/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz after the spool recovered: %d", code)
		}
	}
	if s := status(); s["spool_ok"] != true || s["ready"] != true {
		t.Errorf("/status after the spool recovered: %v", s)
	}
	if _, ok := status()["spool_error"]; ok {
		t.Error("/status keeps spool_error after recovery")
	}
	if n := strings.Count(logs.String(), `msg="ready again"`); n != 1 {
		t.Errorf("%d ready-again log lines, want 1:\n%s", n, logs)
	}
}

// With a token, /metrics, /status and every other page need it as a bearer token: 401 and
// WWW-Authenticate without it or with a wrong one, the same page as without a token with it.
// /healthz and /readyz stay open, for probes and `sensor healthcheck`.
func TestAdminTokenGuardsAllButTheProbes(t *testing.T) {
	const token = "adm-0123456789abcdef"
	newAdmin := func(token string) *Admin {
		m := &Metrics{}
		m.messagesAccepted.Add(7)
		m.countReply(250)
		return &Admin{Metrics: m, Uploads: fixedStats{RecordsDelivered: 3}, Started: time.Now(), Version: "v-test",
			Listening: func() bool { return true }, Token: token}
	}
	srv := httptest.NewServer(newAdmin(token).Handler())
	defer srv.Close()
	open := httptest.NewServer(newAdmin("").Handler())
	defer open.Close()
	get := func(base, path, auth string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, resp.Header, string(b)
	}
	for _, path := range []string{"/metrics", "/status", "/nothing-here"} {
		for _, auth := range []string{"", "Bearer wrong", "Bearer " + token + "x", "Basic " + token, token, "Bearer"} {
			code, h, body := get(srv.URL, path, auth)
			if code != http.StatusUnauthorized || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s with Authorization %q: %d, WWW-Authenticate %q, want 401 and Bearer", path, auth, code, h.Get("WWW-Authenticate"))
			}
			if strings.Contains(body, token) || strings.Contains(body, "sensor_") {
				t.Errorf("%s refused, yet its body says %q", path, body)
			}
		}
	}
	for _, auth := range []string{"Bearer " + token, "bearer " + token, "Bearer  " + token + " "} {
		if code, _, _ := get(srv.URL, "/status", auth); code != http.StatusOK {
			t.Errorf("/status with Authorization %q: %d, want 200", auth, code)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, body := get(srv.URL, path, ""); code != http.StatusOK {
			t.Errorf("%s without a token: %d %q, want 200", path, code, body)
		}
		if code, _, _ := get(srv.URL, path, "Bearer wrong"); code != http.StatusOK {
			t.Errorf("%s with a wrong token: %d, want 200 (probes ignore it)", path, code)
		}
	}
	code, h, withToken := get(srv.URL, "/metrics", "Bearer "+token)
	_, hOpen, without := get(open.URL, "/metrics", "")
	// The Go runtime's and the process's series differ from scrape to scrape; the sensor's
	// own must not.
	own := func(s string) string {
		var keep []string
		for line := range strings.Lines(s) {
			if strings.Contains(line, "sensor_") {
				keep = append(keep, line)
			}
		}
		return strings.Join(keep, "")
	}
	if code != http.StatusOK || own(withToken) != own(without) || own(without) == "" || h.Get("Content-Type") != hOpen.Get("Content-Type") {
		t.Errorf("/metrics with the token: %d %q\n%s\nwant 200 %q and what it is without a token:\n%s",
			code, h.Get("Content-Type"), withToken, hOpen.Get("Content-Type"), without)
	}
	if !strings.Contains(withToken, "sensor_smtp_messages_accepted_total 7\n") || !strings.Contains(withToken, `sensor_smtp_replies_total{code="250"} 1`) {
		t.Errorf("/metrics lacks the counters:\n%s", withToken)
	}
}

// /status and /readyz show no filesystem path and no credential to anyone, token or not:
// the spool's error is told by its kind, and paths in the uploader's last error, the data
// dir's (given relative, as by default) or any other, become <path>.
func TestStatusShowsNoPathsOrTokens(t *testing.T) {
	const token = "adm-0123456789abcdef"
	dataDir := "sensor-data-x"
	absData, err := filepath.Abs(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spoolErr error
		kind     string
	}{
		{&fs.PathError{Op: "open", Path: filepath.Join(dataDir, "spool", "tmp", "x"), Err: syscall.ENOSPC}, "no space left on device"},
		{fmt.Errorf("commit: %w", &fs.PathError{Op: "rename", Path: filepath.Join(absData, "spool", "new"), Err: syscall.EROFS}), "read-only file system"},
		{&fs.PathError{Op: "write", Path: absData, Err: syscall.EACCES}, "permission denied"},
		{errors.New("create in " + absData + "/spool/tmp: bad"), "an I/O error (the sensor's log has the details)"},
	} {
		lastErrors := []string{
			"outbox: open " + absData + "/outbox/records.ndjson: no space left on device",
			"spool: rename " + filepath.Join(dataDir, "spool", "ready", "b1") + " " + filepath.Join(dataDir, "spool", "sent", "b1") + ": permission denied",
			`outbox: mkdir "/srv/outbox/blobs": read-only file system`,
			`Post "https://someone:hunter2@pipeline.example/v1/records": dial tcp: connection refused`,
		}
		for _, lastErr := range lastErrors {
			a := &Admin{Metrics: &Metrics{}, Spool: &fakeHealth{err: tc.spoolErr}, Started: time.Now(), Version: "v-test",
				Uploads: fixedStats{LastError: lastErr, AuthFailing: true}, Paths: []string{dataDir}, Token: token}
			srv := httptest.NewServer(a.Handler())
			var bodies []string
			for _, path := range []string{"/status", "/readyz"} {
				req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
				req.Header.Set("Authorization", "Bearer "+token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				bodies = append(bodies, string(b))
			}
			srv.Close()
			var st status
			if err := json.Unmarshal([]byte(bodies[0]), &st); err != nil {
				t.Fatalf("/status: %v\n%s", err, bodies[0])
			}
			if st.SpoolError != tc.kind || st.NotReadyReason != "spool cannot commit: "+tc.kind {
				t.Errorf("spool error %v: spool_error %q, not_ready_reason %q, want %q", tc.spoolErr, st.SpoolError, st.NotReadyReason, tc.kind)
			}
			if lastErr == lastErrors[0] && st.Uploads.LastError != "outbox: open <path>: no space left on device" {
				t.Errorf("last_error %q for %q, want the path alone hidden", st.Uploads.LastError, lastErr)
			}
			if !strings.Contains(st.Uploads.LastError, "<path>") && !strings.Contains(lastErr, "https:") {
				t.Errorf("last_error %q for %q: no <path>", st.Uploads.LastError, lastErr)
			}
			for _, body := range bodies {
				for _, secret := range []string{dataDir, absData, "/srv/", "/spool", "/outbox", token, "hunter2", "someone"} {
					if strings.Contains(body, secret) {
						t.Errorf("the admin endpoint shows %q:\n%s", secret, body)
					}
				}
				if m := pathLike.FindString(body); m != "" {
					t.Errorf("the admin endpoint shows the path %q:\n%s", m, body)
				}
			}
		}
	}
}

// /metrics is client_golang's: the Go runtime's and the process's series are there, and the
// histograms count each message recorded.
func TestMetricsHaveRuntimeAndHistograms(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	c := dial(t, ts.addr)
	c.envelope()
	c.cmd("DATA", "354")
	c.cmd("Subject: x\r\n\r\nbody\r\n.", "250")
	var m strings.Builder
	(&Admin{Metrics: ts.metrics}).writeMetrics(&m)
	for _, want := range []string{
		"\ngo_goroutines ", "\nprocess_resident_memory_bytes ",
		"\nsensor_message_size_bytes_count 1\n", "# TYPE sensor_message_size_bytes histogram\n",
		"\nsensor_end_of_data_to_reply_seconds_count 1\n", `sensor_message_size_bytes_bucket{le="1024"} 1`,
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
