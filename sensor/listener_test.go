package sensor

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// greeter serves a LimitListener on loopback the way any engine would: every connection
// handed out is greeted 220 and closed once the client hangs up.
type greeter struct {
	addr string
	ll   *limitListener
	m    *Metrics
}

func startGreeter(t *testing.T, lim ConnLimits) *greeter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &Metrics{}
	l := LimitListener(ln, lim, "sensor.test", nil, m)
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, "220 sensor.test ready\r\n")
				_, _ = io.Copy(io.Discard, c) // until the client hangs up
			}()
		}
	}()
	return &greeter{addr: ln.Addr().String(), ll: l.(*limitListener), m: m}
}

// connect dials from local (nil: any) and returns the connection and its first line.
func connect(t *testing.T, addr string, local net.Addr) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{LocalAddr: local, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the greeting: %v (got %q)", err, line)
	}
	return c, line
}

func (g *greeter) waitOpen(t *testing.T, want int) {
	t.Helper()
	waitFor(t, func() bool { n, _ := g.ll.open(); return n == want })
	if got := g.m.conns.open.Load(); got != int64(want) {
		t.Errorf("sensor_smtp_connections = %d, want %d", got, want)
	}
}

func TestPerIPCapRefusesWith421AndFreesOnClose(t *testing.T) {
	g := startGreeter(t, ConnLimits{Total: 100, PerIP: 3})
	var open []net.Conn
	for i := range 3 {
		c, line := connect(t, g.addr, nil)
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d greeted %q, want 220", i+1, line)
		}
		open = append(open, c)
	}
	_, line := connect(t, g.addr, nil)
	if !strings.HasPrefix(line, "421 4.7.0 sensor.test Too many connections from your address; try again later (ref ") {
		t.Errorf("4th connection from one address greeted %q, want 421 4.7.0 naming the address", line)
	}
	g.waitOpen(t, 3)

	open[0].Close()
	g.waitOpen(t, 2)
	if _, line := connect(t, g.addr, nil); !strings.HasPrefix(line, "220 ") {
		t.Errorf("after one closed, a new connection was greeted %q, want 220", line)
	}
	g.waitOpen(t, 3)
	if n := g.m.conns.refusedPerIP.Load(); n != 1 {
		t.Errorf("refused per_ip = %d, want 1", n)
	}
	if n := g.m.conns.refusedTotal.Load(); n != 0 {
		t.Errorf("refused total = %d, want 0", n)
	}

	// Another address still gets in: the cap is per address. Linux routes all of 127/8 to
	// loopback; elsewhere this part is skipped.
	other := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	d := net.Dialer{LocalAddr: other, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", g.addr)
	if err != nil {
		t.Skipf("cannot dial from %v: %v", other, err)
	}
	c.Close()
	if _, line := connect(t, g.addr, other); !strings.HasPrefix(line, "220 ") {
		t.Errorf("a connection from %v was greeted %q, want 220", other.IP, line)
	}
	_, perIP := g.ll.open()
	if perIP[netip.MustParseAddr("127.0.0.1")] != 3 {
		t.Errorf("open per address %v, want 3 from 127.0.0.1", perIP)
	}
}

func TestTotalCapRefusesWith421AndFreesOnClose(t *testing.T) {
	g := startGreeter(t, ConnLimits{Total: 3}) // no per-address cap
	var open []net.Conn
	for i := range 3 {
		c, line := connect(t, g.addr, nil)
		if !strings.HasPrefix(line, "220 ") {
			t.Fatalf("connection %d greeted %q, want 220", i+1, line)
		}
		open = append(open, c)
	}
	_, line := connect(t, g.addr, nil)
	if !strings.HasPrefix(line, "421 4.7.0 sensor.test Too many connections in all; try again later (ref ") {
		t.Errorf("4th connection greeted %q, want 421 4.7.0 naming the total", line)
	}
	open[1].Close()
	g.waitOpen(t, 2)
	if _, line := connect(t, g.addr, nil); !strings.HasPrefix(line, "220 ") {
		t.Errorf("after one closed, a new connection was greeted %q, want 220", line)
	}
	if n := g.m.conns.refusedTotal.Load(); n != 1 {
		t.Errorf("refused total = %d, want 1", n)
	}
	if n := g.m.conns.refusedPerIP.Load(); n != 0 {
		t.Errorf("refused per_ip = %d, want 0", n)
	}
}

// A connection gives its place back once, however often it is closed: the engine and a
// shutdown path may both close it.
func TestCloseTwiceReleasesOnce(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := &Metrics{}
	l := LimitListener(ln, ConnLimits{Total: 2, PerIP: 2}, "sensor.test", nil, m).(*limitListener)
	defer l.Close()
	accept := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := accept(), accept()
	if err := a.Close(); err != nil {
		t.Errorf("first Close: %v", err)
	}
	_ = a.Close()
	_ = a.Close()
	if n, perIP := l.open(); n != 1 || len(perIP) != 1 {
		t.Errorf("after closing one of two thrice: %d open, per address %v; want 1", n, perIP)
	}
	if got := m.conns.open.Load(); got != 1 {
		t.Errorf("sensor_smtp_connections = %d, want 1", got)
	}
	b.Close()
	if n, perIP := l.open(); n != 0 || len(perIP) != 0 {
		t.Errorf("after closing both: %d open, per address %v; want none", n, perIP)
	}
	// The caps still hold at their size: two fit again, and not three.
	accept()
	accept()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() { _, _ = l.Accept() }() // refuses c, then waits for the Close below
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if line, _ := bufio.NewReader(c).ReadString('\n'); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Errorf("third connection greeted %q, want 421 4.7.0", line)
	}
}

// The SMTP server wraps its listener: past the cap go-smtp never sees the connection, and
// /metrics shows the gauge and the refusals.
func TestSMTPServerCapsConnections(t *testing.T) {
	ts := startServer(t, SMTPConfig{Conns: ConnLimits{Total: 10, PerIP: 2}})
	a := dial(t, ts.addr)
	dial(t, ts.addr)
	_, line := connect(t, ts.addr, nil)
	if !strings.HasPrefix(line, "421 4.7.0 sensor.test Too many connections from your address") {
		t.Errorf("3rd connection greeted %q, want 421 4.7.0", line)
	}
	a.cmd("QUIT", "221")
	waitFor(t, func() bool { return ts.metrics.conns.open.Load() == 1 })
	dial(t, ts.addr) // expects the 220

	rec := httptest.NewRecorder()
	(&Admin{Metrics: ts.metrics, Started: time.Now()}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	for _, want := range []string{
		"\nsensor_smtp_connections 2\n",
		"\nsensor_smtp_connections_refused_total{reason=\"total\"} 0\n",
		"\nsensor_smtp_connections_refused_total{reason=\"per_ip\"} 1\n",
		"# TYPE sensor_smtp_connections_refused_total counter\n",
	} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, rec.Body)
		}
	}
}
