// Package sensor holds the front doors: the SMTP server that journal rules point at, and the
// admin HTTP server (health, readiness, metrics).
//
// An SMTP session streams DATA (or BDAT chunks) straight into the parser, commits the record
// to the spool, and only then answers 250. Every reply to a transaction is decided in one
// place, Session.Data, and local trouble is always a 4xx: Google does not retry a 5xx, and
// Exchange Online disables a journal rule whose destination keeps failing.
package sensor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser"
)

// Reply codes we send, with their RFC 3463 enhanced codes.
var (
	// errLocal: RFC 5321 451 "local error in processing", RFC 3463 4.3.0 "other mail system
	// problem". The message names our record id so an operator can find the log line.
	errLocal = func(id string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0},
			Message: "Local error, message not accepted; try again later (ref " + id + ")"}
	}
	// errShuttingDown: RFC 5321 421 "service not available, closing transmission channel",
	// RFC 3463 4.3.2 "system not accepting network messages". The sender retries later,
	// against this sensor's replacement.
	errShuttingDown = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2},
		Message: "Shutting down; try again later"}
	// errSpoolFull: RFC 5321 452 "insufficient system storage", RFC 3463 4.3.1 "mail system
	// full". Temporary: the sender keeps the message and retries while uploads drain the
	// spool. Never a 5xx, which Google would not retry.
	errSpoolFull = &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1},
		Message: "Insufficient storage; try again later"}
	// errIncomplete: the message did not arrive whole (the client went away or stalled).
	errIncomplete = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 2},
		Message: "Message not received completely; try again"}
)

// RecordParser is what a session needs of the parser.
type RecordParser interface {
	Parse(r io.Reader) (*api.Record, error)
}

// Committer makes a record durable. Commit returns only once the record would survive a
// crash; the session answers 250 after that and not before. Reserve claims room for a
// message of n bytes in the spool's budget; ok is false when the spool is full, and release
// (never nil, safe to call twice) gives the room back.
type Committer interface {
	Commit(id string, line []byte) error
	Reserve(n int64) (release func(), ok bool)
}

// SMTPConfig configures the SMTP server.
type SMTPConfig struct {
	Domain          string        // our name in the greeting and EHLO reply
	MaxMessageBytes int64         // advertised SIZE and enforced limit; must be > 0
	MaxLineLength   int           // longest line accepted; default 1 MiB
	MaxRecipients   int           // default 1000
	IdleTimeout     time.Duration // per read, not per DATA; default 5m
	TLSConfig       *tls.Config   // enables STARTTLS when set
	SensorID        string
	Version         string
	Logger          *slog.Logger
}

// SMTPServer accepts copies over SMTP.
type SMTPServer struct {
	cfg     SMTPConfig
	parser  RecordParser
	spool   Committer
	log     *slog.Logger
	srv     *smtp.Server
	metrics *Metrics
	connSeq atomic.Uint64

	// draining is set by Shutdown: new connections and new transactions get 421, and
	// transactions already under way (MAIL given) may finish.
	draining atomic.Bool
	mu       sync.Mutex
	inflight int
}

// NewSMTPServer returns a server that parses with p and commits to c.
func NewSMTPServer(cfg SMTPConfig, p RecordParser, c Committer, m *Metrics) *SMTPServer {
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
	s := &SMTPServer{cfg: cfg, parser: p, spool: c, log: cfg.Logger, metrics: m}
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
		cid:  strconv.FormatUint(s.connSeq.Add(1), 10),
		helo: c.Hostname(),
	}
	if addr, ok := c.Conn().RemoteAddr().(*net.TCPAddr); ok {
		sess.ip, sess.port = addr.IP.String(), addr.Port
	}
	sess.log = s.log.With("conn", sess.cid, "client", sess.ip)
	return sess, nil
}

type session struct {
	srv     *SMTPServer
	inTxn   bool   // counted in srv.inflight, from MAIL to the end of the transaction
	release func() // gives back the transaction's spool reservation; nil when none
	conn    *smtp.Conn
	cid     string
	log     *slog.Logger
	ip      string
	port    int
	helo    string
	from    string
	rcpts   []string
}

// Reset ends the transaction: go-smtp calls it after DATA, on RSET and before MAIL.
func (s *session) Reset() {
	s.from, s.rcpts = "", nil
	s.endTxn()
}

func (s *session) Logout() error {
	s.endTxn()
	return nil
}

func (s *session) endTxn() {
	if s.release != nil {
		s.release()
		s.release = nil
	}
	if s.inTxn {
		s.inTxn = false
		s.srv.mu.Lock()
		s.srv.inflight--
		s.srv.mu.Unlock()
	}
}

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	s.Reset()
	if s.srv.draining.Load() {
		return errShuttingDown
	}
	if opts != nil && opts.Size > 0 {
		// The sender declared its size: refuse before it sends the body (RFC 1870).
		release, ok := s.srv.spool.Reserve(opts.Size)
		if !ok {
			s.srv.metrics.spoolFull.Add(1)
			s.log.Warn("spool budget reached; answered 452", "declared_size", opts.Size)
			return errSpoolFull
		}
		s.release = release
	}
	s.srv.mu.Lock()
	s.srv.inflight++
	s.srv.mu.Unlock()
	s.inTxn = true
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}

// Data parses the stream as it arrives, commits the record, and returns the reply. It must
// return an unwrapped *smtp.SMTPError: go-smtp turns any other error into a permanent 554
// that would carry our internal error text.
func (s *session) Data(r io.Reader) error {
	start := time.Now()
	id := ulid.Make().String()
	s.srv.metrics.messagesStarted.Add(1)
	counted := &countingReader{r: r}
	rec, err := s.srv.parser.Parse(counted)
	if err != nil {
		return s.refuse(id, err)
	}
	rec.ID = id
	rec.ReceivedAt = api.FormatTime(start)
	rec.Sensor = api.Sensor{ID: s.srv.cfg.SensorID, Version: s.srv.cfg.Version}
	rec.Envelope = &api.Envelope{
		Transport:  api.TransportSMTP,
		ClientIP:   s.ip,
		ClientPort: s.port,
		HELO:       s.helo,
		TLS:        tlsInfo(s.conn),
		MailFrom:   s.from,
		RcptTo:     s.rcpts,
		Size:       counted.n,
	}
	line, err := api.MarshalRecord(rec)
	if err != nil { // cannot happen with these types; still never a 5xx
		s.log.Error("encoding record failed", "id", id, "error", err)
		s.srv.metrics.messagesFailed.Add(1)
		return errLocal(id)
	}
	if s.release == nil {
		// No SIZE was declared, so the check comes now that the body is read.
		release, ok := s.srv.spool.Reserve(int64(len(line)))
		if !ok {
			s.srv.metrics.spoolFull.Add(1)
			s.srv.metrics.messagesFailed.Add(1)
			s.log.Warn("spool budget reached; answered 452", "id", id, "size", counted.n)
			return errSpoolFull
		}
		s.release = release
	}
	if err := s.srv.spool.Commit(id, line); err != nil {
		s.log.Error("spool commit failed; answered 451", "id", id, "error", err)
		s.srv.metrics.messagesFailed.Add(1)
		return errLocal(id)
	}
	s.srv.metrics.messagesAccepted.Add(1)
	s.srv.metrics.bytesAccepted.Add(counted.n)
	s.log.Info("accepted",
		"id", id,
		"mail_from", s.from,
		"rcpts", len(s.rcpts),
		"size", counted.n,
		"source", rec.Source.Kind,
		"attachments", len(rec.Attachments),
		"urls", len(rec.URLs),
		"anomalies", len(rec.Anomalies),
		"duration_ms", time.Since(start).Milliseconds(),
	)
	// A 250 that names the record id (as Postfix names its queue id) lets a sender's log be
	// matched to ours.
	return &smtp.SMTPError{Code: 250, EnhancedCode: smtp.EnhancedCode{2, 0, 0}, Message: "OK queued as " + id}
}

// refuse maps a parse failure to the reply: the sender's own SMTP errors (size exceeded)
// pass through; an input that broke off is a temporary failure; anything on our side is 451.
func (s *session) refuse(id string, err error) error {
	s.srv.metrics.messagesFailed.Add(1)
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		s.log.Info("message refused", "id", id, "code", se.Code, "reason", se.Message)
		return se
	}
	if errors.Is(err, parser.ErrIncomplete) {
		s.log.Warn("message not received whole", "id", id, "error", err)
		return errIncomplete
	}
	if !errors.Is(err, parser.ErrLocal) {
		err = fmt.Errorf("unexpected parser error: %w", err)
	}
	s.log.Error("message failed on our side; answered 451", "id", id, "error", err)
	return errLocal(id)
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

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
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
			go refuseConn(c, l.srv.cfg.Domain)
			continue
		}
		return &idleConn{Conn: c, timeout: l.timeout}, nil
	}
}

// refuseConn greets a connection with 421 and closes it (RFC 5321 §3.1).
func refuseConn(c net.Conn, domain string) {
	c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "421 4.3.2 %s Shutting down; try again later\r\n", domain)
	c.Close()
}

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
