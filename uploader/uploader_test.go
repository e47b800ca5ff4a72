package uploader

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/spool"
)

func TestChunks(t *testing.T) {
	e := func(sizes ...int64) []spool.Entry {
		var out []spool.Entry
		for i, s := range sizes {
			out = append(out, spool.Entry{ID: fmt.Sprint(i), Records: 1, Bytes: s})
		}
		return out
	}
	// groups makes entries of n records each, 10 bytes a record.
	groups := func(n ...int) []spool.Entry {
		var out []spool.Entry
		for i, k := range n {
			out = append(out, spool.Entry{ID: fmt.Sprint(i), Records: k, Bytes: int64(10 * k)})
		}
		return out
	}
	shape := func(cs [][]spool.Entry) []int {
		var out []int
		for _, c := range cs {
			out = append(out, len(c))
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		in         []spool.Entry
		maxRecords int
		maxBytes   int64
		want       []int
	}{
		{"nothing", nil, 3, 100, nil},
		{"by count", e(1, 1, 1, 1, 1, 1, 1), 3, 100, []int{3, 3, 1}},
		{"exactly full", e(1, 1, 1), 3, 100, []int{3}},
		{"by bytes", e(40, 40, 40, 40, 40), 10, 100, []int{2, 2, 1}},
		{"bytes exactly at the limit", e(50, 50, 50), 10, 100, []int{2, 1}},
		{"oversized record goes alone", e(10, 500, 10), 10, 100, []int{1, 1, 1}},
		{"count before bytes", e(10, 10, 10, 10), 2, 1000, []int{2, 2}},
		{"groups count their records", groups(4, 4, 4, 1), 8, 1000, []int{2, 2}},
		{"a group over the count goes alone", groups(2, 20, 2), 8, 1000, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := chunks(tc.in, tc.maxRecords, tc.maxBytes)
			if !slices.Equal(shape(got), tc.want) {
				t.Errorf("chunks = %v, want sizes %v", shape(got), tc.want)
			}
			var flat []spool.Entry
			for _, c := range got {
				flat = append(flat, c...)
			}
			if !slices.Equal(flat, tc.in) {
				t.Errorf("chunks lost or reordered records: %v", flat)
			}
		})
	}
}

func outboxURL(dir string) string { return "file://" + dir }

// outboxFiles reads every finished outbox file, in name order.
func outboxFiles(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, name := range entries(t, dir) {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = strings.SplitAfter(string(data), "\n")
		out[name] = out[name][:len(out[name])-1]
	}
	return out
}

func TestOutboxWritesNDJSON(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "data", "outbox")
	u := f.newUploader(f.config(outboxURL(outbox)))
	lines := f.commit(3)
	f.run(u)
	waitFor(t, "the outbox file", func() bool { return u.Stats().BatchesDelivered == 1 })

	files := outboxFiles(t, outbox)
	if len(files) != 1 {
		t.Fatalf("outbox = %v, want one file", files)
	}
	for name, got := range files {
		id, ok := strings.CutSuffix(name, ".ndjson")
		if _, err := ulid.ParseStrict(id); !ok || err != nil {
			t.Errorf("outbox file %q is not <batch-id>.ndjson", name)
		}
		if !slices.Equal(got, lines) {
			t.Errorf("outbox lines = %q\nwant %q", got, lines)
		}
		info, err := os.Stat(filepath.Join(outbox, name))
		if err != nil {
			t.Fatal(err)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("outbox file mode %v, want 0600", info.Mode().Perm())
		}
	}
	info, err := os.Stat(outbox)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o700 {
		t.Errorf("outbox dir mode %v, want 0700", info.Mode().Perm())
	}
	if s := u.Stats(); s.PendingBatches != 0 || s.PendingRecords != 0 || s.RecordsDelivered != 3 {
		t.Errorf("stats = %+v, want everything delivered", s)
	}
	if left := entries(t, filepath.Join(f.dir, "batches")); len(left) != 0 {
		t.Errorf("batches/ = %v, want empty", left)
	}
}

func TestBatchLimits(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxRecords int
		maxBytes   int64
		records    int
		want       []int
	}{
		// Each test record is about 80 bytes.
		{"count", 3, 1 << 20, 7, []int{1, 3, 3}},
		{"bytes", 100, 170, 5, []int{1, 2, 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			outbox := filepath.Join(t.TempDir(), "outbox")
			cfg := f.config(outboxURL(outbox))
			cfg.BatchMaxRecords, cfg.BatchMaxBytes = tc.maxRecords, tc.maxBytes
			u := f.newUploader(cfg)
			lines := f.commit(tc.records)
			f.run(u)
			waitFor(t, "all records", func() bool { return u.Stats().RecordsDelivered == int64(tc.records) })

			files := outboxFiles(t, outbox)
			var sizes []int
			var all []string
			for _, name := range slices.Sorted(maps.Keys(files)) {
				sizes = append(sizes, len(files[name]))
				all = append(all, files[name]...)
			}
			slices.Sort(sizes)
			if !slices.Equal(sizes, tc.want) {
				t.Errorf("batch sizes = %v, want %v", sizes, tc.want)
			}
			if !slices.Equal(all, lines) {
				t.Errorf("records across batches = %q\nwant in order %q", all, lines)
			}
		})
	}
}

func TestLingerGathersABurst(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.BatchLinger = 300 * time.Millisecond
	u := f.newUploader(cfg)
	f.run(u)

	f.commit(1)
	time.Sleep(30 * time.Millisecond)
	f.commit(4)
	waitFor(t, "delivery", func() bool { return u.Stats().RecordsDelivered == 5 })
	if files := outboxFiles(t, outbox); len(files) != 1 {
		t.Errorf("outbox has %d files, want the burst in one batch", len(files))
	}
}

func TestFullBatchDoesNotLinger(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.BatchLinger = time.Minute
	cfg.BatchMaxRecords = 3
	u := f.newUploader(cfg)
	f.run(u)

	f.commit(3)
	waitFor(t, "a full batch to go without waiting out the linger", func() bool {
		return u.Stats().RecordsDelivered == 3
	})
}

func TestOutboxDeadLettersCorruptBatch(t *testing.T) {
	f := newFixture(t)
	id := ulid.Make().String()
	if err := os.WriteFile(filepath.Join(f.dir, "batches", id+".ndjson.gz"), []byte("not gzip"), 0o600); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(t.TempDir(), "outbox")
	u := f.newUploader(f.config(outboxURL(outbox)))
	f.commit(1)
	f.run(u)
	waitFor(t, "the corrupt batch dead-lettered and the good one delivered", func() bool {
		s := u.Stats()
		return s.BatchesDeadLettered == 1 && s.BatchesDelivered == 1
	})
	if dead := entries(t, filepath.Join(f.dir, "deadletter")); !slices.Equal(dead, []string{id + ".ndjson.gz"}) {
		t.Errorf("deadletter/ = %v, want the corrupt batch", dead)
	}
	for _, name := range entries(t, outbox) {
		if strings.HasPrefix(name, ".") || strings.HasPrefix(name, id) {
			t.Errorf("outbox holds %q, want only the good batch", name)
		}
	}
}

func TestOutboxRemovesUnfinishedFiles(t *testing.T) {
	f := newFixture(t)
	outbox := t.TempDir()
	mine := "." + ulid.Make().String() + ".ndjson.tmp12345"
	theirs := ".consumer-state"
	for _, name := range []string{mine, theirs} {
		if err := os.WriteFile(filepath.Join(outbox, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f.newUploader(f.config(outboxURL(outbox)))
	if got := entries(t, outbox); !slices.Equal(got, []string{theirs}) {
		t.Errorf("outbox = %v, want only the file we did not make", got)
	}
}

func TestRunRetriesAfterOutboxWriteFailure(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	u := f.newUploader(f.config(outboxURL(outbox)))
	// A file where the outbox directory should be: every write fails, even as root.
	if err := os.Remove(outbox); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outbox, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f.commit(1)
	f.run(u)
	waitFor(t, "failed writes", func() bool { return u.Stats().Failures >= 2 })
	if s := u.Stats(); s.PendingBatches != 1 || s.BatchesDeadLettered != 0 || s.LastError == "" {
		t.Errorf("stats = %+v, want the batch kept for later and the error shown", s)
	}
	if err := os.Remove(outbox); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery once the outbox is usable", func() bool { return u.Stats().BatchesDelivered == 1 })
}

func TestWakesOnCommit(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.MaxBackoff = time.Minute // the idle poll must not be what finds the record
	u := f.newUploader(cfg)
	f.run(u)
	time.Sleep(20 * time.Millisecond) // let Run go idle first

	start := time.Now()
	f.commit(1)
	waitFor(t, "delivery", func() bool { return u.Stats().RecordsDelivered == 1 })
	if d := time.Since(start); d > time.Second {
		t.Errorf("delivered %v after the commit, want well within the second the product promises", d)
	}
}

func TestLingerCountsFromTheOldestRecord(t *testing.T) {
	// A record that has already waited its linger (it came in while a delivery was under way)
	// goes at once instead of waiting the linger again.
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.BatchLinger = 500 * time.Millisecond
	cfg.MaxBackoff = time.Minute
	u := f.newUploader(cfg)
	f.run(u)
	time.Sleep(20 * time.Millisecond) // let Run go idle first

	start := time.Now()
	id := idAt(start.Add(-cfg.BatchLinger))
	if err := f.sp.Commit(id, []byte(`{"id":"`+id+`"}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivery", func() bool { return u.Stats().RecordsDelivered == 1 })
	if d := time.Since(start); d > cfg.BatchLinger/2 {
		t.Errorf("delivered %v after the commit, want no further linger", d)
	}
}

func TestLingerWaitsForCompany(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.BatchLinger = 300 * time.Millisecond
	u := f.newUploader(cfg)
	f.run(u)
	time.Sleep(20 * time.Millisecond)

	start := time.Now()
	f.commit(1)
	waitFor(t, "delivery", func() bool { return u.Stats().RecordsDelivered == 1 })
	// The id is made before the commit, so the wait can come out a little short of the linger.
	if d := time.Since(start); d < cfg.BatchLinger-50*time.Millisecond || d > cfg.BatchLinger+400*time.Millisecond {
		t.Errorf("a lone record went after %v, want about the linger %v", d, cfg.BatchLinger)
	}
}

func TestFullBatchByBytesDoesNotLinger(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.BatchLinger = time.Minute
	cfg.BatchMaxBytes = 200 // each test record is about 80 bytes
	u := f.newUploader(cfg)
	f.run(u)

	f.commit(3)
	waitFor(t, "a batch full by bytes to go without waiting out the linger", func() bool {
		return u.Stats().RecordsDelivered >= 2
	})
}
