// Package sensor holds the front doors: the SMTP server that journal rules point at, and the
// admin HTTP server (health, readiness, metrics).
//
// A door collects the envelope and hands the message's bytes, as they arrive, to the Intake
// (intake.go), which parses them, commits the record to the spool and returns one Outcome.
// The SMTP session answers 250 only for an Accepted outcome, that is after the commit. Every
// SMTP reply the sensor decides comes from one function, smtpReply (codes.go), and local
// trouble is always a 4xx: Google does not retry a 5xx, and Exchange Online disables a
// journal rule whose destination keeps failing.
package sensor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
)

// SMTPConfig configures the SMTP server.
type SMTPConfig struct {
	Domain          string        // our name in the greeting and EHLO reply
	MaxMessageBytes int64         // advertised SIZE and enforced limit; must be > 0
	MaxLineLength   int           // longest line accepted; default 1 MiB
	MaxRecipients   int           // default 1000
	IdleTimeout     time.Duration // per read, not per DATA; default 5m
	TLSConfig       *tls.Config   // enables STARTTLS when set
	Conns           ConnLimits    // caps on open connections (listener.go); zero: none
	Logger          *slog.Logger
}

// SMTPServer accepts copies over SMTP.
type SMTPServer struct {
	cfg     SMTPConfig
	intake  *Intake
	log     *slog.Logger
	srv     *smtp.Server
	metrics *Metrics

	// draining is set by Shutdown: new connections and new transactions get 421, and
	// transactions already under way (MAIL given) may finish.
	draining atomic.Bool
	mu       sync.Mutex
	inflight int
}

// NewSMTPServer returns a server that hands every message to in and counts its replies in m.
func NewSMTPServer(cfg SMTPConfig, in *Intake, m *Metrics) *SMTPServer {
	if cfg.MaxLineLength <= 0 {
		// go-smtp applies this to body lines too, and a line over it desynchronises the
		// session. 1 MiB accepts any real mail while bounding what one command line costs.
		cfg.MaxLineLength = 1 << 20
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 1000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = &Metrics{}
	}
	s := &SMTPServer{cfg: cfg, intake: in, log: cfg.Logger, metrics: m}
	srv := smtp.NewServer(s)
	srv.Domain = cfg.Domain
	srv.MaxMessageBytes = cfg.MaxMessageBytes
	srv.MaxLineLength = cfg.MaxLineLength
	srv.MaxRecipients = cfg.MaxRecipients
	srv.EnableSMTPUTF8 = true
	// BINARYMIME costs us nothing (the parser takes any bytes) and lets Exchange send
	// journal reports without re-encoding them.
	srv.EnableBINARYMIME = true
	srv.WriteTimeout = time.Minute
	srv.TLSConfig = cfg.TLSConfig
	srv.ErrorLog = slogPrintf{cfg.Logger}
	s.srv = srv
	return s
}

// Serve accepts connections on l until Close. Each read has its own deadline, so a slow
// but live sender is never cut off mid-DATA the way go-smtp's ReadTimeout would.
func (s *SMTPServer) Serve(l net.Listener) error {
	l = LimitListener(l, s.cfg.Conns, s.cfg.Domain, s.log, s.metrics)
	err := s.srv.Serve(idleListener{Listener: l, timeout: s.cfg.IdleTimeout, srv: s})
	if errors.Is(err, smtp.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// Close stops accepting and closes every connection. A transaction cut off this way was not
// acknowledged, so the sender still owns it and will retry.
func (s *SMTPServer) Close() error {
	err := s.srv.Close()
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops the server gracefully: new connections are answered 421 and closed, idle
// sessions get 421 to their next MAIL, and transactions already under way are given until
// ctx is done to finish (their 250 still means committed). Then every connection is
// closed. A transaction cut off at the deadline was not acknowledged, so the sender still
// owns it. It returns ctx's error if transactions were still running at the deadline.
func (s *SMTPServer) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	var err error
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.inflightCount() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
			s.log.Warn("shutdown deadline reached; closing transactions still under way",
				"in_flight", s.inflightCount())
		case <-tick.C:
		}
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *SMTPServer) inflightCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// NewSession implements smtp.Backend. go-smtp calls it after EHLO/HELO.
func (s *SMTPServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{
		srv:  s,
		conn: c,
		cid:  newConnID(),
		helo: c.Hostname(),
	}
	if addr, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		sess.ip, sess.port = addr.IP.String(), addr.Port
	}
	sess.log = s.log.With("conn", sess.cid, "client", sess.ip)
	return sess, nil
}

type session struct {
	srv  *SMTPServer
	conn *smtp.Conn
	cid  string
	log  *slog.Logger
	ip   string
	port int
	helo string

	// mu guards the transaction below: go-smtp runs Data on a goroutine of its own for
	// BDAT, so RSET (Reset) can come while Data reads the envelope, and Server.Close calls
	// Logout from yet another goroutine.
	mu     sync.Mutex
	closed bool         // Logout was called: a reservation made now must be given back at once
	inTxn  bool         // counted in srv.inflight, from MAIL to the end of the transaction
	res    *Reservation // the transaction's spool room when SIZE was declared; nil when none
	from   string
	size   int64 // declared with SIZE=; 0 when not
	rcpts  []string
}

// envelope is what the intake is told of the transaction. It reads a snapshot: a later
// Rcpt appends past the snapshot's length, and Reset replaces the slice.
func (s *session) envelope() Envelope {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Envelope{
		Transport:    api.TransportSMTP,
		Conn:         s.cid,
		ClientIP:     s.ip,
		ClientPort:   s.port,
		HELO:         s.helo,
		TLS:          tlsInfo(s.conn),
		MailFrom:     s.from,
		RcptTo:       s.rcpts,
		DeclaredSize: s.size,
	}
}

// Reset ends the transaction: go-smtp calls it after DATA, on RSET and before MAIL.
func (s *session) Reset() {
	s.mu.Lock()
	s.from, s.size, s.rcpts = "", 0, nil
	s.mu.Unlock()
	s.endTxn()
}

func (s *session) Logout() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.endTxn()
	return nil
}

func (s *session) endTxn() {
	s.mu.Lock()
	res, inTxn := s.res, s.inTxn
	s.res, s.inTxn = nil, false
	s.mu.Unlock()
	res.Release()
	if inTxn {
		s.srv.mu.Lock()
		s.srv.inflight--
		s.srv.mu.Unlock()
	}
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.Reset()
	if s.srv.draining.Load() {
		s.log.Info("shutting down; MAIL refused")
		return smtpReply(Outcome{Kind: ShuttingDown, Ref: s.cid}, s.srv.metrics)
	}
	var res *Reservation
	if opts != nil && opts.Size > 0 {
		// The sender declared its size: refuse before it sends the body (RFC 1870).
		env := s.envelope()
		env.MailFrom, env.DeclaredSize = from, opts.Size
		var o Outcome
		if res, o = s.srv.intake.Reserve(&env); o.Kind != Accepted {
			return smtpReply(o, s.srv.metrics)
		}
	}
	s.mu.Lock()
	if s.closed {
		// Logout came while the room was being reserved: nothing will end this
		// transaction, so it must not hold room or count as in flight.
		s.mu.Unlock()
		res.Release()
		return smtpReply(Outcome{Kind: ShuttingDown, Ref: s.cid}, s.srv.metrics)
	}
	s.inTxn, s.res = true, res
	s.from = from
	if opts != nil && opts.Size > 0 {
		s.size = opts.Size
	}
	s.mu.Unlock()
	s.srv.mu.Lock()
	s.srv.inflight++
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.mu.Lock()
	s.rcpts = append(s.rcpts, to)
	s.mu.Unlock()
	return nil
}

// Data hands the stream to the intake as it arrives and returns the reply to its outcome,
// an unwrapped *smtp.SMTPError: go-smtp turns any other error into a permanent 554 that would
// carry our internal error text.
func (s *session) Data(r io.Reader) error {
	env := s.envelope()
	s.mu.Lock()
	res := s.res
	s.mu.Unlock()
	dr := &dataReader{r: r}
	o := s.srv.intake.Receive(&env, res, dr)
	m := s.srv.metrics
	if dr.reset {
		// go-smtp reset the transaction under us (RSET or a lost connection between BDAT
		// chunks, a BDAT over SIZE, Close): it sends no reply to this one, so none is
		// counted.
		m = nil
	}
	return smtpReply(o, m)
}

// dataReader tells the intake which of go-smtp's read errors are a refusal the sender must
// fix (552 5.3.4, the message exceeds SIZE) rather than a message that broke off, and notes
// whether go-smtp reset the transaction.
type dataReader struct {
	r     io.Reader
	reset bool
}

func (d *dataReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	var se *smtp.SMTPError
	switch {
	case err == nil || err == io.EOF:
	case errors.As(err, &se) && se.Code/100 == 5:
		err = &RefusedError{Err: se, Code: se.Code}
	case errors.Is(err, smtp.ErrDataReset):
		d.reset = true
	}
	return n, err
}

func tlsInfo(c *smtp.Conn) *api.TLS {
	st, ok := c.TLSConnectionState()
	if !ok || !st.HandshakeComplete {
		return nil
	}
	return &api.TLS{
		Version:    tls.VersionName(st.Version),
		Cipher:     tls.CipherSuiteName(st.CipherSuite),
		ServerName: st.ServerName,
	}
}

// idleListener gives every accepted connection a deadline per read, and while the server
// drains answers new connections 421 itself.
type idleListener struct {
	net.Listener
	timeout time.Duration
	srv     *SMTPServer
}

func (l idleListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.srv.draining.Load() {
			go refuseConn(c, l.srv.cfg.Domain, l.srv.log, l.srv.metrics)
			continue
		}
		return &idleConn{Conn: c, timeout: l.timeout}, nil
	}
}

// refuseConn greets a connection with 421 and closes it (RFC 5321 §3.1). The reply is
// smtpReply's; the greeting position puts our domain first, as RFC 5321 §4.2 shows for 421.
func refuseConn(c net.Conn, domain string, log *slog.Logger, m *Metrics) {
	cid := newConnID()
	log.Info("shutting down; connection refused", "conn", cid, "client", c.RemoteAddr().String())
	r := smtpReply(Outcome{Kind: ShuttingDown, Ref: cid}, m)
	e := r.EnhancedCode
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "%d %d.%d.%d %s %s\r\n", r.Code, e[0], e[1], e[2], domain, r.Message)
	c.Close()
}

// newConnID names a connection in the log and in the replies that name no record. Like a
// record id it is unique across restarts and sensors, so a ref in a sender's bounce finds
// one log line.
func newConnID() string { return ulid.Make().String() }

type idleConn struct {
	net.Conn
	timeout time.Duration
}

func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

// slogPrintf adapts go-smtp's Printf logger to slog.
type slogPrintf struct{ l *slog.Logger }

func (s slogPrintf) Printf(format string, v ...any) { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s slogPrintf) Println(v ...any)               { s.l.Warn(fmt.Sprint(v...)) }
