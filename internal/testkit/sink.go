package testkit

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Sink is Postfix's smtp-sink accepting mail on a loopback port and keeping each message it
// receives in a file of its own, so a test can read what a gateway actually delivered.
type Sink struct {
	dir string
}

// StartSink runs smtp-sink on addr, dumping every message. It is killed, and its files
// removed unless the test failed, when the test ends.
func StartSink(t testing.TB, addr string) *Sink {
	t.Helper()
	if _, err := exec.LookPath("smtp-sink"); err != nil {
		t.Fatal("smtp-sink not found: apt-get install -y postfix")
	}
	// Not t.TempDir: smtp-sink refuses to run as root, and the user it switches to must be
	// able to create its dump files there.
	dir, err := os.MkdirTemp("", "sensor-sink-")
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-d", filepath.Join(dir, "msg.")}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-u", "nobody")
	}
	cmd := exec.Command("smtp-sink", append(args, addr, "64")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("smtp-sink's dumps are kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	WaitListening(t, addr)
	return &Sink{dir: dir}
}

// Messages returns each message received completely so far, as smtp-sink dumped it: its
// own X-Client-Addr, X-Mail-Args and the like and a Received header, then the message as
// the client sent it, with LF line ends.
func (s *Sink) Messages(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.dir, "msg.*"))
	if err != nil {
		t.Fatal(err)
	}
	var msgs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The empty line smtp-sink writes after each message is not part of it.
		m, ok := strings.CutSuffix(string(b), "\n\n")
		if !ok {
			continue // still being written
		}
		msgs = append(msgs, m+"\n")
	}
	return msgs
}

// StartPostfixMilterRelay starts a private Postfix, as StartPostfix does, that consults m
// as its milter and relays each domain in routes to its host:port, with no always_bcc: the
// only copy the sensor gets is what the milter sees, and the relayed message is what the
// milter made of it. extra is appended to main.cf.
func StartPostfixMilterRelay(t testing.TB, listen string, m Milter, routes map[string]string, extra string) *Postfix {
	t.Helper()
	return StartPostfix(t, listen, routes, "always_bcc =\n"+m.mainCF()+extra)
}
