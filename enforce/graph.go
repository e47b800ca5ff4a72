package enforce

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/journalsensor/sensor/internal/jws"
)

// graphScope is the only scope an app-only token for Graph can ask for.
const graphScope = "https://graph.microsoft.com/.default"

// graphMaxInFlight is Outlook's limit of concurrent requests per app, whatever the mailbox;
// a fifth request would only earn a 429.
const graphMaxInFlight = 4

// GraphConfig is how a Graph client reaches one tenant. Exactly one credential is needed:
// ClientSecret, or Certificate with Key.
type GraphConfig struct {
	Tenant       string
	ClientID     string
	ClientSecret string
	// Certificate is the one registered on the app; Key signs client assertions with it
	// (an RSA key, as Entra requires).
	Certificate *x509.Certificate
	Key         crypto.Signer
	// LoginURL is the Entra authority host; "" is https://login.microsoftonline.com.
	LoginURL string
	// GraphURL is the API host; "" is https://graph.microsoft.com.
	GraphURL string
	// QuarantineFolder is the display name of the folder under the mailbox root that
	// Quarantine moves copies to, created when missing; "" is "Quarantine".
	QuarantineFolder string
	// HTTPClient carries both token and API requests; nil is a client that verifies TLS
	// against the system roots.
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Graph is a Provider over Microsoft Graph's mail API with an app-only token.
type Graph struct {
	api        string // GraphURL without a trailing slash
	hc         *http.Client
	sem        chan struct{}
	log        *slog.Logger
	quarantine string

	mu      sync.Mutex
	folders map[string]*folderIDs // by lower-cased mailbox
}

// folderIDs are one mailbox's resolved folder ids; its mutex keeps two steps on the same
// mailbox from creating the quarantine folder twice.
type folderIDs struct {
	mu          sync.Mutex
	quarantine  string
	deletedItem string
}

var _ Provider = (*Graph)(nil)

// NewGraph checks cfg and returns a client; it makes no request until the first call.
func NewGraph(cfg GraphConfig) (*Graph, error) {
	var problems []error
	if cfg.Tenant == "" {
		problems = append(problems, errors.New("tenant is empty"))
	}
	if cfg.ClientID == "" {
		problems = append(problems, errors.New("client id is empty"))
	}
	useCert := cfg.Certificate != nil || cfg.Key != nil
	switch {
	case useCert && cfg.ClientSecret != "":
		problems = append(problems, errors.New("both a client secret and a certificate are set; choose one"))
	case useCert && (cfg.Certificate == nil || cfg.Key == nil):
		problems = append(problems, errors.New("a certificate needs both the certificate and its key"))
	case useCert:
		if err := checkKeyPair(cfg.Certificate, cfg.Key); err != nil {
			problems = append(problems, err)
		}
	case cfg.ClientSecret == "":
		problems = append(problems, errors.New("no credential: set a client secret or a certificate and key"))
	}
	login, err := baseURL(cfg.LoginURL, "https://login.microsoftonline.com")
	if err != nil {
		problems = append(problems, fmt.Errorf("login url: %w", err))
	}
	api, err := baseURL(cfg.GraphURL, "https://graph.microsoft.com")
	if err != nil {
		problems = append(problems, fmt.Errorf("graph url: %w", err))
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("graph config: %w", errors.Join(problems...))
	}

	base := cfg.HTTPClient
	if base == nil {
		// As many idle connections as requests in flight: with the default two, every burst
		// of four closed two connections and the next paid a new TLS handshake (1,000
		// quarantines opened about a thousand connections instead of four).
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = graphMaxInFlight
		base = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	}
	tokenURL := login + "/" + url.PathEscape(cfg.Tenant) + "/oauth2/v2.0/token"
	var ts oauth2.TokenSource
	if useCert {
		ts = oauth2.ReuseTokenSource(nil, &assertionSource{
			hc: base, tokenURL: tokenURL, clientID: cfg.ClientID, cert: cfg.Certificate, key: cfg.Key,
		})
	} else {
		cc := &clientcredentials.Config{
			ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: tokenURL,
			Scopes: []string{graphScope}, AuthStyle: oauth2.AuthStyleInParams,
		}
		// The token source keeps this context for every later fetch; it only carries the
		// HTTP client, each API request has its own deadline.
		ts = cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, base))
	}
	transport := base.Transport
	if transport == nil {
		transport = http.DefaultTransport
	}
	hc := &http.Client{
		Transport:     &oauth2.Transport{Source: ts, Base: transport},
		Timeout:       base.Timeout,
		CheckRedirect: base.CheckRedirect,
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	q := cfg.QuarantineFolder
	if q == "" {
		q = "Quarantine"
	}
	return &Graph{
		api: api, hc: hc, sem: make(chan struct{}, graphMaxInFlight), log: logger.With("provider", "graph"),
		quarantine: q, folders: map[string]*folderIDs{},
	}, nil
}

func baseURL(s, def string) (string, error) {
	if s == "" {
		s = def
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", err
	}
	if u.Scheme != "https" || u.Host == "" {
		// Plain http would put the secret, the assertion and the bearer token on the wire.
		return "", fmt.Errorf("%q is not an https url", s)
	}
	return strings.TrimRight(s, "/"), nil
}

func checkKeyPair(cert *x509.Certificate, key crypto.Signer) error {
	pub, ok := key.Public().(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("certificate key is %T; Entra client assertions need an RSA key", key.Public())
	}
	if !pub.Equal(cert.PublicKey) {
		return errors.New("the key does not match the certificate")
	}
	return nil
}

// Name is the provider's name in outcomes.
func (g *Graph) Name() string { return "graph" }

// graphMessage is the part of Graph's message resource the steps look at.
type graphMessage struct {
	ID             string   `json:"id"`
	ParentFolderID string   `json:"parentFolderId"`
	Categories     []string `json:"categories"`
}

func (m graphMessage) copy() Copy {
	return Copy{Ref: m.ID, Folder: m.ParentFolderID, Labels: m.Categories}
}

// Find lists the copies with this internetMessageId anywhere in the mailbox (Deleted Items
// and Junk included), following every page.
func (g *Graph) Find(ctx context.Context, mailbox, messageID string) ([]Copy, error) {
	next := g.api + "/v1.0/users/" + url.PathEscape(mailbox) + "/messages?" +
		odataQuery("$filter", "internetMessageId eq "+odataString(messageID)) + "&" +
		odataQuery("$select", "id,parentFolderId,categories")
	var copies []Copy
	for next != "" {
		var page struct {
			Value    []graphMessage `json:"value"`
			NextLink string         `json:"@odata.nextLink"`
		}
		if err := g.do(ctx, http.MethodGet, next, nil, &page); err != nil {
			return nil, fmt.Errorf("find %s in %s: %w", messageID, mailbox, err)
		}
		for _, m := range page.Value {
			copies = append(copies, m.copy())
		}
		next = page.NextLink
	}
	return copies, nil
}

// Apply reads the copy's current state, then runs the step unless it is already done.
func (g *Graph) Apply(ctx context.Context, mailbox string, c Copy, s Step) (Result, error) {
	res, err := g.apply(ctx, mailbox, c, s)
	if err != nil {
		return Result{}, fmt.Errorf("%s %s in %s: %w", s.Action, c.Ref, mailbox, err)
	}
	return res, nil
}

func (g *Graph) apply(ctx context.Context, mailbox string, c Copy, s Step) (Result, error) {
	msgURL := g.api + "/v1.0/users/" + url.PathEscape(mailbox) + "/messages/" + url.PathEscape(c.Ref)
	var cur graphMessage
	if err := g.do(ctx, http.MethodGet, msgURL+"?"+odataQuery("$select", "id,parentFolderId,categories"), nil, &cur); err != nil {
		return Result{}, gone(err)
	}
	already := Result{Status: Already, Ref: cur.ID, From: cur.ParentFolderID}
	done := Result{Status: Done, Ref: cur.ID, From: cur.ParentFolderID}

	switch s.Action {
	case Quarantine:
		dest, err := g.quarantineFolder(ctx, mailbox, !s.Observe)
		if err != nil {
			return Result{}, err
		}
		if dest != "" && cur.ParentFolderID == dest {
			return already, nil
		}
		if s.Observe {
			return done, nil
		}
		return g.move(ctx, mailbox, msgURL, dest, done)

	case Delete:
		deleted, err := g.deletedItems(ctx, mailbox)
		if err != nil {
			return Result{}, err
		}
		if cur.ParentFolderID == deleted {
			return already, nil
		}
		if s.Observe {
			return done, nil
		}
		if err := g.do(ctx, http.MethodDelete, msgURL, nil, nil); err != nil {
			return Result{}, gone(err)
		}
		return done, nil

	case HardDelete:
		// A purged copy cannot be read back, so there is no Already here: a second run
		// gets ErrGone, and the engine's re-find comes back empty.
		if s.Observe {
			return done, nil
		}
		if err := g.do(ctx, http.MethodPost, msgURL+"/permanentDelete", nil, nil); err != nil {
			return Result{}, gone(err)
		}
		return done, nil

	case Tag:
		if s.Tag == "" {
			return Result{}, errors.New("tag step without a tag")
		}
		if slices.Contains(cur.Categories, s.Tag) {
			return already, nil
		}
		if s.Observe {
			return done, nil
		}
		body := map[string][]string{"categories": append(slices.Clone(cur.Categories), s.Tag)}
		if err := g.do(ctx, http.MethodPatch, msgURL, body, nil); err != nil {
			return Result{}, gone(err)
		}
		return done, nil

	case Restore:
		if s.From == "" {
			return Result{}, errors.New("restore step without the folder to restore to")
		}
		if cur.ParentFolderID == s.From {
			return already, nil
		}
		// From may be a well-known name ("inbox") rather than an id; compare ids, or a
		// second run would move the copy again.
		var f struct {
			ID string `json:"id"`
		}
		folderURL := g.api + "/v1.0/users/" + url.PathEscape(mailbox) + "/mailFolders/" + url.PathEscape(s.From)
		if err := g.do(ctx, http.MethodGet, folderURL+"?"+odataQuery("$select", "id"), nil, &f); err != nil {
			return Result{}, fmt.Errorf("folder %s to restore to: %w", s.From, err)
		}
		if cur.ParentFolderID == f.ID {
			return already, nil
		}
		if s.Observe {
			return done, nil
		}
		return g.move(ctx, mailbox, msgURL, f.ID, done)
	}
	return Result{}, fmt.Errorf("unknown action %q", s.Action)
}

func (g *Graph) move(ctx context.Context, mailbox, msgURL, dest string, done Result) (Result, error) {
	var moved graphMessage
	err := g.do(ctx, http.MethodPost, msgURL+"/move", map[string]string{"destinationId": dest}, &moved)
	if err != nil {
		if isStatus(err, http.StatusNotFound) {
			// The 404 may be the cached folder, deleted by the user, rather than the
			// message: look it up again next time.
			g.mailboxFolders(mailbox).forget(dest)
		}
		return Result{}, gone(err)
	}
	done.Ref = moved.ID
	return done, nil
}

func (g *Graph) mailboxFolders(mailbox string) *folderIDs {
	g.mu.Lock()
	defer g.mu.Unlock()
	key := strings.ToLower(mailbox)
	f := g.folders[key]
	if f == nil {
		f = &folderIDs{}
		g.folders[key] = f
	}
	return f
}

func (f *folderIDs) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.quarantine == id {
		f.quarantine = ""
	}
}

// quarantineFolder returns the id of the quarantine folder under the mailbox root, creating
// it when create is set; "" when it does not exist and create is not set.
func (g *Graph) quarantineFolder(ctx context.Context, mailbox string, create bool) (string, error) {
	f := g.mailboxFolders(mailbox)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.quarantine != "" {
		return f.quarantine, nil
	}
	folders := g.api + "/v1.0/users/" + url.PathEscape(mailbox) + "/mailFolders"
	lookup := func() (string, error) {
		var page struct {
			Value []struct {
				ID string `json:"id"`
			} `json:"value"`
		}
		q := odataQuery("$filter", "displayName eq "+odataString(g.quarantine)) + "&" + odataQuery("$select", "id")
		if err := g.do(ctx, http.MethodGet, folders+"?"+q, nil, &page); err != nil {
			return "", fmt.Errorf("look up folder %q: %w", g.quarantine, err)
		}
		if len(page.Value) == 0 {
			return "", nil
		}
		return page.Value[0].ID, nil
	}
	id, err := lookup()
	if err != nil || id != "" || !create {
		f.quarantine = id
		return id, err
	}
	var made struct {
		ID string `json:"id"`
	}
	err = g.do(ctx, http.MethodPost, folders, map[string]string{"displayName": g.quarantine}, &made)
	if isStatus(err, http.StatusConflict) {
		// Made by someone else since our look-up.
		id, err = lookup()
		f.quarantine = id
		return id, err
	}
	if err != nil {
		return "", fmt.Errorf("create folder %q: %w", g.quarantine, err)
	}
	g.log.InfoContext(ctx, "created the quarantine folder", "mailbox", mailbox, "folder", g.quarantine)
	f.quarantine = made.ID
	return made.ID, nil
}

func (g *Graph) deletedItems(ctx context.Context, mailbox string) (string, error) {
	f := g.mailboxFolders(mailbox)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.deletedItem != "" {
		return f.deletedItem, nil
	}
	var folder struct {
		ID string `json:"id"`
	}
	u := g.api + "/v1.0/users/" + url.PathEscape(mailbox) + "/mailFolders/deleteditems?" + odataQuery("$select", "id")
	if err := g.do(ctx, http.MethodGet, u, nil, &folder); err != nil {
		return "", fmt.Errorf("deleted items folder: %w", err)
	}
	f.deletedItem = folder.ID
	return folder.ID, nil
}

// Members expands a group's transitive membership to its users' addresses.
func (g *Graph) Members(ctx context.Context, address string) ([]string, bool, error) {
	var groups struct {
		Value []struct {
			ID string `json:"id"`
		} `json:"value"`
	}
	u := g.api + "/v1.0/groups?" + odataQuery("$filter", "mail eq "+odataString(address)) + "&" + odataQuery("$select", "id")
	if err := g.do(ctx, http.MethodGet, u, nil, &groups); err != nil {
		return nil, false, fmt.Errorf("look up group %s: %w", address, err)
	}
	if len(groups.Value) == 0 {
		return nil, false, nil
	}
	next := g.api + "/v1.0/groups/" + url.PathEscape(groups.Value[0].ID) + "/transitiveMembers?" + odataQuery("$select", "id,mail")
	seen := map[string]bool{}
	var members []string
	for next != "" {
		var page struct {
			Value []struct {
				Type string `json:"@odata.type"`
				Mail string `json:"mail"`
			} `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := g.do(ctx, http.MethodGet, next, nil, &page); err != nil {
			return nil, true, fmt.Errorf("members of %s: %w", address, err)
		}
		for _, m := range page.Value {
			// Nested groups are already flattened into the list; their own mail is not a
			// mailbox a copy was delivered to.
			if m.Type != "#microsoft.graph.user" || m.Mail == "" || seen[strings.ToLower(m.Mail)] {
				continue
			}
			seen[strings.ToLower(m.Mail)] = true
			members = append(members, m.Mail)
		}
		next = page.NextLink
	}
	return members, true, nil
}

// GraphError is a Graph answer other than success, throttling or a server error.
type GraphError struct {
	Status  int
	Code    string
	Message string
}

func (e *GraphError) Error() string {
	return fmt.Sprintf("graph answered %d %s: %s", e.Status, e.Code, e.Message)
}

func isStatus(err error, status int) bool {
	var ge *GraphError
	return errors.As(err, &ge) && ge.Status == status
}

// gone turns a 404 on a message into ErrGone.
func gone(err error) error {
	if isStatus(err, http.StatusNotFound) {
		return fmt.Errorf("%w: %w", ErrGone, err)
	}
	return err
}

// do sends one request, holding one of the app's slots for its whole exchange, and decodes
// a JSON answer into out when out is not nil.
func (g *Graph) do(ctx context.Context, method, target string, body, out any) error {
	if !strings.HasPrefix(target, g.api+"/") {
		// A nextLink is followed as given; make sure it cannot send our token elsewhere.
		return fmt.Errorf("refusing to follow %q outside %s", target, g.api)
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	// Without it a moved message gets a new id and every Ref we journaled goes stale.
	req.Header.Set("Prefer", `IdType="ImmutableId"`)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	select {
	case g.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-g.sem }()

	resp, err := g.hc.Do(req)
	if err != nil {
		return classifyTransportError(ctx, method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w: %w", method, req.URL.Path, ErrTransient, err)
	}
	g.log.DebugContext(ctx, "graph request", "method", method, "path", req.URL.Path, "status", resp.StatusCode)

	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return &ThrottledError{RetryAfter: throttleWait(resp.Header.Get("Retry-After")),
			Detail: method + " " + req.URL.Path}
	case resp.StatusCode >= 500:
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, errors.Join(graphError(resp.StatusCode, data), ErrTransient))
	case resp.StatusCode >= 300:
		return fmt.Errorf("%s %s: %w", method, req.URL.Path, graphError(resp.StatusCode, data))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, req.URL.Path, err)
		}
	}
	return nil
}

func graphError(status int, body []byte) *GraphError {
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	ge := &GraphError{Status: status}
	if json.Unmarshal(body, &e) == nil {
		ge.Code, ge.Message = e.Error.Code, e.Error.Message
	}
	if len(ge.Message) > 300 {
		ge.Message = ge.Message[:300] + "…"
	}
	return ge
}

// classifyTransportError sorts a failed exchange, token fetch included, into transient or
// permanent. The error texts name URLs and Entra's error codes, never a token.
func classifyTransportError(ctx context.Context, method, path string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
	}
	var te *tokenError
	if errors.As(err, &te) {
		return fmt.Errorf("%s %s: %w", method, path, te)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		te := &tokenError{Code: re.ErrorCode, Description: re.ErrorDescription}
		if re.Response != nil {
			te.Status = re.Response.StatusCode
		}
		return fmt.Errorf("%s %s: %w", method, path, te)
	}
	return fmt.Errorf("%s %s: %w: %w", method, path, ErrTransient, err)
}

// odataString quotes s as an OData string literal: single quotes, with inner ones doubled.
func odataString(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// odataQuery is one name=value pair with every byte but the unreserved ones
// percent-encoded, spaces as %20: a '+' left bare in a query reads as a space, and Message-IDs
// hold both.
func odataQuery(name, value string) string {
	return name + "=" + percentEncode(value)
}

func percentEncode(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// tokenError is a token fetch that failed: Entra's answer, or no answer.
type tokenError struct {
	Status      int // 0: no answer
	Code        string
	Description string
	err         error
}

func (e *tokenError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("token: %v", e.err)
	}
	d := e.Description
	if len(d) > 300 {
		d = d[:300] + "…"
	}
	return fmt.Sprintf("token: %d %s: %s", e.Status, e.Code, d)
}

// Unwrap makes a token endpoint that did not answer, or answered 5xx or 429, transient; a
// refused credential is permanent.
func (e *tokenError) Unwrap() []error {
	errs := []error{}
	if e.err != nil {
		errs = append(errs, e.err)
	}
	if e.Status == 0 || e.Status >= 500 || e.Status == http.StatusTooManyRequests {
		errs = append(errs, ErrTransient)
	}
	return errs
}

// assertionSource fetches a token with a certificate: x/oauth2 has no client assertions, so
// it signs a fresh one for every fetch (Entra refuses a replayed jti).
type assertionSource struct {
	hc       *http.Client
	tokenURL string
	clientID string
	cert     *x509.Certificate
	key      crypto.Signer
}

func (a *assertionSource) Token() (*oauth2.Token, error) {
	assertion, err := a.assertion(time.Now())
	if err != nil {
		return nil, &tokenError{err: fmt.Errorf("sign client assertion: %w", err), Status: -1}
	}
	form := url.Values{
		"client_id":             {a.clientID},
		"scope":                 {graphScope},
		"grant_type":            {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}
	// oauth2.TokenSource has no context; the client's timeout bounds the fetch.
	resp, err := a.hc.PostForm(a.tokenURL, form)
	if err != nil {
		return nil, &tokenError{err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, &tokenError{err: fmt.Errorf("read answer: %w", err)}
	}
	var body struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
		Error       string          `json:"error"`
		Description string          `json:"error_description"`
	}
	jsonErr := json.Unmarshal(data, &body)
	if resp.StatusCode != http.StatusOK {
		return nil, &tokenError{Status: resp.StatusCode, Code: body.Error, Description: body.Description}
	}
	if jsonErr != nil || body.AccessToken == "" {
		return nil, &tokenError{Status: resp.StatusCode, Code: "bad_answer", Description: "no access_token in the answer"}
	}
	// Entra has sent expires_in both as a number and as a string.
	secs, _ := strconv.Atoi(strings.Trim(string(body.ExpiresIn), `"`))
	tok := &oauth2.Token{AccessToken: body.AccessToken, TokenType: body.TokenType}
	if secs > 0 {
		tok.Expiry = time.Now().Add(time.Duration(secs) * time.Second)
	}
	return tok, nil
}

// assertion is the signed JWT Entra's certificate credential asks for: PS256, naming the
// certificate by its SHA-256 thumbprint.
func (a *assertionSource) assertion(now time.Time) (string, error) {
	thumb := sha256.Sum256(a.cert.Raw)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	return jws.Sign(a.key, "PS256", map[string]any{"typ": "JWT", "x5t#S256": base64.RawURLEncoding.EncodeToString(thumb[:])},
		map[string]any{
			"aud": a.tokenURL, "iss": a.clientID, "sub": a.clientID, "jti": hex.EncodeToString(jti),
			"nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		})
}
