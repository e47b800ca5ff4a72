package sensor

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/journalsensor/sensor/access"
	"github.com/journalsensor/sensor/api"
)

// doorTimes says when each front door last accepted a message. A gateway that quietly stops
// sending (a journal rule disabled, a milter taken out of the MTA's config) shows here as a
// door gone silent, long before anyone misses the records.
type doorTimes struct {
	smtp, milter atomic.Int64 // Unix nanoseconds; 0: none since the sensor started
}

// accepted notes a message accepted at at through transport's door. Sessions accept
// concurrently, so the later time wins rather than the later store.
func (d *doorTimes) accepted(transport string, at time.Time) {
	var v *atomic.Int64
	switch transport {
	case api.TransportSMTP:
		v = &d.smtp
	case api.TransportMilter:
		v = &d.milter
	default:
		return
	}
	n := at.UnixNano()
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// snapshot returns each door's last accepted time, nil for a door that accepted nothing yet:
// both doors are always named, so that a page can show the silent one.
func (d *doorTimes) snapshot() map[string]*time.Time {
	out := map[string]*time.Time{}
	for name, v := range map[string]*atomic.Int64{api.TransportSMTP: &d.smtp, api.TransportMilter: &d.milter} {
		out[name] = nil
		if n := v.Load(); n != 0 {
			t := time.Unix(0, n).UTC()
			out[name] = &t
		}
	}
	return out
}

// refusedByReason counts what the sensor turned away, by why: messages refused for spool room
// (spool_full, 452) or for want of proof of origin (untrusted_<reason>, 550 5.7.1), and
// connections refused by the connection caps (connection_limit, connection_limit_per_ip) or
// the access table (access_denied: rejected or dropped; rate_limited: a group's message
// rate, at connect or MAIL). Every reason is present from the start, at 0, so that a rate can
// be taken from the first two samples.
func (m *Metrics) refusedByReason() map[string]int64 {
	out := map[string]int64{
		"spool_full":              m.spoolFull.Load(),
		"connection_limit":        m.conns.refusedTotal.Load(),
		"connection_limit_per_ip": m.conns.refusedPerIP.Load(),
	}
	for label, n := range m.untrustedCounts() {
		// A copy failing two proofs counts under both labels joined by +; /status keys stay
		// snake_case.
		out["untrusted_"+strings.ReplaceAll(label, "+", "_and_")] += n
	}
	out["access_denied"], out["rate_limited"] = m.access.refusals()
	return out
}

// refusals sums the access table's connections rejected or dropped, and its rate-limit
// refusals.
func (a *accessMetrics) refusals() (denied, limited int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k, n := range a.conns {
		if k[1] != access.Accept.String() {
			denied += n
		}
	}
	for _, n := range a.limited {
		limited += n
	}
	return denied, limited
}
