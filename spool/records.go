package spool

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/wal"
)

// Bounds on one commit group. A group is taken whole into a batch, so keeping it well under
// the uploader's batch bounds (500 records, 4 MiB by default) keeps batches near their size.
// A record larger than maxGroupBytes still commits, in a group of its own.
const (
	maxGroupRecords = 128
	maxGroupBytes   = 1 << 20
)

// reopenEvery bounds how often a commit retries opening the log after a failure: Open reads
// every segment, too much to redo for each sender's retry while a disk stays broken.
const reopenEvery = time.Second

// group is a run of consecutive records in one log segment, not yet in a batch: the records
// of one group commit, or, for what Open found, up to a group's bounds of consecutive ones.
type group struct {
	pos     wal.Position // the first record's
	records int
	bytes   int64     // as NDJSON: each record and its "\n"
	oldest  time.Time // when the oldest of its records was made (its id's time)
	batched bool      // taken into a batch; leaves s.groups once all before it have too
}

func (g *group) id() string { return g.pos.String() }

// full reports whether one more record of n NDJSON bytes would take g past a group's bounds.
func (g *group) full(n int64) bool {
	return g.records >= maxGroupRecords || g.bytes+n > maxGroupBytes
}

// add counts rec, a record without its newline, in g.
func (g *group) add(rec []byte) {
	g.records++
	g.bytes += int64(len(rec)) + 1
	if t, ok := lineTime(rec); ok && (g.oldest.IsZero() || t.Before(g.oldest)) {
		g.oldest = t
	}
}

// Entry is one pending commit group: consecutive records in the log.
type Entry struct {
	ID      string    // the group's log position, "segment:offset"
	Records int       // records in it
	Bytes   int64     // their size as NDJSON lines, "\n" included
	Oldest  time.Time // when its oldest record was made, from the record ids
}

// parsePosition reads an Entry's ID back.
func parsePosition(id string) (wal.Position, bool) {
	seg, off, ok := strings.Cut(id, ":")
	if !ok {
		return wal.Position{}, false
	}
	sg, err1 := strconv.ParseUint(seg, 10, 64)
	of, err2 := strconv.ParseInt(off, 10, 64)
	return wal.Position{Segment: sg, Offset: of}, err1 == nil && err2 == nil && of >= 0
}

// Commit makes one record durable: when it returns nil, the record is in the log and its
// segment fdatasync'd, and the SMTP session may answer 250. id is the record's id, a
// canonical ULID, and line one JSON object on one line (a trailing "\n" is allowed). On error
// the record is not acknowledged and the session answers 451, and the blobs the line names
// are given back as ReleaseBlobs does.
//
// Concurrent Commits share one append (group commit): whoever finds no commit running writes
// the records of everyone who joined so far and fdatasyncs once, and wakes them all with the
// same result. So n sessions committing at once cost one fdatasync, not n, and throughput
// rises with concurrency instead of being capped at one fdatasync per message. Commit never
// fails for lack of budget: the budget is checked earlier, by Reserve.
func (s *Spool) Commit(id string, line []byte) error {
	if !validID(id) {
		s.releaseHolds(lineRefs(line))
		return fmt.Errorf("spool: commit: record id %q is not a ULID", id)
	}
	// The log frames each record, so the NDJSON newline is not stored; taking it off here
	// rather than adding one spares a copy of every record.
	line = bytes.TrimSuffix(line, []byte("\n"))
	if !validRecord(line) {
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

// commitGroup appends one round of commits to the log and enters it in the index once the
// append is durable: until then Pending does not list it, so no batch can take a record
// whose sender may still be told to retry. Rounds run one at a time (commitQueue), so groups
// enter the index in log order.
func (s *Spool) commitGroup(r *commitRound) error {
	recs := make([][]byte, len(r.reqs))
	for i, q := range r.reqs {
		recs[i] = q.line
	}
	l, err := s.appendLog()
	if err != nil {
		s.releaseRound(r)
		return err
	}
	pos, err := l.Append(recs)
	if err != nil {
		if !errors.Is(err, wal.ErrTooLarge) && !errors.Is(err, wal.ErrEmptyRecord) {
			// The log refuses appends from now on (see wal's package doc); the next round
			// opens it again, which finds whatever of this round did reach the disk. A
			// refused round wrote nothing, and the log goes on.
			s.logMu.Lock()
			s.logBroken, s.logErr = true, err
			s.logMu.Unlock()
		}
		s.releaseRound(r)
		return err
	}
	g := &group{pos: pos, records: len(r.reqs), bytes: int64(r.bytes), oldest: r.reqs[0].made}
	for _, q := range r.reqs {
		if q.made.Before(g.oldest) {
			g.oldest = q.made
		}
	}
	s.mu.Lock()
	s.addGroup(g, r.refs())
	s.end = wal.Position{Segment: pos.Segment, Offset: pos.Offset + framed(recs)}
	s.mu.Unlock()
	s.wake()
	return nil
}

// framed is the log space records take: each one's bytes and frame header.
func framed(recs [][]byte) int64 {
	n := int64(0)
	for _, r := range recs {
		n += wal.HeaderBytes + int64(len(r))
	}
	return n
}

// appendLog returns the log to append to, first opening it again if an append failed: a
// failed write or fdatasync leaves the log refusing appends, and only a reopen, whose
// recovery reads what really reached the disk, makes it usable. Whatever of the failed round
// the reopen finds whole is indexed and delivered, though its senders were told to retry:
// duplicates under other record ids, never a loss.
func (s *Spool) appendLog() (*wal.Log, error) {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	if err := s.reopenLocked(); err != nil {
		return nil, err
	}
	return s.recs, nil
}

// reopenLocked opens the log again if an append failed, at most once per reopenEvery. The
// failed log stays in use for reading until a new one opens, so batching goes on meanwhile.
// The caller holds logMu for writing.
func (s *Spool) reopenLocked() error {
	if !s.logBroken {
		return nil
	}
	if time.Since(s.reopenedAt) < reopenEvery {
		return fmt.Errorf("log unusable since an earlier failure (reopened at most once a second): %w", s.logErr)
	}
	s.reopenedAt = time.Now()
	l, err := wal.Open(s.path(dirLog), s.walOpts)
	if err != nil {
		s.logErr = err
		return fmt.Errorf("reopen log after a failure: %w", err)
	}
	if err := s.recs.Close(); err != nil && !errors.Is(err, wal.ErrClosed) {
		s.log.Warn("spool: closing the failed log", "error", err)
	}
	s.recs, s.logBroken, s.logErr = l, false, nil
	s.mu.Lock()
	from := s.end
	s.mu.Unlock()
	found, err := s.scanLog(l, from)
	if err != nil {
		s.log.Error("spool: reading back the log after a failure", "error", err)
	}
	if found > 0 {
		s.log.Warn("spool: records of a failed commit reached the disk; they will be delivered although their senders were told to retry",
			"records", found)
	}
	s.log.Info("spool: log reopened after a failure")
	return nil
}

// scanLog indexes the log's records from from on as pending groups, and returns how many
// it found. A record that is not one JSON object (only a bug could write one: the CRC vouches
// for the bytes) is skipped and counted as broken.
func (s *Spool) scanLog(l *wal.Log, from wal.Position) (int, error) {
	var cur *group
	var curRefs []string
	var end wal.Position // just past the last record read
	found, bad := 0, 0
	// s.end moves only together with the groups it passes: a batch formed meanwhile takes
	// s.end as its watermark when nothing is pending, and the cursor must not pass a record
	// that is not indexed yet.
	flush := func() {
		s.mu.Lock()
		if cur != nil {
			s.addGroup(cur, curRefs)
		}
		s.end = end
		s.mu.Unlock()
		cur, curRefs = nil, nil
	}
	err := l.Scan(from, func(pos wal.Position, rec []byte) error {
		if !framedObject(rec) {
			bad++
			s.log.Error("spool: log record is not a JSON object; skipped", "position", pos.String())
			flush()
			end = wal.Position{Segment: pos.Segment, Offset: pos.Offset + wal.HeaderBytes + int64(len(rec))}
			flush()
			return nil
		}
		if cur != nil && (cur.pos.Segment != pos.Segment || cur.full(int64(len(rec))+1)) {
			flush()
		}
		end = wal.Position{Segment: pos.Segment, Offset: pos.Offset + wal.HeaderBytes + int64(len(rec))}
		if cur == nil {
			cur = &group{pos: pos}
		}
		cur.add(rec)
		curRefs = append(curRefs, lineRefs(rec)...)
		found++
		return nil
	})
	if cur != nil {
		flush()
	}
	if bad > 0 {
		s.mu.Lock()
		s.usage.Broken += bad
		s.mu.Unlock()
	}
	if err != nil {
		return found, fmt.Errorf("spool: read log: %w", err)
	}
	return found, nil
}

// framedObject is the test Open applies to each record it indexes: one line that starts and
// ends as a JSON object does, so a batch of them stays NDJSON. It is not json.Valid: the CRC
// already proves the bytes are what Commit wrote, and Commit checked them with json.Valid;
// running it again over a 100,000-record backlog held Open for 1.5 s instead of 0.4 s. A
// frame forged to pass the CRC with a broken object inside is refused by the pipeline, and
// the uploader's bisection then dead-letters that one record.
func framedObject(rec []byte) bool {
	// Two IndexByte calls, not ContainsAny: they are vectorised, and this runs over every
	// byte of a backlog.
	return len(rec) >= 2 && rec[0] == '{' && rec[len(rec)-1] == '}' &&
		bytes.IndexByte(rec, '\n') < 0 && bytes.IndexByte(rec, '\r') < 0
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

// addGroup enters a pending group at the end of s.groups. The caller holds s.mu.
func (s *Spool) addGroup(g *group, occurrences []string) {
	if g.oldest.IsZero() {
		g.oldest = time.Now() // no readable id: as new as can be, so max-age never drops it early
	}
	s.groups = append(s.groups, g)
	s.usage.Records += g.records
	s.usage.RecordBytes += g.bytes
	s.indexRecord(g.id(), occurrences)
}

// takeGroup marks a group as batched and takes it out of the usage and the index, adding to
// zero the blobs nothing names any more. The caller holds s.mu.
func (s *Spool) takeGroup(g *group, zero *[]string) {
	if g.batched {
		return
	}
	g.batched = true
	s.usage.Records -= g.records
	s.usage.RecordBytes -= g.bytes
	s.forgetRecordRefs(g.id(), zero)
}

// findGroup returns the pending group at pos. The caller holds s.mu.
func (s *Spool) findGroup(pos wal.Position) *group {
	i := sort.Search(len(s.groups), func(i int) bool { return !s.groups[i].pos.Before(pos) })
	if i < len(s.groups) && s.groups[i].pos == pos && !s.groups[i].batched {
		return s.groups[i]
	}
	return nil
}

// watermark drops the batched groups at the front of s.groups and returns the position
// before which every record is in a batch. The caller holds s.mu.
func (s *Spool) watermark() wal.Position {
	i := 0
	for i < len(s.groups) && s.groups[i].batched {
		i++
	}
	if i > 0 {
		clear(s.groups[:i])
		s.groups = s.groups[i:]
	}
	if len(s.groups) > 0 {
		return s.groups[0].pos
	}
	return s.end
}

// wake tells the uploader there is something to batch. A wake-up already pending stands for
// this one too: the uploader lists what is pending when it wakes.
func (s *Spool) wake() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Pending lists the commit groups not yet in a batch, oldest first. A group whose Commit has
// not returned yet is not listed: its records may still be withdrawn.
func (s *Spool) Pending() ([]Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Entry, 0, len(s.groups))
	for _, g := range s.groups {
		if !g.batched {
			out = append(out, Entry{ID: g.id(), Records: g.records, Bytes: g.bytes, Oldest: g.oldest})
		}
	}
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
		if !g.batched && (oldest.IsZero() || g.oldest.Before(oldest)) {
			oldest = g.oldest
		}
	}
	return oldest
}

// FormBatch gathers the given pending groups into a new batch file. Groups no longer pending
// are skipped. A group whose records cannot be read back (a disk error: the log checked every
// frame's CRC when it was opened) is logged, counted as broken and skipped. It returns a zero
// Batch if nothing could be used.
//
// The batch is durable before the log's cursor moves past its records, and the cursor is
// durable before any segment is deleted: a crash at any point can send a record twice (the
// pipeline deduplicates by record id) but never lose one.
func (s *Spool) FormBatch(entries []Entry) (Batch, error) {
	var buf bytes.Buffer
	s.logMu.RLock()
	l := s.recs
	var used, broken []*group
	var refs []string // blobs the used records name, repeats included until sorted out
	records := 0
	for _, e := range entries {
		pos, ok := parsePosition(e.ID)
		if !ok {
			continue // not one of ours: no such group is pending
		}
		s.mu.Lock()
		g := s.findGroup(pos)
		var gRefs []string
		if g != nil {
			gRefs = s.recRefs[g.id()]
		}
		s.mu.Unlock()
		if g == nil {
			continue
		}
		start := buf.Len()
		pos = g.pos
		var err error
		for range g.records {
			var rec []byte
			if rec, pos, err = l.Read(pos); err != nil {
				break
			}
			buf.Write(rec)
			buf.WriteByte('\n')
		}
		if errors.Is(err, wal.ErrCorrupt) {
			// Changed on disk since Open checked it: no retry will read it.
			s.log.Error("spool: records in the log cannot be read back; skipped", "group", g.id(),
				"records", g.records, "error", err)
			buf.Truncate(start)
			broken = append(broken, g)
			continue
		}
		if err != nil {
			s.logMu.RUnlock()
			return Batch{}, fmt.Errorf("spool: form batch: %w", err)
		}
		records += g.records
		refs = append(refs, gRefs...)
		used = append(used, g)
	}
	s.logMu.RUnlock()

	var b Batch
	if records > 0 {
		var err error
		if b, err = s.writeBatch(buf.Bytes(), records, distinct(refs)); err != nil {
			return Batch{}, fmt.Errorf("spool: form batch: %w", err)
		}
	}
	var zero []string // blobs nothing names any more
	s.mu.Lock()
	for _, g := range used {
		s.takeGroup(g, &zero)
	}
	for _, g := range broken {
		s.takeGroup(g, &zero)
		s.usage.Broken += g.records
	}
	mark := s.watermark()
	s.mu.Unlock()
	s.dropBlobs(zero)
	if len(used)+len(broken) > 0 {
		s.advance(mark)
	}
	return b, nil
}

// advance makes mark the log's durable cursor and deletes the segments wholly before it.
// Neither is needed for correctness, only to keep records from being sent again after a
// restart and to free disk, so failures are logged, not returned: the batch is already safe.
func (s *Spool) advance(mark wal.Position) {
	s.cursorMu.Lock()
	defer s.cursorMu.Unlock()
	if !s.cursorPos.Before(mark) {
		return
	}
	if err := s.writeCursor(mark); err != nil {
		s.log.Warn("spool: could not save how far the log is batched; a restart would send those records again",
			"position", mark.String(), "error", err)
		return
	}
	s.cursorPos = mark
	s.logMu.RLock()
	defer s.logMu.RUnlock()
	if segs := s.recs.Segments(); len(segs) > 1 && segs[0] < mark.Segment {
		if err := s.recs.Delete(mark.Segment); err != nil {
			s.log.Warn("spool: could not delete batched log segments; the next delivery retries", "error", err)
		}
	}
}

// writeCursor appends mark to the cursor log, reopening it first if an earlier write failed,
// and drops the cursor log's older segments once it has moved on to a new one. The caller
// holds s.cursorMu.
func (s *Spool) writeCursor(mark wal.Position) error {
	if s.cursorBroken {
		_ = s.cursor.Close() // failed already; its descriptors are all Close frees
		c, err := wal.Open(s.path(dirCursor), s.cursorOpts())
		if err != nil {
			return err
		}
		s.cursor, s.cursorBroken = c, false
	}
	if _, err := s.cursor.Append([][]byte{encodeCursor(mark)}); err != nil {
		s.cursorBroken = true
		return err
	}
	if segs := s.cursor.Segments(); len(segs) > 1 {
		if err := s.cursor.Delete(segs[len(segs)-1]); err != nil {
			s.log.Warn("spool: could not delete old cursor segments", "error", err)
		}
	}
	return nil
}

// cursorOpts sizes the cursor log: 16-byte records, thousands to a 64 KiB segment.
func (s *Spool) cursorOpts() wal.Options {
	return wal.Options{SegmentBytes: 64 << 10, InitialBytes: 64 << 10, FS: s.walOpts.FS}
}

// cursorFits reports whether cur is a record boundary of l: the start of a record or the end
// of the data, in a segment l has.
func cursorFits(l *wal.Log, cur wal.Position) bool {
	segs := l.Segments()
	if cur.Segment < segs[0] || cur.Segment > segs[len(segs)-1] {
		return false
	}
	_, _, err := l.Read(cur)
	return err == nil || errors.Is(err, io.EOF)
}

// openLog opens the record log and its cursor and indexes every record not yet batched.
// Segments before the cursor are deleted: a crash kept advance from doing it. Records the
// cursor covers were batched; the cursor only ever moves after their batch is durable.
func (s *Spool) openLog() error {
	c, err := wal.Open(s.path(dirCursor), s.cursorOpts())
	if err != nil {
		return fmt.Errorf("spool: open cursor: %w", err)
	}
	s.cursor = c
	err = c.Scan(wal.Position{}, func(_ wal.Position, rec []byte) error {
		if p, ok := decodeCursor(rec); ok {
			s.cursorPos = p
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("spool: read cursor: %w", err)
	}
	l, err := wal.Open(s.path(dirLog), s.walOpts)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	s.recs = l
	for _, d := range l.Damage() {
		s.usage.Broken++
		s.log.Error("spool: log segment damaged; records from this point of it cannot be read, and the segment is kept as .broken once the rest is delivered",
			"damage", d.String())
	}
	segs := l.Segments()
	from := s.cursorPos
	if from != (wal.Position{}) && !cursorFits(l, from) {
		// The cursor is not a record boundary of this log: the log was emptied, replaced or
		// restored by hand under a cursor that stayed. Trusting it could skip or delete
		// records it never covered, so the whole log is delivered again (duplicates, never
		// a loss), and the cursor is reset at once so that a crash cannot bring it back.
		s.log.Warn("spool: the log cursor does not fit the log; delivering the whole log again",
			"cursor", from.String(), "first_segment", segs[0], "last_segment", segs[len(segs)-1])
		from = wal.Position{}
		if _, err := s.cursor.Append([][]byte{encodeCursor(from)}); err != nil {
			return fmt.Errorf("spool: reset the log cursor: %w", err)
		}
		s.cursorPos = from
	}
	if from.Segment < segs[0] {
		from = wal.Position{Segment: segs[0]}
	}
	if segs[0] < from.Segment {
		if err := l.Delete(from.Segment); err != nil {
			s.log.Warn("spool: could not delete batched log segments", "error", err)
		}
	}
	s.end = from
	if _, err := s.scanLog(l, from); err != nil {
		return err
	}
	return nil
}

// eachGroupLine calls fn with each line of a legacy group file, "\n" included, and whether
// it is a valid record line. A last line without "\n" is a torn write's remains.
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
