package urls

import (
	"fmt"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/journalsensor/sensor/api"
)

var textCases = []struct {
	name string
	in   string
	want []string
}{
	{"plain", "Please visit http://example.com/login today", []string{"http://example.com/login"}},
	{"full stop", "Go to https://example.com/path.", []string{"https://example.com/path"}},
	{"sentence punctuation", "Was it http://a.example/x?, or http://b.example/y!; maybe ftp://c.example/z:",
		[]string{"http://a.example/x", "http://b.example/y", "ftp://c.example/z"}},
	{"ellipsis", "see http://example.com/...", []string{"http://example.com/"}},
	{"trailing quotes", `he said 'http://example.com/a' and "http://example.com/b"`,
		[]string{"http://example.com/a", "http://example.com/b"}},
	{"wikipedia parens", "read http://en.wikipedia.org/wiki/Mercury_(planet) first",
		[]string{"http://en.wikipedia.org/wiki/Mercury_(planet)"}},
	{"link in parens", "(see http://example.com/a)", []string{"http://example.com/a"}},
	{"wikipedia link in parens", "(see http://en.wikipedia.org/wiki/Foo_(bar)).",
		[]string{"http://en.wikipedia.org/wiki/Foo_(bar)"}},
	{"opener paren ends at its closer", "(http://example.com/x)tail", []string{"http://example.com/x"}},
	{"opener paren keeps nested pair", "(http://en.wikipedia.org/wiki/Foo_(bar))",
		[]string{"http://en.wikipedia.org/wiki/Foo_(bar)"}},
	{"opener bracket", "[http://example.com/b]more", []string{"http://example.com/b"}},
	{"opener apostrophe", "'http://example.com/c'd", []string{"http://example.com/c"}},
	{"angle brackets", "<http://example.com/d>", []string{"http://example.com/d"}},
	{"double quotes", `href="http://example.com/e"x`, []string{"http://example.com/e"}},
	{"backtick", "`http://example.com/f`", []string{"http://example.com/f"}},
	{"unbalanced brace", "{http://example.com/g}", []string{"http://example.com/g"}},
	{"balanced brackets kept", "http://example.com/a[1]", []string{"http://example.com/a[1]"}},
	{"ends at newline and tab", "http://example.com/a\nhttp://example.com/b\tx",
		[]string{"http://example.com/a", "http://example.com/b"}},
	{"ends at control byte", "http://example.com/a\x00b", []string{"http://example.com/a"}},
	{"ends at no-break space", "http://example.com/a\u00a0next", []string{"http://example.com/a"}},
	{"ends at ideographic space", "http://example.com/a\u3000next", []string{"http://example.com/a"}},
	{"non-ASCII path kept", "http://example.com/café ok", []string{"http://example.com/café"}},
	{"uppercase scheme and host", "HTTPS://WWW.Example.COM/Path?Q=A",
		[]string{"https://www.example.com/Path?Q=A"}},
	{"mixed-case scheme", "HtTp://example.com/", []string{"http://example.com/"}},
	{"IDN host", "http://bücher.example/katalog", []string{"http://xn--bcher-kva.example/katalog"}},
	{"default ports", "http://example.com:80/a https://example.com:443/b http://example.com:8080/c",
		[]string{"http://example.com/a", "https://example.com/b", "http://example.com:8080/c"}},
	{"bare schemes ignored", "http:// and https://. and ftp://) and http:///", nil},
	{"other schemes ignored", "tel:+15551234 gopher://example.com/ file:///etc", nil},
	{"query with inner URL is one link", "http://r.example/?u=http://evil.example/x",
		[]string{"http://r.example/?u=http://evil.example/x"}},
	{"glued to a word", "URL:http://example.com/", []string{"http://example.com/"}},
	{"invalid UTF-8 escaped", "http://example.com/\xff\xfe/ok", []string{"http://example.com/%FF%FE/ok"}},
	{"empty fragment dropped", "http://example.com/a# http://example.com/b#c",
		[]string{"http://example.com/a", "http://example.com/b#c"}},
	{"several", "a http://a.example b https://b.example/x c ftp://c.example/",
		[]string{"http://a.example", "https://b.example/x", "ftp://c.example/"}},
	{"at very end", "last one: http://end.example/z", []string{"http://end.example/z"}},
	{"empty input", "", nil},

	// Schemeless links: www. at the start of a word, then a name with a plausible TLD.
	{"schemeless www", "Visit www.example.com today", []string{"http://www.example.com"}},
	{"schemeless www at start and end", "www.example.com", []string{"http://www.example.com"}},
	{"schemeless www with path", "see www.example.com/a/b?c=d#e. Next", []string{"http://www.example.com/a/b?c=d#e"}},
	{"schemeless www upper case", "WWW.Example.COM/X", []string{"http://www.example.com/X"}},
	{"schemeless www in brackets", "(www.example.com) [www.example.org/x] <www.example.net>",
		[]string{"http://www.example.com", "http://www.example.org/x", "http://www.example.net"}},
	{"schemeless www with port", "www.example.com:8080/x and www.example.org:x",
		[]string{"http://www.example.com:8080/x", "http://www.example.org"}},
	{"schemeless www ends at prose", "at www.example.com, or www.example.org; and www.example.net!",
		[]string{"http://www.example.com", "http://www.example.org", "http://www.example.net"}},
	{"schemeless www after colon", "Web:www.example.com", []string{"http://www.example.com"}},
	{"schemeless www IDN", "www.bücher.de/k", []string{"http://www.xn--bcher-kva.de/k"}},
	{"schemeless www after non-ASCII text", "请访问www.example.cn", []string{"http://www.example.cn"}},
	{"schemeless and full links together", "http://www.example.com/ and www.example.org",
		[]string{"http://www.example.com/", "http://www.example.org"}},
	{"prose that is not a link", "the www.-prefix, www.foo, www. alone, a@www.example.com, " +
		"x.www.example.com, /www.example.com, www..example.com, www.example.c0m, wwww.example.com, " +
		"www.example.com-, www.1.2, WWW.X, x[.]www.example.com, x(dot)www.example.com", nil},

	// De-fanged links are made whole again.
	{"hxxp", "hxxp://evil.example/x", []string{"http://evil.example/x"}},
	{"hxxps and [.]", "hxxps://evil[.]example[.]com/login", []string{"https://evil.example.com/login"}},
	{"[:]//", "http[:]//evil[.]example/", []string{"http://evil.example/"}},
	{"[://] and (.)", "hxxps[://]evil(.)example/a", []string{"https://evil.example/a"}},
	{"[dot]", "http://evil[dot]example/ and http://evil2(DOT)example/",
		[]string{"http://evil.example/", "http://evil2.example/"}},
	{"defanged dots in the path too", "hxxp://evil[.]example/a[.]php", []string{"http://evil.example/a.php"}},
	{"www[.]", "www[.]evil[.]com/x", []string{"http://www.evil.com/x"}},
	{"upper-case HXXP", "HXXP://EVIL.example", []string{"http://evil.example"}},
	{"defanged in brackets", "[hxxp://evil[.]example/]", []string{"http://evil.example/"}},
	{"intact link keeps its own (.)", "http://example.com/a(.)b[.]c", []string{"http://example.com/a(.)b[.]c"}},
	{"markers in prose", "the pattern [.] or (.) means a dot, hxxp alone too, http[:] and [://]", nil},
}

func scanText(t *testing.T, c *Collector, in string) {
	t.Helper()
	if err := c.ScanText(strings.NewReader(in), api.URLSourceText); err != nil {
		t.Fatalf("ScanText: %v", err)
	}
}

func TestScanText(t *testing.T) {
	for _, tc := range textCases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCollector(Options{})
			scanText(t, c, tc.in)
			want := tc.want
			if want == nil {
				want = []string{}
			}
			sameList(t, "urls", urlList(c.URLs()), want)
			if l := c.LimitsHit(); len(l) != 0 {
				t.Errorf("limits hit: %q", l)
			}
		})
	}
}

// TestScanTextChunkBoundaries puts chunk boundaries everywhere inside every table input: in the
// scheme, in "://", inside a multi-byte space, right before a closing bracket. ScanText
// gathers full chunks from the reader, so the reader's own piece sizes only exercise that
// gathering; the internal chunk size is what moves the scan boundaries.
func TestScanTextChunkBoundaries(t *testing.T) {
	readers := map[string]func(string) *splitReader{
		"whole": func(s string) *splitReader { return &splitReader{data: s} },
		"awkward": func(s string) *splitReader {
			return &splitReader{data: s, pieces: []int{3, 1, 2, 5, 1, 1, 7, 2, 3}}
		},
	}
	for _, tc := range textCases {
		want := tc.want
		if want == nil {
			want = []string{}
		}
		for chunk := 1; chunk <= 9; chunk++ {
			for rname, mk := range readers {
				t.Run(fmt.Sprintf("%s/chunk%d/%s", tc.name, chunk, rname), func(t *testing.T) {
					c := NewCollector(Options{})
					c.chunk = chunk
					if err := c.ScanText(mk(tc.in), api.URLSourceText); err != nil {
						t.Fatal(err)
					}
					sameList(t, "urls", urlList(c.URLs()), want)
				})
			}
		}
		t.Run(tc.name+"/one byte reader", func(t *testing.T) {
			c := NewCollector(Options{})
			if err := c.ScanText(iotest.OneByteReader(strings.NewReader(tc.in)), api.URLSourceText); err != nil {
				t.Fatal(err)
			}
			sameList(t, "urls", urlList(c.URLs()), want)
		})
	}
}

// TestScanTextLongStream runs a realistic amount of text through the default chunk size, so
// several URLs straddle the real 32 KiB boundaries.
func TestScanTextLongStream(t *testing.T) {
	var b strings.Builder
	var want []string
	for i := 0; b.Len() < 200<<10; i++ {
		u := fmt.Sprintf("https://host%d.example/path/%d?q=%d", i, i, i)
		fmt.Fprintf(&b, "Line %d of filler text with a link (%s), then more words.\n", i, u)
		want = append(want, u)
	}
	for _, r := range []struct {
		name string
		mk   func() *splitReader
	}{
		{"whole", func() *splitReader { return &splitReader{data: b.String()} }},
		{"odd pieces", func() *splitReader { return &splitReader{data: b.String(), pieces: repeat(4093, 100)} }},
	} {
		t.Run(r.name, func(t *testing.T) {
			c := NewCollector(Options{})
			if err := c.ScanText(r.mk(), api.URLSourceText); err != nil {
				t.Fatal(err)
			}
			sameList(t, "urls", urlList(c.URLs()), want)
		})
	}
}

func repeat(n, times int) []int {
	out := make([]int, times)
	for i := range out {
		out[i] = n
	}
	return out
}

func TestScanTextURLLength(t *testing.T) {
	long := "http://long.example/" + strings.Repeat("a", 100) + "http://inner.example/"
	in := "x " + long + " then http://next.example/ ok"
	for chunk := 1; chunk <= 40; chunk += 3 {
		t.Run(fmt.Sprintf("chunk%d", chunk), func(t *testing.T) {
			c := NewCollector(Options{MaxURLLength: 30})
			c.chunk = chunk
			scanText(t, c, in)
			// The cut URL's tail is passed over, so the inner URL is not reported on its own.
			sameList(t, "urls", urlList(c.URLs()), []string{
				"http://long.example/aaaaaaaaaa",
				"http://next.example/",
			})
			sameList(t, "limits", c.LimitsHit(), []string{LimitURLLength})
		})
	}
}

func TestScanTextURLExactlyAtLimit(t *testing.T) {
	u := "http://example.com/" + strings.Repeat("b", 11) // 30 bytes
	c := NewCollector(Options{MaxURLLength: 30})
	scanText(t, c, "see "+u+". And "+u+"c.")
	sameList(t, "urls", urlList(c.URLs()), []string{u})
	// The second one was 31 bytes and got cut to the first.
	sameList(t, "describe", describe(c.URLs()), []string{u + " host=example.com count=2 sources=text"})
	sameList(t, "limits", c.LimitsHit(), []string{LimitURLLength})
}

func TestScanTextCutKeepsUTF8(t *testing.T) {
	// "é" straddles byte 21 and 22; a cut at 22 must not leave half of it.
	c := NewCollector(Options{MaxURLLength: 22})
	scanText(t, c, "http://example.com/aéééé")
	sameList(t, "urls", urlList(c.URLs()), []string{"http://example.com/aé"})
	c = NewCollector(Options{MaxURLLength: 21})
	scanText(t, c, "http://example.com/aéééé")
	sameList(t, "urls", urlList(c.URLs()), []string{"http://example.com/a"})
}

func TestScanTextReadError(t *testing.T) {
	c := NewCollector(Options{})
	err := c.ScanText(&failingReader{data: "ok http://before.example/x", err: errBroken}, api.URLSourceText)
	if err != errBroken {
		t.Fatalf("err = %v, want %v", err, errBroken)
	}
	// What was read before the failure still counts.
	sameList(t, "urls", urlList(c.URLs()), []string{"http://before.example/x"})
}

func TestScanTextInvalidUTF8(t *testing.T) {
	in := "\xff\xfehttp://ex\xc3ample.com/\xe2\x80 http://ok.example/\xf0\x9f"
	for chunk := 1; chunk < 8; chunk++ {
		c := NewCollector(Options{})
		c.chunk = chunk
		scanText(t, c, in)
		sameList(t, "urls", urlList(c.URLs()), []string{
			"http://ex%C3ample.com/%E2%80",
			"http://ok.example/%F0%9F",
		})
		checkInvariants(t, c, Options{})
	}
}

// TestScanTextSkipStopsAtSplitSpace: the no-break space that ends a cut URL arrives in two
// chunks; skipping must not run past it into the next link.
func TestScanTextSkipStopsAtSplitSpace(t *testing.T) {
	for n := 40; n < 200; n++ {
		in := "http://long.example/" + strings.Repeat("a", n) + "\u00a0http://next.example/"
		for chunk := 1; chunk <= 12; chunk++ {
			c := NewCollector(Options{MaxURLLength: 24})
			c.chunk = chunk
			scanText(t, c, in)
			sameList(t, fmt.Sprintf("%d bytes, chunk %d", n, chunk), urlList(c.URLs()), []string{
				"http://long.example/aaaa", "http://next.example/",
			})
		}
	}
}

func TestScanTextObfuscatedFlag(t *testing.T) {
	c := NewCollector(Options{})
	scanText(t, c, "hxxp://evil.example/ then http://plain.example/ then http://evil.example/ www.schemeless.example "+
		"http://dots[.]example/")
	var got []string
	for _, u := range c.URLs() {
		got = append(got, fmt.Sprintf("%s obfuscated=%v count=%d", u.URL, u.Obfuscated, u.Count))
	}
	// Seen de-fanged once is enough.
	sameList(t, "urls", got, []string{
		"http://evil.example/ obfuscated=true count=2",
		"http://plain.example/ obfuscated=false count=1",
		"http://www.schemeless.example obfuscated=false count=1",
		"http://dots.example/ obfuscated=true count=1",
	})
}

// TestScanTextManyRejectedCandidates: text full of would-be links that are not must stay
// linear. Each candidate is looked at once; a quadratic scan would take minutes here.
func TestScanTextManyRejectedCandidates(t *testing.T) {
	for _, unit := range []string{"(www.", "www.a(.)", "www.aü", ":", "[:]", "hxxp[:]", "(www.x" + strings.Repeat("y", 500)} {
		in := strings.Repeat(unit, (4<<20)/len(unit)) + " http://end.example/"
		c := NewCollector(Options{})
		scanText(t, c, in)
		sameList(t, unit, urlList(c.URLs()), []string{"http://end.example/"})
	}
}
