// Package schema checks records against the Record v1 JSON Schema (api/record.schema.json),
// and verdicts and action outcomes against theirs (api/verdict.schema.json,
// api/outcome.schema.json). It lives apart from package api so that what only needs the record types, the parser
// above all, does not pull in a JSON Schema engine.
package schema

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/journalsensor/sensor/api"
)

// Validator checks documents against one of the embedded schemas: Record v1 (New), a
// verdict (NewVerdict) or an action outcome (NewOutcome). It is safe for concurrent use.
type Validator struct {
	schema  *jsonschema.Schema
	printer *message.Printer
	what    string // "record", "verdict", "outcome": names the document in errors
}

// New compiles the embedded Record v1 schema.
func New() (*Validator, error) {
	return compile("record", api.SchemaID, api.Schema())
}

// NewVerdict compiles the embedded verdict schema.
func NewVerdict() (*Validator, error) {
	return compile("verdict", api.VerdictSchemaID, api.VerdictSchema())
}

// NewOutcome compiles the embedded action outcome schema.
func NewOutcome() (*Validator, error) {
	return compile("outcome", api.OutcomeSchemaID, api.OutcomeSchema())
}

func compile(what, id string, raw []byte) (*Validator, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("schema: decoding embedded %s schema: %w", what, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	// Draft 2020-12 treats format as an annotation by default; received_at and an outcome's
	// at are where we want a real calendar date, which a pattern alone cannot check.
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		return nil, fmt.Errorf("schema: adding %s schema: %w", what, err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		return nil, fmt.Errorf("schema: compiling %s schema: %w", what, err)
	}
	return &Validator{schema: sch, printer: message.NewPrinter(language.English), what: what}, nil
}

// ValidationError says why a record does not match the schema, in one line. Reasons never
// quote the offending value: records carry subjects and addresses, and these errors end up in
// logs and HTTP responses.
type ValidationError struct {
	// Field is the JSON pointer (RFC 6901) of the failing value; "" is the document itself.
	Field string
	// Reason says what is wrong with it.
	Reason string
	// More counts the other problems found in the same record, not described here.
	More int

	err  error  // the underlying decode or schema error, for errors.Unwrap
	what string // the kind of document, for an error about all of it
}

func (e *ValidationError) Error() string {
	field := e.Field
	if field == "" {
		field = "(" + cmp.Or(e.what, "record") + ")"
	}
	s := field + ": " + e.Reason
	if e.More > 0 {
		s += fmt.Sprintf(" (and %d more)", e.More)
	}
	return s
}

func (e *ValidationError) Unwrap() error { return e.err }

// Validate checks that record holds exactly one JSON object that matches the validator's
// schema. A failure is a *ValidationError.
func (v *Validator) Validate(record []byte) error {
	_, err := v.Decode(record)
	return err
}

// Decode validates record and returns it decoded, so a receiver can read the id without
// parsing the line twice. The schema guarantees the result is an object.
func (v *Validator) Decode(record []byte) (map[string]any, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(record))
	if err != nil {
		return nil, &ValidationError{Reason: "not a single JSON value: " + err.Error(), err: err, what: v.what}
	}
	if err := v.schema.Validate(doc); err != nil {
		var verr *jsonschema.ValidationError
		if !errors.As(err, &verr) {
			return nil, &ValidationError{Reason: err.Error(), err: err, what: v.what}
		}
		return nil, v.summarize(verr)
	}
	obj, _ := doc.(map[string]any)
	return obj, nil
}

type problem struct {
	field   string
	keyword string
	reason  string
}

// summarize picks one leaf of the error tree to describe. The tree's order depends on map
// iteration inside the library, so problems are sorted to make the choice stable: the same
// record always gets the same answer, which the sensor's bisection and our tests rely on.
func (v *Validator) summarize(root *jsonschema.ValidationError) *ValidationError {
	var problems []problem
	stack := []*jsonschema.ValidationError{root}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if len(e.Causes) > 0 {
			stack = append(stack, e.Causes...)
			continue
		}
		problems = append(problems, v.describe(e)...)
	}
	if len(problems) == 0 {
		return &ValidationError{Reason: "does not match the " + v.what + " schema", err: root, what: v.what}
	}
	sort.Slice(problems, func(i, j int) bool {
		if problems[i].field != problems[j].field {
			return problems[i].field < problems[j].field
		}
		return problems[i].keyword < problems[j].keyword
	})
	p := problems[0]
	return &ValidationError{Field: p.field, Reason: p.reason, More: len(problems) - 1, err: root, what: v.what}
}

// describe turns one leaf error into problems. A missing property is reported at the pointer
// of the property itself rather than its parent, so the pointer alone says what to fix.
func (v *Validator) describe(e *jsonschema.ValidationError) []problem {
	at := pointer(e.InstanceLocation)
	keyword := strings.Join(e.ErrorKind.KeywordPath(), "/")
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		ps := make([]problem, 0, len(k.Missing))
		for _, name := range k.Missing {
			ps = append(ps, problem{field: at + "/" + escapeToken(name), keyword: keyword, reason: "required property is missing"})
		}
		return ps
	case *kind.Pattern:
		return []problem{{field: at, keyword: keyword, reason: "does not match pattern " + k.Want}}
	case *kind.Format:
		return []problem{{field: at, keyword: keyword, reason: "is not a valid " + k.Want}}
	default:
		// The library's other messages state the constraint, not the value.
		return []problem{{field: at, keyword: keyword, reason: e.ErrorKind.LocalizedString(v.printer)}}
	}
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapeToken(t))
	}
	return sb.String()
}

// escapeToken escapes one reference token as RFC 6901 section 3 requires.
func escapeToken(t string) string {
	return strings.ReplaceAll(strings.ReplaceAll(t, "~", "~0"), "/", "~1")
}
