package sensor

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/enforce"
)

type stubEnforce enforce.Stats

func (s stubEnforce) Snapshot() enforce.Stats { return enforce.Stats(s) }

func TestAdminShowsEnforcement(t *testing.T) {
	st := enforce.Stats{Backlog: 3, Unreported: 2, Cursor: "41", Outcomes: map[string]int64{"graph/done": 7, "/skipped": 1}}
	a := &Admin{Metrics: &Metrics{}, Enforcement: stubEnforce(st), EnforceMode: "observe"}
	var m bytes.Buffer
	a.writeMetrics(&m)
	for _, want := range []string{
		`sensor_enforce_outcomes_total{provider="graph",status="done"} 7` + "\n",
		`sensor_enforce_outcomes_total{provider="",status="skipped"} 1` + "\n",
		"sensor_enforce_backlog 3\n",
		"sensor_enforce_journal_failed 0\n",
		"sensor_enforce_unreported 2\n",
	} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	s := a.status()
	if s.Enforcement == nil || s.Enforcement.Backlog != 3 || s.Enforcement.Mode != "observe" || s.Enforcement.Cursor != "41" {
		t.Errorf("status enforcement %+v", s.Enforcement)
	}
	if (&Admin{Metrics: &Metrics{}}).status().Enforcement != nil {
		t.Error("status shows enforcement while it is off")
	}
}

// nopFeed is a verdict feed with nothing in it.
type nopFeed struct{}

func (nopFeed) Verdicts(context.Context, string, int) ([]enforce.Verdict, string, error) {
	return nil, "", nil
}
func (nopFeed) Report(context.Context, []enforce.Outcome) error { return nil }

// realEngine is an enforcement engine that is never run: its own series are what /metrics
// registers from it.
func realEngine(t *testing.T) *enforce.Engine {
	t.Helper()
	e, err := enforce.NewEngine(enforce.Config{Feed: nopFeed{}, Route: func(string) enforce.Provider { return nil },
		JournalPath: filepath.Join(t.TempDir(), "journal.ndjson")})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The engine's latency histogram is on /metrics beside the admin's own enforcement series.
func TestMetricsHaveTheEnforcementLatency(t *testing.T) {
	var m bytes.Buffer
	(&Admin{Metrics: &Metrics{}, Enforcement: realEngine(t)}).writeMetrics(&m)
	for _, want := range []string{"# TYPE sensor_enforce_verdict_to_outcome_seconds histogram\n",
		`sensor_enforce_verdict_to_outcome_seconds_bucket{le="3600"} 0` + "\n", "sensor_enforce_backlog 0\n"} {
		if !strings.Contains(m.String(), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}
