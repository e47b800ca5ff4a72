package enforce

import "time"

// Verdict is one decision of the pipeline, as the engine and its journal hold it: the feed's
// api.Verdict with its action typed.
type Verdict struct {
	ID         string   `json:"id"`
	Action     Action   `json:"action"`
	MessageID  string   `json:"message_id"`
	Recipients []string `json:"recipients"`
	Tag        string   `json:"tag,omitempty"`
	Undo       string   `json:"undo,omitempty"`
	RecordID   string   `json:"record_id,omitempty"`
	Reason     string   `json:"reason,omitempty"`
}

// Outcome is what became of one (verdict, recipient), as the engine and its journal hold it;
// HTTPFeed sends it to the pipeline as an api.Outcome.
type Outcome struct {
	VerdictID  string    `json:"verdict_id"`
	Recipient  string    `json:"recipient"`
	Provider   string    `json:"provider,omitempty"`
	Action     Action    `json:"action"`
	Status     Status    `json:"status"`
	Detail     string    `json:"detail,omitempty"`
	At         time.Time `json:"at"`
	MessageRef string    `json:"message_ref,omitempty"`
	FromFolder string    `json:"from_folder,omitempty"`
}
