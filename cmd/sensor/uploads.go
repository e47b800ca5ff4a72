package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/journalsensor/sensor/spool"
	"github.com/journalsensor/sensor/uploader"
)

// runUploads runs up in the background until stop is called; stop returns once Run has.
func runUploads(up *uploader.Uploader, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := up.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("uploader stopped", "error", err)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// waitUploaded waits until sp holds no record and no batch, or ctx is done, calling progress
// (when set) every `every`; it reports whether the spool emptied. The uploader has no "done"
// of its own (it waits for more mail), and the spool's usage is a counter, so a short poll
// keeps the return prompt at no cost.
func waitUploaded(ctx context.Context, sp *spool.Spool, every time.Duration, progress func()) bool {
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		if u := sp.Usage(); u.Records == 0 && u.Batches == 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
			if progress != nil {
				progress()
			}
		case <-poll.C:
		}
	}
}
