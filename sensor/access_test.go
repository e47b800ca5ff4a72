package sensor

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/access"
)

// Linux routes all of 127.0.0.0/8 to loopback, so a test can be a client of several
// addresses and so of several access groups: 127.0.0.1 is the default source, the others
// are dialled from explicitly.
const (
	lanIP   = "127.0.0.1"
	otherIP = "127.0.0.2"
)

func table(t *testing.T, doc string) *access.Table {
	t.Helper()
	tab, err := access.Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// dialFrom connects to addr from the local address from, and returns the conversation
// without reading the greeting. It skips the test where from cannot be bound.
func dialFrom(t *testing.T, addr, from string) *conversation {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s (all of 127/8 is loopback on Linux only): %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &conversation{t: t, conn: c, r: bufio.NewReader(c)}
}

// greeted dials from from and expects a 220.
func greeted(t *testing.T, addr, from string) *conversation {
	t.Helper()
	c := dialFrom(t, addr, from)
	c.expect("220 ")
	return c
}

// closed reports whether the server has closed c without saying more: an end of file, or
// a reset where the server closed with the client's bytes unread.
func (c *conversation) closed() bool {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	var ne net.Error
	switch {
	case err == nil:
		c.t.Errorf("got %q, want the connection closed", line)
		return false
	case errors.As(err, &ne) && ne.Timeout():
		return false
	}
	return true
}

func metricsText(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	(&Admin{Metrics: m, Started: time.Now()}).Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	return rec.Body.String()
}

func wantMetrics(t *testing.T, m *Metrics, lines ...string) {
	t.Helper()
	text := metricsText(t, m)
	for _, l := range lines {
		if !strings.Contains(text, "\n"+l+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", l, text)
		}
	}
}

// ref is the connection id a reply names.
func ref(t *testing.T, reply string) string {
	t.Helper()
	m := refRE.FindStringSubmatch(reply)
	if m == nil {
		t.Fatalf("reply %q names no ref", reply)
	}
	return m[1]
}

// A rejected client is greeted 554 5.7.1 and then, as RFC 5321 §3.1 asks, served nothing
// but QUIT: 503 to anything else. Another group's client is served as before.
func TestAccessRejectGreets554AndWaitsForQuit(t *testing.T) {
	ts := startServer(t, SMTPConfig{Access: table(t, `
- {name: blocked, cidrs: [127.0.0.2], action: reject}
- {name: lan, cidrs: [127.0.0.0/8], action: accept}
`)})
	c := dialFrom(t, ts.addr, otherIP)
	greeting := c.expect("554 5.7.1 sensor.test Access denied (ref ")
	cid := ref(t, greeting)
	c.cmd("EHLO client.test", "503 5.7.1 Access denied; only QUIT is served (ref "+cid+")")
	c.cmd("MAIL FROM:<a@example.org>", "503 5.7.1")
	c.cmd("QUIT", "221 2.0.0")
	if !c.closed() {
		t.Error("the connection stayed open after QUIT")
	}

	lan := greeted(t, ts.addr, lanIP)
	lan.envelope()
	lan.cmd("DATA", "354")
	lan.send(simpleMessage + ".\r\n")
	lan.expect("250 2.0.0")

	logs := ts.log.String()
	if n := strings.Count(logs, "access denied"); n != 1 {
		t.Errorf("%d log lines say access denied, want 1:\n%s", n, logs)
	}
	for _, want := range []string{"conn=" + cid, "client=127.0.0.2:", "access_group=blocked", "action=reject"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q:\n%s", want, logs)
		}
	}
	wantMetrics(t, ts.metrics,
		`sensor_smtp_access_total{action="reject",group="blocked"} 1`,
		`sensor_smtp_access_total{action="accept",group="lan"} 1`,
		`sensor_smtp_access_total{action="reject",group="(unmatched)"} 0`,
		"# TYPE sensor_smtp_access_total counter")
	if ts.spool.count() != 1 {
		t.Errorf("%d records, want the lan client's one", ts.spool.count())
	}
}

// A rejected client that never says QUIT is closed after a few commands, not held for the
// idle timeout.
func TestAccessRejectClosesAfterItsCommandBudget(t *testing.T) {
	ts := startServer(t, SMTPConfig{IdleTimeout: time.Hour, Access: table(t, "- {name: blocked, cidrs: [127.0.0.0/8], action: reject}\n")})
	c := dialFrom(t, ts.addr, lanIP)
	c.expect("554 5.7.1 ")
	c.send(strings.Repeat("NOOP\r\n", 3) + "X" + strings.Repeat("y", 2000) + "\r\n" + strings.Repeat("NOOP\r\n", 10))
	for range rejectCommands {
		c.expect("503 5.7.1 ")
	}
	if !c.closed() {
		t.Error("not closed after its command budget")
	}
}

// Once a table exists it is an allow-list: an address no group holds is rejected.
func TestAccessUnmatchedAddressIsRejected(t *testing.T) {
	ts := startServer(t, SMTPConfig{Access: table(t, "- {name: gateway, cidrs: [127.0.0.2/32], action: accept}\n")})
	c := dialFrom(t, ts.addr, lanIP)
	c.expect("554 5.7.1 sensor.test Access denied (ref ")
	greeted(t, ts.addr, otherIP).cmd("QUIT", "221")
	if !strings.Contains(ts.log.String(), "access_group=(unmatched)") {
		t.Errorf("the log does not say the client matched no group:\n%s", ts.log)
	}
	wantMetrics(t, ts.metrics,
		`sensor_smtp_access_total{action="reject",group="(unmatched)"} 1`,
		`sensor_smtp_access_total{action="accept",group="gateway"} 1`)
}

func TestAccessDropClosesWithoutGreeting(t *testing.T) {
	ts := startServer(t, SMTPConfig{Access: table(t, `
- {name: blackhole, cidrs: [127.0.0.2/32], action: drop}
- {name: lan, cidrs: [127.0.0.0/8], action: accept}
`)})
	c := dialFrom(t, ts.addr, otherIP)
	if !c.closed() {
		t.Error("a dropped client was not closed")
	}
	greeted(t, ts.addr, lanIP)
	waitFor(t, func() bool { return strings.Contains(ts.log.String(), "action=drop") })
	wantMetrics(t, ts.metrics, `sensor_smtp_access_total{action="drop",group="blackhole"} 1`)
}

// The implicit-TLS door refuses in TLS: the 554 is readable by a client that speaks nothing
// else.
func TestAccessRejectOverImplicitTLS(t *testing.T) {
	_, _, _, smtpsAddr := tlsServerConfig(t, "one", SMTPConfig{Access: table(t, "- {name: nobody, cidrs: [127.0.0.0/8], action: reject}\n")})
	c, err := tls.Dial("tcp", smtpsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cv := &conversation{t: t, conn: c, r: bufio.NewReader(c)}
	cv.expect("554 5.7.1 sensor.test Access denied")
	cv.cmd("QUIT", "221")
}

// require_tls holds for its group's clients only; the global --require-tls for all.
func TestAccessRequireTLSPerGroup(t *testing.T) {
	ts, _, _, _ := tlsServerConfig(t, "one", SMTPConfig{Access: table(t, `
- {name: m365, cidrs: [127.0.0.2/32], action: accept, require_tls: true}
- {name: lan, cidrs: [127.0.0.0/8], action: accept}
`)})
	c := greeted(t, ts.addr, otherIP)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "451 4.7.0 Must issue a STARTTLS command first")
	c.cmd("STARTTLS", "220 2.0.0")
	tc := tls.Client(c.conn, clientTLS)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")

	lan := greeted(t, ts.addr, lanIP)
	lan.cmd("EHLO client.test", "250")
	lan.cmd("MAIL FROM:<sender@example.org>", "250 2.1.0")
}

func TestAccessGlobalRequireTLSStillHolds(t *testing.T) {
	ts, _, _, _ := tlsServerConfig(t, "one", SMTPConfig{RequireTLS: true,
		Access: table(t, "- {name: lan, cidrs: [127.0.0.0/8], action: accept}\n")})
	c := greeted(t, ts.addr, lanIP)
	c.cmd("EHLO client.test", "250")
	c.cmd("MAIL FROM:<sender@example.org>", "451 4.7.0")
}

// A group's max_connections_per_ip is the listener's per-address cap for its addresses:
// the same 421 4.7.0, counted as per_ip. Where the global cap is lower, it holds.
func TestAccessGroupConnectionCap(t *testing.T) {
	ts := startServer(t, SMTPConfig{Conns: ConnLimits{Total: 100, PerIP: 3}, Access: table(t, `
- {name: capped, cidrs: [127.0.0.2/32], action: accept, max_connections_per_ip: 2}
- {name: generous, cidrs: [127.0.0.0/8], action: accept, max_connections_per_ip: 50}
`)})
	greeted(t, ts.addr, otherIP)
	greeted(t, ts.addr, otherIP)
	c := dialFrom(t, ts.addr, otherIP)
	c.expect("421 4.7.0 sensor.test Too many connections from your address; try again later (ref ")
	if !strings.Contains(ts.log.String(), "limit=2") {
		t.Errorf("the log does not name the group's cap:\n%s", ts.log)
	}
	for range 3 {
		greeted(t, ts.addr, lanIP)
	}
	c = dialFrom(t, ts.addr, lanIP)
	c.expect("421 4.7.0 sensor.test Too many connections from your address")
	wantMetrics(t, ts.metrics, `sensor_smtp_connections_refused_total{reason="per_ip"} 2`)
}

// Past a group's max_messages_per_minute, a MAIL gets 451 4.7.1 and a new connection from
// the same address 421 4.7.0, both temporary; another address, or a group with no rate, is
// not held back.
func TestAccessMessageRate(t *testing.T) {
	ts := startServer(t, SMTPConfig{Access: table(t, `
- {name: m365, cidrs: [127.0.0.2/32, 127.0.0.3/32], action: accept, max_messages_per_minute: 2}
- {name: lan, cidrs: [127.0.0.0/8], action: accept}
`)})
	c := greeted(t, ts.addr, otherIP)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	c.expect("250 2.0.0")
	c.cmd("MAIL FROM:<sender@example.org>", "250")
	c.cmd("RSET", "250")
	reply := c.cmd("MAIL FROM:<sender@example.org>", "451 4.7.1 Too many messages from your address; try again later (ref ")
	refLogged(t, ts, reply, "message rate reached; MAIL deferred")
	c.cmd("NOOP", "250") // the session goes on

	refused := dialFrom(t, ts.addr, otherIP)
	refLogged(t, ts, refused.expect("421 4.7.0 sensor.test Too many messages from your address; try again later (ref "),
		"message rate reached; connection refused")
	if !refused.closed() {
		t.Error("a connection over the rate stayed open")
	}
	// Per address: another of the group's addresses still has its own.
	third := greeted(t, ts.addr, "127.0.0.3")
	third.cmd("EHLO client.test", "250")
	third.cmd("MAIL FROM:<sender@example.org>", "250")
	lan := greeted(t, ts.addr, lanIP)
	lan.cmd("EHLO client.test", "250")
	for range 5 {
		lan.cmd("MAIL FROM:<sender@example.org>", "250")
	}
	wantMetrics(t, ts.metrics,
		`sensor_smtp_rate_limited_total{at="mail",group="m365"} 1`,
		`sensor_smtp_rate_limited_total{at="connect",group="m365"} 1`)
	if ts.spool.count() != 1 {
		t.Errorf("%d records, want 1", ts.spool.count())
	}
}

// A group's max_message_bytes replaces the global limit for its sessions: advertised in
// SIZE, refused at MAIL, enforced in DATA.
func TestAccessGroupMaxMessageBytes(t *testing.T) {
	ts := startServer(t, SMTPConfig{MaxMessageBytes: 1 << 20, Access: table(t, `
- {name: small, cidrs: [127.0.0.2/32], action: accept, max_message_bytes: 1000}
- {name: lan, cidrs: [127.0.0.0/8], action: accept}
`)})
	big := simpleMessage + strings.Repeat("x", 2000) + "\r\n"
	c := greeted(t, ts.addr, otherIP)
	c.send("EHLO client.test\r\n")
	if ehlo := readEHLO(c); !strings.Contains(ehlo, "SIZE 1000\n") {
		t.Errorf("EHLO to the small group:\n%s", ehlo)
	}
	c.cmd("MAIL FROM:<a@example.org> SIZE=5000", "552 5.3.4")
	c.cmd("MAIL FROM:<a@example.org>", "250")
	c.cmd("RCPT TO:<journal@sensor.test>", "250")
	c.cmd("DATA", "354")
	c.send(big + ".\r\n")
	c.expect("552 5.3.4")

	lan := greeted(t, ts.addr, lanIP)
	lan.send("EHLO client.test\r\n")
	if ehlo := readEHLO(lan); !strings.Contains(ehlo, fmt.Sprintf("SIZE %d\n", 1<<20)) {
		t.Errorf("EHLO to the lan group:\n%s", ehlo)
	}
	lan.cmd("MAIL FROM:<a@example.org> SIZE=5000", "250")
	lan.cmd("RCPT TO:<journal@sensor.test>", "250")
	lan.cmd("DATA", "354")
	lan.send(big + ".\r\n")
	lan.expect("250 2.0.0")
	if ts.spool.count() != 1 {
		t.Errorf("%d records, want the lan client's one", ts.spool.count())
	}
}

// readEHLO reads a multi-line EHLO reply and returns its lines' texts, one a line.
func readEHLO(c *conversation) string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.r.ReadString('\n')
		if err != nil || len(line) < 4 {
			c.t.Fatalf("reading EHLO: %q, %v", line, err)
		}
		b.WriteString(strings.TrimRight(line[4:], "\r\n") + "\n")
		if line[3] == ' ' {
			return b.String()
		}
	}
}

// The record names the group its client matched, and names none without a table.
func TestAccessGroupInTheRecord(t *testing.T) {
	ts := startServer(t, SMTPConfig{Access: table(t, "- {name: gateway-1, cidrs: [127.0.0.0/8], action: accept}\n")})
	c := greeted(t, ts.addr, otherIP)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	rec, ok := ts.spool.get(queuedID(t, c.expect("250 2.0.0")))
	if !ok || rec.Envelope.AccessGroup != "gateway-1" {
		t.Errorf("record envelope %+v, want access_group gateway-1", rec.Envelope)
	}

	plain := startServer(t, SMTPConfig{})
	c = dial(t, plain.addr)
	c.envelope()
	c.cmd("DATA", "354")
	c.send(simpleMessage + ".\r\n")
	if rec, _ := plain.spool.get(queuedID(t, c.expect("250"))); rec.Envelope == nil || rec.Envelope.AccessGroup != "" {
		t.Errorf("without a table, envelope %+v", rec.Envelope)
	}
	if strings.Contains(metricsText(t, plain.metrics), "sensor_smtp_access_total") {
		t.Error("/metrics shows the access table's counters without a table")
	}
}

// A group's cap below the global one holds for its addresses; above it, the global one does.
func TestLimitListenerPerAddressCap(t *testing.T) {
	capped := netip.MustParseAddr(otherIP)
	g := startGreeter(t, ConnLimits{PerIP: 2, PerIPFor: func(ip netip.Addr) int {
		if ip == capped {
			return 1
		}
		return 10
	}})
	connect(t, g.addr, &net.TCPAddr{IP: net.ParseIP(otherIP)})
	if _, line := connect(t, g.addr, &net.TCPAddr{IP: net.ParseIP(otherIP)}); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Errorf("2nd connection from the address capped at 1: %q", line)
	}
	connect(t, g.addr, nil)
	connect(t, g.addr, nil)
	if _, line := connect(t, g.addr, nil); !strings.HasPrefix(line, "421 4.7.0 ") {
		t.Errorf("3rd connection from an address whose own cap (10) is above the global 2: %q", line)
	}
}

// The buckets of addresses gone quiet are forgotten, and there are never more than max of
// them, whatever the number of addresses.
func TestMsgRatesForgetIdleAddresses(t *testing.T) {
	r := newMsgRates()
	r.max = 1000
	t0 := time.Now()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}) }
	for i := range 100 {
		if !r.take(addr(i), 60, t0) {
			t.Fatal("a first message refused")
		}
	}
	// The bucket is kept between takes: at 60 a minute, 60 at once and not 61.
	for range 59 {
		if !r.take(addr(0), 60, t0) {
			t.Fatal("addr(0) refused before its 60th message")
		}
	}
	if r.take(addr(0), 60, t0) || r.ready(addr(0), t0) {
		t.Error("addr(0) took 61 messages in no time at 60 a minute")
	}
	for range 3 { // a second later one message is back; asking takes none
		if !r.ready(addr(0), t0.Add(time.Second)) {
			t.Fatal("a second later addr(0) has no message, or ready took one")
		}
	}
	if n := r.tracked(); n != 100 {
		t.Errorf("%d addresses tracked, want 100", n)
	}
	// Half a minute on, addr(5) spends its bucket; half a minute later it has half of it
	// back, while the quiet ones are full again and the next take forgets them, but not it.
	for range 60 {
		r.take(addr(5), 60, t0.Add(30*time.Second))
	}
	t1 := t0.Add(61 * time.Second)
	r.take(addr(1000), 60, t1)
	if n := r.tracked(); n != 2 {
		t.Errorf("%d addresses tracked after a quiet minute, want addr(5) and addr(1000)", n)
	}
	for i := range 31 {
		if !r.take(addr(5), 60, t1) {
			t.Fatalf("addr(5) refused its message %d of the 31 it got back", i+1)
		}
	}
	if r.take(addr(5), 60, t1) {
		t.Error("addr(5) was forgotten while its bucket was not full: it took a 32nd message")
	}
	for i := range r.max + 100 {
		if !r.take(addr(2000+i), 60, t0.Add(62*time.Second)) {
			t.Fatal("a new address's first message refused")
		}
	}
	if n := r.tracked(); n != r.max {
		t.Errorf("%d addresses tracked, want the most, %d", n, r.max)
	}
}

// The caps count a client's connections on every door of the server: with --smtps-listen
// beside the STARTTLS port, a client at its cap on one must not open as many again on the
// other.
func TestConnectionCapsHoldAcrossListeners(t *testing.T) {
	ts, _, _, smtpsAddr := tlsServerConfig(t, "one", SMTPConfig{Conns: ConnLimits{Total: 100, PerIP: 5}, Access: table(t, `
- {name: capped, cidrs: [127.0.0.0/8], action: accept, max_connections_per_ip: 1}
`)})
	greeted(t, ts.addr, lanIP)
	c, err := tls.Dial("tcp", smtpsAddr, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	cv := &conversation{t: t, conn: c, r: bufio.NewReader(c)}
	cv.expect("421 4.7.0 sensor.test Too many connections from your address")

	ts2, _, _, smtpsAddr2 := tlsServerConfig(t, "one", SMTPConfig{Conns: ConnLimits{Total: 1}})
	greeted(t, ts2.addr, lanIP)
	c2, err := tls.Dial("tcp", smtpsAddr2, clientTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	c2.SetDeadline(time.Now().Add(5 * time.Second))
	cv2 := &conversation{t: t, conn: c2, r: bufio.NewReader(c2)}
	cv2.expect("421 4.7.0 sensor.test Too many connections in all")
}

// A client the table refuses does not hold a place under the connection caps while it is
// told so: strangers lingering in the 554 conversation must not crowd out the senders the
// table accepts.
func TestRefusedClientsDoNotFillTheConnectionCaps(t *testing.T) {
	ts := startServer(t, SMTPConfig{Conns: ConnLimits{Total: 2, PerIP: 2}, Access: table(t, `
- {name: m365, cidrs: [127.0.0.2/32], action: accept}
- {name: others, cidrs: [127.0.0.0/8], action: reject}
`)})
	for range 2 {
		dialFrom(t, ts.addr, lanIP).expect("554 5.7.1")
	}
	greeted(t, ts.addr, otherIP)

	// Nor can they hold descriptors without end: past maxRefusing at once, one is closed
	// unanswered.
	for range maxRefusing - 2 {
		dialFrom(t, ts.addr, lanIP).expect("554 5.7.1")
	}
	if c := dialFrom(t, ts.addr, lanIP); !c.closed() {
		t.Error("a refused client past maxRefusing was not closed")
	}
}
