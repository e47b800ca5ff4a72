package urls

import (
	"html"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
)

// unwrapExample is one row of the corpus's url-unwrap-examples.tsv.
type unwrapExample struct {
	line                             int
	scheme, encoded, decoded, source string
}

func readUnwrapExamples(t *testing.T) []unwrapExample {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testkit.CorpusDir(t), "url-unwrap-examples.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) == 0 || lines[0] != "scheme\tencoded\tdecoded\tsource" {
		t.Fatalf("unexpected header %q", lines[0])
	}
	var rows []unwrapExample
	for i, l := range lines[1:] {
		f := strings.Split(strings.TrimRight(l, "\r"), "\t")
		if len(f) != 4 {
			t.Fatalf("line %d: %d columns", i+2, len(f))
		}
		rows = append(rows, unwrapExample{i + 2, f[0], f[1], f[2], f[3]})
	}
	return rows
}

// undecodableExamples are the rows whose target is not in the URL at all. Each must still be
// recognised: kept as the url, marked unresolved, named as its wrapper.
var undecodableExamples = map[string]string{
	"https://protect-us.mimecast.com/s253462825?domain=bbc.com": "Mimecast keeps the target on its " +
		"servers behind the code; domain= is only a hint, and the API that resolves it is online",
	"https://url.uk.m.mimecastprotect.com/s/F6rYCAW0hl6wn3CQg3QZ": "Mimecast URL Protect code; " +
		"resolvable only through Mimecast's decode-url API",
}

// recipientSecrets are the per-recipient and per-customer tokens in the corpus rows, picked
// out by hand: Proofpoint r=, Safe Links data= and sdata=, Proofpoint v3's customer and
// signature sections, and Cisco's fragment (base64 of a mail address). None may survive in a
// record.
var recipientSecrets = []string{
	"8uoIV2slkgrz5DYvEV5xGmj5ibGk65FDGf7CywSLVkR", "BTD8MPjq1qSLi0tGKaB5H6aCJZZBjwYkLyorZdRQrnY",
	"IKM5u8%2B%2F%2Fi8EBhWOS", "e535Fw3IpJvnSZEQ8eSBhv2S1aSylN4En6TbrM0pu-s",
	"tim.kelsey", "MYXFcUyJ5Sxfo31AJJu3", "a33fd5f06d894aa2440608d688424db3", "FT9IDMzDty7e",
	"-612Flbf0JvQ3kNJkRi5Jg", "Ue6tQudNKaShHg93", "MwwqYLOC6b6whF7V", "0-s0cwelKF9e6ILM8eH",
	"hlFzJJKSgy_yhExaSf_rO2F3t91Y9EI7", "!foo!bar", "!abc$", "eGlhb21AYnYuY29t",
}

// TestUnwrapCorpusExamples checks every row of url-unwrap-examples.tsv against its decoded
// column, exactly. Where the column and our output differ only by the normalisation every URL
// gets (a default port dropped, for one), the expected value is normalised the same way with
// unwrapping off, and the row is counted apart.
//
// Rows whose encoded value holds "&amp;" were copied out of HTML: they are entity-decoded
// first, as ScanHTML hands an attribute over. Rows marked "[single-layer]" give one layer of a
// longer chain, so they are checked against the entry after the first in the chain.
func TestUnwrapCorpusExamples(t *testing.T) {
	rows := readUnwrapExamples(t)
	if len(rows) != 53 {
		t.Errorf("%d rows, DESIGN.md promises 53", len(rows))
	}
	exact, normalised, unresolved := 0, 0, 0
	for _, r := range rows {
		t.Run(r.scheme+"/line"+strconv.Itoa(r.line), func(t *testing.T) {
			raw := r.encoded
			if strings.Contains(raw, "&amp;") {
				raw = html.UnescapeString(raw)
			}
			got, ok := Unwrap(raw, Options{})
			if !ok {
				t.Fatalf("Unwrap(%q) rejected it", raw)
			}
			checkNoSecrets(t, got.URL, got.Wrapped)
			if len(got.Wrappers) == 0 || got.Wrappers[0] != r.scheme {
				t.Errorf("wrappers %q, want %q first", got.Wrappers, r.scheme)
			}
			if len(got.Wrapped) != len(got.Wrappers) {
				t.Errorf("wrapped %q and wrappers %q differ in length", got.Wrapped, got.Wrappers)
			}

			reason, opaque := undecodableExamples[r.encoded]
			if opaque != strings.HasPrefix(r.decoded, "UNDECODABLE_OFFLINE") {
				t.Fatalf("row marked %q, test list says undecodable=%v", r.decoded, opaque)
			}
			if opaque {
				want := normalised1(t, r.encoded)
				if !got.Unresolved || got.URL != want || !slices.Equal(got.Wrappers, []string{WrapperMimecast}) ||
					!slices.Equal(got.Wrapped, []string{want}) {
					t.Errorf("undecodable (%s): got %+v, want %q kept, unresolved", reason, got, want)
				}
				unresolved++
				return
			}
			if got.Unresolved || got.DepthExceeded || got.Cut {
				t.Errorf("got %+v", got)
			}
			out := got.URL
			if strings.Contains(r.source, "[single-layer]") {
				if len(got.Wrapped) < 2 {
					t.Fatalf("single-layer row: chain %q has no second layer", got.Wrapped)
				}
				out = got.Wrapped[1]
			}
			switch {
			case out == r.decoded:
				exact++
			case out == normalised1(t, r.decoded):
				normalised++
				t.Logf("matches after normalising the expected value: %q", r.decoded)
			default:
				t.Errorf("Unwrap(%q)\n got  %q\n want %q", raw, out, r.decoded)
			}
		})
	}
	t.Logf("%d rows: %d unwrap exactly, %d after normalising the expected value, %d undecodable and unresolved",
		len(rows), exact, normalised, unresolved)
	if exact+normalised+unresolved != len(rows) {
		t.Errorf("only %d of %d rows pass", exact+normalised+unresolved, len(rows))
	}
}

// TestUnwrapCorpusExamplesThroughScanners puts every row where it is found in mail: in an
// href, HTML-escaped (rows that already are escaped go in as they are), and in plain text,
// as written. Both must reach what Unwrap reaches.
func TestUnwrapCorpusExamplesThroughScanners(t *testing.T) {
	for _, r := range readUnwrapExamples(t) {
		raw, attr := r.encoded, html.EscapeString(r.encoded)
		if strings.Contains(r.encoded, "&amp;") {
			raw, attr = html.UnescapeString(r.encoded), r.encoded
		}
		want, _ := Unwrap(raw, Options{})

		c := NewCollector(Options{})
		scanHTML(t, c, `<p><a href="`+attr+`">link</a></p>`)
		got := c.URLs()
		if len(got) != 1 || got[0].URL != want.URL || !slices.Equal(got[0].Wrapped, want.Wrapped) ||
			!slices.Equal(got[0].Wrappers, want.Wrappers) || got[0].Unresolved != want.Unresolved {
			t.Errorf("line %d in HTML: got %+v\nwant %+v", r.line, got, want)
		}

		c = NewCollector(Options{})
		scanText(t, c, "Click "+r.encoded+" now.\r\n")
		got = c.URLs()
		if len(got) != 1 || got[0].URL != want.URL || !slices.Equal(got[0].Wrappers, want.Wrappers) {
			t.Errorf("line %d in text: got %+v\nwant %+v", r.line, got, want)
			continue
		}
		checkNoSecrets(t, got[0].URL, got[0].Wrapped)
	}
}

func checkNoSecrets(t *testing.T, url string, wrapped []string) {
	t.Helper()
	for _, s := range append([]string{url}, wrapped...) {
		for _, secret := range recipientSecrets {
			if strings.Contains(s, secret) {
				t.Errorf("%q still holds the token %q", s, secret)
			}
		}
	}
}

// normalised1 is the normalisation every URL gets, without unwrapping.
func normalised1(t *testing.T, raw string) string {
	t.Helper()
	c := NewCollector(Options{MaxUnwrapDepth: -1})
	c.Add(raw, api.URLSourceText)
	us := c.URLs()
	if len(us) != 1 {
		t.Fatalf("%q does not normalise", raw)
	}
	return us[0].URL
}
