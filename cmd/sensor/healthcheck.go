package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// healthcheckCmd asks a running sensor's admin endpoint whether it is ready, so a container
// image needs no shell or curl for its HEALTHCHECK.
func healthcheckCmd(args []string, stdout, stderr io.Writer) int {
	return healthcheck(args, stdout, stderr, os.Getenv)
}

func healthcheck(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("sensor healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// The default follows SENSOR_ADMIN_LISTEN, the variable serve reads too: the image's
	// HEALTHCHECK runs with no flags and must find the admin listener the image configured,
	// and an operator who moves it with that variable moves the healthcheck with it.
	def := "127.0.0.1:9025"
	if v := getenv(envName("admin-listen")); v != "" {
		def = v
	}
	admin := fs.String("admin", def, "the sensor's --admin-listen address (default from $SENSOR_ADMIN_LISTEN)")
	timeout := fs.Duration("timeout", 3*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get("http://" + dialable(*admin) + "/readyz")
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

// dialable turns a listen address into one to connect to: a listener on every address
// (":9025", "0.0.0.0:9025", "[::]:9025", as the image sets) is reached on loopback, from
// inside the same container or host.
func dialable(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}
