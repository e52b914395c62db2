//go:build cuda

package cuda_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"distill/cuda"
)

// splitMix is SplitMix64's finaliser, written again here as the reference
// for the device's masks (core/train's dropout hashes with it).
func splitMix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// LoRADropoutDX against an f64 reference: dx += Σ_m (du_m·A_m)∘mask_m·keep.
// Tolerance f32Tol relative and 1e-7·r absolute: each term is a sum of r
// f32 products of ~0.3 in size (nvcc contracts them into FMAs, the
// emulator does not), each rounding by up to 6e-8 of its size, and where
// they cancel the relative part alone is too tight (r 64 came to 0.94 of
// it). A mask or index mistake moves whole terms (~1 in size). Then the group's
// launch against one launch a member, in order: bit for bit (devnet's
// grouped backward relies on it), and keys read on the device against
// keys passed by value: bit for bit.
func TestLoRADropoutDXParity(t *testing.T) {
	d := device(t)
	p := 0.3
	thresh, keep := uint64(p*math.MaxUint64), float32(1/(1-p))
	for _, c := range []struct{ n, in, r, members int }{
		{1, 64, 8, 1}, {37, 300, 16, 3}, {64, 1000, 16, 2}, {17, 257, 12, 3}, {40, 96, 64, 1},
	} {
		t.Run(shapeName("n%d-in%d-r%d-m%d", c.n, c.in, c.r, c.members), func(t *testing.T) {
			rg := rng(uint64(c.n*c.in + c.r + c.members))
			n, in, r, M := c.n, c.in, c.r, c.members
			dx0, du, A := randn(rg, n*in, 1), randn(rg, M*n*r, 1), randn(rg, M*r*in, 0.3)
			bases := make([]uint64, M)
			for m := range bases {
				bases[m] = rg.Uint64()
			}
			want := make([]float32, n*in)
			dropped := 0
			for i := range n {
				for j := range in {
					v := float64(dx0[i*in+j])
					for m := range M {
						if splitMix(bases[m]+uint64(i*in+j)) < thresh {
							dropped++
							continue
						}
						s := 0.0
						for k := range r {
							s += float64(du[m*n*r+i*r+k]) * float64(A[m*r*in+k*in+j])
						}
						v += s * float64(keep)
					}
					want[i*in+j] = float32(v)
				}
			}
			if total := n * in * M; dropped == 0 || dropped == total {
				t.Fatalf("%d of %d dropped: the masks test nothing", dropped, total)
			}

			dxd, dud, Ad := up(t, d, cuda.F32, dx0), up(t, d, cuda.F32, du), up(t, d, cuda.F32, A)
			drop := cuda.LoRADrop{Bases: bases, Thresh: thresh, Keep: keep}
			ok(t, d.LoRADropoutDX(dxd, dud, Ad, n, in, r, M, drop))
			group := down(t, dxd)
			near(t, "dx", group, want, f32Tol, 1e-7*float64(r))

			one := up(t, d, cuda.F32, dx0) // one launch a member
			for m := range M {
				ok(t, d.LoRADropoutDX(one, dud.View(m*n*r, n*r), Ad.View(m*r*in, r*in), n, in, r, 1,
					cuda.LoRADrop{Bases: bases[m : m+1], Thresh: thresh, Keep: keep}))
			}
			if got := down(t, one); !slices.Equal(got, group) {
				t.Errorf("one launch a member differs from the group's")
			}

			keyed := up(t, d, cuda.F32, dx0)
			keys := up(t, d, cuda.U64, bases)
			ok(t, d.LoRADropoutDX(keyed, dud, Ad, n, in, r, M, cuda.LoRADrop{Keys: keys, Thresh: thresh, Keep: keep}))
			if got := down(t, keyed); !slices.Equal(got, group) {
				t.Errorf("keys read on the device differ from keys passed")
			}
		})
	}

	// Bad calls are told, with the op and what is wrong; nothing runs.
	dx, du, A := zeros(t, d, cuda.F32, 64), zeros(t, d, cuda.F32, 4*8), zeros(t, d, cuda.F32, 4*8*64)
	for name, err := range map[string]error{
		"members": d.LoRADropoutDX(dx, du, A, 1, 64, 8, 4, cuda.LoRADrop{Bases: make([]uint64, 4)}),
		"keys":    d.LoRADropoutDX(dx, du, A, 1, 64, 8, 2, cuda.LoRADrop{Bases: make([]uint64, 1)}),
		"du":      d.LoRADropoutDX(dx, du, A, 2, 32, 16, 2, cuda.LoRADrop{Bases: make([]uint64, 2)}),
		"rank":    d.LoRADropoutDX(dx, du, A, 1, 1, 513, 1, cuda.LoRADrop{Bases: make([]uint64, 1)}),
	} {
		if err == nil || !strings.Contains(err.Error(), "lora_dropout_dx") {
			t.Errorf("%s: err %v, want lora_dropout_dx's error", name, err)
		}
	}
}
