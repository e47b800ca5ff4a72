package urls

import (
	"strings"
	"testing"
)

// TestRecipientTokensAreNotKept runs with unwrapping off, so the wrapper URL itself is the
// record's url and must come out without its tokens.
func TestRecipientTokensAreNotKept(t *testing.T) {
	tests := []struct{ in, want string }{
		{
			"https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2Fx&data=05%7C01%7Cjane.doe%40corp.example%7Cabc&sdata=Zm9v&reserved=0",
			"https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2Fx",
		},
		{
			"https://eur01.safelinks.protection.outlook.com/?data=05%7C01%7Cjane%40corp.example&url=https%3A%2F%2Fa.example",
			"https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fa.example",
		},
		{
			"https://urldefense.proofpoint.com/v2/url?u=https-3A__evil.example_&d=DwMFaQ&c=abc&r=RECIPIENTTOKEN&m=m1&s=s1&e=",
			"https://urldefense.proofpoint.com/v2/url?u=https-3A__evil.example_&d=DwMFaQ&c=abc&m=m1&s=s1&e=",
		},
		{
			"https://urldefense.proofpoint.com/v1/url?u=http://evil.example/&k=key&r=RECIPIENTTOKEN&m=m&s=s",
			"https://urldefense.proofpoint.com/v1/url?u=http://evil.example/&k=key&m=m&s=s",
		},
		// urldefense.com serves v2 links too.
		{
			"https://urldefense.com/v2/url?u=http-3A__a.example&r=TOKEN&e=",
			"https://urldefense.com/v2/url?u=http-3A__a.example&e=",
		},
		// Copied from HTML source, "&amp;" leaves "amp;" in front of the names.
		{
			"https://urldefense.proofpoint.com/v2/url?u=http-3A__a.example&amp;r=TOKEN&amp;m=m1",
			"https://urldefense.proofpoint.com/v2/url?u=http-3A__a.example&amp;m=m1",
		},
		{
			"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example&amp;data=05%7Cjane%40corp.example&amp;sdata=S&amp;reserved=0",
			"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example",
		},
		// Proofpoint v3: what follows the '!' that ends the replacement buffer is the
		// customer id and a signature.
		{
			"https://urldefense.com/v3/__https://a.example/*x__;Iw!!CUSTOMER!SIGNATURE$",
			"https://urldefense.com/v3/__https://a.example/*x__;Iw!",
		},
		{
			"https://urldefense.com/v3/__https://a.example/__;Kw!-612Flbf0JvQ3kNJkRi5Jg!Ue6tQudNKa$",
			"https://urldefense.com/v3/__https://a.example/__;Kw!",
		},
		{"https://urldefense.us/v3/__http://a.example__;!abc$", "https://urldefense.us/v3/__http://a.example__;!"},
		// Cisco's fragment is the recipient's address in base64 ("xiaom@bv.com").
		{
			"https://secure-web.cisco.com/1TOKEN/https%3A%2F%2Fa.example#bbea5a=eGlhb21AYnYuY29t",
			"https://secure-web.cisco.com/1TOKEN/https%3A%2F%2Fa.example",
		},
		// Found by FuzzUnwrap: a name with white space after it is still the token, and what
		// is left must not end in white space, or normalising it again would change it.
		{"http:0.sAfelinks.proteCtion.outlook.Com?dAtA &sdAtA", "http://0.safelinks.protection.outlook.com"},
		{"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example &data=1",
			"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example"},
		{"https://secure-web.cisco.com/t/u #eGlh", "https://secure-web.cisco.com/t/u"},
		// Only the wrappers' own parameters go: the same names elsewhere are evidence.
		{"https://shop.example/?data=1&r=2", "https://shop.example/?data=1&r=2"},
		{"https://urldefense.proofpoint.com/other?r=1", "https://urldefense.proofpoint.com/other?r=1"},
		{"https://x.safelinks.protection.outlook.com/?data=only#frag", "https://x.safelinks.protection.outlook.com/#frag"},
		{"https://shop.example/v3/__a__;b!c$", "https://shop.example/v3/__a__;b!c$"},
		{"https://shop.example/#eGlhb21AYnYuY29t", "https://shop.example/#eGlhb21AYnYuY29t"},
	}
	for _, tc := range tests {
		c := NewCollector(Options{MaxUnwrapDepth: -1})
		c.Add(tc.in, "text")
		got := c.URLs()
		if len(got) != 1 || got[0].URL != tc.want || got[0].Wrapped != nil {
			t.Errorf("Add(%q)\n got %+v\nwant %q", tc.in, got, tc.want)
		}
	}
}

// TestWrappedChainHasNoTokens: with unwrapping on, the tokens must be gone from every entry of
// the chain, including a token that an outer wrapper carries encoded inside its own payload.
func TestWrappedChainHasNoTokens(t *testing.T) {
	tests := []struct {
		name, in, url string
		wrapped       []string
	}{
		{
			"safe links",
			"https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2Fx&data=05%7C01%7Cjane.doe%40corp.example&sdata=Zm9v&reserved=0",
			"https://evil.example/x",
			[]string{"https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2Fx"},
		},
		{
			// Trend Micro's url= holds the Safe Links URL percent-encoded once, data= and
			// all; the inner layer loses data=, so the outer one loses its url= value.
			"token nested in an outer payload",
			"https://ctp.trendmicro.com/wis/clicktime/v2/clickthrough?url=https%3A%2F%2Fnam.safelinks.protection.outlook.com%2F%3Furl%3Dhttps%253A%252F%252Fevil.example%252F%26data%3D05%257Cjane%2540corp.example&uuid=U&auth=A",
			"https://evil.example/",
			[]string{
				"https://ctp.trendmicro.com/wis/clicktime/v2/clickthrough?url=&uuid=U&auth=A",
				"https://nam.safelinks.protection.outlook.com/?url=https%3A%2F%2Fevil.example%2F",
			},
		},
		{
			// Two layers out: Google around Trend Micro around Safe Links.
			"token two layers in",
			"https://www.google.com/url?q=https://ctp.trendmicro.com/wis/clicktime/v1/query?url%3Dhttps%253A%252F%252Fx.safelinks.protection.outlook.com%252F%253Furl%253Dhttp%25253A%25252F%25252Fa.example%2526data%253DTOKEN&sa=D",
			"http://a.example",
			[]string{
				"https://www.google.com/url?q=&sa=D",
				"https://ctp.trendmicro.com/wis/clicktime/v1/query?url=",
				"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example",
			},
		},
		{
			// Nothing to hide inside: the outer payload stays.
			"clean inner layer",
			"https://ctp.trendmicro.com/wis/clicktime/v2/clickthrough?url=https%3A%2F%2Fx.safelinks.protection.outlook.com%2F%3Furl%3Dhttp%253A%252F%252Fa.example&uuid=U",
			"http://a.example",
			[]string{
				"https://ctp.trendmicro.com/wis/clicktime/v2/clickthrough?url=https%3A%2F%2Fx.safelinks.protection.outlook.com%2F%3Furl%3Dhttp%253A%252F%252Fa.example&uuid=U",
				"https://x.safelinks.protection.outlook.com/?url=http%3A%2F%2Fa.example",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Unwrap(tc.in, Options{})
			if !ok || got.URL != tc.url {
				t.Fatalf("Unwrap = %+v, %v; want url %q", got, ok, tc.url)
			}
			sameList(t, "wrapped", got.Wrapped, tc.wrapped)
			for _, w := range got.Wrapped {
				for _, secret := range []string{"jane", "TOKEN", "data", "sdata"} {
					if strings.Contains(w, secret) {
						t.Errorf("wrapped %q still holds %q", w, secret)
					}
				}
			}
		})
	}
}
