package sensor

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"testing"
	"time"

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
	for _, k := range []string{"not_ready_reason", "uploads"} {
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
