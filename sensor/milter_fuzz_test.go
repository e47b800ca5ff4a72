package sensor

import (
	"io"
	"log/slog"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"

	"github.com/journalsensor/sensor/parser"
)

// FuzzMilterSession plays any sequence of milter events, in any order and with any bytes,
// against one connection's state, as go-milter would call it: nothing panics, every end of
// message gets a final answer (accept, or tempfail as configured), and once the connection
// ends no message is left in flight nor any intake running.
func FuzzMilterSession(f *testing.F) {
	f.Add([]byte("\x00\x01\x02\x03\x04Subject\x00hi\x05\x06body\r\n\x07"))
	f.Add([]byte("\x02\x04X\x00\n\tfolded\x06--b\r\n\x08\x02\x03\x04A\x00b\x07"))
	f.Add([]byte("\x04\x04\x04\x06\x06\x07\x07\x08\x08"))
	f.Fuzz(func(t *testing.T, script []byte) {
		p, err := parser.New(parser.Options{CRLFInput: true})
		if err != nil {
			t.Fatal(err)
		}
		spool := &memSpool{}
		if len(script) > 0 && script[0]&1 == 1 {
			spool.fail = io.ErrShortWrite
		}
		m := &Metrics{}
		in := NewIntake(IntakeConfig{}, p, spool, m)
		srv := NewMilterServer(MilterConfig{OnFault: MilterFault(len(script) % 2), Timeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)}, in, m)
		c := &milterConn{srv: srv, cid: "fuzz", log: srv.log}
		mod := func() milter.Modifier {
			return fuzzModifier{macros: map[milter.MacroName]string{milter.MacroQueueId: "Q", milter.MacroClientAddr: "192.0.2.1"},
				protocol: milter.OptProtocol(len(script)%3) * milter.OptHeaderLeadingSpace}
		}
		next := func() string { // a NUL-terminated argument from the script
			for i, b := range script {
				if b == 0 {
					s := string(script[:i])
					script = script[i+1:]
					return s
				}
			}
			s := string(script)
			script = nil
			return s
		}
		for len(script) > 0 {
			op := script[0] % 9
			script = script[1:]
			var r *milter.Response
			switch op {
			case 0:
				r, _ = c.Connect(next(), "tcp4", 25, next(), mod())
			case 1:
				r, _ = c.Helo(next(), mod())
			case 2:
				r, _ = c.MailFrom(next(), "", mod())
			case 3:
				r, _ = c.RcptTo(next(), "", mod())
			case 4:
				r, _ = c.Header(next(), next(), mod())
			case 5:
				r, _ = c.Headers(mod())
			case 6:
				r, _ = c.BodyChunk([]byte(next()), mod())
			case 7:
				r, _ = c.EndOfMessage(mod())
				if r != milter.RespAccept && r != milter.RespTempFail {
					t.Fatalf("end of message answered %v", r)
				}
			case 8:
				_ = c.Abort(mod())
				r = milter.RespContinue
			}
			if r == nil {
				t.Fatalf("op %d: no answer", op)
			}
		}
		c.connEnded()
		deadline := time.Now().Add(10 * time.Second)
		for srv.busy() > 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if n := srv.busy(); n != 0 {
			t.Fatalf("%d messages or intakes still running after the connection ended", n)
		}
	})
}

// fuzzModifier is what go-milter hands the door at each event: macros, and the protocol
// options negotiated. The door calls nothing else on it without the header action.
type fuzzModifier struct {
	milter.Modifier
	macros   map[milter.MacroName]string
	protocol milter.OptProtocol
}

func (m fuzzModifier) Get(name milter.MacroName) string { return m.macros[name] }
func (m fuzzModifier) Protocol() milter.OptProtocol     { return m.protocol }
func (m fuzzModifier) Actions() milter.OptAction        { return 0 }
