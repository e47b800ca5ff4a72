package sensor

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/journalsensor/sensor/parser"
	"github.com/journalsensor/sensor/spool"
)

// BenchmarkIngestCPU drives 10 KiB messages (multipart: text, HTML with links, a base64
// attachment) through the real SMTP door over loopback, the real parser in metadata mode and
// a real spool in a temporary directory, one pipelined session, logging at info as `sensor
// serve` does by default. Wall time per message is mostly the spool's fsync; cpu-ns/op
// (the process's user and system time, from getrusage) is what ingest costs the machine.
//
// The discard sub-benchmark commits to a spool that keeps nothing: what ingest costs outside
// the spool, without the fsync's noise.
func BenchmarkIngestCPU(b *testing.B) {
	b.Run("spool", func(b *testing.B) {
		sp, err := spool.Open(b.TempDir(), nil)
		if err != nil {
			b.Fatal(err)
		}
		benchmarkIngest(b, sp)
	})
	b.Run("discard", func(b *testing.B) { benchmarkIngest(b, discardSpool{}) })
}

// discardSpool takes every record and keeps none.
type discardSpool struct{}

func (discardSpool) Commit(string, []byte) error             { return nil }
func (discardSpool) Reserve(int64) (release func(), ok bool) { return func() {}, true }

func benchmarkIngest(b *testing.B, sp Committer) {
	p, err := parser.New(parser.Options{Attachments: parser.AttachmentsMetadata, CRLFInput: true})
	if err != nil {
		b.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := &Metrics{}
	in := NewIntake(IntakeConfig{SensorID: "sensor-1", Version: "v-bench", Logger: logger.With("component", "intake")}, p, sp, m)
	srv := NewSMTPServer(SMTPConfig{Domain: "sensor.test", MaxMessageBytes: 10 << 20, Logger: logger.With("component", "smtp")}, in, m)
	conn, expect := benchSession(b, srv, "bench.example.org")
	msg := []byte(ingestBenchMessage() + ".\r\n")
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	for b.Loop() {
		io.WriteString(conn, "MAIL FROM:<sender@example.org>\r\nRCPT TO:<journal@sensor.test>\r\nDATA\r\n")
		expect("250")
		expect("250")
		expect("354")
		conn.Write(msg)
		expect("250 2.0.0")
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ingestBenchMessage is a journal copy of about 10 KiB, ending in CRLF.
func ingestBenchMessage() string {
	var s strings.Builder
	s.WriteString("Received: from mx.example.org (mx.example.org [192.0.2.10]) by sensor.test with ESMTPS id 4Xyz; Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
		"From: Alice Example <alice@example.org>\r\nTo: Bob <bob@example.com>, Carol <carol@example.com>\r\n" +
		"Subject: Quarterly figures and the review link\r\nDate: Tue, 1 Dec 2026 10:00:00 +0000\r\n" +
		"Message-ID: <20261201100000.12345@mx.example.org>\r\nMIME-Version: 1.0\r\n" +
		"Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.org; dkim=pass header.d=example.org; dmarc=pass header.from=example.org\r\n" +
		"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n" +
		"--outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n" +
		"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	for i := range 20 {
		s.WriteString("Please review the figures at https://review.example.com/q4/item/")
		s.WriteString(strings.Repeat("x", i%7+1))
		s.WriteString(" before Friday.\r\n")
	}
	s.WriteString("--alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body>\r\n")
	for i := range 20 {
		s.WriteString("<p>Figures: <a href=\"https://docs.example.net/q4/")
		s.WriteString(strings.Repeat("y", i%5+1))
		s.WriteString("\">the report</a>, due Friday.</p>\r\n")
	}
	s.WriteString("</body></html>\r\n--alt--\r\n" +
		"--outer\r\nContent-Type: application/pdf; name=\"figures.pdf\"\r\nContent-Disposition: attachment; filename=\"figures.pdf\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	payload := bytes.Repeat([]byte("%PDF-1.4 figures for the quarter, not a real PDF. "), 100)
	// What is left of 10 KiB, as base64 in lines of 76 characters and CRLF.
	left := 10240 - s.Len() - len("--outer--\r\n")
	s.WriteString(base64Lines(payload[:left*76/78*3/4]))
	s.WriteString("--outer--\r\n")
	return s.String()
}
