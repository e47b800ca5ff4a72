package bench

import (
	"fmt"
	"os/exec"
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
