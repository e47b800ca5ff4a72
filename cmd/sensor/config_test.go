package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/api/schema"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlagBeatsEnvBeatsFileBeatsDefault(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "sensor.yaml", `
smtp-listen: "127.0.0.1:2600"
admin-listen: "127.0.0.1:9100"
data-dir: /var/lib/from-file
idle-timeout: 90s
max-message-bytes: 50MiB
urls: off
`)
	env := map[string]string{
		"SENSOR_ADMIN_LISTEN": "127.0.0.1:9200",
		"SENSOR_DATA_DIR":     "/var/lib/from-env",
	}
	c, err := loadServeConfig([]string{"--config", cfgFile, "--data-dir", "/var/lib/from-flag"}, io.Discard,
		func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"smtp-listen (file)", c.smtpListen, "127.0.0.1:2600"},
		{"admin-listen (env beats file)", c.adminListen, "127.0.0.1:9200"},
		{"data-dir (flag beats env and file)", c.dataDir, "/var/lib/from-flag"},
		{"idle-timeout (file)", c.idleTimeout.String(), (90 * time.Second).String()},
		{"max-message-bytes (file)", c.maxMessageBytes.String(), "50MiB"},
		{"urls (file)", c.urls.String(), "off"},
		{"attachments (default)", c.attachments, "metadata"},
		{"spool-max-bytes (default, DESIGN.md's 10GiB)", c.spoolMaxBytes.String(), "10GiB"},
		{"pipeline-url (derived default)", c.pipelineURL, "file:///var/lib/from-flag/outbox"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %q, want %q", ch.name, ch.got, ch.want)
		}
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "smtp-listen: \":2525\"\n")
	c, err := loadServeConfig(nil, io.Discard, func(k string) string {
		if k == "SENSOR_CONFIG" {
			return cfgFile
		}
		return ""
	})
	if err != nil || c.smtpListen != ":2525" {
		t.Fatalf("%v %+v", err, c)
	}
}

func TestEveryProblemIsReportedAtOnce(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "bad.yaml", `
smtp-listen: "nonsense"
pipeline-url: "http://plain.example"
attachments: everything
max-message-bytes: lots
smtp-listne: ":25"
`)
	_, err := loadServeConfig([]string{"--config", cfgFile, "--pipeline-token-file", filepath.Join(dir, "missing")}, io.Discard,
		func(string) string { return "" })
	if err == nil {
		t.Fatal("bad config accepted")
	}
	msg := err.Error()
	for _, want := range []string{
		`unknown key "smtp-listne"`, `key "max-message-bytes" value "lots"`,
		"--smtp-listen:", "--pipeline-url:", "--attachments:", "--pipeline-token-file:",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
}

func TestParseCommandPrintsOneValidRecordPerInput(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "a.eml", "From: a@example.org\r\nSubject: first\r\n\r\nhello https://a.example/\r\n")
	b := writeFile(t, dir, "b.eml", "Subject: second\n\nbody\n")
	var stdout, stderr bytes.Buffer
	code := run([]string{"parse", a, "-", b, filepath.Join(dir, "missing.eml")},
		strings.NewReader("Subject: from stdin\r\n\r\nx\r\n"), &stdout, &stderr, func(string) string { return "" })
	if code != 1 {
		t.Errorf("exit %d with one unreadable input, want 1", code)
	}
	if !strings.Contains(stderr.String(), "missing.eml") {
		t.Errorf("stderr does not name the bad file: %s", stderr.String())
	}
	v, err := schema.New()
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if err := v.Validate([]byte(line)); err != nil {
			t.Errorf("record fails the schema: %v", err)
		}
		var r api.Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, r.Message.Subject)
	}
	if got := strings.Join(subjects, ","); got != "first,from stdin,second" {
		t.Errorf("subjects %s", got)
	}
}

func TestUnknownCommand(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"frobnicate"}, nil, io.Discard, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), "unknown command") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
}

// serveConfig.check walks maps, so before config check sorted its problems, the same file
// could list them in a different order from one run to the next.
func TestConfigCheckOrderIsStable(t *testing.T) {
	dir := t.TempDir()
	cfgFile := writeFile(t, dir, "bad.yaml", `
smtp-listen: "nonsense"
admin-listen: "also-nonsense"
pipeline-ca-file: missing-ca.pem
pipeline-client-cert: missing-cert.pem
pipeline-client-key: missing-key.pem
smtp-listne: ":25"
`)
	var first string
	for i := range 20 {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"config", "check", "--config", cfgFile}, nil, &stdout, &stderr, func(string) string { return "" }); code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
		}
		if i == 0 {
			first = stderr.String()
			continue
		}
		if stderr.String() != first {
			t.Fatalf("run %d listed the problems differently:\n%s\nfirst run:\n%s", i, stderr.String(), first)
		}
	}
	var keys []string
	for _, m := range regexp.MustCompile(`key "([^"]+)"`).FindAllStringSubmatch(first, -1) {
		keys = append(keys, m[1])
	}
	if got, want := strings.Join(keys, " "), "admin-listen pipeline-ca-file pipeline-client-cert pipeline-client-key smtp-listen smtp-listne"; got != want {
		t.Errorf("problems for %s, want them sorted by key: %s\n%s", got, want, first)
	}
}

// config check must only read: an operator runs it beside a sensor that is already serving,
// and before the data dir exists. Everything serve creates (the data dir, the spool, the
// outbox, the blob folder for attachments: content) and binds (SMTP and admin) is set up
// here; the check must pass while the test holds both ports, and leave the disk as it was.
func TestConfigCheckOnlyReads(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir) // where the default ./sensor-data would appear
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addrs = append(addrs, ln.Addr().String())
	}
	token := writeFile(t, dir, "token", "not-a-real-token\n")
	explicit := writeFile(t, dir, "explicit.yaml", fmt.Sprintf(`
smtp-listen: %q
admin-listen: %q
data-dir: %q
attachments: content
pipeline-token-file: %q
`, addrs[0], addrs[1], filepath.Join(dir, "data", "nested"), token))
	defaults := writeFile(t, dir, "defaults.yaml", fmt.Sprintf("smtp-listen: %q\nadmin-listen: %q\n", addrs[0], addrs[1]))
	bad := writeFile(t, dir, "bad.yaml", fmt.Sprintf("smtp-listen: %q\ndata-dir: %q\nidle-timeout: soon\n", addrs[0], filepath.Join(dir, "bad-data")))
	before := tree(t, dir)

	for _, tc := range []struct {
		config string
		code   int
	}{{explicit, 0}, {defaults, 0}, {bad, 1}} {
		var stdout, stderr bytes.Buffer
		code := run([]string{"config", "check", "--config", tc.config}, nil, &stdout, &stderr, func(string) string { return "" })
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d; stdout %q, stderr %q", filepath.Base(tc.config), code, tc.code, stdout.String(), stderr.String())
		}
	}
	if after := tree(t, dir); after != before {
		t.Errorf("config check changed the disk.\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// tree lists every file and directory under dir with its mode, size and modification time.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s %v %d %s\n", p, info.Mode(), info.Size(), info.ModTime().Format(time.RFC3339Nano))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestMaskUserinfo(t *testing.T) {
	for in, want := range map[string]string{
		"http://journal:hunter2@pipeline.example/in": "http://xxxxx@pipeline.example/in",
		"https://tok3n@pipeline.example":             "https://xxxxx@pipeline.example",
		"http://us:p@ss@pipeline.example/a@b":        "http://xxxxx@pipeline.example/a@b", // does not parse
		"https://pipeline.example/in?who=a@b":        "https://pipeline.example/in?who=a@b",
		"file:///var/lib/sensor/outbox":              "file:///var/lib/sensor/outbox",
		"mailto:a@b":                                 "mailto:a@b",
	} {
		if got := maskUserinfo(in); got != want {
			t.Errorf("maskUserinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

// Every fix config check adds must belong to a flag that exists, or it is never shown.
func TestCheckFixesNameFlags(t *testing.T) {
	fs := serveFlags(&serveConfig{}, io.Discard)
	for key := range checkFixes {
		if fs.Lookup(key) == nil {
			t.Errorf("checkFixes has %q, which is no flag of sensor serve", key)
		}
	}
}

// The flag package zeroes a duration before it fails to parse it, so a bad idle-timeout
// used to be reported twice: once as unreadable, then as "must be positive".
func TestBadDurationIsReportedOnce(t *testing.T) {
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "idle-timeout: soon\n")
	_, err := loadServeConfig([]string{"--config", cfgFile}, io.Discard, func(k string) string {
		if k == "SENSOR_MAX_AGE" {
			return "later"
		}
		return ""
	})
	if n := len(leafErrors(err)); n != 2 {
		t.Errorf("%d problems for one bad duration in the file and one in the environment, want 2:\n%v", n, err)
	}
}

var update = flag.Bool("update", false, "rewrite testdata/config/*.expected with what sensor config check prints now")

// TestConfigCheckGolden runs `sensor config check --config testdata/config/NAME.yaml` and
// compares what it prints (stdout, then stderr, then the exit status) with NAME.expected.
// On a mismatch it writes NAME.got beside it; -update rewrites the goldens instead. The
// paths are relative to the package directory and the environment is empty, so a golden
// holds nothing of the machine that wrote it.
func TestConfigCheckGolden(t *testing.T) {
	configs, err := filepath.Glob("testdata/config/*.yaml")
	if err != nil || len(configs) == 0 {
		t.Fatalf("no configs in testdata/config: %v", err)
	}
	goldens, _ := filepath.Glob("testdata/config/*.expected")
	for _, g := range goldens {
		if _, err := os.Stat(strings.TrimSuffix(g, ".expected") + ".yaml"); err != nil {
			t.Errorf("%s has no config beside it", g)
		}
	}
	for _, cfg := range configs {
		name := strings.TrimSuffix(filepath.Base(cfg), ".yaml")
		t.Run(name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"config", "check", "--config", cfg}, nil, &stdout, &stderr, func(string) string { return "" })
			got := stdout.String() + stderr.String() + fmt.Sprintf("exit status %d\n", code)

			// Not left to the goldens alone, so -update cannot bless them.
			if strings.HasPrefix(name, "good") {
				if code != 0 || stderr.Len() > 0 {
					t.Errorf("a good config: exit %d and stderr %q, want 0 and nothing", code, stderr.String())
				}
			} else if code != 1 || stdout.Len() > 0 {
				t.Errorf("a bad config: exit %d and stdout %q, want 1 and nothing", code, stdout.String())
			}
			for _, secret := range []string{"hunter2", "not-a-real-token"} {
				if strings.Contains(got, secret) {
					t.Errorf("the output shows the secret %q", secret)
				}
			}

			expected := strings.TrimSuffix(cfg, ".yaml") + ".expected"
			gotFile := strings.TrimSuffix(cfg, ".yaml") + ".got"
			if *update {
				if err := os.WriteFile(expected, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				_ = os.Remove(gotFile)
				return
			}
			want, err := os.ReadFile(expected)
			if err != nil {
				t.Fatalf("%v (go test -run TestConfigCheckGolden -update writes it)", err)
			}
			if got == string(want) {
				_ = os.Remove(gotFile)
				return
			}
			if err := os.WriteFile(gotFile, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Errorf("output differs from %s; it is in %s (diff the two; -update accepts it):\n%s", expected, gotFile, got)
		})
	}
	if _, err := os.Stat("testdata/config/never-created"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("config check of good.yaml created its data dir (or stat failed: %v)", err)
	}
}

func TestConfigCheckHelpNamesConfigCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := configCheckCmd([]string{"--help"}, &out, &errOut, func(string) string { return "" }); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if !strings.HasPrefix(errOut.String(), "usage: sensor config check --config FILE") {
		t.Errorf("help = %q, want the usage of config check", errOut.String())
	}
}

// The connection caps layer like every other setting, and config check holds them to whole
// numbers of at least 1, the per-address one no bigger than the total.
func TestConnectionCaps(t *testing.T) {
	noEnv := func(string) string { return "" }
	c, err := loadServeConfig(nil, io.Discard, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.maxConns != 1000 || c.maxConnsPerIP != 100 {
		t.Errorf("defaults %d total, %d per address; want DESIGN.md's 1000 and 100", c.maxConns, c.maxConnsPerIP)
	}

	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "max-connections: 300\nmax-connections-per-ip: 30\n")
	c, err = loadServeConfig([]string{"--config", cfgFile, "--max-connections-per-ip", "20"}, io.Discard, func(k string) string {
		return map[string]string{"SENSOR_MAX_CONNECTIONS": "200", "SENSOR_MAX_CONNECTIONS_PER_IP": "25"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.maxConns != 200 || c.maxConnsPerIP != 20 {
		t.Errorf("got %d total (env beats file), %d per address (flag beats env); want 200 and 20", c.maxConns, c.maxConnsPerIP)
	}

	for _, tc := range []struct {
		args []string
		want []string // one problem each
	}{
		{[]string{"--max-connections", "0"}, []string{"--max-connections: 0: must be positive"}},
		{[]string{"--max-connections-per-ip", "-1"}, []string{"--max-connections-per-ip: -1: must be positive"}},
		{[]string{"--max-connections", "10", "--max-connections-per-ip", "11"},
			[]string{"--max-connections-per-ip: 11 is more than --max-connections 10"}},
		{[]string{"--max-connections", "10", "--max-connections-per-ip", "10"}, nil},
		{[]string{"--max-connections", "0", "--max-connections-per-ip", "0"},
			[]string{"--max-connections: 0: must be positive", "--max-connections-per-ip: 0: must be positive"}},
	} {
		_, err := loadServeConfig(tc.args, io.Discard, noEnv)
		problems := leafErrors(err)
		if len(problems) != len(tc.want) {
			t.Errorf("%v: %d problems, want %d: %v", tc.args, len(problems), len(tc.want), err)
			continue
		}
		for i, p := range problems {
			if !strings.HasPrefix(p.Error(), tc.want[i]) {
				t.Errorf("%v: %q, want it to start %q", tc.args, p, tc.want[i])
			}
		}
	}

	// A value that is no number is reported once, as such, and not again as "must be positive".
	_, err = loadServeConfig(nil, io.Discard, func(k string) string {
		if k == "SENSOR_MAX_CONNECTIONS" {
			return "lots"
		}
		return ""
	})
	if p := leafErrors(err); len(p) != 1 || !strings.Contains(p[0].Error(), `SENSOR_MAX_CONNECTIONS="lots": want a whole number`) {
		t.Errorf("SENSOR_MAX_CONNECTIONS=lots: %v", err)
	}
}

func TestMaxTransactionTime(t *testing.T) {
	c, err := loadServeConfig(nil, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.maxTxnTime != 30*time.Minute {
		t.Errorf("default %v, want DESIGN.md's 30m", c.maxTxnTime)
	}
	cfgFile := writeFile(t, t.TempDir(), "s.yaml", "max-transaction-time: 10m\n")
	c, err = loadServeConfig([]string{"--config", cfgFile}, io.Discard, func(k string) string {
		return map[string]string{"SENSOR_MAX_TRANSACTION_TIME": "2m"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.maxTxnTime != 2*time.Minute {
		t.Errorf("got %v, want the environment's 2m over the file's 10m", c.maxTxnTime)
	}
	_, err = loadServeConfig([]string{"--max-transaction-time", "0s"}, io.Discard, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "--max-transaction-time: must be positive") {
		t.Errorf("0s: err %v, want --max-transaction-time: must be positive", err)
	}
}
