// Package bench holds benchmarks that compare the sensor with a reference measured in the
// same run (these machines are shared and noisy, so only ratios mean much). Results and the
// machine they ran on are recorded in docs/BENCHMARKS.md.
//
//	go test -run '^$' -bench . -benchtime 20x ./scripts/bench/
package bench

import (
	"bytes"
	"os"
	"testing"

	"github.com/jhillyerd/enmime/v2"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// loadCorpus reads every message of the shared corpus into memory, so the benchmarks measure
// parsing and not the disk.
func loadCorpus(b *testing.B) ([][]byte, int64) {
	b.Helper()
	var msgs [][]byte
	var total int64
	for _, f := range testkit.CorpusMessages(b, testkit.CorpusDir(b)) {
		data, err := os.ReadFile(f)
		if err != nil {
			b.Fatal(err)
		}
		msgs = append(msgs, data)
		total += int64(len(data))
	}
	return msgs, total
}

// BenchmarkCorpusSensor parses the whole shared corpus with the sensor's parser, as
// `sensor parse` does (metadata mode, URLs on).
func BenchmarkCorpusSensor(b *testing.B) {
	msgs, total := loadCorpus(b)
	p, err := parser.New(parser.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range msgs {
			if _, err := p.Parse(bytes.NewReader(m)); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkCorpusEnmime is the reference: enmime v2's ReadEnvelope over the same messages.
// It does less (no hashing, no URL extraction), so it is a conservative yardstick.
func BenchmarkCorpusEnmime(b *testing.B) {
	msgs, total := loadCorpus(b)
	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() {
		for _, m := range msgs {
			_, _ = enmime.ReadEnvelope(bytes.NewReader(m)) // malformed corpus messages may error
		}
	}
}
