// Command sensor is Journal Sensor: an SMTP sink for journal and BCC copies that keeps only
// what threat analysis needs and delivers it to a scoring pipeline.
//
//	sensor serve    [--config FILE] [flags]          run the sensor
//	sensor parse    [--attachments MODE] [--urls on|off] FILE... | -
//	sensor receiver --listen ADDR --out DIR [--token-file F] [--tls-cert F --tls-key F]
//	sensor config check --config FILE
//	sensor config print [--config FILE] [flags]
//	sensor config docs
//	sensor drain    --data-dir DIR [--drain-timeout D] [serve's flags]
//	sensor spool    ls|cat [--pending] [--data-dir DIR]
//	sensor enforce  --message-id ID --recipient A --action ACTION [--observe] [serve's flags]
//	sensor healthcheck [--admin ADDR]
//	sensor version
//
// This file only dispatches; each command lives in its own file.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

const usage = `Journal Sensor: an SMTP sink for journal and BCC copies.

Usage:
  sensor serve    [--config FILE] [flags]     run the sensor (see: sensor serve --help)
  sensor parse    [--attachments MODE] [--urls on|off] FILE... | -
                                              print one record (a JSON line) per message
  sensor receiver --listen ADDR --out DIR [--token-file F] [--tls-cert F --tls-key F]
                                              run the reference pipeline endpoint
  sensor config check --config FILE           report every problem in a config file
  sensor config print [--config FILE] [flags] print the configuration in effect, as a config file
  sensor config docs                          print docs/configuration.md, made from the flags
  sensor drain    --data-dir DIR [--drain-timeout D] [serve's flags]
                                              upload what is left in a spool, then exit (no mail taken)
  sensor spool ls|cat [--pending] [--data-dir DIR]
                                              list a spool, or print its records as NDJSON
  sensor enforce  --message-id ID --recipient A --action ACTION [--observe] [--config FILE]
                                              one mailbox action by hand, with serve's settings
  sensor healthcheck [--admin ADDR]           exit 0 when the running sensor is ready
  sensor version
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serveCmd(args[1:], stderr, getenv)
	case "parse":
		return parseCmd(args[1:], stdin, stdout, stderr)
	case "receiver":
		return receiverCmd(args[1:], stderr)
	case "config":
		if len(args) >= 2 {
			switch args[1] {
			case "check":
				return configCheckCmd(args[2:], stdout, stderr, getenv)
			case "print":
				return configPrintCmd(args[2:], stdout, stderr, getenv)
			case "docs":
				return configDocsCmd(args[2:], stdout, stderr)
			}
		}
		fmt.Fprintln(stderr, "usage: sensor config check|print|docs [--config FILE] [flags]")
		return 2
	case "drain":
		return drainCmd(args[1:], stderr, getenv)
	case "spool":
		return spoolCmd(args[1:], stdout, stderr, getenv)
	case "enforce":
		return enforceCmd(args[1:], stdout, stderr, getenv)
	case "healthcheck":
		return healthcheckCmd(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "sensor", version)
		return 0
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "sensor: unknown command %q\n\n%s", args[0], usage)
	return 2
}
