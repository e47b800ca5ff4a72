package urls

import (
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// TestUnwrapSchemes: one hand-made link per wrapper, for the shapes the corpus rows do not
// show. Expected targets are worked out by hand from each wrapper's encoding.
func TestUnwrapSchemes(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		wrappers       []string
	}{
		{"safe links, gov cloud", "https://gcc02.safelinks.protection.office365.us/?url=https%3A%2F%2Fa.example%2Fp%3Fq%3D1&data=x",
			"https://a.example/p?q=1", []string{WrapperSafeLinks}},
		// '+' stays '+': only %XX is decoded.
		{"safe links plus sign", "https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example%2F%3Fq%3Da%2Bb+c",
			"http://a.example/?q=a+b+c", []string{WrapperSafeLinks}},
		{"parameter name case", "https://x.safelinks.protection.outlook.com/?URL=http%3A%2F%2Fa.example%2F",
			"http://a.example/", []string{WrapperSafeLinks}},
		// -2D is '-', -5F is '_', _ is '/': https://a.example/x-y_z/
		{"proofpoint v2 escapes", "https://urldefense.proofpoint.com/v2/url?u=https-3A__a.example_x-2Dy-5Fz_&d=D&c=C&r=R&m=M&s=S&e=",
			"https://a.example/x-y_z/", []string{WrapperProofpointV2}},
		// "**A" copies two bytes, '*' one: buffer "#%" + "&" (base64url "IyUm").
		{"proofpoint v3 runs", "https://urldefense.com/v3/__https://a.example/p**Aq*r__;IyUm!!C!S$",
			"https://a.example/p#%q&r", []string{WrapperProofpointV3}},
		// A lone '*' takes one byte of "é" (C3 A9, base64url "w6k"); the other is left over. The
		// half character is escaped as every invalid byte is.
		{"proofpoint v3 byte runs", "https://urldefense.com/v3/__http://x.example/a*b__;w6k!!c!s$",
			"http://x.example/a%C3b", []string{WrapperProofpointV3}},
		{"proofpoint v3 redacted form", "https://urldefense.com/v3/__http://x.example/__;!",
			"http://x.example/", []string{WrapperProofpointV3}},
		{"proofpoint v3 on urldefense.proofpoint.com", "https://urldefense.proofpoint.com/v3/__http://x.example/__;!!c!s$",
			"http://x.example/", []string{WrapperProofpointV3}},
		{"google country site", "https://www.google.co.uk/url?sa=t&url=http%3A%2F%2Fa.example%2F&usg=U",
			"http://a.example/", []string{WrapperGoogle}},
		{"google.com.au", "https://google.com.au/url?q=http://a.example/", "http://a.example/", []string{WrapperGoogle}},
		{"barracuda", "https://linkprotect.cudasvc.com/url?a=http%3a%2f%2fa.example%2f&c=E,1,x&typo=1",
			"http://a.example/", []string{WrapperBarracuda}},
		// Slashes left unencoded after the token still belong to the target.
		{"cisco unencoded slashes", "https://secure-web.cisco.com/1tok/https%3A%2F%2Fa.example/p/q#frag",
			"https://a.example/p/q", []string{WrapperCisco}},
		{"trend micro eu", "https://eu1-ctp.trendmicro.eu/wis/clicktime/v1/query?url=http%3a%2f%2fa.example&umid=U",
			"http://a.example", []string{WrapperTrendMicro}},
		// "http://a.example/" in standard base64, padded, with the padding percent-encoded.
		{"sophos standard base64", "https://eu-central-1.protection.sophos.com/?d=x&u=aHR0cDovL2EuZXhhbXBsZS8%3D&i=I",
			"http://a.example/", []string{WrapperSophos}},
		{"ses click tracking", "https://x.r.us-east-1.awstrack.me/L0/https:%2F%2Fa.example%2Fp%3Fq=1/1/0101-000000/abc=123",
			"https://a.example/p?q=1", []string{WrapperSESTrack}},
		{"whatsapp", "https://l.wl.co/l?u=https%3A%2F%2Fa.example%2F", "https://a.example/", []string{WrapperWhatsApp}},
		{"fireeye any path", "https://protect2.fireeye.com/url?k=K&u=http://a.example/x", "http://a.example/x", []string{WrapperFireEye}},
		{"azure email", "https://emails.azure.microsoft.com/redirect/?destination=https%3A%2F%2Fa.example%2F&p=P",
			"https://a.example/", []string{WrapperAzureEmail}},
		{"esvalabs", "https://urlsand.esvalabs.com/?u=https%3A%2F%2Fa.example%2F&e=E", "https://a.example/", []string{WrapperEsvaLabs}},
		// The target is normalised like any link: host lower-cased and in IDNA form.
		{"target normalised", "https://x.safelinks.protection.outlook.com/?url=HTTP%3A%2F%2FB%C3%BCcher.Example%3A80%2FP",
			"http://xn--bcher-kva.example/P", []string{WrapperSafeLinks}},
		{"scheme and host case of the wrapper", "HTTPS://URLDEFENSE.COM/v3/__http://x.example/__;!!c!s$",
			"http://x.example/", []string{WrapperProofpointV3}},
		{"three layers", "https://www.google.com/url?q=" + url.QueryEscape(
			"https://ctp.trendmicro.com/wis/clicktime/v1/query?url="+url.QueryEscape(
				"https://urldefense.proofpoint.com/v2/url?u=http-3A__a.example_x&r=R")),
			"http://a.example/x", []string{WrapperGoogle, WrapperTrendMicro, WrapperProofpointV2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Unwrap(tc.in, Options{})
			if !ok || got.URL != tc.want || !slices.Equal(got.Wrappers, tc.wrappers) || got.Unresolved {
				t.Errorf("Unwrap(%q)\n got  %+v\n want %q via %q", tc.in, got, tc.want, tc.wrappers)
			}
			if len(got.Wrapped) != len(got.Wrappers) {
				t.Errorf("wrapped %q, wrappers %q", got.Wrapped, got.Wrappers)
			}
		})
	}
}

// TestUnwrapLeavesOthersAlone: look-alike hosts and paths, and wrappers without a target
// parameter, are ordinary links.
func TestUnwrapLeavesOthersAlone(t *testing.T) {
	for _, in := range []string{
		"https://safelinks.protection.outlook.com.evil.example/?url=http%3A%2F%2Fa.example",
		"https://evilsafelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example",
		"https://nam.safelinks.protection.outlook.com/?data=x",
		"https://google.evil.example/url?q=http://a.example/",
		"https://www.google.com/search?q=http://a.example/",
		"https://www.google.co.evil/url?q=http://a.example/",
		"https://urldefense.proofpoint.com/v4/url?u=http-3A__a.example",
		"https://urldefense.evil.example/v3/__http://a.example__;!!",
		"https://linkprotect.cudasvc.com/url?b=http://a.example/",
		"https://secure-web.cisco.com/onlytoken",
		"https://ctp.trendmicro.com/other?url=http://a.example/",
		"https://l.wl.co/other?u=http://a.example/",
		"https://www.mimecast.com/s/something",
		"https://x.awstrack.me/L1/http:%2F%2Fa.example",
		"http://a.example/?url=http://b.example/",
	} {
		got, ok := Unwrap(in, Options{})
		if !ok || len(got.Wrapped) != 0 || got.Unresolved {
			t.Errorf("Unwrap(%q) = %+v, want it left alone", in, got)
		}
	}
}

// TestUnwrapUnresolved: a recognised wrapper that will not give its target up is kept as the
// url, and named, and marked.
func TestUnwrapUnresolved(t *testing.T) {
	for _, tc := range []struct{ name, in, scheme string }{
		{"mimecast", "https://protect-eu.mimecast.com/s/AbCdEf?domain=a.example", WrapperMimecast},
		{"mimecast bare protect", "https://protect.mimecast.com/s/AbCdEf", WrapperMimecast},
		{"target not a web link", "https://x.safelinks.protection.outlook.com/?url=mailto%3Aa%40b.example", WrapperSafeLinks},
		{"empty target", "https://x.safelinks.protection.outlook.com/?url=&data=1", WrapperSafeLinks},
		{"relative target", "https://www.google.com/url?q=/search%3Fq%3Dx", WrapperGoogle},
		{"v3 buffer too short", "https://urldefense.com/v3/__http://a.example/**Bx__;Iw!!c!s$", WrapperProofpointV3},
		{"v3 lone star past buffer", "https://urldefense.com/v3/__http://a.example/*x*__;Iw!!c!s$", WrapperProofpointV3},
		{"v3 bad run letter", "https://urldefense.com/v3/__http://a.example/**.x__;IyMj!!c!s$", WrapperProofpointV3},
		{"v3 bad base64", "https://urldefense.com/v3/__http://a.example/*__;I!!c!s$", WrapperProofpointV3},
		{"v3 no trailer (cut short)", "https://urldefense.com/v3/__http://a.example/abc", WrapperProofpointV3},
		{"sophos bad base64", "https://x.protection.sophos.com/?u=a&d=x", WrapperSophos},
		{"sophos target not a link", "https://x.protection.sophos.com/?u=aGVsbG8", WrapperSophos},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Unwrap(tc.in, Options{})
			if !ok || !got.Unresolved || !slices.Equal(got.Wrappers, []string{tc.scheme}) ||
				len(got.Wrapped) != 1 || got.Wrapped[0] != got.URL {
				t.Errorf("Unwrap(%q) = %+v, want it kept as an unresolved %s", tc.in, got, tc.scheme)
			}
		})
	}
	// An opaque layer inside a decodable one ends the chain there.
	got, _ := Unwrap("https://x.safelinks.protection.outlook.com/?url="+
		url.QueryEscape("https://protect-us.mimecast.com/s/Code?domain=a.example"), Options{})
	if got.URL != "https://protect-us.mimecast.com/s/Code?domain=a.example" || !got.Unresolved ||
		!slices.Equal(got.Wrappers, []string{WrapperSafeLinks, WrapperMimecast}) {
		t.Errorf("safe links around mimecast: %+v", got)
	}
}

// nestGoogle wraps target in n layers of Google redirects, each one escaping the last with
// net/url, an encoder independent of the decoder under test.
func nestGoogle(target string, n int) string {
	for range n {
		target = "https://www.google.com/url?q=" + url.QueryEscape(target)
	}
	return target
}

func TestUnwrapDepth(t *testing.T) {
	const target = "http://a.example/x"
	got, _ := Unwrap(nestGoogle(target, 8), Options{})
	if got.URL != target || len(got.Wrapped) != 8 || got.DepthExceeded {
		t.Errorf("8 layers: %+v", got)
	}

	got, _ = Unwrap(nestGoogle(target, 10), Options{})
	if got.URL != nestGoogle(target, 2) || len(got.Wrapped) != 8 || !got.DepthExceeded || got.Unresolved {
		t.Errorf("10 layers: url %q, %d wrapped, exceeded %v", got.URL, len(got.Wrapped), got.DepthExceeded)
	}
	if got.Wrapped[0] != nestGoogle(target, 10) || got.Wrapped[7] != nestGoogle(target, 3) {
		t.Errorf("10 layers: chain %q", got.Wrapped)
	}

	got, _ = Unwrap(nestGoogle(target, 3), Options{MaxUnwrapDepth: 2})
	if got.URL != nestGoogle(target, 1) || len(got.Wrapped) != 2 || !got.DepthExceeded {
		t.Errorf("depth 2: %+v", got)
	}

	got, _ = Unwrap(nestGoogle(target, 3), Options{MaxUnwrapDepth: -1})
	if got.URL != nestGoogle(target, 3) || got.Wrapped != nil || got.DepthExceeded {
		t.Errorf("unwrapping off: %+v", got)
	}

	c := NewCollector(Options{})
	c.Add(nestGoogle(target, 9), api.URLSourceHTML)
	c.Add(nestGoogle(target, 8), api.URLSourceHTML)
	sameList(t, "limits", c.LimitsHit(), []string{LimitUnwrapDepth})
	sameList(t, "urls", urlList(c.URLs()), []string{nestGoogle(target, 1), target})
}

func TestUnwrapRejects(t *testing.T) {
	for _, in := range []string{"", "mailto:a@b.example", "hxxp://a.example/", "/relative", "\x00\xff"} {
		if got, ok := Unwrap(in, Options{}); ok {
			t.Errorf("Unwrap(%q) = %+v, want not a URL", in, got)
		}
	}
}

func TestUnwrapCutsEveryLayer(t *testing.T) {
	long := "http://a.example/" + strings.Repeat("p", 200)
	got, ok := Unwrap("https://x.safelinks.protection.outlook.com/?url="+url.QueryEscape(long), Options{MaxURLLength: 100})
	if !ok || !got.Cut || len(got.Wrapped) != 1 || len(got.Wrapped[0]) > 100 || len(got.URL) > 100 {
		t.Errorf("got %+v", got)
	}
	// The cut wrapper still gives away the start of its target.
	if !strings.HasPrefix(got.URL, "http://a.example/ppp") {
		t.Errorf("url %q", got.URL)
	}
}

// TestDedupeByTarget: differently wrapped copies of one link are one record; the first chain
// seen is the one kept.
func TestDedupeByTarget(t *testing.T) {
	c := NewCollector(Options{})
	c.Add("https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example%2F&data=D", api.URLSourceHTML)
	c.Add("https://urldefense.com/v3/__http://a.example/__;!!c!s$", api.URLSourceText)
	c.Add("http://A.example/", api.URLSourceText)
	got := c.URLs()
	if len(got) != 1 {
		t.Fatalf("got %+v", got)
	}
	u := got[0]
	if u.URL != "http://a.example/" || u.Host != "a.example" || u.Count != 3 ||
		!slices.Equal(u.Sources, []string{"html", "text"}) ||
		!slices.Equal(u.Wrapped, []string{"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example%2F"}) ||
		!slices.Equal(u.Wrappers, []string{WrapperSafeLinks}) {
		t.Errorf("got %+v", u)
	}
	// The record's slices are the caller's.
	got[0].Wrapped[0] = "changed"
	if c.URLs()[0].Wrapped[0] == "changed" {
		t.Error("URLs shares Wrapped with the collector")
	}
}
