package main

import (
	"bufio"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"
)

// SIGTERM with a message half received: new connections get 421, the message is finished
// and acknowledged, its record is uploaded before the process ends, and serve returns nil
// (exit 0). The signal is serve's context being cancelled, which is what main does on
// SIGTERM; scripts/e2e-swaks.sh sends the real signal to the built binary.
func TestSIGTERMFinishesTheMessageUnderWay(t *testing.T) {
	e := startE2E(t)
	conn, err := net.Dial("tcp", e.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func() string {
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("reading reply: %v", err)
			}
			if len(line) < 4 || line[3] != '-' {
				return strings.TrimSpace(line)
			}
		}
	}
	say := func(s, want string) {
		if _, err := conn.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if got := reply(); !strings.HasPrefix(got, want) {
			t.Fatalf("after %q: reply %q, want %s", s, got, want)
		}
	}
	reply() // greeting
	say("EHLO client.test\r\n", "250")
	say("MAIL FROM:<a@example.org>\r\n", "250")
	say("RCPT TO:<journal@sensor.test>\r\n", "250")
	say("DATA\r\n", "354")
	conn.Write([]byte("From: a@example.org\r\nSubject: caught by SIGTERM\r\n\r\nfirst half\r\n"))

	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", e.smtp)
		if err == nil {
			c.SetDeadline(time.Now().Add(5 * time.Second))
			g, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(g, "421 4.3.2") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("new connections never got 421 after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if _, err := conn.Write([]byte("second half\r\n.\r\n")); err != nil {
		t.Fatal(err)
	}
	got := reply()
	m := regexp.MustCompile(`^250 2\.0\.0 OK queued as ([0-9A-Z]{26})$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("end of DATA after SIGTERM: %q, want 250 with the record id", got)
	}
	if err := <-stopped; err != nil {
		t.Errorf("serve returned %v, want nil (exit 0)", err)
	}
	if rec, _, _ := e.await(m[1]); rec["id"] != m[1] {
		t.Errorf("record %v not delivered by the shutdown flush", m[1])
	}
}
