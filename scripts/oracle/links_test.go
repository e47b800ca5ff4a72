package oracle

import (
	"net/url"
	"strings"

	"github.com/journalsensor/sensor/api"
)

// sensorLinkSet holds every link of the record, and what every wrapper hid, normalised.
func sensorLinkSet(rec *api.Record) map[string]bool {
	have := map[string]bool{}
	for _, u := range rec.URLs {
		have[normalizeLink(u.URL)] = true
		for _, w := range u.Wrapped {
			have[normalizeLink(w)] = true
		}
	}
	return have
}

// normalizeLink puts a link in a form two parsers agree on when they mean the same link:
// scheme and host in lower case, no default port, an empty path as "/" and "//" in it as
// "/", percent-escapes decoded (one parser escapes what the other leaves), and no fragment.
func normalizeLink(s string) string {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return strings.ToLower(unescape(s))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Host)
	switch {
	case u.Scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	case u.Scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	}
	host = strings.TrimSuffix(host, ".")
	path := u.EscapedPath()
	for strings.Contains(path, "//") {
		path = strings.ReplaceAll(path, "//", "/")
	}
	if path == "" {
		path = "/"
	}
	out := u.Scheme + "://" + host + path
	if u.RawQuery != "" || u.ForceQuery {
		out += "?" + u.RawQuery
	}
	return unescape(out)
}

// unescape decodes every valid %XX escape, over and over until none is left (Rspamd decodes
// a query once where the sensor keeps "%2540" as it was), and leaves invalid ones as they
// are.
func unescape(s string) string {
	for range 8 {
		d := unescapeOnce(s)
		if d == s {
			break
		}
		s = d
	}
	return s
}

func unescapeOnce(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}
