package enforce

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"
)

// Gmail scopes. gmail.modify covers list, get, labels, modify, trash and untrash; only
// messages.delete needs the full mail scope. The two are asked for in separate tokens, so a
// customer who never allows hard_delete can leave the full scope out of the domain-wide
// delegation grant: asking for a scope the grant lacks fails the whole token with
// unauthorized_client.
const (
	gmailModifyScope = "https://www.googleapis.com/auth/gmail.modify"
	gmailFullScope   = "https://mail.google.com/"
)

const (
	defaultGmailURL        = "https://gmail.googleapis.com"
	defaultQuarantineLabel = "Quarantine"
	labelInbox             = "INBOX"
	labelTrash             = "TRASH"
	// maxGmailBody bounds what we read of any answer; Gmail's list pages are far smaller.
	maxGmailBody = 4 << 20
)

// GmailConfig configures NewGmail. Zero values take the defaults named on each field.
type GmailConfig struct {
	// Credentials is the service account's JSON key (client_email, private_key, token_uri),
	// with domain-wide delegation for the gmail.modify scope, and https://mail.google.com/
	// when hard_delete is allowed.
	Credentials []byte
	// GmailURL is the API's base URL; default https://gmail.googleapis.com.
	GmailURL string
	// QuarantineLabel is the name of the label quarantine adds; default "Quarantine".
	QuarantineLabel string
	// HTTPClient carries the API and token requests; nil means a client that verifies TLS
	// against the system roots, with a 60 s timeout.
	HTTPClient *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
}

// Gmail is the Provider for Google Workspace: a service account impersonating each mailbox
// through domain-wide delegation, over the Gmail REST API.
type Gmail struct {
	email      string
	privateKey []byte
	keyID      string
	tokenURL   string
	base       string
	quarantine string
	hc         *http.Client
	log        *slog.Logger
	// tokenCtx carries hc to x/oauth2. Token sources outlive any one call, so their
	// requests are bounded by hc's timeout rather than by a caller's context.
	tokenCtx context.Context

	mu     sync.Mutex
	tokens map[tokenKey]oauth2.TokenSource
	labels map[string]map[string]string // user → label name → label id
}

type tokenKey struct {
	user string
	full bool
}

var _ Provider = (*Gmail)(nil)

// serviceAccountKey is the part of Google's JSON key file we use.
type serviceAccountKey struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// NewGmail checks the credentials and returns a client; it makes no request.
func NewGmail(cfg GmailConfig) (*Gmail, error) {
	if len(cfg.Credentials) == 0 {
		return nil, errors.New("gmail: no service account credentials")
	}
	var key serviceAccountKey
	if err := json.Unmarshal(cfg.Credentials, &key); err != nil {
		return nil, fmt.Errorf("gmail: service account credentials are not a JSON key: %w", err)
	}
	var missing []string
	if key.ClientEmail == "" {
		missing = append(missing, "client_email")
	}
	if key.PrivateKey == "" {
		missing = append(missing, "private_key")
	}
	if key.TokenURI == "" {
		missing = append(missing, "token_uri")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("gmail: service account credentials lack %s", strings.Join(missing, ", "))
	}
	if _, err := url.ParseRequestURI(key.TokenURI); err != nil {
		return nil, fmt.Errorf("gmail: service account credentials: token_uri: %w", err)
	}
	// Fail now on a bad key rather than at the first token of the first verdict.
	if err := checkPrivateKey([]byte(key.PrivateKey)); err != nil {
		return nil, fmt.Errorf("gmail: service account credentials: private_key: %w", err)
	}
	g := &Gmail{
		email:      key.ClientEmail,
		privateKey: []byte(key.PrivateKey),
		keyID:      key.PrivateKeyID,
		tokenURL:   key.TokenURI,
		base:       strings.TrimRight(cfg.GmailURL, "/"),
		quarantine: cfg.QuarantineLabel,
		hc:         cfg.HTTPClient,
		log:        cfg.Logger,
		tokens:     make(map[tokenKey]oauth2.TokenSource),
		labels:     make(map[string]map[string]string),
	}
	if g.base == "" {
		g.base = defaultGmailURL
	}
	if _, err := url.ParseRequestURI(g.base); err != nil {
		return nil, fmt.Errorf("gmail: GmailURL: %w", err)
	}
	if g.quarantine == "" {
		g.quarantine = defaultQuarantineLabel
	}
	if g.hc == nil {
		// Enough idle connections for the engine's workers: the default two would close
		// and reopen TLS connections under load.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 16
		g.hc = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	g.tokenCtx = context.WithValue(context.Background(), oauth2.HTTPClient, g.hc)
	return g, nil
}

// checkPrivateKey accepts what x/oauth2 signs with: an RSA key in PEM, PKCS#8 (as Google
// issues them) or PKCS#1.
func checkPrivateKey(pemKey []byte) error {
	block, _ := pem.Decode(pemKey)
	if block == nil {
		return errors.New("not a PEM block")
	}
	if k, err := x509.ParsePKCS8PrivateKey(block.Bytes); err == nil {
		if _, ok := k.(*rsa.PrivateKey); !ok {
			return fmt.Errorf("a %T, not an RSA key", k)
		}
		return nil
	}
	if _, err := x509.ParsePKCS1PrivateKey(block.Bytes); err != nil {
		return fmt.Errorf("neither PKCS#8 nor PKCS#1: %w", err)
	}
	return nil
}

// Name is "gmail".
func (g *Gmail) Name() string { return "gmail" }

// Members never expands: Google groups are visible only through the Admin SDK directory
// API, which needs its own scope and an admin to impersonate. Until that is wired in, every
// address is treated as a mailbox, and a group address finds no copies.
func (g *Gmail) Members(ctx context.Context, address string) ([]string, bool, error) {
	return nil, false, nil
}

type gmailMessage struct {
	ID       string   `json:"id"`
	LabelIDs []string `json:"labelIds"`
}

// Find lists the copies whose Message-ID header is messageID, trash and spam included.
func (g *Gmail) Find(ctx context.Context, mailbox, messageID string) ([]Copy, error) {
	// Gmail's rfc822msgid: operator takes the id without its angle brackets.
	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(messageID), "<"), ">")
	if id == "" {
		return nil, errors.New("gmail find: empty Message-ID")
	}
	var copies []Copy
	pageToken := ""
	for {
		q := url.Values{}
		q.Set("q", "rfc822msgid:"+id)
		q.Set("includeSpamTrash", "true")
		if pageToken != "" {
			q.Set("pageToken", pageToken)
		}
		var page struct {
			Messages      []gmailMessage `json:"messages"`
			NextPageToken string         `json:"nextPageToken"`
		}
		if err := g.do(ctx, mailbox, false, http.MethodGet, "/messages", q, nil, &page); err != nil {
			return nil, fmt.Errorf("gmail find %s: %w", mailbox, err)
		}
		for _, m := range page.Messages {
			full, err := g.message(ctx, mailbox, m.ID)
			if errors.Is(err, ErrGone) {
				// Deleted between the list and the get: not a copy any more.
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("gmail find %s: %w", mailbox, err)
			}
			copies = append(copies, Copy{Ref: full.ID, Labels: full.LabelIDs})
		}
		if page.NextPageToken == "" || page.NextPageToken == pageToken {
			return copies, nil
		}
		pageToken = page.NextPageToken
	}
}

func (g *Gmail) message(ctx context.Context, user, id string) (gmailMessage, error) {
	var m gmailMessage
	q := url.Values{"format": {"minimal"}}
	err := g.do(ctx, user, false, http.MethodGet, "/messages/"+url.PathEscape(id), q, nil, &m)
	if m.ID == "" {
		m.ID = id
	}
	return m, err
}

// Apply reads the copy's labels afresh, since the Copy may be stale, and acts only when the
// copy is not already in the step's target state.
func (g *Gmail) Apply(ctx context.Context, mailbox string, c Copy, s Step) (Result, error) {
	if c.Ref == "" {
		return Result{}, errors.New("gmail apply: copy has no message id")
	}
	res, err := g.apply(ctx, mailbox, c.Ref, s)
	if err != nil {
		return Result{}, fmt.Errorf("gmail %s %s in %s: %w", s.Action, c.Ref, mailbox, err)
	}
	res.Ref = c.Ref
	return res, nil
}

func (g *Gmail) apply(ctx context.Context, user, ref string, s Step) (Result, error) {
	path := "/messages/" + url.PathEscape(ref)
	if s.Action == HardDelete {
		// The target state is "no such message", so a 404 on the check is Already.
		_, err := g.message(ctx, user, ref)
		if errors.Is(err, ErrGone) {
			return Result{Status: Already}, nil
		}
		if err != nil || s.Observe {
			return Result{Status: Done}, err
		}
		err = g.do(ctx, user, true, http.MethodDelete, path, nil, nil, nil)
		if errors.Is(err, ErrGone) {
			return Result{Status: Already}, nil
		}
		return Result{Status: Done}, err
	}

	m, err := g.message(ctx, user, ref)
	if err != nil {
		return Result{}, err
	}
	has := func(id string) bool { return slices.Contains(m.LabelIDs, id) }

	switch s.Action {
	case Quarantine:
		qid, err := g.labelID(ctx, user, g.quarantine, !s.Observe)
		if err != nil {
			return Result{}, err
		}
		if qid != "" && has(qid) && !has(labelInbox) {
			return Result{Status: Already}, nil
		}
		var removed []string
		if has(labelInbox) {
			removed = append(removed, labelInbox)
		}
		res := Result{Status: Done, From: strings.Join(removed, ",")}
		if s.Observe {
			return res, nil
		}
		return res, g.modify(ctx, user, ref, []string{qid}, removed)

	case Delete:
		if has(labelTrash) {
			return Result{Status: Already}, nil
		}
		if s.Observe {
			return Result{Status: Done}, nil
		}
		return Result{Status: Done}, g.do(ctx, user, false, http.MethodPost, path+"/trash", nil, nil, nil)

	case Tag:
		if s.Tag == "" {
			return Result{}, errors.New("tag step without a tag")
		}
		tid, err := g.labelID(ctx, user, s.Tag, !s.Observe)
		if err != nil {
			return Result{}, err
		}
		if tid != "" && has(tid) {
			return Result{Status: Already}, nil
		}
		if s.Observe {
			return Result{Status: Done}, nil
		}
		return Result{Status: Done}, g.modify(ctx, user, ref, []string{tid}, nil)

	case Restore:
		// Restore never creates the quarantine label: a mailbox without it has nothing
		// quarantined to put back.
		qid, err := g.labelID(ctx, user, g.quarantine, false)
		if err != nil {
			return Result{}, err
		}
		trashed := has(labelTrash)
		quarantined := qid != "" && has(qid)
		if !trashed && !quarantined {
			return Result{Status: Already}, nil
		}
		var removed []string
		if trashed {
			removed = append(removed, labelTrash)
		}
		if quarantined {
			removed = append(removed, qid)
		}
		res := Result{Status: Done, From: strings.Join(removed, ",")}
		if s.Observe {
			return res, nil
		}
		if trashed {
			if err := g.do(ctx, user, false, http.MethodPost, path+"/untrash", nil, nil, nil); err != nil {
				return Result{}, err
			}
		}
		if quarantined {
			// Quarantine takes off INBOX and nothing else, so INBOX is all a restore puts
			// back, and only when the copy had it: From may list every label the copy had
			// (the engine's look before the step), and adding SENT or a category back
			// would be wrong or refused.
			var back []string
			if slices.Contains(splitLabels(s.From), labelInbox) {
				back = []string{labelInbox}
			}
			if err := g.modify(ctx, user, ref, back, []string{qid}); err != nil {
				return Result{}, err
			}
		}
		return res, nil
	}
	return Result{}, fmt.Errorf("unknown action %q", s.Action)
}

func splitLabels(s string) []string {
	var out []string
	for l := range strings.SplitSeq(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (g *Gmail) modify(ctx context.Context, user, ref string, add, remove []string) error {
	body := struct {
		AddLabelIDs    []string `json:"addLabelIds,omitempty"`
		RemoveLabelIDs []string `json:"removeLabelIds,omitempty"`
	}{add, remove}
	return g.do(ctx, user, false, http.MethodPost, "/messages/"+url.PathEscape(ref)+"/modify", nil, body, nil)
}

type gmailLabel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// labelID returns the id of the user's label with this name, creating it when create is set;
// "" when it does not exist and create is not set. Ids are cached per user: a label's id
// never changes, and a deleted one makes the next modify fail with 400 rather than act
// wrongly.
func (g *Gmail) labelID(ctx context.Context, user, name string, create bool) (string, error) {
	if id, ok := g.cachedLabel(user, name); ok {
		return id, nil
	}
	if err := g.loadLabels(ctx, user); err != nil {
		return "", err
	}
	if id, ok := g.cachedLabel(user, name); ok || !create {
		return id, nil
	}
	var l gmailLabel
	body := map[string]string{
		"name":                  name,
		"labelListVisibility":   "labelShow",
		"messageListVisibility": "show",
	}
	err := g.do(ctx, user, false, http.MethodPost, "/labels", nil, body, &l)
	var ae *gmailAPIError
	if errors.As(err, &ae) && ae.status == http.StatusConflict {
		// Another step created it since we listed.
		if err := g.loadLabels(ctx, user); err != nil {
			return "", err
		}
		if id, ok := g.cachedLabel(user, name); ok {
			return id, nil
		}
	}
	if err != nil {
		return "", fmt.Errorf("create label %q: %w", name, err)
	}
	if l.ID == "" {
		return "", fmt.Errorf("create label %q: no id in the answer", name)
	}
	g.log.Info("gmail label created", slog.String("mailbox", user), slog.String("label", name), slog.String("id", l.ID))
	g.mu.Lock()
	g.userLabels(user)[name] = l.ID
	g.mu.Unlock()
	return l.ID, nil
}

func (g *Gmail) cachedLabel(user, name string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	id, ok := g.labels[user][name]
	return id, ok
}

// userLabels needs g.mu held.
func (g *Gmail) userLabels(user string) map[string]string {
	m := g.labels[user]
	if m == nil {
		m = make(map[string]string)
		g.labels[user] = m
	}
	return m
}

func (g *Gmail) loadLabels(ctx context.Context, user string) error {
	var list struct {
		Labels []gmailLabel `json:"labels"`
	}
	if err := g.do(ctx, user, false, http.MethodGet, "/labels", nil, nil, &list); err != nil {
		return fmt.Errorf("list labels: %w", err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.userLabels(user)
	for _, l := range list.Labels {
		m[l.Name] = l.ID
	}
	return nil
}

// tokenSource returns the cached source of tokens impersonating user; full asks for the
// full mail scope that only messages.delete needs.
func (g *Gmail) tokenSource(user string, full bool) oauth2.TokenSource {
	k := tokenKey{user, full}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ts, ok := g.tokens[k]; ok {
		return ts
	}
	scope := gmailModifyScope
	if full {
		scope = gmailFullScope
	}
	conf := &jwt.Config{
		Email:        g.email,
		PrivateKey:   g.privateKey,
		PrivateKeyID: g.keyID,
		Subject:      user,
		Scopes:       []string{scope},
		TokenURL:     g.tokenURL,
		// Google refuses assertions that live longer than an hour.
		Expires: 55 * time.Minute,
	}
	ts := conf.TokenSource(g.tokenCtx)
	g.tokens[k] = ts
	return ts
}

func (g *Gmail) token(ctx context.Context, user string, full bool) (*oauth2.Token, error) {
	type answer struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan answer, 1)
	ts := g.tokenSource(user, full)
	go func() {
		tok, err := ts.Token()
		ch <- answer{tok, err}
	}()
	var a answer
	select {
	case a = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if a.err == nil {
		return a.tok, nil
	}
	var re *oauth2.RetrieveError
	if !errors.As(a.err, &re) || re.Response == nil {
		// x/oauth2 flattens network failures into plain strings; the key was checked in
		// NewGmail, so what is left is the endpoint not answering.
		return nil, fmt.Errorf("token for %s: %w: %w", user, ErrTransient, a.err)
	}
	var body struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	_ = json.Unmarshal(re.Body, &body)
	detail := fmt.Sprintf("token for %s: %d %s %s", user, re.Response.StatusCode, body.Error, body.Description)
	switch code := re.Response.StatusCode; {
	case code == http.StatusTooManyRequests:
		return nil, &ThrottledError{RetryAfter: throttleWait(re.Response.Header.Get("Retry-After")), Detail: detail}
	case code >= 500:
		return nil, fmt.Errorf("%s: %w", detail, ErrTransient)
	}
	return nil, errors.New(detail)
}

// gmailAPIError is a non-2xx answer from the API that is neither throttling nor transient.
type gmailAPIError struct {
	status  int
	reason  string
	message string
}

func (e *gmailAPIError) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", e.status, e.reason, e.message)
}

// do sends one API request for user and decodes a 2xx answer into out. It maps the
// failures the engine tells apart: throttling, transient errors, and a gone message (404).
func (g *Gmail) do(ctx context.Context, user string, full bool, method, path string, q url.Values, in, out any) error {
	tok, err := g.token(ctx, user, full)
	if err != nil {
		return err
	}
	u := g.base + "/gmail/v1/users/" + url.PathEscape(user) + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", method, path, ctx.Err())
		}
		// A *url.Error quotes the URL, never the Authorization header, so err is safe to
		// pass up into logs.
		return fmt.Errorf("%s %s: %w: %w", method, path, ErrTransient, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxGmailBody))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w: %w", method, path, ErrTransient, err)
	}
	if resp.StatusCode/100 == 2 {
		if out == nil || len(bytes.TrimSpace(raw)) == 0 {
			return nil
		}
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
		return nil
	}

	var ge struct {
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Status  string `json:"status"`
			Errors  []struct {
				Reason string `json:"reason"`
			} `json:"errors"`
		} `json:"error"`
	}
	_ = json.Unmarshal(raw, &ge)
	reason := ge.Error.Status
	if len(ge.Error.Errors) > 0 && ge.Error.Errors[0].Reason != "" {
		reason = ge.Error.Errors[0].Reason
	}
	detail := fmt.Sprintf("%s %s: HTTP %d %s %s", method, path, resp.StatusCode, reason, ge.Error.Message)
	switch code := resp.StatusCode; {
	case code == http.StatusTooManyRequests,
		code == http.StatusForbidden && (reason == "rateLimitExceeded" || reason == "userRateLimitExceeded"):
		ra := throttleWait(resp.Header.Get("Retry-After"))
		g.log.Debug("gmail throttled", slog.String("mailbox", user), slog.Duration("retry_after", ra))
		return &ThrottledError{RetryAfter: ra, Detail: detail}
	case code == http.StatusNotFound:
		return fmt.Errorf("%s: %w", detail, ErrGone)
	case code >= 500:
		return fmt.Errorf("%s: %w", detail, ErrTransient)
	}
	return fmt.Errorf("%s %s: %w", method, path, &gmailAPIError{status: resp.StatusCode, reason: reason, message: ge.Error.Message})
}
