package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/journalsensor/sensor/spool"
)

const spoolUsage = `Usage:
  sensor spool ls  [--data-dir DIR]             list the spool's log segments and batches
  sensor spool cat [--pending] [--data-dir DIR] print the spool's records as NDJSON

Both read the spool without locking or changing it, so they are safe while serve runs;
what they show is a moment's view. cat prints the records in the log, then those in
batches waiting for delivery; --pending leaves out the log's records already in a batch,
so each undelivered record is printed once. Dead letters are gzip'd NDJSON:
zcat DIR/spool/deadletter/*.ndjson.gz.

Flags:
`

// defaultDataDir is serve's --data-dir when none is given.
const defaultDataDir = "./sensor-data"

// spoolCmd is `sensor spool ls|cat`: the log's segments are framed binary, not text, so
// these are how an operator reads what a spool holds.
func spoolCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || (args[0] != "ls" && args[0] != "cat") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprint(stdout, spoolUsage)
			return 0
		}
		fmt.Fprint(stderr, spoolUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("sensor spool "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, spoolUsage)
		fs.PrintDefaults()
	}
	def := defaultDataDir
	if v := getenv(envName("data-dir")); v != "" {
		def = v
	}
	dataDir := fs.String("data-dir", def, "serve's --data-dir (default from $SENSOR_DATA_DIR)")
	pending := false
	if sub == "cat" {
		fs.BoolVar(&pending, "pending", false, "only records not yet delivered")
	}
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "sensor spool %s: unexpected argument %q\n", sub, fs.Arg(0))
		return 2
	}
	dir := filepath.Join(*dataDir, "spool")
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(stderr, "sensor spool %s: no spool at %s (%v); give serve's --data-dir\n", sub, dir, err)
		return 1
	}
	var err error
	if sub == "ls" {
		err = spoolLs(dir, stdout)
	} else {
		err = spoolCat(dir, pending, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "sensor spool %s: %v\n", sub, err)
		return 1
	}
	return 0
}

func spoolCat(dir string, pending bool, stdout, stderr io.Writer) error {
	w := bufio.NewWriterSize(stdout, 64<<10)
	warnings, err := spool.ScanRecords(dir, pending, func(r spool.ScannedRecord) error {
		if _, err := w.Write(r.Line); err != nil {
			return err
		}
		return w.WriteByte('\n')
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	for _, msg := range warnings {
		fmt.Fprintln(stderr, "sensor spool cat: warning:", msg)
	}
	return err
}

func spoolLs(dir string, stdout io.Writer) error {
	segs, err := spool.Segments(dir)
	if err != nil {
		return err
	}
	cursor, err := spool.Cursor(dir)
	if err != nil {
		return err
	}
	batches, err := spool.ListBatches(dir)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "KIND\tNAME\tRECORDS\tPENDING\tBYTES\tNOTE\n")
	for _, s := range segs {
		note := fmt.Sprintf("%d bytes used", s.Used)
		if s.Damage != "" {
			note = "damaged: " + s.Damage
		}
		fmt.Fprintf(tw, "segment\t%s\t%d\t%d\t%d\t%s\n", filepath.Base(s.Path), s.Records, s.Pending, s.Bytes, note)
	}
	for _, b := range batches {
		kind := "batch"
		if b.Dead {
			kind = "deadletter"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t\t%d\t%d bytes of NDJSON\n", kind, b.ID, b.Records, b.Size, b.Bytes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "log batched up to %s\n", cursor)
	return err
}
