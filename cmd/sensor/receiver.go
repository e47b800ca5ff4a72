package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/journalsensor/sensor/receiver"
)

func receiverCmd(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("sensor receiver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:8443", "address to listen on")
	out := fs.String("out", "", "directory for records.ndjson, blobs/, verdicts.ndjson and actions.ndjson (required)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token clients must send (default: no check)")
	certFile := fs.String("tls-cert", "", "TLS certificate (PEM); without it the receiver speaks plain HTTP, which the sensor refuses")
	keyFile := fs.String("tls-key", "", "key of --tls-cert")
	logFormat := fs.String("log-format", "text", "text or json")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	var problems []string
	if *out == "" {
		problems = append(problems, "--out: required (where records.ndjson goes)")
	}
	if (*certFile == "") != (*keyFile == "") {
		problems = append(problems, "--tls-cert and --tls-key go together")
	}
	token := ""
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			problems = append(problems, "--token-file: "+err.Error())
		}
		token = strings.TrimSpace(string(b))
		if err == nil && token == "" {
			problems = append(problems, "--token-file: "+*tokenFile+" is empty")
		}
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, "sensor receiver: "+strings.Join(problems, "\nsensor receiver: "))
		return 2
	}
	log := newLogger(stderr, *logFormat, "info")
	rcv, err := receiver.New(receiver.Config{OutDir: *out, Token: token, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "sensor receiver: %v\n", err)
		return 1
	}
	defer rcv.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "sensor receiver: --listen: %v\n", err)
		return 1
	}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan error, 1)
	go func() {
		if *certFile != "" {
			done <- srv.ServeTLS(ln, *certFile, *keyFile)
		} else {
			done <- srv.Serve(ln)
		}
	}()
	log.Info("receiver ready", "listen", ln.Addr().String(), "out", *out, "tls", *certFile != "", "auth", token != "")
	select {
	case <-ctx.Done():
	case err := <-done:
		if !errors.Is(err, http.ErrServerClosed) {
			log.Error("receiver failed", "error", err)
			return 1
		}
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	return 0
}
