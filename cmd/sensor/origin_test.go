package main

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// sendCopy delivers msg over SMTP to the sensor and returns the error of its DATA, nil for a
// 250, and the record id the 250 names.
func (e *e2e) sendCopy(rcpt, msg string) (string, error) {
	e.t.Helper()
	c, err := smtp.Dial(e.smtp)
	if err != nil {
		e.t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("mail.gateway.test"); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Mail("journal.ndr@teamcompany.onmicrosoft.com", nil); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		e.t.Fatal(err)
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
		return "", err
	}
	m := regexp.MustCompile(`queued as ([0-9A-Z]{26})$`).FindStringSubmatch(resp.StatusText)
	if m == nil {
		e.t.Fatalf("250 reply %q names no record id", resp.StatusText)
	}
	return m[1], c.Quit()
}

// The corpus journal report, through the real server over TCP, with the tenant it names
// pinned and the journal address configured: recorded with both proofs. The same report
// rewritten to name another tenant is refused with 550 5.7.1, its reason and a ref.
func TestTenantPinningEndToEnd(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(testkit.CorpusDir(t), "mail", "ace", "o365_journaled.email.rfc822"))
	if err != nil {
		t.Fatal(err)
	}
	report := string(b)
	const rcpt = "journal-7Qx2@example.org"
	e := startE2E(t, "--m365-tenant", "teamcompany.onmicrosoft.com", "--m365-tenant", "6e1e3a0a-cb5b-4699-9a6a-595e9ef289e9",
		"--journal-address", rcpt)

	id, err := e.sendCopy(rcpt, report)
	if err != nil {
		t.Fatalf("the pinned tenant's report: %v", err)
	}
	rec, _, _ := e.await(id)
	src := rec["source"].(map[string]any)
	if got := src["verified_by"]; !reflect.DeepEqual(got, []any{"journal_address", "m365_tenant"}) || src["tenant"] != "teamcompany.onmicrosoft.com" {
		t.Errorf("source %v", src)
	}

	forged := strings.Replace(report, "X-OriginatorOrg: teamcompany.onmicrosoft.com", "X-OriginatorOrg: fabrikam.onmicrosoft.com", 1)
	_, err = e.sendCopy(rcpt, forged)
	code, enh := smtpCode(err)
	if code != 550 || enh != "5.7.1" || !strings.Contains(err.Error(), "names tenant fabrikam.onmicrosoft.com (X-OriginatorOrg), not a pinned tenant (ref ") {
		t.Fatalf("a report naming another tenant: %v", err)
	}
	ref := regexp.MustCompile(`\(ref ([0-9A-Z]{26})\)`).FindStringSubmatch(err.Error())[1]
	if log := e.logs.String(); !strings.Contains(log, "id="+ref) || !strings.Contains(log, "level=WARN") {
		t.Errorf("the log does not name the refused copy's ref %s at Warn:\n%s", ref, log)
	}
}

// A copy with the source header is recorded without it: not in the record the pipeline
// gets, not in the spool, not in the log. A copy with a wrong secret is refused.
func TestSourceHeaderEndToEnd(t *testing.T) {
	const name, secret = "X-Journal-Sensor-Source", "9f86d081884c7d659a2feaa0c55ad015"
	secretFile := writeFile(t, t.TempDir(), "source-secret", secret+"\n")
	e := startE2E(t, "--source-header", name, "--source-header-secret-file", secretFile)
	msg := "x-journal-sensor-source: " + secret + "\r\nFrom: a@example.org\r\nTo: b@example.org\r\nSubject: routed copy\r\n\r\nbody\r\n"

	id, err := e.sendCopy("journal@sensor.test", msg)
	if err != nil {
		t.Fatalf("the right secret: %v", err)
	}
	rec, raw, _ := e.await(id)
	if src := rec["source"].(map[string]any); !reflect.DeepEqual(src["verified_by"], []any{"source_header"}) {
		t.Errorf("source %v", src)
	}
	for what, text := range map[string]string{"the record": string(raw), "the log": e.logs.String()} {
		if strings.Contains(text, secret) || strings.Contains(strings.ToLower(text), strings.ToLower(name)) {
			t.Errorf("%s shows the source header:\n%s", what, text)
		}
	}
	err = filepath.WalkDir(e.dataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err == nil && strings.Contains(string(b), secret) {
			t.Errorf("%s holds the secret", path)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	_, err = e.sendCopy("journal@sensor.test", strings.Replace(msg, secret, strings.Repeat("0", len(secret)), 1))
	if code, enh := smtpCode(err); code != 550 || enh != "5.7.1" || !strings.Contains(err.Error(), "source header does not match") {
		t.Errorf("a wrong secret: %v", err)
	}
	if strings.Contains(e.logs.String(), secret) {
		t.Error("the log shows the secret")
	}
}

// --m365-tenant is repeatable, a list in the file and comma-separated in the environment.
func TestM365TenantLayers(t *testing.T) {
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "m365-tenant: [contoso.onmicrosoft.com]\n")
	c, err := loadServeConfig([]string{"--config", cfgFile}, io.Discard, func(k string) string {
		if k == "SENSOR_M365_TENANT" {
			return "a.onmicrosoft.com, 3f2504e0-4f89-11d3-9a0c-0305e82c3301"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.origin.Tenants(); !reflect.DeepEqual(got, []string{"3f2504e0-4f89-11d3-9a0c-0305e82c3301", "a.onmicrosoft.com"}) {
		t.Errorf("tenants %q", got)
	}
	if c, err := loadServeConfig(nil, io.Discard, func(string) string { return "" }); err != nil || c.origin != nil {
		t.Errorf("no proof configured: %v, %v", c.origin, err)
	}
}
