package idp

import (
	"math/rand/v2"
	"testing"
)

func reviewDecode(t *testing.T, schema string, n, maxTok int) {
	g, err := Compile([]byte(schema), qwen3(t))
	if err != nil {
		t.Logf("compile %s: %v", schema, err)
		return
	}
	bad := 0
	for i := 0; i < n; i++ {
		rng := rand.New(rand.NewPCG(uint64(i), 7))
		st := g.Start()
		if err := st.SetMaxTokens(maxTok); err != nil {
			t.Logf("budget: %v", err)
			return
		}
		mask := make([]uint64, g.MaskWords())
		var text []byte
		for k := 0; k < maxTok && !st.Closed(); k++ {
			st.Mask(mask)
			id := pickAllowed(mask, rng)
			if id < 0 {
				t.Errorf("empty mask after %q", text)
				break
			}
			if id == g.vocab.eos {
				break
			}
			if err := st.Advance(id); err != nil {
				t.Errorf("advance: %v", err)
				break
			}
			text = append(text, g.vocab.bytes[id]...)
		}
		if !st.Done() {
			t.Errorf("not done: %q", text)
			bad++
			continue
		}
		if err := g.Validate(text); err != nil {
			if bad < 3 {
				t.Errorf("schema %s: %q invalid: %v", schema, text, err)
			}
			bad++
		}
	}
	t.Logf("%s: %d/%d invalid", schema, bad, n)
}

func TestReviewLeftRec(t *testing.T) {
	reviewDecode(t, `{"anyOf":[{"$ref":"#"},{"type":"null"}]}`, 3, 20)
}

func TestReviewDraft7Format(t *testing.T) {
	reviewDecode(t, `{"$schema":"http://json-schema.org/draft-07/schema#","type":"object","properties":{"site":{"type":"string","format":"uri"}},"required":["site"]}`, 20, 40)
	reviewDecode(t, `{"$schema":"http://json-schema.org/draft-07/schema#","type":"string","format":"hostname"}`, 20, 40)
}

func TestReviewOneOfNumEq(t *testing.T) {
	reviewDecode(t, `{"oneOf":[{"const":1},{"const":1.0}]}`, 5, 10)
	reviewDecode(t, `{"oneOf":[{"const":1e20},{"type":"integer"}]}`, 5, 10)
}

func reviewAccepts(t *testing.T, schema, text string) {
	g, err := Compile([]byte(schema), qwen3(t))
	if err != nil {
		t.Logf("compile %s: %v", schema, err)
		return
	}
	acc := g.accepts(g.root, []byte(text))
	t.Logf("schema %s\n  text %s: grammar accepts=%v, validator err=%v", schema, text, acc, g.Validate([]byte(text)))
}

func TestReviewID(t *testing.T) {
	s := `{"$defs":{"b":{"type":"integer"},"a":{"$id":"http://example.com/a","$defs":{"b":{"type":"string"}},"$ref":"#/$defs/b"}},"$ref":"#/$defs/a"}`
	reviewAccepts(t, s, `7`)
	reviewAccepts(t, s, `"x"`)
	reviewDecode(t, s, 5, 10)
}

func TestReviewEmail7(t *testing.T) {
	s := `{"$schema":"http://json-schema.org/draft-07/schema#","type":"string","format":"email"}`
	reviewAccepts(t, s, `"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@example.com"`)
	reviewAccepts(t, s, `"a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com"`)
	reviewAccepts(t, `{"type":"string","format":"email"}`, `"a@bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.com"`)
}

func TestReviewDraft4(t *testing.T) {
	s := `{"$schema":"http://json-schema.org/draft-04/schema#","type":"integer","minimum":0,"maximum":3,"exclusiveMaximum":true}`
	reviewAccepts(t, s, `3`)
	reviewAccepts(t, s, `2`)
	reviewAccepts(t, `{"type":"integer","minimum":0,"maximum":3,"exclusiveMaximum":true}`, `2`)
}

func TestReviewStress(t *testing.T) {
	schemas := []string{
		`{"oneOf":[{"const":1e20},{"type":"integer"}]}`,
		`{"type":"array","items":{"enum":[1,12,123,"a"]},"minItems":2,"maxItems":4}`,
		`{"anyOf":[{"type":"object","properties":{"a":{"type":"string","maxLength":3},"b":{"type":"integer"}},"required":["a"]},{"type":"object","properties":{"a":{"type":"integer","minimum":5}},"required":["a"]}]}`,
		`{"type":"object","properties":{"x":{},"y":{"type":"array","items":{}}},"required":["x","y"]}`,
		`{"anyOf":[{"anyOf":[{"const":"ab"},{"type":"string","pattern":"^a[0-9]+$"}]},{"type":"string","minLength":3,"maxLength":4}]}`,
		`{"type":["integer","null","string"],"minimum":-5,"maximum":5,"maxLength":2}`,
		`{"type":"number","exclusiveMinimum":-0.5,"exclusiveMaximum":0.5}`,
		`{"type":"object","properties":{"d":{"type":"string","format":"date-time"},"n":{"type":"number","minimum":0.000001,"maximum":0.000002}},"required":["d","n"]}`,
		`{"type":"array","items":{"type":"string","minLength":5},"minItems":3}`,
		`{"type":"object","properties":{"a":{"enum":[{"k":[1,2]},[null],"x"]},"b":{"const":10}},"required":["a","b"]}`,
	}
	for _, s := range schemas {
		g, err := Compile([]byte(s), qwen3(t))
		if err != nil {
			t.Logf("compile %s: %v", s, err)
			continue
		}
		for _, b := range []int{g.MinTokens(), g.MinTokens() + 1, g.MinTokens() + 3, 40} {
			reviewDecode(t, s, 30, b)
		}
	}
	reviewAccepts(t, schemas[0], `1e20`)
}

func TestReviewJSONObject(t *testing.T) {
	s := `{"type":"object"}`
	reviewAccepts(t, s, `{"a":1}`)
	reviewAccepts(t, s, `{}`)
	g := mustCompile(t, s)
	st := g.Start()
	st.SetMaxTokens(512)
	mask := make([]uint64, g.MaskWords())
	st.Mask(mask)
	t.Logf("tokens allowed at start: %d", popcount(mask))
	for i := 0; i < g.vocab.V; i++ {
		if mask[i>>6]&(1<<(i&63)) != 0 {
			t.Logf("  %d %q", i, g.vocab.bytes[i])
		}
	}
}

func TestReviewDepth(t *testing.T) {
	s := `{"anyOf":[{"type":"array","items":{"$ref":"#"},"minItems":1},{"type":"null"}]}`
	g := mustCompile(t, s)
	st := g.Start()
	if err := st.SetMaxTokens(512); err != nil {
		t.Fatal(err)
	}
	open := int(g.vocab.byteTok['['])
	mask := make([]uint64, g.MaskWords())
	n := 0
	for ; n < 300; n++ {
		st.Mask(mask)
		if mask[open>>6]&(1<<(open&63)) == 0 {
			break
		}
		if err := st.Advance(open); err != nil {
			t.Fatal(err)
		}
	}
	st.Mask(mask)
	t.Logf("after %d '[' tokens: %d tokens allowed, Done=%v, MinTokens=%d, Remaining=%d", n, popcount(mask), st.Done(), st.MinTokens(), st.Remaining())
}
