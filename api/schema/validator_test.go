package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/journalsensor/sensor/api"
)

func newValidator(t *testing.T) *Validator {
	t.Helper()
	v, err := New()
	if err != nil {
		t.Fatalf("NewValidator: %v", err)
	}
	return v
}

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSchemaAcceptsFullRecord(t *testing.T) {
	v := newValidator(t)
	raw := readTestdata(t, "full.json")
	if err := v.Validate(raw); err != nil {
		t.Fatalf("full record rejected: %v", err)
	}

	// The hand-written record must use only fields record.go knows, or it would prove nothing
	// about the Go types; and what the Go types marshal must pass the schema too.
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var rec api.Record
	if err := dec.Decode(&rec); err != nil {
		t.Fatalf("full.json does not decode into Record: %v", err)
	}
	out, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(out); err != nil {
		t.Fatalf("re-marshalled Record rejected: %v", err)
	}
	var a, b any
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(out, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("full.json does not round-trip through Record:\n in: %s\nout: %s", raw, out)
	}
}

func TestSchemaAcceptsMinimalRecord(t *testing.T) {
	v := newValidator(t)
	if err := v.Validate(readTestdata(t, "minimal.json")); err != nil {
		t.Fatalf("minimal record rejected: %v", err)
	}
	// What `sensor parse` produces for an empty input: no envelope, zero sizes.
	out, err := json.Marshal(api.Record{
		Schema:     api.SchemaV1,
		ID:         "01KAQ7Z3J5M8Q2V4X6Y8Z0A2B6",
		ReceivedAt: "2026-01-02T03:04:05.006Z",
		Sensor:     api.Sensor{ID: "s", Version: "v"},
		Source:     api.Source{Kind: api.SourceDirect},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Validate(out); err != nil {
		t.Fatalf("zero-ish Record rejected: %v", err)
	}
}

func TestSchemaAllowsAdditionalProperties(t *testing.T) {
	v := newValidator(t)
	doc := fullRecord(t)
	doc["x_future"] = map[string]any{"anything": []any{1, "two"}}
	set(t, doc, "/attachments/0/entropy", 7.2)
	set(t, doc, "/envelope/tls/x_alpn", "smtp")
	set(t, doc, "/message/headers/0", []any{"Received", "x"}) // still a pair
	if err := v.Validate(marshal(t, doc)); err != nil {
		t.Fatalf("record with added fields rejected: %v", err)
	}
}

func TestSchemaRejects(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		name   string
		mutate func(t *testing.T, doc map[string]any)
		field  string
		reason string // substring of the one-line reason
	}{
		{"wrong schema const", setter("/schema", "sensor.record/v2"), "/schema", `value must be 'sensor.record/v1'`},
		{"bad attachment sha256", setter("/attachments/0/sha256", strings.Repeat("g", 64)), "/attachments/0/sha256", "does not match pattern ^[0-9a-f]{64}$"},
		{"uppercase sha256", setter("/attachments/1/sha256", strings.Repeat("A", 64)), "/attachments/1/sha256", "does not match pattern"},
		{"short md5", setter("/attachments/0/md5", "5d41402abc4b2a76"), "/attachments/0/md5", "does not match pattern ^[0-9a-f]{32}$"},
		{"sha1 of sha256 length", setter("/attachments/0/sha1", strings.Repeat("a", 64)), "/attachments/0/sha1", "^[0-9a-f]{40}$"},
		{"bad blob", setter("/attachments/0/blob", "not-a-hash"), "/attachments/0/blob", "does not match pattern"},
		{"bad message sha256", setter("/message/sha256", "abc"), "/message/sha256", "does not match pattern"},
		{"received_at without milliseconds", setter("/received_at", "2026-11-23T19:09:00Z"), "/received_at", "does not match pattern"},
		{"received_at not UTC", setter("/received_at", "2026-11-23T20:09:00.123+01:00"), "/received_at", "does not match pattern"},
		{"received_at impossible date", setter("/received_at", "2026-13-23T19:09:00.123Z"), "/received_at", "is not a valid date-time"},
		{"received_at RFC 1123", setter("/received_at", "Mon, 23 Nov 2026 19:09:00 GMT"), "/received_at", ""},
		{"header triple", setter("/message/headers/3", []any{"X-MS-Exchange-Organization-SCL", "5", "extra"}), "/message/headers/3", "maxItems"},
		{"header single", setter("/message/headers/0", []any{"Received"}), "/message/headers/0", "minItems"},
		{"header value not a string", setter("/message/headers/1", []any{"Subject", 5}), "/message/headers/1/1", "want string"},
		{"unknown source kind", setter("/source/kind", "exchange_online"), "/source/kind", "value must be one of"},
		{"unknown transport", setter("/envelope/transport", "lmtp"), "/envelope/transport", "value must be one of"},
		{"unknown recipient type", setter("/journal/recipients/1/type", "from"), "/journal/recipients/1/type", "value must be one of"},
		{"unknown url source", setter("/urls/0/sources/1", "pdf"), "/urls/0/sources/1", "value must be one of"},
		{"missing id", deleter("/id"), "/id", "required property is missing"},
		{"missing sensor version", deleter("/sensor/version"), "/sensor/version", "required property is missing"},
		{"missing message size", deleter("/message/size"), "/message/size", "required property is missing"},
		{"missing source kind", deleter("/source/kind"), "/source/kind", "required property is missing"},
		{"envelope without rcpt_to", deleter("/envelope/rcpt_to"), "/envelope/rcpt_to", "required property is missing"},
		{"null rcpt_to", setter("/envelope/rcpt_to", nil), "/envelope/rcpt_to", "want array"},
		{"fractional size", setter("/message/size", 1.5), "/message/size", "want integer"},
		{"negative attachment size", setter("/attachments/2/size", -1), "/attachments/2/size", "minimum"},
		{"port out of range", setter("/envelope/client_port", 70000), "/envelope/client_port", "maximum"},
		{"props value not a string", setter("/message/authentication_results/0/results/0/props/smtp.mailfrom", true), "/message/authentication_results/0/results/0/props/smtp.mailfrom", "want string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := fullRecord(t)
			tc.mutate(t, doc)
			err := v.Validate(marshal(t, doc))
			var verr *ValidationError
			if !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if verr.Field != tc.field {
				t.Errorf("Field = %q, want %q (error: %v)", verr.Field, tc.field, err)
			}
			if !strings.Contains(verr.Reason, tc.reason) {
				t.Errorf("Reason = %q, want it to contain %q", verr.Reason, tc.reason)
			}
			if msg := err.Error(); !strings.HasPrefix(msg, tc.field+": ") || strings.Contains(msg, "\n") {
				t.Errorf("error %q is not one line starting with the field", msg)
			}
		})
	}
}

func TestSchemaRejectsNonObjects(t *testing.T) {
	v := newValidator(t)
	minimal := bytes.TrimSpace(readTestdata(t, "minimal.json"))
	tests := map[string][]byte{
		"array":             []byte(`[` + string(minimal) + `]`),
		"string":            []byte(`"sensor.record/v1"`),
		"truncated":         minimal[:len(minimal)-1],
		"two objects":       append(append([]byte{}, minimal...), minimal...),
		"empty":             nil,
		"trailing garbage":  append(append([]byte{}, minimal...), " x"...),
		"invalid JSON text": []byte(`{"schema": sensor}`),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			var verr *ValidationError
			if err := v.Validate(in); !errors.As(err, &verr) {
				t.Fatalf("Validate = %v, want a *ValidationError", err)
			}
			if verr.Field != "" {
				t.Errorf("Field = %q, want the record itself", verr.Field)
			}
		})
	}
}

// Subjects and addresses must not leak into logs through validation errors.
func TestValidationErrorDoesNotQuoteValues(t *testing.T) {
	v := newValidator(t)
	const secret = "Quarterly layoffs list"
	for _, field := range []string{"/received_at", "/message/sha256", "/source/kind", "/schema"} {
		doc := fullRecord(t)
		set(t, doc, field, secret)
		err := v.Validate(marshal(t, doc))
		if err == nil {
			t.Fatalf("%s = %q accepted", field, secret)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error quotes the value: %v", field, err)
		}
	}
}

func TestValidationErrorCountsOtherProblems(t *testing.T) {
	v := newValidator(t)
	doc := fullRecord(t)
	set(t, doc, "/source/kind", "nope")
	set(t, doc, "/attachments/0/md5", "nope")
	delete(doc, "id")
	var verr *ValidationError
	if err := v.Validate(marshal(t, doc)); !errors.As(err, &verr) {
		t.Fatalf("Validate = %v, want a *ValidationError", err)
	}
	// Sorted by pointer, so the answer is stable from run to run.
	if verr.Field != "/attachments/0/md5" || verr.More != 2 {
		t.Errorf("got Field %q More %d, want /attachments/0/md5 and 2 more", verr.Field, verr.More)
	}
}

func TestSchemaBytes(t *testing.T) {
	a := api.Schema()
	var doc map[string]any
	if err := json.Unmarshal(a, &doc); err != nil {
		t.Fatalf("api.Schema() is not JSON: %v", err)
	}
	if doc["$id"] != api.SchemaID || doc["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$id %v, $schema %v", doc["$id"], doc["$schema"])
	}
	a[0] = 'X'
	if api.Schema()[0] == 'X' {
		t.Error("api.Schema() shares its bytes with callers")
	}
}

// TestSchemaMatchesRecordType keeps the schema and record.go from drifting apart: every
// JSON field of the Go types is a property with a description, nothing else is, and a field
// is required exactly when Go always writes it (no omitempty).
func TestSchemaMatchesRecordType(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(api.Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	checkStruct(t, schema, schema, reflect.TypeFor[api.Record](), "")
}

func checkStruct(t *testing.T, root, node map[string]any, typ reflect.Type, at string) {
	t.Helper()
	node = deref(t, root, node)
	props, _ := node["properties"].(map[string]any)
	if node["type"] != "object" {
		t.Errorf("%s: schema type %v, want object", at, node["type"])
	}
	if ap, ok := node["additionalProperties"]; ok {
		t.Errorf("%s: additionalProperties %v: the contract allows added fields", at, ap)
	}
	required := map[string]bool{}
	if rs, ok := node["required"].([]any); ok {
		for _, r := range rs {
			required[r.(string)] = true
		}
	}
	goFields := map[string]bool{}
	for f := range typ.Fields() {
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			t.Errorf("%s.%s: no json name", typ.Name(), f.Name)
			continue
		}
		goFields[name] = true
		path := at + "/" + name
		omitempty := slices.Contains(strings.Split(opts, ","), "omitempty")
		if required[name] == omitempty {
			t.Errorf("%s: required=%v in schema but omitempty=%v in record.go", path, required[name], omitempty)
		}
		p, ok := props[name].(map[string]any)
		if !ok {
			t.Errorf("%s: missing from the schema", path)
			continue
		}
		if d, _ := p["description"].(string); d == "" {
			t.Errorf("%s: no description", path)
		}
		checkType(t, root, p, f.Type, path)
	}
	for name := range props {
		if !goFields[name] {
			t.Errorf("%s/%s: in the schema but not in %s", at, name, typ.Name())
		}
	}
}

func checkType(t *testing.T, root, node map[string]any, typ reflect.Type, at string) {
	t.Helper()
	node = deref(t, root, node)
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	want := map[reflect.Kind]string{
		reflect.String: "string", reflect.Bool: "boolean", reflect.Int: "integer", reflect.Int64: "integer",
		reflect.Struct: "object", reflect.Map: "object", reflect.Slice: "array", reflect.Array: "array",
	}[typ.Kind()]
	if got, ok := node["type"]; ok && got != want {
		t.Errorf("%s: schema type %v, Go kind %v", at, got, typ.Kind())
	} else if !ok && node["const"] == nil && node["enum"] == nil {
		t.Errorf("%s: no type", at)
	}
	switch typ.Kind() {
	case reflect.Struct:
		checkStruct(t, root, node, typ, at)
	case reflect.Slice:
		items, _ := node["items"].(map[string]any)
		checkType(t, root, items, typ.Elem(), at+"/items")
	case reflect.Array:
		if n := float64(typ.Len()); node["minItems"] != n || node["maxItems"] != n {
			t.Errorf("%s: min/maxItems %v/%v, want exactly %v", at, node["minItems"], node["maxItems"], n)
		}
	}
}

func deref(t *testing.T, root, node map[string]any) map[string]any {
	t.Helper()
	ref, ok := node["$ref"].(string)
	if !ok {
		return node
	}
	name, ok := strings.CutPrefix(ref, "#/$defs/")
	if !ok {
		t.Fatalf("unexpected $ref %q", ref)
	}
	def, ok := root["$defs"].(map[string]any)[name].(map[string]any)
	if !ok {
		t.Fatalf("dangling $ref %q", ref)
	}
	// The referring node may add a description; the definition holds the constraints.
	merged := maps.Clone(def)
	for k, v := range node {
		if k != "$ref" {
			merged[k] = v
		}
	}
	return merged
}

func TestSchemaEnumsMatchConstants(t *testing.T) {
	var schema map[string]any
	if err := json.Unmarshal(api.Schema(), &schema); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []string
	}{
		{"/properties/schema/const", []string{api.SchemaV1}},
		{"/properties/envelope/properties/transport/enum", []string{api.TransportSMTP, api.TransportMilter}},
		{"/properties/source/properties/kind/enum", []string{api.SourceExchangeJournal, api.SourceExchange2003Journal, api.SourceGoogleCopy, api.SourceGatewayCopy, api.SourceDirect}},
		{"/$defs/journal_recipient/properties/type/enum", []string{api.RecipientTo, api.RecipientCc, api.RecipientBcc, api.RecipientRecipient}},
		{"/$defs/url/properties/sources/items/enum", []string{api.URLSourceText, api.URLSourceHTML, api.URLSourceAttachment, api.URLSourceCSS, api.URLSourceCalendar, api.URLSourceDeliveryStatus, api.URLSourceRFC822Headers}},
	}
	for _, tc := range tests {
		var got []string
		switch v := lookup(t, schema, tc.path).(type) {
		case string:
			got = []string{v}
		case []any:
			for _, s := range v {
				got = append(got, s.(string))
			}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s = %v, want %v (the constants in record.go)", tc.path, got, tc.want)
		}
	}
}

// TestOpenAPIDescribesEndpoints parses openapi.yaml so the file cannot rot silently: the
// endpoints the receiver serves and the answers the uploader acts on must be there, and its
// file references must resolve.
func TestOpenAPIDescribesEndpoints(t *testing.T) {
	raw, err := os.ReadFile("../openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if v, _ := doc["openapi"].(string); !strings.HasPrefix(v, "3.1.") {
		t.Errorf("openapi: %q, want 3.1.x", v)
	}
	want := map[string]map[string][]string{
		"/v1/records":        {"post": {"200", "400", "401", "403", "413", "415", "422", "429", "503"}},
		"/v1/blobs/{sha256}": {"put": {"200", "201", "400", "401", "413", "422"}, "head": {"200", "401", "404"}},
		"/healthz":           {"get": {"200"}},
	}
	paths, _ := doc["paths"].(map[string]any)
	for path, methods := range want {
		item, ok := paths[path].(map[string]any)
		if !ok {
			t.Errorf("path %s missing", path)
			continue
		}
		for method, codes := range methods {
			op, ok := item[method].(map[string]any)
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

	var refs []string
	collectRefs(doc, &refs)
	if !slices.ContainsFunc(refs, func(r string) bool { return strings.HasPrefix(r, "record.schema.json") }) {
		t.Error("openapi.yaml does not reference record.schema.json")
	}
	for _, ref := range refs {
		file, frag, _ := strings.Cut(ref, "#")
		target := doc
		if file != "" {
			b, err := os.ReadFile(filepath.Join("..", file))
			if err != nil {
				t.Errorf("$ref %q: %v", ref, err)
				continue
			}
			target = nil
			if err := yaml.Unmarshal(b, &target); err != nil { // JSON is YAML
				t.Errorf("$ref %q: %v", ref, err)
				continue
			}
		}
		if frag != "" {
			lookup(t, target, frag)
		}
	}
}

func collectRefs(v any, refs *[]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "$ref" {
				*refs = append(*refs, s)
			} else {
				collectRefs(e, refs)
			}
		}
	case []any:
		for _, e := range v {
			collectRefs(e, refs)
		}
	}
}

// fullRecord returns testdata/full.json decoded, for a test to break one field of.
func fullRecord(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(readTestdata(t, "full.json"), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// lookup resolves a JSON pointer in a decoded document, failing the test when it dangles.
func lookup(t *testing.T, doc any, ptr string) any {
	t.Helper()
	cur := doc
	for _, tok := range strings.Split(ptr, "/")[1:] {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			next, ok := c[tok]
			if !ok {
				t.Fatalf("pointer %s: no %q", ptr, tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				t.Fatalf("pointer %s: bad index %q", ptr, tok)
			}
			cur = c[i]
		default:
			t.Fatalf("pointer %s: %q is inside a scalar", ptr, tok)
		}
	}
	return cur
}

// set replaces (or adds, for an object member) the value at ptr.
func set(t *testing.T, doc map[string]any, ptr string, v any) {
	t.Helper()
	parent, last := splitPointer(ptr)
	switch c := lookup(t, doc, parent).(type) {
	case map[string]any:
		c[last] = v
	case []any:
		i, err := strconv.Atoi(last)
		if err != nil || i < 0 || i >= len(c) {
			t.Fatalf("set %s: bad index", ptr)
		}
		c[i] = v
	default:
		t.Fatalf("set %s: parent is a scalar", ptr)
	}
}

func splitPointer(ptr string) (parent, last string) {
	i := strings.LastIndexByte(ptr, '/')
	return ptr[:i], ptr[i+1:]
}

func setter(ptr string, v any) func(*testing.T, map[string]any) {
	return func(t *testing.T, doc map[string]any) { set(t, doc, ptr, v) }
}

func deleter(ptr string) func(*testing.T, map[string]any) {
	return func(t *testing.T, doc map[string]any) {
		parent, last := splitPointer(ptr)
		obj, ok := lookup(t, doc, parent).(map[string]any)
		if !ok {
			t.Fatalf("delete %s: parent is not an object", ptr)
		}
		delete(obj, last)
	}
}
