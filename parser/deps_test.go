package parser

import (
	"os/exec"
	"strings"
	"testing"
)

// TestParserImportsOnlyItsJob keeps the parser a leaf library: bytes in, a record out. It must
// not reach the network, the schema validator, the spool, or any front door. The check runs
// `go list -deps`, so it sees what the linked binary would hold, not only direct imports.
// Tests are left out: they may use the validator to check what the parser produced.
func TestParserImportsOnlyItsJob(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to list the parser's dependencies: %v", err)
	}
	out, err := exec.Command(goTool, "list", "-deps", "./...").Output()
	if err != nil {
		t.Fatalf("go list -deps ./...: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 10 {
		t.Fatalf("go list -deps printed %d packages; the check would prove nothing", len(deps))
	}
	forbidden := []string{
		"net/http",
		"os/exec",
		"github.com/santhosh-tekuri/jsonschema/",
		"github.com/journalsensor/sensor/api/schema",
		"github.com/journalsensor/sensor/spool",
		"github.com/journalsensor/sensor/uploader",
		"github.com/journalsensor/sensor/receiver",
		"github.com/journalsensor/sensor/sensor",
	}
	for _, d := range deps {
		for _, f := range forbidden {
			if d == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(d, f)) || strings.HasPrefix(d, f+"/") {
				t.Errorf("the parser depends on %s; it must stay a leaf library (bytes in, record out)", d)
			}
		}
	}
}
