package sensor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-milter"

	"github.com/journalsensor/sensor/api"
)

// The milter door. Unlike the SMTP sink it sits in the customer's live mail path (Postfix's
// smtpd_milters), so it observes and never interferes unless asked: it asks for no
// modification but the optional X-Journal-Sensor-Id header, and when it cannot record a copy
// it lets the mail pass (or, with FaultTempFail, has the MTA keep it), never rejects it.
//
// The envelope, the macros and the message's header and body chunks feed the same Intake
// as the SMTP door, as they arrive, through a pipe: memory stays bounded whatever the
// message's size. The answer to the end of the message comes only after the record is
// committed, or after MilterConfig.Timeout.

// MilterFault is what the milter answers for a copy it could not record.
type MilterFault int

const (
	// FaultAccept lets the mail flow; the copy is lost, and counted and logged as such.
	FaultAccept MilterFault = iota
	// FaultTempFail has the MTA keep the mail and retry it later (451 4.7.1 to its client).
	FaultTempFail
)

func (f MilterFault) String() string {
	if f == FaultTempFail {
		return "tempfail"
	}
	return "accept"
}

// ParseMilterFault reads --milter-on-fault.
func ParseMilterFault(s string) (MilterFault, error) {
	switch s {
	case "accept":
		return FaultAccept, nil
	case "tempfail":
		return FaultTempFail, nil
	}
	return 0, errors.New("want accept (the mail flows, the copy is counted lost) or tempfail (the MTA keeps the mail and retries)")
}

// SensorIDHeader is the header --milter-add-header adds to a recorded message.
const SensorIDHeader = "X-Journal-Sensor-Id"

// MilterConfig configures the milter door.
type MilterConfig struct {
	// AddHeader adds SensorIDHeader with the record's id to each message recorded; without
	// it the milter asks the MTA for no modification at all.
	AddHeader bool
	OnFault   MilterFault
	// Timeout bounds each step of a message (default 10s): the wait for the record's commit
	// at its end, and each handing of bytes to an intake that has stopped reading. Past it
	// the milter answers as OnFault says; a commit under way finishes on its own.
	Timeout time.Duration
	Logger  *slog.Logger
}

// MilterServer serves the milter protocol (go-milter's server, protocol version 2, which
// Postfix accepts) on its own accept loop, so that each connection has its own state and
// shutdown can drain it.
type MilterServer struct {
	cfg     MilterConfig
	intake  *Intake
	metrics *Metrics
	log     *slog.Logger

	draining atomic.Bool
	running  atomic.Int64 // intakes still running, some of them past their answer (Timeout)
	mu       sync.Mutex
	inflight int // messages from MAIL to their answer
	door     *doorConns
}

// NewMilterServer returns a milter door that hands every message to in and counts in m.
func NewMilterServer(cfg MilterConfig, in *Intake, m *Metrics) *MilterServer {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = &Metrics{}
	}
	return &MilterServer{cfg: cfg, intake: in, metrics: m, log: cfg.Logger, door: newDoorConns()}
}

// negotiation is what the milter asks of the MTA: the least it needs. No modification but
// the header when asked; every event the record needs (connect, HELO, MAIL, RCPT, headers,
// end of headers, body); not the unknown commands nor DATA, which tell it nothing (Postfix
// sends neither to a version 2 milter anyway).
func (s *MilterServer) negotiation() (milter.OptAction, milter.OptProtocol) {
	var act milter.OptAction
	if s.cfg.AddHeader {
		act |= milter.OptAddHeader
	}
	return act, milter.OptNoUnknown | milter.OptNoData
}

// Serve accepts MTA connections on l until Close.
func (s *MilterServer) Serve(l net.Listener) error {
	return s.door.serve(l, s.log, func(c net.Conn) {
		if s.draining.Load() || !s.door.track(c) {
			// The MTA applies its milter_default_action (accept, as the README sets it).
			c.Close()
			return
		}
		go func() {
			defer s.door.untrack(c)
			s.serveConn(c)
		}()
	})
}

// serveConn runs one MTA connection to its end. go-milter makes a fresh Milter after each
// message's final answer; the connection's state lives in one milterConn that its factory
// returns each time. A go-milter server per connection, on a listener that yields just that
// connection, tells when the session is over, so that a message it cut off ends too.
func (s *MilterServer) serveConn(c net.Conn) {
	s.metrics.milter.conns.Add(1)
	defer s.metrics.milter.conns.Add(-1)
	mc := &milterConn{srv: s, cid: newConnID()}
	mc.log = s.log.With("conn", mc.cid)
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		mc.log = mc.log.With("mta", a.IP.String())
	}
	act, proto := s.negotiation()
	done := make(chan struct{})
	ms := &milter.Server{NewMilter: func() milter.Milter { return mc }, Actions: act, Protocol: proto}
	_ = ms.Serve(&oneConnListener{c: &notifyConn{Conn: c, done: done}, done: done})
	mc.connEnded()
}

func (s *MilterServer) addInflight(n int) {
	s.mu.Lock()
	s.inflight += n
	s.mu.Unlock()
}

func (s *MilterServer) busy() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight + int(s.running.Load())
}

// Close stops accepting and closes every connection. A message cut off this way was not
// answered: the MTA applies its milter_default_action.
func (s *MilterServer) Close() error { return s.door.closeAll() }

// Shutdown stops the milter gracefully: new connections are closed at once and new
// messages answered as faults (OnFault, reason shutting_down), while messages under way,
// and intakes still committing after their answer, get until ctx is done. Then every
// connection is closed. It returns ctx's error if work was still running at the deadline.
func (s *MilterServer) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	return s.door.drain(ctx, s.busy, s.log, "milter messages")
}

// milterConn is one MTA connection: what the connection told, and the message under way.
// go-milter calls it from one goroutine; connEnded comes after the last call.
type milterConn struct {
	srv *MilterServer
	cid string
	log *slog.Logger

	clientIP   string
	clientPort int
	clientName string
	helo       string
	tls        *api.TLS

	msg *milterMsg // nil between messages
}

// milterMsg is one message, from MAIL to its answer.
type milterMsg struct {
	from    string
	rcpts   []string
	queueID string
	auth    string

	env       *Envelope // made when the intake starts; only QueueID changes after that
	pw        *io.PipeWriter
	out       chan Outcome // the intake's one outcome
	headerEnd bool         // the blank line after the header is written
}

var _ milter.Milter = (*milterConn)(nil)

var (
	errMilterAborted  = errors.New("the MTA aborted the message")
	errMilterConnLost = errors.New("the MTA's milter connection ended mid-message")
	errIntakeEnded    = errors.New("the intake ended before the message did")
	// errMilterStepTimeout: the intake read nothing for --milter-timeout.
	errMilterStepTimeout = errors.New("the intake stopped reading for longer than the milter timeout")
)

// macros copies what the record needs from the macros of the current stage. Postfix sends
// each stage's own (milter_*_macros), and {i} may come at MAIL, RCPT, end of header or end
// of message as its settings say, so every stage is read and a later value wins.
func (c *milterConn) macros(m *milter.Modifier) {
	if m == nil {
		return
	}
	get := func(k string) string { return strings.TrimSpace(m.Macros[k]) }
	if v := get("{client_addr}"); v != "" {
		c.clientIP = v
	}
	if v := get("{client_port}"); v != "" {
		if p, err := strconv.Atoi(v); err == nil && p > 0 && p < 65536 {
			c.clientPort = p
		}
	}
	if v := get("{client_name}"); v != "" {
		c.clientName = v
	}
	if version, cipher := get("{tls_version}"), get("{cipher}"); version != "" || cipher != "" {
		// A new value, never a change to the old: an intake that outlived its answer may
		// still be reading the old one.
		var t api.TLS
		if c.tls != nil {
			t = *c.tls
		}
		if version != "" {
			t.Version = tlsVersionName(version)
		}
		if cipher != "" {
			t.Cipher = cipher
		}
		c.tls = &t
	}
	if c.msg == nil {
		return
	}
	if v := get("i"); v != "" {
		c.msg.queueID = v
	}
	if v := get("{auth_authen}"); v != "" {
		c.msg.auth = v
	}
}

// tlsVersionName spells Postfix's protocol name ("TLSv1.3") as the SMTP door does
// (crypto/tls.VersionName: "TLS 1.3"), so that one query finds both doors' records.
func tlsVersionName(v string) string {
	if rest, ok := strings.CutPrefix(v, "TLSv"); ok {
		return "TLS " + rest
	}
	return v
}

func (c *milterConn) Connect(host, family string, port uint16, addr net.IP, m *milter.Modifier) (milter.Response, error) {
	c.clientName, c.clientPort = host, int(port)
	if addr != nil {
		c.clientIP = addr.String()
	}
	c.macros(m)
	return milter.RespContinue, nil
}

func (c *milterConn) Helo(name string, m *milter.Modifier) (milter.Response, error) {
	c.helo = name
	c.macros(m)
	return milter.RespContinue, nil
}

func (c *milterConn) MailFrom(from string, m *milter.Modifier) (milter.Response, error) {
	if c.msg != nil { // a new MAIL without an abort: the old message is over
		c.endMsg(errMilterAborted)
	}
	if c.srv.draining.Load() {
		c.log.Info("shutting down; message passed on unrecorded")
		return c.fault("shutting_down", "", nil), nil
	}
	c.msg = &milterMsg{from: from}
	c.srv.addInflight(1)
	c.macros(m)
	return milter.RespContinue, nil
}

func (c *milterConn) RcptTo(to string, m *milter.Modifier) (milter.Response, error) {
	msg := c.message()
	if msg.env != nil {
		// The intake has the envelope already; a recipient now (no MTA sends one) would
		// change what it reads.
		c.log.Warn("recipient after the message began; not recorded", "rcpt", to)
		return milter.RespContinue, nil
	}
	msg.rcpts = append(msg.rcpts, to)
	c.macros(m)
	return milter.RespContinue, nil
}

// Header writes one header field as the message carried it, as near as the protocol lets
// it be rebuilt. Postfix (like Sendmail) sends the name, and the value without the one space
// that follows the colon and with its folds as bare LFs; it hides its own Received line. So
// the field is "Name: value" with the space put back unless the value is empty or starts
// with a tab or a fold, and each LF made CRLF again. What cannot be told apart is lost:
// "Name:value" comes back as "Name: value", a space before a tab or a fold is gone. The
// parser reads the same fields either way; message.size and sha256 may differ by those bytes
// from the message as the MTA stores it.
func (c *milterConn) Header(name, value string, m *milter.Modifier) (milter.Response, error) {
	c.macros(m)
	var b strings.Builder
	b.Grow(len(name) + len(value) + 4)
	b.WriteString(name)
	b.WriteByte(':')
	if value != "" && value[0] != '\t' && value[0] != '\n' && value[0] != '\r' {
		b.WriteByte(' ')
	}
	b.WriteString(strings.ReplaceAll(strings.ReplaceAll(value, "\r\n", "\n"), "\n", "\r\n"))
	b.WriteString("\r\n")
	return c.feed(true, []byte(b.String())), nil
}

func (c *milterConn) Headers(_ textproto.MIMEHeader, m *milter.Modifier) (milter.Response, error) {
	c.macros(m)
	return c.feed(false, nil), nil
}

// BodyChunk passes a chunk on as it is: Postfix sends the body with CRLF line ends.
func (c *milterConn) BodyChunk(chunk []byte, m *milter.Modifier) (milter.Response, error) {
	c.macros(m)
	return c.feed(false, chunk), nil
}

// Body is the end of the message: its answer waits for the record's commit, up to the
// timeout.
func (c *milterConn) Body(m *milter.Modifier) (milter.Response, error) {
	c.macros(m)
	if r := c.feed(false, nil); r != milter.RespContinue {
		return r, nil
	}
	msg := c.msg
	msg.env.QueueID = msg.queueID // read by the intake only once the pipe is closed
	_ = msg.pw.Close()
	c.msg = nil
	defer c.srv.addInflight(-1)
	timer := time.NewTimer(c.srv.cfg.Timeout)
	defer timer.Stop()
	var o Outcome
	select {
	case o = <-msg.out:
	case <-timer.C:
		go c.late(msg)
		return c.fault("timeout", msg.queueID, nil), nil
	}
	if o.Kind != Accepted {
		return c.fault(o.Kind.String(), msg.queueID, &o), nil
	}
	if c.srv.cfg.AddHeader {
		if err := m.AddHeader(SensorIDHeader, o.ID); err != nil {
			// The record is committed; only the header is missing, and the connection is
			// probably gone, which the next read finds.
			c.log.Warn("adding the record id header failed", "id", o.ID, "queue_id", msg.queueID, "error", err)
		}
	}
	c.srv.metrics.milter.recorded.Add(1)
	c.log.Debug("milter accepted", "id", o.ID, "queue_id", msg.queueID, "client_name", c.clientName, "auth", msg.auth)
	return milter.RespAccept, nil
}

// late waits for an intake that outlived its message's answer, and says what became of it.
func (c *milterConn) late(msg *milterMsg) {
	o := <-msg.out
	if o.Kind == Accepted {
		c.srv.metrics.milter.late.Add(1)
		c.log.Warn("record committed after the milter answered for want of time", "id", o.ID, "queue_id", msg.queueID,
			"on_fault", c.srv.cfg.OnFault.String(), "note", "with tempfail the MTA sends the message again: a second record")
		return
	}
	c.log.Warn("intake that outlived its answer ended without a record", "id", o.ID, "queue_id", msg.queueID, "outcome", o.Kind.String())
}

func (c *milterConn) Abort(_ *milter.Modifier) error {
	if c.msg == nil {
		return nil // Postfix resets after every transaction, ended or not
	}
	if c.msg.pw == nil {
		// The transaction ended before its message (every recipient refused, RSET): common,
		// and nothing was read.
		c.log.Debug("MTA ended the transaction before its message", "queue_id", c.msg.queueID)
	} else {
		c.log.Info("MTA aborted the message; nothing recorded", "queue_id", c.msg.queueID)
	}
	c.endMsg(errMilterAborted)
	return nil
}

// connEnded ends the message the connection's end cut off: nothing is committed. The MTA
// applies its milter_default_action to it, so the copy counts as lost.
func (c *milterConn) connEnded() {
	if c.msg == nil {
		return
	}
	queueID := c.msg.queueID
	c.endMsg(errMilterConnLost)
	c.srv.metrics.milter.countUnrecorded("connection_lost")
	c.log.Error("milter connection ended mid-message; copy not recorded", "queue_id", queueID)
}

// endMsg ends the message under way without an answer: its intake, if started, reads err and
// commits nothing.
func (c *milterConn) endMsg(err error) {
	msg := c.msg
	c.msg = nil
	c.srv.addInflight(-1)
	if msg.pw != nil {
		_ = msg.pw.CloseWithError(err)
	}
}

// fault answers for a copy not recorded, as OnFault says, and counts it; o is the intake's
// outcome when there is one.
func (c *milterConn) fault(reason, queueID string, o *Outcome) milter.Response {
	c.srv.metrics.milter.countUnrecorded(reason)
	attrs := []any{"reason", reason, "queue_id", queueID, "on_fault", c.srv.cfg.OnFault.String(),
		"client", c.clientIP, "client_name", c.clientName}
	if o != nil {
		attrs = append(attrs, "id", o.ID)
	}
	if c.srv.cfg.OnFault == FaultTempFail {
		c.log.Warn("copy not recorded; the MTA keeps the message and retries", attrs...)
		return milter.RespTempFail
	}
	c.log.Error("copy not recorded; the message passed on unscored", attrs...)
	return milter.RespAccept
}

// message returns the message under way, begun if the MTA skipped MAIL.
func (c *milterConn) message() *milterMsg {
	if c.msg == nil {
		c.msg = &milterMsg{}
		c.srv.addInflight(1)
	}
	return c.msg
}

// start returns the message under way with its intake running.
func (c *milterConn) start() *milterMsg {
	msg := c.message()
	if msg.pw != nil {
		return msg
	}
	msg.env = &Envelope{
		Transport:  api.TransportMilter,
		Conn:       c.cid,
		ClientIP:   c.clientIP,
		ClientPort: c.clientPort,
		HELO:       c.helo,
		TLS:        c.tls,
		MailFrom:   msg.from,
		RcptTo:     msg.rcpts,
		InPath:     true,
	}
	pr, pw := io.Pipe()
	msg.pw, msg.out = pw, make(chan Outcome, 1)
	c.srv.running.Add(1)
	env := msg.env
	go func() {
		defer c.srv.running.Add(-1)
		o := c.srv.intake.Receive(env, nil, pr)
		// Whatever the MTA still sends is not read: fail its writes rather than block them.
		_ = pr.CloseWithError(errIntakeEnded)
		msg.out <- o
	}()
	return msg
}

var crlf = []byte("\r\n")

// feed hands the message's next bytes to the intake, p being a header field when header is
// set and body bytes otherwise (the blank line that ends the header goes first). Each step
// has Timeout: an intake that stops reading (a disk that hangs under an attachment blob)
// must not hold the MTA. Past it the message is over: its intake reads an error and commits
// nothing, and the answer is OnFault's. A write that fails otherwise means the intake ended
// early; its outcome is told at the end of the message, and the rest is not read.
func (c *milterConn) feed(header bool, p []byte) milter.Response {
	msg := c.start()
	var parts [][]byte
	if !header && !msg.headerEnd {
		msg.headerEnd = true
		parts = append(parts, crlf)
	}
	if len(p) > 0 {
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return milter.RespContinue
	}
	var expired atomic.Bool
	t := time.AfterFunc(c.srv.cfg.Timeout, func() {
		expired.Store(true)
		_ = msg.pw.CloseWithError(errMilterStepTimeout)
	})
	for _, part := range parts {
		if _, err := msg.pw.Write(part); err != nil {
			break
		}
	}
	t.Stop()
	if !expired.Load() {
		return milter.RespContinue
	}
	queueID := msg.queueID
	c.endMsg(errMilterStepTimeout)
	go c.late(msg)
	return c.fault("timeout", queueID, nil)
}

// oneConnListener yields one connection, then blocks until it is closed: a go-milter
// server's Serve on it returns when that connection's session is over.
type oneConnListener struct {
	c    net.Conn
	done chan struct{}
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// notifyConn closes done when it is closed. A read cut off by Close (ours at shutdown, or
// go-milter's) reads as the end of the stream: go-milter logs any other read error through
// the standard logger, and a connection we closed on purpose is no error.
type notifyConn struct {
	net.Conn
	done chan struct{}
	once sync.Once
}

func (c *notifyConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

func (c *notifyConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.done) })
	return err
}

// unrecordedReasons are the labels of sensor_milter_unrecorded_total, shown at 0 from the
// start.
var unrecordedReasons = []string{"connection_lost", "incomplete", "local_fault", "shutting_down", "spool_full", "timeout"}

// milterMetrics counts what the milter door could not record.
type milterMetrics struct {
	conns    atomic.Int64 // MTA connections open now
	recorded atomic.Int64 // messages accepted after their record was committed
	late     atomic.Int64 // records committed after their message's answer (Timeout)

	mu             sync.Mutex
	unrecorded     map[string]int64
	lastUnrecorded time.Time
}

func (m *milterMetrics) countUnrecorded(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unrecorded == nil {
		m.unrecorded = map[string]int64{}
	}
	m.unrecorded[reason]++
	m.lastUnrecorded = time.Now().UTC()
}

// snapshot returns the counts by reason, every known reason included, their sum and the
// time of the last.
func (m *milterMetrics) snapshot() (counts map[string]int64, total int64, last time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts = maps.Clone(m.unrecorded)
	if counts == nil {
		counts = map[string]int64{}
	}
	for _, r := range unrecordedReasons {
		counts[r] += 0
	}
	for _, n := range counts {
		total += n
	}
	return counts, total, m.lastUnrecorded
}

func (m *milterMetrics) write(w io.Writer) {
	counts, _, _ := m.snapshot()
	const name = "sensor_milter_unrecorded_total"
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name,
		"Messages the milter saw but could not record, by reason; each was passed on unscored (--milter-on-fault accept) or tempfailed.", name)
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		fmt.Fprintf(w, "%s{reason=%q} %d\n", name, r, counts[r])
	}
	fmt.Fprintf(w, "# HELP sensor_milter_connections MTA connections to the milter open now.\n# TYPE sensor_milter_connections gauge\nsensor_milter_connections %d\n", m.conns.Load())
	fmt.Fprintf(w, "# HELP sensor_milter_recorded_total Messages the milter accepted after their record was durable.\n# TYPE sensor_milter_recorded_total counter\nsensor_milter_recorded_total %d\n", m.recorded.Load())
	const late = "sensor_milter_committed_late_total"
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", late,
		"Records committed after the milter had answered for want of time (--milter-timeout).", late, late, m.late.Load())
}
