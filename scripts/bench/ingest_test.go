package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// BenchmarkIngest is the benchmark behind the throughput claim, the one scripts/bench/ingest.sh
// runs for a user on their own hardware. In one run, side by side, it measures:
//
//  1. Throughput: Postfix's smtp-source, 20 sessions, one 10 KiB message a session,
//     $INGEST_MESSAGES messages (default 2,000) into each of the built sensor (parse, fsync'd
//     commit to its spool before each 250, then upload to its default file:// outbox),
//     smtp-sink (answers 250 at once and keeps nothing: the ceiling), and a private Postfix
//     with its durable queue, relaying to a second smtp-sink (what a gateway costs). Reported
//     as messages per second and the ratios sensor/sink (goal ≥ 0.6) and sensor/postfix
//     (goal ≥ 5).
//  2. CPU per message, from /proc/PID/stat (utime+stime): the sensor process's and the
//     smtp-sink process's, over their timed runs of 1. Each is one process. The sensor's is
//     also given with the work it finishes after its last 250 (the upload to the outbox),
//     counted until it goes idle, untimed.
//  3. Latency at moderate load: 10 sessions on persistent connections, each sending 10 KiB
//     plain-text messages with a 4 ms pause between them; the time from the end of the body
//     to the reading of the 250 (drive's measure), for the sensor and smtp-sink, alternating
//     in slices (each session keeps one connection for the 20 messages of a slice). p50 and
//     p99 in ms (goal: sensor p99 ≤ 5 ms), and the messages per second achieved.
//  4. The same at 100 sessions (10 messages a slice), and the sensor's smtp-source throughput at 10 and at 100
//     sessions, to show whether its throughput rises with sessions.
//
// Each iteration runs every measure once, servers interleaved, so that a neighbour's burst of
// load hits all alike; Postfix's queue is drained and the sensor left to go idle, untimed,
// between runs. The client runs on the same machine and cores as the servers.
//
//	go test -run '^$' -bench '^BenchmarkIngest$' -benchtime 3x ./scripts/bench/
//
// The sensor is started with --max-connections-per-ip 1000: every session here comes from
// 127.0.0.1, where a real gateway fleet spreads over several addresses. /proc counts CPU in
// 10 ms ticks, so the CPU figures of short runs are coarse; more messages or runs narrow
// them. Needs the postfix package (smtp-source, smtp-sink, postfix) and root (Postfix drops
// to its own user); it fails without them.
func BenchmarkIngest(b *testing.B) {
	const size, pause = 10 << 10, 4 * time.Millisecond
	perRun := 2000
	if v := os.Getenv("INGEST_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			b.Fatalf("INGEST_MESSAGES=%q: want a whole number of at least 100", v)
		}
		perRun = n
	}
	needTools(b, "smtp-source", "smtp-sink", "postfix")
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)
	sensorAddr, sinkAddr, relaySinkAddr, postfixAddr := testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b)
	var logs testkit.LogBuffer
	sensor := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", sensorAddr,
		"--admin-listen", "127.0.0.1:0", "--max-connections-per-ip", "1000")
	sensor.Stdout, sensor.Stderr = &logs, &logs
	start(b, sensor)
	sink := startSink(b, sinkAddr)
	startSink(b, relaySinkAddr)
	pf := testkit.StartPostfix(b, postfixAddr, map[string]string{"sensor.test": relaySinkAddr},
		"always_bcc =\ndefault_process_limit = 200\nsmtpd_client_connection_count_limit = 0\n")
	for _, addr := range []string{sensorAddr, sinkAddr, postfixAddr} {
		waitSMTP(b, addr)
	}
	sensorPid, sinkPid := sensor.Process.Pid, sink.Process.Pid
	msg := tenKiBMessage(size)

	// The latency shapes: sessions, messages per session in one slice, slices per iteration.
	type shape struct{ sessions, perSlice, slices int }
	s10, s100 := shape{10, 20, 5}, shape{100, 10, 2}
	type lat struct {
		l    []time.Duration
		took time.Duration
	}
	var lat10Sensor, lat10Sink, lat100Sensor, lat100Sink lat
	latency := func(sh shape, sensorOut, sinkOut *lat) {
		for range sh.slices {
			t0 := time.Now()
			sensorOut.l = append(sensorOut.l, drive(b, sensorAddr, sh.sessions, sh.perSlice, pause, msg)...)
			sensorOut.took += time.Since(t0)
			b.StopTimer()
			settle(b, sensorPid)
			b.StartTimer()
			t0 = time.Now()
			sinkOut.l = append(sinkOut.l, drive(b, sinkAddr, sh.sessions, sh.perSlice, pause, msg)...)
			sinkOut.took += time.Since(t0)
		}
	}

	var tSensor, tSink, tPostfix, tSensor10, tSensor100 time.Duration
	var cpuSensor, cpuSensorAll, cpuSink time.Duration
	runs, sensorMsgs := 0, 0
	for b.Loop() {
		runs++
		s0 := processCPU(b, sensorPid)
		tSensor += smtpSource(b, sensorAddr, 20, perRun, size)
		s1 := processCPU(b, sensorPid)
		b.StopTimer()
		s2 := settle(b, sensorPid)
		b.StartTimer()
		cpuSensor, cpuSensorAll = cpuSensor+s1-s0, cpuSensorAll+s2-s0

		k0 := processCPU(b, sinkPid)
		tSink += smtpSource(b, sinkAddr, 20, perRun, size)
		cpuSink += processCPU(b, sinkPid) - k0

		tPostfix += smtpSource(b, postfixAddr, 20, perRun, size)
		b.StopTimer()
		pf.WaitQueueEmpty(b, 5*time.Minute)
		b.StartTimer()

		tSensor10 += smtpSource(b, sensorAddr, 10, perRun, size)
		b.StopTimer()
		settle(b, sensorPid)
		b.StartTimer()
		tSensor100 += smtpSource(b, sensorAddr, 100, perRun, size)
		b.StopTimer()
		settle(b, sensorPid)
		b.StartTimer()

		latency(s10, &lat10Sensor, &lat10Sink)
		latency(s100, &lat100Sensor, &lat100Sink)
		sensorMsgs += 3*perRun + s10.sessions*s10.perSlice*s10.slices + s100.sessions*s100.perSlice*s100.slices
	}
	b.StopTimer()
	if b.Failed() {
		b.Fatalf("a session failed; the sensor's log ends:\n%s", testkit.LastLines(logs.String(), 20))
	}
	// Every message the sensor answered 250 must have become a record in its outbox.
	if got := countRecords(b, filepath.Join(dir, "data", "outbox"), sensorMsgs, 2*time.Minute); got != sensorMsgs {
		b.Fatalf("%d records in the sensor's outbox, want %d\n%s", got, sensorMsgs, testkit.LastLines(logs.String(), 20))
	}

	n := float64(runs * perRun)
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	cpuPerMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / n }
	b.ReportMetric(rate(tSensor), "sensor-msgs/s")
	b.ReportMetric(rate(tSink), "sink-msgs/s")
	b.ReportMetric(rate(tPostfix), "postfix-msgs/s")
	b.ReportMetric(rate(tSensor)/rate(tSink), "sensor/sink")
	b.ReportMetric(rate(tSensor)/rate(tPostfix), "sensor/postfix")
	b.ReportMetric(cpuPerMsg(cpuSensor), "sensor-cpu-us/msg")
	b.ReportMetric(cpuPerMsg(cpuSensorAll), "sensor-cpu-all-us/msg")
	b.ReportMetric(cpuPerMsg(cpuSink), "sink-cpu-us/msg")
	b.ReportMetric(rate(tSensor10), "sensor-10sess-msgs/s")
	b.ReportMetric(rate(tSensor100), "sensor-100sess-msgs/s")
	b.ReportMetric(rate(tSensor100)/rate(tSensor10), "sensor-100sess/10sess")
	for _, r := range []struct {
		name string
		l    lat
	}{{"s10-sensor", lat10Sensor}, {"s10-sink", lat10Sink}, {"s100-sensor", lat100Sensor}, {"s100-sink", lat100Sink}} {
		b.ReportMetric(percentileMs(r.l.l, 0.50), r.name+"-p50-ms")
		b.ReportMetric(percentileMs(r.l.l, 0.99), r.name+"-p99-ms")
		b.ReportMetric(float64(len(r.l.l))/r.l.took.Seconds(), r.name+"-msgs/s")
	}
}

// startSink starts Postfix's smtp-sink on addr (as nobody when run as root, which it
// refuses) and returns its command: one process, whose CPU /proc counts.
func startSink(b *testing.B, addr string) *exec.Cmd {
	b.Helper()
	args := []string{"-c", addr, "256"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...) // smtp-sink refuses to run as root
	}
	c := exec.Command("smtp-sink", args...)
	start(b, c)
	return c
}

// settle waits until process pid has used no CPU for 300 ms (three /proc ticks' worth of
// polls at 100 ms), at most 30 s, and returns its CPU time then: the sensor's uploads and
// other work left over from a run are done before the next run starts or is counted.
func settle(b *testing.B, pid int) time.Duration {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	last, still := processCPU(b, pid), 0
	for still < 3 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		now := processCPU(b, pid)
		if now == last {
			still++
		} else {
			still = 0
		}
		last = now
	}
	return last
}

// percentileMs is the q quantile of l, in milliseconds; l is sorted in place.
func percentileMs(l []time.Duration, q float64) float64 {
	if len(l) == 0 {
		return 0
	}
	slices.Sort(l)
	return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000
}
