// Package jsonv is a parsed JSON value that keeps what encoding/json's maps
// lose: object keys in document order and numbers as written. Training
// rows, schemas and generated objects all follow the order their text
// gives.
package jsonv

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Kind is a JSON value's type. The zero Kind is Null.
type Kind byte

const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

// Value is a parsed JSON value.
type Value struct {
	Kind Kind
	Keys []string // an object's keys, in document order
	Vals []*Value // an object's values (parallel to Keys) or an array's items
	Text string   // a string's value, a number as written, "true" or "false"
}

// SyntaxError is text that is not JSON.
type SyntaxError struct {
	Column int64  // where the text goes wrong: a byte offset, 1-based
	Msg    string // encoding/json's description
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("not valid JSON at column %d: %s", e.Column, e.Msg)
}

// DuplicateKeyError is a key that appears twice in one object.
type DuplicateKeyError struct{ Key string }

func (e *DuplicateKeyError) Error() string { return fmt.Sprintf("duplicate key %q", e.Key) }

// Parse parses one JSON value. Text that is not JSON gives a *SyntaxError;
// valid JSON with a key twice in one object gives a *DuplicateKeyError.
func Parse(b []byte) (*Value, error) {
	if !json.Valid(b) {
		var probe json.RawMessage
		err := json.Unmarshal(b, &probe)
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			return nil, &SyntaxError{Column: se.Offset, Msg: se.Error()}
		}
		return nil, fmt.Errorf("not valid JSON: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := decode(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("not valid JSON: text after the value")
	}
	return v, nil
}

// decode reads one value from text already known to be valid JSON.
func decode(dec *json.Decoder) (*Value, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("not valid JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		v := &Value{Kind: Array}
		if t == '{' {
			v.Kind = Object
		}
		var seen map[string]bool
		for dec.More() {
			if v.Kind == Object {
				kt, err := dec.Token()
				if err != nil {
					return nil, fmt.Errorf("not valid JSON: %w", err)
				}
				k := kt.(string)
				if seen[k] {
					return nil, &DuplicateKeyError{k}
				}
				if seen == nil {
					seen = map[string]bool{}
				}
				seen[k] = true
				v.Keys = append(v.Keys, k)
			}
			item, err := decode(dec)
			if err != nil {
				return nil, err
			}
			v.Vals = append(v.Vals, item)
		}
		if _, err := dec.Token(); err != nil { // '}' or ']'
			return nil, fmt.Errorf("not valid JSON: %w", err)
		}
		return v, nil
	case string:
		return &Value{Kind: String, Text: t}, nil
	case json.Number:
		return &Value{Kind: Number, Text: t.String()}, nil
	case bool:
		return &Value{Kind: Bool, Text: strconv.FormatBool(t)}, nil
	}
	return &Value{Kind: Null}, nil
}

// Get returns an object's value for key: nil when v is nil, not an object
// or has no such key.
func (v *Value) Get(key string) *Value {
	if v == nil || v.Kind != Object {
		return nil
	}
	if i := slices.Index(v.Keys, key); i >= 0 {
		return v.Vals[i]
	}
	return nil
}

// IsTrue reports whether v is the boolean true.
func (v *Value) IsTrue() bool { return v != nil && v.Kind == Bool && v.Text == "true" }

// IsFalse reports whether v is the boolean false.
func (v *Value) IsFalse() bool { return v != nil && v.Kind == Bool && v.Text == "false" }

// KindName names the value's JSON type for messages: "an object", "an
// array", "a string", "a number", "a boolean" or "null".
func (v *Value) KindName() string {
	switch v.Kind {
	case Object:
		return "an object"
	case Array:
		return "an array"
	case String:
		return "a string"
	case Number:
		return "a number"
	case Bool:
		return "a boolean"
	}
	return "null"
}

// AppendCompact appends the value as compact JSON: keys in document order,
// numbers as written, strings escaped as encoding/json does but without
// HTML escaping ("<" stays "<", as a model should write it).
func (v *Value) AppendCompact(buf []byte) []byte {
	return v.appendJSON(buf, false)
}

// Canonical is the value's compact JSON with every object's keys sorted:
// two values that differ only in key order have the same Canonical.
// Numbers stay as written, so 1 and 1.0 differ.
func (v *Value) Canonical() string {
	return string(v.appendJSON(nil, true))
}

func (v *Value) appendJSON(buf []byte, sorted bool) []byte {
	switch v.Kind {
	case Object:
		order := make([]int, len(v.Keys))
		for i := range order {
			order[i] = i
		}
		if sorted {
			slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(v.Keys[a], v.Keys[b]) })
		}
		buf = append(buf, '{')
		for n, i := range order {
			if n > 0 {
				buf = append(buf, ',')
			}
			buf = AppendString(buf, v.Keys[i])
			buf = append(buf, ':')
			buf = v.Vals[i].appendJSON(buf, sorted)
		}
		return append(buf, '}')
	case Array:
		buf = append(buf, '[')
		for i, item := range v.Vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = item.appendJSON(buf, sorted)
		}
		return append(buf, ']')
	case String:
		return AppendString(buf, v.Text)
	case Number, Bool:
		return append(buf, v.Text...)
	}
	return append(buf, "null"...)
}

// AppendString appends s as a JSON string, escaped as encoding/json does
// but without HTML escaping.
func AppendString(buf []byte, s string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// PointerToken escapes an object key as one JSON pointer token (RFC 6901):
// "~" becomes "~0" and "/" becomes "~1".
func PointerToken(key string) string {
	return pointerEscaper.Replace(key)
}

var (
	pointerEscaper   = strings.NewReplacer("~", "~0", "/", "~1")
	pointerUnescaper = strings.NewReplacer("~1", "/", "~0", "~")
)

// Resolve follows a JSON pointer (RFC 6901: "" for v itself, or "/a/0/b")
// from v. It returns nil when the pointer does not resolve: a missing key,
// an array index out of range or not written as one ("01", "+1", "-0"), a
// step into a scalar, or a pointer that does not start with "/".
func (v *Value) Resolve(ptr string) *Value {
	if ptr == "" {
		return v
	}
	if ptr[0] != '/' {
		return nil
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		switch {
		case v == nil:
			return nil
		case v.Kind == Object:
			v = v.Get(pointerUnescaper.Replace(tok))
		case v.Kind == Array:
			i, ok := arrayIndex(tok)
			if !ok || i >= len(v.Vals) {
				return nil
			}
			v = v.Vals[i]
		default:
			return nil
		}
	}
	return v
}

// arrayIndex parses an RFC 6901 array index: "0", or digits without a
// leading zero.
func arrayIndex(tok string) (int, bool) {
	if tok == "" || (tok[0] == '0' && len(tok) > 1) {
		return 0, false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return 0, false
		}
	}
	i, err := strconv.Atoi(tok)
	return i, err == nil
}
