// Package spool is the sensor's durable record store: a record is committed here, on disk,
// before the SMTP session answers 250, and stays here until the pipeline has it.
//
// Under the spool directory (normally <data-dir>/spool):
//
//	log/NNNNNNNNNNNNNNNNNNNN.seg  the write-ahead log of committed records (package wal): each
//	                              record one frame (length, CRC-32C, the JSON object without
//	                              its newline), segments of up to 64 MiB, in commit order
//	log/*.seg.broken              a segment whose data was found damaged, kept for an operator
//	log/cursor/NNNNNNNNNNNNNNNNNNNN.seg  a small log of log positions: the last frame says how
//	                              far the record log has been taken into batches (16 bytes:
//	                              the segment index and offset, uint64 little-endian each)
//	tmp/                          files being written; Open deletes whatever a crash left here
//	batches/<batch-id>.ndjson.gz  records gathered for one upload: gzip of their NDJSON lines;
//	                              <batch-id> is a ULID and the upload's Idempotency-Key, and the
//	                              gzip header comment says "records=N bytes=M" (uncompressed)
//	deadletter/<batch-id>.ndjson.gz  batches the pipeline refused for good; kept, never deleted
//	blobs/<sha256>                one attachment's bytes (content mode), named by their SHA-256
//	                              in lowercase hex, which the writer computed while writing
//	deadletter/blobs/<sha256>     blobs the pipeline refused for good, and the blobs of
//	                              dead-lettered batches (hard links), kept for an operator
//	records/*.broken              from a sensor before the log: files it could not read wholly
//
// Segments are not text: `sensor spool cat` prints the records as NDJSON (--pending: only
// those not yet delivered) and `sensor spool ls` lists segments and batches. Both read
// without locking or writing, so they are safe while the sensor runs. Batches stay gzip'd
// NDJSON, so `zcat batches/*.gz | jq` still works.
//
// Directories are 0700 and files 0600.
//
// # Group commit
//
// Sessions that commit at the same moment share one append to the log (see commitQueue):
// the first finds nothing being written and writes its own record at once; those arriving
// meanwhile wait, and one of them then appends all of their records and calls fdatasync once,
// so one flush serves them all. A round holds at most 128 records and 1 MiB. Segments are
// allocated and zero-filled ahead of the data, so that fdatasync commits data only, with no
// rename, no new file and no directory fsync on the commit path. Until the fdatasync returns
// no record of the round is committed: Pending does not list it and Usage does not count it.
// If it fails, every session in the round gets the error and is told to retry; the log then
// refuses appends until it is opened again (the next round does that, at most once a second),
// and whatever of the failed round reached the disk whole is then delivered as well as the
// senders' retries: duplicates under other record ids, never a loss. Such a duplicate may
// name a blob that was given back when its commit failed and is gone; the uploader sends it
// without, and the sender's retry carries the blob.
//
// # From the log to batches
//
// The uploader forms batches from pending groups, reading their records from the log by
// position. Forming a batch writes the batch file first (temp file, fsync, rename, directory
// fsync), then moves the cursor past every record now in a batch (one append to the cursor
// log, fdatasync), then deletes the segments wholly before the cursor. A crash between any two
// steps can send a record twice (the pipeline deduplicates by record id) but never lose one.
// On disk the log takes up to one segment more than its pending records: the segment the
// cursor is in is kept until the cursor leaves it, and the last segment is allocated ahead.
//
// # Blobs
//
// In content mode the parser streams each attachment into a BlobWriter (CreateBlob), which
// commits it as blobs/<sha256> by the durable file sequence, sharing fsyncs of blobs/ among
// concurrent commits, before the session commits the record that names it in
// attachments[].blob. Identical attachments share one file. A session refused after its
// blobs were committed gives them back (ReleaseBlobs), as a failed record commit does, so
// they leave at once unless another record or session needs the same bytes.
//
// A blob stays while a pending record or batch names it, and goes the moment the last one is
// delivered or dead-lettered. Which blobs are named is kept in memory (see refs.go) and
// rebuilt by Open from the log and from each batch's gzip header, whose extra field
// (subfield "JS", RFC 1952 §2.3.1.1) lists the raw SHA-256 of every blob its records name and
// whose comment adds "blobs=K" when K > 0. A batch naming more blobs than the field holds
// (2047) has K in its comment only and is read when its blobs are asked for. Nothing on disk
// has to be updated when a blob is removed, so there is no reference file to get wrong in a
// crash: a crash between a blob's commit and its record's leaves a blob nothing names, and
// Open (or SweepBlobs, for a session that failed) removes it.
//
// The spool budget (SetBudget, Reserve) counts pending records (as NDJSON), batches and
// blobs, not tmp/, the log's allocated space ahead of its data, *.broken or deadletter/.
package spool

import (
	"bufio"
	"bytes"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/wal"
)

const (
	dirTmp = "tmp"
	dirLog = "log"
	// The cursor lives in the log's directory so that the two go and come back together:
	// emptying or restoring log/ by hand takes its cursor along.
	dirCursor     = "log/cursor"
	dirBatches    = "batches"
	dirDeadLetter = "deadletter"

	batchExt = ".ndjson.gz"

	dirPerm = 0o700
)

// Spool is a spool directory opened for use. Its methods are safe for concurrent use: many
// SMTP sessions Commit while one uploader forms and removes batches.
type Spool struct {
	dir     string
	log     *slog.Logger
	fs      fsys
	notify  chan struct{}
	commits *commitQueue // group commit of records

	blobSync *groupSync // the shared fsync of blobs/
	// blobMu orders what changes blobs/ (a commit's rename, a removal, a move to the
	// dead-letter folder) with the usage and index kept for it. Taken before mu.
	blobMu sync.Mutex

	// Blob writers holding an open file, longest open first (see defaultMaxOpenBlobs).
	openMu       sync.Mutex
	open         list.List
	maxOpenBlobs int
	bufs         sync.Pool // *bufio.Writer for blob writers

	walOpts wal.Options // for the record log; the FS and sizes are tests' to change

	// logMu guards the record log's handle, which a commit replaces when it reopens the log
	// after a failure (see appendLog); readers hold it while they read.
	logMu      sync.RWMutex
	recs       *wal.Log
	logBroken  bool  // an append failed: reopen before the next
	logErr     error // why
	reopenedAt time.Time

	// cursorMu orders moves of the cursor: how far the log is in batches.
	cursorMu     sync.Mutex
	cursor       *wal.Log
	cursorPos    wal.Position // the durable cursor
	cursorBroken bool

	mu       sync.Mutex
	usage    Usage
	maxBytes int64    // spool budget; 0: none
	reserved int64    // bytes held by outstanding Reserve calls
	groups   []*group // pending groups in log order, and batched ones not yet trimmed
	end      wal.Position

	// The blob reference index; see refs.go.
	blobs     map[string]int64 // blobs/ as counted in usage: sha256 → size
	refs      map[string]int
	recRefs   map[string][]string
	batchRefs map[string][]string
	holds     map[string]*blobHold
	holdTTL   time.Duration

	health health // whether commits succeed; see health.go
}

// Usage is what the spool holds, for the spool budget and the status page.
type Usage struct {
	Records     int   // committed records not yet in a batch
	RecordBytes int64 // their size as NDJSON lines
	Batches     int   // batches waiting for delivery
	BatchBytes  int64 // their size on disk (compressed)
	Blobs       int   // attachment blobs waiting for delivery (content mode)
	BlobBytes   int64 // their size on disk
	Broken      int   // records or files that could not be read: damaged segments, *.broken
	DeadLetters int   // batch files in deadletter/
	// DeadLetterBlobs counts blobs in deadletter/blobs/: refused by the pipeline, or kept with
	// a dead-lettered batch.
	DeadLetterBlobs int
	Reserved        int64 // bytes claimed by outstanding Reserve calls
	MaxBytes        int64 // the spool budget; 0 when none is set
}

// Bytes is the disk the spool uses for what it still has to deliver; the budget counts it.
func (u Usage) Bytes() int64 { return u.RecordBytes + u.BatchBytes + u.BlobBytes }

// Batch is one batch file waiting for delivery.
type Batch struct {
	ID      string // ULID; the Idempotency-Key
	Records int    // -1 when the gzip header could not be read
	Bytes   int64  // uncompressed NDJSON bytes; -1 when unknown
	Size    int64  // bytes on disk (compressed): the request body's length
	Blobs   int    // distinct blobs its records name (BatchBlobs lists them); -1 when unknown
}

// Open opens the spool in dir, creating it if needed, and recovers from a crash: it deletes
// temp files, cuts the log's torn tail, and indexes every record not yet in a batch. Damage
// is logged and counted; it never stops the spool from opening.
func Open(dir string, logger *slog.Logger) (*Spool, error) {
	return open(dir, logger, wal.Options{})
}

// open is Open with the log's options, which tests set to fail file operations or to keep
// segments small.
func open(dir string, logger *slog.Logger, walOpts wal.Options) (*Spool, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Spool{
		dir:          dir,
		log:          logger,
		fs:           osFS{},
		notify:       make(chan struct{}, 1),
		commits:      newCommitQueue(),
		blobSync:     newGroupSync(),
		maxOpenBlobs: defaultMaxOpenBlobs,
		walOpts:      walOpts,
		blobs:        make(map[string]int64),
		refs:         make(map[string]int),
		recRefs:      make(map[string][]string),
		batchRefs:    make(map[string][]string),
		holds:        make(map[string]*blobHold),
		holdTTL:      defaultHoldTTL,
		health:       health{every: defaultProbeEvery},
	}
	s.bufs.New = func() any { return bufio.NewWriterSize(nil, blobBufSize) }
	for _, sub := range []string{"", dirTmp, dirBatches, dirDeadLetter, dirBlobs} {
		if err := os.MkdirAll(filepath.Join(dir, sub), dirPerm); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if err := s.cleanTmp(); err != nil {
		return nil, err
	}
	// Blobs first: whether there are any decides how much reading the index is worth.
	if err := s.scanBlobs(); err != nil {
		return nil, err
	}
	if err := s.openLog(); err != nil {
		s.closeLogs()
		return nil, err
	}
	if err := s.migrateLegacy(); err != nil {
		s.closeLogs()
		return nil, err
	}
	if err := s.scanBatches(); err != nil {
		s.closeLogs()
		return nil, err
	}
	dead, err := os.ReadDir(s.path(dirDeadLetter))
	if err != nil {
		s.closeLogs()
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range dead {
		if !e.IsDir() {
			s.usage.DeadLetters++
		}
	}
	u := s.usage
	s.log.Info("spool opened", "dir", dir, "records", u.Records, "record_bytes", u.RecordBytes,
		"batches", u.Batches, "batch_bytes", u.BatchBytes, "blobs", u.Blobs, "blob_bytes", u.BlobBytes,
		"broken", u.Broken, "dead_letters", u.DeadLetters, "dead_letter_blobs", u.DeadLetterBlobs)
	s.SweepBlobs() // what a crash left between a blob's commit and its record's
	return s, nil
}

// Close releases the log's file descriptors. Everything acknowledged is already durable, so
// it writes nothing; the Spool must not be used afterwards.
func (s *Spool) Close() error {
	s.cursorMu.Lock() // before logMu, as advance takes them
	defer s.cursorMu.Unlock()
	s.logMu.Lock()
	defer s.logMu.Unlock()
	var errs []error
	for _, l := range []*wal.Log{s.recs, s.cursor} {
		if l != nil {
			if err := l.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// closeLogs is Close for an Open that fails; Open's error is the one to report.
func (s *Spool) closeLogs() { _ = s.Close() }

func (s *Spool) path(elem ...string) string {
	return filepath.Join(append([]string{s.dir}, elem...)...)
}

func (s *Spool) cleanTmp() error {
	tmp := s.path(dirTmp)
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		// Anything here is a write that never reached its rename: nobody was told it is durable.
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return fmt.Errorf("spool: remove crash leftover: %w", err)
		}
	}
	if len(entries) > 0 {
		s.log.Warn("spool: removed unfinished writes left by a crash", "count", len(entries))
	}
	return nil
}

func (s *Spool) scanBatches() error {
	batches, err := s.listBatches(dirBatches)
	if err != nil {
		return err
	}
	for _, b := range batches {
		s.usage.Batches++
		s.usage.BatchBytes += b.Size
		if b.Blobs != 0 && len(s.blobs) > 0 {
			// Only worth reading when there are blobs to keep.
			s.indexBatch(b.ID, s.batchBlobs(b.ID))
		}
	}
	return nil
}

// validID accepts only canonical ULIDs: anything else could escape the directory, or sort out
// of arrival order.
func validID(id string) bool {
	u, err := ulid.ParseStrict(id)
	return err == nil && u.String() == id
}

// validLine reports whether b is exactly one JSON object followed by "\n", which is what a
// line of NDJSON must be.
func validLine(b []byte) bool {
	body, ok := bytes.CutSuffix(b, []byte("\n"))
	return ok && validRecord(body)
}

// validRecord reports whether b is one JSON object with no line break: a record as the log
// stores it, an NDJSON line without its "\n".
func validRecord(b []byte) bool {
	// IndexByte, not ContainsAny: it is vectorised, and every committed byte passes here.
	return len(b) > 0 && b[0] == '{' && bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') < 0 && json.Valid(b)
}

// Notify returns a channel that receives after records are committed. Signals coalesce: one
// receive can stand for many commits, so the receiver lists what is pending.
func (s *Spool) Notify() <-chan struct{} { return s.notify }

// Usage returns what the spool currently holds.
func (s *Spool) Usage() Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usage
	u.Reserved, u.MaxBytes = s.reserved, s.maxBytes
	return u
}
