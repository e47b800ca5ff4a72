package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// layer fills every flag the command line did not set: first from the environment
// (SENSOR_<FLAG_IN_UPPER_SNAKE>), then from the YAML config file (keys spelled exactly like
// the flags). Flag beats env beats file beats default. It reports every problem at once, each
// naming where the bad value came from.
func layer(fs *flag.FlagSet, configPath string, getenv func(string) string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	file := map[string]any{}
	var errs []error
	if configPath != "" {
		data, err := os.ReadFile(configPath)
		if err != nil {
			return fmt.Errorf("config file: %w", err)
		}
		if err := yaml.Unmarshal(data, &file); err != nil {
			return fmt.Errorf("config file %s: %w", configPath, err)
		}
		var unknown []string
		for k := range file {
			if fs.Lookup(k) == nil || k == "config" {
				unknown = append(unknown, k)
			}
		}
		sort.Strings(unknown)
		for _, k := range unknown {
			errs = append(errs, &problem{key: k, msg: fmt.Sprintf("config file %s: unknown key %q (keys are spelled like the flags; see --help)", configPath, k)})
		}
	}

	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		env := envName(f.Name)
		if v := getenv(env); v != "" {
			for _, item := range splitList(f, v) {
				if err := fs.Set(f.Name, item); err != nil {
					errs = append(errs, &problem{key: f.Name, msg: fmt.Sprintf("environment %s=%q: %v", env, v, err)})
				}
			}
			return
		}
		v, ok := file[f.Name]
		if !ok {
			return
		}
		items, err := yamlValues(v)
		if err != nil {
			errs = append(errs, &problem{key: f.Name, msg: fmt.Sprintf("config file %s: key %q: %v", configPath, f.Name, err)})
			return
		}
		for _, item := range items {
			if err := fs.Set(f.Name, item); err != nil {
				errs = append(errs, &problem{key: f.Name, msg: fmt.Sprintf("config file %s: key %q value %q: %v", configPath, f.Name, item, err)})
			}
		}
	})
	return errors.Join(errs...)
}

// A problem is one thing wrong with the configuration.
type problem struct {
	key string // the setting it concerns, or an unknown key as spelled; "" for the file as a whole
	msg string // what is wrong, and where the bad value came from
}

func (p *problem) Error() string { return p.msg }

// configCheckCmd is `sensor config check`. It loads the configuration exactly as serve does
// (flags, then SENSOR_* environment, then the file, then defaults) and prints every problem,
// one a line, then exits 1; or prints "config OK" and exits 0.
//
// It only reads: the config file, the token file, and the metadata of the other files the
// settings name. The data dir, the spool, the outbox and the listeners are made by serve,
// which it never calls, so it is safe beside a running sensor and before the data dir exists
// (TestConfigCheckOnlyReads holds it to that).
func configCheckCmd(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	c, err := loadServeConfig(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if c == nil {
		fmt.Fprintf(stderr, "sensor config check: %v\n", err)
		return 2
	}
	problems := configProblems(err)
	if len(problems) == 0 {
		fmt.Fprintln(stdout, "config OK")
		return 0
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, p)
	}
	return 1
}

// configProblems lists what loadServeConfig found, sorted by key: alphabetically, which is
// also the order of `sensor serve --help`, with problems of the file as a whole first and
// problems of one key in the order they were found. The sort is what makes the output
// stable: serveConfig.check and the YAML file are walked through Go maps, whose order
// changes from run to run.
func configProblems(err error) []*problem {
	var out []*problem
	for _, e := range leafErrors(err) {
		var p *problem
		if !errors.As(e, &p) {
			// serveConfig.check names the flag first: "--smtp-listen: ...".
			p = &problem{msg: e.Error()}
			if rest, ok := strings.CutPrefix(e.Error(), "--"); ok {
				p.key, _, _ = strings.Cut(rest, ": ")
			}
		}
		out = append(out, p)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
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
	return "", fmt.Errorf("want a single value, got %T", v)
}

// byteSize is a flag holding a size such as "200MiB", "10GiB", "512KB" or "1048576".
type byteSize int64

func (b *byteSize) String() string { return formatBytes(int64(*b)) }

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

var byteUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
}

func parseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range byteUnits {
		if strings.HasSuffix(strings.ToUpper(t), strings.ToUpper(u.suffix)) {
			t, mult = strings.TrimSpace(t[:len(t)-len(u.suffix)]), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number with an optional unit such as 200MiB or 10GiB", s)
	}
	return int64(n * float64(mult)), nil
}

func formatBytes(n int64) string {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
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
		return fmt.Errorf("%q: want on or off", s)
	}
	return nil
}
