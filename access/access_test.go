package access

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
)

func mustParse(t *testing.T, doc string) *Table {
	t.Helper()
	tab, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return tab
}

// problems lists the text of every problem in err, each of which must be a *Problem.
func problems(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var out []string
	leaves := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		leaves = j.Unwrap()
	}
	for _, e := range leaves {
		var p *Problem
		if !errors.As(e, &p) {
			t.Errorf("%v (%T) is no *Problem", e, e)
		}
		out = append(out, e.Error())
	}
	return out
}

const issueTable = `
- name: m365
  cidrs: [40.92.0.0/15, 40.107.0.0/16, 52.100.0.0/14, 104.47.0.0/17]
  action: accept
  require_tls: true
  max_connections_per_ip: 50
  max_messages_per_minute: 6000
  max_message_bytes: 150MiB
- name: gateway
  cidrs: [192.0.2.10, 2001:db8::/32]
  action: accept
- name: blocked
  cidrs: 198.51.100.0/24
  action: drop
- name: everyone-else
  cidrs: [0.0.0.0/0, "::/0"]
  action: reject
`

func TestMatchFirstGroupWins(t *testing.T) {
	tab := mustParse(t, issueTable)
	for addr, want := range map[string]string{
		"40.92.1.1":          "m365",
		"40.93.255.255":      "m365",
		"40.94.0.0":          "everyone-else",
		"::ffff:40.107.3.4":  "m365", // a dual-stack listener's spelling of an IPv4 client
		"192.0.2.10":         "gateway",
		"192.0.2.11":         "everyone-else",
		"2001:db8::25":       "gateway",
		"2001:db8::25%eth0":  "gateway",
		"198.51.100.7":       "blocked",
		"2001:db9::1":        "everyone-else",
		"0.0.0.0":            "everyone-else",
		"::":                 "everyone-else",
		"255.255.255.255":    "everyone-else",
		"ffff:ffff:ffff::ff": "everyone-else",
	} {
		g := tab.Match(netip.MustParseAddr(addr))
		if g == nil || g.Name != want {
			t.Errorf("Match(%s) = %v, want %s", addr, g, want)
		}
	}
	m := tab.Groups()[0]
	if !m.RequireTLS || m.MaxConnectionsPerIP != 50 || m.MaxMessagesPerMinute != 6000 || m.MaxMessageBytes != 150<<20 ||
		m.Action != Accept || m.Line != 2 || len(m.Prefixes) != 4 {
		t.Errorf("m365 group read as %+v", m)
	}
	if g := tab.Groups()[1]; g.Prefixes[0] != netip.MustParsePrefix("192.0.2.10/32") {
		t.Errorf("a bare address is read as %v, want the /32", g.Prefixes[0])
	}
	if g := tab.Groups()[2]; g.Action != Drop || len(g.Prefixes) != 1 {
		t.Errorf("a single cidr written without a list: %+v", g)
	}
	if len(tab.Unreachable()) != 0 {
		t.Errorf("unreachable: %+v", tab.Unreachable())
	}
}

// Once a table exists it is an allow-list: an address no group holds matches nothing.
func TestUnlistedAddressMatchesNothing(t *testing.T) {
	tab := mustParse(t, "- {name: lan, cidrs: [10.0.0.0/8], action: accept}\n")
	for _, a := range []string{"11.0.0.1", "::1", "::ffff:11.0.0.1"} {
		if g := tab.Match(netip.MustParseAddr(a)); g != nil {
			t.Errorf("Match(%s) = %s, want none", a, g.Name)
		}
	}
	var none *Table
	if none.Match(netip.MustParseAddr("10.0.0.1")) != nil || none.Groups() != nil {
		t.Error("a nil table matched")
	}
}

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":      "10.0.0.0/8",
		" 192.0.2.1 ":     "192.0.2.1/32",
		"2001:DB8::/32":   "2001:db8::/32",
		"2001:db8::1":     "2001:db8::1/128",
		"0.0.0.0/0":       "0.0.0.0/0",
		"::/0":            "::/0",
		"::ffff:0:0/95":   "::fffe:0:0/95", // covers more than IPv4-mapped addresses: allowed
		"10.0.0.0/32":     "10.0.0.0/32",
		"2001:db8::/128":  "2001:db8::/128",
		"203.0.113.64/26": "203.0.113.64/26",
	} {
		p, err := ParsePrefix(in)
		if err != nil && want != "::fffe:0:0/95" || err == nil && p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for in, want := range map[string]string{
		"10.0.0.1/8":            "host bits set; write 10.0.0.0/8, or 10.0.0.1/32 for the one address",
		"2001:db8::1/32":        "host bits set; write 2001:db8::/32, or 2001:db8::1/128 for the one address",
		"::ffff:10.0.0.0/104":   "an IPv4-mapped IPv6 range never matches (IPv4 clients are matched as IPv4); write 10.0.0.0/8",
		"::ffff:192.0.2.1":      "an IPv4-mapped IPv6 range never matches (IPv4 clients are matched as IPv4); write 192.0.2.1/32",
		"10.0.0.0/33":           errNotRange.Error(),
		"10.0.0/8":              errNotRange.Error(),
		"010.0.0.0/8":           errNotRange.Error(),
		"fe80::1%eth0":          errNotRange.Error(),
		"fe80::%eth0/64":        errNotRange.Error(),
		"example.org":           errNotRange.Error(),
		"":                      errNotRange.Error(),
		"10.0.0.0/8 10.1.0.0/8": errNotRange.Error(),
	} {
		if _, err := ParsePrefix(in); err == nil || err.Error() != want {
			t.Errorf("ParsePrefix(%q): %v, want %q", in, err, want)
		}
	}
}

// Every problem of a table is reported at once, each with its line and group, in the
// order of the file; and each says what to write instead.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`
- name: m365
  cidrs: [40.92.0.1/15, 40.107.0.0/16, bogus]
  action: allow
  require-tls: true
- cidrs: [10.0.0.0/8]
  action: accept
  max_connections_per_ip: -1
  max_messages_per_minute: lots
  max_message_bytes: 150 megs
- name: m365
  action: reject
  cidrs: []
  require_tls: maybe
- name: bad name!
  cidrs: [192.0.2.0/24]
  action: drop
  max_message_bytes: 10MB
- name: dup-key
  cidrs: [192.0.2.0/24]
  cidrs: [198.51.100.0/24]
  action: accept
  max_message_bytes: 0
- just a string
`))
	want := []string{
		`line 3: group "m365": cidrs: "40.92.0.1/15": host bits set; write 40.92.0.0/15, or 40.92.0.1/32 for the one address`,
		`line 3: group "m365": cidrs: "bogus": ` + errNotRange.Error(),
		`line 4: group "m365": action "allow": want accept, reject (554 5.7.1 greeting) or drop (close without a greeting)`,
		`line 5: group "m365": unknown key "require-tls"; did you mean "require_tls"?`,
		`line 6: group #2: no name: give each group one, such as m365; records and metrics show it`,
		`line 8: group #2: max_connections_per_ip -1: must not be negative; 0, or no key, sets no cap of the group's own`,
		`line 9: group #2: max_messages_per_minute "lots": want a whole number, such as 6000`,
		`line 10: group #2: max_message_bytes "150 megs": not a size: want a number with an optional unit, such as 200MiB or 10GiB`,
		`line 11: group #3: name "m365" is taken by the group at line 2: names must be unique`,
		`line 13: group "m365": no cidrs: list the group's address ranges, such as [192.0.2.0/24, 2001:db8::/32]`,
		`line 14: group "m365": require_tls "maybe": want true or false`,
		`line 15: group "bad name!": name "bad name!": use at most 64 letters, digits, '.', '_' and '-'`,
		`line 18: group "bad name!": max_message_bytes has no effect on a group that drops its clients, which send no mail; remove it`,
		`line 21: group "dup-key": cidrs is given twice; keep one`,
		`line 23: group "dup-key": max_message_bytes "0": must be positive; remove the key to keep --max-message-bytes`,
		`line 24: group #6: want a mapping with name, cidrs and action, such as {name: gateway, cidrs: [192.0.2.0/24], action: accept}`,
	}
	got := problems(t, err)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestParseShapes(t *testing.T) {
	for doc, want := range map[string]string{
		"":           "line 1: no groups: an empty table would refuse every connection; list groups, or remove the key to accept every client",
		"[]":         "line 1: no groups: an empty table would refuse every connection; list groups, or remove the key to accept every client",
		"name: x\n":  "line 1: want a list of groups, each a mapping with name, cidrs and action",
		"- [a, b]\n": "line 1: group #1: want a mapping with name, cidrs and action, such as {name: gateway, cidrs: [192.0.2.0/24], action: accept}",
		"- {name: x, cidrs: [10.0.0.0/8], action: accept, frobnicate: 1}\n":       `line 1: group "x": unknown key "frobnicate"; a group's keys are name, cidrs, action, require_tls, max_connections_per_ip, max_messages_per_minute, max_message_bytes`,
		"- {name: x, cidrs: [[10.0.0.0/8]], action: accept}\n":                    `line 1: group "x": cidrs: want address ranges, such as [192.0.2.0/24, 2001:db8::/32]`,
		"- {name: x, cidrs: [10.0.0.0/8]}\n":                                      `line 1: group "x": no action: want accept, reject (554 5.7.1 greeting) or drop (close without a greeting)`,
		"- {name: [x], cidrs: [10.0.0.0/8], action: accept}\n":                    `line 1: group #1: name: want a word, such as m365`,
		"- {name: x, cidrs: [10.0.0.0/8], action: accept, require_tls: [true]}\n": `line 1: group "x": require_tls (a list): want true or false`,
		"- {name: x\n": "not valid YAML: line 1: did not find expected ',' or '}'",
		"- {name: all, cidrs: [0.0.0.0/0, ::/0], action: reject}\n": `not valid YAML: did not find expected node content (in a [list], quote an IPv6 range that starts with ':': "::/0")`,
	} {
		_, err := Parse([]byte(doc))
		if got := strings.Join(problems(t, err), "\n"); got != want {
			t.Errorf("Parse(%q):\n%s\nwant:\n%s", doc, got, want)
		}
	}
	// Anchors and aliases are YAML's own, and are read through.
	tab := mustParse(t, "- &lan {name: lan, cidrs: &r [10.0.0.0/8], action: accept}\n- {name: lan2, cidrs: *r, action: accept}\n")
	if len(tab.Groups()) != 2 || len(tab.Groups()[1].Prefixes) != 1 {
		t.Errorf("aliases: %+v", tab.Groups())
	}
}

func TestNewChecksGroupsBuiltInCode(t *testing.T) {
	_, err := New([]Group{
		{Name: "a", Action: Accept, Prefixes: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 8)}},
		{Name: "b", Prefixes: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Name: "c", Action: Reject, RequireTLS: true, MaxMessagesPerMinute: 5, Prefixes: []netip.Prefix{netip.MustParsePrefix("::/0")}},
		{Name: "a", Action: Action(9), MaxConnectionsPerIP: -2, MaxMessageBytes: -1},
	})
	want := []string{
		`group "a": cidrs: "10.0.0.1/8": host bits set; write 10.0.0.0/8, or 10.0.0.1/32 for the one address`,
		`group "b": no action: want accept, reject (554 5.7.1 greeting) or drop (close without a greeting)`,
		`group "c": max_messages_per_minute has no effect on a group that rejects its clients, which send no mail; remove it`,
		`group "c": require_tls has no effect on a group that rejects its clients, which send no mail; remove it`,
		`group "a": action action(9): want accept, reject (554 5.7.1 greeting) or drop (close without a greeting)`,
		`group "a": max_connections_per_ip -2: must not be negative; 0, or no key, sets no cap of the group's own`,
		`group "a": max_message_bytes -1: must be positive; remove the key to keep --max-message-bytes`,
		`group "a": no cidrs: list the group's address ranges, such as [192.0.2.0/24, 2001:db8::/32]`,
		`group #4: name "a" is taken by the group at group #1: names must be unique`,
	}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestAllowList(t *testing.T) {
	tab, err := AllowList([]string{"10.0.0.0/8", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{"10.1.2.3": "allow-cidr", "2001:db8::1": "allow-cidr", "11.0.0.1": "default-reject", "2001:db8::2": "default-reject"} {
		if g := tab.Match(netip.MustParseAddr(addr)); g == nil || g.Name != want {
			t.Errorf("Match(%s) = %v, want %s", addr, g, want)
		}
	}
	if gs := tab.Groups(); gs[0].Action != Accept || gs[1].Action != Reject {
		t.Errorf("actions %v, %v", gs[0].Action, gs[1].Action)
	}
	_, err = AllowList([]string{"10.0.0.1/8", "nonsense", "192.0.2.0/24"})
	want := []string{`"10.0.0.1/8": host bits set; write 10.0.0.0/8, or 10.0.0.1/32 for the one address`, `"nonsense": ` + errNotRange.Error()}
	if got := problems(t, err); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestUnreachable(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      map[string][]string // shadowed group -> the groups named as covering it
	}{
		{"union of two halves", `
- {name: low, cidrs: [10.0.0.0/9], action: accept}
- {name: high, cidrs: [10.128.0.0/9], action: accept}
- {name: other, cidrs: [192.0.2.0/24], action: accept}
- {name: all-ten, cidrs: [10.0.0.0/8, 10.64.0.0/10], action: reject}
`, map[string][]string{"all-ten": {"low", "high"}}},
		{"one address left open is reachable", `
- {name: a, cidrs: [10.0.0.0/9, 10.128.0.0/10, 10.192.0.0/11, 10.224.0.0/12], action: accept}
- {name: b, cidrs: [10.240.0.0/13, 10.248.0.0/14, 10.252.0.0/15, 10.254.0.0/16], action: accept}
- {name: c, cidrs: [10.255.0.0/17, 10.255.128.0/18, 10.255.192.0/19, 10.255.255.0/25], action: accept}
- {name: ten, cidrs: [10.0.0.0/8], action: reject}
`, nil},
		{"families are apart", `
- {name: v4, cidrs: [0.0.0.0/0], action: accept}
- {name: v6-too, cidrs: [10.0.0.0/8, 2001:db8::/32], action: accept}
- {name: v4-only, cidrs: [10.0.0.0/8], action: reject}
- {name: rest, cidrs: [0.0.0.0/0, "::/0"], action: reject}
`, map[string][]string{"v4-only": {"v4", "v6-too"}}},
		{"the very last addresses", `
- {name: top4, cidrs: [255.255.255.255/32, 255.255.255.254/32], action: accept}
- {name: top6, cidrs: ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"], action: accept}
- {name: shadowed, cidrs: [255.255.255.254/31, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"], action: drop}
- {name: open, cidrs: [255.255.255.252/31], action: drop}
`, map[string][]string{"shadowed": {"top4", "top6"}}},
		{"same range twice", `
- {name: first, cidrs: [192.0.2.0/24], action: accept}
- {name: again, cidrs: [192.0.2.0/24], action: accept}
- {name: inside, cidrs: [192.0.2.128/25, 192.0.2.5], action: accept}
`, map[string][]string{"again": {"first"}, "inside": {"first", "again"}}},
	} {
		tab := mustParse(t, tc.doc)
		got := map[string][]string{}
		for _, s := range tab.Unreachable() {
			for _, b := range s.By {
				got[s.Group.Name] = append(got[s.Group.Name], b.Name)
			}
		}
		if len(got) != len(tc.want) {
			t.Errorf("%s: unreachable %v, want %v", tc.name, got, tc.want)
			continue
		}
		for g, by := range tc.want {
			if strings.Join(got[g], ",") != strings.Join(by, ",") {
				t.Errorf("%s: %s covered by %v, want %v", tc.name, g, got[g], by)
			}
		}
		assertReach(t, tab, nil)
	}
}

// On tables whose every range lies within 10.0.0.0/24, every address can be tried: the
// groups Match returns for some address are exactly the ones reach finds a witness for.
func TestReachAgreesWithEveryAddress(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	base := netip.MustParseAddr("10.0.0.0").As4()
	for round := range 3000 {
		var groups []Group
		for g := range 1 + rng.IntN(6) {
			grp := Group{Name: "g" + string(rune('a'+g)), Action: Accept}
			for range 1 + rng.IntN(4) {
				bits := 24 + rng.IntN(9)
				b := base
				b[3] = byte(rng.IntN(256))
				grp.Prefixes = append(grp.Prefixes, netip.PrefixFrom(netip.AddrFrom4(b), bits).Masked())
			}
			groups = append(groups, grp)
		}
		tab, err := New(groups)
		if err != nil {
			t.Fatal(err)
		}
		hit := map[*Group]bool{}
		for i := range 256 {
			b := base
			b[3] = byte(i)
			if g := tab.Match(netip.AddrFrom4(b)); g != nil {
				hit[g] = true
			}
		}
		reach := tab.reach()
		for i, g := range tab.Groups() {
			if reach[i].IsValid() != hit[g] {
				t.Fatalf("round %d: group %s: reach %v, but some address matches it: %v\n%+v", round, g.Name, reach[i], hit[g], groups)
			}
		}
		assertReach(t, tab, nil)
	}
}
