//go:build e2e

package gateway

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// TestPostfixMilterUnreachable is what Postfix does when the sensor's milter port has
// nothing behind it (the sensor stopped, or not started yet): milter_default_action alone
// decides. With accept the mail is delivered and the copy never existed; with tempfail every
// command after the connection gets 451 4.7.1 and Postfix takes nothing, so the sending
// client keeps the message and retries. docs/sources/postfix-milter.md quotes both.
func TestPostfixMilterUnreachable(t *testing.T) {
	for _, action := range []string{"accept", "tempfail"} {
		t.Run(action, func(t *testing.T) {
			gatewayAddr, down := testkit.FreePort(t), testkit.FreePort(t)
			pf := testkit.StartPostfixDiscard(t, gatewayAddr,
				&testkit.Milter{Addr: "inet:" + down, DefaultAction: action, Timeout: 5 * time.Second}, "")
			out, err := swaks(t, gatewayAddr, "--header", "Message-Id: <unreachable-"+action+"@gw.test>")
			log := pf.Maillog(t)
			if !strings.Contains(log, "warning: connect to Milter service inet:"+down) {
				t.Errorf("Postfix's log does not say the milter was unreachable:\n%s", testkit.LastLines(log, 20))
			}
			switch action {
			case "accept":
				if err != nil {
					t.Fatalf("swaks through Postfix with milter_default_action = accept: %v\n%s", err, testkit.LastLines(out, 10))
				}
				qid := maillogQueueIDs(log)["unreachable-accept@gw.test"]
				waitDelivered(t, pf, qid)
			case "tempfail":
				if err == nil || !strings.Contains(out, "451 4.7.1") {
					t.Fatalf("swaks through Postfix with milter_default_action = tempfail: %v, want 451 4.7.1:\n%s", err, testkit.LastLines(out, 10))
				}
				if !strings.Contains(log, "NOQUEUE: milter-reject: MAIL from localhost[127.0.0.1]: 451 4.7.1") {
					t.Errorf("Postfix's log has no milter-reject of MAIL:\n%s", testkit.LastLines(log, 20))
				}
				if strings.Contains(log, "status=") {
					t.Errorf("Postfix took the message although the milter was down:\n%s", testkit.LastLines(log, 20))
				}
			}
		})
	}
}

// swaks sends one small message from alice@gw.test to user@example.net through addr, with
// args added to swaks's own, and returns its transcript.
func swaks(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Fatal("swaks not found: apt-get install -y swaks")
	}
	out, err := exec.Command("swaks", append([]string{"--server", addr, "--from", "alice@gw.test", "--to", "user@example.net",
		"--helo", "client.gw.test", "--timeout", "60"}, args...)...).CombinedOutput()
	return string(out), err
}

var maillogMessageID = regexp.MustCompile(`postfix/cleanup\[\d+\]: ([0-9A-F]+): message-id=<([^>]*)>`)

// maillogQueueIDs maps each Message-ID in Postfix's log to the queue id cleanup gave it.
func maillogQueueIDs(log string) map[string]string {
	ids := map[string]string{}
	for _, m := range maillogMessageID.FindAllStringSubmatch(log, -1) {
		ids[m[2]] = m[1]
	}
	return ids
}

// waitDelivered waits until Postfix's log says the message with queue id qid went to the
// discard transport, and fails the test on any other outcome.
func waitDelivered(t *testing.T, pf *testkit.Postfix, qid string) {
	t.Helper()
	if qid == "" {
		t.Fatalf("no queue id for the message in Postfix's log:\n%s", testkit.LastLines(pf.Maillog(t), 20))
	}
	status := regexp.MustCompile(`postfix/\w+\[\d+\]: ` + qid + `: .*status=(\w+) \(([^)]*)\)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := status.FindStringSubmatch(pf.Maillog(t)); m != nil {
			if m[1] != "sent" || m[2] != "delivered by the test's discard transport" {
				t.Fatalf("message %s: status=%s (%s), want sent to discard", qid, m[1], m[2])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s not delivered after 30s:\n%s", qid, testkit.LastLines(pf.Maillog(t), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// milterSensor is the built sensor with its milter door open, restartable on the same data
// directory.
type milterSensor struct {
	bin, dataDir           string
	smtpAddr, adminAddr    string
	milterListen, milterAt string // --milter-listen, and where to wait for it (host:port or a socket path)
	args                   []string
	cmd                    *exec.Cmd
	logs                   *testkit.LogBuffer
}

// startMilterSensor builds the sensor and starts it with --milter-listen listen (tcp:HOST:PORT
// or unix:PATH) and args.
func startMilterSensor(t *testing.T, listen string, args ...string) *milterSensor {
	t.Helper()
	dir := t.TempDir()
	s := &milterSensor{
		dataDir:  filepath.Join(dir, "data"),
		smtpAddr: testkit.FreePort(t), adminAddr: testkit.FreePort(t),
		milterListen: listen, args: args, logs: &testkit.LogBuffer{},
	}
	s.milterAt = strings.TrimPrefix(strings.TrimPrefix(listen, "tcp:"), "unix:")
	s.bin = testkit.BuildSensor(t, dir)
	t.Cleanup(func() {
		s.kill(t)
		if t.Failed() {
			t.Logf("sensor log:\n%s", testkit.LastLines(s.logs.String(), 40))
		}
	})
	s.start(t)
	return s
}

// start runs the sensor (again) on its data directory, with extra flags after its own, and
// waits for both doors.
func (s *milterSensor) start(t *testing.T, extra ...string) {
	t.Helper()
	args := append([]string{"serve", "--data-dir", s.dataDir, "--smtp-listen", s.smtpAddr,
		"--admin-listen", s.adminAddr, "--milter-listen", s.milterListen}, s.args...)
	s.cmd = exec.Command(s.bin, append(args, extra...)...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	testkit.WaitListening(t, s.smtpAddr)
	if strings.HasPrefix(s.milterListen, "unix:") {
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.Dial("unix", s.milterAt)
			if err == nil {
				_ = c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing listens on %s: %v\n%s", s.milterAt, err, s.logs.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	} else {
		testkit.WaitListening(t, s.milterAt)
	}
}

// kill ends the sensor with SIGKILL: no drain, no goodbye.
func (s *milterSensor) kill(t *testing.T) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

func (s *milterSensor) waitRecords(t *testing.T, n int, timeout time.Duration, gatewayLog func(testing.TB) string) []record {
	t.Helper()
	return (&sensor{outbox: filepath.Join(s.dataDir, "outbox")}).waitRecords(t, n, timeout, gatewayLog)
}

// metric reads one series from the sensor's /metrics, named with its labels as /metrics
// spells them.
func (s *milterSensor) metric(t *testing.T, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("/metrics: %s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

// smtpSource sends n messages with Postfix's smtp-source through addr, each with its own
// Message-Id, in sessions parallel sessions.
func smtpSource(t *testing.T, addr string, n, sessions int, subject string) {
	t.Helper()
	if _, err := exec.LookPath("smtp-source"); err != nil {
		t.Fatal("smtp-source not found: apt-get install -y postfix")
	}
	out, err := exec.Command("smtp-source", "-s", strconv.Itoa(sessions), "-m", strconv.Itoa(n), "-l", "2000",
		"-S", subject, "-f", "alice@gw.test", "-t", "user@example.net", addr).CombinedOutput()
	if err != nil {
		t.Fatalf("smtp-source %s: %v\n%s", addr, err, out)
	}
}

// TestPostfixMilter puts the sensor behind a private Postfix as its milter (smtpd_milters,
// delivery to discard). swaks, a raw SMTP client and smtp-source send through Postfix. Each
// message must become exactly one record with transport milter, the queue id Postfix's log
// gave the message, and the client's address from the macros; Postfix must deliver every
// message and defer none. Then the same messages go to the SMTP door, and the two records
// of each must agree on subject, source kind, attachments and URLs.
func TestPostfixMilter(t *testing.T) {
	for _, tool := range []string{"postfix", "swaks", "smtp-source"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y postfix swaks", tool)
		}
	}
	milterAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail")
	// tempfail on both sides: a copy the sensor could not record shows as a deferral, which
	// fails the test, instead of passing unseen.
	pf := testkit.StartPostfixDiscard(t, gatewayAddr,
		&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 30 * time.Second}, "")

	msgs := gatewayMessages()
	for _, m := range msgs {
		if err := sendRaw(gatewayAddr, "alice@gw.test", "user@example.net", m.body); err != nil {
			t.Fatalf("%s: sending to Postfix: %v\n%s", m.name, err, testkit.LastLines(pf.Maillog(t), 20))
		}
	}
	pdf := filepath.Join(t.TempDir(), "invoice.pdf")
	if err := os.WriteFile(pdf, bytes.Repeat([]byte("%PDF-1.7 swaks attachment\n"), 400), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := swaks(t, gatewayAddr, "--header", "Subject: milter swaks", "--header", "Message-Id: <milter-swaks@gw.test>",
		"--body", "pay at https://pay.example.com/invoice?id=7", "--attach-type", "application/pdf", "--attach", "@"+pdf); err != nil {
		t.Fatalf("swaks through Postfix: %v\n%s", err, testkit.LastLines(out, 15))
	}
	const sourced = 40
	smtpSource(t, gatewayAddr, sourced, 5, "milter smtp-source")
	total := len(msgs) + 1 + sourced

	recs := s.waitRecords(t, total, 90*time.Second, pf.Maillog)
	pf.WaitQueueEmpty(t, 30*time.Second)
	log := pf.Maillog(t)
	queueIDs := maillogQueueIDs(log)
	if len(recs) != total {
		t.Errorf("%d records, want %d", len(recs), total)
	}
	seen := map[string]bool{}
	for _, r := range recs {
		mid := strings.Trim(r.Message.MessageID, "<>")
		qid := queueIDs[mid]
		if seen[mid] {
			t.Errorf("message %s recorded twice", mid)
		}
		seen[mid] = true
		if r.Envelope.Transport != "milter" || r.Envelope.ClientIP != "127.0.0.1" || r.Envelope.MailFrom != "alice@gw.test" ||
			!slices.Equal(r.Envelope.RcptTo, []string{"user@example.net"}) {
			t.Errorf("message %s: envelope %+v, want milter from 127.0.0.1, alice@gw.test to user@example.net", mid, r.Envelope)
		}
		if qid == "" || r.Envelope.QueueID != qid {
			t.Errorf("message %s: queue id %q, Postfix's log says %q", mid, r.Envelope.QueueID, qid)
		}
		waitDelivered(t, pf, qid)
	}
	if len(queueIDs) != total {
		t.Errorf("Postfix's log names %d messages, want %d", len(queueIDs), total)
	}
	for _, bad := range []string{"status=deferred", "status=bounced", "milter-reject", "warning: milter"} {
		if strings.Contains(log, bad) {
			t.Errorf("Postfix's log has %q:\n%s", bad, testkit.LastLines(log, 30))
		}
	}
	checkRecordsMilter(t, msgs, recs)

	// The same messages through the SMTP door: the records must agree.
	for _, m := range msgs {
		if err := sendRaw(s.smtpAddr, "alice@gw.test", "journal@sensor.test", m.body); err != nil {
			t.Fatalf("%s: sending to the SMTP door: %v", m.name, err)
		}
	}
	all := s.waitRecords(t, total+len(msgs), 60*time.Second, pf.Maillog)
	byDoor := map[string]map[string]record{"smtp": {}, "milter": {}}
	for _, r := range all {
		if byDoor[r.Envelope.Transport] != nil {
			byDoor[r.Envelope.Transport][r.Message.Subject] = r
		}
	}
	for _, m := range msgs {
		viaSMTP, ok1 := byDoor["smtp"][m.subject]
		viaMilter, ok2 := byDoor["milter"][m.subject]
		if !ok1 || !ok2 {
			t.Errorf("%s: a record through the SMTP door %v, through the milter %v; want both", m.name, ok1, ok2)
			continue
		}
		if a, b := summary(viaSMTP), summary(viaMilter); a != b {
			t.Errorf("%s: the doors disagree:\n smtp:   %s\n milter: %s", m.name, a, b)
		}
		// Protocol 6 keeps the space after each header colon, so the milter rebuilds the
		// message byte for byte: but for the bare CR, which Postfix's smtpd drops itself
		// (it takes "\r\r\n" for a line end), before any milter sees the message.
		if m.name != "bare CR on the last line" && (viaSMTP.Message.SHA256 != viaMilter.Message.SHA256 || viaSMTP.Message.Size != viaMilter.Message.Size) {
			t.Errorf("%s: message sha256/size %s/%d through the SMTP door, %s/%d through the milter", m.name,
				viaSMTP.Message.SHA256, viaSMTP.Message.Size, viaMilter.Message.SHA256, viaMilter.Message.Size)
		}
		// An agreement on nothing would prove nothing.
		if m.name == "plain" && len(viaMilter.URLs) == 0 {
			t.Errorf("%s: no URL in the milter's record", m.name)
		}
	}
	t.Logf("%d messages through Postfix and the milter, each delivered to discard and recorded with its queue id; e.g. %s",
		total, firstLine(log, "status=sent"))
}

// checkRecordsMilter holds each gateway message to the checks it carries.
func checkRecordsMilter(t *testing.T, msgs []gatewayMessage, recs []record) {
	t.Helper()
	for _, m := range msgs {
		for _, r := range recs {
			if r.Message.Subject == m.subject && m.check != nil {
				m.check(t, r)
			}
		}
	}
}

// summary is what a record says of a message whichever door it came through.
func summary(r record) string {
	var atts, urls []string
	for _, a := range r.Attachments {
		atts = append(atts, a.Filename+"="+a.SHA256)
	}
	for _, u := range r.URLs {
		urls = append(urls, u.URL)
	}
	slices.Sort(atts)
	slices.Sort(urls)
	return fmt.Sprintf("subject %q, kind %s, attachments %v, urls %v", r.Message.Subject, r.Source.Kind, atts, urls)
}

func firstLine(log, substr string) string {
	for line := range strings.SplitSeq(log, "\n") {
		if strings.Contains(line, substr) {
			return line
		}
	}
	return ""
}

// TestPostfixMilterUnixSocket has Postfix reach the sensor over a unix socket made 0660 in
// a set-group-id directory of the postfix group, as docs/sources/postfix-milter.md says to
// set it up: Postfix's smtpd, running as the postfix user, must get through.
func TestPostfixMilterUnixSocket(t *testing.T) {
	group, err := user.LookupGroup("postfix")
	if err != nil {
		t.Fatalf("group postfix: %v (apt-get install -y postfix)", err)
	}
	gid, _ := strconv.Atoi(group.Gid)
	// Not t.TempDir: its parent is private to root, and smtpd runs as postfix.
	dir, err := os.MkdirTemp("", "sensor-milter-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chown(dir, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o750|os.ModeSetgid); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "milter.sock")
	gatewayAddr := testkit.FreePort(t)
	s := startMilterSensor(t, "unix:"+sock, "--milter-socket-mode", "0660")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != uint32(gid) {
		t.Errorf("socket mode %v group %d, want 0660 and postfix's group %d", fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, gid)
	}
	pf := testkit.StartPostfixDiscard(t, gatewayAddr,
		&testkit.Milter{Addr: "unix:" + sock, DefaultAction: "tempfail", Timeout: 30 * time.Second}, "")
	if out, err := swaks(t, gatewayAddr, "--header", "Subject: over a unix socket", "--header", "Message-Id: <milter-unix@gw.test>"); err != nil {
		t.Fatalf("swaks through Postfix: %v\n%s\n%s", err, testkit.LastLines(out, 10), testkit.LastLines(pf.Maillog(t), 20))
	}
	recs := s.waitRecords(t, 1, 30*time.Second, pf.Maillog)
	qid := maillogQueueIDs(pf.Maillog(t))["milter-unix@gw.test"]
	if r := recs[0]; r.Envelope.Transport != "milter" || r.Envelope.QueueID != qid || r.Message.Subject != "over a unix socket" {
		t.Errorf("record %+v, want the message through the milter with queue id %s", r, qid)
	}
	waitDelivered(t, pf, qid)
}

// TestPostfixMilterSpoolFullAccept fills the spool (the pipeline is down and the budget is
// a few KiB) with the fault choice accept on both sides: every message must still be
// delivered, and each copy the sensor could not record must be counted in
// sensor_milter_unrecorded_total.
func TestPostfixMilterSpoolFullAccept(t *testing.T) {
	milterAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "accept", "--spool-max-bytes", "8KiB",
		"--pipeline-url", "https://"+testkit.FreePort(t))
	pf := testkit.StartPostfixDiscard(t, gatewayAddr,
		&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "accept", Timeout: 30 * time.Second}, "")
	const n = 20
	smtpSource(t, gatewayAddr, n, 1, "spool full accept")
	pf.WaitQueueEmpty(t, 30*time.Second)
	log := pf.Maillog(t)
	ids := maillogQueueIDs(log)
	if len(ids) != n {
		t.Fatalf("Postfix's log names %d messages, want %d:\n%s", len(ids), n, testkit.LastLines(log, 20))
	}
	for _, qid := range ids {
		waitDelivered(t, pf, qid)
	}
	lost := s.metric(t, `sensor_milter_unrecorded_total{reason="spool_full"}`)
	if lost < 1 || lost >= n {
		t.Errorf("sensor_milter_unrecorded_total{reason=\"spool_full\"} = %v after %d messages into an 8 KiB spool, want between 1 and %d", lost, n, n-1)
	}
	// Every message is either recorded or counted: with the pipeline back, the records the
	// spool holds reach the outbox.
	s.kill(t)
	s.start(t, "--pipeline-url", "file://"+filepath.Join(s.dataDir, "outbox"))
	s.waitRecords(t, n-int(lost), 30*time.Second, pf.Maillog)
	time.Sleep(time.Second) // a record beyond the count would show now
	recorded := len(s.waitRecords(t, 0, time.Second, pf.Maillog))
	if recorded+int(lost) != n {
		t.Errorf("%d recorded and %v counted unrecorded, want %d in all", recorded, lost, n)
	}
	t.Logf("%d messages delivered by Postfix: %d recorded, %v counted in sensor_milter_unrecorded_total{reason=\"spool_full\"}", n, recorded, lost)
}

// TestPostfixMilterSpoolFullTempfail fills the spool with the fault choice tempfail on both
// sides. An upstream Postfix relays to the milter's Postfix, as a sending MTA would: the
// messages the sensor cannot record are refused with a 4xx and stay deferred upstream, and
// once the spool has room again (the sensor restarts with its pipeline up) they are sent
// again by the upstream Postfix and every message gets its record. Nothing is lost.
func TestPostfixMilterSpoolFullTempfail(t *testing.T) {
	milterAddr, gatewayAddr, upstreamAddr := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	// The pipeline is down: the spool fills.
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail", "--spool-max-bytes", "8KiB",
		"--pipeline-url", "https://"+testkit.FreePort(t))
	pf := testkit.StartPostfixDiscard(t, gatewayAddr,
		&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 30 * time.Second}, "")
	up := testkit.StartPostfix(t, upstreamAddr, map[string]string{"example.net": gatewayAddr},
		"always_bcc =\n# Retry deferred mail within seconds, not Postfix's default of minutes.\n"+
			"queue_run_delay = 2s\nminimal_backoff_time = 2s\nmaximal_backoff_time = 4s\n")
	const n = 20
	smtpSource(t, upstreamAddr, n, 1, "spool full tempfail")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(up.Maillog(t), "status=deferred") || len(up.Queued(t)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the upstream Postfix deferred nothing:\n%s\nthe milter's Postfix:\n%s", testkit.LastLines(up.Maillog(t), 20), testkit.LastLines(pf.Maillog(t), 20))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // let the upstream Postfix try every message once
	deferred := len(up.Queued(t))
	if !strings.Contains(up.Maillog(t), "4.7.1") {
		t.Errorf("the upstream Postfix's deferrals do not carry the milter's 4.7.1:\n%s", testkit.LastLines(up.Maillog(t), 10))
	}
	if refused := s.metric(t, `sensor_milter_unrecorded_total{reason="spool_full"}`); refused < 1 {
		t.Errorf("sensor_milter_unrecorded_total{reason=\"spool_full\"} = %v after Postfix deferred mail, want the refusals counted", refused)
	}

	s.kill(t)
	// The pipeline is the file:// outbox now: the spool empties and has room again.
	s.start(t, "--pipeline-url", "file://"+filepath.Join(s.dataDir, "outbox"))
	recs := s.waitRecords(t, n, 90*time.Second, up.Maillog)
	up.WaitQueueEmpty(t, 60*time.Second)
	pf.WaitQueueEmpty(t, 30*time.Second)
	mids := map[string]bool{}
	for _, r := range recs {
		mids[r.Message.MessageID] = true
	}
	if len(mids) != n {
		t.Errorf("%d distinct messages recorded, want all %d", len(mids), n)
	}
	t.Logf("%d of %d messages deferred upstream while the spool was full; all %d recorded after it had room", deferred, n, n)
}

// TestPostfixMilterKill kills the sensor with SIGKILL again and again while mail flows
// through Postfix with milter_default_action = tempfail. Every message Postfix accepted
// (answered 250 to its client) must have a record once the sensor is back: a kill may cost
// a client a retry, never a copy.
func TestPostfixMilterKill(t *testing.T) {
	testPostfixMilterRestarts(t, func(s *milterSensor) { s.kill(t) })
}

// TestPostfixMilterStop is TestPostfixMilterKill with SIGTERM: the sensor drains (it
// answers the messages it has, then exits 0) each time, and again nothing Postfix accepted
// goes unrecorded.
func TestPostfixMilterStop(t *testing.T) {
	testPostfixMilterRestarts(t, func(s *milterSensor) {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		if err := s.cmd.Wait(); err != nil {
			t.Errorf("the sensor's exit after SIGTERM: %v", err)
		}
		s.cmd = nil
	})
}

func testPostfixMilterRestarts(t *testing.T, stopSensor func(*milterSensor)) {
	milterAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail")
	pf := testkit.StartPostfixDiscard(t, gatewayAddr,
		&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 10 * time.Second}, "")
	body := func(i int) []byte {
		return []byte(fmt.Sprintf("From: alice@gw.test\r\nTo: user@example.net\r\nSubject: kill %d\r\nMessage-ID: <kill-%d@gw.test>\r\n\r\n%s\r\n",
			i, i, strings.Repeat("a line of body text to keep the milter busy\r\n", 20000)))
	}
	done := make(chan []string)
	stop := make(chan struct{})
	go func() {
		var accepted []string
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- accepted
				return
			default:
			}
			if err := sendRaw(gatewayAddr, "alice@gw.test", "user@example.net", body(i)); err == nil {
				accepted = append(accepted, fmt.Sprintf("kill-%d@gw.test", i))
			}
		}
	}()
	const kills = 8
	for range kills {
		time.Sleep(time.Duration(300+time.Now().UnixNano()%700) * time.Millisecond)
		stopSensor(s)
		s.start(t)
	}
	close(stop)
	accepted := <-done
	if len(accepted) == 0 {
		t.Fatalf("Postfix accepted nothing:\n%s", testkit.LastLines(pf.Maillog(t), 30))
	}
	// Wait for each accepted message by name, not for a count: a message recorded just
	// before a kill took its answer away was refused to Postfix's client yet has a record.
	deadline := time.Now().Add(60 * time.Second)
	var missing []string
	for {
		got := map[string]bool{}
		for _, r := range s.waitRecords(t, 0, time.Second, pf.Maillog) {
			got[strings.Trim(r.Message.MessageID, "<>")] = true
		}
		missing = slices.DeleteFunc(slices.Clone(accepted), func(mid string) bool { return got[mid] })
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(missing) > 0 {
		t.Errorf("Postfix accepted %d messages that have no record after 60s: %v", len(missing), missing)
	}
	tempfailed := len(regexp.MustCompile(`milter-reject: END-OF-MESSAGE`).FindAllString(pf.Maillog(t), -1))
	t.Logf("%d restarts: %d messages accepted, all recorded; %d refused with 4xx at the end of the message", kills, len(accepted), tempfailed)
}

// TestPostfixMilterTLS: a client that speaks STARTTLS to Postfix gets a record whose
// envelope.tls comes from Postfix's default milter macros ({tls_version}, {cipher}), as
// docs/sources/postfix-milter.md says; no macro list needs changing.
func TestPostfixMilterTLS(t *testing.T) {
	for _, tc := range []struct{ name, macros string }{
		{"default macro lists", ""},
		// The sensor asks for its macros when it negotiates; Postfix then sends them whatever
		// its own lists say, so an operator who emptied them still gets a full record.
		{"empty macro lists", "milter_connect_macros =\nmilter_helo_macros =\nmilter_mail_macros =\nmilter_rcpt_macros =\n" +
			"milter_data_macros =\nmilter_end_of_header_macros =\nmilter_end_of_data_macros =\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, certFile, keyFile := tlsFiles(t)
			milterAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t)
			s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail")
			pf := testkit.StartPostfixDiscard(t, gatewayAddr,
				&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 30 * time.Second},
				"smtpd_tls_security_level = may\nsmtpd_tls_cert_file = "+certFile+"\nsmtpd_tls_key_file = "+keyFile+"\n"+tc.macros)
			if out, err := swaks(t, gatewayAddr, "--tls", "--header", "Subject: milter over TLS", "--header", "Message-Id: <milter-tls@gw.test>"); err != nil {
				t.Fatalf("swaks --tls through Postfix: %v\n%s\n%s", err, testkit.LastLines(out, 15), testkit.LastLines(pf.Maillog(t), 20))
			}
			r := s.waitRecords(t, 1, 30*time.Second, pf.Maillog)[0]
			qid := maillogQueueIDs(pf.Maillog(t))["milter-tls@gw.test"]
			if r.Envelope.Transport != "milter" || r.Envelope.TLS == nil || !strings.HasPrefix(r.Envelope.TLS.Version, "TLS 1.") || r.Envelope.TLS.Cipher == "" {
				t.Errorf("record's envelope %+v, tls %+v: want the milter's copy with Postfix's TLS version and cipher", r.Envelope, r.Envelope.TLS)
			} else {
				t.Logf("envelope.tls from Postfix's macros: %+v", *r.Envelope.TLS)
			}
			if qid == "" || r.Envelope.QueueID != qid || r.Envelope.ClientIP != "127.0.0.1" {
				t.Errorf("queue id %q client %q; want Postfix's queue id %q and 127.0.0.1", r.Envelope.QueueID, r.Envelope.ClientIP, qid)
			}
			waitDelivered(t, pf, qid)
		})
	}
}

// TestPostfixMilterNonSMTP: with non_smtpd_milters set as docs/sources/postfix-milter.md
// shows, mail submitted on the host with sendmail(1) is recorded too, with its queue id.
func TestPostfixMilterNonSMTP(t *testing.T) {
	milterAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail")
	pf := testkit.StartPostfixDiscard(t, gatewayAddr,
		&testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 30 * time.Second},
		"non_smtpd_milters = inet:"+milterAddr+"\n")
	cmd := exec.Command("sendmail", "-C", pf.ConfigDir(), "-f", "alice@gw.test", "user@example.net")
	cmd.Stdin = strings.NewReader("From: alice@gw.test\nTo: user@example.net\nSubject: from sendmail\nMessage-ID: <milter-sendmail@gw.test>\n\nsee https://example.com/cron-report\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail -C %s: %v\n%s", pf.ConfigDir(), err, out)
	}
	r := s.waitRecords(t, 1, 30*time.Second, pf.Maillog)[0]
	qid := maillogQueueIDs(pf.Maillog(t))["milter-sendmail@gw.test"]
	if r.Envelope.Transport != "milter" || r.Envelope.QueueID != qid || r.Message.Subject != "from sendmail" ||
		r.Envelope.MailFrom != "alice@gw.test" || !slices.Equal(r.Envelope.RcptTo, []string{"user@example.net"}) {
		t.Errorf("record envelope %+v, subject %q: want the submitted message through the milter with queue id %s", r.Envelope, r.Message.Subject, qid)
	}
	waitDelivered(t, pf, qid)
	t.Logf("sendmail(1) submission recorded: queue id %s, client_ip %q", r.Envelope.QueueID, r.Envelope.ClientIP)
}

// TestPostfixMilterAddHeader: with --milter-add-header, each message Postfix relays on
// carries exactly one X-Journal-Sensor-Id whose value is the id of the record the sensor
// wrote for it, so a mailbox can be tied back to its record. The header is the only change
// the milter may make: the rest of the message must reach the next hop as the client sent
// it, Postfix's own Received header aside.
func TestPostfixMilterAddHeader(t *testing.T) {
	milterAddr, gatewayAddr, sinkAddr := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail", "--milter-add-header")
	sink := testkit.StartSink(t, sinkAddr)
	// tempfail on both sides: a message the sensor did not record is deferred, never relayed
	// without its header.
	pf := testkit.StartPostfixMilterRelay(t, gatewayAddr,
		testkit.Milter{Addr: "inet:" + milterAddr, DefaultAction: "tempfail", Timeout: 30 * time.Second},
		map[string]string{"example.net": sinkAddr}, "")

	sent := map[string]string{} // Message-ID -> the message as sent, lines ending in LF
	dir := t.TempDir()
	for i := range 3 {
		mid := fmt.Sprintf("add-header-%d@gw.test", i)
		// A folded header and a header named like ours in another case show that the
		// milter neither unfolds, reorders nor replaces what it did not add.
		msg := fmt.Sprintf("From: Alice <alice@gw.test>\nTo: user@example.net\nSubject: add header %d\n"+
			"Date: Mon, 30 Nov 2026 10:0%d:00 +0000\nMessage-ID: <%s>\nX-Folded: first part,\n\tsecond part %d\n"+
			"X-Journal-Sensor-Note: not ours\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n"+
			"message %d, see https://example.com/add-header/%d\n\nlast line\n", i, i, mid, i, i, i)
		// swaks ends the data with its own line end before the final dot.
		data := strings.TrimSuffix(msg, "\n")
		sent[mid] = msg
		file := filepath.Join(dir, fmt.Sprintf("msg%d.eml", i))
		if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := swaks(t, gatewayAddr, "--data", "@"+file); err != nil {
			t.Fatalf("swaks through Postfix: %v\n%s\n%s", err, testkit.LastLines(out, 15), testkit.LastLines(pf.Maillog(t), 20))
		}
	}

	recs := s.waitRecords(t, len(sent), 30*time.Second, pf.Maillog)
	pf.WaitQueueEmpty(t, 30*time.Second)
	log := pf.Maillog(t)
	queueIDs := maillogQueueIDs(log)
	for mid := range sent {
		qid := queueIDs[mid]
		if qid == "" || !regexp.MustCompile(`postfix/smtp\[\d+\]: `+qid+`: to=<user@example.net>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent `).MatchString(log) {
			t.Errorf("message %s (queue id %q) not relayed to smtp-sink:\n%s", mid, qid, testkit.LastLines(log, 20))
		}
	}
	for _, bad := range []string{"milter-reject", "status=deferred", "status=bounced"} {
		if strings.Contains(log, bad) {
			t.Errorf("Postfix's log has %q:\n%s", bad, testkit.LastLines(log, 30))
		}
	}
	// Postfix logs a modification it will not apply, or a milter reply it does not
	// understand, as a warning and goes on: the message would pass without the header.
	if w := regexp.MustCompile(`(?im)^.*warning:.*milter.*$`).FindAllString(log, -1); len(w) > 0 {
		t.Errorf("Postfix's log warns about the milter:\n%s", strings.Join(w, "\n"))
	}

	recordID := map[string]string{}
	for _, r := range recs {
		mid := strings.Trim(r.Message.MessageID, "<>")
		if _, ok := sent[mid]; !ok || r.Envelope.Transport != "milter" || recordID[mid] != "" || r.ID == "" {
			t.Errorf("record %s: message %q, transport %s; want one milter record, with an id, for each message sent", r.ID, mid, r.Envelope.Transport)
		}
		recordID[mid] = r.ID
	}
	delivered := waitSinkMessages(t, sink, len(sent))
	if len(delivered) != len(sent) {
		t.Fatalf("smtp-sink received %d messages, want %d", len(delivered), len(sent))
	}
	for _, d := range delivered {
		fields, body := splitDump(t, d)
		var mid string
		for _, f := range fields {
			if strings.EqualFold(f.name, "Message-ID") {
				mid = strings.Trim(strings.TrimSpace(f.value()), "<>")
			}
		}
		msg, ok := sent[mid]
		if !ok {
			t.Errorf("smtp-sink received a message with Message-ID %q, which was not sent:\n%s", mid, d)
			continue
		}
		var ids []string
		var rest []headerField
		for _, f := range fields {
			if strings.EqualFold(f.name, "X-Journal-Sensor-Id") {
				ids = append(ids, strings.TrimSpace(f.value()))
			} else {
				rest = append(rest, f)
			}
		}
		if len(ids) != 1 || ids[0] != recordID[mid] {
			t.Errorf("message %s: X-Journal-Sensor-Id %q, want exactly one, the record's id %q", mid, ids, recordID[mid])
		}
		// Before the message come smtp-sink's own fields, ending with its Received, then
		// the Received Postfix prepends; what follows must be the client's header as sent.
		var got []string
		received := 0
		for _, f := range rest {
			switch {
			case received < 2 && strings.EqualFold(f.name, "Received"):
				received++
			case received < 2:
			default:
				got = append(got, f.raw)
			}
		}
		wantFields, wantBody := splitDump(t, msg)
		var want []string
		for _, f := range wantFields {
			want = append(want, f.raw)
		}
		if !slices.Equal(got, want) {
			t.Errorf("message %s: header as relayed, our header and the Received ones left out:\n%s\nwant it as sent:\n%s",
				mid, strings.Join(got, ""), strings.Join(want, ""))
		}
		if body != wantBody {
			t.Errorf("message %s: body as relayed %q, want as sent %q", mid, body, wantBody)
		}
	}
	if t.Failed() {
		return
	}
	t.Logf("%d messages relayed through Postfix with X-Journal-Sensor-Id equal to their record's id; e.g. %s: %s",
		len(sent), "add-header-0@gw.test", recordID["add-header-0@gw.test"])
}

// waitSinkMessages waits until smtp-sink has received n messages and returns them.
func waitSinkMessages(t *testing.T, sink *testkit.Sink, n int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		msgs := sink.Messages(t)
		if len(msgs) >= n || time.Now().After(deadline) {
			return msgs
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// headerField is one header field as it appears in a message, continuation lines and line
// ends included.
type headerField struct {
	name, raw string
}

func (f headerField) value() string {
	_, v, _ := strings.Cut(f.raw, ":")
	return strings.Join(strings.Fields(v), " ")
}

// splitDump splits a message (or smtp-sink's dump of one) into its header fields and its
// body, with LF line ends.
func splitDump(t *testing.T, msg string) ([]headerField, string) {
	t.Helper()
	header, body, ok := strings.Cut(strings.ReplaceAll(msg, "\r\n", "\n"), "\n\n")
	if !ok {
		t.Fatalf("no end of header in:\n%s", msg)
	}
	var fields []headerField
	for line := range strings.SplitSeq(header, "\n") {
		if (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t")) && len(fields) > 0 {
			fields[len(fields)-1].raw += line + "\n"
			continue
		}
		name, _, _ := strings.Cut(line, ":")
		fields = append(fields, headerField{name: name, raw: line + "\n"})
	}
	return fields, body
}

// TestMilterLibraryWarningsInSensorFormat: what go-milter logs (through the standard logger)
// must come out as the sensor's own JSON lines, not as plain text in the middle of a JSON
// stream that a log shipper parses. An MTA offering milter protocol 1 makes it log one.
func TestMilterLibraryWarningsInSensorFormat(t *testing.T) {
	milterAddr := testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--log-format", "json")
	c, err := net.Dial("tcp", milterAddr)
	if err != nil {
		t.Fatal(err)
	}
	// A negotiation packet: length 13, 'O', version 1, no actions, no protocol options.
	if _, err := c.Write([]byte{0, 0, 0, 13, 'O', 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Read(make([]byte, 1)) // the sensor closes the connection
	c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var found string
		for line := range strings.SplitSeq(s.logs.String(), "\n") {
			if strings.Contains(line, "protocol 1") {
				found = line
			}
		}
		if found != "" {
			var entry map[string]any
			if err := json.Unmarshal([]byte(found), &entry); err != nil || entry["level"] == nil {
				t.Fatalf("go-milter's warning is not a JSON log line: %q (%v)", found, err)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no warning about the MTA's protocol version in the log:\n%s", s.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
