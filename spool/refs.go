package spool

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"time"
)

// The reference index says which blobs pending records and batches name, so that a blob can
// leave blobs/ the moment nothing undelivered names it, without rereading the spool. It lives
// in memory only and is rebuilt by Open from the files themselves (record lines and batch
// headers), so a crash cannot leave it wrong: the files are the truth, the index a cache.
//
// Under s.mu:
//
//	refs[sum]       how many pending records and batches name blob sum (each counts once)
//	recRefs[id]     the blobs the records of group id name, for groups that name any
//	batchRefs[id]   the same for batches
//	holds[sum]      blob commits not yet matched by a record that names the blob
//
// A blob is unneeded, and removed, when refs is 0 and it has no live hold. The hold covers
// the moment between the parser committing an attachment's blob and the session committing
// the record that names it: without it, a batch delivered in that moment could take the
// blob's last reference and delete the bytes the new record is about to name. A session
// whose record will not be committed gives its holds back at once: ReleaseBlobs when it is
// refused after its blobs were committed, the spool itself when the record's commit fails.
// A hold whose record never comes for another reason (a crash of the session between the
// two) expires after holdTTL, and SweepBlobs then removes the blob if nothing names it.

// blobHold counts commits of one blob not yet matched by a record commit.
type blobHold struct {
	n  int
	at time.Time // the latest commit, on the monotonic clock
}

// maxExtraRefs is how many blob sums fit in a gzip header's extra field: XLEN is 16 bits
// (RFC 1952 §2.3.1.1) and our one subfield needs a 4-byte header of its own.
const maxExtraRefs = (0xffff - 4) / 32

// The subfield id of our blob list in a batch's gzip header ("JS": journal sensor).
const extraSI1, extraSI2 = 'J', 'S'

// encodeRefs packs sorted, distinct sums into a gzip extra subfield, or returns nil when
// there are none or too many to fit; the batch is then read when its blobs are asked for.
func encodeRefs(sums []string) []byte {
	if len(sums) == 0 || len(sums) > maxExtraRefs {
		return nil
	}
	data := make([]byte, 4, 4+32*len(sums))
	data[0], data[1] = extraSI1, extraSI2
	n := 32 * len(sums)
	data[2], data[3] = byte(n), byte(n>>8)
	for _, s := range sums {
		var err error
		if data, err = hex.AppendDecode(data, []byte(s)); err != nil {
			return nil // not a sum: lineRefs lets none through, so this is a bug; read lines instead
		}
	}
	return data
}

// decodeRefs finds our subfield in a gzip extra field and returns the sums in it. ok is false
// when the subfield is absent or malformed. The extra field is read back from disk, so it is
// walked with every length checked.
func decodeRefs(extra []byte) (sums []string, ok bool) {
	for len(extra) >= 4 {
		n := int(extra[2]) | int(extra[3])<<8
		if len(extra)-4 < n {
			return nil, false
		}
		data := extra[4 : 4+n]
		if extra[0] == extraSI1 && extra[1] == extraSI2 {
			if n%32 != 0 {
				return nil, false
			}
			for i := 0; i < n; i += 32 {
				sums = append(sums, hex.EncodeToString(data[i:i+32]))
			}
			return sums, true
		}
		extra = extra[4+n:]
	}
	return nil, false
}

// validSum reports whether s is a SHA-256 in lowercase hex, the only names blobs/ holds.
// Sums come from record lines too, so this is also what keeps a hostile value from becoming
// a path.
func validSum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

var blobKey = []byte(`"blob"`)

// lineRefs returns the blob sums a record line names in attachments[].blob, one per
// attachment (so a sum can repeat), skipping values that are not sums. Lines that cannot name
// a blob (the common case outside content mode) cost one substring search.
func lineRefs(line []byte) []string {
	if !bytes.Contains(line, blobKey) {
		return nil
	}
	var rec struct {
		Attachments []struct {
			Blob string `json:"blob"`
		} `json:"attachments"`
	}
	if json.Unmarshal(line, &rec) != nil {
		return nil
	}
	var out []string
	for _, a := range rec.Attachments {
		if validSum(a.Blob) {
			out = append(out, a.Blob)
		}
	}
	return out
}

// distinct returns the sorted distinct values of sums, nil when there are none.
func distinct(sums []string) []string {
	if len(sums) == 0 {
		return nil
	}
	out := slices.Clone(sums)
	slices.Sort(out)
	return slices.Compact(out)
}

// scanRefs reads gzip'd NDJSON and returns the distinct blobs its lines name. It reads what it
// can: a corrupt tail ends the scan, with what was found before it, and a line longer than
// maxLineBytes is skipped (the reference receiver refuses one anyway).
func scanRefs(r io.Reader) []string {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return nil
	}
	br := bufio.NewReaderSize(zr, 64<<10)
	var all []string
	var long []byte
	skipping := false
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping && len(long)+len(chunk) <= maxLineBytes {
				long = append(long, chunk...)
			} else {
				skipping, long = true, long[:0]
			}
			continue
		case skipping:
			skipping = false
		default:
			line := chunk
			if len(long) > 0 {
				line = append(long, chunk...)
			}
			if err == nil || errors.Is(err, io.EOF) {
				all = append(all, lineRefs(line)...)
			}
		}
		long = long[:0]
		if err != nil {
			return distinct(all)
		}
	}
}

// addRefs counts one more pending record or batch naming each of sums (distinct). The caller
// holds s.mu.
func (s *Spool) addRefs(sums []string) {
	for _, sum := range sums {
		s.refs[sum]++
	}
}

// dropRefs counts one fewer and appends to zero the sums no longer named at all. The caller
// holds s.mu.
func (s *Spool) dropRefs(sums []string, zero *[]string) {
	for _, sum := range sums {
		n := s.refs[sum] - 1
		if n > 0 {
			s.refs[sum] = n
			continue
		}
		delete(s.refs, sum)
		*zero = append(*zero, sum)
	}
}

// forgetRecordRefs takes a record that left records/ out of the index. The caller holds s.mu.
func (s *Spool) forgetRecordRefs(id string, zero *[]string) {
	if sums, ok := s.recRefs[id]; ok {
		delete(s.recRefs, id)
		s.dropRefs(sums, zero)
	}
}

// indexRecord enters a committed record's blobs. occurrences is what lineRefs returned: each
// one settles a hold, since the parser commits one blob per attachment that names it. The
// caller holds s.mu.
func (s *Spool) indexRecord(id string, occurrences []string) {
	sums := distinct(occurrences)
	if sums == nil {
		return
	}
	s.recRefs[id] = sums
	s.addRefs(sums)
	for _, sum := range occurrences {
		s.unhold(sum)
	}
}

// indexBatch enters a batch's blobs. The caller holds s.mu.
func (s *Spool) indexBatch(id string, sums []string) {
	if len(sums) == 0 {
		return
	}
	s.batchRefs[id] = sums
	s.addRefs(sums)
}

// forgetBatchRefs takes a batch that left batches/ out of the index. The caller holds s.mu.
func (s *Spool) forgetBatchRefs(id string, zero *[]string) {
	if sums, ok := s.batchRefs[id]; ok {
		delete(s.batchRefs, id)
		s.dropRefs(sums, zero)
	}
}

func (s *Spool) hold(sum string) {
	h := s.holds[sum]
	if h == nil {
		h = &blobHold{}
		s.holds[sum] = h
	}
	h.n++
	h.at = time.Now()
}

func (s *Spool) unhold(sum string) {
	h := s.holds[sum]
	if h == nil {
		return
	}
	if h.n--; h.n <= 0 {
		delete(s.holds, sum)
	}
}

// unneeded reports whether blob sum may be removed: it is on disk, nothing pending names it,
// and no live hold keeps it. An expired hold is dropped here. The caller holds s.mu.
func (s *Spool) unneeded(sum string, now time.Time) bool {
	if _, ok := s.blobs[sum]; !ok || s.refs[sum] > 0 {
		return false
	}
	if h := s.holds[sum]; h != nil {
		if now.Sub(h.at) < s.holdTTL {
			return false
		}
		delete(s.holds, sum)
	}
	return true
}
