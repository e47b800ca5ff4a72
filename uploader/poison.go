package uploader

import (
	"fmt"

	"github.com/journalsensor/sensor/spool"
)

// reject handles a batch the pipeline refused for good (400, 413, 422, or an outbox batch that
// cannot be decompressed). A batch of one record goes to the dead-letter folder. A larger one
// is split in two and the parts, returned in order, are delivered in its place: a refused part
// is split again, so one bad record among n costs about 2·log2(n) more requests, and only the
// refused records end up as dead letters.
func (u *Uploader) reject(b spool.Batch, v verdict) ([]spool.Batch, error) {
	if b.Records == 1 {
		return nil, u.deadLetter(b, v, "pipeline refused a record; moving it to the dead-letter folder")
	}
	parts, complete, err := u.sp.SplitBatch(b.ID)
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
	u.log.Error(msg, "batch", b.ID, "records", b.Records, "bytes", b.Bytes, "first_record", u.sp.FirstRecordID(b.ID),
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
