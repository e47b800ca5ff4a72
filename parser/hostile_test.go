package parser

import (
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
)

// TestHostileMessages: each parser-exhausting input of testkit.HostileMessages parses to one
// record, naming the limit that cut it short. Their time and peak memory are measured by
// scripts/bench's BenchmarkHostile, not here.
func TestHostileMessages(t *testing.T) {
	p := newTestParser(t, Options{})
	for _, h := range testkit.HostileMessages() {
		t.Run(h.Name, func(t *testing.T) {
			rec, err := p.Parse(h.New())
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if hasAnomaly(rec, "parser_panic") {
				t.Fatal("parser panicked")
			}
			if h.Limit != "" && !hasLimit(rec, h.Limit) {
				t.Errorf("limits_hit = %v, want %s", rec.LimitsHit, h.Limit)
			}
		})
	}
}
