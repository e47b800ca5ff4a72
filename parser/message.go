package parser

import (
	"strings"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/parser/received"
	"github.com/journalsensor/sensor/parser/walker"
)

// maxTraceFields caps the Received and Authentication-Results entries parsed per message.
// Real chains are a few dozen long; a message with thousands of trace fields is an attack
// on the pipeline's storage, and every field is still listed in headers.
const maxTraceFields = 500

// maxAuthResults caps the method results kept from one Authentication-Results field; a
// real one has a handful (spf, dkim per signature, dmarc, arc, compauth).
const maxAuthResults = 64

// describe fills the record's message fields from the scored message's header.
func (st *state) describe(p *walker.Part) {
	m := &st.msg
	path := p.Path
	if p.Kind != walker.Multipart {
		path = parentMessagePath(p)
	}
	fixed8bit := false
	m.Headers = make([][2]string, 0, len(p.Header.Fields))
	for _, f := range p.Header.Fields {
		v, fixed := decodeHeaderValue(f.Value)
		fixed8bit = fixed8bit || fixed
		name, _ := decodeHeaderValue(f.Name)
		m.Headers = append(m.Headers, [2]string{name, v})
	}
	if fixed8bit {
		st.anomaly(anomaly8bitHeader, path, "header bytes that are not UTF-8 read as Windows-1252")
	}

	h := &p.Header
	m.MessageID = strings.TrimSpace(h.Get("Message-ID"))
	m.Subject, _ = decodeHeaderValue(h.Get("Subject"))
	if v := h.Get("Date"); v != "" {
		if d, ok := parseDate(v); ok {
			m.Date = d
		} else {
			st.anomaly(anomalyBadDate, path, clip(v, 200))
		}
	}
	m.From = st.addressField(h, "From", path)
	m.ReplyTo = st.addressField(h, "Reply-To", path)
	m.To = st.addressField(h, "To", path)
	m.Cc = st.addressField(h, "Cc", path)
	m.Bcc = st.addressField(h, "Bcc", path)
	if s := st.addressField(h, "Sender", path); len(s) > 0 {
		m.Sender = &s[0]
	}
	if v := h.Get("Return-Path"); v != "" {
		m.ReturnPath = bareAddress(v)
	}
	for _, v := range h.Values("Received") {
		if len(m.Received) >= maxTraceFields {
			st.limit(limitTraceFields)
			break
		}
		v, _ = decodeHeaderValue(v)
		m.Received = append(m.Received, received.Parse(v))
	}
	for _, v := range h.Values("Authentication-Results") {
		if len(m.AuthenticationResults) >= maxTraceFields {
			st.limit(limitTraceFields)
			break
		}
		if ar, ok := parseAuthResults(v); ok {
			if len(ar.Results) > maxAuthResults {
				ar.Results = ar.Results[:maxAuthResults]
				st.limit(limitTraceFields)
			}
			m.AuthenticationResults = append(m.AuthenticationResults, ar)
		} else {
			st.anomaly(anomalyBadAuthResults, path, clip(v, 200))
		}
	}
	m.InReplyTo = strings.TrimSpace(h.Get("In-Reply-To"))
	if v := h.Get("References"); v != "" {
		m.References = msgIDs(v)
	}
}

// addressField parses every field of that name (a repeated To is still To).
func (st *state) addressField(h *walker.Header, name, path string) []api.Address {
	var all []api.Address
	for _, v := range h.Values(name) {
		list, ok := parseAddresses(v)
		if !ok {
			st.anomaly(anomalyBadAddressList, path, name+": "+clip(v, 200))
		}
		all = append(all, list...)
	}
	return all
}

// clip shortens a header value quoted in an anomaly; headers are metadata, not body text,
// but an anomaly should stay small.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
