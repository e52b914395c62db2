package idp

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// valueType is the type bit of a JSON value.
func valueType(v *jv) jsonTypes {
	switch v.kind {
	case 'z':
		return tNull
	case 'b':
		return tBool
	case 's':
		return tString
	case 'a':
		return tArray
	case 'o':
		return tObject
	}
	if f, err := v.num.Float64(); err == nil && f == float64(int64(f)) {
		return tInteger
	}
	return tFraction
}

// admits is the types s admits and, for const/enum schemas, the canonical
// JSON of each allowed value (nil: any value of those types).
func (c *compiler) admits(s *jv) (jsonTypes, map[string]bool) {
	s = c.deref(s)
	if s == nil || s.kind != 'o' {
		return allTypes, nil // true/false schemas and the like
	}
	var values []*jv
	if k := s.get("const"); k != nil {
		values = []*jv{k}
	} else if e := s.get("enum"); e != nil && e.kind == 'a' {
		values = e.vals
	}
	if values != nil {
		var ts jsonTypes
		set := map[string]bool{}
		for _, v := range values {
			ts |= valueType(v)
			set[canonical(v)] = true
		}
		return ts, set
	}
	t := s.get("type")
	switch {
	case t == nil:
		return allTypes, nil
	case t.kind == 's':
		return typeBits[t.str], nil
	case t.kind == 'a':
		var ts jsonTypes
		for _, x := range t.vals {
			if x.kind == 's' {
				ts |= typeBits[x.str]
			}
		}
		return ts, nil
	}
	return allTypes, nil
}

// deref follows local $refs (a few levels) to the schema they name.
func (c *compiler) deref(s *jv) *jv {
	for range 8 {
		r := s.get("$ref")
		if r == nil || r.kind != 's' || len(r.str) == 0 || r.str[0] != '#' {
			return s
		}
		t, ok := resolvePointer(c.tree, r.str[1:])
		if !ok {
			return s
		}
		s = t
	}
	return s
}

// canonical is a value's JSON with object keys sorted, for comparing
// const and enum values.
func canonical(v *jv) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.Encode(plain(v))
	return b.String()
}

func plain(v *jv) any {
	switch v.kind {
	case 'o':
		m := map[string]any{}
		for i, k := range v.keys {
			m[k] = plain(v.vals[i])
		}
		return m
	case 'a':
		out := make([]any, len(v.vals))
		for i, x := range v.vals {
			out[i] = plain(x)
		}
		return out
	case 's':
		return v.str
	case 'n':
		return v.num
	case 'b':
		return v.b
	}
	return nil
}

// disjoint reports whether no value can match both a and b: their types
// do not meet, their const/enum values do not meet, or both are objects
// with a required property whose const/enum values do not meet (a
// discriminator such as {"kind": {"const": "card"}}).
func (c *compiler) disjoint(a, b *jv) bool {
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
func (c *compiler) discriminated(a, b *jv) bool {
	pa, pb := a.get("properties"), b.get("properties")
	if pa == nil || pb == nil {
		return false
	}
	for _, k := range requiredOf(a) {
		if !contains(requiredOf(b), k) {
			continue
		}
		xa, xb := pa.get(k), pb.get(k)
		if xa == nil || xb == nil {
			continue
		}
		if _, va := c.admits(xa); va != nil && c.disjoint(xa, xb) {
			return true
		}
	}
	return false
}

func requiredOf(s *jv) []string {
	var out []string
	if r := s.get("required"); r != nil && r.kind == 'a' {
		for _, x := range r.vals {
			if x.kind == 's' {
				out = append(out, x.str)
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
func (c *compiler) checkOneOf(branches []*jv, ptr string) error {
	for i := range branches {
		for j := i + 1; j < len(branches); j++ {
			if !c.disjoint(branches[i], branches[j]) {
				return serr(fmt.Sprintf("%s/%d", ptr, j), "oneOf branches %d and %d can match the same value, so the decoder cannot promise exactly one: use anyOf, or make them disjoint (different types, const or enum values, or a required property with a different const in each)", i, j)
			}
		}
	}
	return nil
}
