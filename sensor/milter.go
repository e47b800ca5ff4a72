package sensor

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	milter "github.com/d--j/go-milter"

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

// MilterServer serves the milter protocol on its own accept loop, so that each connection has
// its own state and shutdown can drain it. It speaks protocol 6 where the MTA does (Postfix
// and Sendmail 8.14 on), so that header and body events need no answer: with protocol 2
// every header field waits a round trip, which made the milter cost Postfix more than twice
// its own CPU per message (docs/BENCHMARKS.md).
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

// milterQuiet are the events the door never answers, where the MTA allows it (protocol 6):
// everything but MAIL, whose answer is how a draining sensor turns a message away before its
// content is sent, and the end of the message, whose answer waits for the commit.
const milterQuiet = milter.OptNoConnReply | milter.OptNoHeloReply | milter.OptNoRcptReply | milter.OptNoDataReply |
	milter.OptNoUnknownReply | milter.OptNoHeaderReply | milter.OptNoEOHReply | milter.OptNoBodyReply

// milterMacros are the macros the door asks for at each stage. An MTA that honours the
// request (Postfix, Sendmail) sends them whatever its milter_*_macros say, so a trimmed list
// there cannot starve the record. Not {i} at the end of the header: go-milter looks a macro
// up in that stage before the end of the message's, so an empty {i} there would hide the
// one that comes last.
var milterMacros = []struct {
	stage milter.MacroStage
	names []milter.MacroName
}{
	{milter.StageConnect, []milter.MacroName{milter.MacroClientAddr, milter.MacroClientPort, milter.MacroClientName}},
	{milter.StageHelo, []milter.MacroName{milter.MacroTlsVersion, milter.MacroCipher}},
	{milter.StageMail, []milter.MacroName{milter.MacroQueueId, milter.MacroAuthAuthen}},
	{milter.StageRcpt, []milter.MacroName{milter.MacroQueueId}},
	{milter.StageEOM, []milter.MacroName{milter.MacroQueueId}},
}

// negotiate asks of the MTA the least the door needs, of what it offers: no modification
// but the header when asked, and the macro lists; no unknown commands nor DATA events, which
// tell it nothing; no answers to the events listed in milterQuiet; header values with their
// leading space, so that a field comes back byte for byte. An MTA that offers less (protocol
// 2) gets the same door with an answer to every event.
func (s *MilterServer) negotiate(mtaVersion, _ uint32, mtaActions, _ milter.OptAction, mtaProto, _ milter.OptProtocol, offered milter.DataSize) (uint32, milter.OptAction, milter.OptProtocol, milter.DataSize, error) {
	if mtaVersion < 2 {
		return 0, 0, 0, 0, fmt.Errorf("the MTA speaks milter protocol %d; the sensor needs 2 or later", mtaVersion)
	}
	version := min(mtaVersion, milter.MaxServerProtocolVersion)
	act := mtaActions & milter.OptSetMacros
	if s.cfg.AddHeader {
		if mtaActions&milter.OptAddHeader == 0 {
			s.log.Warn("the MTA does not let a milter add headers; --milter-add-header has no effect on this connection")
		}
		act |= mtaActions & milter.OptAddHeader
	}
	want := milter.OptNoUnknown | milter.OptNoData | milter.OptHeaderLeadingSpace | milterQuiet
	return version, act, want & mtaProto, offered, nil
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

// serveConn runs one MTA connection to its end: a go-milter server per connection, on a
// listener that yields just that connection, tells when the session is over, so that a
// message it cut off ends too. The connection's state lives in one milterConn.
func (s *MilterServer) serveConn(c net.Conn) {
	s.metrics.milter.conns.Add(1)
	defer s.metrics.milter.conns.Add(-1)
	mc := &milterConn{srv: s, cid: newConnID()}
	mc.log = s.log.With("conn", mc.cid)
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		mc.log = mc.log.With("mta", a.IP.String())
	}
	opts := []milter.Option{
		milter.WithMilter(func() milter.Milter { return mc }),
		milter.WithNegotiationCallback(s.negotiate),
		milter.WithWriteTimeout(s.cfg.Timeout),
	}
	for _, m := range milterMacros {
		opts = append(opts, milter.WithMacroRequest(m.stage, m.names))
	}
	done := make(chan struct{})
	nc := &notifyConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10), done: done}
	_ = milter.NewServer(opts...).Serve(&oneConnListener{c: nc, done: done})
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
	// head holds header fields not yet handed to the intake: they go in one write, at the
	// end of the header or every milterHeadFlush bytes, not a goroutine hand-off each.
	head []byte
	// timedOut: a step outlasted the timeout. The intake was cut off and commits nothing, the
	// rest of the message is dropped as it comes, and its end is answered as a fault.
	timedOut bool
}

var _ milter.Milter = (*milterConn)(nil)

var (
	errMilterAborted  = errors.New("the MTA aborted the message")
	errMilterConnLost = errors.New("the MTA's milter connection ended mid-message")
	errIntakeEnded    = errors.New("the intake ended before the message did")
	// errMilterStepTimeout: the intake read nothing for --milter-timeout.
	errMilterStepTimeout = errors.New("the intake stopped reading for longer than the milter timeout")
)

// macros copies what the record needs from the macros known at this stage. Postfix sends
// each stage's own, and {i} may come at MAIL, RCPT, end of header or end of message as its
// version and settings say, so every stage is read and a later value wins.
func (c *milterConn) macros(m milter.Modifier) {
	if m == nil {
		return
	}
	get := func(k milter.MacroName) string { return strings.TrimSpace(m.Get(k)) }
	if v := get(milter.MacroClientAddr); v != "" {
		c.clientIP = v
	}
	if v := get(milter.MacroClientPort); v != "" {
		if p, err := strconv.Atoi(v); err == nil && p > 0 && p < 65536 {
			c.clientPort = p
		}
	}
	if v := get(milter.MacroClientName); v != "" {
		c.clientName = v
	}
	if version, cipher := get(milter.MacroTlsVersion), get(milter.MacroCipher); version != "" || cipher != "" {
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
		if t != (api.TLS{}) && (c.tls == nil || t != *c.tls) {
			c.tls = &t
		}
	}
	if c.msg == nil {
		return
	}
	if v := get(milter.MacroQueueId); v != "" {
		c.msg.queueID = v
	}
	if v := get(milter.MacroAuthAuthen); v != "" {
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

// NewConnection starts an SMTP connection's facts afresh: the MTA may reuse a milter
// connection for the next SMTP connection.
func (c *milterConn) NewConnection(m milter.Modifier) error {
	c.log.Debug("milter session negotiated", "version", m.Version(), "protocol", m.Protocol().String(), "actions", m.Actions().String())
	if c.msg != nil {
		c.endMsg(errMilterAborted)
	}
	c.clientIP, c.clientPort, c.clientName, c.helo, c.tls = "", 0, "", "", nil
	return nil
}

func (c *milterConn) Connect(host, _ string, port uint16, addr string, m milter.Modifier) (*milter.Response, error) {
	c.clientName, c.clientPort = host, int(port)
	if ip := net.ParseIP(addr); ip != nil {
		c.clientIP = ip.String()
	}
	c.macros(m)
	return milter.RespContinue, nil
}

func (c *milterConn) Helo(name string, m milter.Modifier) (*milter.Response, error) {
	c.helo = name
	c.macros(m)
	return milter.RespContinue, nil
}

func (c *milterConn) MailFrom(from, _ string, m milter.Modifier) (*milter.Response, error) {
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

func (c *milterConn) RcptTo(to, _ string, m milter.Modifier) (*milter.Response, error) {
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

func (c *milterConn) Data(m milter.Modifier) (*milter.Response, error) {
	c.macros(m)
	return milter.RespContinue, nil
}

func (c *milterConn) Unknown(_ string, _ milter.Modifier) (*milter.Response, error) {
	return milter.RespContinue, nil
}

// Header writes one header field as the message carried it. Where the MTA keeps the space
// after the colon (protocol 6's leading-space option, which Postfix and Sendmail honour) the
// field is rebuilt byte for byte but for the line ends: folds come as bare LFs and are made
// CRLF again. Where it swallows that space, it is put back unless the value is empty or
// starts with a tab or a fold: "Name:value" then comes back as "Name: value", and
// message.size and sha256 may differ by those bytes from the message as the MTA stores it.
// The parser reads the same fields either way.
func (c *milterConn) Header(name, value string, m milter.Modifier) (*milter.Response, error) {
	msg := c.message()
	var field []byte
	if msg.headerEnd {
		field = make([]byte, 0, len(name)+len(value)+4) // no MTA sends a field after the body began
	} else {
		field = msg.head
	}
	field = append(field, name...)
	field = append(field, ':')
	leadingSpace := m != nil && m.Protocol()&milter.OptHeaderLeadingSpace != 0
	if !leadingSpace && value != "" && value[0] != '\t' && value[0] != '\n' && value[0] != '\r' {
		field = append(field, ' ')
	}
	for line := range strings.Lines(value) {
		if body, ok := strings.CutSuffix(line, "\n"); ok {
			field = append(append(field, strings.TrimSuffix(body, "\r")...), "\r\n"...)
		} else {
			field = append(field, line...)
		}
	}
	field = append(field, "\r\n"...)
	if msg.headerEnd {
		c.feed(true, field)
	} else if msg.head = field; len(msg.head) >= milterHeadFlush {
		c.feed(true, nil)
	}
	return milter.RespContinue, nil
}

// milterHeadFlush bounds the header bytes the door holds before it hands them on.
const milterHeadFlush = 32 << 10

func (c *milterConn) Headers(m milter.Modifier) (*milter.Response, error) {
	c.macros(m)
	c.feed(false, nil)
	return milter.RespContinue, nil
}

// BodyChunk passes a chunk on as it is: Postfix sends the body with CRLF line ends. Header
// and body events carry no macros of their own; the stages around them do.
func (c *milterConn) BodyChunk(chunk []byte, _ milter.Modifier) (*milter.Response, error) {
	c.feed(false, chunk)
	return milter.RespContinue, nil
}

// EndOfMessage answers the message: after its record's commit, up to the timeout; at once
// as a fault if a step already outlasted it.
func (c *milterConn) EndOfMessage(m milter.Modifier) (*milter.Response, error) {
	c.macros(m)
	c.feed(false, nil)
	msg := c.msg
	c.msg = nil
	defer c.srv.addInflight(-1)
	if msg.timedOut {
		return c.fault("timeout", msg.queueID, nil), nil
	}
	msg.env.QueueID = msg.queueID // read by the intake only once the pipe is closed
	_ = msg.pw.Close()
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
	if c.srv.cfg.AddHeader && m.Actions()&milter.OptAddHeader != 0 {
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

// Cleanup has nothing to do: serveConn ends a message the connection's end cut off, once
// go-milter is done with the connection.
func (c *milterConn) Cleanup(_ milter.Modifier) {}

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

func (c *milterConn) Abort(_ milter.Modifier) error {
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
func (c *milterConn) fault(reason, queueID string, o *Outcome) *milter.Response {
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
// must not hold the MTA. Past it the intake reads an error and commits nothing, the rest of
// the message is dropped, and the end of the message is answered as OnFault says. A write
// that fails otherwise means the intake ended early; its outcome is told at the end of the
// message, and the rest is not read.
func (c *milterConn) feed(header bool, p []byte) {
	msg := c.start()
	if msg.timedOut {
		msg.head = msg.head[:0]
		return
	}
	parts := make([][]byte, 0, 3)
	if len(msg.head) > 0 {
		parts = append(parts, msg.head)
	}
	if !header && !msg.headerEnd {
		msg.headerEnd = true
		parts = append(parts, crlf)
	}
	if len(p) > 0 {
		parts = append(parts, p)
	}
	if len(parts) == 0 {
		return
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
	// The pipe's Write returns only once the intake has copied the bytes, so the buffer is
	// free again.
	msg.head = msg.head[:0]
	if expired.Load() {
		msg.timedOut = true
		go c.late(msg)
	}
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

// notifyConn closes done when it is closed. It reads through a buffer: go-milter reads each
// packet's length and its body with a read each, and an MTA that needs no answer to header
// and body events sends them back to back. A read cut off by Close (ours at shutdown, or
// go-milter's) reads as the end of the stream: go-milter logs any other read error, and a
// connection we closed on purpose is no error.
type notifyConn struct {
	net.Conn
	r    *bufio.Reader
	done chan struct{}
	once sync.Once
}

func (c *notifyConn) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
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

func (m *milterMetrics) collect(s series) {
	counts, _, _ := m.snapshot()
	const help = "Messages the milter saw but could not record, by reason; each was passed on unscored (--milter-on-fault accept) or tempfailed."
	for _, r := range slices.Sorted(maps.Keys(counts)) {
		s.counter("sensor_milter_unrecorded_total", help, float64(counts[r]), "reason", r)
	}
	s.gauge("sensor_milter_connections", "MTA connections to the milter open now.", float64(m.conns.Load()))
	s.counter("sensor_milter_recorded_total", "Messages the milter accepted after their record was durable.", float64(m.recorded.Load()))
	s.counter("sensor_milter_committed_late_total", "Records committed after the milter had answered for want of time (--milter-timeout).", float64(m.late.Load()))
}
