package idp

import (
	"fmt"
	"math/big"
	"slices"
	"strings"

	"distill/core/jsonv"
)

type compiler struct {
	g      *Grammar
	tree   *jsonv.Value
	byPtr  map[string]int32 // $ref targets by JSON pointer
	enums  []pendingEnum
	anyID  int32  // the "any JSON value" node, 0: not built yet
	anyObj int32  // its any-object alternative
	idKey  string // the keyword that sets a base URI: "$id", or "id" in draft-04
	// formats not enforced during generation, by the pointer of their
	// schema: refused if the validator asserts them (see checkFormats)
	looseFormats []looseFormat
}

type looseFormat struct{ ptr, name string }

// idKeyword is the keyword that sets a schema's base URI under the draft
// the root's $schema names (as the validator reads it).
func idKeyword(root *jsonv.Value) string {
	if sv := root.Get("$schema"); sv != nil && sv.Kind == jsonv.String && strings.Contains(sv.Text, "draft-04/") {
		return "id"
	}
	return "$id"
}

// checkID refuses a base URI ($id) below the root: the validator resolves
// the $refs under it against that URI (another resource), while this
// compiler resolves every local $ref from the document root, so the two
// could disagree about what a $ref names.
func (c *compiler) checkID(v *jsonv.Value, ptr string) error {
	if ptr == "" {
		return nil
	}
	if id := v.Get(c.idKey); id != nil && id.Kind == jsonv.String {
		return serr(ptr+"/"+jsonv.PointerToken(c.idKey), "%s in a subschema is not supported: $refs under it would resolve against %q rather than the document root; move the subschema under $defs of the root without %s", c.idKey, id.Text, c.idKey)
	}
	return nil
}

// pendingEnum is an enum/const whose values are checked, once everything
// is compiled, against the schema's other keywords (compiled as rest).
type pendingEnum struct {
	node   int32
	rest   int32 // -1: no other keywords
	values [][]byte
	ptr    string
}

// Keywords that carry no assertion: ignored.
var annotationKeywords = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "$anchor": true, "$dynamicAnchor": true,
	"$vocabulary": true, "title": true, "description": true, "default": true, "examples": true,
	"deprecated": true, "readOnly": true, "writeOnly": true, "contentEncoding": true,
	"contentMediaType": true, "contentSchema": true, "$defs": true, "definitions": true,
}

// Keywords this package implements.
var supportedKeywords = map[string]bool{
	"type": true, "enum": true, "const": true,
	"properties": true, "required": true, "additionalProperties": true, "unevaluatedProperties": true,
	"items": true, "minItems": true, "maxItems": true, "uniqueItems": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"anyOf": true, "oneOf": true, "allOf": true, "$ref": true,
}

// Known JSON Schema keywords this package does not implement: an error.
var unsupportedKeywords = map[string]bool{
	"patternProperties": true,
	"propertyNames":     true,
	"minProperties":     true,
	"maxProperties":     true,
	"dependentRequired": true,
	"dependentSchemas":  true,
	"dependencies":      true,
	"if":                true,
	"then":              true,
	"else":              true,
	"not":               true,
	"multipleOf":        true,
	"prefixItems":       true,
	"additionalItems":   true,
	"unevaluatedItems":  true,
	"contains":          true,
	"minContains":       true,
	"maxContains":       true,
	"$dynamicRef":       true,
	"$recursiveRef":     true,
	"$recursiveAnchor":  true,
}

var (
	objectKeywords = []string{"properties", "required", "additionalProperties", "unevaluatedProperties"}
	arrayKeywords  = []string{"items", "minItems", "maxItems", "uniqueItems"}
	stringKeywords = []string{"minLength", "maxLength", "pattern", "format"}
	numberKeywords = []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
)

func serr(ptr, format string, args ...any) error {
	return &SchemaError{Pointer: ptr, Msg: fmt.Sprintf(format, args...)}
}

func (c *compiler) node(n node) int32 { return c.g.newNode(n) }

// compile compiles the schema v found at ptr and returns its node.
func (c *compiler) compile(v *jsonv.Value, ptr string) (int32, error) {
	if len(c.g.nodes) == 0 {
		c.g.newNode(node{kind: kNever}) // node 0: the false schema
	}
	switch v.Kind {
	case jsonv.Bool:
		if v.IsTrue() {
			return c.anyNode(), nil
		}
		return 0, nil
	case jsonv.Object:
	default:
		return 0, serr(ptr, "a schema must be an object or a boolean, not %s", v.KindName())
	}
	if err := c.checkID(v, ptr); err != nil {
		return 0, err
	}
	// Check every keyword first, so errors point at the keyword.
	assertions := 0
	for i, k := range v.Keys {
		kp := ptr + "/" + jsonv.PointerToken(k)
		if unsupportedKeywords[k] {
			return 0, serr(kp, "keyword %q is not supported for constrained generation", k)
		}
		val := v.Vals[i]
		switch k {
		case "uniqueItems":
			if val.IsTrue() {
				return 0, serr(kp, "keyword %q (true) is not supported for constrained generation", k)
			}
			continue
		case "unevaluatedProperties":
			if val.IsFalse() {
				continue // generation never adds unevaluated properties
			}
			return 0, serr(kp, "keyword %q is supported only as false", k)
		case "items":
			if val.Kind == jsonv.Array {
				return 0, serr(kp, "keyword %q as an array (tuple validation) is not supported", k)
			}
		}
		if supportedKeywords[k] {
			assertions++
		}
	}
	if ref := v.Get("$ref"); ref != nil {
		if assertions > 1 {
			return 0, serr(ptr+"/$ref", "keyword \"$ref\" alongside other assertion keywords is not supported: move them into the referenced schema")
		}
		return c.ref(ref, ptr+"/$ref")
	}
	for _, k := range []string{"anyOf", "oneOf", "allOf"} {
		x := v.Get(k)
		if x == nil {
			continue
		}
		kp := ptr + "/" + k
		if assertions > 1 {
			return 0, serr(kp, "keyword %q alongside other assertion keywords is not supported: move them into each subschema", k)
		}
		if x.Kind != jsonv.Array || len(x.Vals) == 0 {
			return 0, serr(kp, "%s must be a non-empty array", k)
		}
		if k == "allOf" {
			if len(x.Vals) != 1 {
				return 0, serr(kp, "allOf with more than one subschema is not supported")
			}
			return c.compile(x.Vals[0], kp+"/0")
		}
		if k == "oneOf" {
			if err := c.checkOneOf(x.Vals, kp); err != nil {
				return 0, err
			}
		}
		var alts []int32
		for i, s := range x.Vals {
			id, err := c.compile(s, fmt.Sprintf("%s/%d", kp, i))
			if err != nil {
				return 0, err
			}
			alts = append(alts, id)
		}
		if len(alts) == 1 {
			return alts[0], nil
		}
		return c.node(node{kind: kChoice, alts: alts, ptr: ptr}), nil
	}
	if v.Get("enum") != nil || v.Get("const") != nil {
		return c.enum(v, ptr)
	}
	return c.typed(v, ptr)
}

// ref compiles a local $ref ("#", "#/$defs/x", "#/definitions/x", any
// local JSON pointer).
func (c *compiler) ref(r *jsonv.Value, ptr string) (int32, error) {
	if r.Kind != jsonv.String {
		return 0, serr(ptr, "$ref must be a string")
	}
	s := r.Text
	if !strings.HasPrefix(s, "#") {
		return 0, serr(ptr, "$ref %q: only local references (#/...) are supported", s)
	}
	target := s[1:]
	if target != "" && target[0] != '/' {
		return 0, serr(ptr, "$ref %q: anchors are not supported, use a JSON pointer such as #/$defs/name", s)
	}
	// Percent-decoding of the fragment (rare in practice).
	if strings.Contains(target, "%") {
		return 0, serr(ptr, "$ref %q: percent-encoded pointers are not supported", s)
	}
	if id, ok := c.byPtr[target]; ok {
		return id, nil
	}
	tv := c.tree.Resolve(target)
	if tv == nil {
		return 0, serr(ptr, "$ref %q does not resolve", s)
	}
	if err := c.checkPathIDs(target, ptr, s); err != nil {
		return 0, err
	}
	id := c.node(node{kind: kAlias, ptr: target})
	c.byPtr[target] = id
	body, err := c.compile(tv, target)
	if err != nil {
		return 0, err
	}
	c.g.nodes[id].alias = body
	return id, nil
}

// checkPathIDs refuses a $ref whose target lies inside a subschema with a
// base URI ($id): the validator resolves the target's own $refs against
// that URI. The target itself is checked when compiled; this checks the
// schemas on the way to it, which may never be compiled. (A property named
// "$id" under properties holds a schema, not a string, so it is no match.)
func (c *compiler) checkPathIDs(target, ptr, ref string) error {
	for i := 1; i < len(target); i++ {
		if target[i] != '/' {
			continue
		}
		if id := c.tree.Resolve(target[:i]).Get(c.idKey); id != nil && id.Kind == jsonv.String {
			return serr(ptr, "$ref %q points inside %s, which has %s %q: $refs under it would resolve against that URI rather than the document root, which is not supported", ref, target[:i], c.idKey, id.Text)
		}
	}
	return nil
}

// enum compiles enum/const: a set of literals, filtered later by the
// schema's other keywords.
func (c *compiler) enum(v *jsonv.Value, ptr string) (int32, error) {
	var vals []*jsonv.Value
	var kp string
	if e := v.Get("enum"); e != nil {
		kp = ptr + "/enum"
		if e.Kind != jsonv.Array || len(e.Vals) == 0 {
			return 0, serr(kp, "enum must be a non-empty array")
		}
		vals = e.Vals
	}
	if k := v.Get("const"); k != nil {
		if vals != nil {
			// Both: const must be among the enum values (compared as the
			// validator does: 1 equals 1.0).
			key := valueKey(k)
			found := false
			for _, x := range vals {
				found = found || valueKey(x) == key
			}
			if !found {
				return 0, serr(ptr+"/const", "const is not one of the enum values")
			}
		}
		kp = ptr + "/const"
		vals = []*jsonv.Value{k}
	}
	var es []litEntry
	var raw [][]byte
	for _, x := range vals {
		b := literalBytes(x)
		es = append(es, litEntry{b, actEnd})
		raw = append(raw, b)
	}
	// The rest of the schema, when it asserts anything, filters the values.
	rest := &jsonv.Value{Kind: jsonv.Object}
	for i, k := range v.Keys {
		if k != "enum" && k != "const" {
			rest.Keys = append(rest.Keys, k)
			rest.Vals = append(rest.Vals, v.Vals[i])
		}
	}
	restID := int32(-1)
	if hasAssertions(rest) {
		id, err := c.typed(rest, ptr)
		if err != nil {
			return 0, err
		}
		restID = id
	}
	id := c.node(node{kind: kLit, ptr: kp})
	c.g.nodes[id].trie = c.g.lit.add(es)
	c.enums = append(c.enums, pendingEnum{node: id, rest: restID, values: raw, ptr: kp})
	return id, nil
}

func hasAssertions(v *jsonv.Value) bool {
	for _, k := range v.Keys {
		if supportedKeywords[k] {
			return true
		}
	}
	return false
}

// typed compiles a schema by its type (given, or inferred from the
// type-specific keywords present; none: any value).
func (c *compiler) typed(v *jsonv.Value, ptr string) (int32, error) {
	var types []string
	if t := v.Get("type"); t != nil {
		tp := ptr + "/type"
		switch t.Kind {
		case jsonv.String:
			types = []string{t.Text}
		case jsonv.Array:
			for _, x := range t.Vals {
				if x.Kind != jsonv.String {
					return 0, serr(tp, "type must be a string or an array of strings")
				}
				types = append(types, x.Text)
			}
		default:
			return 0, serr(tp, "type must be a string or an array of strings")
		}
		for _, x := range types {
			if !slices.Contains([]string{"object", "array", "string", "number", "integer", "boolean", "null"}, x) {
				return 0, serr(tp, "unknown type %q", x)
			}
		}
	} else {
		has := func(kws []string) bool {
			for _, k := range kws {
				if v.Get(k) != nil {
					return true
				}
			}
			return false
		}
		for _, x := range []struct {
			t   string
			kws []string
		}{{"object", objectKeywords}, {"array", arrayKeywords}, {"string", stringKeywords}, {"number", numberKeywords}} {
			if has(x.kws) {
				types = append(types, x.t)
			}
		}
		if len(types) == 0 {
			return c.anyNode(), nil
		}
	}
	if slices.Contains(types, "number") {
		types = slices.DeleteFunc(types, func(s string) bool { return s == "integer" })
	}
	var alts []int32
	for _, t := range slices.Compact(types) {
		var id int32
		var err error
		switch t {
		case "object":
			id, err = c.object(v, ptr)
		case "array":
			id, err = c.array(v, ptr)
		case "string":
			id, err = c.str(v, ptr)
		case "number", "integer":
			id, err = c.number(v, ptr, t == "integer")
		case "boolean":
			id = c.literal(ptr, "true", "false")
		case "null":
			id = c.literal(ptr, "null")
		}
		if err != nil {
			return 0, err
		}
		alts = append(alts, id)
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return c.node(node{kind: kChoice, alts: alts, ptr: ptr}), nil
}

func (c *compiler) literal(ptr string, lits ...string) int32 {
	var es []litEntry
	for _, l := range lits {
		es = append(es, litEntry{[]byte(l), actEnd})
	}
	id := c.node(node{kind: kLit, ptr: ptr})
	c.g.nodes[id].trie = c.g.lit.add(es)
	return id
}

// anyNode is any JSON value (the true schema, or {}).
func (c *compiler) anyNode() int32 {
	if c.anyID != 0 {
		return c.anyID
	}
	id := c.node(node{kind: kChoice, ptr: "(any)"})
	c.anyID = id
	key := c.node(node{kind: kString, maxLen: -1, ptr: "(any key)"})
	obj := c.node(node{kind: kAnyObject, item: id, key: key, ptr: "(any)"})
	c.anyObj = obj
	arr := c.node(node{kind: kArray, item: id, maxItems: -1, ptr: "(any)"})
	str := c.node(node{kind: kString, maxLen: -1, ptr: "(any)"})
	ns, _ := newNumSpec(false, "", "", false, false)
	num := c.node(node{kind: kNumber, num: ns, ptr: "(any)"})
	lit := c.literal("(any)", "true", "false", "null")
	c.g.nodes[id].alts = []int32{obj, arr, str, num, lit}
	return id
}

func nonNegInt(v *jsonv.Value, ptr string) (int32, error) {
	if v.Kind != jsonv.Number {
		return 0, serr(ptr, "must be a non-negative integer")
	}
	r, ok := new(big.Rat).SetString(v.Text)
	if !ok || !r.IsInt() || r.Sign() < 0 {
		return 0, serr(ptr, "must be a non-negative integer")
	}
	if !r.Num().IsInt64() || r.Num().Int64() > 1<<20 {
		return 1 << 20, nil
	}
	return int32(r.Num().Int64()), nil
}

func (c *compiler) object(v *jsonv.Value, ptr string) (int32, error) {
	n := node{kind: kObject, ptr: ptr}
	required := map[string]bool{}
	if r := v.Get("required"); r != nil {
		if r.Kind != jsonv.Array {
			return 0, serr(ptr+"/required", "required must be an array of strings")
		}
		for _, x := range r.Vals {
			if x.Kind != jsonv.String {
				return 0, serr(ptr+"/required", "required must be an array of strings")
			}
			required[x.Text] = true
		}
	}
	if ps := v.Get("properties"); ps != nil {
		if ps.Kind != jsonv.Object {
			return 0, serr(ptr+"/properties", "properties must be an object")
		}
		for i, k := range ps.Keys {
			id, err := c.compile(ps.Vals[i], ptr+"/properties/"+jsonv.PointerToken(k))
			if err != nil {
				return 0, err
			}
			n.props = append(n.props, prop{name: k, node: id, required: required[k]})
			delete(required, k)
		}
	}
	if len(required) > 0 {
		var names []string
		for k := range required {
			names = append(names, k)
		}
		slices.Sort(names)
		return 0, serr(ptr+"/required", "required property %q has no schema under properties (generation only emits listed properties)", names[0])
	}
	// additionalProperties: false, absent, true or a schema all generate the
	// listed properties only (never extra ones), which each allows.
	ap := v.Get("additionalProperties")
	if ap != nil && ap.Kind != jsonv.Bool && ap.Kind != jsonv.Object {
		return 0, serr(ptr+"/additionalProperties", "additionalProperties must be a boolean or a schema")
	}
	if len(n.props) == 0 && !ap.IsFalse() && !v.Get("unevaluatedProperties").IsFalse() {
		return c.openObject(ap, ptr)
	}
	return c.node(n), nil
}

// openObject compiles an object schema that lists no properties and allows
// others ({"type":"object"}, what json_object mode asks for): any object,
// keys any string, values any JSON value or additionalProperties' schema
// (only {} would be far too narrow). The keywords that would constrain the
// keys or their count (propertyNames, minProperties, maxProperties,
// patternProperties) are refused with the other unsupported ones, and
// required is refused by object (it must name listed properties).
func (c *compiler) openObject(ap *jsonv.Value, ptr string) (int32, error) {
	if ap == nil || ap.IsTrue() {
		c.anyNode()
		return c.anyObj, nil
	}
	item, err := c.compile(ap, ptr+"/additionalProperties")
	if err != nil {
		return 0, err
	}
	key := c.node(node{kind: kString, maxLen: -1, ptr: ptr})
	return c.node(node{kind: kAnyObject, item: item, key: key, ptr: ptr}), nil
}

func (c *compiler) array(v *jsonv.Value, ptr string) (int32, error) {
	n := node{kind: kArray, ptr: ptr, maxItems: -1}
	if it := v.Get("items"); it != nil {
		id, err := c.compile(it, ptr+"/items")
		if err != nil {
			return 0, err
		}
		n.item = id
	} else {
		n.item = c.anyNode()
	}
	var err error
	if x := v.Get("minItems"); x != nil {
		if n.minItems, err = nonNegInt(x, ptr+"/minItems"); err != nil {
			return 0, err
		}
	}
	if x := v.Get("maxItems"); x != nil {
		if n.maxItems, err = nonNegInt(x, ptr+"/maxItems"); err != nil {
			return 0, err
		}
		if n.maxItems < n.minItems {
			return 0, serr(ptr+"/maxItems", "maxItems %d is below minItems %d", n.maxItems, n.minItems)
		}
	}
	return c.node(n), nil
}

func (c *compiler) str(v *jsonv.Value, ptr string) (int32, error) {
	n := node{kind: kString, ptr: ptr, maxLen: -1}
	var err error
	if x := v.Get("minLength"); x != nil {
		if n.minLen, err = nonNegInt(x, ptr+"/minLength"); err != nil {
			return 0, err
		}
	}
	if x := v.Get("maxLength"); x != nil {
		if n.maxLen, err = nonNegInt(x, ptr+"/maxLength"); err != nil {
			return 0, err
		}
		if n.maxLen < n.minLen {
			return 0, serr(ptr+"/maxLength", "maxLength %d is below minLength %d", n.maxLen, n.minLen)
		}
	}
	var parts []*sdfa
	if x := v.Get("format"); x != nil {
		if x.Kind != jsonv.String {
			return 0, serr(ptr+"/format", "format must be a string")
		}
		// Formats other than these are not enforced during generation:
		// fine where the validator treats format as an annotation (the
		// default from draft 2019-09 on), refused where it asserts it
		// (checkFormats, once the validator is compiled).
		if pat, ok := formatPatterns[x.Text]; ok {
			d, err := compileRegex(pat)
			if err != nil {
				return 0, serr(ptr+"/format", "%v", err)
			}
			parts = append(parts, d)
		} else {
			c.looseFormats = append(c.looseFormats, looseFormat{ptr, x.Text})
		}
	}
	if x := v.Get("pattern"); x != nil {
		if x.Kind != jsonv.String {
			return 0, serr(ptr+"/pattern", "pattern must be a string")
		}
		d, err := compileRegex(x.Text)
		if err != nil {
			return 0, serr(ptr+"/pattern", "%v", err)
		}
		parts = append(parts, d)
	}
	if len(parts) > 0 {
		vb := c.g.vocab
		d, err := productDFA(parts, n.minLen, n.maxLen, func(b byte) bool { return vb.byteTok[b] >= 0 })
		if err != nil {
			kw := "/pattern"
			if v.Get("pattern") == nil {
				kw = "/format"
			}
			return 0, serr(ptr+kw, "%v", err)
		}
		n.dfa = d
	}
	return c.node(n), nil
}

func (c *compiler) number(v *jsonv.Value, ptr string, integer bool) (int32, error) {
	var lo, hi string
	var exLo, exHi bool
	bound := func(k string) (string, *jsonv.Value, error) {
		x := v.Get(k)
		if x == nil {
			return "", nil, nil
		}
		if x.Kind == jsonv.Bool {
			return "", x, nil
		}
		if x.Kind != jsonv.Number {
			return "", nil, serr(ptr+"/"+k, "%s must be a number", k)
		}
		return x.Text, x, nil
	}
	stricter := func(cur string, curEx bool, cand string, candEx bool, isMin bool) (string, bool) {
		if cand == "" {
			return cur, curEx
		}
		if cur == "" {
			return cand, candEx
		}
		a, _ := new(big.Rat).SetString(cur)
		b, _ := new(big.Rat).SetString(cand)
		cmp := b.Cmp(a)
		if (isMin && cmp > 0) || (!isMin && cmp < 0) || (cmp == 0 && candEx) {
			return cand, candEx
		}
		return cur, curEx
	}
	mn, _, err := bound("minimum")
	if err != nil {
		return 0, err
	}
	mx, _, err := bound("maximum")
	if err != nil {
		return 0, err
	}
	emn, emnv, err := bound("exclusiveMinimum")
	if err != nil {
		return 0, err
	}
	emx, emxv, err := bound("exclusiveMaximum")
	if err != nil {
		return 0, err
	}
	lo, hi = mn, mx
	// Draft 4: exclusiveMinimum/Maximum are booleans modifying minimum/maximum.
	if emnv != nil && emnv.Kind == jsonv.Bool {
		exLo = emnv.IsTrue()
	} else {
		lo, exLo = stricter(lo, false, emn, true, true)
	}
	if emxv != nil && emxv.Kind == jsonv.Bool {
		exHi = emxv.IsTrue()
	} else {
		hi, exHi = stricter(hi, false, emx, true, false)
	}
	ns, err := newNumSpec(integer, lo, hi, exLo, exHi)
	if err != nil {
		return 0, serr(ptr, "%v", err)
	}
	return c.node(node{kind: kNumber, num: ns, ptr: ptr}), nil
}
