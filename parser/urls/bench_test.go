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
}
