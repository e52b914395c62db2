package idp

import (
	"errors"
	"os"
	"strings"
	"testing"

	"distill/core/jsonv"
)

// TestCompileTable: each schema compiles, or fails with an error naming the
// keyword and its JSON pointer.
func TestCompileTable(t *testing.T) {
	invoice, err := os.ReadFile("../../../examples/invoices/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		schema string
		err    []string // substrings of the error; nil: compiles
	}{
		{string(invoice), nil},
		{`{"type":"string"}`, nil},
		{`{"type":["string","null"],"maxLength":3}`, nil},
		{`{"type":["integer","number"]}`, nil},
		{`{"enum":["a","b",1,null,{"x":[1]}]}`, nil},
		{`{"const":5}`, nil},
		{`{"type":"string","enum":["ok","too long"],"maxLength":3}`, nil},
		{`{"type":"integer","minimum":1,"maximum":10}`, nil},
		{`{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}`, nil},
		{`{"$schema":"http://json-schema.org/draft-04/schema#","type":"number","minimum":0,"exclusiveMinimum":true}`, nil},
		{`{"type":"boolean"}`, nil},
		{`{"type":"null"}`, nil},
		{`{"type":"array","items":{"type":"boolean"},"minItems":1,"maxItems":3,"uniqueItems":false}`, nil},
		{`{"type":"array"}`, nil},
		{`{"$defs":{"x":{"type":"string"}},"$ref":"#/$defs/x"}`, nil},
		{`{"definitions":{"x":{"type":"null"}},"properties":{"a":{"$ref":"#/definitions/x","description":"d"}}}`, nil},
		{`{"anyOf":[{"type":"string"},{"type":"integer"}]}`, nil},
		{`{"oneOf":[{"type":"string"},{"type":"null"}],"title":"t"}`, nil},
		{`{"allOf":[{"type":"string"}]}`, nil},
		{`{"type":"string","format":"date"}`, nil},
		{`{"type":"string","format":"date-time"}`, nil},
		{`{"type":"string","format":"uuid","maxLength":36}`, nil},
		{`{"type":"string","format":"uri"}`, nil}, // unknown formats are annotations
		{`{"type":"string","pattern":"^[A-Z]{3}-[0-9]+$"}`, nil},
		{`{"type":"string","pattern":"(foo|bar)\\d?","minLength":2,"maxLength":9}`, nil},
		{`{}`, nil},
		{`true`, nil},
		{`{"type":"object","additionalProperties":true}`, nil},
		{`{"type":"object","properties":{"a":{"type":"integer"}},"unevaluatedProperties":false}`, nil},
		{`{"$defs":{"n":{"type":"object","properties":{"v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/n"},"maxItems":2}},"required":["v"]}},"$ref":"#/$defs/n"}`, nil},
		{`{"type":"object","properties":{"a\"b":{"type":"string"},"ü/~":{"const":"x"}},"required":["a\"b","ü/~"]}`, nil},
		{`{"type":"object","properties":{"x":false,"y":{"type":"null"}}}`, nil},

		{`{"type":"object","patternProperties":{"^a":{}}}`, []string{"/patternProperties", `"patternProperties"`}},
		{`{"properties":{"a":{"if":{"type":"string"},"then":{}}}}`, []string{"/properties/a/if", `"if"`}},
		{`{"not":{"type":"string"}}`, []string{"/not", `"not"`}},
		{`{"type":"object","dependentSchemas":{"a":{}}}`, []string{"/dependentSchemas"}},
		{`{"type":"array","uniqueItems":true}`, []string{"/uniqueItems"}},
		{`{"type":"integer","multipleOf":5}`, []string{"/multipleOf"}},
		{`{"type":"array","prefixItems":[{"type":"string"}]}`, []string{"/prefixItems"}},
		{`{"type":"object","minProperties":1}`, []string{"/minProperties"}},
		{`{"type":"array","contains":{"type":"string"}}`, []string{"/contains"}},
		{`{"type":"object","propertyNames":{"maxLength":3}}`, []string{"/propertyNames"}},
		{`{"$defs":{"x":{"type":"object","patternProperties":{}}},"properties":{"a":{"$ref":"#/$defs/x"}}}`, []string{"/$defs/x/patternProperties"}},
		{`{"type":"object","unevaluatedProperties":{"type":"string"}}`, []string{"/unevaluatedProperties"}},
		{`{"type":"string","pattern":"^(?=a)b$"}`, []string{"/pattern", "lookaround"}},
		{`{"type":"string","pattern":"(a)\\1"}`, []string{"/pattern", `\1`}},
		{`{"type":"string","pattern":"a^b"}`, []string{"/pattern", "anchor"}},
		{`{"type":"string","pattern":"^[0-9]{4}$","maxLength":3}`, []string{"/pattern", "no string"}},
		{`{"$ref":"http://example.com/s.json"}`, []string{"/$ref", "local"}},
		{`{"$ref":"#/$defs/nope"}`, []string{"/$ref", "does not resolve"}},
		{`{"$ref":"#"}`, []string{"$ref cycle"}},
		{`{"type":"string","minLength":5,"maxLength":2}`, []string{"/maxLength"}},
		{`{"type":"object","required":["a"]}`, []string{"/required", `"a"`}},
		{`{"type":"integer","minimum":5,"maximum":4}`, []string{"integer", "bounds"}},
		{`{"type":"integer","exclusiveMinimum":1,"exclusiveMaximum":2}`, []string{"integer", "bounds"}},
		{`{"type":"integer","enum":["a"]}`, []string{"/enum", "no value"}},
		{`{"const":null,"type":"string"}`, []string{"/const", "no value"}},
		{`false`, []string{"no finite value"}},
		{`{"type":"object","properties":{"a":{"$ref":"#"}},"required":["a"]}`, []string{"no finite value"}},
		{`{"anyOf":[{"type":"string"}],"maxLength":3}`, []string{"/anyOf", "alongside"}},
		{`{"allOf":[{"type":"string"},{"maxLength":3}]}`, []string{"/allOf"}},
		{`{"type":"array","items":[{"type":"string"}]}`, []string{"/items", "tuple"}},
		{`{"type":"strin"}`, []string{"type"}},
		{`{"type":`, []string{"not valid JSON"}},
	}
	tok := qwen3(t)
	for _, c := range cases {
		_, err := Compile([]byte(c.schema), tok)
		switch {
		case c.err == nil && err != nil:
			t.Errorf("%s: %v", c.schema, err)
		case c.err != nil && err == nil:
			t.Errorf("%s: compiled, want an error mentioning %q", c.schema, c.err)
		case c.err != nil:
			for _, s := range c.err {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%s: error %q does not mention %q", c.schema, err, s)
				}
			}
		}
	}
	_, err = Compile([]byte(`{"not":{}}`), tok)
	if !errors.Is(err, ErrSchema) {
		t.Errorf("errors.Is(%v, ErrSchema) = false", err)
	}
	var se *SchemaError
	if !errors.As(err, &se) || se.Pointer != "/not" {
		t.Errorf("SchemaError pointer: %+v", se)
	}
}

// A key given twice in one object is refused: the validator would take the
// last ("integer") and the grammar the first ("string"), so generated
// values would fail validation. Syntax errors say at which column.
func TestCompileRefusesDuplicateKeys(t *testing.T) {
	tok := qwen3(t)
	for _, c := range []struct{ schema, want string }{
		{`{"type":"string","type":"integer"}`, `idp: schema: duplicate key "type"`},
		{`{"type":"object","properties":{"a":{"const":1},"a":{"const":2}}}`, `idp: schema: duplicate key "a"`},
		{`{"type":"object",}`, `idp: schema: not valid JSON at column 18: invalid character '}' looking for beginning of object key string`},
	} {
		_, err := Compile([]byte(c.schema), tok)
		if err == nil || err.Error() != c.want {
			t.Errorf("%s: error %v, want %s", c.schema, err, c.want)
		}
	}
	var de *jsonv.DuplicateKeyError
	if _, err := Compile([]byte(`{"a":{},"a":{}}`), tok); !errors.As(err, &de) || de.Key != "a" {
		t.Errorf("errors.As(%v, *jsonv.DuplicateKeyError) = false", err)
	}
}

// oneOf compiles only when no value can match two branches, so every value
// the decoder writes matches exactly one; overlapping branches are refused
// with the pointer of the later one.
func TestOneOfMustBeDisjoint(t *testing.T) {
	tok := qwen3(t)
	ok := []string{
		`{"oneOf":[{"type":"string"},{"type":"null"}]}`,
		`{"oneOf":[{"enum":["a","b"]},{"enum":["c",1]}]}`,
		`{"oneOf":[{"type":"integer"},{"type":"string"},{"type":"array","items":{"type":"integer"}}]}`,
		`{"oneOf":[{"type":"object","properties":{"kind":{"const":"card"},"last4":{"type":"string"}},"required":["kind","last4"]},
		           {"type":"object","properties":{"kind":{"const":"iban"},"iban":{"type":"string"}},"required":["kind","iban"]}]}`,
		`{"$defs":{"s":{"type":"string"}},"oneOf":[{"$ref":"#/$defs/s"},{"type":"boolean"}]}`,
	}
	for _, s := range ok {
		if _, err := Compile([]byte(s), tok); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	refused := map[string]string{
		`{"oneOf":[{},{}]}`: "/oneOf/1",
		`{"oneOf":[{"type":"string"},{"type":"string","maxLength":3}]}`:                  "/oneOf/1",
		`{"oneOf":[{"type":"integer"},{"type":"number"}]}`:                               "/oneOf/1",
		`{"oneOf":[{"enum":["a","b"]},{"type":"null"},{"enum":["b"]}]}`:                  "/oneOf/2",
		`{"oneOf":[{"type":"object","properties":{"k":{"const":1}}},{"type":"object"}]}`: "/oneOf/1",
	}
	for s, ptr := range refused {
		_, err := Compile([]byte(s), tok)
		if err == nil || !strings.Contains(err.Error(), ptr) || !strings.Contains(err.Error(), "use anyOf") {
			t.Errorf("%s: want a refusal at %s, got %v", s, ptr, err)
		}
	}
}
