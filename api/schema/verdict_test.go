package schema

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/journalsensor/sensor/api"
)

func TestVerdictSchema(t *testing.T) {
	v, err := NewVerdict()
	if err != nil {
		t.Fatal(err)
	}
	full, err := json.Marshal(api.Verdict{ID: "01V", Action: api.ActionTag, MessageID: "<m@x>",
		Recipients: []string{"a@contoso.com"}, Tag: "Phish", RecordID: "01R", Reason: "phish"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{
		string(full),
		`{"id":"1","action":"quarantine","message_id":"<m@x>","recipients":["a@contoso.com"]}`,
		`{"id":"1","action":"restore","undo":"0","recipients":["a@contoso.com"]}`,
		`{"id":"1","action":"delete","message_id":"<m@x>","recipients":["a@contoso.com"],"new_field":1}`,
	} {
		if err := v.Validate([]byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, tc := range []struct{ doc, field string }{
		{`{"action":"delete","message_id":"<m@x>","recipients":["a"]}`, "/id"},
		{`{"id":"1","action":"purge","message_id":"<m@x>","recipients":["a"]}`, "/action"},
		{`{"id":"1","action":"tag","message_id":"<m@x>","recipients":["a"]}`, "/tag"},
		{`{"id":"1","action":"restore","recipients":["a"]}`, "/undo"},
		{`{"id":"1","action":"hard_delete","recipients":["a"]}`, "/message_id"},
		{`{"id":"1","action":"delete","message_id":"<m@x>","recipients":[]}`, "/recipients"},
		{`{"id":"1","action":"delete","message_id":"<m@x>"}`, "/recipients"},
		{`[]`, ""},
	} {
		err := v.Validate([]byte(tc.doc))
		var verr *ValidationError
		if !errors.As(err, &verr) {
			t.Errorf("%s: error %v, want a *ValidationError", tc.doc, err)
			continue
		}
		if verr.Field != tc.field {
			t.Errorf("%s: field %q (%v), want %q", tc.doc, verr.Field, verr, tc.field)
		}
		if tc.field == "" && !strings.HasPrefix(verr.Error(), "(verdict)") {
			t.Errorf("%s: error %q does not name the verdict", tc.doc, verr)
		}
	}
}

func TestOutcomeSchema(t *testing.T) {
	v, err := NewOutcome()
	if err != nil {
		t.Fatal(err)
	}
	full, err := json.Marshal(api.Outcome{VerdictID: "01V", Recipient: "a@contoso.com", Provider: api.ProviderGmail,
		Action: api.ActionQuarantine, Status: api.OutcomeDone, At: "2026-11-23T19:09:00.123Z", MessageRef: "18c", FromFolder: "INBOX"})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(full); err != nil {
		t.Errorf("%s: %v", full, err)
	}
	base := `"verdict_id":"1","recipient":"a@contoso.com","provider":"graph","action":"delete"`
	for _, tc := range []struct{ doc, field string }{
		{`{` + base + `,"status":"done"}`, "/at"},
		{`{` + base + `,"status":"done","at":"2026-11-23 19:09:00Z"}`, "/at"},
		{`{` + base + `,"status":"done","at":"2026-11-23T19:09:00-05:00"}`, "/at"},
		{`{` + base + `,"status":"gone","at":"2026-11-23T19:09:00Z"}`, "/status"},
		{`{"verdict_id":"1","provider":"graph","action":"delete","status":"done","at":"2026-11-23T19:09:00Z"}`, "/recipient"},
	} {
		err := v.Validate([]byte(tc.doc))
		var verr *ValidationError
		if !errors.As(err, &verr) || verr.Field != tc.field {
			t.Errorf("%s: %v, want an error at %q", tc.doc, err, tc.field)
		}
	}
}

// TestVerdictEnumsMatchConstants keeps the schemas and the constants in verdict.go in step.
func TestVerdictEnumsMatchConstants(t *testing.T) {
	actions := []string{api.ActionQuarantine, api.ActionDelete, api.ActionHardDelete, api.ActionTag, api.ActionRestore}
	for _, tc := range []struct {
		schema []byte
		prop   string
		want   []string
	}{
		{api.VerdictSchema(), "action", actions},
		{api.OutcomeSchema(), "action", actions},
		{api.OutcomeSchema(), "provider", []string{api.ProviderGraph, api.ProviderGmail, api.ProviderNone}},
		{api.OutcomeSchema(), "status", []string{api.OutcomeDone, api.OutcomeAlready, api.OutcomeNotFound, api.OutcomeSkipped, api.OutcomeFailed}},
	} {
		var doc struct {
			Properties map[string]struct {
				Enum []string `json:"enum"`
			} `json:"properties"`
		}
		if err := json.Unmarshal(tc.schema, &doc); err != nil {
			t.Fatal(err)
		}
		if got := doc.Properties[tc.prop].Enum; !slices.Equal(got, tc.want) {
			t.Errorf("%s enum %v, want %v", tc.prop, got, tc.want)
		}
	}
}

func TestOpenAPIDescribesVerdictEndpoints(t *testing.T) {
	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	want := map[string]map[string][]string{
		"/v1/verdicts": {"get": {"200", "400", "401"}, "post": {"200", "400", "401", "422"}},
		"/v1/actions":  {"post": {"200", "400", "401", "403", "413", "415", "422", "429", "503"}},
	}
	for path, methods := range want {
		for method, codes := range methods {
			op, ok := doc.Paths[path][method].(map[string]any)
			if !ok {
				t.Errorf("%s %s missing", strings.ToUpper(method), path)
				continue
			}
			responses, _ := op["responses"].(map[string]any)
			for _, code := range codes {
				if _, ok := responses[code]; !ok {
					t.Errorf("%s %s: no %s response", strings.ToUpper(method), path, code)
				}
			}
		}
	}
	for _, file := range []string{"verdict.schema.json", "outcome.schema.json"} {
		if !strings.Contains(string(raw), "$ref: "+file) {
			t.Errorf("openapi.yaml does not reference %s", file)
		}
	}
}
