package sensor

import (
	"maps"
	"slices"
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

func (a *Admin) collectEnforce(s series) {
	if a.Enforcement == nil {
		return
	}
	st := a.Enforcement.Snapshot()
	const outcomesHelp = "Final outcomes of (verdict, recipient) pairs, by provider (empty when no provider was reached) and status."
	for _, k := range slices.Sorted(maps.Keys(st.Outcomes)) {
		provider, status, _ := strings.Cut(k, "/")
		s.counter("sensor_enforce_outcomes_total", outcomesHelp, float64(st.Outcomes[k]), "provider", provider, "status", status)
	}
	s.gauge("sensor_enforce_backlog", "(verdict, recipient) pairs journaled and not yet finished.", float64(st.Backlog))
	failed := 0.0
	if st.JournalError != "" {
		failed = 1
	}
	s.gauge("sensor_enforce_journal_failed", "1 when the action journal could not be written: enforcement has stopped until a restart.", failed)
	s.gauge("sensor_enforce_unreported", "Outcomes the pipeline has not acknowledged yet.", float64(st.Unreported))
}
