package receiver

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

const testToken = "s3cret-token"

type testReceiver struct {
	t   *testing.T
	dir string
	rcv *Receiver
	srv *httptest.Server
}

// startReceiver runs a Receiver over real HTTP, so that Content-Length, HEAD and connection
// handling are the server's and not a recorder's.
func startReceiver(t *testing.T, cfg Config) *testReceiver {
	t.Helper()
	if cfg.OutDir == "" {
		cfg.OutDir = filepath.Join(t.TempDir(), "out")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	rcv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(rcv)
	tr := &testReceiver{t: t, dir: cfg.OutDir, rcv: rcv, srv: srv}
	t.Cleanup(tr.stop)
	return tr
}

func (tr *testReceiver) stop() {
	tr.t.Helper()
	if tr.srv == nil {
		return
	}
	tr.srv.Close()
	if err := tr.rcv.Close(); err != nil {
		tr.t.Errorf("Close: %v", err)
	}
	tr.srv = nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (tr *testReceiver) do(method, path string, header map[string]string, body []byte) response {
	tr.t.Helper()
	req, err := http.NewRequest(method, tr.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		tr.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := tr.srv.Client().Do(req)
	if err != nil {
		tr.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tr.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// postBatch sends lines as one gzip NDJSON batch, the way the sensor does.
func (tr *testReceiver) postBatch(lines ...[]byte) response {
	tr.t.Helper()
	return tr.do(http.MethodPost, "/v1/records", map[string]string{
		"Authorization":    "Bearer " + testToken,
		"Content-Type":     "application/x-ndjson",
		"Content-Encoding": "gzip",
		"Idempotency-Key":  "batch-1",
	}, gzipBytes(tr.t, ndjson(lines...)))
}

func (tr *testReceiver) stored() []byte {
	tr.t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.dir, "records.ndjson"))
	if err != nil {
		tr.t.Fatal(err)
	}
	return b
}

func ndjson(lines ...[]byte) []byte {
	var buf bytes.Buffer
	for _, l := range lines {
		buf.Write(l)
		buf.WriteByte('\n')
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rec is a valid compact record line with the given id.
func rec(id string) []byte {
	return fmt.Appendf(nil, `{"schema":"sensor.record/v1","id":%q,"received_at":"2026-11-23T19:09:00.123Z",`+
		`"sensor":{"id":"s1","version":"dev"},"source":{"kind":"direct"},"message":{"size":42,"subject":"hello"}}`, id)
}

// badRec is a record line whose first attachment hash is not hex.
func badRec(id string) []byte {
	return fmt.Appendf(nil, `{"schema":"sensor.record/v1","id":%q,"received_at":"2026-11-23T19:09:00.123Z",`+
		`"sensor":{"id":"s1","version":"dev"},"source":{"kind":"direct"},"message":{"size":42},`+
		`"attachments":[{"path":"2","size":1,"sha256":"XYZ"}]}`, id)
}

func wantStatus(t *testing.T, got response, want int) {
	t.Helper()
	if got.status != want {
		t.Fatalf("status %d, want %d; body %s", got.status, want, got.body)
	}
}

func wantCounts(t *testing.T, got response, accepted, duplicates int) {
	t.Helper()
	wantStatus(t, got, http.StatusOK)
	var res struct{ Accepted, Duplicates int }
	if err := json.Unmarshal(got.body, &res); err != nil {
		t.Fatalf("body %s: %v", got.body, err)
	}
	if res.Accepted != accepted || res.Duplicates != duplicates {
		t.Fatalf("accepted %d duplicates %d, want %d and %d", res.Accepted, res.Duplicates, accepted, duplicates)
	}
}

func wantJSONError(t *testing.T, got response) map[string]any {
	t.Helper()
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	var body map[string]any
	if err := json.Unmarshal(got.body, &body); err != nil {
		t.Fatalf("error body %q is not JSON: %v", got.body, err)
	}
	if msg, _ := body["error"].(string); msg == "" {
		t.Errorf("error body %s has no error message", got.body)
	}
	return body
}

func TestReceiverStoresGzipBatch(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	lines := [][]byte{rec("01A"), rec("01B"), rec("01C")}
	wantCounts(t, tr.postBatch(lines...), 3, 0)
	if got, want := tr.stored(), ndjson(lines...); !bytes.Equal(got, want) {
		t.Errorf("records.ndjson:\n%s\nwant exactly the lines sent:\n%s", got, want)
	}
	for path, want := range map[string]os.FileMode{"": 0o700, "blobs": 0o700, "records.ndjson": 0o600} {
		fi, err := os.Stat(filepath.Join(tr.dir, path))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %v, want %v", filepath.Join(tr.dir, path), got, want)
		}
	}
}

func TestReceiverStoresLinesAsReceived(t *testing.T) {
	tr := startReceiver(t, Config{})
	// Key order, spacing and an unknown field are the sender's business; CRLF and blank
	// lines are framing.
	odd := []byte(`{ "x_new": [1, 2],  "id": "01D", "schema": "sensor.record/v1", "received_at": "2026-11-23T19:09:00.123Z", "sensor": {"id": "s", "version": "v"}, "source": {"kind": "direct"}, "message": {"size": 1} }`)
	body := slices.Concat(rec("01A"), []byte("\r\n\n   \n"), odd, []byte("\r\n"), rec("01B")) // no final newline
	wantCounts(t, tr.do(http.MethodPost, "/v1/records", nil, body), 3, 0)
	if got, want := tr.stored(), ndjson(rec("01A"), odd, rec("01B")); !bytes.Equal(got, want) {
		t.Errorf("records.ndjson:\n%s\nwant:\n%s", got, want)
	}
}

func TestReceiverAcceptsUncompressedBody(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	got := tr.do(http.MethodPost, "/v1/records", map[string]string{"Authorization": "Bearer " + testToken}, ndjson(rec("01A")))
	wantCounts(t, got, 1, 0)
	if !bytes.Equal(tr.stored(), ndjson(rec("01A"))) {
		t.Errorf("records.ndjson = %q", tr.stored())
	}
}

func TestReceiverIgnoresDuplicateIDs(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	wantCounts(t, tr.postBatch(rec("01A"), rec("01B"), rec("01A")), 2, 1)
	wantCounts(t, tr.postBatch(rec("01B"), rec("01C")), 1, 1)
	wantCounts(t, tr.postBatch(rec("01A"), rec("01C")), 0, 2) // a whole retried batch
	if got, want := tr.stored(), ndjson(rec("01A"), rec("01B"), rec("01C")); !bytes.Equal(got, want) {
		t.Errorf("records.ndjson:\n%s\nwant:\n%s", got, want)
	}
}

func TestReceiverDedupesAcrossRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	first := startReceiver(t, Config{OutDir: dir, Token: testToken})
	wantCounts(t, first.postBatch(rec("01A"), rec("01B")), 2, 0)
	first.stop()

	second := startReceiver(t, Config{OutDir: dir, Token: testToken})
	wantCounts(t, second.postBatch(rec("01B"), rec("01C"), rec("01A")), 1, 2)
	if got, want := second.stored(), ndjson(rec("01A"), rec("01B"), rec("01C")); !bytes.Equal(got, want) {
		t.Errorf("records.ndjson:\n%s\nwant:\n%s", got, want)
	}
}

// A crash in the middle of an append leaves a line without its newline. That batch was never
// acknowledged; left in place, the next append would be glued onto it.
func TestReceiverRestartCutsOffTornLine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	if err := os.MkdirAll(filepath.Join(dir, "blobs"), 0o700); err != nil {
		t.Fatal(err)
	}
	torn := rec("01T")
	seed := slices.Concat(ndjson(rec("01A")), torn[:len(torn)/2])
	if err := os.WriteFile(filepath.Join(dir, "records.ndjson"), seed, 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(dir, "blobs", ".tmp-123")
	if err := os.WriteFile(leftover, []byte("half a blob"), 0o600); err != nil {
		t.Fatal(err)
	}

	tr := startReceiver(t, Config{OutDir: dir})
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("leftover temp blob still there: %v", err)
	}
	wantCounts(t, tr.do(http.MethodPost, "/v1/records", nil, ndjson(rec("01A"), rec("01T"))), 1, 1)
	if got, want := tr.stored(), ndjson(rec("01A"), rec("01T")); !bytes.Equal(got, want) {
		t.Errorf("records.ndjson:\n%s\nwant:\n%s", got, want)
	}
}

func TestReceiverRejectsPoisonBatchWhole(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	wantCounts(t, tr.postBatch(rec("01A")), 1, 0)
	before := tr.stored()

	tests := []struct {
		name  string
		lines [][]byte
		line  float64
		field string
	}{
		{"bad hash on line 3", [][]byte{rec("01B"), rec("01C"), badRec("01D"), rec("01E")}, 3, "/attachments/0/sha256"},
		{"not JSON on line 2", [][]byte{rec("01B"), []byte(`{"id": "01C",`)}, 2, ""},
		{"missing id on line 1", [][]byte{bytes.Replace(rec("01B"), []byte(`"id"`), []byte(`"ID"`), 1)}, 1, "/id"},
		{"duplicate of stored record is still validated", [][]byte{badRec("01A")}, 1, "/attachments/0/sha256"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tr.postBatch(tc.lines...)
			wantStatus(t, got, http.StatusUnprocessableEntity)
			body := wantJSONError(t, got)
			if body["line"] != tc.line {
				t.Errorf("line %v, want %v", body["line"], tc.line)
			}
			if field, ok := body["field"].(string); !ok || field != tc.field {
				t.Errorf("field %v, want %q", body["field"], tc.field)
			}
			if msg := body["error"].(string); !strings.HasPrefix(msg, fmt.Sprintf("line %d: ", int(tc.line))) {
				t.Errorf("error %q does not name the line", msg)
			}
			if !bytes.Equal(tr.stored(), before) {
				t.Errorf("records.ndjson changed by a rejected batch:\n%s", tr.stored())
			}
		})
	}
	// Nothing from the rejected batches was remembered either: the good records in them are
	// new when they come back in a clean batch.
	wantCounts(t, tr.postBatch(rec("01B"), rec("01C"), rec("01E")), 3, 0)
	assertNoTempFiles(t, tr.dir)
}

func TestReceiverAuth(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	sum := sha256.Sum256([]byte("x"))
	blob := "/v1/blobs/" + hex.EncodeToString(sum[:])
	tests := []struct {
		name, auth string
	}{
		{"missing", ""},
		{"wrong token", "Bearer nope"},
		{"token prefix", "Bearer " + testToken[:4]},
		{"token with suffix", "Bearer " + testToken + "x"},
		{"wrong scheme", "Basic " + testToken},
		{"no scheme", testToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{}
			if tc.auth != "" {
				h["Authorization"] = tc.auth
			}
			for _, r := range []struct {
				method, path string
				body         []byte
			}{
				{http.MethodPost, "/v1/records", ndjson(rec("01A"))},
				{http.MethodPut, blob, []byte("x")},
				{http.MethodHead, blob, nil},
			} {
				got := tr.do(r.method, r.path, h, r.body)
				if got.status != http.StatusUnauthorized {
					t.Errorf("%s %s: status %d, want 401", r.method, r.path, got.status)
				}
				if !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s %s: WWW-Authenticate %q", r.method, r.path, got.header.Get("WWW-Authenticate"))
				}
				if r.method != http.MethodHead {
					wantJSONError(t, got)
				}
			}
		})
	}
	if got := tr.stored(); len(got) != 0 {
		t.Errorf("unauthorized requests stored records: %s", got)
	}
	if _, err := os.Stat(filepath.Join(tr.dir, "blobs", hex.EncodeToString(sum[:]))); !os.IsNotExist(err) {
		t.Errorf("unauthorized PUT stored a blob: %v", err)
	}
	// The scheme is case-insensitive (RFC 7235 section 2.1).
	wantCounts(t, tr.do(http.MethodPost, "/v1/records", map[string]string{"Authorization": "bearer " + testToken}, ndjson(rec("01A"))), 1, 0)
}

func TestReceiverWithoutTokenSkipsAuth(t *testing.T) {
	tr := startReceiver(t, Config{})
	wantCounts(t, tr.do(http.MethodPost, "/v1/records", map[string]string{"Authorization": "Bearer whatever"}, ndjson(rec("01A"))), 1, 0)
}

func TestNewReceiverRefusesBlankToken(t *testing.T) {
	if _, err := New(Config{OutDir: t.TempDir(), Token: "\n"}); err == nil {
		t.Fatal("a token file holding only a newline turned authentication off")
	}
}

func TestReceiverBodyLimit(t *testing.T) {
	const limit = 4096
	tr := startReceiver(t, Config{MaxBodyBytes: limit})
	var lines [][]byte
	for i := range 40 { // about 200 bytes each: over the limit decompressed, far under it gzipped
		lines = append(lines, rec(fmt.Sprintf("01%03d", i)))
	}
	if body := gzipBytes(t, ndjson(lines...)); len(body) >= limit {
		t.Fatalf("test batch gzips to %d bytes; it must be under %d to test the decompressed bound", len(body), limit)
	}
	for _, tc := range []struct {
		name string
		got  response
	}{
		{"gzip", tr.postBatch(lines...)},
		{"plain", tr.do(http.MethodPost, "/v1/records", nil, ndjson(lines...))},
	} {
		wantStatus(t, tc.got, http.StatusRequestEntityTooLarge)
		wantJSONError(t, tc.got)
	}
	if got := tr.stored(); len(got) != 0 {
		t.Errorf("oversized batch stored records: %s", got)
	}
	wantCounts(t, tr.postBatch(lines[:5]...), 5, 0)

	sum := sha256.Sum256(make([]byte, limit+1))
	got := tr.do(http.MethodPut, "/v1/blobs/"+hex.EncodeToString(sum[:]), nil, make([]byte, limit+1))
	wantStatus(t, got, http.StatusRequestEntityTooLarge)
	assertNoTempFiles(t, tr.dir)
}

func TestReceiverRejectsOverlongLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 64 MiB line")
	}
	tr := startReceiver(t, Config{})
	huge := slices.Concat([]byte(`{"x_pad":"`), bytes.Repeat([]byte("a"), maxLineBytes), []byte(`"}`))
	// Uncompressed: gzipping 64 MiB under -race takes seconds and tests nothing more.
	got := tr.do(http.MethodPost, "/v1/records", nil, ndjson(rec("01A"), huge, rec("01B")))
	wantStatus(t, got, http.StatusRequestEntityTooLarge)
	if body := wantJSONError(t, got); body["line"] != 2.0 {
		t.Errorf("line %v, want 2", body["line"])
	}
	if got := tr.stored(); len(got) != 0 {
		t.Errorf("batch with an overlong line stored records: %s", got)
	}
}

func TestReceiverRejectsBrokenBodies(t *testing.T) {
	tr := startReceiver(t, Config{})
	good := gzipBytes(t, ndjson(rec("01A"), rec("01B")))
	tests := []struct {
		name     string
		encoding string
		body     []byte
		status   int
	}{
		{"gzip header on plain text", "gzip", ndjson(rec("01A")), http.StatusBadRequest},
		{"truncated gzip", "gzip", good[:len(good)-12], http.StatusBadRequest},
		{"empty gzip", "gzip", nil, http.StatusBadRequest},
		{"unsupported encoding", "br", good, http.StatusUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tr.do(http.MethodPost, "/v1/records", map[string]string{"Content-Encoding": tc.encoding}, tc.body)
			wantStatus(t, got, tc.status)
			wantJSONError(t, got)
		})
	}
	if got := tr.stored(); len(got) != 0 {
		t.Errorf("broken bodies stored records: %s", got)
	}
}

func TestReceiverBlobs(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	content := []byte("%PDF-1.7 not really a pdf")
	s := sha256.Sum256(content)
	sum := hex.EncodeToString(s[:])
	path := "/v1/blobs/" + sum

	wantStatus(t, tr.do(http.MethodHead, path, auth, nil), http.StatusNotFound)

	got := tr.do(http.MethodPut, path, auth, content)
	wantStatus(t, got, http.StatusCreated)
	var res struct {
		SHA256 string
		Size   int64
	}
	if err := json.Unmarshal(got.body, &res); err != nil || res.SHA256 != sum || res.Size != int64(len(content)) {
		t.Errorf("PUT body %s (%v)", got.body, err)
	}
	stored, err := os.ReadFile(filepath.Join(tr.dir, "blobs", sum))
	if err != nil || !bytes.Equal(stored, content) {
		t.Fatalf("stored blob %q, %v", stored, err)
	}

	head := tr.do(http.MethodHead, path, auth, nil)
	wantStatus(t, head, http.StatusOK)
	if cl := head.header.Get("Content-Length"); cl != fmt.Sprint(len(content)) {
		t.Errorf("HEAD Content-Length %q, want %d", cl, len(content))
	}

	wantStatus(t, tr.do(http.MethodPut, path, auth, content), http.StatusOK)

	other := sha256.Sum256([]byte("something else"))
	otherPath := "/v1/blobs/" + hex.EncodeToString(other[:])
	got = tr.do(http.MethodPut, otherPath, auth, content)
	wantStatus(t, got, http.StatusUnprocessableEntity)
	wantJSONError(t, got)
	wantStatus(t, tr.do(http.MethodHead, otherPath, auth, nil), http.StatusNotFound)

	for _, bad := range []string{strings.ToUpper(sum), sum[:63], sum + "0", "../records.ndjson", strings.Repeat("g", 64)} {
		got := tr.do(http.MethodPut, "/v1/blobs/"+bad, auth, content)
		if got.status != http.StatusBadRequest && got.status != http.StatusNotFound {
			t.Errorf("PUT /v1/blobs/%s: status %d, want 400", bad, got.status)
		}
	}
	wantStatus(t, tr.do(http.MethodPut, "/v1/blobs/"+strings.ToUpper(sum), auth, content), http.StatusBadRequest)
	wantStatus(t, tr.do(http.MethodHead, "/v1/blobs/"+sum[:10], auth, nil), http.StatusBadRequest)
	wantStatus(t, tr.do(http.MethodPut, path, map[string]string{"Authorization": "Bearer " + testToken, "Content-Encoding": "gzip"}, gzipBytes(t, content)), http.StatusUnsupportedMediaType)

	entries, err := os.ReadDir(filepath.Join(tr.dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != sum {
		t.Errorf("blobs dir holds %v, want only %s", entries, sum)
	}
}

func TestReceiverRouting(t *testing.T) {
	tr := startReceiver(t, Config{Token: testToken})
	health := tr.do(http.MethodGet, "/healthz", nil, nil)
	wantStatus(t, health, http.StatusOK)
	if string(health.body) != "ok" {
		t.Errorf("healthz body %q", health.body)
	}
	tests := []struct {
		method, path string
		status       int
		allow        string
	}{
		{http.MethodGet, "/v1/records", http.StatusMethodNotAllowed, "POST"},
		{http.MethodPut, "/v1/records", http.StatusMethodNotAllowed, "POST"},
		{http.MethodGet, "/v1/blobs/" + strings.Repeat("a", 64), http.StatusMethodNotAllowed, "PUT, HEAD"},
		{http.MethodDelete, "/v1/blobs/" + strings.Repeat("a", 64), http.StatusMethodNotAllowed, "PUT, HEAD"},
		{http.MethodPost, "/healthz", http.StatusMethodNotAllowed, "GET, HEAD"},
		{http.MethodGet, "/", http.StatusNotFound, ""},
		{http.MethodPost, "/v2/records", http.StatusNotFound, ""},
		{http.MethodGet, "/v1/blobs", http.StatusNotFound, ""},
	}
	for _, tc := range tests {
		got := tr.do(tc.method, tc.path, nil, nil)
		if got.status != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, got.status, tc.status)
			continue
		}
		if allow := got.header.Get("Allow"); allow != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, allow, tc.allow)
		}
		wantJSONError(t, got)
	}
}

func TestReceiverAfterClose(t *testing.T) {
	tr := startReceiver(t, Config{})
	if err := tr.rcv.Close(); err != nil {
		t.Fatal(err)
	}
	got := tr.do(http.MethodPost, "/v1/records", nil, ndjson(rec("01A")))
	wantStatus(t, got, http.StatusServiceUnavailable)
	if got.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

// Concurrent batches with overlapping ids must store each id exactly once and account for
// every line as either accepted or duplicate.
func TestReceiverConcurrentBatches(t *testing.T) {
	tr := startReceiver(t, Config{})
	const workers, perBatch, distinct = 8, 30, 50
	var (
		mu                   sync.Mutex
		accepted, duplicates int
		wg                   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			var lines [][]byte
			for i := range perBatch {
				lines = append(lines, rec(fmt.Sprintf("01ID%03d", (w*7+i)%distinct)))
			}
			req, err := http.NewRequest(http.MethodPost, tr.srv.URL+"/v1/records", bytes.NewReader(ndjson(lines...)))
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := tr.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			var res struct{ Accepted, Duplicates int }
			if err := json.NewDecoder(resp.Body).Decode(&res); err != nil || resp.StatusCode != http.StatusOK {
				t.Errorf("status %d, %v", resp.StatusCode, err)
				return
			}
			mu.Lock()
			accepted += res.Accepted
			duplicates += res.Duplicates
			mu.Unlock()
		})
	}
	wg.Wait()
	lines := bytes.Split(bytes.TrimSuffix(tr.stored(), []byte("\n")), []byte("\n"))
	ids := map[string]int{}
	for _, l := range lines {
		var r struct{ ID string }
		if err := json.Unmarshal(l, &r); err != nil {
			t.Fatalf("stored line %q: %v", l, err)
		}
		ids[r.ID]++
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("id %s stored %d times", id, n)
		}
	}
	if accepted != len(lines) || accepted+duplicates != workers*perBatch {
		t.Errorf("accepted %d duplicates %d, stored %d lines, sent %d", accepted, duplicates, len(lines), workers*perBatch)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	for _, d := range []string{dir, filepath.Join(dir, "blobs")} {
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".tmp-") {
				t.Errorf("temp file left behind: %s", filepath.Join(d, e.Name()))
			}
		}
	}
}
