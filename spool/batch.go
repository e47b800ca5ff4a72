package spool

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/journalsensor/sensor/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/oklog/ulid/v2"
)

// writeBatch makes data, records NDJSON lines naming the distinct blobs refs, a new batch file
// and enters it in the index and the usage. The gzip header carries the counts and the blob
// list (see the package doc), so listing batches never decompresses one.
func (s *Spool) writeBatch(data []byte, records int, refs []string) (Batch, error) {
	id := ulid.Make().String()
	dst := s.path(dirBatches, id+batchExt)
	var size int64
	err := atomicfile.Write(s.fs, s.path(dirTmp), id+".*", dst, func(w io.Writer) error {
		cw := &countWriter{w: w}
		// BestSpeed: under load a batch is formed every fraction of a second on the cores
		// that parse mail, and level 6 spent 5% of the sensor's CPU deflating for a few
		// percent smaller uploads of text that compresses well at any level.
		zw, err := gzip.NewWriterLevel(cw, gzip.BestSpeed)
		if err != nil {
			return err
		}
		zw.Name = id + ".ndjson" // what `gunzip -N` restores it as
		zw.Comment = fmt.Sprintf("records=%d bytes=%d", records, len(data))
		if len(refs) > 0 {
			zw.Comment += fmt.Sprintf(" blobs=%d", len(refs))
			zw.Extra = encodeRefs(refs)
		}
		if _, err := zw.Write(data); err != nil {
			return err
		}
		err = zw.Close()
		size = cw.n
		return err
	})
	if err != nil {
		return Batch{}, err
	}
	b := Batch{ID: id, Records: records, Bytes: int64(len(data)), Size: size, Blobs: len(refs)}
	s.mu.Lock()
	// Entered before the records leave records/, so every blob stays named throughout.
	s.indexBatch(id, refs)
	s.usage.Batches++
	s.usage.BatchBytes += size
	s.mu.Unlock()
	return b, nil
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// maxLineBytes bounds one record line read back from a batch file, and so the memory a split
// needs. It matches the reference receiver's bound: a longer line is refused there anyway.
const maxLineBytes = 64 << 20

// SplitBatch writes the records of batch id into two new batches, the first half and the
// rest, each with its own id (and so its own Idempotency-Key), and returns them in order. The
// uploader uses it to narrow down which records the pipeline refuses. It does not remove the
// batch: the caller does, once it has the parts, so a crash at any point leaves every record
// on disk at least once.
//
// complete is false when the file could not be read to its end or held lines that are not
// records; the parts then hold what could be read, and the caller keeps the file for an
// operator. No parts and no error means nothing in it could be read. A batch of one record
// makes one part.
//
// Splitting holds the batch's lines in memory: batches are bounded by the uploader (4 MiB
// by default), and a batch of one record larger than that is never split.
func (s *Spool) SplitBatch(id string) (parts []Batch, complete bool, err error) {
	f, err := s.OpenBatch(id)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		_ = f.Close() // read-only: a failed close loses nothing
	}()
	var lines [][]byte
	bad := 0
	complete, _ = eachLine(f, maxLineBytes, func(line []byte) error {
		l := make([]byte, 0, len(line)+1)
		l = append(append(l, line...), '\n')
		if !validLine(l) {
			bad++
			return nil
		}
		lines = append(lines, l)
		return nil
	})
	if bad > 0 {
		s.log.Error("spool: batch holds lines that are not records; they stay in the original file",
			"batch", id, "lines", bad)
		complete = false
	}
	half := (len(lines) + 1) / 2
	for _, part := range [][][]byte{lines[:half], lines[half:]} {
		if len(part) == 0 {
			continue
		}
		var refs []string
		for _, l := range part {
			refs = append(refs, lineRefs(l)...)
		}
		p, err := s.writeBatch(bytes.Join(part, nil), len(part), distinct(refs))
		if err != nil {
			return nil, false, fmt.Errorf("spool: split batch %s: %w", id, err)
		}
		parts = append(parts, p)
	}
	return parts, complete, nil
}

// FirstRecordID returns the id of the first record in batch id, or "" when it cannot be read:
// a batch's records are in arrival order, so it names the oldest. For log lines.
func (s *Spool) FirstRecordID(id string) string {
	f, err := s.OpenBatch(id)
	if err != nil {
		return ""
	}
	defer func() {
		_ = f.Close() // read-only
	}()
	first := ""
	_, _ = eachLine(f, 1<<20, func(line []byte) error {
		var rec struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(line, &rec) == nil && validID(rec.ID) {
			first = rec.ID
		}
		return errStop
	})
	return first
}

var errStop = errors.New("stop")

// eachLine calls fn with each non-empty line, without its "\n", of the gzip'd NDJSON in r. It
// reports whether the data could be read to its end; a line cut short by a read error, or
// longer than maxLine, ends it. An error from fn stops it and is returned.
func eachLine(r io.Reader, maxLine int, fn func(line []byte) error) (complete bool, err error) {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return false, nil
	}
	br := bufio.NewReaderSize(zr, 64<<10)
	var long []byte // a line longer than the reader's buffer, gathered
	for {
		chunk, rerr := br.ReadSlice('\n')
		if len(long)+len(chunk) > maxLine+1 { // +1: the newline
			return false, nil
		}
		if errors.Is(rerr, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			continue
		}
		line := chunk
		if len(long) > 0 {
			line = append(long, chunk...)
		}
		if rerr != nil && rerr != io.EOF {
			return false, nil // corrupt or truncated: line may be cut short
		}
		if body := bytes.TrimSuffix(line, []byte("\n")); len(body) > 0 {
			if err := fn(body); err != nil {
				return false, err
			}
		}
		long = long[:0]
		if rerr == io.EOF {
			return true, nil
		}
	}
}

// OldestBatch returns the id of the batch that has waited longest for delivery, or "" when
// none waits. Batch ids are ULIDs, so it is the first name in batches/; only the names are
// read, not each batch's header as Batches does, because /status and /metrics ask often.
func (s *Spool) OldestBatch() string {
	entries, err := os.ReadDir(s.path(dirBatches)) // sorted by name
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if id, ok := strings.CutSuffix(e.Name(), batchExt); ok && validID(id) {
			return id
		}
	}
	return ""
}

// Batches lists the batches waiting for delivery, oldest first, so leftovers from an earlier
// run go out before anything newer.
func (s *Spool) Batches() ([]Batch, error) {
	return s.listBatches(dirBatches)
}

// listBatches lists the batch files in sub (batches/ or deadletter/), oldest first.
func (s *Spool) listBatches(sub string) ([]Batch, error) {
	dir := s.path(sub)
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
		s.readHeader(&b, sub)
		out = append(out, b)
	}
	return out, nil
}

// readHeader fills in the counts from the gzip header comment, and returns the blob list from
// its extra field when that holds all of them (ok). A batch whose header cannot be read is
// still listed: delivering it is what tells whether it is poison.
func (s *Spool) readHeader(b *Batch, sub string) (refs []string, ok bool) {
	f, err := os.Open(s.path(sub, b.ID+batchExt))
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
	if refs, ok := s.readHeader(&b, dirBatches); ok {
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
	if err := s.fs.Remove(name); err != nil {
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
	if err := s.fs.SyncDir(dir); err != nil {
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
	if err := s.fs.Rename(src, dst); err != nil {
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
	if err := s.fs.SyncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("spool: dead-letter batch: %w", err)
	}
	if err := s.fs.SyncDir(filepath.Dir(src)); err != nil {
		return fmt.Errorf("spool: dead-letter batch: %w", err)
	}
	return nil
}
