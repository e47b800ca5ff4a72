package uploader

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/spool"
)

// The SHA-256 of no bytes (what `sha256sum </dev/null` prints).
const sumEmpty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// sumOf hashes b in one call, independently of the spool's writer, which hashes in chunks.
func sumOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// putBlob commits data as a blob the way the parser does in content mode: streamed in chunks,
// then committed under its sum.
func (f *fixture) putBlob(data []byte) string {
	f.t.Helper()
	w, err := f.sp.CreateBlob()
	if err != nil {
		f.t.Fatal(err)
	}
	for rest := data; len(rest) > 0; {
		n := min(len(rest), 32<<10+3)
		if _, err := w.Write(rest[:n]); err != nil {
			f.t.Fatal(err)
		}
		rest = rest[n:]
	}
	sum := sumOf(data)
	if err := w.Commit(sum); err != nil {
		f.t.Fatal(err)
	}
	return sum
}

// blobRecord is sampleRecord with one attachment per sum, each naming its blob.
func blobRecord(tb testing.TB, id string, n int, sums ...string) []byte {
	tb.Helper()
	var rec api.Record
	if err := json.Unmarshal(sampleRecord(tb, id, n, false), &rec); err != nil {
		tb.Fatal(err)
	}
	rec.Attachments = nil
	for i, s := range sums {
		rec.Attachments = append(rec.Attachments, api.Attachment{
			Path: strconv.Itoa(i + 2), Filename: fmt.Sprintf("file-%d.bin", i), ContentType: "application/octet-stream",
			Size: 1, SHA256: s, Blob: s,
		})
	}
	line, err := api.MarshalRecord(&rec)
	if err != nil {
		tb.Fatal(err)
	}
	return line
}

// commitNaming commits a schema-valid record naming the blobs and returns its line.
func (f *fixture) commitNaming(at time.Time, sums ...string) string {
	f.t.Helper()
	id := idAt(at)
	line := blobRecord(f.t, id, 0, sums...)
	if err := f.sp.Commit(id, line); err != nil {
		f.t.Fatal(err)
	}
	return string(line) + "\n"
}

func (r *refReceiver) callLog() (calls []string, status []int, lengths []int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls), slices.Clone(r.callStatus), slices.Clone(r.lengths)
}

func (r *refReceiver) setIntercept(fn func(w http.ResponseWriter, req *http.Request) bool) {
	r.mu.Lock()
	r.intercept = fn
	r.mu.Unlock()
}

func (f *fixture) spoolBlobs() []string {
	f.t.Helper()
	return entries(f.t, filepath.Join(f.dir, "blobs"))
}

func count(calls []string, call string) int {
	n := 0
	for _, c := range calls {
		if c == call {
			n++
		}
	}
	return n
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>9)
	}
	return b
}

func TestBlobsAreStoredBeforeTheBatchThatNamesThem(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	var hdrMu sync.Mutex
	var blobHeaders []http.Header
	r.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
		if strings.HasPrefix(req.URL.Path, "/v1/blobs/") {
			hdrMu.Lock()
			blobHeaders = append(blobHeaders, req.Header.Clone())
			hdrMu.Unlock()
		}
		return false
	})
	cfg := f.httpsConfig(r)
	cfg.Token = testToken
	cfg.UserAgent = "journal-sensor/test"
	u := f.newUploader(cfg)
	data := pattern(300 << 10)
	sum := f.putBlob(data)
	if got := f.putBlob(nil); got != sumEmpty {
		t.Fatalf("empty blob committed as %s", got)
	}
	line := f.commitNaming(time.Now(), sum, sumEmpty)
	f.run(u)
	waitFor(t, "the batch to be delivered", func() bool { return u.Stats().BatchesDelivered == 1 })

	calls, status, lengths := r.callLog()
	if len(calls) != 5 || calls[4] != "POST /v1/records" {
		t.Fatalf("requests = %v, want HEAD and PUT for two blobs, then the POST", calls)
	}
	for _, s := range []string{sum, sumEmpty} {
		head := slices.Index(calls, "HEAD /v1/blobs/"+s)
		put := slices.Index(calls, "PUT /v1/blobs/"+s)
		if head < 0 || put < head || status[head] != http.StatusNotFound || status[put] != http.StatusCreated {
			t.Errorf("blob %s: HEAD at %d, PUT at %d in %v with statuses %v; want HEAD 404 then PUT 201", s, head, put, calls, status)
		}
		if put >= 0 && s == sum && lengths[put] != int64(len(data)) {
			t.Errorf("PUT Content-Length = %d, want %d: the body must be sent with its length", lengths[put], len(data))
		}
	}
	hdrMu.Lock()
	for _, h := range blobHeaders {
		if h.Get("Authorization") != "Bearer "+testToken || h.Get("User-Agent") != "journal-sensor/test" ||
			h.Get("Content-Encoding") != "" {
			t.Errorf("blob request headers %v: want the bearer token, our User-Agent, no Content-Encoding", h)
		}
	}
	hdrMu.Unlock()
	got, err := os.ReadFile(filepath.Join(r.outDir, "blobs", sum))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("receiver's blob: %d bytes, %v; want the %d bytes committed", len(got), err, len(data))
	}
	if _, err := os.Stat(filepath.Join(r.outDir, "blobs", sumEmpty)); err != nil {
		t.Errorf("receiver lacks the empty blob: %v", err)
	}
	if stored := r.stored(t); !slices.Equal(stored, []string{line}) {
		t.Errorf("receiver stored %q, want the record", stored)
	}
	waitFor(t, "the delivered batch's blobs to leave the spool", func() bool { return len(f.spoolBlobs()) == 0 })
	s := u.Stats()
	if s.BlobsUploaded != 2 || s.BlobBytesUploaded != int64(len(data)) || s.BlobsPresent != 0 || s.BlobRequests != 4 ||
		s.PendingBlobs != 0 || s.PendingBlobBytes != 0 || s.Attempts != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestBlobThePipelineHasIsNotSentAgain(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, false)
	data := []byte("already at the pipeline")
	sum := f.putBlob(data)
	if err := os.WriteFile(filepath.Join(r.outDir, "blobs", sum), data, 0o600); err != nil {
		t.Fatal(err)
	}
	f.commitNaming(time.Now(), sum)
	u := f.newUploader(f.httpsConfig(r))
	f.run(u)
	waitFor(t, "the batch to be delivered", func() bool { return u.Stats().BatchesDelivered == 1 })
	calls, status, _ := r.callLog()
	if want := []string{"HEAD /v1/blobs/" + sum, "POST /v1/records"}; !slices.Equal(calls, want) || status[0] != http.StatusOK {
		t.Errorf("requests = %v (%v), want %v with the HEAD answered 200", calls, status, want)
	}
	if s := u.Stats(); s.BlobsPresent != 1 || s.BlobsUploaded != 0 {
		t.Errorf("stats %+v, want one blob present and none uploaded", s)
	}
}

// The same attachment mailed twice: two records, two batches, one PUT.
func TestTwoBatchesNamingOneBlobPutItOnce(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	cfg := f.httpsConfig(r)
	cfg.BatchMaxRecords = 1
	data := pattern(70 << 10)
	sum := f.putBlob(data)
	now := time.Now()
	f.commitNaming(now, sum)
	f.putBlob(data) // the second copy's parse commits the same bytes again
	f.commitNaming(now.Add(time.Millisecond), sum)
	u := f.newUploader(cfg)
	f.run(u)
	waitFor(t, "both batches to be delivered", func() bool { return u.Stats().BatchesDelivered == 2 })
	calls, _, _ := r.callLog()
	// The batches go out concurrently: the second either joins the first's upload or checks
	// with a HEAD after it. Either way one PUT, and both POSTs after it.
	put := slices.Index(calls, "PUT /v1/blobs/"+sum)
	posts := 0
	for i, c := range calls {
		switch c {
		case "PUT /v1/blobs/" + sum:
			if i != put {
				t.Errorf("a second PUT of the blob: %v", calls)
			}
		case "POST /v1/records":
			posts++
			if put < 0 || i < put {
				t.Errorf("a batch was sent before its blob: %v", calls)
			}
		case "HEAD /v1/blobs/" + sum:
		default:
			t.Errorf("unexpected request %q", c)
		}
	}
	if put < 0 || posts != 2 {
		t.Errorf("requests = %v, want one PUT and two POSTs", calls)
	}
	waitFor(t, "the blob to leave the spool", func() bool { return len(f.spoolBlobs()) == 0 })
}

// Uploads of one blob that race (as they would from batches delivered side by side) send one
// HEAD and one PUT; the others wait for that upload's result.
func TestRacingUploadsOfOneBlobShareOneUpload(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	release := make(chan struct{})
	var heads atomic.Int32
	r.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodHead && heads.Add(1) == 1 {
			<-release // hold the first HEAD until every racer has arrived
		}
		return false
	})
	u := f.newUploader(f.httpsConfig(r))
	h := u.sender.(*httpSender)
	sum := f.putBlob(pattern(10 << 10))
	b := spool.Batch{ID: ulid.Make().String()}
	const racers = 6
	errs := make(chan error, racers)
	for range racers {
		go func() { errs <- h.storeBlob(context.Background(), b, sum) }()
	}
	waitFor(t, "the racers to wait on one upload", func() bool {
		h.flight.mu.Lock()
		defer h.flight.mu.Unlock()
		return heads.Load() == 1 && len(h.flight.calls) == 1
	})
	time.Sleep(20 * time.Millisecond) // let the rest reach the wait
	close(release)
	for range racers {
		if err := <-errs; err != nil {
			t.Fatalf("storeBlob: %v", err)
		}
	}
	calls, _, _ := r.callLog()
	if count(calls, "HEAD /v1/blobs/"+sum) != 1 || count(calls, "PUT /v1/blobs/"+sum) != 1 {
		t.Errorf("requests = %v, want one HEAD and one PUT for %d racing uploads", calls, racers)
	}
}

func TestFlightSharesOnlyWhileRunning(t *testing.T) {
	var g flight
	ctx := context.Background()
	errBoom := errors.New("boom")
	shared, err := g.do(ctx, "k", func() error { return errBoom })
	if shared || !errors.Is(err, errBoom) {
		t.Errorf("do = %v, %v; want the leader's own error", shared, err)
	}
	// Done calls are forgotten: the next caller runs fn again.
	ran := false
	if _, err := g.do(ctx, "k", func() error { ran = true; return nil }); err != nil || !ran {
		t.Errorf("second do: ran %v, err %v", ran, err)
	}
	// A waiter whose context ends stops waiting.
	started, stop := make(chan struct{}), make(chan struct{})
	go func() {
		_, _ = g.do(ctx, "slow", func() error { close(started); <-stop; return nil })
	}()
	<-started
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if shared, err := g.do(cctx, "slow", func() error { t.Error("ran while another call ran"); return nil }); !shared || !errors.Is(err, context.Canceled) {
		t.Errorf("waiter with a cancelled context: %v, %v", shared, err)
	}
	close(stop)
	// A panicking call releases its waiters with an error.
	func() {
		defer func() { _ = recover() }()
		_, _ = g.do(ctx, "p", func() error { panic("x") })
	}()
	if _, err := g.do(ctx, "p", func() error { return nil }); err != nil {
		t.Errorf("do after a panicked call: %v", err)
	}
}

// A blob the pipeline refuses for good is moved to the dead-letter folder, once, and the
// batch naming it still goes: its record is worth more than the bytes.
func TestRefusedBlobIsDeadLetteredAndItsBatchStillSent(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			f := newFixture(t)
			r := startReceiver(t, true)
			r.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
				if req.Method != http.MethodPut {
					return false
				}
				http.Error(w, `{"error":"no"}`, status)
				return true
			})
			data := pattern(5000)
			sum := f.putBlob(data)
			line := f.commitNaming(time.Now(), sum)
			u := f.newUploader(f.httpsConfig(r))
			f.run(u)
			waitFor(t, "the batch to be delivered", func() bool { return u.Stats().BatchesDelivered == 1 })
			calls, _, _ := r.callLog()
			want := []string{"HEAD /v1/blobs/" + sum, "PUT /v1/blobs/" + sum, "POST /v1/records"}
			if !slices.Equal(calls, want) {
				t.Errorf("requests = %v, want %v (a refused blob is not retried)", calls, want)
			}
			if stored := r.stored(t); !slices.Equal(stored, []string{line}) {
				t.Errorf("receiver stored %q, want the record", stored)
			}
			got, err := os.ReadFile(filepath.Join(f.dir, "deadletter", "blobs", sum))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("dead-lettered blob: %d bytes, %v", len(got), err)
			}
			if left := f.spoolBlobs(); len(left) != 0 {
				t.Errorf("spool blobs/ = %v", left)
			}
			if s := u.Stats(); s.BlobsRefused != 1 || s.DeadLetterBlobs != 1 || s.RecordsDeadLettered != 0 {
				t.Errorf("stats %+v", s)
			}
			if !strings.Contains(f.logs.String(), "pipeline refused a blob") {
				t.Error("the refusal was not logged")
			}
		})
	}
}

func TestBlobUploadIsRetriedAndTheBatchWaitsForIt(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	var n atomic.Int32
	r.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method == http.MethodHead {
			return false
		}
		switch n.Add(1) {
		case 1:
			w.Header().Set("Retry-After", "0")
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return true
		case 2:
			http.Error(w, "token?", http.StatusUnauthorized)
			return true
		}
		return false
	})
	data := pattern(64 << 10)
	sum := f.putBlob(data)
	f.commitNaming(time.Now(), sum)
	u := f.newUploader(f.httpsConfig(r))
	f.run(u)
	waitFor(t, "the batch to be delivered", func() bool { return u.Stats().BatchesDelivered == 1 })
	calls, status, _ := r.callLog()
	put := "PUT /v1/blobs/" + sum
	want := []string{"HEAD /v1/blobs/" + sum, put, put, put, "POST /v1/records"}
	if !slices.Equal(calls, want) || !slices.Equal(status[1:4], []int{503, 401, 201}) {
		t.Errorf("requests = %v %v, want %v with the PUTs answered 503, 401, 201", calls, status, want)
	}
	got, err := os.ReadFile(filepath.Join(r.outDir, "blobs", sum))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("receiver's blob after retries: %d bytes, %v", len(got), err)
	}
	if s := u.Stats(); s.BlobRequests != 4 || s.Failures != 2 || s.AuthFailing {
		t.Errorf("stats %+v: want 4 blob requests, 2 failures, auth healthy after the delivery", s)
	}
}

func TestBlobMissingFromTheSpoolDoesNotHoldTheBatch(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, false)
	sum := f.putBlob([]byte("lost"))
	line := f.commitNaming(time.Now(), sum)
	if err := f.sp.DeadLetterBlob(sum); err != nil {
		t.Fatal(err)
	}
	u := f.newUploader(f.httpsConfig(r))
	f.run(u)
	waitFor(t, "the batch to be delivered", func() bool { return u.Stats().BatchesDelivered == 1 })
	if calls, _, _ := r.callLog(); !slices.Equal(calls, []string{"POST /v1/records"}) {
		t.Errorf("requests = %v, want the POST only", calls)
	}
	if stored := r.stored(t); !slices.Equal(stored, []string{line}) {
		t.Errorf("receiver stored %q", stored)
	}
	if s := u.Stats(); s.BlobsMissing != 1 {
		t.Errorf("stats %+v, want one missing blob", s)
	}
}

// A batch whose blob cannot be stored for longer than MaxAge moves to the dead-letter folder
// with its blob, like any undeliverable batch; its record is never sent without the blob.
func TestBatchExpiresWhileItsBlobCannotBeStored(t *testing.T) {
	f := newFixture(t)
	r := startReceiver(t, true)
	r.setIntercept(func(w http.ResponseWriter, req *http.Request) bool {
		if req.Method != http.MethodPut {
			return false
		}
		http.Error(w, "down", http.StatusServiceUnavailable)
		return true
	})
	data := pattern(1000)
	sum := f.putBlob(data)
	f.commitNaming(time.Now().Add(-2*time.Hour), sum)
	cfg := f.httpsConfig(r)
	cfg.MaxAge = time.Hour
	u := f.newUploader(cfg)
	f.run(u)
	waitFor(t, "the batch to expire", func() bool { return u.Stats().RecordsExpired == 1 })
	calls, _, _ := r.callLog()
	if count(calls, "POST /v1/records") != 0 {
		t.Errorf("requests = %v: the record went without its blob", calls)
	}
	got, err := os.ReadFile(filepath.Join(f.dir, "deadletter", "blobs", sum))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("the expired batch's blob was not kept with it: %d bytes, %v", len(got), err)
	}
	waitFor(t, "the blob to leave the spool", func() bool { return len(f.spoolBlobs()) == 0 })
	if dl := f.deadLetters(); len(dl) != 1 {
		t.Errorf("dead letters = %v, want the batch", dl)
	}
}

func TestOutboxCopiesBlobsBeforeTheBatch(t *testing.T) {
	f := newFixture(t)
	out := filepath.Join(t.TempDir(), "outbox")
	if err := os.MkdirAll(filepath.Join(out, "blobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(out, "blobs", "."+sumEmpty+".tmp123")
	if err := os.WriteFile(leftover, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	good, bad := pattern(90<<10), []byte("bytes that rot on disk")
	goodSum, badSum := f.putBlob(good), f.putBlob(bad)
	// Bit rot: the spool file no longer matches its name.
	if err := os.WriteFile(filepath.Join(f.dir, "blobs", badSum), []byte("bytes that rot on disX"), 0o600); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.commitNaming(now, goodSum, badSum)
	cfg := f.config("file://" + out)
	cfg.BatchMaxRecords = 1
	u := f.newUploader(cfg)
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an unfinished blob copy survived New: %v", err)
	}
	f.run(u)
	waitFor(t, "the batch to be written", func() bool { return u.Stats().BatchesDelivered == 1 })
	got, err := os.ReadFile(filepath.Join(out, "blobs", goodSum))
	if err != nil || !bytes.Equal(got, good) {
		t.Errorf("outbox blob: %d bytes, %v", len(got), err)
	}
	if m, err := os.Stat(filepath.Join(out, "blobs", goodSum)); err == nil && m.Mode().Perm() != 0o600 {
		t.Errorf("outbox blob mode %v", m.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(out, "blobs", badSum)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a blob whose bytes do not match its name reached the outbox: %v", err)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "deadletter", "blobs", badSum)); err != nil {
		t.Errorf("the rotten blob was not dead-lettered: %v", err)
	}
	// A second copy of the good attachment: already in the outbox, not copied again.
	f.putBlob(good)
	f.commitNaming(now.Add(time.Millisecond), goodSum)
	waitFor(t, "the second batch to be written", func() bool { return u.Stats().BatchesDelivered == 2 })
	if s := u.Stats(); s.BlobsUploaded != 1 || s.BlobsPresent != 1 || s.BlobsRefused != 1 {
		t.Errorf("stats %+v", s)
	}
	var batches int
	for _, name := range entries(t, out) {
		if strings.HasSuffix(name, ".ndjson") {
			batches++
		}
	}
	if batches != 2 {
		t.Errorf("outbox holds %d batches, want 2", batches)
	}
	waitFor(t, "the blobs to leave the spool", func() bool { return len(f.spoolBlobs()) == 0 })
}
