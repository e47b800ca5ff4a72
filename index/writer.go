package index

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// writer is the state of the one goroutine that owns the day files.
type writer struct {
	ix     *Index
	day    time.Time // of the open file; zero when none is open
	f      *os.File
	w      *bufio.Writer
	dirty  bool      // written since the last fsync
	pruned time.Time // the UTC day expired files were last removed
	failed bool      // the last write failed; logged once until one succeeds
}

// run takes entries until Close, flushing every FlushEvery and removing expired day files
// once a day. On Close it takes what is already in the channel, then flushes and closes.
func (ix *Index) run() {
	defer close(ix.done)
	w := &writer{ix: ix, pruned: ix.cfg.Now().UTC().Truncate(day)}
	tick := time.NewTicker(ix.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case it := <-ix.queue:
			w.take(it)
		case <-tick.C:
			_ = w.flush()
			w.prune()
		case <-ix.quit:
			for drained := false; !drained; {
				select {
				case it := <-ix.queue:
					w.take(it)
				default:
					drained = true
				}
			}
			ix.err = w.close()
			return
		}
	}
}

func (w *writer) take(it item) {
	if it.sync != nil {
		it.sync <- w.flush()
		return
	}
	if h := w.ix.cfg.beforeApply; h != nil {
		h()
	}
	w.ix.apply(it.line.ID, it.line.Rcpts, it.line.At)
	w.write(it.line)
}

// write appends a line to its day's file. A failure is counted and logged once, and the
// entry stays in memory: the index goes on serving what it has.
func (w *writer) write(l line) {
	b, err := json.Marshal(l)
	if err == nil {
		err = w.open(l.At.UTC().Truncate(day))
	}
	if err == nil {
		b = append(b, '\n')
		_, err = w.w.Write(b)
	}
	if err != nil {
		w.fail("writing to the index failed; entries stay in memory only", err)
		return
	}
	w.dirty = true
}

// open makes d's file the one written to, flushing and closing the previous day's.
func (w *writer) open(d time.Time) error {
	if w.f != nil && d.Equal(w.day) {
		return nil
	}
	if err := w.close(); err != nil {
		w.fail("closing the previous index day file failed", err)
	}
	f, err := os.OpenFile(w.ix.path(d), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("opening index day file: %w", err)
	}
	w.day, w.f, w.w = d, f, bufio.NewWriterSize(f, 64<<10)
	return nil
}

// flush writes out the buffer and fsyncs, when anything was written since the last time.
func (w *writer) flush() error {
	if w.f == nil || !w.dirty {
		return nil
	}
	err := w.w.Flush()
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		err = fmt.Errorf("flushing %s: %w", w.f.Name(), err)
		w.fail("flushing the index failed", err)
		return err
	}
	w.dirty, w.failed = false, false
	return nil
}

func (w *writer) close() error {
	if w.f == nil {
		return nil
	}
	err := w.flush()
	err = errors.Join(err, w.f.Close())
	w.f, w.w, w.day, w.dirty = nil, nil, time.Time{}, false
	return err
}

// prune removes expired day files and entries once per UTC day.
func (w *writer) prune() {
	now := w.ix.cfg.Now()
	today := now.UTC().Truncate(day)
	if !today.After(w.pruned) {
		return
	}
	w.pruned = today
	w.ix.evict(now)
	days, err := w.ix.days()
	if err != nil {
		w.ix.log.Warn("listing index day files failed", "error", err)
		return
	}
	for _, d := range days {
		if !w.ix.expired(d, now) {
			break
		}
		if w.f != nil && d.Equal(w.day) {
			_ = w.close()
		}
		w.ix.remove(d)
	}
}

func (w *writer) fail(msg string, err error) {
	w.ix.writeErrors.Add(1)
	if !w.failed {
		w.ix.log.Error(msg, "dir", w.ix.dir, "error", err)
	}
	w.failed = true
}
