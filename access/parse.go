package access

import (
	"bytes"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/journalsensor/sensor/internal/bytesize"
	"github.com/journalsensor/sensor/internal/suggest"
)

// The keys of a group, in the order a problem lists them.
var groupKeys = []string{"name", "cidrs", "action", "require_tls", "max_connections_per_ip", "max_messages_per_minute", "max_message_bytes"}

// Parse compiles a YAML document that holds the table alone: a list of groups.
func Parse(doc []byte) (*Table, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, &Problem{Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ") + QuoteHint(doc)}
	}
	if len(root.Content) == 0 {
		return Decode(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: 1})
	}
	return Decode(root.Content[0])
}

// Decode compiles the table written as n, a YAML sequence of groups (the value of the
// config file's access key):
//
//   - name: m365
//     cidrs: [40.92.0.0/15, 2a01:111:f403::/48]
//     action: accept
//     require_tls: true
//     max_connections_per_ip: 50
//     max_messages_per_minute: 6000
//     max_message_bytes: 150MiB
//
// It reports every problem at once, in the order of the file, each a *Problem with its line:
// those New finds, and keys no group has, values of the wrong kind, and cidrs entries
// ParsePrefix refuses.
func Decode(n *yaml.Node) (*Table, error) {
	n = resolve(n)
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null", n.Kind == yaml.SequenceNode && len(n.Content) == 0:
		return nil, &Problem{Line: n.Line, Msg: "no groups: an empty table would refuse every connection; list groups, or remove the key to accept every client"}
	case n.Kind != yaml.SequenceNode:
		return nil, &Problem{Line: n.Line, Msg: "want a list of groups, each a mapping with name, cidrs and action"}
	}
	t := &Table{}
	var probs []*Problem
	for i, item := range n.Content {
		g, gp := decodeGroup(resolve(item), i)
		t.groups = append(t.groups, g)
		probs = append(probs, gp...)
	}
	probs = append(probs, duplicates(t.groups)...)
	if len(probs) > 0 {
		return nil, joinProblems(sortProblems(probs))
	}
	return t, nil
}

// decodeGroup reads the i-th group (from 0) and checks it.
func decodeGroup(n *yaml.Node, i int) (*Group, []*Problem) {
	g := &Group{Line: n.Line, lines: map[string]int{}}
	if n.Kind != yaml.MappingNode {
		return g, []*Problem{{Line: n.Line, Where: fmt.Sprintf("group #%d", i+1),
			Msg: "want a mapping with name, cidrs and action, such as {name: gateway, cidrs: [192.0.2.0/24], action: accept}"}}
	}
	type fault struct {
		line int
		msg  string
	}
	var faults []fault // told once the group's name is known
	told := map[string]bool{}
	var key string
	bad := func(v *yaml.Node, format string, a ...any) {
		faults = append(faults, fault{v.Line, fmt.Sprintf(format, a...)})
		told[key] = true
	}
	for j := 0; j+1 < len(n.Content); j += 2 {
		k, v := resolve(n.Content[j]), resolve(n.Content[j+1])
		key = k.Value
		if k.Kind != yaml.ScalarNode {
			bad(k, "a key must be a word, one of %s", strings.Join(groupKeys, ", "))
			continue
		}
		if _, dup := g.lines[key]; dup {
			faults = append(faults, fault{k.Line, key + " is given twice; keep one"})
			continue
		}
		g.lines[key] = v.Line
		switch key {
		case "name":
			if s, ok := scalar(v); ok {
				g.Name = s
			} else {
				bad(v, "name: want a word, such as m365")
			}
		case "cidrs":
			items := []*yaml.Node{v}
			if v.Kind == yaml.SequenceNode {
				items = v.Content
			}
			for _, c := range items {
				c = resolve(c)
				s, ok := scalar(c)
				if !ok {
					bad(c, "cidrs: want address ranges, such as [192.0.2.0/24, 2001:db8::/32]")
					continue
				}
				p, err := ParsePrefix(s)
				if err != nil {
					bad(c, "cidrs: %q: %v", s, err)
					continue
				}
				g.Prefixes = append(g.Prefixes, p)
			}
		case "action":
			s, _ := scalar(v)
			switch s {
			case "accept":
				g.Action = Accept
			case "reject":
				g.Action = Reject
			case "drop":
				g.Action = Drop
			default:
				bad(v, "action %q: %s", s, validActions)
			}
		case "require_tls":
			if err := v.Decode(&g.RequireTLS); err != nil || v.Kind != yaml.ScalarNode {
				bad(v, "require_tls %s: want true or false", shown(v))
			}
		case "max_connections_per_ip":
			if !decodeInt(v, &g.MaxConnectionsPerIP) {
				bad(v, "max_connections_per_ip %s: want a whole number, such as 50", shown(v))
			}
		case "max_messages_per_minute":
			if !decodeInt(v, &g.MaxMessagesPerMinute) {
				bad(v, "max_messages_per_minute %s: want a whole number, such as 6000", shown(v))
			}
		case "max_message_bytes":
			s, ok := scalar(v)
			n, err := bytesize.Parse(s)
			switch {
			case !ok || err != nil:
				bad(v, "max_message_bytes %s: %v", shown(v), bytesize.ErrSyntax)
			case n == 0:
				bad(v, "max_message_bytes %s: must be positive; remove the key to keep --max-message-bytes", shown(v))
			default:
				g.MaxMessageBytes = n
			}
		default:
			bad(k, "%s", unknownKey(key))
		}
	}
	where := label(g, i)
	probs := check(g, i, told)
	for _, f := range faults {
		probs = append(probs, &Problem{Line: f.line, Where: where, Msg: f.msg})
	}
	return g, sortProblems(probs)
}

// QuoteHint is what to add to a YAML parser's complaint about doc when doc holds an IPv6
// range starting with ':' in a [flow, list]: there YAML takes the ':' for a key's, and
// [0.0.0.0/0, ::/0], as a table's last group is usually written, does not parse. Outside a
// flow list it parses, quoted or not.
func QuoteHint(doc []byte) string {
	for _, s := range []string{"[::", ", ::", ",::"} {
		if bytes.Contains(doc, []byte(s)) {
			return ` (in a [list], quote an IPv6 range that starts with ':': "::/0")`
		}
	}
	return ""
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// scalar is n's text, if n is a scalar other than null.
func scalar(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return "", false
	}
	return n.Value, true
}

func decodeInt(n *yaml.Node, dst *int) bool {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return false
	}
	return n.Decode(dst) == nil
}

// shown is n as a problem quotes it.
func shown(n *yaml.Node) string {
	if s, ok := scalar(n); ok {
		return fmt.Sprintf("%q", s)
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "(a mapping)"
	case yaml.SequenceNode:
		return "(a list)"
	}
	return "(empty)"
}

// unknownKey says what is wrong with a key no group has, suggesting the one meant: the
// flags of sensor serve are spelled with '-', a group's keys with '_'.
func unknownKey(k string) string {
	norm := strings.ReplaceAll(strings.ToLower(strings.TrimSpace(k)), "-", "_")
	if best := suggest.Nearest(norm, groupKeys); best != "" {
		return fmt.Sprintf("unknown key %q; did you mean %q?", k, best)
	}
	return fmt.Sprintf("unknown key %q; a group's keys are %s", k, strings.Join(groupKeys, ", "))
}
