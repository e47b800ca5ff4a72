package enforce

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/journalsensor/sensor/api"
)

// HTTPFeed is the pipeline's verdict feed and action endpoint, over the HTTPS connection
// the records go by: GET {URL}/v1/verdicts?after=CURSOR&limit=N and POST {URL}/v1/actions
// (gzip NDJSON), with the same bearer token.
type HTTPFeed struct {
	base   string
	token  string
	client *http.Client
	agent  string
}

// NewHTTPFeed returns the feed at base ("https://host[/prefix]"); client is the pipeline
// client (uploader.PipelineClient).
func NewHTTPFeed(base, token string, client *http.Client, userAgent string) *HTTPFeed {
	return &HTTPFeed{base: strings.TrimSuffix(base, "/"), token: strings.TrimSpace(token), client: client, agent: userAgent}
}

// Verdicts asks for the page after cursor.
func (f *HTTPFeed) Verdicts(ctx context.Context, after string, limit int) ([]Verdict, string, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if after != "" {
		q.Set("after", after)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.base+"/v1/verdicts?"+q.Encode(), nil)
	if err != nil {
		return nil, "", fmt.Errorf("verdict feed: %w", err)
	}
	var page api.VerdictPage
	if err := f.do(req, &page); err != nil {
		return nil, "", fmt.Errorf("verdict feed: %w", err)
	}
	if page.Next == "" {
		page.Next = after
	}
	out := make([]Verdict, len(page.Verdicts))
	for i, v := range page.Verdicts {
		out[i] = Verdict{ID: v.ID, Action: Action(v.Action), MessageID: v.MessageID, Recipients: v.Recipients,
			Tag: v.Tag, Undo: v.Undo, RecordID: v.RecordID, Reason: v.Reason}
	}
	return out, page.Next, nil
}

// Report posts outcomes as gzip NDJSON.
func (f *HTTPFeed) Report(ctx context.Context, outcomes []Outcome) error {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	enc := json.NewEncoder(zw)
	for _, o := range outcomes {
		if o.Recipient == "" {
			continue // a verdict that named nobody: the engine logged it; the contract has no place for it
		}
		provider := o.Provider
		if provider == "" {
			provider = api.ProviderNone
		}
		wire := api.Outcome{VerdictID: o.VerdictID, Recipient: o.Recipient, Provider: provider, Action: string(o.Action),
			Status: string(o.Status), Detail: o.Detail, At: o.At.UTC().Format(time.RFC3339Nano), MessageRef: o.MessageRef, FromFolder: o.FromFolder}
		if err := enc.Encode(wire); err != nil {
			return fmt.Errorf("action outcomes: %w", err)
		}
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("action outcomes: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.base+"/v1/actions", &body)
	if err != nil {
		return fmt.Errorf("action outcomes: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Content-Encoding", "gzip")
	if err := f.do(req, nil); err != nil {
		return fmt.Errorf("action outcomes: %w", err)
	}
	return nil
}

func (f *HTTPFeed) do(req *http.Request, into any) error {
	if f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	if f.agent != "" {
		req.Header.Set("User-Agent", f.agent)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		err := fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(msg)))
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestTimeout, http.StatusTooManyRequests:
		default:
			if resp.StatusCode/100 == 4 {
				return &RefusedError{Status: resp.StatusCode, err: err}
			}
		}
		return err
	}
	if into == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return nil
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(into); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// RefusedError is the pipeline refusing what was sent (a 4xx other than 401, 403, 408 and
// 429): sending it again would be refused again.
type RefusedError struct {
	Status int
	err    error
}

func (e *RefusedError) Error() string { return e.err.Error() }
func (e *RefusedError) Unwrap() error { return e.err }
