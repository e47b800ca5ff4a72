package bench

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// BenchmarkDataTo250 measures, for 20 concurrent SMTP sessions, the time from the client
// sending the end of DATA to it reading the 250: the built sensor (parse, commit to a spool on
// this disk with fsync, group commit shared among the sessions) against Postfix's smtp-sink
// (which answers 250 at once and keeps nothing), in the same run. Each b.N is one message per
// session. The message is 30 KB with a PDF-ish attachment, a journal sink's everyday mail.
//
//	go test -run '^$' -bench DataTo250 -benchtime 200x ./scripts/bench/
//
// Needs the postfix package (smtp-sink); it fails without it.
func BenchmarkDataTo250(b *testing.B) {
	const sessions = 20
	msg := benchMessage()
	sink, err := exec.LookPath("smtp-sink")
	if err != nil {
		b.Fatal("smtp-sink not found: apt-get install -y postfix")
	}
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)

	sensorAddr, sinkAddr := testkit.FreePort(b), testkit.FreePort(b)
	sensor := exec.Command(bin, "serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", sensorAddr,
		"--admin-listen", "127.0.0.1:0")
	args := []string{"-c", sinkAddr, "256"}
	if os.Geteuid() == 0 {
		args = append([]string{"-u", "nobody"}, args...) // smtp-sink refuses to run as root
	}
	ref := exec.Command(sink, args...)
	for _, c := range []*exec.Cmd{sensor, ref} {
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
	}
	waitSMTP(b, sensorAddr)
	waitSMTP(b, sinkAddr)

	var sensorLat, sinkLat []time.Duration
	b.ResetTimer()
	// Alternate in slices so that a neighbour's burst of disk traffic hits both alike.
	for done := 0; done < b.N; done += 20 {
		n := min(20, b.N-done)
		sensorLat = append(sensorLat, drive(b, sensorAddr, sessions, n, 0, msg)...)
		sinkLat = append(sinkLat, drive(b, sinkAddr, sessions, n, 0, msg)...)
	}
	b.StopTimer()
	p := func(l []time.Duration, q float64) float64 {
		slices.Sort(l)
		return float64(l[int(q*float64(len(l)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(p(sensorLat, 0.50), "sensor-p50-ms")
	b.ReportMetric(p(sensorLat, 0.99), "sensor-p99-ms")
	b.ReportMetric(p(sinkLat, 0.50), "smtp-sink-p50-ms")
	b.ReportMetric(p(sinkLat, 0.99), "smtp-sink-p99-ms")
}

// drive runs sessions concurrent sessions, each sending n messages over one connection, and
// returns the end-of-DATA-to-250 time of each. With pause > 0 each session waits pause
// after each message before the next, and session i starts i*pause/sessions late, so that
// the sessions' messages spread over the pause instead of arriving in step: a steady load
// rather than a burst.
func drive(b *testing.B, addr string, sessions, n int, pause time.Duration, msg []byte) []time.Duration {
	var mu sync.Mutex
	var out []time.Duration
	var wg sync.WaitGroup
	for i := range sessions {
		wg.Go(func() {
			if pause > 0 {
				time.Sleep(pause * time.Duration(i) / time.Duration(sessions))
			}
			c, err := smtp.Dial(addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			if err := c.Hello("bench.test"); err != nil {
				b.Error(err)
				return
			}
			for k := range n {
				if pause > 0 && k > 0 {
					time.Sleep(pause)
				}
				if err := c.Mail("a@example.org", nil); err != nil {
					b.Error(err)
					return
				}
				if err := c.Rcpt("journal@sensor.test", nil); err != nil {
					b.Error(err)
					return
				}
				w, err := c.Data()
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := w.Write(msg); err != nil {
					b.Error(err)
					return
				}
				start := time.Now() // the body is written; Close sends ".\r\n" and reads the reply
				if err := w.Close(); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(start)
				mu.Lock()
				out = append(out, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return out
}

func benchMessage() []byte {
	var sb strings.Builder
	sb.WriteString("From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: Q3 invoice\r\n" +
		"Message-ID: <bench@example.org>\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n" +
		"Please see https://example.com/invoice?id=42 and the attached file.\r\n--b1\r\n" +
		"Content-Type: application/pdf; name=invoice.pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	raw := make([]byte, 20<<10)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\r\n--b1--\r\n")
	return []byte(sb.String())
}

func waitSMTP(b *testing.B, addr string) {
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			g, _ := bufio.NewReader(c).ReadString('\n')
			_, _ = io.WriteString(c, "QUIT\r\n")
			_ = c.Close()
			if strings.HasPrefix(g, "220") {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("nothing answers SMTP on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
