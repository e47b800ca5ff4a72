package urls

import (
	"slices"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

var mailtoHTMLCases = []struct {
	name string
	in   string
	want []string // describe() lines
}{
	{"href with fields and entities",
		`<a href="mailto:bob@evil.example?subject=Invoice%2042&amp;cc=ap@corp.example&#38;body=Pay">x</a>`,
		[]string{"mailto:bob@evil.example?subject=Invoice%2042&cc=ap@corp.example&body=Pay host=evil.example count=1 sources=html"}},
	{"scheme and domain lower-cased, local part kept",
		`<A HREF="MAILTO:Bob.Smith@Evil.EXAMPLE">x</A>`,
		[]string{"mailto:Bob.Smith@evil.example host=evil.example count=1 sources=html"}},
	{"percent-encoded address",
		`<a href="mailto:%62ob%40%45vil.example">x</a>`,
		[]string{"mailto:%62ob%40evil.example host=evil.example count=1 sources=html"}},
	{"several addresses: one entry, the first address's domain",
		`<a href="mailto:a@First.example,b@second.example">x</a>`,
		[]string{"mailto:a@first.example,b@second.example host=first.example count=1 sources=html"}},
	{"entity-encoded href",
		`<a href="&#109;&#97;ilto&#58;x&#64;Ent.example">x</a>`,
		[]string{"mailto:x@ent.example host=ent.example count=1 sources=html"}},
	{"tab inside the scheme, as browsers drop it",
		`<a href="mail&#9;to:t@tab.example">x</a>`,
		[]string{"mailto:t@tab.example host=tab.example count=1 sources=html"}},
	{"area and SVG links",
		`<map><area href="mailto:map@area.example"></map><svg><a xlink:href="mailto:s@svg.example">s</a></svg>`,
		[]string{"mailto:map@area.example host=area.example count=1 sources=html",
			"mailto:s@svg.example host=svg.example count=1 sources=html"}},
	{"IDNA domain",
		`<a href="mailto:kontakt@Bücher.example">x</a>`,
		[]string{"mailto:kontakt@xn--bcher-kva.example host=xn--bcher-kva.example count=1 sources=html"}},
	{"address only in a to= field",
		`<a href="mailto:?subject=hi&amp;To=z@Z.example">x</a>`,
		[]string{"mailto:?subject=hi&To=z@z.example host=z.example count=1 sources=html"}},
	{"link text that is a bare address is not listed",
		`<a href="mailto:a@x.example">a@x.example</a> or write to b@y.example`,
		[]string{"mailto:a@x.example host=x.example count=1 sources=html"}},
	{"mailto written out in text counts with the href",
		`<a href="mailto:a@x.example">mailto:a@x.example</a>`,
		[]string{"mailto:a@x.example host=x.example count=2 sources=html"}},
	{"no address", `<a href="mailto:">a</a><a href="mailto:?subject=x">b</a><a href="mailto:postmaster">c</a>` +
		`<a href="mailto:a@">d</a><a href="mailto:,,">e</a>`, nil},
	{"javascript and other junk", `<a href="javascript:location='mailto:a@b.example'">j</a>` +
		`<a href="xmailto:a@b.example">x</a><a href="mailto;a@b.example">y</a>`, nil},
	{"form actions that post to mailto",
		`<form action="mailto:f@form.example"><button formaction="mailto:b@button.example">b</button></form>`,
		[]string{"mailto:f@form.example host=form.example count=1 sources=html",
			"mailto:b@button.example host=button.example count=1 sources=html"}},
	{"not a link to follow", `<img src="mailto:i@img.example">` +
		`<div style="background:url(mailto:c@css.example)"></div>`, nil},
}

func TestScanHTMLMailto(t *testing.T) {
	for _, tc := range mailtoHTMLCases {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCollector(Options{})
			scanHTML(t, c, tc.in)
			want := tc.want
			if want == nil {
				want = []string{}
			}
			sameList(t, "urls", describe(c.URLs()), want)
			checkStable(t, c, Options{})
		})
	}
}

var mailtoTextCases = []struct {
	name string
	in   string
	want []string // describe() lines
}{
	{"in prose, full stop trimmed", "Please write to mailto:help@Desk.example.\r\n",
		[]string{"mailto:help@desk.example host=desk.example count=1 sources=text"}},
	{"in brackets with a subject", "Reply (mailto:reply@r.example?subject=Invoice) or <MAILTO:A@B.EXAMPLE>.",
		[]string{"mailto:reply@r.example?subject=Invoice host=r.example count=1 sources=text",
			"mailto:A@b.example host=b.example count=1 sources=text"}},
	{"list of addresses, then a comma", "mailto:a@one.example,b@two.example, thanks",
		[]string{"mailto:a@one.example,b@two.example host=one.example count=1 sources=text"}},
	{"bare addresses are not links", "Contact joe@bare.example or <jane@bare.example>, mail me at x@y.example.", nil},
	{"no address", "mailto: a@b.example, mailto:, mailto:?subject=x and mailto:postmaster", nil},
	{"javascript junk", "javascript:alert('a@b.example') javascript:void(0)", nil},
	{"inside a web link", "https://x.example/?r=mailto:a@b.example next",
		[]string{"https://x.example/?r=mailto:a@b.example host=x.example count=1 sources=text"}},
}

func TestScanTextMailto(t *testing.T) {
	for _, tc := range mailtoTextCases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == nil {
				want = []string{}
			}
			c := NewCollector(Options{})
			scanText(t, c, tc.in)
			sameList(t, "urls", describe(c.URLs()), want)
			checkStable(t, c, Options{})
			// Wherever the chunks end.
			for chunk := 1; chunk <= len(tc.in); chunk++ {
				c := NewCollector(Options{})
				c.chunk = chunk
				scanText(t, c, tc.in)
				if got := describe(c.URLs()); !slices.Equal(got, want) {
					t.Fatalf("chunk %d: got %q, want %q", chunk, got, want)
				}
			}
		})
	}
}

func TestAddMailto(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"mailto:a@b.example", "mailto:a@b.example host=b.example"},
		{" <mailto:a@B.example> ", "mailto:a@b.example host=b.example"},
		// A domain that would decode to a separator stays as written, so that a second pass
		// reads the same address.
		{"mailto:a@x%2Cy.example,b@c.example", "mailto:a@x%2Cy.example,b@c.example host=x%2Cy.example"},
		{"mailto:a@[192.0.2.1]", "mailto:a@[192.0.2.1] host=192.0.2.1"},
		{"mailto:a@b.example\xff", "mailto:a@b.example%FF host=b.example%FF"},
	} {
		c := NewCollector(Options{})
		c.Add(tc.in, api.URLSourceText)
		got := []string{}
		for _, u := range c.URLs() {
			got = append(got, u.URL+" host="+u.Host)
		}
		sameList(t, tc.in, got, []string{tc.want})
		checkStable(t, c, Options{})
	}
}

func TestMailtoLimits(t *testing.T) {
	long := "mailto:a@b.example?body=" + strings.Repeat("x", 200)
	c := NewCollector(Options{MaxURLLength: 64})
	scanHTML(t, c, `<a href="`+long+`">x</a>`)
	us := c.URLs()
	if len(us) != 1 || us[0].URL != long[:64] || us[0].Host != "b.example" {
		t.Errorf("cut: %q", describe(us))
	}
	if !slices.Equal(c.LimitsHit(), []string{LimitURLLength}) {
		t.Errorf("limits %q", c.LimitsHit())
	}

	c = NewCollector(Options{MaxURLs: 2})
	scanText(t, c, "mailto:a@one.example http://two.example/ mailto:c@three.example")
	if got := urlList(c.URLs()); !slices.Equal(got, []string{"mailto:a@one.example", "http://two.example/"}) {
		t.Errorf("capped: %q", got)
	}
	if !slices.Equal(c.LimitsHit(), []string{LimitURLs}) {
		t.Errorf("limits %q", c.LimitsHit())
	}
}

// A gateway that wraps a mailto link leaves it unresolved, as before: mailto is recorded only
// where it is written.
func TestUnwrapLeavesMailtoAlone(t *testing.T) {
	if _, ok := Unwrap("mailto:a@b.example", Options{}); ok {
		t.Error("Unwrap took a mailto link")
	}
}
