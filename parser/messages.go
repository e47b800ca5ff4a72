package parser

import (
	"strings"

	"github.com/journalsensor/sensor/parser/walker"
)

// role is what a message inside the input is to the record.
type role uint8

const (
	roleScored  role = iota // the message the record describes
	roleWrapper             // a journal report wrapping the scored message
	roleNested              // a message attached to another: its parts are attachments
)

// msgCtx is a message being walked: the top-level one or one inside a message/rfc822 part.
type msgCtx struct {
	depth int    // Depth of its root entity
	path  string // path of the message/rfc822 part that holds it; "" at top level
	role  role
	root  *node
	// summaryDone is set once a journal wrapper's summary part has been read.
	summaryDone bool
	// owner is the message this context describes: itself, or for the signed content of
	// an opaque S/MIME part (inherited), the message that holds it.
	owner     *msgCtx
	inherited bool
}

// msgStack holds the messages being walked, the innermost last: every entity belongs to the
// innermost one whose root is above it.
type msgStack struct {
	ctxs    []*msgCtx
	inherit bool // the next message root continues the current message (opaque S/MIME)
}

// leave drops the messages an entity at depth is no longer inside.
func (m *msgStack) leave(depth int) {
	for len(m.ctxs) > 0 && m.ctxs[len(m.ctxs)-1].depth >= depth {
		m.ctxs = m.ctxs[:len(m.ctxs)-1]
	}
}

// current returns the innermost message, or nil before the first one.
func (m *msgStack) current() *msgCtx {
	if len(m.ctxs) == 0 {
		return nil
	}
	return m.ctxs[len(m.ctxs)-1]
}

func (m *msgStack) push(ctx *msgCtx) {
	m.ctxs = append(m.ctxs, ctx)
}

// continued handles a message root met while inherit is set: the signed content of an
// opaque-signed part, which is the same message one layer in. It pushes that layer and
// reports true, or reports false when the root is a message of its own.
func (m *msgStack) continued(depth int) bool {
	parent := m.current()
	if !m.inherit || parent == nil {
		return false
	}
	m.inherit = false
	m.push(&msgCtx{
		depth:       depth,
		role:        parent.role,
		path:        parent.path,
		root:        parent.root,
		owner:       parent.owner,
		summaryDone: parent.summaryDone,
		inherited:   true,
	})
	return true
}

// depth counts the messages being walked, not the layers of signed content.
func (m *msgStack) depth() int {
	n := 0
	for _, c := range m.ctxs {
		if !c.inherited {
			n++
		}
	}
	return n
}

// parentMessagePath returns the path of the message/rfc822 part a nested root belongs to:
// the root itself when it is a multipart, else its parent (the single-part body is P.1).
func parentMessagePath(p *walker.Part) string {
	if p.Kind == walker.Multipart {
		return p.Path
	}
	if i := strings.LastIndexByte(p.Path, '.'); i >= 0 {
		return p.Path[:i]
	}
	return ""
}
