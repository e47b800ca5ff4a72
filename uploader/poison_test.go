package uploader

import (
	"bytes"
	"compress/gzip"
	"context"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/spool"
)

// checkDelivery checks what a bisection must end with: the receiver stored every good record
// exactly once, each dead letter holds exactly one record and it is a bad one, every bad record
// is dead-lettered, and the spool holds nothing more (its usage counters included).
func checkDelivery(t *testing.T, f *fixture, r *refReceiver, lines []string, bad func(int) bool) {
	t.Helper()
	var good, poison []string
	for i, l := range lines {
		if bad(i) {
			poison = append(poison, l)
		} else {
			good = append(good, l)
		}
	}
	stored := r.stored(t)
	if len(stored) != len(good) {
		t.Errorf("receiver stored %d records, want the %d good ones", len(stored), len(good))
	}
	if a, b := slices.Sorted(slices.Values(stored)), slices.Sorted(slices.Values(good)); !slices.Equal(a, b) {
		t.Errorf("receiver stored other records than the good ones")
	}
	dead := map[string]bool{}
	for name, recs := range f.deadLetters() {
		if len(recs) != 1 {
			t.Errorf("dead letter %s holds %d records, want exactly one", name, len(recs))
		}
		for _, l := range recs {
			if !slices.Contains(poison, l) {
				t.Errorf("dead letter %s holds a good record: %.80s", name, l)
			}
			dead[l] = true
		}
	}
	for _, l := range poison {
		if !dead[l] {
			t.Errorf("bad record not in the dead-letter folder: %.80s", l)
		}
	}
	if us := f.sp.Usage(); us.Records != 0 || us.Batches != 0 || us.RecordBytes != 0 || us.BatchBytes != 0 {
		t.Errorf("spool usage = %+v, want empty", us)
	}
	for _, sub := range []string{"batches", "tmp"} {
		if left := entries(t, filepath.Join(f.dir, sub)); len(left) != 0 {
			t.Errorf("%s/ = %v, want empty", sub, left)
		}
	}
	n := 0
	if _, err := spool.ScanRecords(f.dir, true, func(spool.ScannedRecord) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("records still pending in the spool's log: %d, %v; want none", n, err)
	}
}

func TestBisectionIsolatesOneBadRecord(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	cfg := f.httpsConfig(r)
	cfg.BatchMaxRecords = 64
	u := f.newUploader(cfg)
	bad := func(i int) bool { return i == 37 }
	_, lines := f.commitRecords(64, time.Now(), bad)
	f.run(u)
	waitFor(t, "the bad record dead-lettered and the rest delivered", func() bool {
		s := u.Stats()
		return s.RecordsDeadLettered == 1 && s.RecordsDelivered == 63
	})
	checkDelivery(t, f, r, lines, bad)

	// By hand: the whole batch (1), then at each of the log2(64) = 6 levels both halves, one
	// accepted and one refused, down to the refused single record: 1 + 2·6 = 13 requests.
	keys, status, protos := r.seen()
	if len(keys) != 13 {
		t.Errorf("receiver saw %d requests, want 13 (statuses %v)", len(keys), status)
	}
	if n := len(slices.Compact(slices.Sorted(slices.Values(keys)))); n != len(keys) {
		t.Errorf("%d distinct Idempotency-Keys over %d requests, want one per batch", n, len(keys))
	}
	refused := 0
	for i, s := range status {
		if s == http.StatusUnprocessableEntity {
			refused++
		}
		if protos[i] != 2 {
			t.Errorf("request %d used HTTP/%d, want HTTP/2", i, protos[i])
		}
	}
	if refused != 7 { // the whole batch and the six halves holding record 37
		t.Errorf("%d refused requests, want 7", refused)
	}
	s := u.Stats()
	if s.BatchesSplit != 6 || s.BatchesDeadLettered != 1 || s.RecordsExpired != 0 {
		t.Errorf("stats = %+v, want 6 splits and one dead letter", s)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "pipeline refused a record; moving it to the dead-letter folder") ||
		!strings.Contains(logs, "not-a-kind") && !strings.Contains(logs, "source") {
		t.Errorf("the log does not say which record was refused and why:\n%s", logs)
	}
}

func TestBisectionFindsSeveralBadRecords(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, false)
	cfg := f.httpsConfig(r)
	cfg.BatchMaxRecords = 100
	u := f.newUploader(cfg)
	bad := func(i int) bool { return i == 0 || i == 50 || i == 51 || i == 99 }
	_, lines := f.commitRecords(100, time.Now(), bad)
	f.run(u)
	waitFor(t, "every record settled", func() bool {
		s := u.Stats()
		return s.RecordsDeadLettered+s.RecordsDelivered == 100 && s.PendingBatches == 0
	})
	checkDelivery(t, f, r, lines, bad)
	// Each bad record costs at most two requests per level, and there are ceil(log2 100) = 7
	// levels: at most 1 + 4·2·7 = 57 requests, against 100 for sending each record alone.
	keys, _, _ := r.seen()
	if bound := 1 + 4*2*int(math.Ceil(math.Log2(100))); len(keys) > bound {
		t.Errorf("receiver saw %d requests, want at most %d", len(keys), bound)
	}
}

// judged answers a request by what it carries: status when any line contains marker, else 200.
func judged(marker string, status int) *pipeline {
	p := &pipeline{}
	p.judge = func(r request) int {
		for _, l := range r.lines {
			if strings.Contains(l, marker) {
				return status
			}
		}
		return http.StatusOK
	}
	return p
}

func TestTooLargeRecordIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	p := judged("HUGE", http.StatusRequestEntityTooLarge)
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	cfg.BatchMaxRecords = 5
	u := f.newUploader(cfg)
	lines := f.commit(2)
	huge := `{"schema":"sensor.record/v1","id":"x","pad":"HUGE"}` + "\n"
	if err := f.sp.Commit(ulid.Make().String(), []byte(huge)); err != nil { // sorts after the ones before
		t.Fatal(err)
	}
	lines = append(lines, huge)
	lines = append(lines, f.commit(2)...)
	f.run(u)
	waitFor(t, "the huge record dead-lettered", func() bool {
		s := u.Stats()
		return s.RecordsDeadLettered == 1 && s.RecordsDelivered == 4
	})
	dead := f.deadLetters()
	if len(dead) != 1 {
		t.Fatalf("dead letters = %v, want one", dead)
	}
	for _, recs := range dead {
		if !slices.Equal(recs, []string{huge}) {
			t.Errorf("dead letter = %q, want the huge record alone", recs)
		}
	}
	// By hand, 5 records with the bad one third, a part of n taking the first ceil(n/2):
	// [0-4] refused, [0-2] refused, [0-1] ok, [2] refused and dead-lettered, [3-4] ok: 5.
	if n := p.count(); n != 5 {
		t.Errorf("pipeline saw %d requests, want 5", n)
	}
	var got []string
	reqs, _ := p.seen()
	for _, r := range reqs {
		if r.status == http.StatusOK {
			got = append(got, r.lines...)
		}
	}
	want := slices.Delete(slices.Clone(lines), 2, 3)
	if !slices.Equal(got, want) {
		t.Errorf("delivered %q\nwant in order %q", got, want)
	}
}

func TestSingleRefusedRecordCostsOneRequest(t *testing.T) {
	f := newFixture(t)
	p := judged("HUGE", http.StatusRequestEntityTooLarge)
	srv, ca := startPipeline(t, p, true)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	u := f.newUploader(cfg)
	if err := f.sp.Commit(idAt(time.Now()), []byte(`{"pad":"HUGE"}`)); err != nil {
		t.Fatal(err)
	}
	f.run(u)
	waitFor(t, "the record dead-lettered", func() bool { return u.Stats().RecordsDeadLettered == 1 })
	if n := p.count(); n != 1 {
		t.Errorf("pipeline saw %d requests, want 1", n)
	}
	if s := u.Stats(); s.BatchesSplit != 0 {
		t.Errorf("stats = %+v, want no split", s)
	}
}

// A crash can stop a bisection between any two of its steps. Each test below builds the spool
// such a crash leaves, then checks a fresh uploader finishes the job losing nothing.
func TestBisectionResumesAfterCrash(t *testing.T) {
	bad := func(i int) bool { return i == 5 }
	for _, tc := range []struct {
		name  string
		crash func(t *testing.T, sp *spool.Spool, whole spool.Batch, ids, lines []string)
	}{
		{"after re-spooling the records", func(t *testing.T, sp *spool.Spool, _ spool.Batch, ids, lines []string) {
			recommit(t, sp, ids, lines)
		}},
		{"after forming the parts", func(t *testing.T, sp *spool.Spool, _ spool.Batch, ids, lines []string) {
			recommit(t, sp, ids, lines)
			formPending(t, sp, 4)
		}},
		{"after deleting the whole batch", func(t *testing.T, sp *spool.Spool, whole spool.Batch, ids, lines []string) {
			recommit(t, sp, ids, lines)
			formPending(t, sp, 4)
			if err := sp.DeleteBatch(whole.ID); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			r := startReceiver(t, false)
			ids, lines := f.commitRecords(8, time.Now(), bad)
			whole := formPending(t, f.sp)[0]
			tc.crash(t, f.sp, whole, ids, lines)

			// The restart: the spool opened afresh, so its counters come from the disk.
			sp, err := spool.Open(f.dir, f.log)
			if err != nil {
				t.Fatal(err)
			}
			f.sp = sp
			u := f.newUploader(f.httpsConfig(r))
			f.run(u)
			waitFor(t, "every record settled", func() bool {
				s := u.Stats()
				return s.RecordsDeadLettered >= 1 && s.PendingBatches == 0 && s.PendingRecords == 0 &&
					len(r.stored(t)) == 7
			})
			checkDelivery(t, f, r, lines, bad)
		})
	}
}

// recommit commits the records again under their own ids, as a split does.
func recommit(t *testing.T, sp *spool.Spool, ids, lines []string) {
	t.Helper()
	for i, id := range ids {
		if err := sp.Commit(id, []byte(lines[i])); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBisectionInterruptedThenResumed(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	cfg := f.httpsConfig(r)
	cfg.BatchMaxRecords = 32
	bad := func(i int) bool { return i == 3 || i == 20 }
	_, lines := f.commitRecords(32, time.Now(), bad)

	// Stop the first run in the middle of the bisection: after its fourth request.
	u := f.newUploader(cfg)
	stop := f.run(u)
	waitFor(t, "a bisection under way", func() bool { keys, _, _ := r.seen(); return len(keys) >= 4 })
	stop()

	sp, err := spool.Open(f.dir, f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.sp = sp
	u = f.newUploader(cfg)
	f.run(u)
	waitFor(t, "every record settled", func() bool {
		s := u.Stats()
		return s.PendingBatches == 0 && s.PendingRecords == 0 && len(r.stored(t)) == 30 &&
			len(f.deadLetters()) >= 2
	})
	checkDelivery(t, f, r, lines, bad)
}

func TestTruncatedBatchIsRescued(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, false)
	ids := make([]string, 6)
	var lines []string
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	flushedAt := 0
	for i := range ids {
		ids[i] = idAt(time.Now())
		lines = append(lines, string(sampleRecord(t, ids[i], i, false))+"\n")
		if _, err := zw.Write([]byte(lines[i])); err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			// A sync flush: the first three records can be decoded whatever follows.
			if err := zw.Flush(); err != nil {
				t.Fatal(err)
			}
			flushedAt = buf.Len()
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	// Cut inside the data after the flush: the file ends early, as a torn write would leave it.
	cut := buf.Bytes()[:flushedAt+(buf.Len()-flushedAt)/2]
	batchID := idAt(time.Now())
	if err := os.WriteFile(filepath.Join(f.dir, "batches", batchID+".ndjson.gz"), cut, 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(f.dir, f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.sp = sp
	u := f.newUploader(f.httpsConfig(r))
	f.run(u)
	waitFor(t, "the readable records delivered and the file kept", func() bool {
		s := u.Stats()
		return s.BatchesDeadLettered == 1 && s.PendingBatches == 0 && s.PendingRecords == 0
	})

	stored := r.stored(t)
	if len(stored) < 3 {
		t.Errorf("receiver stored %d records, want at least the 3 before the flush", len(stored))
	}
	for i, l := range stored {
		if i >= len(lines) || l != lines[i] {
			t.Errorf("stored record %d is not the batch's record %d", i, i)
		}
	}
	if got := entries(t, filepath.Join(f.dir, "deadletter")); !slices.Equal(got, []string{batchID + ".ndjson.gz"}) {
		t.Errorf("deadletter/ = %v, want the truncated file kept as it was", got)
	}
	if s := u.Stats(); s.BatchesSplit != 1 {
		t.Errorf("stats = %+v, want one split", s)
	}
}

func TestUnreadableRefusedBatchIsDeadLettered(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, false)
	batchID := idAt(time.Now())
	if err := os.WriteFile(filepath.Join(f.dir, "batches", batchID+".ndjson.gz"), []byte("not gzip at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := spool.Open(f.dir, f.log)
	if err != nil {
		t.Fatal(err)
	}
	f.sp = sp
	u := f.newUploader(f.httpsConfig(r))
	f.run(u)
	waitFor(t, "the batch dead-lettered", func() bool { return u.Stats().BatchesDeadLettered == 1 })
	if got := entries(t, filepath.Join(f.dir, "deadletter")); !slices.Equal(got, []string{batchID + ".ndjson.gz"}) {
		t.Errorf("deadletter/ = %v", got)
	}
	if keys, _, _ := r.seen(); len(keys) != 1 {
		t.Errorf("receiver saw %d requests, want 1", len(keys))
	}
}

func TestRefusedBatchKeptWhenSplitFails(t *testing.T) {
	// A refused batch whose split fails (the spool's disk refuses writes) is kept whole, and
	// deliver reports the error so that Run backs off.
	f := newFixture(t)
	p := &pipeline{judge: func(request) int { return http.StatusBadRequest }}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	u := f.newUploader(cfg)
	f.commit(4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b := formPending(t, f.sp)[0]
	// A file where the spool's tmp/ should be: every write fails, even as root.
	tmp := filepath.Join(f.dir, "tmp")
	if err := os.Remove(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err := u.deliver(ctx, b)
	if err == nil {
		t.Fatal("deliver succeeded with an unwritable spool")
	}
	if got := entries(t, filepath.Join(f.dir, "batches")); !slices.Equal(got, []string{b.ID + ".ndjson.gz"}) {
		t.Errorf("batches/ = %v, want the refused batch kept", got)
	}
	if n := len(f.deadLetters()); n != 0 {
		t.Errorf("%d dead letters, want none: nothing was found to be bad", n)
	}
}
