package receiver

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/journalsensor/sensor/internal/atomicfile"
)

// appendLog is one append-only NDJSON file of the receiver and the keys of its lines, so that
// a line whose key is already stored is recognized as a duplicate, across restarts too.
type appendLog struct {
	name string
	log  *slog.Logger

	// mu serializes appends, so that batches never interleave in the file and the duplicate
	// check and the append are one step.
	mu     sync.Mutex
	file   *os.File
	keys   map[string]struct{}
	closed bool
	// broken is set when a failed append could not be rolled back: the file's tail is in an
	// unknown state, and appending more would bury it. A restart repairs it.
	broken error
}

// openLog opens dir/name, creating it, and loads the keys of its lines with key. each, when
// not nil, sees every line with a new key (newline included), in file order.
func openLog(dir, name string, log *slog.Logger, key func(line []byte) (string, bool), each func(key string, line []byte)) (*appendLog, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	l := &appendLog{name: name, log: log, file: f, keys: make(map[string]struct{})}
	if err := l.load(key, each); err != nil {
		_ = f.Close() // the load error is the one worth reporting
		return nil, fmt.Errorf("receiver: loading %s: %w", path, err)
	}
	// The file may have just been created; its directory entry must survive a crash too.
	if err := atomicfile.SyncDir(dir); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("receiver: %w", err)
	}
	return l, nil
}

// load reads the keys of the stored lines. A last line without its newline is the tail of an
// append that crashed before its fsync, so it was never acknowledged: it is cut off, or the
// next append would be glued onto it.
func (l *appendLog) load(key func(line []byte) (string, bool), each func(key string, line []byte)) error {
	br := bufio.NewReaderSize(l.file, 1<<20)
	var good int64
	var unreadable int
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			good += int64(len(line))
			if k, ok := key(line); !ok {
				unreadable++
			} else {
				if _, dup := l.keys[k]; !dup && each != nil {
					each(k, line)
				}
				l.keys[k] = struct{}{}
			}
		}
		if errors.Is(err, io.EOF) {
			if torn := len(line); torn > 0 {
				if err := l.file.Truncate(good); err != nil {
					return fmt.Errorf("cutting off a torn last line: %w", err)
				}
				if err := l.file.Sync(); err != nil {
					return fmt.Errorf("cutting off a torn last line: %w", err)
				}
				l.log.Warn("receiver cut off a torn last line", "file", l.name, "bytes", torn)
			}
			break
		}
		if err != nil {
			return err
		}
	}
	if unreadable > 0 {
		// Kept as they are: they were written by someone, and dropping them is not ours to do.
		l.log.Warn("receiver found lines without a readable key", "file", l.name, "lines", unreadable)
	}
	l.log.Info("receiver loaded stored keys", "file", l.name, "keys", len(l.keys))
	return nil
}

func (l *appendLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if err := l.file.Close(); err != nil {
		return fmt.Errorf("receiver: closing %s: %w", l.name, err)
	}
	return nil
}

// has reports whether key is stored. l.mu must be held.
func (l *appendLog) has(key string) bool {
	_, ok := l.keys[key]
	return ok
}

// appendLocked writes what write produces and fsyncs it. Either all of it is stored or none:
// a failed append is cut off again. l.mu must be held.
func (l *appendLog) appendLocked(write func(w io.Writer) error) error {
	if l.closed {
		return errors.New("receiver is closed")
	}
	if l.broken != nil {
		return fmt.Errorf("%s needs a restart to repair: %w", l.name, l.broken)
	}
	fi, err := l.file.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", l.name, err)
	}
	bw := bufio.NewWriterSize(l.file, 256<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		if err = l.file.Sync(); err != nil {
			err = fmt.Errorf("syncing %s: %w", l.name, err)
		}
	} else {
		err = fmt.Errorf("appending to %s: %w", l.name, err)
	}
	if err != nil {
		if terr := l.file.Truncate(fi.Size()); terr != nil {
			l.broken = terr
			return fmt.Errorf("%w; and rolling back failed: %w", err, terr)
		}
		return err
	}
	return nil
}

// commit appends the batch's lines whose keys are new and fsyncs them. Either all of them are
// stored and remembered, or none.
func (l *appendLog) commit(b *batch) (accepted, duplicates int, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, 0, errors.New("receiver is closed")
	}
	if l.broken != nil {
		return 0, 0, fmt.Errorf("%s needs a restart to repair: %w", l.name, l.broken)
	}
	duplicates = b.duplicates
	var fresh []entry
	for _, e := range b.entries {
		if l.has(e.id) {
			duplicates++
			continue
		}
		fresh = append(fresh, e)
	}
	if len(fresh) == 0 {
		return 0, duplicates, nil
	}
	err = l.appendLocked(func(w io.Writer) error {
		for _, e := range fresh {
			if _, err := io.Copy(w, io.NewSectionReader(b.file, e.offset, e.length)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	for _, e := range fresh {
		l.keys[e.id] = struct{}{}
	}
	return len(fresh), duplicates, nil
}
