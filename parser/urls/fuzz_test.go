package urls

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"

	"github.com/journalsensor/sensor/api"
)

// Small limits make the fuzzer reach the cutting and restarting paths with small inputs.
var fuzzOptions = []Options{
	{},
	{MaxURLs: 8, MaxURLLength: 40, MaxHTMLToken: minHTMLToken},
}

func FuzzScanText(f *testing.F) {
	for _, tc := range textCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	for _, tc := range mailtoTextCases {
		f.Add([]byte(tc.in), uint8(5))
	}
	f.Add([]byte("x (http://a.example/"+strings.Repeat("é", 30)+")) http://b.example/\u00a0"), uint8(7))
	f.Add([]byte("http://long.example/"+strings.Repeat("a", 61)+"\u00a0http://next.example/"), uint8(4))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		for _, opts := range fuzzOptions {
			whole := NewCollector(opts)
			if err := whole.ScanText(bytes.NewReader(data), api.URLSourceText); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, whole, opts)
			checkStable(t, whole, opts)

			// Where the chunks end must not change what is found.
			small := NewCollector(opts)
			small.chunk = 1 + int(chunk%32)
			if err := small.ScanText(iotest.OneByteReader(bytes.NewReader(data)), api.URLSourceText); err != nil {
				t.Fatal(err)
			}
			sameList(t, "chunked", describe(small.URLs()), describe(whole.URLs()))
			sameList(t, "chunked limits", small.LimitsHit(), whole.LimitsHit())
		}
	})
}

func FuzzScanHTML(f *testing.F) {
	for _, tc := range htmlCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range mailtoHTMLCases {
		f.Add([]byte(tc.in))
	}
	f.Add([]byte(`<a href="http://a.example/" title="` + strings.Repeat("t", 1100) + `">x</a><img src=//b.example/>`))
	f.Add([]byte(`<style>` + strings.Repeat("p{color:red}", 100) + `url(//c.example/x)</style>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, opts := range fuzzOptions {
			whole := NewCollector(opts)
			if err := whole.ScanHTML(bytes.NewReader(data), api.URLSourceHTML); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, whole, opts)
			checkStable(t, whole, opts)

			// Nor where the reads end, even when a token overflows the buffer.
			small := NewCollector(opts)
			if err := small.ScanHTML(iotest.OneByteReader(bytes.NewReader(data)), api.URLSourceHTML); err != nil {
				t.Fatal(err)
			}
			sameList(t, "one byte reads", describe(small.URLs()), describe(whole.URLs()))
			sameList(t, "one byte reads limits", small.LimitsHit(), whole.LimitsHit())
		}
	})
}

// checkStable asserts that a recorded URL normalises to itself, so that a later step (the
// unwrapper, the pipeline) re-normalising it cannot split one link into two. A URL the cut
// may have shortened is exempt: cutting can leave a trailing '#' or space that a second pass
// takes off.
func checkStable(t *testing.T, c *Collector, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	if slices.Contains(c.LimitsHit(), LimitUnwrapDepth) {
		return // a link cut short of its target unwraps further when added again
	}
	for _, u := range c.URLs() {
		if len(u.URL) >= opts.MaxURLLength-5 {
			continue
		}
		again := NewCollector(opts)
		again.Add(u.URL, api.URLSourceText)
		got := again.URLs()
		if len(got) != 1 || got[0].URL != u.URL || got[0].Host != u.Host {
			t.Errorf("%q (host %q) normalises again to %q", u.URL, u.Host, describe(got))
		}
	}
}

// unwrapSeeds are one link per wrapper and the awkward shapes: runs across UTF-8, a buffer too
// short, nesting, escaped ampersands.
var unwrapSeeds = []string{
	"https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2Fx&data=05%7C01%7Cjane%40corp.example&sdata=Zm9v&reserved=0",
	"https://urldefense.proofpoint.com/v1/url?u=http://a.example/&amp;k=K&amp;r=R",
	"https://urldefense.proofpoint.com/v2/url?u=https-3A__a.example_x-2Dy-5Fz_&d=D&c=C&r=R&m=M&s=S&e=",
	"https://urldefense.com/v3/__http://www.example.com/**Aa*a*.html__;w60jIw!!foo!bar$",
	"https://urldefense.com/v3/__http://x.example/a*b__;w6k!!c!s$",
	"https://urldefense.com/v3/__http://a.example/**Bx__;Iw!!c!s$",
	"https://www.google.com/url?q=https://www.google.com/url?rct%3Dj%26url%3Dhttps://a.example/p%253Fid%253D1&usg=U",
	"https://linkprotect.cudasvc.com/url?a=https://secure.example/&c=E,1,x&typo=1",
	"https://secure-web.cisco.com/1tok/https%3A%2F%2Fus-west-2.protection.sophos.com%2F%3Fd%3Dx%26u%3DaHR0cDovL2EuZXhhbXBsZS8%253D#f=eGlhb21AYnYuY29t",
	"https://ctp.trendmicro.com/wis/clicktime/v2/clickthrough?url=https%3A%2F%2Fx.safelinks.protection.outlook.com%2F%3Furl%3Dhttp%253A%252F%252Fa.example%26data%3DD&uuid=U",
	"https://protect-us.mimecast.com/s/Code?domain=a.example",
	"https://x.r.us-east-1.awstrack.me/L0/https:%2F%2Fa.example%2Fp/1/0101-000000/abc=123",
	"https://l.wl.co/l?u=http%3A%2F%2Fa.example",
	"https://www.google.com/url?q=https%3A%2F%2Fwww.google.com%2Furl%3Fq%3Dhttps%253A%252F%252Fwww.google.com%252Furl%253Fq%253Dhttp%25253A%25252F%25252Fa.example",
}

func FuzzUnwrap(f *testing.F) {
	for _, s := range unwrapSeeds {
		f.Add(s)
	}
	opts := []Options{{}, {MaxURLLength: 60, MaxUnwrapDepth: 2}}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, o := range opts {
			lim := o.withDefaults()
			got, ok := Unwrap(raw, o)
			if !ok {
				if got.URL != "" || got.Wrapped != nil {
					t.Fatalf("rejected, yet %+v", got)
				}
				continue
			}
			if got.URL == "" || len(got.Wrapped) != len(got.Wrappers) || len(got.Wrapped) > lim.MaxUnwrapDepth {
				t.Fatalf("malformed result %+v", got)
			}
			for _, u := range append([]string{got.URL, got.Host}, got.Wrapped...) {
				if len(u) > lim.MaxURLLength || !utf8.ValidString(u) {
					t.Fatalf("%q: %d bytes or not UTF-8 (limit %d)", u, len(u), lim.MaxURLLength)
				}
			}
			if got.Unresolved && got.Wrapped[len(got.Wrapped)-1] != got.URL {
				t.Fatalf("unresolved, yet the last wrapper is not the url: %+v", got)
			}
			if !strings.Contains(got.URL, got.Host) {
				t.Fatalf("url %q does not hold host %q", got.URL, got.Host)
			}
			if got.Cut || got.DepthExceeded {
				continue
			}
			// The target is where unwrapping stops: unwrapping it again changes nothing.
			again, ok := Unwrap(got.URL, o)
			if !ok || again.URL != got.URL || again.Unresolved != got.Unresolved ||
				len(again.Wrapped) != map[bool]int{false: 0, true: 1}[got.Unresolved] {
				t.Fatalf("%q unwraps again to %+v", got.URL, again)
			}
		}
	})
}

func FuzzScanCalendar(f *testing.F) {
	for _, tc := range calendarCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		for _, opts := range fuzzOptions {
			whole := NewCollector(opts)
			if err := whole.ScanCalendar(bytes.NewReader(data), api.URLSourceCalendar); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, whole, opts)
			checkStable(t, whole, opts)

			// Unfolding is byte by byte and text values stream into ScanText, so where the
			// reads and chunks end must not change what is found either.
			small := NewCollector(opts)
			small.chunk = 1 + int(chunk%32)
			if err := small.ScanCalendar(iotest.OneByteReader(bytes.NewReader(data)), api.URLSourceCalendar); err != nil {
				t.Fatal(err)
			}
			sameList(t, "chunked", describe(small.URLs()), describe(whole.URLs()))
			sameList(t, "chunked limits", small.LimitsHit(), whole.LimitsHit())
		}
	})
}

// FuzzScanCSS checks only the invariants: a style sheet is cut at '}', ';' or a line end, and
// a cut inside a quoted url() value may lose that one link, so chunking can change the list.
func FuzzScanCSS(f *testing.F) {
	for _, tc := range cssCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		for _, opts := range fuzzOptions {
			c := NewCollector(opts)
			c.chunk = 1 + int(chunk%64)
			if err := c.ScanCSS(iotest.OneByteReader(bytes.NewReader(data)), api.URLSourceCSS); err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, c, opts)
			checkStable(t, c, opts)
		}
	})
}
