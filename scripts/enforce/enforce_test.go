//go:build e2e

// Package enforcee2e proves enforcement end to end: the built sensor receives a journal
// report over SMTP, its record reaches `sensor receiver`, a verdict posted there is pulled
// by the sensor, which quarantines every copy in fake Microsoft Graph and Gmail mailboxes
// (including a Bcc recipient and distribution-list members known only from the journal
// report), is killed with SIGKILL mid-run and restarted, reports every outcome, and then
// undoes it all with a restore.
package enforcee2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/fakegmail"
	"github.com/journalsensor/sensor/internal/fakegraph"
	"github.com/journalsensor/sensor/internal/testkit"
)

const (
	token     = "enforce-e2e-token"
	messageID = "<13268020124593518925.93733CB7019D1C46@company.com>"
)

// graphUsers got the message through the distribution list the journal report expanded;
// none of them is in the message's own header. dana got it as a Bcc.
var graphUsers = []string{"lulu.zingzing@company.com", "bob.smith@company.com", "charlie.jones@company.com"}

const gmailUser = "dana@fabrikam.com"

func TestEnforcementEndToEnd(t *testing.T) {
	dir := t.TempDir()

	// The mail platforms, with the delivered copies; frank did not get the message.
	graph := fakegraph.New(t, fakegraph.Options{Tenant: "contoso-tenant", ClientID: "sensor-app", ClientSecret: "s3cret-value"})
	for _, u := range graphUsers {
		graph.AddMessage(u, fakegraph.Message{InternetMessageID: messageID})
	}
	graph.AddMessage("frank@company.com", fakegraph.Message{InternetMessageID: "<other@company.com>"})
	gmail := fakegmail.New(t, fakegmail.Options{Users: []string{gmailUser}})
	gmailRef := gmail.Deliver(gmailUser, messageID, "INBOX", "UNREAD")
	// lulu's mailbox is throttled for a while: the sensor is killed while it waits.
	graph.Throttle("lulu.zingzing@company.com", 1, "4")

	// The pipeline: sensor receiver over TLS.
	pipe := testkit.StartPipeline(t, dir, token, nil)
	pipeline, caFile, outDir := pipe.URL, pipe.CAFile, pipe.OutDir

	// The sensor trusts the fakes' certificates through SSL_CERT_FILE, as a test of a
	// sovereign cloud's endpoints would; the pipeline's CA through --pipeline-ca-file.
	roots := filepath.Join(dir, "fakes.pem")
	writeServerCerts(t, roots, graph.URL(), gmail.URL())
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bin := testkit.BuildSensor(t, dir)
	smtpAddr, adminAddr := testkit.FreePort(t), testkit.FreePort(t)
	providers := []string{"--graph-domain", "company.com", "--graph-tenant", "contoso-tenant", "--graph-client-id", "sensor-app",
		"--graph-client-secret-file", write("graph-secret", []byte("s3cret-value\n")),
		"--graph-login-url", graph.URL(), "--graph-url", graph.URL(),
		"--gmail-domain", "fabrikam.com", "--gmail-credentials-file", write("gmail.json", gmail.Credentials()), "--gmail-url", gmail.URL()}
	args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--smtp-listen", smtpAddr, "--admin-listen", adminAddr,
		"--pipeline-url", pipeline, "--pipeline-token-file", pipe.TokenFile, "--pipeline-ca-file", caFile,
		"--enforce-mode", "enforce", "--verdict-poll", "200ms"}, providers...)
	logs := &testkit.LogBuffer{}
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+roots)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		testkit.WaitListening(t, smtpAddr)
		return cmd
	}
	cmd := start()
	t.Cleanup(func() {
		if cmd != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("sensor log:\n%s", testkit.LastLines(logs.String(), 60))
		}
	})

	// 1-2. The journal report goes in over SMTP; its record reaches the receiver.
	report := journalReport(t)
	if err := smtp.SendMail(smtpAddr, nil, "journal@company.com", []string{"sensor@journal.company.com"}, report); err != nil {
		t.Fatalf("SMTP: %v", err)
	}
	waitFor(t, 30*time.Second, "the record at the receiver", func() bool {
		return bytes.Contains(readFile(t, filepath.Join(outDir, "records.ndjson")), []byte("93733CB7019D1C46@company.com"))
	})

	// sensor enforce, by hand with the same settings: observing changes nothing.
	byHand := func(settings []string, extra ...string) string {
		t.Helper()
		c := exec.Command(bin, append(append([]string{"enforce"}, settings...), extra...)...)
		c.Env = append(os.Environ(), "SSL_CERT_FILE="+roots)
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("sensor enforce %v: %v\n%s", extra, err, out)
		}
		return string(out)
	}
	out := byHand(args[1:], "--message-id", messageID, "--recipient", "bob.smith@company.com", "--action", "quarantine", "--observe")
	if !strings.Contains(out, "bob.smith@company.com\tgraph\tquarantine\tdone") || !strings.Contains(out, "observe") {
		t.Errorf("sensor enforce --observe printed %q", out)
	}
	if msgs := graph.Messages("bob.smith@company.com"); len(msgs) != 1 || msgs[0].ParentFolderID != graph.FolderID("bob.smith@company.com", "inbox") {
		t.Errorf("sensor enforce --observe moved the copy: %+v", msgs)
	}

	// 3. A verdict, with no recipients: the receiver fills them from the journal report.
	quarantine := postVerdict(t, pipeline, caFile, api.Verdict{Action: api.ActionQuarantine, MessageID: messageID, Reason: "e2e"})
	want := append(slices.Clone(graphUsers), gmailUser)
	slices.Sort(want)
	if !slices.Equal(quarantine.Recipients, want) {
		t.Fatalf("verdict recipients %v, want %v (the journal's Bcc and list members)", quarantine.Recipients, want)
	}

	// 4-6. The sensor acts; it is killed once while lulu's mailbox is throttled, then
	// restarted, and finishes.
	waitFor(t, 30*time.Second, "some outcomes before the kill", func() bool {
		return len(outcomes(t, outDir, quarantine.ID)) >= 2
	})
	if got := outcomes(t, outDir, quarantine.ID); got["lulu.zingzing@company.com"] != "" {
		t.Fatalf("lulu's mailbox finished before the kill (%v): the kill would prove nothing", got)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	t.Logf("SIGKILL with outcomes %v", outcomes(t, outDir, quarantine.ID))
	cmd = start()
	waitFor(t, 60*time.Second, "every recipient's quarantine outcome", func() bool {
		return len(outcomes(t, outDir, quarantine.ID)) == len(want)
	})
	for r, status := range outcomes(t, outDir, quarantine.ID) {
		if status != "done" {
			t.Errorf("%s: quarantine %s, want done", r, status)
		}
	}
	for _, u := range graphUsers {
		msgs := graph.Messages(u)
		if len(msgs) != 1 || msgs[0].ParentFolderID != graph.FolderID(u, "Quarantine") {
			t.Errorf("%s: %+v, want its one copy in Quarantine", u, msgs)
		}
		n := 0
		for _, f := range graph.Folders(u) {
			if f.DisplayName == "Quarantine" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%s: %d Quarantine folders after the restart, want 1", u, n)
		}
	}
	if msgs := graph.Messages("frank@company.com"); len(msgs) != 1 || msgs[0].ParentFolderID != graph.FolderID("frank@company.com", "inbox") {
		t.Errorf("frank, who did not get the message, was touched: %+v", msgs)
	}
	labels, _ := gmail.Labels(gmailUser, gmailRef)
	if !slices.Contains(labels, gmail.LabelID(gmailUser, "Quarantine")) || slices.Contains(labels, "INBOX") {
		t.Errorf("gmail labels %v, want Quarantine and no INBOX", labels)
	}

	// 7. A restore puts everything back where it was.
	restore := postVerdict(t, pipeline, caFile, api.Verdict{Action: api.ActionRestore, Undo: quarantine.ID, Reason: "false positive"})
	waitFor(t, 60*time.Second, "every recipient's restore outcome", func() bool {
		return len(outcomes(t, outDir, restore.ID)) == len(want)
	})
	for r, status := range outcomes(t, outDir, restore.ID) {
		if status != "done" {
			t.Errorf("%s: restore %s, want done", r, status)
		}
	}
	for _, u := range graphUsers {
		if msgs := graph.Messages(u); len(msgs) != 1 || msgs[0].ParentFolderID != graph.FolderID(u, "inbox") {
			t.Errorf("%s after restore: %+v, want its copy back in the inbox", u, msgs)
		}
	}
	labels, _ = gmail.Labels(gmailUser, gmailRef)
	slices.Sort(labels)
	if !slices.Equal(labels, []string{"INBOX", "UNREAD"}) {
		t.Errorf("gmail labels after restore %v, want INBOX and UNREAD as before", labels)
	}
	// sensor enforce acts too, with only the providers' settings (no pipeline, and the
	// default --enforce-mode observe, which is serve's): a tag by hand.
	out = byHand(providers, "--message-id", messageID, "--recipient", gmailUser, "--action", "tag", "--tag", "Phish")
	labels, _ = gmail.Labels(gmailUser, gmailRef)
	if !strings.Contains(out, gmailUser+"\tgmail\ttag\tdone") || !slices.Contains(labels, gmail.LabelID(gmailUser, "Phish")) {
		t.Errorf("sensor enforce --action tag printed %q; labels %v", out, labels)
	}
	t.Logf("quarantined %d copies (graph %d, gmail 1) through a SIGKILL, reported and restored; graph requests %d, gmail quota used %d",
		len(want), len(graphUsers), graph.Requests(), gmail.QuotaUsed(gmailUser))
}

// journalReport is the corpus's Exchange journal report of a message expanded to a
// distribution list, with a Bcc recipient at the Google domain added to its summary.
func journalReport(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testkit.CorpusDir(t), "formats", "exo-journal-report-expanded-dl.eml"))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n", "\r\n")
	anchor := "Recipient: charlie.jones@company.com, Expanded: dl-allstaff@company.com\r\n"
	if !strings.Contains(s, anchor) {
		t.Fatal("the corpus journal report changed: its last Recipient line is not there")
	}
	return []byte(strings.Replace(s, anchor, anchor+"Bcc: "+gmailUser+"\r\n", 1))
}

// writeServerCerts writes the certificates the servers at urls present, for SSL_CERT_FILE.
func writeServerCerts(t *testing.T, path string, urls ...string) {
	t.Helper()
	var out bytes.Buffer
	for _, u := range urls {
		c, err := tls.Dial("tcp", strings.TrimPrefix(u, "https://"), &tls.Config{InsecureSkipVerify: true}) // reading the certificate to trust, nothing else
		if err != nil {
			t.Fatal(err)
		}
		_ = pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: c.ConnectionState().PeerCertificates[0].Raw})
		_ = c.Close()
	}
	if err := os.WriteFile(path, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func postVerdict(t *testing.T, pipeline, caFile string, v api.Verdict) api.Verdict {
	t.Helper()
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, pipeline+"/v1/verdicts", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := pipelineClient(t, caFile).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var posted struct {
		Verdicts []api.Verdict `json:"verdicts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&posted); err != nil || resp.StatusCode != http.StatusOK || len(posted.Verdicts) != 1 {
		t.Fatalf("POST /v1/verdicts: %s %v %+v", resp.Status, err, posted)
	}
	return posted.Verdicts[0]
}

func pipelineClient(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pool, err := x509Pool(caFile)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// outcomes reads the receiver's actions.ndjson: recipient → the last status for a verdict.
func outcomes(t *testing.T, outDir, verdictID string) map[string]string {
	t.Helper()
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, filepath.Join(outDir, "actions.ndjson"))))
	for sc.Scan() {
		var o api.Outcome
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("actions.ndjson: %v: %s", err, sc.Text())
		}
		if o.VerdictID == verdictID {
			got[o.Recipient] = o.Status
		}
	}
	return got
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return b
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s after %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func x509Pool(caFile string) (*x509.CertPool, error) {
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no certificate", caFile)
	}
	return pool, nil
}
