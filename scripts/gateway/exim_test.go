//go:build e2e

package gateway

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// eximBinary is Exim, unpacked rather than installed: Debian's exim4-daemon-light conflicts
// with postfix. .ci/run unpacks it (apt-get download, dpkg -x) and names the binary in
// $SENSOR_EXIM.
func eximBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("SENSOR_EXIM")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("exim4"); err != nil {
			t.Fatal("Exim not found: set SENSOR_EXIM to an exim4 binary (apt-get download exim4-daemon-light; dpkg -x it; apt-get install libidn12)")
		}
	}
	if _, err := user.Lookup("Debian-exim"); err != nil {
		// Debian's build refuses to start without its compiled-in user.
		t.Fatal("user Debian-exim not found: useradd --system --user-group --no-create-home Debian-exim")
	}
	return bin
}

// TestEximChunking sends the same messages from Exim, which speaks BDAT (CHUNKING) to the
// sensor: its debug output must show BDAT, and every copy must become the record Postfix's
// copy (sent with DATA) became, apart from what the transport adds.
func TestEximChunking(t *testing.T) {
	bin := eximBinary(t)
	msgs := gatewayMessages()
	sensorAddr := testkit.FreePort(t)
	s := startSensor(t, sensorAddr)

	// Not t.TempDir: Exim drops to its own user, which must reach its spool and log.
	dir, err := os.MkdirTemp("", "sensor-exim-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Exim's files are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	for _, d := range []string{"", "spool", "log"} {
		p := filepath.Join(dir, d)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o755)
		if d != "" {
			mode = 0o777
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := strings.Cut(sensorAddr, ":")
	conf := filepath.Join(dir, "exim.conf")
	// A sending-only Exim: every address goes to the sensor over SMTP, with CHUNKING when
	// offered (hosts_try_chunking) and lines of any length.
	cfg := fmt.Sprintf(`exim_path = %[1]s
spool_directory = %[2]s/spool
log_file_path = %[2]s/log/%%slog
keep_environment =
primary_hostname = exim.gw.test
qualify_domain = gw.test
message_size_limit = 50M
begin routers
sensor:
  driver = manualroute
  route_list = * %[3]s::%[4]s byname
  transport = remote
  self = send
begin transports
remote:
  driver = smtp
  hosts_try_chunking = *
  allow_localhost
  message_linelength_limit = 4M
`, bin, dir, host, port)
	if err := os.WriteFile(conf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	eximLog := func(t testing.TB) string {
		b, _ := os.ReadFile(filepath.Join(dir, "log", "mainlog"))
		return string(b)
	}
	for _, m := range msgs {
		// -odf delivers in the foreground, so the debug output holds the SMTP dialogue;
		// -oi keeps a line holding a single dot in the message.
		cmd := exec.Command(bin, "-C", conf, "-odf", "-oi", "-d+transport", "-f", "alice@gw.test", "journal@sensor.test")
		cmd.Stdin = bytes.NewReader(m.body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: exim: %v\n%s", m.name, err, testkit.LastLines(string(out), 30))
		}
		if !strings.Contains(string(out), "SMTP+> BDAT ") || !strings.Contains(string(out), " LAST") {
			t.Errorf("%s: Exim did not send BDAT ... LAST; its debug output ends:\n%s", m.name, testkit.LastLines(string(out), 40))
		}
	}
	recs := s.waitRecords(t, len(msgs), 60*time.Second, eximLog)
	if log := eximLog(t); strings.Contains(log, "==") || strings.Contains(log, "**") {
		t.Errorf("Exim deferred or failed a copy:\n%s", testkit.LastLines(log, 30))
	}
	checkRecords(t, "Exim", msgs, recs)

	viaPostfix := throughPostfix(t, msgs)
	for _, m := range msgs {
		a, b := find(recs, m.subject), find(viaPostfix, m.subject)
		if a == nil || b == nil {
			continue // checkRecords said why
		}
		if got, want := a.comparable(), b.comparable(); got != want {
			t.Errorf("%s: Exim's record differs from Postfix's beyond the transport:\n exim:    %s\n postfix: %s", m.name, got, want)
		}
	}
}

func find(recs []record, subject string) *record {
	for i := range recs {
		if recs[i].Message.Subject == subject {
			return &recs[i]
		}
	}
	return nil
}

// comparable is what two gateways' copies of one message must agree on: everything but the
// transport's own traces (Received fields, sizes that include them, ids, times).
func (r record) comparable() string {
	var anomalies []string
	for _, a := range r.Anomalies {
		anomalies = append(anomalies, a.Code)
	}
	slices.Sort(anomalies)
	var attachments []string
	for _, a := range r.Attachments {
		attachments = append(attachments, a.Filename+"="+a.SHA256)
	}
	var headers []string
	for _, h := range r.Message.Headers {
		if len(h) == 2 && !strings.EqualFold(h[0], "Received") && !strings.EqualFold(h[0], "Return-Path") {
			headers = append(headers, h[0]+": "+h[1])
		}
	}
	return fmt.Sprintf("subject=%q message_id=%q headers=%q attachments=%v anomalies=%v",
		r.Message.Subject, r.Message.MessageID, headers, attachments, anomalies)
}
