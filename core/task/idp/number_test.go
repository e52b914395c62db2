package idp

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
)

// TestNumberBounds: random decoding of bounded numbers always validates,
// and small integer ranges are covered end to end.
func TestNumberBounds(t *testing.T) {
	cases := []struct {
		schema string
		all    []int // when set: every one of these values must appear
	}{
		{`{"type":"integer","minimum":10,"maximum":20}`, []int{10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}},
		{`{"type":"integer","exclusiveMinimum":-3,"exclusiveMaximum":3}`, []int{-2, -1, 0, 1, 2}},
		{`{"type":"integer","minimum":-1.5,"maximum":1.5}`, []int{-1, 0, 1}},
		{`{"$schema":"http://json-schema.org/draft-04/schema#","type":"integer","minimum":0,"exclusiveMinimum":true,"maximum":3}`, []int{1, 2, 3}},
		{`{"type":"number","minimum":0.5,"maximum":0.75}`, nil},
		{`{"type":"number","exclusiveMinimum":0,"maximum":0.000001}`, nil},
		{`{"type":"number","minimum":-0.001,"maximum":0}`, nil},
		{`{"type":"integer","maximum":-5}`, nil},
		{`{"type":"number","minimum":100000000000}`, nil},
		{`{"type":"number","minimum":-7.25,"exclusiveMaximum":-7}`, nil},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, c := range cases {
		g := mustCompile(t, c.schema)
		seen := map[int]bool{}
		for i := 0; i < 150; i++ {
			text, _ := randomDecode(t, g, rng, 40, false)
			if err := g.Validate([]byte(text)); err != nil {
				t.Fatalf("%s: %q: %v", c.schema, text, err)
			}
			if n, err := strconv.Atoi(text); err == nil {
				seen[n] = true
			}
			if text == "-0" || (len(text) > 1 && text[0] == '0' && text[1] != '.') {
				t.Fatalf("%s: non-canonical %q", c.schema, text)
			}
		}
		for _, v := range c.all {
			if !seen[v] {
				var got []int
				for k := range seen {
					got = append(got, k)
				}
				slices.Sort(got)
				t.Errorf("%s: %d never generated (got %v)", c.schema, v, got)
			}
		}
	}
}
