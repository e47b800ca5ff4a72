package parser

import (
	"strconv"
	"strings"

	"github.com/emersion/go-msgauth/authres"

	"github.com/journalsensor/sensor/api"
)

// parseAuthResults reads one Authentication-Results field (RFC 8601) with go-msgauth's
// parser, after three repairs it needs for real mail:
//   - comments are removed first: the library splits on spaces and would read
//     "(sender IP is 192.0.2.1)" as four broken parameters;
//   - Microsoft 365 omits the authserv-id ("spf=pass ... ; dkim=none ..."), which the
//     library would take for an unsupported version; an empty id is put in front;
//   - Microsoft 365 also scatters bare domains between results ("header.d=none;corp.com;
//     dmarc=..."), on which the library stops; segments without a method=result go.
//
// ok is false when nothing could be read. Results parsed before a malformed one are kept.
func parseAuthResults(v string) (ar api.AuthResult, ok bool) {
	segs := strings.Split(stripComments(v), ";")
	kept := segs[:1]
	if strings.Contains(segs[0], "=") {
		kept = []string{"", segs[0]}
	}
	for _, s := range segs[1:] {
		if len(kept) > maxAuthResults+1 { // one more than the caller keeps, so it sees the cut
			break
		}
		if strings.Contains(s, "=") {
			kept = append(kept, s)
		}
	}
	id, results, _ := authres.Parse(strings.Join(kept, ";"))
	ar.AuthServID = id
	for _, r := range results {
		ar.Results = append(ar.Results, methodResult(r))
	}
	return ar, id != "" || len(ar.Results) > 0
}

// methodResult flattens the library's typed results back into method, result, reason and
// the RFC 8601 property names, which is what the pipeline queries by.
func methodResult(r authres.Result) api.AuthMethodResult {
	var m api.AuthMethodResult
	props := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			props[k] = v
		}
	}
	switch r := r.(type) {
	case *authres.SPFResult:
		m = api.AuthMethodResult{Method: "spf", Result: string(r.Value), Reason: r.Reason}
		set("smtp.mailfrom", r.From)
		set("smtp.helo", r.Helo)
	case *authres.DKIMResult:
		m = api.AuthMethodResult{Method: "dkim", Result: string(r.Value), Reason: r.Reason}
		set("header.d", r.Domain)
		set("header.i", r.Identifier)
	case *authres.DMARCResult:
		m = api.AuthMethodResult{Method: "dmarc", Result: string(r.Value), Reason: r.Reason}
		set("header.from", r.From)
	case *authres.ARCResult:
		m = api.AuthMethodResult{Method: "arc", Result: string(r.Value)}
		set("smtp.remote-ip", r.RemoteIP)
		if r.OldestPass > 0 {
			set("header.oldest-pass", strconv.Itoa(r.OldestPass))
		}
	case *authres.IPRevResult:
		m = api.AuthMethodResult{Method: "iprev", Result: string(r.Value), Reason: r.Reason}
		set("policy.iprev", r.IP)
	case *authres.AuthResult:
		m = api.AuthMethodResult{Method: "auth", Result: string(r.Value), Reason: r.Reason}
		set("smtp.auth", r.Auth)
	case *authres.DomainKeysResult:
		m = api.AuthMethodResult{Method: "domainkeys", Result: string(r.Value), Reason: r.Reason}
		set("header.d", r.Domain)
		set("header.from", r.From)
		set("header.sender", r.Sender)
	case *authres.SenderIDResult:
		m = api.AuthMethodResult{Method: "sender-id", Result: string(r.Value), Reason: r.Reason}
		set("header."+strings.ToLower(r.HeaderKey), r.HeaderValue)
	case *authres.GenericResult:
		m = api.AuthMethodResult{Method: r.Method, Result: string(r.Value)}
		for k, v := range r.Params {
			if k == "reason" {
				m.Reason = strings.Trim(v, `"`)
				continue
			}
			set(k, v)
		}
	}
	if len(props) > 0 {
		m.Props = props
	}
	return m
}

// stripComments removes RFC 5322 comments (nested parentheses), leaving quoted strings
// alone, and caps the work at the value's length.
func stripComments(v string) string {
	if !strings.Contains(v, "(") {
		return v
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case quoted:
			if c == '\\' && i+1 < len(v) {
				b.WriteByte(c)
				i++
				c = v[i]
			} else if c == '"' {
				quoted = false
			}
		case depth > 0:
			if c == '\\' {
				i++
			} else if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
			continue
		case c == '"':
			quoted = true
		case c == '(':
			depth++
			b.WriteByte(' ')
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
