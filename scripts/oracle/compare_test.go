//go:build e2e

package oracle

import (
	"testing"

	"github.com/journalsensor/sensor/internal/testkit"
)

// The comparison decides what counts as a miss, so it is tested on its own: a
// normalisation that made every link equal would let the corpus test pass while proving
// nothing.
func TestNormalizeLink(t *testing.T) {
	same := [][2]string{
		{"HTTP://Example.COM", "http://example.com/"},
		{"http://example.com:80/a", "http://example.com/a"},
		{"https://example.com:443/a", "https://example.com/a"},
		{"http://example.com/a%20b", "http://example.com/a b"},
		{"http://example.com/?e=a%2540b.ru", "http://example.com/?e=a%40b.ru"},
		{"https://x.example/v3/__http://www.example.com/", "https://x.example/v3/__http:/www.example.com/"},
		{"http://example.com/a#frag", "http://example.com/a"},
	}
	for _, p := range same {
		if a, b := normalizeLink(p[0]), normalizeLink(p[1]); a != b {
			t.Errorf("normalizeLink(%q) = %q, normalizeLink(%q) = %q; want them equal", p[0], a, p[1], b)
		}
	}
	different := [][2]string{
		{"http://example.com/a", "https://example.com/a"},
		{"http://example.com/a", "http://example.com/b"},
		{"http://example.com/Path", "http://example.com/path"},
		{"http://example.com:8080/", "http://example.com/"},
		{"http://example.com/?a=1", "http://example.com/?a=2"},
	}
	for _, p := range different {
		if a := normalizeLink(p[0]); a == normalizeLink(p[1]) {
			t.Errorf("normalizeLink(%q) = normalizeLink(%q) = %q; want them different", p[0], p[1], a)
		}
	}
}

func TestClassifyLink(t *testing.T) {
	have := sensorSet("http://example.com/page", "https://urldefense.proofpoint.com/v2/url?u=http-3A__t.example&d=D&m=M")
	tests := []struct {
		name      string
		u         testkit.RspamdURL
		text      string
		wantCat   string // "" and no match: a miss
		wantMatch bool
	}{
		{"same link", testkit.RspamdURL{Text: "http://EXAMPLE.com/page", Raw: "http://EXAMPLE.com/page"}, "", "", true},
		{"trailing dot", testkit.RspamdURL{Text: "http://example.com/page.", Raw: "http://example.com/page."}, "", "trailing punctuation", false},
		{"host in text", testkit.RspamdURL{Text: "http://mx.example.net", Raw: "http://mx.example.net", Flags: []string{"schemaless", "text"}}, "", "host name in running text", false},
		{"schemaless link", testkit.RspamdURL{Text: "http://www.example.net/x", Raw: "http://www.example.net/x", Flags: []string{"schemaless"}}, "", "link without a scheme", false},
		{"shown text", testkit.RspamdURL{Text: "http://shown.example", Raw: "http://Shown.example", Flags: []string{"html_displayed"}}, "<a href=x>Shown.example</a>", "host name shown as a link's text", false},
		{"shown text that is a link", testkit.RspamdURL{Text: "http://shown.example", Raw: "http://Shown.example", Flags: []string{"html_displayed"}}, "<a href=x>http://Shown.example</a>", "", false},
		{"redacted token", testkit.RspamdURL{Text: "https://urldefense.proofpoint.com/v2/url?u=http-3A__t.example&d=D&r=SECRET&m=M"}, "", "recipient token the sensor redacts", false},
		{"other wrapping", testkit.RspamdURL{Text: "https://urldefense.proofpoint.com/v2/url?u=http-3A__t.example&d=E&r=R&m=N"}, "", "another wrapping of a target the sensor reports", false},
		{"miss", testkit.RspamdURL{Text: "http://other.example/", Raw: "http://other.example/"}, "", "", false},
	}
	for _, tt := range tests {
		cat, match := classifyLink(tt.u, have, tt.text)
		if cat != tt.wantCat || (match != "") != tt.wantMatch {
			t.Errorf("%s: classifyLink = %q, %q; want category %q, match %v", tt.name, cat, match, tt.wantCat, tt.wantMatch)
		}
	}
}

func sensorSet(links ...string) map[string]bool {
	have := map[string]bool{}
	for _, l := range links {
		have[normalizeLink(l)] = true
	}
	return have
}
