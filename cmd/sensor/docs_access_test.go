package main

import (
	"bytes"
	"io"
	"path/filepath"
	"testing"
)

// Every example table in docs/access passes config check as a config file of its own: it
// compiles, and no group in it is unreachable.
func TestDocsAccessTablesLoad(t *testing.T) {
	files, err := filepath.Glob("../../docs/access/*.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("want the example tables in docs/access, found %v (%v)", files, err)
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"config", "check", "--config", f}, nil, &stdout, &stderr, func(string) string { return "" }); code != 0 {
			t.Errorf("%s: exit %d:\n%s", f, code, stderr.String())
		}
		c, err := loadServeConfig([]string{"--config", f}, io.Discard, func(string) string { return "" })
		if err != nil || c.access == nil || len(c.access.Groups()) < 2 {
			t.Errorf("%s: no table of several groups loaded: %v", f, err)
		}
	}
}
