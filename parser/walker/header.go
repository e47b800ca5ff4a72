package walker

import (
	"strings"

	"github.com/jhillyerd/enmime/v2/mediatype"
)

// Field is one header field. Value is unfolded (line breaks removed, the whitespace that
// followed them kept) and trimmed, but otherwise raw: no RFC 2047 decoding, and 8-bit bytes
// are passed through as they came.
type Field struct {
	Name  string
	Value string
}

// Header is a header block in its original order. Order matters: Received chains are read
// top down, and a repeated field is evidence.
type Header struct {
	Fields []Field
}

// Get returns the value of the first field named name (case-insensitive), or "".
func (h *Header) Get(name string) string {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return f.Value
		}
	}
	return ""
}

// Has reports whether a field named name is present, even with an empty value.
func (h *Header) Has(name string) bool {
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

// Values returns the values of every field named name, in order.
func (h *Header) Values(name string) []string {
	var vs []string
	for _, f := range h.Fields {
		if strings.EqualFold(f.Name, name) {
			vs = append(vs, f.Value)
		}
	}
	return vs
}

// ParseMediaType parses a Content-Type or Content-Disposition value with enmime's lenient
// parser (missing semicolons, repeated and unquoted parameters, RFC 2231 continuations). It
// returns the lowercased type, its parameters (names lowercased), and a note for each repair
// it had to make. A value it cannot parse at all gives an empty type.
func ParseMediaType(v string) (mtype string, params map[string]string, problems []string) {
	if strings.TrimSpace(v) == "" {
		return "", nil, nil
	}
	mt, ps, invalid, err := mediatype.Parse(v)
	if err != nil {
		return "", nil, []string{err.Error()}
	}
	for _, name := range invalid {
		problems = append(problems, "parameter without value: "+name)
	}
	return strings.ToLower(mt), ps, problems
}

// validFieldName reports whether b is a field name RFC 5322 allows (printable ASCII but
// colon and space).
func validFieldName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}
