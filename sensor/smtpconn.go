package sensor

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/access"
	"github.com/journalsensor/sensor/api"
)

const (
	// maxCommandLine bounds a command line, CRLF included. RFC 5321 §4.5.3.1.4 asks for 512;
	// parameters of extensions make some longer. Lines inside DATA and BDAT have no limit.
	maxCommandLine = 4096
	// maxErrors is how many bad commands a session may send before it is closed.
	maxErrors = 20
	// writeTimeout bounds each write of replies to the client (SMTPServer.writeTimeout).
	writeTimeout = time.Minute
)

var errLineTooLong = errors.New("command line too long")

// smtpConn is one SMTP session: one goroutine reads commands, hands a message's bytes to the
// intake as they arrive, and writes the replies. Nothing else touches it but Close, which
// closes its net.Conn.
type smtpConn struct {
	srv  *SMTPServer
	io   *connIO
	br   *bufio.Reader
	bw   *bufio.Writer
	cid  string
	log  *slog.Logger
	ip   string
	addr netip.Addr // ip, for the access table's message rate
	port int
	tls  *api.TLS
	cert *certVerdict // the client certificate's, with SMTPConfig.ClientAuth and TLS

	// The client's access group (access.go) and what it sets for the session; group is nil
	// without an access table.
	group      *access.Group
	maxBytes   int64 // SIZE advertised and enforced; 0 or less: none
	requireTLS bool  // MAIL before STARTTLS gets 451 4.7.0

	writeTimeout time.Duration

	helo   string
	ehlo   bool
	errors int

	// The transaction, from MAIL to its end.
	inTxn  bool
	from   string
	size   int64
	binary bool // BODY=BINARYMIME: BDAT only (RFC 3030 §3)
	rcpts  []string
	res    *Reservation
}

// connIO is what the session reads and writes through: every read first flushes the
// replies written so far (so that pipelined commands are answered in batches) and has its
// own deadline, the idle timeout, or the transaction's end when that comes sooner.
type connIO struct {
	conn        net.Conn // the TCP connection, or TLS over it after STARTTLS
	idle        time.Duration
	txnDeadline time.Time // zero outside a transaction
	bw          *bufio.Writer
}

func (c *connIO) Read(p []byte) (int, error) {
	if c.bw != nil && c.bw.Buffered() > 0 {
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	d := time.Now().Add(c.idle)
	if !c.txnDeadline.IsZero() && c.txnDeadline.Before(d) {
		d = c.txnDeadline
	}
	if err := c.conn.SetReadDeadline(d); err != nil {
		return 0, err
	}
	return c.conn.Read(p)
}

// txnExpired tells whether a read failed because the transaction ran out of time.
func (c *connIO) txnExpired(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !c.txnDeadline.IsZero() && !time.Now().Before(c.txnDeadline)
}

// newSMTPConn returns the session of nc, a client of access group g (nil: none).
func newSMTPConn(s *SMTPServer, nc net.Conn, g *access.Group) *smtpConn {
	c := &smtpConn{srv: s, cid: newConnID(), group: g, maxBytes: s.cfg.MaxMessageBytes, requireTLS: s.cfg.RequireTLS}
	s.mu.Lock()
	c.writeTimeout = s.writeTimeout
	s.mu.Unlock()
	if addr, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip, c.port = addr.IP.String(), addr.Port
	}
	c.addr, _ = clientIP(nc.RemoteAddr())
	c.log = s.log.With("conn", c.cid, "client", c.ip)
	if g != nil {
		c.log = c.log.With("access_group", g.Name)
		if g.MaxMessageBytes > 0 {
			c.maxBytes = g.MaxMessageBytes
		}
		c.requireTLS = c.requireTLS || g.RequireTLS
	}
	c.setConn(nc)
	return c
}

func (c *smtpConn) setConn(nc net.Conn) {
	c.io = &connIO{conn: nc, idle: c.srv.cfg.IdleTimeout}
	c.bw = bufio.NewWriterSize(deadlineWriter{nc, c.writeTimeout}, 4096)
	c.io.bw = c.bw
	c.br = bufio.NewReaderSize(c.io, 64<<10)
}

// serve runs the session until QUIT, an error or Close.
func (c *smtpConn) serve() {
	defer func() {
		if v := recover(); v != nil {
			c.log.Error("panic in SMTP session", "panic", v)
			c.replyErr(smtpReply(Outcome{Kind: LocalFault, Ref: c.cid}, c.srv.metrics))
		}
		c.flush()
		c.endTxn()
		c.io.conn.Close()
	}()
	c.reply(220, "", c.srv.cfg.Domain+" ESMTP Service Ready")
	for {
		line, err := c.readCommand()
		switch {
		case errors.Is(err, errLineTooLong):
			c.reply(500, "5.5.2", "Line too long")
			if !c.badCommand() {
				return
			}
			continue
		case err != nil:
			c.readFailed(err)
			return
		}
		cmd, ok := parseCommand(line)
		if !ok {
			cmd = command{}
		}
		if !c.dispatch(cmd) {
			return
		}
	}
}

// readFailed ends a session whose command could not be read.
func (c *smtpConn) readFailed(err error) {
	var ne net.Error
	switch {
	case c.io.txnExpired(err):
		c.log.Warn("transaction took too long; abandoned", "limit", c.srv.cfg.MaxTransactionTime)
		c.replyErr(smtpReply(Outcome{Kind: Incomplete, Ref: c.cid}, c.srv.metrics))
	case errors.As(err, &ne) && ne.Timeout():
		c.reply(421, "4.4.2", c.srv.cfg.Domain+" Idle timeout, bye bye")
	}
}

// badCommand counts a bad command and says whether the session may go on.
func (c *smtpConn) badCommand() bool {
	c.errors++
	if c.errors >= maxErrors {
		c.reply(421, "4.7.0", c.srv.cfg.Domain+" Too many errors; closing")
		return false
	}
	return true
}

// readCommand reads one command line, without its line end. A line longer than
// maxCommandLine is read to its end and discarded, and errLineTooLong returned.
func (c *smtpConn) readCommand() (string, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull || (err == nil && len(line) > maxCommandLine) {
		for err == bufio.ErrBufferFull {
			_, err = c.br.ReadSlice('\n')
		}
		if err != nil {
			return "", err
		}
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	if len(line) > maxCommandLine {
		return "", errLineTooLong
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
	return s, nil
}

// reply writes one reply; text may hold several lines separated by "\n". enh is the
// enhanced status code (RFC 2034), "" for none.
// Each line is built in the writer's own free space: four replies a message made a string
// for each line, and a slice of the lines, before.
func (c *smtpConn) reply(code int, enh string, text string) {
	for {
		l, rest, more := strings.Cut(text, "\n")
		b := strconv.AppendInt(c.bw.AvailableBuffer(), int64(code), 10)
		if more {
			b = append(b, '-')
		} else {
			b = append(b, ' ')
			if enh != "" {
				b = append(append(b, enh...), ' ')
			}
		}
		b = append(append(b, l...), "\r\n"...)
		c.bw.Write(b)
		if !more {
			return
		}
		text = rest
	}
}

// replyErr writes a reply smtpReply decided.
func (c *smtpConn) replyErr(r *smtp.SMTPError) {
	e := r.EnhancedCode
	var buf [3*20 + 2]byte
	enh := strconv.AppendInt(buf[:0], int64(e[0]), 10)
	enh = strconv.AppendInt(append(enh, '.'), int64(e[1]), 10)
	enh = strconv.AppendInt(append(enh, '.'), int64(e[2]), 10)
	c.reply(r.Code, string(enh), r.Message)
}

func (c *smtpConn) flush() { c.bw.Flush() }

// deadlineWriter gives each write to the client its own deadline, so that a client that
// sends but never reads cannot hold its session forever.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return 0, err
	}
	return w.c.Write(p)
}

// dispatch serves one command and says whether the session goes on.
func (c *smtpConn) dispatch(cmd command) bool {
	switch cmd.verb {
	case "HELO", "EHLO":
		c.hello(cmd)
	case "MAIL":
		return c.mail(cmd.arg)
	case "RCPT":
		return c.rcpt(cmd.arg)
	case "DATA":
		return c.data(cmd.arg)
	case "BDAT":
		return c.bdat(cmd.arg)
	case "RSET":
		c.endTxn()
		c.reply(250, "2.0.0", "Session reset")
	case "NOOP":
		c.reply(250, "2.0.0", "OK")
	case "VRFY":
		c.reply(252, "2.5.0", "Cannot VRFY user, but will accept message")
	case "HELP":
		c.reply(214, "2.0.0", "See RFC 5321")
	case "QUIT":
		c.reply(221, "2.0.0", "Bye")
		return false
	case "STARTTLS":
		return c.startTLS(cmd.arg)
	case "":
		c.reply(500, "5.5.2", "Error: bad syntax")
		return c.badCommand()
	default:
		c.reply(502, "5.5.1", cmd.verb+" command not implemented")
		return c.badCommand()
	}
	return true
}

func (c *smtpConn) hello(cmd command) {
	domain, ok := parseHello(cmd.arg)
	if !ok {
		c.reply(501, "5.5.2", "Domain/address argument required for "+cmd.verb)
		return
	}
	c.endTxn()
	c.helo, c.ehlo = domain, cmd.verb == "EHLO"
	if !c.ehlo {
		c.reply(250, "", c.srv.cfg.Domain+" Hello "+domain)
		return
	}
	ext := []string{c.srv.cfg.Domain + " Hello " + domain, "PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "CHUNKING"}
	if c.srv.cfg.TLSConfig != nil && c.tls == nil {
		ext = append(ext, "STARTTLS")
	}
	ext = append(ext, "SMTPUTF8", "BINARYMIME")
	if c.maxBytes > 0 {
		ext = append(ext, fmt.Sprintf("SIZE %d", c.maxBytes))
	} else {
		ext = append(ext, "SIZE") // no limit (RFC 1870 §4)
	}
	ext = append(ext, fmt.Sprintf("LIMITS RCPTMAX=%d", c.srv.cfg.MaxRecipients))
	c.reply(250, "", strings.Join(ext, "\n"))
}

func (c *smtpConn) mail(arg string) bool {
	if c.helo == "" {
		c.reply(503, "5.5.1", "Send HELO/EHLO first")
		return c.badCommand()
	}
	m, err := parseMail(arg)
	switch {
	case errors.Is(err, errPathSyntax):
		c.reply(501, "5.1.7", "Bad sender address syntax")
		return c.badCommand()
	case errors.Is(err, errSizeSyntax):
		c.reply(501, "5.5.4", "Unable to parse SIZE as an integer")
		return c.badCommand()
	case err != nil:
		c.reply(501, "5.5.4", "Unable to parse MAIL ESMTP parameters")
		return c.badCommand()
	}
	if c.requireTLS && c.tls == nil {
		// QUIRK: RFC 3207 §4 names 530 for this, but Postfix (3.7, seen in the gateway test)
		// bounces a copy on that 5xx, and a bounced journal copy is a lost one. The
		// sender's TLS settings are a thing to fix while it retries: 451 4.7.0 keeps the
		// copy in its queue.
		c.log.Info("MAIL before STARTTLS with TLS required; deferred")
		c.reply(451, "4.7.0", "Must issue a STARTTLS command first")
		return c.badCommand()
	}
	if !c.clientCertOK() {
		return c.badCommand()
	}
	// A MAIL inside a transaction starts a new one (go-smtp did the same); a refusal here
	// would lose the copy.
	c.endTxn()
	if c.srv.draining.Load() {
		c.log.Info("shutting down; MAIL refused")
		c.replyErr(smtpReply(Outcome{Kind: ShuttingDown, Ref: c.cid}, c.srv.metrics))
		return false
	}
	if c.maxBytes > 0 && m.size > c.maxBytes {
		c.reply(552, "5.3.4", "Max message size exceeded")
		return true
	}
	if g := c.group; g != nil && g.MaxMessagesPerMinute > 0 && !c.srv.rates.take(c.addr, g.MaxMessagesPerMinute, time.Now()) {
		// Temporary, as every refusal of a copy must be: the sender keeps it and retries
		// once its rate allows. RFC 3463 X.7.1: delivery not authorized (now).
		c.srv.metrics.access.countLimited(g.Name, "mail")
		c.log.Info("message rate reached; MAIL deferred", "limit_per_minute", g.MaxMessagesPerMinute)
		c.reply(451, "4.7.1", "Too many messages from your address; try again later (ref "+c.cid+")")
		return true
	}
	var res *Reservation
	if m.size > 0 {
		// The sender declared its size: refuse before it sends the body (RFC 1870).
		env := c.envelope()
		env.MailFrom, env.DeclaredSize = m.from, m.size
		var o Outcome
		if res, o = c.srv.intake.Reserve(&env); o.Kind != Accepted {
			c.replyErr(smtpReply(o, c.srv.metrics))
			return true
		}
	}
	c.inTxn, c.res = true, res
	c.from, c.size, c.binary, c.rcpts = m.from, m.size, m.body == "BINARYMIME", nil
	c.io.txnDeadline = time.Now().Add(c.srv.cfg.MaxTransactionTime)
	c.srv.mu.Lock()
	c.srv.inflight++
	c.srv.mu.Unlock()
	c.reply(250, "2.1.0", "OK")
	return true
}

// rcpt reports whether the session goes on: guessing at the journal address costs a client
// its session, as other errors do.
func (c *smtpConn) rcpt(arg string) bool {
	if !c.inTxn {
		c.reply(503, "5.5.1", "Send MAIL first")
		return true
	}
	to, err := parseRcpt(arg)
	if err != nil {
		c.reply(501, "5.1.3", "Bad recipient address syntax")
		return true
	}
	if !c.srv.cfg.Recipients.Accepts(to) {
		// RFC 5321 §4.2.2 550 "mailbox unavailable"; RFC 3463 X.1.1 "Bad destination
		// mailbox address".
		c.log.Info("recipient not accepted", "rcpt", to)
		c.reply(550, "5.1.1", "Recipient not accepted")
		return c.badCommand()
	}
	if len(c.rcpts) >= c.srv.cfg.MaxRecipients {
		c.reply(452, "4.5.3", "Too many recipients")
		return true
	}
	c.rcpts = append(c.rcpts, to)
	c.reply(250, "2.1.5", "OK")
	return true
}

// ready says whether a message may be sent now, and answers when not.
func (c *smtpConn) ready(verb string) bool {
	switch {
	case !c.inTxn:
		c.reply(503, "5.5.1", "Send MAIL first")
	case len(c.rcpts) == 0:
		c.reply(503, "5.5.1", "Send RCPT first")
	case verb == "DATA" && c.binary:
		c.reply(503, "5.5.1", "BODY=BINARYMIME needs BDAT, not DATA")
	default:
		return true
	}
	return false
}

func (c *smtpConn) data(arg string) bool {
	if arg != "" {
		c.reply(501, "5.5.4", "DATA takes no arguments")
		return c.badCommand()
	}
	if !c.ready("DATA") {
		return c.badCommand()
	}
	c.reply(354, "", "Go ahead. End your data with <CR><LF>.<CR><LF>")
	dr := newDotReader(c.br)
	o := c.receive(&limitReader{r: dr, max: c.maxBytes})
	if dr.err == nil && !dr.done {
		io.Copy(io.Discard, dr) // after a refusal, read on to the end of the data
	}
	if dr.err != nil {
		return c.messageBrokeOff(o, dr.err)
	}
	c.replyErr(smtpReply(o, c.srv.metrics))
	c.endTxn()
	return true
}

func (c *smtpConn) bdat(arg string) bool {
	size, last, err := parseBDAT(arg)
	if err != nil {
		// Where the chunk ends is unknown, so its bytes would be read as commands (a
		// relayed message's "MAIL FROM" among them): the session cannot go on.
		c.log.Warn("malformed BDAT; closing", "arg", arg)
		c.reply(421, "4.5.4", "Malformed BDAT arguments; closing the connection")
		return false
	}
	b := &bdatReader{c: c, left: size, last: last}
	if !c.ready("BDAT") {
		// The chunk's bytes follow all the same; read past them.
		if err := b.skipChunk(); err != nil {
			return false
		}
		return c.badCommand()
	}
	o := c.receive(&limitReader{r: b, max: c.maxBytes})
	var refused *RefusedError
	if errors.As(o.Err, &refused) {
		b.skipChunk()
	} else if b.err == nil && b.abort == nil && !b.done {
		io.Copy(io.Discard, b)
	}
	switch {
	case b.abort != nil:
		// The sender abandoned the message: it is told nothing of it, and its command is
		// served.
		c.endTxn()
		return c.dispatch(*b.abort)
	case b.err != nil:
		return c.messageBrokeOff(o, b.err)
	}
	c.replyErr(smtpReply(o, c.srv.metrics))
	c.endTxn()
	return true
}

// receive hands the message to the intake.
func (c *smtpConn) receive(r io.Reader) Outcome {
	env := c.envelope()
	return c.srv.intake.Receive(&env, c.res, r)
}

// messageBrokeOff answers a message whose stream failed (the client went away, stalled, or
// ran out of time) and ends the session: the rest of the message cannot be told from
// commands.
func (c *smtpConn) messageBrokeOff(o Outcome, err error) bool {
	if c.io.txnExpired(err) {
		c.log.Warn("transaction took too long; abandoned", "id", o.ID, "limit", c.srv.cfg.MaxTransactionTime)
	}
	c.replyErr(smtpReply(o, c.srv.metrics))
	return false
}

func (c *smtpConn) startTLS(arg string) bool {
	switch {
	case c.srv.cfg.TLSConfig == nil:
		c.reply(502, "5.5.1", "TLS not supported")
		return c.badCommand()
	case c.tls != nil:
		c.reply(503, "5.5.1", "Already running in TLS")
		return c.badCommand()
	case arg != "":
		c.reply(501, "5.5.4", "STARTTLS takes no arguments")
		return c.badCommand()
	case c.br.Buffered() > 0:
		// Bytes sent after STARTTLS before the handshake would be taken as sent over TLS
		// (CVE-2011-0411): close.
		c.log.Warn("commands pipelined after STARTTLS; closing")
		return false
	}
	c.reply(220, "2.0.0", "Ready to start TLS")
	c.flush()
	tc := tls.Server(c.io.conn, c.srv.cfg.TLSConfig)
	st, cert, err := c.srv.handshake(tc)
	if err != nil {
		c.log.Info("TLS handshake failed", "error", err)
		return false
	}
	c.tls, c.cert = st, cert
	c.endTxn()
	c.helo, c.ehlo = "", false // RFC 3207 §4.2: the session starts over
	c.setConn(tc)
	return true
}

// envelope is what the intake is told of the transaction.
func (c *smtpConn) envelope() Envelope {
	env := Envelope{
		Transport:    api.TransportSMTP,
		Conn:         c.cid,
		ClientIP:     c.ip,
		ClientPort:   c.port,
		HELO:         c.helo,
		TLS:          c.tls,
		MailFrom:     c.from,
		RcptTo:       c.rcpts,
		DeclaredSize: c.size,
		VerifiedBy:   c.doorProofs(),
	}
	if c.group != nil {
		env.AccessGroup = c.group.Name
	}
	return env
}

// endTxn ends the transaction, if any: its room is given back and it no longer counts as
// in flight.
func (c *smtpConn) endTxn() {
	c.res.Release()
	c.res = nil
	c.from, c.size, c.binary, c.rcpts = "", 0, false, nil
	c.io.txnDeadline = time.Time{}
	if c.inTxn {
		c.inTxn = false
		c.srv.mu.Lock()
		c.srv.inflight--
		c.srv.mu.Unlock()
	}
}
