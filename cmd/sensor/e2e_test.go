package main

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

type e2e struct {
	t       *testing.T
	dataDir string
	outDir  string
	smtp    string
	admin   string
	logs    *testkit.LogBuffer
	// stop cancels serve's context, as SIGTERM does, and returns what serve returned.
	stop func() error
}

// startE2E runs the reference receiver over HTTPS with a bearer token, and `sensor serve`
// (the real wiring, flags and all) pointed at it.
func startE2E(t *testing.T, extraFlags ...string) *e2e {
	t.Helper()
	dir := t.TempDir()
	e := &e2e{t: t, dataDir: filepath.Join(dir, "data"), outDir: filepath.Join(dir, "out"), logs: &testkit.LogBuffer{}}
	token := "e2e-" + hex.EncodeToString(randomBytes(t, 8))
	pipe := testkit.StartPipeline(t, dir, token, slog.New(slog.NewTextHandler(e.logs, nil)))
	e.outDir = pipe.OutDir

	cfg, err := loadServeConfig(append([]string{
		"--data-dir", e.dataDir,
		"--smtp-listen", "127.0.0.1:0",
		"--admin-listen", "127.0.0.1:0",
		"--pipeline-url", pipe.URL,
		"--pipeline-token-file", pipe.TokenFile,
		"--pipeline-ca-file", pipe.CAFile,
	}, extraFlags...), io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.NewTextHandler(e.logs, nil)), func(s, a net.Addr) {
			e.smtp, e.admin = s.String(), a.String()
			close(ready)
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("sensor did not become ready")
	}
	var once sync.Once
	var serveErr error
	e.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		if err := e.stop(); err != nil {
			t.Errorf("serve returned %v on shutdown", err)
		}
		if t.Failed() {
			t.Logf("logs:\n%s", e.logs.String())
		}
	})
	if strings.Contains(e.logs.String(), token) {
		t.Error("the bearer token appears in the log")
	}
	return e
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// send delivers msg over SMTP and returns the record id from the 250 reply and the client's
// local port.
func (e *e2e) send(from string, to []string, msg string) (id string, port int) {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.smtp)
	if err != nil {
		e.t.Fatal(err)
	}
	port = conn.LocalAddr().(*net.TCPAddr).Port
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.e2e.test"); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Mail(from, nil); err != nil {
		e.t.Fatal(err)
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			e.t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := io.WriteString(w, msg); err != nil {
		e.t.Fatal(err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		e.t.Fatalf("DATA: %v", err)
	}
	m := regexp.MustCompile(`queued as ([0-9A-Z]{26})$`).FindStringSubmatch(resp.StatusText)
	if m == nil {
		e.t.Fatalf("250 reply %q names no record id", resp.StatusText)
	}
	if err := c.Quit(); err != nil {
		e.t.Fatal(err)
	}
	return m[1], port
}

// await polls the receiver's output until the record arrives. Only complete lines count: the
// receiver may be in the middle of appending the one we want.
func (e *e2e) await(id string) (rec map[string]any, raw []byte, took time.Duration) {
	e.t.Helper()
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		data, err := os.ReadFile(filepath.Join(e.outDir, "records.ndjson"))
		if err == nil {
			complete := data[:bytes.LastIndexByte(data, '\n')+1]
			for _, line := range bytes.Split(complete, []byte("\n")) {
				if bytes.Contains(line, []byte(`"id":"`+id+`"`)) {
					raw = line
				}
			}
		}
		if raw != nil {
			if err := json.Unmarshal(raw, &rec); err != nil {
				e.t.Fatal(err)
			}
			return rec, raw, time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	e.t.Fatalf("record %s never reached the receiver", id)
	return nil, nil, 0
}

const e2eSecret = "Please wire the funds before the auditors arrive on Friday"

func TestEndToEnd(t *testing.T) {
	e := startE2E(t)
	pdf := append([]byte("%PDF-1.7\n"), randomBytes(t, 40_000)...)
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89")
	msg := strings.ReplaceAll(`Return-Path: <bounce@sender.example>
From: =?utf-8?q?Caf=C3=A9_Finance?= <billing@sender.example>
Reply-To: collect@elsewhere.example
To: "Victim, A." <a.victim@corp.example>, b@corp.example
Cc: cfo@corp.example
Subject: =?utf-8?b?w5xiZXJ3ZWlzdW5n?= due
Message-ID: <e2e-1@sender.example>
Date: Tue, 03 Feb 2026 10:11:12 +0100
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: multipart/related; boundary="b2"

--b2
Content-Type: multipart/alternative; boundary="b3"

--b3
Content-Type: text/plain; charset=utf-8

`+e2eSecret+`
Pay here: https://pay.evil.example/invoice?id=42
--b3
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>`+e2eSecret+`</p><a href=3D"https://login.evil.example/o365?x=3D1&amp;y=3D2">Open</a><img src=3D"cid:logo">
--b3--
--b2
Content-Type: image/png
Content-ID: <logo>
Content-Disposition: inline
Content-Transfer-Encoding: base64

`+base64.StdEncoding.EncodeToString(png)+`
--b2--
--b1
Content-Type: application/pdf; name="Invoice 42.pdf"
Content-Disposition: attachment; filename="Invoice 42.pdf"
Content-Transfer-Encoding: base64

`+wrap(base64.StdEncoding.EncodeToString(pdf))+`
--b1--
`, "\n", "\r\n")

	id, port := e.send("bounce@sender.example", []string{"journal@sensor.test", "journal2@sensor.test"}, msg)
	rec, raw, took := e.await(id)
	t.Logf("record reached the receiver %s after the 250", took.Round(time.Millisecond))

	sum := func(b []byte) (string, string, string) {
		m, s1, s2 := md5.Sum(b), sha1.Sum(b), sha256.Sum256(b)
		return hex.EncodeToString(m[:]), hex.EncodeToString(s1[:]), hex.EncodeToString(s2[:])
	}
	pdfMD5, pdfSHA1, pdfSHA256 := sum(pdf)
	pngMD5, pngSHA1, pngSHA256 := sum(png)
	_, _, msgSHA256 := sum([]byte(msg))
	hostname, _ := os.Hostname()

	want := map[string]any{
		"schema": "sensor.record/v1",
		"id":     id,
		"sensor": map[string]any{"id": hostname, "version": "dev"},
		"envelope": map[string]any{
			"transport": "smtp", "client_ip": "127.0.0.1", "client_port": float64(port), "helo": "client.e2e.test",
			"mail_from": "bounce@sender.example", "rcpt_to": []any{"journal@sensor.test", "journal2@sensor.test"},
			"size": float64(len(msg)),
		},
		"source": map[string]any{"kind": "direct"},
		"message": map[string]any{
			"message_id":  "<e2e-1@sender.example>",
			"date":        "2026-02-03T10:11:12+01:00",
			"subject":     "Überweisung due",
			"from":        []any{map[string]any{"name": "Café Finance", "address": "billing@sender.example"}},
			"reply_to":    []any{map[string]any{"address": "collect@elsewhere.example"}},
			"to":          []any{map[string]any{"name": "Victim, A.", "address": "a.victim@corp.example"}, map[string]any{"address": "b@corp.example"}},
			"cc":          []any{map[string]any{"address": "cfo@corp.example"}},
			"return_path": "bounce@sender.example",
			"headers": []any{
				[]any{"Return-Path", "<bounce@sender.example>"},
				[]any{"From", "Café Finance <billing@sender.example>"},
				[]any{"Reply-To", "collect@elsewhere.example"},
				[]any{"To", `"Victim, A." <a.victim@corp.example>, b@corp.example`},
				[]any{"Cc", "cfo@corp.example"},
				[]any{"Subject", "Überweisung due"},
				[]any{"Message-ID", "<e2e-1@sender.example>"},
				[]any{"Date", "Tue, 03 Feb 2026 10:11:12 +0100"},
				[]any{"MIME-Version", "1.0"},
				[]any{"Content-Type", `multipart/mixed; boundary="b1"`},
			},
			"size":       float64(len(msg)),
			"sha256":     msgSHA256,
			"structure":  "multipart/mixed(multipart/related(multipart/alternative(text/plain,text/html),image/png),application/pdf)",
			"dedupe_key": e2eDedupeKey("e2e-1@sender.example", "2026-02-03T09:11:12Z", "billing@sender.example", pngSHA256, pdfSHA256),
		},
		"attachments": []any{
			map[string]any{"path": "1.2", "content_type": "image/png", "detected_type": "image/png", "disposition": "inline",
				"content_id": "logo", "size": float64(len(png)), "md5": pngMD5, "sha1": pngSHA1, "sha256": pngSHA256},
			map[string]any{"path": "2", "filename": "Invoice 42.pdf", "content_type": "application/pdf", "detected_type": "application/pdf",
				"disposition": "attachment", "size": float64(len(pdf)), "md5": pdfMD5, "sha1": pdfSHA1, "sha256": pdfSHA256},
		},
		"urls": []any{
			map[string]any{"url": "https://pay.evil.example/invoice?id=42", "host": "pay.evil.example", "sources": []any{"text"}, "count": float64(1)},
			map[string]any{"url": "https://login.evil.example/o365?x=1&y=2", "host": "login.evil.example", "sources": []any{"html"}, "count": float64(1)},
		},
	}
	receivedAt, _ := rec["received_at"].(string)
	if ts, err := time.Parse("2006-01-02T15:04:05.000Z", receivedAt); err != nil || time.Since(ts) > time.Minute {
		t.Errorf("received_at %q", receivedAt)
	}
	delete(rec, "received_at")
	for k := range union(want, rec) {
		if !reflect.DeepEqual(want[k], rec[k]) {
			g, _ := json.Marshal(rec[k])
			w, _ := json.Marshal(want[k])
			t.Errorf("%s:\n got  %s\n want %s", k, g, w)
		}
	}

	if bytes.Contains(raw, []byte("auditors")) {
		t.Error("body text reached the pipeline")
	}
	e.assertNowhere(e2eSecret)

	// The receiver stores the record before the sensor reads the 200, so poll.
	want1 := []string{"sensor_smtp_messages_accepted_total 1", "sensor_upload_records_delivered_total 1", "sensor_spool_pending_batches 0",
		"sensor_upload_delivery_latency_seconds_count 1"}
	var metrics []byte
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
		resp, err := http.Get("http://" + e.admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if containsAll(metrics, want1) {
			break
		}
	}
	if !containsAll(metrics, want1) {
		t.Errorf("metrics lack one of %q:\n%s", want1, metrics)
	}
}

func containsAll(b []byte, lines []string) bool {
	for _, l := range lines {
		if !bytes.Contains(b, []byte(l+"\n")) {
			return false
		}
	}
	return true
}

func TestEndToEndJournalReport(t *testing.T) {
	e := startE2E(t)
	msg := strings.ReplaceAll(`From: Microsoft Outlook <MicrosoftExchange@tenant.example>
To: journal@sensor.test
Subject: =?utf-8?q?Re=3A_Fusion_confidentielle?=
X-MS-Journal-Report:
Content-Type: multipart/mixed; boundary="jr"

--jr
Content-Type: text/plain; charset="us-ascii"
Content-Transfer-Encoding: 7bit

Sender: ceo@tenant.example
Subject: Re: Fusion confidentielle
Message-Id: <merger-7@tenant.example>
To: board@tenant.example, Expanded: directors@tenant.example
Cc: counsel@law.example
Bcc: quiet.investor@elsewhere.example
Recipient: ceo@tenant.example, Forwarded: ceo.old@tenant.example
On-Behalf-Of: assistant@tenant.example

--jr
Content-Type: message/rfc822

From: CEO <ceo@tenant.example>
To: directors@tenant.example
Cc: counsel@law.example
Subject: Re: Fusion confidentielle
Message-ID: <merger-7@tenant.example>
Date: Wed, 04 Feb 2026 08:00:00 +0000
Content-Type: text/plain

`+e2eSecret+` https://dataroom.example/merger
--jr--
`, "\n", "\r\n")
	id, _ := e.send("journal-ndr@tenant.example", []string{"journal@sensor.test"}, msg)
	rec, _, took := e.await(id)
	t.Logf("journal record reached the receiver %s after the 250", took.Round(time.Millisecond))

	var got struct {
		Source  api.Source  `json:"source"`
		Journal api.Journal `json:"journal"`
		Message api.Message `json:"message"`
		URLs    []api.URL   `json:"urls"`
	}
	b, _ := json.Marshal(rec)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	wantJ := api.Journal{
		Sender: "ceo@tenant.example", Subject: "Re: Fusion confidentielle", MessageID: "<merger-7@tenant.example>",
		OnBehalfOf: "assistant@tenant.example",
		Recipients: []api.JournalRecipient{
			{Address: "board@tenant.example", Type: "to", ExpandedFrom: "directors@tenant.example"},
			{Address: "counsel@law.example", Type: "cc"},
			{Address: "quiet.investor@elsewhere.example", Type: "bcc"},
			{Address: "ceo@tenant.example", Type: "recipient", ForwardedFrom: "ceo.old@tenant.example"},
		},
	}
	if got.Source.Kind != "exchange_journal" || !reflect.DeepEqual(got.Journal, wantJ) {
		t.Errorf("source %+v\njournal  %+v\nwant     %+v", got.Source, got.Journal, wantJ)
	}
	if got.Message.Subject != "Re: Fusion confidentielle" || got.Message.MessageID != "<merger-7@tenant.example>" ||
		len(got.Message.From) != 1 || got.Message.From[0].Address != "ceo@tenant.example" {
		t.Errorf("message must describe the original: %+v", got.Message)
	}
	if len(got.URLs) != 1 || got.URLs[0].URL != "https://dataroom.example/merger" {
		t.Errorf("urls %+v", got.URLs)
	}
	e.assertNowhere(e2eSecret)
}

// assertNowhere checks that s appears in no file under the data and output directories and
// not in the logs.
func (e *e2e) assertNowhere(s string) {
	e.t.Helper()
	for _, root := range []string{e.dataDir, e.outDir} {
		filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				e.t.Error(err)
				return nil
			}
			if bytes.Contains(b, []byte(s)) {
				e.t.Errorf("body text found in %s", path)
			}
			return nil
		})
	}
	if strings.Contains(e.logs.String(), s) {
		e.t.Error("body text found in the logs")
	}
}

func wrap(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}

func union(a, b map[string]any) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

// e2eDedupeKey writes out docs/dedupe-key.md's v1 encoding for a message with one From
// address, so the record's key is checked against the document rather than the parser. The
// PDF is random, so the key cannot be a literal here.
func e2eDedupeKey(id, utcDate, from string, attachments ...string) string {
	slices.Sort(attachments)
	ns := func(s string) string { return strconv.Itoa(len(s)) + ":" + s + "," }
	c := ns("dedupe-key/v1") + ns(id) + ns(utcDate) + ns("1") + ns(from) + ns(strconv.Itoa(len(attachments)))
	for _, a := range attachments {
		c += ns(a)
	}
	sum := sha256.Sum256([]byte(c))
	return "v1:" + hex.EncodeToString(sum[:])
}
