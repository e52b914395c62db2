package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"distill/core/jsonv"
)

// schemaInfo is an idp dataset's JSON Schema: the file's text, an ordered
// tree for property order, and the compiled validator.
type schemaInfo struct {
	path     string
	raw      json.RawMessage
	compact  string
	tree     *jsonv.Value
	compiled *jsonschema.Schema
}

// loadSchema reads and compiles a JSON Schema file. References to other
// files are resolved relative to it; nothing is fetched over the network.
func loadSchema(path string) (*schemaInfo, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	tree, err := jsonv.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("load schema %s: %w", path, err)
	}
	if tree.Kind != jsonv.Object {
		return nil, fmt.Errorf("load schema %s: want a JSON Schema object, got %s", path, tree.KindName())
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("load schema %s: %w", path, err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(abs, doc); err != nil {
		return nil, fmt.Errorf("load schema %s: %w", path, err)
	}
	compiled, err := c.Compile(abs)
	if err != nil {
		return nil, fmt.Errorf("load schema %s: not a valid JSON Schema: %s", path, oneLine(err.Error()))
	}
	var cb bytes.Buffer
	if err := json.Compact(&cb, raw); err != nil {
		return nil, fmt.Errorf("load schema %s: %w", path, err)
	}
	return &schemaInfo{path: path, raw: raw, compact: cb.String(), tree: tree, compiled: compiled}, nil
}

var printer = message.NewPrinter(language.English)

// validate checks a target against the schema; the error lists the first
// few violations on one line, each with the JSON pointer of the value.
func (s *schemaInfo) validate(target *jsonv.Value) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(target.AppendCompact(nil)))
	if err != nil {
		return err
	}
	err = s.compiled.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			at := "/" + strings.Join(e.InstanceLocation, "/")
			leaves = append(leaves, fmt.Sprintf("at %s: %s", at, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > 3 {
		leaves = append(leaves[:3], fmt.Sprintf("and %d more", len(leaves)-3))
	}
	return errors.New(strings.Join(leaves, "; "))
}

// ordered serialises a target compactly with each object's keys in the
// order of its schema's "properties", then any other keys in the target's
// order. Subschemas are followed through properties, additionalProperties,
// items, prefixItems and local "$ref"s ("#/..."); where none applies the
// target's own order is kept.
func (s *schemaInfo) ordered(target *jsonv.Value) json.RawMessage {
	return s.appendOrdered(nil, target, s.tree)
}

func (s *schemaInfo) appendOrdered(buf []byte, v, sch *jsonv.Value) []byte {
	sch = s.resolve(sch)
	switch v.Kind {
	case jsonv.Object:
		props := sch.Get("properties")
		var order []int
		if props != nil && props.Kind == jsonv.Object {
			for _, k := range props.Keys {
				for i, vk := range v.Keys {
					if vk == k {
						order = append(order, i)
					}
				}
			}
		}
		for i, vk := range v.Keys {
			if props.Get(vk) == nil {
				order = append(order, i)
			}
		}
		buf = append(buf, '{')
		for n, i := range order {
			if n > 0 {
				buf = append(buf, ',')
			}
			k := v.Keys[i]
			buf = jsonv.AppendString(buf, k)
			buf = append(buf, ':')
			sub := props.Get(k)
			if sub == nil {
				sub = sch.Get("additionalProperties")
			}
			buf = s.appendOrdered(buf, v.Vals[i], sub)
		}
		return append(buf, '}')
	case jsonv.Array:
		buf = append(buf, '[')
		prefix := sch.Get("prefixItems")
		for i, item := range v.Vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			var sub *jsonv.Value
			if prefix != nil && prefix.Kind == jsonv.Array && i < len(prefix.Vals) {
				sub = prefix.Vals[i]
			} else {
				sub = sch.Get("items")
			}
			buf = s.appendOrdered(buf, item, sub)
		}
		return append(buf, ']')
	}
	return v.AppendCompact(buf)
}

// resolve follows local "$ref"s ("#/$defs/x", "#") within the schema file;
// a ref it cannot follow gives nil (no ordering below it).
func (s *schemaInfo) resolve(sch *jsonv.Value) *jsonv.Value {
	for hops := 0; sch != nil && hops < 32; hops++ {
		ref := sch.Get("$ref")
		if ref == nil || ref.Kind != jsonv.String {
			return sch
		}
		if !strings.HasPrefix(ref.Text, "#") {
			return nil
		}
		sch = s.tree.Resolve(strings.TrimPrefix(ref.Text, "#"))
	}
	return nil
}

// oneLine joins a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
