package parser

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/journalsensor/sensor/api"
	"github.com/journalsensor/sensor/api/schema"
	"github.com/journalsensor/sensor/internal/testkit"
)

// TestWholeCorpusParses: every message yields exactly one record, no panic, and the record is
// valid against the schema the pipeline enforces.
func TestWholeCorpusParses(t *testing.T) {
	dir := testkit.CorpusDir(t)
	files := testkit.CorpusMessages(t, dir)
	if len(files) < 290 {
		t.Fatalf("found only %d corpus messages under %s", len(files), dir)
	}
	v, err := schema.New()
	if err != nil {
		t.Fatal(err)
	}
	p := newTestParser(t, Options{})
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := p.Parse(bytes.NewReader(data))
		rel, _ := filepath.Rel(dir, f)
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		for _, a := range rec.Anomalies {
			if a.Code == "parser_panic" {
				t.Errorf("%s: parser panicked", rel)
			}
		}
		if rec.Message.Size != int64(len(data)) && rec.Source.Kind != api.SourceExchangeJournal {
			t.Errorf("%s: message.size %d, file has %d bytes", rel, rec.Message.Size, len(data))
		}
		stamp(rec)
		line, err := api.MarshalRecord(rec)
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if bytes.Count(line, []byte("\n")) != 0 {
			t.Errorf("%s: record is not one line", rel)
		}
		if err := v.Validate(line); err != nil {
			t.Errorf("%s: record fails the schema: %v", rel, err)
		}
	}
}

// stamp sets what a session would set, so a record can be validated.
func stamp(rec *api.Record) {
	rec.ID = "01JTESTTESTTESTTESTTESTTES"
	rec.ReceivedAt = "2026-01-01T00:00:00.000Z"
	rec.Sensor = api.Sensor{ID: "test", Version: "test"}
}

// validateRecord stamps rec as the intake would and checks it against the schema the
// pipeline enforces.
func validateRecord(t *testing.T, rec *api.Record) error {
	t.Helper()
	stamp(rec)
	line, err := api.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	v, err := schema.New()
	if err != nil {
		t.Fatal(err)
	}
	return v.Validate(line)
}

type golden struct {
	File   string         `json:"file"`
	Expect map[string]any `json:"expect"`
}

// TestGoldens compares records with hand-written expectations (testdata/golden/README.md).
func TestGoldens(t *testing.T) {
	dir := testkit.CorpusDir(t)
	goldens, err := filepath.Glob("testdata/golden/*.json")
	if err != nil || len(goldens) == 0 {
		t.Fatalf("no goldens: %v", err)
	}
	p := newTestParser(t, Options{})
	for _, g := range goldens {
		t.Run(strings.TrimSuffix(filepath.Base(g), ".json"), func(t *testing.T) {
			var gd golden
			data, err := os.ReadFile(g)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(data, &gd); err != nil {
				t.Fatalf("%s: %v", g, err)
			}
			f, err := os.Open(filepath.Join(dir, gd.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rec, err := p.Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			got := recordMap(t, rec)
			diffs := compareGolden("", gd.Expect, got)
			gotFile := strings.TrimSuffix(g, ".json") + ".got"
			if len(diffs) == 0 {
				os.Remove(gotFile)
				return
			}
			for _, d := range diffs {
				t.Error(d)
			}
			pretty, _ := json.MarshalIndent(got, "", "  ")
			if err := os.WriteFile(gotFile, pretty, 0o644); err == nil {
				t.Logf("full record written to %s", gotFile)
			}
		})
	}
}

func recordMap(t *testing.T, rec *api.Record) map[string]any {
	t.Helper()
	line, err := api.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "received_at", "sensor", "envelope"} {
		delete(m, k)
	}
	return m
}

// compareGolden returns one line per difference between want and got (see the README for
// the two relaxations).
func compareGolden(path string, want, got any) []string {
	if w, ok := want.(map[string]any); ok && path == "/message/headers" {
		if _, special := w["$count"]; special {
			return compareHeaderSummary(w, got)
		}
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{path + ": want an object, got " + show(got)}
		}
		var diffs []string
		for k := range union(w, g) {
			if path == "/anomalies/*" && k == "detail" {
				continue
			}
			wv, wok := w[k]
			gv, gok := g[k]
			switch {
			case !wok:
				diffs = append(diffs, path+"/"+k+": not in the golden, got "+show(gv))
			case !gok:
				diffs = append(diffs, path+"/"+k+": missing, want "+show(wv))
			default:
				diffs = append(diffs, compareGolden(path+"/"+k, wv, gv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{path + ": want " + show(want) + "\n      got " + show(got)}
		}
		var diffs []string
		for i := range w {
			elem := path + "/" + itoa(i)
			if path == "/anomalies" {
				elem = "/anomalies/*"
			}
			diffs = append(diffs, compareGolden(elem, w[i], g[i])...)
		}
		return diffs
	}
	if !reflect.DeepEqual(want, got) {
		return []string{path + ": want " + show(want) + ", got " + show(got)}
	}
	return nil
}

func compareHeaderSummary(w map[string]any, got any) []string {
	g, ok := got.([]any)
	if !ok {
		return []string{"/message/headers: want a list, got " + show(got)}
	}
	var diffs []string
	if n := w["$count"].(float64); int(n) != len(g) {
		diffs = append(diffs, "/message/headers: want "+itoa(int(n))+" fields, got "+itoa(len(g)))
	}
	if f, ok := w["$first"]; ok && len(g) > 0 && !reflect.DeepEqual(f, g[0]) {
		diffs = append(diffs, "/message/headers first: want "+show(f)+", got "+show(g[0]))
	}
	if l, ok := w["$last"]; ok && len(g) > 0 && !reflect.DeepEqual(l, g[len(g)-1]) {
		diffs = append(diffs, "/message/headers last: want "+show(l)+", got "+show(g[len(g)-1]))
	}
	return diffs
}

func union(a, b map[string]any) map[string]bool {
	u := map[string]bool{}
	for k := range a {
		u[k] = true
	}
	for k := range b {
		u[k] = true
	}
	return u
}

func show(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func newTestParser(t *testing.T, o Options) *Parser {
	t.Helper()
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// One Parser lends each parse the buffers of the one before (Parser.scratch): the records of
// the whole corpus, parsed one after another by one parser, are those of a parser each.
func TestReusedBuffersChangeNoRecord(t *testing.T) {
	dir := testkit.CorpusDir(t)
	files := testkit.CorpusMessages(t, dir)
	shared := newTestParser(t, Options{})
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var lines [2][]byte
		for i, p := range []*Parser{shared, newTestParser(t, Options{})} {
			rec, err := p.Parse(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			stamp(rec)
			if lines[i], err = api.MarshalRecord(rec); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(lines[0], lines[1]) {
			rel, _ := filepath.Rel(dir, f)
			t.Errorf("%s: record from a reused parser\n%s\nfrom a new one\n%s", rel, lines[0], lines[1])
		}
	}
}
