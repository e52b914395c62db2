package idp

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
)

// checkMask compares Mask with Advance for every token id at state s.
func checkMask(t *testing.T, s *State, prefix string) {
	t.Helper()
	g := s.g
	mask := make([]uint64, g.MaskWords())
	s.Clone().Mask(mask)
	bad := 0
	probe := s.Clone()
	for id := 0; id < g.vocab.V; id++ {
		want := probe.Advance(id) == nil
		if want { // restore
			probe.cur.copyFrom(&s.cur)
			probe.remaining, probe.ended = s.remaining, s.ended
		}
		got := mask[id>>6]&(1<<(id&63)) != 0
		if want != got && bad < 5 {
			bad++
			t.Errorf("after %q (budget %d): token %d %q: mask %v, Advance %v", prefix, s.remaining, id, g.vocab.bytes[id], got, want)
		}
	}
}

func TestMaskMatchesAdvance(t *testing.T) {
	schema, err := os.ReadFile("../../../examples/invoices/schema.json")
	if err != nil {
		t.Fatal(err)
	}
	schemas := []string{string(schema),
		`{"type":"object","properties":{"a":{"type":["string","null"],"minLength":3,"maxLength":5},"b":{"enum":[1,12,"x"]},"c":{}},"required":["a"]}`,
		`{"type":"array","items":{"anyOf":[{"type":"string","maxLength":5},{"type":"string","pattern":"^[a-z]+$"},{"type":"string","minLength":3},{"type":"string","format":"date-time","maxLength":25}]},"maxItems":3}`,
		`{"type":"object","properties":{"p":{"type":"string","pattern":"^[A-Z][a-z0-9 ]*$","minLength":2,"maxLength":12},"q":{"type":"string","pattern":"x"},"any":{}},"required":["p","q","any"]}`,
		`{"anyOf":[{"type":"object","properties":{"k":{"const":"a"},"v":{"type":"integer","minimum":-5,"maximum":17}},"required":["k","v"]},{"type":"object","properties":{"k":{"const":"b"},"w":{"type":"number","exclusiveMinimum":0.5,"maximum":2}},"required":["k","w"]}]}`,
	}
	for si, sch := range schemas {
		g := mustCompile(t, sch)
		rng := rand.New(rand.NewPCG(uint64(si), 9))
		for run := 0; run < 2; run++ {
			budget := []int{1000, g.MinTokens() + 6}[run]
			text, states := randomDecode(t, g, rng, budget, true)
			// Check a sample of the states along the way.
			for i, s := range states {
				if i%max(1, len(states)/5) == 0 || i == len(states)-1 {
					t.Run(fmt.Sprintf("s%d/r%d/%d", si, run, i), func(t *testing.T) { checkMask(t, s, text) })
				}
			}
		}
	}
}
