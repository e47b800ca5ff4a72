// Package crash holds the sensor's crash test: the built binary is killed with SIGKILL at
// random instants while mail arrives and the pipeline is down, and every message that got a
// 250 must reach the pipeline once it is back. `go test ./...` runs it with a few kills;
// .ci/run runs it with more and prints the report:
//
//	CRASH_KILLS=25 go test -count=1 -v -run TestCrash ./scripts/crash/
package crash

import (
	"bufio"
	"bytes"
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/receiver"
)

// acked is a message the sensor answered 250 to, and the record id it named.
type acked struct{ token, id string }

// TestCrash drives mail from several clients that retry like an MTA (a message is sent again
// until it gets a 250), with the pipeline down throughout, and kills the sensor with SIGKILL
// at random moments, restarting it each time. Then the pipeline comes up, the sensor starts
// once more, and every acknowledged message must arrive. Duplicates (a message stored under
// two record ids, because a kill took its 250 away after the commit) are allowed and counted.
func TestCrash(t *testing.T) {
	kills := 5
	if v := os.Getenv("CRASH_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CRASH_KILLS=%q: want a positive count", v)
		}
		kills = n
	}
	const clients = 6
	dir := t.TempDir()
	bin := testkit.BuildSensor(t, dir)
	caFile, srvTLS := testkit.NewCA(t, dir)
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("crash-test-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pipeline := freeAddr(t) // nothing listens here until the kills are over
	smtpAddr := freeAddr(t)
	dataDir := filepath.Join(dir, "data")
	var logs bytes.Buffer // the last run's stderr, for a failure
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--data-dir", dataDir, "--smtp-listen", smtpAddr,
			"--admin-listen", "127.0.0.1:0", "--pipeline-url", "https://"+pipeline,
			"--pipeline-token-file", tokenFile, "--pipeline-ca-file", caFile)
		logs.Reset()
		cmd.Stderr = &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitListening(t, smtpAddr)
		return cmd
	}

	var mu sync.Mutex
	var got []acked
	attempts, refused := 0, 0
	ctx, stopClients := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				token := fmt.Sprintf("crash-%d-%d", c, n)
				for ctx.Err() == nil { // like an MTA: the same message until it is taken
					id, ok := sendOnce(smtpAddr, token)
					mu.Lock()
					attempts++
					if ok {
						got = append(got, acked{token, id})
					} else {
						refused++
					}
					mu.Unlock()
					if ok {
						break
					}
					time.Sleep(time.Duration(10+rand.IntN(40)) * time.Millisecond)
				}
			}
		})
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 4))
	for range kills {
		cmd := start()
		time.Sleep(time.Duration(100+rng.IntN(500)) * time.Millisecond)
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
	}
	stopClients()
	wg.Wait()
	if len(got) < 5*kills {
		t.Fatalf("only %d messages acknowledged across %d kills; the test proves little", len(got), kills)
	}

	// The pipeline comes up, then the sensor starts once more and delivers what the kills left.
	outDir := filepath.Join(dir, "out")
	rcv, err := receiver.New(receiver.Config{OutDir: outDir, Token: "crash-test-token", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", pipeline, srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: rcv}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close(); _ = rcv.Close() })
	cmd := start()
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()

	deadline := time.Now().Add(90 * time.Second)
	for {
		byID, byToken := stored(t, filepath.Join(outDir, "records.ndjson"))
		var missing []string
		for _, a := range got {
			if byID[a.id] != a.token {
				missing = append(missing, a.token+" as "+a.id)
			}
		}
		if len(missing) == 0 {
			dups, extra := 0, 0
			for _, ids := range byToken {
				if len(ids) > 1 {
					dups++
					extra += len(ids) - 1
				}
			}
			t.Logf("crash test: %d kills; %d messages acknowledged, %d delivered (%d records in all); "+
				"%d messages arrived more than once (%d extra records); %d attempts, %d not acknowledged and retried",
				kills, len(got), len(got), len(byID), dups, extra, attempts, refused)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged messages never arrived, e.g. %v\nlast run's log:\n%s",
				len(missing), len(got), missing[:min(5, len(missing))], logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var tokenRE = regexp.MustCompile(`crash-\d+-\d+`)

// stored reads the receiver's records: record id → the message's token, and token → ids.
func stored(t *testing.T, file string) (byID map[string]string, byToken map[string][]string) {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	byID, byToken = map[string]string{}, map[string][]string{}
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		var r struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &r) != nil || r.ID == "" {
			continue
		}
		token := string(tokenRE.Find(line)) // from the Subject and Message-ID
		byID[r.ID] = token
		byToken[token] = append(byToken[token], r.ID)
	}
	return byID, byToken
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
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			g, _ := bufio.NewReader(c).ReadString('\n')
			_ = c.Close()
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

// sendOnce sends one small message marked with token and returns its record id when it got
// a 250.
func sendOnce(addr, token string) (string, bool) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", false
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	c := smtp.NewClient(conn)
	defer c.Close()
	if c.Hello("crash.test") != nil || c.Mail("a@example.org", nil) != nil || c.Rcpt("j@sensor.test", nil) != nil {
		return "", false
	}
	w, err := c.Data()
	if err != nil {
		return "", false
	}
	_, _ = io.WriteString(w, "From: a@example.org\r\nSubject: "+token+"\r\nMessage-ID: <"+token+"@crash.test>\r\n\r\nkill\r\n")
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
