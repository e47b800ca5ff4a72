package sensor

import (
	"encoding/json"
	"errors"
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
