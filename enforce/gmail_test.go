package enforce

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/jwt"

	"github.com/journalsensor/sensor/internal/fakegmail"
)

const (
	alice = "alice@example.com"
	bob   = "bob@example.com"
	// Message-IDs carry '+' and '/' often enough (base64 ids); '+' must not become a space.
	trickyID = "<a+b/c=d@mail.example.com>"
)

func newGmailFake(t *testing.T, opts fakegmail.Options) (*fakegmail.Server, *Gmail) {
	t.Helper()
	if opts.Users == nil {
		opts.Users = []string{alice, bob}
	}
	f := fakegmail.New(t, opts)
	g, err := NewGmail(GmailConfig{Credentials: f.Credentials(), GmailURL: f.URL(), HTTPClient: f.Client()})
	if err != nil {
		t.Fatalf("NewGmail: %v", err)
	}
	return f, g
}

func findOne(t *testing.T, g *Gmail, user, msgID string) Copy {
	t.Helper()
	copies, err := g.Find(context.Background(), user, msgID)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	if len(copies) != 1 {
		t.Fatalf("Find: %d copies, want 1: %+v", len(copies), copies)
	}
	return copies[0]
}

func apply(t *testing.T, g *Gmail, user string, c Copy, s Step) Result {
	t.Helper()
	r, err := g.Apply(context.Background(), user, c, s)
	if err != nil {
		t.Fatalf("Apply %+v: %v", s, err)
	}
	return r
}

func labelsOf(t *testing.T, f *fakegmail.Server, user, id string) []string {
	t.Helper()
	l, ok := f.Labels(user, id)
	if !ok {
		t.Fatalf("message %s is gone", id)
	}
	return l
}

func TestGmailName(t *testing.T) {
	_, g := newGmailFake(t, fakegmail.Options{})
	if g.Name() != "gmail" {
		t.Fatalf("Name = %q", g.Name())
	}
}

func TestGmailFindTrickyMessageID(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	want := f.Deliver(alice, trickyID)
	spam := f.Deliver(alice, trickyID, "SPAM")
	f.Deliver(alice, "<a b/c=d@mail.example.com>") // what an unescaped '+' would find
	f.Deliver(bob, trickyID)

	copies, err := g.Find(context.Background(), alice, trickyID)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, c := range copies {
		refs = append(refs, c.Ref)
	}
	if !slices.Equal(refs, []string{want, spam}) {
		t.Fatalf("Find = %v, want %v (inbox copy, then the spam one)", refs, []string{want, spam})
	}
	if !slices.Equal(copies[1].Labels, []string{"SPAM"}) {
		t.Fatalf("spam copy labels = %v", copies[1].Labels)
	}
	none, err := g.Find(context.Background(), alice, "<nobody@example.com>")
	if err != nil || len(none) != 0 {
		t.Fatalf("Find absent = %v, %v; want none, nil", none, err)
	}
}

func TestGmailFindFollowsPages(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{PageSize: 2})
	for range 5 {
		f.Deliver(alice, trickyID)
	}
	copies, err := g.Find(context.Background(), alice, trickyID)
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 5 {
		t.Fatalf("Find = %d copies over pages of 2, want 5", len(copies))
	}
	if n := f.Count("messages.list"); n != 3 {
		t.Fatalf("%d list calls, want 3", n)
	}
}

func TestGmailFindLateDelivery(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	f.DeliverLate(alice, trickyID, 1, 0)
	first, err := g.Find(context.Background(), alice, trickyID)
	if err != nil || len(first) != 0 {
		t.Fatalf("first Find = %v, %v; want none yet", first, err)
	}
	findOne(t, g, alice, trickyID)
}

func TestGmailActionsThenAlready(t *testing.T) {
	for _, s := range []Step{
		{Action: Quarantine},
		{Action: Delete},
		{Action: HardDelete},
		{Action: Tag, Tag: "Phish"},
	} {
		t.Run(string(s.Action), func(t *testing.T) {
			f, g := newGmailFake(t, fakegmail.Options{})
			id := f.Deliver(alice, trickyID, "INBOX", "UNREAD")
			c := findOne(t, g, alice, trickyID)

			if r := apply(t, g, alice, c, s); r.Status != Done || r.Ref != id {
				t.Fatalf("first run = %+v, want Done on %s", r, id)
			}
			if r := apply(t, g, alice, c, s); r.Status != Already {
				t.Fatalf("second run = %+v, want Already", r)
			}

			labels, exists := f.Labels(alice, id)
			switch s.Action {
			case Quarantine:
				q := f.LabelID(alice, "Quarantine")
				if q == "" || !slices.Contains(labels, q) || slices.Contains(labels, "INBOX") {
					t.Fatalf("labels after quarantine = %v (quarantine id %q)", labels, q)
				}
			case Delete:
				if !slices.Contains(labels, "TRASH") {
					t.Fatalf("labels after delete = %v, want TRASH", labels)
				}
			case HardDelete:
				if exists {
					t.Fatalf("message still exists after hard delete: %v", labels)
				}
			case Tag:
				tag := f.LabelID(alice, "Phish")
				if tag == "" || !slices.Contains(labels, tag) || !slices.Contains(labels, "INBOX") {
					t.Fatalf("labels after tag = %v (tag id %q)", labels, tag)
				}
			}
		})
	}
}

func TestGmailQuarantineFrom(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	f.Deliver(alice, trickyID, "INBOX", "UNREAD")
	c := findOne(t, g, alice, trickyID)
	if r := apply(t, g, alice, c, Step{Action: Quarantine}); r.From != "INBOX" {
		t.Fatalf("From = %q, want INBOX", r.From)
	}
}

func TestGmailObserveChangesNothing(t *testing.T) {
	for _, s := range []Step{
		{Action: Quarantine, Observe: true},
		{Action: Delete, Observe: true},
		{Action: HardDelete, Observe: true},
		{Action: Tag, Tag: "Phish", Observe: true},
	} {
		t.Run(string(s.Action), func(t *testing.T) {
			f, g := newGmailFake(t, fakegmail.Options{})
			id := f.Deliver(alice, trickyID)
			c := findOne(t, g, alice, trickyID)
			if r := apply(t, g, alice, c, s); r.Status != Done {
				t.Fatalf("observe = %+v, want Done (would act)", r)
			}
			if l := labelsOf(t, f, alice, id); !slices.Equal(l, []string{"INBOX"}) {
				t.Fatalf("labels after observe = %v, want unchanged [INBOX]", l)
			}
			for _, op := range []string{"messages.modify", "messages.trash", "messages.delete", "labels.create"} {
				if n := f.Count(op); n != 0 {
					t.Fatalf("observe made %d %s calls", n, op)
				}
			}
		})
	}
}

func TestGmailObserveRestore(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	id := f.Deliver(alice, trickyID)
	c := findOne(t, g, alice, trickyID)
	apply(t, g, alice, c, Step{Action: Delete})
	if r := apply(t, g, alice, c, Step{Action: Restore, Observe: true}); r.Status != Done {
		t.Fatalf("observe restore = %+v, want Done", r)
	}
	if l := labelsOf(t, f, alice, id); !slices.Contains(l, "TRASH") {
		t.Fatalf("observe restore untrashed: %v", l)
	}
}

func TestGmailQuarantineThenRestore(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	id := f.Deliver(alice, trickyID, "INBOX", "UNREAD")
	c := findOne(t, g, alice, trickyID)
	q := apply(t, g, alice, c, Step{Action: Quarantine})

	if r := apply(t, g, alice, c, Step{Action: Restore, From: q.From}); r.Status != Done {
		t.Fatalf("restore = %+v, want Done", r)
	}
	l := labelsOf(t, f, alice, id)
	slices.Sort(l)
	if !slices.Equal(l, []string{"INBOX", "UNREAD"}) {
		t.Fatalf("labels after restore = %v, want [INBOX UNREAD]", l)
	}
	if r := apply(t, g, alice, c, Step{Action: Restore, From: q.From}); r.Status != Already {
		t.Fatalf("second restore = %+v, want Already", r)
	}
}

// Quarantine takes off INBOX alone, so a restore puts back INBOX alone, and only when the
// copy had it: From may be every label the copy had before (the engine's look before a crash),
// and SENT or a category added back would be wrong or refused.
func TestGmailRestorePutsBackOnlyInbox(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	id := f.Deliver(alice, trickyID, "INBOX", "UNREAD")
	c := findOne(t, g, alice, trickyID)
	apply(t, g, alice, c, Step{Action: Quarantine})
	apply(t, g, alice, c, Step{Action: Restore, From: "INBOX,UNREAD,SENT,CATEGORY_UPDATES"})
	if l := labelsOf(t, f, alice, id); !slices.Equal(slices.Sorted(slices.Values(l)), []string{"INBOX", "UNREAD"}) {
		t.Fatalf("labels = %v, want INBOX and UNREAD", l)
	}
	spam := f.Deliver(alice, "<spam@x>", "SPAM")
	c = findOne(t, g, alice, "<spam@x>")
	if r := apply(t, g, alice, c, Step{Action: Quarantine}); r.From != "" {
		t.Fatalf("quarantine from SPAM took off %q", r.From)
	}
	apply(t, g, alice, c, Step{Action: Restore, From: "SPAM"})
	if l := labelsOf(t, f, alice, spam); !slices.Equal(l, []string{"SPAM"}) {
		t.Fatalf("labels after restoring a copy quarantined from spam = %v, want [SPAM]: no INBOX it never had", l)
	}
}

func TestGmailDeleteThenRestore(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	id := f.Deliver(alice, trickyID)
	c := findOne(t, g, alice, trickyID)
	apply(t, g, alice, c, Step{Action: Delete})
	if r := apply(t, g, alice, c, Step{Action: Restore}); r.Status != Done {
		t.Fatalf("restore = %+v, want Done", r)
	}
	if l := labelsOf(t, f, alice, id); !slices.Equal(l, []string{"INBOX"}) {
		t.Fatalf("labels after untrash = %v, want [INBOX]", l)
	}
	if n := f.Count("messages.untrash"); n != 1 {
		t.Fatalf("%d untrash calls, want 1", n)
	}
	if r := apply(t, g, alice, c, Step{Action: Restore}); r.Status != Already {
		t.Fatalf("second restore = %+v, want Already", r)
	}
}

func TestGmailLabelCreatedOnce(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	for range 3 {
		f.Deliver(alice, trickyID)
	}
	copies, err := g.Find(context.Background(), alice, trickyID)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range copies {
		apply(t, g, alice, c, Step{Action: Quarantine})
	}
	if n := f.Count("labels.create"); n != 1 {
		t.Fatalf("%d label creations, want 1", n)
	}
	if n := f.Count("labels.list"); n != 1 {
		t.Fatalf("%d label listings, want 1 (cached afterwards)", n)
	}

	// A second client (a restart) finds the existing label instead of creating another.
	g2, err := NewGmail(GmailConfig{Credentials: f.Credentials(), GmailURL: f.URL(), HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	id := f.Deliver(alice, "<other@example.com>")
	apply(t, g2, alice, Copy{Ref: id}, Step{Action: Quarantine})
	if n := f.Count("labels.create"); n != 1 {
		t.Fatalf("%d label creations after restart, want still 1", n)
	}
}

func TestGmailThrottled(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	f.Deliver(alice, trickyID)
	f.Throttle(alice, 1, "37")
	_, err := g.Find(context.Background(), alice, trickyID)
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != 37*time.Second {
		t.Fatalf("err = %v, want ThrottledError with RetryAfter 37s", err)
	}
	if errors.Is(err, ErrTransient) {
		t.Fatalf("throttling is not transient-with-backoff: %v", err)
	}
	findOne(t, g, alice, trickyID) // the next request goes through
}

func TestGmailThrottledWithoutRetryAfter(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	f.Throttle(alice, 1, "")
	_, err := g.Find(context.Background(), alice, trickyID)
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != time.Second {
		t.Fatalf("err = %v, want ThrottledError with the 1s default", err)
	}
}

func TestGmailRateLimit403(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	id := f.Deliver(alice, trickyID)
	f.RateLimit403(alice, 1, "5")
	_, err := g.Apply(context.Background(), alice, Copy{Ref: id}, Step{Action: Delete})
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter != 5*time.Second {
		t.Fatalf("err = %v, want ThrottledError with RetryAfter 5s", err)
	}
}

func TestGmailQuotaExceeded(t *testing.T) {
	// 20 units: the list (5) and three gets (15) fit, the fourth get does not.
	f, g := newGmailFake(t, fakegmail.Options{QuotaPerMinute: 20})
	for range 4 {
		f.Deliver(alice, trickyID)
	}
	_, err := g.Find(context.Background(), alice, trickyID)
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 || te.RetryAfter > time.Minute {
		t.Fatalf("err = %v, want ThrottledError within the minute", err)
	}
	if f.Count("quota_exceeded") != 1 || f.QuotaUsed(alice) != 20 {
		t.Fatalf("quota_exceeded = %d, used = %d", f.Count("quota_exceeded"), f.QuotaUsed(alice))
	}
	// Bob's quota is his own.
	f.Deliver(bob, trickyID)
	findOne(t, g, bob, trickyID)
}

func TestGmailUnavailableIsTransient(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	id := f.Deliver(alice, trickyID)
	f.Unavailable(alice, 1)
	_, err := g.Apply(context.Background(), alice, Copy{Ref: id}, Step{Action: Quarantine})
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
	var te *ThrottledError
	if errors.As(err, &te) {
		t.Fatalf("503 reported as throttling: %v", err)
	}
}

func TestGmailNetworkErrorIsTransient(t *testing.T) {
	f := fakegmail.New(t, fakegmail.Options{Users: []string{alice}})
	g, err := NewGmail(GmailConfig{Credentials: f.Credentials(), GmailURL: "https://127.0.0.1:1", HTTPClient: f.Client()})
	if err != nil {
		t.Fatal(err)
	}
	_, err = g.Find(context.Background(), alice, trickyID)
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v, want ErrTransient", err)
	}
}

func TestGmailGone(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	f.Deliver(alice, trickyID)
	_, err := g.Apply(context.Background(), alice, Copy{Ref: "18cffffffffffff"}, Step{Action: Quarantine})
	if !errors.Is(err, ErrGone) {
		t.Fatalf("err = %v, want ErrGone", err)
	}
	if errors.Is(err, ErrTransient) {
		t.Fatalf("gone is permanent: %v", err)
	}
}

func TestGmailBadCredentials(t *testing.T) {
	f := fakegmail.New(t, fakegmail.Options{Users: []string{alice}})
	var key map[string]any
	if err := json.Unmarshal(f.Credentials(), &key); err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{"client_email", "private_key", "token_uri"} {
		t.Run(field, func(t *testing.T) {
			k := maps.Clone(key)
			delete(k, field)
			b, _ := json.Marshal(k)
			_, err := NewGmail(GmailConfig{Credentials: b})
			if err == nil || !strings.Contains(err.Error(), field) {
				t.Fatalf("err = %v, want one naming %s", err, field)
			}
		})
	}
	t.Run("bad private_key", func(t *testing.T) {
		k := maps.Clone(key)
		k["private_key"] = "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"
		b, _ := json.Marshal(k)
		if _, err := NewGmail(GmailConfig{Credentials: b}); err == nil || !strings.Contains(err.Error(), "private_key") {
			t.Fatalf("err = %v, want one naming private_key", err)
		}
	})
	t.Run("not JSON", func(t *testing.T) {
		if _, err := NewGmail(GmailConfig{Credentials: []byte("PEM?")}); err == nil {
			t.Fatal("no error for a key that is not JSON")
		}
	})
}

func TestGmailTokensPerUser(t *testing.T) {
	f, g := newGmailFake(t, fakegmail.Options{})
	f.Deliver(alice, trickyID)
	f.Deliver(bob, trickyID)
	findOne(t, g, alice, trickyID)
	findOne(t, g, bob, trickyID)
	findOne(t, g, alice, trickyID)
	if a, b := f.Count("token:"+alice), f.Count("token:"+bob); a != 1 || b != 1 {
		t.Fatalf("tokens issued: alice %d, bob %d; want one each, cached", a, b)
	}

	// The fake binds a token to its user: alice's token does not open bob's mailbox.
	conf := &jwt.Config{
		Email:      f.ClientEmail(),
		PrivateKey: privateKeyOf(t, f.Credentials()),
		Subject:    alice,
		Scopes:     []string{gmailModifyScope},
		TokenURL:   f.TokenURL(),
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, f.Client())
	client := conf.Client(ctx)
	for user, want := range map[string]int{alice: http.StatusOK, "me": http.StatusOK, bob: http.StatusForbidden} {
		resp, err := client.Get(f.URL() + "/gmail/v1/users/" + user + "/labels")
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("alice's token on %s: HTTP %d, want %d", user, resp.StatusCode, want)
		}
	}
}

func TestGmailHardDeleteScope(t *testing.T) {
	// Without the full mail scope in the delegation, everything but hard delete works, and
	// hard delete fails permanently.
	f, g := newGmailFake(t, fakegmail.Options{Scopes: []string{fakegmail.ScopeModify}})
	id := f.Deliver(alice, trickyID)
	c := findOne(t, g, alice, trickyID)
	apply(t, g, alice, c, Step{Action: Delete})
	_, err := g.Apply(context.Background(), alice, c, Step{Action: HardDelete})
	if err == nil || !strings.Contains(err.Error(), "unauthorized_client") || errors.Is(err, ErrTransient) {
		t.Fatalf("err = %v, want a permanent unauthorized_client", err)
	}
	if _, ok := f.Labels(alice, id); !ok {
		t.Fatal("message deleted without the scope")
	}
}

func TestGmailUnknownUser(t *testing.T) {
	_, g := newGmailFake(t, fakegmail.Options{})
	_, err := g.Find(context.Background(), "mallory@elsewhere.example", trickyID)
	if err == nil || !strings.Contains(err.Error(), "unauthorized_client") {
		t.Fatalf("err = %v, want unauthorized_client", err)
	}
}

func TestGmailMembers(t *testing.T) {
	_, g := newGmailFake(t, fakegmail.Options{})
	m, isGroup, err := g.Members(context.Background(), "all@example.com")
	if err != nil || isGroup || m != nil {
		t.Fatalf("Members = %v, %v, %v; want nil, false, nil", m, isGroup, err)
	}
}

func privateKeyOf(t *testing.T, creds []byte) []byte {
	t.Helper()
	var k struct {
		PrivateKey string `json:"private_key"`
	}
	if err := json.Unmarshal(creds, &k); err != nil {
		t.Fatal(err)
	}
	return []byte(k.PrivateKey)
}

func TestGmailConcurrentQuarantine(t *testing.T) {
	// Steps on one mailbox race to create the label; one label results and every copy gets it.
	f, g := newGmailFake(t, fakegmail.Options{})
	var ids []string
	for range 8 {
		ids = append(ids, f.Deliver(alice, trickyID))
	}
	errs := make(chan error, len(ids))
	for _, id := range ids {
		go func() {
			_, err := g.Apply(context.Background(), alice, Copy{Ref: id}, Step{Action: Quarantine})
			errs <- err
		}()
	}
	for range ids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	q := f.LabelID(alice, "Quarantine")
	for _, id := range ids {
		if l := labelsOf(t, f, alice, id); !slices.Equal(l, []string{q}) {
			t.Fatalf("labels of %s = %v, want [%s]", id, l, q)
		}
	}
}
