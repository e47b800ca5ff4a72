package parser

import (
	"strings"

	"github.com/journalsensor/sensor/parser/walker"
)

// node is one entity in the structure tree.
type node struct {
	mtype    string
	children []*node
}

// tree builds the structure tree as the walk goes: each entity is added under the one it
// sits in.
type tree struct {
	open []*node // the current node at each depth
}

// add appends the entity p to the tree and returns its node.
func (t *tree) add(p *walker.Part) *node {
	n := &node{mtype: p.MediaType}
	if p.Depth > len(t.open) { // cannot happen: the walker descends one level at a time
		p.Depth = len(t.open)
	}
	t.open = t.open[:p.Depth]
	if p.Depth > 0 {
		parent := t.open[p.Depth-1]
		parent.children = append(parent.children, n)
	}
	t.open = append(t.open, n)
	return n
}

// render writes the tree below n as "multipart/mixed(text/plain,application/pdf)", cut
// with "…" once it is past maxBytes. It reports whether it was cut.
func (n *node) render(b *strings.Builder, maxBytes int) (cut bool) {
	type item struct {
		n     *node
		close bool
		comma bool
	}
	stack := []item{{n: n}}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if b.Len() > maxBytes {
			b.WriteString("…")
			return true
		}
		if it.close {
			b.WriteByte(')')
			continue
		}
		if it.comma {
			b.WriteByte(',')
		}
		b.WriteString(it.n.mtype)
		if len(it.n.children) == 0 {
			continue
		}
		b.WriteByte('(')
		stack = append(stack, item{close: true})
		for i := len(it.n.children) - 1; i >= 0; i-- {
			stack = append(stack, item{n: it.n.children[i], comma: i > 0})
		}
	}
	return false
}
