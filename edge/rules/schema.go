package rules

import (
	"fmt"
	"os"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// JSONSchema compiles a draft 2020-12 JSON Schema: doc is the schema itself,
// or "@path" to read it from a file. Only local files are ever loaded (the
// library's default loader; no network).
func JSONSchema(name, doc string) (Validator, error) {
	if path, ok := strings.CutPrefix(doc, "@"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read schema: %w", err)
		}
		doc = string(b)
	}
	v, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parse schema: %s", oneLine(err))
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	url := "tributary:rule/" + name + ".json"
	if err := c.AddResource(url, v); err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("compile schema: %s", oneLine(err))
	}
	return schemaValidator{s}, nil
}

type schemaValidator struct{ s *jsonschema.Schema }

// Validate returns the validator's message, flattened to one line for the
// reason header.
func (v schemaValidator) Validate(doc any) error {
	err := v.s.Validate(doc)
	if err == nil {
		return nil
	}
	return fmt.Errorf("schema: %s", oneLine(err))
}

// oneLine flattens the library's indented multi-line messages for a log
// line or a reason header.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }
