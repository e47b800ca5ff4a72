package bench

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// needTools fails b, naming the package to install, unless every tool is on the PATH: a
// benchmark that needs one must not pass quietly without it.
func needTools(b *testing.B, tools ...string) {
	b.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not found: apt-get install -y postfix", tool)
		}
	}
}

// buildSensor builds the sensor binary into dir and returns its path.
func buildSensor(b *testing.B, dir string) string {
	b.Helper()
	bin := filepath.Join(dir, "sensor")
	build := exec.Command("go", "build", "-o", bin, "github.com/journalsensor/sensor/cmd/sensor")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// smtpSource sends msgs messages of size bytes to addr with Postfix's smtp-source over
// sessions concurrent sessions, one message a session, and returns how long it took.
func smtpSource(b *testing.B, addr string, sessions, msgs, size int) time.Duration {
	b.Helper()
	t0 := time.Now()
	out, err := exec.Command("smtp-source", "-s", fmt.Sprint(sessions), "-m", fmt.Sprint(msgs), "-l", fmt.Sprint(size),
		"-f", "alice@gw.test", "-t", "journal@sensor.test", addr).CombinedOutput()
	if err != nil {
		b.Fatalf("smtp-source %s: %v\n%s", addr, err, out)
	}
	return time.Since(t0)
}
