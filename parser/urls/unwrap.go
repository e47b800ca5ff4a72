package urls

// Unwrapped is what Unwrap makes of one link.
type Unwrapped struct {
	// URL is the innermost target, normalised. When Unresolved, it is the last wrapper.
	URL string
	// Host is URL's host, lower-cased and in IDNA ASCII form.
	Host string
	// Wrapped lists the wrapping URLs, outermost first, normalised, with recipient tokens
	// removed; it does not include the target.
	Wrapped []string
	// Wrappers names the scheme of each entry of Wrapped, index for index (WrapperSafeLinks, ...).
	Wrappers []string
	// Unresolved is set when the last wrapper hides its target (Mimecast), or carries one that
	// does not decode to an http, https or ftp URL.
	Unresolved bool
	// Cut is set when a layer was longer than MaxURLLength and was cut.
	Cut bool
	// DepthExceeded is set when MaxUnwrapDepth layers were taken off and URL is still wrapped.
	DepthExceeded bool
}

// Unwrap normalises raw as the Collector does and takes off, one layer at a time, the
// link-rewriting wrappers of mail gateways (Safe Links, Proofpoint, Mimecast, ...), decoding
// each layer's target once. ok is false when raw is not an http, https, ftp or
// protocol-relative URL. It never fails on garbage: a wrapper it cannot open ends the chain.
func Unwrap(raw string, opts Options) (res Unwrapped, ok bool) {
	w := newUnwrapper(opts.withDefaults())
	ch, ok := w.unwrap([]byte(raw))
	if !ok {
		return Unwrapped{}, false
	}
	last := &w.layers[ch.n-1]
	res = Unwrapped{
		URL:           string(last.url),
		Host:          string(last.url[last.host.start:last.host.end]),
		Unresolved:    ch.unresolved,
		Cut:           ch.cut,
		DepthExceeded: ch.deep,
	}
	res.Wrapped, res.Wrappers = w.chain(ch)
	return res, true
}

// unwrapper holds the scratch space of unwrapping, reused across links.
type unwrapper struct {
	normaliser
	maxDepth int // wrapper layers taken off per link; 0 turns unwrapping off

	layers []layer // the chain of the last link, outermost first; reused
	dec    []byte  // a layer's decoded target
	tmp    []byte  // an intermediate decoding step
	b64    []byte  // Proofpoint v3's decoded replacement buffer
}

// layer is one URL of a chain: a wrapper, or the target at its end.
type layer struct {
	url     []byte // normalised, tokens removed; the array is kept for the next link
	host    span
	name    string // wrapper scheme; "" for the target
	payload span   // where the next layer rides in url
	tainted bool   // url carried a recipient token, itself or in a layer it wraps
}

// chainInfo describes the chain unwrap left in w.layers.
type chainInfo struct {
	n          int  // layers in use; w.layers[n-1] is the result
	wrappers   int  // leading layers that are wrappers: n-1, or n when unresolved
	unresolved bool // the last wrapper could not be opened
	cut        bool // a layer was cut to MaxURLLength
	deep       bool // the depth cap stopped unwrapping of a wrapper
}

func newUnwrapper(opts Options) *unwrapper {
	return &unwrapper{
		normaliser: normaliser{maxLen: opts.MaxURLLength},
		maxDepth:   max(opts.MaxUnwrapDepth, 0),
	}
}

// unwrap normalises raw and takes its wrappers off. The loop is bounded by maxDepth, and
// every layer by maxLen, so a hostile chain costs at most (maxDepth+1) × maxLen bytes.
func (w *unwrapper) unwrap(raw []byte) (ch chainInfo, ok bool) {
	w.cut = false
	u, host, ok := w.normalise(raw)
	if !ok {
		return chainInfo{}, false
	}
	for {
		l := w.push(ch.n, u, host)
		ch.n++
		if w.maxDepth == 0 {
			break
		}
		pe := w.peel(l.url, l.host)
		if pe.name == "" {
			break
		}
		if ch.n > w.maxDepth {
			ch.deep = true
			break
		}
		l.name, l.payload = pe.name, pe.payload
		if pe.inner == nil {
			ch.unresolved = true
			break
		}
		if u, host, ok = w.normalise(pe.inner); !ok {
			ch.unresolved = true
			break
		}
	}
	ch.wrappers = ch.n - 1
	if ch.unresolved {
		ch.wrappers = ch.n
	}
	// A token that was removed from an inner layer is still in the payload of the layer that
	// wraps it, encoded (Trend Micro around Safe Links carries the recipient's address in its
	// url=). Such a payload goes: the next entry of the chain shows the target anyway.
	for i := ch.wrappers - 1; i >= 0; i-- {
		if i+1 >= ch.n || !w.layers[i+1].tainted {
			continue
		}
		l := &w.layers[i]
		if p := l.payload; p.start < p.end && p.end <= len(l.url) {
			l.url = append(l.url[:p.start], l.url[p.end:]...)
		}
		l.tainted = true
	}
	ch.cut = w.cut
	return ch, true
}

// push stores u as layer i of the chain, with its recipient tokens removed.
func (w *unwrapper) push(i int, u []byte, host span) *layer {
	if i == len(w.layers) {
		w.layers = append(w.layers, layer{})
	}
	l := &w.layers[i]
	n := len(u)
	l.url = append(l.url[:0], u...)
	l.url = redactTokens(l.url, host)
	*l = layer{url: l.url, host: host, tainted: len(l.url) < n}
	return l
}

// chain returns the wrappers of the last link as the record carries them.
func (w *unwrapper) chain(ch chainInfo) (wrapped, wrappers []string) {
	if ch.wrappers == 0 {
		return nil, nil
	}
	wrapped = make([]string, ch.wrappers)
	wrappers = make([]string, ch.wrappers)
	for i := range ch.wrappers {
		wrapped[i] = string(w.layers[i].url)
		wrappers[i] = w.layers[i].name
	}
	return wrapped, wrappers
}
