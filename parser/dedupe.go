package parser

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/journalsensor/sensor/api"
)

// dedupeLabel opens the canonical encoding, so a later version that keeps the "v1:" shape
// by mistake still hashes to different keys.
const dedupeLabel = "dedupe-key/v1"

// dedupeKey returns message.dedupe_key: "v1:" and the lowercase hex SHA-256 of
//
//	ns("dedupe-key/v1") ns(message-id) ns(date) ns(len(from)) ns(from)... ns(len(att)) ns(att)...
//
// where ns(s) is the netstring len(s) ":" s "," (length in decimal bytes), so no field can
// run into the next. docs/dedupe-key.md has the reasoning and examples; in short:
//
//   - Only what every copy of a message carries unchanged goes in. A journal report, a BCC
//     copy and a gateway's split delivery differ in the envelope, the trace fields, To and
//     Cc, the recipients' Bcc and sometimes the transfer encoding of the parts; the
//     originator's Message-ID, Date and From and the decoded attachment bytes stay.
//   - Message-ID is the id between the first angle brackets with all white space removed
//     (relays refold long ones), and its part after the last @ lowercased: it is a domain
//     by convention, and relays that rewrite its case do so there. The part before the @
//     keeps its case: RFC 5322 gives no rule for comparing it, and senders that reuse ids
//     are the reason the other fields are here at all. A missing id is an empty field, so
//     the key falls back on Date, From and attachments (and a message without an id never
//     shares a key with one that has one). Without an id, Date and From must both be
//     there, or there is no key (""): attachments alone, or a sender's every message
//     without attachments, would make copies of unrelated messages.
//   - Date is the instant in UTC to the second, because the same instant written in
//     another zone or spacing is the same message. An unparseable Date goes in as "raw:"
//     and its words joined by single spaces; no Date is an empty field.
//   - From is the addresses only, lowercased and sorted: display names are where encoding
//     quirks live, and the address is what identifies the originator.
//   - att is the SHA-256 of every attachment of the scored message itself (its MIME leaves
//     and attached messages, not what the sensor found inside archives, TNEF, attached
//     messages or body text), sorted. Derived entries hash bytes already counted and depend
//     on limits and on what the sensor version can open; the decoded hash of a part does
//     not change when a relay re-encodes it.
func dedupeKey(m *api.Message, attachments []string) string {
	from := make([]string, len(m.From))
	for i, a := range m.From {
		from[i] = strings.ToLower(strings.TrimSpace(a.Address))
	}
	slices.Sort(from)
	att := slices.Sorted(slices.Values(attachments))
	id, date := dedupeMessageID(m.MessageID), dedupeDate(m)
	if id == "" && (date == "" || len(from) == 0) {
		return ""
	}

	b := make([]byte, 0, 256+70*len(att))
	b = netstring(b, dedupeLabel)
	b = netstring(b, id)
	b = netstring(b, date)
	b = netstring(b, strconv.Itoa(len(from)))
	for _, f := range from {
		b = netstring(b, f)
	}
	b = netstring(b, strconv.Itoa(len(att)))
	for _, a := range att {
		b = netstring(b, a)
	}
	sum := sha256.Sum256(b)
	return "v1:" + hex.EncodeToString(sum[:])
}

func netstring(b []byte, s string) []byte {
	b = strconv.AppendInt(b, int64(len(s)), 10)
	b = append(b, ':')
	b = append(b, s...)
	return append(b, ',')
}

// dedupeMessageID normalises a Message-ID value for the key (see dedupeKey).
func dedupeMessageID(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i+1:], '>'); j >= 0 {
			v = v[i+1 : i+1+j]
		}
	}
	v = strings.Join(strings.Fields(v), "")
	if at := strings.LastIndexByte(v, '@'); at >= 0 {
		v = v[:at+1] + strings.ToLower(v[at+1:])
	}
	return v
}

// dedupeDate is the Date field of the key (see dedupeKey). message.date keeps the sender's
// offset; the key wants the instant.
func dedupeDate(m *api.Message) string {
	if m.Date != "" {
		if t, err := time.Parse(time.RFC3339, m.Date); err == nil {
			return t.UTC().Format("2006-01-02T15:04:05Z")
		}
	}
	for _, f := range m.Headers {
		if strings.EqualFold(f[0], "Date") {
			if raw := strings.Join(strings.Fields(f[1]), " "); raw != "" {
				return "raw:" + raw
			}
			return ""
		}
	}
	return ""
}

// scoredAttachmentHashes lists the SHA-256 of the attachments that belong to the scored
// message directly: no container, and for a journal report inside the original's part
// (the wrapper's other attachments, such as a decrypted copy, are not the original's).
func (st *state) scoredAttachmentHashes() []string {
	prefix := ""
	if st.scored.path != "" {
		prefix = st.scored.path + "."
	}
	var out []string
	for i := range st.attachments {
		a := &st.attachments[i]
		if a.Container == nil && strings.HasPrefix(a.Path, prefix) {
			out = append(out, a.SHA256)
		}
	}
	return out
}
