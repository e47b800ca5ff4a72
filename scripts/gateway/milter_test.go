//go:build e2e

package gateway

import (
	"os/exec"
	"regexp"
	"strings"
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
