package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/journalsensor/sensor/api"
)

// The index is opened only when enforcement is on, under --data-dir, and what it is given
// survives a restart.
func TestServeOpensTheIndexOnlyForEnforcement(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	off := &serveConfig{dataDir: t.TempDir()}
	if idx, err := off.openIndex(log); err != nil || idx != nil {
		t.Fatalf("enforcement off: index %v, error %v", idx, err)
	}
	if _, err := os.Stat(filepath.Join(off.dataDir, "index")); !os.IsNotExist(err) {
		t.Errorf("enforcement off made an index directory: %v", err)
	}

	on := &serveConfig{dataDir: t.TempDir(), enf: enforceConfig{graphDomains: listFlag{"contoso.com"}, window: time.Hour}}
	idx, err := on.openIndex(log)
	if err != nil || idx == nil {
		t.Fatalf("enforcement on: index %v, error %v", idx, err)
	}
	idx.Add(&api.Record{Message: api.Message{MessageID: "<m@example.org>"},
		Envelope: &api.Envelope{RcptTo: []string{"User@Contoso.com"}}})
	if err := idx.Close(); err != nil {
		t.Fatal(err)
	}
	if idx, err = on.openIndex(log); err != nil {
		t.Fatal(err)
	}
	defer idx.Close()
	if got := idx.Recipients("m@example.org"); !slices.Equal(got, []string{"user@contoso.com"}) {
		t.Errorf("after reopening: %q", got)
	}
}
