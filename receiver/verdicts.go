package receiver

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/api/schema"
)

// outcomeKey is what makes two outcome lines one report: a sensor retrying a batch sends the
// same (verdict, recipient, status, time) again, and a second copy would count twice.
func outcomeKey(verdictID, recipient, status, at string) string {
	return strings.Join([]string{verdictID, recipient, status, at}, "\x00")
}

func (r *Receiver) handleActions(w http.ResponseWriter, req *http.Request) {
	r.handleBatch(w, req, "outcomes", r.outcomeV, r.actions, func(doc map[string]any) string {
		// The schema requires all four to be strings.
		s := func(k string) string { v, _ := doc[k].(string); return v }
		return outcomeKey(s("verdict_id"), s("recipient"), s("status"), s("at"))
	})
}

// verdictPage is api.VerdictPage with the stored lines passed through as they are, so that
// fields this version does not know reach the sensor too.
type verdictPage struct {
	Verdicts []json.RawMessage `json:"verdicts"`
	Next     string            `json:"next"`
}

// handleGetVerdicts serves stored verdicts in the order they were stored. The cursor is the
// number of verdicts the client has seen: the file is only ever appended to, so a cursor stays
// valid across restarts.
func (r *Receiver) handleGetVerdicts(w http.ResponseWriter, req *http.Request) {
	if !r.authorize(w, req) {
		return
	}
	log := r.log.With("kind", "verdicts", "remote", req.RemoteAddr)
	q := req.URL.Query()
	after := q.Get("after")
	limit := api.DefaultVerdictLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > api.MaxVerdictLimit {
			r.reject(w, log, &rejection{
				status: http.StatusBadRequest,
				body:   errorBody{Error: fmt.Sprintf("limit: must be an integer from 1 to %d", api.MaxVerdictLimit)},
				reason: "bad limit",
			})
			return
		}
		limit = n
	}

	r.verdicts.mu.Lock()
	if r.verdicts.closed {
		r.verdicts.mu.Unlock()
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to serve verdicts"})
		return
	}
	total := len(r.verdictLines)
	pos, ok := parseCursor(after, total)
	var page []json.RawMessage
	if ok {
		end := min(pos+limit, total)
		for _, line := range r.verdictLines[pos:end] {
			page = append(page, line)
		}
	}
	r.verdicts.mu.Unlock()

	if !ok {
		r.reject(w, log, &rejection{
			status: http.StatusBadRequest,
			body:   errorBody{Error: "after: not a cursor this receiver gave out"},
			reason: "unknown cursor",
		})
		return
	}
	next := after
	if len(page) > 0 {
		next = strconv.Itoa(pos + len(page))
	}
	if page == nil {
		page = []json.RawMessage{} // "verdicts": [] rather than null, for clients that index it
	}
	writeJSON(w, http.StatusOK, verdictPage{Verdicts: page, Next: next})
	log.Debug("receiver served verdicts", "after", after, "count", len(page), "next", next)
}

// parseCursor turns a cursor into a position in the verdict list. Only the exact spelling
// this receiver gives out is accepted, so that a client confusing cursors with something
// else (a verdict id, a page number) hears about it instead of skipping verdicts.
func parseCursor(after string, total int) (int, bool) {
	if after == "" {
		return 0, true
	}
	n, err := strconv.Atoi(after)
	if err != nil || n < 0 || n > total || strconv.Itoa(n) != after {
		return 0, false
	}
	return n, true
}

// postResult answers POST /v1/verdicts: the verdicts stored, as stored, so that a test or demo
// learns the ids and recipients the receiver filled in.
type postResult struct {
	Accepted   int               `json:"accepted"`
	Duplicates int               `json:"duplicates"`
	Verdicts   []json.RawMessage `json:"verdicts"`
}

// handlePostVerdicts stores verdicts for GET to serve. It is not part of what a pipeline must
// implement: it is how tests and demos put verdicts into the reference receiver.
func (r *Receiver) handlePostVerdicts(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	if !r.authorize(w, req) {
		return
	}
	log := r.log.With("kind", "verdicts", "remote", req.RemoteAddr)
	body, rej := r.decodedBody(w, req)
	if rej != nil {
		r.reject(w, log, rej)
		return
	}
	defer body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		if rej := readRejection(err, 0); rej != nil {
			r.reject(w, log, rej)
			return
		}
		r.reject(w, log, &rejection{status: http.StatusBadRequest, body: errorBody{Error: "cannot read body"}, reason: err.Error()})
		return
	}
	docs, single, rej := splitVerdicts(raw)
	if rej != nil {
		r.reject(w, log, rej)
		return
	}

	c := &completer{r: r}
	var lines [][]byte
	var ids []string
	fresh := make(map[string][]string) // id to recipients, for a restore later in the request
	duplicates := 0
	for i, doc := range docs {
		prefix := ""
		if !single {
			prefix = "/" + strconv.Itoa(i)
		}
		line, v, rej, err := c.complete(doc, prefix, fresh)
		if err != nil {
			log.Error("receiver could not read stored records", "err", err)
			writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store verdicts"})
			return
		}
		if rej != nil {
			r.reject(w, log, rej)
			return
		}
		if _, dup := fresh[v.ID]; dup {
			duplicates++
			continue
		}
		fresh[v.ID] = v.Recipients
		lines = append(lines, line)
		ids = append(ids, v.ID)
	}

	stored, dups, err := r.storeVerdicts(ids, lines)
	if err != nil {
		log.Error("receiver could not store verdicts", "err", err)
		writeError(w, http.StatusServiceUnavailable, errorBody{Error: "temporarily unable to store verdicts"})
		return
	}
	duplicates += dups
	if stored == nil {
		stored = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, postResult{Accepted: len(stored), Duplicates: duplicates, Verdicts: stored})
	log.Info("receiver stored verdicts", "accepted", len(stored), "duplicates", duplicates, "duration", time.Since(start))
}

// splitVerdicts reads a body holding one verdict object or an array of them. single says
// which, so that error pointers can name the element.
func splitVerdicts(raw []byte) (docs []map[string]any, single bool, rej *rejection) {
	bad := func(reason string) *rejection {
		field := ""
		return &rejection{status: http.StatusUnprocessableEntity, body: errorBody{Error: "(body): " + reason, Field: &field}, reason: reason}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false, bad("not JSON: " + err.Error())
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false, bad("more than one JSON value; send one verdict or an array of them")
	}
	switch v := v.(type) {
	case map[string]any:
		return []map[string]any{v}, true, nil
	case []any:
		for i, e := range v {
			obj, ok := e.(map[string]any)
			if !ok {
				field := "/" + strconv.Itoa(i)
				reason := "verdict " + strconv.Itoa(i+1) + " is not an object"
				return nil, false, &rejection{status: http.StatusUnprocessableEntity, body: errorBody{Error: field + ": " + reason, Field: &field}, reason: reason}
			}
			docs = append(docs, obj)
		}
		if len(docs) == 0 {
			return nil, false, bad("an empty array; send at least one verdict")
		}
		return docs, false, nil
	default:
		return nil, false, bad("neither a verdict object nor an array of them")
	}
}

// storeVerdicts appends the lines whose ids are new, in order, and makes them visible to GET
// only once they are fsync'd.
func (r *Receiver) storeVerdicts(ids []string, lines [][]byte) (stored []json.RawMessage, duplicates int, err error) {
	l := r.verdicts
	l.mu.Lock()
	defer l.mu.Unlock()
	var keep []int
	for i, id := range ids {
		if l.has(id) {
			duplicates++
			continue
		}
		keep = append(keep, i)
	}
	if len(keep) == 0 {
		return nil, duplicates, nil
	}
	err = l.appendLocked(func(w io.Writer) error {
		for _, i := range keep {
			if _, err := w.Write(lines[i]); err != nil {
				return err
			}
			if _, err := w.Write([]byte{'\n'}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	for _, i := range keep {
		l.keys[ids[i]] = struct{}{}
		r.verdictPos[ids[i]] = len(r.verdictLines)
		r.verdictLines = append(r.verdictLines, lines[i])
		stored = append(stored, lines[i])
	}
	return stored, duplicates, nil
}

// storedVerdict returns the recipients of a stored verdict.
func (r *Receiver) storedVerdict(id string) ([]string, bool) {
	r.verdicts.mu.Lock()
	defer r.verdicts.mu.Unlock()
	pos, ok := r.verdictPos[id]
	if !ok {
		return nil, false
	}
	var v api.Verdict
	if err := json.Unmarshal(r.verdictLines[pos], &v); err != nil {
		// Stored lines were validated before they were written; one that does not decode
		// was put there by hand, and still names a verdict.
		return nil, true
	}
	return v.Recipients, true
}

// completer fills in and checks the verdicts of one POST, reading the stored records at most
// once for all of them.
type completer struct {
	r       *Receiver
	records []recordRef
	loaded  bool
}

// complete assigns an id when there is none, fills empty recipients, checks the verdict
// against the schema and returns it as the line to store. prefix is the JSON pointer of the
// verdict in the request body; earlier holds the request's verdicts before this one.
func (c *completer) complete(doc map[string]any, prefix string, earlier map[string][]string) ([]byte, *api.Verdict, *rejection, error) {
	if id, present := doc["id"]; !present || id == "" {
		doc["id"] = ulid.Make().String()
	}
	action, _ := doc["action"].(string)
	undo, _ := doc["undo"].(string)
	if action == api.ActionRestore && undo != "" {
		rcpts, ok := earlier[undo]
		if !ok {
			rcpts, ok = c.r.storedVerdict(undo)
		}
		if !ok {
			return nil, nil, verdictRejection(prefix+"/undo", "names no verdict this receiver has"), nil
		}
		if noRecipients(doc) && len(rcpts) > 0 {
			doc["recipients"] = rcpts
		}
	}
	normalizeRecipients(doc)
	filled := false
	if noRecipients(doc) {
		messageID, _ := doc["message_id"].(string)
		recordID, _ := doc["record_id"].(string)
		if messageID != "" || recordID != "" {
			if !c.loaded {
				refs, err := c.r.storedRecords()
				if err != nil {
					return nil, nil, nil, err
				}
				c.records, c.loaded = refs, true
			}
			rcpts, foundID := recipientsFor(c.records, messageID, recordID)
			if len(rcpts) > 0 {
				doc["recipients"] = rcpts
			}
			if messageID == "" && foundID != "" && action != api.ActionRestore {
				doc["message_id"] = foundID
			}
		}
		filled = true
	}

	line, err := marshalCompact(doc)
	if err != nil {
		// Everything in doc came from decoding JSON, so it encodes again.
		return nil, nil, verdictRejection(prefix, "cannot be encoded: "+err.Error()), nil
	}
	if _, err := c.r.verdictV.Decode(line); err != nil {
		var verr *schema.ValidationError
		if !errors.As(err, &verr) {
			return nil, nil, verdictRejection(prefix, err.Error()), nil
		}
		reason := verr.Reason
		if filled && verr.Field == "/recipients" {
			reason += "; none were given, and no stored record matches the verdict's message_id or record_id"
		}
		if verr.More > 0 {
			reason += fmt.Sprintf(" (and %d more)", verr.More)
		}
		return nil, nil, verdictRejection(prefix+verr.Field, reason), nil
	}
	var v api.Verdict
	if err := json.Unmarshal(line, &v); err != nil {
		return nil, nil, verdictRejection(prefix, err.Error()), nil
	}
	return line, &v, nil, nil
}

func verdictRejection(field, reason string) *rejection {
	name := field
	if name == "" {
		name = "(verdict)"
	}
	msg := name + ": " + reason
	return &rejection{status: http.StatusUnprocessableEntity, body: errorBody{Error: msg, Field: &field}, reason: msg}
}

// normalizeRecipients makes given recipients look like filled ones: lowercase, sorted, each
// once, so that the sensor and anyone comparing verdicts see one spelling per mailbox. A list
// holding anything but strings is left for the schema to judge.
func normalizeRecipients(doc map[string]any) {
	list, ok := doc["recipients"].([]any)
	if !ok || len(list) == 0 {
		return
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := e.(string)
		if !ok {
			return
		}
		out = append(out, strings.ToLower(strings.TrimSpace(s)))
	}
	slices.Sort(out)
	doc["recipients"] = slices.Compact(out)
}

// noRecipients is true when recipients is absent, null or an empty array: those are the
// verdicts the receiver completes. Anything else is left for the schema to judge.
func noRecipients(doc map[string]any) bool {
	v, present := doc["recipients"]
	if !present || v == nil {
		return true
	}
	a, ok := v.([]any)
	return ok && len(a) == 0
}

// marshalCompact encodes without HTML escaping, so Message-IDs keep their angle brackets in
// the file people read.
func marshalCompact(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// recordRef is what finding a verdict's recipients needs from one stored record.
type recordRef struct {
	id         string
	messageID  string // message.message_id, else journal.message_id
	dedupeKey  string
	recipients []string // lowercase
}

// storedRecord is the part of a stored record line that recordRef comes from. message's
// dedupe_key is read here rather than from api.Message: it is the same for every copy of one
// message, which is exactly the question asked here.
type storedRecord struct {
	ID       string `json:"id"`
	Envelope *struct {
		RcptTo []string `json:"rcpt_to"`
	} `json:"envelope"`
	Journal *api.Journal `json:"journal"`
	Message struct {
		MessageID string `json:"message_id"`
		DedupeKey string `json:"dedupe_key"`
	} `json:"message"`
}

// storedRecords reads what the records file held when called. Appends that finish while it
// reads are not seen, and one in progress is never seen half-written.
func (r *Receiver) storedRecords() ([]recordRef, error) {
	l := r.records
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, errors.New("receiver is closed")
	}
	fi, err := l.file.Stat()
	l.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("stat records: %w", err)
	}
	f, err := os.Open(filepath.Join(r.outDir, recordsFileName))
	if err != nil {
		return nil, fmt.Errorf("reading records: %w", err)
	}
	defer f.Close()
	var refs []recordRef
	br := bufio.NewReaderSize(io.LimitReader(f, fi.Size()), 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var rec storedRecord
			if json.Unmarshal(line, &rec) == nil {
				refs = append(refs, refOf(&rec))
			}
		}
		if errors.Is(err, io.EOF) {
			return refs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading records: %w", err)
		}
	}
}

// refOf picks a record's true recipients. A journal report's envelope recipient is the
// journaling mailbox; the people who got the message, Bcc and distribution list members
// included, are in the report's own recipient list.
func refOf(rec *storedRecord) recordRef {
	ref := recordRef{id: rec.ID, messageID: rec.Message.MessageID, dedupeKey: rec.Message.DedupeKey}
	var addrs []string
	switch {
	case rec.Journal != nil:
		if ref.messageID == "" {
			ref.messageID = rec.Journal.MessageID
		}
		for _, jr := range rec.Journal.Recipients {
			addrs = append(addrs, jr.Address)
		}
	case rec.Envelope != nil:
		addrs = rec.Envelope.RcptTo
	}
	for _, a := range addrs {
		if a = strings.ToLower(strings.TrimSpace(a)); a != "" {
			ref.recipients = append(ref.recipients, a)
		}
	}
	return ref
}

// recipientsFor finds the records of the verdict's message and returns the union of their
// recipients, lowercase and sorted, and the Message-ID they carry. The verdict's record_id,
// when it names a stored record, picks the message; otherwise its message_id does. Every copy
// sharing a dedupe key is the same message; a copy without one is matched by Message-ID.
func recipientsFor(refs []recordRef, messageID, recordID string) ([]string, string) {
	var seeds []recordRef
	if recordID != "" {
		for _, ref := range refs {
			if ref.id == recordID {
				seeds = append(seeds, ref)
			}
		}
	}
	if len(seeds) == 0 && messageID != "" {
		for _, ref := range refs {
			if ref.messageID == messageID {
				seeds = append(seeds, ref)
			}
		}
	}
	keys := make(map[string]bool)
	ids := make(map[string]bool)
	foundID := ""
	for _, s := range seeds {
		if s.dedupeKey != "" {
			keys[s.dedupeKey] = true
		} else if s.messageID != "" {
			ids[s.messageID] = true
		}
		if foundID == "" {
			foundID = s.messageID
		}
	}
	set := make(map[string]bool)
	for _, s := range seeds {
		for _, a := range s.recipients {
			set[a] = true
		}
	}
	for _, ref := range refs {
		if (ref.dedupeKey != "" && keys[ref.dedupeKey]) || (ref.messageID != "" && ids[ref.messageID]) {
			for _, a := range ref.recipients {
				set[a] = true
			}
		}
	}
	out := make([]string, 0, len(set))
	for a := range set {
		out = append(out, a)
	}
	slices.Sort(out)
	return out, foundID
}
