package idp

import (
	"math/rand/v2"
	"testing"
)

// FuzzCompile: any bytes either compile or are refused with an error;
// nothing panics. A schema that compiles is walked a few random steps of
// the token constraint (every token the mask allows is accepted), and a
// value it completes validates against the schema.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		`{"type":"object","properties":{"a":{"type":"string","maxLength":4},"n":{"type":"integer","minimum":-3,"maximum":9}},"required":["a","n"],"additionalProperties":false}`,
		`{"type":"array","items":{"enum":["x","y",1,null]},"minItems":1,"maxItems":3}`,
		`{"anyOf":[{"type":"string","pattern":"^[a-z]{2}$"},{"type":"number","multipleOf":0.5}]}`,
		`{"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}}}},"$ref":"#/$defs/n"}`,
		`{"type":"string","format":"date"}`, `{"const":{"a":[1,2]}}`, `{"oneOf":[{"type":"null"},{"type":"boolean"}]}`,
		`{"type":"object","patternProperties":{"^a":{}}}`, `{"type":"frob"}`, `{"$ref":"#/nowhere"}`, `{"pattern":"("}`,
		`true`, `{}`, `[]`, `{"minLength":5,"maxLength":2,"type":"string"}`, `{"type":"integer","minimum":1e400}`,
		`{"type":"string","pattern":"^(a|b)*c{2,}$"}`, `{"enum":[]}`, `{"type":["string","null"]}`,
	} {
		f.Add([]byte(seed), uint64(1))
	}
	tok := qwen3(f)
	f.Fuzz(func(t *testing.T, schema []byte, seed uint64) {
		g, err := Compile(schema, tok)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		st := g.Start()
		if st.SetMaxTokens(24) != nil {
			return // the shortest value needs more
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		mask := make([]uint64, g.MaskWords())
		var text []byte
		for i := 0; i < 24 && !st.Closed(); i++ {
			st.Mask(mask)
			id := pickAllowed(mask, rng)
			if id < 0 || id == g.vocab.eos {
				break
			}
			if err := st.Advance(id); err != nil {
				t.Fatalf("Advance(%d) refused a token the mask allowed: %v", id, err)
			}
			text = append(text, g.vocab.bytes[id]...)
		}
		// Every completed value validates — oneOf included: overlapping
		// branches (this fuzzer once found {"oneOf":[{},{}]}) no longer compile.
		if st.Done() {
			if err := g.Validate(text); err != nil {
				t.Fatalf("schema %s: completed value %q does not validate: %v", schema, text, err)
			}
		}
	})
}
