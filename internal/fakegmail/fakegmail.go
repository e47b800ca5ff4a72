// Package fakegmail is an in-memory HTTPS stand-in for the parts of the Gmail API that
// enforcement uses (messages list/get/modify/trash/untrash/delete, labels list/create) and
// for Google's OAuth token endpoint with service-account JWT bearer assertions, written from
// Google's public documentation. It checks what the real service checks where a client
// could get it wrong: the assertion's signature and claims, the delegated scopes, the token
// being bound to the impersonated user, and per-user quota.
package fakegmail

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/jws"
)

// Scopes a service account can be granted.
const (
	ScopeModify = "https://www.googleapis.com/auth/gmail.modify"
	ScopeFull   = "https://mail.google.com/"
)

// Quota costs per call, from Gmail's quota reference.
const (
	costRead   = 5 // list, get, labels, modify, trash, untrash
	costDelete = 10
)

// Options configure New. Zero values take the defaults named on each field.
type Options struct {
	// Users are the mailboxes the service account may impersonate (domain-wide delegation).
	Users []string
	// Scopes granted to the service account's delegation; default gmail.modify and the full
	// mail scope.
	Scopes []string
	// QuotaPerMinute is each user's budget of quota units per minute; default 15,000.
	QuotaPerMinute int
	// PageSize is how many ids one list page holds; default 100.
	PageSize int
	// TokenLifetime of the access tokens issued; default one hour.
	TokenLifetime time.Duration
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	srv         *httptest.Server
	saKey       *rsa.PrivateKey
	clientEmail string
	issuer      *rsa.PrivateKey
	opts        Options

	mu       sync.Mutex
	users    map[string]*mailbox
	counts   map[string]int
	tokenSeq int
}

type mailbox struct {
	msgs      map[string]*message
	order     []string
	labels    map[string]string // id → name
	nextID    int
	lists     int // list calls so far, for late delivery
	throttle  int // next requests answered 429
	throttle4 int // next requests answered 403 rateLimitExceeded
	retry     string
	unavail   int // next requests answered 503
	quotaFrom time.Time
	quotaUsed int
}

type message struct {
	id         string
	messageID  string
	labels     []string
	afterLists int       // visible once the user has made this many list calls
	visibleAt  time.Time // and from this time
}

// New starts the fake; it stops when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Scopes == nil {
		opts.Scopes = []string{ScopeModify, ScopeFull}
	}
	if opts.QuotaPerMinute == 0 {
		opts.QuotaPerMinute = 15000
	}
	if opts.PageSize == 0 {
		opts.PageSize = 100
	}
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("fakegmail: service account key: %v", err)
	}
	issuer, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("fakegmail: token signing key: %v", err)
	}
	s := &Server{
		saKey:       saKey,
		clientEmail: "sensor@journal-sensor-test.iam.gserviceaccount.com",
		issuer:      issuer,
		opts:        opts,
		users:       make(map[string]*mailbox),
		counts:      make(map[string]int),
	}
	for _, u := range opts.Users {
		s.AddUser(u)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.handleToken)
	mux.HandleFunc("GET /gmail/v1/users/{user}/messages", s.api(costRead, "messages.list", s.handleList))
	mux.HandleFunc("GET /gmail/v1/users/{user}/messages/{id}", s.api(costRead, "messages.get", s.handleGet))
	mux.HandleFunc("DELETE /gmail/v1/users/{user}/messages/{id}", s.api(costDelete, "messages.delete", s.handleDelete))
	mux.HandleFunc("POST /gmail/v1/users/{user}/messages/{id}/modify", s.api(costRead, "messages.modify", s.handleModify))
	mux.HandleFunc("POST /gmail/v1/users/{user}/messages/{id}/trash", s.api(costRead, "messages.trash", s.handleTrash(true)))
	mux.HandleFunc("POST /gmail/v1/users/{user}/messages/{id}/untrash", s.api(costRead, "messages.untrash", s.handleTrash(false)))
	mux.HandleFunc("GET /gmail/v1/users/{user}/labels", s.api(costRead, "labels.list", s.handleLabels))
	mux.HandleFunc("POST /gmail/v1/users/{user}/labels", s.api(costRead, "labels.create", s.handleCreateLabel))
	s.srv = httptest.NewTLSServer(mux)
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the base URL, for GmailURL.
func (s *Server) URL() string { return s.srv.URL }

// TokenURL is the token endpoint, as the credentials' token_uri names it.
func (s *Server) TokenURL() string { return s.srv.URL + "/token" }

// Client trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// ClientEmail is the service account's address.
func (s *Server) ClientEmail() string { return s.clientEmail }

// Credentials returns the service account's JSON key, shaped like Google's, with token_uri
// pointing at the fake.
func (s *Server) Credentials() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.saKey)
	if err != nil {
		panic(fmt.Sprintf("fakegmail: marshal key: %v", err))
	}
	key := map[string]string{
		"type":           "service_account",
		"project_id":     "journal-sensor-test",
		"private_key_id": "fake-key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   s.clientEmail,
		"client_id":      "100000000000000000001",
		"token_uri":      s.TokenURL(),
	}
	b, err := json.Marshal(key)
	if err != nil {
		panic(fmt.Sprintf("fakegmail: marshal credentials: %v", err))
	}
	return b
}

// AddUser creates an empty mailbox, with delegation, holding the system labels.
func (s *Server) AddUser(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[user]; ok {
		return
	}
	s.users[user] = &mailbox{
		msgs:   make(map[string]*message),
		labels: map[string]string{"INBOX": "INBOX", "TRASH": "TRASH", "SPAM": "SPAM", "UNREAD": "UNREAD"},
	}
}

// Deliver puts a message with this Message-ID header (angle brackets included) into the
// user's mailbox with these label ids (INBOX when none), and returns its Gmail id.
func (s *Server) Deliver(user, messageID string, labels ...string) string {
	return s.DeliverLate(user, messageID, 0, 0, labels...)
}

// DeliverLate is Deliver for a message that the user's next afterLists list calls, and any
// call before delay has passed, do not see, as with a message still in transit.
func (s *Server) DeliverLate(user, messageID string, afterLists int, delay time.Duration, labels ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.users[user]
	if mb == nil {
		panic("fakegmail: no user " + user)
	}
	if len(labels) == 0 {
		labels = []string{"INBOX"}
	}
	mb.nextID++
	id := fmt.Sprintf("18c%013x", mb.nextID)
	mb.msgs[id] = &message{
		id:         id,
		messageID:  messageID,
		labels:     slices.Clone(labels),
		afterLists: afterLists,
		visibleAt:  time.Now().Add(delay),
	}
	mb.order = append(mb.order, id)
	return id
}

// Labels returns the label ids on a message, and false when it does not exist.
func (s *Server) Labels(user, id string) ([]string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.users[user]
	if mb == nil || mb.msgs[id] == nil {
		return nil, false
	}
	return slices.Clone(mb.msgs[id].labels), true
}

// LabelID returns the id of the user's label with this name, "" if none.
func (s *Server) LabelID(user, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mb := s.users[user]; mb != nil {
		return mb.labelByName(name)
	}
	return ""
}

// Throttle answers the user's next k API requests with 429 and this Retry-After value.
func (s *Server) Throttle(user string, k int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user].throttle = k
	s.users[user].retry = retryAfter
}

// RateLimit403 answers the user's next k API requests with 403 rateLimitExceeded and this
// Retry-After value ("" for none), as Gmail reports some per-user limits.
func (s *Server) RateLimit403(user string, k int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user].throttle4 = k
	s.users[user].retry = retryAfter
}

// Unavailable answers the user's next k API requests with 503.
func (s *Server) Unavailable(user string, k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[user].unavail = k
}

// Count returns how many times a counter was hit. Counters are "token" and "token:USER"
// for tokens issued, "OP" and "OP:USER" for API calls that reached their handler (e.g.
// "labels.create", "messages.modify:a@example.com"), "rejected" for refused credentials,
// and "quota_exceeded".
func (s *Server) Count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[name]
}

// QuotaUsed returns the user's units spent in the current minute.
func (s *Server) QuotaUsed(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[user].quotaUsed
}

func (mb *mailbox) labelByName(name string) string {
	for id, n := range mb.labels {
		if n == name {
			return id
		}
	}
	return ""
}

func (m *message) visible(mb *mailbox) bool {
	return mb.lists >= m.afterLists && !time.Now().Before(m.visibleAt)
}

// --- token endpoint ---

type assertionClaims struct {
	Iss   string `json:"iss"`
	Scope string `json:"scope"`
	Aud   string `json:"aud"`
	Sub   string `json:"sub"`
	Iat   int64  `json:"iat"`
	Exp   int64  `json:"exp"`
}

type accessClaims struct {
	Sub   string `json:"sub"`
	Scope string `json:"scope"`
	Exp   int64  `json:"exp"`
	Jti   string `json:"jti"`
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "Invalid grant_type: "+g)
		return
	}
	var c assertionClaims
	if err := verifyJWT(r.PostForm.Get("assertion"), &s.saKey.PublicKey, &c); err != nil {
		s.reject()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT Signature.")
		return
	}
	now := time.Now().Unix()
	switch {
	case c.Iss != s.clientEmail:
		s.reject()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid issuer")
		return
	case c.Aud != s.TokenURL():
		s.reject()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: aud")
		return
	case c.Exp <= now || c.Iat > now+60 || c.Exp-c.Iat > 3600:
		s.reject()
		oauthError(w, http.StatusBadRequest, "invalid_grant", "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.")
		return
	}
	s.mu.Lock()
	_, known := s.users[c.Sub]
	s.mu.Unlock()
	if c.Sub == "" || !known {
		s.reject()
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
		return
	}
	scopes := strings.Fields(c.Scope)
	if len(scopes) == 0 {
		s.reject()
		oauthError(w, http.StatusBadRequest, "invalid_scope", "Empty or missing scope not allowed.")
		return
	}
	for _, sc := range scopes {
		if !slices.Contains(s.opts.Scopes, sc) {
			s.reject()
			oauthError(w, http.StatusBadRequest, "unauthorized_client", "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.")
			return
		}
	}
	s.mu.Lock()
	s.tokenSeq++
	jti := strconv.Itoa(s.tokenSeq)
	s.counts["token"]++
	s.counts["token:"+c.Sub]++
	s.mu.Unlock()
	tok, err := signJWT(s.issuer, accessClaims{Sub: c.Sub, Scope: c.Scope, Exp: time.Now().Add(s.opts.TokenLifetime).Unix(), Jti: jti})
	if err != nil {
		oauthError(w, http.StatusInternalServerError, "internal_failure", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"access_token": tok,
		"token_type":   "Bearer",
		"expires_in":   int(s.opts.TokenLifetime / time.Second),
	})
}

func (s *Server) reject() {
	s.mu.Lock()
	s.counts["rejected"]++
	s.mu.Unlock()
}

func signJWT(key *rsa.PrivateKey, claims any) (string, error) {
	return jws.Sign(key, "RS256", map[string]any{"typ": "JWT"}, claims)
}

// verifyJWT checks an RS256 compact JWS against key (Google signs and accepts no other
// algorithm) and decodes its claims.
func verifyJWT(tok string, key *rsa.PublicKey, claims any) error {
	_, err := jws.Verify(tok, func(h map[string]any) (crypto.PublicKey, error) {
		if h["alg"] != "RS256" {
			return nil, fmt.Errorf("alg %q", h["alg"])
		}
		return key, nil
	}, claims)
	return err
}

// --- API ---

func apiError(w http.ResponseWriter, status int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	st := map[int]string{400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
		404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}[status]
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"code": status, "message": msg, "status": st,
		"errors": []map[string]string{{"reason": reason, "message": msg, "domain": "global"}},
	}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

type apiHandler func(w http.ResponseWriter, r *http.Request, user string, mb *mailbox)

// api authenticates the call, applies the fault knobs and the quota, then runs h with the
// lock held.
func (s *Server) api(cost int, op string, h apiHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		var c accessClaims
		if !strings.HasPrefix(auth, "Bearer ") || verifyJWT(strings.TrimPrefix(auth, "Bearer "), &s.issuer.PublicKey, &c) != nil {
			s.reject()
			apiError(w, http.StatusUnauthorized, "authError", "Request had invalid authentication credentials.")
			return
		}
		if c.Exp <= time.Now().Unix() {
			s.reject()
			apiError(w, http.StatusUnauthorized, "authError", "Request had invalid authentication credentials: token expired.")
			return
		}
		user := r.PathValue("user")
		if user == "me" {
			user = c.Sub
		}
		if user != c.Sub {
			s.reject()
			apiError(w, http.StatusForbidden, "forbidden", "Delegation denied for "+c.Sub)
			return
		}
		scopes := strings.Fields(c.Scope)
		allowed := slices.Contains(scopes, ScopeFull) || (op != "messages.delete" && slices.Contains(scopes, ScopeModify))
		if !allowed {
			s.reject()
			apiError(w, http.StatusForbidden, "insufficientPermissions", "Request had insufficient authentication scopes.")
			return
		}

		s.mu.Lock()
		defer s.mu.Unlock()
		mb := s.users[user]
		if mb == nil {
			apiError(w, http.StatusBadRequest, "failedPrecondition", "Mail service not enabled")
			return
		}
		switch {
		case mb.throttle > 0:
			mb.throttle--
			w.Header().Set("Retry-After", mb.retry)
			apiError(w, http.StatusTooManyRequests, "rateLimitExceeded", "Too many requests")
			return
		case mb.throttle4 > 0:
			mb.throttle4--
			if mb.retry != "" {
				w.Header().Set("Retry-After", mb.retry)
			}
			apiError(w, http.StatusForbidden, "rateLimitExceeded", "Rate Limit Exceeded")
			return
		case mb.unavail > 0:
			mb.unavail--
			apiError(w, http.StatusServiceUnavailable, "backendError", "The service is currently unavailable.")
			return
		}
		now := time.Now()
		if now.Sub(mb.quotaFrom) >= time.Minute {
			mb.quotaFrom, mb.quotaUsed = now, 0
		}
		if mb.quotaUsed+cost > s.opts.QuotaPerMinute {
			s.counts["quota_exceeded"]++
			wait := time.Minute - now.Sub(mb.quotaFrom)
			w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
			apiError(w, http.StatusTooManyRequests, "userRateLimitExceeded", "User-rate limit exceeded.")
			return
		}
		mb.quotaUsed += cost
		s.counts[op]++
		s.counts[op+":"+user]++
		h(w, r, user, mb)
	}
}

type msgJSON struct {
	ID       string   `json:"id"`
	ThreadID string   `json:"threadId"`
	LabelIDs []string `json:"labelIds,omitempty"`
}

// handleList supports the one query shape enforcement sends, rfc822msgid:ID, matched
// without angle brackets on either side; any other query is refused so a client bug shows.
func (s *Server) handleList(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
	// Counted after the search, so afterLists calls come back without the message.
	defer func() { mb.lists++ }()
	q := r.URL.Query()
	query := q.Get("q")
	want, ok := strings.CutPrefix(query, "rfc822msgid:")
	if !ok || want == "" || strings.ContainsAny(want, " \t") {
		apiError(w, http.StatusBadRequest, "invalidArgument", "fakegmail supports only q=rfc822msgid:ID, got "+strconv.Quote(query))
		return
	}
	want = strings.Trim(want, "<>")
	withSpamTrash := q.Get("includeSpamTrash") == "true"
	var hits []msgJSON
	for _, id := range mb.order {
		m := mb.msgs[id]
		if m == nil || !m.visible(mb) || strings.Trim(m.messageID, "<>") != want {
			continue
		}
		if !withSpamTrash && (slices.Contains(m.labels, "SPAM") || slices.Contains(m.labels, "TRASH")) {
			continue
		}
		hits = append(hits, msgJSON{ID: m.id, ThreadID: m.id})
	}
	start := 0
	if pt := q.Get("pageToken"); pt != "" {
		n, err := strconv.Atoi(pt)
		if err != nil || n < 0 || n > len(hits) {
			apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid pageToken")
			return
		}
		start = n
	}
	end := min(start+s.opts.PageSize, len(hits))
	out := map[string]any{"resultSizeEstimate": len(hits)}
	if end > start {
		out["messages"] = hits[start:end]
	}
	if end < len(hits) {
		out["nextPageToken"] = strconv.Itoa(end)
	}
	writeJSON(w, out)
}

func (mb *mailbox) find(w http.ResponseWriter, r *http.Request) *message {
	m := mb.msgs[r.PathValue("id")]
	if m == nil || !m.visible(mb) {
		apiError(w, http.StatusNotFound, "notFound", "Requested entity was not found.")
		return nil
	}
	return m
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
	if f := r.URL.Query().Get("format"); f != "" && f != "minimal" && f != "metadata" && f != "full" && f != "raw" {
		apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid format")
		return
	}
	if m := mb.find(w, r); m != nil {
		writeJSON(w, msgJSON{ID: m.id, ThreadID: m.id, LabelIDs: m.labels})
	}
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
	if m := mb.find(w, r); m != nil {
		delete(mb.msgs, m.id)
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) handleModify(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
	var body struct {
		Add    []string `json:"addLabelIds"`
		Remove []string `json:"removeLabelIds"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid JSON payload: "+err.Error())
		return
	}
	for _, id := range append(slices.Clone(body.Add), body.Remove...) {
		if _, ok := mb.labels[id]; !ok {
			apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid label: "+id)
			return
		}
	}
	m := mb.find(w, r)
	if m == nil {
		return
	}
	for _, id := range body.Add {
		if !slices.Contains(m.labels, id) {
			m.labels = append(m.labels, id)
		}
	}
	m.labels = slices.DeleteFunc(m.labels, func(id string) bool { return slices.Contains(body.Remove, id) })
	writeJSON(w, msgJSON{ID: m.id, ThreadID: m.id, LabelIDs: m.labels})
}

func (s *Server) handleTrash(trash bool) apiHandler {
	return func(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
		m := mb.find(w, r)
		if m == nil {
			return
		}
		if trash && !slices.Contains(m.labels, "TRASH") {
			m.labels = append(m.labels, "TRASH")
		}
		if !trash {
			m.labels = slices.DeleteFunc(m.labels, func(id string) bool { return id == "TRASH" })
		}
		writeJSON(w, msgJSON{ID: m.id, ThreadID: m.id, LabelIDs: m.labels})
	}
}

type labelJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Type string `json:"type"`
}

func (s *Server) handleLabels(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
	var out []labelJSON
	for id, name := range mb.labels {
		typ := "user"
		if id == name {
			typ = "system"
		}
		out = append(out, labelJSON{ID: id, Name: name, Type: typ})
	}
	slices.SortFunc(out, func(a, b labelJSON) int { return strings.Compare(a.ID, b.ID) })
	writeJSON(w, map[string]any{"labels": out})
}

func (s *Server) handleCreateLabel(w http.ResponseWriter, r *http.Request, user string, mb *mailbox) {
	var body struct {
		Name string `json:"name"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || strings.TrimSpace(body.Name) == "" {
		apiError(w, http.StatusBadRequest, "invalidArgument", "Invalid label name")
		return
	}
	if mb.labelByName(body.Name) != "" {
		apiError(w, http.StatusConflict, "duplicate", "Label name exists or conflicts")
		return
	}
	mb.nextID++
	id := fmt.Sprintf("Label_%d", mb.nextID)
	mb.labels[id] = body.Name
	writeJSON(w, labelJSON{ID: id, Name: body.Name, Type: "user"})
}
