package sensor

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/journalsensor/sensor/api"
)

// Proof of origin from the copy's own header. The SMTP door proves what it can of a client
// (a verified client certificate, the unguessable journal address); the header proofs here
// are judged by the intake, after the parse and before the commit, on the outer header
// block of the copy: for a journal report that is the report Exchange Online wrote, never
// the attached original, whose headers its external sender wrote.
//
// The decision rule: when any header proof is configured, a copy is accepted only if at
// least one configured header proof holds:
//
//   - m365_tenant: every Microsoft 365 tenant attribution header on the outer block
//     (X-OriginatorOrg, X-MS-Exchange-CrossTenant-Id, X-MS-Exchange-Organization-Id) that
//     can be judged names a pinned tenant, and at least one does. X-OriginatorOrg holds a
//     domain and is judged when a tenant is pinned by domain; the other two hold a tenant
//     id and are judged when a tenant is pinned by id. Domains and ids compare
//     case-insensitively.
//   - source_header: the shared-secret header is on the outer block with the secret.
//
// A copy is refused (550 5.7.1) with a reason that says which proofs failed and how: it
// names a foreign tenant, it names no tenant, its tenant headers disagree (one names a
// pinned tenant, another does not), the source header is missing, or it does not match. The
// reason never shows the secret.
//
// Several copies of a tenant header: each is judged, and one that names a foreign tenant
// refuses the copy, wherever it stands. Exchange Online writes exactly one of each as mail
// leaves a tenant, replacing what the sender wrote, so a second copy was added by someone
// else; and Exchange does not prepend them (they stand among its other X-MS- fields, below
// the sender's own), so their order proves nothing. A tenant that relays to us through its
// own Exchange Online tenant cannot remove the header that names it, so requiring every
// copy to be pinned is what keeps such a copy out. (docs/sources/m365-tenant-headers.md
// has the evidence, and what a direct sender can forge.)
//
// Several copies of the source header: the copy is accepted when one matches; a copy that
// does not match proves nothing either way, since only a holder of the secret can write one
// that does.

// maxOriginHeaderBytes bounds the outer header block the intake keeps to judge. Exchange's
// journal reports and gateways' copies have outer headers of a few KiB (of the shared
// corpus's messages that passed Exchange Online, the largest outer block is under 14 KiB);
// a block that does not end within this is judged to prove nothing.
const maxOriginHeaderBytes = 256 << 10

// maxOriginLineBytes is the longest header line the proofs read. The parser hands out a line
// longer than its 64 KiB buffer in pieces and reads the pieces after the first as it can
// (a continuation, or the end of the header), so past that length the block judged here and
// the block the parser records may differ, and a pinned tenant written where the parser
// sees body could prove a copy. No sender needs such a line (RFC 5322 §2.1.1: 998
// characters), so a block with one proves nothing, well below the parser's buffer.
const maxOriginLineBytes = 32 << 10

// minSecretLength is the shortest shared secret accepted: 16 bytes of letters and digits
// is beyond guessing over SMTP.
const minSecretLength = 16

// The tenant attribution headers Exchange Online stamps.
const (
	hdrOriginatorOrg   = "x-originatororg"
	hdrCrossTenantID   = "x-ms-exchange-crosstenant-id"
	hdrOrganizationID  = "x-ms-exchange-organization-id"
	maxReasonValueSize = 100 // of a header value a reason shows
)

// OriginConfig configures the header proofs of origin. The zero value configures none.
type OriginConfig struct {
	// Tenants are the pinned Microsoft 365 tenants, each an initial domain
	// (contoso.onmicrosoft.com) or a tenant id (a GUID).
	Tenants []string
	// SourceHeader names the shared-secret header, and SourceSecret is its value; both or
	// neither.
	SourceHeader string
	SourceSecret string
}

// Origin judges a copy's outer header against the configured proofs. A nil *Origin
// configures none: every copy passes, and proves nothing.
type Origin struct {
	domains map[string]string // lower-cased domain → the tenant as configured
	ids     map[string]string // lower-cased tenant id → the tenant as configured
	header  string            // the source header's name as configured; "" without the proof
	secret  []byte
	digest  [sha256.Size]byte // of secret: compared in constant time, and at one length
}

// NewOrigin returns the judge of cfg's proofs, nil when cfg configures none, or the first
// problem with a setting (CheckTenant, CheckSourceHeader and CheckSourceSecret say which).
func NewOrigin(cfg OriginConfig) (*Origin, error) {
	if len(cfg.Tenants) == 0 && cfg.SourceHeader == "" && cfg.SourceSecret == "" {
		return nil, nil
	}
	o := &Origin{domains: map[string]string{}, ids: map[string]string{}}
	for _, t := range cfg.Tenants {
		if err := CheckTenant(t); err != nil {
			return nil, fmt.Errorf("tenant %q: %w", t, err)
		}
		if isGUID(t) {
			o.ids[strings.ToLower(t)] = t
		} else {
			o.domains[normalDomain(t)] = t
		}
	}
	if (cfg.SourceHeader == "") != (cfg.SourceSecret == "") {
		return nil, errors.New("the source header and its secret go together")
	}
	if cfg.SourceHeader != "" {
		if err := CheckSourceHeader(cfg.SourceHeader); err != nil {
			return nil, fmt.Errorf("source header: %w", err)
		}
		if err := CheckSourceSecret(cfg.SourceSecret); err != nil {
			return nil, fmt.Errorf("source header secret: %w", err)
		}
		o.header, o.secret = cfg.SourceHeader, []byte(cfg.SourceSecret)
		o.digest = sha256.Sum256(o.secret)
	}
	return o, nil
}

// CheckTenant says what is wrong with a pinned tenant, if anything: it must be a tenant id
// (a GUID) or a domain.
func CheckTenant(t string) error {
	if isGUID(t) {
		return nil
	}
	d := strings.TrimSuffix(t, ".")
	if len(d) == 0 || len(d) > 253 || !strings.Contains(d, ".") {
		return errors.New("not a tenant id (a GUID) nor a domain with a dot")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return errors.New("not a domain: an empty or misplaced label")
		}
		for _, c := range []byte(label) {
			if !isAlnum(c) && c != '-' {
				return fmt.Errorf("not a domain: it holds %q", c)
			}
		}
	}
	return nil
}

// reservedHeaders are fields the sensor or its sources read for what they say. Naming one
// as the source header would drop it from every record and let a wrong one refuse mail.
var reservedHeaders = []string{
	"from", "sender", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id",
	"in-reply-to", "references", "received", "return-path", "mime-version",
	"authentication-results", "arc-authentication-results", "arc-seal",
	"arc-message-signature", "dkim-signature", "content-identifier",
	hdrOriginatorOrg, "x-ms-journal-report", "x-gm-original-to", "x-gm-spam", "x-gm-phishy",
}

// CheckSourceHeader says what is wrong with the source header's name, if anything.
func CheckSourceHeader(name string) error {
	if name == "" {
		return errors.New("empty")
	}
	for _, c := range []byte(name) {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return errors.New("a header name is letters, digits and punctuation, without spaces or a colon")
		}
	}
	low := strings.ToLower(name)
	if slices.Contains(reservedHeaders, low) || strings.HasPrefix(low, "content-") ||
		strings.HasPrefix(low, "x-ms-") || strings.HasPrefix(low, "x-ironport-") ||
		strings.HasPrefix(low, "x-proofpoint-") || strings.HasPrefix(low, "x-mimecast-") {
		return errors.New("a header that mail systems write or the sensor reads; choose a name of your own, such as X-Journal-Sensor-Source")
	}
	return nil
}

// CheckSourceSecret says what is wrong with the source header's secret, if anything. Its
// characters are those of tokens (hex, base64, base64url), which no header unfolds, no
// gateway rewrites and no JSON escapes.
func CheckSourceSecret(s string) error {
	if len(s) < minSecretLength {
		return fmt.Errorf("%d bytes; it needs at least %d (generate one with: openssl rand -hex 32)", len(s), minSecretLength)
	}
	for _, c := range []byte(s) {
		if !isAlnum(c) && !strings.ContainsRune("-._~+/=", rune(c)) {
			return errors.New("it holds a character other than letters, digits and -._~+/= (generate one with: openssl rand -hex 32)")
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// isGUID reports whether s is a GUID in its usual form, 8-4-4-4-12 hex digits.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func normalDomain(d string) string { return strings.TrimSuffix(strings.ToLower(d), ".") }

// Tenants lists the pinned tenants as configured; SourceHeader names the source header.
// For the start-up log and config check, which show the settings, never the secret.
func (o *Origin) Tenants() []string {
	if o == nil {
		return nil
	}
	var out []string
	for _, t := range o.domains {
		out = append(out, t)
	}
	for _, t := range o.ids {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// SourceHeader names the source header; "" when that proof is not configured.
func (o *Origin) SourceHeader() string {
	if o == nil {
		return ""
	}
	return o.header
}

// headerField is one field of the outer header, unfolded.
type headerField struct{ name, value string }

// outerHeader is the copy's outer header block as the intake captured it.
type outerHeader struct {
	fields []headerField
	// complete is false when the block did not end within maxOriginHeaderBytes.
	complete bool
	// longLine is true when a line of the block is longer than maxOriginLineBytes.
	longLine bool
}

// originVerdict is what the header proofs say of a copy.
type originVerdict struct {
	proofs []string // the proofs that held: api.VerifiedM365Tenant, api.VerifiedSourceHeader
	tenant string   // the pinned tenant, as configured, that the tenant headers named
	reason string   // why no configured proof held; "" when one did, or none is configured
	label  string   // reason as a metric label: a fixed word per failure, joined with +
}

// judge applies the decision rule to h.
func (o *Origin) judge(h outerHeader) originVerdict {
	if o == nil {
		return originVerdict{}
	}
	if !h.complete {
		return originVerdict{label: "headers_unreadable",
			reason: fmt.Sprintf("header block longer than %d KiB; its origin cannot be read", maxOriginHeaderBytes>>10)}
	}
	if h.longLine {
		return originVerdict{label: "headers_unreadable",
			reason: fmt.Sprintf("a header line longer than %d KiB; its origin cannot be read", maxOriginLineBytes>>10)}
	}
	var v originVerdict
	var why, labels []string
	if len(o.domains)+len(o.ids) > 0 {
		tenant, reason, label := o.tenantProof(h.fields)
		if reason == "" {
			v.proofs, v.tenant = append(v.proofs, api.VerifiedM365Tenant), tenant
		} else {
			why, labels = append(why, reason), append(labels, label)
		}
	}
	if o.header != "" {
		reason, label := o.sourceProof(h.fields)
		if reason == "" {
			v.proofs = append(v.proofs, api.VerifiedSourceHeader)
		} else {
			why, labels = append(why, reason), append(labels, label)
		}
	}
	if len(v.proofs) == 0 {
		v.reason, v.label = strings.Join(why, "; "), strings.Join(labels, "+")
	}
	return v
}

// tenantClaim is one tenant attribution header: what it names, normalised.
type tenantClaim struct {
	header string // as the copy spells it
	value  string
	pinned string // the tenant as configured, when the value names one; else ""
}

// tenantProof returns the pinned tenant the outer header names, or why it names none.
func (o *Origin) tenantProof(fields []headerField) (tenant, reason, label string) {
	var judged []tenantClaim
	unjudged := ""
	for _, f := range fields {
		var c tenantClaim
		switch strings.ToLower(f.name) {
		case hdrOriginatorOrg:
			c = tenantClaim{header: f.name, value: normalDomain(f.value)}
			if len(o.domains) == 0 {
				unjudged = f.name
				continue
			}
			c.pinned = o.domains[c.value]
		case hdrCrossTenantID, hdrOrganizationID:
			c = tenantClaim{header: f.name, value: strings.ToLower(strings.Trim(f.value, "{}"))}
			if len(o.ids) == 0 {
				unjudged = f.name
				continue
			}
			c.pinned = o.ids[c.value]
		default:
			continue
		}
		judged = append(judged, c)
	}
	var match, foreign *tenantClaim
	for i := range judged {
		c := &judged[i]
		switch {
		case c.pinned == "" && foreign == nil:
			foreign = c
		case c.pinned != "" && (match == nil || strings.EqualFold(c.header, hdrOriginatorOrg) && !strings.EqualFold(match.header, hdrOriginatorOrg)):
			match = c // the domain, when it is judged, is the friendlier name
		}
	}
	switch {
	case foreign != nil && match != nil:
		return "", fmt.Sprintf("tenant headers disagree: %s names %s, a pinned tenant, but %s names %s, which is not",
			match.header, shown(match.value), foreign.header, shown(foreign.value)), "tenant_conflict"
	case foreign != nil:
		return "", fmt.Sprintf("names tenant %s (%s), not a pinned tenant", shown(foreign.value), foreign.header), "tenant_foreign"
	case match != nil:
		return match.pinned, "", ""
	case unjudged != "":
		// Say why a header that is there was not enough, so the operator can pin the
		// tenant the other way too.
		kind := "id"
		if strings.EqualFold(unjudged, hdrOriginatorOrg) {
			kind = "domain"
		}
		return "", fmt.Sprintf("names no Microsoft 365 tenant that can be checked: no tenant is pinned by %s, as %s names one", kind, unjudged), "tenant_missing"
	}
	return "", "names no Microsoft 365 tenant", "tenant_missing"
}

// shown is a header value fit to stand in a reply and a log line: printable ASCII, bounded.
func shown(v string) string {
	if v == "" {
		return "(empty)"
	}
	b := []byte(v)
	if len(b) > maxReasonValueSize {
		b = append(b[:maxReasonValueSize], "..."...)
	}
	for i, c := range b {
		if c <= ' ' || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// sourceProof says why the source header does not prove the copy's origin, or "".
// Digests of one size are compared, so that neither the comparison's time nor a length
// check tells a prober how much of a guess was right.
func (o *Origin) sourceProof(fields []headerField) (reason, label string) {
	seen, match := false, 0
	for _, f := range fields {
		if !strings.EqualFold(f.name, o.header) {
			continue
		}
		seen = true
		d := sha256.Sum256([]byte(f.value))
		match |= subtle.ConstantTimeCompare(d[:], o.digest[:])
	}
	switch {
	case !seen:
		return "source header missing", "source_header_missing"
	case match == 0:
		return "source header does not match", "source_header_mismatch"
	}
	return "", ""
}

// scrubHeaders removes the source header from the record: the parser lists every header
// field of the scored message, the outer one for a copy that is no journal report.
func (o *Origin) scrubHeaders(rec *api.Record) {
	if o == nil || o.header == "" {
		return
	}
	rec.Message.Headers = slices.DeleteFunc(rec.Message.Headers, func(h [2]string) bool {
		return strings.EqualFold(strings.TrimSpace(h[0]), o.header)
	})
}

// redact cuts the secret out of an encoded record, and says whether it was there: a copy
// may carry it outside the source header too (a forwarded message with the header in it, a
// sender who pasted it in a subject). The secret's characters (CheckSourceSecret) are never
// escaped in JSON, so it is found as it is.
func (o *Origin) redact(line []byte) ([]byte, bool) {
	if o == nil || len(o.secret) == 0 || !bytes.Contains(line, o.secret) {
		return line, false
	}
	return bytes.ReplaceAll(line, o.secret, []byte("[redacted]")), true
}

// headerTap passes a message's bytes through while keeping its outer header block, up to
// the first blank line or max bytes, whichever comes first. It keeps nothing after that.
type headerTap struct {
	r    io.Reader
	max  int
	buf  []byte
	next int  // where in buf the first line not yet seen to its end begins
	scan int  // where in that line to look for its end: no line end comes before
	done bool // the blank line was seen, or max reached
	over bool // max was reached before the blank line
	long bool // a line longer than maxOriginLineBytes was seen
}

func newHeaderTap(r io.Reader, max int) *headerTap { return &headerTap{r: r, max: max} }

func (t *headerTap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 && !t.done {
		t.take(p[:n])
	}
	return n, err
}

func (t *headerTap) take(b []byte) {
	room := t.max - len(t.buf)
	t.buf = append(t.buf, b[:min(len(b), room)]...)
	for {
		n, e, ok := lineEnd(t.buf[t.scan:], false)
		if !ok { // so that a long line read in small pieces is not searched again
			t.scan += n
			t.long = t.long || t.scan-t.next > maxOriginLineBytes
			break
		}
		t.long = t.long || t.scan+n-t.next > maxOriginLineBytes
		if t.scan+n == t.next { // the blank line: the header is the lines before it
			t.buf, t.done = t.buf[:t.next], true
			return
		}
		t.next = t.scan + n + e
		t.scan = t.next
	}
	if len(t.buf) >= t.max {
		t.done, t.over = true, true
	}
}

// lineEnd returns the length of the line b begins and of its line end, splitting lines as
// the parser does: at LF, CRLF, CR CR LF (one line end, from a CRLF file converted once
// more) or a bare CR. A bare CR must end a line here too, or a field behind one would be in
// the parser's header and not in the one judged. ok is false when b holds no line end yet,
// or ends in a CR that more bytes may join; at the end of the input (eof) that CR, or CR
// CR, is the line end.
func lineEnd(b []byte, eof bool) (n, e int, ok bool) {
	i := bytes.IndexAny(b, "\r\n")
	switch {
	case i < 0:
		return len(b), 0, false
	case b[i] == '\n':
		return i, 1, true
	}
	rest := b[i+1:]
	switch {
	case len(rest) == 0:
		return i, 1, eof
	case rest[0] == '\n':
		return i, 2, true
	case rest[0] != '\r':
		return i, 1, true
	case len(rest) == 1:
		return i, 2, eof
	case rest[1] == '\n':
		return i, 3, true
	}
	return i, 1, true
}

// header returns the outer header the tap saw. A message that ended before a blank line is
// all header, as the parser reads it.
func (t *headerTap) header() outerHeader {
	if t == nil {
		return outerHeader{complete: true}
	}
	return outerHeader{fields: parseHeaderBlock(t.buf), complete: !t.over, longLine: t.long}
}

// parseHeaderBlock splits a header block into unfolded fields, reading lines as the parser
// does: line ends as lineEnd finds them; a line starting with a space or a tab continues the
// field before it (RFC 5322 §2.2.3: the line break is dropped, the whitespace kept); a line
// of only whitespace, or one that is no field and no continuation, ends the header. Lines
// of only whitespace before the first field are skipped, and so are a byte order mark and
// an mbox From_ line on the first line that is not, as the parser skips them.
func parseHeaderBlock(b []byte) []headerField {
	var fields []headerField
	var cur []byte
	in := false
	flush := func() {
		if in {
			fields = append(fields, makeHeaderField(cur))
		}
		cur, in = cur[:0], false
	}
	first := true
	for len(b) > 0 {
		n, e, _ := lineEnd(b, true)
		line := b[:n]
		b = b[n+e:]
		if len(bytes.Trim(line, " \t")) == 0 {
			if in || len(line) == 0 {
				break
			}
			continue // whitespace before the first field
		}
		if first {
			first = false
			if line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf")); len(line) == 0 {
				continue
			}
			if bytes.HasPrefix(line, []byte("From ")) {
				continue
			}
		}
		if line[0] == ' ' || line[0] == '\t' {
			if in {
				cur = append(cur, line...)
				continue
			}
			line = bytes.TrimLeft(line, " \t")
		}
		if !isFieldLine(line) {
			break
		}
		flush()
		cur, in = append(cur, line...), true
	}
	flush()
	return fields
}

// isFieldLine reports whether line starts a field: a name of printable ASCII, then a colon
// (whitespace before the colon is tolerated, as RFC 5322 §4.5 obsolete syntax has it).
func isFieldLine(line []byte) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	name := bytes.TrimRight(line[:colon], " \t")
	if len(name) == 0 {
		return false
	}
	for _, c := range name {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

func makeHeaderField(raw []byte) headerField {
	colon := bytes.IndexByte(raw, ':')
	return headerField{
		name:  string(bytes.TrimRight(raw[:colon], " \t")),
		value: string(bytes.TrimSpace(raw[colon+1:])),
	}
}

// doorProofs lists what the SMTP door proved of the copy's origin before its first byte:
// a verified client certificate that carried a configured name, and a recipient on the
// --journal-address list (the door refuses every other one).
func (c *smtpConn) doorProofs() []string {
	var p []string
	// A verified certificate proves the origin even when it carries no name to record
	// (--tls-client-ca alone); MAIL never gets this far with one that failed.
	if c.srv.cfg.ClientAuth != nil && c.tls != nil && c.cert != nil && c.cert.reason == "" {
		p = append(p, api.VerifiedTLSClientCert)
	}
	if c.srv.cfg.Recipients != nil {
		p = append(p, api.VerifiedJournalAddress)
	}
	return p
}
