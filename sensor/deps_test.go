package sensor

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// The front doors know the parser by its exported errors (parser.ErrIncomplete,
// parser.ErrLocal), not by the walker inside it, so the walker can change without them.
func TestSensorDoesNotImportTheWalker(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no Go files here (%v)", err)
	}
	for _, name := range files {
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			if path, _ := strconv.Unquote(imp.Path.Value); path == "github.com/journalsensor/sensor/parser/walker" {
				t.Errorf("%s imports %s; use the parser's exported errors instead", name, path)
			}
		}
	}
}
