package spool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/journalsensor/sensor/wal"
)

// Inspection reads a spool directory without opening it: nothing is locked, repaired or
// written, so an operator may run it while serve is taking mail. What it sees is a moment's
// view; a record committed or a batch delivered meanwhile may or may not be in it.

// RecordSource says where a record was found.
type RecordSource int

const (
	// InLog is a record in the write-ahead log not yet taken into a batch.
	InLog RecordSource = iota
	// InLogBatched is a record in the log already in a batch file; its segment is deleted
	// once every record in it is.
	InLogBatched
	// InBatch is a record in a batch waiting for delivery.
	InBatch
)

func (s RecordSource) String() string {
	switch s {
	case InLog:
		return "log"
	case InLogBatched:
		return "log-batched"
	case InBatch:
		return "batch"
	}
	return fmt.Sprintf("RecordSource(%d)", int(s))
}

// ScannedRecord is one record found by ScanRecords.
type ScannedRecord struct {
	Source RecordSource
	// Where is the record's log position ("segment:offset") or its batch id.
	Where string
	// Line is the record: one JSON object, without the trailing newline.
	Line []byte
}

// ScanRecords calls fn with every record in the spool at dir: those in the log, from the
// oldest segment on disk, then those in batches waiting for delivery, oldest first. With
// pending, log records already taken into a batch are left out, so each undelivered record
// is seen once. Dead letters are not read (zcat deadletter/*.ndjson.gz reads them). An error
// from fn stops the scan and is returned. warnings name what could not be read (a damaged
// segment, a batch cut short); the rest is still scanned.
func ScanRecords(dir string, pending bool, fn func(ScannedRecord) error) (warnings []string, err error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	cur, err := readCursorDir(filepath.Join(dir, dirCursor))
	if err != nil {
		return nil, err
	}
	damage, err := wal.ScanDir(filepath.Join(dir, dirLog), wal.Position{}, func(pos wal.Position, rec []byte) error {
		src := InLog
		if pos.Before(cur) {
			if pending {
				return nil
			}
			src = InLogBatched
		}
		return fn(ScannedRecord{Source: src, Where: pos.String(), Line: rec})
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, d := range damage {
		warnings = append(warnings, "damaged log "+d.String())
	}
	entries, err := os.ReadDir(filepath.Join(dir, dirBatches))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return warnings, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), batchExt)
		if !ok || !validID(id) {
			continue
		}
		f, err := os.Open(filepath.Join(dir, dirBatches, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // delivered since the listing
		}
		if err != nil {
			return warnings, fmt.Errorf("spool: %w", err)
		}
		complete, err := eachLine(f, maxLineBytes, func(line []byte) error {
			return fn(ScannedRecord{Source: InBatch, Where: id, Line: append([]byte(nil), line...)})
		})
		_ = f.Close() // read-only
		if err != nil {
			return warnings, err
		}
		if !complete {
			warnings = append(warnings, fmt.Sprintf("batch %s could not be read to its end", id))
		}
	}
	return warnings, nil
}

// SegmentInfo describes one log segment on disk, for `sensor spool ls`.
type SegmentInfo struct {
	Path     string
	Bytes    int64 // the file's size: allocated, not used
	Records  int   // records in it
	Pending  int   // of them, those not yet in a batch
	Used     int64 // bytes up to the end of its data
	Damage   string
	Position string // of its first record, "segment:offset"
}

// Cursor reports how far the log has been taken into batches, as "segment:offset": every
// record before it is in a batch file or delivered.
func Cursor(dir string) (string, error) {
	cur, err := readCursorDir(filepath.Join(dir, dirCursor))
	return cur.String(), err
}

// Segments lists the log's segments with their counts, oldest first.
func Segments(dir string) ([]SegmentInfo, error) {
	cur, err := readCursorDir(filepath.Join(dir, dirCursor))
	if err != nil {
		return nil, err
	}
	logDir := filepath.Join(dir, dirLog)
	var out []SegmentInfo
	bySeg := map[uint64]int{}
	damage, err := wal.ScanDir(logDir, wal.Position{}, func(pos wal.Position, rec []byte) error {
		i, ok := bySeg[pos.Segment]
		if !ok {
			i = len(out)
			bySeg[pos.Segment] = i
			out = append(out, SegmentInfo{Path: wal.SegmentPath(logDir, pos.Segment), Position: pos.String()})
		}
		out[i].Records++
		out[i].Used = pos.Offset + wal.HeaderBytes + int64(len(rec))
		if !pos.Before(cur) {
			out[i].Pending++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// Segments with no record yet (a new one) are listed too.
	files, err := filepath.Glob(filepath.Join(logDir, "*.seg"))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	seen := map[string]bool{}
	for _, s := range out {
		seen[s.Path] = true
	}
	for _, f := range files {
		if !seen[f] {
			out = append(out, SegmentInfo{Path: f})
		}
	}
	for i := range out {
		if st, err := os.Stat(out[i].Path); err == nil {
			out[i].Bytes = st.Size()
		}
		for _, d := range damage {
			if d.Path == out[i].Path {
				out[i].Damage = d.String()
			}
		}
	}
	slices.SortFunc(out, func(a, b SegmentInfo) int { return strings.Compare(a.Path, b.Path) })
	return out, nil
}

// cursorBytes is a cursor record: the segment and offset, each uint64 little-endian.
const cursorBytes = 16

func encodeCursor(p wal.Position) []byte {
	b := binary.LittleEndian.AppendUint64(nil, p.Segment)
	return binary.LittleEndian.AppendUint64(b, uint64(p.Offset))
}

func decodeCursor(b []byte) (wal.Position, bool) {
	if len(b) != cursorBytes {
		return wal.Position{}, false
	}
	off := binary.LittleEndian.Uint64(b[8:])
	if off > 1<<62 {
		return wal.Position{}, false
	}
	return wal.Position{Segment: binary.LittleEndian.Uint64(b), Offset: int64(off)}, true
}

// readCursorDir reads the last cursor in the cursor log at dir without opening it; the zero
// Position (nothing batched) when there is none.
func readCursorDir(dir string) (wal.Position, error) {
	var cur wal.Position
	_, err := wal.ScanDir(dir, wal.Position{}, func(_ wal.Position, rec []byte) error {
		if p, ok := decodeCursor(rec); ok {
			cur = p
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return cur, fmt.Errorf("spool: read cursor: %w", err)
	}
	return cur, nil
}

// BatchFile is a batch on disk, waiting for delivery or dead-lettered.
type BatchFile struct {
	Batch
	Dead bool // in deadletter/
}

// ListBatches lists the batches waiting for delivery, then the dead letters, each oldest
// first, with the counts their gzip headers give.
func ListBatches(dir string) ([]BatchFile, error) {
	s := &Spool{dir: dir, log: slog.New(slog.DiscardHandler)}
	var out []BatchFile
	for _, sub := range []string{dirBatches, dirDeadLetter} {
		bs, err := s.listBatches(sub)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, b := range bs {
			out = append(out, BatchFile{Batch: b, Dead: sub == dirDeadLetter})
		}
	}
	return out, nil
}
