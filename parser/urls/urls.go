// Package urls collects the links in a message's text and HTML parts for the record's "urls"
// field. Bodies are read and forgotten: a Collector keeps the URLs it found, never the text
// around them.
//
// Everything here reads hostile input, so every buffer has a cap (Options) and every scan is a
// single forward pass; what a cap cut short is reported by LimitsHit instead of failing.
package urls

import (
	"math"

	"github.com/journalsensor/sensor/api"
)

// Names reported by LimitsHit; they go into the record's limits_hit as they are.
const (
	LimitURLs      = "urls"       // MaxURLs distinct URLs were kept; later new ones were dropped
	LimitURLLength = "url_length" // a URL longer than MaxURLLength was cut
	LimitHTMLToken = "html_token" // an HTML token outgrew MaxHTMLToken; scanning restarted after it
)

// Options bounds what one Collector may hold. Zero means the default; negative means
// unlimited, which also lifts the memory bound that limit provides.
type Options struct {
	MaxURLs      int // distinct URLs per message; default 10000
	MaxURLLength int // bytes per URL; default 8192
	MaxHTMLToken int // bytes the HTML tokenizer may buffer for one token; default 1 MiB, at least 1 KiB
}

const (
	defaultMaxURLs      = 10000
	defaultMaxURLLength = 8192
	defaultMaxHTMLToken = 1 << 20

	// Below this, restarting the tokenizer after every few bytes would cost more than the
	// buffer it saves.
	minHTMLToken = 1 << 10
)

func (o Options) withDefaults() Options {
	if o.MaxURLs == 0 {
		o.MaxURLs = defaultMaxURLs
	}
	if o.MaxURLLength == 0 {
		o.MaxURLLength = defaultMaxURLLength
	}
	if o.MaxURLLength < 0 {
		// Leaves room for the slack added on top in the text scanner without overflowing.
		o.MaxURLLength = math.MaxInt / 4
	}
	switch {
	case o.MaxHTMLToken == 0:
		o.MaxHTMLToken = defaultMaxHTMLToken
	case o.MaxHTMLToken < 0:
		o.MaxHTMLToken = 0 // the tokenizer's own "no limit"
	case o.MaxHTMLToken < minHTMLToken:
		o.MaxHTMLToken = minHTMLToken
	}
	return o
}

// Collector gathers the distinct URLs of one message across all its parts. It is not safe for
// concurrent use.
type Collector struct {
	opts   Options
	index  map[string]int // normalised URL → position in urls
	urls   []api.URL
	limits []string

	// Scratch space reused across calls so a message with many parts and links does not
	// allocate per link.
	buf     []byte // ScanText read buffer: carried tail + fresh chunk
	clean   []byte // candidate with tabs and newlines removed
	host    []byte // host with invalid UTF-8 escaped
	hostDec []byte // host percent-decoded
	norm    []byte // the normalised URL

	// chunk is how many fresh bytes ScanText reads before scanning; tests shrink it to put
	// chunk boundaries inside URLs.
	chunk int
	// skipping is set while the text scanner passes over the rest of a URL it had to cut.
	skipping bool
}

// NewCollector returns an empty Collector for one message.
func NewCollector(opts Options) *Collector {
	opts = opts.withDefaults()
	return &Collector{
		opts:  opts,
		index: make(map[string]int),
		chunk: defaultChunk,
	}
}

// Add records one candidate URL found outside the scanned bodies, such as a header value. It
// goes through the same normalisation and dedupe as scanned links; anything that is not an
// http, https, ftp or protocol-relative URL is ignored.
func (c *Collector) Add(raw, source string) {
	c.add([]byte(raw), source)
}

// add is the single door every candidate passes through, from every scanner.
func (c *Collector) add(raw []byte, source string) {
	u, host, ok := c.normalise(raw)
	if !ok {
		return
	}
	u = redactTokens(u, host)
	// Wrapped-link unwrapping (Safe Links, Proofpoint, ...) belongs here: it will turn u into
	// its innermost target plus the Wrapped/Wrappers chain before dedupe, so that two
	// differently wrapped copies of one link count as one.
	c.record(u, host, source)
}

func (c *Collector) record(u []byte, host span, source string) {
	// The map lookup with string(u) does not allocate; only a new URL pays for its key.
	if i, ok := c.index[string(u)]; ok {
		e := &c.urls[i]
		e.Count++
		for _, s := range e.Sources {
			if s == source {
				return
			}
		}
		e.Sources = append(e.Sources, source)
		return
	}
	if c.opts.MaxURLs >= 0 && len(c.urls) >= c.opts.MaxURLs {
		c.limit(LimitURLs)
		return
	}
	key := string(u)
	c.index[key] = len(c.urls)
	c.urls = append(c.urls, api.URL{
		URL:     key,
		Host:    key[host.start:host.end],
		Sources: []string{source},
		Count:   1,
	})
}

func (c *Collector) limit(name string) {
	for _, l := range c.limits {
		if l == name {
			return
		}
	}
	c.limits = append(c.limits, name)
}

// URLs returns the distinct URLs in the order they were first seen. The result is the
// caller's: later calls on the Collector do not change it.
func (c *Collector) URLs() []api.URL {
	if len(c.urls) == 0 {
		return nil
	}
	out := make([]api.URL, len(c.urls))
	copy(out, c.urls)
	for i := range out {
		out[i].Sources = append([]string(nil), out[i].Sources...)
	}
	return out
}

// LimitsHit names each limit that cut the URL list short, once, in the order first hit.
func (c *Collector) LimitsHit() []string {
	return append([]string(nil), c.limits...)
}
