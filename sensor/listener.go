package sensor

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// ConnLimits caps the connections a listener keeps open at once (DESIGN.md, "Security
// rules": total and per-IP connection caps). Zero means no cap.
type ConnLimits struct {
	Total int // open connections in all (--max-connections)
	PerIP int // open connections from one client address (--max-connections-per-ip)
	// PerIPFor, when set, gives an address a cap of its own (its access group's
	// max_connections_per_ip), 0 for none. The lower of it and PerIP holds, so that the
	// listener stays the one place that decides.
	PerIPFor func(netip.Addr) int
}

// perIP is the cap on open connections from ip, 0 for none.
func (lim ConnLimits) perIP(ip netip.Addr) int {
	c := lim.PerIP
	if lim.PerIPFor != nil {
		if own := lim.PerIPFor(ip); own > 0 && (c <= 0 || own < c) {
			c = own
		}
	}
	return c
}

// Why a connection was refused: the label values of sensor_smtp_connections_refused_total.
const (
	refusedTotal = "total"
	refusedPerIP = "per_ip"
)

// connMetrics are the listener's part of Metrics.
type connMetrics struct {
	open         atomic.Int64 // connections handed out and not yet closed (a gauge)
	refusedTotal atomic.Int64 // refused: the total cap was reached
	refusedPerIP atomic.Int64 // refused: the client's address was at its cap
	tls          tlsMetrics   // the certificate of the SMTP door (certs.go)
}

// maxRefusing bounds the refusals being written at once. Past it a refused connection is
// closed without a greeting, so that a flood of connections costs no more than a few
// goroutines.
const maxRefusing = 64

// LimitListener wraps l so that it hands out at most lim.Total connections at once, and at
// most lim.PerIP (or the lower cap lim.PerIPFor gives) from one client address. A connection over a cap never leaves Accept: it is
// greeted "421 4.7.0 <domain> Too many connections ...; try again later (ref <conn id>)"
// and closed (RFC 5321 §3.1 lets a server say 421 instead of 220), and counted in m by its
// reason. A connection handed out counts until its first Close.
//
// It knows nothing of the SMTP engine: it takes any net.Listener and hands out net.Conn. The
// client address is the connection's RemoteAddr; a connection that has none (a pipe, a Unix
// socket) counts towards the total only. Wrap the raw TCP listener, under any TLS: the
// greeting is written to the connection as it was accepted. m and log may be nil.
func LimitListener(l net.Listener, lim ConnLimits, domain string, log *slog.Logger, m *Metrics) net.Listener {
	return limitListenerCounting(l, lim, domain, log, m, newConnCounts())
}

// connCounts are the open connections the caps are held to. A server's listeners share
// one, so that a client cannot open its cap again on each door (--smtps-listen beside the
// STARTTLS port).
type connCounts struct {
	mu    sync.Mutex
	total int
	perIP map[netip.Addr]int // only addresses with a connection open
}

func newConnCounts() *connCounts { return &connCounts{perIP: map[netip.Addr]int{}} }

// limitListenerCounting is LimitListener counting in counts.
func limitListenerCounting(l net.Listener, lim ConnLimits, domain string, log *slog.Logger, m *Metrics, counts *connCounts) *limitListener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = &Metrics{}
	}
	return &limitListener{
		Listener: l,
		lim:      lim,
		domain:   domain,
		log:      log,
		m:        m,
		counts:   counts,
		refusing: make(chan struct{}, maxRefusing),
	}
}

type limitListener struct {
	net.Listener
	lim      ConnLimits
	domain   string
	log      *slog.Logger
	m        *Metrics
	refusing chan struct{} // a token per refusal being written
	counts   *connCounts
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, hasIP := clientIP(c.RemoteAddr())
		if reason, limit := l.admit(ip, hasIP); reason != "" {
			l.refuse(c, reason, limit)
			continue
		}
		lc := &limitConn{Conn: c}
		lc.release = func() { l.release(ip, hasIP) }
		return lc, nil
	}
}

// admit counts a new connection in, or says which cap it is over, and the cap.
func (l *limitListener) admit(ip netip.Addr, hasIP bool) (refused string, limit int) {
	perIP := 0
	if hasIP {
		perIP = l.lim.perIP(ip)
	}
	n := l.counts
	n.mu.Lock()
	defer n.mu.Unlock()
	switch {
	case perIP > 0 && n.perIP[ip] >= perIP:
		return refusedPerIP, perIP
	case l.lim.Total > 0 && n.total >= l.lim.Total:
		return refusedTotal, l.lim.Total
	}
	n.total++
	if hasIP {
		n.perIP[ip]++
	}
	l.m.conns.open.Add(1)
	return "", 0
}

func (l *limitListener) release(ip netip.Addr, hasIP bool) {
	n := l.counts
	n.mu.Lock()
	defer n.mu.Unlock()
	n.total--
	if hasIP {
		if n.perIP[ip]--; n.perIP[ip] <= 0 {
			delete(n.perIP, ip)
		}
	}
	l.m.conns.open.Add(-1)
}

// open is how many connections are handed out and not yet closed.
func (l *limitListener) open() (total int, perIP map[netip.Addr]int) {
	c := l.counts
	c.mu.Lock()
	defer c.mu.Unlock()
	perIP = make(map[netip.Addr]int, len(c.perIP))
	for ip, n := range c.perIP {
		perIP[ip] = n
	}
	return c.total, perIP
}

// refuse greets c with 421 4.7.0 and closes it, off the Accept loop: under TLS the write is
// a handshake, which a slow client can drag out.
func (l *limitListener) refuse(c net.Conn, reason string, limit int) {
	what := "Too many connections from your address"
	if reason == refusedTotal {
		what = "Too many connections in all"
		l.m.conns.refusedTotal.Add(1)
	} else {
		l.m.conns.refusedPerIP.Add(1)
	}
	cid := newConnID()
	l.log.Info("too many connections; connection refused",
		"conn", cid, "client", addrString(c.RemoteAddr()), "reason", reason, "limit", limit)
	select {
	case l.refusing <- struct{}{}:
	default:
		c.Close() // maxRefusing greetings are being written already
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		sayAndClose(c, tryLater(l.domain, what, cid))
	}()
}

// tryLater is the 421 4.7.0 greeting of a connection refused for a limit of the client's or
// the server's: temporary (RFC 5321 §3.1 lets a server say 421 instead of 220), so that the
// sender keeps its copy and retries.
func tryLater(domain, what, cid string) string {
	if domain != "" {
		domain += " "
	}
	return fmt.Sprintf("421 4.7.0 %s%s; try again later (ref %s)", domain, what, cid)
}

// limitConn gives its listener its place back on the first Close.
type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	c.free()
	return c.Conn.Close()
}

// free gives the connection's place back while it stays open, for a client that is only
// being told it is refused.
func (c *limitConn) free() { c.once.Do(c.release) }

// clientIP is the address a connection comes from, IPv4 in IPv6 unmapped, so that both
// spellings of one client share its count.
func clientIP(a net.Addr) (netip.Addr, bool) {
	switch a := a.(type) {
	case nil:
		return netip.Addr{}, false
	case *net.TCPAddr:
		if a == nil {
			return netip.Addr{}, false
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		return ip.Unmap(), ok
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
