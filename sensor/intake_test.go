package sensor

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// parseFunc is a RecordParser made of a function, for failures the real parser cannot be
// made to produce on demand.
type parseFunc func(io.Reader) (*api.Record, error)

func (f parseFunc) Parse(r io.Reader) (*api.Record, error) { return f(r) }

type intakeKit struct {
	in      *Intake
	spool   *memSpool
	metrics *Metrics
	log     *testkit.LogBuffer
}

func newIntake(t *testing.T, p RecordParser) *intakeKit {
	t.Helper()
	if p == nil {
		var err error
		if p, err = parser.New(parser.Options{CRLFInput: true}); err != nil {
			t.Fatal(err)
		}
	}
	k := &intakeKit{spool: &memSpool{}, metrics: &Metrics{}, log: &testkit.LogBuffer{}}
	k.in = NewIntake(IntakeConfig{SensorID: "sensor-1", Version: "v-test",
		Logger: slog.New(slog.NewTextHandler(k.log, nil))}, p, k.spool, k.metrics)
	return k
}

func testEnvelope() *Envelope {
	return &Envelope{Transport: api.TransportMilter, Conn: "conn-1", ClientIP: "192.0.2.7", ClientPort: 4242,
		HELO: "mx.example.org", MailFrom: "sender@example.org", RcptTo: []string{"journal@sensor.test"}}
}

func TestIntakeAcceptsAndCommitsBeforeSayingSo(t *testing.T) {
	k := newIntake(t, nil)
	o := k.in.Receive(testEnvelope(), nil, strings.NewReader(simpleMessage))
	if o.Kind != Accepted || o.ID == "" || o.Ref != o.ID || o.Err != nil {
		t.Fatalf("outcome %+v", o)
	}
	rec, ok := k.spool.get(o.ID)
	if !ok {
		t.Fatal("Accepted without a committed record")
	}
	env := rec.Envelope
	if rec.ID != o.ID || rec.Sensor.ID != "sensor-1" || env.Transport != "milter" || env.ClientIP != "192.0.2.7" ||
		env.ClientPort != 4242 || env.HELO != "mx.example.org" || env.MailFrom != "sender@example.org" ||
		env.Size != int64(len(simpleMessage)) || rec.Message.Subject != "hello" {
		t.Errorf("record %+v envelope %+v", rec, env)
	}
	if k.spool.reserved != 1 || k.spool.released != 1 {
		t.Errorf("reserved %d, released %d: the room claimed after the body must be given back", k.spool.reserved, k.spool.released)
	}
	if m := k.metrics; m.messagesStarted.Load() != 1 || m.messagesAccepted.Load() != 1 || m.bytesAccepted.Load() != int64(len(simpleMessage)) || m.messagesFailed.Load() != 0 {
		t.Errorf("metrics started %d accepted %d bytes %d failed %d", m.messagesStarted.Load(), m.messagesAccepted.Load(), m.bytesAccepted.Load(), m.messagesFailed.Load())
	}
	if log := k.log.String(); !strings.Contains(log, "id="+o.ID) || !strings.Contains(log, "conn=conn-1") {
		t.Errorf("log does not name the record and the connection:\n%s", log)
	}
}

// Each way a message can fail has its own outcome, nothing is committed, and the log names
// the ref the door's answer will carry.
func TestIntakeFailures(t *testing.T) {
	refusal := errors.New("message exceeds the door's size limit")
	for _, tc := range []struct {
		name   string
		parser RecordParser
		input  io.Reader
		setup  func(*memSpool)
		want   OutcomeKind
		inLog  string
	}{
		{name: "input broke off", input: io.MultiReader(strings.NewReader(simpleMessage[:20]), iotest.ErrReader(io.ErrUnexpectedEOF)),
			want: Incomplete, inLog: "not received whole"},
		{name: "door refused the bytes", input: io.MultiReader(strings.NewReader("Subject: x\r\n"), iotest.ErrReader(&RefusedError{Err: refusal})),
			want: Refused, inLog: "message refused"},
		{name: "blob sink failed", parser: parseFunc(func(io.Reader) (*api.Record, error) {
			return nil, &parser.LocalError{Err: errors.New("disk full")}
		}), want: LocalFault, inLog: "disk full"},
		{name: "unexpected parser error", parser: parseFunc(func(io.Reader) (*api.Record, error) {
			return nil, errors.New("boom")
		}), want: LocalFault, inLog: "unexpected parser error: boom"},
		{name: "commit failed", setup: func(s *memSpool) { s.fail = errors.New("fsync: input/output error") },
			want: LocalFault, inLog: "input/output error"},
		{name: "spool full after the body", setup: func(s *memSpool) { s.full = true },
			want: SpoolFull, inLog: "spool budget reached"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := newIntake(t, tc.parser)
			if tc.setup != nil {
				tc.setup(k.spool)
			}
			input := tc.input
			if input == nil {
				input = strings.NewReader(simpleMessage)
			}
			o := k.in.Receive(testEnvelope(), nil, input)
			if o.Kind != tc.want || o.ID == "" || o.Ref != o.ID {
				t.Fatalf("outcome %+v (%v), want %v naming a record id", o, o.Kind, tc.want)
			}
			if tc.want == Refused {
				var re *RefusedError
				if !errors.As(o.Err, &re) || !errors.Is(o.Err, refusal) {
					t.Errorf("Refused carries %v, not the door's error", o.Err)
				}
			}
			if k.spool.count() != 0 {
				t.Error("a failed message was committed")
			}
			if k.metrics.messagesFailed.Load() != 1 || k.metrics.messagesAccepted.Load() != 0 {
				t.Errorf("failed %d, accepted %d", k.metrics.messagesFailed.Load(), k.metrics.messagesAccepted.Load())
			}
			if full := k.metrics.spoolFull.Load(); (full == 1) != (tc.want == SpoolFull) || full > 1 {
				t.Errorf("spool_full %d", full)
			}
			log := k.log.String()
			if !strings.Contains(log, tc.inLog) || !strings.Contains(log, o.Ref) {
				t.Errorf("log lacks %q or the ref %s:\n%s", tc.inLog, o.Ref, log)
			}
		})
	}
}

// Room reserved before the body (SIZE at MAIL) is what the message uses: Receive claims no
// more, and the door gives it back when the transaction ends.
func TestIntakeReserve(t *testing.T) {
	k := newIntake(t, nil)
	env := testEnvelope()
	env.DeclaredSize = 1000
	res, o := k.in.Reserve(env)
	if o.Kind != Accepted || res == nil || o.ID != "" {
		t.Fatalf("Reserve: %+v %v", o, res)
	}
	k.spool.full = true // later claims would fail; this message has its room
	if o := k.in.Receive(env, res, strings.NewReader(simpleMessage)); o.Kind != Accepted {
		t.Fatalf("Receive with a reservation: %+v", o)
	}
	res.Release()
	res.Release()
	if k.spool.reserved != 1 || k.spool.released != 1 {
		t.Errorf("reserved %d, released %d", k.spool.reserved, k.spool.released)
	}

	res, o = k.in.Reserve(env)
	if o.Kind != SpoolFull || res != nil || o.Ref != "conn-1" || o.ID != "" {
		t.Fatalf("Reserve on a full spool: %+v %v; want SpoolFull naming the connection", o, res)
	}
	res.Release() // safe on nil
	if k.metrics.spoolFull.Load() != 1 || k.metrics.messagesFailed.Load() != 0 {
		t.Errorf("spool_full %d, failed %d: a refusal at MAIL is no failed message", k.metrics.spoolFull.Load(), k.metrics.messagesFailed.Load())
	}
	if log := k.log.String(); !strings.Contains(log, "spool budget reached") || !strings.Contains(log, "conn=conn-1") || !strings.Contains(log, "declared_size=1000") {
		t.Errorf("log:\n%s", log)
	}
}

// releasingSpool is a memSpool that also stores blobs, and records what it is given back.
type releasingSpool struct {
	*memSpool
	released [][]string
}

func (r *releasingSpool) ReleaseBlobs(sums []string) { r.released = append(r.released, sums) }

// Refused for room after the body, a message gives back the blobs the parser committed for
// it, one per attachment naming a blob; an accepted one, or one whose commit failed (the
// spool settles those itself), does not.
func TestIntakeReleasesTheBlobsOfARefusedMessage(t *testing.T) {
	p := parseFunc(func(r io.Reader) (*api.Record, error) {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
		return &api.Record{Attachments: []api.Attachment{{Blob: sumA}, {}, {Blob: sumA}, {Blob: sumB}}}, nil
	})
	for _, tc := range []struct {
		name  string
		setup func(*memSpool)
		want  OutcomeKind
		rel   [][]string
	}{
		{name: "spool full", setup: func(m *memSpool) { m.full = true }, want: SpoolFull, rel: [][]string{{sumA, sumA, sumB}}},
		{name: "accepted", want: Accepted},
		{name: "commit failed", setup: func(m *memSpool) { m.fail = errors.New("disk full") }, want: LocalFault},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &releasingSpool{memSpool: &memSpool{}}
			if tc.setup != nil {
				tc.setup(sp.memSpool)
			}
			in := NewIntake(IntakeConfig{}, p, sp, nil)
			if o := in.Receive(testEnvelope(), nil, strings.NewReader(simpleMessage)); o.Kind != tc.want {
				t.Fatalf("outcome %v, want %v", o.Kind, tc.want)
			}
			if !reflect.DeepEqual(sp.released, tc.rel) {
				t.Errorf("released %q, want %q", sp.released, tc.rel)
			}
		})
	}
}

const (
	sumA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	sumB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// A sender that declares SIZE=1 and sends more is held to the budget for what it sent: the
// room claimed at MAIL covers the declared byte only.
func TestIntakeUnderstatedSizeStillMeetsTheBudget(t *testing.T) {
	k := newIntake(t, nil)
	env := testEnvelope()
	env.DeclaredSize = 1
	res, o := k.in.Reserve(env)
	if o.Kind != Accepted {
		t.Fatalf("Reserve: %+v", o)
	}
	defer res.Release()
	k.spool.full = true
	if o := k.in.Receive(env, res, strings.NewReader(simpleMessage)); o.Kind != SpoolFull {
		t.Errorf("Receive after SIZE=1 on a full spool: %v, want spool_full", o.Kind)
	}
	if n := len(k.spool.records); n != 0 {
		t.Errorf("%d records committed past the budget", n)
	}
}

// The Recorded hook sees each committed record once, and nothing the sender was refused or
// must retry: the enforcement index must not learn of a message the sensor does not hold.
func TestIntakeRecordedHookOnlyForAcceptedMessages(t *testing.T) {
	k := newIntake(t, nil)
	var seen []*api.Record
	k.in.cfg.Recorded = func(rec *api.Record) {
		if _, ok := k.spool.get(rec.ID); !ok {
			t.Errorf("hook called before record %s was committed", rec.ID)
		}
		seen = append(seen, rec)
	}
	var accepted []string
	for range 2 {
		o := k.in.Receive(testEnvelope(), nil, strings.NewReader(simpleMessage))
		if o.Kind != Accepted {
			t.Fatalf("outcome %+v", o)
		}
		accepted = append(accepted, o.ID)
	}
	refused := k.in.Receive(testEnvelope(), nil, io.MultiReader(strings.NewReader("Subject: x\r\n"),
		iotest.ErrReader(&RefusedError{Err: errors.New("too big")})))
	if refused.Kind != Refused {
		t.Fatalf("outcome %+v", refused)
	}
	k.spool.fail = errors.New("fsync: input/output error")
	if o := k.in.Receive(testEnvelope(), nil, strings.NewReader(simpleMessage)); o.Kind != LocalFault {
		t.Fatalf("outcome %+v", o)
	}
	k.spool.fail, k.spool.full = nil, true
	if o := k.in.Receive(testEnvelope(), nil, strings.NewReader(simpleMessage)); o.Kind != SpoolFull {
		t.Fatalf("outcome %+v", o)
	}
	if len(seen) != 2 || seen[0].ID != accepted[0] || seen[1].ID != accepted[1] {
		t.Fatalf("hook saw %d records, want the 2 accepted %v", len(seen), accepted)
	}
	if env := seen[0].Envelope; env == nil || !reflect.DeepEqual(env.RcptTo, []string{"journal@sensor.test"}) {
		t.Errorf("hook's record lacks the envelope: %+v", env)
	}
}

// logAccepted writes with LogAttrs what Logger.With(the envelope).Info wrote: the same line,
// in both of serve's formats, with and without a queue id (the time and the duration aside).
func TestLogAcceptedLineUnchanged(t *testing.T) {
	rec := &api.Record{ID: "01JBENCH0000000000000000ID", Source: api.Source{Kind: api.SourceDirect},
		Attachments: make([]api.Attachment, 2), URLs: make([]api.URL, 3)}
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if (a.Key == slog.TimeKey && len(groups) == 0) || a.Key == "duration_ms" {
			return slog.Attr{}
		}
		return a
	}
	for _, queueID := range []string{"", "4XyzQ"} {
		env := &Envelope{Transport: api.TransportMilter, Conn: "c1", ClientIP: "192.0.2.1", MailFrom: "a b@example.org",
			RcptTo: []string{"j@sensor.test"}, QueueID: queueID}
		for name, h := range map[string]func(io.Writer) slog.Handler{
			"text": func(w io.Writer) slog.Handler {
				return slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
			},
			"json": func(w io.Writer) slog.Handler {
				return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
			},
		} {
			var got, want bytes.Buffer
			in := NewIntake(IntakeConfig{Logger: slog.New(h(&got)).With("component", "intake")}, nil, nil, nil)
			in.logAccepted(env, rec, 1234, time.Now())
			attrs := []any{"id", rec.ID}
			if queueID != "" {
				attrs = append(attrs, "queue_id", queueID)
			}
			slog.New(h(&want)).With("component", "intake").
				With("transport", env.Transport, "conn", env.Conn, "client", env.ClientIP).
				Info("accepted", append(attrs, "mail_from", env.MailFrom, "rcpts", 1, "size", int64(1234), "source", rec.Source.Kind,
					"attachments", 2, "urls", 3, "anomalies", 0, "duration_ms", int64(0))...)
			if got.String() != want.String() {
				t.Errorf("%s, queue id %q:\n got %s\nwant %s", name, queueID, got.String(), want.String())
			}
		}
	}
}
