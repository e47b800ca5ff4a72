package api

import (
	_ "embed"
)

// Verdicts travel from the pipeline to the sensor (GET /v1/verdicts); outcomes travel back
// (POST /v1/actions), one per verdict and recipient. The wire format is fixed the same way as
// Record v1: add fields freely, never rename or repurpose one.

// Schema ids of verdict.schema.json and outcome.schema.json: names, not locations.
const (
	VerdictSchemaID = "urn:journalsensor:schema:sensor.verdict:v1"
	OutcomeSchemaID = "urn:journalsensor:schema:sensor.outcome:v1"
)

// Actions a verdict asks for.
const (
	ActionQuarantine = "quarantine"
	ActionDelete     = "delete"
	ActionHardDelete = "hard_delete"
	ActionTag        = "tag"
	ActionRestore    = "restore"
)

// Providers: the mailbox API an outcome came from.
const (
	ProviderGraph = "graph"
	ProviderGmail = "gmail"
	// ProviderNone is an outcome no provider was reached for: a recipient outside every
	// domain the sensor acts on.
	ProviderNone = "none"
)

// Outcome statuses.
const (
	OutcomeDone     = "done"
	OutcomeAlready  = "already"
	OutcomeNotFound = "not_found"
	OutcomeSkipped  = "skipped"
	OutcomeFailed   = "failed"
)

// Paging of GET /v1/verdicts. A limit above MaxVerdictLimit is refused rather than clamped,
// so that a client bug shows up as an error instead of as pages silently shorter than asked.
const (
	DefaultVerdictLimit = 100
	MaxVerdictLimit     = 1000
)

// Verdict is one decision of the pipeline about one message: what to do to it in which
// mailboxes.
type Verdict struct {
	// ID is unique and stable; outcomes and restore verdicts refer to it.
	ID     string `json:"id"`
	Action string `json:"action"`
	// MessageID is the Message-ID (angle brackets included) the sensor searches the
	// mailboxes for. A restore may leave it out: it undoes what the named verdict did.
	MessageID string `json:"message_id,omitempty"`
	// Recipients are the mailboxes to act in, lowercase: for a journaled message the
	// journal report's recipients, Bcc and expanded distribution lists included.
	Recipients []string `json:"recipients"`
	// Tag is the category or label to apply; only for ActionTag.
	Tag string `json:"tag,omitempty"`
	// Undo is the id of the verdict a restore reverses; only for ActionRestore.
	Undo string `json:"undo,omitempty"`
	// RecordID is the record the verdict was made from, when one was.
	RecordID string `json:"record_id,omitempty"`
	// Reason is for people reading logs and audit trails; the sensor does not act on it.
	Reason string `json:"reason,omitempty"`
}

// VerdictPage is the answer to GET /v1/verdicts.
type VerdictPage struct {
	Verdicts []Verdict `json:"verdicts"`
	// Next is the cursor to send as `after` next time. It is opaque: compare it, store it,
	// send it back, never parse it. It equals the cursor sent when there was nothing new.
	Next string `json:"next"`
}

// Outcome is what the sensor did about one verdict in one recipient's mailbox.
type Outcome struct {
	VerdictID string `json:"verdict_id"`
	Recipient string `json:"recipient"`
	Provider  string `json:"provider"`
	Action    string `json:"action"`
	Status    string `json:"status"`
	// Detail explains a skipped or failed status; it never carries message contents.
	Detail string `json:"detail,omitempty"`
	// At is when the status was reached: RFC 3339, UTC.
	At string `json:"at"`
	// MessageRef is the provider's id of the message acted on (Graph message id, Gmail
	// message id), which a later restore needs.
	MessageRef string `json:"message_ref,omitempty"`
	// FromFolder is the folder or label the message was moved out of, which a restore moves
	// it back to.
	FromFolder string `json:"from_folder,omitempty"`
}

//go:embed verdict.schema.json
var verdictSchemaJSON string

//go:embed outcome.schema.json
var outcomeSchemaJSON string

// VerdictSchema returns the JSON Schema (draft 2020-12) of one verdict, as GET /v1/verdicts
// serves it. Each call returns a fresh copy.
func VerdictSchema() []byte {
	return []byte(verdictSchemaJSON)
}

// OutcomeSchema returns the JSON Schema (draft 2020-12) of one outcome line of
// POST /v1/actions. Each call returns a fresh copy.
func OutcomeSchema() []byte {
	return []byte(outcomeSchemaJSON)
}
