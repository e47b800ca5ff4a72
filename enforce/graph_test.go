package enforce

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/journalsensor/sensor/internal/fakegraph"
)

const mb = "alice@contoso.test"

func newFake(t *testing.T, opts fakegraph.Options) *fakegraph.Server {
	t.Helper()
	if opts.ClientSecret == "" && opts.Certificate == nil {
		opts.ClientSecret = "s3cret"
	}
	return fakegraph.New(t, opts)
}

func newGraph(t *testing.T, f *fakegraph.Server, edit ...func(*GraphConfig)) *Graph {
	t.Helper()
	cfg := GraphConfig{Tenant: "tenant", ClientID: "client", ClientSecret: "s3cret",
		LoginURL: f.URL(), GraphURL: f.URL(), HTTPClient: f.Client()}
	for _, e := range edit {
		e(&cfg)
	}
	g, err := NewGraph(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func rsaCert(t *testing.T) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sensor app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func onlyCopy(t *testing.T, g *Graph, mailbox, mid string) Copy {
	t.Helper()
	copies, err := g.Find(context.Background(), mailbox, mid)
	if err != nil {
		t.Fatal(err)
	}
	if len(copies) != 1 {
		t.Fatalf("found %d copies of %s, want 1", len(copies), mid)
	}
	return copies[0]
}

func msgByMID(t *testing.T, f *fakegraph.Server, mailbox, mid string) fakegraph.Message {
	t.Helper()
	for _, m := range f.Messages(mailbox) {
		if m.InternetMessageID == mid {
			return m
		}
	}
	t.Fatalf("no %s in %s", mid, mailbox)
	return fakegraph.Message{}
}

// A '+' sent unencoded reads as a space, and an unescaped quote ends the OData literal; both
// gave empty results against real Graph.
func TestGraphFindPlusAndQuoteAcrossPages(t *testing.T) {
	f := newFake(t, fakegraph.Options{PageSize: 2})
	mid := "<a+b'c@host.test>"
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: mid})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: mid, ParentFolderID: "junkemail"})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: mid, ParentFolderID: "deleteditems"})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<a b'c@host.test>"})
	g := newGraph(t, f)

	copies, err := g.Find(context.Background(), mb, mid)
	if err != nil {
		t.Fatal(err)
	}
	var folders []string
	for _, c := range copies {
		folders = append(folders, c.Folder)
	}
	want := []string{f.FolderID(mb, "inbox"), f.FolderID(mb, "junkemail"), f.FolderID(mb, "deleteditems")}
	if !slices.Equal(folders, want) {
		t.Fatalf("copies in %v, want %v (all three pages' worth, not the one with a space)", folders, want)
	}

	none, err := g.Find(context.Background(), mb, "<nobody@host.test>")
	if err != nil || len(none) != 0 {
		t.Fatalf("absent message: %v, %v; want none and no error", none, err)
	}
}

func TestGraphLateDeliveryIsEmptyNotError(t *testing.T) {
	f := newFake(t, fakegraph.Options{})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<late@x>"})
	f.Hold(mb, "<late@x>")
	g := newGraph(t, f)
	copies, err := g.Find(context.Background(), mb, "<late@x>")
	if err != nil || len(copies) != 0 {
		t.Fatalf("before delivery: %v, %v", copies, err)
	}
	f.Deliver(mb, "<late@x>")
	onlyCopy(t, g, mb, "<late@x>")
}

func TestGraphActionsDoneThenAlready(t *testing.T) {
	for _, c := range []struct {
		step  Step
		check func(t *testing.T, f *fakegraph.Server, m fakegraph.Message)
	}{
		{Step{Action: Quarantine}, func(t *testing.T, f *fakegraph.Server, m fakegraph.Message) {
			if m.ParentFolderID != f.FolderID(mb, "Quarantine") {
				t.Errorf("folder %s, want the Quarantine folder", m.ParentFolderID)
			}
		}},
		{Step{Action: Delete}, func(t *testing.T, f *fakegraph.Server, m fakegraph.Message) {
			if m.ParentFolderID != f.FolderID(mb, "deleteditems") {
				t.Errorf("folder %s, want Deleted Items", m.ParentFolderID)
			}
		}},
		{Step{Action: Tag, Tag: "Phish"}, func(t *testing.T, f *fakegraph.Server, m fakegraph.Message) {
			if !slices.Equal(m.Categories, []string{"Red", "Phish"}) {
				t.Errorf("categories %v, want the old one kept and Phish added", m.Categories)
			}
		}},
	} {
		t.Run(string(c.step.Action), func(t *testing.T) {
			f := newFake(t, fakegraph.Options{})
			f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m@x>", Categories: []string{"Red"}})
			g := newGraph(t, f)
			cp := onlyCopy(t, g, mb, "<m@x>")
			inbox := f.FolderID(mb, "inbox")

			res, err := g.Apply(context.Background(), mb, cp, c.step)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != Done || res.From != inbox || res.Ref != cp.Ref {
				t.Fatalf("first run %+v, want done from the inbox with the same immutable ref", res)
			}
			after := msgByMID(t, f, mb, "<m@x>")
			c.check(t, f, after)

			res, err = g.Apply(context.Background(), mb, cp, c.step)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != Already {
				t.Fatalf("second run %+v, want already", res)
			}
			if again := msgByMID(t, f, mb, "<m@x>"); again.ParentFolderID != after.ParentFolderID ||
				!slices.Equal(again.Categories, after.Categories) {
				t.Fatalf("second run changed the copy: %+v, was %+v", again, after)
			}
		})
	}
}

// A purged copy cannot be read back: the second run says ErrGone, and a re-find is empty.
func TestGraphHardDeleteThenGone(t *testing.T) {
	f := newFake(t, fakegraph.Options{})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m@x>"})
	g := newGraph(t, f)
	cp := onlyCopy(t, g, mb, "<m@x>")
	res, err := g.Apply(context.Background(), mb, cp, Step{Action: HardDelete})
	if err != nil || res.Status != Done {
		t.Fatalf("hard delete: %+v, %v", res, err)
	}
	if len(f.Messages(mb)) != 0 || len(f.Purged(mb)) != 1 {
		t.Fatalf("after hard delete: %d left, %d purged", len(f.Messages(mb)), len(f.Purged(mb)))
	}
	_, err = g.Apply(context.Background(), mb, cp, Step{Action: HardDelete})
	if !errors.Is(err, ErrGone) {
		t.Fatalf("second hard delete: %v, want ErrGone", err)
	}
	if copies, err := g.Find(context.Background(), mb, "<m@x>"); err != nil || len(copies) != 0 {
		t.Fatalf("re-find after purge: %v, %v", copies, err)
	}
}

func TestGraphObserveChangesNothing(t *testing.T) {
	f := newFake(t, fakegraph.Options{})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m@x>", Categories: []string{"Red"}})
	g := newGraph(t, f)
	cp := onlyCopy(t, g, mb, "<m@x>")
	before := msgByMID(t, f, mb, "<m@x>")
	folders := len(f.Folders(mb))
	for _, s := range []Step{
		{Action: Quarantine}, {Action: Delete}, {Action: HardDelete}, {Action: Tag, Tag: "Phish"},
		{Action: Restore, From: "junkemail"},
	} {
		s.Observe = true
		res, err := g.Apply(context.Background(), mb, cp, s)
		if err != nil {
			t.Fatalf("%s: %v", s.Action, err)
		}
		if res.Status != Done {
			t.Errorf("%s observed: %s, want done (what it would do)", s.Action, res.Status)
		}
	}
	res, err := g.Apply(context.Background(), mb, cp, Step{Action: Tag, Tag: "Red", Observe: true})
	if err != nil || res.Status != Already {
		t.Errorf("observing a tag already there: %+v, %v; want already", res, err)
	}
	after := msgByMID(t, f, mb, "<m@x>")
	if after.ID != before.ID || after.ParentFolderID != before.ParentFolderID || !slices.Equal(after.Categories, before.Categories) {
		t.Fatalf("observing changed the copy: %+v, was %+v", after, before)
	}
	if len(f.Folders(mb)) != folders || len(f.Purged(mb)) != 0 {
		t.Fatal("observing made a folder or purged a copy")
	}
}

func TestGraphRestoreReturnsToOriginalFolder(t *testing.T) {
	for _, undo := range []Action{Quarantine, Delete} {
		t.Run(string(undo), func(t *testing.T) {
			f := newFake(t, fakegraph.Options{})
			f.AddMailbox(mb)
			f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m@x>", ParentFolderID: "junkemail"})
			g := newGraph(t, f)
			cp := onlyCopy(t, g, mb, "<m@x>")
			res, err := g.Apply(context.Background(), mb, cp, Step{Action: undo})
			if err != nil {
				t.Fatal(err)
			}
			if res.From != f.FolderID(mb, "junkemail") {
				t.Fatalf("From %s, want the Junk folder's id", res.From)
			}
			restore := Step{Action: Restore, From: res.From}
			if r, err := g.Apply(context.Background(), mb, Copy{Ref: res.Ref}, restore); err != nil || r.Status != Done {
				t.Fatalf("restore: %+v, %v", r, err)
			}
			if got := msgByMID(t, f, mb, "<m@x>").ParentFolderID; got != res.From {
				t.Fatalf("restored to %s, want %s", got, res.From)
			}
			if r, err := g.Apply(context.Background(), mb, Copy{Ref: res.Ref}, restore); err != nil || r.Status != Already {
				t.Fatalf("second restore: %+v, %v", r, err)
			}
			// A well-known name names the same folder: no second move.
			if r, err := g.Apply(context.Background(), mb, Copy{Ref: res.Ref}, Step{Action: Restore, From: "junkemail"}); err != nil || r.Status != Already {
				t.Fatalf("restore to the well-known name: %+v, %v", r, err)
			}
		})
	}
}

func TestGraphQuarantineFolderCreatedOnce(t *testing.T) {
	f := newFake(t, fakegraph.Options{Latency: 5 * time.Millisecond})
	for i := range 6 {
		f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m" + string(rune('0'+i)) + "@x>"})
	}
	g := newGraph(t, f)
	var wg sync.WaitGroup
	errs := make(chan error, 6)
	for i := range 6 {
		cp := onlyCopy(t, g, mb, "<m"+string(rune('0'+i))+"@x>")
		wg.Go(func() {
			_, err := g.Apply(context.Background(), mb, cp, Step{Action: Quarantine})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A second client, with a cold cache, finds the folder instead of making another.
	g2 := newGraph(t, f)
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<late@x>"})
	if _, err := g2.Apply(context.Background(), mb, onlyCopy(t, g2, mb, "<late@x>"), Step{Action: Quarantine}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fo := range f.Folders(mb) {
		if fo.DisplayName == "Quarantine" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d Quarantine folders, want 1", n)
	}
	for _, m := range f.Messages(mb) {
		if m.ParentFolderID != f.FolderID(mb, "Quarantine") {
			t.Fatalf("%s not quarantined", m.InternetMessageID)
		}
	}
}

func TestGraphThrottledKeepsRetryAfter(t *testing.T) {
	for _, c := range []struct {
		header string
		want   time.Duration
	}{{"17", 17 * time.Second}, {"0", 0}, {"", time.Second}} {
		f := newFake(t, fakegraph.Options{})
		f.AddMailbox(mb)
		f.Throttle(mb, 1, c.header)
		g := newGraph(t, f)
		_, err := g.Find(context.Background(), mb, "<m@x>")
		var te *ThrottledError
		if !errors.As(err, &te) || te.RetryAfter != c.want {
			t.Fatalf("Retry-After %q: %v, want ThrottledError after %v", c.header, err, c.want)
		}
		if _, err := g.Find(context.Background(), mb, "<m@x>"); err != nil {
			t.Fatalf("after the throttle: %v", err)
		}
	}
}

func TestGraphTransientAndGone(t *testing.T) {
	f := newFake(t, fakegraph.Options{})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m@x>"})
	g := newGraph(t, f)
	cp := onlyCopy(t, g, mb, "<m@x>")

	f.Fail503(1)
	_, err := g.Apply(context.Background(), mb, cp, Step{Action: Delete})
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("503: %v, want ErrTransient", err)
	}
	_, err = g.Apply(context.Background(), mb, Copy{Ref: "msg-nope"}, Step{Action: Delete})
	if !errors.Is(err, ErrGone) || errors.Is(err, ErrTransient) {
		t.Fatalf("404: %v, want ErrGone and not transient", err)
	}

	dead := newGraph(t, f, func(c *GraphConfig) { c.GraphURL = "https://127.0.0.1:1" })
	_, err = dead.Find(context.Background(), mb, "<m@x>")
	if !errors.Is(err, ErrTransient) {
		t.Fatalf("network error: %v, want ErrTransient", err)
	}
}

func TestGraphAtMostFourInFlight(t *testing.T) {
	f := newFake(t, fakegraph.Options{Latency: 20 * time.Millisecond})
	var copies []Copy
	g := newGraph(t, f)
	for i := range 20 {
		mid := "<m" + strings.Repeat("x", i) + "@x>"
		f.AddMessage(mb, fakegraph.Message{InternetMessageID: mid})
		copies = append(copies, onlyCopy(t, g, mb, mid))
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(copies))
	for _, cp := range copies {
		wg.Go(func() {
			_, err := g.Apply(context.Background(), mb, cp, Step{Action: Tag, Tag: "Phish"})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.MaxInFlight(); got > 4 || got < 2 {
		t.Fatalf("max in flight %d, want 2..4 (concurrent, but within Outlook's 4)", got)
	}
}

func TestGraphCertificateAssertion(t *testing.T) {
	cert, key := rsaCert(t)
	f := newFake(t, fakegraph.Options{Certificate: cert})
	f.AddMessage(mb, fakegraph.Message{InternetMessageID: "<m@x>"})
	withCert := func(c *x509.Certificate, k *rsa.PrivateKey) func(*GraphConfig) {
		return func(cfg *GraphConfig) { cfg.ClientSecret, cfg.Certificate, cfg.Key = "", c, k }
	}

	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g := newGraph(t, f, withCert(cert, key), func(c *GraphConfig) { c.Logger = logger })
	for range 3 {
		onlyCopy(t, g, mb, "<m@x>")
	}
	f.Fail503(1)
	_, err503 := g.Find(context.Background(), mb, "<m@x>")
	// Every JWT starts with the base64 of `{"`.
	if strings.Contains(logs.String(), "eyJ") || strings.Contains(fmt.Sprint(err503), "eyJ") {
		t.Fatalf("a token reached the log or an error: %s %v", logs.String(), err503)
	}
	if !strings.Contains(logs.String(), "graph request") {
		t.Fatal("debug log did not see the requests")
	}
	if n := f.TokenRequests(); n != 1 {
		t.Fatalf("%d token requests for three calls, want the token reused", n)
	}

	otherCert, otherKey := rsaCert(t)
	bad := newGraph(t, f, withCert(otherCert, otherKey))
	_, err := bad.Find(context.Background(), mb, "<m@x>")
	if err == nil || errors.Is(err, ErrTransient) || !strings.Contains(err.Error(), "invalid_client") {
		t.Fatalf("unregistered certificate: %v, want a permanent invalid_client", err)
	}

	if _, err := NewGraph(GraphConfig{Tenant: "t", ClientID: "c", Certificate: cert, Key: otherKey}); err == nil {
		t.Fatal("a key that is not the certificate's was accepted")
	}
}

func TestGraphWrongSecretIsPermanent(t *testing.T) {
	f := newFake(t, fakegraph.Options{})
	f.AddMailbox(mb)
	g := newGraph(t, f, func(c *GraphConfig) { c.ClientSecret = "wrong" })
	_, err := g.Find(context.Background(), mb, "<m@x>")
	if err == nil || errors.Is(err, ErrTransient) {
		t.Fatalf("wrong secret: %v, want a permanent error", err)
	}
}

func TestGraphMembersNested(t *testing.T) {
	f := newFake(t, fakegraph.Options{PageSize: 2})
	f.AddGroup("all@contoso.test", "a@contoso.test", "team@contoso.test", "b@contoso.test")
	f.AddGroup("team@contoso.test", "b@contoso.test", "c@contoso.test", "deep@contoso.test")
	f.AddGroup("deep@contoso.test", "d@contoso.test")
	g := newGraph(t, f)

	members, isGroup, err := g.Members(context.Background(), "all@contoso.test")
	if err != nil || !isGroup {
		t.Fatalf("group: %v, %v", isGroup, err)
	}
	slices.Sort(members)
	want := []string{"a@contoso.test", "b@contoso.test", "c@contoso.test", "d@contoso.test"}
	if !slices.Equal(members, want) {
		t.Fatalf("members %v, want %v", members, want)
	}

	members, isGroup, err = g.Members(context.Background(), "a@contoso.test")
	if err != nil || isGroup || members != nil {
		t.Fatalf("a mailbox: %v, %v, %v; want not a group", members, isGroup, err)
	}
}

func TestNewGraphConfig(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  GraphConfig
		want string
	}{
		{"no credential", GraphConfig{Tenant: "t", ClientID: "c"}, "no credential"},
		{"plain http", GraphConfig{Tenant: "t", ClientID: "c", ClientSecret: "s", GraphURL: "http://graph.test"}, "not an https url"},
		{"no tenant", GraphConfig{ClientID: "c", ClientSecret: "s"}, "tenant is empty"},
	} {
		if _, err := NewGraph(c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	g, err := NewGraph(GraphConfig{Tenant: "t", ClientID: "c", ClientSecret: "s"})
	if err != nil || g.Name() != "graph" || g.quarantine != "Quarantine" {
		t.Fatalf("defaults: %v, %v", g, err)
	}
}

func TestPercentEncode(t *testing.T) {
	if got := odataQuery("$filter", "internetMessageId eq "+odataString("<a+b'c d@x>")); got != "$filter=internetMessageId%20eq%20%27%3Ca%2Bb%27%27c%20d%40x%3E%27" {
		t.Fatalf("got %s", got)
	}
}
