package sensor

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// SIGTERM's first half: a transaction under way finishes and is acknowledged, a new
// connection is told 421, an idle session is told 421 at its next MAIL, and Shutdown returns
// once the transaction is done.
func TestShutdownFinishesInFlightAndRefusesNew(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	busy := dial(t, ts.addr)
	busy.envelope()
	busy.cmd("DATA", "354")
	busy.send("From: a@example.org\r\nSubject: half\r\n\r\nfirst half\r\n") // the rest comes later

	idle := dial(t, ts.addr)
	idle.cmd("EHLO idle.test", "250")

	srv := ts.srv
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(ctx)
	}()
	waitFor(t, func() bool { return srv.draining.Load() })

	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	greeting := make([]byte, 128)
	n, _ := c.Read(greeting)
	if !strings.HasPrefix(string(greeting[:n]), "421 4.3.2") {
		t.Errorf("new connection greeted %q, want 421 4.3.2", greeting[:n])
	}
	c.Close()

	idle.cmd("MAIL FROM:<x@example.org>", "421")

	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) while a transaction was under way", err)
	case <-time.After(200 * time.Millisecond):
	}
	busy.send("second half\r\n.\r\n")
	id := queuedID(t, busy.expect("250 2.0.0"))
	if _, ok := ts.spool.get(id); !ok {
		t.Fatalf("250 for %s without a committed record", id)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last transaction ended")
	}
}

// At the deadline, a transaction still under way is cut off unacknowledged, and Shutdown
// says so.
func TestShutdownDeadlineCutsOffUnacknowledged(t *testing.T) {
	ts := startServer(t, SMTPConfig{})
	busy := dial(t, ts.addr)
	busy.envelope()
	busy.cmd("DATA", "354")
	busy.send("Subject: never finished\r\n\r\n")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ts.srv.Shutdown(ctx); err == nil {
		t.Error("Shutdown returned nil with a transaction cut off")
	}
	if ts.spool.count() != 0 {
		t.Errorf("%d records committed for a cut-off transaction", ts.spool.count())
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 5 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
