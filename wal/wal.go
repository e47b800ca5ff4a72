// Package wal is an append-only write-ahead log of records in preallocated segment files, made
// for group commit: each Append writes a group of records and calls fdatasync once. Because
// the segment's space was allocated and zero-filled when the segment was made, that fdatasync
// overwrites existing blocks and has no directory entry or file size to commit, which makes it
// several times cheaper than writing, fsyncing and renaming a new file per group.
//
// # On-disk format
//
// A log is a directory holding segment files named NNNNNNNNNNNNNNNNNNNN.seg: the segment's
// index as 20 decimal digits, zero-padded, so that lexical order is log order. The first
// segment of a new log is 00000000000000000001.seg and each new segment takes the next index.
// Other names in the directory are ignored. Indexes may start above 1 (Delete removed the
// older ones); a gap between two indexes is tolerated, since a crash during Delete can remove
// any of the segments it was asked to remove.
//
// A segment holds at most Options.SegmentBytes bytes (default 64 MiB). It is created at
// 1 MiB (or SegmentBytes, if smaller), all zero, and grown in steps, each at least doubling
// it and each written as real zeros and fsync'd before any frame goes into the new part, so
// that an empty log costs 1 MiB, not a whole segment, and every append is still an overwrite
// of allocated, zeroed space. A segment's data ends at its file size at the latest, so
// segments made under another SegmentBytes stay readable. There is no file header. From
// offset 0 a segment holds frames packed back to back:
//
//	offset  size  field
//	0       4     length: the payload's length in bytes, uint32 little-endian, at least 1
//	4       4     CRC-32C (Castagnoli polynomial, as hash/crc32.Castagnoli) of the payload,
//	              uint32 little-endian
//	8       n     payload: the record, n = length bytes
//
// The next frame starts at offset 8+n. Frames are not aligned or padded: the records the
// spool writes are JSON lines of a few hundred bytes to a few KiB, padding each to 4 KiB
// would waste most of the segment, and torn writes are caught by the CRC, not by sector
// boundaries. A length of zero (in practice the preallocated zeros) marks the end of the
// segment's data; so do fewer than 8 bytes left before the end of the file. Empty records
// therefore cannot be stored and Append refuses them. A record spans no segments, and neither
// does a group: an Append whose frames do not fit in the rest of the last segment starts a new
// segment and writes the whole group there, leaving the old one's rest zero. So a group is
// one contiguous write to one file, needing one fdatasync, and a group may be at most one
// segment (less 8 bytes per record).
//
// To inspect a segment without this package: `od -A d -t u4 -N 8 FILE` prints the first
// frame's length and CRC, `dd if=FILE bs=1 skip=8 count=LENGTH` its payload, and the next
// frame starts at 8+LENGTH.
//
// # Recovery
//
// Open reads every segment from the start. In every segment but the last, the data must end
// cleanly (a zero length, or too little room for a header): a frame whose length runs past the
// end of the file or whose CRC does not match is damage that no crash can cause (a bad disk
// block, a hand edit). Open does not fail on it, since refusing to start would stop all
// intake for one bad block: it keeps the frames before the bad one readable, reports the rest
// of that segment by Damage (file, offset, reason), and Delete later renames such a segment
// to NNNNNNNNNNNNNNNNNNNN.seg.broken instead of removing it, for an operator. In the last
// segment the same bad frame is the torn tail of a write that did not complete: Open keeps the
// frames before it, overwrites every non-zero byte from there to the end of the file with
// zeros (so that no remnant of the torn group can ever be read as a frame after a later,
// shorter append) and fdatasyncs, and new appends go at that offset.
//
// # Durability
//
// When Append returns nil its records are on disk: the frames were written and the segment
// fdatasync'd, and the segment's directory entry was made durable when the segment was
// created (the only directory fsync, one per segment). When Append returns an error, none of
// its records is acknowledged, but they may still appear after a reopen, each of them whole
// or not at all, and only a prefix of the group: the write or fdatasync may have reached the
// disk in part. That is the rule for any unacknowledged write, and the caller must treat such
// records as not stored (the spool answers 451 and the sender retries, so the record may be
// delivered twice, never lost).
//
// After any failed write, fdatasync, growth or segment creation the Log refuses further Appends
// (ErrFailed wrapping the cause): after a failed fdatasync the kernel may already have
// dropped the dirty pages and a retried fdatasync can report success for data that is not on
// disk, so the only safe way on is Close and Open, whose recovery reads what really is there.
//
// # Concurrency
//
// Append, Read, Scan and Delete are safe for concurrent use. Appends are serialized by a
// mutex: each one writes and fdatasyncs its group while holding it. There is no group-commit
// queue here, because the spool above already gathers concurrent commits into groups (its
// commitQueue) and hands each group to one Append.
package wal

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

const (
	// DefaultSegmentBytes is the segment size when Options.SegmentBytes is 0: large enough
	// that the per-segment cost (zero-filling it, one directory fsync) is spread over tens of
	// thousands of records, small enough that Delete frees space in useful steps.
	DefaultSegmentBytes = 64 << 20

	// HeaderBytes is the size of a frame header: length and CRC.
	HeaderBytes = 8

	// initialBytes is a new segment's first allocation; see the package doc.
	initialBytes = 1 << 20

	segExt    = ".seg"
	segDigits = 20

	brokenSuffix = ".broken"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	// ErrCorrupt is a bad frame at a position Read was given.
	ErrCorrupt = errors.New("wal: corrupt")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("wal: closed")
	// ErrFailed is returned by Append after an earlier Append failed; Close and Open again.
	ErrFailed = errors.New("wal: failed earlier; reopen the log")
	// ErrTooLarge is a group that does not fit in an empty segment.
	ErrTooLarge = errors.New("wal: group larger than a segment")
	// ErrEmptyRecord is an empty record, which the format cannot hold (length 0 marks the end).
	ErrEmptyRecord = errors.New("wal: empty record")
	// ErrNoRecord is a Position that names no record: before the first segment's start after
	// Delete, or past the data.
	ErrNoRecord = errors.New("wal: no record at position")
)

// Options configures a Log. The zero value is valid.
type Options struct {
	// SegmentBytes is the most a segment holds; 0 means DefaultSegmentBytes.
	SegmentBytes int64
	// InitialBytes is a new segment's first allocation, grown as appends need; 0 means
	// 1 MiB. It is capped at SegmentBytes.
	InitialBytes int64
	// FS is the file system; nil means OS{}.
	FS FS
}

// Position identifies a record: the segment's index and the byte offset of its frame.
// The zero Position is before every record, so Scan(Position{}, ...) reads the whole log.
type Position struct {
	Segment uint64
	Offset  int64
}

func (p Position) String() string { return fmt.Sprintf("%d:%d", p.Segment, p.Offset) }

// Before reports whether p comes before q in the log.
func (p Position) Before(q Position) bool {
	return p.Segment < q.Segment || p.Segment == q.Segment && p.Offset < q.Offset
}

// SegmentPath is the file of segment idx in the log at dir (see the package doc).
func SegmentPath(dir string, idx uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", segDigits, idx, segExt))
}

// Log is an open write-ahead log.
type Log struct {
	dir     string
	fs      FS
	size    int64 // SegmentBytes: the most a segment holds
	initial int64 // a new segment's first allocation

	appendMu sync.Mutex // serializes Append and Delete, the writers of segs

	mu     sync.Mutex // guards the fields below and each segment's end
	segs   []*segment // ascending by index; never empty while open
	failed error
	closed bool
}

type segment struct {
	index  uint64
	path   string
	f      File
	size   int64   // the file's size: how much is allocated and zeroed
	end    int64   // offset just past the last frame; guarded by Log.mu
	damage *Damage // a bad frame found by Open in a segment that is not the last
}

// Damage is a segment whose data stops at a bad frame that no crash explains; the frames
// before it are readable, whatever follows it is not.
type Damage struct {
	Path   string
	Offset int64  // where the bad frame starts
	Reason string // what is wrong with it
}

func (d Damage) String() string {
	return fmt.Sprintf("segment %s: offset %d: %s", d.Path, d.Offset, d.Reason)
}

// Open opens or creates the log in dir and recovers its tail (see the package doc).
func Open(dir string, opts Options) (*Log, error) {
	if opts.SegmentBytes == 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SegmentBytes <= HeaderBytes || opts.SegmentBytes > math.MaxUint32 {
		return nil, fmt.Errorf("wal: open %s: SegmentBytes %d out of range", dir, opts.SegmentBytes)
	}
	if opts.FS == nil {
		opts.FS = OS{}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	if opts.InitialBytes <= 0 {
		opts.InitialBytes = initialBytes
	}
	l := &Log{dir: dir, fs: opts.FS, size: opts.SegmentBytes, initial: min(opts.InitialBytes, opts.SegmentBytes)}
	indexes, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", dir, err)
	}
	if len(indexes) == 0 {
		s, err := l.createSegment(1)
		if err != nil {
			return nil, fmt.Errorf("wal: open %s: %w", dir, err)
		}
		l.segs = []*segment{s}
		return l, nil
	}
	for i, idx := range indexes {
		s, err := l.openSegment(idx, i == len(indexes)-1)
		if err != nil {
			l.closeFiles()
			return nil, fmt.Errorf("wal: open %s: %w", dir, err)
		}
		l.segs = append(l.segs, s)
	}
	// The last segment may have been created just before a crash that kept its directory
	// fsync from running; appends are about to be acknowledged in it.
	if err := l.fs.SyncDir(dir); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("wal: open %s: fsync dir: %w", dir, err)
	}
	return l, nil
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, e := range ents {
		name := e.Name()
		digits, ok := strings.CutSuffix(name, segExt)
		if !ok || len(digits) != segDigits || !e.Type().IsRegular() {
			continue
		}
		idx, err := strconv.ParseUint(digits, 10, 64)
		if err != nil {
			continue
		}
		out = append(out, idx)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func (l *Log) segPath(idx uint64) string {
	return SegmentPath(l.dir, idx)
}

// createSegment makes segment idx durable, name included, before anything is written in it.
func (l *Log) createSegment(idx uint64) (*segment, error) {
	path := l.segPath(idx)
	f, err := l.fs.Create(path)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	fail := func(step string, err error) (*segment, error) {
		_ = f.Close() // the step's error is the one to report; the file is left for Open
		return nil, fmt.Errorf("%s segment %s: %w", step, path, err)
	}
	if err := f.Preallocate(l.initial); err != nil {
		return fail("preallocate", err)
	}
	if err := f.Sync(); err != nil {
		return fail("fsync", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fail("fsync dir for", err)
	}
	return &segment{index: idx, path: path, f: f, size: l.initial}, nil
}

// openSegment opens an existing segment and finds the end of its data; for the last segment
// it also cuts a torn tail.
func (l *Log) openSegment(idx uint64, last bool) (*segment, error) {
	path := l.segPath(idx)
	f, err := l.fs.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	s := &segment{index: idx, path: path, f: f}
	if err := l.recoverSegment(s, last); err != nil {
		_ = f.Close() // reporting err; the descriptor is only released
		return nil, err
	}
	return s, nil
}

func (l *Log) recoverSegment(s *segment, last bool) error {
	size, err := s.f.Size()
	if err != nil {
		return err
	}
	s.size = size
	end, bad, err := scanFrames(s.f, size, nil)
	if err != nil {
		return fmt.Errorf("read segment %s: %w", s.path, err)
	}
	s.end = end
	if !last {
		if bad != "" {
			s.damage = &Damage{Path: s.path, Offset: end, Reason: bad}
		}
		return nil
	}
	return zeroTail(s)
}

// zeroTail overwrites every non-zero byte after s.end with zeros. It reads the whole rest of
// the segment because a torn group can leave whole frames anywhere after its torn first one.
func zeroTail(s *segment) error {
	buf := make([]byte, min(zeroChunk, max(s.size-s.end, 1)))
	dirty := false
	for off := s.end; off < s.size; {
		n := min(int64(len(buf)), s.size-off)
		chunk := buf[:n]
		if _, err := s.f.ReadAt(chunk, off); err != nil {
			return fmt.Errorf("read segment %s at %d: %w", s.path, off, err)
		}
		if !allZero(chunk) {
			clear(chunk)
			if _, err := s.f.WriteAt(chunk, off); err != nil {
				return fmt.Errorf("zero torn tail of %s at %d: %w", s.path, off, err)
			}
			dirty = true
		}
		off += n
	}
	if dirty {
		if err := s.f.Fdatasync(); err != nil {
			return fmt.Errorf("fdatasync %s: %w", s.path, err)
		}
	}
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// scanFrames reads frames from offset 0 up to size, calling fn (if not nil) for each valid
// one. It returns the offset just past the last valid frame and, if the data did not end
// cleanly there, why (bad != ""). err is an I/O error or fn's.
func scanFrames(r io.ReaderAt, size int64, fn func(off int64, payload []byte) error) (end int64, bad string, err error) {
	return scanFramesFrom(r, 0, size, fn)
}

// scanFramesFrom is scanFrames starting at offset start, which must be a frame's.
func scanFramesFrom(r io.ReaderAt, start, size int64, fn func(off int64, payload []byte) error) (end int64, bad string, err error) {
	br := bufio.NewReaderSize(io.NewSectionReader(r, start, size-start), int(min(1<<20, max(size-start, 16))))
	var hdr [HeaderBytes]byte
	var payload []byte
	for off := start; ; {
		if size-off < HeaderBytes {
			return off, "", nil
		}
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			return off, "", err
		}
		n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
		if n == 0 {
			return off, "", nil
		}
		if n > size-off-HeaderBytes {
			return off, fmt.Sprintf("frame length %d runs past the segment end %d", n, size), nil
		}
		if int64(cap(payload)) < n {
			payload = make([]byte, n)
		}
		payload = payload[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return off, "", err
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
			return off, "CRC mismatch", nil
		}
		if fn != nil {
			if err := fn(off, payload); err != nil {
				return off, "", err
			}
		}
		off += HeaderBytes + n
	}
}

// Append writes records as one group at the tail of the log, fdatasyncs once and returns the
// position of the first; the others follow it (Read returns each one's successor). See the
// package doc for what an error means.
func (l *Log) Append(records [][]byte) (first Position, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()

	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return Position{}, err
	}
	tail := l.segs[len(l.segs)-1]
	off := tail.end
	l.mu.Unlock()

	need := int64(0)
	for i, r := range records {
		if len(r) == 0 {
			return Position{}, fmt.Errorf("wal: append: record %d: %w", i, ErrEmptyRecord)
		}
		need += HeaderBytes + int64(len(r))
	}
	if len(records) == 0 {
		return Position{tail.index, off}, nil
	}
	if need > l.size {
		return Position{}, fmt.Errorf("wal: append: %d bytes: %w of %d bytes", need, ErrTooLarge, l.size)
	}
	buf := make([]byte, 0, need)
	for _, r := range records {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(r)))
		buf = binary.LittleEndian.AppendUint32(buf, crc32.Checksum(r, castagnoli))
		buf = append(buf, r...)
	}

	if off+need > max(tail.size, l.size) {
		s, err := l.createSegment(tail.index + 1)
		if err != nil {
			return Position{}, l.fail(fmt.Errorf("wal: append: rotate: %w", err))
		}
		l.mu.Lock()
		l.segs = append(l.segs, s)
		l.mu.Unlock()
		tail, off = s, 0
	}
	if off+need > tail.size {
		if err := grow(tail, min(max(off+need, 2*tail.size), max(tail.size, l.size))); err != nil {
			return Position{}, l.fail(fmt.Errorf("wal: append: %w", err))
		}
	}
	if _, err := tail.f.WriteAt(buf, off); err != nil {
		return Position{}, l.fail(fmt.Errorf("wal: append: write %s at %d: %w", tail.path, off, err))
	}
	if err := tail.f.Fdatasync(); err != nil {
		return Position{}, l.fail(fmt.Errorf("wal: append: fdatasync %s: %w", tail.path, err))
	}
	l.mu.Lock()
	tail.end = off + need
	l.mu.Unlock()
	return Position{tail.index, off}, nil
}

// grow extends the tail segment to size bytes of zeros, and makes the new size durable
// before any frame is written there: fdatasync would flush a size change too, but as a
// journal commit on every append near the end, which is what the zeros avoid.
func grow(s *segment, size int64) error {
	if err := s.f.Preallocate(size); err != nil {
		return fmt.Errorf("grow segment %s to %d bytes: %w", s.path, size, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("fsync segment %s: %w", s.path, err)
	}
	s.size = size
	return nil
}

func (l *Log) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, l.failed)
	}
	return nil
}

func (l *Log) fail(err error) error {
	l.mu.Lock()
	l.failed = err
	l.mu.Unlock()
	return err
}

// locate finds pos's segment, moving a position at the end of a segment that is no longer
// the last to the start of the next, and returns the segment and the end of its data.
func (l *Log) locate(pos Position) (*segment, int64, Position, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, 0, pos, ErrClosed
	}
	if pos.Offset < 0 {
		return nil, 0, pos, fmt.Errorf("wal: position %v: %w", pos, ErrNoRecord)
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].index >= pos.Segment })
	if i == len(l.segs) {
		return nil, 0, pos, fmt.Errorf("wal: position %v: %w", pos, ErrNoRecord)
	}
	if l.segs[i].index != pos.Segment {
		if pos != (Position{}) {
			return nil, 0, pos, fmt.Errorf("wal: position %v (segment deleted or never made): %w", pos, ErrNoRecord)
		}
		pos = Position{l.segs[i].index, 0}
	}
	for pos.Offset >= l.segs[i].end && i+1 < len(l.segs) {
		if pos.Offset > l.segs[i].end {
			return nil, 0, pos, fmt.Errorf("wal: position %v: %w", pos, ErrNoRecord)
		}
		i++
		pos = Position{l.segs[i].index, 0}
	}
	s := l.segs[i]
	if pos.Offset > s.end {
		return nil, 0, pos, fmt.Errorf("wal: position %v: %w", pos, ErrNoRecord)
	}
	return s, s.end, pos, nil
}

// Read returns the record at pos and the position of the next one. At the end of the log it
// returns io.EOF (with next == pos, where the next Append's first record may land). A
// position that is not the start of a frame is reported as ErrCorrupt or ErrNoRecord; the
// CRC makes reading garbage as a record practically impossible.
func (l *Log) Read(pos Position) (rec []byte, next Position, err error) {
	rec, _, next, err = l.read(pos)
	return rec, next, err
}

// read is Read that also returns where the record really is: pos itself, or the start of
// the next segment when pos is the end of one that is full.
func (l *Log) read(pos Position) (rec []byte, at, next Position, err error) {
	s, end, pos, err := l.locate(pos)
	if err != nil {
		return nil, pos, pos, err
	}
	rec, next, err = readFrame(s, end, pos)
	return rec, pos, next, err
}

func readFrame(s *segment, end int64, pos Position) (rec []byte, next Position, err error) {
	if pos.Offset == end {
		return nil, pos, io.EOF
	}
	var hdr [HeaderBytes]byte
	if end-pos.Offset < HeaderBytes {
		return nil, pos, fmt.Errorf("wal: read %s at %d: %w: not a frame start", s.path, pos.Offset, ErrCorrupt)
	}
	if _, err := s.f.ReadAt(hdr[:], pos.Offset); err != nil {
		return nil, pos, fmt.Errorf("wal: read %s at %d: %w", s.path, pos.Offset, err)
	}
	n := int64(binary.LittleEndian.Uint32(hdr[0:4]))
	if n == 0 || n > end-pos.Offset-HeaderBytes {
		return nil, pos, fmt.Errorf("wal: read %s at %d: %w: frame length %d", s.path, pos.Offset, ErrCorrupt, n)
	}
	rec = make([]byte, n)
	if _, err := s.f.ReadAt(rec, pos.Offset+HeaderBytes); err != nil {
		return nil, pos, fmt.Errorf("wal: read %s at %d: %w", s.path, pos.Offset, err)
	}
	if crc32.Checksum(rec, castagnoli) != binary.LittleEndian.Uint32(hdr[4:8]) {
		return nil, pos, fmt.Errorf("wal: read %s at %d: %w: CRC mismatch", s.path, pos.Offset, ErrCorrupt)
	}
	return rec, Position{s.index, pos.Offset + HeaderBytes + n}, nil
}

// Scan calls fn for every record from from (inclusive) to the end of the log, in order, and
// stops at fn's first error, which it returns. Records appended while Scan runs may or may not
// be seen. rec is valid only until fn returns: Scan reuses its memory, since Scan is how a
// backlog is indexed at start-up, and copying every record cost a fifth of that. Each segment
// is read sequentially through one buffer, not a read per record, for the same reason.
func (l *Log) Scan(from Position, fn func(pos Position, rec []byte) error) error {
	// Where from really is: a position at the end of a full segment moves to the next.
	_, _, pos, err := l.locate(from)
	if err != nil {
		return err
	}
	for {
		s, end, err := l.segmentFrom(pos.Segment)
		if err != nil {
			return err
		}
		if s == nil {
			return nil
		}
		if pos.Offset < end {
			var stop error
			last, bad, err := scanFramesFrom(s.f, pos.Offset, end, func(off int64, payload []byte) error {
				stop = fn(Position{s.index, off}, payload)
				return stop
			})
			if stop != nil {
				return stop
			}
			if err != nil {
				return fmt.Errorf("wal: scan %s: %w", s.path, err)
			}
			if bad != "" || last != end {
				// Open checked every frame up to end; the file changed under us.
				return fmt.Errorf("wal: scan %s at %d: %w: %s", s.path, last, ErrCorrupt, bad)
			}
		}
		pos = Position{s.index + 1, 0}
	}
}

// segmentFrom returns the first segment whose index is at least idx and the end of its data,
// or nil when there is none.
func (l *Log) segmentFrom(idx uint64) (*segment, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, 0, ErrClosed
	}
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].index >= idx })
	if i == len(l.segs) {
		return nil, 0, nil
	}
	return l.segs[i], l.segs[i].end, nil
}

// Segments returns the indexes of the segments on disk, oldest first; the last is the one
// being appended to.
func (l *Log) Segments() []uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]uint64, len(l.segs))
	for i, s := range l.segs {
		out[i] = s.index
	}
	return out
}

// Damage lists the segments Open found damaged (see the package doc), oldest first.
func (l *Log) Damage() []Damage {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Damage
	for _, s := range l.segs {
		if s.damage != nil {
			out = append(out, *s.damage)
		}
	}
	return out
}

// Delete removes every segment whose index is below upTo, except the last segment, which
// appends still need; a damaged segment is renamed to *.seg.broken instead, and kept. The
// caller decides when every record in a segment has been delivered. The removals are made
// durable with one directory fsync. A crash before it may bring back some of the segments,
// which only means records delivered twice.
func (l *Log) Delete(upTo uint64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	var doomed []*segment
	for len(l.segs) > 1 && l.segs[0].index < upTo {
		doomed = append(doomed, l.segs[0])
		l.segs = l.segs[1:]
	}
	l.mu.Unlock()
	if len(doomed) == 0 {
		return nil
	}
	var errs []error
	for _, s := range doomed {
		if err := s.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.path, err))
		}
		if s.damage != nil {
			if err := l.fs.Rename(s.path, s.path+brokenSuffix); err != nil {
				errs = append(errs, fmt.Errorf("set aside damaged %s: %w", s.path, err))
			}
			continue
		}
		if err := l.fs.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove %s: %w", s.path, err))
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		errs = append(errs, fmt.Errorf("fsync dir %s: %w", l.dir, err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wal: delete: %w", err)
	}
	return nil
}

// Close releases the segments' descriptors. Everything Append acknowledged is already
// durable, so Close writes nothing.
func (l *Log) Close() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.closed = true
	return l.closeFilesLocked()
}

func (l *Log) closeFiles() { _ = l.closeFilesLocked() } // Open's failure is the error to report

func (l *Log) closeFilesLocked() error {
	var errs []error
	for _, s := range l.segs {
		if err := s.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close %s: %w", s.path, err))
		}
	}
	l.segs = nil
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("wal: close: %w", err)
	}
	return nil
}

// ScanDir reads the log in dir without opening it for writing, for inspection while a writer
// may be appending: it calls fn for every record from from onwards, in order, and stops at
// fn's first error, which it returns. It changes nothing on disk. A bad frame ends a segment's
// data, as it does for Open: in the last segment that is where a write is in progress or was
// torn, in any other it is damage, which ScanDir returns alongside, and reading goes on in the
// next segment. rec is fn's to keep.
func ScanDir(dir string, from Position, fn func(pos Position, rec []byte) error) ([]Damage, error) {
	indexes, err := listSegments(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: scan %s: %w", dir, err)
	}
	var damage []Damage
	for i, idx := range indexes {
		if idx < from.Segment {
			continue
		}
		path := SegmentPath(dir, idx)
		end, bad, err := scanFile(path, func(off int64, payload []byte) error {
			if idx == from.Segment && off < from.Offset {
				return nil
			}
			return fn(Position{idx, off}, append([]byte(nil), payload...))
		})
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted by the writer since it was listed
		}
		if err != nil {
			return damage, err
		}
		if bad != "" && i < len(indexes)-1 {
			damage = append(damage, Damage{Path: path, Offset: end, Reason: bad})
		}
	}
	return damage, nil
}

func scanFile(path string, fn func(off int64, payload []byte) error) (end int64, bad string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, "", fmt.Errorf("wal: scan: %w", err)
	}
	end, bad, err = scanFrames(f, st.Size(), fn)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return end, bad, fmt.Errorf("wal: scan %s: %w", path, err)
	}
	return end, bad, nil
}
