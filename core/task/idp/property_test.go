package idp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"distill/core/infer"
	"distill/core/tensor"
)

// schemaGen writes random schemas from the supported constructs. oneOf
// branches get distinct types (overlapping oneOf branches do not compile).
type schemaGen struct {
	rng  *rand.Rand
	defs map[string]any
}

var (
	genNames   = []string{"id", "name", "a\"b", "ünï", "with space", "x/y~z", "total", "items", "k", "note"}
	genStrings = []any{"EUR", "a\"q", "line\nbreak", "ü€😀", "", "tab\t", "x"}
	genNumbers = []any{0, 1, -3, 12, 2.5, -0.25, 1e3, 100}
	genPattern = []string{`^[A-Z]{2,4}-[0-9]{1,5}$`, `^[a-z]+$`, `[0-9]`, `^(foo|bar|baz)$`, `^\d{3}-\d{4}$`, `^[^\s"]+$`, `^a.c?$`}
	genFormats = []string{"date", "date-time", "time", "uuid", "email", "ipv4", "hostname"}
)

func (s *schemaGen) pick(xs ...string) string { return xs[s.rng.IntN(len(xs))] }

func (s *schemaGen) schema(depth int) map[string]any {
	r := s.rng
	kinds := []string{"string", "string", "integer", "number", "boolean", "null", "enum", "const", "union"}
	if depth < 3 {
		kinds = append(kinds, "object", "object", "array", "array", "anyOf", "oneOf", "ref", "any")
	}
	k := kinds[r.IntN(len(kinds))]
	if depth == 0 {
		k = "object"
	}
	switch k {
	case "string":
		m := map[string]any{"type": "string"}
		switch r.IntN(4) {
		case 0:
			m["format"] = genFormats[r.IntN(len(genFormats))]
		case 1:
			m["pattern"] = genPattern[r.IntN(len(genPattern))]
			if r.IntN(2) == 0 { // every pattern above has strings of 3..8 characters
				m["minLength"], m["maxLength"] = r.IntN(4), 8+r.IntN(12)
			}
		default:
			lo := r.IntN(4)
			if r.IntN(2) == 0 {
				m["minLength"] = lo
			}
			if r.IntN(2) == 0 {
				m["maxLength"] = lo + r.IntN(12)
			}
		}
		return m
	case "integer", "number":
		m := map[string]any{"type": k}
		lo := float64(r.IntN(2000) - 1000)
		hi := lo + float64(r.IntN(500))
		if k == "number" {
			lo, hi = lo/8, hi/8+0.5
		}
		switch r.IntN(5) {
		case 0:
			m["minimum"] = lo
		case 1:
			m["maximum"] = hi
		case 2:
			m["minimum"], m["maximum"] = lo, hi
		case 3:
			m["exclusiveMinimum"], m["exclusiveMaximum"] = lo, hi+2
		}
		return m
	case "boolean", "null":
		return map[string]any{"type": k}
	case "enum", "const":
		var vals []any
		for n := 1 + r.IntN(4); len(vals) < n; {
			switch r.IntN(4) {
			case 0, 1:
				vals = append(vals, genStrings[r.IntN(len(genStrings))])
			case 2:
				vals = append(vals, genNumbers[r.IntN(len(genNumbers))])
			default:
				vals = append(vals, []any{true, nil, map[string]any{"x": []any{1, "y"}}}[r.IntN(3)])
			}
			vals = slices.CompactFunc(vals, func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) })
		}
		if k == "const" {
			return map[string]any{"const": vals[0]}
		}
		return map[string]any{"enum": vals}
	case "union":
		ts := []any{"string", "null"}
		if r.IntN(2) == 0 {
			ts = []any{"integer", "boolean", "null"}
		}
		return map[string]any{"type": ts, "maxLength": 6}
	case "object":
		props := map[string]any{}
		var req []string
		n := 1 + r.IntN(4)
		if depth == 0 {
			n = 3 + r.IntN(4)
		}
		for len(props) < n {
			name := genNames[r.IntN(len(genNames))]
			props[name] = s.schema(depth + 1)
			if r.IntN(2) == 0 && !slices.Contains(req, name) {
				req = append(req, name)
			}
		}
		m := map[string]any{"type": "object", "properties": props}
		if len(req) > 0 {
			m["required"] = req
		}
		if r.IntN(2) == 0 {
			m["additionalProperties"] = false
		}
		return m
	case "array":
		m := map[string]any{"type": "array", "items": s.schema(depth + 1)}
		lo := r.IntN(3)
		if lo > 0 {
			m["minItems"] = lo
		}
		if r.IntN(2) == 0 {
			m["maxItems"] = lo + r.IntN(4)
		}
		return m
	case "anyOf":
		return map[string]any{"anyOf": []any{s.schema(depth + 1), s.schema(depth + 1)}}
	case "oneOf":
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string", "maxLength": 8},
			map[string]any{"type": "array", "items": s.schema(depth + 1), "maxItems": 2},
			map[string]any{"type": "null"},
		}}
	case "ref":
		if r.IntN(2) == 0 {
			// A recursive tree.
			s.defs["node"] = map[string]any{"type": "object", "properties": map[string]any{
				"v":    map[string]any{"type": "integer"},
				"kids": map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/node"}, "maxItems": 2},
			}, "required": []string{"v"}}
			return map[string]any{"$ref": "#/$defs/node"}
		}
		name := fmt.Sprintf("d%d", len(s.defs))
		s.defs[name] = nil // reserve the name before nested schemas add theirs
		s.defs[name] = s.schema(depth + 1)
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	return map[string]any{}
}

func randomSchema(seed uint64) string {
	s := &schemaGen{rng: rand.New(rand.NewPCG(seed, 77)), defs: map[string]any{}}
	top := s.schema(0)
	if len(s.defs) > 0 {
		top["$defs"] = s.defs
	}
	b, err := json.Marshal(top)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// checkOutput: text is compact JSON valid against the schema.
func checkOutput(t *testing.T, g *Grammar, schema, text string) {
	t.Helper()
	if !json.Valid([]byte(text)) {
		t.Fatalf("schema %s: output is not JSON: %q", schema, text)
	}
	var c bytes.Buffer
	_ = json.Compact(&c, []byte(text))
	if c.String() != text {
		t.Errorf("schema %s: output is not compact: %q", schema, text)
	}
	if err := g.Validate([]byte(text)); err != nil {
		t.Fatalf("schema %s: output %q is invalid: %v", schema, text, err)
	}
}

// TestPropertyRandomSchemas: random schemas × random decoding (uniform over
// the allowed tokens, with generous and tight budgets) always give compact
// JSON that validates; masks agree with Advance at sampled states.
func TestPropertyRandomSchemas(t *testing.T) {
	tok := qwen3(t)
	const n = 200
	for seed := uint64(0); seed < n; seed++ {
		schema := randomSchema(seed)
		g, err := Compile([]byte(schema), tok)
		if err != nil {
			t.Fatalf("seed %d: %s: %v", seed, schema, err)
		}
		rng := rand.New(rand.NewPCG(seed, 1))
		for run := 0; run < 4; run++ {
			budget := 200
			if run%2 == 1 {
				budget = g.MinTokens() + rng.IntN(8)
			}
			keep := seed%10 == 0 && run < 2
			text, states := randomDecode(t, g, rng, budget, keep)
			checkOutput(t, g, schema, text)
			if keep {
				s := states[rng.IntN(len(states))]
				checkMask(t, s, text)
			}
		}
	}
}

// TestEnumAlwaysOneOfValues: a top-level enum yields exactly one of its
// values, under random decoding and from the random-weight model.
func TestEnumAlwaysOneOfValues(t *testing.T) {
	m, tok := tinyModel(t)
	schema := `{"enum":["EUR","USD","GBP",12,1,null,{"a":[true]}]}`
	g, err := Compile([]byte(schema), tok)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`"EUR"`, `"USD"`, `"GBP"`, `12`, `1`, `null`, `{"a":[true]}`}
	rng := rand.New(rand.NewPCG(5, 5))
	for i := 0; i < 50; i++ {
		text, _ := randomDecode(t, g, rng, 20, false)
		if !slices.Contains(want, text) {
			t.Fatalf("random decode gave %q", text)
		}
	}
	prompt := tok.Encode("Currency:", false)
	for seed := uint64(0); seed < 4; seed++ {
		res, err := Generate(context.Background(), tensor.CPU{}, m, tok, g, prompt, 10, infer.Sampling{Temperature: 1, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(want, res.Text) || !res.Valid {
			t.Fatalf("seed %d: %q (valid %v, %s)", seed, res.Text, res.Valid, res.ValidationError)
		}
	}
}

// TestPropertyRandomModel: random schemas × the random-weight model,
// sampled at temperature 1 with several seeds: every output parses and
// validates, also when a small budget forces the value closed.
func TestPropertyRandomModel(t *testing.T) {
	m, tok := tinyModel(t)
	prompt := tok.Encode("Return JSON.\n", false)
	for seed := uint64(200); seed < 210; seed++ {
		schema := randomSchema(seed)
		g, err := Compile([]byte(schema), tok)
		if err != nil {
			t.Fatal(err)
		}
		for s := uint64(0); s < 2; s++ {
			budget := max(48, g.MinTokens()+10)
			if s == 1 {
				budget = g.MinTokens() + 2
			}
			res, err := Generate(context.Background(), tensor.CPU{}, m, tok, g, prompt, budget, infer.Sampling{Temperature: 1, Seed: seed*10 + s})
			if err != nil {
				t.Fatalf("%s: %v", schema, err)
			}
			if !res.Valid || res.CompletionTokens > budget {
				t.Fatalf("schema %s, budget %d: %q (%d tokens, %s): %s", schema, budget, res.Text, res.CompletionTokens, res.StopReason, res.ValidationError)
			}
			checkOutput(t, g, schema, res.Text)
		}
	}
}
