// Package access is the SMTP door's host access table: sender groups of address ranges, each
// with its mail flow policy, matched in order so that the first group holding a client's
// address decides, as in a Cisco host access table.
//
// It is a package of its own, beside sensor rather than in it, because two parties read a
// table and neither needs the other: sensor serve's configuration, which must report a
// table's every problem (groups that can never match included) before anything listens, and
// the SMTP door, which matches each connection. Kept apart, the compiler is small enough to
// fuzz on its own and knows nothing of SMTP.
package access

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Action is what a group does with a connection.
type Action uint8

const (
	// Accept serves the session under the group's policy.
	Accept Action = iota + 1
	// Reject greets the client with 554 5.7.1 and serves nothing but QUIT (RFC 5321 §3.1).
	Reject
	// Drop closes the connection without a word.
	Drop
)

var actionNames = [...]string{Accept: "accept", Reject: "reject", Drop: "drop"}

func (a Action) String() string {
	if int(a) < len(actionNames) && actionNames[a] != "" {
		return actionNames[a]
	}
	return fmt.Sprintf("action(%d)", int(a))
}

// Group is one sender group and its mail flow policy. A zero cap or size means the group
// sets none of its own: the sensor-wide setting applies.
type Group struct {
	Name     string
	Prefixes []netip.Prefix
	Action   Action

	RequireTLS           bool  // MAIL before STARTTLS is deferred, as with --require-tls
	MaxConnectionsPerIP  int   // open connections from one of its addresses; the global cap still holds
	MaxMessagesPerMinute int   // MAIL commands from one of its addresses, on average
	MaxMessageBytes      int64 // replaces --max-message-bytes for its sessions

	// Line is where the group starts in its YAML file; 0 when it came from elsewhere.
	Line int

	lines map[string]int // of each key, for problems of one field
}

// KeyLine is the line of the YAML file where key (such as "cidrs") was written, or the
// group's own line.
func (g *Group) KeyLine(key string) int {
	if n := g.lines[key]; n > 0 {
		return n
	}
	return g.Line
}

// A Problem is one thing wrong with a table, with where it was written.
type Problem struct {
	Line  int    // in the YAML file; 0 when not known
	Where string // `group "m365"`, or `group #2` for one with no name; "" for the table
	Msg   string // what is wrong, and what to write instead
}

func (p *Problem) Error() string {
	var b strings.Builder
	if p.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", p.Line)
	}
	if p.Where != "" {
		b.WriteString(p.Where + ": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Table is a compiled host access table. Its groups are not to be changed once compiled.
type Table struct {
	groups []*Group
}

// maxNameLen bounds a group name, which appears in every record and metric of its clients.
const maxNameLen = 64

// New compiles groups into a table, in their order, and reports every problem at once: a
// missing or repeated name, a name that is no label, no ranges, a range that is not in its
// canonical form, an unknown action, a negative cap, a policy on a group that serves no
// mail. It never reports groups that cannot match; see Unreachable.
func New(groups []Group) (*Table, error) {
	t := &Table{}
	var probs []*Problem
	for i := range groups {
		g := groups[i]
		g.Prefixes = slices.Clone(g.Prefixes) // the caller's array may change; the table may not
		t.groups = append(t.groups, &g)
		probs = append(probs, check(&g, i, nil)...)
	}
	probs = append(probs, duplicates(t.groups)...)
	if len(probs) > 0 {
		return nil, joinProblems(probs)
	}
	return t, nil
}

// AllowList is the table of --allow-cidr: an accept group named "allow-cidr" of cidrs, then
// a reject group named "default-reject" of every address. A bad entry is a Problem whose
// Msg names it.
func AllowList(cidrs []string) (*Table, error) {
	allow := Group{Name: "allow-cidr", Action: Accept}
	var probs []*Problem
	for _, s := range cidrs {
		p, err := ParsePrefix(s)
		if err != nil {
			probs = append(probs, &Problem{Msg: fmt.Sprintf("%q: %v", s, err)})
			continue
		}
		allow.Prefixes = append(allow.Prefixes, p)
	}
	if len(probs) > 0 {
		return nil, joinProblems(probs)
	}
	return New([]Group{allow, {Name: "default-reject", Action: Reject,
		Prefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}}})
}

// Match returns the first group holding a, or nil when none does: the table is an
// allow-list, so the door refuses such a client as it does a reject group's. An IPv4 address
// in IPv6 form (::ffff:192.0.2.1, as a dual-stack listener reports one) is matched as IPv4,
// and a zone is ignored. A nil table matches nothing.
//
// The groups are scanned in order. Tables are tens of ranges and one match is made per
// connection, so a scan costs less than the trie that would beat it on thousands.
func (t *Table) Match(a netip.Addr) *Group {
	if t == nil {
		return nil
	}
	a = a.Unmap().WithZone("")
	for _, g := range t.groups {
		for _, p := range g.Prefixes {
			if p.Contains(a) {
				return g
			}
		}
	}
	return nil
}

// Groups returns the table's groups in order.
func (t *Table) Groups() []*Group {
	if t == nil {
		return nil
	}
	return t.groups
}

// ParsePrefix reads one entry of a group's cidrs: address/length in canonical form
// (192.0.2.0/24, 2001:db8::/32), or a bare address for that one host. It refuses, saying
// what to write instead, a range with host bits set (10.0.0.1/8: which of the two was
// meant?) and an IPv4-mapped IPv6 range, which could never match since IPv4 clients are
// matched as IPv4.
func ParsePrefix(s string) (netip.Prefix, error) {
	t := strings.TrimSpace(s)
	var p netip.Prefix
	if !strings.Contains(t, "/") {
		a, err := netip.ParseAddr(t)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, errNotRange
		}
		p = netip.PrefixFrom(a, a.BitLen())
	} else {
		var err error
		if p, err = netip.ParsePrefix(t); err != nil {
			return netip.Prefix{}, errNotRange
		}
	}
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		v4 := netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96).Masked()
		return netip.Prefix{}, fmt.Errorf("an IPv4-mapped IPv6 range never matches (IPv4 clients are matched as IPv4); write %s", v4)
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("host bits set; write %s, or %s for the one address", m, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	return p, nil
}

var errNotRange = errors.New("not an address range: write address/length, such as 192.0.2.0/24 or 2001:db8::/32")

// check reports what is wrong with g, the table's i-th group (from 0), but for the keys in
// told, whose problems were reported already: a group whose every range was unreadable is
// not also told it has none.
func check(g *Group, i int, told map[string]bool) []*Problem {
	var probs []*Problem
	bad := func(key, format string, a ...any) {
		if !told[key] {
			probs = append(probs, &Problem{Line: g.KeyLine(key), Where: label(g, i), Msg: fmt.Sprintf(format, a...)})
		}
	}
	switch {
	case g.Name == "":
		bad("name", "no name: give each group one, such as m365; records and metrics show it")
	case len(g.Name) > maxNameLen || strings.Trim(g.Name, nameChars) != "":
		bad("name", "name %q: use at most %d letters, digits, '.', '_' and '-'", g.Name, maxNameLen)
	}
	if len(g.Prefixes) == 0 {
		bad("cidrs", "no cidrs: list the group's address ranges, such as [192.0.2.0/24, 2001:db8::/32]")
	}
	for _, p := range g.Prefixes {
		// ParsePrefix holds entries from a file to this; a Group built in code is held here.
		if _, err := ParsePrefix(p.String()); err != nil {
			bad("cidrs", "cidrs: %q: %v", p.String(), err)
		}
	}
	switch g.Action {
	case Accept, Reject, Drop:
	case 0:
		bad("action", "no action: %s", validActions)
	default:
		bad("action", "action %v: %s", g.Action, validActions)
	}
	for _, c := range []struct {
		key string
		v   int64
	}{{"max_connections_per_ip", int64(g.MaxConnectionsPerIP)}, {"max_messages_per_minute", int64(g.MaxMessagesPerMinute)}} {
		if c.v < 0 {
			bad(c.key, "%s %d: must not be negative; 0, or no key, sets no cap of the group's own", c.key, c.v)
		}
	}
	if g.MaxMessageBytes < 0 {
		bad("max_message_bytes", "max_message_bytes %d: must be positive; remove the key to keep --max-message-bytes", g.MaxMessageBytes)
	}
	if g.Action == Reject || g.Action == Drop {
		for key, set := range map[string]bool{
			"require_tls":             g.RequireTLS,
			"max_connections_per_ip":  g.MaxConnectionsPerIP != 0,
			"max_messages_per_minute": g.MaxMessagesPerMinute != 0,
			"max_message_bytes":       g.MaxMessageBytes != 0,
		} {
			if set {
				bad(key, "%s has no effect on a group that %ss its clients, which send no mail; remove it", key, g.Action)
			}
		}
	}
	return sortProblems(probs)
}

const nameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"

const validActions = "want accept, reject (554 5.7.1 greeting) or drop (close without a greeting)"

// label names a group in a problem.
func label(g *Group, i int) string {
	if g.Name == "" {
		return fmt.Sprintf("group #%d", i+1)
	}
	return fmt.Sprintf("group %q", g.Name)
}

// duplicates reports each group whose name an earlier group has.
func duplicates(groups []*Group) []*Problem {
	var probs []*Problem
	first := map[string]int{}
	for i, g := range groups {
		if g.Name == "" {
			continue
		}
		j, seen := first[g.Name]
		if !seen {
			first[g.Name] = i
			continue
		}
		at := fmt.Sprintf("group #%d", j+1)
		if l := groups[j].Line; l > 0 {
			at = fmt.Sprintf("line %d", l)
		}
		probs = append(probs, &Problem{Line: g.KeyLine("name"), Where: fmt.Sprintf("group #%d", i+1),
			Msg: fmt.Sprintf("name %q is taken by the group at %s: names must be unique", g.Name, at)})
	}
	return probs
}

// sortProblems orders problems by line (stable for those of one line and message), so that
// a map's order never shows.
func sortProblems(probs []*Problem) []*Problem {
	slices.SortStableFunc(probs, func(a, b *Problem) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), strings.Compare(a.Msg, b.Msg))
	})
	return probs
}

func joinProblems(probs []*Problem) error {
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}
