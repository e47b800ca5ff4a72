package urls

import (
	"strings"
	"testing"
	"testing/iotest"

	"github.com/journalsensor/sensor/api"
)

var htmlCases = []struct {
	name string
	in   string
	want []string
}{
	{"href with entities", `<a href="http://example.com/?a=1&amp;b=2&#38;c=3">x</a>`,
		[]string{"http://example.com/?a=1&b=2&c=3"}},
	{"uppercase tag, attribute, scheme and host", `<A HREF="HTTP://EXAMPLE.COM/Up">x</A>`,
		[]string{"http://example.com/Up"}},
	{"unquoted and spaced values", `<a href= http://a.example/x >x</a><img src="  http://b.example/i.png ">`,
		[]string{"http://a.example/x", "http://b.example/i.png"}},
	{"protocol-relative", `<img src="//cdn.example/i.png">`, []string{"https://cdn.example/i.png"}},
	{"skipped schemes and relative links", `<img src="cid:part1@example.com"><img src="data:image/png;base64,AAAA">` +
		`<a href="javascript:alert(1)">j</a><a href="tel:+15551234">t</a>` +
		`<a href="/relative/path">r</a><a href="page.html">p</a><a href="#top">f</a>` +
		`<a href="www.example.com">w</a><a href="">e</a>`, nil},
	{"all URL attributes", `<form action="http://form.example/post"><button formaction="https://fa.example/">b</button></form>` +
		`<table background="http://bg.example/t.png"><video poster="http://poster.example/p.jpg" src="http://video.example/v.mp4">` +
		`<object data="http://object.example/o.swf"></object><svg><a xlink:href="http://svg.example/">s</a></svg>`,
		[]string{"http://form.example/post", "https://fa.example/", "http://bg.example/t.png",
			"http://poster.example/p.jpg", "http://video.example/v.mp4", "http://object.example/o.swf",
			"http://svg.example/"}},
	// A <base href> makes the relative links after it whole, as HTML-rendering clients
	// resolve them; the first <base> counts, and a base that is no http(s) URL is ignored.
	{"base href resolves relative links", `<base href="https://base.example/dir/"><a href="page.html">p</a>` +
		`<img src="/img/i.png"><form action="../post"></form><img srcset="a.png 1x, b.png 2x">` +
		`<a href="#top">f</a><a href="mailto:x@y.example">m</a><base href="https://second.example/"><a href="z">z</a>`,
		[]string{"https://base.example/dir/", "https://base.example/dir/page.html", "https://base.example/img/i.png",
			"https://base.example/post", "https://base.example/dir/a.png", "https://base.example/dir/b.png",
			"mailto:x@y.example", "https://second.example/", "https://base.example/dir/z"}},
	// Backslashes read as slashes, as browsers read them: these are other hosts, not paths.
	{"base href and backslashes", `<base href="https://www.base.example/"><a href="\\evil3.example/a">a</a>` +
		`<a href="/\evil4.example/b">b</a><img src="\/evil5.example/c">`,
		[]string{"https://www.base.example/", "https://evil3.example/a", "https://evil4.example/b", "https://evil5.example/c"}},
	{"base that is no web URL", `<base href="javascript:x"><a href="page.html">p</a><base href="/rel/"><a href="q">q</a>`, nil},
	{"data attribute only on object", `<div data="http://div.example/"></div>`, nil},
	// As browsers read srcset, a comma inside a run of non-spaces belongs to the URL, and a
	// comma inside a descriptor's parentheses does not end the candidate.
	{"srcset", `<img srcset="http://a.example/1.png 1x, //b.example/2.png 2x,http://c.example/3,4.png 3x, ` +
		`http://d.example/5.png,http://e.example/6.png, http://f.example/7.png (a,b) 5w,http://g.example/8.png">`,
		[]string{"http://a.example/1.png", "https://b.example/2.png", "http://c.example/3,4.png",
			"http://d.example/5.png,http://e.example/6.png", "http://f.example/7.png", "http://g.example/8.png"}},
	{"meta refresh", `<meta http-equiv="Refresh" content="0; URL='http://r.example/go'">`,
		[]string{"http://r.example/go"}},
	{"meta refresh content first", `<META CONTENT="5;url=http://r2.example/" HTTP-EQUIV="refresh">`,
		[]string{"http://r2.example/"}},
	{"meta refresh unquoted with spaces", `<meta http-equiv="refresh" content=" 3 , url = https://r3.example/x ">`,
		[]string{"https://r3.example/x"}},
	{"other meta content ignored", `<meta name="twitter:image" content="http://meta.example/i.png">`, nil},
	{"style element", `<style>body{background:url(http://a.example/bg.png)}` +
		`.x{background-image:URL( "//b.example/b.png" )} .y{background:url('http://c.example/c.png')}` +
		`@import "http://d.example/d.css"; .z{background:url(rel.png)}</style>`,
		[]string{"http://a.example/bg.png", "https://b.example/b.png", "http://c.example/c.png",
			"http://d.example/d.css"}},
	{"style attribute", `<div style="background: url(&quot;http://e.example/e.png&quot;); color: red">x</div>`,
		[]string{"http://e.example/e.png"}},
	{"text tokens", `<p>Visit http://text.example/ now, or <b>https://bold.example/x</b>.</p>`,
		[]string{"http://text.example/", "https://bold.example/x"}},
	{"link text differs from href", `<a href="http://evil.example/">https://bank.example/login</a>`,
		[]string{"http://evil.example/", "https://bank.example/login"}},
	{"entities in text", `<p>http://e.example/?a=1&amp;b=2&nbsp;next</p>`,
		[]string{"http://e.example/?a=1&b=2"}},
	{"tag ends a text URL", `<p>http://a.example/x<br>y</p>`, []string{"http://a.example/x"}},
	{"Outlook conditional comment", `<!--[if mso]><v:roundrect href="http://mso.example/">x</v:roundrect><![endif]-->`,
		[]string{"http://mso.example/"}},
	{"noscript is markup in mail", `<noscript><a href="//ns.example/">x</a></noscript>`,
		[]string{"https://ns.example/"}},
	{"script text scanned", `<script>location="http://js.example/go"</script>`, []string{"http://js.example/go"}},
	{"tab inside scheme", `<a href="ht&#x09;tp://tab.example/">x</a>`, []string{"http://tab.example/"}},
	{"backslashes", `<a href="http:\\back.example\path">x</a>`, []string{`http://back.example\path`}},
	{"IDN and default port", `<a href="https://BÜCHER.example:443/k">x</a>`,
		[]string{"https://xn--bcher-kva.example/k"}},
	{"base href kept", `<base href="http://base.example/">`, []string{"http://base.example/"}},
	{"srcdoc scanned as text", `<iframe srcdoc="&lt;a href='http://srcdoc.example/'&gt;"></iframe>`,
		[]string{"http://srcdoc.example/"}},
	// Every kind of attribute is entity-decoded before it is read as a URL.
	{"entities in every URL attribute", `<img src="http://s.example/?a=1&amp;b=2">` +
		`<form action="http://f.example/?a=1&#38;b=2"></form><table background="http://b.example/?a&#x26;b">` +
		`<img srcset="http://ss.example/1.png?a=1&amp;b=2 1x, http://ss.example/2.png?c&amp;d 2x">` +
		`<meta http-equiv="refresh" content="0;url=http://r.example/?a=1&amp;b=2">` +
		`<div style="background:url(http://c.example/?a=1&amp;b=2)">x</div>` +
		`<video poster="http://p.example/?a&amp;b"></video><button formaction="http://fa.example/?a&amp;b">b</button>`,
		[]string{"http://s.example/?a=1&b=2", "http://f.example/?a=1&b=2", "http://b.example/?a&b",
			"http://ss.example/1.png?a=1&b=2", "http://ss.example/2.png?c&d", "http://r.example/?a=1&b=2",
			"http://c.example/?a=1&b=2", "http://p.example/?a&b", "http://fa.example/?a&b"}},
	{"entity-encoded scheme and host", `<a href="h&#116;tp&#58;//&#101;vil.example/">x</a>`,
		[]string{"http://evil.example/"}},
	{"entity-encoded meta refresh", `<meta http-equiv="refresh" content="0;url=&quot;http://q.example/&quot;">`,
		[]string{"http://q.example/"}},
	// A style element is raw text: HTML does not decode entities in it, and neither do we.
	{"style element keeps entities", `<style>div{background:url(http://st.example/?a&amp;b)}</style>`,
		[]string{"http://st.example/?a&amp;b"}},
	// A wrapped href is unwrapped after entity decoding; its data= is never mistaken for part
	// of url=.
	{"wrapped href", `<a href="https://nam.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example%2F&amp;data=05%7Cjane%40corp.example&amp;reserved=0">x</a>`,
		[]string{"http://a.example/"}},
	{"schemeless and de-fanged text", `<p>www.example.com and hxxp://evil[.]example/x</p><a href="www.example.org">w</a>`,
		[]string{"http://www.example.com", "http://evil.example/x"}},
	{"malformed markup", `<a href="http://unterminated.example/ <p <<>> </a`, nil},
	{"empty document", ``, nil},
}

func scanHTML(t *testing.T, c *Collector, in string) {
	t.Helper()
	if err := c.ScanHTML(strings.NewReader(in), api.URLSourceHTML); err != nil {
		t.Fatalf("ScanHTML: %v", err)
	}
}

func TestScanHTML(t *testing.T) {
	for _, tc := range htmlCases {
		want := tc.want
		if want == nil {
			want = []string{}
		}
		t.Run(tc.name, func(t *testing.T) {
			c := NewCollector(Options{})
			scanHTML(t, c, tc.in)
			sameList(t, "urls", urlList(c.URLs()), want)
			if l := c.LimitsHit(); len(l) != 0 {
				t.Errorf("limits hit: %q", l)
			}
		})
		t.Run(tc.name+"/one byte reader", func(t *testing.T) {
			c := NewCollector(Options{})
			if err := c.ScanHTML(iotest.OneByteReader(strings.NewReader(tc.in)), api.URLSourceHTML); err != nil {
				t.Fatal(err)
			}
			sameList(t, "urls", urlList(c.URLs()), want)
		})
	}
}

func TestScanHTMLGiantAttribute(t *testing.T) {
	// A 3 MiB inline image is ordinary in real mail; it must cost the buffer, not the links
	// before or after it.
	giant := strings.Repeat("QUJD", 3<<20/4)
	in := `<p>http://before.example/</p><img src="data:image/png;base64,` + giant + `" alt="x">` +
		`<a href="http://after.example/">after</a><p>text https://text-after.example/</p>`
	want := []string{"http://before.example/", "http://after.example/", "https://text-after.example/"}

	c := NewCollector(Options{})
	scanHTML(t, c, in)
	sameList(t, "urls", urlList(c.URLs()), want)
	sameList(t, "limits", c.LimitsHit(), []string{LimitHTMLToken})

	// The tokenizer's buffer holds different bytes at the moment of overflow when reads are
	// small; what is salvaged and restarted must not depend on that.
	c = NewCollector(Options{})
	r := &splitReader{data: in, pieces: repeat(1, 5000)}
	if err := c.ScanHTML(r, api.URLSourceHTML); err != nil {
		t.Fatal(err)
	}
	sameList(t, "urls after small reads", urlList(c.URLs()), want)
}

func TestScanHTMLGiantTagKeepsEarlierAttributes(t *testing.T) {
	in := `<a href="http://phish.example/login" title="` + strings.Repeat("x", 5000) + `">click</a>` +
		`<a href="http://later.example/">later</a>`
	c := NewCollector(Options{MaxHTMLToken: 2048})
	scanHTML(t, c, in)
	sameList(t, "urls", urlList(c.URLs()), []string{"http://phish.example/login", "http://later.example/"})
	sameList(t, "limits", c.LimitsHit(), []string{LimitHTMLToken})
}

func TestScanHTMLGiantText(t *testing.T) {
	in := "<p>" + strings.Repeat("words and words ", 1000) + "http://in-text.example/ " +
		strings.Repeat("more words ", 1000) + `</p><a href="http://link.example/">x</a>`
	c := NewCollector(Options{MaxHTMLToken: 4096})
	scanHTML(t, c, in)
	sameList(t, "urls", urlList(c.URLs()), []string{"http://in-text.example/", "http://link.example/"})
	sameList(t, "limits", c.LimitsHit(), []string{LimitHTMLToken})
}

func TestScanHTMLReadError(t *testing.T) {
	c := NewCollector(Options{})
	err := c.ScanHTML(&failingReader{data: `<a href="http://before.example/">x</a><p>`, err: errBroken},
		api.URLSourceHTML)
	if err != errBroken {
		t.Fatalf("err = %v, want %v", err, errBroken)
	}
	sameList(t, "urls", urlList(c.URLs()), []string{"http://before.example/"})
}

// TestScanHTMLReadErrorAfterRestart: the error comes back once with the data that fills the
// giant token; the restarted tokenizer must still report it.
func TestScanHTMLReadErrorAfterRestart(t *testing.T) {
	c := NewCollector(Options{MaxHTMLToken: 1024})
	r := &onceErrReader{data: `<p title="` + strings.Repeat("y", 3000) + `">` + `<a href="http://x.example/">`}
	if err := c.ScanHTML(r, api.URLSourceHTML); err != errBroken {
		t.Fatalf("err = %v, want %v", err, errBroken)
	}
	sameList(t, "urls", urlList(c.URLs()), []string{"http://x.example/"})
}

// onceErrReader returns all its data together with errBroken, then io.EOF, as a reader that
// does not repeat its errors may.
type onceErrReader struct {
	data string
	done bool
}

func (r *onceErrReader) Read(p []byte) (int, error) {
	if r.done {
		return 0, nil
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	if r.data == "" {
		r.done = true
		return n, errBroken
	}
	return n, nil
}

func TestScanHTMLInvalidUTF8(t *testing.T) {
	in := "<a href=\"http://ex\xffample.com/\xfe\">\xc3</a><p>\xe2\x80http://t.example/\xf0</p><img src=\"//\xff\">"
	c := NewCollector(Options{})
	scanHTML(t, c, in)
	sameList(t, "urls", urlList(c.URLs()), []string{
		"http://ex%FFample.com/%FE", "http://t.example/%F0", "https://%FF",
	})
	checkInvariants(t, c, Options{})
}
