package sensor

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
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

	spool.set(errors.New("spool cannot commit: 1 commit(s) failed"))
	get("/readyz")
	const why = "spool cannot commit: 2 commit(s) failed" // the details change; the cause does not
	spool.set(errors.New(why))
	for range 3 {
		if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, why) {
			t.Fatalf("/readyz: %d %q, want 503 saying %q", code, body, why)
		}
		s := status()
		if s["spool_ok"] != false || s["ready"] != false || s["not_ready_reason"] != why || s["spool_error"] != why {
			t.Fatalf("/status: %v", s)
		}
	}
	if n := strings.Count(logs.String(), `msg="not ready`); n != 1 {
		t.Errorf("%d not-ready log lines for one change, want 1:\n%s", n, logs)
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
	if code != http.StatusOK || withToken != without || h.Get("Content-Type") != hOpen.Get("Content-Type") {
		t.Errorf("/metrics with the token: %d %q\n%s\nwant 200 %q and what it is without a token:\n%s",
			code, h.Get("Content-Type"), withToken, hOpen.Get("Content-Type"), without)
	}
	if !strings.Contains(withToken, "sensor_smtp_messages_accepted_total 7\n") || !strings.Contains(withToken, `sensor_smtp_replies_total{code="250"} 1`) {
		t.Errorf("/metrics lacks the counters:\n%s", withToken)
	}
}
