package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// flagGroups orders serve's flags for people: docs/configuration.md and `sensor config print`
// list them group by group, in this order. The flag package keeps no order of definition, and
// its alphabetical one scatters related settings (tls-cert far from smtps-listen). The names,
// defaults and meanings still come from serveFlags alone: serveFlagsInGroups fails when a flag
// is missing here or a name here is no flag, so a new flag cannot go undocumented.
var flagGroups = []struct {
	title string
	flags []string
}{
	{"The config file", []string{"config"}},
	{"Where mail comes in", []string{"smtp-listen", "journal-address", "allow-cidr",
		"max-message-bytes", "idle-timeout", "max-transaction-time", "max-connections", "max-connections-per-ip"}},
	{"TLS on the SMTP door", []string{"tls-cert", "tls-key", "smtps-listen", "require-tls", "tls-client-ca", "tls-client-name"}},
	{"Proof of origin", []string{"m365-tenant", "source-header", "source-header-secret-file"}},
	{"Postfix milter", []string{"milter-listen", "milter-socket-mode", "milter-on-fault", "milter-timeout", "milter-add-header"}},
	{"Records", []string{"attachments", "urls"}},
	{"Spool and pipeline", []string{"data-dir", "spool-max-bytes", "max-age", "pipeline-url", "pipeline-token-file",
		"pipeline-ca-file", "pipeline-client-cert", "pipeline-client-key", "shutdown-timeout"}},
	{"Admin endpoints and logs", []string{"admin-listen", "admin-token-file", "log-format", "log-level"}},
	{"Enforcement: Microsoft 365 (Graph)", []string{"graph-domain", "graph-tenant", "graph-client-id",
		"graph-client-secret-file", "graph-client-cert-file", "graph-client-key-file", "graph-login-url", "graph-url",
		"graph-quarantine-folder"}},
	{"Enforcement: Google Workspace (Gmail)", []string{"gmail-domain", "gmail-credentials-file", "gmail-url", "gmail-quarantine-label"}},
	{"Enforcement: behaviour", []string{"enforce-mode", "verdict-poll", "enforce-find-window", "enforce-window", "allow-hard-delete"}},
}

// flagGroup is one group of flagGroups, with its flags looked up in a FlagSet.
type flagGroup struct {
	title string
	flags []*flag.Flag
}

// serveFlagsInGroups returns fs's flags in flagGroups' order. It fails on a flag of fs that no
// group names, or a name in a group that fs lacks: the two lists must say the same.
func serveFlagsInGroups(fs *flag.FlagSet) ([]flagGroup, error) {
	var out []flagGroup
	var errs []error
	named := map[string]bool{}
	for _, g := range flagGroups {
		fg := flagGroup{title: g.title}
		for _, name := range g.flags {
			f := fs.Lookup(name)
			if f == nil {
				errs = append(errs, fmt.Errorf("flagGroups names %q, which is no flag of sensor serve", name))
				continue
			}
			if named[name] {
				errs = append(errs, fmt.Errorf("flagGroups names %q twice", name))
			}
			named[name] = true
			fg.flags = append(fg.flags, f)
		}
		out = append(out, fg)
	}
	fs.VisitAll(func(f *flag.Flag) {
		if !named[f.Name] {
			errs = append(errs, fmt.Errorf("flag --%s is in no group of flagGroups (cmd/sensor/configdocs.go); add it to one", f.Name))
		}
	})
	return out, errors.Join(errs...)
}

// configDocsCmd is `sensor config docs`: it prints docs/configuration.md, made from serve's
// flag definitions, so that the page cannot drift from `sensor serve --help`.
func configDocsCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: sensor config docs > docs/configuration.md")
		return 2
	}
	if err := writeConfigDocs(stdout); err != nil {
		fmt.Fprintf(stderr, "sensor config docs: %v\n", err)
		return 1
	}
	return 0
}

// writeConfigDocs writes the configuration reference as Markdown.
func writeConfigDocs(w io.Writer) error {
	fs := serveFlags(&serveConfig{}, io.Discard)
	groups, err := serveFlagsInGroups(fs)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString(configDocsIntro)
	for _, g := range groups {
		fmt.Fprintf(&b, "\n## %s\n\n", g.title)
		b.WriteString("| flag and config key | environment | default | meaning |\n|---|---|---|---|\n")
		for _, f := range g.flags {
			key := "`" + f.Name + "`"
			if f.Name == "config" {
				key = "`--config` (no key: a file cannot name another)"
			} else if isList(f) {
				key += " (repeatable)"
			}
			def := "none"
			if f.DefValue != "" {
				def = "`" + f.DefValue + "`"
			}
			fmt.Fprintf(&b, "| %s | `%s` | %s | %s |\n", key, envName(f.Name), def, mdCell(f.Usage))
		}
	}
	b.WriteString(configDocsStructured)
	_, err = io.WriteString(w, b.String())
	return err
}

func isList(f *flag.Flag) bool {
	_, ok := f.Value.(*listFlag)
	return ok
}

// mdCell makes a flag's usage text safe in a Markdown table cell: a "|" would end the cell,
// <data-dir> would be taken for an HTML tag and vanish, and the two stars of "local@domain or
// *@domain ... *.example.com" would set the text between them in italics.
func mdCell(s string) string {
	return strings.NewReplacer("|", `\|`, "*", `\*`, "<", "&lt;", ">", "&gt;", "\n", " ").Replace(s)
}

const configDocsIntro = `# Configuration of sensor serve

<!-- Generated by ` + "`go run ./cmd/sensor config docs > docs/configuration.md`" + ` from the flag
definitions in cmd/sensor; edit those, not this file. TestConfigurationDocIsCurrent fails when
it is stale. -->

Every setting of ` + "`sensor serve`" + ` can be given three ways:

- as a flag: ` + "`--smtp-listen :2525`" + `;
- as a key of the YAML config file named by ` + "`--config`" + ` (or ` + "`SENSOR_CONFIG`" + `), spelled
  like the flag without its dashes: ` + "`smtp-listen: \":2525\"`" + `;
- as an environment variable: ` + "`SENSOR_`" + ` and the flag's name in upper case with ` + "`_`" + ` for
  ` + "`-`" + `, such as ` + "`SENSOR_SMTP_LISTEN=:2525`" + `.

A flag beats the environment, which beats the file, which beats the default. An empty
environment variable counts as unset.

A **repeatable** setting (marked so below) takes one value per flag
(` + "`--journal-address a@example.org --journal-address b@example.org`" + `), a YAML list in the
file, and a comma-separated list in the environment
(` + "`SENSOR_JOURNAL_ADDRESS=a@example.org,b@example.org`" + `). Where one layer sets it, it
replaces what a lower layer would have said; the layers are not merged.

Durations are written with a unit (` + "`90s`" + `, ` + "`5m`" + `, ` + "`1h30m`" + `), sizes in bytes or with a
unit (` + "`200MiB`" + `, ` + "`10GiB`" + `, ` + "`512KB`" + `). Settings that name a file of a secret (a token, a
client secret, a key) hold its path, never the secret: the file is read at start.

` + "`sensor config check --config FILE`" + ` reports every problem of a configuration at once;
` + "`sensor config print`" + ` prints the configuration in effect, from all three layers, as a
config file.
`

const configDocsStructured = `
## Structured keys

Some settings are structures no flag could spell; only the config file sets them.

| key | meaning |
|---|---|
| ` + "`access`" + ` | the host access table: a list of sender groups, each with its ` + "`cidrs`" + `, an ` + "`action`" + ` (accept, reject or drop) and per-group limits. See [the README](../README.md#host-access-table) and the examples in [docs/access/](access/). ` + "`--allow-cidr`" + ` is its shortcut and cannot be combined with it. |
`
