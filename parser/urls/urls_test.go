package urls

import (
	"fmt"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

func TestAddNormalises(t *testing.T) {
	for _, tc := range []struct {
		in, url, host string
	}{
		{"  <http://Example.COM/A>  ", "http://example.com/A", "example.com"},
		{`"https://x.example/q?B=C"`, "https://x.example/q?B=C", "x.example"},
		{"'<ftp://F.example/pub>'", "ftp://f.example/pub", "f.example"},
		{"//proto.example/p", "https://proto.example/p", "proto.example"},
		{"HTTP://user:Pass@Host.Example:8080/p", "http://user:Pass@host.example:8080/p", "host.example"},
		{"http://a@b@Evil.example/", "http://a@b@evil.example/", "evil.example"},
		{`http://evil.example\@bank.example/`, `http://evil.example\@bank.example/`, "evil.example"},
		{`HTTP:\\Evil.Example\path`, `http://evil.example\path`, "evil.example"},
		{"http:evil.example/x", "http://evil.example/x", "evil.example"},
		{"http:///three.example/", "http://three.example/", "three.example"},
		{"ht\r\ntp://folded.exa\tmple/a\nb", "http://folded.example/ab", "folded.example"},
		{"http://%65vil.EXAMPLE/%41", "http://evil.example/%41", "evil.example"},
		{"http://%2Fslash.Example/", "http://%2Fslash.example/", "%2Fslash.example"},
		{"http://example.com:80/", "http://example.com/", "example.com"},
		{"http://example.com:0080/", "http://example.com/", "example.com"},
		{"http://example.com:443/", "http://example.com:443/", "example.com"},
		{"https://example.com:443", "https://example.com", "example.com"},
		{"https://example.com:80/", "https://example.com:80/", "example.com"},
		{"ftp://example.com:21/f", "ftp://example.com/f", "example.com"},
		{"http://example.com:/x", "http://example.com/x", "example.com"},
		{"http://example.com:8o/x", "http://example.com:8o/x", "example.com"},
		{"http://[2001:DB8::1]:80/", "http://[2001:db8::1]/", "2001:db8::1"},
		{"http://[2001:db8::1]:8080/", "http://[2001:db8::1]:8080/", "2001:db8::1"},
		{"http://example.com/#", "http://example.com/", "example.com"},
		{"http://example.com/?#", "http://example.com/?", "example.com"},
		{"http://example.com/#a#", "http://example.com/#a#", "example.com"},
		{"http://example.com/a \x05#", "http://example.com/a", "example.com"},
		{"http://example.com/b?z=1&a=2#Frag", "http://example.com/b?z=1&a=2#Frag", "example.com"},
		{"http://bücher.example/", "http://xn--bcher-kva.example/", "xn--bcher-kva.example"},
		{"http://BÜCHER.example/", "http://xn--bcher-kva.example/", "xn--bcher-kva.example"},
		{"http://bücher。example/", "http://xn--bcher-kva.example/", "xn--bcher-kva.example"},
		{"http://under_score.example/", "http://under_score.example/", "under_score.example"},
		// A label mixing left-to-right and right-to-left letters breaks the bidi rule: kept
		// lower-cased as written.
		{"http://Aא.example/", "http://aא.example/", "aא.example"},
		{"http://ex\xffample.com/\xfe", "http://ex%FFample.com/%FE", "ex%FFample.com"},
		{"http://?q=1", "http://?q=1", ""},
		{"http://:/0", "http://:/0", ""},
		{"http://:80/0", "http://:80/0", ""},
		{"http://example.com", "http://example.com", "example.com"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			c := NewCollector(Options{})
			c.Add(tc.in, api.URLSourceText)
			want := []string{fmt.Sprintf("%s host=%s count=1 sources=text", tc.url, tc.host)}
			sameList(t, "urls", describe(c.URLs()), want)
		})
	}
}

func TestAddRejects(t *testing.T) {
	for _, in := range []string{
		"", "   ", "<>", "http://", "http://#", "http:#", "http:\x05#", "https:", "HTTP:///", "//", "/relative", "relative/path",
		"www.example.com", "example.com:8080/x", "mailto:", "mailto:?subject=x", "mailto:postmaster", "cid:x@y", "data:text/html,hi",
		"javascript:alert(1)", "tel:+1555", "file:///etc/passwd", "gopher://example.com/",
		"hxxp://obfuscated.example/", ":http://x.example/",
	} {
		c := NewCollector(Options{})
		c.Add(in, api.URLSourceText)
		if us := c.URLs(); len(us) != 0 {
			t.Errorf("Add(%q) recorded %q", in, urlList(us))
		}
	}
}

func TestDedupeAcrossScans(t *testing.T) {
	c := NewCollector(Options{})
	scanText(t, c, "first http://x.example/ then HTTP://X.EXAMPLE:80/ and http://y.example/a")
	scanHTML(t, c, `<a href="http://x.example/">http://z.example/</a><img src="http://y.example/a">`)
	if err := c.ScanHTML(strings.NewReader(`<a href="http://x.example/">`), api.URLSourceAttachment); err != nil {
		t.Fatal(err)
	}
	if err := c.ScanText(strings.NewReader(`http://z.example/`), api.URLSourceAttachment); err != nil {
		t.Fatal(err)
	}
	c.Add("<http://x.example/>", api.URLSourceText)
	sameList(t, "urls", describe(c.URLs()), []string{
		"http://x.example/ host=x.example count=5 sources=text,html,attachment",
		"http://y.example/a host=y.example count=2 sources=text,html",
		"http://z.example/ host=z.example count=2 sources=html,attachment",
	})
}

func TestURLsIsASnapshot(t *testing.T) {
	c := NewCollector(Options{})
	c.Add("http://a.example/", api.URLSourceText)
	got := c.URLs()
	c.Add("http://a.example/", api.URLSourceHTML)
	c.Add("http://b.example/", api.URLSourceHTML)
	sameList(t, "earlier snapshot", describe(got), []string{"http://a.example/ host=a.example count=1 sources=text"})
	got[0].Sources[0] = "changed"
	sameList(t, "collector", describe(c.URLs()), []string{
		"http://a.example/ host=a.example count=2 sources=text,html",
		"http://b.example/ host=b.example count=1 sources=html",
	})
}

func TestMaxURLs(t *testing.T) {
	c := NewCollector(Options{MaxURLs: 2})
	scanText(t, c, "http://a.example/ http://b.example/ http://c.example/ http://a.example/ http://d.example/")
	// Links already kept still count; new ones are dropped.
	sameList(t, "urls", describe(c.URLs()), []string{
		"http://a.example/ host=a.example count=2 sources=text",
		"http://b.example/ host=b.example count=1 sources=text",
	})
	sameList(t, "limits", c.LimitsHit(), []string{LimitURLs})
}

func TestMaxURLsUnlimited(t *testing.T) {
	c := NewCollector(Options{MaxURLs: -1})
	var b strings.Builder
	for i := range defaultMaxURLs + 5 {
		fmt.Fprintf(&b, "http://h%d.example/ ", i)
	}
	scanText(t, c, b.String())
	if n := len(c.URLs()); n != defaultMaxURLs+5 {
		t.Errorf("%d URLs, want %d", n, defaultMaxURLs+5)
	}
	if l := c.LimitsHit(); len(l) != 0 {
		t.Errorf("limits hit: %q", l)
	}
}

func TestMaxURLLengthAfterNormalising(t *testing.T) {
	// Escaping and IDNA make a URL longer than it was written; the cut applies to the result
	// and never splits an escape.
	c := NewCollector(Options{MaxURLLength: 24})
	c.Add("http://example.com/\xff\xff\xff", api.URLSourceText)
	c.Add("http://bücher.example/abc", api.URLSourceText)
	sameList(t, "urls", describe(c.URLs()), []string{
		"http://example.com/%FF host=example.com count=1 sources=text",
		"http://xn--bcher-kva.exa host=xn--bcher-kva.exa count=1 sources=text",
	})
	sameList(t, "limits", c.LimitsHit(), []string{LimitURLLength})
}

func TestLimitsReportedOnceInOrder(t *testing.T) {
	c := NewCollector(Options{MaxURLs: 1, MaxURLLength: 20})
	scanText(t, c, "http://long.example/aaaaaaaaaa http://b.example/ http://long2.example/bbbbbbbbb http://c.example/")
	sameList(t, "limits", c.LimitsHit(), []string{LimitURLLength, LimitURLs})
}

func TestOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		in, want Options
	}{
		{Options{}, Options{MaxURLs: 10000, MaxURLLength: 8192, MaxHTMLToken: 1 << 20, MaxUnwrapDepth: 8}},
		{Options{MaxURLs: 5, MaxURLLength: 100, MaxHTMLToken: 5000, MaxUnwrapDepth: 2},
			Options{MaxURLs: 5, MaxURLLength: 100, MaxHTMLToken: 5000, MaxUnwrapDepth: 2}},
		{Options{MaxHTMLToken: 10}, Options{MaxURLs: 10000, MaxURLLength: 8192, MaxHTMLToken: 1024, MaxUnwrapDepth: 8}},
		{Options{MaxURLs: -1, MaxHTMLToken: -1, MaxUnwrapDepth: -1},
			Options{MaxURLs: -1, MaxURLLength: 8192, MaxHTMLToken: 0, MaxUnwrapDepth: -1}},
	} {
		if got := tc.in.withDefaults(); got != tc.want {
			t.Errorf("%+v.withDefaults() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

// TestNormaliseIsStable holds the inputs the fuzzer found where a second normalisation
// changed a URL; the unwrapper will re-normalise what it unwraps, so a drift would split one
// link into two records.
func TestNormaliseIsStable(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"escaped invalid host byte keeps its case", "http://\xd20", "http://%D20"},
		{"empty host keeps the colon", "http://:/0", "http://:/0"},
		{"escapes next to non-ASCII skip IDNA", "http://\xc6ƀ\x80", "http://%C6ƀ%80"},
		{"escape before a multi-byte character", "http://%0é", "http://%0é"},
		{"escaped host with non-ASCII", "0http://\xf40\u20f50", "http://%F40\u20f50"},
		{"IDNA refuses the upper-case form only", "http://Ӏ", "http://xn--s5a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCollector(Options{})
			scanText(t, c, tc.in)
			sameList(t, "first pass", urlList(c.URLs()), []string{tc.want})
			again := NewCollector(Options{})
			again.Add(tc.want, api.URLSourceText)
			sameList(t, "second pass", urlList(again.URLs()), []string{tc.want})
		})
	}
}
