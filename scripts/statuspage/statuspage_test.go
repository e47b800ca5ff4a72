//go:build e2e

// Package statuspage opens the built sensor's status page in a real browser (headless
// Chromium): the page must show the sensor's figures and follow them as mail arrives, and,
// with --admin-token-file, ask for the token, show data once given the right one and say so
// plainly when given a wrong one. Desktop and phone screenshots go to $SENSOR_ARTIFACTS for a
// person to look at.
package statuspage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// pageWait bounds each wait for the page to show something: the page polls /status every
// 5 s, so two polls and some slack.
const pageWait = 20 * time.Second

type sensorProc struct {
	smtp, admin string
	logs        *bytes.Buffer
}

// buildSensor builds the sensor binary once for the test.
func buildSensor(t *testing.T) string {
	t.Helper()
	bin := testkit.BuildSensor(t, t.TempDir())
	return bin
}

// startSensor starts bin serving SMTP and the admin server on free loopback ports.
func startSensor(t *testing.T, bin string, args ...string) *sensorProc {
	t.Helper()
	dir := t.TempDir()
	s := &sensorProc{smtp: testkit.FreePort(t), admin: testkit.FreePort(t), logs: &bytes.Buffer{}}
	cmd := exec.Command(bin, append([]string{"serve", "--data-dir", filepath.Join(dir, "data"),
		"--smtp-listen", s.smtp, "--admin-listen", s.admin}, args...)...)
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sensor log:\n%s", testkit.LastLines(s.logs.String(), 40))
		}
	})
	testkit.WaitListening(t, s.smtp)
	testkit.WaitListening(t, s.admin)
	return s
}

// status reads /status as a script would, to compare the page with.
func (s *sensorProc) status(t *testing.T, token string) map[string]any {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+s.admin+"/status", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("/status: %d, %v", resp.StatusCode, err)
	}
	return st
}

// browser starts headless Chromium for the test. CI runs as root, where Chromium's sandbox
// cannot start, hence NoSandbox; the page it opens is our own, on loopback.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := "/usr/bin/chromium"
	if _, err := os.Stat(path); err != nil {
		if path, err = exec.LookPath("chromium"); err != nil {
			t.Fatalf("Chromium is not installed (/usr/bin/chromium, or chromium on PATH): the status page is tested in a real browser; apt-get install chromium")
		}
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // starts the browser now, so a failure says so
		t.Fatalf("starting Chromium at %s: %v", path, err)
	}
	return ctx
}

// artifacts is where the screenshots go: $SENSOR_ARTIFACTS, else a temporary directory.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SENSOR_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return dir
}

func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, pageWait)
	defer cancel()
	if err := chromedp.Do(c, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// text is the visible text of the element with this id.
func text(ctx context.Context, id string) (string, error) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(c, chromedp.Text(chromedp.ID(id)))
	return strings.TrimSpace(s), err
}

// state is the page's own account of where it stands: loading, ok, token-required,
// token-wrong or offline.
func state(ctx context.Context) (string, error) {
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(c, chromedp.Evaluate[string](`document.body.dataset.state`))
}

// waitText waits until the element with this id shows what ok accepts, and returns it.
func waitText(t *testing.T, ctx context.Context, id, want string, ok func(string) bool) string {
	t.Helper()
	deadline := time.Now().Add(pageWait)
	for {
		got, err := text(ctx, id)
		if err == nil && ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("#%s shows %q (%v) after %s, want %s", id, got, err, pageWait, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func waitState(t *testing.T, ctx context.Context, want string) {
	t.Helper()
	deadline := time.Now().Add(pageWait)
	for {
		got, err := state(ctx)
		if err == nil && got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("page state %q (%v) after %s, want %q", got, err, pageWait, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// screenshots saves the whole page at desktop width and at a phone's, as name-desktop.png
// and name-phone.png, and leaves the desktop viewport set.
func screenshots(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	for _, v := range []struct {
		kind string
		set  chromedp.Action[chromedp.Void]
	}{
		{"desktop", chromedp.EmulateViewport(1280, 900)},
		{"phone", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2), chromedp.EmulateTouch)},
	} {
		do(t, ctx, "viewport "+v.kind, v.set, chromedp.Sleep(300*time.Millisecond))
		c, cancel := context.WithTimeout(ctx, pageWait)
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			t.Fatalf("screenshot %s: %v", v.kind, err)
		}
		file := filepath.Join(dir, name+"-"+v.kind+".png")
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s", file)
	}
	do(t, ctx, "viewport desktop", chromedp.EmulateViewport(1280, 900))
}

func sendMail(t *testing.T, addr string, n int) {
	t.Helper()
	for i := range n {
		msg := fmt.Sprintf("From: alice@example.org\r\nTo: journal@sensor.test\r\nSubject: status page %d\r\n"+
			"Message-ID: <status-page-%d-%d@example.org>\r\n\r\nHello %d.\r\n", i, time.Now().UnixNano(), i, i)
		if err := smtp.SendMail(addr, nil, "alice@example.org", []string{"journal@sensor.test"}, []byte(msg)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
}

// The page shows a fresh sensor's version and no mail, then follows three messages sent over
// SMTP: the accepted count, a rate, and the SMTP door's last message.
func TestStatusPageFollowsTheMail(t *testing.T) {
	dir := artifacts(t)
	s := startSensor(t, buildSensor(t))
	version, _ := s.status(t, "")["version"].(string)
	if version == "" {
		t.Fatal("/status has no version")
	}
	ctx := browser(t)
	do(t, ctx, "open the page", chromedp.Navigate("http://"+s.admin+"/"))
	waitText(t, ctx, "version", fmt.Sprintf("%q", version), func(v string) bool { return v == version })
	waitText(t, ctx, "accepted-total", `"0"`, func(v string) bool { return v == "0" })
	if got, _ := text(ctx, "door-smtp"); got != "none yet" {
		t.Errorf("SMTP door before any mail: %q, want none yet", got)
	}
	if got, _ := text(ctx, "upload-state"); got != "Up to date" {
		t.Errorf("upload state of an idle sensor: %q, want Up to date", got)
	}

	sendMail(t, s.smtp, 3)
	waitText(t, ctx, "accepted-total", `"3"`, func(v string) bool { return v == "3" })
	if got, _ := text(ctx, "door-smtp"); !strings.HasSuffix(got, " ago") {
		t.Errorf("SMTP door after three messages: %q, want a time ago", got)
	}
	if got, _ := text(ctx, "door-smtp-at"); !strings.HasPrefix(got, "at ") {
		t.Errorf("SMTP door's clock time: %q", got)
	}
	if got, _ := text(ctx, "door-milter"); got != "none yet" {
		t.Errorf("milter door: %q, want none yet", got)
	}
	if got, _ := text(ctx, "accepted-rate"); got == "—" || got == "0" {
		t.Errorf("accepted per minute after three messages: %q, want a rate", got)
	}
	if got, _ := text(ctx, "refused-rate"); got != "0" {
		t.Errorf("refused per minute: %q, want 0", got)
	}
	// The outbox takes the records: the upload card says so once they are delivered.
	waitText(t, ctx, "delivered-total", `"3"`, func(v string) bool { return v == "3" })
	if got, _ := text(ctx, "last-delivery"); !strings.HasSuffix(got, " ago") {
		t.Errorf("last upload: %q, want a time ago", got)
	}
	screenshots(t, ctx, dir, "status")
}

// With --admin-token-file the page asks for the token, says so plainly when it is wrong, and
// shows the figures once it is right; the token stays out of the URL.
func TestStatusPageAsksForTheToken(t *testing.T) {
	dir := artifacts(t)
	const token = "adm-status-page-0123456789"
	tokenFile := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSensor(t, buildSensor(t), "--admin-token-file", tokenFile)
	version, _ := s.status(t, token)["version"].(string)
	ctx := browser(t)
	do(t, ctx, "open the page", chromedp.Navigate("http://"+s.admin+"/"))

	waitState(t, ctx, "token-required")
	if got, _ := text(ctx, "auth-title"); got != "Admin token required" {
		t.Errorf("auth title %q", got)
	}
	if got, _ := text(ctx, "version"); got != "—" {
		t.Errorf("version shown without a token: %q", got)
	}
	screenshots(t, ctx, dir, "token-required")

	do(t, ctx, "enter a wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.ID("token-submit")))
	waitState(t, ctx, "token-wrong")
	if got, _ := text(ctx, "auth-title"); got != "Wrong token" {
		t.Errorf("after a wrong token the title says %q, want Wrong token", got)
	}
	if got, _ := text(ctx, "auth-msg"); !strings.Contains(got, "refused") {
		t.Errorf("after a wrong token the message says %q", got)
	}
	// The page says so until someone acts: not replaced by "token required" at the next
	// refresh.
	time.Sleep(6 * time.Second)
	if got, _ := state(ctx); got != "token-wrong" {
		t.Errorf("a refresh after a wrong token: state %q, want token-wrong still", got)
	}
	screenshots(t, ctx, dir, "token-wrong")

	do(t, ctx, "enter the token", chromedp.SendKeys(chromedp.ID("token"), token), chromedp.Click(chromedp.ID("token-submit")))
	waitState(t, ctx, "ok")
	waitText(t, ctx, "version", fmt.Sprintf("%q", version), func(v string) bool { return v == version })
	waitText(t, ctx, "accepted-total", `"0"`, func(v string) bool { return v == "0" })
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(c, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(loc, token) {
		t.Errorf("the token is in the URL: %s", loc)
	}
	stored, err := chromedp.Run(c, chromedp.Evaluate[string](`sessionStorage.getItem("journal-sensor-admin-token") || ""`))
	if err != nil || stored != token {
		t.Errorf("sessionStorage holds %q (%v), want the token", stored, err)
	}
	// The token is kept for the tab: a reload shows the data without asking again.
	do(t, ctx, "reload", chromedp.Reload())
	waitState(t, ctx, "ok")
}

// With the pipeline down, the page says uploads are retrying and why in plain words, and
// shows the backlog and how long its oldest record has waited.
func TestStatusPageShowsAStuckUpload(t *testing.T) {
	dir := artifacts(t)
	tokenFile := filepath.Join(t.TempDir(), "pipeline-token")
	if err := os.WriteFile(tokenFile, []byte("pipeline-token-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	down := testkit.FreePort(t) // nothing listens there
	s := startSensor(t, buildSensor(t), "--pipeline-url", "https://"+down, "--pipeline-token-file", tokenFile)
	ctx := browser(t)
	do(t, ctx, "open the page", chromedp.Navigate("http://"+s.admin+"/"))
	waitText(t, ctx, "accepted-total", `"0"`, func(v string) bool { return v == "0" })
	sendMail(t, s.smtp, 2)
	waitText(t, ctx, "upload-state", "Retrying", func(v string) bool { return v == "Retrying" })
	if got, _ := text(ctx, "last-error"); !strings.Contains(got, "refused the connection") {
		t.Errorf("last error in words: %q, want the pipeline refused the connection", got)
	}
	if got, _ := text(ctx, "last-error-raw"); strings.Contains(got, "pipeline-token-0123456789") {
		t.Errorf("the error shows the pipeline token: %q", got)
	}
	waitText(t, ctx, "oldest-age", "an age", func(v string) bool { return strings.HasSuffix(v, " s") || strings.HasSuffix(v, " min") })
	if got, _ := text(ctx, "last-delivery"); got != "none yet" {
		t.Errorf("last success with the pipeline down: %q, want none yet", got)
	}
	screenshots(t, ctx, dir, "upload-stuck")
}
