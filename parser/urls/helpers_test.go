package urls

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/journalsensor/sensor/api"
)

// urlList renders the URLs only, for tables that are about which links were found.
func urlList(us []api.URL) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.URL)
	}
	return out
}

// describe renders everything the record carries about each URL, for tests about counts,
// sources and hosts.
func describe(us []api.URL) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, fmt.Sprintf("%s host=%s count=%d sources=%s",
			u.URL, u.Host, u.Count, strings.Join(u.Sources, ",")))
	}
	return out
}

func sameList(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got  %q\n want %q", what, got, want)
	}
}

// splitReader hands out its input in the given piece sizes, then whatever is left.
type splitReader struct {
	data   string
	pieces []int
}

func (r *splitReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.pieces) > 0 {
		n = min(n, r.pieces[0])
		r.pieces = r.pieces[1:]
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// failingReader returns its data and then err.
type failingReader struct {
	data string
	err  error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.data == "" {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var errBroken = errors.New("broken pipe")

// checkInvariants asserts what must hold for any input: bounded, distinct, well-formed
// entries.
func checkInvariants(t *testing.T, c *Collector, opts Options) {
	t.Helper()
	opts = opts.withDefaults()
	us := c.URLs()
	if len(us) > opts.MaxURLs {
		t.Errorf("%d URLs, limit %d", len(us), opts.MaxURLs)
	}
	seen := map[string]bool{}
	for _, u := range us {
		if len(u.URL) > opts.MaxURLLength {
			t.Errorf("URL of %d bytes, limit %d: %q", len(u.URL), opts.MaxURLLength, u.URL)
		}
		if !utf8.ValidString(u.URL) || !utf8.ValidString(u.Host) {
			t.Errorf("URL %q or host %q is not valid UTF-8", u.URL, u.Host)
		}
		if seen[u.URL] {
			t.Errorf("duplicate URL %q", u.URL)
		}
		seen[u.URL] = true
		if u.Count < 1 || len(u.Sources) < 1 {
			t.Errorf("URL %q: count %d, sources %q", u.URL, u.Count, u.Sources)
		}
		if !strings.Contains(u.URL, u.Host) {
			t.Errorf("URL %q does not contain its host %q", u.URL, u.Host)
		}
		if !strings.HasPrefix(u.URL, "http://") && !strings.HasPrefix(u.URL, "https://") &&
			!strings.HasPrefix(u.URL, "ftp://") && !strings.HasPrefix(u.URL, "mailto:") &&
			opts.MaxURLLength >= len("https://") {
			t.Errorf("URL %q has no http, https, ftp or mailto scheme", u.URL)
		}
		// Only a cut can take a mailto link's host away.
		if strings.HasPrefix(u.URL, "mailto:") && (len(u.Wrapped) != 0 || u.Obfuscated ||
			u.Host == "" && !slices.Contains(c.LimitsHit(), LimitURLLength)) {
			t.Errorf("mailto URL %q: host %q, wrapped %q, obfuscated %v", u.URL, u.Host, u.Wrapped, u.Obfuscated)
		}
	}
}
