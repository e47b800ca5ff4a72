package sensor

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/journalsensor/sensor/uploader"
)

// Metrics are the front doors' counters. One value is shared by the intake, the SMTP server
// and the admin endpoint; it is passed in, never global.
type Metrics struct {
	messagesStarted  atomic.Int64
	messagesAccepted atomic.Int64
	messagesFailed   atomic.Int64
	bytesAccepted    atomic.Int64
	spoolFull        atomic.Int64  // 452 answers: the spool budget was reached
	conns            connMetrics   // open and refused connections (listener.go)
	access           accessMetrics // what the host access table did (access.go)

	clientCerts clientCertMetrics // client certificates refused (clientcert.go)
	milter      milterMetrics     // copies the milter door could not record (milter.go)
	hist        histograms        // message sizes, end of data to reply (prom.go)
	doors       doorTimes         // when each front door last accepted (statusfields.go)

	mu sync.Mutex
	// replies counts SMTP replies by code where they are decided (smtpReply), whether or
	// not the client was still there to read them.
	replies map[int]int64
	// untrusted counts copies refused for want of proof of origin, by the reason's label.
	untrusted map[string]int64
}

// untrustedReasons are the labels of sensor_messages_untrusted_total shown at 0 before the
// first refusal, one per way a proof fails; a copy that fails two proofs counts under both
// joined by +.
var untrustedReasons = []string{"headers_unreadable", "source_header_missing", "source_header_mismatch",
	"tenant_conflict", "tenant_foreign", "tenant_missing"}

func (m *Metrics) countUntrusted(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.untrusted == nil {
		m.untrusted = map[string]int64{}
	}
	m.untrusted[reason]++
}

func (m *Metrics) untrustedCounts() map[string]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := maps.Clone(m.untrusted)
	if counts == nil {
		counts = map[string]int64{}
	}
	for _, r := range untrustedReasons {
		counts[r] += 0
	}
	return counts
}

func (m *Metrics) countReply(code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.replies == nil {
		m.replies = map[int]int64{}
	}
	m.replies[code]++
}

// replyCounts returns the replies by code, every code smtpReply can decide included.
func (m *Metrics) replyCounts() map[int]int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	counts := maps.Clone(m.replies)
	if counts == nil {
		counts = map[int]int64{}
	}
	for _, c := range decidedCodes {
		counts[c] += 0
	}
	return counts
}

// UploadStats is what the admin server needs of the uploader.
type UploadStats interface {
	Stats() uploader.Stats
}

// SpoolHealth is what the admin server needs of the spool: Health returns nil while it can
// commit, else why not (spool.Spool.Health).
type SpoolHealth interface {
	Health() error
}

// Admin serves /healthz (alive), /readyz (ready to take mail and deliver it), /metrics
// (Prometheus text format), /status (the same facts as JSON, for `sensor healthcheck`
// and people) and / (a status page that shows /status). With a Token, everything but
// /healthz and /readyz (which probes call without credentials) and the page's shell (which
// holds no data) needs it.
type Admin struct {
	Metrics *Metrics
	Uploads UploadStats
	// Spool, when set, makes readiness follow whether the spool can commit: a sensor whose
	// disk is full or read-only answers 451 to every copy and must not be sent more.
	Spool   SpoolHealth
	Started time.Time
	Version string
	// Listening reports whether the SMTP listener is up.
	Listening func() bool
	// Logger gets one line each time readiness changes, as /readyz or /status finds it.
	Logger *slog.Logger
	// Paths are directories, such as a relative --data-dir, that /status must not show,
	// even in an error's text; absolute paths are never shown anyway.
	Paths []string
	// Token, when set, is the bearer token /metrics, /status and any other page but the
	// probes and the status page's shell need: "Authorization: Bearer <Token>", else 401.
	Token string
	// SpoolBudget is --spool-max-bytes (0: none), for sensor_spool_budget_bytes: an alert
	// on the backlog needs the budget beside it.
	SpoolBudget int64
	// Enforcement, when set, adds enforcement's backlog and outcomes to /status and /metrics;
	// EnforceMode is --enforce-mode.
	Enforcement EnforceStats
	EnforceMode string

	mu        sync.Mutex
	lastCause string // the cause readiness last reported (notReady), "" for ready

	regOnce sync.Once
	reg     *prometheus.Registry
}

// Handler returns the admin HTTP handler.
func (a *Admin) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if problem, _ := a.readiness(); problem != "" {
			http.Error(w, "not ready: "+problem, http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.Handle("GET /metrics", a.metricsHandler())
	mux.Handle("GET /{$}", statusPage())
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false) // "<path>" as such, for people
		_ = enc.Encode(a.status())
	})
	if a.Token == "" {
		return mux
	}
	want := sha256.Sum256([]byte(a.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The status page's shell at / is public too: it is the same embedded file for every
		// sensor and holds no data, and a browser cannot send a bearer token when it first
		// opens a URL. The page asks for the token and sends it with each /status fetch,
		// which stays guarded like everything else.
		if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/" || bearerIs(r, &want) {
			mux.ServeHTTP(w, r)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="sensor admin"`)
		http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
	})
}

// bearerIs reports whether r carries "Authorization: Bearer <token>" whose token's SHA-256
// is want. Hashing both sides first makes the comparison constant-time in the token's length
// too, which subtle.ConstantTimeCompare alone would leak.
func bearerIs(r *http.Request, want *[sha256.Size]byte) bool {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && strings.EqualFold(scheme, "Bearer")
}

// readiness says why the sensor should not get traffic, or "" when it should, and what the
// spool's health is (nil: it can commit). A change of cause (ready, listener, spool,
// credentials) is logged once: not the changing details of one cause, such as the spool's
// latest error.
func (a *Admin) readiness() (why string, spoolErr error) {
	if a.Spool != nil {
		spoolErr = a.Spool.Health()
	}
	why, cause := a.notReady(spoolErr)
	a.mu.Lock()
	was := a.lastCause
	a.lastCause = cause
	a.mu.Unlock()
	if cause != was && a.Logger != nil {
		if cause != "" {
			attrs := []any{"cause", cause, "reason", why}
			if spoolErr != nil {
				attrs = append(attrs, "error", spoolErr) // the full error, paths and all: the log is not public
			}
			a.Logger.Warn("not ready; /readyz fails until this clears", attrs...)
		} else {
			a.Logger.Info("ready again", "was", was)
		}
	}
	return why, spoolErr
}

// notReady says why the sensor should not get traffic, or "" when it should, and names the
// cause in a word.
func (a *Admin) notReady(spoolErr error) (why, cause string) {
	if a.Listening != nil && !a.Listening() {
		return "SMTP listener is not up", "listener"
	}
	if spoolErr != nil {
		// Every copy gets 451 meanwhile: its sender must try another sensor or later.
		return "spool cannot commit: " + errorKind(spoolErr), "spool"
	}
	if a.Uploads != nil && authFailing(a.Uploads) {
		// Mail is still accepted and kept, but an operator must fix the token: make it loud.
		return "the pipeline rejects our credentials (401/403); check --pipeline-token-file", "credentials"
	}
	return "", ""
}

type status struct {
	Version          string `json:"version"`
	UptimeSeconds    int64  `json:"uptime_seconds"`
	Ready            bool   `json:"ready"`
	NotReadyReason   string `json:"not_ready_reason,omitempty"`
	SpoolOK          bool   `json:"spool_ok"`
	SpoolError       string `json:"spool_error,omitempty"`
	MessagesAccepted int64  `json:"messages_accepted"`
	MessagesFailed   int64  `json:"messages_failed"`
	SpoolFull        int64  `json:"spool_full"`
	// MilterUnrecorded counts the messages the milter passed on (or tempfailed) without a
	// record; MilterLastUnrecordedAt says when the last was.
	MilterUnrecorded       int64          `json:"milter_unrecorded"`
	MilterLastUnrecordedAt *time.Time     `json:"milter_last_unrecorded_at,omitempty"`
	Uploads                uploader.Stats `json:"uploads"`
	Enforcement            *enforceStatus `json:"enforcement,omitempty"`
	// RepliesByCode counts the SMTP replies the sensor decided, by code (as
	// sensor_smtp_replies_total); RefusedByReason what it turned away, by why
	// (Metrics.refusedByReason). Both list every key from the start, at 0.
	RepliesByCode   map[int]int64    `json:"replies_by_code"`
	RefusedByReason map[string]int64 `json:"refused_by_reason"`
	// LastMessageAt says when each front door (smtp, milter) last accepted a message, null
	// for one that has accepted none since the sensor started.
	LastMessageAt map[string]*time.Time `json:"last_message_at"`
	// Now is the sensor's clock when it answered: the status page tells ages against it, not
	// against the clock of the phone it runs on.
	Now time.Time `json:"now"`
}

func (a *Admin) status() status {
	s := status{
		Version:          a.Version,
		UptimeSeconds:    int64(time.Since(a.Started).Seconds()),
		MessagesAccepted: a.Metrics.messagesAccepted.Load(),
		MessagesFailed:   a.Metrics.messagesFailed.Load(),
		SpoolFull:        a.Metrics.spoolFull.Load(),
		RepliesByCode:    a.Metrics.replyCounts(),
		RefusedByReason:  a.Metrics.refusedByReason(),
		LastMessageAt:    a.Metrics.doors.snapshot(),
		Now:              time.Now().UTC(),
	}
	if _, n, last := a.Metrics.milter.snapshot(); n > 0 {
		s.MilterUnrecorded, s.MilterLastUnrecordedAt = n, &last
	}
	if a.Uploads != nil {
		s.Uploads = a.Uploads.Stats()
		s.Uploads.LastError = a.hidePaths(s.Uploads.LastError)
	}
	s.Enforcement = a.enforceStatus()
	var spoolErr error
	s.NotReadyReason, spoolErr = a.readiness()
	s.Ready = s.NotReadyReason == ""
	s.SpoolOK = spoolErr == nil
	if spoolErr != nil {
		s.SpoolError = errorKind(spoolErr)
	}
	return s
}

// errorKind says what kind of failure err is, without the paths its text may name:
// "no space left on device", "read-only file system", "permission denied" and the like.
// /readyz and /status say this much to anyone; the log has the rest.
func errorKind(err error) string {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	case errors.Is(err, fs.ErrNotExist):
		return "file does not exist"
	}
	return "an I/O error (the sensor's log has the details)"
}

// pathLike is an absolute or explicitly relative path (also as a file:// URL) standing as a
// word of an error's text: after a space, quote, bracket, '=' or ',' (so not the path of
// an https:// URL, which follows a host).
var pathLike = regexp.MustCompile(`(^|[\s"'(\[=,])(?:file://)?(?:~|\.{1,2})?/` + pathRest)

// pathRest is the rest of a path, up to a space, quote, bracket, ',' or ';', or a ':' that
// ends it ("open /x/y: no space left on device").
const pathRest = `(?:[^\s"',;:()\[\]]|:[^\s"',;:()\[\]])*`

// hidePaths replaces the paths in an error's text with <path>: those of a.Paths, and any
// other that looks like one. URLs lose their user info, which may be a credential.
func (a *Admin) hidePaths(s string) string {
	for _, dir := range a.Paths {
		if dir == "" {
			continue
		}
		forms := []string{dir, filepath.Clean(dir)}
		if abs, err := filepath.Abs(dir); err == nil {
			forms = append(forms, abs)
		}
		for _, f := range forms {
			if f == "." || f == "/" {
				continue // would hide every dot or slash, not a path
			}
			s = regexp.MustCompile(regexp.QuoteMeta(f)+pathRest).ReplaceAllString(s, "<path>")
		}
	}
	s = pathLike.ReplaceAllString(s, "$1<path>")
	return userInfo.ReplaceAllString(s, "$1")
}

// userInfo is the user[:password]@ of an http(s) URL.
var userInfo = regexp.MustCompile(`(https?://)[^/@\s"']*@`)

// collect reads the sensor's counters for a scrape.
func (a *Admin) collect(s series) {
	m := a.Metrics
	s.counter("sensor_smtp_messages_started_total", "Messages begun through either door: SMTP DATA/BDAT, or a milter message's first header field (the name predates the milter door).", float64(m.messagesStarted.Load()))
	s.counter("sensor_smtp_messages_accepted_total", "Messages whose record was durable before the answer: 250 on the SMTP door, accept on the milter door.", float64(m.messagesAccepted.Load()))
	s.counter("sensor_smtp_messages_failed_total", "Messages begun but not recorded, through either door: refused or failed (4xx/5xx), or on the milter door aborted, cut off or answered by --milter-on-fault.", float64(m.messagesFailed.Load()))
	s.counter("sensor_smtp_bytes_accepted_total", "Message bytes accepted.", float64(m.bytesAccepted.Load()))
	s.counter("sensor_smtp_spool_full_total", "Messages answered 452 4.3.1 because the spool budget was reached.", float64(m.spoolFull.Load()))
	s.gauge("sensor_smtp_connections", "SMTP connections open now.", float64(m.conns.open.Load()))
	const refused = "sensor_smtp_connections_refused_total"
	const refusedHelp = "SMTP connections refused with 421 4.7.0 as they came in: --max-connections reached (total) or the client's address at --max-connections-per-ip (per_ip)."
	s.counter(refused, refusedHelp, float64(m.conns.refusedTotal.Load()), "reason", refusedTotal)
	s.counter(refused, refusedHelp, float64(m.conns.refusedPerIP.Load()), "reason", refusedPerIP)
	const repliesHelp = "SMTP replies the sensor decides, by code: to each message that gets one (DATA, BDAT LAST), refusals at MAIL, 421 to connections while shutting down. " +
		"Not counted: replies go-smtp sends itself (greeting, EHLO, MAIL and RCPT accepted, syntax, SIZE at MAIL, BDAT over SIZE, idle timeout)."
	counts := m.replyCounts()
	for _, code := range slices.Sorted(maps.Keys(counts)) {
		s.counter("sensor_smtp_replies_total", repliesHelp, float64(counts[code]), "code", strconv.Itoa(code))
	}
	const untrustedHelp = "Copies refused with 550 5.7.1 because no configured header proof of origin held (--m365-tenant, --source-header), by reason."
	ucounts := m.untrustedCounts()
	for _, r := range slices.Sorted(maps.Keys(ucounts)) {
		s.counter("sensor_messages_untrusted_total", untrustedHelp, float64(ucounts[r]), "reason", r)
	}
	m.access.collect(s)
	m.conns.tls.collect(s)
	m.clientCerts.collect(s)
	m.milter.collect(s)
	a.collectEnforce(s)
	if a.Uploads == nil {
		return
	}
	st := a.Uploads.Stats()
	s.counter("sensor_upload_records_delivered_total", "Records the pipeline accepted.", float64(st.RecordsDelivered))
	s.counter("sensor_upload_batches_delivered_total", "Batches the pipeline accepted.", float64(st.BatchesDelivered))
	s.counter("sensor_upload_attempts_total", "Delivery attempts.", float64(st.Attempts))
	s.counter("sensor_upload_failures_total", "Delivery attempts that failed.", float64(st.Failures))
	s.counter("sensor_upload_records_deadlettered_total", "Records moved to the dead-letter folder.", float64(st.RecordsDeadLettered))
	s.gauge("sensor_upload_auth_failing", "1 while the pipeline rejects our credentials.", float64(boolInt(st.AuthFailing)))
	s.gauge("sensor_spool_pending_records", "Records committed and not yet batched.", float64(st.PendingRecords))
	s.gauge("sensor_spool_pending_batches", "Batches waiting for delivery.", float64(st.PendingBatches))
	s.gauge("sensor_spool_pending_bytes", "Spool bytes waiting for delivery.", float64(st.PendingBytes))
	s.gauge("sensor_spool_budget_bytes", "The spool's budget (--spool-max-bytes); past it new messages get 452 4.3.1. 0: none.", float64(a.SpoolBudget))
	s.gauge("sensor_spool_broken_entries", "Spool entries that could not be read: damaged log segments, log records that are not JSON, legacy *.broken files. Kept for an operator.", float64(st.BrokenRecords))
	s.gauge("sensor_spool_dead_letters", "Batch files in the dead-letter folder.", float64(st.DeadLetters))
	age := 0.0
	if !st.OldestPendingAt.IsZero() {
		age = time.Since(st.OldestPendingAt).Seconds()
	}
	s.gauge("sensor_spool_oldest_pending_record_age_seconds", "Age of the oldest record not yet delivered to the pipeline; 0 when none waits.", age)
	if !st.LastDeliveryAt.IsZero() {
		s.gauge("sensor_upload_last_delivery_timestamp_seconds", "When the pipeline last accepted a batch.", float64(st.LastDeliveryAt.Unix()))
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// authFailing asks the uploads for the one thing readiness needs, cheaply when they can say
// it alone: probes come every few seconds, and Stats looks at the whole spool.
func authFailing(u UploadStats) bool {
	if f, ok := u.(interface{ AuthFailing() bool }); ok {
		return f.AuthFailing()
	}
	return u.Stats().AuthFailing
}
