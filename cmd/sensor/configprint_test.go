package main

import (
	"bytes"
	"flag"
	"io"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// effective loads a configuration as serve does and returns every flag's value, and the
// access table as YAML, for comparing two configurations.
func effective(t *testing.T, args []string, getenv func(string) string) map[string]string {
	t.Helper()
	var fs *flag.FlagSet
	c, err := loadServeConfig(args, io.Discard, getenv, func(_ *serveConfig, f *flag.FlagSet) { fs = f })
	if err != nil {
		t.Fatalf("loading %v: %v", args, err)
	}
	out := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			out[f.Name] = f.Value.String()
		}
	})
	if c.accessNode != nil {
		b, err := yaml.Marshal(c.accessNode)
		if err != nil {
			t.Fatal(err)
		}
		out["access"] = string(b)
	}
	return out
}

func noEnv(string) string { return "" }

// What config print prints, fed back as the only layer, is the same configuration: every
// flag from each of the three layers, the file's unquoted octal mode, lists from the
// environment, and the access table.
func TestConfigPrintRoundTrip(t *testing.T) {
	dir := t.TempDir()
	tokenFile := writeFile(t, dir, "token", "not-a-real-token\n")
	cfgFile := writeFile(t, dir, "sensor.yaml", `
smtp-listen: ":2626"
data-dir: `+filepath.Join(dir, "data")+`
milter-socket-mode: 0640
journal-address: [journal@example.org, "*@journal.example.net"]
attachments: content
urls: off
spool-max-bytes: 2GiB
idle-timeout: 90s
access:
  - name: lan       # the office
    cidrs: [10.0.0.0/8, "::1/128"]
    action: accept
    max_connections_per_ip: 20
  - name: everyone-else
    cidrs: [0.0.0.0/0, "::/0"]
    action: reject
`)
	env := map[string]string{
		"SENSOR_M365_TENANT":       "contoso.onmicrosoft.com, fabrikam.onmicrosoft.com",
		"SENSOR_MAX_AGE":           "48h",
		"SENSOR_LOG_FORMAT":        "json",
		"SENSOR_IDLE_TIMEOUT":      "2m", // beats the file
		"SENSOR_MILTER_ADD_HEADER": "true",
	}
	getenv := func(k string) string { return env[k] }
	args := []string{"--config", cfgFile, "--max-connections", "500", "--pipeline-token-file", tokenFile,
		"--milter-listen", "unix:" + filepath.Join(dir, "milter.sock"), "--log-level", "debug"}

	var out1, errOut bytes.Buffer
	if code := run(append([]string{"config", "print"}, args...), nil, &out1, &errOut, getenv); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out1.String(), "not-a-real-token") {
		t.Error("config print read the token file out")
	}
	printed := writeFile(t, dir, "printed.yaml", out1.String())

	want := effective(t, args, getenv)
	got := effective(t, []string{"--config", printed}, noEnv)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: printed and read back as %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s appears only after the round trip", k)
		}
	}
	for k, v := range map[string]string{"idle-timeout": "2m0s", "milter-socket-mode": "0640", "urls": "off",
		"m365-tenant": "contoso.onmicrosoft.com,fabrikam.onmicrosoft.com", "max-connections": "500"} {
		if got[k] != v {
			t.Errorf("%s = %q after the round trip, want %q", k, got[k], v)
		}
	}
	if !strings.Contains(out1.String(), "\npipeline-url: \"\"\n") {
		t.Errorf("pipeline-url, set by no layer, is not printed empty: the file would pin the outbox derived from data-dir\n%s", out1.String())
	}
	if !strings.Contains(got["access"], "everyone-else") {
		t.Errorf("the access table did not survive:\n%s", got["access"])
	}

	// Printing the printed file prints it again: a fixed point.
	var out2 bytes.Buffer
	if code := run([]string{"config", "print", "--config", printed}, nil, &out2, &errOut, noEnv); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if out2.String() != out1.String() {
		t.Errorf("printing the printed config differs:\n%s\nfirst:\n%s", out2.String(), out1.String())
	}
}

// Every setting is printed, once, in flagGroups' order, the same on every run.
func TestConfigPrintOrderIsStable(t *testing.T) {
	var first string
	for i := range 20 {
		var out, errOut bytes.Buffer
		if code := run([]string{"config", "print", "--journal-address", "a@example.org", "--graph-url", "https://graph.example"},
			nil, &out, &errOut, noEnv); code != 0 {
			t.Fatalf("exit %d: %s", code, errOut.String())
		}
		if i == 0 {
			first = out.String()
		} else if out.String() != first {
			t.Fatalf("run %d printed differently:\n%s\nfirst:\n%s", i, out.String(), first)
		}
	}
	var keys []string
	for _, m := range regexp.MustCompile(`(?m)^([a-z0-9-]+):`).FindAllStringSubmatch(first, -1) {
		keys = append(keys, m[1])
	}
	var want []string
	for _, g := range flagGroups {
		for _, f := range g.flags {
			if f != "config" {
				want = append(want, f)
			}
		}
	}
	if !slices.Equal(keys, want) {
		t.Errorf("keys printed:\n%v\nwant:\n%v", keys, want)
	}
}

// No setting holds a token itself: each is in a file the settings name. The one secret a
// setting can hold is a password in a URL, which is redacted wherever it is; the pipeline's
// URL may not carry one at all, and its refusal does not print it either.
func TestConfigPrintRedactsPasswordsInURLs(t *testing.T) {
	var out, errOut bytes.Buffer
	code := run([]string{"config", "print", "--graph-url", "https://admin:hunter2@graph.example"}, nil, &out, &errOut, noEnv)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if strings.Contains(out.String(), "hunter2") || strings.Contains(out.String(), "admin:") {
		t.Errorf("the password is printed:\n%s", out.String())
	}
	if want := "graph-url: https://<redacted>@graph.example"; !strings.Contains(out.String(), want) {
		t.Errorf("missing %q in:\n%s", want, out.String())
	}
	out.Reset()
	errOut.Reset()
	code = run([]string{"config", "print", "--pipeline-url", "https://sensor:hunter2@pipeline.example/v"}, nil, &out, &errOut, noEnv)
	if code != 2 || !strings.Contains(errOut.String(), "must not carry a user or password") {
		t.Errorf("a pipeline URL with a password: exit %d, stderr:\n%s", code, errOut.String())
	}
	if strings.Contains(out.String()+errOut.String(), "hunter2") {
		t.Errorf("the refusal prints the password:\n%s%s", out.String(), errOut.String())
	}
}

// An invalid configuration prints no half config file, only its problems, and exits 2.
func TestConfigPrintOfAnInvalidConfigPrintsOnlyProblems(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "bad.yaml", "smtp-listen: nonsense\nidle-timeout: soon\n")
	var out, errOut bytes.Buffer
	if code := run([]string{"config", "print", "--config", cfgFile}, nil, &out, &errOut, noEnv); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if out.Len() > 0 {
		t.Errorf("printed %q for an invalid config", out.String())
	}
	for _, want := range []string{`key "idle-timeout"`, `key "smtp-listen"`, "2 problem(s); nothing printed"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}
}
