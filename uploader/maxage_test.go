package uploader

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/spool"
)

func TestOldRecordsStillDeliveredWhenThePipelineTakesThem(t *testing.T) {
	// A sensor switched off for longer than MaxAge: its backlog is delivered, not thrown away
	// unseen, because it has not been undeliverable, only undelivered.
	f := newFixture(t)
	r := startReceiver(t, false)
	cfg := f.httpsConfig(r)
	cfg.MaxAge = time.Hour
	u := f.newUploader(cfg)
	_, lines := f.commitRecords(3, time.Now().Add(-2*time.Hour), nil)
	f.run(u)
	waitFor(t, "delivery", func() bool { return u.Stats().RecordsDelivered == 3 })
	if got := r.stored(t); !slices.Equal(got, lines) {
		t.Errorf("stored %d records, want the 3 old ones", len(got))
	}
	if s := u.Stats(); s.RecordsExpired != 0 || s.DeadLetters != 0 {
		t.Errorf("stats = %+v, want nothing expired", s)
	}
}

func TestExpiresAfterAFailedAttempt(t *testing.T) {
	hijack := func(w http.ResponseWriter) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter)
	}{
		{"503", func(w http.ResponseWriter) { http.Error(w, "down for maintenance", http.StatusServiceUnavailable) }},
		{"401", func(w http.ResponseWriter) { http.Error(w, "token expired", http.StatusUnauthorized) }},
		{"404", func(w http.ResponseWriter) { http.Error(w, "no such path", http.StatusNotFound) }},
		{"dropped connection", hijack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := &pipeline{}
			p.setAnswer(func(_ int, w http.ResponseWriter) { tc.answer(w) })
			srv, ca := startPipeline(t, p, false)
			cfg := f.config(srv.URL)
			cfg.CAFile = ca
			cfg.MaxAge = time.Hour
			u := f.newUploader(cfg)
			old := f.commit(0)
			for i := range 2 {
				id := idAt(time.Now().Add(-90*time.Minute + time.Duration(i)*time.Millisecond))
				line := `{"id":"` + id + `"}`
				if err := f.sp.Commit(id, []byte(line)); err != nil {
					t.Fatal(err)
				}
				old = append(old, line+"\n")
			}
			f.run(u)
			waitFor(t, "the old batch dead-lettered", func() bool { return u.Stats().RecordsExpired == 2 })
			if n := p.count(); n != 1 {
				t.Errorf("pipeline saw %d requests, want exactly one attempt before giving up", n)
			}
			dead := f.deadLetters()
			if len(dead) != 1 {
				t.Fatalf("dead letters = %v, want one batch", dead)
			}
			for _, recs := range dead {
				if !slices.Equal(recs, old) {
					t.Errorf("dead letter holds %q, want %q", recs, old)
				}
			}
			s := u.Stats()
			if s.RecordsDeadLettered != 2 || s.BatchesDeadLettered != 1 || s.PendingBatches != 0 {
				t.Errorf("stats = %+v", s)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "level=ERROR msg=\"batch undeliverable for longer than max age") ||
				!strings.Contains(logs, "max_age=1h0m0s") {
				t.Errorf("no ERROR line naming the max age:\n%s", logs)
			}

			// Young records are not caught by it: they wait for the pipeline.
			p.setAnswer(nil)
			fresh := f.commit(1)
			waitFor(t, "the fresh record delivered", func() bool { return u.Stats().RecordsDelivered == 1 })
			reqs, _ := p.seen()
			if last := reqs[len(reqs)-1]; !slices.Equal(last.lines, fresh) {
				t.Errorf("last upload %q, want %q", last.lines, fresh)
			}
		})
	}
}

func TestExpiresWhileRetrying(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{answer: func(_ int, w http.ResponseWriter) {
		http.Error(w, "down", http.StatusBadGateway)
	}}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	cfg.MaxAge = 400 * time.Millisecond
	u := f.newUploader(cfg)
	start := time.Now()
	f.commit(3)
	f.run(u)
	waitFor(t, "expiry", func() bool { return u.Stats().RecordsExpired == 3 })
	if d := time.Since(start); d < cfg.MaxAge {
		t.Errorf("expired after %v, want no sooner than MaxAge %v", d, cfg.MaxAge)
	}
	// Backoff is 5ms to 40ms, so 400ms of a failing pipeline is several attempts.
	if n := p.count(); n < 3 {
		t.Errorf("pipeline saw %d requests, want the batch retried until it expired", n)
	}
	if s := u.Stats(); !strings.Contains(s.LastError, "502") {
		t.Errorf("last error = %q, want the 502", s.LastError)
	}
}

func TestOutboxExpiresWhenItCannotWrite(t *testing.T) {
	f := newFixture(t)
	outbox := filepath.Join(t.TempDir(), "outbox")
	cfg := f.config(outboxURL(outbox))
	cfg.MaxAge = 300 * time.Millisecond
	u := f.newUploader(cfg)
	if err := os.Remove(outbox); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outbox, nil, 0o600); err != nil { // a file where the directory goes
		t.Fatal(err)
	}
	f.commit(2)
	f.run(u)
	waitFor(t, "expiry", func() bool { return u.Stats().RecordsExpired == 2 })
	if s := u.Stats(); s.BatchesDeadLettered != 1 || s.BatchesDelivered != 0 || s.Failures < 2 {
		t.Errorf("stats = %+v", s)
	}
}

func TestNegativeMaxAgeNeverExpires(t *testing.T) {
	f := newFixture(t)
	p := &pipeline{answer: func(_ int, w http.ResponseWriter) { http.Error(w, "down", http.StatusServiceUnavailable) }}
	srv, ca := startPipeline(t, p, false)
	cfg := f.config(srv.URL)
	cfg.CAFile = ca
	cfg.MaxAge = -1
	u := f.newUploader(cfg)
	id := idAt(time.Now().Add(-365 * 24 * time.Hour))
	if err := f.sp.Commit(id, []byte(`{"id":"`+id+`"}`)); err != nil {
		t.Fatal(err)
	}
	f.run(u)
	waitFor(t, "several attempts", func() bool { return p.count() >= 3 })
	if s := u.Stats(); s.RecordsExpired != 0 || s.PendingBatches != 1 {
		t.Errorf("stats = %+v, want the year-old batch kept and retried", s)
	}
}

func TestOldestRecordTime(t *testing.T) {
	f := newFixture(t)
	u := f.newUploader(f.config(outboxURL(t.TempDir())))
	form := func(lines ...string) spool.Batch {
		t.Helper()
		for i, l := range lines {
			if err := f.sp.Commit(idAt(time.Now().Add(time.Duration(i)*time.Millisecond)), []byte(l)); err != nil {
				t.Fatal(err)
			}
		}
		return formPending(t, f.sp)[0]
	}
	day := time.Now().Add(-24 * time.Hour).Truncate(time.Millisecond) // ULIDs keep milliseconds
	old := idAt(day)
	b := form(`{"id":"`+old+`"}`, `{"id":"`+idAt(time.Now())+`"}`)
	if got := u.oldest(b); !got.Equal(day) {
		t.Errorf("oldest = %v, want the first record's time %v", got, day)
	}
	// A record id from the future (a clock that was wrong) does not make the batch younger.
	b = form(`{"id":"` + idAt(time.Now().Add(time.Hour)) + `"}`)
	if got, want := u.oldest(b), recordTime(b.ID); !got.Equal(want) {
		t.Errorf("oldest = %v, want the batch's own time %v", got, want)
	}
	// No usable id: the batch's own time.
	b = form(`{"n":1}`)
	if got, want := u.oldest(b), recordTime(b.ID); !got.Equal(want) {
		t.Errorf("oldest = %v, want the batch's own time %v", got, want)
	}
}
