package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	milter "github.com/d--j/go-milter"
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

	macros := milter.NewMacroBag()
	s, err := newMilterClient(sock).Session(macros)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	steps := []func() (*milter.Action, error){
		func() (*milter.Action, error) {
			return s.Conn("mail.client.test", milter.FamilyInet, 40000, "198.51.100.7")
		},
		func() (*milter.Action, error) { return s.Helo("client.e2e.test") },
		func() (*milter.Action, error) { return s.Mail("a@example.org", "") },
		func() (*milter.Action, error) { return s.Rcpt("b@example.com", "") },
		func() (*milter.Action, error) { return s.DataStart() },
		func() (*milter.Action, error) { return s.HeaderField("From", " "+"a@example.org", nil) },
		func() (*milter.Action, error) { return s.HeaderField("Subject", " "+"through the milter", nil) },
		func() (*milter.Action, error) { return s.HeaderEnd() },
		func() (*milter.Action, error) { return s.BodyChunk([]byte("See https://example.net/x\r\n")) },
	}
	for i, step := range steps {
		if act, err := step(); err != nil || act.Type != milter.ActionContinue {
			t.Fatalf("step %d: %v %v", i, act, err)
		}
	}
	macros.Set(milter.MacroQueueId, "4ZxQ1")
	mods, act, err := s.End()
	if err != nil || act.Type != milter.ActionAccept || len(mods) != 1 || mods[0].HeaderName != "X-Journal-Sensor-Id" {
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

// SIGTERM with a milter message half received: new milter connections are closed at once
// (Postfix applies milter_default_action), the message under way is finished, committed and
// accepted, its record is uploaded by the shutdown flush, and serve returns nil.
func TestSIGTERMFinishesTheMilterMessageUnderWay(t *testing.T) {
	dir, err := os.MkdirTemp("", "sensor-milter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "milter.sock")
	e := startE2E(t, "--milter-listen", "unix:"+sock, "--milter-add-header")
	client := newMilterClient(sock)
	s, err := client.Session(milter.NewMacroBag())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i, step := range []func() (*milter.Action, error){
		func() (*milter.Action, error) {
			return s.Conn("mail.client.test", milter.FamilyInet, 40001, "198.51.100.8")
		},
		func() (*milter.Action, error) { return s.Helo("client.e2e.test") },
		func() (*milter.Action, error) { return s.Mail("a@example.org", "") },
		func() (*milter.Action, error) { return s.Rcpt("b@example.com", "") },
		func() (*milter.Action, error) { return s.DataStart() },
		func() (*milter.Action, error) { return s.HeaderField("Subject", " "+"caught by SIGTERM", nil) },
	} {
		if act, err := step(); err != nil || act.Type != milter.ActionContinue {
			t.Fatalf("step %d: %v %v", i, act, err)
		}
	}

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		late, err := client.Session(milter.NewMacroBag())
		if err != nil {
			break // closed at once: the door is draining
		}
		late.Close()
		if time.Now().After(deadline) {
			t.Fatal("new milter connections were still served after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}

	for i, step := range []func() (*milter.Action, error){
		func() (*milter.Action, error) { return s.HeaderEnd() },
		func() (*milter.Action, error) { return s.BodyChunk([]byte("second half\r\n")) },
	} {
		if act, err := step(); err != nil || act.Type != milter.ActionContinue {
			t.Fatalf("step %d after SIGTERM: %v %v", i, act, err)
		}
	}
	mods, act, err := s.End()
	if err != nil || act.Type != milter.ActionAccept || len(mods) != 1 {
		t.Fatalf("end of message after SIGTERM: %v %v %+v", act, err, mods)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve returned %v, want nil (exit 0)", err)
	}
	if rec, _, _ := e.await(mods[0].HeaderValue); rec["id"] != mods[0].HeaderValue {
		t.Errorf("record %s not delivered by the shutdown flush", mods[0].HeaderValue)
	}
}

// A socket mode means the octal it spells, however it is given: YAML alone reads an
// unquoted 0640 as the number 416.
func TestMilterSocketModeIsOctalEverywhere(t *testing.T) {
	dir := t.TempDir()
	n := 0
	write := func(body string) string {
		n++
		f := filepath.Join(dir, fmt.Sprintf("c%d.yaml", n))
		if err := os.WriteFile(f, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"yaml unquoted", []string{"--config", write("milter-socket-mode: 0640\n")}, nil},
		{"yaml quoted", []string{"--config", write("milter-socket-mode: \"0640\"\n")}, nil},
		{"yaml 0o", []string{"--config", write("milter-socket-mode: 0o640\n")}, nil},
		{"flag", []string{"--milter-socket-mode", "640"}, nil},
		{"env", nil, map[string]string{"SENSOR_MILTER_SOCKET_MODE": "0640"}},
		{"flag beats file", []string{"--config", write("milter-socket-mode: 0600\n"), "--milter-socket-mode", "0640"}, nil},
		{"env beats file", []string{"--config", write("milter-socket-mode: 0600\n")}, map[string]string{"SENSOR_MILTER_SOCKET_MODE": "0640"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadServeConfig(append([]string{"--data-dir", dir}, tc.args...), io.Discard, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.milterMode != 0o640 {
				t.Errorf("mode %#o, want 0640", c.milterMode)
			}
		})
	}
}

// newMilterClient is a milter client as Postfix is one: protocol 6, header additions allowed.
func newMilterClient(sock string) *milter.Client {
	return milter.NewClient("unix", sock, milter.WithReadTimeout(10*time.Second), milter.WithWriteTimeout(10*time.Second),
		milter.WithActions(milter.OptAddHeader|milter.OptSetMacros))
}
