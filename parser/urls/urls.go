// Package urls collects the links in a message's text parts for the record's "urls" field:
// plain text, HTML, CSS (ScanCSS) and iCalendar (ScanCalendar); bounce reports and returned
// headers are read as plain text. Bodies are read and forgotten: a Collector keeps the URLs it found, never the text
// around them.
//
// Links rewritten by mail gateways (Safe Links, Proofpoint, Mimecast, ...) are unwrapped to the
// target a click reaches, and kept with the chain of wrappers around it; the recipient tokens
// those wrappers carry are removed first (see redactTokens). Unwrap does the same for one link.
//
// mailto: links are collected too, from href attributes and where text writes them out (see
// mailto.go); bare addresses are not links.
//
// Everything here reads hostile input, so every buffer has a cap (Options) and every scan is a
// single forward pass; what a cap cut short is reported by LimitsHit instead of failing.
package urls

import (
	"math"
	"net/url"
	"slices"

	"github.com/journalsensor/sensor/api"
)

// Names reported by LimitsHit; they go into the record's limits_hit as they are.
const (
	LimitURLs      = "urls"       // MaxURLs distinct URLs were kept; later new ones were dropped
	LimitURLLength = "url_length" // a URL longer than MaxURLLength was cut
	LimitHTMLToken = "html_token" // an HTML token outgrew MaxHTMLToken; scanning restarted after it
	// LimitUnwrapDepth: a link was still wrapped after MaxUnwrapDepth layers; it is kept as
	// the layer reached.
	LimitUnwrapDepth = "url_unwrap_depth"
)

// Options bounds what one Collector may hold. For each limit, zero means the default and a
// negative value means no limit (the rule of go-message's ReadOptions), which also lifts the
// memory bound that limit provides; MaxUnwrapDepth is the exception.
type Options struct {
	MaxURLs      int // distinct URLs per message; default 10000
	MaxURLLength int // bytes per URL; default 8192
	MaxHTMLToken int // bytes the HTML tokenizer may buffer for one token; default 1 MiB, at least 1 KiB
	// MaxUnwrapDepth is how many wrapper layers (Safe Links, Proofpoint, ...) are taken off one
	// link; default 8. Negative turns unwrapping off: unlike the other limits it cannot be
	// lifted, since a link that unwraps to itself would otherwise never finish.
	MaxUnwrapDepth int
}

const (
	defaultMaxURLs      = 10000
	defaultMaxURLLength = 8192
	defaultMaxHTMLToken = 1 << 20
	// Real chains are one or two layers deep (Trend Micro around Safe Links); eight leaves
	// room for forwarding between organisations while keeping a hostile chain cheap.
	defaultMaxUnwrapDepth = 8

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
	if o.MaxUnwrapDepth == 0 {
		o.MaxUnwrapDepth = defaultMaxUnwrapDepth
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
	buf    []byte // ScanText read buffer: carried tail + fresh chunk
	refang []byte // a de-fanged or schemeless link made whole
	w      *unwrapper

	// chunk is how many fresh bytes ScanText reads before scanning; tests shrink it to put
	// chunk boundaries inside URLs.
	chunk int
	// skipping is set while the text scanner passes over the rest of a URL it had to cut.
	skipping bool
	// rereading is set while a text is read a second way (Reread): links already listed are
	// not counted again.
	rereading bool
	// base is the base URL of the HTML document being scanned, from its <base href>.
	base *url.URL
	// before is the byte of the text stream just before the buffer the text scanner looks at,
	// or -1 at the start: whether "www." begins a word can depend on a byte already passed.
	before int
}

// NewCollector returns an empty Collector for one message.
func NewCollector(opts Options) *Collector {
	opts = opts.withDefaults()
	return &Collector{
		opts:  opts,
		index: make(map[string]int),
		w:     newUnwrapper(opts),
		chunk: defaultChunk,
	}
}

// UseBuffer has ScanText read into b (its capacity) rather than allocate a buffer of its own,
// so that a caller parsing many messages can hand one collector's buffer to the next.
func (c *Collector) UseBuffer(b []byte) { c.buf = b[:0] }

// Buffer returns ScanText's read buffer, for a later collector's UseBuffer once this one is
// done with. Nothing the collector returns points into it.
func (c *Collector) Buffer() []byte { return c.buf[:0] }

// Add records one candidate URL found outside the scanned bodies, such as a header value. It
// goes through the same normalisation, unwrapping and dedupe as scanned links; anything that
// is not an http, https, ftp, protocol-relative or mailto URL is ignored.
func (c *Collector) Add(raw, source string) {
	c.addLink([]byte(raw), source)
}

// add is the single door every http, https and ftp candidate passes through, from every
// scanner; mailto URIs have their own, addMailto. obfuscated marks a link that was written
// de-fanged (hxxp://, [.]) and made whole by the text scanner.
func (c *Collector) add(raw []byte, source string, obfuscated bool) {
	ch, ok := c.w.unwrap(raw)
	if !ok {
		return
	}
	if ch.cut {
		c.limit(LimitURLLength)
	}
	if ch.deep {
		c.limit(LimitUnwrapDepth)
	}
	c.record(ch, source, obfuscated)
}

// Reread says whether the scans that follow read a text already scanned, a second way (a
// quoted-printable body as declared, UTF-16 in its other byte order): the links they find
// that are listed already keep their counts, so one occurrence is not counted twice.
func (c *Collector) Reread(on bool) { c.rereading = on }

// record counts the link at the end of the chain unwrap left in c.w. Links are deduped on
// their innermost target, so that differently wrapped copies of one link count as one; the
// chain kept is the first one seen.
func (c *Collector) record(ch chainInfo, source string, obfuscated bool) {
	last := &c.w.layers[ch.n-1]
	u, host := last.url, last.host
	// The map lookup with string(u) does not allocate; only a new URL pays for its key.
	if i, ok := c.index[string(u)]; ok {
		e := &c.urls[i]
		if !c.rereading {
			e.Count++
		}
		// Written de-fanged anywhere in the message is worth knowing.
		e.Obfuscated = e.Obfuscated || obfuscated
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
	wrapped, wrappers := c.w.chain(ch)
	c.urls = append(c.urls, api.URL{
		URL:        key,
		Host:       key[host.start:host.end],
		Sources:    []string{source},
		Count:      1,
		Wrapped:    wrapped,
		Wrappers:   wrappers,
		Unresolved: ch.unresolved,
		Obfuscated: obfuscated,
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
		out[i].Wrapped = slices.Clone(out[i].Wrapped)
		out[i].Wrappers = slices.Clone(out[i].Wrappers)
	}
	return out
}

// LimitsHit names each limit that cut the URL list short, once, in the order first hit.
func (c *Collector) LimitsHit() []string {
	return append([]string(nil), c.limits...)
}
