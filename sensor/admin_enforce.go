package sensor

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/journalsensor/sensor/enforce"
)

// EnforceStats is what the admin endpoints read of enforcement.
type EnforceStats interface {
	Snapshot() enforce.Stats
}

// enforceStatus is enforcement's part of /status.
type enforceStatus struct {
	Mode string `json:"mode"`
	// Backlog is the (verdict, recipient) pairs journaled and not finished; Unreported the
	// outcomes the pipeline has not acknowledged.
	Backlog    int              `json:"backlog"`
	Unreported int              `json:"unreported"`
	Cursor     string           `json:"cursor"`
	Outcomes   map[string]int64 `json:"outcomes"`
	// JournalError is set when the action journal could not be written: enforcement has
	// stopped until a restart.
	JournalError string `json:"journal_error,omitempty"`
}

func (a *Admin) enforceStatus() *enforceStatus {
	if a.Enforcement == nil {
		return nil
	}
	s := a.Enforcement.Snapshot()
	return &enforceStatus{Mode: a.EnforceMode, Backlog: s.Backlog, Unreported: s.Unreported, Cursor: s.Cursor, Outcomes: s.Outcomes,
		JournalError: a.hidePaths(s.JournalError)}
}

func (a *Admin) writeEnforceMetrics(w io.Writer) {
	if a.Enforcement == nil {
		return
	}
	s := a.Enforcement.Snapshot()
	const outcomes = "sensor_enforce_outcomes_total"
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", outcomes, "Final outcomes of (verdict, recipient) pairs, by provider (empty when no provider was reached) and status.", outcomes)
	for _, k := range slices.Sorted(maps.Keys(s.Outcomes)) {
		provider, status, _ := strings.Cut(k, "/")
		fmt.Fprintf(w, "%s{provider=%q,status=%q} %d\n", outcomes, provider, status, s.Outcomes[k])
	}
	fmt.Fprintf(w, "# HELP sensor_enforce_backlog (verdict, recipient) pairs journaled and not yet finished.\n# TYPE sensor_enforce_backlog gauge\nsensor_enforce_backlog %d\n", s.Backlog)
	failed := 0
	if s.JournalError != "" {
		failed = 1
	}
	fmt.Fprintf(w, "# HELP sensor_enforce_journal_failed 1 when the action journal could not be written: enforcement has stopped until a restart.\n# TYPE sensor_enforce_journal_failed gauge\nsensor_enforce_journal_failed %d\n", failed)
	fmt.Fprintf(w, "# HELP sensor_enforce_unreported Outcomes the pipeline has not acknowledged yet.\n# TYPE sensor_enforce_unreported gauge\nsensor_enforce_unreported %d\n", s.Unreported)
	const h = "sensor_enforce_verdict_to_outcome_seconds"
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", h, "Time from taking a verdict from the feed to each recipient's final outcome.", h)
	for i, le := range enforce.LatencyBuckets {
		fmt.Fprintf(w, "%s_bucket{le=%q} %d\n", h, strconv.FormatFloat(le, 'g', -1, 64), s.Latency.Buckets[i])
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", h, s.Latency.Count, h, s.Latency.Sum, h, s.Latency.Count)
}
