package sensor

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/access"
	"github.com/journalsensor/sensor/enforce"
	"github.com/journalsensor/sensor/spool"
	"github.com/journalsensor/sensor/uploader"
)

// realUploads is a real uploader (its own series come from it) with fixed stats, so that the
// series shown only once something happened (a delivery) are there.
type realUploads struct {
	*uploader.Uploader
	stats uploader.Stats
}

func (r realUploads) Stats() uploader.Stats { return r.stats }

// engineWithOutcomes is a real engine (its own series come from it) that reports an outcome,
// so that the series shown only once one happened are there.
type engineWithOutcomes struct{ *enforce.Engine }

func (e engineWithOutcomes) Snapshot() enforce.Stats {
	s := e.Engine.Snapshot()
	s.Outcomes = map[string]int64{"graph/done": 1}
	return s
}

// fullAdmin is an admin with every part of the sensor on (TLS, client certificates, an access
// table, the milter, enforcement, uploads), so that every series /metrics can show is there.
func fullAdmin(t *testing.T) *Admin {
	t.Helper()
	dir := t.TempDir()
	sp, err := spool.Open(filepath.Join(dir, "spool"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	up, err := uploader.New(uploader.Config{URL: "file://" + filepath.Join(dir, "outbox")}, sp)
	if err != nil {
		t.Fatal(err)
	}
	m := &Metrics{}
	m.conns.tls.notAfter.Store(time.Now().Add(time.Hour).Unix())
	m.clientCerts.asked.Store(true)
	m.clientCerts.caFile.Store(true)
	m.access.conns, m.access.limited = map[[2]string]int64{}, map[[2]string]int64{} // as declare makes them
	m.access.countConn("lan", access.Accept)
	m.access.countLimited("lan", "mail")
	m.countReply(250)
	m.countUntrusted("tenant_missing")
	m.milter.countUnrecorded("timeout")
	m.hist.get()
	return &Admin{Metrics: m, Enforcement: engineWithOutcomes{realEngine(t)},
		Uploads: realUploads{up, uploader.Stats{LastDeliveryAt: time.Now(), OldestPendingAt: time.Now().Add(-time.Minute)}}, SpoolBudget: 1 << 30}
}

// metricNames are the series names /metrics shows, with a histogram's _bucket, _sum and
// _count.
func metricNames(t *testing.T) map[string]bool {
	t.Helper()
	var out strings.Builder
	fullAdmin(t).writeMetrics(&out)
	names := map[string]bool{}
	for line := range strings.Lines(out.String()) {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		name, _, _ := strings.Cut(strings.Fields(line)[0], "{")
		names[name] = true
	}
	return names
}

var metricRef = regexp.MustCompile(`\b(?:sensor|process|go)_[a-z0-9_]+\b`)

// checkNames fails t for each series name in exprs that /metrics does not have.
func checkNames(t *testing.T, where string, exprs []string) {
	t.Helper()
	names := metricNames(t)
	if len(exprs) == 0 {
		t.Fatalf("%s: no expressions found", where)
	}
	for _, e := range exprs {
		for _, ref := range metricRef.FindAllString(e, -1) {
			if !names[ref] {
				t.Errorf("%s: %q names %s, which /metrics does not have", where, e, ref)
			}
		}
	}
}

func TestGrafanaDashboardNamesExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/grafana/sensor.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, q := range p.Targets {
			exprs = append(exprs, q.Expr)
		}
	}
	checkNames(t, "deploy/grafana/sensor.json", exprs)
}

func TestAlertsNameExistingMetrics(t *testing.T) {
	b, err := os.ReadFile("../deploy/prometheus/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// The rules' expressions: every line between "expr:" and the next key. promtool checks
	// the syntax; this checks the names.
	var exprs []string
	var cur *strings.Builder
	for line := range strings.Lines(string(b)) {
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "expr:"):
			cur = &strings.Builder{}
			cur.WriteString(strings.TrimPrefix(strings.TrimPrefix(trimmed, "expr:"), " |"))
			exprs = append(exprs, "")
		case cur != nil && (strings.HasPrefix(trimmed, "for:") || strings.HasPrefix(trimmed, "labels:")):
			exprs[len(exprs)-1] = cur.String()
			cur = nil
		case cur != nil:
			cur.WriteString(" " + trimmed)
		}
	}
	checkNames(t, "deploy/prometheus/alerts.yaml", exprs)
}
