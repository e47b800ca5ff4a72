package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// TestSIGKILLLosesNothingAcknowledged runs the built binary, has four clients send mail
// continuously, and kills it with SIGKILL at random instants, five times. Every message
// that got a 250 must reach the receiver after a last restart; duplicates are allowed
// (the record id dedupes them).
func TestSIGKILLLosesNothingAcknowledged(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "sensor")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	caFile, srvTLS := testkit.NewCA(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("kill-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "out")
	rcv, err := api.NewReceiver(api.ReceiverConfig{OutDir: outDir, Token: "kill-test-token", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: rcv}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close(); rcv.Close() })

	smtpAddr := freeAddr(t)
	dataDir := filepath.Join(dir, "data")
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--smtp-listen", smtpAddr,
			"--admin-listen", "127.0.0.1:0", "--pipeline-url", "https://"+ln.Addr().String(),
			"--pipeline-token-file", tokenFile, "--pipeline-ca-file", caFile)
		cmd.Stderr = io.Discard
		cmd.Stdout = io.Discard
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitListening(t, smtpAddr)
		return cmd
	}

	var mu sync.Mutex
	var acked []string
	rng := rand.New(rand.NewPCG(7, 7))
	for round := range 5 {
		cmd := start()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					if id, ok := sendOnce(smtpAddr, fmt.Sprintf("round %d client %d message %d", round, c, n)); ok {
						mu.Lock()
						acked = append(acked, id)
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cancel()
		wg.Wait()
	}
	if len(acked) < 20 {
		t.Fatalf("only %d messages acknowledged across the rounds; the test proves little", len(acked))
	}

	// A last run delivers whatever the kills left in the spool.
	cmd := start()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := missingIDs(t, filepath.Join(outDir, "records.ndjson"), acked)
		if len(missing) == 0 {
			t.Logf("%d acknowledged messages across 5 SIGKILLs, all delivered", len(acked))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never arrived, e.g. %v", len(missing), len(acked), missing[:min(5, len(missing))])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.SetDeadline(time.Now().Add(2 * time.Second))
			g, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if strings.HasPrefix(g, "220") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sensor not accepting on %s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var queuedRE = regexp.MustCompile(`queued as ([0-9A-Z]{26})$`)

// sendOnce sends one small message and returns its record id when it got a 250.
func sendOnce(addr, body string) (string, bool) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		time.Sleep(10 * time.Millisecond)
		return "", false
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if c.Hello("killer.test") != nil || c.Mail("a@example.org", nil) != nil || c.Rcpt("j@sensor.test", nil) != nil {
		return "", false
	}
	w, err := c.Data()
	if err != nil {
		return "", false
	}
	io.WriteString(w, "From: a@example.org\r\nSubject: kill\r\n\r\n"+body+"\r\n")
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", false
	}
	m := queuedRE.FindStringSubmatch(resp.StatusText)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func missingIDs(t *testing.T, file string, want []string) []string {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		var r struct{ ID string }
		if json.Unmarshal([]byte(line), &r) == nil {
			have[r.ID] = true
		}
	}
	var missing []string
	for _, id := range want {
		if !have[id] {
			missing = append(missing, id)
		}
	}
	return missing
}
