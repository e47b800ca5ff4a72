// Package fakegraph is an HTTPS stand-in for the parts of Microsoft Graph and the Entra
// token endpoint that the enforce package uses, written from Microsoft's public docs: app-only
// tokens (client secret or certificate assertion), messages found by internetMessageId,
// move, delete, permanentDelete, categories, mail folders, and groups' transitive members.
// It keeps mailboxes in memory and has knobs for throttling, server errors and late mail.
package fakegraph

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
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

// Options set up a fake. Zero values are usable defaults.
type Options struct {
	Tenant       string // "" is "tenant"
	ClientID     string // "" is "client"
	ClientSecret string // accepted when not ""
	// Certificate is the one registered on the app: client assertions must be signed by its
	// key and name it by x5t#S256.
	Certificate *x509.Certificate
	TokenTTL    time.Duration // 0 is an hour
	PageSize    int           // items per page of a list before a nextLink; 0 is 10
	// Latency is how long every API request takes, so concurrency can be seen.
	Latency time.Duration
}

// Message is one message in a fake mailbox.
type Message struct {
	ID                string
	InternetMessageID string
	ParentFolderID    string
	Categories        []string
	// VisibleAt hides the message from the internetMessageId filter until then, as mail
	// that is delivered but not yet indexed; Deliver shows it at once.
	VisibleAt time.Time
	hidden    bool
}

// Folder is one mail folder.
type Folder struct {
	ID          string
	DisplayName string
	WellKnown   string // "inbox", "deleteditems", …; "" for a user's folder
	ParentID    string
}

type mailbox struct {
	upn      string
	messages []*Message
	folders  []*Folder
	purged   []Message
	throttle int // requests left to answer 429
	retry    string
}

type group struct {
	id, mail string
	members  []string // mail of users or groups
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	srv  *httptest.Server
	opts Options
	key  *rsa.PrivateKey

	mu          sync.Mutex
	now         func() time.Time
	seq         int
	boxes       map[string]*mailbox // by lower-cased UPN
	groups      []*group
	fail503     int
	requests    int
	tokens      int
	inFlight    int
	maxInFlight int
	seenJTI     map[string]bool
}

// New starts a fake on an httptest TLS server, closed when the test ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	if opts.Tenant == "" {
		opts.Tenant = "tenant"
	}
	if opts.ClientID == "" {
		opts.ClientID = "client"
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.PageSize == 0 {
		opts.PageSize = 10
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{opts: opts, key: key, now: time.Now, boxes: map[string]*mailbox{}, seenJTI: map[string]bool{}}
	s.srv = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.srv.Close)
	return s
}

// URL is the base URL, for both the login and the Graph host.
func (s *Server) URL() string { return s.srv.URL }

// Client is an HTTP client that trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// CertPool holds the fake's TLS certificate.
func (s *Server) CertPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(s.srv.Certificate())
	return p
}

// TokenURL is the token endpoint as an assertion's aud must name it.
func (s *Server) TokenURL() string {
	return s.srv.URL + "/" + s.opts.Tenant + "/oauth2/v2.0/token"
}

func (s *Server) nextID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s-%04d", prefix, s.seq)
}

// AddMailbox makes a mailbox with its well-known folders.
func (s *Server) AddMailbox(upn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addMailbox(upn)
}

func (s *Server) addMailbox(upn string) *mailbox {
	if b := s.boxes[strings.ToLower(upn)]; b != nil {
		return b
	}
	b := &mailbox{upn: upn}
	root := &Folder{ID: s.nextID("folder"), DisplayName: "Top of Information Store", WellKnown: "msgfolderroot"}
	b.folders = append(b.folders, root)
	for _, wk := range []struct{ name, display string }{
		{"inbox", "Inbox"}, {"deleteditems", "Deleted Items"}, {"junkemail", "Junk Email"},
	} {
		b.folders = append(b.folders, &Folder{ID: s.nextID("folder"), DisplayName: wk.display, WellKnown: wk.name, ParentID: root.ID})
	}
	s.boxes[strings.ToLower(upn)] = b
	return b
}

// AddMessage puts a message in a mailbox (made if missing). m.ParentFolderID may be a
// well-known name; "" is the inbox. It returns the message's id.
func (s *Server) AddMessage(upn string, m Message) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.addMailbox(upn)
	if m.ParentFolderID == "" {
		m.ParentFolderID = "inbox"
	}
	m.ParentFolderID = b.folder(m.ParentFolderID).ID
	m.ID = s.nextID("msg")
	m.Categories = slices.Clone(m.Categories)
	if m.Categories == nil {
		m.Categories = []string{}
	}
	b.messages = append(b.messages, &m)
	return m.ID
}

// Hold hides a mailbox's message with this internetMessageId from Find until Deliver.
func (s *Server) Hold(upn, internetMessageID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.addMailbox(upn).messages {
		if m.InternetMessageID == internetMessageID {
			m.hidden = true
		}
	}
}

// Deliver shows held or not yet visible messages with this internetMessageId.
func (s *Server) Deliver(upn, internetMessageID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.addMailbox(upn).messages {
		if m.InternetMessageID == internetMessageID {
			m.hidden = false
			m.VisibleAt = time.Time{}
		}
	}
}

// Messages is a copy of a mailbox's messages, purged ones left out.
func (s *Server) Messages(upn string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Message
	if b := s.boxes[strings.ToLower(upn)]; b != nil {
		for _, m := range b.messages {
			c := *m
			c.Categories = slices.Clone(m.Categories)
			out = append(out, c)
		}
	}
	return out
}

// Purged are the messages permanentDelete took out of a mailbox.
func (s *Server) Purged(upn string) []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b := s.boxes[strings.ToLower(upn)]; b != nil {
		return slices.Clone(b.purged)
	}
	return nil
}

// Folders is a copy of a mailbox's folders.
func (s *Server) Folders(upn string) []Folder {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Folder
	if b := s.boxes[strings.ToLower(upn)]; b != nil {
		for _, f := range b.folders {
			out = append(out, *f)
		}
	}
	return out
}

// FolderID is the id of a well-known folder ("inbox") or of a folder by display name.
func (s *Server) FolderID(upn, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.boxes[strings.ToLower(upn)]
	if b == nil {
		return ""
	}
	if f := b.folder(name); f != nil {
		return f.ID
	}
	for _, f := range b.folders {
		if f.DisplayName == name {
			return f.ID
		}
	}
	return ""
}

// AddGroup makes a group; members are the mail of users or of other groups.
func (s *Server) AddGroup(mail string, members ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = append(s.groups, &group{id: s.nextID("group"), mail: mail, members: members})
}

// Throttle answers the next k requests on a mailbox with 429 and this Retry-After value
// ("" sends none).
func (s *Server) Throttle(upn string, k int, retryAfter string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.addMailbox(upn)
	b.throttle, b.retry = k, retryAfter
}

// Fail503 answers the next k API requests with 503.
func (s *Server) Fail503(k int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail503 = k
}

// SetNow replaces the fake's clock (token expiry, late delivery).
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Requests is how many API requests arrived (token requests not counted).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// TokenRequests is how many token requests arrived.
func (s *Server) TokenRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokens
}

// MaxInFlight is the most API requests that were being served at once.
func (s *Server) MaxInFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight
}

func (b *mailbox) folder(idOrName string) *Folder {
	for _, f := range b.folders {
		if f.ID == idOrName || (f.WellKnown != "" && strings.EqualFold(f.WellKnown, idOrName)) {
			return f
		}
	}
	return nil
}

func (b *mailbox) message(id string) *Message {
	for _, m := range b.messages {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// graphErr writes Graph's error body.
func graphErr(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/"+s.opts.Tenant+"/oauth2/v2.0/token" {
		s.token(w, r)
		return
	}
	if !strings.HasPrefix(r.URL.Path, "/v1.0/") {
		graphErr(w, http.StatusNotFound, "BadRequest", "no such endpoint")
		return
	}
	s.mu.Lock()
	s.requests++
	s.inFlight++
	s.maxInFlight = max(s.maxInFlight, s.inFlight)
	latency := s.opts.Latency
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()
	if latency > 0 {
		time.Sleep(latency)
	}
	if err := s.checkBearer(r); err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		graphErr(w, http.StatusUnauthorized, "InvalidAuthenticationToken", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail503 > 0 {
		s.fail503--
		graphErr(w, http.StatusServiceUnavailable, "ServiceNotAvailable", "try again")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v1.0/"), "/")
	switch {
	case parts[0] == "users" && len(parts) >= 3:
		s.users(w, r, parts[1], parts[2:])
	case parts[0] == "groups":
		s.groupsAPI(w, r, parts[1:])
	default:
		graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported path "+r.URL.Path)
	}
}

// immutable is whether the request asked for ids that survive a move.
func immutable(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), `IdType="ImmutableId"`) {
				return true
			}
		}
	}
	return false
}

// users serves /v1.0/users/{upn}/…; s.mu is held.
func (s *Server) users(w http.ResponseWriter, r *http.Request, upn string, rest []string) {
	b := s.boxes[strings.ToLower(upn)]
	if b == nil {
		graphErr(w, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+upn+"' is invalid.")
		return
	}
	if b.throttle > 0 {
		b.throttle--
		if b.retry != "" {
			w.Header().Set("Retry-After", b.retry)
		}
		graphErr(w, http.StatusTooManyRequests, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		return
	}
	switch {
	case rest[0] == "messages" && len(rest) == 1 && r.Method == http.MethodGet:
		s.listMessages(w, r, b)
	case rest[0] == "messages" && len(rest) >= 2:
		m := b.message(rest[1])
		if m == nil || m.ParentFolderID == "recoverableitemsdeletions" {
			graphErr(w, http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		s.messageAPI(w, r, b, m, rest[2:])
	case rest[0] == "mailFolders" && len(rest) == 1 && r.Method == http.MethodGet:
		name, ok := parseEq(r.URL.Query().Get("$filter"), "displayName")
		if !ok {
			graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported $filter")
			return
		}
		root := b.folder("msgfolderroot")
		var out []map[string]any
		for _, f := range b.folders {
			if f.ParentID == root.ID && strings.EqualFold(f.DisplayName, name) {
				out = append(out, folderJSON(f))
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": nonNil(out)})
	case rest[0] == "mailFolders" && len(rest) == 1 && r.Method == http.MethodPost:
		var body struct {
			DisplayName string `json:"displayName"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.DisplayName == "" {
			graphErr(w, http.StatusBadRequest, "ErrorInvalidRequest", "displayName is required")
			return
		}
		root := b.folder("msgfolderroot")
		for _, f := range b.folders {
			if f.ParentID == root.ID && strings.EqualFold(f.DisplayName, body.DisplayName) {
				graphErr(w, http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
				return
			}
		}
		f := &Folder{ID: s.nextID("folder"), DisplayName: body.DisplayName, ParentID: root.ID}
		b.folders = append(b.folders, f)
		writeJSON(w, http.StatusCreated, folderJSON(f))
	case rest[0] == "mailFolders" && len(rest) == 2 && r.Method == http.MethodGet:
		f := b.folder(rest[1])
		if f == nil {
			graphErr(w, http.StatusNotFound, "ErrorItemNotFound", "The specified folder was not found in the store.")
			return
		}
		writeJSON(w, http.StatusOK, folderJSON(f))
	default:
		graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported "+r.Method+" "+r.URL.Path)
	}
}

func folderJSON(f *Folder) map[string]any {
	return map[string]any{"id": f.ID, "displayName": f.DisplayName, "parentFolderId": f.ParentID}
}

func messageJSON(m *Message) map[string]any {
	return map[string]any{"id": m.ID, "internetMessageId": m.InternetMessageID,
		"parentFolderId": m.ParentFolderID, "categories": nonNil(m.Categories)}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request, b *mailbox) {
	q := r.URL.Query()
	want, ok := parseEq(q.Get("$filter"), "internetMessageId")
	if !ok {
		graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported $filter")
		return
	}
	now := s.now()
	var all []map[string]any
	for _, m := range b.messages {
		if m.InternetMessageID != want || m.hidden || now.Before(m.VisibleAt) || m.ParentFolderID == "recoverableitemsdeletions" {
			continue
		}
		all = append(all, messageJSON(m))
	}
	s.page(w, r, all)
}

// page writes one page of items with a nextLink that carries the same query and a
// $skiptoken, as Graph's do.
func (s *Server) page(w http.ResponseWriter, r *http.Request, all []map[string]any) {
	q := r.URL.Query()
	skip, _ := strconv.Atoi(q.Get("$skiptoken"))
	skip = min(max(skip, 0), len(all))
	end := min(skip+s.opts.PageSize, len(all))
	out := map[string]any{"value": nonNil(all[skip:end])}
	if end < len(all) {
		q.Set("$skiptoken", strconv.Itoa(end))
		out["@odata.nextLink"] = s.srv.URL + r.URL.Path + "?" + q.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) messageAPI(w http.ResponseWriter, r *http.Request, b *mailbox, m *Message, rest []string) {
	// Graph's REST ids name the folder too, so a move gives the message a new one unless the
	// request asked for immutable ids.
	moveTo := func(folderID string) {
		m.ParentFolderID = folderID
		if !immutable(r) {
			m.ID = s.nextID("msg")
		}
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, messageJSON(m))
	case len(rest) == 0 && r.Method == http.MethodPatch:
		var body struct {
			Categories *[]string `json:"categories"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil || body.Categories == nil {
			graphErr(w, http.StatusBadRequest, "ErrorInvalidRequest", "only categories can be updated here")
			return
		}
		m.Categories = slices.Clone(*body.Categories)
		writeJSON(w, http.StatusOK, messageJSON(m))
	case len(rest) == 0 && r.Method == http.MethodDelete:
		if m.ParentFolderID == b.folder("deleteditems").ID {
			// Deleting from Deleted Items soft-deletes to Recoverable Items, out of /messages.
			m.ParentFolderID = "recoverableitemsdeletions"
		} else {
			moveTo(b.folder("deleteditems").ID)
		}
		w.WriteHeader(http.StatusNoContent)
	case len(rest) == 1 && rest[0] == "move" && r.Method == http.MethodPost:
		var body struct {
			DestinationID string `json:"destinationId"`
		}
		if json.NewDecoder(r.Body).Decode(&body) != nil {
			graphErr(w, http.StatusBadRequest, "ErrorInvalidRequest", "bad body")
			return
		}
		f := b.folder(body.DestinationID)
		if f == nil {
			graphErr(w, http.StatusNotFound, "ErrorItemNotFound", "The specified folder was not found in the store.")
			return
		}
		moveTo(f.ID)
		writeJSON(w, http.StatusCreated, messageJSON(m))
	case len(rest) == 1 && rest[0] == "permanentDelete" && r.Method == http.MethodPost:
		b.messages = slices.DeleteFunc(b.messages, func(x *Message) bool { return x == m })
		b.purged = append(b.purged, *m)
		w.WriteHeader(http.StatusNoContent)
	default:
		graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) groupsAPI(w http.ResponseWriter, r *http.Request, rest []string) {
	if r.Method != http.MethodGet {
		graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported method")
		return
	}
	switch {
	case len(rest) == 0 || rest[0] == "":
		mail, ok := parseEq(r.URL.Query().Get("$filter"), "mail")
		if !ok {
			graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported $filter")
			return
		}
		var out []map[string]any
		if g := s.groupByMail(mail); g != nil {
			out = append(out, map[string]any{"id": g.id, "mail": g.mail})
		}
		writeJSON(w, http.StatusOK, map[string]any{"value": nonNil(out)})
	case len(rest) == 2 && rest[1] == "transitiveMembers":
		var g *group
		for _, x := range s.groups {
			if x.id == rest[0] {
				g = x
			}
		}
		if g == nil {
			graphErr(w, http.StatusNotFound, "Request_ResourceNotFound", "no such group")
			return
		}
		var all []map[string]any
		seen := map[string]bool{}
		stack := slices.Clone(g.members)
		for len(stack) > 0 {
			mail := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if seen[strings.ToLower(mail)] {
				continue
			}
			seen[strings.ToLower(mail)] = true
			if sub := s.groupByMail(mail); sub != nil {
				all = append(all, map[string]any{"@odata.type": "#microsoft.graph.group", "id": sub.id, "mail": sub.mail})
				stack = append(stack, sub.members...)
				continue
			}
			all = append(all, map[string]any{"@odata.type": "#microsoft.graph.user", "id": "user-" + mail, "mail": mail})
		}
		s.page(w, r, all)
	default:
		graphErr(w, http.StatusBadRequest, "BadRequest", "unsupported path")
	}
}

func (s *Server) groupByMail(mail string) *group {
	for _, g := range s.groups {
		if strings.EqualFold(g.mail, mail) {
			return g
		}
	}
	return nil
}

// parseEq reads the one filter form the client sends: `field eq 'literal'`, with doubled
// single quotes inside the literal.
func parseEq(filter, field string) (string, bool) {
	prefix := field + " eq '"
	if !strings.HasPrefix(filter, prefix) || !strings.HasSuffix(filter, "'") || len(filter) < len(prefix)+1 {
		return "", false
	}
	lit := filter[len(prefix) : len(filter)-1]
	if strings.Count(strings.ReplaceAll(lit, "''", ""), "'") != 0 {
		return "", false
	}
	return strings.ReplaceAll(lit, "''", "'"), true
}

// token serves the Entra v2.0 token endpoint for the client credentials grant.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokens++
	s.mu.Unlock()
	oauthErr := func(status int, code, desc string) {
		writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
	}
	if err := r.ParseForm(); err != nil {
		oauthErr(http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		oauthErr(http.StatusBadRequest, "unsupported_grant_type", "only client_credentials")
		return
	}
	if f.Get("scope") != "https://graph.microsoft.com/.default" {
		oauthErr(http.StatusBadRequest, "invalid_scope", "scope must be https://graph.microsoft.com/.default")
		return
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		clientID, secret = u, p
	}
	if clientID != s.opts.ClientID {
		oauthErr(http.StatusBadRequest, "unauthorized_client", "unknown application")
		return
	}
	switch {
	case secret != "":
		if s.opts.ClientSecret == "" || secret != s.opts.ClientSecret {
			oauthErr(http.StatusUnauthorized, "invalid_client", "Invalid client secret provided.")
			return
		}
	case f.Get("client_assertion") != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			oauthErr(http.StatusBadRequest, "invalid_request", "bad client_assertion_type")
			return
		}
		if err := s.checkAssertion(f.Get("client_assertion"), clientID); err != nil {
			oauthErr(http.StatusUnauthorized, "invalid_client", err.Error())
			return
		}
	default:
		oauthErr(http.StatusBadRequest, "invalid_client", "no client credential")
		return
	}
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	tok, err := jws.Sign(s.key, "RS256", map[string]any{"typ": "JWT"}, map[string]any{
		"aud": "https://graph.microsoft.com", "tid": s.opts.Tenant, "appid": clientID,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.opts.TokenTTL).Unix(),
	})
	if err != nil {
		oauthErr(http.StatusInternalServerError, "server_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(s.opts.TokenTTL / time.Second), "access_token": tok,
	})
}

func (s *Server) checkAssertion(assertion, clientID string) error {
	if s.opts.Certificate == nil {
		return errors.New("no certificate registered")
	}
	var claims map[string]any
	_, err := jws.Verify(assertion, func(header map[string]any) (crypto.PublicKey, error) {
		want := sha256.Sum256(s.opts.Certificate.Raw)
		got, _ := header["x5t#S256"].(string)
		if got != base64.RawURLEncoding.EncodeToString(want[:]) {
			return nil, errors.New("AADSTS700027: the certificate named by x5t#S256 is not registered for the app")
		}
		return s.opts.Certificate.PublicKey, nil
	}, &claims)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	switch {
	case claims["aud"] != s.TokenURL():
		return fmt.Errorf("aud %v is not the token endpoint", claims["aud"])
	case claims["iss"] != clientID || claims["sub"] != clientID:
		return errors.New("iss and sub must be the client id")
	case !timeClaim(claims, "exp").After(now):
		return errors.New("assertion expired")
	case timeClaim(claims, "nbf").After(now.Add(5 * time.Minute)):
		return errors.New("assertion not yet valid")
	}
	jti, _ := claims["jti"].(string)
	if jti == "" || s.seenJTI[jti] {
		return errors.New("assertion jti missing or replayed")
	}
	s.seenJTI[jti] = true
	return nil
}

func (s *Server) checkBearer(r *http.Request) error {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return errors.New("no bearer token")
	}
	var claims map[string]any
	_, err := jws.Verify(tok, func(h map[string]any) (crypto.PublicKey, error) {
		if h["alg"] != "RS256" {
			return nil, errors.New("unexpected alg")
		}
		return &s.key.PublicKey, nil
	}, &claims)
	if err != nil {
		return err
	}
	s.mu.Lock()
	now := s.now()
	s.mu.Unlock()
	if !timeClaim(claims, "exp").After(now) {
		return errors.New("lifetime validation failed, the token is expired")
	}
	return nil
}

func timeClaim(claims map[string]any, name string) time.Time {
	f, ok := claims[name].(float64)
	if !ok {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}
