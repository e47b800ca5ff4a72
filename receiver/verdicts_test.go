package receiver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
)

var authHeader = map[string]string{"Authorization": "Bearer " + testToken}

// postVerdicts sends body (marshalled unless already bytes) to POST /v1/verdicts.
func (tr *testReceiver) postVerdicts(body any) response {
	tr.t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			tr.t.Fatal(err)
		}
	}
	return tr.do(http.MethodPost, "/v1/verdicts", map[string]string{
		"Authorization": "Bearer " + testToken,
		"Content-Type":  "application/json",
	}, b)
}

// stored verdicts from a successful POST.
func postedVerdicts(t *testing.T, got response) []api.Verdict {
	t.Helper()
	wantStatus(t, got, http.StatusOK)
	var res struct {
		Accepted, Duplicates int
		Verdicts             []api.Verdict
	}
	if err := json.Unmarshal(got.body, &res); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if res.Accepted != len(res.Verdicts) {
		t.Fatalf("accepted %d but %d verdicts returned: %s", res.Accepted, len(res.Verdicts), got.body)
	}
	return res.Verdicts
}

func (tr *testReceiver) getVerdicts(after string, limit int) response {
	tr.t.Helper()
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	return tr.do(http.MethodGet, "/v1/verdicts?"+q.Encode(), authHeader, nil)
}

func page(t *testing.T, got response) api.VerdictPage {
	t.Helper()
	wantStatus(t, got, http.StatusOK)
	var p api.VerdictPage
	if err := json.Unmarshal(got.body, &p); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if p.Verdicts == nil {
		t.Fatalf("verdicts is null or missing, want a list: %s", got.body)
	}
	return p
}

func verdictIDs(vs []api.Verdict) []string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.ID)
	}
	return ids
}

// allVerdicts follows the cursor from after until a page comes back empty.
func (tr *testReceiver) allVerdicts(after string, limit int) ([]string, string) {
	tr.t.Helper()
	var ids []string
	for range 1000 {
		p := page(tr.t, tr.getVerdicts(after, limit))
		if len(p.Verdicts) == 0 {
			if p.Next != after {
				tr.t.Fatalf("empty page after %q has next %q, want the same cursor", after, p.Next)
			}
			return ids, after
		}
		if len(p.Verdicts) > limit && limit > 0 {
			tr.t.Fatalf("page of %d verdicts, limit %d", len(p.Verdicts), limit)
		}
		if p.Next == after {
			tr.t.Fatalf("non-empty page kept cursor %q", after)
		}
		ids = append(ids, verdictIDs(p.Verdicts)...)
		after = p.Next
	}
	tr.t.Fatal("cursor never reached the end")
	return nil, ""
}

func quarantine(messageID string, rcpts ...string) map[string]any {
	v := map[string]any{"action": "quarantine", "message_id": messageID, "reason": "test"}
	if len(rcpts) > 0 {
		v["recipients"] = rcpts
	}
	return v
}

func outcomeLine(verdictID, recipient, status, at string) []byte {
	return fmt.Appendf(nil, `{"verdict_id":%q,"recipient":%q,"provider":"graph","action":"quarantine",`+
		`"status":%q,"at":%q,"message_ref":"AAMk1","from_folder":"inbox"}`, verdictID, recipient, status, at)
}

func (tr *testReceiver) postActions(lines ...[]byte) response {
	tr.t.Helper()
	return tr.do(http.MethodPost, "/v1/actions", map[string]string{
		"Authorization":    "Bearer " + testToken,
		"Content-Type":     "application/x-ndjson",
		"Content-Encoding": "gzip",
		"Idempotency-Key":  "actions-1",
	}, gzipBytes(tr.t, ndjson(lines...)))
}

func (tr *testReceiver) fileLines(name string) []string {
	tr.t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.dir, name))
	if err != nil {
		tr.t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")[:strings.Count(string(b), "\n")]
}

func wantErrorField(t *testing.T, got response, status int, field string) {
	t.Helper()
	wantStatus(t, got, status)
	body := wantJSONError(t, got)
	if f, _ := body["field"].(string); f != field {
		t.Errorf("field %q, want %q; body %s", f, field, got.body)
	}
	name := field
	if name == "" {
		name = "("
	}
	if msg, _ := body["error"].(string); !strings.Contains(msg, name) {
		t.Errorf("error %q does not name %q", msg, name)
	}
}

func TestVerdictEndpointsNeedToken(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	for _, auth := range []string{"", "Bearer nope", "Basic " + testToken} {
		h := map[string]string{}
		if auth != "" {
			h["Authorization"] = auth
		}
		for _, r := range []struct {
			method, path string
			body         []byte
		}{
			{http.MethodGet, "/v1/verdicts", nil},
			{http.MethodGet, "/v1/verdicts?after=0&limit=5", nil},
			{http.MethodPost, "/v1/verdicts", []byte(`{"action":"quarantine","message_id":"<a@b>","recipients":["a@contoso.com"]}`)},
			{http.MethodPost, "/v1/actions", ndjson(outcomeLine("v1", "a@contoso.com", "done", "2026-11-23T19:09:00Z"))},
		} {
			got := tr.do(r.method, r.path, h, r.body)
			if got.status != http.StatusUnauthorized {
				t.Errorf("%s %s with %q: status %d, want 401", r.method, r.path, auth, got.status)
			}
			if !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s: WWW-Authenticate %q", r.method, r.path, got.header.Get("WWW-Authenticate"))
			}
			wantJSONError(t, got)
		}
	}
	if got := tr.fileLines("verdicts.ndjson"); len(got) != 0 {
		t.Errorf("unauthorized POST stored verdicts: %q", got)
	}
	if got := tr.fileLines("actions.ndjson"); len(got) != 0 {
		t.Errorf("unauthorized POST stored outcomes: %q", got)
	}
	// With the token, the same GET works.
	page(t, tr.getVerdicts("", 0))
}

func TestVerdictPaging(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})

	first := page(t, tr.getVerdicts("", 0))
	if len(first.Verdicts) != 0 || first.Next != "" {
		t.Fatalf("empty receiver: %+v, want no verdicts and next \"\"", first)
	}

	var batch []map[string]any
	for i := range 5 {
		batch = append(batch, quarantine(fmt.Sprintf("<m%d@example.com>", i), "a@contoso.com"))
	}
	posted := postedVerdicts(t, tr.postVerdicts(batch))
	ids := verdictIDs(posted)
	if len(ids) != 5 {
		t.Fatalf("posted %d verdicts, stored %d", len(batch), len(ids))
	}
	for i, id := range ids {
		if _, err := ulid.ParseStrict(id); err != nil {
			t.Errorf("assigned id %q is not a ULID: %v", id, err)
		}
		if i > 0 && id <= ids[i-1] {
			t.Errorf("assigned ids not increasing: %q after %q", id, ids[i-1])
		}
		if posted[i].MessageID != fmt.Sprintf("<m%d@example.com>", i) {
			t.Errorf("verdict %d message_id %q: angle brackets or order lost", i, posted[i].MessageID)
		}
	}

	// One call with the default limit gets everything, in the order posted.
	all := page(t, tr.getVerdicts("", 0))
	if got := verdictIDs(all.Verdicts); !slices.Equal(got, ids) {
		t.Fatalf("GET without limit: %v, want %v", got, ids)
	}

	// Pages of 2: 2, 2, 1, then an empty page that keeps the cursor.
	p1 := page(t, tr.getVerdicts("", 2))
	if got := verdictIDs(p1.Verdicts); !slices.Equal(got, ids[:2]) {
		t.Fatalf("page 1: %v, want %v", got, ids[:2])
	}
	p2 := page(t, tr.getVerdicts(p1.Next, 2))
	if got := verdictIDs(p2.Verdicts); !slices.Equal(got, ids[2:4]) {
		t.Fatalf("page 2: %v, want %v", got, ids[2:4])
	}
	p3 := page(t, tr.getVerdicts(p2.Next, 2))
	if got := verdictIDs(p3.Verdicts); !slices.Equal(got, ids[4:]) {
		t.Fatalf("page 3: %v, want %v", got, ids[4:])
	}
	p4 := page(t, tr.getVerdicts(p3.Next, 2))
	if len(p4.Verdicts) != 0 || p4.Next != p3.Next {
		t.Fatalf("page 4: %d verdicts, next %q; want none and next %q", len(p4.Verdicts), p4.Next, p3.Next)
	}
	// A cursor is reusable: the same after gives the same page.
	if got := verdictIDs(page(t, tr.getVerdicts(p1.Next, 2)).Verdicts); !slices.Equal(got, ids[2:4]) {
		t.Fatalf("page 2 again: %v, want %v", got, ids[2:4])
	}

	// A verdict posted later shows up after the end cursor.
	later := postedVerdicts(t, tr.postVerdicts(quarantine("<later@example.com>", "b@contoso.com")))
	p5 := page(t, tr.getVerdicts(p4.Next, 2))
	if got := verdictIDs(p5.Verdicts); !slices.Equal(got, verdictIDs(later)) {
		t.Fatalf("after the end cursor: %v, want %v", got, verdictIDs(later))
	}

	if got := page(t, tr.getVerdicts("", api.MaxVerdictLimit)); len(got.Verdicts) != 6 {
		t.Errorf("limit=%d: %d verdicts, want 6", api.MaxVerdictLimit, len(got.Verdicts))
	}
	for _, q := range []struct{ query, names string }{
		{"limit=1001", "limit"},
		{"limit=0", "limit"},
		{"limit=-1", "limit"},
		{"limit=ten", "limit"},
		{"after=7", "after"},         // beyond the end: never given out
		{"after=-1", "after"},        // not a cursor at all
		{"after=02", "after"},        // not the spelling given out
		{"after=" + ids[0], "after"}, // a verdict id is not a cursor
	} {
		got := tr.do(http.MethodGet, "/v1/verdicts?"+q.query, authHeader, nil)
		wantStatus(t, got, http.StatusBadRequest)
		if msg, _ := wantJSONError(t, got)["error"].(string); !strings.HasPrefix(msg, q.names+":") {
			t.Errorf("%s: error %q does not name %s", q.query, msg, q.names)
		}
	}
}

func TestVerdictsSurviveRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	tr := startReceiver(t, Config{OutDir: dir, Token: testToken})
	var batch []map[string]any
	for i := range 3 {
		batch = append(batch, quarantine(fmt.Sprintf("<r%d@example.com>", i), "a@contoso.com"))
	}
	ids := verdictIDs(postedVerdicts(t, tr.postVerdicts(batch)))
	// A caller-chosen id that sorts before the assigned ones: order is the order stored, not
	// the order of ids.
	own := quarantine("<own@example.com>", "a@contoso.com")
	own["id"] = "000-first-by-name"
	ids = append(ids, verdictIDs(postedVerdicts(t, tr.postVerdicts(own)))...)
	p1 := page(t, tr.getVerdicts("", 2))
	tr.stop()

	// A crash in the middle of an append leaves a torn last line; it was never acknowledged.
	f, err := os.OpenFile(filepath.Join(dir, "verdicts.ndjson"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"id":"torn","action":"quar`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	tr2 := startReceiver(t, Config{OutDir: dir, Token: testToken})
	if got, _ := tr2.allVerdicts("", 0); !slices.Equal(got, ids) {
		t.Fatalf("after restart: %v, want %v", got, ids)
	}
	// The cursor from before the restart still points at the same place.
	rest, end := tr2.allVerdicts(p1.Next, 2)
	if !slices.Equal(rest, ids[2:]) {
		t.Fatalf("old cursor after restart: %v, want %v", rest, ids[2:])
	}
	// Ids are still known: posting one again is a duplicate, and new verdicts go at the end.
	again := tr2.postVerdicts(own)
	wantStatus(t, again, http.StatusOK)
	if !strings.Contains(string(again.body), `"duplicates":1`) {
		t.Errorf("re-posting a stored id after restart: %s, want 1 duplicate", again.body)
	}
	more := verdictIDs(postedVerdicts(t, tr2.postVerdicts(quarantine("<new@example.com>", "c@contoso.com"))))
	if got, _ := tr2.allVerdicts(end, 0); !slices.Equal(got, more) {
		t.Fatalf("after the old end: %v, want %v", got, more)
	}
	if lines := tr2.fileLines("verdicts.ndjson"); len(lines) != 5 {
		t.Errorf("verdicts.ndjson has %d lines, want 5 (torn one cut off)", len(lines))
	}
}

// journalRecord is a journal report: the envelope goes to the journaling mailbox, and the
// report lists the true recipients, one of them only as Bcc and one only through a list.
func journalRecord(id, messageID, dedupeKey string) []byte {
	return fmt.Appendf(nil, `{"schema":"sensor.record/v1","id":%q,"received_at":"2026-11-23T19:09:00.123Z",`+
		`"sensor":{"id":"s1","version":"dev"},"source":{"kind":"exchange_journal"},`+
		`"envelope":{"transport":"smtp","mail_from":"","rcpt_to":["journal@sensor.contoso.com"],"size":100},`+
		`"journal":{"sender":"x@fabrikam.com","message_id":%q,"recipients":[`+
		`{"address":"Alice@Contoso.com","type":"to"},{"address":"bob@contoso.com","type":"cc"},`+
		`{"address":"carol@contoso.com","type":"bcc"},{"address":"dave@contoso.com","type":"to","expanded_from":"team@contoso.com"}]},`+
		`"message":{"message_id":%q,"dedupe_key":%q,"size":42}}`, id, messageID, messageID, dedupeKey)
}

// directRecord is a copy without a journal report: its envelope names the recipients.
func directRecord(id, messageID, dedupeKey string, rcpts ...string) []byte {
	rc, _ := json.Marshal(rcpts)
	dk := ""
	if dedupeKey != "" {
		dk = fmt.Sprintf(`,"dedupe_key":%q`, dedupeKey)
	}
	return fmt.Appendf(nil, `{"schema":"sensor.record/v1","id":%q,"received_at":"2026-11-23T19:09:00.123Z",`+
		`"sensor":{"id":"s1","version":"dev"},"source":{"kind":"gateway_copy"},`+
		`"envelope":{"transport":"smtp","mail_from":"x@fabrikam.com","rcpt_to":%s,"size":100},`+
		`"message":{"message_id":%q%s,"size":42}}`, id, rc, messageID, dk)
}

func TestVerdictRecipientsFromRecords(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	wantCounts(t, tr.postBatch(
		journalRecord("01J", "<m1@fabrikam.com>", "v1:k1"),
		// The gateway rewrote the Message-ID; the dedupe key still says it is the same message.
		directRecord("01G", "<rewritten@gateway>", "v1:k1", "Eve@contoso.com", "alice@contoso.com"),
		directRecord("01U", "<other@fabrikam.com>", "v1:k2", "zed@contoso.com"),
		// No dedupe key: matched by Message-ID alone.
		directRecord("01P", "<m3@fabrikam.com>", "", "B@contoso.com"),
		directRecord("01Q", "<m3@fabrikam.com>", "", "a@contoso.com", "b@contoso.com"),
	), 5, 0)
	wantK1 := []string{"alice@contoso.com", "bob@contoso.com", "carol@contoso.com", "dave@contoso.com", "eve@contoso.com"}

	v := postedVerdicts(t, tr.postVerdicts(quarantine("<m1@fabrikam.com>")))
	if got := v[0].Recipients; !slices.Equal(got, wantK1) {
		t.Errorf("by journal Message-ID and dedupe key: %v, want %v (Bcc and list member in, journal mailbox out)", got, wantK1)
	}

	v = postedVerdicts(t, tr.postVerdicts(map[string]any{"action": "delete", "message_id": "<m3@fabrikam.com>"}))
	if got, want := v[0].Recipients, []string{"a@contoso.com", "b@contoso.com"}; !slices.Equal(got, want) {
		t.Errorf("by Message-ID without dedupe key: %v, want %v", got, want)
	}

	// A verdict naming only its record gets the record's Message-ID and the whole message's
	// recipients through the dedupe key.
	v = postedVerdicts(t, tr.postVerdicts(map[string]any{"action": "tag", "tag": "Phish", "record_id": "01G", "recipients": []string{}}))
	if got := v[0].Recipients; !slices.Equal(got, wantK1) {
		t.Errorf("by record_id: %v, want %v", got, wantK1)
	}
	if v[0].MessageID != "<rewritten@gateway>" || v[0].Tag != "Phish" {
		t.Errorf("by record_id: message_id %q tag %q", v[0].MessageID, v[0].Tag)
	}

	// Given recipients are not replaced, only spelled the way filled ones are.
	v = postedVerdicts(t, tr.postVerdicts(quarantine("<m1@fabrikam.com>", "Only@Contoso.com", "b@contoso.com", "only@contoso.com")))
	if got, want := v[0].Recipients, []string{"b@contoso.com", "only@contoso.com"}; !slices.Equal(got, want) {
		t.Errorf("explicit recipients: %v, want %v", got, want)
	}

	// Nothing to fill from: refused, naming the field.
	wantErrorField(t, tr.postVerdicts(quarantine("<unknown@fabrikam.com>")), http.StatusUnprocessableEntity, "/recipients")
}

func TestVerdictValidation(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	base := postedVerdicts(t, tr.postVerdicts(quarantine("<m@x>", "a@contoso.com", "b@contoso.com")))[0]

	tests := []struct {
		name  string
		body  any
		field string
	}{
		{"tag without tag", map[string]any{"action": "tag", "message_id": "<m@x>", "recipients": []string{"a@contoso.com"}}, "/tag"},
		{"restore without undo", map[string]any{"action": "restore", "recipients": []string{"a@contoso.com"}}, "/undo"},
		{"restore of an unknown verdict", map[string]any{"action": "restore", "undo": "01NOPE"}, "/undo"},
		{"unknown action", map[string]any{"action": "burn", "message_id": "<m@x>", "recipients": []string{"a@contoso.com"}}, "/action"},
		{"no action", map[string]any{"message_id": "<m@x>", "recipients": []string{"a@contoso.com"}}, "/action"},
		{"quarantine without message_id", map[string]any{"action": "quarantine", "recipients": []string{"a@contoso.com"}}, "/message_id"},
		{"recipients not a list", map[string]any{"action": "delete", "message_id": "<m@x>", "recipients": "a@contoso.com"}, "/recipients"},
		{"blank recipient", map[string]any{"action": "delete", "message_id": "<m@x>", "recipients": []string{""}}, "/recipients/0"},
		{"second of two is bad", []map[string]any{quarantine("<ok@x>", "a@contoso.com"), {"action": "tag", "message_id": "<m@x>", "recipients": []string{"a@contoso.com"}}}, "/1/tag"},
		{"array of non-objects", []any{"x"}, "/0"},
		{"not JSON", []byte(`{"action":`), ""},
		{"two values", []byte(`{} {}`), ""},
		{"a string", []byte(`"quarantine"`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErrorField(t, tr.postVerdicts(tc.body), http.StatusUnprocessableEntity, tc.field)
		})
	}
	// Rejected requests stored nothing, not even the good first verdict of a bad array.
	if got := verdictIDs(page(t, tr.getVerdicts("", 0)).Verdicts); !slices.Equal(got, []string{base.ID}) {
		t.Fatalf("after rejections: %v, want only %v", got, base.ID)
	}

	// A restore of a known verdict takes its recipients and needs no message_id.
	r := postedVerdicts(t, tr.postVerdicts(map[string]any{"action": "restore", "undo": base.ID}))
	if r[0].Undo != base.ID || !slices.Equal(r[0].Recipients, base.Recipients) {
		t.Errorf("restore: %+v, want undo %s and recipients %v", r[0], base.ID, base.Recipients)
	}
	// A restore may undo a verdict earlier in the same request.
	pair := postedVerdicts(t, tr.postVerdicts([]map[string]any{
		{"id": "v-del", "action": "delete", "message_id": "<d@x>", "recipients": []string{"d@contoso.com"}},
		{"action": "restore", "undo": "v-del"},
	}))
	if len(pair) != 2 || !slices.Equal(pair[1].Recipients, []string{"d@contoso.com"}) {
		t.Errorf("restore within one request: %+v", pair)
	}
}

func TestActions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	tr := startReceiver(t, Config{OutDir: dir, Token: testToken})
	a := outcomeLine("v1", "a@contoso.com", "done", "2026-11-23T19:09:00.123Z")
	b := outcomeLine("v1", "b@contoso.com", "not_found", "2026-11-23T19:09:01Z")
	c := outcomeLine("v2", "a@contoso.com", "failed", "2026-11-23T19:09:02Z")
	wantCounts(t, tr.postActions(a, b, c, a), 3, 1)

	// A retried batch adds nothing; a new status for the same pair is a new outcome, and so
	// is the same status at another time.
	retried := outcomeLine("v2", "a@contoso.com", "done", "2026-11-23T19:09:02Z")
	later := outcomeLine("v1", "a@contoso.com", "done", "2026-11-23T19:10:00Z")
	wantCounts(t, tr.postActions(a, b, c, retried, later), 2, 3)

	// Uncompressed works too, as for records.
	wantCounts(t, tr.do(http.MethodPost, "/v1/actions", authHeader, ndjson(a)), 0, 1)

	want := []string{string(a), string(b), string(c), string(retried), string(later)}
	if got := tr.fileLines("actions.ndjson"); !slices.Equal(got, want) {
		t.Fatalf("actions.ndjson:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	tr.stop()

	tr2 := startReceiver(t, Config{OutDir: dir, Token: testToken})
	wantCounts(t, tr2.postActions(a, b, c, retried, later), 0, 5)
	if got := tr2.fileLines("actions.ndjson"); len(got) != 5 {
		t.Fatalf("after restart actions.ndjson has %d lines, want 5", len(got))
	}
}

func TestActionsRejectInvalidOutcomes(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	good := outcomeLine("v1", "a@contoso.com", "done", "2026-11-23T19:09:00Z")
	tests := []struct {
		name  string
		bad   []byte
		field string
	}{
		{"no recipient", []byte(`{"verdict_id":"v1","provider":"graph","action":"delete","status":"done","at":"2026-11-23T19:09:00Z"}`), "/recipient"},
		{"unknown status", outcomeLine("v1", "a@contoso.com", "maybe", "2026-11-23T19:09:00Z"), "/status"},
		{"unknown provider", []byte(`{"verdict_id":"v1","recipient":"a@contoso.com","provider":"imap","action":"delete","status":"done","at":"2026-11-23T19:09:00Z"}`), "/provider"},
		{"time not UTC", outcomeLine("v1", "a@contoso.com", "done", "2026-11-23T20:09:00+01:00"), "/at"},
		{"not a date", outcomeLine("v1", "a@contoso.com", "done", "2026-13-45T19:09:00Z"), "/at"},
		{"empty verdict id", outcomeLine("", "a@contoso.com", "done", "2026-11-23T19:09:00Z"), "/verdict_id"},
		{"not JSON", []byte(`{"verdict_id":`), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tr.postActions(good, tc.bad)
			wantErrorField(t, got, http.StatusUnprocessableEntity, tc.field)
			if line, _ := wantJSONError(t, got)["line"].(float64); line != 2 {
				t.Errorf("line %v, want 2", line)
			}
		})
	}
	if got := tr.fileLines("actions.ndjson"); len(got) != 0 {
		t.Fatalf("rejected batches stored %d outcomes, want none", len(got))
	}
	wantCounts(t, tr.postActions(good), 1, 0)
}

func TestVerdictRouting(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	for _, r := range []struct{ method, path, allow string }{
		{http.MethodDelete, "/v1/verdicts", "GET, POST"},
		{http.MethodPut, "/v1/verdicts", "GET, POST"},
		{http.MethodGet, "/v1/actions", "POST"},
	} {
		got := tr.do(r.method, r.path, authHeader, nil)
		wantStatus(t, got, http.StatusMethodNotAllowed)
		wantJSONError(t, got)
		if a := got.header.Get("Allow"); a != r.allow {
			t.Errorf("%s %s: Allow %q, want %q", r.method, r.path, a, r.allow)
		}
	}
}

func TestVerdictsAfterClose(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	if err := tr.rcv.Close(); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, tr.getVerdicts("", 0), http.StatusServiceUnavailable)
	wantStatus(t, tr.postVerdicts(quarantine("<m@x>", "a@contoso.com")), http.StatusServiceUnavailable)
	wantStatus(t, tr.postActions(outcomeLine("v1", "a@contoso.com", "done", "2026-11-23T19:09:00Z")), http.StatusServiceUnavailable)
}

// Concurrent posts and reads: every verdict is served exactly once, in file order, and a
// reader following the cursor while posts land never skips one.
func TestVerdictsConcurrent(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				got := tr.postVerdicts(quarantine(fmt.Sprintf("<w%d-%d@x>", w, i), "a@contoso.com"))
				if got.status != http.StatusOK {
					t.Errorf("POST: %d %s", got.status, got.body)
				}
			}
		})
	}
	var seen []string
	after := ""
	for len(seen) < 80 {
		p := page(t, tr.getVerdicts(after, 7))
		seen = append(seen, verdictIDs(p.Verdicts)...)
		after = p.Next
	}
	wg.Wait()
	var inFile []string
	for _, line := range tr.fileLines("verdicts.ndjson") {
		var v api.Verdict
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatal(err)
		}
		inFile = append(inFile, v.ID)
	}
	if !slices.Equal(seen, inFile) || len(inFile) != 80 {
		t.Fatalf("read %d verdicts while posting, file has %d; orders equal: %v", len(seen), len(inFile), slices.Equal(seen, inFile))
	}
}
