package data

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// jval is a parsed JSON value that keeps object keys in document order
// (encoding/json's maps lose it, and both feature order and the schema's
// property order matter here).
type jval struct {
	kind byte     // 'o' object, 'a' array, 's' string, 'n' number, 'b' boolean, 'z' null
	keys []string // object keys, in order
	vals []*jval  // object values (parallel to keys) or array items
	str  string   // string value, number text, "true" or "false"
}

// dupKeyError is a key that appears twice in one object.
type dupKeyError struct{ key string }

func (e *dupKeyError) Error() string { return fmt.Sprintf("duplicate key %q", e.key) }

// parseJSON parses one JSON value. Syntax errors say at which column (byte,
// 1-based) the text goes wrong.
func parseJSON(b []byte) (*jval, error) {
	var probe any
	if err := json.Unmarshal(b, &probe); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("not valid JSON at column %d: %s", se.Offset, se.Error())
		}
		return nil, fmt.Errorf("not valid JSON: %s", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: text after the value")
	}
	return v, nil
}

func decodeValue(dec *json.Decoder) (*jval, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %s", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := &jval{kind: 'o'}
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("not valid JSON: %s", err)
				}
				k := kt.(string)
				if seen[k] {
					return nil, &dupKeyError{k}
				}
				seen[k] = true
				val, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				v.keys = append(v.keys, k)
				v.vals = append(v.vals, val)
			}
			_, err := dec.Token() // '}'
			return v, err
		case '[':
			v := &jval{kind: 'a'}
			for dec.More() {
				item, err := decodeValue(dec)
				if err != nil {
					return nil, err
				}
				v.vals = append(v.vals, item)
			}
			_, err := dec.Token() // ']'
			return v, err
		}
		return nil, fmt.Errorf("not valid JSON: unexpected %v", t)
	case string:
		return &jval{kind: 's', str: t}, nil
	case json.Number:
		return &jval{kind: 'n', str: t.String()}, nil
	case bool:
		if t {
			return &jval{kind: 'b', str: "true"}, nil
		}
		return &jval{kind: 'b', str: "false"}, nil
	case nil:
		return &jval{kind: 'z'}, nil
	}
	return nil, fmt.Errorf("not valid JSON: unexpected token %v", tok)
}

// get returns an object's value for key (nil when absent or not an object).
func (v *jval) get(key string) *jval {
	if v == nil || v.kind != 'o' {
		return nil
	}
	for i, k := range v.keys {
		if k == key {
			return v.vals[i]
		}
	}
	return nil
}

// kindName names the value's JSON type for error messages.
func (v *jval) kindName() string {
	switch v.kind {
	case 'o':
		return "an object"
	case 'a':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	}
	return "null"
}

// scalarText is the text of a feature or label value: a string as it is,
// numbers as written, true/false, "" for null, and compact JSON for objects
// and arrays.
func (v *jval) scalarText() string {
	switch v.kind {
	case 's', 'n', 'b':
		return v.str
	case 'z':
		return ""
	}
	return string(v.appendCompact(nil))
}

// appendCompact appends the value as compact JSON (no HTML escaping, so
// "<" stays "<" as a model should write it).
func (v *jval) appendCompact(buf []byte) []byte {
	switch v.kind {
	case 'o':
		buf = append(buf, '{')
		for i, k := range v.keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = v.vals[i].appendCompact(buf)
		}
		return append(buf, '}')
	case 'a':
		buf = append(buf, '[')
		for i, item := range v.vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = item.appendCompact(buf)
		}
		return append(buf, ']')
	case 's':
		return appendString(buf, v.str)
	case 'n', 'b':
		return append(buf, v.str...)
	}
	return append(buf, "null"...)
}

func appendString(buf []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}
