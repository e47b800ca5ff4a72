package main

import (
	"bytes"
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

// Every setting with a type is parsed, and a wrong value of its type is a problem of its
// own key; with that many problems, the list is the same on every run.
func TestConfigCheckReportsAWrongValueOfEveryTypedKey(t *testing.T) {
	var file strings.Builder
	var keys []string
	serveFlags(&serveConfig{}, io.Discard).VisitAll(func(f *flag.Flag) {
		var bad string
		switch v := f.Value.(type) {
		case *byteSize:
			bad = "lots"
		case *onOff:
			bad = "maybe"
		case flag.Getter:
			switch v.Get().(type) {
			case bool:
				bad = "maybe"
			case int:
				bad = "many"
			case time.Duration:
				bad = "soon"
			}
		}
		if bad == "" {
			return // text and lists: what is wrong with them depends on the key
		}
		keys = append(keys, f.Name)
		file.WriteString(f.Name + ": " + bad + "\n")
	})
	if len(keys) < 15 {
		t.Fatalf("only %d typed keys found: %v", len(keys), keys)
	}
	cfgFile := writeFile(t, t.TempDir(), "bad.yaml", file.String())
	var first string
	for i := range 20 {
		var out, errOut bytes.Buffer
		if code := run([]string{"config", "check", "--config", cfgFile}, nil, &out, &errOut, noEnv); code != 1 {
			t.Fatalf("exit %d, want 1: %s", code, errOut.String())
		}
		if i == 0 {
			first = errOut.String()
		} else if errOut.String() != first {
			t.Fatalf("run %d listed the problems differently:\n%s\nfirst:\n%s", i, errOut.String(), first)
		}
	}
	for _, k := range keys {
		if !strings.Contains(first, `key "`+k+`"`) {
			t.Errorf("no problem for %s: %s", k, first)
		}
	}
}
