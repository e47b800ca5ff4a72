package sensor

import (
	"fmt"
	"strings"
	"testing"

	milter "github.com/d--j/go-milter"

	"github.com/journalsensor/sensor/parser"
)

// benchMilterMessage is a 30 KB text message with a dozen header fields, the size the Postfix
// benchmark (scripts/bench) sends.
func benchMilterMessage() string {
	var b strings.Builder
	for i := range 10 {
		fmt.Fprintf(&b, "Received: from relay%d.example.net (relay%d.example.net [192.0.2.%d])\r\n\tby mx.example.com with ESMTPS id q%d\r\n", i, i, i+1, i)
	}
	b.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: quarterly figures\r\n" +
		"Message-ID: <bench-1@example.org>\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n")
	for b.Len() < 30000 {
		b.WriteString("See https://figures.example.com/q4 for the quarter; the numbers are in the sheet.\r\n")
	}
	return b.String()
}

// BenchmarkMilterDoor is what the milter door adds in process, without an MTA: "intake" is
// the parse and commit of a message handed to the intake whole (to an in-memory spool), and
// "milter" the same message played as Postfix plays it over a new loopback connection:
// negotiation, connect, HELO, MAIL, two RCPTs, one event per header field, the body in 64 KiB
// chunks, end of message. -parallel ways run 2×GOMAXPROCS sessions at once.
func BenchmarkMilterDoor(b *testing.B) {
	msg := benchMilterMessage()
	p, err := parser.New(parser.Options{CRLFInput: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("intake", func(b *testing.B) {
		in := NewIntake(IntakeConfig{}, p, &memSpool{}, nil)
		b.SetBytes(int64(len(msg)))
		for range b.N {
			if o := in.Receive(testEnvelope(), nil, strings.NewReader(msg)); o.Kind != Accepted {
				b.Fatal(o.Kind, o.Err)
			}
		}
	})
	one := func(b *testing.B, k *milterKit) {
		s := k.session(b)
		sendEnvelope(b, s)
		if _, act := sendContent(b, s, msg, 64<<10, "QID1"); act.Type != milter.ActionAccept {
			b.Fatalf("end of message answered %v, want accept", act.Type)
		}
		s.Close()
	}
	b.Run("milter", func(b *testing.B) {
		k := startMilter(b, MilterConfig{}, p, nil)
		b.SetBytes(int64(len(msg)))
		for range b.N {
			one(b, k)
		}
	})
	b.Run("milter-parallel", func(b *testing.B) {
		k := startMilter(b, MilterConfig{}, p, nil)
		b.SetBytes(int64(len(msg)))
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				one(b, k)
			}
		})
	})
}
