package access

import (
	"errors"
	"hash/fnv"
	"net/netip"
	"testing"
)

// FuzzParse feeds the compiler any document. It must not panic; a table that does not
// compile is told by *Problems only; and a table that compiles must keep its promises:
// Match is deterministic and returns the first group holding an address (checked by brute
// force against every group's ranges), every group said to be reachable is matched at the
// address reach found for it, and no sampled address matches a group said to be
// unreachable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		issueTable,
		"- {name: low, cidrs: [10.0.0.0/9], action: accept}\n- {name: high, cidrs: [10.128.0.0/9], action: accept}\n- {name: ten, cidrs: [10.0.0.0/8], action: reject}\n",
		"- {name: v4, cidrs: [0.0.0.0/0], action: accept}\n- {name: both, cidrs: [10.0.0.0/8, '2001:db8::/32'], action: drop}\n",
		"- {name: top, cidrs: [255.255.255.255, 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], action: accept}\n- {name: all, cidrs: [0.0.0.0/0, '::/0'], action: reject}\n",
		"- name: all\n  action: reject\n  cidrs:\n    - 0.0.0.0/0\n    - ::/0\n",
		"- &a {name: x, cidrs: &c [192.0.2.0/24], action: accept}\n- {name: y, cidrs: *c, action: accept}\n- *a\n",
		"- {name: m, cidrs: ['::ffff:10.0.0.0/104', 10.0.0.1/8], action: accept, max_message_bytes: 1e400}\n",
		"[]", "", "- 1\n", "name: x\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		tab, err := Parse(doc)
		if err != nil {
			leaves := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				leaves = j.Unwrap()
			}
			for _, e := range leaves {
				var p *Problem
				if !errors.As(e, &p) {
					t.Fatalf("a problem that is no *Problem: %v (%T)", e, e)
				}
			}
			return
		}
		assertReach(t, tab, doc)
	})
}

// assertReach checks tab's Match and reach against each other and against a brute-force
// match, on addresses sampled from tab's own ranges: both ends of each, their neighbours
// outside, a point inside chosen by seed, and their IPv4-mapped spellings.
func assertReach(t *testing.T, tab *Table, seed []byte) {
	t.Helper()
	h := fnv.New64a()
	h.Write(seed)
	mix := h.Sum64()
	samples := []netip.Addr{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("::"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")}
	for _, g := range tab.Groups() {
		for _, p := range g.Prefixes {
			s := spanOf(p)
			samples = append(samples, s.lo, s.hi, s.lo.Prev(), s.hi.Next(), inside(p, mix))
			mix = mix*6364136223846793005 + 1442695040888963407
		}
	}
	reach := tab.reach()
	for i, a := range reach {
		if a.IsValid() {
			samples = append(samples, a)
			if g := tab.Match(a); g != tab.groups[i] {
				t.Fatalf("reach says %s reaches group %d (%s), but Match gives %v", a, i, tab.groups[i].Name, g)
			}
		}
	}
	for _, a := range samples {
		if !a.IsValid() {
			continue
		}
		forms := []netip.Addr{a}
		if a.Is4() {
			forms = append(forms, netip.AddrFrom16(a.As16()))
		}
		want := bruteMatch(tab, a)
		for _, f := range forms {
			got := tab.Match(f)
			if got != want || tab.Match(f) != got {
				t.Fatalf("Match(%s) = %v, want %v (the first group holding it)", f, got, want)
			}
		}
		for i, r := range reach {
			if !r.IsValid() && want == tab.groups[i] {
				t.Fatalf("%s matches group %d (%s), which reach says no address reaches", a, i, want.Name)
			}
		}
	}
	shadowed := map[*Group]bool{}
	for _, s := range tab.Unreachable() {
		shadowed[s.Group] = true
		if len(s.By) == 0 {
			t.Fatalf("group %s is unreachable, covered by no group", s.Group.Name)
		}
	}
	for i, r := range reach {
		if shadowed[tab.groups[i]] == r.IsValid() {
			t.Fatalf("group %d: Unreachable says %v, reach found %v", i, shadowed[tab.groups[i]], r)
		}
	}
}

func bruteMatch(tab *Table, a netip.Addr) *Group {
	for _, g := range tab.groups {
		for _, p := range g.Prefixes {
			if p.Contains(a) {
				return g
			}
		}
	}
	return nil
}

// inside is an address of p chosen by mix.
func inside(p netip.Prefix, mix uint64) netip.Addr {
	b := p.Addr().AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		if mix>>(bit%64)&1 == 1 {
			b[bit/8] |= 0x80 >> (bit % 8)
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}
