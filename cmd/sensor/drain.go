package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/journalsensor/sensor/spool"
	"github.com/journalsensor/sensor/uploader"
)

// drainProgressEvery is how often drain logs what is left: often enough that an operator
// watching a decommission sees it move, seldom enough to read.
const drainProgressEvery = 5 * time.Second

// uploaderConfig is how serve and drain deliver: the same settings, so a drained spool goes
// where serve would have sent it.
func (c *serveConfig) uploaderConfig(log *slog.Logger) uploader.Config {
	return uploader.Config{
		URL:            c.pipelineURL,
		Token:          c.token,
		CAFile:         c.pipelineCAFile,
		ClientCertFile: c.clientCertFile,
		ClientKeyFile:  c.clientKeyFile,
		UserAgent:      "journal-sensor/" + version,
		MaxAge:         c.maxAge,
		Logger:         log,
	}
}

// drainCmd is `sensor drain`: it delivers everything left in a spool and exits 0 once the
// spool holds no record and no batch; or exits 1 when --drain-timeout passes first (or on
// SIGINT or SIGTERM), saying how much is left. It is how a replica is decommissioned: stop
// serve, drain, then remove the data dir. It takes serve's flags and config file so that the
// pipeline settings are the ones serve used, but it opens no listener and accepts no mail.
func drainCmd(args []string, stderr io.Writer, getenv func(string) string) int {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			// The flags are serve's; their own usage would name `sensor serve`.
			fmt.Fprint(stderr, drainUsage)
			return 0
		}
	}
	var timeout time.Duration
	c, err := loadServeConfig(args, stderr, getenv, func(_ *serveConfig, fs *flag.FlagSet) {
		fs.DurationVar(&timeout, "drain-timeout", 10*time.Minute,
			"give up after this long, leaving what is undelivered in the spool (exit 1)")
	})
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil && timeout <= 0 {
		err = errors.New("--drain-timeout: must be positive")
	}
	if err != nil {
		fmt.Fprintf(stderr, "sensor drain: %v\n", err)
		return 2
	}
	// Draining a data dir that does not exist would create an empty spool and report
	// success: most likely a mistyped --data-dir, which must not pass for a drained replica.
	spoolDir := filepath.Join(c.dataDir, "spool")
	if fi, err := os.Stat(spoolDir); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "sensor drain: no spool in --data-dir %s (looked for %s)\n", c.dataDir, spoolDir)
		return 2
	}
	log := newLogger(stderr, c.logFormat, c.logLevel)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	left, err := drain(ctx, c, log, timeout, drainProgressEvery)
	if err != nil {
		log.Error("drain failed", "error", err)
		return 1
	}
	if !left.empty() {
		log.Error("drain stopped before the spool was empty; what is left stays in it",
			"records_left", left.records(), "batches_left", left.PendingBatches, "last_error", left.LastError)
		fmt.Fprintf(stderr, "sensor drain: %d records remain in %s (%d not yet in a batch, %d in %d batches)\n",
			left.records(), spoolDir, left.PendingRecords, left.batchRecords, left.PendingBatches)
		return 1
	}
	return 0
}

const drainUsage = `usage: sensor drain --data-dir DIR [--drain-timeout D] [--config FILE] [serve flags]

Uploads everything left in DIR's spool to the pipeline serve's settings name, then exits 0
once no record and no batch is left; or exits 1 after --drain-timeout (default 10m), saying
how many records remain. It accepts no mail and opens no port. Stop sensor serve on DIR
first. What the pipeline refused for good stays in DIR/spool/deadletter/.
`

// drainLeft is what a drain left in the spool: the uploader's last counters, and the records
// in the batches it left, which those counters count only as batches.
type drainLeft struct {
	uploader.Stats
	batchRecords int
}

func (d drainLeft) empty() bool  { return d.PendingRecords == 0 && d.PendingBatches == 0 }
func (d drainLeft) records() int { return d.PendingRecords + d.batchRecords }

// drain runs the uploader over c's spool until it holds no record and no batch, timeout
// passes, or ctx is done, logging progress every `every`. It says what it left.
func drain(ctx context.Context, c *serveConfig, log *slog.Logger, timeout, every time.Duration) (drainLeft, error) {
	unlock, err := lockDataDir(c.dataDir)
	if err != nil {
		return drainLeft{}, err
	}
	defer unlock()
	sp, err := spool.Open(filepath.Join(c.dataDir, "spool"), log.With("component", "spool"))
	if err != nil {
		return drainLeft{}, fmt.Errorf("opening the spool under --data-dir %s: %w", c.dataDir, err)
	}
	up, err := uploader.New(c.uploaderConfig(log.With("component", "uploader")), sp)
	if err != nil {
		return drainLeft{}, fmt.Errorf("pipeline settings: %w", err)
	}
	start := up.Stats()
	log.Info("draining the spool", "data_dir", c.dataDir, "pipeline", maskUserinfo(c.pipelineURL),
		"records", start.PendingRecords, "batches", start.PendingBatches, "timeout", timeout.String())

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stopUploads := runUploads(up, log)
	waitUploaded(ctx, sp, every, func() {
		s := up.Stats()
		log.Info("draining", "unbatched_records", s.PendingRecords, "batches_left", s.PendingBatches,
			"records_delivered", s.RecordsDelivered, "failures", s.Failures, "last_error", s.LastError)
	})
	stopUploads()
	left := drainLeft{Stats: up.Stats()} // after Run returned: a batch delivered while stopping is not left
	if !left.empty() {
		bs, err := sp.Batches()
		if err != nil {
			return left, fmt.Errorf("counting what is left: %w", err)
		}
		for _, b := range bs {
			left.batchRecords += max(b.Records, 0) // -1: a header that could not be read
		}
		return left, nil
	}
	log.Info("spool drained", "records_delivered", left.RecordsDelivered, "batches_delivered", left.BatchesDelivered)
	// Dead letters were refused by the pipeline, or outlived --max-age: no drain delivers
	// them, and removing the data dir would lose them, so say they are there.
	if left.DeadLetters > 0 || left.DeadLetterBlobs > 0 || left.BrokenRecords > 0 {
		log.Warn("the spool still holds what was not delivered and never will be by itself; keep or inspect it before removing the data dir",
			"dead_letters", left.DeadLetters, "dead_letter_blobs", left.DeadLetterBlobs, "broken_records", left.BrokenRecords,
			"dir", filepath.Join(c.dataDir, "spool"))
	}
	return left, nil
}
