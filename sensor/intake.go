package sensor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser"
)

// RecordParser is what the intake needs of the parser.
type RecordParser interface {
	Parse(r io.Reader) (*api.Record, error)
}

// Committer makes a record durable. Commit returns only once the record would survive a
// crash; a door acknowledges the message after that and not before. Reserve claims room for
// a message of n bytes in the spool's budget; ok is false when the spool is full, and release
// (never nil, safe to call twice) gives the room back.
type Committer interface {
	Commit(id string, line []byte) error
	Reserve(n int64) (release func(), ok bool)
}

// BlobReleaser is implemented by a Committer that also stores attachment blobs (the spool,
// in content mode). The parser commits a message's blobs before Receive knows whether the
// record fits the budget; when it does not, or the record cannot be encoded, ReleaseBlobs
// gets the record's attachments[].blob values, one per attachment, so that blobs no record
// will name stop counting against the budget at once. A failed Commit releases its blobs
// itself.
type BlobReleaser interface {
	ReleaseBlobs(sums []string)
}

// OutcomeKind says what became of a message, or of a request for spool room. Each front
// door maps it to its own answer: the SMTP session to a reply (codes.go), a milter to an
// action.
type OutcomeKind int

const (
	// Accepted: Receive committed the record (Outcome.ID names it), or Reserve claimed the
	// room.
	Accepted OutcomeKind = iota
	// SpoolFull: the spool's budget is reached. Temporary: uploads drain the spool.
	SpoolFull
	// Incomplete: the message broke off before its end (the client went away, stalled or
	// reset the transaction). Nothing was committed; the sender still owns the message.
	Incomplete
	// LocalFault: something on our side failed (an attachment blob, encoding, the commit).
	// Temporary: the sender keeps the message and retries.
	LocalFault
	// Refused: the door refused the message's bytes for a reason the sender must fix (its
	// size limit); Outcome.Err holds the door's *RefusedError.
	Refused
	// ShuttingDown: the door is draining and takes no new transaction. The intake never
	// returns it; a door makes it, so that it is answered like every other outcome.
	ShuttingDown
	// Untrusted: header proofs of origin are configured and none held (origin.go).
	// Outcome.Reason says why, for the sender to read. Nothing was committed.
	Untrusted
)

func (k OutcomeKind) String() string {
	switch k {
	case Accepted:
		return "accepted"
	case SpoolFull:
		return "spool_full"
	case Incomplete:
		return "incomplete"
	case LocalFault:
		return "local_fault"
	case Refused:
		return "refused"
	case ShuttingDown:
		return "shutting_down"
	case Untrusted:
		return "untrusted"
	}
	return fmt.Sprintf("outcome(%d)", int(k))
}

// Outcome is the one answer of the intake.
type Outcome struct {
	Kind OutcomeKind
	// ID is the record's id for every outcome of Receive (what the record is, or would have
	// been, called in the log); "" for Reserve.
	ID string
	// Ref is what a door's answer names so that a sender's log can be matched to ours: the
	// record id when there is one, else the connection id (Envelope.Conn). Both appear in
	// the log line that tells what happened.
	Ref string
	// Err is the cause, for logs and for a door that refused the bytes itself. It is never
	// shown to a sender.
	Err error
	// Reason is why an Untrusted copy's origin is not proven, made to be shown to its
	// sender: it names the failed proofs, never a secret.
	Reason string
}

// RefusedError marks an error of a door's byte stream that the sender must fix (the SMTP
// size limit): Receive answers it with Refused, not Incomplete. Err is the door's own
// error, for the door to map back to its answer; Code, when not 0, is the door's reply code,
// for the log line.
type RefusedError struct {
	Err  error
	Code int
}

func (e *RefusedError) Error() string { return e.Err.Error() }
func (e *RefusedError) Unwrap() error { return e.Err }

// Envelope is what a front door knows of a transaction besides the message's bytes.
type Envelope struct {
	Transport  string // api.TransportSMTP or api.TransportMilter
	Conn       string // the door's connection id: in every log line, and the Ref when no record is named
	ClientIP   string
	ClientPort int
	HELO       string
	TLS        *api.TLS
	MailFrom   string // "" is the null reverse-path
	RcptTo     []string
	// DeclaredSize is the size the sender announced (SIZE=, RFC 1870); 0 when it did not.
	DeclaredSize int64
	// VerifiedBy lists the proofs of origin the door itself holds (api.VerifiedTLSClientCert,
	// api.VerifiedJournalAddress); the intake adds the header proofs to them.
	VerifiedBy []string
	// AccessGroup is the host access table group the client matched; "" without a table.
	AccessGroup string
	// QueueID is the MTA's queue id, for a milter copy.
	QueueID string
	// InPath says the door sits in the customer's own mail path (the milter): the header
	// proofs of origin are not asked of its copies (see Receive).
	InPath bool
}

// Reservation is spool room claimed before a message's body arrives. Release gives it back;
// it is safe on nil and more than once.
type Reservation struct{ release func() }

// Release gives the room back.
func (r *Reservation) Release() {
	if r != nil && r.release != nil {
		r.release()
		r.release = nil
	}
}

// IntakeConfig configures an Intake.
type IntakeConfig struct {
	SensorID string
	Version  string
	Logger   *slog.Logger
	// Origin is the header proofs of origin a copy must give (origin.go); nil: none.
	Origin *Origin
	// Recorded, when set, is given each record once it is committed, before the door
	// answers: the enforcement index learns the message's recipients from it. It runs on
	// the path to the sender's answer, so it must not block, and it must not change or keep
	// the record.
	Recorded func(*api.Record)
}

// Intake is what happens to a message once a front door has it: parse it, reserve spool
// room, commit the record, count, log, and return one Outcome. Every door feeds the same
// intake; it knows no protocol.
type Intake struct {
	cfg     IntakeConfig
	parser  RecordParser
	spool   Committer
	metrics *Metrics
	log     *slog.Logger
}

// NewIntake returns an intake that parses with p, commits to c and counts in m.
func NewIntake(cfg IntakeConfig, p RecordParser, c Committer, m *Metrics) *Intake {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = &Metrics{}
	}
	return &Intake{cfg: cfg, parser: p, spool: c, metrics: m, log: cfg.Logger}
}

func (in *Intake) logger(env *Envelope) *slog.Logger {
	return in.log.With("transport", env.Transport, "conn", env.Conn, "client", env.ClientIP)
}

// Reserve claims room for env.DeclaredSize bytes before the body is sent, so that a full
// spool refuses the message before the sender spends the bandwidth (RFC 1870). The outcome
// is Accepted, with a reservation the door releases when the transaction ends, or
// SpoolFull.
func (in *Intake) Reserve(env *Envelope) (*Reservation, Outcome) {
	release, ok := in.spool.Reserve(env.DeclaredSize)
	if !ok {
		return nil, in.spoolFull(in.logger(env), env.Conn, "", "declared_size", env.DeclaredSize)
	}
	return &Reservation{release: release}, Outcome{Kind: Accepted, Ref: env.Conn}
}

// spoolFull counts and logs a refusal for want of spool room, at either time it can come.
func (in *Intake) spoolFull(log *slog.Logger, ref, id string, attrs ...any) Outcome {
	in.metrics.spoolFull.Add(1)
	if id != "" {
		in.metrics.messagesFailed.Add(1)
		attrs = append([]any{"id", id}, attrs...)
	}
	log.Warn("spool budget reached; the sender must retry later", attrs...)
	return Outcome{Kind: SpoolFull, ID: id, Ref: ref}
}

// Receive parses the message as r delivers it, commits the record and says what became of
// it. res is the room Reserve claimed; when nil (no size was declared) the room is claimed
// now that the record's size is known, and given back once it is committed; a refusal then
// gives back the attachment blobs the parser committed too (BlobReleaser). Only an Accepted
// outcome may be acknowledged.
//
// Receive reads env's Transport, Conn, ClientIP and InPath at once, and the rest only once r
// is at its end: until then a door may complete it (a milter learns the queue id as late as
// the end of the message).
//
// The header proofs of origin (IntakeConfig.Origin) are not asked of a copy from a door in
// the customer's own mail path (Envelope.InPath, the milter): the MTA it sits in is the
// origin, and what it passes on is the customer's own mail, not a copy a stranger sent to
// the journal address. Refusing it would refuse nothing (the mail flows anyway) and only
// lose the copy. The source header is still scrubbed and its secret still cut out of the
// record.
func (in *Intake) Receive(env *Envelope, res *Reservation, r io.Reader) Outcome {
	start := time.Now()
	id := ulid.Make().String()
	// Made only for a line about trouble: an accepted message's one line is written with
	// LogAttrs (logAccepted), and a logger cloned for each message was 6 allocations of it.
	log := func() *slog.Logger { return in.logger(env) }
	in.metrics.messagesStarted.Add(1)
	counted := &countingReader{r: r}
	var src io.Reader = counted
	var tap *headerTap // the outer header, kept for the proofs of origin
	if in.cfg.Origin != nil && !env.InPath {
		// The header is judged here, not by the parser, which stays ignorant of secrets.
		tap = newHeaderTap(counted, maxOriginHeaderBytes)
		src = tap
	}
	rec, err := in.parser.Parse(src)
	if err != nil {
		return in.parseFailed(log(), id, err)
	}
	// The parse has read the message to its end: what follows (judging, the commit and its
	// fsync) is the wait between the end of the data and the answer.
	endOfData := time.Now()
	settled := false // the record's blobs are given back unless the spool settles them
	defer func() {
		if !settled {
			in.releaseBlobs(rec)
		}
	}()
	// Judged after the parse, which reads the message to its end (so that the door can
	// answer it), and before anything is committed.
	var verdict originVerdict
	if tap != nil {
		verdict = in.cfg.Origin.judge(tap.header())
	}
	if verdict.reason != "" {
		return in.untrusted(log(), env, id, verdict, counted.n)
	}
	in.cfg.Origin.scrubHeaders(rec)
	if proofs := append(slices.Clone(env.VerifiedBy), verdict.proofs...); len(proofs) > 0 {
		rec.Source.VerifiedBy = proofs
	}
	rec.Source.Tenant = verdict.tenant
	rec.ID = id
	rec.ReceivedAt = api.FormatTime(start)
	rec.Sensor = api.Sensor{ID: in.cfg.SensorID, Version: in.cfg.Version}
	rec.Envelope = &api.Envelope{
		Transport:  env.Transport,
		ClientIP:   env.ClientIP,
		ClientPort: env.ClientPort,
		HELO:       env.HELO,
		TLS:        env.TLS,
		MailFrom:   env.MailFrom,
		RcptTo:     env.RcptTo,
		Size:       counted.n,
	}
	rec.Envelope.AccessGroup = env.AccessGroup
	rec.Envelope.QueueID = env.QueueID
	line, err := api.MarshalRecord(rec)
	if err != nil { // cannot happen with these types; still a temporary failure
		log().Error("encoding record failed", "id", id, "error", err)
		in.metrics.messagesFailed.Add(1)
		return Outcome{Kind: LocalFault, ID: id, Ref: id, Err: err}
	}
	if redacted, found := in.cfg.Origin.redact(line); found {
		line = redacted
		log().Warn("the source header's secret appeared in the record outside its header; cut out", "id", id)
	}
	// Without a declared size the check comes now that the body is read. With one, the room
	// claimed at MAIL counts only if the sender told the truth: SIZE=1 before a message whose
	// record is larger must not slip past the budget.
	need := int64(len(line))
	if res != nil {
		need -= env.DeclaredSize
	}
	if need > 0 {
		release, ok := in.spool.Reserve(need)
		if !ok {
			return in.spoolFull(log(), id, id, "size", counted.n)
		}
		defer release()
	}
	err = in.spool.Commit(id, line)
	settled = true // committed or not, the spool has settled the record's blobs
	if err != nil {
		log().Error("spool commit failed; the sender must retry later", "id", id, "error", err)
		in.metrics.messagesFailed.Add(1)
		return Outcome{Kind: LocalFault, ID: id, Ref: id, Err: err}
	}
	in.metrics.messagesAccepted.Add(1)
	in.metrics.doors.accepted(env.Transport, time.Now())
	in.metrics.bytesAccepted.Add(counted.n)
	h := in.metrics.hist.get()
	h.size.Observe(float64(counted.n))
	h.eod.Observe(time.Since(endOfData).Seconds())
	in.logAccepted(env, rec, counted.n, start)
	if in.cfg.Recorded != nil {
		in.cfg.Recorded(rec)
	}
	return Outcome{Kind: Accepted, ID: id, Ref: id}
}

// logAccepted writes an accepted message's line: the logger's own attributes, then the
// envelope's (as logger(env) would put them), then the message's. Built only when info is
// enabled, and without the []any and the cloned logger of Logger.Info.
func (in *Intake) logAccepted(env *Envelope, rec *api.Record, size int64, start time.Time) {
	ctx := context.Background()
	if !in.log.Enabled(ctx, slog.LevelInfo) {
		return
	}
	var buf [14]slog.Attr
	attrs := append(buf[:0],
		slog.String("transport", env.Transport),
		slog.String("conn", env.Conn),
		slog.String("client", env.ClientIP),
		slog.String("id", rec.ID))
	if env.QueueID != "" {
		attrs = append(attrs, slog.String("queue_id", env.QueueID)) // joins the MTA's log line
	}
	attrs = append(attrs,
		slog.String("mail_from", env.MailFrom),
		slog.Int("rcpts", len(env.RcptTo)),
		slog.Int64("size", size),
		slog.String("source", rec.Source.Kind),
		slog.Int("attachments", len(rec.Attachments)),
		slog.Int("urls", len(rec.URLs)),
		slog.Int("anomalies", len(rec.Anomalies)),
		slog.Int64("duration_ms", time.Since(start).Milliseconds()),
	)
	in.log.LogAttrs(ctx, slog.LevelInfo, "accepted", attrs...)
}

// untrusted counts and logs a copy whose origin no configured header proof showed. The log
// line says why, as the reply does; neither shows a secret.
func (in *Intake) untrusted(log *slog.Logger, env *Envelope, id string, v originVerdict, size int64) Outcome {
	in.metrics.messagesFailed.Add(1)
	in.metrics.countUntrusted(v.label)
	log.Warn("copy refused: its origin is not proven", "id", id, "reason", v.reason,
		"mail_from", env.MailFrom, "size", size)
	return Outcome{Kind: Untrusted, ID: id, Ref: id, Reason: v.reason}
}

// releaseBlobs gives back the blobs the parser committed for rec, which will not be
// committed (see BlobReleaser).
func (in *Intake) releaseBlobs(rec *api.Record) {
	br, ok := in.spool.(BlobReleaser)
	if !ok {
		return
	}
	var sums []string
	for _, a := range rec.Attachments {
		if a.Blob != "" {
			sums = append(sums, a.Blob)
		}
	}
	if len(sums) > 0 {
		br.ReleaseBlobs(sums)
	}
}

// parseFailed sorts a parse failure: the door's own refusal of the bytes (size exceeded),
// an input that broke off, or anything on our side.
func (in *Intake) parseFailed(log *slog.Logger, id string, err error) Outcome {
	in.metrics.messagesFailed.Add(1)
	o := Outcome{ID: id, Ref: id, Err: err}
	var refused *RefusedError
	switch {
	case errors.As(err, &refused):
		o.Kind, o.Err = Refused, refused
		log.Info("message refused", "id", id, "code", refused.Code, "reason", refused.Error())
	case errors.Is(err, parser.ErrIncomplete):
		o.Kind = Incomplete
		log.Warn("message not received whole", "id", id, "error", err)
	default:
		if !errors.Is(err, parser.ErrLocal) {
			o.Err = fmt.Errorf("unexpected parser error: %w", err)
		}
		o.Kind = LocalFault
		log.Error("message failed on our side; the sender must retry later", "id", id, "error", o.Err)
	}
	return o
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
