package bench

import (
	"bytes"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jhillyerd/enmime/v2"

	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// bigMessage returns a message with a short text part and one base64 attachment of n
// pseudo-random bytes in 76-column CRLF lines (what Outlook and Gmail send), and the
// attachment's base64 text without line breaks, for the raw-speed reference.
func bigMessage(n int) (msg []byte, b64 []byte) {
	payload := make([]byte, n)
	r := rand.NewChaCha8([32]byte{1})
	r.Read(payload)
	b64 = make([]byte, base64.StdEncoding.EncodedLen(n))
	base64.StdEncoding.Encode(b64, payload)
	var buf bytes.Buffer
	buf.Grow(len(b64)*78/76 + 4096)
	buf.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: big\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n\r\n" +
		"see https://example.com/report\r\n--XX\r\nContent-Type: application/octet-stream; name=big.bin\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n")
	for i := 0; i < len(b64); i += 76 {
		buf.Write(b64[i:min(i+76, len(b64))])
		buf.WriteString("\r\n")
	}
	buf.WriteString("--XX--\r\n")
	return buf.Bytes(), b64
}

var bigOnce = sync.OnceValues(func() ([]byte, []byte) { return bigMessage(100 << 20) })

// BenchmarkBigAttachmentSensor parses a message with a 100 MiB base64 attachment: decode,
// MD5, SHA-1, SHA-256 and type sniffing of the attachment, in one streaming pass.
func BenchmarkBigAttachmentSensor(b *testing.B) {
	msg, _ := bigOnce()
	p, err := parser.New(parser.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		rec, err := p.Parse(bytes.NewReader(msg))
		if err != nil || len(rec.Attachments) != 1 || rec.Attachments[0].Size != 100<<20 {
			b.Fatalf("parse: %v %+v", err, rec)
		}
	}
}

// BenchmarkBigAttachmentEnmime is the reference: enmime v2's ReadEnvelope on the same
// message. It decodes and holds the attachment but hashes nothing.
func BenchmarkBigAttachmentEnmime(b *testing.B) {
	msg, _ := bigOnce()
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		env, err := enmime.ReadEnvelope(bytes.NewReader(msg))
		if err != nil || len(env.Attachments) != 1 || len(env.Attachments[0].Content) != 100<<20 {
			b.Fatalf("enmime: %v", err)
		}
	}
}

// BenchmarkBigAttachmentRaw is the physical limit of the attachment path on this machine:
// base64 decoding of the attachment's text (line breaks already removed) followed by MD5,
// SHA-1 and SHA-256 of the result, with nothing else. MB/s is reported over the same
// message bytes as the two benchmarks above, so the three are comparable.
func BenchmarkBigAttachmentRaw(b *testing.B) {
	msg, b64 := bigOnce()
	out := make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		n, err := base64.StdEncoding.Decode(out, b64)
		if err != nil {
			b.Fatal(err)
		}
		md5.Sum(out[:n])
		sha1.Sum(out[:n])
		sha256.Sum256(out[:n])
	}
}

// BenchmarkParse150MiBPeakRSS runs `sensor parse` on a 150 MiB message file and reports the
// process's peak resident set size (target: at most 64 MiB).
func BenchmarkParse150MiBPeakRSS(b *testing.B) {
	dir := b.TempDir()
	bin := testkit.BuildSensor(b, dir)
	msg, _ := bigMessage(150 << 20 * 3 / 4) // base64 grows it by 4/3: about 150 MiB on disk
	file := filepath.Join(dir, "big.eml")
	if err := os.WriteFile(file, msg, 0o600); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	var peak int64
	for b.Loop() {
		out, hwm := runParse(b, bin, file)
		peak = max(peak, hwm)
		if !strings.Contains(out, `"big.bin"`) {
			b.Fatalf("record lacks the attachment: %.300s", out)
		}
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(len(msg))/(1<<20), "message-MiB")
}

// runParse runs `sensor parse file` and returns its output and peak RSS in bytes.
func runParse(b *testing.B, bin, file string) (string, int64) {
	b.Helper()
	cmd := exec.Command(bin, "parse", file)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	hwm := make(chan int64)
	go func() { hwm <- pollHWM(cmd.Process.Pid, done) }()
	err := cmd.Wait()
	close(done)
	peak := <-hwm
	if err != nil {
		b.Fatalf("sensor parse %s: %v", file, err)
	}
	return out.String(), peak
}

// pollHWM samples the process's VmHWM (its own peak RSS) until done is closed. The
// rusage that Wait returns is no use here: Go starts children with vfork, so the child's
// ru_maxrss inherits the parent's high-water mark (this benchmark holds the message in
// memory, hundreds of MiB).
func pollHWM(pid int, done <-chan struct{}) int64 {
	var peak int64
	path := "/proc/" + strconv.Itoa(pid) + "/status"
	for {
		if data, err := os.ReadFile(path); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
					peak = max(peak, kb*1024)
				}
			}
		}
		select {
		case <-done:
			return peak
		case <-time.After(2 * time.Millisecond):
		}
	}
}
