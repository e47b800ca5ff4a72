// Package testkit holds helpers shared by the tests of several packages: where the shared
// corpus is, a log buffer that server goroutines can write to, and a throwaway CA. Only
// tests import it.
package testkit

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// CorpusDir returns the shared corpus: $SENSOR_CORPUS, else ../shared/corpus beside the
// checkout (found by walking up to go.mod). When neither exists the test is skipped with a
// message that says where it looked.
func CorpusDir(tb testing.TB) string {
	tb.Helper()
	if d := os.Getenv("SENSOR_CORPUS"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
	c := filepath.Join(dir, "..", "shared", "corpus")
	if _, err := os.Stat(c); err != nil {
		tb.Skipf("shared corpus not found at %s (set SENSOR_CORPUS to its path)", c)
	}
	return c
}

// CorpusMessages lists every message under dir's mail/ and formats/ folders, leaving out the
// documentation, the manifest and the licences.
func CorpusMessages(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	for _, sub := range []string{"mail", "formats"} {
		err := filepath.WalkDir(filepath.Join(dir, sub), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "_licenses" {
					return filepath.SkipDir
				}
				return nil
			}
			switch filepath.Ext(path) {
			case ".md", ".tsv":
				return nil
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	if len(files) == 0 {
		// A corpus test over no messages passes while proving nothing.
		tb.Fatalf("no messages under %s/mail or %s/formats", dir, dir)
	}
	return files
}

// LogBuffer collects log output written from server goroutines.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
