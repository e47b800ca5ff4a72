package uploader

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-cleanhttp"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/journalsensor/sensor/internal/retry"
	"github.com/journalsensor/sensor/spool"
)

// httpSender POSTs batches to {URL}/v1/records, after PUTting the blobs they name to
// {URL}/v1/blobs/{sha256}.
type httpSender struct {
	u        *Uploader
	endpoint string
	blobs    string // the blob endpoint's prefix, ending in "/"
	token    string
	client   *http.Client
	flight   flight // one upload per blob at a time
}

var _ sender = (*httpSender)(nil)

func newHTTPSender(u *Uploader, p *url.URL) (*httpSender, error) {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, fmt.Errorf("uploader: %s: %w", field, err)) }
	if p.Host == "" {
		bad("URL", errors.New("no host"))
	}
	if p.User != nil {
		// Credentials in a URL end up in logs and error messages; the token file is the place.
		bad("URL", errors.New("must not carry user info; use the token"))
	}
	if p.RawQuery != "" || p.Fragment != "" {
		bad("URL", errors.New("must not have a query or fragment"))
	}
	token := strings.TrimSpace(u.cfg.Token)
	if strings.ContainsFunc(token, func(r rune) bool { return r < 0x21 || r == 0x7f || r >= utf8.RuneSelf }) {
		bad("Token", errors.New("contains characters not allowed in an HTTP header"))
	}

	client, err := newClient(u.cfg)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ep := *p
	ep.Path = strings.TrimSuffix(p.Path, "/") + "/v1/records"
	ep.RawPath = ""
	bp := ep
	bp.Path = strings.TrimSuffix(p.Path, "/") + "/v1/blobs/"
	return &httpSender{u: u, endpoint: ep.String(), blobs: bp.String(), token: token, client: client}, nil
}

// PipelineClient is the HTTP client the sensor talks to the pipeline with, for records and
// for the verdict feed alike: TLS 1.2 or later against CAFile (or the system roots), the
// client certificate when set, HTTP/2 with pings, RequestTimeout per attempt, no redirects.
func PipelineClient(cfg Config) (*http.Client, error) {
	return newClient(cfg.withDefaults())
}

func newClient(cfg Config) (*http.Client, error) {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, fmt.Errorf("uploader: %s: %w", field, err)) }
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			bad("CAFile", err)
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				bad("CAFile", fmt.Errorf("%s: no PEM certificate found", cfg.CAFile))
			}
			tlsCfg.RootCAs = pool
		}
	}
	switch {
	case cfg.ClientCertFile != "" && cfg.ClientKeyFile != "":
		cert, err := tls.LoadX509KeyPair(cfg.ClientCertFile, cfg.ClientKeyFile)
		if err != nil {
			bad("ClientCertFile", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	case cfg.ClientCertFile != "":
		bad("ClientKeyFile", errors.New("needed with ClientCertFile"))
	case cfg.ClientKeyFile != "":
		bad("ClientCertFile", errors.New("needed with ClientKeyFile"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	tr := cleanhttp.DefaultPooledTransport() // keep-alive, proxy from the environment
	tr.TLSClientConfig = tlsCfg
	tr.ForceAttemptHTTP2 = true // a custom TLSClientConfig turns HTTP/2 off unless asked for
	// One HTTP/2 connection carries every upload, so a connection that died silently (a NAT or
	// load balancer forgot it) would cost each attempt its full timeout: ping it when it has
	// been quiet, and drop it when the ping goes unanswered.
	tr.HTTP2 = &http.HTTP2Config{SendPingTimeout: h2PingAfter, PingTimeout: h2PingTimeout}
	client := &http.Client{
		Transport: tr,
		// Per attempt: retryablehttp makes one http.Client.Do call for each.
		Timeout: cfg.RequestTimeout,
		// A redirect could lead the records to another host, or to plain http; a pipeline has
		// no business redirecting uploads, so the 3xx is treated as a failure and logged.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return client, nil
}

const (
	h2PingAfter   = 30 * time.Second
	h2PingTimeout = 15 * time.Second
)

// errExpired stops the retries of a batch that has outlived Config.MaxAge.
var errExpired = errors.New("batch outlived max age")

// class is what a response means for the batch.
type class int

const (
	classDelivered class = iota
	classRetry           // the pipeline or the path to it is not ready: try again
	classAuth            // our credentials are wrong: keep everything, try again slowly
	classPoison          // the batch itself is refused: retrying cannot help
)

func classify(status int) class {
	switch {
	case status >= 200 && status < 300:
		return classDelivered
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return classAuth
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge ||
		status == http.StatusUnprocessableEntity:
		return classPoison
	default:
		// 408, 429, 5xx, and what a pipeline should not answer to a well-formed upload (1xx,
		// 3xx, 404, 405, 415...): nothing is lost by trying again. Treating a 404 from a
		// mistyped URL as poison would split and dead-letter every record we have.
		return classRetry
	}
}

func (h *httpSender) send(ctx context.Context, b spool.Batch) (verdict, error) {
	// A record is sent only once the pipeline has every blob it names.
	if v, stop, err := h.storeBlobs(ctx, b); stop {
		return v, err
	}
	a := &attempts{h: h, b: b}
	rc := &retryablehttp.Client{
		HTTPClient: h.client,
		// Never give up while ctx lives: the spool holds the batch, and the pipeline will be back.
		RetryMax:       math.MaxInt,
		CheckRetry:     a.checkRetry,
		Backoff:        a.backoff,
		RequestLogHook: a.starting,
	}
	// Each attempt reopens the spool file, and net/http closes it when the request is done,
	// so an upload body is never held in memory.
	body := retryablehttp.ReaderFunc(func() (io.Reader, error) {
		f, err := h.u.sp.OpenBatch(b.ID)
		if err != nil {
			return nil, err
		}
		return f, nil
	})
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPost, h.endpoint, body)
	if err != nil {
		return verdict{}, err
	}
	req.ContentLength = b.Size // retryablehttp cannot know the length of an *os.File
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	req.Header.Set("Idempotency-Key", b.ID)
	req.Header.Set("User-Agent", h.u.cfg.UserAgent)
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}

	resp, err := rc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return verdict{}, ctx.Err()
		}
		if errors.Is(err, errExpired) {
			return verdict{expired: true, status: a.status, reason: a.reason}, nil
		}
		return verdict{}, err
	}
	defer drain(resp.Body)
	if classify(resp.StatusCode) == classDelivered {
		return verdict{delivered: true, status: resp.StatusCode}, nil
	}
	// checkRetry retries every other class, so this is poison.
	return verdict{status: resp.StatusCode, reason: a.reason}, nil
}

// drain reads what is left of a response (bounded) so the connection can be reused.
func drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	_ = body.Close()
}

// attempts follows the delivery of one batch, or of one of its blobs, through retryablehttp:
// it counts, logs and classifies each attempt and picks the wait before the next.
type attempts struct {
	h *httpSender
	b spool.Batch
	// For a blob request: the blob, its size and the method. A HEAD's 404 is an answer
	// (upload it), not a failure.
	blob   string
	size   int64
	method string

	n      int
	start  time.Time
	status int    // the last HTTP status, 0 after a network error
	reason string // the last failure: the status and the start of the response body, or the error
	born   time.Time
}

// expired reports whether the batch has outlived MaxAge; it reads the batch once.
func (a *attempts) expired() bool {
	u := a.h.u
	if u.cfg.MaxAge < 0 {
		return false
	}
	if a.born.IsZero() {
		a.born = u.oldest(a.b)
	}
	return time.Since(a.born) > u.cfg.MaxAge
}

func (a *attempts) starting(_ retryablehttp.Logger, _ *http.Request, _ int) {
	a.start = time.Now()
}

func (a *attempts) checkRetry(ctx context.Context, resp *http.Response, err error) (bool, error) {
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	a.n++
	u := a.h.u
	attrs := []any{"batch", a.b.ID, "records", a.b.Records, "bytes", a.b.Bytes, "size", a.b.Size, "attempt", a.n,
		"duration", time.Since(a.start).Round(time.Millisecond)}
	if a.blob != "" {
		u.update(func(s *Stats) { s.BlobRequests++ })
		attrs = []any{"blob", a.blob, "method", a.method, "size", a.size, "batch", a.b.ID, "attempt", a.n,
			"duration", time.Since(a.start).Round(time.Millisecond)}
	} else {
		u.update(func(s *Stats) { s.Attempts++ })
	}
	if err != nil {
		// Network and TLS errors alike, an untrusted certificate included: the operator may be
		// fixing the CA file or the pipeline its certificate, and the batch must wait for that.
		a.status, a.reason = 0, err.Error()
		u.noteFailure(err)
		u.log.Warn("upload attempt failed", append(attrs, "error", err)...)
		return a.retry()
	}
	attrs = append(attrs, "status", resp.StatusCode)
	a.status = resp.StatusCode
	if a.method == http.MethodHead && resp.StatusCode == http.StatusNotFound {
		return false, nil // the pipeline does not have the blob yet
	}
	switch classify(resp.StatusCode) {
	case classDelivered:
		if a.blob == "" {
			u.log.Info("pipeline accepted batch", attrs...)
		}
		return false, nil
	case classPoison:
		a.reason = refusal(resp)
		u.noteFailure(errors.New(a.reason))
		return false, nil
	case classAuth:
		a.reason = refusal(resp)
		u.noteFailure(errors.New(a.reason))
		u.update(func(s *Stats) { s.AuthFailing = true })
		u.log.Error("pipeline rejected our credentials; keeping the batch and retrying",
			append(attrs, "reason", a.reason)...)
		return a.retry()
	default:
		a.reason = refusal(resp)
		u.noteFailure(errors.New(a.reason))
		level := slog.LevelWarn
		if s := resp.StatusCode; s < 400 || (s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests) {
			// A redirect, a 404 or another stray status is a misconfiguration, not an outage.
			level = slog.LevelError
		}
		u.log.Log(context.Background(), level, "pipeline not ready; will retry", append(attrs, "reason", a.reason)...)
		return a.retry()
	}
}

// retry says to try again, unless the batch has outlived MaxAge: whatever the cause, an auth
// failure included, a batch is not retried for ever.
func (a *attempts) retry() (bool, error) {
	if a.expired() {
		return false, errExpired
	}
	return true, nil
}

// backoff picks the wait before the next attempt. attempt counts from 0.
func (a *attempts) backoff(_, _ time.Duration, attempt int, resp *http.Response) time.Duration {
	cfg := a.h.u.cfg
	if resp != nil {
		if classify(resp.StatusCode) == classAuth {
			return cfg.MaxBackoff // slow: a human has to fix the token
		}
		if d, ok := retry.After(resp.Header.Get("Retry-After"), time.Now()); ok {
			// The server knows best when it will be back, but a 0 must not become a hot loop,
			// and retryablehttp would otherwise wait as long as any server says.
			return min(max(d, cfg.MinBackoff), cfg.MaxRetryAfter)
		}
	}
	return a.h.u.backoff(attempt)
}

// refusal describes a non-2xx response for logs and Stats: the status and the start of the
// body, which is where a pipeline says what it disliked.
func refusal(resp *http.Response) string {
	buf := make([]byte, 256)
	n, _ := io.ReadFull(resp.Body, buf)
	text := strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return ' '
		}
		return r
	}, string(buf[:n]))
	text = strings.TrimSpace(text)
	if text == "" {
		return "HTTP " + resp.Status
	}
	return "HTTP " + resp.Status + ": " + text
}
