// Package uploader moves committed records from the spool to the scoring pipeline: it gathers
// them into gzip'd NDJSON batches and delivers each batch, oldest first, until the pipeline has
// it. Delivery is an HTTPS POST (see DESIGN.md, "Upload protocol") or, for a file:// pipeline,
// an NDJSON file in a local outbox directory.
//
// Nothing is deleted before it is delivered: a batch leaves the spool on a 2xx (or once its
// outbox file is durable), or moves to the spool's dead-letter folder. In content mode the
// attachment blobs a batch names go first (see blob.go); the spool removes a blob once no
// pending record or batch names it. Two things send records
// there, each logged and counted: the pipeline refusing them for good (a refused batch is split
// in halves until the refused records are alone, so the rest still go through), and records
// older than Config.MaxAge whose delivery still fails.
package uploader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/journalsensor/sensor/internal/retry"
	"github.com/journalsensor/sensor/spool"
)

// Config says where and how to deliver. Zero values mean the documented default.
type Config struct {
	// URL is "https://host[:port][/prefix]" (batches go to {URL}/v1/records) or
	// "file:///absolute/dir" (the outbox).
	URL string
	// Token is the bearer token; empty sends no Authorization header. Surrounding white space
	// (a token file's trailing newline) is ignored. It is never logged.
	Token string
	// CAFile is a PEM bundle of the CAs that sign the pipeline's certificate; empty means the
	// system roots.
	CAFile string
	// ClientCertFile and ClientKeyFile, both or neither, enable mutual TLS.
	ClientCertFile, ClientKeyFile string

	// BatchMaxRecords caps the records in one batch. Default 500.
	BatchMaxRecords int
	// BatchMaxBytes caps a batch's uncompressed NDJSON size; a single larger record still goes,
	// alone. Default 4 MiB.
	BatchMaxBytes int64
	// BatchLinger is how long a batch that is not full waits for more records, counted from
	// when its oldest record was made (its id's time), not from when the uploader looked.
	// Default 50ms; negative means do not wait. The product promises a message reaches the
	// pipeline within a second of its 250, so keep it well under that.
	BatchLinger time.Duration

	// MaxAge is how long a record may stay undeliverable: once the oldest record in a batch is
	// older and an attempt to deliver the batch fails, the batch moves to the dead-letter folder.
	// At least one attempt is always made, so a sensor that was switched off for a while still
	// delivers its backlog. Default 7 days; negative means no limit.
	MaxAge time.Duration

	// RequestTimeout bounds one HTTP attempt (connection, request and response), not the
	// delivery of a batch, which is retried until it succeeds or outlives MaxAge. Default 30s.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the jittered exponential wait between attempts.
	// Defaults 500ms and 1m.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a server asks for with Retry-After. Default 5m.
	MaxRetryAfter time.Duration
	// BlobConcurrency is how many blobs of one batch are checked and uploaded at once.
	// Default 4.
	BlobConcurrency int
	// Concurrency is how many batches are delivered at once. One request at a time leaves a
	// backlog's drain bound by the round trip (and by a pipeline that handles each request on
	// one core); the pipeline deduplicates by record id and expects no order. Default 4.
	Concurrency int

	UserAgent string // default "journal-sensor"
	Logger    *slog.Logger
}

const (
	defaultBatchMaxRecords = 500
	defaultBatchMaxBytes   = 4 << 20
	defaultBatchLinger     = 50 * time.Millisecond
	defaultRequestTimeout  = 30 * time.Second
	defaultMinBackoff      = 500 * time.Millisecond
	defaultMaxBackoff      = time.Minute
	defaultMaxRetryAfter   = 5 * time.Minute
	defaultMaxAge          = 7 * 24 * time.Hour
	defaultBlobConcurrency = 4
	defaultConcurrency     = 4
	defaultUserAgent       = "journal-sensor"
)

func (c Config) withDefaults() Config {
	setDefault(&c.BatchMaxRecords, defaultBatchMaxRecords)
	setDefault(&c.BatchMaxBytes, defaultBatchMaxBytes)
	setDefault(&c.BatchLinger, defaultBatchLinger)
	if c.BatchLinger < 0 {
		c.BatchLinger = 0
	}
	setDefault(&c.RequestTimeout, defaultRequestTimeout)
	setDefault(&c.MinBackoff, defaultMinBackoff)
	setDefault(&c.MaxBackoff, defaultMaxBackoff)
	setDefault(&c.MaxRetryAfter, defaultMaxRetryAfter)
	setDefault(&c.MaxAge, defaultMaxAge)
	setDefault(&c.BlobConcurrency, defaultBlobConcurrency)
	setDefault(&c.Concurrency, defaultConcurrency)
	setDefault(&c.UserAgent, defaultUserAgent)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// validate reports every problem at once, each naming its field.
func (c Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("uploader: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.BatchMaxRecords < 0 {
		bad("BatchMaxRecords", "must not be negative")
	}
	if c.BatchMaxBytes < 0 {
		bad("BatchMaxBytes", "must not be negative")
	}
	if c.Concurrency < 0 {
		bad("Concurrency", "must not be negative")
	}
	if c.BlobConcurrency < 0 {
		bad("BlobConcurrency", "must not be negative")
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{"RequestTimeout", c.RequestTimeout}, {"MinBackoff", c.MinBackoff},
		{"MaxBackoff", c.MaxBackoff}, {"MaxRetryAfter", c.MaxRetryAfter},
	} {
		if d.v < 0 {
			bad(d.field, "must not be negative")
		}
	}
	if c.MinBackoff > c.MaxBackoff {
		bad("MinBackoff", "%v is more than MaxBackoff %v", c.MinBackoff, c.MaxBackoff)
	}
	return errors.Join(errs...)
}

// sender delivers one batch. Its verdict says delivered when the batch can be deleted,
// expired when it has outlived MaxAge, and neither when the pipeline refused it for good as
// it is (poison: the uploader splits it to find the bad record); an error means try again
// later (after ctx is done, always an error). A sender retries by itself as far as it can; an error
// makes the uploader back off and start over from the spool.
type sender interface {
	send(ctx context.Context, b spool.Batch) (verdict, error)
}

type verdict struct {
	delivered bool
	expired   bool   // not delivered, and the batch has outlived MaxAge
	status    int    // HTTP status, 0 for the outbox
	reason    string // why it was refused (or the last failure, when expired), for the log
}

func newSender(u *Uploader) (sender, error) {
	if u.cfg.URL == "" {
		return nil, errors.New("uploader: URL: empty")
	}
	p, err := url.Parse(u.cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("uploader: URL: %w", err)
	}
	switch p.Scheme {
	case "https":
		return newHTTPSender(u, p)
	case "file":
		return newOutbox(u, p)
	default:
		// Plain http is refused on purpose: records carry addresses and subjects, and the
		// design promises TLS verification always on.
		return nil, fmt.Errorf("uploader: URL: scheme %q: want https or file", p.Scheme)
	}
}

// Uploader delivers the spool's records to the pipeline.
type Uploader struct {
	cfg    Config
	sp     *spool.Spool
	log    *slog.Logger
	sender sender

	mu    sync.Mutex
	stats Stats
	// latency is from a batch's oldest record's commit to the pipeline's acknowledgement:
	// what an operator means by "how far behind are uploads".
	latency prometheus.Histogram
}

// Stats are the counters an admin endpoint exposes.
type Stats struct {
	RecordsDelivered    int64     `json:"records_delivered"`
	BatchesDelivered    int64     `json:"batches_delivered"`
	RecordsDeadLettered int64     `json:"records_dead_lettered"` // records moved to the dead-letter folder, refused or expired
	BatchesDeadLettered int64     `json:"batches_dead_lettered"` // batch files moved there
	RecordsExpired      int64     `json:"records_expired"`       // of RecordsDeadLettered, those that outlived MaxAge undelivered
	BatchesSplit        int64     `json:"batches_split"`         // refused batches split in two to find the refused records
	Attempts            int64     `json:"attempts"`              // delivery attempts, HTTP requests or outbox writes
	Failures            int64     `json:"failures"`              // attempts that did not deliver, and local spool errors
	LastError           string    `json:"last_error"`
	LastErrorAt         time.Time `json:"last_error_at"`
	LastDeliveryAt      time.Time `json:"last_delivery_at"`
	AuthFailing         bool      `json:"auth_failing"` // the pipeline answered 401/403 and has not accepted a batch since

	// Blobs (content mode).
	BlobsUploaded     int64 `json:"blobs_uploaded"` // PUTs the pipeline accepted, or blobs written to the outbox
	BlobBytesUploaded int64 `json:"blob_bytes_uploaded"`
	BlobsPresent      int64 `json:"blobs_present"` // blobs the pipeline (or the outbox) already had
	BlobsRefused      int64 `json:"blobs_refused"` // refused for good and moved to the dead-letter folder
	BlobsMissing      int64 `json:"blobs_missing"` // named by a record but no longer in the spool; sent without
	BlobRequests      int64 `json:"blob_requests"` // HEAD and PUT attempts (not in Attempts)

	PendingRecords   int   `json:"pending_records"`    // committed, not yet batched
	PendingBatches   int   `json:"pending_batches"`    // batched, not yet delivered
	PendingBlobs     int   `json:"pending_blobs"`      // blobs pending records or batches name
	PendingBlobBytes int64 `json:"pending_blob_bytes"` // their size on disk
	PendingBytes     int64 `json:"pending_bytes"`      // spool disk for all three: what the spool budget counts
	BrokenRecords    int   `json:"broken_records"`
	DeadLetters      int   `json:"dead_letters"`
	DeadLetterBlobs  int   `json:"dead_letter_blobs"`
	// OldestPendingAt is when the oldest record not yet delivered was made, batched or not;
	// zero when none waits. Its age is how far delivery lags behind the mail.
	OldestPendingAt time.Time `json:"oldest_pending_at,omitzero"`
}

// New checks cfg and prepares delivery. Errors name the Config field at fault.
func New(cfg Config, sp *spool.Spool) (*Uploader, error) {
	if sp == nil {
		return nil, errors.New("uploader: nil spool")
	}
	cfg = cfg.withDefaults()
	err := cfg.validate()
	u := &Uploader{cfg: cfg, sp: sp, log: cfg.Logger, latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "sensor_upload_delivery_latency_seconds",
		Help: "From a batch's oldest record's commit to the pipeline's acknowledgement of the batch.",
		// 10 ms to about 6 days: a batch sent at once, up to one kept by a long outage.
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 14),
	})}
	s, serr := newSender(u)
	if err := errors.Join(err, serr); err != nil {
		return nil, err
	}
	u.sender = s
	return u, nil
}

// Stats returns a snapshot of the counters.
func (u *Uploader) Stats() Stats {
	u.mu.Lock()
	s := u.stats
	u.mu.Unlock()
	us := u.sp.Usage()
	s.PendingRecords = us.Records
	s.PendingBatches = us.Batches
	s.PendingBlobs = us.Blobs
	s.PendingBlobBytes = us.BlobBytes
	s.PendingBytes = us.Bytes()
	s.BrokenRecords = us.Broken
	s.DeadLetters = us.DeadLetters
	s.DeadLetterBlobs = us.DeadLetterBlobs
	s.OldestPendingAt = u.oldestPendingAt(us)
	return s
}

// oldestPendingAt is when the oldest record not yet delivered was made: of the pending
// groups (in memory) and of the oldest batch (one directory listing and one batch's first
// line). The spool's counts say first whether either is worth looking at, so a readiness
// probe on an idle sensor touches no disk.
func (u *Uploader) oldestPendingAt(us spool.Usage) time.Time {
	var oldest time.Time
	if us.Records > 0 {
		oldest = u.sp.OldestPending()
	}
	if us.Batches > 0 {
		if id := u.sp.OldestBatch(); id != "" {
			if t := u.oldest(spool.Batch{ID: id}); oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
		}
	}
	return oldest
}

// AuthFailing reports whether the pipeline refuses the credentials: what readiness needs,
// without Stats' look at the spool.
func (u *Uploader) AuthFailing() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stats.AuthFailing
}

func (u *Uploader) update(f func(*Stats)) {
	u.mu.Lock()
	f(&u.stats)
	u.mu.Unlock()
}

func (u *Uploader) noteFailure(err error) {
	u.update(func(s *Stats) {
		s.Failures++
		s.LastError = err.Error()
		s.LastErrorAt = time.Now()
	})
}

// Run delivers until ctx is done, then returns nil. It wakes when the spool signals a commit,
// and every MaxBackoff regardless. Whatever is not delivered when it returns stays in the
// spool for the next run. Only one Run may use a spool at a time.
func (u *Uploader) Run(ctx context.Context) error {
	failures := 0
	idle := time.NewTimer(u.cfg.MaxBackoff)
	defer idle.Stop()
	lastSweep := time.Now()
	for {
		err := u.cycle(ctx)
		if now := time.Now(); now.Sub(lastSweep) >= sweepEvery {
			// Blobs leave as their batches are delivered; this finds what a session that
			// failed after committing its blobs left behind.
			u.sp.SweepBlobs()
			lastSweep = now
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			// A spool or outbox error: the disk may be full or read-only. Keep trying, more
			// slowly each time, since giving up would stall delivery for good.
			u.noteFailure(err)
			u.log.Error("upload cycle failed", "error", err, "consecutive", failures+1)
			wait := u.backoff(failures)
			failures++
			if !retry.Sleep(ctx, wait) {
				return nil
			}
			continue
		}
		failures = 0
		idle.Reset(u.cfg.MaxBackoff) // since Go 1.23 a Reset timer never delivers a stale tick
		select {
		case <-ctx.Done():
			return nil
		case <-u.sp.Notify():
		case <-idle.C:
			// A safety net: anything that reached the spool without a signal is picked up.
		}
	}
}

// sweepEvery is how often Run looks for blobs nothing names.
const sweepEvery = time.Minute

// cycle delivers the batches on disk, then batches and delivers pending records, until the
// spool is empty.
func (u *Uploader) cycle(ctx context.Context) error {
	for {
		batches, err := u.sp.Batches()
		if err != nil {
			return err
		}
		for _, b := range batches {
			if err := u.deliver(ctx, b); err != nil {
				return err
			}
		}
		pending, err := u.sp.Pending()
		if err != nil {
			return err
		}
		if len(pending) == 0 {
			return nil
		}
		if u.linger(ctx, oldestPending(pending)) {
			if pending, err = u.sp.Pending(); err != nil {
				return err
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sent, err := u.formAndDeliver(ctx, pending)
		if err != nil {
			return err
		}
		if sent == 0 {
			return nil // every pending record turned out broken, and the spool set it aside
		}
	}
}

// formAndDeliver forms pending records into batches and delivers them, Concurrency at a time,
// forming the next batch while earlier ones are on the wire: forming is local disk work and
// delivering is mostly waiting for the pipeline, so a backlog drains in about the longer of
// the two rather than their sum, and its first batch leaves as soon as it is formed rather
// than after the whole backlog is. The former stays at most one batch ahead of the
// deliverers. It returns how many batches it handed to deliver.
//
// The first delivery that fails stops the others (the pipeline is most likely down for all
// of them). A batch formed but not delivered when it stops is on disk, and the next cycle
// sends it with the others.
func (u *Uploader) formAndDeliver(ctx context.Context, pending []spool.Entry) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	formed := make(chan spool.Batch) // unbuffered: the former stays one batch ahead
	var formErr error                // written before formed is closed, read after
	go func() {
		defer close(formed)
		for _, chunk := range chunks(pending, u.cfg.BatchMaxRecords, u.cfg.BatchMaxBytes) {
			if ctx.Err() != nil {
				return
			}
			b, err := u.sp.FormBatch(chunk)
			if err != nil {
				formErr = err
				return
			}
			if b.ID == "" {
				continue
			}
			u.log.Debug("batch formed", "batch", b.ID, "records", b.Records, "bytes", b.Bytes, "size", b.Size)
			select {
			case formed <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	var (
		mu       sync.Mutex
		sent     int
		firstErr error
		wg       sync.WaitGroup
	)
	for range u.cfg.Concurrency {
		wg.Go(func() {
			for b := range formed {
				mu.Lock()
				stopped := firstErr != nil
				if !stopped {
					sent++
				}
				mu.Unlock()
				if stopped {
					continue // drain formed so the former can finish
				}
				if err := u.deliver(ctx, b); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
				}
			}
		})
	}
	wg.Wait()
	return sent, errors.Join(firstErr, formErr)
}

// linger waits until the pending records fill a batch or the oldest of them has waited
// BatchLinger since it was made, so a burst of mail goes out in one request rather than one
// per message, while no record waits longer than BatchLinger for company: records that came
// in while a delivery was under way have already waited. It reports whether it waited.
//
// oldest comes from the record id, made when the message began to arrive, so a slow message
// lingers less, never more.
func (u *Uploader) linger(ctx context.Context, oldest time.Time) bool {
	if u.cfg.BatchLinger <= 0 || u.full() {
		return false
	}
	now := time.Now()
	// An id from the future (a clock step back) must not hold records for longer.
	wait := min(oldest.Add(u.cfg.BatchLinger).Sub(now), u.cfg.BatchLinger)
	if wait <= 0 {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for !u.full() {
		select {
		case <-ctx.Done():
			return true
		case <-t.C:
			return true
		case <-u.sp.Notify():
		}
	}
	return true
}

func (u *Uploader) full() bool {
	us := u.sp.Usage()
	return us.Records >= u.cfg.BatchMaxRecords || us.RecordBytes >= u.cfg.BatchMaxBytes
}

// recordTime is when a record or batch id was made; the zero time when id is not a ULID.
func recordTime(id string) time.Time {
	v, err := ulid.ParseStrict(id)
	if err != nil {
		return time.Time{}
	}
	return v.Timestamp()
}

// oldestPending is when the oldest pending record was made. Groups are listed in commit
// order, and a record made earlier can commit later (a slow message), so all are looked at.
func oldestPending(pending []spool.Entry) time.Time {
	oldest := pending[0].Oldest
	for _, e := range pending[1:] {
		if e.Oldest.Before(oldest) {
			oldest = e.Oldest
		}
	}
	return oldest
}

// chunks splits pending commit groups, in order, into batches of at most maxRecords records
// and maxBytes bytes. A group is never split, so a group larger than either bound (one large
// record; groups hold at most 128 records and 1 MiB) makes a batch of its own rather than
// never going out.
func chunks(pending []spool.Entry, maxRecords int, maxBytes int64) [][]spool.Entry {
	var out [][]spool.Entry
	start, n, size := 0, 0, int64(0)
	for i, e := range pending {
		if i > start && (n+e.Records > maxRecords || size+e.Bytes > maxBytes) {
			out = append(out, pending[start:i:i])
			start, n, size = i, 0, 0
		}
		n += e.Records
		size += e.Bytes
	}
	if start < len(pending) {
		out = append(out, pending[start:])
	}
	return out
}

// deliver sends one batch and settles it: deleted when delivered, dead-lettered when it has
// outlived MaxAge, and split when refused, the parts delivered the same way before deliver
// returns. The parts are batch files, so if deliver stops early (an error, a crash) the next
// cycle finds them like any other batch.
func (u *Uploader) deliver(ctx context.Context, first spool.Batch) error {
	// Depth first, so the refused records are found before anything else is sent. Each split
	// pushes two parts in place of one, and parts shrink by half, so the stack holds at most
	// about log2(records) batches.
	stack := []spool.Batch{first}
	for len(stack) > 0 {
		b := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		v, err := u.sender.send(ctx, b)
		if err != nil {
			if ctx.Err() == nil {
				if born, old := u.expired(b, time.Now()); old {
					return u.expire(b, born, err.Error())
				}
			}
			return fmt.Errorf("deliver batch %s: %w", b.ID, err)
		}
		switch {
		case v.delivered:
			if err := u.delivered(b); err != nil {
				return err
			}
		case v.expired:
			if err := u.expire(b, u.oldest(b), v.reason); err != nil {
				return err
			}
		default:
			parts, err := u.reject(b, v)
			if err != nil {
				return err
			}
			for _, p := range slices.Backward(parts) {
				stack = append(stack, p) // the first part on top: records keep their order
			}
		}
	}
	return nil
}

// Collectors are the uploader's Prometheus series of its own: the delivery latency.
func (u *Uploader) Collectors() []prometheus.Collector { return []prometheus.Collector{u.latency} }

func (u *Uploader) delivered(b spool.Batch) error {
	if born := u.oldest(b); !born.IsZero() {
		u.latency.Observe(time.Since(born).Seconds())
	}
	// If the delete fails the batch stays and is sent again under the same Idempotency-Key,
	// which the pipeline ignores; it still counts as delivered, and the error makes Run back
	// off, since the disk is in trouble.
	err := u.sp.DeleteBatch(b.ID)
	u.update(func(s *Stats) {
		s.BatchesDelivered++
		if b.Records > 0 {
			s.RecordsDelivered += int64(b.Records)
		}
		s.LastDeliveryAt = time.Now()
		s.AuthFailing = false
	})
	return err
}

// expired reports whether b holds a record older than MaxAge, and when its oldest record was
// made.
func (u *Uploader) expired(b spool.Batch, now time.Time) (born time.Time, old bool) {
	if u.cfg.MaxAge < 0 {
		return time.Time{}, false
	}
	born = u.oldest(b)
	return born, now.Sub(born) > u.cfg.MaxAge
}

// oldest is when the oldest record in b was made: the time in the first record's id (records
// are batched in arrival order), or the batch id's time when that is earlier or the first
// record cannot be read. A batch is formed after its records arrive, so its own time alone
// would restart the clock for records that waited in the spool during an outage.
func (u *Uploader) oldest(b spool.Batch) time.Time {
	born := recordTime(b.ID)
	if t := recordTime(u.sp.FirstRecordID(b.ID)); !t.IsZero() && t.Before(born) {
		born = t
	}
	return born
}

// expire moves a batch that outlived MaxAge undelivered to the dead-letter folder.
func (u *Uploader) expire(b spool.Batch, born time.Time, reason string) error {
	u.log.Error("batch undeliverable for longer than max age; moving it to the dead-letter folder",
		"batch", b.ID, "records", b.Records, "bytes", b.Bytes, "oldest", born.UTC().Format(time.RFC3339),
		"age", time.Since(born).Round(time.Second), "max_age", u.cfg.MaxAge, "last_error", reason)
	if err := u.sp.DeadLetter(b.ID); err != nil {
		return err
	}
	u.update(func(s *Stats) {
		s.BatchesDeadLettered++
		if b.Records > 0 {
			s.RecordsDeadLettered += int64(b.Records)
			s.RecordsExpired += int64(b.Records)
		}
	})
	return nil
}

// backoff returns the wait before retry number attempt+1: exponential from MinBackoff, capped
// at MaxBackoff, with the upper half jittered so that sensors restarted together do not retry
// in step.
func (u *Uploader) backoff(attempt int) time.Duration {
	d := u.cfg.MinBackoff
	for i := 0; i < attempt && d < u.cfg.MaxBackoff; i++ {
		d *= 2
	}
	return retry.Jitter(min(d, u.cfg.MaxBackoff))
}
