package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthcheckCmd asks a running sensor's admin endpoint whether it is ready, so a container
// image needs no shell or curl for its HEALTHCHECK.
func healthcheckCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sensor healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	admin := fs.String("admin", "127.0.0.1:9025", "the sensor's --admin-listen address")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get("http://" + *admin + "/readyz")
	if err != nil {
		fmt.Fprintf(stderr, "sensor healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	msg := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "sensor healthcheck: %s\n", msg)
		return 1
	}
	fmt.Fprintln(stdout, msg)
	return 0
}
