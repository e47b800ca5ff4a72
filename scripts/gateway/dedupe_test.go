//go:build e2e

package gateway

import (
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/testkit"
)

// TestPostfixSplitCopiesShareDedupeKey relays one message to 60 recipients through a private
// Postfix that may put at most 50 in one transaction, so the sensor gets it as two copies with
// different envelopes. Both must carry one dedupe key, the key the sensor gives the message
// sent to it directly. A second message that reuses the first one's Message-ID under another
// Date must get a key of its own: senders reuse ids, and the key must not merge their mail.
func TestPostfixSplitCopiesShareDedupeKey(t *testing.T) {
	if _, err := exec.LookPath("postfix"); err != nil {
		t.Fatal("postfix not found: apt-get install -y postfix")
	}
	const limit, nRcpt = 50, 60
	var rcpts []string
	for i := 1; i <= nRcpt; i++ {
		rcpts = append(rcpts, fmt.Sprintf("user%02d@example.net", i))
	}
	message := func(subject, date, text string) []byte {
		return []byte("From: Alice <alice@gw.test>\r\nTo: team@example.net\r\nSubject: " + subject +
			"\r\nMessage-ID: <split-copies@gw.test>\r\nDate: " + date + "\r\n\r\n" + text + "\r\n")
	}
	first := message("split copies", "Wed, 02 Dec 2026 10:00:00 +0000", "the quarterly figures are attached to the wiki")
	reused := message("split copies id reused", "Wed, 02 Dec 2026 11:30:00 +0000", "another message from a sender that reuses ids")

	sensorAddr, sinkAddr, gatewayAddr := testkit.FreePort(t), testkit.FreePort(t), testkit.FreePort(t)
	s := startSensor(t, sensorAddr)
	startSink(t, sinkAddr)
	// The always_bcc copy goes to the sink, so every copy the sensor gets is one of the split
	// deliveries. The limit is written out so that a change of Postfix's default cannot change
	// how the message is split.
	pf := testkit.StartPostfix(t, gatewayAddr, map[string]string{"example.net": sensorAddr, "sensor.test": sinkAddr},
		fmt.Sprintf("smtp_destination_recipient_limit = %d\n", limit)+
			"# A copy the sensor does not answer is deferred after this, and the test fails on it.\nsmtp_data_done_timeout = 30s\n")
	for _, body := range [][]byte{first, reused} {
		if err := sendRawTo(gatewayAddr, "alice@gw.test", rcpts, body); err != nil {
			t.Fatalf("sending to Postfix: %v", err)
		}
	}
	pf.WaitQueueEmpty(t, 90*time.Second)
	log := pf.Maillog(t)
	if strings.Contains(log, "status=deferred") || strings.Contains(log, "status=bounced") {
		t.Fatalf("Postfix deferred or bounced a copy:\n%s", testkit.LastLines(log, 30))
	}

	// Postfix's log says which recipients went in which transaction (the sensor's 250 names
	// the record), so the count of copies does not rest on how long the test waits for more.
	sentTo := map[string][]string{}
	sent := regexp.MustCompile(`to=<([^>]+)>, relay=[^,]*\]:` + regexp.QuoteMeta(sensorAddr[strings.LastIndexByte(sensorAddr, ':')+1:]) +
		`, .*status=sent \(250 2\.0\.0 OK queued as (\S+)\)`)
	for _, m := range sent.FindAllStringSubmatch(log, -1) {
		sentTo[m[2]] = append(sentTo[m[2]], m[1])
	}
	if len(sentTo) != 4 {
		t.Fatalf("Postfix delivered %d transactions to the sensor, want 4 (two messages, %d and %d recipients each):\n%s",
			len(sentTo), limit, nRcpt-limit, testkit.LastLines(log, 30))
	}
	relayed := s.waitRecords(t, len(sentTo), 30*time.Second, pf.Maillog)

	if err := sendRaw(sensorAddr, "alice@gw.test", "journal@sensor.test", first); err != nil {
		t.Fatalf("sending to the sensor directly: %v", err)
	}
	all := s.waitRecords(t, len(relayed)+1, 30*time.Second, pf.Maillog)
	var direct *record
	for i := range all {
		if !slices.ContainsFunc(relayed, func(r record) bool { return r.ID == all[i].ID }) {
			direct = &all[i]
		}
	}
	if len(all) != len(relayed)+1 || direct == nil {
		t.Fatalf("%d records after the direct copy, want %d", len(all), len(relayed)+1)
	}

	bySubject := map[string][]record{}
	for _, r := range relayed {
		if got, want := slices.Sorted(slices.Values(r.Envelope.RcptTo)), slices.Sorted(slices.Values(sentTo[r.ID])); !slices.Equal(got, want) {
			t.Errorf("record %s: recipients %v, Postfix sent it to %v", r.ID, got, want)
		}
		bySubject[r.Message.Subject] = append(bySubject[r.Message.Subject], r)
	}
	keyOf := func(subject string) string {
		t.Helper()
		copies := bySubject[subject]
		if len(copies) != 2 {
			t.Fatalf("%q: %d records, want 2", subject, len(copies))
		}
		var union, sizes []string
		for _, r := range copies {
			union = append(union, r.Envelope.RcptTo...)
			sizes = append(sizes, fmt.Sprint(len(r.Envelope.RcptTo)))
			t.Logf("%q: record %s, %d recipients, dedupe_key %s, sha256 %s", subject, r.ID, len(r.Envelope.RcptTo), r.Message.DedupeKey, r.Message.SHA256)
		}
		slices.Sort(union)
		slices.Sort(sizes)
		if !slices.Equal(union, rcpts) || !slices.Equal(sizes, []string{fmt.Sprint(nRcpt - limit), fmt.Sprint(limit)}) {
			t.Errorf("%q: copies of %v recipients, to %v; want %d and %d, together the %d sent to", subject, sizes, union, limit, nRcpt-limit, nRcpt)
		}
		a, b := copies[0].Message, copies[1].Message
		if a.SHA256 == "" || a.SHA256 != b.SHA256 {
			t.Errorf("%q: sha256 %q and %q, want the same bytes in both copies", subject, a.SHA256, b.SHA256)
		}
		if a.DedupeKey == "" || a.DedupeKey != b.DedupeKey {
			t.Errorf("%q: dedupe_key %q and %q, want one key for both copies", subject, a.DedupeKey, b.DedupeKey)
		}
		return a.DedupeKey
	}
	firstKey, reusedKey := keyOf("split copies"), keyOf("split copies id reused")
	if firstKey == reusedKey {
		t.Errorf("two messages with one Message-ID and different Dates share dedupe_key %s", firstKey)
	}

	// Postfix's Received field makes the relayed bytes differ from the direct copy's, so only
	// a key that leaves trace fields and the envelope out can match here.
	if direct.Message.SHA256 == bySubject["split copies"][0].Message.SHA256 {
		t.Errorf("the direct copy has the relayed copies' sha256 %s; the comparison below would not show the key ignores what relays add", direct.Message.SHA256)
	}
	t.Logf("direct copy: record %s, recipients %v, dedupe_key %s, sha256 %s", direct.ID, direct.Envelope.RcptTo, direct.Message.DedupeKey, direct.Message.SHA256)
	if direct.Message.DedupeKey != firstKey {
		t.Errorf("direct copy: dedupe_key %q, the relayed copies' %q", direct.Message.DedupeKey, firstKey)
	}
}
