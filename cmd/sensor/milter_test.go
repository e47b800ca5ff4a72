package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-milter"
)

// `sensor serve --milter-listen unix:...` with the real wiring: a message from a milter
// client is committed, named in the header the milter adds, uploaded with its queue id, and
// the socket file is gone after shutdown.
func TestServeMilterOverUnixSocket(t *testing.T) {
	dir, err := os.MkdirTemp("", "sensor-milter") // short: a socket path has a 108-byte limit
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "milter.sock")
	e := startE2E(t, "--milter-listen", "unix:"+sock, "--milter-socket-mode", "0600", "--milter-add-header")
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v %v, want mode 0600", fi, err)
	}

	c := milter.NewClientWithOptions("unix", sock, milter.ClientOptions{
		ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second, ActionMask: milter.OptAddHeader,
	})
	s, err := c.Session()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	steps := []func() (*milter.Action, error){
		func() (*milter.Action, error) {
			return s.Conn("mail.client.test", milter.FamilyInet, 40000, "198.51.100.7")
		},
		func() (*milter.Action, error) { return s.Helo("client.e2e.test") },
		func() (*milter.Action, error) { return s.Mail("<a@example.org>", nil) },
		func() (*milter.Action, error) { return s.Rcpt("<b@example.com>", nil) },
		func() (*milter.Action, error) { return s.HeaderField("From", "a@example.org") },
		func() (*milter.Action, error) { return s.HeaderField("Subject", "through the milter") },
		func() (*milter.Action, error) { return s.HeaderEnd() },
		func() (*milter.Action, error) { return s.BodyChunk([]byte("See https://example.net/x\r\n")) },
	}
	for i, step := range steps {
		if act, err := step(); err != nil || act.Code != milter.ActContinue {
			t.Fatalf("step %d: %v %v", i, act, err)
		}
	}
	if err := s.Macros(milter.CodeEOB, "i", "4ZxQ1"); err != nil {
		t.Fatal(err)
	}
	mods, act, err := s.End()
	if err != nil || act.Code != milter.ActAccept || len(mods) != 1 || mods[0].HeaderName != "X-Journal-Sensor-Id" {
		t.Fatalf("end of message: %v %v %+v", act, err, mods)
	}
	rec, _, _ := e.await(mods[0].HeaderValue)
	env, _ := rec["envelope"].(map[string]any)
	if env["transport"] != "milter" || env["queue_id"] != "4ZxQ1" || env["client_ip"] != "198.51.100.7" || env["helo"] != "client.e2e.test" {
		t.Errorf("envelope %v", env)
	}
	if msg, _ := rec["message"].(map[string]any); msg["subject"] != "through the milter" {
		t.Errorf("message %v", rec["message"])
	}
	if err := e.stop(); err != nil {
		t.Errorf("serve: %v", err)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file after shutdown: %v", err)
	}
}
