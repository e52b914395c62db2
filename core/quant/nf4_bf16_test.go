//go:build cgo

package quant

import (
	"math"
	"math/rand/v2"
	"testing"

	"distill/core/tensor"
)

// TestNF4TileBF16Exact: the bf16 tiles of the bf16 products are bit for bit
// the f32 tiles (weights rounded to bf16) narrowed, at every kernel level,
// for whole matrices and random sub-tiles (K not a multiple of the block,
// odd column bounds), and nothing is written past the tile.
func TestNF4TileBF16Exact(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	forEachLevel(t, func(t *testing.T) {
		for _, s := range [][2]int{{5, 7}, {37, 200}, {130, 33}, {9, 128}, {64, 64}, {17, 320}, {3, 65}, {11, 1000}} {
			N, K := s[0], s[1]
			w := randWeights(r, tensor.BF16, N, K)
			for _, dq := range []bool{false, true} {
				q, err := QuantizeNF4(w, dq)
				if err != nil {
					t.Fatal(err)
				}
				for it := 0; it < 20; it++ {
					n0, n1, k0, k1 := 0, N, 0, K
					if it > 0 {
						n0, k0 = r.IntN(N), r.IntN(K)
						n1, k1 = n0+1+r.IntN(N-n0), k0+1+r.IntN(K-k0)
					}
					kw := k1 - k0
					f := make([]float32, (n1-n0)*kw)
					nf4DequantTile(f, kw, q, n0, n1, k0, k1, true)
					got := make([]uint16, len(f)+3)
					for i := range got {
						got[i] = 0xdead
					}
					nf4DequantTileBF16(got, kw, q, n0, n1, k0, k1)
					for i, v := range f {
						if b := math.Float32bits(v); b&0xffff != 0 || got[i] != uint16(b>>16) {
							t.Fatalf("%dx%d dq %v, rows [%d,%d) cols [%d,%d): element %d is %#x, want the upper half of %#x",
								N, K, dq, n0, n1, k0, k1, i, got[i], b)
						}
					}
					for _, v := range got[len(f):] {
						if v != 0xdead {
							t.Fatalf("%dx%d: written past the tile", N, K)
						}
					}
				}
			}
		}
	})
}
