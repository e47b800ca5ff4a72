package spool

import (
	"bytes"
	"errors"
	"fmt"
	"github.com/journalsensor/sensor/internal/atomicfile"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
)

// Bounds on one commit group. A group is taken whole into a batch, so keeping it well under
// the uploader's batch bounds (500 records, 4 MiB by default) keeps batches near their size.
// A record larger than maxGroupBytes still commits, in a group of its own.
const (
	maxGroupRecords = 128
	maxGroupBytes   = 1 << 20
)

// group is one file in records/: the records one group commit made durable together.
type group struct {
	records int       // readable lines in the file
	bytes   int64     // the file's size
	oldest  time.Time // when the oldest of its records was made (its id's time)
	// written says this process wrote the file (Commit), having checked every line, so a
	// batch may take it as it is when it still has that size. Files found at Open are read
	// line by line.
	written bool
}

// Entry is one pending commit group: a file in records/ holding one or more records.
type Entry struct {
	ID      string    // the group's id: records/<ID>.ndjson
	Records int       // records in it
	Bytes   int64     // its size: the NDJSON lines, "\n" included
	Oldest  time.Time // when its oldest record was made, from the record ids
}

// Commit makes one record durable: when it returns nil, the record is in a file in records/
// that is fsync'd, renamed into place and whose directory is fsync'd, and the SMTP session may
// answer 250. id is the record's id, a canonical ULID, and line one JSON object on one line (a
// trailing "\n" is added if missing). On error the record is not in the spool and the session
// answers 451, and the blobs the line names are given back as ReleaseBlobs does.
//
// Concurrent Commits share one file (group commit): whoever finds no commit running writes
// the lines of everyone who joined so far, fsyncs that one file and the directory once, and
// wakes them all with the same result. So n sessions committing at once cost two fsyncs, not
// 2·n, and throughput rises with concurrency instead of being capped at one fsync per message.
// Commit never fails for lack of budget: the budget is checked earlier, by Reserve.
func (s *Spool) Commit(id string, line []byte) error {
	if !validID(id) {
		s.releaseHolds(lineRefs(line))
		return fmt.Errorf("spool: commit: record id %q is not a ULID", id)
	}
	if !bytes.HasSuffix(line, []byte("\n")) {
		line = append(line[:len(line):len(line)], '\n')
	}
	if !validLine(line) {
		// Which blobs a line that is not one JSON object names cannot be read, so their holds
		// are not given back here: they expire (holdTTL). Only a caller's bug gets here.
		return fmt.Errorf("spool: commit %s: not one JSON object on one line", id)
	}
	t, _ := ulid.ParseStrict(id) // valid: checked above
	err := s.commits.join(commitReq{line: line, made: t.Timestamp(), refs: lineRefs(line)}, s.commitGroup)
	s.noteCommit(err)
	if err != nil {
		return fmt.Errorf("spool: commit %s: %w", id, err)
	}
	return nil
}

// commitGroup writes one round of commits as records/<group-id>.ndjson, by the durable
// sequence, and enters it in the index once its name is durable: until then Pending does not
// list it, so no batch can take a record whose sender may still be told to retry.
func (s *Spool) commitGroup(r *commitRound) error {
	gid := ulid.Make().String()
	dst := s.path(dirRecords, gid+groupExt)
	err := atomicfile.WriteRename(s.fs, s.path(dirTmp), gid+".*", dst, func(w io.Writer) error {
		for _, q := range r.reqs {
			if _, err := w.Write(q.line); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.releaseRound(r)
		return err
	}
	if err := s.fs.SyncDir(s.path(dirRecords)); err != nil {
		rmErr := atomicfile.RemoveIfExists(s.fs, dst)
		if rmErr != nil {
			// The file stays and will be delivered although its senders were told to retry:
			// duplicates under other ids, never a loss. Indexed, so usage matches the disk.
			s.log.Error("spool: records not durable and not removed; they will be sent anyway",
				"group", gid, "records", len(r.reqs), "error", rmErr)
			s.addCommitted(gid, r)
		} else {
			s.releaseRound(r)
		}
		return errors.Join(err, rmErr)
	}
	s.addCommitted(gid, r)
	s.wake()
	return nil
}

// addCommitted enters a group Commit wrote into the index and the usage. Each blob its records
// name settles one hold (indexRecord does that; see refs.go).
func (s *Spool) addCommitted(gid string, r *commitRound) {
	g := &group{records: len(r.reqs), bytes: int64(r.bytes), oldest: r.reqs[0].made, written: true}
	for _, q := range r.reqs {
		if q.made.Before(g.oldest) {
			g.oldest = q.made
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addGroup(gid, g, r.refs())
}

// releaseRound gives back the blobs of a round that was not committed: its senders are told
// to retry, so no record will name them for those sessions (see ReleaseBlobs).
func (s *Spool) releaseRound(r *commitRound) {
	s.releaseHolds(r.refs())
}

// refs lists every blob the round's records name, once per naming attachment.
func (r *commitRound) refs() []string {
	var occ []string
	for _, q := range r.reqs {
		occ = append(occ, q.refs...)
	}
	return occ
}

// addGroup enters a pending group. The caller holds s.mu.
func (s *Spool) addGroup(gid string, g *group, occurrences []string) {
	s.groups[gid] = g
	s.usage.Records += g.records
	s.usage.RecordBytes += g.bytes
	s.indexRecord(gid, occurrences)
}

// forgetGroup takes a group that left records/ out of the index and the usage, adding to zero
// the blobs nothing names any more. The caller holds s.mu.
func (s *Spool) forgetGroup(gid string, zero *[]string) {
	g, ok := s.groups[gid]
	if !ok {
		return
	}
	delete(s.groups, gid)
	s.usage.Records -= g.records
	s.usage.RecordBytes -= g.bytes
	s.forgetRecordRefs(gid, zero)
}

// scanInBackground is the backlog above which Open lists group files by name and leaves
// reading them to a background scan. Reading 100,000 files first took 11 s on a cold cache,
// during which no mail was accepted; listing them takes a quarter second.
const scanInBackground = 1000

// scanRecords finds the group files in records/ and reads them, or, for a large backlog,
// leaves the reading to scanGroups.
func (s *Spool) scanRecords() error {
	dir := s.path(dirRecords)
	entries, err := os.ReadDir(dir) // sorted by name: ULIDs, so oldest first
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	var ids []string
	renamed := 0
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, brokenSuffix) {
			s.usage.Broken++
			continue
		}
		if id, ok := groupID(name); ok && e.Type().IsRegular() {
			ids = append(ids, id)
			continue
		}
		s.log.Error("spool: unexpected entry in records directory", "file", name)
		if s.setAside(name) {
			renamed++
		}
	}
	if len(ids) > scanInBackground {
		// Counted as one record each until read, so the status page is not blank meanwhile.
		s.usage.Records += len(ids)
		s.toScan = ids
	} else {
		for _, id := range ids {
			if s.loadGroup(id, false) {
				renamed++
			}
		}
	}
	if renamed > 0 {
		if err := atomicfile.SyncDir(dir); err != nil {
			// The renames may be forgotten by a crash; the next Open redoes them.
			s.log.Warn("spool: could not make broken-file renames durable", "error", err)
		}
	}
	return nil
}

// loadGroup reads a group file found at Open and enters it, or sets it aside when none of it
// can be read. A group with some unreadable lines is entered with the readable ones; FormBatch
// delivers those and then sets the file aside. placeholder says the group was counted as one
// record by Open (see scanRecords), which is taken back. It reports whether it set the file
// aside.
func (s *Spool) loadGroup(gid string, placeholder bool) (setAside bool) {
	name := gid + groupExt
	data, err := os.ReadFile(s.path(dirRecords, name))
	var g *group
	var occ []string
	if err == nil {
		var bad int
		g, occ, bad = parseGroup(gid, data)
		if bad > 0 && g.records > 0 {
			s.log.Error("spool: record file has unreadable lines; the rest will be delivered",
				"file", name, "unreadable_lines", bad, "records", g.records)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if placeholder {
		s.usage.Records--
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false // removed by hand since it was listed
	case g == nil || g.records == 0:
		s.log.Error("spool: unreadable record file", "file", name, "error", errOrInvalid(err))
		return s.setAside(name)
	}
	s.addGroup(gid, g, occ)
	return false
}

// parseGroup counts the readable lines of a group file and the blobs they name. The group's
// oldest time comes from its records' ids, or from its own id when none can be read.
func parseGroup(gid string, data []byte) (g *group, occurrences []string, bad int) {
	g = &group{bytes: int64(len(data))}
	eachGroupLine(data, func(line []byte, ok bool) {
		if !ok {
			bad++
			return
		}
		g.records++
		occurrences = append(occurrences, lineRefs(line)...)
		if t, ok := lineTime(line); ok && (g.oldest.IsZero() || t.Before(g.oldest)) {
			g.oldest = t
		}
	})
	if g.oldest.IsZero() {
		g.oldest = idTime(gid)
	}
	return g, occurrences, bad
}

// eachGroupLine calls fn with each line of a group file, "\n" included, and whether it is a
// valid record line. A last line without "\n" is a torn write's remains, which the durable
// sequence should make impossible: it is reported invalid, never delivered.
func eachGroupLine(data []byte, fn func(line []byte, ok bool)) {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		var line []byte
		if i < 0 {
			line, data = data, nil
		} else {
			line, data = data[:i+1], data[i+1:]
		}
		fn(line, validLine(line))
	}
}

// idPrefix is `{"id":"`, with which every record the sensor writes begins; lineTime reads the
// id there rather than decoding the line.
var idPrefix = []byte(`{"id":"`)

// lineTime is when the record on line was made, from its id, if the line starts with one.
func lineTime(line []byte) (time.Time, bool) {
	rest, ok := bytes.CutPrefix(line, idPrefix)
	if !ok || len(rest) < ulid.EncodedSize {
		return time.Time{}, false
	}
	u, err := ulid.ParseStrict(string(rest[:ulid.EncodedSize]))
	if err != nil {
		return time.Time{}, false
	}
	return u.Timestamp(), true
}

// idTime is when a ULID was made; the zero time if id is not one.
func idTime(id string) time.Time {
	u, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}
	}
	return u.Timestamp()
}

// scanGroups reads the group files Open only listed, oldest first, and makes each pending as
// it goes, waking the uploader now and then so a backlog starts draining while it is read.
// Once done, the blob index is complete and unneeded blobs may go.
func (s *Spool) scanGroups(ids []string) {
	defer close(s.scanDone)
	renamed := 0
	for i, id := range ids {
		if s.loadGroup(id, true) {
			renamed++
		}
		if i%256 == 255 {
			s.wake()
		}
	}
	if renamed > 0 {
		if err := atomicfile.SyncDir(s.path(dirRecords)); err != nil {
			s.log.Warn("spool: could not make broken-file renames durable", "error", err)
		}
	}
	s.log.Info("spool: backlog scanned", "files", len(ids))
	s.mu.Lock()
	s.refsReady = true
	s.mu.Unlock()
	s.wake()
	s.SweepBlobs()
}

// wake tells the uploader there is something to batch. A wake-up already pending stands for
// this one too: the uploader lists what is pending when it wakes.
func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// groupID returns the id in a group file name, if the name is one Commit would write.
func groupID(name string) (string, bool) {
	id, ok := strings.CutSuffix(name, groupExt)
	return id, ok && validID(id)
}

// setAside renames a file in records/ to *.broken so it stops blocking batches but stays for
// an operator to look at. It reports whether the rename happened. The caller holds s.mu or is
// Open.
func (s *Spool) setAside(name string) bool {
	dir := s.path(dirRecords)
	if err := s.fs.Rename(filepath.Join(dir, name), filepath.Join(dir, name+brokenSuffix)); err != nil {
		s.log.Error("spool: could not set aside broken record file", "file", name, "error", err)
		return false
	}
	s.usage.Broken++
	s.log.Warn("spool: set aside broken record file", "file", name+brokenSuffix)
	return true
}

// Pending lists the commit groups not yet in a batch, oldest first. A group whose Commit has
// not returned yet is not listed: its records may still be withdrawn. With a large backlog
// at Open, groups are listed as the background scan reads them.
func (s *Spool) Pending() ([]Entry, error) {
	s.mu.Lock()
	out := make([]Entry, 0, len(s.groups))
	for id, g := range s.groups {
		out = append(out, Entry{ID: id, Records: g.records, Bytes: g.bytes, Oldest: g.oldest})
	}
	s.mu.Unlock()
	// Group ids are ULIDs made in commit order, so this is arrival order.
	slices.SortFunc(out, func(a, b Entry) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// OldestPending is when the oldest record not yet in a batch was made; zero when none waits.
// It copies nothing: /metrics and /status ask for it while a backlog may hold a million
// groups, under the lock commits take.
func (s *Spool) OldestPending() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest time.Time
	for _, g := range s.groups {
		if oldest.IsZero() || g.oldest.Before(oldest) {
			oldest = g.oldest
		}
	}
	return oldest
}

// FormBatch gathers the given pending groups into a new batch file and removes them from
// records/. Groups no longer pending are skipped. A file with unreadable lines gives the batch
// its readable ones and is then set aside as *.broken. It returns a zero Batch if nothing
// could be used.
//
// The batch is durable before any group file is removed. Removing them is then best effort:
// a group left behind is sent again in a later batch, a duplicate the pipeline drops, so a
// failure there is logged rather than returned.
func (s *Spool) FormBatch(entries []Entry) (Batch, error) {
	dir := s.path(dirRecords)
	var buf bytes.Buffer
	var used, damaged, vanished []string
	var refs []string // blobs the used records name, repeats included until sorted out
	records := 0
	for _, e := range entries {
		s.mu.Lock()
		g, ok := s.groups[e.ID]
		var gRefs []string
		if ok {
			gRefs = s.recRefs[e.ID]
		}
		s.mu.Unlock()
		if !ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.ID+groupExt))
		if err == nil && g.written && int64(len(data)) == g.bytes {
			// Checked line by line before it was written: json.Valid again here cost 10% of a
			// backlog's drain.
			buf.Write(data)
			records += g.records
			refs = append(refs, gRefs...)
			used = append(used, e.ID)
			continue
		}
		if errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool: pending record file is gone; removed by hand?", "group", e.ID)
			vanished = append(vanished, e.ID)
			continue
		}
		if err != nil {
			s.log.Error("spool: unreadable record file", "group", e.ID, "error", err)
			damaged = append(damaged, e.ID)
			continue
		}
		n, bad := 0, 0
		eachGroupLine(data, func(line []byte, ok bool) {
			if !ok {
				bad++
				return
			}
			n++
			buf.Write(line)
			refs = append(refs, lineRefs(line)...)
		})
		records += n
		if n > 0 {
			used = append(used, e.ID)
		}
		if bad > 0 || n == 0 {
			s.log.Error("spool: record file has unreadable lines; setting it aside after batching the rest",
				"group", e.ID, "unreadable_lines", bad, "records", n)
			damaged = append(damaged, e.ID)
		}
	}

	var b Batch
	if records > 0 {
		var err error
		if b, err = s.writeBatch(buf.Bytes(), records, distinct(refs)); err != nil {
			return Batch{}, fmt.Errorf("spool: form batch: %w", err)
		}
	}

	var zero []string // blobs nothing names any more
	defer func() { s.dropBlobs(zero) }()
	gone := vanished
	for _, id := range used {
		if slices.Contains(damaged, id) {
			continue
		}
		if err := s.fs.Remove(filepath.Join(dir, id+groupExt)); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("spool: batched records not removed; they will be sent twice", "group", id, "batch", b.ID, "error", err)
			continue
		}
		gone = append(gone, id)
	}
	s.mu.Lock()
	for _, id := range damaged {
		s.setAside(id + groupExt)
		gone = append(gone, id) // set aside or vanished: either way not pending
	}
	for _, id := range gone {
		s.forgetGroup(id, &zero)
	}
	s.mu.Unlock()
	if len(gone) > 0 {
		if err := s.fs.SyncDir(dir); err != nil {
			s.log.Warn("spool: record removals not durable; a crash would send them twice", "batch", b.ID, "error", err)
		}
	}
	return b, nil
}
