package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// schemaInfo is an idp dataset's JSON Schema: the file's text, an ordered
// tree for property order, and the compiled validator.
type schemaInfo struct {
	path     string
	raw      json.RawMessage
	compact  string
	tree     *jval
	compiled *jsonschema.Schema
}

// loadSchema reads and compiles a JSON Schema file. References to other
// files are resolved relative to it; nothing is fetched over the network.
func loadSchema(path string) (*schemaInfo, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load schema: %w", err)
	}
	tree, err := parseJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("load schema %s: %w", path, err)
	}
	if tree.kind != 'o' {
		return nil, fmt.Errorf("load schema %s: want a JSON Schema object, got %s", path, tree.kindName())
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
func (s *schemaInfo) validate(target *jval) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(target.appendCompact(nil)))
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
func (s *schemaInfo) ordered(target *jval) json.RawMessage {
	return s.appendOrdered(nil, target, s.tree)
}

func (s *schemaInfo) appendOrdered(buf []byte, v, sch *jval) []byte {
	sch = s.resolve(sch)
	switch v.kind {
	case 'o':
		props := sch.get("properties")
		var order []int
		if props != nil && props.kind == 'o' {
			for _, k := range props.keys {
				for i, vk := range v.keys {
					if vk == k {
						order = append(order, i)
					}
				}
			}
		}
		for i, vk := range v.keys {
			if props.get(vk) == nil {
				order = append(order, i)
			}
		}
		buf = append(buf, '{')
		for n, i := range order {
			if n > 0 {
				buf = append(buf, ',')
			}
			k := v.keys[i]
			buf = appendString(buf, k)
			buf = append(buf, ':')
			sub := props.get(k)
			if sub == nil {
				sub = sch.get("additionalProperties")
			}
			buf = s.appendOrdered(buf, v.vals[i], sub)
		}
		return append(buf, '}')
	case 'a':
		buf = append(buf, '[')
		prefix := sch.get("prefixItems")
		for i, item := range v.vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			var sub *jval
			if prefix != nil && prefix.kind == 'a' && i < len(prefix.vals) {
				sub = prefix.vals[i]
			} else {
				sub = sch.get("items")
			}
			buf = s.appendOrdered(buf, item, sub)
		}
		return append(buf, ']')
	}
	return v.appendCompact(buf)
}

// resolve follows local "$ref"s ("#/$defs/x", "#") within the schema file;
// a ref it cannot follow gives nil (no ordering below it).
func (s *schemaInfo) resolve(sch *jval) *jval {
	for hops := 0; sch != nil && hops < 32; hops++ {
		ref := sch.get("$ref")
		if ref == nil || ref.kind != 's' {
			return sch
		}
		if !strings.HasPrefix(ref.str, "#") {
			return nil
		}
		sch = pointer(s.tree, strings.TrimPrefix(ref.str, "#"))
	}
	return nil
}

// pointer resolves a JSON pointer ("/a/b/0") in v.
func pointer(v *jval, ptr string) *jval {
	if ptr == "" {
		return v
	}
	if !strings.HasPrefix(ptr, "/") {
		return nil
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch {
		case v == nil:
			return nil
		case v.kind == 'o':
			v = v.get(tok)
		case v.kind == 'a':
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v.vals) {
				return nil
			}
			v = v.vals[i]
		default:
			return nil
		}
	}
	return v
}

// oneLine joins a multi-line message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
