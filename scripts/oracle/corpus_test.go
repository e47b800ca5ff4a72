//go:build e2e

// Package oracle checks that the sensor's parser finds at least what other parsers find:
// Rspamd, Python's email package and enmime, over the shared corpus and the evasion set.
//
//	go test -tags e2e -count=1 -v ./scripts/oracle/
package oracle

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/internal/testkit"
	"github.com/journalsensor/sensor/parser"
)

// knownMisses are links and attachments Rspamd finds and the sensor does not, with why.
// The key is the path relative to the corpus, then a space and Rspamd's link or the
// attachment's sha256; a path alone covers every link and attachment of that message. They
// are parser bugs waiting for a fix: the test fails on an entry that no longer matches
// anything, so that it is removed once the parser finds what it names.
var knownMisses = map[string]string{}

// knownMiss returns why Rspamd's item (a link or a sha256) in the message at rel is a known
// miss, or "", and marks the entry used.
func knownMiss(rel, item string, used map[string]bool) string {
	for _, k := range []string{rel + " " + item, rel} {
		if r := knownMisses[k]; r != "" {
			used[k] = true
			return r
		}
	}
	return ""
}

// TestCorpusAgainstRspamd parses every corpus message with the sensor and with Rspamd and
// fails on a web link or an attachment Rspamd finds that the sensor does not.
func TestCorpusAgainstRspamd(t *testing.T) {
	dir := testkit.CorpusDir(t)
	files := testkit.CorpusMessages(t, dir)
	oracle := testkit.Rspamd(t, files)
	p, err := parser.New(parser.Options{})
	if err != nil {
		t.Fatal(err)
	}

	links := newTally()
	hashes := newTally()
	used := map[string]bool{}
	var rspamdLinks, sensorLinks, both int
	var sensorOnly []string
	for _, file := range files {
		rel, err := filepath.Rel(dir, file)
		if err != nil {
			t.Fatal(err)
		}
		rec := parseFile(t, p, file)
		have := sensorLinkSet(rec)
		found := map[string]bool{}
		for _, u := range oracle[file].RspamdURLs {
			if u.Protocol != "http" && u.Protocol != "https" {
				continue
			}
			rspamdLinks++
			key := rel + " " + u.Text
			switch cat, match := classifyLink(u, have, oracle[file].Text); {
			case match != "":
				both++
				found[match] = true
			case knownMiss(rel, u.Text, used) != "":
				links.add("known miss: "+knownMiss(rel, u.Text, used), key)
			case cat != "":
				links.add(cat, key)
			default:
				t.Errorf("%s: Rspamd finds %q (raw %q, flags %v); the sensor does not", rel, u.Text, u.Raw, u.Flags)
				links.add("missed", key)
			}
		}
		for _, u := range rec.URLs {
			if !strings.HasPrefix(u.URL, "http:") && !strings.HasPrefix(u.URL, "https:") {
				continue
			}
			sensorLinks++
			if !found[normalizeLink(u.URL)] && !slices.ContainsFunc(u.Wrapped, func(w string) bool { return found[normalizeLink(w)] }) {
				sensorOnly = append(sensorOnly, rel+" "+u.URL)
			}
		}
		if filepath.Ext(file) == ".tnef" {
			// Not a message: Rspamd takes the MIME text inside the binary stream for a
			// header, the sensor reads the file as a body without one.
			for _, part := range oracle[file].RspamdParts {
				if part.Leaf() && part.Attachment {
					hashes.add("a bare TNEF stream, not a message", rel+" "+part.Filename+" "+part.SHA256)
				}
			}
			continue
		}
		checkAttachments(t, rel, oracle[file].RspamdParts, rec, hashes, used)
	}
	for k := range knownMisses {
		if !used[k] {
			t.Errorf("knownMisses[%q] matches nothing any more: remove it", k)
		}
	}
	t.Logf("web links: Rspamd found %d, the sensor %d; %d of Rspamd's are the sensor's too, %d of the sensor's are not Rspamd's",
		rspamdLinks, sensorLinks, both, len(sensorOnly))
	if testing.Verbose() {
		t.Logf("web links only the sensor reports:\n  %s", strings.Join(sensorOnly, "\n  "))
	}
	links.log(t, "Rspamd web links the sensor does not report")
	hashes.log(t, "Rspamd attachments")
}

// checkAttachments fails when Rspamd decoded a leaf part's bytes that no sensor attachment
// has.
func checkAttachments(t *testing.T, rel string, parts []testkit.RspamdPart, rec *api.Record, tally *tally, used map[string]bool) {
	t.Helper()
	have := attachmentSet(rec)
	for _, part := range parts {
		if !part.Leaf() || !part.Attachment && (part.Len == 0 || strings.HasPrefix(part.Type, "text/")) {
			continue
		}
		key := rel + " " + part.Type + " " + part.Filename + " " + part.SHA256
		switch {
		case have[part.SHA256]:
			tally.add("found by both", key)
		case knownMiss(rel, part.SHA256, used) != "":
			tally.add("known miss: "+knownMiss(rel, part.SHA256, used), key)
		case part.Len == 0:
			tally.add("empty in Rspamd", key)
		case have[part.TrimmedSHA256]:
			tally.add("Rspamd keeps the line break before the boundary", key)
		case part.SHA256 == part.RawSHA256 && part.CTE != "7bit" && part.CTE != "8bit" && part.CTE != "binary":
			// Rspamd kept the encoded text: it did not recognise the transfer encoding.
			tally.add("not decoded by Rspamd (cte "+part.CTE+")", key)
		default:
			t.Errorf("%s: Rspamd decodes a %s part %q to sha256 %s (%d bytes, cte %s); no sensor attachment has it",
				rel, part.Type, part.Filename, part.SHA256, part.Len, part.CTE)
			tally.add("missed", key)
		}
	}
}

// classifyLink returns the sensor link u matches (normalised), or else the category of an
// accepted difference, or neither for a miss. text is the decoded text of the message's body
// parts, as Rspamd saw it.
func classifyLink(u testkit.RspamdURL, have map[string]bool, text string) (category, match string) {
	// Rspamd folds "//" in a path to "/" in its text of a link, so its raw form is tried too.
	for _, s := range []string{u.Text, u.Raw} {
		if n := normalizeLink(s); have[n] {
			return "", n
		}
	}
	n := normalizeLink(u.Text)
	if m := punctuationVariant(n, have); m != "" {
		return "trailing punctuation", ""
	}
	if redacted(n, have) {
		return "recipient token the sensor redacts", ""
	}
	if t := wrapTarget(n); t != "" {
		for h := range have {
			if wrapTarget(h) == t {
				// The sensor keeps the first wrapping of each target it reports.
				return "another wrapping of a target the sensor reports", ""
			}
		}
	}
	if u.Has("schemaless") {
		// Rspamd adds "http://" to what it reads as a link without one.
		_, bare, _ := strings.Cut(u.Raw, "://")
		if strings.ContainsAny(strings.TrimRight(bare, "/."), "/?#@") {
			return "link without a scheme", ""
		}
		return "host name in running text", ""
	}
	if u.Has("html_displayed") && !strings.Contains(strings.ToLower(text), strings.ToLower(u.Raw)) {
		// The text of an <a> element that looks like a host name: Rspamd compares it with
		// the href (phishing), the sensor reports the href.
		return "host name shown as a link's text", ""
	}
	if u.Has("query") {
		for h := range have {
			if strings.Contains(h, n) {
				return "link inside another link's query", ""
			}
		}
	}
	return "", ""
}

// punctuationVariant returns the sensor link that differs from n only by trailing
// punctuation on either side.
func punctuationVariant(n string, have map[string]bool) string {
	const punct = ".,;:!?)]}>'\"/"
	trimmed := strings.TrimRight(n, punct)
	for h := range have {
		if strings.TrimRight(h, punct) == trimmed {
			return h
		}
	}
	return ""
}

// redacted reports whether n matches a sensor link once the recipient's token is dropped
// from both, as the sensor drops it from rewritten links before they leave the machine:
// Proofpoint's r parameter and its v3 trailer, Safe Links' data, sdata and reserved.
func redacted(n string, have map[string]bool) bool {
	r := dropToken(n)
	if r == n {
		return false
	}
	for h := range have {
		if dropToken(h) == r {
			return true
		}
	}
	return false
}

// wrapTarget returns the rewriter and the target a Proofpoint or Safe Links link wraps,
// without the signature and tracking parameters that differ between two wrappings of one
// target; "" for other links.
func wrapTarget(n string) string {
	u, err := url.Parse(n)
	if err != nil {
		return ""
	}
	q := u.Query()
	switch {
	case u.Host == "urldefense.proofpoint.com" && q.Get("u") != "":
		return u.Host + u.Path + "?u=" + q.Get("u")
	case strings.HasSuffix(u.Host, ".safelinks.protection.outlook.com") && q.Get("url") != "":
		return u.Host + u.Path + "?url=" + q.Get("url")
	}
	return ""
}

func dropToken(n string) string {
	u, err := url.Parse(n)
	if err != nil {
		return n
	}
	var names []string
	switch {
	case u.Host == "urldefense.com" && strings.HasPrefix(u.Path, "/v3/"):
		if i := strings.Index(n, "!"); i >= 0 {
			return n[:i]
		}
		return n
	case u.Host == "urldefense.proofpoint.com":
		names = []string{"r"}
	case strings.HasSuffix(u.Host, ".safelinks.protection.outlook.com"):
		names = []string{"data", "sdata", "reserved"}
	default:
		return n
	}
	var kept []string
	for _, p := range strings.Split(u.RawQuery, "&") {
		name, _, _ := strings.Cut(p, "=")
		if !slices.Contains(names, strings.ToLower(name)) {
			kept = append(kept, p)
		}
	}
	u.RawQuery = strings.Join(kept, "&")
	return u.String()
}

// eachCorpusRecord parses every message of the shared corpus with the sensor and calls fn
// with its path, its path inside the corpus, and its record.
func eachCorpusRecord(t *testing.T, fn func(file, rel string, rec *api.Record)) {
	t.Helper()
	dir := testkit.CorpusDir(t)
	p, err := parser.New(parser.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range testkit.CorpusMessages(t, dir) {
		rel, _ := filepath.Rel(dir, file)
		fn(file, rel, parseFile(t, p, file))
	}
}

// attachmentSet holds the sha256 of every attachment of the record, at every depth.
func attachmentSet(rec *api.Record) map[string]bool {
	have := make(map[string]bool, len(rec.Attachments))
	for _, a := range rec.Attachments {
		have[a.SHA256] = true
	}
	return have
}

func parseFile(t *testing.T, p *parser.Parser, file string) *api.Record {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := p.Parse(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	return rec
}

// tally counts items per category, for the summary.
type tally struct{ items map[string][]string }

func newTally() *tally { return &tally{items: map[string][]string{}} }

func (c *tally) add(category, item string) { c.items[category] = append(c.items[category], item) }

// log prints each category's count, and under -v its items.
func (c *tally) log(t *testing.T, title string) {
	t.Helper()
	cats := make([]string, 0, len(c.items))
	for k := range c.items {
		cats = append(cats, k)
	}
	sort.Strings(cats)
	var b strings.Builder
	fmt.Fprintf(&b, "%s:", title)
	for _, k := range cats {
		fmt.Fprintf(&b, "\n  %s: %d", k, len(c.items[k]))
	}
	t.Log(b.String())
	if !testing.Verbose() {
		return
	}
	for _, k := range cats {
		if k == "found by both" {
			continue
		}
		t.Logf("%s, %s:\n  %s", title, k, strings.Join(c.items[k], "\n  "))
	}
}
