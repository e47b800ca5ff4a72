package uploader

import (
	"crypto/rand"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

// OldestPendingAt is the making time of the oldest record not yet delivered, whether it still
// sits in a commit group or already in a batch, and zero once everything is delivered.
func TestStatsOldestPendingAt(t *testing.T) {
	f := newFixture(t)
	u := f.newUploader(f.config(outboxURL(filepath.Join(t.TempDir(), "outbox"))))
	if got := u.Stats().OldestPendingAt; !got.IsZero() {
		t.Fatalf("empty spool: OldestPendingAt = %v, want zero", got)
	}
	commitMade := func(made time.Time) time.Time {
		t.Helper()
		id := ulid.MustNew(ulid.Timestamp(made), rand.Reader)
		if err := f.sp.Commit(id.String(), fmt.Appendf(nil, `{"schema":"sensor.record/v1","id":%q}`, id)); err != nil {
			t.Fatal(err)
		}
		return id.Timestamp()
	}
	hourAgo := commitMade(time.Now().Add(-time.Hour))
	if got := u.Stats().OldestPendingAt; !got.Equal(hourAgo) {
		t.Errorf("one pending record: OldestPendingAt = %v, want %v", got, hourAgo)
	}

	// Batched, it still counts, and a newer pending record does not hide it.
	pending, err := f.sp.Pending()
	if err != nil {
		t.Fatal(err)
	}
	if b, err := f.sp.FormBatch(pending); err != nil || b.ID == "" {
		t.Fatalf("FormBatch: %+v, %v", b, err)
	}
	commitMade(time.Now())
	if s := u.Stats(); !s.OldestPendingAt.Equal(hourAgo) || s.PendingBatches != 1 {
		t.Errorf("batch of an hour ago, record of now: OldestPendingAt = %v (%d batches), want %v", s.OldestPendingAt, s.PendingBatches, hourAgo)
	}
	// A slow message made before the batch's record, committed after it, is older still.
	twoHoursAgo := commitMade(time.Now().Add(-2 * time.Hour))
	if got := u.Stats().OldestPendingAt; !got.Equal(twoHoursAgo) {
		t.Errorf("pending record of two hours ago: OldestPendingAt = %v, want %v", got, twoHoursAgo)
	}

	f.run(u)
	waitFor(t, "everything delivered", func() bool {
		s := u.Stats()
		return s.RecordsDelivered == 3 && s.PendingRecords == 0 && s.PendingBatches == 0
	})
	if got := u.Stats().OldestPendingAt; !got.IsZero() {
		t.Errorf("all delivered: OldestPendingAt = %v, want zero", got)
	}
}
