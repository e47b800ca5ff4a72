// Package spool is the sensor's durable record store: a record is committed here, fsync'd,
// before the SMTP session answers 250, and stays here until the pipeline has it.
//
// Everything is plain files, so an operator can inspect it with ls, zcat and jq. Under the
// spool directory (normally <data-dir>/spool):
//
//	tmp/                          files being written; Open deletes whatever a crash left here
//	records/<id>.json             one committed record: one JSON object and "\n"; <id> is the
//	                              record's ULID, so `ls` order is arrival order
//	records/<name>.broken         a record file Open (or batching) could not read or parse,
//	                              set aside and counted instead of blocking the spool (with
//	                              a backlog of more than 1000 records, Open only lists them
//	                              and batching does the reading, so mail is taken at once)
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
// the batch that way first and only then removes its record files, so a crash in between can
// send a record twice (the pipeline deduplicates by record id) but never lose one.
//
// Commits group their directory fsyncs: each record is written, fsync'd and renamed into
// records/ by its own caller, then concurrent callers share one fsync of records/ that started
// after all their renames (see groupSync). Until that fsync succeeds the record is not
// committed: Pending does not list it and Usage does not count it. If it fails, every caller
// in that round gets the error and removes its record file, so the sender is told to retry and
// nothing it was told is durable depends on that fsync. A crash (or a failed removal) in that
// window can still leave the complete file behind; it is then delivered as well as the
// sender's retry, a duplicate under two record ids, never a loss.
//
// # Blobs
//
// In content mode the parser streams each attachment into a BlobWriter (CreateBlob), which
// commits it as blobs/<sha256> by the same sequence, sharing fsyncs of blobs/ among
// concurrent commits, before the session commits the record that names it in
// attachments[].blob. Identical attachments share one file.
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
	"compress/gzip"
	"container/list"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
)

const (
	dirTmp        = "tmp"
	dirRecords    = "records"
	dirBatches    = "batches"
	dirDeadLetter = "deadletter"

	recordExt    = ".json"
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
	recSync *groupSync // the shared fsync of records/

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
	maxBytes int64               // spool budget; 0: none
	reserved int64               // bytes held by outstanding Reserve calls
	inflight map[string]struct{} // ids renamed into records/ whose directory fsync is pending

	// The blob reference index; see refs.go.
	blobs     map[string]int64 // blobs/ as counted in usage: sha256 → size
	refs      map[string]int
	recRefs   map[string][]string
	batchRefs map[string][]string
	holds     map[string]*blobHold
	holdTTL   time.Duration
	refsReady bool // the index covers every record: blobs may be removed

	// A large backlog is counted by name at Open and its sizes are read in the background:
	// unscanned holds the ids whose bytes are not in usage yet; scanDone closes when done.
	unscanned map[string]struct{}
	scanDone  chan struct{}
	toScan    []string // handed to the scan when Open is done with the usage
}

// Usage is what the spool holds, for the spool budget and the status page.
type Usage struct {
	Records     int   // committed records not yet in a batch
	RecordBytes int64 // their size on disk (uncompressed NDJSON)
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

// Entry is one pending record file.
type Entry struct {
	ID    string
	Bytes int64 // size of its NDJSON line, "\n" included
}

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
		recSync:      newGroupSync(),
		blobSync:     newGroupSync(),
		maxOpenBlobs: defaultMaxOpenBlobs,
		inflight:     make(map[string]struct{}),
		blobs:        make(map[string]int64),
		refs:         make(map[string]int),
		recRefs:      make(map[string][]string),
		batchRefs:    make(map[string][]string),
		holds:        make(map[string]*blobHold),
		holdTTL:      defaultHoldTTL,
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
		go s.scanSizes(s.toScan, !s.refsReady)
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

// scanInBackground is the backlog above which Open counts record files by name and leaves
// their sizes to a background scan. Reading every file first took 11 s for 100,000 records
// on a cold cache, during which no mail was accepted; listing them takes a quarter second.
// Contents are then checked when a batch is formed, which sets unreadable ones aside too.
const scanInBackground = 1000

func (s *Spool) scanRecords() error {
	dir := s.path(dirRecords)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if len(entries) > scanInBackground {
		return s.countRecords(entries)
	}
	renamed := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, brokenSuffix) {
			s.usage.Broken++
			continue
		}
		if id, ok := recordID(name); ok && e.Type().IsRegular() {
			line, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil && validLine(line) {
				s.usage.Records++
				s.usage.RecordBytes += int64(len(line))
				s.indexRecord(id, lineRefs(line))
				continue
			}
			s.log.Error("spool: unreadable record file", "file", name, "error", errOrInvalid(err))
		} else {
			s.log.Error("spool: unexpected entry in records directory", "file", name)
		}
		if s.setAside(name) {
			renamed++
		}
	}
	if renamed > 0 {
		if err := syncDir(dir); err != nil {
			// The renames may be forgotten by a crash; the next Open redoes them.
			s.log.Warn("spool: could not make broken-file renames durable", "error", err)
		}
	}
	return nil
}

// countRecords counts a large backlog by name and starts the background scan of sizes.
// Until a record is scanned it counts in Records but not in RecordBytes, so the budget
// briefly undercounts a backlog rather than refusing mail while it is being read.
func (s *Spool) countRecords(entries []os.DirEntry) error {
	ids := make([]string, 0, len(entries))
	s.unscanned = make(map[string]struct{}, len(entries))
	for _, e := range entries {
		name := e.Name()
		switch id, ok := recordID(name); {
		case strings.HasSuffix(name, brokenSuffix):
			s.usage.Broken++
		case ok && e.Type().IsRegular():
			ids = append(ids, id)
			s.unscanned[id] = struct{}{}
			s.usage.Records++
		default:
			s.log.Error("spool: unexpected entry in records directory", "file", name)
			s.setAside(name)
		}
	}
	s.toScan = ids
	return nil
}

// scanSizes adds the size of each record counted by name, unless a batch took it first.
// With readRefs it reads each record for the blobs it names too (slower: a stat is about 40
// times cheaper than a read on a cold cache), and blobs may be removed once it is done.
func (s *Spool) scanSizes(ids []string, readRefs bool) {
	defer close(s.scanDone)
	dir := s.path(dirRecords)
	for _, id := range ids {
		s.mu.Lock()
		_, todo := s.unscanned[id]
		s.mu.Unlock()
		if !todo {
			continue
		}
		name := filepath.Join(dir, id+recordExt)
		var size int64
		var refs []string
		var err error
		if readRefs {
			var line []byte
			line, err = os.ReadFile(name)
			size, refs = int64(len(line)), lineRefs(line)
		} else {
			var info os.FileInfo
			if info, err = os.Lstat(name); err == nil {
				size = info.Size()
			}
		}
		s.mu.Lock()
		if _, todo := s.unscanned[id]; todo {
			delete(s.unscanned, id)
			if err == nil {
				s.usage.RecordBytes += size
				s.indexRecord(id, refs)
			} else {
				s.usage.Records-- // gone without a batch: removed by hand
			}
		}
		s.mu.Unlock()
	}
	s.log.Info("spool: backlog scanned", "records", len(ids))
	if readRefs {
		s.mu.Lock()
		s.refsReady = true
		s.mu.Unlock()
		s.SweepBlobs()
	}
}

// forget takes a record that left records/ out of the usage and the blob index, adding to
// zero the blobs nothing names any more. The caller holds s.mu.
func (s *Spool) forget(id string, bytes int64, zero *[]string) {
	s.forgetRecordRefs(id, zero)
	s.usage.Records--
	if _, unscanned := s.unscanned[id]; unscanned {
		delete(s.unscanned, id) // its bytes were never added
		return
	}
	s.usage.RecordBytes -= bytes
}

func errOrInvalid(err error) error {
	if err != nil {
		return err
	}
	return errors.New("not one JSON object followed by a newline")
}

// setAside renames a record file to *.broken so it stops blocking batches but stays for an
// operator to look at. It reports whether the rename happened.
func (s *Spool) setAside(name string) bool {
	dir := s.path(dirRecords)
	if err := os.Rename(filepath.Join(dir, name), filepath.Join(dir, name+brokenSuffix)); err != nil {
		s.log.Error("spool: could not set aside broken record file", "file", name, "error", err)
		return false
	}
	s.usage.Broken++
	s.log.Warn("spool: set aside broken record file", "file", name+brokenSuffix)
	return true
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

// recordID returns the id in a record file name, if the name is one Commit would write.
func recordID(name string) (string, bool) {
	id, ok := strings.CutSuffix(name, recordExt)
	return id, ok && validID(id)
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

// Commit makes one record durable: when it returns nil, records/<id>.json is on disk and
// fsync'd, and the SMTP session may answer 250. id must be a canonical ULID and line one JSON
// object on one line (a trailing "\n" is added if missing). On error the record is not in the
// spool and the session answers 451.
//
// Concurrent Commits share the fsync of records/ (group commit), so many sessions committing
// at once cost about two directory fsyncs, not one each. Commit never fails for lack of
// budget: the budget is checked earlier, by Reserve.
func (s *Spool) Commit(id string, line []byte) error {
	if !validID(id) {
		return fmt.Errorf("spool: commit: record id %q is not a ULID", id)
	}
	if !bytes.HasSuffix(line, []byte("\n")) {
		line = append(line[:len(line):len(line)], '\n')
	}
	if !validLine(line) {
		return fmt.Errorf("spool: commit %s: not one JSON object on one line", id)
	}
	refs := lineRefs(line)
	s.mu.Lock()
	if _, dup := s.inflight[id]; dup {
		s.mu.Unlock()
		return fmt.Errorf("spool: commit %s: already being committed", id)
	}
	// Registered before the rename, so Pending cannot list the file before it is committed.
	s.inflight[id] = struct{}{}
	s.mu.Unlock()

	dst := s.path(dirRecords, id+recordExt)
	err := writeRename(s.fs, s.path(dirTmp), id+".*", dst, func(w io.Writer) error {
		_, err := w.Write(line)
		return err
	})
	if err != nil {
		s.mu.Lock()
		delete(s.inflight, id)
		s.mu.Unlock()
		return fmt.Errorf("spool: commit %s: %w", id, err)
	}

	err = s.recSync.wait(func() error { return s.fs.syncDir(s.path(dirRecords)) })
	if err != nil {
		err = fmt.Errorf("spool: commit %s: %w", id, err)
		rmErr := removeIfExists(s.fs, dst)
		s.mu.Lock()
		delete(s.inflight, id)
		if rmErr != nil {
			// The file stays and will be delivered although the sender was told to retry: a
			// duplicate under another id, never a loss. Counted, so usage matches the disk.
			s.usage.Records++
			s.usage.RecordBytes += int64(len(line))
			s.indexRecord(id, refs)
		}
		s.mu.Unlock()
		if rmErr != nil {
			s.log.Error("spool: record not durable and not removed; it will be sent anyway",
				"record", id, "error", rmErr)
		}
		return errors.Join(err, rmErr)
	}
	s.mu.Lock()
	delete(s.inflight, id)
	s.usage.Records++
	s.usage.RecordBytes += int64(len(line))
	s.indexRecord(id, refs)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default: // a wake-up is already pending; the uploader will see this record too
	}
	return nil
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

// Pending lists committed records not yet in a batch, oldest first. A record whose Commit
// has not returned yet is not listed: it may still be withdrawn.
func (s *Spool) Pending() ([]Entry, error) {
	dir := s.path(dirRecords)
	entries, err := os.ReadDir(dir) // sorted by name, and names are ULIDs: arrival order
	if err != nil {
		return nil, fmt.Errorf("spool: list records: %w", err)
	}
	var out []Entry
	for _, e := range entries {
		id, ok := recordID(e.Name())
		// Only regular files: a directory with a record's name (set aside at Open unless that
		// failed) would otherwise come back in every listing.
		if !ok || !e.Type().IsRegular() || s.committing(id) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("spool: list records: %w", err)
		}
		out = append(out, Entry{ID: id, Bytes: info.Size()})
	}
	return out, nil
}

// FormBatch gathers the given pending records into a new batch file and removes them from
// records/. Records that vanished are skipped; records that no longer parse are set aside as
// *.broken. It returns a zero Batch if none of the records could be used.
//
// The batch is durable before any record file is removed. Removing them is then best effort:
// a record left behind is sent again in a later batch, a duplicate the pipeline drops, so a
// failure there is logged rather than returned.
func (s *Spool) FormBatch(entries []Entry) (Batch, error) {
	id := ulid.Make().String()
	dir := s.path(dirRecords)
	var used, broken []Entry
	var bytesIn int64
	var refs []string // blobs the used records name, repeats included until sorted out

	body := func(w io.Writer) error {
		// The lines are gathered first because the gzip header, which carries the count, is
		// written before the data. The caller bounds a batch's bytes, so this buffer is bounded.
		var buf bytes.Buffer
		for _, e := range entries {
			line, err := os.ReadFile(filepath.Join(dir, e.ID+recordExt))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil && !validLine(line) {
				err = errOrInvalid(nil)
			}
			if err != nil {
				s.log.Error("spool: unreadable record file", "record", e.ID, "error", err)
				broken = append(broken, e)
				continue
			}
			buf.Write(line)
			used = append(used, Entry{ID: e.ID, Bytes: int64(len(line))})
			bytesIn += int64(len(line))
			refs = append(refs, lineRefs(line)...)
		}
		if len(used) == 0 {
			return errEmpty
		}
		refs = distinct(refs)
		zw := gzip.NewWriter(w)
		zw.Name = id + ".ndjson" // what `gunzip -N` restores it as
		zw.Comment = fmt.Sprintf("records=%d bytes=%d", len(used), bytesIn)
		if len(refs) > 0 {
			zw.Comment += fmt.Sprintf(" blobs=%d", len(refs))
			zw.Extra = encodeRefs(refs)
		}
		if _, err := zw.Write(buf.Bytes()); err != nil {
			return err
		}
		return zw.Close()
	}
	dst := s.path(dirBatches, id+batchExt)
	err := writeAtomic(s.fs, s.path(dirTmp), id+".*", dst, body)

	var zero []string // blobs nothing names any more
	defer func() { s.dropBlobs(zero) }()
	s.mu.Lock()
	for _, e := range broken {
		if s.setAside(e.ID + recordExt) {
			s.forget(e.ID, e.Bytes, &zero)
		}
	}
	s.mu.Unlock()

	if errors.Is(err, errEmpty) {
		return Batch{}, nil
	}
	if err != nil {
		return Batch{}, fmt.Errorf("spool: form batch: %w", err)
	}
	info, err := os.Stat(dst)
	if err != nil {
		return Batch{}, fmt.Errorf("spool: form batch: %w", err)
	}
	b := Batch{ID: id, Records: len(used), Bytes: bytesIn, Size: info.Size(), Blobs: len(refs)}
	// Entered before the records leave, so every blob stays named throughout.
	s.mu.Lock()
	s.indexBatch(id, refs)
	s.mu.Unlock()

	var removed []Entry
	for _, e := range used {
		if err := s.fs.remove(filepath.Join(dir, e.ID+recordExt)); err != nil {
			s.log.Warn("spool: batched record not removed; it will be sent twice", "record", e.ID, "batch", id, "error", err)
			continue
		}
		removed = append(removed, e)
	}
	if err := s.fs.syncDir(dir); err != nil {
		s.log.Warn("spool: record removals not durable; a crash would send them twice", "batch", id, "error", err)
	}

	s.mu.Lock()
	for _, e := range removed {
		s.forget(e.ID, e.Bytes, &zero)
	}
	s.usage.Batches++
	s.usage.BatchBytes += b.Size
	s.mu.Unlock()
	return b, nil
}

var errEmpty = errors.New("no usable records")

// committing reports whether id's Commit is between its rename and its directory fsync.
func (s *Spool) committing(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.inflight[id]
	return ok
}

// Batches lists the batches waiting for delivery, oldest first, so leftovers from an earlier
// run go out before anything newer.
func (s *Spool) Batches() ([]Batch, error) {
	return s.listBatches()
}

func (s *Spool) listBatches() ([]Batch, error) {
	dir := s.path(dirBatches)
	entries, err := os.ReadDir(dir) // sorted by name: ULIDs, so oldest first
	if err != nil {
		return nil, fmt.Errorf("spool: list batches: %w", err)
	}
	var out []Batch
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), batchExt)
		if !ok || !validID(id) {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("spool: list batches: %w", err)
		}
		b := Batch{ID: id, Records: -1, Bytes: -1, Size: info.Size(), Blobs: -1}
		s.readHeader(&b)
		out = append(out, b)
	}
	return out, nil
}

// readHeader fills in the counts from the gzip header comment, and returns the blob list from
// its extra field when that holds all of them (ok). A batch whose header cannot be read is
// still listed: delivering it is what tells whether it is poison.
func (s *Spool) readHeader(b *Batch) (refs []string, ok bool) {
	f, err := os.Open(s.path(dirBatches, b.ID+batchExt))
	if err != nil {
		return nil, false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		s.log.Warn("spool: batch has no readable gzip header", "batch", b.ID, "error", err)
		return nil, false
	}
	// A batch names no blob unless its comment says so: batches from before content mode
	// existed say nothing.
	b.Blobs = 0
	for _, kv := range strings.Fields(zr.Comment) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "records":
			b.Records = int(n)
		case "bytes":
			b.Bytes = n
		case "blobs":
			b.Blobs = int(min(max(n, -1), 1<<31-1))
		}
	}
	if b.Blobs == 0 {
		return nil, true
	}
	refs, ok = decodeRefs(zr.Extra)
	return refs, ok && len(refs) == b.Blobs
}

// BatchBlobs lists the distinct blobs the records of batch id name, sorted. The uploader
// stores these with the pipeline before it sends the batch. A blob listed here may be missing
// from the spool (OpenBlob says so) if it was refused earlier or lost.
func (s *Spool) BatchBlobs(id string) ([]string, error) {
	if !validID(id) {
		return nil, fmt.Errorf("spool: batch id %q is not a ULID", id)
	}
	s.mu.Lock()
	refs, ok := s.batchRefs[id]
	s.mu.Unlock()
	if ok {
		return slices.Clone(refs), nil
	}
	if _, err := os.Stat(s.path(dirBatches, id+batchExt)); err != nil {
		return nil, fmt.Errorf("spool: batch blobs: %w", err)
	}
	return s.batchBlobs(id), nil
}

// batchBlobs reads a batch's blob list from its header, or from its lines when the header
// does not hold it all.
func (s *Spool) batchBlobs(id string) []string {
	b := Batch{ID: id}
	if refs, ok := s.readHeader(&b); ok {
		return refs
	}
	f, err := os.Open(s.path(dirBatches, id+batchExt))
	if err != nil {
		return nil
	}
	defer f.Close()
	return scanRefs(f)
}

// OpenBatch opens a batch's gzip file for reading. Each upload attempt opens it afresh, so no
// upload body is ever held in memory.
func (s *Spool) OpenBatch(id string) (*os.File, error) {
	if !validID(id) {
		return nil, fmt.Errorf("spool: batch id %q is not a ULID", id)
	}
	f, err := os.Open(s.path(dirBatches, id+batchExt))
	if err != nil {
		return nil, fmt.Errorf("spool: open batch: %w", err)
	}
	return f, nil
}

// DeleteBatch removes a delivered batch.
func (s *Spool) DeleteBatch(id string) error {
	if !validID(id) {
		return fmt.Errorf("spool: batch id %q is not a ULID", id)
	}
	dir := s.path(dirBatches)
	name := filepath.Join(dir, id+batchExt)
	info, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("spool: delete batch: %w", err)
	}
	if err := s.fs.remove(name); err != nil {
		return fmt.Errorf("spool: delete batch: %w", err)
	}
	var zero []string
	s.mu.Lock()
	s.usage.Batches--
	s.usage.BatchBytes -= info.Size()
	s.forgetBatchRefs(id, &zero)
	s.mu.Unlock()
	// Delivered: the pipeline has the blobs it names, so those nothing else names can go.
	s.dropBlobs(zero)
	// Not durable until the directory is synced: a crash could resend it, which the pipeline
	// tolerates (same Idempotency-Key), so the error is still worth reporting, not worth undoing.
	if err := s.fs.syncDir(dir); err != nil {
		return fmt.Errorf("spool: delete batch: %w", err)
	}
	return nil
}

// DeadLetter moves a batch the pipeline will never accept to deadletter/, where it stays for an
// operator.
func (s *Spool) DeadLetter(id string) error {
	if !validID(id) {
		return fmt.Errorf("spool: batch id %q is not a ULID", id)
	}
	src := s.path(dirBatches, id+batchExt)
	info, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("spool: dead-letter batch: %w", err)
	}
	dst := s.path(dirDeadLetter, id+batchExt)
	s.mu.Lock()
	sums, indexed := s.batchRefs[id]
	s.mu.Unlock()
	if !indexed {
		sums = s.batchBlobs(id) // nil, from its header, for a batch that names none
	}
	// Before the batch moves, so a crash cannot leave it in the folder without its blobs.
	s.keepWithDeadLetter(id, sums)
	if err := s.fs.rename(src, dst); err != nil {
		return fmt.Errorf("spool: dead-letter batch: %w", err)
	}
	var zero []string
	s.mu.Lock()
	s.usage.Batches--
	s.usage.BatchBytes -= info.Size()
	s.usage.DeadLetters++
	s.forgetBatchRefs(id, &zero)
	s.mu.Unlock()
	s.dropBlobs(zero)
	// The new name first: if only the old directory's entry were durable, a crash could lose
	// the file from both places.
	if err := s.fs.syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("spool: dead-letter batch: %w", err)
	}
	if err := s.fs.syncDir(filepath.Dir(src)); err != nil {
		return fmt.Errorf("spool: dead-letter batch: %w", err)
	}
	return nil
}
