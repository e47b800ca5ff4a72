package sensor

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/journalsensor/sensor/access"
)

// The SMTP door's side of the host access table (package access): what a connection gets
// once its group is known, before the session starts.

// unmatched names, in logs and metrics, the clients of an address no group holds. Group names
// cannot have parentheses, so it is no group's.
const unmatched = "(unmatched)"

const (
	// rejectLinger and rejectCommands bound a refused client's stay. RFC 5321 §3.1 has a
	// server that greets with 554 wait for QUIT, answering 503 to anything else; a client that
	// never sends QUIT must not hold a connection for the idle timeout.
	rejectLinger   = 10 * time.Second
	rejectCommands = 5
	// rejectLineMax is as much of a command as a refused client has read; the rest of a
	// longer line is skipped.
	rejectLineMax = 512
)

// admit applies the access table to a connection just accepted. It returns the client's
// group when the session may start; otherwise it has answered the client as the group's
// action or the group's message rate says, closed the connection, counted and logged it
// once, and returns false. Without a table every client is admitted, and in no group.
func (s *SMTPServer) admit(c net.Conn) (*access.Group, bool) {
	if s.cfg.Access == nil {
		return nil, true
	}
	ip, hasIP := clientIP(c.RemoteAddr())
	var g *access.Group
	if hasIP {
		g = s.cfg.Access.Match(ip)
	}
	name, action := unmatched, access.Reject // the table is an allow-list
	if g != nil {
		name, action = g.Name, g.Action
	}
	s.metrics.access.countConn(name, action)
	if action == access.Accept {
		if g.MaxMessagesPerMinute > 0 && !s.rates.ready(ip, time.Now()) {
			cid := newConnID()
			s.metrics.access.countLimited(name, "connect")
			s.log.Info("message rate reached; connection refused", "conn", cid, "client", addrString(c.RemoteAddr()),
				"access_group", name, "limit_per_minute", g.MaxMessagesPerMinute)
			sayAndClose(c, tryLater(s.cfg.Domain, "Too many messages from your address", cid))
			return nil, false
		}
		return g, true
	}
	cid := newConnID()
	s.log.Info("access denied", "conn", cid, "client", addrString(c.RemoteAddr()), "access_group", name, "action", action.String())
	if action == access.Drop {
		_ = c.Close()
		return nil, false
	}
	// A refused client gives its place under the connection caps back at once: strangers
	// lingering in the 554 conversation would otherwise crowd out the senders the table
	// accepts. So that they cannot run the server out of descriptors instead, at most
	// maxRefusing are answered at once; past that a refused client is closed unanswered.
	if lc, ok := c.(*limitConn); ok {
		lc.free()
	}
	select {
	case s.rejecting <- struct{}{}:
		defer func() { <-s.rejecting }()
		s.reject(c, cid)
	default:
		_ = c.Close()
	}
	return nil, false
}

// reject greets c with 554 5.7.1 and serves nothing but QUIT (RFC 5321 §3.1): 503 to
// every other command, within rejectLinger and rejectCommands, then closes it.
func (s *SMTPServer) reject(c net.Conn, cid string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(rejectLinger))
	w := bufio.NewWriter(c)
	// RFC 3463 X.7.1: "Delivery not authorized, message refused".
	fmt.Fprintf(w, "554 5.7.1 %s Access denied (ref %s)\r\n", s.cfg.Domain, cid)
	r := bufio.NewReaderSize(c, rejectLineMax)
	for range rejectCommands {
		if w.Flush() != nil {
			return
		}
		line, err := r.ReadSlice('\n')
		for err == bufio.ErrBufferFull {
			_, err = r.ReadSlice('\n')
		}
		if err != nil {
			return
		}
		if verb, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(" ")); bytes.EqualFold(verb, []byte("QUIT")) {
			_, _ = io.WriteString(w, "221 2.0.0 Bye\r\n")
			_ = w.Flush()
			return
		}
		fmt.Fprintf(w, "503 5.7.1 Access denied; only QUIT is served (ref %s)\r\n", cid)
	}
	_ = w.Flush()
}

// accessMetrics count what the access table did: connections by group and action, and
// refusals for a group's message rate, at connect or at MAIL.
type accessMetrics struct {
	mu      sync.Mutex
	conns   map[[2]string]int64 // {group, action}
	limited map[[2]string]int64 // {group, "connect" or "mail"}
}

// declare exposes every label pair t can produce at 0 before the first, so that a rate can
// be taken from the start.
func (a *accessMetrics) declare(t *access.Table) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conns, a.limited = map[[2]string]int64{}, map[[2]string]int64{}
	a.conns[[2]string{unmatched, access.Reject.String()}] = 0
	for _, g := range t.Groups() {
		a.conns[[2]string{g.Name, g.Action.String()}] = 0
		if g.MaxMessagesPerMinute > 0 {
			a.limited[[2]string{g.Name, "connect"}] = 0
			a.limited[[2]string{g.Name, "mail"}] = 0
		}
	}
}

func (a *accessMetrics) countConn(group string, action access.Action) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.conns[[2]string{group, action.String()}]++
}

func (a *accessMetrics) countLimited(group, at string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.limited[[2]string{group, at}]++
}

// collect adds the access table's series to /metrics, when there is a table.
func (a *accessMetrics) collect(s series) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.conns == nil {
		return
	}
	connsHelp := "SMTP connections by the access group their address matched and what the group did: accept (served), reject (554 5.7.1 greeting) or drop (closed unanswered). An address no group holds is rejected, as group \"" + unmatched + "\"."
	for _, k := range slices.SortedFunc(maps.Keys(a.conns), cmpKeys) {
		s.counter("sensor_smtp_access_total", connsHelp, float64(a.conns[k]), "group", k[0], "action", k[1])
	}
	const limitedHelp = "Refusals for an access group's max_messages_per_minute, per client address: a new connection greeted 421 4.7.0 (at=\"connect\") or a MAIL answered 451 4.7.1 (at=\"mail\")."
	for _, k := range slices.SortedFunc(maps.Keys(a.limited), cmpKeys) {
		s.counter("sensor_smtp_rate_limited_total", limitedHelp, float64(a.limited[k]), "group", k[0], "at", k[1])
	}
}

func cmpKeys(a, b [2]string) int {
	return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
}

// Bounds of msgRates' memory: idle addresses are forgotten once a minute, and past
// maxRateAddrs an arbitrary one is, at once, so that a flood of addresses costs at most this
// many buckets and no sweep per message. A forgotten address starts again with a full
// bucket: under such a flood the limit errs towards letting mail in, which a journal sink
// prefers.
const (
	rateSweepEvery = time.Minute
	maxRateAddrs   = 1 << 16
)

// msgRates holds one token bucket per client address of the groups with
// max_messages_per_minute: that many tokens, refilled at that many a minute, one taken per
// MAIL. x/time/rate keeps the arithmetic; this keeps the addresses, and forgets them.
type msgRates struct {
	max int // addresses kept at most

	mu      sync.Mutex
	buckets map[netip.Addr]*rate.Limiter
	swept   time.Time
}

func newMsgRates() *msgRates {
	return &msgRates{max: maxRateAddrs, buckets: map[netip.Addr]*rate.Limiter{}}
}

// ready says whether ip has a message left in its bucket at now, taking none: a connection
// that could not send one is refused before it starts.
func (r *msgRates) ready(ip netip.Addr, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[ip]
	return b == nil || b.TokensAt(now) >= 1
}

// take takes one message from ip's bucket at now, or says there is none left; perMinute is
// the rate of ip's group, and the size of a new bucket.
func (r *msgRates) take(ip netip.Addr, perMinute int, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sweep(now)
	b := r.buckets[ip]
	if b == nil {
		for victim := range r.buckets {
			if len(r.buckets) < r.max {
				break
			}
			delete(r.buckets, victim)
		}
		b = rate.NewLimiter(rate.Limit(float64(perMinute)/60), perMinute)
		r.buckets[ip] = b
	}
	return b.AllowN(now, 1)
}

// sweep forgets, at most once per rateSweepEvery, the addresses whose bucket is full again:
// a new address gets a full bucket too, so no answer changes.
func (r *msgRates) sweep(now time.Time) {
	if now.Sub(r.swept) < rateSweepEvery {
		return
	}
	r.swept = now
	for ip, b := range r.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(r.buckets, ip)
		}
	}
}

// tracked is how many addresses have a bucket.
func (r *msgRates) tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.buckets)
}
