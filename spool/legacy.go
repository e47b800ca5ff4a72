package spool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/journalsensor/sensor/wal"
)

// Before the write-ahead log, each group commit was a file records/<ULID>.ndjson. Open moves
// any such file into the log, so a sensor upgraded with a backlog delivers it; records/ keeps
// only what could not be read (*.broken), for an operator, and is removed when empty.

const (
	dirRecords   = "records"
	groupExt     = ".ndjson"
	brokenSuffix = ".broken"
)

// migrateLegacy moves the records in records/*.ndjson into the log, one file at a time:
// append, then remove the file. A crash in between sends that file's records twice, never
// loses them.
func (s *Spool) migrateLegacy() error {
	dir := s.path(dirRecords)
	entries, err := os.ReadDir(dir) // sorted by name: ULIDs, so oldest first
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var names []string
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasSuffix(name, brokenSuffix):
			s.usage.Broken++
		case strings.HasSuffix(name, groupExt) && e.Type().IsRegular():
			names = append(names, name)
		default:
			s.log.Error("spool: unexpected entry in the legacy records directory; left as it is", "file", filepath.Join(dir, name))
		}
	}
	if len(names) > 0 {
		s.log.Info("spool: moving records written before the write-ahead log into it", "files", len(names))
	}
	moved := 0
	for i, name := range names {
		n, err := s.migrateFile(name)
		if err != nil {
			return fmt.Errorf("spool: move %s into the log: %w", filepath.Join(dir, name), err)
		}
		moved += n
		if (i+1)%1000 == 0 {
			s.log.Info("spool: moving legacy records", "files", i+1, "of", len(names), "records", moved)
		}
	}
	if len(names) > 0 {
		if err := s.fs.SyncDir(dir); err != nil {
			s.log.Warn("spool: removal of moved legacy files not durable; a crash would send them twice", "error", err)
		}
		s.log.Info("spool: legacy records moved into the log", "files", len(names), "records", moved)
	}
	// Gone once empty, so a spool shows only what it uses; left while *.broken files are in it.
	_ = os.Remove(dir)
	return nil
}

// migrateFile appends one legacy group file's valid lines to the log and removes the file,
// or, when some line is not a record, sets it aside as *.broken after appending the rest.
func (s *Spool) migrateFile(name string) (int, error) {
	path := s.path(dirRecords, name)
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var groups []*group
	var recs [][][]byte
	var occ [][]string
	bad := 0
	segBytes := s.walOpts.SegmentBytes
	if segBytes == 0 {
		segBytes = wal.DefaultSegmentBytes
	}
	eachGroupLine(data, func(line []byte, ok bool) {
		// A line no segment can hold stays behind with the unreadable ones rather than fail
		// Open on every start.
		if !ok || int64(len(line))-1+wal.HeaderBytes > segBytes {
			bad++
			return
		}
		if k := len(groups) - 1; k < 0 || groups[k].full(int64(len(line))) {
			groups = append(groups, &group{})
			recs = append(recs, nil)
			occ = append(occ, nil)
		}
		k := len(groups) - 1
		rec := line[:len(line)-1]
		groups[k].add(rec)
		recs[k] = append(recs[k], rec)
		occ[k] = append(occ[k], lineRefs(line)...)
	})
	moved := 0
	for k, g := range groups {
		pos, err := s.recs.Append(recs[k])
		if err != nil {
			return moved, err
		}
		g.pos = pos
		if g.oldest.IsZero() {
			g.oldest = idTime(strings.TrimSuffix(name, groupExt))
		}
		s.mu.Lock()
		s.addGroup(g, occ[k])
		s.end = wal.Position{Segment: pos.Segment, Offset: pos.Offset + framed(recs[k])}
		s.mu.Unlock()
		moved += g.records
	}
	if bad > 0 {
		s.log.Error("spool: legacy record file has lines that are not records; the rest moved to the log",
			"file", path, "unreadable_lines", bad)
		if err := s.fs.Rename(path, path+brokenSuffix); err != nil {
			return moved, err
		}
		s.mu.Lock()
		s.usage.Broken++
		s.mu.Unlock()
		return moved, nil
	}
	return moved, s.fs.Remove(path)
}
