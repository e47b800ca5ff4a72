package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// redacted stands in for a secret that a setting holds itself rather than in a file.
const redacted = "<redacted>"

// configPrintCmd is `sensor config print`. It loads the configuration exactly as serve does
// (flags, then SENSOR_* environment, then the file, then defaults) and prints it as a config
// file that serve --config accepts: every key, in flagGroups' order, then the structured keys.
// An operator sees in one place what the three layers add up to, and can pin it in a file.
//
// An invalid configuration prints nothing on stdout: half a config file, piped into another,
// would be worse than none. Its problems go to stderr, as config check lists them, and the
// exit status is 2.
func configPrintCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			fmt.Fprint(stderr, configPrintUsage)
			return 0
		}
	}
	var fs *flag.FlagSet
	c, err := loadServeConfig(args, stderr, getenv, func(_ *serveConfig, f *flag.FlagSet) { fs = f })
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if c == nil {
		fmt.Fprintf(stderr, "sensor config print: %v\n", err)
		return 2
	}
	if err != nil {
		problems := configProblems(err, c, args, getenv)
		for _, p := range problems {
			fmt.Fprintln(stderr, p)
		}
		fmt.Fprintf(stderr, "sensor config print: %d problem(s); nothing printed\n", len(problems))
		return 2
	}
	out, err := printConfig(c, fs)
	if err != nil {
		fmt.Fprintf(stderr, "sensor config print: %v\n", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

const configPrintUsage = `usage: sensor config print [--config FILE] [serve flags]

Prints the configuration sensor serve would run with, from its flags, the SENSOR_*
environment, the config file and the defaults, as a config file that serve --config accepts:
every key, grouped as in docs/configuration.md. A password in a URL is shown as <redacted>;
files of secrets are named, never read out. Exits 2, printing nothing but the problems, when
the configuration is invalid.
`

// printConfig renders the layered flags of fs, which loadServeConfig filled into c, as YAML.
func printConfig(c *serveConfig, fs *flag.FlagSet) ([]byte, error) {
	groups, err := serveFlagsInGroups(fs)
	if err != nil {
		return nil, err
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	var notes []string
	for _, g := range groups {
		first := true
		for _, f := range g.flags {
			if f.Name == "config" {
				continue // a config file cannot name another
			}
			v, note, err := valueNode(f)
			if f.Name == "pipeline-url" && c.pipelineURL == defaultOutboxURL(c.dataDir) {
				// check derived it from data-dir, as an absolute path: printed, it would pin
				// the outbox, and the file would no longer follow a changed data-dir or a
				// relative one run from elsewhere.
				v, note, err = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}, "", nil
			}
			if err != nil {
				return nil, fmt.Errorf("--%s: %w", f.Name, err)
			}
			if note != "" {
				notes = append(notes, note)
			}
			k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Name}
			if first {
				k.HeadComment = g.title
				first = false
			}
			root.Content = append(root.Content, k, v)
		}
	}
	if c.accessNode != nil {
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: "access", HeadComment: "Host access table"}
		root.Content = append(root.Content, k, c.accessNode)
	}
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root},
		HeadComment: "sensor config print: the configuration sensor serve would run with"}
	if len(notes) > 0 {
		doc.HeadComment += "\n" + strings.Join(notes, "\n")
	}
	var b strings.Builder
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("writing YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("writing YAML: %w", err)
	}
	// A blank line before each group's title, for the eye; only titles are comments at the
	// start of a line, as the access table's own are indented below its key.
	return []byte(strings.ReplaceAll(b.String(), "\n# ", "\n\n# ")), nil
}

// defaultOutboxURL is the pipeline-url serveConfig.check derives when none is set; "" when
// dataDir has no absolute path.
func defaultOutboxURL(dataDir string) string {
	abs, err := filepath.Abs(filepath.Join(dataDir, "outbox"))
	if err != nil {
		return ""
	}
	return "file://" + abs
}

// valueNode is f's value as YAML that layer reads back to the same value: a list for a
// repeatable flag, a number or boolean where the flag holds one, text otherwise. note says
// what was redacted.
func valueNode(f *flag.Flag) (n *yaml.Node, note string, err error) {
	n = &yaml.Node{}
	if l, ok := f.Value.(*listFlag); ok {
		n.Kind, n.Tag = yaml.SequenceNode, "!!seq"
		n.Style = yaml.FlowStyle // short lists read best on their key's line
		for _, item := range *l {
			s, red := redact(item)
			if red {
				note = fmt.Sprintf("%s: a password in a URL is shown as %s; put it back before using this file", f.Name, redacted)
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s})
		}
		return n, note, nil
	}
	var v any = f.Value.String()
	if g, ok := f.Value.(flag.Getter); ok {
		switch x := g.Get().(type) {
		case bool, int, int64, uint, uint64:
			v = x
		case time.Duration:
			v = x.String()
		}
	}
	if s, ok := v.(string); ok {
		if masked, red := redact(s); red {
			v = masked
			note = fmt.Sprintf("%s: a password in the URL is shown as %s; put it back before using this file", f.Name, redacted)
		}
	}
	if err := n.Encode(v); err != nil {
		return nil, "", err
	}
	return n, note, nil
}

// redact hides the user and password of a URL, the only secret a setting can hold itself:
// every token, client secret and key is named by its file (the *-file settings), and a path
// is no secret. The pipeline's bearer token, for one, is in --pipeline-token-file.
func redact(s string) (string, bool) {
	if maskUserinfo(s) == s {
		return s, false
	}
	scheme, rest, _ := strings.Cut(s, "://")
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	return scheme + "://" + redacted + rest[strings.LastIndex(host, "@"):], true
}
