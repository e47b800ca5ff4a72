package testkit

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/journalsensor/sensor/receiver"
)

// Pipeline is `sensor receiver` over HTTPS with a bearer token, closed when the test ends:
// the pipeline end of an end-to-end test.
type Pipeline struct {
	URL       string // https://127.0.0.1:PORT
	CAFile    string // the CA that signs its certificate, for --pipeline-ca-file
	Token     string
	TokenFile string // the token with a trailing newline, for --pipeline-token-file
	OutDir    string // records.ndjson, verdicts.ndjson, actions.ndjson
}

// StartPipeline runs a receiver that keeps its files under dir and logs to logger (nil: no
// log).
func StartPipeline(tb testing.TB, dir, token string, logger *slog.Logger) *Pipeline {
	tb.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{Token: token, TokenFile: filepath.Join(dir, "pipeline-token"), OutDir: filepath.Join(dir, "out")}
	if err := os.WriteFile(p.TokenFile, []byte(token+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	var srvTLS *tls.Config
	p.CAFile, srvTLS = NewCA(tb, dir)
	rcv, err := receiver.New(receiver.Config{OutDir: p.OutDir, Token: token, Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvTLS)
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: rcv}
	go func() { _ = hs.Serve(ln) }()
	tb.Cleanup(func() { _ = hs.Close(); _ = rcv.Close() })
	p.URL = "https://" + ln.Addr().String()
	return p
}
