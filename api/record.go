// Package api is the contract between the sensor and the scoring pipeline: the Record v1 Go
// types, their JSON Schema (record.schema.json), the OpenAPI description of the upload
// endpoints (openapi.yaml), and a validator that checks records against the schema.
//
// Field names are fixed by docs in ../shared/DESIGN.md: add fields freely, never rename or
// repurpose one. Absent means unknown, and empty lists are omitted.
package api

import (
	"bytes"
	"encoding/json"
	"time"
)

// SchemaV1 is the value of Record.Schema for every record this package describes.
const SchemaV1 = "sensor.record/v1"

// Source kinds: where the copy came from.
const (
	SourceExchangeJournal     = "exchange_journal"
	SourceExchange2003Journal = "exchange2003_journal"
	SourceGoogleCopy          = "google_copy"
	SourceGatewayCopy         = "gateway_copy"
	SourceDirect              = "direct"
)

// Transports: which front door accepted the copy.
const (
	TransportSMTP   = "smtp"
	TransportMilter = "milter"
)

// URL sources: where in the message a link was found. Each body part kind scanned for links
// has its own, so that a link only an invitation or a bounce carries can be told apart; any
// part listed as an attachment (named, or Content-Disposition: attachment) is "attachment",
// whatever its kind.
const (
	URLSourceText       = "text"
	URLSourceHTML       = "html"
	URLSourceAttachment = "attachment"
	URLSourceCSS        = "css"      // a text/css part: url(), @import and links in its text
	URLSourceCalendar   = "calendar" // a text/calendar part: URI properties and text values
	// URLSourceDeliveryStatus: a message/delivery-status (or message/global-delivery-status)
	// part of a bounce report.
	URLSourceDeliveryStatus = "delivery-status"
	// URLSourceRFC822Headers: a text/rfc822-headers (or message/global-headers) part, the
	// header of a returned message.
	URLSourceRFC822Headers = "rfc822-headers"
)

// Record is one accepted copy of a message, as uploaded to the pipeline.
type Record struct {
	Schema      string       `json:"schema"`
	ID          string       `json:"id"`
	ReceivedAt  string       `json:"received_at"`
	Sensor      Sensor       `json:"sensor"`
	Envelope    *Envelope    `json:"envelope,omitempty"`
	Source      Source       `json:"source"`
	Journal     *Journal     `json:"journal,omitempty"`
	Message     Message      `json:"message"`
	Attachments []Attachment `json:"attachments,omitempty"`
	URLs        []URL        `json:"urls,omitempty"`
	Anomalies   []Anomaly    `json:"anomalies,omitempty"`
	LimitsHit   []string     `json:"limits_hit,omitempty"`
}

// Sensor names the sensor instance that accepted the copy.
type Sensor struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Envelope is what the SMTP (or milter) transaction said, as opposed to what the headers say.
// It is absent for records made by `sensor parse`, which has no transaction.
type Envelope struct {
	Transport  string `json:"transport"`
	ClientIP   string `json:"client_ip,omitempty"`
	ClientPort int    `json:"client_port,omitempty"`
	HELO       string `json:"helo,omitempty"`
	TLS        *TLS   `json:"tls,omitempty"`
	// AccessGroup names the host access table group the client matched; "" without a table.
	AccessGroup string `json:"access_group,omitempty"`
	// QueueID is the MTA's queue id ({i}) of a milter copy; "" for an SMTP copy.
	QueueID  string   `json:"queue_id,omitempty"`
	MailFrom string   `json:"mail_from"` // "" is the null reverse-path <>
	RcptTo   []string `json:"rcpt_to"`
	Size     int64    `json:"size"` // bytes received in DATA or BDAT, after dot-unstuffing
}

// TLS describes the TLS session the copy arrived over.
type TLS struct {
	Version    string `json:"version"`
	Cipher     string `json:"cipher"`
	ServerName string `json:"server_name,omitempty"`
	// ClientName is the client certificate's name that matched --tls-client-name, after
	// its chain was verified; "" when no certificate was asked for or presented.
	ClientName string `json:"client_name,omitempty"`
}

// Source says what kind of copy this is.
type Source struct {
	Kind    string `json:"kind"`
	Gateway string `json:"gateway,omitempty"`
	// VerifiedBy lists the proofs of origin that held (Verified* constants); empty when no
	// proof is configured.
	VerifiedBy []string `json:"verified_by,omitempty"`
	// Tenant is the pinned Microsoft 365 tenant the copy's tenant headers named.
	Tenant string `json:"tenant,omitempty"`
}

// Proofs of origin: the values of Source.VerifiedBy.
const (
	VerifiedTLSClientCert  = "tls_client_cert"
	VerifiedM365Tenant     = "m365_tenant"
	VerifiedSourceHeader   = "source_header"
	VerifiedJournalAddress = "journal_address"
)

// Journal is the envelope summary of an Exchange journal report: the true recipients,
// Bcc and expanded distribution lists included.
type Journal struct {
	Sender     string             `json:"sender,omitempty"`
	Subject    string             `json:"subject,omitempty"`
	MessageID  string             `json:"message_id,omitempty"`
	OnBehalfOf string             `json:"on_behalf_of,omitempty"`
	Recipients []JournalRecipient `json:"recipients,omitempty"`
	// DecryptedCopy is the path of the clear copy Exchange attaches, after the original,
	// when journal report decryption is on and the original was rights-protected.
	DecryptedCopy string `json:"decrypted_copy,omitempty"`
}

// Journal recipient types, from the summary line's keyword.
const (
	RecipientTo        = "to"
	RecipientCc        = "cc"
	RecipientBcc       = "bcc"
	RecipientRecipient = "recipient"
)

// JournalRecipient is one `To|Cc|Bcc|Recipient:` line of a journal summary.
type JournalRecipient struct {
	Address       string `json:"address"`
	Type          string `json:"type"`
	ExpandedFrom  string `json:"expanded_from,omitempty"`
	ForwardedFrom string `json:"forwarded_from,omitempty"`
}

// Message describes the message being scored. For a journal report that is the attached
// original, not the report that wraps it.
type Message struct {
	MessageID             string       `json:"message_id,omitempty"`
	Date                  string       `json:"date,omitempty"` // RFC 3339; absent when unparseable
	Subject               string       `json:"subject,omitempty"`
	From                  []Address    `json:"from,omitempty"`
	Sender                *Address     `json:"sender,omitempty"`
	ReplyTo               []Address    `json:"reply_to,omitempty"`
	To                    []Address    `json:"to,omitempty"`
	Cc                    []Address    `json:"cc,omitempty"`
	Bcc                   []Address    `json:"bcc,omitempty"`
	ReturnPath            string       `json:"return_path,omitempty"`
	InReplyTo             string       `json:"in_reply_to,omitempty"`
	References            []string     `json:"references,omitempty"`
	Headers               [][2]string  `json:"headers,omitempty"` // every field in order, RFC 2047 decoded
	Received              []Received   `json:"received,omitempty"`
	AuthenticationResults []AuthResult `json:"authentication_results,omitempty"`
	Size                  int64        `json:"size"`
	SHA256                string       `json:"sha256,omitempty"`
	Structure             string       `json:"structure,omitempty"`
	// Crypto lists the S/MIME and OpenPGP layers found, one per kind and message (the
	// scored one, or an attached one named by its path).
	Crypto []Crypto `json:"crypto,omitempty"`
	// DedupeKey is the same for every copy of one message (journal reports, BCC copies, a
	// gateway's split deliveries) and differs between messages that share a Message-ID:
	// "v1:" and 64 hex digits. docs/dedupe-key.md says what goes in. Absent when the
	// attachments were not read (attachments off, a parser failure) or there is no message.
	DedupeKey string `json:"dedupe_key,omitempty"`
}

// Crypto is what a message's S/MIME or OpenPGP parts say: whether it is signed or
// encrypted, and who holds the keys. Nothing is verified or decrypted.
type Crypto struct {
	Kind         string        `json:"kind"` // "smime" or "pgp"
	Path         string        `json:"path"` // the first part that showed it
	Signed       bool          `json:"signed,omitempty"`
	Encrypted    bool          `json:"encrypted,omitempty"`
	Certificates []Certificate `json:"certificates,omitempty"`
	// KeyIDs are the OpenPGP signers' and recipients' key IDs or fingerprints.
	KeyIDs []string `json:"key_ids,omitempty"`
}

// Certificate is an X.509 certificate carried in an S/MIME signature.
type Certificate struct {
	SHA256    string `json:"sha256"` // of the DER bytes
	SHA1      string `json:"sha1,omitempty"`
	Subject   string `json:"subject,omitempty"` // RFC 4514
	Issuer    string `json:"issuer,omitempty"`
	Serial    string `json:"serial,omitempty"` // lowercase hex
	NotBefore string `json:"not_before,omitempty"`
	NotAfter  string `json:"not_after,omitempty"`
	Signer    bool   `json:"signer,omitempty"` // a SignerInfo names it
}

// Address is one mailbox from an address header.
type Address struct {
	Name    string `json:"name,omitempty"`
	Address string `json:"address"`
}

// Received is one parsed Received header field, newest first as in the message.
type Received struct {
	From string `json:"from,omitempty"`
	By   string `json:"by,omitempty"`
	With string `json:"with,omitempty"`
	IP   string `json:"ip,omitempty"`
	Date string `json:"date,omitempty"`
}

// AuthResult is one Authentication-Results header field.
type AuthResult struct {
	AuthServID string             `json:"authserv_id,omitempty"`
	Results    []AuthMethodResult `json:"results,omitempty"`
}

// AuthMethodResult is one method's verdict inside an Authentication-Results field.
type AuthMethodResult struct {
	Method string            `json:"method"`
	Result string            `json:"result"`
	Reason string            `json:"reason,omitempty"`
	Props  map[string]string `json:"props,omitempty"`
}

// Attachment is a leaf part that is not body text, a member of an archive, or a file inside
// a TNEF stream.
type Attachment struct {
	Path         string     `json:"path"`
	Filename     string     `json:"filename,omitempty"`
	ContentType  string     `json:"content_type,omitempty"`
	DetectedType string     `json:"detected_type,omitempty"`
	Disposition  string     `json:"disposition,omitempty"`
	ContentID    string     `json:"content_id,omitempty"`
	Size         int64      `json:"size"`
	MD5          string     `json:"md5,omitempty"`
	SHA1         string     `json:"sha1,omitempty"`
	SHA256       string     `json:"sha256,omitempty"`
	Container    *Container `json:"container,omitempty"`
	Encrypted    bool       `json:"encrypted,omitempty"`
	Blob         string     `json:"blob,omitempty"` // sha256 of the uploaded bytes, in content mode
}

// Container says what an attachment was found inside.
type Container struct {
	Kind string `json:"kind"` // "message", "zip", "tnef", ...
	Path string `json:"path"`
}

// URL is one distinct link found in the message: an http, https or ftp URL, or a mailto: URI
// (whose Host is the domain of its first address).
type URL struct {
	URL        string   `json:"url"`
	Host       string   `json:"host,omitempty"`
	Sources    []string `json:"sources"`
	Count      int      `json:"count"`
	Wrapped    []string `json:"wrapped,omitempty"`
	Wrappers   []string `json:"wrappers,omitempty"`
	Unresolved bool     `json:"unresolved,omitempty"`
	Obfuscated bool     `json:"obfuscated,omitempty"`
}

// Anomaly is something malformed or cut short. Anomalies are never fatal, and their detail
// never carries body text.
type Anomaly struct {
	Code   string `json:"code"`
	Path   string `json:"path,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// MarshalRecord encodes a record as one JSON line (without the newline). HTML characters are
// not escaped, so URLs stay readable to people grepping the outbox.
func MarshalRecord(r *Record) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// FormatTime formats t as received_at wants it: RFC 3339, UTC, milliseconds.
func FormatTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
