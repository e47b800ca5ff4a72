package enforce

import "errors"

// ErrGone marks a copy that disappeared between Find and Apply (the API answered 404): the
// user or another tool moved it out of reach, so the step cannot be retried on that ref.
var ErrGone = errors.New("the message is gone")
