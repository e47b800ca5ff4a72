package uploader

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/uploader/spool"
)

// maxLineBytes bounds one record line read back from a batch file, and so the memory a split
// needs. It matches the reference receiver's bound: a longer line is refused there anyway.
const maxLineBytes = 64 << 20

// maxIDScan bounds what firstRecordID reads to find the first record's id.
const maxIDScan = 1 << 20

// reject handles a batch the pipeline refused for good (400, 413, 422, or an outbox batch that
// cannot be decompressed). A batch of one record goes to the dead-letter folder. A larger one
// is split in two and the parts, returned in order, are delivered in its place: a refused part
// is split again, so one bad record among n costs about 2·log2(n) more requests, and only the
// refused records end up as dead letters.
func (u *Uploader) reject(b spool.Batch, v verdict) ([]spool.Batch, error) {
	if b.Records == 1 {
		return nil, u.deadLetter(b, v, "pipeline refused a record; moving it to the dead-letter folder")
	}
	parts, complete, err := u.split(b)
	if err != nil {
		return nil, fmt.Errorf("split refused batch %s: %w", b.ID, err)
	}
	if len(parts) == 0 {
		// Nothing in it could be read back: splitting cannot narrow it down.
		return nil, u.deadLetter(b, v, "pipeline refused a batch that cannot be read back; moving it to the dead-letter folder")
	}
	ids := make([]string, len(parts))
	for i, p := range parts {
		ids[i] = p.ID
	}
	u.log.Warn("pipeline refused batch; splitting it to find the refused records",
		"batch", b.ID, "records", b.Records, "bytes", b.Bytes, "status", v.status, "reason", v.reason, "parts", ids)
	if complete {
		// Every record is now in a part, and the parts are durable.
		err = u.sp.DeleteBatch(b.ID)
	} else {
		// The readable records were rescued into the parts; the rest of the file cannot be read,
		// so the file itself is kept for an operator rather than deleted.
		u.log.Error("refused batch is unreadable past its first records; moving the file to the dead-letter folder",
			"batch", b.ID, "rescued_parts", ids)
		err = u.sp.DeadLetter(b.ID)
		if err == nil {
			u.update(func(s *Stats) { s.BatchesDeadLettered++ })
		}
	}
	u.update(func(s *Stats) { s.BatchesSplit++ })
	if err != nil {
		// The parts exist and the whole batch does too: the next cycle sends it again, and
		// its records arrive twice, which the pipeline ignores by record id.
		return nil, err
	}
	return parts, nil
}

func (u *Uploader) deadLetter(b spool.Batch, v verdict, msg string) error {
	u.log.Error(msg, "batch", b.ID, "records", b.Records, "bytes", b.Bytes, "first_record", u.firstRecordID(b),
		"status", v.status, "reason", v.reason)
	if err := u.sp.DeadLetter(b.ID); err != nil {
		return err
	}
	u.update(func(s *Stats) {
		s.BatchesDeadLettered++
		if b.Records > 0 {
			s.RecordsDeadLettered += int64(b.Records)
		}
	})
	return nil
}

// split puts the records of batch b back into the spool and forms them into two new batches,
// each with its own id (and so its own Idempotency-Key). It does not remove b: the caller does,
// once the parts are durable, so that a crash at any point leaves every record on disk at least
// once. complete is false when the file could not be read to its end; the parts then hold what
// could be. No parts and no error means nothing in b could be read.
//
// The spool has no call that writes a batch from lines, so this goes through Commit and
// FormBatch: one fsync'd file per record, about 2·n commits over a whole bisection.
func (u *Uploader) split(b spool.Batch) (parts []spool.Batch, complete bool, err error) {
	pending, err := u.sp.Pending()
	if err != nil {
		return nil, false, err
	}
	// A crash between re-spooling and forming the parts leaves the records pending: they are
	// durable already, and committing them again would count them twice in the spool's usage.
	already := make(map[string]bool, len(pending))
	for _, e := range pending {
		already[e.ID] = true
	}

	f, err := u.sp.OpenBatch(b.ID)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		_ = f.Close() // read-only: a failed close loses nothing
	}()

	var entries []spool.Entry
	used := map[string]bool{}
	bad := 0
	complete, err = eachLine(f, maxLineBytes, func(line []byte) error {
		if !validLine(line) {
			// Not something Commit would take; it stays in b, which is then kept (below).
			bad++
			return nil
		}
		id := lineID(line)
		if id == "" || used[id] {
			// The file name only needs to be unique and sortable; the line keeps its own id.
			id = ulid.Make().String()
		}
		used[id] = true
		if !already[id] {
			if err := u.sp.Commit(id, line); err != nil {
				return err
			}
		}
		entries = append(entries, spool.Entry{ID: id, Bytes: int64(len(line)) + 1})
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if bad > 0 {
		u.log.Error("refused batch holds lines that are not JSON objects; keeping them in the dead-letter folder",
			"batch", b.ID, "lines", bad)
		complete = false
	}
	// One record makes one part: only a batch whose header could not be read gets here with
	// one, and the part, sent once more, is then dead-lettered on its own.
	half := (len(entries) + 1) / 2
	for _, chunk := range [][]spool.Entry{entries[:half], entries[half:]} {
		if len(chunk) == 0 {
			continue
		}
		p, err := u.sp.FormBatch(chunk)
		if err != nil {
			return nil, false, err
		}
		if p.ID != "" {
			parts = append(parts, p)
		}
	}
	return parts, complete, nil
}

// eachLine calls fn with each non-empty line, without its "\n", of the gzip'd NDJSON in r. It
// reports whether the data could be read to its end; a line cut short by a read error is not
// passed on. An error from fn stops it and is returned.
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
			if len(body) > maxLine {
				return false, nil
			}
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

// validLine reports whether line is what the spool's Commit accepts: one JSON object on one
// line. Checked before committing, so that an invalid line is told apart from a disk error.
func validLine(line []byte) bool {
	return len(line) > 0 && line[0] == '{' && !bytes.ContainsAny(line, "\r\n") && json.Valid(line)
}

// lineID returns the record id in an NDJSON line when it is a canonical ULID, else "".
func lineID(line []byte) string {
	var rec struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(line, &rec) != nil {
		return ""
	}
	if v, err := ulid.ParseStrict(rec.ID); err != nil || v.String() != rec.ID {
		return ""
	}
	return rec.ID
}

// firstRecordID returns the id of the first record in batch b, or "" when it cannot be read:
// the batch's records are in arrival order, so it names the oldest.
func (u *Uploader) firstRecordID(b spool.Batch) string {
	f, err := u.sp.OpenBatch(b.ID)
	if err != nil {
		return ""
	}
	defer func() {
		_ = f.Close() // read-only
	}()
	id := ""
	_, _ = eachLine(f, maxIDScan, func(line []byte) error {
		id = lineID(line)
		return errStop
	})
	return id
}

var errStop = errors.New("stop")
