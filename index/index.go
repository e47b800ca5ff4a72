// Package index is the sensor's local index from a Message-ID to the recipients its recent
// copies named, so that enforcement can act on a verdict that comes without recipients.
//
// It is a cache, not a record of truth: the pipeline normally sends a verdict's recipients,
// and the index only fills in when it does not. That decides the store:
//
//   - Memory: a map from Message-ID to the sorted recipients seen for it, with the entries in
//     a list ordered by when they were last added to, so the oldest go first. It is bounded
//     by the window (default 30 days), by a number of Message-IDs (default 500,000; past it
//     the oldest is evicted) and by a number of recipients per Message-ID (default 10,000;
//     once an entry is full, more are ignored). A Message-ID with three recipients costs
//     about 300 bytes of heap, so a full index at the defaults takes some 150 MB, a size a
//     small VM can spare. A busy tenant can outgrow 500,000 Message-IDs within the window;
//     the oldest then go first, and only verdicts without recipients notice.
//   - Disk: append-only NDJSON, one file per UTC day (2026-12-02.ndjson) in the directory
//     given to Open, one line per added copy. Open rebuilds memory from the files; day files
//     wholly older than the window are deleted then and once a day after.
//   - Add never waits for the disk: it hands the entry to one background writer over a
//     bounded channel, and when that is full it drops the entry and counts it (Stats.Dropped).
//     Losing an index entry costs at most a verdict without recipients being skipped; holding
//     up the SMTP 250 would cost the mail. The writer also applies entries to memory, so what
//     is in memory is what was handed to the disk, and a lookup never contends with intake.
//   - Writes are batched and fsync'd about once a second (Config.FlushEvery): a crash loses at
//     most that last second, which a cache may lose.
//   - A torn last line (a crash mid-write) is cut off at Open so that appends start on a line
//     of their own; a line that does not parse is skipped and counted (Stats.Corrupt). Unlike
//     the enforcement action journal, which refuses to start on such a line because replaying
//     past it could act twice or lose what an undo needs, a bad line here only forgets some
//     recipients, and starting without them beats not enforcing at all.
//
// Keys are the record's message.message_id exactly as given (angle brackets included). A
// lookup tries the form it is given and the same id with its angle brackets added or taken
// off, so a verdict's "<id@host>" meets a record's "id@host" and the other way round.
package index

import (
	"bufio"
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/journalsensor/sensor/api"
)

// Defaults for the zero values of Config.
const (
	DefaultWindow        = 30 * 24 * time.Hour
	DefaultMaxEntries    = 500_000
	DefaultMaxRecipients = 10_000
	DefaultQueue         = 8192
	DefaultFlushEvery    = time.Second
)

const (
	dayLayout = "2006-01-02"
	fileExt   = ".ndjson"
	day       = 24 * time.Hour
)

// Config configures an Index. Zero values mean the defaults above.
type Config struct {
	// Window is how long a Message-ID is remembered after it was last added to.
	Window time.Duration
	// MaxEntries bounds the Message-IDs held; past it the oldest is evicted.
	MaxEntries int
	// MaxRecipients bounds the recipients kept per Message-ID; more are ignored.
	MaxRecipients int
	// Queue is the capacity of the channel from Add to the writer.
	Queue int
	// FlushEvery is how often the writer flushes and fsyncs what it has written.
	FlushEvery time.Duration
	// Now is the clock, for tests; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	// beforeApply, when set, runs in the writer before it takes each entry: a test stalls
	// the writer with it to fill the channel.
	beforeApply func()
}

// Stats is a snapshot of the index's counters.
type Stats struct {
	Entries     int   // Message-IDs held in memory
	Dropped     int64 // entries Add dropped because the writer's channel was full (or after Close)
	Corrupt     int64 // lines skipped at Open because they did not parse
	Torn        int64 // torn last lines cut off at Open
	WriteErrors int64 // failed writes, flushes or fsyncs of day files
}

// Index maps Message-IDs to recipients. Add, Recipients and Stats are safe for concurrent use.
type Index struct {
	cfg Config
	dir string
	log *slog.Logger

	mu      sync.RWMutex
	entries map[string]*list.Element // of *entry
	order   *list.List               // oldest first

	queue   chan item
	quit    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
	closeMu sync.Mutex
	err     error // the writer's last close error, returned by Close

	dropped, corrupt, torn, writeErrors atomic.Int64
}

type entry struct {
	id    string
	rcpts []string // sorted, distinct
	last  time.Time
}

// item is what Add hands the writer; sync, when set, asks it to flush and report instead.
type item struct {
	line line
	sync chan error
}

// line is one line of a day file.
type line struct {
	At    time.Time `json:"at"`
	ID    string    `json:"id"`
	Rcpts []string  `json:"rcpts"`
}

// Open rebuilds the index from dir (created when missing), deleting day files older than the
// window, and starts the writer. Close stops it.
func Open(dir string, cfg Config) (*Index, error) {
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.MaxRecipients <= 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.Queue <= 0 {
		cfg.Queue = DefaultQueue
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = DefaultFlushEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("index directory: %w", err)
	}
	ix := &Index{
		cfg: cfg, dir: dir, log: cfg.Logger,
		entries: map[string]*list.Element{}, order: list.New(),
		queue: make(chan item, cfg.Queue), quit: make(chan struct{}), done: make(chan struct{}),
	}
	if err := ix.load(); err != nil {
		return nil, err
	}
	go ix.run()
	return ix, nil
}

// Add hands the recipients of an accepted copy to the writer. It never blocks: when the
// writer is behind, the entry is dropped and counted. For a journal report the recipients are
// the journal's (Bcc and expanded lists included), since its envelope names only the journal
// mailbox; otherwise they are the envelope's. The key is message.message_id, or the journal
// summary's Message-ID when the original gave none. A copy without a Message-ID or
// recipients adds nothing.
func (ix *Index) Add(rec *api.Record) {
	if rec == nil {
		return
	}
	id := rec.Message.MessageID
	var raw []string
	if rec.Journal != nil {
		if id == "" {
			id = rec.Journal.MessageID
		}
		for _, r := range rec.Journal.Recipients {
			raw = append(raw, r.Address)
		}
	} else if rec.Envelope != nil {
		raw = rec.Envelope.RcptTo
	}
	id = strings.TrimSpace(id)
	rcpts := normalise(raw, ix.cfg.MaxRecipients)
	if id == "" || len(rcpts) == 0 {
		return
	}
	if ix.closed.Load() {
		ix.dropped.Add(1)
		return
	}
	select {
	case ix.queue <- item{line: line{At: ix.cfg.Now().UTC(), ID: id, Rcpts: rcpts}}:
	default:
		ix.dropped.Add(1)
	}
}

// Recipients returns the sorted union of the recipients recorded for messageID, with or
// without its angle brackets, within the window; nil when there are none.
func (ix *Index) Recipients(messageID string) []string {
	id := strings.TrimSpace(messageID)
	if id == "" {
		return nil
	}
	keys := []string{id}
	if inner, ok := strings.CutPrefix(id, "<"); ok {
		if inner, ok = strings.CutSuffix(inner, ">"); ok && inner != "" {
			keys = append(keys, inner)
		}
	} else {
		keys = append(keys, "<"+id+">")
	}
	cutoff := ix.cfg.Now().Add(-ix.cfg.Window)
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []string
	for _, k := range keys {
		el, ok := ix.entries[k]
		if !ok {
			continue
		}
		if e := el.Value.(*entry); e.last.After(cutoff) {
			out = merge(out, e.rcpts, 0)
		}
	}
	return out
}

// Stats returns the index's counters.
func (ix *Index) Stats() Stats {
	ix.mu.RLock()
	n := len(ix.entries)
	ix.mu.RUnlock()
	return Stats{Entries: n, Dropped: ix.dropped.Load(), Corrupt: ix.corrupt.Load(),
		Torn: ix.torn.Load(), WriteErrors: ix.writeErrors.Load()}
}

// Sync waits until every entry Add handed over before it is in memory and fsync'd.
func (ix *Index) Sync() error {
	if ix.closed.Load() {
		return errors.New("index closed")
	}
	done := make(chan error, 1)
	select {
	case ix.queue <- item{sync: done}:
	case <-ix.done:
		return errors.New("index closed")
	}
	select {
	case err := <-done:
		return err
	case <-ix.done:
		return errors.New("index closed")
	}
}

// Close writes what the writer has been handed, fsyncs it and stops the writer. Add after
// Close drops.
func (ix *Index) Close() error {
	ix.closeMu.Lock()
	defer ix.closeMu.Unlock()
	if !ix.closed.Swap(true) {
		close(ix.quit)
	}
	<-ix.done
	return ix.err
}

// load deletes the day files older than the window and rebuilds memory from the rest, oldest
// first.
func (ix *Index) load() error {
	days, err := ix.days()
	if err != nil {
		return err
	}
	now := ix.cfg.Now()
	for _, d := range days {
		if ix.expired(d, now) {
			ix.remove(d)
			continue
		}
		if err := ix.loadFile(d); err != nil {
			return err
		}
	}
	ix.evict(now)
	ix.log.Info("index loaded", "dir", ix.dir, "entries", len(ix.entries),
		"corrupt_lines", ix.corrupt.Load(), "torn_lines", ix.torn.Load())
	return nil
}

// days lists the day files in dir, oldest first; other files are left alone.
func (ix *Index) days() ([]time.Time, error) {
	des, err := os.ReadDir(ix.dir)
	if err != nil {
		return nil, fmt.Errorf("reading the index directory: %w", err)
	}
	var days []time.Time
	for _, de := range des {
		name, ok := strings.CutSuffix(de.Name(), fileExt)
		if !ok || !de.Type().IsRegular() {
			continue
		}
		if d, err := time.Parse(dayLayout, name); err == nil {
			days = append(days, d)
		}
	}
	slices.SortFunc(days, func(a, b time.Time) int { return a.Compare(b) })
	return days, nil
}

// expired says whether every line a day file can hold is older than the window.
func (ix *Index) expired(d, now time.Time) bool {
	return !d.Add(day).After(now.Add(-ix.cfg.Window))
}

func (ix *Index) path(d time.Time) string {
	return filepath.Join(ix.dir, d.Format(dayLayout)+fileExt)
}

func (ix *Index) remove(d time.Time) {
	if err := os.Remove(ix.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		ix.log.Warn("removing an expired index day file failed", "file", ix.path(d), "error", err)
		return
	}
	ix.log.Info("expired index day file removed", "file", ix.path(d))
}

// loadFile applies one day file's lines. A last line without its newline was torn by a crash
// and is cut off, so that the writer's next line starts clean.
func (ix *Index) loadFile(d time.Time) error {
	name := ix.path(d)
	f, err := os.Open(name)
	if err != nil {
		return fmt.Errorf("opening index day file: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var good int64 // bytes up to the end of the last whole line
	for {
		b, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(b) > 0 {
				ix.torn.Add(1)
				ix.log.Warn("index day file ends in a torn line; cut off", "file", name, "bytes", len(b))
				if err := os.Truncate(name, good); err != nil {
					return fmt.Errorf("cutting the torn line off %s: %w", name, err)
				}
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading index day file %s: %w", name, err)
		}
		good += int64(len(b))
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(b, &l); err != nil || l.ID == "" || l.At.IsZero() {
			ix.corrupt.Add(1)
			continue
		}
		ix.apply(l.ID, normalise(l.Rcpts, ix.cfg.MaxRecipients), l.At)
	}
}

// apply merges recipients into a Message-ID's entry and makes it the newest, evicting the
// oldest past MaxEntries.
func (ix *Index) apply(id string, rcpts []string, at time.Time) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if el, ok := ix.entries[id]; ok {
		e := el.Value.(*entry)
		if len(e.rcpts) < ix.cfg.MaxRecipients { // a full entry keeps the recipients it has
			e.rcpts = merge(e.rcpts, rcpts, ix.cfg.MaxRecipients)
		}
		if at.After(e.last) {
			e.last = at
		}
		ix.order.MoveToBack(el)
	} else {
		ix.entries[id] = ix.order.PushBack(&entry{id: id, rcpts: rcpts, last: at})
	}
	for len(ix.entries) > ix.cfg.MaxEntries {
		ix.drop(ix.order.Front())
	}
}

// evict drops the entries last added to before the window.
func (ix *Index) evict(now time.Time) {
	cutoff := now.Add(-ix.cfg.Window)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for el := ix.order.Front(); el != nil && !el.Value.(*entry).last.After(cutoff); el = ix.order.Front() {
		ix.drop(el)
	}
}

func (ix *Index) drop(el *list.Element) {
	delete(ix.entries, el.Value.(*entry).id)
	ix.order.Remove(el)
}

// normalise lowercases, trims, sorts and deduplicates recipients, keeping at most max.
func normalise(raw []string, max int) []string {
	out := make([]string, 0, len(raw))
	for _, r := range raw {
		if r = strings.ToLower(strings.TrimSpace(r)); r != "" {
			out = append(out, r)
		}
	}
	slices.Sort(out)
	out = slices.Compact(out)
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return slices.Clip(out)
}

// merge returns the sorted union of two sorted, distinct lists, at most max long (0: no
// bound). It does not change a or b, which readers may still hold.
func merge(a, b []string, max int) []string {
	out := make([]string, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i, j = i+1, j+1
		}
	}
	if max > 0 && len(out) > max {
		out = out[:max]
	}
	return out
}
