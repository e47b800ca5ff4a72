package access

import (
	"net/netip"
	"slices"
	"sort"
)

// Shadowed is a group no address can reach: every address in its ranges is in an earlier
// group's, so Match never returns it and its policy never applies.
type Shadowed struct {
	Group *Group
	By    []*Group // the earlier groups whose ranges overlap it, in table order
}

// Unreachable lists the groups no address reaches, in table order. A group can be covered by
// several earlier groups together (10.0.0.0/8 by 10.0.0.0/9 and 10.128.0.0/9); IPv4 and IPv6
// are apart, so a group with ranges of both is reachable while either family is.
func (t *Table) Unreachable() []Shadowed {
	var out []Shadowed
	for i, r := range t.reach() {
		if r.IsValid() {
			continue
		}
		g := t.groups[i]
		s := Shadowed{Group: g}
		for _, e := range t.groups[:i] {
			if overlaps(e, g) {
				s.By = append(s.By, e)
			}
		}
		out = append(out, s)
	}
	return out
}

// reach returns, for each group, an address that Match gives it, or the zero Addr when
// there is none.
func (t *Table) reach() []netip.Addr {
	out := make([]netip.Addr, len(t.groups))
	var before cover // the addresses earlier groups hold
	for i, g := range t.groups {
		for _, p := range g.Prefixes {
			if a, ok := before.gap(spanOf(p)); ok {
				out[i] = a
				break
			}
		}
		for _, p := range g.Prefixes {
			before = append(before, spanOf(p))
		}
		before = before.merged()
	}
	return out
}

func overlaps(a, b *Group) bool {
	for _, p := range a.Prefixes {
		for _, q := range b.Prefixes {
			if p.Overlaps(q) {
				return true
			}
		}
	}
	return false
}

// span is the addresses from lo to hi, both included, of one family.
type span struct{ lo, hi netip.Addr }

func spanOf(p netip.Prefix) span {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		b[bit/8] |= 0x80 >> (bit % 8)
	}
	hi, _ := netip.AddrFromSlice(b)
	return span{p.Addr(), hi}
}

// cover is a union of spans: once merged, sorted (IPv4 first), disjoint and never
// adjacent, so that a span lies within the union exactly when it lies within one of them.
type cover []span

// merged returns c sorted and merged, reusing its array.
func (c cover) merged() cover {
	slices.SortFunc(c, func(a, b span) int { return a.lo.Compare(b.lo) })
	out := c[:0]
	for _, s := range c {
		if n := len(out); n > 0 && touches(out[n-1], s) {
			if out[n-1].hi.Less(s.hi) {
				out[n-1].hi = s.hi
			}
			continue
		}
		out = append(out, s)
	}
	return out
}

// touches says whether s, which starts no earlier than last, overlaps it or starts right
// after it, in the same family.
func touches(last, s span) bool {
	if last.lo.BitLen() != s.lo.BitLen() {
		return false
	}
	next := last.hi.Next() // the zero Addr past the family's last address
	return !last.hi.Less(s.lo) || next == s.lo
}

// gap returns the first address of s outside the merged cover c, if any.
func (c cover) gap(s span) (netip.Addr, bool) {
	i := sort.Search(len(c), func(i int) bool { return s.lo.Less(c[i].lo) })
	if i == 0 {
		return s.lo, true
	}
	in := c[i-1]
	if in.lo.BitLen() != s.lo.BitLen() || in.hi.Less(s.lo) {
		return s.lo, true
	}
	if !in.hi.Less(s.hi) {
		return netip.Addr{}, false
	}
	return in.hi.Next(), true // not in c: spans are never adjacent
}
