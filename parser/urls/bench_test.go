package urls

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

const benchSize = 300 << 10

// benchText is a newsletter-like plain text body: prose, with a link every few lines, some in
// brackets or before punctuation, some long tracking links, a few repeated.
func benchText() []byte {
	var b strings.Builder
	for i := 0; b.Len() < benchSize; i++ {
		b.WriteString("Dear customer, thank you for your continued trust in our services. We have updated\r\n")
		b.WriteString("the terms that apply to your account; please review them at your convenience.\r\n")
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "Read more (https://news.example.com/articles/%d?utm_source=mail&utm_medium=email).\r\n", i)
		case 1:
			fmt.Fprintf(&b, "Unsubscribe: <https://list.example.org/u/%x/%d>\r\n", i*7919, i)
		case 2:
			fmt.Fprintf(&b, "Track it at HTTPS://Track.Example.NET:443/t?id=%d&sig=%040x, or call us.\r\n", i, i*104729)
		case 3:
			b.WriteString("Our privacy policy is at http://www.example.com/privacy.\r\n")
		}
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}

// benchHTML is a marketing-style HTML body: layout tables, inline styles, tracked links whose
// text is another URL, images with srcset, a style sheet with url() and entities in hrefs.
func benchHTML() []byte {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">` +
		`<style>body{margin:0;background:#fff url(https://cdn.example.com/bg.png) repeat-x} ` +
		`.btn{background-image:url("//cdn.example.com/btn.png");border-radius:4px}</style></head>` +
		`<body><table width="100%" cellpadding="0" cellspacing="0" border="0">`)
	for i := 0; b.Len() < benchSize; i++ {
		fmt.Fprintf(&b, `<tr><td style="padding:12px 24px;font-family:Arial,sans-serif;font-size:14px;color:#333333">`+
			`<p>Hello &amp; welcome. Your order #%d has shipped and should arrive within three working days.</p>`+
			`<a href="https://click.example.com/ls/click?upn=%x&amp;u=%d" style="color:#0066cc;text-decoration:none">`+
			`https://shop.example.com/orders/%d</a>`+
			`<img src="https://img.example.com/p/%d.jpg" srcset="https://img.example.com/p/%d@2x.jpg 2x, //img.example.com/p/%d@3x.jpg 3x" `+
			`width="120" height="80" alt="Product image" style="display:block;border:0">`+
			`</td></tr>`+"\r\n", i, i*2654435761, i, i, i, i, i)
	}
	b.WriteString(`</table><p style="font-size:11px">Unsubscribe at <a href="mailto:unsub@example.com">mail</a> ` +
		`or https://list.example.org/u.</p></body></html>`)
	return []byte(b.String())
}

func BenchmarkScanText(b *testing.B) {
	data := benchText()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewCollector(Options{})
		if err := c.ScanText(bytes.NewReader(data), api.URLSourceText); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkScanHTML(b *testing.B) {
	data := benchHTML()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		c := NewCollector(Options{})
		if err := c.ScanHTML(bytes.NewReader(data), api.URLSourceHTML); err != nil {
			b.Fatal(err)
		}
	}
}

// benchLinks is a mix of what a gateway-protected mailbox holds: mostly wrapped links, some
// nested, some plain.
var benchLinks = [][]byte{
	[]byte("https://nam02.safelinks.protection.outlook.com/?url=https%3A%2F%2Fnews.example.com%2Farticles%2F1234%3Futm_source%3Dmail&data=05%7C01%7Cjane.doe%40corp.example%7C31d152ee19d64a3b53a908d6b7dc42a2%7C49c6971ed0164e1ab04195533ede53a1%7C0%7C1%7C636898553972831008&sdata=MYXFcUyJ5Sxfo31AJJu3%2FdebHsiYaE46n%2B6wF%2BwKvQw%3D&reserved=0"),
	[]byte("https://urldefense.proofpoint.com/v2/url?u=https-3A__media.example.com_assets_images_2016_06_jupiter-2Dnasa.jpg&d=DwMBaQ&c=Vxt5e0Osvvt2gflwSlsJ5DmPGcPvTRKLJyp031rXjhg&r=BTD8MPjq1qSLi0tGKaB5H6aCJZZBjwYkLyorZdRQrnY&m=iKjixvaJuqvmReS78AB0JiActTrR_liSq7lDRjEQ9DE&s=-M8Vz-GV-kqkNVf1BAtv38DdudAHVDAI6_jQQLVmleE&e="),
	[]byte("https://urldefense.com/v3/__https://shop.example.com/search?q=a*test&gs=ps__;Kw!!-612Flbf0JvQ3kNJkRi5Jg!Ue6tQudNKaShHg93trcdjqDP8se2ySE65jyCIe2K1D_uNjZ1Lnf6YLQERujngZv9UWf66ujQIQ$"),
	[]byte("https://ctp.trendmicro.com/wis/clicktime/v2/clickthrough?url=https%3A%2F%2Femea01.safelinks.protection.outlook.com%2F%3Furl%3Dhttps%253A%252F%252Fearlyyears.example.uk%252F%26data%3D02%257C01%257C%257Ca33fd5f06d894aa2440608d688424db3%26sdata%3DFT9IDMzDty7e%26reserved%3D0&uuid=2dd83146-2964-11e9-913a-02f49198539e&auth=31bbc6a83b73e178539aa463ed38c9bab679818c"),
	[]byte("https://eu-central-1.protection.sophos.com/?d=sophos.com&u=aHR0cHM6Ly93d3cuc29waG9zLmNvbS9kZS1kZS9wcm9kdWN0cy9zb3Bob3MtZW1haWw=&i=NjJkMTA1NzEwNWJkNDAxMDc5ZDliN2Uy&h=0d5a5f867dd841698a9ee6af8c1d8846"),
	[]byte("https://protect-us.mimecast.com/s/AbCdEfGhIjKl?domain=example.com"),
	[]byte("https://news.example.com/articles/1234?utm_source=mail&utm_medium=email"),
	[]byte("HTTPS://Track.Example.NET:443/t?id=42&sig=0000000000000000000000000000000000019919"),
}

// BenchmarkUnwrap measures the Collector's path for one link: normalise, redact, unwrap every
// layer. It reuses its scratch space, as a Collector does across the links of a message.
func BenchmarkUnwrap(b *testing.B) {
	w := newUnwrapper(Options{}.withDefaults())
	n := 0
	for _, l := range benchLinks {
		n += len(l)
	}
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range benchLinks {
			if _, ok := w.unwrap(l); !ok {
				b.Fatalf("%s rejected", l)
			}
		}
	}
}

// BenchmarkUnwrapPublic is the pure function, which builds its strings and scratch each call.
func BenchmarkUnwrapPublic(b *testing.B) {
	links := make([]string, len(benchLinks))
	for i, l := range benchLinks {
		links[i] = string(l)
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, l := range links {
			Unwrap(l, Options{})
		}
	}
}

// TestBenchInputs keeps the benchmark inputs honest: they must contain what they claim to.
func TestBenchInputs(t *testing.T) {
	c := NewCollector(Options{})
	if err := c.ScanText(bytes.NewReader(benchText()), api.URLSourceText); err != nil {
		t.Fatal(err)
	}
	if n := len(c.URLs()); n < 900 {
		t.Errorf("text: %d distinct URLs", n)
	}
	c = NewCollector(Options{})
	if err := c.ScanHTML(bytes.NewReader(benchHTML()), api.URLSourceHTML); err != nil {
		t.Fatal(err)
	}
	if n := len(c.URLs()); n < 1000 {
		t.Errorf("html: %d distinct URLs", n)
	}
	if l := c.LimitsHit(); len(l) != 0 {
		t.Errorf("html: limits hit %q", l)
	}
	for _, l := range benchLinks[:6] {
		if u, _ := Unwrap(string(l), Options{}); len(u.Wrapped) == 0 {
			t.Errorf("bench link %s is not unwrapped", l)
		}
	}
}
