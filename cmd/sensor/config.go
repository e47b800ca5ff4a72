package main

import (
	"errors"
	"flag"
	"fmt"
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
			errs = append(errs, fmt.Errorf("config file %s: unknown key %q (keys are spelled like the flags; see --help)", configPath, k))
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
					errs = append(errs, fmt.Errorf("environment %s=%q: %w", env, v, err))
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
			errs = append(errs, fmt.Errorf("config file %s: key %q: %w", configPath, f.Name, err))
			return
		}
		for _, item := range items {
			if err := fs.Set(f.Name, item); err != nil {
				errs = append(errs, fmt.Errorf("config file %s: key %q value %q: %w", configPath, f.Name, item, err))
			}
		}
	})
	return errors.Join(errs...)
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
