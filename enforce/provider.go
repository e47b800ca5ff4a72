// Package enforce acts on the delivered copies of a message in the recipients' mailboxes
// when the pipeline's verdict says so: the verdict feed, the fsync'd action journal, and the
// Microsoft Graph and Gmail clients that do the work. The API credentials stay on the
// customer's machine.
package enforce

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/journalsensor/sensor/internal/retry"
)

// Action is what a verdict asks to be done to every copy of a message.
type Action string

const (
	Quarantine Action = "quarantine"  // Graph: move to the quarantine folder; Gmail: quarantine label on, INBOX off
	Delete     Action = "delete"      // Graph: DELETE (to Deleted Items); Gmail: trash
	HardDelete Action = "hard_delete" // Graph: permanentDelete; Gmail: delete. Only with --allow-hard-delete
	Tag        Action = "tag"         // Graph: add a category; Gmail: add a label
	Restore    Action = "restore"     // undo: put the copy back where the undone action found it
)

// Copy is one copy of a message in one mailbox, as a provider found it.
type Copy struct {
	// Ref is the provider's id of the message: Graph's immutable id (Prefer:
	// IdType="ImmutableId"), Gmail's message id. Neither changes when the copy moves.
	Ref string
	// Folder is Graph's parentFolderId; "" for Gmail.
	Folder string
	// Labels are Gmail's label ids, or Graph's categories.
	Labels []string
}

// Step is one action on one copy.
type Step struct {
	Action Action
	// Tag is the category or label to add, for Tag.
	Tag string
	// From is where Restore puts the copy back: what Result.From said when the undone action
	// ran (a Graph folder id; for Gmail the comma-separated label ids it took off).
	From string
	// Observe looks at the copy's state and says what the step would do, changing nothing.
	Observe bool
}

// Status is the outcome of one (verdict, recipient), as reported to the pipeline.
type Status string

const (
	Done     Status = "done"      // the copy was changed (or, observing, would be)
	Already  Status = "already"   // the copy was in the target state before the step
	NotFound Status = "not_found" // no copy in the mailbox (final after --enforce-find-window)
	Skipped  Status = "skipped"   // not ours to act on: an external recipient, hard_delete not allowed
	Failed   Status = "failed"    // a permanent error, named in the detail
)

// Result is what one step did to one copy.
type Result struct {
	Status Status // Done or Already
	// Ref is the copy's id after the step (the same with immutable ids).
	Ref string
	// From is where the copy was before the step, for a later Restore: Graph's folder id;
	// for Gmail the comma-separated label ids the step took off.
	From string
}

// Provider acts on the mailboxes of one mail platform. Its methods are safe for concurrent
// use; a provider bounds its own concurrency (Graph: 4 requests at once per app).
type Provider interface {
	// Name is "graph" or "gmail", as outcomes report it.
	Name() string
	// Find returns the copies of the message with this Message-ID (with its angle brackets)
	// in the mailbox, soft-deleted and spam ones included; none is not an error.
	Find(ctx context.Context, mailbox, messageID string) ([]Copy, error)
	// Apply runs one step on one copy, after checking the copy's state: a copy already in
	// the target state gives Already and no change.
	Apply(ctx context.Context, mailbox string, c Copy, s Step) (Result, error)
	// Members returns the transitive members' addresses when address is a group, and
	// isGroup false (no error) when it is a mailbox.
	Members(ctx context.Context, address string) (members []string, isGroup bool, err error)
}

// ThrottledError is a 429 (or Gmail's 403 rate-limit reasons): retry that mailbox no sooner
// than RetryAfter, exactly as the server said; other mailboxes go on.
type ThrottledError struct {
	RetryAfter time.Duration
	Detail     string
}

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("throttled, retry after %v: %s", e.RetryAfter, e.Detail)
}

// ErrTransient marks an error worth retrying with backoff and jitter: a 5xx, a network
// failure, a token endpoint that did not answer. Errors without it are permanent.
var ErrTransient = errors.New("transient")

// ErrGone marks a copy that disappeared between Find and Apply (the API answered 404): the
// user or another tool moved it out of reach, so the engine looks the message up again.
var ErrGone = errors.New("the message is gone")

// throttleWait is the wait a throttled answer asks for: its Retry-After (seconds or an HTTP
// date), or a second when it gives none that can be read.
func throttleWait(header string) time.Duration {
	if d, ok := retry.After(header, time.Now()); ok {
		return d
	}
	return time.Second
}
