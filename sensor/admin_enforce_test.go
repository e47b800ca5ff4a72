package sensor

import (
	"bytes"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/enforce"
)

type stubEnforce enforce.Stats

func (s stubEnforce) Snapshot() enforce.Stats { return enforce.Stats(s) }

func TestAdminShowsEnforcement(t *testing.T) {
	st := enforce.Stats{Backlog: 3, Unreported: 2, Cursor: "41", Outcomes: map[string]int64{"graph/done": 7, "/skipped": 1}}
	st.Latency.Buckets = [len(enforce.LatencyBuckets)]int64{1, 2, 4, 5, 5, 5, 5, 5, 5, 5}
	st.Latency.Count, st.Latency.Sum = 6, 4000.5
	a := &Admin{Metrics: &Metrics{}, Enforcement: stubEnforce(st), EnforceMode: "observe"}
	var m bytes.Buffer
	a.writeMetrics(&m)
	for _, want := range []string{
		`sensor_enforce_outcomes_total{provider="graph",status="done"} 7` + "\n",
		`sensor_enforce_outcomes_total{provider="",status="skipped"} 1` + "\n",
		"sensor_enforce_backlog 3\n",
		"sensor_enforce_journal_failed 0\n",
		"sensor_enforce_unreported 2\n",
		`sensor_enforce_verdict_to_outcome_seconds_bucket{le="0.5"} 1` + "\n",
		`sensor_enforce_verdict_to_outcome_seconds_bucket{le="3600"} 5` + "\n",
		`sensor_enforce_verdict_to_outcome_seconds_bucket{le="+Inf"} 6` + "\n",
		"sensor_enforce_verdict_to_outcome_seconds_sum 4000.5\n",
		"sensor_enforce_verdict_to_outcome_seconds_count 6\n",
		"# TYPE sensor_enforce_verdict_to_outcome_seconds histogram\n",
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
