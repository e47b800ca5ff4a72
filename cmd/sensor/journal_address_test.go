package main

import (
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// --journal-address is repeatable on the command line, a list in the file and
// comma-separated in the environment; as for every setting, the first of those that sets it
// wins, whole.
func TestJournalAddressLayers(t *testing.T) {
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "journal-address: [file-1@example.org, \"*@File.example.net\"]\n")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"default", nil, "", ""},
		{"file list", []string{"--config", cfgFile}, "", "file-1@example.org,*@File.example.net"},
		{"env beats file", []string{"--config", cfgFile}, " env-1@example.org, *@env.example.net ,", "env-1@example.org,*@env.example.net"},
		{"flags beat env", []string{"--config", cfgFile, "--journal-address", "a@x.test", "--journal-address", "*@y.test"},
			"env-1@example.org", "a@x.test,*@y.test"},
	} {
		c, err := loadServeConfig(tc.args, io.Discard, func(k string) string {
			if k == "SENSOR_JOURNAL_ADDRESS" {
				return tc.env
			}
			return ""
		})
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := c.journalAddresses.String(); got != tc.want {
			t.Errorf("%s: journal-address %q, want %q", tc.name, got, tc.want)
		}
		if (c.recipients == nil) != (tc.want == "") {
			t.Errorf("%s: recipients %v for %q", tc.name, c.recipients, tc.want)
		}
	}
}

func TestBadJournalAddressNamesTheEntry(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{[]string{"--journal-address", "ok@x.test", "--journal-address", "journal.example.org"}, "",
			`--journal-address: "journal.example.org": not an address: no @; write local@domain`},
		{nil, "ok@x.test,j*@x.test", `--journal-address: "j*@x.test": a * matches a whole local part`},
	} {
		_, err := loadServeConfig(tc.args, io.Discard, func(k string) string {
			if k == "SENSOR_JOURNAL_ADDRESS" {
				return tc.env
			}
			return ""
		})
		if p := leafErrors(err); len(p) != 1 || !strings.HasPrefix(p[0].Error(), tc.want) {
			t.Errorf("%v %q: %v, want one problem starting %q", tc.args, tc.env, err, tc.want)
		}
	}
}

// The flag reaches the SMTP server that serve runs.
func TestJournalAddressIsServed(t *testing.T) {
	e := startE2E(t, "--journal-address", "journal-7Qx2@example.org")
	c, err := smtp.Dial(e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("sender@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("Journal-7qx2@Example.org", nil); err != nil {
		t.Errorf("listed address (other case): %v", err)
	}
	err = c.Rcpt("someone@example.org", nil)
	if err == nil {
		t.Fatal("other address accepted, want 550 5.1.1")
	}
	if code, enh := smtpCode(err); code != 550 || enh != "5.1.1" {
		t.Errorf("other address: %v, want 550 5.1.1", err)
	}
}
