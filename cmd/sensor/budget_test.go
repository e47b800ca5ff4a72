package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
)

// With the pipeline down, a spool at its --spool-max-bytes budget answers 452 4.3.1, and
// the records already acknowledged stay put.
func TestSpoolBudgetEndToEnd(t *testing.T) {
	dir := t.TempDir()
	caFile, _ := testkit.NewCA(t, dir)
	down := freeAddr(t) // nothing listens here: uploads fail and records stay in the spool
	cfg, err := loadServeConfig([]string{
		"--data-dir", filepath.Join(dir, "data"),
		"--smtp-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--pipeline-url", "https://" + down, "--pipeline-ca-file", caFile,
		"--spool-max-bytes", "4KiB",
	}, io.Discard, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), func(s, _ net.Addr) { ready <- s.String() })
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	defer func() { cancel(); <-done }()

	// send returns the reply code, and for a refusal the enhanced code as "4.3.1".
	send := func() (int, string) {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Hello("client.test"); err != nil {
			t.Fatal(err)
		}
		if err := c.Mail("a@example.org", nil); err != nil {
			return smtpCode(err)
		}
		if err := c.Rcpt("j@sensor.test", nil); err != nil {
			t.Fatal(err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "From: a@example.org\r\nSubject: budget\r\n\r\n"+strings.Repeat("x", 1500)+"\r\n")
		resp, err := w.CloseWithResponse()
		if err != nil {
			return smtpCode(err)
		}
		return 250, resp.StatusText // CloseWithResponse errs on anything but 2xx
	}
	accepted := 0
	for range 20 {
		code, text := send()
		if code == 250 {
			accepted++
			continue
		}
		if code != 452 || text != "4.3.1" {
			t.Fatalf("reply %d %q, want 250 or 452 4.3.1", code, text)
		}
		if accepted == 0 {
			t.Fatal("452 before anything was accepted")
		}
		return
	}
	t.Fatalf("%d messages accepted into a 4 KiB spool without a 452", accepted)
}

func smtpCode(err error) (int, string) {
	if se, ok := err.(*smtp.SMTPError); ok {
		e := se.EnhancedCode
		return se.Code, fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2])
	}
	return 0, err.Error()
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
