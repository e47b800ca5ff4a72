// Package spool is the sensor's durable record store: a record is committed here, fsync'd,
// before the SMTP session answers 250, and stays here until the pipeline has it.
//
// Everything is plain files, so an operator can inspect it with ls, cat, zcat and jq. Under
// the spool directory (normally <data-dir>/spool):
//
//	tmp/                          files being written; Open deletes whatever a crash left here
//	records/<group-id>.ndjson     one commit group: the records that concurrent sessions
//	                              committed together, one JSON object per line, in the order
//	                              they joined; <group-id> is a ULID, so `ls` order is commit
//	                              order, and `cat records/*.ndjson | jq` shows every pending record
//	records/<name>.broken         a file Open or batching could not read wholly, kept as found:
//	                              its readable lines were delivered, the rest are for an operator
//	batches/<batch-id>.ndjson.gz  records gathered for one upload: gzip of their NDJSON lines;
//	                              <batch-id> is a ULID and the upload's Idempotency-Key, and the
//	                              gzip header comment says "records=N bytes=M" (uncompressed)
//	deadletter/<batch-id>.ndjson.gz  batches the pipeline refused for good; kept, never deleted
//	blobs/<sha256>                one attachment's bytes (content mode), named by their SHA-256
//	                              in lowercase hex, which the writer computed while writing
//	deadletter/blobs/<sha256>     blobs the pipeline refused for good, and the blobs of
//	                              dead-lettered batches (hard links), kept for an operator
//
// Directories are 0700 and files 0600. Every file appears by the same sequence: write a temp
// file in tmp/, fsync it, rename it into place, fsync the directory. Forming a batch writes
// the batch that way first and only then removes its group files, so a crash in between can
// send a record twice (the pipeline deduplicates by record id) but never lose one.
//
// # Group commit
//
// Sessions that commit at the same moment share that sequence (see commitQueue): the first
// finds nothing being written and writes its own record at once; those arriving meanwhile
// wait, and one of them then writes all of their lines as one group file, so one file fsync
// and one directory fsync serve them all. A round holds at most 128 records and 1 MiB. Until
// the directory fsync succeeds no record of the round is committed: Pending does not list the
// group and Usage does not count it. If any step fails, every session in the round gets the
// error and the file is removed, so each sender is told to retry and nothing it was told is
// durable depends on that round. A crash (or a failed removal) in that window can still leave
// the complete file behind; it is then delivered as well as the senders' retries, duplicates
// under other record ids, never a loss.
//
// # Blobs
//
// In content mode the parser streams each attachment into a BlobWriter (CreateBlob), which
// commits it as blobs/<sha256> by the same sequence, sharing fsyncs of blobs/ among
// concurrent commits, before the session commits the record that names it in
// attachments[].blob. Identical attachments share one file. A session refused after its
// blobs were committed gives them back (ReleaseBlobs), as a failed record commit does, so
// they leave at once unless another record or session needs the same bytes.
//
// A blob stays while a pending record or batch names it, and goes the moment the last one is
// delivered or dead-lettered. Which blobs are named is kept in memory (see refs.go) and
// rebuilt by Open from the files: record lines, and each batch's gzip header, whose extra
// field (subfield "JS", RFC 1952 §2.3.1.1) lists the raw SHA-256 of every blob its records
// name and whose comment adds "blobs=K" when K > 0. A batch naming more blobs than the field
// holds (2047) has K in its comment only and is read when its blobs are asked for. Nothing on
// disk has to be updated when a blob is removed, so there is no reference file to get wrong
// in a crash: a crash between a blob's commit and its record's leaves a blob nothing names,
// and Open (or SweepBlobs, for a session that failed) removes it.
//
// The spool budget (SetBudget, Reserve) counts pending records, batches and blobs, not tmp/,
// *.broken or deadletter/.
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
)

const (
	dirTmp        = "tmp"
	dirRecords    = "records"
	dirBatches    = "batches"
	dirDeadLetter = "deadletter"

	groupExt     = ".ndjson"
	batchExt     = ".ndjson.gz"
	brokenSuffix = ".broken"

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

	mu       sync.Mutex
	usage    Usage
	maxBytes int64             // spool budget; 0: none
	reserved int64             // bytes held by outstanding Reserve calls
	groups   map[string]*group // pending commit groups in records/, by id

	// The blob reference index; see refs.go.
	blobs     map[string]int64 // blobs/ as counted in usage: sha256 → size
	refs      map[string]int
	recRefs   map[string][]string
	batchRefs map[string][]string
	holds     map[string]*blobHold
	holdTTL   time.Duration
	refsReady bool // the index covers every record: blobs may be removed

	// A large backlog is listed by name at Open and read in the background (scanGroups);
	// scanDone closes when all is read.
	scanDone chan struct{}
	toScan   []string // handed to the scan when Open is done with the usage

	health health // whether commits succeed; see health.go
}

// Usage is what the spool holds, for the spool budget and the status page.
type Usage struct {
	Records     int   // committed records not yet in a batch; a group file not yet read counts as one
	RecordBytes int64 // their size on disk (uncompressed NDJSON); files not yet read count 0
	Batches     int   // batches waiting for delivery
	BatchBytes  int64 // their size on disk (compressed)
	Blobs       int   // attachment blobs waiting for delivery (content mode)
	BlobBytes   int64 // their size on disk
	Broken      int   // *.broken record files set aside
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
// temp files and sets aside record files it cannot parse as <name>.broken. A broken entry is
// logged and counted; it never stops the spool from opening.
func Open(dir string, logger *slog.Logger) (*Spool, error) {
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
		groups:       make(map[string]*group),
		blobs:        make(map[string]int64),
		refs:         make(map[string]int),
		recRefs:      make(map[string][]string),
		batchRefs:    make(map[string][]string),
		holds:        make(map[string]*blobHold),
		holdTTL:      defaultHoldTTL,
		health:       health{every: defaultProbeEvery},
	}
	s.bufs.New = func() any { return bufio.NewWriterSize(nil, blobBufSize) }
	for _, sub := range []string{"", dirTmp, dirRecords, dirBatches, dirDeadLetter, dirBlobs} {
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
	if err := s.scanRecords(); err != nil {
		return nil, err
	}
	if err := s.scanBatches(); err != nil {
		return nil, err
	}
	dead, err := os.ReadDir(s.path(dirDeadLetter))
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range dead {
		if !e.IsDir() {
			s.usage.DeadLetters++
		}
	}
	// With no blob on disk, nothing an unread record names can be removed by mistake, so a
	// backlog's refs need not be read before blobs may go; a record naming a blob that is
	// missing is delivered without it either way.
	s.refsReady = s.toScan == nil || len(s.blobs) == 0
	u := s.usage
	s.log.Info("spool opened", "dir", dir, "records", u.Records, "record_bytes", u.RecordBytes,
		"batches", u.Batches, "batch_bytes", u.BatchBytes, "blobs", u.Blobs, "blob_bytes", u.BlobBytes,
		"broken", u.Broken, "dead_letters", u.DeadLetters, "dead_letter_blobs", u.DeadLetterBlobs)
	if s.refsReady {
		s.SweepBlobs() // what a crash left between a blob's commit and its record's
	}
	if s.toScan != nil {
		s.scanDone = make(chan struct{})
		go s.scanGroups(s.toScan)
		s.toScan = nil
	}
	return s, nil
}

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

func errOrInvalid(err error) error {
	if err != nil {
		return err
	}
	return errors.New("not one JSON object followed by a newline")
}

func (s *Spool) scanBatches() error {
	batches, err := s.listBatches()
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
	return ok && len(body) > 0 && body[0] == '{' && !bytes.ContainsAny(body, "\r\n") && json.Valid(body)
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
