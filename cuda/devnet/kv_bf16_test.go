//go:build cuda

package devnet_test

import (
	"math"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestKVMirrorBF16: the decoder's cache mirrors in bf16 (the default where
// it attends with the flash kernels) against the same decoder's in f32
// (DISTILL_CUDA_KV_BF16=0). The flash kernels round keys and values to bf16
// before their products either way, so every pass over one cache — a long
// prompt (its rows read down as they lie), a short one (staged), decoded
// tokens by the general pass, the fused kernels and their graphs, branches
// over a prefix — gives the same hidden states bit for bit, and the host
// caches, in bf16 too (half the host memory), hold exactly the f32 run's
// keys and values rounded. A
// batched step's rows attend in f32 over their caches as held: within
// bf16's rounding of the keys and values (1e-2 relative; measured ~1e-3).
// Each mirror takes half the device memory.
func TestKVMirrorBF16(t *testing.T) {
	d := device(t)
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 43))
	m, _ := build(t, dir, s)
	kvO := m.Config.NumKVHeads * m.Config.HeadDim
	for _, mode := range []string{"general", "fused", "fused_graphs"} {
		t.Run(mode, func(t *testing.T) {
			t.Setenv("DISTILL_CUDA_FUSED", map[bool]string{false: "0", true: "1"}[mode != "general"])
			t.Setenv("DISTILL_CUDA_GRAPHS", map[bool]string{false: "0", true: "1"}[mode == "fused_graphs"])
			t.Setenv("DISTILL_CUDA_DECODE_SPLIT", "0") // the flash kernels' tokens: split ones attend over the cache as held (TestDecodeSplit)
			type result struct {
				passes [][]float32 // one cache's passes, then the batched step's
				caches []*model.Cache
				lens   []int // the caches' rows before the batched step
				mirror int64 // the device memory one cache's mirror took
			}
			run := func(bf16 bool) (r result) {
				t.Setenv("DISTILL_CUDA_KV_BF16", map[bool]string{false: "0", true: "1"}[bf16])
				if attached, err := m.Accelerate("cuda"); !attached {
					t.Fatal(err)
				}
				defer m.Detach()
				be := tensor.CPU{}
				keep := func(h []float32, err error) {
					t.Helper()
					ok(t, err)
					r.passes = append(r.passes, append([]float32(nil), h...))
				}
				tok := tokens(rng(9), s.shape.Vocab)
				c, c2 := m.NewCache(200), m.NewCache(200)
				keep(m.Forward(be, tok(80), c, nil)) // past 64 rows: read down as they lie
				for range 3 {
					keep(m.Forward(be, tok(1), c, nil))
				}
				keep(m.ForwardBranches(be, [][]int{tok(3), tok(1), tok(4)}, c))
				keep(m.Forward(be, tok(1), c, nil))
				ok(t, d.Pool.Trim())
				before := d.Pool.Stats().InUse
				keep(m.Forward(be, tok(9), c2, nil)) // staged; c2's mirror made
				r.mirror = d.Pool.Stats().InUse - before
				keep(m.Forward(be, tok(1), c2, nil))
				r.caches, r.lens = []*model.Cache{c, c2}, []int{c.Len, c2.Len}
				keep(m.ForwardStep(be, tok(2), r.caches, m.NewCache(2)))
				return r
			}
			f32, b16 := run(false), run(true)
			step := len(f32.passes) - 1
			for i := range step {
				if !sameBits(b16.passes[i], f32.passes[i]) {
					t.Errorf("pass %d: hidden states over the bf16 mirror differ from the f32 mirror's (%.2e relative)", i, relL2(b16.passes[i], f32.passes[i]))
				}
			}
			if rel := relL2(b16.passes[step], f32.passes[step]); rel > 1e-2 || rel != rel {
				t.Errorf("batched step: %.2e relative to the f32 mirror's", rel)
			} else {
				t.Logf("batched step: %.2e relative to the f32 mirror's", rel)
			}
			for i, c := range b16.caches {
				fc := f32.caches[i]
				if !c.BF16() || fc.BF16() || 2*c.Bytes() != fc.Bytes() {
					t.Fatalf("cache %d: BF16() %v, %d bytes with bf16 mirrors; %v, %d bytes with f32 ones", i, c.BF16(), c.Bytes(), fc.BF16(), fc.Bytes())
				}
				n := f32.lens[i] * kvO
				for l := range m.Layers {
					for j := range n {
						for _, kv := range []struct {
							got  uint16
							want float32
						}{{c.K16[l][j], fc.K[l][j]}, {c.V16[l][j], fc.V[l][j]}} {
							if kv.got != tensor.F32ToBF16(kv.want) {
								t.Fatalf("cache %d, layer %d, element %d: the host holds %v, the f32 run %v (rounded %v)", i, l, j,
									tensor.BF16ToF32(kv.got), kv.want, tensor.BF16ToF32(tensor.F32ToBF16(kv.want)))
							}
						}
					}
				}
			}
			exact := int64(2 * len(m.Layers) * 200 * kvO * 4) // a 200-row f32 mirror's bytes
			if f32.mirror < exact || b16.mirror > f32.mirror*6/10 || b16.mirror < exact/2 {
				t.Errorf("a mirror took %d bytes in f32, %d in bf16 (exactly %d and %d)", f32.mirror, b16.mirror, exact, exact/2)
			} else {
				t.Logf("a mirror took %d bytes in f32, %d in bf16", f32.mirror, b16.mirror)
			}
		})
	}
}

// sameBits says whether got is want bit for bit.
func sameBits(got, want []float32) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return false
		}
	}
	return true
}

// TestMirrorKindIsPlanned: the kind of cache the attached decoder makes is
// the one model.DeviceKVBF16 — what `distill plan serve --device cuda`
// counts — says, under each setting of the gates it follows.
func TestMirrorKindIsPlanned(t *testing.T) {
	device(t)
	m, _ := firstSetup(t, 44)
	for _, env := range [][2]string{{"", ""}, {"0", ""}, {"", "0"}, {"1", "1"}, {"1", "0"}} {
		t.Setenv("DISTILL_CUDA_KV_BF16", env[0])
		t.Setenv("DISTILL_CUDA_FLASH_ASYNC", env[1])
		if attached, err := m.Accelerate("cuda"); !attached {
			t.Fatal(err)
		}
		made, planned := m.NewCache(8).K16 != nil, model.DeviceKVBF16(m.Config.HeadDim)
		m.Detach()
		if made != planned {
			t.Errorf("KV_BF16=%q FLASH_ASYNC=%q: the decoder's caches bf16 %v, the plan's %v", env[0], env[1], made, planned)
		}
	}
	if !model.FlashAttention(m.Config.HeadDim) {
		t.Fatalf("head size %d: the flash kernels do not take it, so nothing above was bf16", m.Config.HeadDim)
	}
}
