package main

import (
	"bytes"
	"io"
	"os"
	"testing"
)

func TestFlagGroupsNameEveryFlagOnce(t *testing.T) {
	if _, err := serveFlagsInGroups(serveFlags(&serveConfig{}, io.Discard)); err != nil {
		t.Error(err)
	}
}

// docs/configuration.md is made from the flags; it must say what they say.
func TestConfigurationDocIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := writeConfigDocs(&b); err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatalf("%v; run `go run ./cmd/sensor config docs > docs/configuration.md`", err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Error("docs/configuration.md is stale: run `go run ./cmd/sensor config docs > docs/configuration.md`")
	}
	for _, f := range []string{"smtp-listen", "SENSOR_SMTP_LISTEN", "`127.0.0.1:2525`", "graph-domain", "`access`"} {
		if !bytes.Contains(have, []byte(f)) {
			t.Errorf("docs/configuration.md does not mention %s", f)
		}
	}
}
