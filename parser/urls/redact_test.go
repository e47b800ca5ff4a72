package urls

import "testing"

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
		// Only the wrappers' own parameters go: the same names elsewhere are evidence.
		{"https://shop.example/?data=1&r=2", "https://shop.example/?data=1&r=2"},
		{"https://urldefense.proofpoint.com/other?r=1", "https://urldefense.proofpoint.com/other?r=1"},
		{"https://x.safelinks.protection.outlook.com/?data=only#frag", "https://x.safelinks.protection.outlook.com/#frag"},
	}
	for _, tc := range tests {
		c := NewCollector(Options{})
		c.Add(tc.in, "text")
		got := c.URLs()
		if len(got) != 1 || got[0].URL != tc.want {
			t.Errorf("Add(%q)\n got %+v\nwant %q", tc.in, got, tc.want)
		}
	}
}
