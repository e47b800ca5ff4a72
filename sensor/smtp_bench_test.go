package sensor

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// BenchmarkSMTPData sends 1 MiB messages of 76-byte lines over loopback, one session, to an
// intake whose parser only reads: what the SMTP side costs per byte.
func BenchmarkSMTPData(b *testing.B) {
	discard := parseFunc(func(r io.Reader) (*api.Record, error) {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
		return &api.Record{}, nil
	})
	in := NewIntake(IntakeConfig{}, discard, &memSpool{}, nil)
	srv := NewSMTPServer(SMTPConfig{Domain: "sensor.test", MaxMessageBytes: 8 << 20}, in, nil)
	conn, expect := benchSession(b, srv, "bench")
	line := strings.Repeat("QUJD", 19) + "\r\n"
	body := "Subject: bench\r\n\r\n" + strings.Repeat(line, (1<<20)/len(line)) + ".\r\n"
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		io.WriteString(conn, "MAIL FROM:<a@example.org>\r\nRCPT TO:<j@sensor.test>\r\nDATA\r\n")
		expect("250")
		expect("250")
		expect("354")
		io.WriteString(conn, body)
		expect("250")
	}
}

// benchSession serves srv on a loopback port for the benchmark, opens one session, says EHLO
// as helo, and returns the connection and a function that reads the next reply (the last
// line of a multi-line one) and fails b unless it starts with prefix.
func benchSession(b *testing.B, srv *SMTPServer, helo string) (net.Conn, func(prefix string)) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	r := bufio.NewReader(conn)
	expect := func(prefix string) {
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(l) >= 4 && l[3] == '-' {
				continue
			}
			if !strings.HasPrefix(l, prefix) {
				b.Fatalf("reply %q, want %s", l, prefix)
			}
			return
		}
	}
	expect("220")
	fmt.Fprintf(conn, "EHLO %s\r\n", helo)
	expect("250")
	return conn, expect
}
