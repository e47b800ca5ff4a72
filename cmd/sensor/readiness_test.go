package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// When the spool cannot commit (its disk full or read-only; here its tmp/ directory replaced
// by a file, which stops root too), copies get 451 and /readyz must say so, with the reason in
// /status and one log line for the change however often it is asked. Once the spool can write
// again readiness comes back by itself, with no message needed to prove it. Records go to the
// log, whose open segment a replaced directory does not stop, so the copy carries an
// attachment in content mode: its blob is committed through tmp/.
func TestReadinessFollowsWhetherTheSpoolCanCommit(t *testing.T) {
	e := startE2E(t, "--attachments", "content")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + e.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	status := func() map[string]any {
		t.Helper()
		_, body := get("/status")
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("/status: %v\n%s", err, body)
		}
		return m
	}
	send := func() int {
		t.Helper()
		c, err := smtp.Dial(e.smtp)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("a@example.org", nil); err != nil {
			code, _ := smtpCode(err)
			return code
		}
		if err := c.Rcpt("j@sensor.test", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "From: a@example.org\r\nSubject: readiness\r\nMIME-Version: 1.0\r\n"+
			"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"+
			"--b\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"+
			"AAECAwQFBgcICQ==\r\n--b--\r\n")
		if err := w.Close(); err != nil {
			code, _ := smtpCode(err)
			return code
		}
		return 250
	}
	waitReady := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			code, body := get("/readyz")
			if code == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz: %d %q, want %d", code, body, want)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitReady(http.StatusOK)

	tmp := filepath.Join(e.dataDir, "spool", "tmp")
	if err := os.RemoveAll(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := send(); code != 451 {
		t.Fatalf("with the spool unwritable: reply %d, want 451", code)
	}
	for range 3 {
		code, body := get("/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "spool") {
			t.Fatalf("/readyz after a failed commit: %d %q, want 503 naming the spool", code, body)
		}
		s := status()
		if s["ready"] != false || s["spool_ok"] != false || !strings.Contains(s["not_ready_reason"].(string), "spool") {
			t.Fatalf("/status after a failed commit: ready %v, spool_ok %v, not_ready_reason %q",
				s["ready"], s["spool_ok"], s["not_ready_reason"])
		}
		_, st := get("/status")
		if strings.Contains(st+body, e.dataDir) || !strings.Contains(st, `"spool_error":"not a directory"`) {
			t.Fatalf("/status and /readyz must tell the spool's error by its kind, with no path:\n%s%s", st, body)
		}
	}
	if n := strings.Count(e.logs.String(), `msg="not ready`); n != 1 {
		t.Errorf("%d log lines say the sensor is not ready, want 1 for the change", n)
	}

	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	waitReady(http.StatusOK)
	if s := status(); s["ready"] != true || s["spool_ok"] != true {
		t.Errorf("/status after recovery: ready %v, spool_ok %v", s["ready"], s["spool_ok"])
	}
	if n := strings.Count(e.logs.String(), `msg="ready again`); n != 1 {
		t.Errorf("%d log lines say the sensor is ready again, want 1", n)
	}
	if code := send(); code != 250 {
		t.Errorf("after recovery: reply %d, want 250", code)
	}
}
