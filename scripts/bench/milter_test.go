package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// BenchmarkPostfixMilter measures what the sensor as a milter costs the Postfix it sits in.
// Two private Postfixes deliver everything to discard(8), one with smtpd_milters pointing at
// the built sensor's milter door, one without; both are driven in the same run. Each b.N is
// one smtp-source run of 1,000 messages of 30 KB in 20 sessions into each Postfix in turn
// (messages per second), then 20 sessions sending 10 messages each with the 30 KB message of
// BenchmarkDataTo250 (the time from the end of DATA to the 250, which with the milter
// includes the sensor's parse and fsync'd commit). Postfix's queues are drained, untimed,
// between runs, and every message must have become a record.
//
//	go test -run '^$' -bench PostfixMilter -benchtime 3x ./scripts/bench/
//
// Needs the postfix package (smtp-source, postfix) and root; it fails without them.
func BenchmarkPostfixMilter(b *testing.B) {
	const sessions, perRun, size, latencyPerSession = 20, 1000, 30000, 10
	needTools(b, "smtp-source", "postfix")
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)
	milterAddr, smtpAddr, plainAddr, filteredAddr := testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b), testkit.FreePort(b)
	var logs bytes.Buffer
	sensor := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", smtpAddr,
		"--admin-listen", "127.0.0.1:0", "--milter-listen", "tcp:"+milterAddr, "--milter-on-fault", "tempfail")
	sensor.Stdout, sensor.Stderr = &logs, &logs
	start(b, sensor)
	testkit.WaitListening(b, milterAddr)
	const tuning = "default_process_limit = 200\nsmtpd_client_connection_count_limit = 0\n"
	plain := testkit.StartPostfixDiscard(b, plainAddr, nil, tuning)
	filtered := testkit.StartPostfixDiscard(b, filteredAddr,
		&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 30 * time.Second}, tuning)
	for _, addr := range []string{plainAddr, filteredAddr} {
		waitSMTP(b, addr)
	}

	run := func(addr string) time.Duration { return smtpSource(b, addr, sessions, perRun, size) }
	msg := benchMessage()
	var tPlain, tFiltered time.Duration
	// CPU of the whole machine (every process: Postfix's daemons, smtp-source, the sensor)
	// and of the sensor alone, during the smtp-source runs: what each message costs, not
	// only how long it waits.
	var cpuPlain, cpuFiltered, cpuSensor, cpuSensorSMTP time.Duration
	var latPlain, latFiltered []time.Duration
	b.ResetTimer()
	for range b.N {
		m0 := machineCPU(b)
		tPlain += run(plainAddr)
		m1, s1 := machineCPU(b), processCPU(b, sensor.Process.Pid)
		tFiltered += run(filteredAddr)
		m2, s2 := machineCPU(b), processCPU(b, sensor.Process.Pid)
		cpuPlain, cpuFiltered, cpuSensor = cpuPlain+m1-m0, cpuFiltered+m2-m1, cpuSensor+s2-s1
		// The same messages straight into the sensor's SMTP door: what the sensor spends on
		// them without the milter conversation.
		run(smtpAddr)
		cpuSensorSMTP += processCPU(b, sensor.Process.Pid) - s2
		latPlain = append(latPlain, drive(b, plainAddr, sessions, latencyPerSession, 0, msg)...)
		latFiltered = append(latFiltered, drive(b, filteredAddr, sessions, latencyPerSession, 0, msg)...)
		b.StopTimer()
		plain.WaitQueueEmpty(b, 5*time.Minute)
		filtered.WaitQueueEmpty(b, 5*time.Minute)
		b.StartTimer()
	}
	b.StopTimer()
	want := b.N * (2*perRun + sessions*latencyPerSession)
	if got := countRecords(b, filepath.Join(dir, "data", "outbox"), want, time.Minute); got != want {
		b.Fatalf("%d records, want %d: a message through the milter went unrecorded\n%s", got, want, testkit.LastLines(logs.String(), 20))
	}
	n := float64(b.N * perRun)
	rate := func(d time.Duration) float64 { return n / d.Seconds() }
	p := func(l []time.Duration, q float64) float64 {
		slices.Sort(l)
		return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(rate(tPlain), "postfix-msgs/s")
	b.ReportMetric(rate(tFiltered), "postfix+milter-msgs/s")
	b.ReportMetric(rate(tFiltered)/rate(tPlain), "milter/plain")
	perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(perMsg(cpuPlain), "postfix-cpu-ms/msg")
	b.ReportMetric(perMsg(cpuFiltered), "postfix+milter-cpu-ms/msg")
	b.ReportMetric(perMsg(cpuSensor), "sensor-milter-cpu-ms/msg")
	b.ReportMetric(perMsg(cpuSensorSMTP), "sensor-smtp-cpu-ms/msg")
	b.ReportMetric(p(latPlain, 0.50), "postfix-p50-ms")
	b.ReportMetric(p(latPlain, 0.99), "postfix-p99-ms")
	b.ReportMetric(p(latFiltered, 0.50), "postfix+milter-p50-ms")
	b.ReportMetric(p(latFiltered, 0.99), "postfix+milter-p99-ms")
}

// countRecords waits until the outbox holds want records, or timeout, and returns how many
// it holds.
func countRecords(b *testing.B, outbox string, want int, timeout time.Duration) int {
	b.Helper()
	deadline := time.Now().Add(timeout)
	for {
		files, _ := filepath.Glob(filepath.Join(outbox, "*.ndjson"))
		n := 0
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				b.Fatal(err)
			}
			sc := bufio.NewScanner(bytes.NewReader(data))
			sc.Buffer(nil, 64<<20)
			for sc.Scan() {
				n++
			}
		}
		if n >= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// clockTick is the unit of /proc's CPU times, USER_HZ, which Linux fixes at 100 for user
// space whatever the kernel's own tick.
const clockTick = 10 * time.Millisecond

// machineCPU is the CPU time all processes have used since boot (/proc/stat's first line:
// every field but idle and iowait).
func machineCPU(b *testing.B) time.Duration {
	b.Helper()
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		b.Fatalf("/proc/stat: unexpected first line %q", line)
	}
	var ticks int64
	for i, v := range f[1:8] { // user nice system idle iowait irq softirq
		if i == 3 || i == 4 {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/stat: %q: %v", line, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}

// processCPU is the user and system time process pid has used (/proc/PID/stat fields 14
// and 15, counted after the command name, which may hold spaces).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		b.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime: fields 14 and 15 of the whole line
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			b.Fatalf("/proc/%d/stat: %q: %v", pid, s, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * clockTick
}
