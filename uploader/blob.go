package uploader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"github.com/journalsensor/sensor/spool"
)

// Blobs (content mode) go before the batch that names them: for each blob the batch's records
// name that is still in the spool, HEAD {URL}/v1/blobs/{sha256} and, on a 404, PUT the file.
// Both follow the batch's rules: retried with backoff on 408, 429, 5xx and network errors,
// slowly on 401/403, until the batch outlives MaxAge. Only when every blob is settled does the
// POST go.
//
// A blob the pipeline refuses for good (400, 413, 422) moves to the spool's dead-letter folder,
// logged and counted, and its batch is sent anyway. The record holds what scoring needs most
// (hashes, types, sizes, URLs) and keeps naming the blob, so the pipeline can tell it went
// missing; holding the record back for bytes the pipeline will never take would lose the
// message from analysis altogether. A blob missing from the spool (refused earlier, or lost) is
// likewise logged and skipped.

// blobMinRate is the slowest upload, in bytes per second, a blob PUT is given time for on top
// of RequestTimeout: a 50 MiB attachment gets 200 s more. A stalled connection is still caught
// sooner by the HTTP/2 pings.
const blobMinRate = 256 << 10

// maxBlobExtra caps that extra time, so no size can overflow a time.Duration.
const maxBlobExtra = 24 * time.Hour

// expiredError stops a blob's retries when its batch has outlived MaxAge; it carries the last
// failure for the dead-letter log.
type expiredError struct {
	status int
	reason string
}

func (e *expiredError) Error() string { return "batch outlived max age: " + e.reason }
func (e *expiredError) Unwrap() error { return errExpired }

// storeBlobs makes sure the pipeline has every blob batch b names. stop is true when the batch
// must not be sent now: err says to try later, or v says the batch expired.
func (h *httpSender) storeBlobs(ctx context.Context, b spool.Batch) (v verdict, stop bool, err error) {
	if b.Blobs == 0 {
		return verdict{}, false, nil
	}
	sums, err := h.u.sp.BatchBlobs(b.ID)
	if err != nil {
		return verdict{}, true, err
	}
	if len(sums) == 0 {
		return verdict{}, false, nil
	}
	err = eachLimited(ctx, sums, h.u.cfg.BlobConcurrency, func(ctx context.Context, sum string) error {
		return h.storeBlob(ctx, b, sum)
	})
	var exp *expiredError
	switch {
	case err == nil:
		return verdict{}, false, nil
	case ctx.Err() != nil:
		return verdict{}, true, ctx.Err()
	case errors.As(err, &exp):
		return verdict{expired: true, status: exp.status, reason: exp.reason}, true, nil
	default:
		return verdict{}, true, err
	}
}

// eachLimited calls fn for each item, at most limit at a time, and returns the first error;
// an error cancels the context the other calls got.
func eachLimited(ctx context.Context, items []string, limit int, fn func(context.Context, string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	sem := make(chan struct{}, max(limit, 1))
loop:
	for _, item := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(ctx, item); err != nil {
				mu.Lock()
				if first == nil {
					first = err
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err() // the caller's context ended before every item started
	}
	return first
}

// storeBlob uploads one blob unless an upload of the same blob is already under way, in
// which case it waits for that one. A racing upload that failed did so for its own batch (its
// age, its context): this one then tries on its own account.
func (h *httpSender) storeBlob(ctx context.Context, b spool.Batch, sum string) error {
	for {
		shared, err := h.flight.do(ctx, sum, func() error { return h.uploadBlob(ctx, b, sum) })
		if err == nil || !shared || ctx.Err() != nil {
			return err
		}
	}
}

// uploadBlob asks the pipeline whether it has the blob and PUTs it when it does not.
func (h *httpSender) uploadBlob(ctx context.Context, b spool.Batch, sum string) error {
	u := h.u
	f, size, err := u.sp.OpenBlob(sum)
	if errors.Is(err, fs.ErrNotExist) {
		u.missingBlob(b, sum)
		return nil
	}
	if err != nil {
		return err
	}
	_ = f.Close() // opened for its size; each attempt reopens it

	status, reason, err := h.blobRequest(ctx, b, http.MethodHead, sum, size)
	switch {
	case err != nil:
		return err
	case status == http.StatusNotFound:
	case classify(status) == classDelivered:
		u.update(func(s *Stats) { s.BlobsPresent++ })
		u.log.Debug("pipeline already has blob", "blob", sum, "size", size, "batch", b.ID)
		return nil
	default:
		return u.refuseBlob(b, sum, size, status, reason)
	}

	start := time.Now()
	status, reason, err = h.blobRequest(ctx, b, http.MethodPut, sum, size)
	if errors.Is(err, fs.ErrNotExist) {
		u.missingBlob(b, sum) // gone between attempts
		return nil
	}
	if err != nil {
		return err
	}
	if classify(status) != classDelivered {
		return u.refuseBlob(b, sum, size, status, reason)
	}
	u.update(func(s *Stats) {
		s.BlobsUploaded++
		s.BlobBytesUploaded += size
	})
	u.log.Info("pipeline stored blob", "blob", sum, "size", size, "batch", b.ID, "status", status,
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// blobRequest sends one HEAD or PUT for a blob, retried like a batch, and returns the final
// status: a 2xx, a HEAD's 404, or a refusal (classPoison) with its reason.
func (h *httpSender) blobRequest(ctx context.Context, b spool.Batch, method, sum string, size int64) (int, string, error) {
	a := &attempts{h: h, b: b, blob: sum, size: size, method: method}
	client := h.client
	var body any // nil for a HEAD and for an empty blob: net/http then sends Content-Length: 0
	if method == http.MethodPut {
		extra := maxBlobExtra
		if secs := size / blobMinRate; secs < int64(maxBlobExtra/time.Second) {
			extra = time.Duration(secs) * time.Second
		}
		// Same transport (connections, TLS), a timeout that fits the size.
		client = &http.Client{Transport: h.client.Transport, Timeout: h.client.Timeout + extra,
			CheckRedirect: h.client.CheckRedirect}
		if size > 0 {
			// Each attempt reopens the spool file and net/http closes it: a blob is never held
			// in memory, whatever its size (retryablehttp would read a plain io.Reader whole).
			body = retryablehttp.ReaderFunc(func() (io.Reader, error) {
				f, _, err := h.u.sp.OpenBlob(sum)
				if err != nil {
					return nil, err
				}
				return f, nil
			})
		}
	}
	rc := &retryablehttp.Client{
		HTTPClient:     client,
		RetryMax:       int(^uint(0) >> 1), // until it works or the batch expires
		CheckRetry:     a.checkRetry,
		Backoff:        a.backoff,
		RequestLogHook: a.starting,
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, method, h.blobs+sum, body)
	if err != nil {
		return 0, "", err
	}
	if method == http.MethodPut {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("User-Agent", h.u.cfg.UserAgent)
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := rc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, "", ctx.Err()
		}
		if errors.Is(err, errExpired) {
			return 0, "", &expiredError{status: a.status, reason: a.reason}
		}
		return 0, "", fmt.Errorf("%s blob %s: %w", method, sum, err)
	}
	drain(resp.Body)
	return resp.StatusCode, a.reason, nil
}

// refuseBlob moves a blob the pipeline will never take to the dead-letter folder; the batch
// naming it is then sent without it.
func (u *Uploader) refuseBlob(b spool.Batch, sum string, size int64, status int, reason string) error {
	u.log.Error("pipeline refused a blob; moving it to the dead-letter folder and sending its records without it",
		"blob", sum, "size", size, "batch", b.ID, "status", status, "reason", reason)
	if err := u.sp.DeadLetterBlob(sum); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	u.update(func(s *Stats) { s.BlobsRefused++ })
	return nil
}

func (u *Uploader) missingBlob(b spool.Batch, sum string) {
	u.log.Warn("blob named by a record is not in the spool; sending the record without it",
		"blob", sum, "batch", b.ID)
	u.update(func(s *Stats) { s.BlobsMissing++ })
}

// flight runs one call per key at a time: callers that come while it runs wait for its
// result instead of starting their own (what x/sync's singleflight does, which this module
// does not depend on).
type flight struct {
	mu    sync.Mutex
	calls map[string]*flightCall
}

type flightCall struct {
	done chan struct{}
	err  error
}

var errFlightPanicked = errors.New("the shared call panicked")

// do runs fn for key, or waits for the run in progress; shared says which. A waiter whose ctx
// ends stops waiting.
func (g *flight) do(ctx context.Context, key string, fn func() error) (shared bool, err error) {
	g.mu.Lock()
	if c, ok := g.calls[key]; ok {
		g.mu.Unlock()
		select {
		case <-c.done:
			return true, c.err
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	if g.calls == nil {
		g.calls = make(map[string]*flightCall)
	}
	c := &flightCall{done: make(chan struct{}), err: errFlightPanicked}
	g.calls[key] = c
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.calls, key)
		g.mu.Unlock()
		close(c.done)
	}()
	c.err = fn()
	return false, c.err
}
