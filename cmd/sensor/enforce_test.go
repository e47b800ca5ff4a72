package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An action journal that cannot be read stops enforcement, not the recording of mail: the
// sensor still takes copies, and /status says why enforcement is down.
func TestUnreadableEnforcementJournalDoesNotStopMail(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "enforce"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "enforce", "journal.ndjson"), []byte("not json\n{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := startE2E(t, "--data-dir", data, "--graph-domain", "contoso.com", "--graph-tenant", "t", "--graph-client-id", "c",
		"--graph-client-secret-file", secret)
	id, _ := e.send("a@example.org", []string{"journal@example.com"}, "Subject: still recorded\r\n\r\nbody\r\n")
	if rec, _, _ := e.await(id); rec["id"] != id {
		t.Fatalf("record %v", rec)
	}
	resp, err := http.Get("http://" + e.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st struct {
		Enforcement struct {
			JournalError string `json:"journal_error"`
		} `json:"enforcement"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Enforcement.JournalError, "enforcement did not start") || !strings.Contains(st.Enforcement.JournalError, "line 1") {
		t.Errorf("/status enforcement.journal_error %q", st.Enforcement.JournalError)
	}
	if !strings.Contains(e.logs.String(), "enforcement not started") {
		t.Errorf("no log line says enforcement did not start:\n%s", e.logs.String())
	}
}
