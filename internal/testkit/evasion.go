package testkit

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode/utf16"
)

// EvasionCase is a message that hides a unique link and a unique attachment behind one MIME
// ambiguity that real mail clients tolerate. A parser that misses either sees less than the
// recipient would.
type EvasionCase struct {
	Name       string // short kebab-case id
	Client     string // the client behaviour the case relies on and the RFC rule it bends
	Message    []byte // the whole message, CRLF line ends unless the case is about line ends
	Link       string // the unique link hidden in it, exactly as a client would open it
	Attachment []byte // the unique attachment's decoded bytes; nil when the case hides a link alone
}

// evasion describes one case. build receives the case with its Link and Attachment set and
// fills in Message; it may replace Link or Attachment when the ambiguity needs another kind
// (a mailto: URI, a zip, nothing).
type evasion struct {
	name   string
	client string
	build  func(c *EvasionCase)
}

// EvasionCases returns the evasion set. The output is the same on every call: links and
// attachments derive from the case name and position only.
func EvasionCases() []EvasionCase {
	es := evasions()
	cs := make([]EvasionCase, 0, len(es))
	for i, e := range es {
		sum := sha256.Sum256([]byte(e.name))
		c := EvasionCase{
			Name:   e.name,
			Client: e.client,
			// A host under a real TLD: Rspamd drops links whose TLD it does not know.
			Link:       fmt.Sprintf("https://evasion-%d.example.com/%s/%s", i+1, e.name, hex.EncodeToString(sum[:4])),
			Attachment: fakePDF(e.name),
		}
		e.build(&c)
		cs = append(cs, c)
	}
	return cs
}

// fakePDF is a tiny PDF-looking payload whose bytes name the case, so each is unique.
func fakePDF(name string) []byte {
	return []byte("%PDF-1.4\n1 0 obj <</Title (evasion case " + name + ")>> endobj\ntrailer <</Root 1 0 R>>\n%%EOF\n")
}

// message prefixes body with the usual top-level headers and then the given ones.
func message(body string, header ...string) []byte {
	h := []string{
		"From: Sender <sender@evasion.example.org>",
		"To: Recipient <rcpt@evasion.example.org>",
		"Subject: evasion test",
		"Date: Mon, 30 Nov 2026 12:00:00 +0000",
		"Message-ID: <evasion@evasion.example.org>",
	}
	return []byte(entity(body, append(h, header...)...))
}

// mimeMessage is message with MIME-Version, which almost every case wants.
func mimeMessage(body string, header ...string) []byte {
	return message(body, append([]string{"MIME-Version: 1.0"}, header...)...)
}

// entity joins header lines and a body into one MIME entity.
func entity(body string, header ...string) string {
	return strings.Join(header, "\r\n") + "\r\n\r\n" + body
}

// multipart joins parts with the delimiter lines of boundary and closes it.
func multipart(boundary string, parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p + "\r\n")
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

// wrapBase64 encodes data as base64 in lines of 76 characters, as RFC 2045 §6.8 asks.
func wrapBase64(data []byte) string {
	return Wrap76(base64.StdEncoding.EncodeToString(data))
}

// Wrap76 breaks encoded text into 76-character CRLF lines, as MIME encoders do.
func Wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\r\n")
		s = s[76:]
	}
	b.WriteString(s + "\r\n")
	return b.String()
}

// uuencode encodes data as a uuencode block (begin line, body, end line).
func uuencode(data []byte, filename string) string {
	enc := func(v byte) byte {
		if v == 0 {
			return '`' // a space would be stripped as trailing whitespace
		}
		return v + 32
	}
	var b strings.Builder
	b.WriteString("begin 644 " + filename + "\r\n")
	for len(data) > 0 {
		n := min(len(data), 45)
		line := make([]byte, 0, 61)
		line = append(line, enc(byte(n)))
		for i := 0; i < n; i += 3 {
			var t [3]byte
			copy(t[:], data[i:n])
			line = append(line,
				enc(t[0]>>2),
				enc((t[0]<<4|t[1]>>4)&0x3f),
				enc((t[1]<<2|t[2]>>6)&0x3f),
				enc(t[2]&0x3f))
		}
		b.Write(line)
		b.WriteString("\r\n")
		data = data[n:]
	}
	b.WriteString("`\r\nend\r\n")
	return b.String()
}

// textPart is a plain text part that shows link.
func textPart(link string) string {
	return entity("Please review "+link+" before Friday.\r\n", "Content-Type: text/plain; charset=us-ascii")
}

// htmlPart is an HTML part whose body is html.
func htmlPart(html string) string {
	return entity("<html><body>"+html+"</body></html>\r\n", "Content-Type: text/html; charset=us-ascii")
}

// pdfPart is a base64 attachment holding att with the given Content-Transfer-Encoding
// header line ("" for none).
func pdfPart(att []byte, cte string) string {
	h := []string{
		`Content-Type: application/pdf; name="invoice.pdf"`,
		`Content-Disposition: attachment; filename="invoice.pdf"`,
	}
	if cte != "" {
		h = append(h, cte)
	}
	return entity(wrapBase64(att), h...)
}

// mixed is the common shape: a text part with the link and a PDF attachment.
func mixed(c *EvasionCase) string {
	return multipart("b1", textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
}

// mixedMessage is a message of one multipart/mixed with the given parts.
func mixedMessage(parts ...string) []byte {
	return mimeMessage(multipart("b1", parts...), `Content-Type: multipart/mixed; boundary="b1"`)
}

// linkOnlyHTML builds a link-only case whose HTML part holds html.
func linkOnlyHTML(html func(link string) string) func(*EvasionCase) {
	return func(c *EvasionCase) {
		c.Attachment = nil
		c.Message = mimeMessage(htmlPart(html(c.Link)), "Content-Type: text/html; charset=us-ascii")
	}
}

// splitAfter splits s after its n-th byte, for links cut in the middle.
func splitAfter(s string, n int) (string, string) { return s[:n], s[n:] }

func evasions() []evasion {
	return []evasion{
		{"boundary-never-occurs",
			"RFC 2046 §5.1.1 delimits parts only by the declared boundary; here it never occurs and the body uses another. " +
				"Clients that find no delimiter show the body as text, so the link stays readable and clickable; lenient parsers guess the boundary from the first '--' line and find the parts.",
			func(c *EvasionCase) {
				c.Message = mimeMessage(mixed(c), `Content-Type: multipart/mixed; boundary="declared-but-absent"`)
			}},
		{"two-content-types",
			"RFC 5322 §3.6 and RFC 2045 allow one Content-Type; with two, parsers differ on which wins (Python's email and Go's textproto take the first). " +
				"The first names a boundary that never occurs and the second the real one, so a parser must fall back to the delimiter the body uses.",
			func(c *EvasionCase) {
				c.Message = mimeMessage(mixed(c),
					`Content-Type: multipart/mixed; boundary="never-used"`,
					`Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"cte-absent-base64",
			"RFC 2045 §6.1 makes a part without Content-Transfer-Encoding 7bit, so strictly the attachment is the base64 text itself. " +
				"Senders forget the header on base64 attachments; lenient parsers sniff a body that is all base64 lines and decode it.",
			func(c *EvasionCase) {
				c.Message = mixedMessage(textPart(c.Link), pdfPart(c.Attachment, ""))
			}},
		{"cte-x-base64",
			"RFC 2045 §6.4 says a part with an unknown Content-Transfer-Encoding is to be treated as application/octet-stream, undecoded. " +
				"An x- prefixed name of a known encoding is decoded as that encoding by lenient parsers.",
			func(c *EvasionCase) {
				c.Message = mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: x-base64"))
			}},
		{"cte-base-hyphen-64",
			"A misspelt Content-Transfer-Encoding ('base-64') is unknown under RFC 2045 §6.4; lenient parsers match it to base64 loosely or sniff the body.",
			func(c *EvasionCase) {
				c.Message = mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base-64"))
			}},
		{"cte-bas64",
			"A misspelt Content-Transfer-Encoding ('bas64') is unknown under RFC 2045 §6.4; lenient parsers sniff a body of base64 lines and decode it.",
			func(c *EvasionCase) {
				c.Message = mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: bas64"))
			}},
		{"cte-case-and-space",
			"RFC 2045 §6.1 makes encoding names case-insensitive; an upper-case value padded with spaces is valid and clients decode it, but exact string matches miss it.",
			func(c *EvasionCase) {
				c.Message = mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding:  BASE64 "))
			}},
		{"rfc2047-filename",
			"RFC 2047 §5 forbids encoded-words in parameter values, yet Gmail's web interface and older Outlook write non-ASCII file names that way, and readers decode them to show the name.",
			func(c *EvasionCase) {
				att := entity(wrapBase64(c.Attachment),
					`Content-Type: application/pdf; name="=?UTF-8?B?UmVjaG51bmcucGRm?="`,
					`Content-Disposition: attachment; filename="=?UTF-8?B?UmVjaG51bmcucGRm?="`,
					"Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(textPart(c.Link), att)
			}},
		{"comment-after-boundary",
			"RFC 2045 §5.1 allows RFC 822 comments between tokens of Content-Type, so a comment after the quoted boundary is legal; parsers that do not strip comments lose the boundary.",
			func(c *EvasionCase) {
				c.Message = mimeMessage(mixed(c), `Content-Type: multipart/mixed; boundary="b1" (parts follow)`)
			}},
		{"comment-in-media-type",
			"RFC 2045 §5.1 allows comments between the media type and its parameters; 'multipart/mixed (c); boundary=...' is valid, and parsers that do not strip comments see no multipart.",
			func(c *EvasionCase) {
				c.Message = mimeMessage(mixed(c), `Content-Type: multipart/mixed (mixed content); boundary="b1"`)
			}},
		{"delimiter-transport-padding",
			"RFC 2046 §5.1.1 lets a delimiter line carry trailing whitespace (transport padding) that parsers must ignore; gateways add it and clients accept it.",
			func(c *EvasionCase) {
				body := strings.ReplaceAll(mixed(c), "--b1\r\n", "--b1 \t \r\n")
				body = strings.ReplaceAll(body, "--b1--\r\n", "--b1--  \r\n")
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"base64-multipart",
			"RFC 2045 §6.4 forbids any encoding but 7bit, 8bit or binary on a multipart; some senders base64 the whole multipart and lenient parsers decode it before splitting parts.",
			func(c *EvasionCase) {
				inner := multipart("inner", textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				outer := entity(wrapBase64([]byte(inner)),
					`Content-Type: multipart/mixed; boundary="inner"`,
					"Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(entity("Cover note.\r\n", "Content-Type: text/plain"), outer)
			}},
		{"x-uuencode-attachment",
			"x-uuencode is no registered Content-Transfer-Encoding (RFC 2045 §6.4 makes it unknown), yet Netscape and Eudora could send it, and Microsoft's MS-OXCMAIL says MIME readers should decode x-uuencode and x-uue parts, as Exchange does.",
			func(c *EvasionCase) {
				att := entity(uuencode(c.Attachment, "invoice.pdf"),
					`Content-Type: application/pdf; name="invoice.pdf"`,
					`Content-Disposition: attachment; filename="invoice.pdf"`,
					"Content-Transfer-Encoding: x-uuencode")
				c.Message = mixedMessage(textPart(c.Link), att)
			}},
		{"inline-uuencode",
			"A 'begin 644' uuencode block inside a text/plain body is no MIME attachment at all, but pre-MIME senders and Outlook 2000 produce it, and Thunderbird's mail code (libmime's untyped-text handler) shows such blocks as attachments.",
			func(c *EvasionCase) {
				body := "Please review " + c.Link + " and the attached file.\r\n\r\n" + uuencode(c.Attachment, "invoice.pdf")
				c.Message = mimeMessage(body, "Content-Type: text/plain; charset=us-ascii")
			}},
		{"html-base-href",
			"HTML's <base href> sets the URL that relative links resolve against; clients that render HTML resolve <a href> by it, so the full link never appears in the message.",
			func(c *EvasionCase) {
				i := strings.LastIndex(c.Link, "/") + 1
				base, rel := c.Link[:i], c.Link[i:]
				c.Attachment = nil
				c.Message = mimeMessage(entity(`<html><head><base href="`+base+`"></head><body><a href="`+rel+`">Open</a></body></html>`+"\r\n",
					"Content-Type: text/html; charset=us-ascii"), "Content-Type: text/html; charset=us-ascii")
			}},
		{"qp-soft-break-in-url",
			"RFC 2045 §6.7 quoted-printable soft line breaks ('=' at line end) vanish on decoding, so a URL split across them is whole to every client but never whole in the raw message.",
			func(c *EvasionCase) {
				a, b := splitAfter(c.Link, 20)
				html := `<html><body><a href=3D"` + a + "=\r\n" + b + `">Open</a></body></html>` + "\r\n"
				part := entity(html, "Content-Type: text/html; charset=us-ascii", "Content-Transfer-Encoding: quoted-printable")
				c.Message = mixedMessage(part, pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
			}},
		{"qp-soft-break-7bit",
			"The body is quoted-printable (href=3D, soft breaks, one inside the URL) but the part declares 7bit, as when a relay rewrites the header and not the body. RFC 2045 says not to decode it, and a client that honours 7bit shows the escapes; " +
				"the case stays because filters such as Rspamd may decode by content, and the link given is the decoded one.",
			func(c *EvasionCase) {
				a, b := splitAfter(c.Link, 20)
				html := "<html><body><p style=3D\"margin:0\">Your statement is ready. Please review it=\r\n" +
					" before the end of the month.</p><a href=3D\"" + a + "=\r\n" + b + "\">Open</a></body></html>\r\n"
				c.Attachment = nil
				c.Message = mimeMessage(html, "Content-Type: text/html; charset=us-ascii", "Content-Transfer-Encoding: 7bit")
			}},
		{"html-area-href",
			"An image map's <area href> is a link like <a href>; HTML-rendering clients make the mapped region clickable.",
			linkOnlyHTML(func(link string) string {
				return `<img src="cid:map" usemap="#m"><map name="m"><area shape="rect" coords="0,0,100,100" href="` + link + `"></map>`
			})},
		{"html-form-action",
			"A <form action> sends the reader to its URL on submit; clients that render HTML with a browser engine can show the form, while webmail usually strips it.",
			linkOnlyHTML(func(link string) string {
				return `<form action="` + link + `" method="get"><input type="submit" value="Confirm"></form>`
			})},
		{"html-entity-scheme",
			"HTML decodes character references in attribute values, so '&#x68;ttps&colon;//' is 'https://' to every HTML-rendering client while the raw text holds no 'https:'.",
			linkOnlyHTML(func(link string) string {
				rest := strings.TrimPrefix(link, "https://")
				rest = strings.ReplaceAll(rest, ".", "&period;")
				return `<a href="&#x68;ttps&colon;&#47;&#x2F;` + rest + `">Open</a>`
			})},
		{"html-img-srcset",
			"<img srcset> lists image candidates the renderer fetches when remote content is allowed; the link sits only in srcset, after a 1x descriptor candidate.",
			linkOnlyHTML(func(link string) string {
				return `<img src="cid:logo" srcset="cid:logo 1x, ` + link + ` 2x" alt="logo">`
			})},
		{"html-meta-refresh",
			"<meta http-equiv=refresh content='0;url=...'> redirects a browser; mail previews generally ignore or strip it, but the page does redirect once opened in a browser, which is how phishing pages use it.",
			linkOnlyHTML(func(link string) string {
				return `<meta http-equiv="refresh" content="0; url=` + link + `"><p>Redirecting</p>`
			})},
		{"html-link-href",
			"<link rel=stylesheet href> makes the renderer fetch the URL when remote content is allowed; the link never appears as visible text.",
			linkOnlyHTML(func(link string) string {
				return `<link rel="stylesheet" href="` + link + `"><p>Styled</p>`
			})},
		{"mailto-href",
			"A mailto: link opens the composer addressed to its recipient (RFC 6068); clients open it on a click, and it shows where the sender wants replies to go.",
			func(c *EvasionCase) {
				host := strings.Split(c.Link, "/")[2]
				c.Link = "mailto:" + c.Name + "@" + host
				linkOnlyHTML(func(link string) string {
					return `<a href="` + link + `">Write to us</a>`
				})(c)
			}},
		{"css-import",
			"A text/css part's @import names a stylesheet the renderer fetches when remote content is allowed; the link sits in a CSS part, not in HTML.",
			func(c *EvasionCase) {
				css := entity(`@import url("`+c.Link+`");`+"\r\nbody { color: black; }\r\n", "Content-Type: text/css; charset=us-ascii")
				c.Message = mixedMessage(htmlPart("<p>Styled</p>"), css, pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
			}},
		{"css-url",
			"A url() in CSS (here a background image in a text/css part) is fetched when remote content is allowed; the link is in CSS only.",
			func(c *EvasionCase) {
				css := entity("body { background: url('"+c.Link+"') no-repeat; }\r\n", "Content-Type: text/css; charset=us-ascii")
				c.Attachment = nil
				c.Message = mimeMessage(multipart("b1", htmlPart("<p>Styled</p>"), css), `Content-Type: multipart/related; boundary="b1"`)
			}},
		{"calendar-url",
			"Clients show text/calendar invitations as events and make the URL property (RFC 5545 §3.8.4.6) a clickable link.",
			func(c *EvasionCase) {
				c.Message = mixedMessage(textPart("the invitation"), calendarPart("URL:"+c.Link),
					pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
			}},
		{"calendar-folded-description",
			"RFC 5545 §3.1 folds long lines with CRLF and a space that readers remove; a link folded inside DESCRIPTION is whole in the event clients show but never whole in the raw part.",
			func(c *EvasionCase) {
				a, b := splitAfter(c.Link, 25)
				c.Attachment = nil
				c.Message = mimeMessage(calendarBody("DESCRIPTION:Join at "+a+"\r\n "+b),
					`Content-Type: text/calendar; method=REQUEST; charset=utf-8`)
			}},
		{"calendar-attach",
			"The ATTACH property (RFC 5545 §3.8.1.1) with a URI value is shown by calendar clients as an attachment link on the event.",
			func(c *EvasionCase) {
				c.Attachment = nil
				c.Message = mimeMessage(calendarBody("ATTACH;FMTTYPE=application/pdf:"+c.Link),
					`Content-Type: text/calendar; method=REQUEST; charset=utf-8`)
			}},
		{"delivery-status",
			"A bounce (RFC 3464 multipart/report) carries a message/delivery-status part; clients show it as text, links in its Diagnostic-Code included, though filters often skip the part.",
			func(c *EvasionCase) {
				ds := entity("Reporting-MTA: dns; mx.evasion.example.org\r\n\r\n"+
					"Final-Recipient: rfc822; rcpt@evasion.example.org\r\nAction: failed\r\nStatus: 5.7.1\r\n"+
					"Diagnostic-Code: smtp; 550 5.7.1 blocked, see "+c.Link+"\r\n", "Content-Type: message/delivery-status")
				c.Attachment = nil
				c.Message = mimeMessage(multipart("b1", entity("Your message could not be delivered.\r\n", "Content-Type: text/plain"), ds),
					`Content-Type: multipart/report; report-type=delivery-status; boundary="b1"`)
			}},
		{"rfc822-headers",
			"A text/rfc822-headers part (RFC 6522) holds the headers of a returned message; clients show it as text, so a link in a header there is visible and clickable.",
			func(c *EvasionCase) {
				hs := entity("From: someone@evasion.example.org\r\nSubject: original\r\nList-Unsubscribe: <"+c.Link+">\r\n",
					"Content-Type: text/rfc822-headers")
				c.Attachment = nil
				c.Message = mimeMessage(multipart("b1", entity("Returned headers follow.\r\n", "Content-Type: text/plain"), hs),
					`Content-Type: multipart/report; report-type=delivery-status; boundary="b1"`)
			}},
		{"message-rfc822",
			"A message/rfc822 part (RFC 2046 §5.2.1) is a whole forwarded message; clients show it inline with its own links and attachments.",
			func(c *EvasionCase) {
				inner := string(mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64")))
				c.Message = mimeMessage(multipart("outer", entity("Forwarded.\r\n", "Content-Type: text/plain"),
					entity(inner, "Content-Type: message/rfc822", `Content-Disposition: attachment; filename="fwd.eml"`)),
					`Content-Type: multipart/mixed; boundary="outer"`)
			}},
		{"message-rfc822-base64",
			"RFC 2046 §5.2.1 forbids encodings other than 7bit, 8bit or binary on message/rfc822; senders base64 it anyway and lenient clients decode it and show the forwarded message.",
			func(c *EvasionCase) {
				inner := mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = mimeMessage(multipart("outer", entity("Forwarded.\r\n", "Content-Type: text/plain"),
					entity(wrapBase64(inner), "Content-Type: message/rfc822", "Content-Transfer-Encoding: base64",
						`Content-Disposition: attachment; filename="fwd.eml"`)),
					`Content-Type: multipart/mixed; boundary="outer"`)
			}},
		{"rfc2231-filename-continuation",
			"RFC 2231 §3-4 splits a parameter into numbered, percent-encoded sections (filename*0*=, filename*1*=); clients join and decode them for the file name.",
			func(c *EvasionCase) {
				att := entity(wrapBase64(c.Attachment),
					"Content-Type: application/pdf",
					"Content-Disposition: attachment;\r\n filename*0*=utf-8''Rechnung%20Nr;\r\n filename*1*=%2042.pdf",
					"Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(textPart(c.Link), att)
			}},
		{"rfc2231-boundary-continuation",
			"RFC 2231 continuations apply to any parameter, the boundary included (boundary*0=, boundary*1=); a parser that does not join them has no boundary.",
			func(c *EvasionCase) {
				body := multipart("split-boundary", textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = mimeMessage(body, "Content-Type: multipart/mixed;\r\n boundary*0=\"split-\";\r\n boundary*1=\"boundary\"")
			}},
		{"rfc2231-latin1-filename",
			"RFC 2231 §4 gives a parameter its own charset and language (filename*=iso-8859-1'de'...); clients decode the name with that charset.",
			func(c *EvasionCase) {
				att := entity(wrapBase64(c.Attachment),
					"Content-Type: application/pdf; name*=iso-8859-1'de'%DCbersicht.pdf",
					"Content-Disposition: attachment; filename*=iso-8859-1'de'%DCbersicht.pdf",
					"Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(textPart(c.Link), att)
			}},
		{"uppercase-multipart",
			"RFC 2045 §5.1 makes type, subtype and parameter names case-insensitive; 'MULTIPART/MIXED; BOUNDARY=' is valid and clients accept it; exact matches miss it.",
			func(c *EvasionCase) {
				body := multipart("b1", strings.Replace(textPart(c.Link), "Content-Type: text/plain", "CONTENT-TYPE: TEXT/PLAIN", 1),
					pdfPart(c.Attachment, "content-transfer-encoding: Base64"))
				c.Message = mimeMessage(body, `CONTENT-TYPE: MULTIPART/MIXED; BOUNDARY="b1"`)
			}},
		{"no-mime-version",
			"RFC 2045 §4 says a message without MIME-Version need not be read as MIME; clients parse its Content-Type anyway.",
			func(c *EvasionCase) {
				c.Message = message(mixed(c), `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"lf-line-endings",
			"RFC 5322 requires CRLF, but messages stored or relayed on Unix have bare LF line ends, and clients read them.",
			func(c *EvasionCase) {
				m := mixedMessage(textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
			}},
		{"mixed-line-endings",
			"Headers with CRLF and a body with bare LF (a filter rewrote one of them); RFC 5322 wants CRLF throughout, clients accept either per line.",
			func(c *EvasionCase) {
				body := strings.ReplaceAll(mixed(c), "\r\n", "\n")
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"folded-boundary-value",
			"RFC 5322 §2.2.3 unfolding removes only the CRLF, so a boundary folded inside its quotes keeps the space; the delimiter lines use the unfolded value with that space.",
			func(c *EvasionCase) {
				body := multipart("folded boundary", textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = mimeMessage(body, "Content-Type: multipart/mixed; boundary=\"folded\r\n boundary\"")
			}},
		{"space-before-colon",
			"RFC 822 allowed whitespace before a header's colon and RFC 5322 §4.5 keeps it as obsolete syntax to accept; 'Content-Type :' is honoured by lenient parsers.",
			func(c *EvasionCase) {
				c.Message = mimeMessage(mixed(c), `Content-Type : multipart/mixed; boundary="b1"`)
			}},
		{"missing-close-delimiter",
			"RFC 2046 §5.1.1 ends a multipart with '--boundary--'; when a message ends without it, clients treat the end of the message as the end of the last part.",
			func(c *EvasionCase) {
				body := strings.TrimSuffix(mixed(c), "--b1--\r\n")
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"epilogue-part",
			"RFC 2046 §5.1.1 says the epilogue after the close delimiter is to be ignored; here it holds more delimited parts, which parsers that do not stop at the close delimiter still show.",
			func(c *EvasionCase) {
				body := multipart("b1", entity("Nothing to see.\r\n", "Content-Type: text/plain")) + "\r\n" + mixed(c)
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"preamble-part",
			"RFC 2046 §5.1.1 says the preamble before the first delimiter is to be ignored; here it holds a link behind a near-miss delimiter ('--b1x'). A parser that matches delimiters by prefix takes it as a part; an RFC-correct one leaves it in the preamble, which MIME clients hide but plain-text readers and 'show source' display.",
			func(c *EvasionCase) {
				pre := "--b1x\r\n" + textPart(c.Link) + "\r\n"
				body := pre + multipart("b1", entity("Nothing to see.\r\n", "Content-Type: text/plain"), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"nested-same-boundary",
			"RFC 2046 §5.1.2 forbids a nested multipart from reusing an enclosing boundary; when it does, parsers either give the inner multipart no parts or end it at the outer's delimiters, and the link and attachment must survive either reading.",
			func(c *EvasionCase) {
				inner := entity("", `Content-Type: multipart/alternative; boundary="b1"`)
				body := multipart("b1", inner, textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="b1"`)
			}},
		{"utf16-html",
			"An HTML part in charset utf-16, big-endian with a byte order mark. RFC 2781 §4.3 lets the mark set the byte order (big-endian without one), and WHATWG decoding in browser-engine renderers also lets a mark override the label; byte-wise scans for 'https://' see nothing.",
			func(c *EvasionCase) {
				html := []rune(`<html><body><a href="` + c.Link + `">Open</a></body></html>`)
				var u []byte
				for _, r := range append([]rune{0xfeff}, html...) {
					for _, v := range utf16.Encode([]rune{r}) {
						u = append(u, byte(v>>8), byte(v))
					}
				}
				part := entity(wrapBase64(u), "Content-Type: text/html; charset=utf-16", "Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(part, pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
			}},
		{"utf7-html",
			"UTF-7 (RFC 2152) can spell the whole anchor in base64 runs, so no '<a' or 'https' is in the bytes. Browsers dropped UTF-7, but Thunderbird's mail charset decoding kept it because real mail still uses it; Python's email decodes it, and ICU, which Rspamd converts charsets with, has a UTF-7 converter.",
			func(c *EvasionCase) {
				html := "<html><body>Hello " + utf7Shift(`<a href="`+c.Link+`">Open</a>`) + "</body></html>\r\n"
				part := entity(html, "Content-Type: text/html; charset=utf-7", "Content-Transfer-Encoding: 7bit")
				c.Message = mixedMessage(part, pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
			}},
		{"disposition-attachment-text",
			"Content-Disposition: attachment (RFC 2183) on a text/plain part makes clients offer it as a file rather than show it; the link is inside the attached text.",
			func(c *EvasionCase) {
				text := "Notes\r\nPortal: " + c.Link + "\r\n"
				c.Attachment = []byte(text)
				part := entity(text, "Content-Type: text/plain; charset=us-ascii", `Content-Disposition: attachment; filename="notes.txt"`)
				c.Message = mixedMessage(entity("See the notes.\r\n", "Content-Type: text/plain"), part)
			}},
		{"octet-stream-html",
			"An application/octet-stream attachment named .html is opened by the desktop in a browser, by its file name; the link is in HTML that no client renders inline.",
			func(c *EvasionCase) {
				html := `<html><body><a href="` + c.Link + `">Sign in</a></body></html>` + "\n"
				c.Attachment = []byte(html)
				part := entity(wrapBase64(c.Attachment), `Content-Type: application/octet-stream; name="statement.html"`,
					`Content-Disposition: attachment; filename="statement.html"`, "Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(entity("Your statement is attached.\r\n", "Content-Type: text/plain"), part)
			}},
		{"zip-text-link",
			"A zip attachment opens in the desktop's archive tool; the link is in a text file inside it, out of reach of any scan that does not open archives.",
			func(c *EvasionCase) {
				c.Attachment = zipOf("readme.txt", "Download the full document at "+c.Link+"\r\n")
				part := entity(wrapBase64(c.Attachment), `Content-Type: application/zip; name="docs.zip"`,
					`Content-Disposition: attachment; filename="docs.zip"`, "Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(entity("Documents attached.\r\n", "Content-Type: text/plain"), part)
			}},
		{"base64-junk-chars",
			"RFC 2045 §6.8 tells decoders to ignore characters outside the base64 alphabet; clients decode a body sprinkled with them, strict decoders fail on it.",
			func(c *EvasionCase) {
				enc := wrapBase64(c.Attachment)
				enc = strings.ReplaceAll(enc, "\r\n", "!\r\n")
				att := entity(enc, `Content-Type: application/pdf; name="invoice.pdf"`,
					`Content-Disposition: attachment; filename="invoice.pdf"`, "Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(textPart(c.Link), att)
			}},
		{"boundary-with-specials",
			"A quoted boundary may hold characters that are special in Content-Type ('=', ',', '/', ':', '?' and space are all bchars in RFC 2046 §5.1.1); a parser that tokenises parameters without honouring quotes cuts the boundary short.",
			func(c *EvasionCase) {
				body := multipart("a=b, c/d:e?f", textPart(c.Link), pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
				c.Message = mimeMessage(body, `Content-Type: multipart/mixed; boundary="a=b, c/d:e?f"`)
			}},
		{"utf16-html-unmarked",
			"An HTML part in charset utf-16, big-endian without a byte order mark. RFC 2781 §4.3 reads such text big-endian, as ICU-based readers (Rspamd among them) do; the WHATWG Standard reads the label as little-endian. A sender picks the order a scanner does not read.",
			func(c *EvasionCase) {
				var u []byte
				for _, v := range utf16.Encode([]rune(`<html><body><a href="` + c.Link + `">Open</a></body></html>`)) {
					u = append(u, byte(v>>8), byte(v))
				}
				part := entity(wrapBase64(u), "Content-Type: text/html; charset=utf-16", "Content-Transfer-Encoding: base64")
				c.Message = mixedMessage(part, pdfPart(c.Attachment, "Content-Transfer-Encoding: base64"))
			}},
	}
}

// utf7Shift writes s as one UTF-7 shifted run: '+', UTF-16BE in base64 without padding, '-'.
func utf7Shift(s string) string {
	var u []byte
	for _, v := range utf16.Encode([]rune(s)) {
		u = append(u, byte(v>>8), byte(v))
	}
	return "+" + base64.RawStdEncoding.EncodeToString(u) + "-"
}

// calendarPart is a text/calendar part of calendarBody(props).
func calendarPart(props string) string {
	return entity(calendarBody(props), `Content-Type: text/calendar; method=REQUEST; charset=utf-8`)
}

// calendarBody is a minimal VCALENDAR with one event holding the given property lines.
func calendarBody(props string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//evasion//EN\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n" +
		"UID:evasion@evasion.example.org\r\nDTSTAMP:20261130T120000Z\r\nDTSTART:20261201T090000Z\r\nSUMMARY:Review\r\n" +
		props + "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
}

// zipOf returns a stored zip holding one file; the fixed time keeps the bytes the same on
// every run.
func zipOf(name, text string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store,
		Modified: time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)})
	if err != nil {
		panic(err) // writing to memory cannot fail
	}
	if _, err := w.Write([]byte(text)); err != nil {
		panic(err)
	}
	if err := zw.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}
