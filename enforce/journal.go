package enforce

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/journalsensor/sensor/internal/atomicfile"
)

// The action journal: every (verdict, recipient) is written here, fsync'd, before any API
// call is made for it, and so is what each call found and did. A sensor that restarts after a
// crash at any instant replays the file and finishes the work; a replay never doubles an
// effect, because every step checks the copy's state before it acts (Provider.Apply), and the
// folder a copy came from is journaled before the move, so an undo still knows it.
//
// The file is NDJSON, one entry a line, appended in groups that share one fsync. At start it
// is read whole and rewritten (temp file, fsync, rename, fsync the directory) with only what
// is still needed: the cursor, the verdicts within the window (for idempotency and undo) and
// their progress.

// entry is one line of the journal.
type entry struct {
	// Kind is "page" (verdicts taken from the feed, and the cursor after them), "members" (a
	// group recipient's members, added as recipients of its verdict), "acting" (a copy found,
	// and where it was, just before the call that changes it), "outcome" (a recipient's final
	// outcome), "reported" (outcomes the pipeline acknowledged) or "cursor".
	Kind string `json:"k"`

	Cursor   string    `json:"cursor,omitempty"`
	Verdicts []Verdict `json:"verdicts,omitempty"`
	At       time.Time `json:"at,omitzero"`

	VerdictID string   `json:"verdict,omitempty"`
	Recipient string   `json:"rcpt,omitempty"`
	Members   []string `json:"members,omitempty"`
	Ref       string   `json:"ref,omitempty"`
	From      string   `json:"from,omitempty"`

	Outcome *Outcome  `json:"outcome,omitempty"`
	Keys    []taskKey `json:"keys,omitempty"`
}

// taskKey names one (verdict, recipient).
type taskKey struct {
	VerdictID string `json:"v"`
	Recipient string `json:"r"`
}

// journal appends entries durably, in groups: concurrent callers share one write and fsync.
type journal struct {
	path string
	f    *os.File

	mu      sync.Mutex
	waiting []pendingAppend
	busy    bool // a leader is writing
	failed  error
}

type pendingAppend struct {
	entries []entry
	done    chan error
}

// openJournal reads the journal at path (a missing file is an empty journal), hands each
// entry to replay in order, then rewrites the file with what compact returns and opens it for
// appending. A line that does not parse is an error naming the file and line: the journal is
// the sensor's own, and a guess could double or lose an action.
func openJournal(path string, replay func(entry) error, compact func() []entry) (*journal, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("action journal: %w", err)
	}
	if err := readJournal(path, replay); err != nil {
		return nil, err
	}
	if err := writeEntries(path, compact()); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("action journal: %w", err)
	}
	return &journal{path: path, f: f}, nil
}

func writeEntries(path string, entries []entry) error {
	err := atomicfile.WriteFile(filepath.Dir(path), ".journal-*", path, func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		enc := json.NewEncoder(bw)
		for _, e := range entries {
			if err := enc.Encode(e); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err != nil {
		return fmt.Errorf("action journal %s: rewriting: %w", path, err)
	}
	return nil
}

func readJournal(path string, replay func(entry) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("action journal: %w", err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	for line := 1; ; line++ {
		b, err := r.ReadBytes('\n')
		if len(b) > 0 && b[len(b)-1] != '\n' {
			// A line without its newline is an append a crash cut short: nothing after it
			// was acknowledged, and what it held was not acted on before it was durable.
			return nil
		}
		if len(bytes.TrimSpace(b)) > 0 {
			var e entry
			if err := json.Unmarshal(b, &e); err != nil {
				return fmt.Errorf("action journal %s line %d: %w (move the file aside to start afresh; its actions would then not be undoable)", path, line, err)
			}
			if err := replay(e); err != nil {
				return fmt.Errorf("action journal %s line %d: %w", path, line, err)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("action journal %s: %w", path, err)
		}
	}
}

// append writes entries and returns once they are on disk. Callers that arrive while a
// write is under way are written together by the next leader, with one fsync.
func (j *journal) append(entries ...entry) error {
	p := pendingAppend{entries: entries, done: make(chan error, 1)}
	j.mu.Lock()
	if j.failed != nil {
		err := j.failed
		j.mu.Unlock()
		return err
	}
	j.waiting = append(j.waiting, p)
	if j.busy {
		j.mu.Unlock()
		return <-p.done
	}
	j.busy = true
	for len(j.waiting) > 0 {
		if j.failed != nil {
			// Nothing more is written after a failure: a line after a torn one would make
			// the file unreadable at the next start.
			for _, w := range j.waiting {
				w.done <- j.failed
			}
			j.waiting = nil
			break
		}
		group := j.waiting
		j.waiting = nil
		j.mu.Unlock()
		err := j.write(group)
		for _, g := range group {
			g.done <- err
		}
		j.mu.Lock()
		if err != nil && j.failed == nil {
			// A failed write or fsync leaves the file's tail unknown; later appends could
			// land after a torn line. Stop, and let the sensor report it.
			j.failed = err
		}
	}
	j.busy = false
	j.mu.Unlock()
	return <-p.done
}

func (j *journal) write(group []pendingAppend) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, g := range group {
		for _, e := range g.entries {
			if err := enc.Encode(e); err != nil {
				return fmt.Errorf("action journal: encoding: %w", err)
			}
		}
	}
	if _, err := j.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("action journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("action journal %s: fsync: %w", j.path, err)
	}
	return nil
}

func (j *journal) close() error { return j.f.Close() }

// size is the journal file's size now.
func (j *journal) size() (int64, error) {
	fi, err := j.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// rewrite replaces the file with entries (temp file, fsync, rename, directory fsync) and
// appends after them from then on. The caller guarantees no append is under way.
func (j *journal) rewrite(entries []entry) error {
	if err := writeEntries(j.path, entries); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("action journal: %w", err)
	}
	old := j.f
	j.f = f
	return old.Close()
}

// err is the write failure that stopped the journal, nil while it works.
func (j *journal) err() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}
