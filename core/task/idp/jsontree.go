package idp

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// jv is a parsed JSON value that keeps object keys in document order (the
// order generated objects follow) and numbers as written.
type jv struct {
	kind byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' boolean, 'z' null
	keys []string
	vals []*jv // object values (by keys) or array elements
	str  string
	num  json.Number
	b    bool
}

func parseJSON(data []byte) (*jv, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	v, err := parseValue(d)
	if err != nil {
		return nil, err
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the top-level value")
	}
	return v, nil
}

func parseValue(d *json.Decoder) (*jv, error) {
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			v := &jv{kind: 'o'}
			for d.More() {
				k, err := d.Token()
				if err != nil {
					return nil, err
				}
				x, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				v.keys = append(v.keys, k.(string))
				v.vals = append(v.vals, x)
			}
			_, err := d.Token()
			return v, err
		case '[':
			v := &jv{kind: 'a'}
			for d.More() {
				x, err := parseValue(d)
				if err != nil {
					return nil, err
				}
				v.vals = append(v.vals, x)
			}
			_, err := d.Token()
			return v, err
		}
		return nil, fmt.Errorf("unexpected %v", t)
	case string:
		return &jv{kind: 's', str: t}, nil
	case json.Number:
		return &jv{kind: 'n', num: t}, nil
	case bool:
		return &jv{kind: 'b', b: t}, nil
	case nil:
		return &jv{kind: 'z'}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", t)
}

// get returns the value of key k in an object, or nil.
func (v *jv) get(k string) *jv {
	if v == nil || v.kind != 'o' {
		return nil
	}
	for i, x := range v.keys {
		if x == k {
			return v.vals[i]
		}
	}
	return nil
}

func (v *jv) kindName() string {
	return map[byte]string{'o': "an object", 'a': "an array", 's': "a string", 'n': "a number", 'b': "a boolean", 'z': "null"}[v.kind]
}

// appendCompact appends v as compact JSON: keys in document order, numbers
// as written, strings escaped as encoding/json does without HTML escaping.
func (v *jv) appendCompact(buf []byte) []byte {
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
		for i, x := range v.vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = x.appendCompact(buf)
		}
		return append(buf, ']')
	case 's':
		return appendString(buf, v.str)
	case 'n':
		return append(buf, v.num...)
	case 'b':
		if v.b {
			return append(buf, "true"...)
		}
		return append(buf, "false"...)
	}
	return append(buf, "null"...)
}

func appendString(buf []byte, s string) []byte {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	_ = e.Encode(s)
	return append(buf, bytes.TrimSuffix(b.Bytes(), []byte("\n"))...)
}

// pointerToken escapes a key for a JSON pointer (RFC 6901).
func pointerToken(k string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(k)
}

// resolvePointer follows a JSON pointer ("" or "/a/b") from root.
func resolvePointer(root *jv, ptr string) (*jv, bool) {
	if ptr == "" {
		return root, true
	}
	if ptr[0] != '/' {
		return nil, false
	}
	cur := root
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch cur.kind {
		case 'o':
			next := cur.get(tok)
			if next == nil {
				return nil, false
			}
			cur = next
		case 'a':
			var i int
			if _, err := fmt.Sscanf(tok, "%d", &i); err != nil || i < 0 || i >= len(cur.vals) || fmt.Sprint(i) != tok {
				return nil, false
			}
			cur = cur.vals[i]
		default:
			return nil, false
		}
	}
	return cur, true
}
