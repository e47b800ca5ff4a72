package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/journalsensor/sensor/access"
	"github.com/journalsensor/sensor/internal/bytesize"
	"github.com/journalsensor/sensor/internal/suggest"
)

// structuredKeys are the config file's keys that are no flag, because their values are
// structures no flag could spell. The file alone sets them; loadServeConfig reads them from
// the file layer returns.
var structuredKeys = []string{
	"access", // the host access table: a list of sender groups (package access)
}

// layer fills every flag the command line did not set: first from the environment
// (SENSOR_<FLAG_IN_UPPER_SNAKE>), then from the YAML config file (keys spelled exactly like
// the flags). Flag beats env beats file beats default. It reports every problem at once, each
// a *problem naming where the bad value came from, and returns the file, for its
// structuredKeys; nil when it could not be read.
func layer(fs *flag.FlagSet, configPath string, getenv func(string) string) (*configFile, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	file := &configFile{}
	var errs []error
	if configPath != "" {
		var err error
		if file, err = readConfigFile(configPath); err != nil {
			return nil, err
		}
		for _, k := range file.keys {
			if k == "config" {
				errs = append(errs, &problem{key: k, where: file.at(k, ""),
					msg: `a config file cannot name another; remove the key`})
			} else if fs.Lookup(k) == nil && !slices.Contains(structuredKeys, k) {
				errs = append(errs, &problem{key: k, where: fmt.Sprintf("%s:%d", file.path, file.lines[k]), msg: unknownKey(fs, k)})
			}
		}
	}

	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			for _, item := range splitList(f, v) {
				if err := setValue(fs, f, item); err != nil {
					errs = append(errs, &problem{key: f.Name, where: fmt.Sprintf("environment %s=%q", env, v), msg: err.Error()})
				}
			}
			return
		}
		v, ok := file.values[f.Name]
		if !ok {
			return
		}
		items, err := yamlValues(v)
		if err != nil {
			errs = append(errs, &problem{key: f.Name, where: file.at(f.Name, ""), msg: err.Error()})
			return
		}
		for _, item := range items {
			if err := setValue(fs, f, item); err != nil {
				errs = append(errs, &problem{key: f.Name, where: file.at(f.Name, item), msg: err.Error()})
			}
		}
	})
	return file, errors.Join(errs...)
}

// setValue sets f from one value of the environment or the file. On failure it leaves f as it
// was, so that serveConfig.check does not report the same value a second time (the flag
// package's own values zero themselves first: a bad idle-timeout would also be "must be
// positive"), and it says what f wants.
func setValue(fs *flag.FlagSet, f *flag.Flag, s string) error {
	old := f.Value.String()
	err := fs.Set(f.Name, s)
	if err == nil {
		return nil
	}
	g, builtin := f.Value.(flag.Getter) // this package's own values change nothing on failure
	if !builtin {
		return err
	}
	_ = f.Value.Set(old)
	switch g.Get().(type) {
	case time.Duration:
		return errors.New("not a duration: write a number with a unit, such as 90s, 5m or 1h30m")
	case bool:
		return errors.New("want true or false")
	case int, int64, uint, uint64:
		return fmt.Errorf("want a whole number (%v)", err)
	}
	return err
}

// unknownKey says what is wrong with a key that is no flag, suggesting the nearest one.
func unknownKey(fs *flag.FlagSet, k string) string {
	norm := strings.ReplaceAll(strings.TrimLeft(strings.ToLower(k), "-"), "_", "-")
	keys := slices.Clone(structuredKeys)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			keys = append(keys, f.Name)
		}
	})
	if best := suggest.Nearest(norm, keys); best != "" {
		return fmt.Sprintf("unknown key %q; did you mean %q?", k, best)
	}
	return fmt.Sprintf("unknown key %q; the keys are the flags of sensor serve without their dashes (see sensor serve --help)", k)
}

// configFile is a parsed YAML config file.
type configFile struct {
	path   string
	values map[string]any
	nodes  map[string]*yaml.Node // the value of each key, for structuredKeys
	lines  map[string]int        // of each key
	keys   []string              // sorted
}

func readConfigFile(path string) (*configFile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &problem{where: path, msg: fmt.Sprintf("cannot read the config file: %v", err)}
	}
	f := &configFile{path: path, values: map[string]any{}, nodes: map[string]*yaml.Node{}, lines: map[string]int{}}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		where, msg := path, yamlError(err)
		if rest, ok := strings.CutPrefix(msg, "line "); ok {
			if n, text, ok := strings.Cut(rest, ": "); ok {
				where, msg = path+":"+n, text
			}
		}
		if bytes.HasPrefix(data, []byte("\t")) || bytes.Contains(data, []byte("\n\t")) {
			msg += " (YAML indents with spaces, and a line of this file starts with a tab)"
		}
		msg += access.QuoteHint(data)
		return nil, &problem{where: where, msg: "not valid YAML: " + msg}
	}
	if len(doc.Content) == 0 {
		return f, nil // empty, or only comments: every setting has its default
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, &problem{where: fmt.Sprintf("%s:%d", path, root.Line),
			msg: `want keys with their values, one a line, such as smtp-listen: ":2525"`}
	}
	if err := root.Decode(&f.values); err != nil {
		return nil, &problem{where: path, msg: "not valid YAML: " + yamlError(err)}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		f.lines[root.Content[i].Value] = root.Content[i].Line
		f.nodes[root.Content[i].Value] = root.Content[i+1]
	}
	for k := range f.values {
		f.keys = append(f.keys, k)
	}
	sort.Strings(f.keys)
	return f, nil
}

// at names key and its line in the file and, unless it is "", its value.
func (f *configFile) at(key, value string) string {
	if value == "" {
		return fmt.Sprintf("%s:%d: key %q", f.path, f.lines[key], key)
	}
	return fmt.Sprintf("%s:%d: key %q value %q", f.path, f.lines[key], key, value)
}

func yamlError(err error) string {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return strings.Join(te.Errors, "; ")
	}
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// A problem is one thing wrong with the configuration.
type problem struct {
	key   string // the setting it concerns, or an unknown key as spelled; "" for the file as a whole
	where string // where the bad value came from: `FILE:LINE: key "K"`, `environment SENSOR_K="V"`
	msg   string // what is wrong, and what to write instead
}

func (p *problem) Error() string { return p.where + ": " + p.msg }

// configCheckCmd is `sensor config check`. It loads the configuration exactly as serve does
// (flags, then SENSOR_* environment, then the file, then defaults) and prints every problem,
// one a line, then their count, and exits 1; or prints "config OK" and exits 0.
//
// It only reads: the config file, the token file, the TLS certificates and CA bundles, and
// the metadata of the other files the settings name. The data dir, the spool, the outbox and the listeners are made by serve,
// which it never calls, so it is safe beside a running sensor and before the data dir exists
// (TestConfigCheckOnlyReads holds it to that).
func configCheckCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help":
			// The flags are serve's; their own usage would name `sensor serve`.
			fmt.Fprint(stderr, configCheckUsage)
			return 0
		}
	}
	c, err := loadServeConfig(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if c == nil {
		fmt.Fprintf(stderr, "sensor config check: %v\n", err)
		return 2
	}
	if c.configFile == "" {
		fmt.Fprintln(stderr, "usage: sensor config check --config FILE")
		return 2
	}
	problems := configProblems(err, c, args, getenv)
	if len(problems) == 0 {
		fmt.Fprintln(stdout, "config OK")
		if s := originSummary(c); s != "" {
			fmt.Fprintln(stdout, s)
		}
		return 0
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	if len(problems) == 1 {
		fmt.Fprintf(stderr, "%s: 1 problem\n", c.configFile)
	} else {
		fmt.Fprintf(stderr, "%s: %d problems\n", c.configFile, len(problems))
	}
	return 1
}

// originSummary says what a copy must show of its origin, for config check: a refusal of
// every copy is the likeliest mistake an operator can make here, so the rule is spelled
// out. It names the secret's file, never the secret.
func originSummary(c *serveConfig) string {
	var proofs []string
	if t := c.origin.Tenants(); len(t) > 0 {
		proofs = append(proofs, "name a pinned Microsoft 365 tenant ("+strings.Join(t, ", ")+") in its outer tenant headers")
	}
	if h := c.origin.SourceHeader(); h != "" {
		proofs = append(proofs, fmt.Sprintf("carry the header %s with the secret in %s", h, c.sourceSecretFile))
	}
	if len(proofs) == 0 {
		return ""
	}
	return "proof of origin: each copy must " + strings.Join(proofs, ", or ") + "; others get 550 5.7.1"
}

const configCheckUsage = `usage: sensor config check --config FILE [serve flags]

Reads FILE and the files it names, changes nothing (no directory is created, no port bound),
and prints every problem, one a line, sorted by key; exits 1 if there is any, 0 and
"config OK" if not. The keys and flags are those of ` + "`sensor serve --help`" + `.
`

// checkFixes completes serveConfig.check's messages that say what is wrong but not what to
// write instead. Each fits every message check gives for its key.
var checkFixes = map[string]string{
	"smtp-listen":          `write host:port, such as "127.0.0.1:2525", or ":2525" for every address`,
	"admin-listen":         `write host:port, such as "127.0.0.1:9025"`,
	"data-dir":             "remove the key for the default ./sensor-data",
	"pipeline-token-file":  "name a readable file holding the pipeline's bearer token (a relative path starts from the directory sensor runs in)",
	"pipeline-ca-file":     "name a readable PEM file of the CAs that sign the pipeline's certificate, or remove the key to trust the system roots",
	"pipeline-client-cert": "set both pipeline-client-cert and pipeline-client-key to readable PEM files, or neither",
	"pipeline-client-key":  "set both pipeline-client-cert and pipeline-client-key to readable PEM files, or neither",
	"log-level":            "want debug, info, warn or error",
	"tls-cert":             "set both tls-cert and tls-key to readable PEM files of one certificate and its key, or neither",
	"tls-key":              "set both tls-cert and tls-key to readable PEM files of one certificate and its key, or neither",
	"smtps-listen":         `write host:port, such as ":465", with tls-cert and tls-key set`,
	"require-tls":          "set tls-cert and tls-key, or remove require-tls",
	"tls-client-ca":        "set it to a readable PEM file of the CAs that sign the senders' client certificates, and set tls-cert and tls-key too; or remove it",
	"tls-client-name":      "write each as a host name such as mail.protection.outlook.com, or *.example.com for one label below example.com, and set tls-cert and tls-key too; or remove the key",

	// The per-address cap is also checked against the total one.
	"max-connections":        "write a whole number of at least 1, such as 1000",
	"max-connections-per-ip": "write a whole number from 1 to max-connections, such as 100",
}

// configProblems lists what loadServeConfig found, for config check. Problems found by
// serveConfig.check ("--smtp-listen: ...") are told where their value came from and, from
// checkFixes, what to write instead.
//
// The list is sorted by key: alphabetically, which is also the order of
// `sensor serve --help`, with problems of the file as a whole first and problems of one key
// in the order they were found. The sort is what makes the output stable: serveConfig.check
// and the YAML file are walked through Go maps, whose order changes from run to run.
func configProblems(err error, c *serveConfig, args []string, getenv func(string) string) []*problem {
	from := newOrigins(c, args, getenv)
	var out []*problem
	for _, e := range leafErrors(err) {
		var p *problem
		if !errors.As(e, &p) {
			p = &problem{where: c.configFile, msg: e.Error()}
			if rest, ok := strings.CutPrefix(e.Error(), "--"); ok {
				if key, msg, ok := strings.Cut(rest, ": "); ok && from.cmdline.Lookup(key) != nil {
					if fix := checkFixes[key]; fix != "" {
						msg += "; " + fix
					}
					p = &problem{key: key, where: from.of(key, msg), msg: msg}
				}
			}
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].key < out[j].key })
	if masked := maskUserinfo(c.pipelineURL); masked != c.pipelineURL {
		r := strings.NewReplacer(strconv.Quote(c.pipelineURL), strconv.Quote(masked), c.pipelineURL, masked)
		for _, p := range out {
			p.where, p.msg = r.Replace(p.where), r.Replace(p.msg)
		}
	}
	return out
}

// maskUserinfo hides a URL's user and password, which may be a credential. It works on the
// text, so it also hides them in a URL that does not parse.
func maskUserinfo(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	at := strings.LastIndex(host, "@")
	if at < 0 {
		return s
	}
	return scheme + "://xxxxx" + rest[at:]
}

// origins tells where each setting's value came from, as layer applied them.
type origins struct {
	cmdline *flag.FlagSet // the command line parsed again, into a config that is thrown away
	set     map[string]bool
	getenv  func(string) string
	file    *configFile // nil if it could not be read
}

func newOrigins(c *serveConfig, args []string, getenv func(string) string) *origins {
	o := &origins{cmdline: serveFlags(&serveConfig{}, io.Discard), set: map[string]bool{}, getenv: getenv}
	_ = o.cmdline.Parse(args) // loadServeConfig parsed the same args without error
	o.cmdline.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	if c.configFile != "" {
		o.file, _ = readConfigFile(c.configFile)
	}
	return o
}

// of says where key's value came from, with the value unless msg already shows it.
func (o *origins) of(key, msg string) string {
	shown := func(v string) bool { return v == "" || strings.Contains(msg, v) }
	if o.set[key] {
		if v := o.cmdline.Lookup(key).Value.String(); !shown(v) {
			return fmt.Sprintf("flag --%s=%q", key, v)
		}
		return "flag --" + key
	}
	if v := o.getenv(envName(key)); v != "" {
		if !shown(v) {
			return fmt.Sprintf("environment %s=%q", envName(key), v)
		}
		return "environment " + envName(key)
	}
	if o.file != nil {
		if v, ok := o.file.values[key]; ok {
			s, _ := yamlScalar(v)
			if shown(s) {
				s = ""
			}
			return o.file.at(key, s)
		}
	}
	return fmt.Sprintf("--%s (default)", key)
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

func envName(flagName string) string {
	return "SENSOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// listFlag is a repeatable flag; in the environment its values are comma-separated.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func splitList(f *flag.Flag, v string) []string {
	if _, ok := f.Value.(*listFlag); ok {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return []string{v}
}

func yamlValues(v any) ([]string, error) {
	switch x := v.(type) {
	case []any:
		var out []string
		for _, e := range x {
			s, err := yamlScalar(e)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	default:
		s, err := yamlScalar(v)
		return []string{s}, err
	}
}

func yamlScalar(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case int:
		return strconv.Itoa(x), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case nil:
		return "", nil
	}
	switch v.(type) {
	case map[string]any:
		return "", errors.New("want a value or a list of values, not a mapping")
	case []any:
		return "", errors.New("want a value or a list of values, not a list of lists")
	}
	return "", fmt.Errorf("cannot read %v as a setting; put it in quotes", v)
}

// byteSize is a flag holding a size such as "200MiB", "10GiB", "512KB" or "1048576".
type byteSize int64

func (b *byteSize) String() string { return bytesize.Format(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// onOff is a flag that takes on|off (and the usual boolean spellings).
type onOff bool

func (o *onOff) String() string {
	if *o {
		return "on"
	}
	return "off"
}

func (o *onOff) Set(s string) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "on", "true", "yes", "1":
		*o = true
	case "off", "false", "no", "0":
		*o = false
	default:
		return errors.New("want on or off")
	}
	return nil
}
