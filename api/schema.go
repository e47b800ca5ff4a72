package api

import _ "embed"

// SchemaID is the $id of record.schema.json. It is a name, not a location: nothing fetches it.
const SchemaID = "urn:journalsensor:schema:sensor.record:v1"

// A string, not a []byte, so the embedded schema cannot be modified through a shared slice.
//
//go:embed record.schema.json
var schemaJSON string

// Schema returns the JSON Schema (draft 2020-12) of one Record v1 object. Each call returns a
// fresh copy, so the caller may keep or modify it.
func Schema() []byte {
	return []byte(schemaJSON)
}
