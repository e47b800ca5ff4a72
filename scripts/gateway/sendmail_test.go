//go:build e2e

package gateway

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// sendmailRoot is where Sendmail is unpacked: Debian's sendmail-bin conflicts with postfix
// (both are the system MTA), so .ci/run unpacks sendmail-bin and sendmail-cf (apt-get
// download, dpkg -x) and names the directory in $SENSOR_SENDMAIL_DIR. It returns the
// binary and the directory of the cf macros.
func sendmailRoot(t *testing.T) (bin, cfDir string) {
	t.Helper()
	root := os.Getenv("SENSOR_SENDMAIL_DIR")
	if root == "" {
		root = "/"
		if _, err := os.Stat("/usr/libexec/sendmail/sendmail"); err != nil {
			t.Fatal("Sendmail not found: set SENSOR_SENDMAIL_DIR to a directory holding sendmail-bin and sendmail-cf " +
				"(apt-get download sendmail-bin sendmail-cf; dpkg -x each into it; apt-get install m4 liblockfile1 libwrap0)")
		}
	}
	bin = filepath.Join(root, "usr/libexec/sendmail/sendmail")
	cfDir = filepath.Join(root, "usr/share/sendmail/cf")
	for _, p := range []string{bin, filepath.Join(cfDir, "m4/cf.m4")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Sendmail: %v", err)
		}
	}
	for _, tool := range []string{"m4", "unshare", "hostname"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: apt-get install -y m4 util-linux hostname", tool)
		}
	}
	return bin, cfDir
}

var sendmailAccepted = regexp.MustCompile(`(?m)^<-  250 2\.0\.0 (\w+) Message accepted for delivery`)

// TestSendmailMilter puts the sensor behind a private Sendmail as its INPUT_MAIL_FILTER
// and sends one message with swaks. Sendmail keeps what it accepts in its own queue and
// delivers nothing (DeliveryMode queueonly): the milter runs during the SMTP session, before
// the message is queued, so delivery has nothing to prove here. The record must say
// transport milter, the queue id Sendmail named in its 250 reply, and the client's address.
func TestSendmailMilter(t *testing.T) {
	bin, cfDir := sendmailRoot(t)
	milterAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t)
	s := startMilterSensor(t, "tcp:"+milterAddr, "--milter-on-fault", "tempfail")

	dir := t.TempDir()
	queue := filepath.Join(dir, "queue")
	if err := os.Mkdir(queue, 0o700); err != nil {
		t.Fatal(err)
	}
	milterHost, milterPort, _ := strings.Cut(milterAddr, ":")
	gatewayHost, gatewayPort, _ := strings.Cut(gatewayAddr, ":")
	// Every path is the test's own, so nothing of a system Sendmail is read or written.
	// F=T: a milter that cannot answer makes Sendmail answer 4xx, so a copy the sensor did
	// not see fails the test instead of passing unseen. accept_unresolvable_domains: gw.test
	// has no DNS.
	mc := strings.Join([]string{
		"OSTYPE(`linux')",
		"define(`confDOMAIN_NAME', `sendmail.gw.test')",
		"define(`QUEUE_DIR', `" + queue + "')",
		"define(`STATUS_FILE', `" + filepath.Join(dir, "statistics") + "')",
		"define(`confPID_FILE', `" + filepath.Join(dir, "sendmail.pid") + "')",
		"define(`ALIAS_FILE', `')",
		"define(`HELP_FILE', `')",
		"define(`confDELIVERY_MODE', `queueonly')",
		"DAEMON_OPTIONS(`Name=MTA, Addr=" + gatewayHost + ", Port=" + gatewayPort + "')",
		"INPUT_MAIL_FILTER(`sensor', `S=inet:" + milterPort + "@" + milterHost + ", F=T, T=C:10s;S:10s;R:10s;E:30s')",
		"FEATURE(`no_default_msa')",
		"FEATURE(`accept_unresolvable_domains')",
		"MAILER(`smtp')",
	}, "dnl\n") + "dnl\n"
	if err := os.WriteFile(filepath.Join(dir, "sensor.mc"), []byte(mc), 0o644); err != nil {
		t.Fatal(err)
	}
	var m4Errors bytes.Buffer
	m4 := exec.Command("m4", "-D_CF_DIR_="+cfDir+"/", filepath.Join(cfDir, "m4/cf.m4"), filepath.Join(dir, "sensor.mc"))
	m4.Stderr = &m4Errors
	cf, err := m4.Output()
	if err != nil || m4Errors.Len() > 0 {
		t.Fatalf("m4: %v\n%s", err, m4Errors.String())
	}
	cfFile := filepath.Join(dir, "sendmail.cf")
	if err := os.WriteFile(cfFile, cf, 0o644); err != nil {
		t.Fatal(err)
	}

	// Sendmail qualifies the machine's host name before it reads its configuration, and
	// when the name has no dot and nothing qualifies it, it sleeps a minute before it
	// listens. A UTS namespace of its own gives it a dotted name without touching the
	// machine's. -bD: a daemon that stays in the foreground, so the test can end it.
	var out bytes.Buffer
	cmd := exec.Command("unshare", "--uts", "sh", "-c", `hostname sendmail.gw.test && exec "$0" -bD -C "$1"`, bin, cfFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("Sendmail's output:\n%s", testkit.LastLines(out.String(), 30))
		}
	})
	testkit.WaitListening(t, gatewayAddr)

	start := time.Now()
	transcript, err := swaks(t, gatewayAddr, "--header", "Subject: through sendmail", "--header", "Message-Id: <sendmail-milter@gw.test>",
		"--body", "pay at https://pay.example.com/invoice?id=9")
	if err != nil {
		t.Fatalf("swaks through Sendmail: %v\n%s", err, testkit.LastLines(transcript, 15))
	}
	m := sendmailAccepted.FindStringSubmatch(transcript)
	if m == nil {
		t.Fatalf("Sendmail's reply to the message names no queue id:\n%s", testkit.LastLines(transcript, 10))
	}
	qid := m[1]
	// The message is in Sendmail's queue: it took it, and the milter did not reject it.
	if _, err := os.Stat(filepath.Join(queue, "qf"+qid)); err != nil {
		t.Errorf("Sendmail's queue: %v", err)
	}

	noLog := func(testing.TB) string { return "(Sendmail logs to syslog only)\n" + transcript }
	recs := s.waitRecords(t, 1, 30*time.Second, noLog)
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if r.Envelope.Transport != "milter" || r.Envelope.QueueID != qid || r.Envelope.ClientIP != "127.0.0.1" ||
		r.Envelope.MailFrom != "alice@gw.test" || !slices.Equal(r.Envelope.RcptTo, []string{"user@example.net"}) {
		t.Errorf("envelope %+v, want milter, queue id %s, from 127.0.0.1, alice@gw.test to user@example.net", r.Envelope, qid)
	}
	if r.Message.Subject != "through sendmail" || r.Message.MessageID != "<sendmail-milter@gw.test>" || len(r.URLs) != 1 {
		t.Errorf("message %+v, urls %+v; want the message swaks sent, with its one URL", r.Message, r.URLs)
	}
	t.Logf("Sendmail: %q; recorded in %s: transport %s, queue id %s, client %s",
		strings.TrimPrefix(m[0], "<-  "), time.Since(start).Round(time.Millisecond), r.Envelope.Transport, r.Envelope.QueueID, r.Envelope.ClientIP)
}
