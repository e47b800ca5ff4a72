package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser"
)

func parseCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sensor parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sensor parse [--attachments off|metadata] [--urls on|off] FILE... | -")
		fmt.Fprintln(stderr, "Prints one record (a JSON line) per message, from the same parser as sensor serve.")
		fs.PrintDefaults()
	}
	attachments := fs.String("attachments", "metadata", "off or metadata (hashes, types, sizes)")
	urls := onOff(true)
	fs.Var(&urls, "urls", "extract URLs: on or off")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	mode, err := parser.ParseAttachmentMode(*attachments)
	if err == nil && mode == parser.AttachmentsContent {
		err = errors.New("content mode uploads bytes and has no meaning for parse; use metadata")
	}
	if err != nil {
		fmt.Fprintf(stderr, "sensor parse: --attachments: %v\n", err)
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	p, err := parser.New(parser.Options{Attachments: mode, NoURLs: !bool(urls)})
	if err != nil {
		fmt.Fprintf(stderr, "sensor parse: %v\n", err)
		return 2
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	defer out.Flush()
	start := time.Now()
	failed, bytes := 0, int64(0)
	for _, name := range fs.Args() {
		rec, err := parseOne(p, name, stdin)
		if err != nil {
			fmt.Fprintf(stderr, "sensor parse: %s: %v\n", name, err)
			failed++
			continue
		}
		bytes += rec.Message.Size
		line, err := api.MarshalRecord(rec)
		if err == nil {
			_, err = out.Write(append(line, '\n'))
		}
		if err != nil {
			fmt.Fprintf(stderr, "sensor parse: writing output: %v\n", err)
			return 1
		}
	}
	if n := fs.NArg(); n > 1 {
		fmt.Fprintf(stderr, "sensor parse: %d of %d inputs parsed in %s\n", n-failed, n, time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		return 1
	}
	return 0
}

func parseOne(p *parser.Parser, name string, stdin io.Reader) (*api.Record, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	rec, err := p.Parse(r)
	if err != nil {
		return nil, err
	}
	rec.ID = ulid.Make().String()
	rec.ReceivedAt = api.FormatTime(time.Now())
	rec.Sensor = api.Sensor{ID: "sensor-parse", Version: version}
	return rec, nil
}
