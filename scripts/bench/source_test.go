package bench

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// BenchmarkSMTPSource drives three servers with Postfix's smtp-source, 20 sessions each, in
// the same run: the built sensor (parse, then fsync'd group commit before each 250),
// smtp-sink (answers 250 at once and keeps nothing: the ceiling), and a private Postfix with
// its durable queue (fsync before each 250, then relays to a second smtp-sink: what a
// gateway costs). Each b.N is one smtp-source run of 1,000 messages of 30 KB into each
// server in turn; Postfix's queue is drained, untimed, before the next run.
//
//	go test -run '^$' -bench SMTPSource -benchtime 3x ./scripts/bench/
//
// Reports messages per second for each and the sensor's ratios. Needs the postfix package
// (smtp-source, smtp-sink, postfix) and root (Postfix drops to its own user); it fails
// without them.
func BenchmarkSMTPSource(b *testing.B) {
	const sessions, perRun, size = 20, 1000, 30000
	needTools(b, "smtp-source", "smtp-sink", "postfix")
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)
	sensorAddr, sinkAddr, relaySinkAddr, postfixAddr := testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b)
	sensor := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", sensorAddr,
		"--admin-listen", "127.0.0.1:0")
	start(b, sensor)
	startSink(b, sinkAddr)
	startSink(b, relaySinkAddr)
	pf := testkit.StartPostfix(b, postfixAddr, map[string]string{"sensor.test": relaySinkAddr},
		"always_bcc =\ndefault_process_limit = 200\nsmtpd_client_connection_count_limit = 0\n")
	for _, addr := range []string{sensorAddr, sinkAddr, postfixAddr} {
		waitSMTP(b, addr)
	}

	run := func(addr string) time.Duration { return smtpSource(b, addr, sessions, perRun, size) }
	var tSensor, tSink, tPostfix time.Duration
	b.ResetTimer()
	for range b.N {
		tSensor += run(sensorAddr)
		tSink += run(sinkAddr)
		tPostfix += run(postfixAddr)
		b.StopTimer()
		pf.WaitQueueEmpty(b, 5*time.Minute)
		b.StartTimer()
	}
	n := float64(b.N * perRun)
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	b.ReportMetric(rate(tSensor), "sensor-msgs/s")
	b.ReportMetric(rate(tSink), "smtp-sink-msgs/s")
	b.ReportMetric(rate(tPostfix), "postfix-msgs/s")
	b.ReportMetric(rate(tSensor)/rate(tPostfix), "sensor/postfix")
	b.ReportMetric(rate(tSensor)/rate(tSink), "sensor/smtp-sink")
}

func start(b *testing.B, c *exec.Cmd) {
	b.Helper()
	if err := c.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
}
