package bench

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
)

// BenchmarkHostile runs `sensor parse` on each hostile input of testkit.Hostile and reports its
// time and peak RSS. The reference is the same binary on an ordinary message of the same
// size class: BenchmarkParse150MiBPeakRSS.
func BenchmarkHostile(b *testing.B) {
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)
	for _, h := range testkit.HostileMessages() {
		file := filepath.Join(dir, h.Name+".eml")
		f, err := os.Create(file)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(f, h.New())
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
		b.Run(h.Name, func(b *testing.B) {
			b.SetBytes(n)
			var peak int64
			for b.Loop() {
				_, hwm := runParse(b, bin, file)
				peak = max(peak, hwm)
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
			b.ReportMetric(float64(n)/(1<<20), "input-MiB")
		})
	}
}
