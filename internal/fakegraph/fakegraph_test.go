package fakegraph

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func secretToken(t *testing.T, s *Server) string {
	t.Helper()
	resp, err := s.Client().PostForm(s.TokenURL(), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"client"}, "client_secret": {"s3cret"},
		"scope": {"https://graph.microsoft.com/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&body) != nil || body.AccessToken == "" {
		t.Fatalf("token: %s", resp.Status)
	}
	return body.AccessToken
}

func call(t *testing.T, s *Server, tok, method, path, body string, prefer bool) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if prefer {
		req.Header.Set("Prefer", `IdType="ImmutableId"`)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return resp.StatusCode, out
}

// Real Graph gives a moved message a new id unless the request asked for immutable ids; the
// client's journaled refs rely on the header, so the fake must punish its absence.
func TestMoveChangesIDWithoutImmutableHeader(t *testing.T) {
	s := New(t, Options{ClientSecret: "s3cret"})
	tok := secretToken(t, s)
	id := s.AddMessage("a@x.test", Message{InternetMessageID: "<m@x>"})

	code, moved := call(t, s, tok, "POST", "/v1.0/users/a@x.test/messages/"+id+"/move", `{"destinationId":"junkemail"}`, false)
	if code != http.StatusCreated {
		t.Fatalf("move: %d %v", code, moved)
	}
	newID := moved["id"].(string)
	if newID == id {
		t.Fatalf("id %s did not change on a move without Prefer: IdType", id)
	}
	if code, _ := call(t, s, tok, "GET", "/v1.0/users/a@x.test/messages/"+id, "", false); code != http.StatusNotFound {
		t.Fatalf("old id after move: %d, want 404", code)
	}

	code, moved = call(t, s, tok, "POST", "/v1.0/users/a@x.test/messages/"+newID+"/move", `{"destinationId":"inbox"}`, true)
	if code != http.StatusCreated || moved["id"] != newID {
		t.Fatalf("move with immutable ids: %d, id %v, want %s", code, moved["id"], newID)
	}
	if got := s.Messages("a@x.test")[0].ParentFolderID; got != s.FolderID("a@x.test", "inbox") {
		t.Fatalf("folder after move back: %s", got)
	}
}

func TestBearerRequiredAndChecked(t *testing.T) {
	s := New(t, Options{ClientSecret: "s3cret", TokenTTL: time.Minute})
	s.AddMailbox("a@x.test")
	path := "/v1.0/users/a@x.test/mailFolders/inbox"
	if code, _ := call(t, s, "", "GET", path, "", true); code != http.StatusUnauthorized {
		t.Fatalf("no token: %d", code)
	}
	tok := secretToken(t, s)
	if code, _ := call(t, s, tok+"x", "GET", path, "", true); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	if code, _ := call(t, s, tok, "GET", path, "", true); code != http.StatusOK {
		t.Fatalf("good token: %d", code)
	}
	s.SetNow(func() time.Time { return time.Now().Add(2 * time.Minute) })
	if code, _ := call(t, s, tok, "GET", path, "", true); code != http.StatusUnauthorized {
		t.Fatalf("expired token: %d", code)
	}
}

func TestWrongSecretRefused(t *testing.T) {
	s := New(t, Options{ClientSecret: "s3cret"})
	resp, err := s.Client().PostForm(s.TokenURL(), url.Values{
		"grant_type": {"client_credentials"}, "client_id": {"client"}, "client_secret": {"nope"},
		"scope": {"https://graph.microsoft.com/.default"},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong secret: %d", resp.StatusCode)
	}
}

func TestFilterPagingAndLateDelivery(t *testing.T) {
	s := New(t, Options{ClientSecret: "s3cret", PageSize: 2})
	tok := secretToken(t, s)
	mid := "<a+b'c@x>"
	for range 5 {
		s.AddMessage("a@x.test", Message{InternetMessageID: mid})
	}
	s.AddMessage("a@x.test", Message{InternetMessageID: "<other@x>"})
	s.Hold("a@x.test", mid)
	filter := "/v1.0/users/a@x.test/messages?$filter=" + url.PathEscape("internetMessageId eq '<a+b''c@x>'")
	filter = strings.ReplaceAll(filter, "+", "%2B")
	if code, out := call(t, s, tok, "GET", filter, "", true); code != 200 || len(out["value"].([]any)) != 0 {
		t.Fatalf("held message found: %d %v", code, out)
	}
	s.Deliver("a@x.test", mid)
	n, path := 0, filter
	for path != "" {
		code, out := call(t, s, tok, "GET", path, "", true)
		if code != 200 {
			t.Fatalf("page: %d %v", code, out)
		}
		n += len(out["value"].([]any))
		next, _ := out["@odata.nextLink"].(string)
		path = strings.TrimPrefix(next, s.URL())
	}
	if n != 5 {
		t.Fatalf("found %d over the pages, want 5", n)
	}
}

func TestThrottleAnd503(t *testing.T) {
	s := New(t, Options{ClientSecret: "s3cret"})
	tok := secretToken(t, s)
	s.AddMailbox("b@x.test")
	s.Throttle("a@x.test", 1, "7")
	if code, _ := call(t, s, tok, "GET", "/v1.0/users/a@x.test/mailFolders/inbox", "", true); code != 429 {
		t.Fatalf("throttled: %d", code)
	}
	if code, _ := call(t, s, tok, "GET", "/v1.0/users/a@x.test/mailFolders/inbox", "", true); code != 200 {
		t.Fatalf("after throttle: %d", code)
	}
	s.Fail503(1)
	if code, _ := call(t, s, tok, "GET", "/v1.0/users/b@x.test/mailFolders/inbox", "", true); code != 503 {
		t.Fatalf("503 knob: %d", code)
	}
	if s.Requests() != 3 {
		t.Fatalf("requests %d, want 3", s.Requests())
	}
}

func TestParseEq(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		ok   bool
	}{
		{"mail eq 'a@x'", "a@x", true},
		{"mail eq 'o''brien@x'", "o'brien@x", true},
		{"mail eq 'a'b'", "", false},
		{"mail eq 'a", "", false},
		{"displayName eq 'a'", "", false},
	} {
		got, ok := parseEq(c.in, "mail")
		if got != c.want || ok != c.ok {
			t.Errorf("parseEq(%q) = %q, %v; want %q, %v", c.in, got, ok, c.want, c.ok)
		}
	}
}
