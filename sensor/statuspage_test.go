package sensor

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/uploader"
)

func adminGet(t *testing.T, h http.Handler, path, auth string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// With an admin token, the page's shell at / is served to anyone (it is the same file in
// every binary, and a browser opening the URL has no way to send a token yet), while the
// data it shows, /status, and every other path still need the token.
func TestStatusPageShellIsPublicItsDataIsNot(t *testing.T) {
	const token = "adm-0123456789abcdef"
	m := &Metrics{}
	m.messagesAccepted.Add(5)
	h := (&Admin{Metrics: m, Started: time.Now(), Version: "v-secret-build", Token: token}).Handler()

	page := adminGet(t, h, "/", "")
	if page.Code != http.StatusOK || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/ without a token: %d %q, want 200 text/html", page.Code, page.Header().Get("Content-Type"))
	}
	body := page.Body.String()
	if strings.Contains(body, "v-secret-build") || strings.Contains(body, token) {
		t.Error("the public shell carries the sensor's data")
	}
	if !strings.Contains(body, `Authorization`) || !strings.Contains(body, "sessionStorage") {
		t.Error("the page does not send a stored token with its fetches")
	}
	for _, path := range []string{"/status", "/metrics", "/index.html", "/status/", "//status", "/?x=/status"} {
		rec := adminGet(t, h, path, "")
		if path == "/?x=/status" {
			if rec.Code != http.StatusOK || strings.Contains(rec.Body.String(), "v-secret-build") {
				t.Errorf("%s: %d, want the shell and no data", path, rec.Code)
			}
			continue
		}
		if rec.Code != http.StatusUnauthorized {
			t.Errorf("%s without a token: %d, want 401", path, rec.Code)
		}
	}
	if rec := adminGet(t, h, "/status", "Bearer "+token); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"messages_accepted":5`) {
		t.Errorf("/status with the token: %d %s", rec.Code, rec.Body)
	}
	// Only GET (and HEAD) of the shell is public: it takes no input.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))
	if rec.Code == http.StatusOK {
		t.Errorf("POST /: %d, want a refusal", rec.Code)
	}
}

// The page is self-contained, and its Content-Security-Policy lets run exactly the inline
// script and style it carries, nothing from elsewhere.
func TestStatusPageIsSelfContained(t *testing.T) {
	h := (&Admin{Metrics: &Metrics{}, Started: time.Now()}).Handler()
	rec := adminGet(t, h, "/", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("/: %d", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `<meta name="viewport" content="width=device-width, initial-scale=1">`) {
		t.Error("no viewport meta: unreadable on a phone")
	}
	if ext := regexp.MustCompile(`(?i)(src|href)\s*=|@import|url\(|https?://`).FindAllString(body, -1); len(ext) > 0 {
		t.Errorf("the page refers to outside resources: %q", ext)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP %q allows any inline code", csp)
	}
	blocks := regexp.MustCompile(`(?s)<(script|style)>(.*?)</`).FindAllStringSubmatch(body, -1)
	if len(blocks) != 2 {
		t.Fatalf("%d inline blocks, want one script and one style", len(blocks))
	}
	for _, b := range blocks {
		sum := sha256.Sum256([]byte(b[2]))
		want := b[1] + "-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q does not allow the page's own %s (%s)", csp, b[1], want)
		}
	}
	if strings.Contains(body, "innerHTML") || strings.Contains(body, "insertAdjacentHTML") {
		t.Error("the page writes HTML from data; it must set text only")
	}
}

// /status has what the page shows: replies by code, refusals by reason (every reason from
// the start), when each door last accepted, the sensor's clock, and the age of the backlog.
func TestStatusHasThePagesFields(t *testing.T) {
	k := newIntake(t, nil)
	before := time.Now()
	env := testEnvelope()
	env.Transport = api.TransportSMTP
	if o := k.in.Receive(env, nil, strings.NewReader(simpleMessage)); o.Kind != Accepted {
		t.Fatalf("Receive: %+v", o)
	}
	k.spool.full = true
	if o := k.in.Receive(env, nil, strings.NewReader(simpleMessage)); o.Kind != SpoolFull {
		t.Fatalf("Receive on a full spool: %+v", o)
	}
	m := k.metrics
	m.countReply(250)
	m.countReply(452)
	m.countUntrusted("tenant_foreign")
	m.countUntrusted("source_header_missing+tenant_missing")
	m.conns.refusedPerIP.Add(2)
	oldest := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a := &Admin{Metrics: m, Started: time.Now(), Version: "v-test",
		Uploads: fixedStats{RecordsDeadLettered: 4, PendingRecords: 1, OldestPendingAt: oldest}}
	rec := adminGet(t, a.Handler(), "/status", "")
	var got struct {
		RepliesByCode   map[string]int64      `json:"replies_by_code"`
		RefusedByReason map[string]int64      `json:"refused_by_reason"`
		LastMessageAt   map[string]*time.Time `json:"last_message_at"`
		Now             time.Time             `json:"now"`
		Uploads         uploader.Stats        `json:"uploads"`
	}
	if err := json.NewDecoder(rec.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.RepliesByCode["250"] != 1 || got.RepliesByCode["452"] != 1 || got.RepliesByCode["550"] != 0 {
		t.Errorf("replies_by_code = %v", got.RepliesByCode)
	}
	if _, ok := got.RepliesByCode["550"]; !ok {
		t.Errorf("replies_by_code lacks 550 before the first: %v", got.RepliesByCode)
	}
	want := map[string]int64{"spool_full": 1, "untrusted_tenant_foreign": 1, "untrusted_source_header_missing_and_tenant_missing": 1,
		"untrusted_tenant_missing": 0, "connection_limit": 0, "connection_limit_per_ip": 2, "access_denied": 0, "rate_limited": 0}
	for reason, n := range want {
		if v, ok := got.RefusedByReason[reason]; !ok || v != n {
			t.Errorf("refused_by_reason[%s] = %d (present %v), want %d", reason, v, ok, n)
		}
	}
	smtp, milter := got.LastMessageAt["smtp"], got.LastMessageAt["milter"]
	if smtp == nil || smtp.Before(before.Add(-time.Second)) || smtp.After(time.Now()) {
		t.Errorf("last_message_at.smtp = %v, want the accept's time", smtp)
	}
	if _, named := got.LastMessageAt["milter"]; !named || milter != nil {
		t.Errorf("last_message_at.milter = %v (named %v), want null: that door accepted nothing", milter, named)
	}
	if time.Since(got.Now).Abs() > time.Minute {
		t.Errorf("now = %v", got.Now)
	}
	if !got.Uploads.OldestPendingAt.Equal(oldest) || got.Uploads.RecordsDeadLettered != 4 {
		t.Errorf("uploads = %+v", got.Uploads)
	}
}

// Sessions accept concurrently: a door's time only moves forward, whoever stores last.
func TestDoorTimesKeepTheLatest(t *testing.T) {
	var d doorTimes
	t1 := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d.accepted(api.TransportMilter, t1)
	d.accepted(api.TransportMilter, t1.Add(-time.Minute))
	d.accepted("carrier-pigeon", t1.Add(time.Hour))
	got := d.snapshot()
	if got["milter"] == nil || !got["milter"].Equal(t1) || got["smtp"] != nil || len(got) != 2 {
		t.Errorf("snapshot = %v, want milter at %v, smtp null", got, t1)
	}
}
