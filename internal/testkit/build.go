package testkit

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// BuildSensor builds the sensor binary into dir and returns its path: the end-to-end tests,
// the benchmarks and the crash test run the real binary, as an operator does.
func BuildSensor(tb testing.TB, dir string) string {
	tb.Helper()
	bin := filepath.Join(dir, "sensor")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/journalsensor/sensor/cmd/sensor").CombinedOutput(); err != nil {
		tb.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
