package main

import (
	"bytes"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// dialSMTPFrom connects to the sensor from the local address from (all of 127/8 is loopback
// on Linux) and returns go-smtp's client, or the error of its greeting.
func dialSMTPFrom(t *testing.T, addr, from string) (*smtp.Client, error) {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", from, err)
	}
	c := smtp.NewClient(conn)
	if err := c.Hello("client.e2e.test"); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// sendFrom delivers one message from the local address from and returns its record id.
func (e *e2e) sendFrom(from string) string {
	e.t.Helper()
	c, err := dialSMTPFrom(e.t, e.smtp, from)
	if err != nil {
		e.t.Fatalf("from %s: %v", from, err)
	}
	if err := c.Mail("sender@example.org", nil); err != nil {
		e.t.Fatal(err)
	}
	if err := c.Rcpt("journal@example.net", nil); err != nil {
		e.t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := io.WriteString(w, "From: a@example.org\r\nSubject: access\r\n\r\nbody\r\n"); err != nil {
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
	return m[1]
}

func accessGroupOf(rec map[string]any) any {
	env, _ := rec["envelope"].(map[string]any)
	return env["access_group"]
}

// --allow-cidr is repeatable, comma-separated in the environment and a list in the file,
// and makes the table of an accept group and a catch-all reject.
func TestAllowCIDRLayers(t *testing.T) {
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "allow-cidr: [10.0.0.0/8, \"2001:db8::/32\"]\n")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"default", nil, "", ""},
		{"file list", []string{"--config", cfgFile}, "", "10.0.0.0/8,2001:db8::/32"},
		{"env beats file", []string{"--config", cfgFile}, " 192.0.2.0/24, 198.51.100.7 ,", "192.0.2.0/24,198.51.100.7"},
		{"flags beat env", []string{"--allow-cidr", "203.0.113.0/24", "--allow-cidr", "::1"}, "192.0.2.0/24", "203.0.113.0/24,::1"},
	} {
		c, err := loadServeConfig(tc.args, io.Discard, func(k string) string {
			if k == "SENSOR_ALLOW_CIDR" {
				return tc.env
			}
			return ""
		})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := c.allowCIDRs.String(); got != tc.want {
			t.Errorf("%s: allow-cidr %q, want %q", tc.name, got, tc.want)
		}
		if tc.want == "" {
			if c.access != nil {
				t.Errorf("%s: a table without --allow-cidr or access", tc.name)
			}
			continue
		}
		var groups []string
		for _, g := range c.access.Groups() {
			groups = append(groups, g.Name+":"+g.Action.String())
		}
		if got := strings.Join(groups, ","); got != "allow-cidr:accept,default-reject:reject" {
			t.Errorf("%s: groups %s", tc.name, got)
		}
	}
}

func TestAllowCIDRProblems(t *testing.T) {
	noEnv := func(string) string { return "" }
	_, err := loadServeConfig([]string{"--allow-cidr", "10.0.0.1/8", "--allow-cidr", "mail.example"}, io.Discard, noEnv)
	want := []string{
		`--allow-cidr: "10.0.0.1/8": host bits set; write 10.0.0.0/8, or 10.0.0.1/32 for the one address`,
		`--allow-cidr: "mail.example": not an address range`,
	}
	if p := leafErrors(err); len(p) != len(want) || !strings.HasPrefix(p[0].Error(), want[0]) || !strings.HasPrefix(p[1].Error(), want[1]) {
		t.Errorf("problems %v, want %q", err, want)
	}

	// The table and its shortcut together is one problem, naming both, wherever the shortcut
	// came from.
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "access:\n  - {name: gw, cidrs: [192.0.2.0/24], action: accept}\n")
	for _, tc := range []struct {
		args []string
		env  string
	}{
		{[]string{"--config", cfgFile, "--allow-cidr", "10.0.0.0/8"}, ""},
		{[]string{"--config", cfgFile}, "10.0.0.0/8"},
	} {
		c, err := loadServeConfig(tc.args, io.Discard, func(k string) string {
			if k == "SENSOR_ALLOW_CIDR" {
				return tc.env
			}
			return ""
		})
		p := leafErrors(err)
		if len(p) != 1 || !strings.Contains(p[0].Error(), "--allow-cidr: cannot be combined with the access table ("+cfgFile+`:1: key "access")`) {
			t.Errorf("%v %q: %v, want one problem naming both", tc.args, tc.env, err)
		}
		if c.access != nil {
			t.Errorf("%v %q: a table was made", tc.args, tc.env)
		}
	}
}

// The file's access table reaches the SMTP server that serve runs, and the record names the
// group; a client no group holds is greeted 554.
func TestAccessTableIsServed(t *testing.T) {
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", `
access:
  - name: gateway
    cidrs: [127.0.0.2]
    action: accept
  - name: everyone-else
    cidrs: [0.0.0.0/0, "::/0"]
    action: reject
`)
	e := startE2E(t, "--config", cfgFile)
	rec, _, _ := e.await(e.sendFrom("127.0.0.2"))
	if g := accessGroupOf(rec); g != "gateway" {
		t.Errorf("record's envelope.access_group = %v, want gateway", g)
	}
	_, err := dialSMTPFrom(t, e.smtp, "127.0.0.1")
	if code, enh := smtpCode(err); code != 554 || enh != "5.7.1" {
		t.Errorf("a client of no accept group: %v, want 554 5.7.1", err)
	}
	if !strings.Contains(e.logs.String(), "access=gateway:accept,everyone-else:reject") {
		t.Errorf("the start-up log does not show the table:\n%s", e.logs)
	}
}

// --allow-cidr: the listed ranges are served, in the group allow-cidr, and the rest greeted
// 554 5.7.1 (the group default-reject).
func TestAllowCIDRIsServed(t *testing.T) {
	e := startE2E(t, "--allow-cidr", "127.0.0.2/32")
	rec, _, _ := e.await(e.sendFrom("127.0.0.2"))
	if g := accessGroupOf(rec); g != "allow-cidr" {
		t.Errorf("record's envelope.access_group = %v, want allow-cidr", g)
	}
	_, err := dialSMTPFrom(t, e.smtp, "127.0.0.1")
	if code, enh := smtpCode(err); code != 554 || enh != "5.7.1" {
		t.Errorf("a client outside --allow-cidr: %v, want 554 5.7.1", err)
	}
	if !strings.Contains(e.logs.String(), "access_group=default-reject") {
		t.Errorf("the refusal is not logged with its group:\n%s", e.logs)
	}
}

// Without a table every client is served as before, and no record names a group.
func TestNoAccessTableNoGroup(t *testing.T) {
	e := startE2E(t)
	rec, raw, _ := e.await(e.sendFrom("127.0.0.2"))
	if g := accessGroupOf(rec); g != nil || bytes.Contains(raw, []byte("access_group")) {
		t.Errorf("without a table the record names group %v", g)
	}
}

func TestServeHelpNamesAllowCIDRAndTheTable(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"serve", "--help"}, nil, io.Discard, &stderr, func(string) string { return "" }); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"-allow-cidr value", "554 5.7.1", "access: is the host access table"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve --help lacks %q:\n%s", want, stderr.String())
		}
	}
}
