package idp

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"distill/core/jsonv"
)

// Regression tests for schemas the decoder once accepted but could not
// honour: each either compiles to a grammar whose every output validates,
// or is refused with a SchemaError naming the keyword.

// decodeValid runs n random decodes of g under a budget and checks that
// each completes and validates; it returns the texts.
func decodeValid(t *testing.T, g *Grammar, n, budget int) []string {
	t.Helper()
	var out []string
	for i := range n {
		text, _ := randomDecode(t, g, rand.New(rand.NewPCG(uint64(i), 11)), budget, false)
		if err := g.Validate([]byte(text)); err != nil {
			t.Fatalf("%q is invalid: %v", text, err)
		}
		out = append(out, text)
	}
	return out
}

// finish completes st with random allowed tokens, under a budget a little
// above the shortest completion, and returns the text added; it fails the
// test when the mask goes empty first.
func finish(t *testing.T, g *Grammar, st *State, rng *rand.Rand) []byte {
	t.Helper()
	if err := st.SetMaxTokens(st.MinTokens() + 40); err != nil {
		t.Fatal(err)
	}
	mask := make([]uint64, g.MaskWords())
	var text []byte
	for k := 0; k < 5000 && !st.Closed(); k++ {
		st.Mask(mask)
		id := pickAllowed(mask, rng)
		if id < 0 {
			t.Fatalf("no token allowed before the value is complete, after %q", text)
		}
		if id == g.vocab.eos {
			return text
		}
		if err := st.Advance(id); err != nil {
			t.Fatal(err)
		}
		text = append(text, g.vocab.bytes[id]...)
	}
	if !st.Done() {
		t.Fatalf("not done after %q", text)
	}
	return text
}

func wantSchemaError(t *testing.T, schema, ptr string, msg ...string) {
	t.Helper()
	_, err := Compile([]byte(schema), qwen3(t))
	var se *SchemaError
	if !errors.As(err, &se) {
		t.Errorf("%s: got %v, want a SchemaError at %s", schema, err, ptr)
		return
	}
	if se.Pointer != ptr {
		t.Errorf("%s: error at %q, want %q: %v", schema, se.Pointer, ptr, err)
	}
	for _, m := range msg {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("%s: error %q does not mention %q", schema, err, m)
		}
	}
}

// A choice that reaches itself through $ref before writing anything (left
// recursion) once made stepLast recurse until the stack overflowed, a fatal
// error no recover catches. The self-reaching branch adds no value (the
// validator fails it as a reference cycle), so it is dropped, at any
// nesting depth; with nothing left the schema is refused.
func TestLeftRecursiveChoice(t *testing.T) {
	nested := `{"$ref":"#"}`
	for range 20 { // deeper than any fixed flattening limit
		nested = `{"anyOf":[` + nested + `,{"type":"boolean"}]}`
	}
	for _, s := range []string{
		`{"anyOf":[{"$ref":"#"},{"type":"null"}]}`,
		`{"anyOf":[{"type":"null"},{"$ref":"#"}]}`,
		`{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"},{"type":"string","maxLength":3}]},"b":{"anyOf":[{"$ref":"#/$defs/a"},{"type":"null"}]}},"$ref":"#/$defs/a"}`,
		`{"anyOf":[` + nested + `,{"type":"null"}]}`,
		`{"type":"array","items":{"anyOf":[{"$ref":"#/items"},{"type":"integer"}]},"maxItems":3}`,
	} {
		g := mustCompile(t, s)
		decodeValid(t, g, 5, 30)
		if !g.accepts(g.root, []byte("null")) && !g.accepts(g.root, []byte("[1]")) && !g.accepts(g.root, []byte(`"ab"`)) {
			t.Errorf("%s: accepts none of the expected values", s)
		}
	}
	wantSchemaError(t, `{"anyOf":[{"$ref":"#"},{"$ref":"#"}]}`, "", "left recursion")
	wantSchemaError(t, `{"$defs":{"a":{"anyOf":[{"$ref":"#/$defs/b"},false]},"b":{"anyOf":[{"$ref":"#/$defs/a"},false]}},"properties":{"x":{"$ref":"#/$defs/a"}}}`, "/$defs/b", "left recursion")
}

// {"type":"object"} (what OpenAI's json_object mode compiles to) admits any
// object, not only {}; additionalProperties' schema, when given, governs
// the values.
func TestOpenObject(t *testing.T) {
	g := mustCompile(t, `{"type":"object"}`)
	for _, s := range []string{`{}`, `{"a":1}`, `{"a":{"b":[1,"x",null]},"c":true}`} {
		if !g.accepts(g.root, []byte(s)) {
			t.Errorf(`{"type":"object"} does not accept %s`, s)
		}
	}
	nonEmpty := 0
	for _, text := range decodeValid(t, g, 30, 60) {
		if text != "{}" {
			nonEmpty++
		}
	}
	if nonEmpty == 0 {
		t.Error(`{"type":"object"}: every random decode was {}`)
	}

	g = mustCompile(t, `{"type":"object","properties":{},"additionalProperties":{"type":"integer","minimum":0}}`)
	for s, want := range map[string]bool{`{}`: true, `{"a":1,"b":22}`: true, `{"a":"x"}`: false, `{"a":-1}`: false} {
		if g.accepts(g.root, []byte(s)) != want {
			t.Errorf("additionalProperties integer: accepts(%s) = %v, want %v", s, !want, want)
		}
	}
	decodeValid(t, g, 20, 40)

	// Nothing may be added: only {}.
	for _, s := range []string{
		`{"type":"object","additionalProperties":false}`,
		`{"type":"object","unevaluatedProperties":false}`,
		`{"type":"object","additionalProperties":{"anyOf":[false,false]}}`,
	} {
		g := mustCompile(t, s)
		if g.accepts(g.root, []byte(`{"a":1}`)) {
			t.Errorf("%s accepts {\"a\":1}", s)
		}
		for _, text := range decodeValid(t, g, 5, 20) {
			if text != "{}" {
				t.Errorf("%s: generated %s", s, text)
			}
		}
	}
	// Listed properties: still only those are generated.
	g = mustCompile(t, `{"type":"object","properties":{"a":{"type":"null"}}}`)
	if g.accepts(g.root, []byte(`{"b":1}`)) {
		t.Error("an object with properties generates unlisted ones")
	}
	wantSchemaError(t, `{"type":"object","maxProperties":2}`, "/maxProperties")
	wantSchemaError(t, `{"type":"object","propertyNames":{"maxLength":2}}`, "/propertyNames")
}

// The validator resolves a $ref against the nearest $id; the compiler
// resolves from the document root. A base URI below the root is refused.
func TestSubschemaIDRefused(t *testing.T) {
	wantSchemaError(t, `{"$defs":{"b":{"type":"integer"},"a":{"$id":"http://example.com/a","$defs":{"b":{"type":"string"}},"$ref":"#/$defs/b"}},"$ref":"#/$defs/a"}`,
		"/$defs/a/$id", "$id in a subschema")
	wantSchemaError(t, `{"$defs":{"a":{"$id":"http://example.com/a","$defs":{"b":{"type":"string"}}}},"$ref":"#/$defs/a/$defs/b"}`,
		"/$ref", "/$defs/a", "http://example.com/a")
	wantSchemaError(t, `{"properties":{"x":{"$id":"x.json","type":"string"}}}`, "/properties/x/$id")
	wantSchemaError(t, `{"$schema":"http://json-schema.org/draft-04/schema#","properties":{"x":{"id":"x.json","type":"string"}}}`, "/properties/x/id")
	for _, s := range []string{
		`{"$id":"http://example.com/root.json","$defs":{"b":{"type":"string"}},"$ref":"#/$defs/b"}`,
		`{"type":"object","properties":{"$id":{"type":"string"},"id":{"type":"string"}},"required":["$id"]}`,
		`{"properties":{"x":{"id":"not a base URI after draft-04","type":"string"}}}`,
	} {
		decodeValid(t, mustCompile(t, s), 5, 30)
	}
}

// Before draft 2019-09 the validator asserts every format it knows; the
// grammar enforces only some. The others are refused under those drafts
// (and stay annotations after); the enforced ones validate, the email
// pattern within the validator's length limits.
func TestAssertedFormats(t *testing.T) {
	const d7 = `"$schema":"http://json-schema.org/draft-07/schema#",`
	const d4 = `"$schema":"http://json-schema.org/draft-04/schema#",`
	wantSchemaError(t, `{`+d7+`"type":"object","properties":{"site":{"type":"string","format":"uri"}},"required":["site"]}`, "/properties/site/format", `"uri"`)
	wantSchemaError(t, `{`+d7+`"type":"string","format":"hostname"}`, "/format", `"hostname"`)
	wantSchemaError(t, `{`+d4+`"type":["string","null"],"format":"ipv6"}`, "/format", `"ipv6"`)
	wantSchemaError(t, `{`+d7+`"definitions":{"u":{"format":"uri-reference"}},"items":{"$ref":"#/definitions/u"}}`, "/definitions/u/format", `"uri-reference"`)
	for _, s := range []string{
		`{"type":"string","format":"uri"}`,
		`{"$schema":"https://json-schema.org/draft/2019-09/schema","type":"string","format":"hostname"}`,
		`{` + d7 + `"type":"string","format":"x-custom"}`, // unknown to the validator too
		`{` + d7 + `"type":"integer","format":"uri"}`,     // format checks strings only
	} {
		decodeValid(t, mustCompile(t, s), 5, 30)
	}
	for name := range formatPatterns {
		g := mustCompile(t, `{`+d7+`"type":"string","format":"`+name+`"}`)
		decodeValid(t, g, 20, 80)
	}
	g := mustCompile(t, `{`+d7+`"type":"string","format":"email"}`)
	long := func(n int) string { return strings.Repeat("a", n) }
	for s, want := range map[string]bool{
		`"` + long(16) + strings.Repeat(`.`+long(15), 3) + `@example.com"`:            true, // 64 characters before @
		`"` + long(17) + strings.Repeat(`.`+long(15), 3) + `@example.com"`:            false,
		`"` + long(65) + `@example.com"`:                                              false,
		`"a@` + long(30) + `-` + long(30) + `.` + long(30) + `-` + long(30) + `.com"`: true,
		`"a@` + long(63) + `.com"`:                                                    false, // valid, but beyond this grammar's labels
		`"a@` + long(64) + `.com"`:                                                    false,
	} {
		if got := g.accepts(g.root, []byte(s)); got != want {
			t.Errorf("email: accepts(%s) = %v, want %v", s, got, want)
		}
		if want {
			if err := g.Validate([]byte(s)); err != nil {
				t.Errorf("email %s: %v", s, err)
			}
		}
	}
}

// oneOf branches are disjoint only if no value matches both, with numbers
// compared by value as the validator does: 1 equals 1.0, and 1e20 is an
// integer.
func TestOneOfNumbersByValue(t *testing.T) {
	for _, s := range []string{
		`{"oneOf":[{"const":1},{"const":1.0}]}`,
		`{"oneOf":[{"const":1e20},{"type":"integer"}]}`,
		`{"oneOf":[{"enum":[2.5e1]},{"type":"integer"}]}`,
		`{"oneOf":[{"const":{"a":[1]}},{"const":{"a":[10e-1]}}]}`,
		`{"oneOf":[{"const":0},{"const":-0.0}]}`,
	} {
		wantSchemaError(t, s, "/oneOf/1", "use anyOf")
	}
	for _, s := range []string{
		`{"oneOf":[{"const":1.5},{"type":"integer"}]}`,
		`{"oneOf":[{"const":1e2},{"const":10}]}`,
		`{"oneOf":[{"const":1.25e1},{"type":"integer"}]}`,
		`{"enum":[1.0,2],"const":1}`, // const is among the enum values
	} {
		decodeValid(t, mustCompile(t, s), 5, 10)
	}
	for text, want := range map[string]jsonTypes{
		"1e20": tInteger, "1.5e1": tInteger, "-0.0": tInteger, "100e-2": tInteger, "123456789012345678901234567890": tInteger,
		"1.25e1": tFraction, "1e-2": tFraction, "0.5": tFraction, "1e99999999999999999": tInteger | tFraction,
	} {
		if got := valueType(&jsonv.Value{Kind: jsonv.Number, Text: text}); got != want {
			t.Errorf("valueType(%s) = %b, want %b", text, got, want)
		}
	}
}

// Nesting is limited to maxDepth frames. The mask once allowed an opening
// bracket at the limit whose value could not be finished there, so it went
// empty before the value was complete (truncated JSON, reported "closed").
// Now a value, key or array is opened only where it can still be closed.
func TestDepthLimitNeverStrands(t *testing.T) {
	for _, c := range []struct{ schema, open string }{
		{`{"anyOf":[{"type":"array","items":{"$ref":"#"},"minItems":1},{"type":"null"}]}`, "["},
		// Each level's required "z" needs two more levels after "k".
		{`{"anyOf":[{"type":"null"},{"type":"object","properties":{"k":{"$ref":"#"},"z":{"type":"array","items":{"type":"array","items":{"type":"null"},"minItems":1},"minItems":1}},"required":["z"]}]}`, `{"k":`},
		{`{"anyOf":[{"type":"null"},{"type":"object","additionalProperties":{"$ref":"#/$defs/pair"}}],"$defs":{"pair":{"type":"array","items":{"$ref":"#"},"minItems":2}}}`, `{"":[`},
	} {
		g := mustCompile(t, c.schema)
		st := g.Start()
		opened := 0
		for ; opened < 2*maxDepth; opened++ {
			next := st.Clone()
			ok := true
			for _, b := range []byte(c.open) {
				if next.Advance(int(g.vocab.byteTok[b])) != nil {
					ok = false
					break
				}
			}
			if !ok {
				break
			}
			st = next
		}
		if opened < 10 || opened >= 2*maxDepth {
			t.Errorf("%s: opened %q %d times", c.schema, c.open, opened)
		}
		prefix := strings.Repeat(c.open, opened)
		for i := range 3 {
			text := prefix + string(finish(t, g, st.Clone(), rand.New(rand.NewPCG(uint64(i), 5))))
			if err := g.Validate([]byte(text)); err != nil {
				t.Errorf("%s: %s…: %v", c.schema, text[max(0, len(text)-60):], err)
			}
		}
	}
	// Required nesting beyond the limit: refused up front.
	deep := `{"type":"null"}`
	for range maxDepth {
		deep = `{"type":"array","items":` + deep + `,"minItems":1}`
	}
	wantSchemaError(t, deep, "", fmt.Sprintf("deeper than the %d levels", maxDepth))
}
