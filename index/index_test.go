package index

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
)

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var start = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string, cfg Config) *Index {
	t.Helper()
	ix, err := Open(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ix.Close() })
	return ix
}

func direct(id string, rcpts ...string) *api.Record {
	return &api.Record{Message: api.Message{MessageID: id},
		Envelope: &api.Envelope{MailFrom: "a@example.org", RcptTo: rcpts}}
}

func journalReport(id string, rcpts ...api.JournalRecipient) *api.Record {
	return &api.Record{Source: api.Source{Kind: api.SourceExchangeJournal},
		Message:  api.Message{MessageID: id},
		Envelope: &api.Envelope{RcptTo: []string{"journal@sensor.test"}},
		Journal:  &api.Journal{MessageID: id, Recipients: rcpts}}
}

func sync1(t *testing.T, ix *Index) {
	t.Helper()
	if err := ix.Sync(); err != nil {
		t.Fatal(err)
	}
}

func want(t *testing.T, ix *Index, id string, rcpts ...string) {
	t.Helper()
	if got := ix.Recipients(id); !slices.Equal(got, rcpts) {
		t.Errorf("Recipients(%q) = %q, want %q", id, got, rcpts)
	}
}

func TestAddThenRecipients(t *testing.T) {
	c := &clock{t: start}
	ix := open(t, t.TempDir(), Config{Now: c.now})
	ix.Add(journalReport("<j@example.org>",
		api.JournalRecipient{Address: "To@Contoso.com", Type: api.RecipientTo},
		api.JournalRecipient{Address: "hidden@contoso.com", Type: api.RecipientBcc},
		api.JournalRecipient{Address: "member@contoso.com", Type: api.RecipientTo, ExpandedFrom: "list@contoso.com"}))
	ix.Add(direct("<d@example.org>", "Bob@Contoso.com"))
	ix.Add(direct("<u@example.org>", "x@contoso.com", "y@contoso.com"))
	ix.Add(direct("<u@example.org>", "y@contoso.com", "w@contoso.com"))
	ix.Add(direct("", "nobody@contoso.com")) // no Message-ID: nothing to key it by
	sync1(t, ix)
	// The journal mailbox in the report's envelope is not a recipient of the message.
	want(t, ix, "<j@example.org>", "hidden@contoso.com", "member@contoso.com", "to@contoso.com")
	want(t, ix, "<d@example.org>", "bob@contoso.com")
	want(t, ix, "<u@example.org>", "w@contoso.com", "x@contoso.com", "y@contoso.com")
	want(t, ix, "<none@example.org>")
	if s := ix.Stats(); s.Entries != 3 || s.Dropped != 0 || s.Corrupt != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestLookupWithAndWithoutAngleBrackets(t *testing.T) {
	ix := open(t, t.TempDir(), Config{})
	ix.Add(direct("<a@example.org>", "one@contoso.com"))
	ix.Add(direct("b@example.org", "two@contoso.com"))
	ix.Add(direct("<c@example.org>", "three@contoso.com"))
	ix.Add(direct("c@example.org", "four@contoso.com"))
	sync1(t, ix)
	want(t, ix, "<a@example.org>", "one@contoso.com")
	want(t, ix, "a@example.org", "one@contoso.com")
	want(t, ix, "<b@example.org>", "two@contoso.com")
	want(t, ix, " b@example.org ", "two@contoso.com")
	want(t, ix, "<c@example.org>", "four@contoso.com", "three@contoso.com")
	want(t, ix, "c@example.org", "four@contoso.com", "three@contoso.com")
	want(t, ix, "<>")
	want(t, ix, "")
}

func TestRestartRebuildsFromFiles(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: start}
	ix := open(t, dir, Config{Now: c.now})
	ix.Add(direct("<a@example.org>", "one@contoso.com"))
	sync1(t, ix)
	c.set(start.Add(24 * time.Hour)) // the next entry goes to the next day's file
	ix.Add(direct("<a@example.org>", "two@contoso.com"))
	ix.Add(direct("<b@example.org>", "three@contoso.com"))
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"2026-12-02.ndjson", "2026-12-03.ndjson"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("day file: %v", err)
		}
	}
	ix = open(t, dir, Config{Now: c.now})
	want(t, ix, "<a@example.org>", "one@contoso.com", "two@contoso.com")
	want(t, ix, "b@example.org", "three@contoso.com")
	if s := ix.Stats(); s.Entries != 2 {
		t.Errorf("stats %+v", s)
	}
}

func TestWindowDropsOldDayFiles(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: start}
	cfg := Config{Now: c.now, Window: 3 * 24 * time.Hour}
	ix := open(t, dir, cfg)
	ix.Add(direct("<old@example.org>", "one@contoso.com"))
	c.set(start.Add(2 * 24 * time.Hour))
	ix.Add(direct("<new@example.org>", "two@contoso.com"))
	sync1(t, ix)
	want(t, ix, "<old@example.org>", "one@contoso.com")

	// Past the window a lookup no longer answers, even before the files are pruned.
	c.set(start.Add(3*24*time.Hour + time.Minute))
	want(t, ix, "<old@example.org>")
	want(t, ix, "<new@example.org>", "two@contoso.com")
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// 2026-12-02 ends at 12-03 00:00, which is still inside a window reaching back from
	// 12-05 10:01: the file stays until its whole day is out of the window.
	ix = open(t, dir, cfg)
	if _, err := os.Stat(filepath.Join(dir, "2026-12-02.ndjson")); err != nil {
		t.Errorf("a day file still partly in the window was removed: %v", err)
	}
	want(t, ix, "<old@example.org>")
	if s := ix.Stats(); s.Entries != 1 {
		t.Errorf("entries older than the window were loaded: %+v", s)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	c.set(time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC))
	ix = open(t, dir, cfg)
	if _, err := os.Stat(filepath.Join(dir, "2026-12-02.ndjson")); !os.IsNotExist(err) {
		t.Errorf("expired day file still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "2026-12-04.ndjson")); err != nil {
		t.Errorf("a day file inside the window was removed: %v", err)
	}
	want(t, ix, "<new@example.org>", "two@contoso.com")
}

func TestDailyPruneWhileRunning(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: start}
	ix := open(t, dir, Config{Now: c.now, Window: 24 * time.Hour, FlushEvery: 5 * time.Millisecond})
	ix.Add(direct("<old@example.org>", "one@contoso.com"))
	sync1(t, ix)
	c.set(start.Add(3 * 24 * time.Hour))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(dir, "2026-12-02.ndjson"))
		if os.IsNotExist(err) && ix.Stats().Entries == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired day file or entry kept: %v, %+v", err, ix.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
	ix.Add(direct("<new@example.org>", "two@contoso.com"))
	sync1(t, ix)
	want(t, ix, "<new@example.org>", "two@contoso.com")
}

func TestEntryCapEvictsOldest(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: start}
	cfg := Config{Now: c.now, MaxEntries: 2, MaxRecipients: 2}
	ix := open(t, dir, cfg)
	ix.Add(direct("<1@example.org>", "a@contoso.com"))
	ix.Add(direct("<2@example.org>", "b@contoso.com"))
	ix.Add(direct("<1@example.org>", "c@contoso.com")) // 1 is now the newer
	ix.Add(direct("<3@example.org>", "d@contoso.com", "e@contoso.com", "f@contoso.com"))
	ix.Add(direct("<3@example.org>", "g@contoso.com")) // full: ignored
	sync1(t, ix)
	want(t, ix, "<2@example.org>")
	want(t, ix, "<1@example.org>", "a@contoso.com", "c@contoso.com")
	want(t, ix, "<3@example.org>", "d@contoso.com", "e@contoso.com")
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = open(t, dir, cfg) // the files hold all three; the cap applies again on load
	if s := ix.Stats(); s.Entries != 2 {
		t.Errorf("stats %+v", s)
	}
	want(t, ix, "<2@example.org>")
	want(t, ix, "<3@example.org>", "d@contoso.com", "e@contoso.com")
}

func TestFullChannelDropsInsteadOfBlocking(t *testing.T) {
	stall := make(chan struct{})
	taken := make(chan struct{}, 16)
	cfg := Config{Queue: 2}
	cfg.beforeApply = func() {
		taken <- struct{}{}
		<-stall
	}
	ix := open(t, t.TempDir(), cfg)
	ix.Add(direct("<0@example.org>", "a@contoso.com"))
	<-taken // the writer holds entry 0 and is stalled; the channel has room for 2
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= 5; i++ {
			ix.Add(direct("<"+strings.Repeat("x", i)+"@example.org>", "a@contoso.com"))
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Add blocked on a stalled writer")
	}
	if s := ix.Stats(); s.Dropped != 3 {
		t.Errorf("dropped %d, want 3", s.Dropped)
	}
	close(stall)
	sync1(t, ix)
	want(t, ix, "<x@example.org>", "a@contoso.com")
	want(t, ix, "<xx@example.org>", "a@contoso.com")
	want(t, ix, "<xxx@example.org>")
	if s := ix.Stats(); s.Entries != 3 {
		t.Errorf("stats %+v", s)
	}
}

func TestTornAndCorruptLines(t *testing.T) {
	dir := t.TempDir()
	c := &clock{t: start}
	content := `{"at":"2026-12-02T09:00:00Z","id":"<a@example.org>","rcpts":["one@contoso.com"]}
not json at all
{"at":"2026-12-02T09:00:01Z","id":"","rcpts":["x@contoso.com"]}
{"at":"2026-12-02T09:00:02Z","id":"<b@example.org>","rcpts":["Two@Contoso.com"]}
{"at":"2026-12-02T09:00:03Z","id":"<c@exa`
	name := filepath.Join(dir, "2026-12-02.ndjson")
	if err := os.WriteFile(name, []byte(content), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README"), []byte("not a day file"), 0o640); err != nil {
		t.Fatal(err)
	}
	ix := open(t, dir, Config{Now: c.now})
	if s := ix.Stats(); s.Entries != 2 || s.Corrupt != 2 || s.Torn != 1 {
		t.Errorf("stats %+v", s)
	}
	want(t, ix, "<a@example.org>", "one@contoso.com")
	want(t, ix, "<b@example.org>", "two@contoso.com")
	want(t, ix, "<c@example.org>")
	// The torn line was cut off, so the next append is a line of its own.
	ix.Add(direct("<d@example.org>", "three@contoso.com"))
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix = open(t, dir, Config{Now: c.now})
	if s := ix.Stats(); s.Entries != 3 || s.Corrupt != 2 || s.Torn != 0 {
		t.Errorf("after restart: stats %+v", s)
	}
	want(t, ix, "<d@example.org>", "three@contoso.com")
}

func TestConcurrentAddAndLookup(t *testing.T) {
	ix := open(t, t.TempDir(), Config{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 200 {
				ix.Add(direct("<m@example.org>", strings.Repeat("r", g+1)+"@contoso.com"))
				_ = ix.Recipients("m@example.org")
			}
		})
	}
	wg.Wait()
	sync1(t, ix)
	if got := ix.Recipients("<m@example.org>"); len(got) != 4 {
		t.Errorf("got %q", got)
	}
}

func TestAddAfterCloseDrops(t *testing.T) {
	ix := open(t, t.TempDir(), Config{})
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ix.Add(direct("<a@example.org>", "one@contoso.com"))
	if s := ix.Stats(); s.Dropped != 1 {
		t.Errorf("stats %+v", s)
	}
	if err := ix.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
