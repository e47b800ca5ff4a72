// Package sensor holds the front doors: the SMTP server that journal rules point at, the
// milter that sits in the customer's own Postfix (milter.go), and the admin HTTP server
// (health, readiness, metrics).
//
// The SMTP door first matches a connection's address against the host access table, when
// there is one (access.go, over package access): the client's group accepts, rejects or
// drops it, and sets the session's policy.
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
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/access"
	"github.com/journalsensor/sensor/api"
)

// SMTPConfig configures the SMTP server.
type SMTPConfig struct {
	Domain             string        // our name in the greeting and EHLO reply
	MaxMessageBytes    int64         // advertised SIZE and enforced limit; 0 or less: none
	MaxRecipients      int           // default 1000
	IdleTimeout        time.Duration // per read, not per DATA; default 5m
	MaxTransactionTime time.Duration // from MAIL to the reply to the message; default 30m
	TLSConfig          *tls.Config   // enables STARTTLS when set, and ServeTLS
	RequireTLS         bool          // MAIL before STARTTLS gets 451 4.7.0
	Conns              ConnLimits    // caps on open connections (listener.go); zero: none
	Recipients         *Recipients   // RCPT TO addresses accepted (recipients.go); nil: all
	// Access is the host access table (access.go): each connection is served, refused or
	// dropped as its address's group says, under that group's policy. Nil: every client is
	// served, and no record names a group.
	Access *access.Table
	Logger *slog.Logger

	// ClientAuth, when set, makes MAIL need a client certificate that it accepts
	// (clientcert.go): 451 4.7.0 before STARTTLS, 550 5.7.1 over TLS without one.
	ClientAuth *ClientAuth
}

// SMTPServer accepts copies over SMTP. Each connection is served by one goroutine
// (smtpconn.go).
type SMTPServer struct {
	cfg     SMTPConfig
	intake  *Intake
	log     *slog.Logger
	metrics *Metrics
	rates   *msgRates   // the access groups' max_messages_per_minute, by client address
	counts  *connCounts // open connections on all of its listeners, for the caps
	// rejecting holds a token per client being told the access table refuses it.
	rejecting chan struct{}

	// draining is set by Shutdown: new connections and new transactions get 421, and
	// transactions already under way (MAIL given) may finish.
	draining     atomic.Bool
	writeTimeout time.Duration // each write to a client; a test shortens it, under mu
	mu           sync.Mutex
	inflight     int
	door         *doorConns
}

// NewSMTPServer returns a server that hands every message to in and counts its replies in m.
func NewSMTPServer(cfg SMTPConfig, in *Intake, m *Metrics) *SMTPServer {
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = 1000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.MaxTransactionTime <= 0 {
		cfg.MaxTransactionTime = 30 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = &Metrics{}
	}
	if cfg.ClientAuth != nil && cfg.TLSConfig != nil {
		// Ask, never demand nor verify in the handshake: ClientAuth's doc says why.
		cfg.TLSConfig = cfg.TLSConfig.Clone()
		cfg.TLSConfig.ClientAuth = tls.RequestClientCert
		// A session resumed from a ticket is not asked again and keeps the certificate of
		// the handshake that made it, or none: a sender refused for showing none would be
		// refused again once it has one, for as long as its ticket lives (7 days). MTAs
		// open few connections; a full handshake each is cheap.
		cfg.TLSConfig.SessionTicketsDisabled = true
	}
	if t := cfg.Access; t != nil {
		m.access.declare(t)
		if cfg.Conns.PerIPFor == nil {
			cfg.Conns.PerIPFor = func(ip netip.Addr) int {
				if g := t.Match(ip); g != nil {
					return g.MaxConnectionsPerIP
				}
				return 0
			}
		}
	}
	return &SMTPServer{cfg: cfg, intake: in, log: cfg.Logger, metrics: m, rates: newMsgRates(), counts: newConnCounts(),
		rejecting: make(chan struct{}, maxRefusing), writeTimeout: writeTimeout, door: newDoorConns()}
}

// Serve accepts connections on l until Close. Each read has its own deadline, so a slow
// but live sender is never cut off mid-DATA.
func (s *SMTPServer) Serve(l net.Listener) error { return s.serve(l, false) }

// ServeTLS is Serve for implicit TLS (RFC 8314 §3.3): each connection starts with a TLS
// handshake under TLSConfig, then holds the same session as Serve's, already secure.
func (s *SMTPServer) ServeTLS(l net.Listener) error {
	if s.cfg.TLSConfig == nil {
		l.Close()
		return errors.New("implicit TLS needs SMTPConfig.TLSConfig")
	}
	return s.serve(l, true)
}

func (s *SMTPServer) serve(l net.Listener, implicitTLS bool) error {
	if implicitTLS {
		// Under the connection caps, so that their 421, and shutdown's, are said over TLS.
		l = tls.NewListener(l, s.cfg.TLSConfig)
	}
	l = limitListenerCounting(l, s.cfg.Conns, s.cfg.Domain, s.log, s.metrics, s.counts)
	return s.door.serve(l, s.log, func(c net.Conn) {
		if s.draining.Load() {
			go refuseConn(c, s.cfg.Domain, s.log, s.metrics)
			return
		}
		if !s.door.track(c) {
			c.Close()
			return
		}
		go func() {
			defer s.door.untrack(c)
			g, ok := s.admit(c)
			if !ok {
				return
			}
			if !implicitTLS {
				newSMTPConn(s, c, g).serve()
				return
			}
			st, cert, err := s.handshake(tlsConn(c))
			if err != nil {
				s.log.Info("TLS handshake failed", "client", c.RemoteAddr().String(), "error", err)
				c.Close()
				return
			}
			sc := newSMTPConn(s, c, g)
			sc.tls, sc.cert = st, cert
			sc.serve()
		}()
	})
}

// handshake runs the server side of tc's TLS handshake, within the idle timeout, and
// returns what the record tells of it and, with ClientAuth, what the client certificate
// proved (nil without ClientAuth).
func (s *SMTPServer) handshake(tc *tls.Conn) (*api.TLS, *certVerdict, error) {
	if err := tc.SetDeadline(time.Now().Add(s.cfg.IdleTimeout)); err != nil {
		return nil, nil, err
	}
	if err := tc.Handshake(); err != nil {
		return nil, nil, err
	}
	if err := tc.SetDeadline(time.Time{}); err != nil {
		return nil, nil, err
	}
	st := tc.ConnectionState()
	rec := &api.TLS{Version: tls.VersionName(st.Version), Cipher: tls.CipherSuiteName(st.CipherSuite), ServerName: st.ServerName}
	var cert *certVerdict
	if s.cfg.ClientAuth != nil {
		cert = s.cfg.ClientAuth.verify(st.PeerCertificates, time.Now())
		rec.ClientName = cert.name
	}
	return rec, cert, nil
}

// tlsConn is the TLS connection a connection from ServeTLS's listener wraps.
func tlsConn(c net.Conn) *tls.Conn {
	if lc, ok := c.(*limitConn); ok {
		c = lc.Conn
	}
	return c.(*tls.Conn)
}

// Close stops accepting and closes every connection. A transaction cut off this way was not
// acknowledged, so the sender still owns it and will retry.
func (s *SMTPServer) Close() error { return s.door.closeAll() }

// Shutdown stops the server gracefully: new connections are answered 421 and closed, idle
// sessions get 421 to their next MAIL, and transactions already under way are given until
// ctx is done to finish (their 250 still means committed). Then every connection is
// closed. A transaction cut off at the deadline was not acknowledged, so the sender still
// owns it. It returns ctx's error if transactions were still running at the deadline.
func (s *SMTPServer) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	return s.door.drain(ctx, s.inflightCount, s.log, "transactions")
}

func (s *SMTPServer) inflightCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// refuseConn greets a connection with 421 and closes it (RFC 5321 §3.1). The reply is
// smtpReply's; the greeting position puts our domain first, as RFC 5321 §4.2 shows for 421.
func refuseConn(c net.Conn, domain string, log *slog.Logger, m *Metrics) {
	cid := newConnID()
	log.Info("shutting down; connection refused", "conn", cid, "client", c.RemoteAddr().String())
	r := smtpReply(Outcome{Kind: ShuttingDown, Ref: cid}, m)
	e := r.EnhancedCode
	sayAndClose(c, fmt.Sprintf("%d %d.%d.%d %s %s", r.Code, e[0], e[1], e[2], domain, r.Message))
}

// sayAndClose writes one reply line to a connection the server will not serve, within a
// deadline (on the implicit-TLS listener the write is the handshake too, which a slow client
// can drag out), and closes it.
func sayAndClose(c net.Conn, line string) {
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, line+"\r\n")
	_ = c.Close()
}

// newConnID names a connection in the log and in the replies that name no record. Like a
// record id it is unique across restarts and sensors, so a ref in a sender's bounce finds
// one log line.
func newConnID() string { return ulid.Make().String() }

// retryableAccept reports whether an Accept error is the machine's passing trouble rather
// than the listener's end: out of file descriptors (a connection flood can get there before
// the connection caps do) or of buffers or memory. Returning would stop the whole sensor.
func retryableAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, errno) {
			return true
		}
	}
	return false
}
