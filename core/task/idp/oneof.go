package idp

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"distill/core/jsonv"
)

// The decoder generates oneOf like anyOf: it can only promise "exactly one
// branch matches" when no value matches two branches. checkOneOf accepts a
// oneOf whose branches are pairwise disjoint by a conservative test and
// refuses the rest at compile time, so every value generated satisfies the
// schema.

// jsonTypes is the set of JSON types a schema admits, as bits; allTypes
// when the schema does not narrow it (no type, const or enum).
type jsonTypes uint8

const (
	tNull jsonTypes = 1 << iota
	tBool
	tInteger // integral numbers: part of number too
	tFraction
	tString
	tArray
	tObject
	allTypes = tNull | tBool | tInteger | tFraction | tString | tArray | tObject
)

var typeBits = map[string]jsonTypes{"null": tNull, "boolean": tBool, "integer": tInteger, "number": tInteger | tFraction,
	"string": tString, "array": tArray, "object": tObject}

// valueType is the type bit of a JSON value. A number is an integer when
// its decimal value is one, however written (1.0, 1e20), as the validator
// decides; an exponent too large to expand could be either.
func valueType(v *jsonv.Value) jsonTypes {
	switch v.Kind {
	case jsonv.Null:
		return tNull
	case jsonv.Bool:
		return tBool
	case jsonv.String:
		return tString
	case jsonv.Array:
		return tArray
	case jsonv.Object:
		return tObject
	}
	_, exp, ok := decimal(v.Text)
	switch {
	case !ok:
		return tInteger | tFraction
	case exp >= 0:
		return tInteger
	}
	return tFraction
}

// decimal writes a JSON number's text as digits × 10^exp, exactly: digits
// without leading or trailing zeros ("" for zero, with exp 0), and a "-"
// in front when negative. Equal values give equal results (1, 1.0, 1e0 and
// 10E-1 all give "1", 0), as the validator compares numbers (big.Rat), but
// without expanding the exponent. ok is false for an exponent too large to
// trust.
func decimal(s string) (digits string, exp int64, ok bool) {
	neg := strings.HasPrefix(s, "-")
	t := strings.TrimPrefix(s, "-")
	if i := strings.IndexAny(t, "eE"); i >= 0 {
		e, err := strconv.ParseInt(strings.TrimPrefix(t[i+1:], "+"), 10, 64)
		if err != nil || e > 1<<40 || e < -(1<<40) {
			return "", 0, false
		}
		exp, t = e, t[:i]
	}
	digits = t
	if i := strings.IndexByte(t, '.'); i >= 0 {
		digits = t[:i] + t[i+1:]
		exp -= int64(len(t) - i - 1)
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "", 0, true // zero, -0 included
	}
	trimmed := strings.TrimRight(digits, "0")
	exp += int64(len(digits) - len(trimmed))
	if neg {
		trimmed = "-" + trimmed
	}
	return trimmed, exp, true
}

// valueKey is a JSON value's identity as the validator compares const and
// enum values: object keys sorted, numbers by decimal value (1 and 1.0 are
// equal), so two values have the same key when the validator finds them
// equal. A number with an absurd exponent keeps its text.
func valueKey(v *jsonv.Value) string {
	return string(appendKey(nil, v))
}

func appendKey(buf []byte, v *jsonv.Value) []byte {
	switch v.Kind {
	case jsonv.Number:
		d, exp, ok := decimal(v.Text)
		if !ok {
			return append(append(buf, "raw:"...), v.Text...)
		}
		return strconv.AppendInt(append(append(buf, d...), 'e'), exp, 10)
	case jsonv.Array:
		buf = append(buf, '[')
		for i, x := range v.Vals {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendKey(buf, x)
		}
		return append(buf, ']')
	case jsonv.Object:
		order := make([]int, len(v.Keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(v.Keys[a], v.Keys[b]) })
		buf = append(buf, '{')
		for n, i := range order {
			if n > 0 {
				buf = append(buf, ',')
			}
			buf = append(jsonv.AppendString(buf, v.Keys[i]), ':')
			buf = appendKey(buf, v.Vals[i])
		}
		return append(buf, '}')
	}
	return v.AppendCompact(buf)
}

// admits is the types s admits and, for const/enum schemas, the valueKey
// of each allowed value (nil: any value of those types).
func (c *compiler) admits(s *jsonv.Value) (jsonTypes, map[string]bool) {
	s = c.deref(s)
	if s == nil || s.Kind != jsonv.Object {
		return allTypes, nil // true/false schemas and the like
	}
	var values []*jsonv.Value
	if k := s.Get("const"); k != nil {
		values = []*jsonv.Value{k}
	} else if e := s.Get("enum"); e != nil && e.Kind == jsonv.Array {
		values = e.Vals
	}
	if values != nil {
		var ts jsonTypes
		set := map[string]bool{}
		for _, v := range values {
			ts |= valueType(v)
			set[valueKey(v)] = true
		}
		return ts, set
	}
	t := s.Get("type")
	switch {
	case t == nil:
		return allTypes, nil
	case t.Kind == jsonv.String:
		return typeBits[t.Text], nil
	case t.Kind == jsonv.Array:
		var ts jsonTypes
		for _, x := range t.Vals {
			if x.Kind == jsonv.String {
				ts |= typeBits[x.Text]
			}
		}
		return ts, nil
	}
	return allTypes, nil
}

// deref follows local $refs (a few levels) to the schema they name.
func (c *compiler) deref(s *jsonv.Value) *jsonv.Value {
	for range 8 {
		r := s.Get("$ref")
		if r == nil || r.Kind != jsonv.String || len(r.Text) == 0 || r.Text[0] != '#' {
			return s
		}
		t := c.tree.Resolve(r.Text[1:])
		if t == nil {
			return s
		}
		s = t
	}
	return s
}

// disjoint reports whether no value can match both a and b: their types
// do not meet, their const/enum values do not meet, or both are objects
// with a required property whose const/enum values do not meet (a
// discriminator such as {"kind": {"const": "card"}}).
func (c *compiler) disjoint(a, b *jsonv.Value) bool {
	ta, va := c.admits(a)
	tb, vb := c.admits(b)
	if ta&tb == 0 {
		return true
	}
	if va != nil && vb != nil {
		for k := range va {
			if vb[k] {
				return false
			}
		}
		return true
	}
	if ta&tb == tObject {
		return c.discriminated(c.deref(a), c.deref(b))
	}
	return false
}

// discriminated: a property required by both object schemas admits
// disjoint values in each.
func (c *compiler) discriminated(a, b *jsonv.Value) bool {
	pa, pb := a.Get("properties"), b.Get("properties")
	if pa == nil || pb == nil {
		return false
	}
	for _, k := range requiredOf(a) {
		if !contains(requiredOf(b), k) {
			continue
		}
		xa, xb := pa.Get(k), pb.Get(k)
		if xa == nil || xb == nil {
			continue
		}
		if _, va := c.admits(xa); va != nil && c.disjoint(xa, xb) {
			return true
		}
	}
	return false
}

func requiredOf(s *jsonv.Value) []string {
	var out []string
	if r := s.Get("required"); r != nil && r.Kind == jsonv.Array {
		for _, x := range r.Vals {
			if x.Kind == jsonv.String {
				out = append(out, x.Text)
			}
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// checkOneOf refuses a oneOf with two branches that one value could match.
func (c *compiler) checkOneOf(branches []*jsonv.Value, ptr string) error {
	for i := range branches {
		for j := i + 1; j < len(branches); j++ {
			if !c.disjoint(branches[i], branches[j]) {
				return serr(fmt.Sprintf("%s/%d", ptr, j), "oneOf branches %d and %d can match the same value, so the decoder cannot promise exactly one: use anyOf, or make them disjoint (different types, const or enum values, or a required property with a different const in each)", i, j)
			}
		}
	}
	return nil
}
