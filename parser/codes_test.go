package parser

import (
	"encoding/json"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
)

// documentedNames returns the names the schema lists, each in backquotes, in the
// description of anomalies' code and in that of limits_hit.
func documentedNames(t *testing.T) (codes, limits []string) {
	t.Helper()
	var schema struct {
		Properties struct {
			LimitsHit struct {
				Description string `json:"description"`
			} `json:"limits_hit"`
		} `json:"properties"`
		Defs struct {
			Anomaly struct {
				Properties struct {
					Code struct {
						Description string `json:"description"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"anomaly"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(api.Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	quoted := regexp.MustCompile("`([a-z0-9_]+)`")
	names := func(desc string) []string {
		var out []string
		for _, m := range quoted.FindAllStringSubmatch(desc, -1) {
			out = append(out, m[1])
		}
		return out
	}
	codes = names(schema.Defs.Anomaly.Properties.Code.Description)
	limits = names(schema.Properties.LimitsHit.Description)
	if len(codes) == 0 || len(limits) == 0 {
		t.Fatalf("the schema lists %d anomaly codes and %d limit names; the descriptions moved?", len(codes), len(limits))
	}
	return codes, limits
}

// TestCodesDocumented holds the list of anomaly codes and limit names and the record's
// schema to each other: a pipeline reading the schema learns every name a record can carry,
// and nothing the parser cannot emit.
func TestCodesDocumented(t *testing.T) {
	docCodes, docLimits := documentedNames(t)
	for _, c := range []struct {
		what        string
		emitted     []string
		documented  []string
		description string
	}{
		{"anomaly code", anomalyCodes(), docCodes, "$defs.anomaly.properties.code"},
		{"limit name", limitNames(), docLimits, "properties.limits_hit"},
	} {
		seen := map[string]bool{}
		for _, name := range c.emitted {
			if seen[name] {
				t.Errorf("%s %q is listed twice", c.what, name)
			}
			seen[name] = true
			if !slices.Contains(c.documented, name) {
				t.Errorf("%s %q is not documented in the description of %s in api/record.schema.json", c.what, name, c.description)
			}
		}
		for _, name := range c.documented {
			if !seen[name] {
				t.Errorf("api/record.schema.json documents %s %q, which the parser does not emit", c.what, name)
			}
		}
	}
}

// codeSources are the packages whose anomaly codes and limit names reach the record, and
// how: the prefix the parser puts before their anomaly codes, and which argument of their
// reporting function is the code.
var codeSources = []struct {
	dir        string
	codePrefix string
	codeArg    map[string]int // reporting function or method → index of the code argument
}{
	{".", "", map[string]int{"anomaly": 0, "limit": 0}},
	{"walker", "", map[string]int{"report": 0, "limit": 0}},
	{"urls", "", map[string]int{"limit": 0}},
	{"archive", zipPrefix, map[string]int{"anomaly": 1, "limit": 0}},
	{"tnef", tnefPrefix, map[string]int{"anomaly": 0, "limit": 0}},
}

func parseDir(t *testing.T, dir string) (*token.FileSet, []*ast.File) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := goparser.ParseFile(fset, p, nil, goparser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return fset, files
}

// TestCodesListed checks that every code and limit constant of the parser and of the
// subpackages it passes codes on from is in anomalyCodes or limitNames.
func TestCodesListed(t *testing.T) {
	codes, limits := anomalyCodes(), limitNames()
	for _, src := range codeSources {
		anomalyPrefix, limitPrefix := "Anomaly", "Limit"
		if src.dir == "." {
			anomalyPrefix, limitPrefix = "anomaly", "limit"
		}
		_, files := parseDir(t, src.dir)
		for _, f := range files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						if i >= len(vs.Values) {
							continue
						}
						lit, ok := vs.Values[i].(*ast.BasicLit)
						if !ok || lit.Kind != token.STRING {
							continue
						}
						value, _ := strconv.Unquote(lit.Value)
						switch {
						case strings.HasPrefix(name.Name, anomalyPrefix):
							if !slices.Contains(codes, src.codePrefix+value) {
								t.Errorf("%s: %s (%q) is not in anomalyCodes", src.dir, name.Name, src.codePrefix+value)
							}
						case strings.HasPrefix(name.Name, limitPrefix):
							if !slices.Contains(limits, value) {
								t.Errorf("%s: %s (%q) is not in limitNames", src.dir, name.Name, value)
							}
						}
					}
				}
			}
		}
	}
}

// TestCodesAreConstants keeps codes out of string literals where they are reported: a code
// written in place would escape the list, and with it the schema.
func TestCodesAreConstants(t *testing.T) {
	hasLiteral := func(e ast.Node) bool {
		found := false
		ast.Inspect(e, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				found = true
			}
			return !found
		})
		return found
	}
	checked := 0
	for _, src := range codeSources {
		fset, files := parseDir(t, src.dir)
		for _, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					var name string
					switch fn := n.Fun.(type) {
					case *ast.Ident:
						name = fn.Name
					case *ast.SelectorExpr:
						name = fn.Sel.Name
					}
					if i, ok := src.codeArg[name]; ok && i < len(n.Args) {
						checked++
						if hasLiteral(n.Args[i]) {
							t.Errorf("%s: %s called with a code or limit name written in place; use a constant", fset.Position(n.Pos()), name)
						}
					}
				case *ast.KeyValueExpr:
					if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Code" && hasLiteral(n.Value) {
						t.Errorf("%s: an anomaly Code written in place; use a constant", fset.Position(n.Pos()))
					}
				case *ast.AssignStmt:
					for i, l := range n.Lhs {
						if id, ok := l.(*ast.Ident); ok && id.Name == "code" && i < len(n.Rhs) && hasLiteral(n.Rhs[i]) {
							t.Errorf("%s: code assigned a string written in place; use a constant", fset.Position(n.Pos()))
						}
					}
				}
				return true
			})
		}
	}
	if checked < 50 {
		t.Errorf("only %d reporting calls found; the check would prove little", checked)
	}
}
