package sensor

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

type milterKit struct {
	srv     *MilterServer
	spool   *memSpool
	metrics *Metrics
	log     *testkit.LogBuffer
	network string
	addr    string
}

// startMilter serves a milter door on l (nil: a loopback TCP port) with parser p (nil: the
// real one).
func startMilter(t testing.TB, cfg MilterConfig, p RecordParser, l net.Listener, intake ...func(*IntakeConfig)) *milterKit {
	t.Helper()
	if p == nil {
		var err error
		if p, err = parser.New(parser.Options{CRLFInput: true}); err != nil {
			t.Fatal(err)
		}
	}
	k := &milterKit{spool: &memSpool{}, metrics: &Metrics{}, log: &testkit.LogBuffer{}}
	cfg.Logger = slog.New(slog.NewTextHandler(k.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	icfg := IntakeConfig{SensorID: "sensor-1", Version: "v-test", Logger: cfg.Logger}
	for _, f := range intake {
		f(&icfg)
	}
	in := NewIntake(icfg, p, k.spool, k.metrics)
	k.srv = NewMilterServer(cfg, in, k.metrics)
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	k.network, k.addr = l.Addr().Network(), l.Addr().String()
	if k.network != "unix" {
		k.network = "tcp"
	}
	done := make(chan error, 1)
	go func() { done <- k.srv.Serve(l) }()
	t.Cleanup(func() {
		k.srv.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return k
}

// mta is one milter connection played as an MTA plays it.
type mta struct {
	*milter.ClientSession
	macros *milter.MacroBag // what the MTA knows; the door gets those it asks for
	conn   net.Conn
}

// session opens a milter session as Postfix would: protocol 6, header additions and macro
// requests allowed; opts (milter.WithMaximumVersion(2), say) change that.
func (k *milterKit) session(t testing.TB, opts ...milter.Option) *mta {
	t.Helper()
	d := &dialer{}
	opts = append([]milter.Option{milter.WithDialer(d), milter.WithReadTimeout(10 * time.Second), milter.WithWriteTimeout(10 * time.Second),
		milter.WithActions(milter.OptAddHeader | milter.OptChangeHeader | milter.OptAddRcpt | milter.OptRemoveRcpt | milter.OptChangeBody | milter.OptSetMacros),
	}, opts...)
	macros := milter.NewMacroBag()
	s, err := milter.NewClient(k.network, k.addr, opts...).Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &mta{ClientSession: s, macros: macros, conn: d.conn}
}

// mtaV2 are the options of an MTA that speaks milter protocol 2 only: every event waits for
// its answer, and header values lose their leading space.
var mtaV2 = []milter.Option{milter.WithMaximumVersion(2), milter.WithProtocols(milter.OptNoConnect | milter.OptNoHelo |
	milter.OptNoMailFrom | milter.OptNoRcptTo | milter.OptNoBody | milter.OptNoHeaders | milter.OptNoEOH)}

// dialer keeps the connection it made, for a test to cut.
type dialer struct{ conn net.Conn }

func (d *dialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	d.conn = c
	return c, err
}

func (k *milterKit) records() []api.Record {
	k.spool.mu.Lock()
	defer k.spool.mu.Unlock()
	var out []api.Record
	for _, r := range k.spool.records {
		out = append(out, r)
	}
	return out
}

// postfixFields splits a message's header as Postfix hands it to a milter: each field's name,
// and its value with folds as bare LFs and, unless leadingSpace (the milter asked for it),
// without the one space after the colon. The rest is the body, CRLF line ends.
func postfixFields(t testing.TB, msg string, leadingSpace bool) (fields [][2]string, body string) {
	t.Helper()
	head, body, ok := strings.Cut(msg, "\r\n\r\n")
	if !ok {
		t.Fatal("message has no header end")
	}
	for _, line := range strings.Split(head, "\r\n") {
		if line[0] == ' ' || line[0] == '\t' {
			fields[len(fields)-1][1] += "\n" + line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		if !leadingSpace {
			value = strings.TrimPrefix(value, " ")
		}
		fields = append(fields, [2]string{name, value})
	}
	return fields, body
}

// check returns a function that fails t unless a client step was answered "continue" (or
// needed no answer).
func check(t testing.TB) func(*milter.Action, error) {
	t.Helper()
	return func(act *milter.Action, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if act.Type != milter.ActionContinue {
			t.Fatalf("action %v, want continue", act.Type)
		}
	}
}

// sendEnvelope plays connect, HELO (with TLS macros), MAIL (with the auth macro) and two
// RCPTs.
func sendEnvelope(t testing.TB, s *mta) {
	t.Helper()
	s.macros.Set(milter.MacroClientName, "mail.client.test")
	s.macros.Set(milter.MacroMTAFQDN, "mx.example.net")
	check(t)(s.Conn("mail.client.test", milter.FamilyInet, 40123, "192.0.2.10"))
	s.macros.Set(milter.MacroTlsVersion, "TLSv1.3")
	s.macros.Set(milter.MacroCipher, "TLS_AES_256_GCM_SHA384")
	check(t)(s.Helo("client.test"))
	s.macros.Set(milter.MacroAuthAuthen, "alice")
	s.macros.Set(milter.MacroQueueId, "")
	check(t)(s.Mail("sender@example.org", ""))
	check(t)(s.Rcpt("one@example.com", ""))
	check(t)(s.Rcpt("two@example.com", ""))
}

// sendContent plays the header fields, the end of the header and the body in chunks of
// chunk bytes, then the end of the message with {i} as its macro.
func sendContent(t testing.TB, s *mta, msg string, chunk int, queueID string) ([]milter.ModifyAction, *milter.Action) {
	t.Helper()
	fields, body := postfixFields(t, msg, s.ProtocolOption(milter.OptHeaderLeadingSpace))
	check(t)(s.DataStart())
	for _, f := range fields {
		check(t)(s.HeaderField(f[0], f[1], nil))
	}
	check(t)(s.HeaderEnd())
	for b := []byte(body); len(b) > 0; {
		n := min(chunk, len(b))
		check(t)(s.BodyChunk(b[:n]))
		b = b[n:]
	}
	if queueID != "" {
		s.macros.Set(milter.MacroQueueId, queueID)
	}
	mods, act, err := s.End()
	if err != nil {
		t.Fatal(err)
	}
	return mods, act
}

func TestMilterRecordsEnvelopeMacrosAndContent(t *testing.T) {
	k := startMilter(t, MilterConfig{}, nil, nil)
	s := k.session(t)
	for _, a := range []milter.OptAction{milter.OptAddHeader, milter.OptChangeHeader, milter.OptAddRcpt, milter.OptRemoveRcpt, milter.OptChangeBody} {
		if s.ActionOption(a) {
			t.Errorf("action %v negotiated: without --milter-add-header the milter asks for no modification", a)
		}
	}
	// Protocol 6: no answer to any event but MAIL and the end of the message, and header
	// values with their leading space.
	for _, p := range []milter.OptProtocol{milter.OptNoConnReply, milter.OptNoHeloReply, milter.OptNoRcptReply, milter.OptNoHeaderReply,
		milter.OptNoEOHReply, milter.OptNoBodyReply, milter.OptNoUnknown, milter.OptNoData, milter.OptHeaderLeadingSpace} {
		if !s.ProtocolOption(p) {
			t.Errorf("protocol option %v not negotiated", p)
		}
	}
	if s.ProtocolOption(milter.OptNoMailReply) || s.ProtocolOption(milter.OptNoHeaders) || s.ProtocolOption(milter.OptNoBody) {
		t.Errorf("negotiated away what the door needs")
	}
	sendEnvelope(t, s)
	mods, act := sendContent(t, s, simpleMessage, 4, "4dQ7Lx0tXrz9")
	if act.Type != milter.ActionAccept || len(mods) != 0 {
		t.Fatalf("end of message: action %v, modifications %v; want accept and none", act.Type, mods)
	}
	recs := k.records()
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	env := recs[0].Envelope
	want := &api.Envelope{Transport: api.TransportMilter, ClientIP: "192.0.2.10", ClientPort: 40123, HELO: "client.test",
		TLS: &api.TLS{Version: "TLS 1.3", Cipher: "TLS_AES_256_GCM_SHA384"}, QueueID: "4dQ7Lx0tXrz9",
		MailFrom: "sender@example.org", RcptTo: []string{"one@example.com", "two@example.com"}, Size: int64(len(simpleMessage))}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("envelope\n got %+v\nwant %+v", env, want)
	}
	if recs[0].Message.Subject != "hello" {
		t.Errorf("subject %q", recs[0].Message.Subject)
	}
	var metrics bytes.Buffer
	(&Admin{Metrics: k.metrics}).writeMetrics(&metrics)
	for _, want := range []string{"sensor_milter_recorded_total 1\n", "sensor_milter_connections 1\n", `sensor_milter_unrecorded_total{reason="timeout"} 0`} {
		if !strings.Contains(metrics.String(), want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics.String())
		}
	}

	// A second message on the same connection keeps the connection's facts and none of the
	// first message's.
	check(t)(s.Mail("other@example.org", ""))
	check(t)(s.Rcpt("three@example.com", ""))
	if _, act = sendContent(t, s, simpleMessage, 1000, "5aa"); act.Type != milter.ActionAccept {
		t.Fatalf("second message: action %v", act.Type)
	}
	recs = k.records()
	if len(recs) != 2 {
		t.Fatalf("%d records, want 2", len(recs))
	}
	for _, r := range recs {
		if r.Envelope.QueueID == "5aa" {
			e := r.Envelope
			if e.ClientIP != "192.0.2.10" || e.HELO != "client.test" || e.MailFrom != "other@example.org" ||
				!reflect.DeepEqual(e.RcptTo, []string{"three@example.com"}) {
				t.Errorf("second envelope %+v", e)
			}
		}
	}
}

// messageWithAttachment is a message with a PDF attachment and a URL in its text.
const messageWithAttachment = "From: Alice <alice@example.org>\r\n" +
	"To: bob@example.com\r\n" +
	"Subject: =?utf-8?q?Rechnung_f=C3=BCr_Juli?=\r\n" +
	"Message-ID: <m1@example.org>\r\n" +
	"Date: Tue, 17 Jul 2018 12:13:28 +0000\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed;\r\n" +
	"\tboundary=\"b1\"\r\n" +
	"X-Empty:\r\n" +
	"X-Tabbed:\tvalue after a tab\r\n" +
	"\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain\r\n" +
	"\r\n" +
	"See https://example.net/invoice?id=7 now.\r\n" +
	".a line that starts with a dot\r\n" +
	"--b1\r\n" +
	"Content-Type: application/pdf; name=\"invoice.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"invoice.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"JVBERi0xLjQKJcOkw7zDtsOfCjEgMCBvYmoKPDwvVHlwZS9DYXRhbG9nPj4KZW5kb2JqCnRyYWlsZXIKPDwvUm9vdCAxIDAgUj4+CiUlRU9GCg==\r\n" +
	"--b1--\r\n"

// The same message through either door makes the same record, apart from what the door
// itself says (envelope, id, time of receipt).
func TestMilterRecordMatchesSMTPDoor(t *testing.T) {
	corpus, err := os.ReadFile(filepath.Join(testkit.CorpusDir(t), "formats", "exo-journal-report-single-rcpt.eml"))
	if err != nil {
		t.Fatal(err)
	}
	crlf := strings.ReplaceAll(strings.ReplaceAll(string(corpus), "\r\n", "\n"), "\n", "\r\n")
	for name, msg := range map[string]string{"exo-journal-report-single-rcpt": crlf, "attachment": messageWithAttachment} {
		t.Run(name, func(t *testing.T) {
			ts := startServer(t, SMTPConfig{})
			c := dial(t, ts.addr)
			c.envelope()
			c.cmd("DATA", "354")
			stuffed := strings.ReplaceAll("\r\n"+msg, "\r\n.", "\r\n..")[2:]
			viaSMTP, ok := ts.spool.get(queuedID(t, c.cmd(stuffed+".", "250")))
			if !ok {
				t.Fatal("no SMTP record")
			}
			k := startMilter(t, MilterConfig{}, nil, nil)
			s := k.session(t)
			sendEnvelope(t, s)
			if _, act := sendContent(t, s, msg, 700, "Q1"); act.Type != milter.ActionAccept {
				t.Fatalf("action %v", act.Type)
			}
			recs := k.records()
			if len(recs) != 1 {
				t.Fatalf("%d milter records", len(recs))
			}
			viaMilter := recs[0]
			if viaMilter.Source.Kind != viaSMTP.Source.Kind || viaMilter.Message.Subject == "" || (name == "attachment") != (len(viaMilter.Attachments) > 0) {
				t.Errorf("milter record: source %q, attachments %d", viaMilter.Source.Kind, len(viaMilter.Attachments))
			}
			for _, r := range []*api.Record{&viaSMTP, &viaMilter} {
				r.ID, r.ReceivedAt, r.Envelope = "", "", nil
			}
			a, _ := api.MarshalRecord(&viaSMTP)
			b, _ := api.MarshalRecord(&viaMilter)
			if !bytes.Equal(a, b) {
				t.Errorf("records differ:\nsmtp   %s\nmilter %s", a, b)
			}
		})
	}
}

func TestMilterAddHeaderNamesTheRecord(t *testing.T) {
	k := startMilter(t, MilterConfig{AddHeader: true}, nil, nil)
	s := k.session(t)
	if !s.ActionOption(milter.OptAddHeader) || s.ActionOption(milter.OptChangeHeader) || s.ActionOption(milter.OptChangeBody) {
		t.Errorf("actions negotiated: want add-header and no other modification")
	}
	sendEnvelope(t, s)
	mods, act := sendContent(t, s, simpleMessage, 64<<10, "Q2")
	recs := k.records()
	if act.Type != milter.ActionAccept || len(recs) != 1 {
		t.Fatalf("action %v, %d records", act.Type, len(recs))
	}
	if len(mods) != 1 || mods[0].Type != milter.ActionAddHeader || mods[0].HeaderName != SensorIDHeader || mods[0].HeaderValue != recs[0].ID {
		t.Errorf("modifications %+v, want one %s: %s", mods, SensorIDHeader, recs[0].ID)
	}
}

func TestMilterOnFault(t *testing.T) {
	for _, tc := range []struct {
		name    string
		spool   func(*memSpool)
		onFault MilterFault
		want    milter.ActionType
		reason  string
	}{
		{"commit fails, accept", func(s *memSpool) { s.fail = errors.New("fsync: input/output error") }, FaultAccept, milter.ActionAccept, "local_fault"},
		{"commit fails, tempfail", func(s *memSpool) { s.fail = errors.New("fsync: input/output error") }, FaultTempFail, milter.ActionTempFail, "local_fault"},
		{"spool full, accept", func(s *memSpool) { s.full = true }, FaultAccept, milter.ActionAccept, "spool_full"},
		{"spool full, tempfail", func(s *memSpool) { s.full = true }, FaultTempFail, milter.ActionTempFail, "spool_full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := startMilter(t, MilterConfig{OnFault: tc.onFault, AddHeader: true}, nil, nil)
			tc.spool(k.spool)
			s := k.session(t)
			sendEnvelope(t, s)
			mods, act := sendContent(t, s, simpleMessage, 100, "QF")
			if act.Type != tc.want || len(mods) != 0 {
				t.Fatalf("action %v, modifications %v; want %v and none", act.Type, mods, tc.want)
			}
			if n := len(k.records()); n != 0 {
				t.Errorf("%d records committed", n)
			}
			counts, total, last := k.metrics.milter.snapshot()
			if counts[tc.reason] != 1 || total != 1 || last.IsZero() {
				t.Errorf("unrecorded %v total %d last %v", counts, total, last)
			}
			var metrics bytes.Buffer
			(&Admin{Metrics: k.metrics}).writeMetrics(&metrics)
			if !strings.Contains(metrics.String(), `sensor_milter_unrecorded_total{reason="`+tc.reason+`"} 1`) {
				t.Errorf("metrics do not count it:\n%s", metrics.String())
			}
			st := (&Admin{Metrics: k.metrics}).status()
			if st.MilterUnrecorded != 1 || st.MilterLastUnrecordedAt == nil {
				t.Errorf("status %+v", st)
			}
			if !strings.Contains(k.log.String(), "queue_id=QF") {
				t.Errorf("log does not name the queue id:\n%s", k.log.String())
			}
		})
	}
}

// A commit that outlasts --milter-timeout does not hold the MTA: the answer comes at the
// timeout, as --milter-on-fault says, and the record still commits in the background.
func TestMilterTimeoutAnswersAndCommitsLate(t *testing.T) {
	release := make(chan struct{})
	real, err := parser.New(parser.Options{CRLFInput: true})
	if err != nil {
		t.Fatal(err)
	}
	slow := parseFunc(func(r io.Reader) (*api.Record, error) {
		rec, err := real.Parse(r)
		<-release
		return rec, err
	})
	// The timeout bounds every step: long enough that a loaded machine (-race, -count) does
	// not run out of it before the end of the message.
	k := startMilter(t, MilterConfig{OnFault: FaultTempFail, Timeout: time.Second}, slow, nil)
	s := k.session(t)
	sendEnvelope(t, s)
	start := time.Now()
	_, act := sendContent(t, s, simpleMessage, 100, "QT")
	if act.Type != milter.ActionTempFail {
		t.Errorf("action %v, want tempfail", act.Type)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answer took %v", d)
	}
	if counts, _, _ := k.metrics.milter.snapshot(); counts["timeout"] != 1 {
		t.Errorf("unrecorded %v", counts)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for k.metrics.milter.late.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if recs := k.records(); len(recs) != 1 || recs[0].Envelope.QueueID != "QT" {
		t.Errorf("late records %+v", recs)
	}
	if k.metrics.milter.late.Load() != 1 || !strings.Contains(k.log.String(), "record committed after the milter answered") {
		t.Errorf("late commit not counted or logged: late %d\n%s", k.metrics.milter.late.Load(), k.log.String())
	}
}

// An abort mid-message commits nothing, and the next message on the connection is recorded
// whole.
func TestMilterAbortMidMessageCommitsNothing(t *testing.T) {
	k := startMilter(t, MilterConfig{}, nil, nil)
	s := k.session(t)
	sendEnvelope(t, s)
	fields, _ := postfixFields(t, messageWithAttachment, true)
	check(t)(s.DataStart())
	for _, f := range fields {
		check(t)(s.HeaderField(f[0], f[1], nil))
	}
	check(t)(s.HeaderEnd())
	check(t)(s.BodyChunk([]byte("--b1\r\nContent-Type: text/plain\r\n\r\nhalf")))
	if err := s.Abort(nil); err != nil {
		t.Fatal(err)
	}
	check(t)(s.Mail("sender@example.org", ""))
	check(t)(s.Rcpt("one@example.com", ""))
	if _, act := sendContent(t, s, simpleMessage, 100, "QA"); act.Type != milter.ActionAccept {
		t.Fatalf("action %v", act.Type)
	}
	recs := k.records()
	if len(recs) != 1 || recs[0].Message.Subject != "hello" || !reflect.DeepEqual(recs[0].Envelope.RcptTo, []string{"one@example.com"}) {
		t.Fatalf("records %+v", recs)
	}
	if _, total, _ := k.metrics.milter.snapshot(); total != 0 {
		t.Errorf("an abort counted as an unrecorded copy: the MTA did not take the message either")
	}
	deadline := time.Now().Add(5 * time.Second)
	// The count comes just before the log line.
	for !strings.Contains(k.log.String(), "message not received whole") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if k.metrics.messagesFailed.Load() != 1 || !strings.Contains(k.log.String(), "message not received whole") {
		t.Errorf("failed %d, want the aborted message", k.metrics.messagesFailed.Load())
	}
}

// A connection lost mid-message commits nothing and counts the copy lost: the MTA applies
// its default action to the message.
func TestMilterConnectionLostCommitsNothing(t *testing.T) {
	k := startMilter(t, MilterConfig{}, nil, nil)
	s := k.session(t)
	sendEnvelope(t, s)
	check(t)(s.DataStart())
	check(t)(s.HeaderField("Subject", "cut", nil))
	check(t)(s.HeaderEnd())
	check(t)(s.BodyChunk([]byte("part of the body\r\n")))
	// Close without Abort, as a crashed MTA process would.
	s.conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if counts, _, _ := k.metrics.milter.snapshot(); counts["connection_lost"] == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if counts, _, _ := k.metrics.milter.snapshot(); counts["connection_lost"] != 1 {
		t.Errorf("unrecorded %v", counts)
	}
	for k.srv.busy() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := len(k.records()); n != 0 || k.srv.busy() != 0 {
		t.Errorf("%d records, %d still busy", n, k.srv.busy())
	}
}

// The milter sits in the customer's own mail path: the header proofs of origin the SMTP door
// asks for are not asked of its copies, and the source header is still kept out of the
// record.
func TestMilterAsksNoProofOfOrigin(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdef"
	origin, err := NewOrigin(OriginConfig{Tenants: []string{"contoso.onmicrosoft.com"}, SourceHeader: "X-Source", SourceSecret: secret})
	if err != nil {
		t.Fatal(err)
	}
	k := startMilter(t, MilterConfig{}, nil, nil, func(c *IntakeConfig) { c.Origin = origin })
	s := k.session(t)
	sendEnvelope(t, s)
	msg := "X-Source: " + secret + "\r\n" + simpleMessage
	if _, act := sendContent(t, s, msg, 100, "QO"); act.Type != milter.ActionAccept {
		t.Fatalf("action %v", act.Type)
	}
	recs := k.records()
	if len(recs) != 1 {
		t.Fatalf("%d records: a copy without a pinned tenant must still be recorded", len(recs))
	}
	if recs[0].Source.VerifiedBy != nil || recs[0].Source.Tenant != "" {
		t.Errorf("source %+v: nothing was proved", recs[0].Source)
	}
	line, _ := api.MarshalRecord(&recs[0])
	if bytes.Contains(line, []byte(secret)) {
		t.Errorf("the source header's secret is in the record: %s", line)
	}
}

func TestParseMilterAddr(t *testing.T) {
	for _, tc := range []struct{ spec, network, addr, err string }{
		{"tcp:127.0.0.1:7357", "tcp", "127.0.0.1:7357", ""},
		{"inet:127.0.0.1:7357", "tcp", "127.0.0.1:7357", ""},
		{"127.0.0.1:7357", "tcp", "127.0.0.1:7357", ""},
		{"[::1]:7357", "tcp", "[::1]:7357", ""},
		{":7357", "tcp", ":7357", ""},
		{"unix:/run/sensor/milter.sock", "unix", "/run/sensor/milter.sock", ""},
		{"unix:", "", "", "needs a socket path"},
		{"unix:milter.sock", "", "", "relative"},
		{"7357", "", "", "not host:port"},
		{"tcp:localhost", "", "", "not host:port"},
		{"127.0.0.1:", "", "", "not host:port"},
	} {
		network, addr, err := ParseMilterAddr(tc.spec)
		if network != tc.network || addr != tc.addr || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %q %q %v; want %q %q error containing %q", tc.spec, network, addr, err, tc.network, tc.addr, tc.err)
		}
	}
}

// A unix socket gets the mode asked for, serves Postfix, replaces a stale socket file but
// never a live one, and is gone once the door closes.
func TestMilterUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "milter") // short: a socket path has a 108-byte limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, "m.sock")

	// A stale socket, as a sensor that died leaves it.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the stale socket file is not there to test with: %v", err)
	}

	l, err := ListenMilter("unix:"+path, 0o640)
	if err != nil {
		t.Fatalf("a stale socket file stands in the way: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o640 {
		t.Errorf("socket mode %v, want a socket with 0640", fi.Mode())
	}
	if _, err := ListenMilter("unix:"+path, 0o660); err == nil || !strings.Contains(err.Error(), "listens on it") {
		t.Errorf("a second sensor on a live socket: %v", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("the refused second listener removed the live socket: %v", err)
	}

	k := startMilter(t, MilterConfig{}, nil, l)
	s := k.session(t)
	sendEnvelope(t, s)
	if _, act := sendContent(t, s, simpleMessage, 100, "QU"); act.Type != milter.ActionAccept || len(k.records()) != 1 {
		t.Fatalf("over the socket: action %v, %d records", act.Type, len(k.records()))
	}
	k.srv.Close()
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after close: %v", err)
	}

	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenMilter("unix:"+plain, 0o660); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("a regular file in the way: %v", err)
	}
}

// Shutdown lets a message under way finish and be recorded, answers a new one as a fault,
// and returns once the work is done.
func TestMilterShutdownDrains(t *testing.T) {
	k := startMilter(t, MilterConfig{}, nil, nil)
	busy := k.session(t)
	sendEnvelope(t, busy)
	check(t)(busy.DataStart())
	check(t)(busy.HeaderField("Subject", "under way", nil))
	idle := k.session(t)
	check(t)(idle.Conn("mail.client.test", milter.FamilyInet, 40124, "192.0.2.11"))
	check(t)(idle.Helo("idle.client.test"))

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- k.srv.Shutdown(ctx)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for !k.srv.draining.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	act, err := idle.Mail("late@example.org", "")
	if err != nil || act.Type != milter.ActionAccept {
		t.Errorf("MAIL while draining: %v %v, want accept (the mail flows, unrecorded)", act, err)
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a message under way", err)
	case <-time.After(50 * time.Millisecond):
	}
	check(t)(busy.HeaderEnd())
	check(t)(busy.BodyChunk([]byte("body\r\n")))
	if _, act, err := busy.End(); err != nil || act.Type != milter.ActionAccept {
		t.Fatalf("end of the message under way: %v %v", act, err)
	}
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if recs := k.records(); len(recs) != 1 || recs[0].Message.Subject != "under way" {
		t.Errorf("records %+v", recs)
	}
	if counts, _, _ := k.metrics.milter.snapshot(); counts["shutting_down"] != 1 {
		t.Errorf("unrecorded %v", counts)
	}
}

// An intake that stops reading mid-message (a disk hanging under an attachment blob) holds
// the MTA no longer than the timeout at any step: the rest of the message is taken without
// waiting, its end is answered as a fault at once, and nothing is committed.
func TestMilterStalledIntakeDoesNotHoldTheMTA(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []milter.Option
	}{
		{"protocol 6", nil},
		{"protocol 2", mtaV2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			defer close(release)
			stalled := parseFunc(func(r io.Reader) (*api.Record, error) {
				if _, err := io.ReadFull(r, make([]byte, len("Subject: stall\r\n"))); err != nil {
					return nil, err
				}
				<-release
				_, err := io.Copy(io.Discard, r)
				return nil, err
			})
			k := startMilter(t, MilterConfig{OnFault: FaultTempFail, Timeout: time.Second}, stalled, nil)
			s := k.session(t, tc.opts...)
			sendEnvelope(t, s)
			check(t)(s.DataStart())
			check(t)(s.HeaderField("Subject", " stall", nil)) // read whole; then the parser hangs
			start := time.Now()
			check(t)(s.HeaderField("From", " a@example.org", nil))
			check(t)(s.HeaderEnd())
			check(t)(s.BodyChunk([]byte("body\r\n")))
			_, act, err := s.End()
			if err != nil || act.Type != milter.ActionTempFail {
				t.Fatalf("end of a message the intake stopped reading: %v %v, want tempfail", act, err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("the message held the MTA %v", d)
			}
			if counts, _, _ := k.metrics.milter.snapshot(); counts["timeout"] != 1 {
				t.Errorf("unrecorded %v", counts)
			}
			// The connection serves the next message.
			check(t)(s.Mail("sender@example.org", ""))
			if n := len(k.records()); n != 0 {
				t.Errorf("%d records", n)
			}
		})
	}
}

// A transaction Postfix ends before its message (every recipient refused, RSET) starts no
// intake and leaves nothing in flight.
func TestMilterAbortBeforeTheMessageStartsNothing(t *testing.T) {
	k := startMilter(t, MilterConfig{}, nil, nil)
	s := k.session(t)
	sendEnvelope(t, s)
	if err := s.Abort(nil); err != nil {
		t.Fatal(err)
	}
	// The abort has no answer; a step that has one shows it was served.
	check(t)(s.Mail("again@example.org", ""))
	if n := k.srv.busy(); n != 1 {
		t.Errorf("%d in flight, want only the new message", n)
	}
	if n := k.metrics.messagesStarted.Load(); n != 0 {
		t.Errorf("%d intakes started", n)
	}
	if _, total, _ := k.metrics.milter.snapshot(); total != 0 {
		t.Errorf("%d counted unrecorded", total)
	}
}

// With protocol 6 the MTA keeps the space after each header colon, so the door hands the
// intake the message byte for byte and message.sha256 is the stored message's. With protocol
// 2 it cannot tell "Name:value" from "Name: value": that field gains a space.
func TestMilterHeaderBytesByProtocol(t *testing.T) {
	msg := "Subject:tight\r\nX-Two:  two spaces\r\nX-Tab:\tafter a tab\r\nX-Empty:\r\nX-Folded: one\r\n two\r\n\r\nbody\r\n"
	sum := sha256.Sum256([]byte(msg))
	for _, tc := range []struct {
		name      string
		opts      []milter.Option
		wantSize  int
		wantExact bool
	}{
		{"protocol 6", nil, len(msg), true},
		{"protocol 2", mtaV2, len(msg) + 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := startMilter(t, MilterConfig{}, nil, nil)
			s := k.session(t, tc.opts...)
			sendEnvelope(t, s)
			if _, act := sendContent(t, s, msg, 100, "QH"); act.Type != milter.ActionAccept {
				t.Fatalf("action %v", act.Type)
			}
			recs := k.records()
			if len(recs) != 1 {
				t.Fatalf("%d records", len(recs))
			}
			m := recs[0].Message
			if m.Size != int64(tc.wantSize) || (m.SHA256 == hex.EncodeToString(sum[:])) != tc.wantExact {
				t.Errorf("size %d sha256 %s; want size %d, the message's own sha256 %v", m.Size, m.SHA256, tc.wantSize, tc.wantExact)
			}
			if m.Subject != "tight" {
				t.Errorf("subject %q", m.Subject)
			}
		})
	}
}
