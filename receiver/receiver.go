// Package receiver is the reference pipeline behind `sensor receiver`: the server side of the
// upload protocol in api/openapi.yaml. It validates every record against the Record v1 schema,
// appends new records to OUT/records.ndjson, and stores blobs as OUT/blobs/<sha256>. It also
// serves verdicts (posted to it by tests and demos, kept in OUT/verdicts.ndjson) and takes the
// sensor's action outcomes into OUT/actions.ndjson. Tests, demos and small deployments use
// it; a real scoring pipeline replaces it.
package receiver

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/api/schema"
	"github.com/journalsensor/sensor/internal/atomicfile"
)

const (
	// DefaultMaxBodyBytes bounds one request body, decompressed, when Config leaves
	// MaxBodyBytes at 0.
	DefaultMaxBodyBytes = 256 << 20

	// maxLineBytes bounds one NDJSON line. A record holds metadata only, so a line anywhere
	// near this is a bug or an attack, and the bound keeps the scanner's buffer finite.
	maxLineBytes = 64 << 20

	recordsFileName  = "records.ndjson"
	verdictsFileName = "verdicts.ndjson"
	actionsFileName  = "actions.ndjson"
	blobsDirName     = "blobs"
	// tempPrefix marks files that are only ever half-done; start-up deletes them.
	tempPrefix = ".tmp-"

	// retryAfterSeconds is what we suggest when storage is briefly unavailable.
	retryAfterSeconds = "5"
)

// Config configures New.
type Config struct {
	// OutDir holds records.ndjson, blobs/, verdicts.ndjson and actions.ndjson. Created 0700
	// when missing.
	OutDir string
	// Token is the bearer token clients must present; empty disables the check.
	Token string
	// MaxBodyBytes bounds a request body after decompression: 0 means DefaultMaxBodyBytes,
	// negative means unlimited.
	MaxBodyBytes int64
	// Logger receives one line per request outcome; nil discards.
	Logger *slog.Logger
}

// Receiver is the reference implementation of the API in openapi.yaml: it validates every
// record, appends new ones to OutDir/records.ndjson and stores blobs as OutDir/blobs/<sha256>;
// it serves the verdicts of OutDir/verdicts.ndjson and appends outcomes to
// OutDir/actions.ndjson.
type Receiver struct {
	outDir    string
	blobDir   string
	auth      bool
	tokenHash [sha256.Size]byte
	maxBody   int64
	log       *slog.Logger
	validator *schema.Validator
	verdictV  *schema.Validator
	outcomeV  *schema.Validator
	mux       *http.ServeMux

	records  *appendLog // keyed by record id
	actions  *appendLog // keyed by outcomeKey
	verdicts *appendLog // keyed by verdict id
	// verdictLines holds every stored verdict line in file order, which is the order GET
	// serves them in: a cursor is a position in it. Guarded by verdicts.mu.
	verdictLines [][]byte
	verdictPos   map[string]int // verdict id to its index in verdictLines; guarded by verdicts.mu

	// blobMu makes "is it there already? then rename" one step for concurrent PUTs.
	blobMu sync.Mutex
}

var _ http.Handler = (*Receiver)(nil)

// New prepares OutDir and loads what is already stored there: record ids and outcome keys, so
// that a restarted receiver still ignores what it has, and verdicts, so that it serves them in
// the same order and old cursors still point at the same place.
func New(cfg Config) (*Receiver, error) {
	if cfg.OutDir == "" {
		return nil, errors.New("receiver: OutDir is empty")
	}
	token := strings.TrimSpace(cfg.Token)
	if cfg.Token != "" && token == "" {
		// A token file holding only a newline must not silently turn authentication off.
		return nil, errors.New("receiver: token is blank")
	}
	r := &Receiver{
		outDir:  cfg.OutDir,
		blobDir: filepath.Join(cfg.OutDir, blobsDirName),
		auth:    token != "",
		maxBody: cfg.MaxBodyBytes,
		log:     cfg.Logger,
	}
	if token != "" {
		r.tokenHash = sha256.Sum256([]byte(token))
	}
	switch {
	case r.maxBody == 0:
		r.maxBody = DefaultMaxBodyBytes
	case r.maxBody < 0:
		r.maxBody = math.MaxInt64
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}

	v, err := schema.New()
	if err != nil {
		return nil, err
	}
	r.validator = v
	if r.verdictV, err = schema.NewVerdict(); err != nil {
		return nil, err
	}
	if r.outcomeV, err = schema.NewOutcome(); err != nil {
		return nil, err
	}

	for _, dir := range []string{r.outDir, r.blobDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("receiver: %w", err)
		}
		if err := r.removeTemps(dir); err != nil {
			return nil, err
		}
	}
	if err := r.openLogs(); err != nil {
		return nil, err
	}
	r.routes()
	return r, nil
}

func (r *Receiver) openLogs() error {
	var err error
	r.records, err = openLog(r.outDir, recordsFileName, r.log, idOf, nil)
	if err != nil {
		return err
	}
	r.actions, err = openLog(r.outDir, actionsFileName, r.log, func(line []byte) (string, bool) {
		var o api.Outcome
		if json.Unmarshal(line, &o) != nil || o.VerdictID == "" {
			return "", false
		}
		return outcomeKey(o.VerdictID, o.Recipient, o.Status, o.At), true
	}, nil)
	if err != nil {
		return errors.Join(err, r.records.close())
	}
	r.verdictPos = make(map[string]int)
	r.verdicts, err = openLog(r.outDir, verdictsFileName, r.log, idOf, func(id string, line []byte) {
		r.verdictPos[id] = len(r.verdictLines)
		r.verdictLines = append(r.verdictLines, bytes.TrimSuffix(line, []byte("\n")))
	})
	if err != nil {
		return errors.Join(err, r.records.close(), r.actions.close())
	}
	return nil
}

// idOf reads the id of a record or verdict line.
func idOf(line []byte) (string, bool) {
	var doc struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(line, &doc) != nil || doc.ID == "" {
		return "", false
	}
	return doc.ID, true
}

// removeTemps deletes what a crash left behind: temp files are never the only copy of
// anything acknowledged.
func (r *Receiver) removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("receiver: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), tempPrefix) || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("receiver: removing leftover temp file: %w", err)
		}
		r.log.Warn("receiver removed leftover temp file", "file", filepath.Join(dir, e.Name()))
	}
	return nil
}

// Close releases the files. Requests after Close get 503.
func (r *Receiver) Close() error {
	return errors.Join(r.records.close(), r.actions.close(), r.verdicts.close())
}

// ServeHTTP routes a request to the upload API.
func (r *Receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mux.ServeHTTP(w, req)
}

func (r *Receiver) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/records", r.handleRecords)
	mux.HandleFunc("PUT /v1/blobs/{sha256}", r.handlePutBlob)
	mux.HandleFunc("HEAD /v1/blobs/{sha256}", r.handleHeadBlob)
	mux.HandleFunc("GET /healthz", r.handleHealth)
	mux.HandleFunc("GET /v1/verdicts", r.handleGetVerdicts)
	mux.HandleFunc("POST /v1/verdicts", r.handlePostVerdicts)
	mux.HandleFunc("POST /v1/actions", r.handleActions)
	// Method-less twins of the patterns above: ServeMux's own 405 and 404 answers are plain
	// text, and clients of this API expect a JSON error body.
	mux.HandleFunc("/v1/records", methodNotAllowed(http.MethodPost))
	mux.HandleFunc("/v1/blobs/{sha256}", methodNotAllowed(http.MethodPut, http.MethodHead))
	mux.HandleFunc("/healthz", methodNotAllowed(http.MethodGet, http.MethodHead))
	mux.HandleFunc("/v1/verdicts", methodNotAllowed(http.MethodGet, http.MethodPost))
	mux.HandleFunc("/v1/actions", methodNotAllowed(http.MethodPost))
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		writeError(w, http.StatusNotFound, errorBody{Error: "no such endpoint"})
	})
	r.mux = mux
}

func methodNotAllowed(allowed ...string) http.HandlerFunc {
	allow := strings.Join(allowed, ", ")
	return func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, errorBody{Error: "method not allowed; use " + allow})
	}
}

func (r *Receiver) handleHealth(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

// authorize answers 401 and returns false unless the request carries the configured token.
func (r *Receiver) authorize(w http.ResponseWriter, req *http.Request) bool {
	if !r.auth {
		return true
	}
	scheme, cred, _ := strings.Cut(req.Header.Get("Authorization"), " ")
	// Hashing both sides first makes the comparison constant-time in the token's length too,
	// which ConstantTimeCompare alone would leak.
	got := sha256.Sum256([]byte(strings.TrimSpace(cred)))
	if strings.EqualFold(scheme, "Bearer") && subtle.ConstantTimeCompare(got[:], r.tokenHash[:]) == 1 {
		return true
	}
	r.log.Warn("receiver refused a request without a valid token",
		"method", req.Method, "path", req.URL.Path, "remote", req.RemoteAddr)
	w.Header().Set("WWW-Authenticate", `Bearer realm="sensor receiver"`)
	writeError(w, http.StatusUnauthorized, errorBody{Error: "missing or wrong bearer token"})
	return false
}

type errorBody struct {
	Error string  `json:"error"`
	Line  int     `json:"line,omitempty"`
	Field *string `json:"field,omitempty"`
}

type batchResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
}

type blobResult struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// The status is out; a client that hung up is no reason to do anything more.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, body errorBody) {
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	writeJSON(w, status, body)
}

// batch is a validated request body, spooled to a temp file so that a large batch is never
// held in memory while we wait to know whether all of it is valid.
type batch struct {
	file       *os.File
	entries    []entry
	lines      int
	bytes      int64
	duplicates int // repeats of an id within the batch itself
}

// entry locates one line (newline included) in the batch file.
type entry struct {
	id     string // the line's key: a record id, or an outcome's outcomeKey
	offset int64
	length int64
}

// rejection is a request we refuse as poison, with the line and field when known.
type rejection struct {
	status int
	body   errorBody
	reason string // for the log: never contents
}

func (r *Receiver) handleRecords(w http.ResponseWriter, req *http.Request) {
	r.handleBatch(w, req, "records", r.validator, r.records, func(doc map[string]any) string {
		id, _ := doc["id"].(string) // the schema requires a non-empty string
		return id
	})
}

// handleBatch takes one gzip NDJSON batch of what into l: every line is checked with v, and a
// line whose key l already has, or that repeats one earlier in the batch, is a duplicate.
func (r *Receiver) handleBatch(w http.ResponseWriter, req *http.Request, what string, v *schema.Validator, l *appendLog, key func(map[string]any) string) {
	start := time.Now()
	if !r.authorize(w, req) {
		return
	}
	log := r.log.With("kind", what, "idempotency_key", req.Header.Get("Idempotency-Key"), "remote", req.RemoteAddr)

	body, rej := r.decodedBody(w, req)
	if rej != nil {
		r.reject(w, log, rej)
		return
	}
	defer body.Close()

	b, rej, err := r.readBatch(body, v, key)
	if b != nil {
		defer r.discard(b, log)
	}
	if err != nil {
		log.Error("receiver could not spool a batch", "err", err)
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store " + what})
		return
	}
	if rej != nil {
		r.reject(w, log, rej)
		return
	}

	accepted, duplicates, err := l.commit(b)
	if err != nil {
		log.Error("receiver could not store a batch", "err", err, "lines", b.lines)
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store " + what})
		return
	}
	writeJSON(w, http.StatusOK, batchResult{Accepted: accepted, Duplicates: duplicates})
	log.Info("receiver stored a batch", "lines", b.lines, "bytes", b.bytes,
		"accepted", accepted, "duplicates", duplicates, "duration", time.Since(start))
}

func (r *Receiver) reject(w http.ResponseWriter, log *slog.Logger, rej *rejection) {
	attrs := []any{"status", rej.status, "reason", rej.reason}
	if rej.body.Line > 0 {
		attrs = append(attrs, "line", rej.body.Line)
	}
	if rej.body.Field != nil {
		attrs = append(attrs, "field", *rej.body.Field)
	}
	log.Warn("receiver rejected a request", attrs...)
	writeError(w, rej.status, rej.body)
}

// decodedBody returns the request body decompressed, bounded by MaxBodyBytes both before and
// after decompression, so that neither a huge upload nor a gzip bomb gets through.
func (r *Receiver) decodedBody(w http.ResponseWriter, req *http.Request) (io.ReadCloser, *rejection) {
	raw := http.MaxBytesReader(w, req.Body, r.maxBody)
	switch enc := strings.ToLower(strings.TrimSpace(req.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return raw, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(raw)
		if err != nil {
			if rej := readRejection(err, 0); rej != nil {
				return nil, rej
			}
			return nil, &rejection{status: http.StatusBadRequest, body: errorBody{Error: "body is not gzip"}, reason: err.Error()}
		}
		return http.MaxBytesReader(w, zr, r.maxBody), nil
	default:
		w.Header().Set("Accept-Encoding", "gzip")
		return nil, &rejection{
			status: http.StatusUnsupportedMediaType,
			body:   errorBody{Error: "unsupported Content-Encoding; send gzip or nothing"},
			reason: "content-encoding " + strconv.Quote(enc),
		}
	}
}

// readBatch validates every line of body with v and spools the first occurrence of each key to
// a temp file. A rejection means the batch is poison; an error means our disk failed.
func (r *Receiver) readBatch(body io.Reader, v *schema.Validator, key func(map[string]any) string) (*batch, *rejection, error) {
	f, err := os.CreateTemp(r.outDir, tempPrefix+"batch-*")
	if err != nil {
		return nil, nil, fmt.Errorf("creating batch file: %w", err)
	}
	b := &batch{file: f}
	bw := bufio.NewWriterSize(f, 256<<10)
	seen := make(map[string]struct{})

	rd := &errReader{r: body}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	lineNo := 0
	for sc.Scan() {
		if rd.err != nil {
			// The scanner hands out what it buffered before a read error as if the body had
			// ended there, so this line may be cut short: report the read error instead.
			break
		}
		lineNo++
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		b.bytes += int64(len(sc.Bytes())) + 1
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		b.lines++
		doc, err := v.Decode(line)
		if err != nil {
			field, reason := "", err.Error()
			var verr *schema.ValidationError
			if errors.As(err, &verr) {
				field, reason = verr.Field, verr.Error()
			}
			msg := fmt.Sprintf("line %d: %s", lineNo, reason)
			return b, &rejection{
				status: http.StatusUnprocessableEntity,
				body:   errorBody{Error: msg, Line: lineNo, Field: &field},
				reason: msg,
			}, nil
		}
		id := key(doc)
		if _, dup := seen[id]; dup {
			b.duplicates++
			continue
		}
		seen[id] = struct{}{}
		n := int64(len(line)) + 1
		b.entries = append(b.entries, entry{id: id, offset: b.offsetEnd(), length: n})
		if _, err := bw.Write(line); err != nil {
			return b, nil, fmt.Errorf("writing batch file: %w", err)
		}
		if err := bw.WriteByte('\n'); err != nil {
			return b, nil, fmt.Errorf("writing batch file: %w", err)
		}
	}
	if err := cmp.Or(rd.err, sc.Err()); err != nil {
		if rej := readRejection(err, lineNo+1); rej != nil {
			return b, rej, nil
		}
		return b, &rejection{status: http.StatusBadRequest, body: errorBody{Error: "cannot read body"}, reason: err.Error()}, nil
	}
	if err := bw.Flush(); err != nil {
		return b, nil, fmt.Errorf("writing batch file: %w", err)
	}
	return b, nil, nil
}

// errReader remembers the first read error other than io.EOF.
type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) && e.err == nil {
		e.err = err
	}
	return n, err
}

// offsetEnd is where the next entry starts in the batch file.
func (b *batch) offsetEnd() int64 {
	if len(b.entries) == 0 {
		return 0
	}
	last := b.entries[len(b.entries)-1]
	return last.offset + last.length
}

// readRejection classifies an error from reading a (possibly gzip) body, or returns nil when
// it is none of the known kinds. line is the line being read, 0 when not yet reading lines.
func readRejection(err error, line int) *rejection {
	var tooBig *http.MaxBytesError
	var corrupt flate.CorruptInputError
	switch {
	case errors.As(err, &tooBig):
		return &rejection{
			status: http.StatusRequestEntityTooLarge,
			body:   errorBody{Error: fmt.Sprintf("body is larger than %d bytes", tooBig.Limit)},
			reason: err.Error(),
		}
	case errors.Is(err, bufio.ErrTooLong):
		return &rejection{
			status: http.StatusRequestEntityTooLarge,
			body:   errorBody{Error: fmt.Sprintf("line %d is longer than %d bytes", line, maxLineBytes), Line: line},
			reason: err.Error(),
		}
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.As(err, &corrupt):
		return &rejection{status: http.StatusBadRequest, body: errorBody{Error: "body is not valid gzip"}, reason: err.Error()}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &rejection{status: http.StatusBadRequest, body: errorBody{Error: "body ends early"}, reason: err.Error()}
	}
	return nil
}

func (r *Receiver) discard(b *batch, log *slog.Logger) {
	name := b.file.Name()
	if err := b.file.Close(); err != nil {
		log.Warn("receiver could not close a batch file", "err", err)
	}
	if err := os.Remove(name); err != nil {
		log.Warn("receiver could not remove a batch file", "file", name, "err", err)
	}
}

func (r *Receiver) blobSum(w http.ResponseWriter, req *http.Request) (string, bool) {
	sum := req.PathValue("sha256")
	if !isSHA256Hex(sum) {
		writeError(w, http.StatusBadRequest, errorBody{Error: "path must end in the blob's sha256 as 64 lowercase hex digits"})
		return "", false
	}
	return sum, true
}

func isSHA256Hex(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func (r *Receiver) handleHeadBlob(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	sum, ok := r.blobSum(w, req)
	if !ok {
		return
	}
	fi, err := os.Stat(filepath.Join(r.blobDir, sum))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		w.WriteHeader(http.StatusNotFound)
	case err != nil:
		r.log.Error("receiver could not look up a blob", "sha256", sum, "err", err)
		w.Header().Set("Retry-After", retryAfterSeconds)
		w.WriteHeader(http.StatusServiceUnavailable)
	default:
		w.Header().Set("Content-Length", strconv.FormatInt(fi.Size(), 10))
		w.WriteHeader(http.StatusOK)
	}
}

func (r *Receiver) handlePutBlob(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	if !r.authorize(w, req) {
		return
	}
	sum, ok := r.blobSum(w, req)
	if !ok {
		return
	}
	log := r.log.With("sha256", sum, "remote", req.RemoteAddr)
	if enc := strings.TrimSpace(req.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		// The hash is over the attachment's bytes; a coded body would only ever mismatch.
		r.reject(w, log, &rejection{
			status: http.StatusUnsupportedMediaType,
			body:   errorBody{Error: "blobs are uploaded as raw bytes, without Content-Encoding"},
			reason: "content-encoding " + strconv.Quote(enc),
		})
		return
	}

	tmp, err := os.CreateTemp(r.blobDir, tempPrefix+"*")
	if err != nil {
		log.Error("receiver could not create a blob file", "err", err)
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store blobs"})
		return
	}
	defer func() {
		// Once renamed into place the temp name is gone, and this is a no-op.
		if err := os.Remove(tmp.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			log.Warn("receiver could not remove a blob temp file", "file", tmp.Name(), "err", err)
		}
	}()

	h := sha256.New()
	n, copyErr := io.Copy(io.MultiWriter(tmp, h), http.MaxBytesReader(w, req.Body, r.maxBody))
	var syncErr error
	if copyErr == nil {
		syncErr = tmp.Sync()
	}
	closeErr := tmp.Close()
	if copyErr != nil {
		rej := readRejection(copyErr, 0)
		if rej == nil {
			// Reading failed for a reason that is not the body's size: almost always the
			// client going away, but a full disk lands here too, so it is worth a retry.
			log.Warn("receiver could not receive a blob", "err", copyErr)
			writeError(w, http.StatusServiceUnavailable, errorBody{Error: "could not receive the blob"})
			return
		}
		r.reject(w, log, rej)
		return
	}
	if err := errors.Join(syncErr, closeErr); err != nil {
		log.Error("receiver could not write a blob", "err", err)
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store blobs"})
		return
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		r.reject(w, log, &rejection{
			status: http.StatusUnprocessableEntity,
			body:   errorBody{Error: "sha256 of the body is " + got + ", not the one in the path"},
			reason: "hash mismatch",
		})
		return
	}

	status, err := r.storeBlob(tmp.Name(), sum)
	if err != nil {
		log.Error("receiver could not store a blob", "err", err)
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store blobs"})
		return
	}
	writeJSON(w, status, blobResult{SHA256: sum, Size: n})
	log.Info("receiver stored a blob", "status", status, "bytes", n, "duration", time.Since(start))
}

// storeBlob moves a verified temp file to its final name, unless an identical blob is already
// there. Returns 201 when it stored the file, 200 when it was already present.
func (r *Receiver) storeBlob(tmpName, sum string) (int, error) {
	r.blobMu.Lock()
	defer r.blobMu.Unlock()
	final := filepath.Join(r.blobDir, sum)
	if _, err := os.Stat(final); err == nil {
		return http.StatusOK, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("stat blob: %w", err)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return 0, fmt.Errorf("renaming blob: %w", err)
	}
	if err := atomicfile.SyncDir(r.blobDir); err != nil {
		return 0, err
	}
	return http.StatusCreated, nil
}
