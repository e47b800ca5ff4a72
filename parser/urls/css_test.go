package urls

import (
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

var cssCases = []struct {
	name string
	in   string
	want []string
}{
	{"quoted and unquoted url()", `a{background:url("http://a.example/1.png")} b{background:URL('http://b.example/2.png')} ` +
		`c{background:url( http://c.example/3.png )}`,
		[]string{"http://a.example/1.png", "http://b.example/2.png", "http://c.example/3.png"}},
	{"protocol-relative url()", `p{background:url(//cdn.example/bg.png)}`, []string{"https://cdn.example/bg.png"}},
	{"@import string and url()", `@import "http://a.example/s.css"; @IMPORT 'https://b.example/t.css' screen; ` +
		`@import url(http://c.example/u.css); @import url("//d.example/v.css");`,
		[]string{"http://a.example/s.css", "https://b.example/t.css", "http://c.example/u.css", "https://d.example/v.css"}},
	// Relative targets need a base the part does not have.
	{"relative targets", `@import "local.css"; a{background:url(img/x.png)} b{src:url(data:font/woff;base64,AAAA)}`, nil},
	// A link in a comment is not fetched, but it is still written in the message; the
	// <style> scanner has always kept it, and a part of its own should not differ.
	{"comments", `/* see http://comment.example/x */ a{background:/* url(http://c2.example/y) */ url(http://real.example/z)}`,
		[]string{"http://comment.example/x", "http://c2.example/y", "http://real.example/z"}},
	{"quoted value ends at a newline", "a{background:url(\"http://a.example/x\n)}", []string{"http://a.example/x"}},
	{"@import without a string", `@import; @import`, nil},
}

func TestScanCSS(t *testing.T) {
	for _, tc := range cssCases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCollector(Options{})
			if err := c.ScanCSS(strings.NewReader(tc.in), "css"); err != nil {
				t.Fatal(err)
			}
			sameList(t, "urls", urlList(c.URLs()), orEmpty(tc.want))
			for _, u := range c.URLs() {
				if len(u.Sources) != 1 || u.Sources[0] != "css" || u.Count != 1 {
					t.Errorf("%s: sources %q count %d", u.URL, u.Sources, u.Count)
				}
			}
			// A <style> element holds the same sheet and must give the same links.
			h := NewCollector(Options{})
			if err := h.ScanHTML(strings.NewReader("<style>"+tc.in+"</style>"), "html"); err != nil {
				t.Fatal(err)
			}
			sameList(t, "<style>", urlList(h.URLs()), orEmpty(tc.want))
		})
	}
}

// TestScanCSSChunks puts chunk boundaries everywhere a small chunk can, over a sheet long
// enough to be cut many times; the links must not depend on where the cuts fall.
func TestScanCSSChunks(t *testing.T) {
	var b strings.Builder
	var want []string
	for i := range 200 {
		u := "http://h" + strings.Repeat("x", i%7) + ".example/p" + strconv.Itoa(i) + strings.Repeat("y", i%13)
		want = append(want, u)
		b.WriteString(".c{background:url('" + u + "')}\n")
	}
	for _, chunk := range []int{1, 7, 64, 1000} {
		c := NewCollector(Options{})
		c.chunk = chunk
		if err := c.ScanCSS(iotest.OneByteReader(strings.NewReader(b.String())), "css"); err != nil {
			t.Fatal(err)
		}
		sameList(t, "chunked", urlList(c.URLs()), want)
	}
}

// TestScanCSSBounded: a sheet with no place to cut still leaves the carried tail at one URL.
func TestScanCSSBounded(t *testing.T) {
	c := NewCollector(Options{MaxURLLength: 100})
	c.chunk = 1024
	in := strings.Repeat("a", 1<<20) + " url(http://end.example/)"
	if err := c.ScanCSS(strings.NewReader(in), "css"); err != nil {
		t.Fatal(err)
	}
	if cap(c.buf) > 4096 {
		t.Errorf("buffer grew to %d bytes", cap(c.buf))
	}
	sameList(t, "urls", urlList(c.URLs()), []string{"http://end.example/"})
}

func TestScanCSSReadError(t *testing.T) {
	c := NewCollector(Options{})
	err := c.ScanCSS(iotest.TimeoutReader(strings.NewReader("a{background:url(http://a.example/)}")), "css")
	if err == nil {
		t.Fatal("read error lost")
	}
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
