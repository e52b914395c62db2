package model_test

import (
	"math"
	"testing"

	"distill/core/model"
	"distill/core/tensor"
)

// TestBF16CacheMatchesF32Cache: under bf16 attention (--cpu-bf16) a bf16
// KV cache gives bit for bit the hidden states of an f32 one — a prompt
// (in attention's blocks), steps of sequences batched together, branches
// after a prefix — and holds exactly its rounded rows, in half the bytes.
func TestBF16CacheMatchesF32Cache(t *testing.T) {
	be := tensor.CPU{BF16Products: true, BF16Attention: true}
	for _, dir := range []string{"testdata/qwen2-f32", "testdata/qwen3-bf16", "testdata/llama3-f32"} {
		t.Run(dir, func(t *testing.T) {
			m, err := model.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			prompts := [][]int{longPrefix(40, m.Config.VocabSize), {3, 1, 4, 1, 5}}
			run := func(bf16 bool) (hidden []float32, caches []*model.Cache) {
				m.KVCacheBF16 = bf16
				defer func() { m.KVCacheBF16 = false }()
				for _, p := range prompts {
					c := m.NewCache(len(p) + 48)
					if c.BF16() != bf16 {
						t.Fatalf("KVCacheBF16 %v made a cache with BF16() %v", bf16, c.BF16())
					}
					h, err := m.Forward(be, p, c, nil)
					if err != nil {
						t.Fatal(err)
					}
					hidden = append(hidden, h...)
					caches = append(caches, c)
				}
				scratch := m.NewCache(len(prompts))
				for step := range 3 {
					h, err := m.ForwardStep(be, []int{10 + step, 20 + step}, caches, scratch)
					if err != nil {
						t.Fatal(err)
					}
					hidden = append(hidden, h...)
				}
				// a long branch after a short one: attention's blocks over
				// rows moved beside the prefix
				h, err := m.ForwardBranches(be, [][]int{{7}, longPrefix(36, m.Config.VocabSize)}, caches[0])
				if err != nil {
					t.Fatal(err)
				}
				return append(hidden, h...), caches
			}
			want, f32 := run(false)
			got, b16 := run(true)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("hidden value %d is %g with the bf16 cache, %g with the f32 one", i, got[i], want[i])
				}
			}
			for i, c := range b16 {
				if 2*c.Bytes() != f32[i].Bytes() {
					t.Errorf("sequence %d: the bf16 cache holds %d bytes, the f32 one %d", i, c.Bytes(), f32[i].Bytes())
				}
				kvOut := m.Config.NumKVHeads * m.Config.HeadDim
				for l := range c.K16 {
					for j := range c.Len * kvOut { // branches' rows past Len are scratch
						if tensor.BF16ToF32(c.K16[l][j]) != f32[i].K[l][j] || tensor.BF16ToF32(c.V16[l][j]) != f32[i].V[l][j] {
							t.Fatalf("sequence %d layer %d value %d: the bf16 cache holds %g, %g; the f32 one %g, %g", i, l, j,
								tensor.BF16ToF32(c.K16[l][j]), tensor.BF16ToF32(c.V16[l][j]), f32[i].K[l][j], f32[i].V[l][j])
						}
					}
				}
			}
		})
	}
}

// TestBF16CacheNotUnderCPUOffload: --cpu-offload's layers run on the plain
// f32 CPU backend, whose attention over rounded rows would change its
// result, so a model with any such layer keeps f32 caches.
func TestBF16CacheNotUnderCPUOffload(t *testing.T) {
	m, err := model.Load("testdata/qwen2-f32")
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.KVCacheBF16 = true
	for _, tc := range []struct {
		cpuLayers int
		bf16      bool
	}{{0, true}, {model.AutoCPULayers, true}, {1, false}, {len(m.Layers), false}} {
		m.CPULayers = tc.cpuLayers
		if c := m.NewCache(4); c.BF16() != tc.bf16 || (m.CacheElemBytes() == 2) != tc.bf16 {
			t.Errorf("CPULayers %d: BF16() %v, %d bytes an element; want bf16 %v", tc.cpuLayers, c.BF16(), m.CacheElemBytes(), tc.bf16)
		}
	}
}
