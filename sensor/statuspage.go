package sensor

import (
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
)

// statusPageHTML is the status page at /: one file, its CSS and JS inline, so that the binary
// serves it alone, with nothing fetched from elsewhere (a sensor's admin port is often on a
// network without the internet, and a CDN would learn who looks at it). It holds no data: it
// fetches /status every few seconds, with the admin token when one is needed.
//
//go:embed statuspage/index.html
var statusPageHTML []byte

// inlineBlock is the body of an inline <script> or <style> element.
var inlineBlock = regexp.MustCompile(`(?s)<(script|style)>(.*?)</(?:script|style)>`)

// statusPage serves the page with a Content-Security-Policy that allows exactly its own
// inline script and style (by hash), fetches to this origin only, and nothing else: the
// page keeps the admin token in sessionStorage, so no injected or foreign script may run
// beside it, and it may not be framed.
func statusPage() http.Handler {
	var scripts, styles []string
	for _, m := range inlineBlock.FindAllSubmatch(statusPageHTML, -1) {
		sum := sha256.Sum256(m[2])
		src := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
		if string(m[1]) == "script" {
			scripts = append(scripts, src)
		} else {
			styles = append(styles, src)
		}
	}
	csp := "default-src 'none'; script-src " + strings.Join(scripts, " ") + "; style-src " + strings.Join(styles, " ") +
		"; connect-src 'self'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		// A new binary may bring a new page: always ask again.
		h.Set("Cache-Control", "no-cache")
		_, _ = w.Write(statusPageHTML)
	})
}
