package urls

import (
	"bytes"
	"strings"
	"testing"
	"testing/iotest"

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
