package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --admin-token-file is a flag, a YAML key and SENSOR_ADMIN_TOKEN_FILE; config check names
// the key and the fix for a file that cannot be read or is empty, and never prints a token.
func TestAdminTokenFileSettings(t *testing.T) {
	dir := t.TempDir()
	const token = "adm-s3cret-token"
	good := filepath.Join(dir, "admin-token")
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(good, []byte("  "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(empty, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	noEnv := func(string) string { return "" }
	c, err := loadServeConfig([]string{"--admin-token-file", good}, io.Discard, noEnv)
	if err != nil || c.adminToken != token {
		t.Fatalf("flag: token %q, err %v", c.adminToken, err)
	}
	c, err = loadServeConfig(nil, io.Discard, func(k string) string {
		if k == "SENSOR_ADMIN_TOKEN_FILE" {
			return good
		}
		return ""
	})
	if err != nil || c.adminToken != token {
		t.Fatalf("SENSOR_ADMIN_TOKEN_FILE: token %q, err %v", c.adminToken, err)
	}
	if c, err := loadServeConfig(nil, io.Discard, noEnv); err != nil || c.adminToken != "" {
		t.Fatalf("default: token %q, err %v; want none, the admin endpoints open", c.adminToken, err)
	}

	for name, file := range map[string]string{"missing": filepath.Join(dir, "no-such-file"), "empty": empty, "a directory": dir} {
		cfg := filepath.Join(dir, "sensor.yaml")
		if err := os.WriteFile(cfg, []byte("admin-token-file: "+file+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var stdout, stderr bytes.Buffer
		code := run([]string{"config", "check", "--config", cfg}, nil, &stdout, &stderr, noEnv)
		out := stderr.String()
		if code != 1 || !strings.Contains(out, `key "admin-token-file"`) || !strings.Contains(out, "remove the key") {
			t.Errorf("config check with a %s token file: exit %d\n%s\nwant 1, naming the key and the fix", name, code, out)
		}
	}
	cfg := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(cfg, []byte("admin-token-file: "+good+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"config", "check", "--config", cfg}, nil, &stdout, &stderr, noEnv); code != 0 ||
		strings.Contains(stdout.String()+stderr.String(), token) {
		t.Errorf("config check with a good token file: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// The real wiring: with --admin-token-file, /metrics and /status need the token, /readyz
// does not, so `sensor healthcheck` works with none.
func TestServeAdminToken(t *testing.T) {
	const token = "adm-e2e-token"
	file := filepath.Join(t.TempDir(), "admin-token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startE2E(t, "--admin-token-file", file)
	get := func(path, auth string) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+e.admin+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/metrics", "/status"} {
		if code := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("%s without the token: %d, want 401", path, code)
		}
		if code := get(path, "Bearer "+token); code != http.StatusOK {
			t.Errorf("%s with the token: %d, want 200", path, code)
		}
	}
	if code := get("/healthz", ""); code != http.StatusOK {
		t.Errorf("/healthz without the token: %d, want 200", code)
	}
	var stdout, stderr bytes.Buffer
	if code := healthcheckCmd([]string{"--admin", e.admin}, &stdout, &stderr); code != 0 {
		t.Errorf("sensor healthcheck with no token: exit %d: %s", code, stderr.String())
	}
	if strings.Contains(e.logs.String(), token) {
		t.Error("the admin token appears in the log")
	}
}
