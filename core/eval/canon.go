package eval

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

// decodeJSON parses exactly one JSON value, keeping numbers as their text.
func decodeJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("empty input")
		}
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// canonNumber returns a canonical form of a JSON number's text, equal for
// equal decimal values: "1", "1.0", "1e0" and "10E-1" all give "1e0", and
// "-0" gives "0". It is exact (no float64 rounding), so integers beyond
// 2^53 stay distinct. The text must match JSON's number grammar.
func canonNumber(s string) string {
	neg := strings.HasPrefix(s, "-")
	t := strings.TrimPrefix(s, "-")
	exp := int64(0)
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		e, err := strconv.ParseInt(strings.TrimPrefix(t[i+1:], "+"), 10, 64)
		if err != nil || e > 1<<40 || e < -(1<<40) {
			return "raw:" + s // an absurd exponent: compare the text as is
		}
		exp, t = e, t[:i]
	}
	digits := t
	if i := strings.IndexByte(t, '.'); i >= 0 {
		digits = t[:i] + t[i+1:]
		exp -= int64(len(t) - i - 1)
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0"
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + trimmed + "e" + strconv.FormatInt(exp, 10)
}

// canonical writes v in a canonical form: object keys sorted, members whose
// value is null dropped, numbers by canonNumber, strings JSON-quoted. Two
// values are exact matches when their canonical forms are equal.
func canonical(b *strings.Builder, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k, x := range v {
			if x != nil {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(quote(k))
			b.WriteByte(':')
			canonical(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			canonical(b, x)
		}
		b.WriteByte(']')
	default:
		b.WriteString(scalar(v))
	}
}

// scalar is the canonical text of a leaf value: null, a boolean, a string
// (quoted) or a number (canonNumber, marked with a leading '#' so it can
// never equal a string's text).
func scalar(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return strconv.FormatBool(v)
	case string:
		return quote(v)
	case json.Number:
		return "#" + canonNumber(string(v))
	}
	panic(fmt.Sprintf("eval: unexpected JSON value %T", v))
}

// quote is s as a JSON string, without HTML escaping.
func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// leaf is one scalar of a flattened JSON value.
type leaf struct {
	path  string // e.g. line_items[0].quantity
	field string // the path's first segment: the top-level key, "[0]", or "$"
	value string // scalar's canonical text
}

// flatten lists v's non-null scalars with their paths. Object members are
// ".key" (no dot at the start of the path), or `["key"]` (JSON-quoted)
// when the key is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*); array
// elements are "[i]". A scalar at the root has path "$". Nulls, empty
// objects and empty arrays contribute nothing.
func flatten(v any) []leaf {
	var out []leaf
	var walk func(v any, path, field string)
	walk = func(v any, path, field string) {
		switch x := v.(type) {
		case nil:
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			for _, k := range keys {
				seg := "[" + quote(k) + "]"
				if plainKey(k) {
					seg = "." + k
					if path == "" {
						seg = k
					}
				}
				f := field
				if path == "" {
					f = seg
				}
				walk(x[k], path+seg, f)
			}
		case []any:
			for i, e := range x {
				seg := "[" + strconv.Itoa(i) + "]"
				f := field
				if path == "" {
					f = seg
				}
				walk(e, path+seg, f)
			}
		default:
			if path == "" {
				path, field = "$", "$"
			}
			out = append(out, leaf{path: path, field: field, value: scalar(x)})
		}
	}
	walk(v, "", "")
	return out
}

func plainKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}
