//go:build cuda

package devnet_test

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
	"distill/cuda/devnet"
)

// The device-resident decoder (model.Accelerated) against the host's
// Model.Forward: a prompt, single-token steps, a pass the host runs (all
// layers on the CPU: the mirror must take its row up), batched steps over
// two caches (each row attending its own), a truncation and a re-fed
// suffix, branched passes (with and without a prefix) — with the base alone
// and with an adapter applied unmerged. Every pass's hidden states, and the
// keys and values the device writes back to the host cache, against the
// host's: bf16 GEMMs and NF4 decoded in registers against the host's f32,
// 2e-2 relative (L2) per pass. Decoded tokens by the general pass (the
// GEMMs a prompt takes) and by the fused kernels (layerDecode), each device
// run against the same host run. And with the first layer on the host
// (--cpu-offload: the device holds the rest, each pass starting from the
// host layer's output), by the general pass and by the fused kernels'
// graphs: the host layer's keys and values bit for bit the host run's.
func TestDecoderParity(t *testing.T) {
	device(t)
	for _, s := range setups[:3] {
		for _, adapter := range []bool{false, true} {
			name := s.name
			if adapter {
				name += "_adapter"
			}
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 41))
				m, a := build(t, dir, s)
				if adapter {
					m.Delta = a
				}
				cpu := 0 // the layers the host runs (--cpu-offload)
				script := func() (passes [][]float32, caches []*model.Cache) {
					be := tensor.CPU{}
					keep := func(h []float32, err error) {
						t.Helper()
						ok(t, err)
						passes = append(passes, append([]float32(nil), h...))
					}
					tok := tokens(rng(6), s.shape.Vocab)
					scratch := func(c *model.Cache, n int) (rows []float32, err error) { // keys, values in rows [Len, Len+n)
						kvO := m.Config.NumKVHeads * m.Config.HeadDim
						for l := range m.Layers {
							k, v := kvRows(c, l, c.Len*kvO, (c.Len+n)*kvO)
							rows = append(append(rows, k...), v...)
						}
						return rows, nil
					}
					c, c2 := m.NewCache(64), m.NewCache(64)
					keep(m.Forward(be, tok(37), c, nil)) // a prompt: GEMMs
					for range 3 {
						keep(m.Forward(be, tok(1), c, nil)) // decode: one token
					}
					m.CPULayers = len(m.Layers) // a pass on the host: the mirror must take its row up
					keep(m.Forward(be, tok(1), c, nil))
					m.CPULayers = cpu
					keep(m.Forward(be, tok(1), c, nil))
					keep(m.Forward(be, tok(9), c2, nil))
					m.CPULayers = len(m.Layers) // c2's row 9 on the host, for the batched step to take up
					keep(m.Forward(be, tok(1), c2, nil))
					m.CPULayers = cpu
					keep(m.ForwardStep(be, tok(2), []*model.Cache{c, c2}, m.NewCache(2))) // each row its own cache
					keep(m.ForwardStep(be, tok(1), []*model.Cache{c2}, m.NewCache(1)))
					c.Truncate(30)
					keep(m.Forward(be, tok(5), c, nil))
					keep(m.Forward(be, tok(1), c, nil))
					// Branches (classification's labels): each row the prefix
					// and its own branch, merged; a row the host wrote first.
					keep(m.ForwardBranches(be, [][]int{tok(3), tok(1), tok(4)}, c))
					keep(scratch(c, 8)) // left past Len for batched prefill to copy
					m.CPULayers = len(m.Layers)
					keep(m.Forward(be, tok(1), c, nil))
					m.CPULayers = cpu
					keep(m.ForwardBranches(be, [][]int{tok(2), tok(5)}, c))
					keep(m.Forward(be, tok(1), c, nil))                                 // the branches left no keys behind
					keep(m.ForwardBranches(be, [][]int{tok(2), tok(3)}, m.NewCache(8))) // no prefix
					return passes, []*model.Cache{c, c2}
				}
				want, wc := script()
				last := want[len(want)-1][:m.Config.HiddenSize] // one row of hidden states
				wantLogits := make([]float32, m.Config.VocabSize)
				m.Logits(tensor.CPU{}, wantLogits, last, 1)
				// One token by the general pass (DISTILL_CUDA_FUSED=0: the
				// GEMMs a prompt takes), by the fused kernels, and by their
				// recording replayed as a CUDA graph. Against the host at bf16's
				// tolerance a wrong q hardly shows (the random weights make
				// attention near uniform: a q left unrotated moves a pass by 8e-3
				// to 2e-2), so the fused runs' single-token passes are also held
				// to the general device run's. That run stages each product's
				// input in bf16 where the fused kernels read it in f32, which
				// alone moves a pass by 1.1e-3 to 2.4e-3 (both ranges from a host
				// simulation of these shapes, 192 passes; on an H200 the 120
				// compared passes were 2e-4 to 3.5e-3 apart): 5e-3. The margin is
				// thin both ways — a pass past it is a fused-path bug to look
				// for, not noise to widen.
				var ref [][]float32
				for _, mode := range []string{"general", "fused", "fused_graphs", "offload_general", "offload_fused", "offload_fused_graphs"} {
					t.Run(mode, func(t *testing.T) {
						fused, graphs := !strings.HasSuffix(mode, "general"), strings.HasSuffix(mode, "graphs")
						cpu = 0
						if strings.HasPrefix(mode, "offload") {
							cpu = 1
						}
						m.CPULayers = cpu // the decoder holds the layers after it
						defer func() { m.CPULayers = 0 }()
						t.Setenv("DISTILL_CUDA_FUSED", map[bool]string{false: "0", true: "1"}[fused])
						t.Setenv("DISTILL_CUDA_GRAPHS", map[bool]string{false: "0", true: "1"}[graphs])
						attached, err := m.Accelerate("cuda")
						if !attached {
							t.Fatal(err)
						}
						fusedBefore, replaysBefore, failedBefore, rowsBefore := devnet.FusedPasses(), devnet.GraphReplays(), devnet.GraphFailures(), devnet.RowsPasses()
						got, gcs := script()
						// A mode that silently fell back would compare a path with itself.
						if failed := devnet.GraphFailures() - failedBefore; failed > 0 {
							t.Errorf("%d graph recordings failed, the last: %v", failed, devnet.LastGraphErr())
						}
						ran, replays, rows := devnet.FusedPasses()-fusedBefore, devnet.GraphReplays()-replaysBefore, devnet.RowsPasses()-rowsBefore
						if (ran > 0) != fused || (replays > 0) != graphs || (rows > 0) != fused {
							t.Fatalf("%d tokens through the fused kernels, %d graph replays, %d batched steps by row tables (mode %s)", ran, replays, rows, mode)
						}
						t.Logf("%d tokens through the fused kernels, %d graph replays, %d batched steps by row tables", ran, replays, rows)
						// Only a device pass sets DevLen: each cache's last ran there.
						for i, gc := range gcs {
							if gc.DevLen != gc.Len {
								t.Errorf("cache %d: after the script the device holds %d rows of %d", i, gc.DevLen, gc.Len)
							}
						}
						// The LM head on the device, one row (matvec) and two (GEMM).
						gotLogits := make([]float32, 2*m.Config.VocabSize)
						m.Logits(tensor.CPU{}, gotLogits, append(append([]float32(nil), last...), last...), 2)
						m.Logits(tensor.CPU{}, gotLogits[:m.Config.VocabSize], last, 1)
						for i, g := range [][]float32{gotLogits[:m.Config.VocabSize], gotLogits[m.Config.VocabSize:]} {
							if rel := relL2(g, wantLogits); rel > 1e-2 || rel != rel {
								t.Errorf("logits (row %d): %.2e relative to the host's", i, rel)
							}
						}
						if mode == "general" {
							ref = got
						}
						for i := range got {
							if fused && cpu == 0 && len(got[i]) == m.Config.HiddenSize {
								if rel := relL2(got[i], ref[i]); rel > 5e-3 || rel != rel {
									t.Errorf("pass %d: one token's hidden state differs from the general device run's by %.2e relative", i, rel)
								} else {
									t.Logf("pass %d against the general device run: %.2e", i, rel)
								}
							}
						}
						for i := range want {
							if rel := relL2(got[i], want[i]); rel > 2e-2 || rel != rel {
								t.Errorf("pass %d: hidden states differ from the host's by %.2e relative (L2)", i, rel)
							} else {
								t.Logf("pass %d (%d values): %.2e", i, len(want[i]), rel)
							}
						}
						kvO := m.Config.NumKVHeads * m.Config.HeadDim
						for i, wc := range wc {
							gc := gcs[i]
							if gc.BF16() != (cpu == 0) { // bf16 like the device's mirrors, unless a host layer's are f32 alone
								t.Errorf("cache %d: BF16() %v with %d layers on the host", i, gc.BF16(), cpu)
							}
							for l := range m.Layers {
								n := wc.Len * kvO
								gk, gv := kvRows(gc, l, 0, n)
								wk, wv := kvRows(wc, l, 0, n)
								if l < cpu && (!slices.Equal(gk, wk) || !slices.Equal(gv, wv)) {
									t.Errorf("cache %d, layer %d (the host's): keys or values differ from the host run's", i, l)
								}
								if rel := relL2(gk, wk); rel > 2e-2 || rel != rel {
									t.Errorf("cache %d, layer %d: the keys written back differ by %.2e", i, l, rel)
								}
								if rel := relL2(gv, wv); rel > 2e-2 || rel != rel {
									t.Errorf("cache %d, layer %d: the values written back differ by %.2e", i, l, rel)
								}
							}
						}
					})
				}
				m.Close() // the decoder's memory goes with the model
			})
		}
	}
}

// TestDecoderGraphsSurviveDrops: with the fused kernels and their graphs,
// decoding goes on right when a cache's mirror is dropped (one mirror kept:
// each cache in turn loses its mirror and graph, then comes back from the
// host's rows and records again) and when adapters are dropped (one kept:
// two alternate, each view's workspace and graphs freed) — every pass
// against the host's at 2e-2, with recordings and replays counted.
func TestDecoderGraphsSurviveDrops(t *testing.T) {
	device(t)
	t.Setenv("DISTILL_CUDA_FUSED", "1")
	t.Setenv("DISTILL_CUDA_GRAPHS", "1")
	defer devnet.SetDecoderLimits(1, 1)()
	s := setups[0]
	dir := t.TempDir()
	ok(t, model.WriteRandom(dir, s.shape, tensor.BF16, 43))
	m, a1 := build(t, dir, s)
	a2 := negated(t, m, a1)
	script := func() (passes [][]float32) {
		be := tensor.CPU{}
		tok := tokens(rng(8), s.shape.Vocab)
		keep := func(h []float32, err error) {
			t.Helper()
			ok(t, err)
			passes = append(passes, append([]float32(nil), h...))
		}
		c1, c2 := m.NewCache(48), m.NewCache(48)
		for round := range 3 {
			m.Delta = []*lora.Adapter{a1, a2}[round%2] // the other adapter's view goes
			for _, c := range []*model.Cache{c1, c2} { // the other cache's mirror goes
				if c.Len == 0 {
					keep(m.Forward(be, tok(6), c, nil))
				}
				keep(m.Forward(be, tok(1), c, nil))
				keep(m.Forward(be, tok(1), c, nil))
			}
		}
		return passes
	}
	want := script()
	attached, err := m.Accelerate("cuda")
	if !attached {
		t.Fatal(err)
	}
	defer m.Close()
	rec, rep, fail := devnet.FusedPasses(), devnet.GraphReplays(), devnet.GraphFailures()
	got := script()
	for i := range want {
		if rel := relL2(got[i], want[i]); rel > 2e-2 || rel != rel {
			t.Errorf("pass %d: %.2e relative to the host", i, rel)
		}
	}
	rec, rep, fail = devnet.FusedPasses()-rec, devnet.GraphReplays()-rep, devnet.GraphFailures()-fail
	// Six rounds of a cache under an adapter, each recording its graph anew
	// (the mirror or the view was dropped since) and replaying it twice.
	if fail != 0 || rec < 6 || rep != 12 {
		t.Errorf("%d recordings, %d replays, %d failures (the last: %v); want ≥ 6, 12, 0", rec, rep, fail, devnet.LastGraphErr())
	}
}

// tokens draws n random ids below vocab from r at each call.
// kvRows is elements [r0, r1) of layer l's keys and values in c, as f32 (a
// bf16 cache's widened).
func kvRows(c *model.Cache, l, r0, r1 int) (k, v []float32) {
	if !c.BF16() {
		return c.K[l][r0:r1], c.V[l][r0:r1]
	}
	for i := r0; i < r1; i++ {
		k, v = append(k, tensor.BF16ToF32(c.K16[l][i])), append(v, tensor.BF16ToF32(c.V16[l][i]))
	}
	return k, v
}

func tokens(r *rand.Rand, vocab int) func(n int) []int {
	return func(n int) []int {
		ids := make([]int, n)
		for i := range ids {
			ids[i] = r.IntN(vocab)
		}
		return ids
	}
}

// negated is a second adapter of m with a's shape and its parameters'
// negatives: another upload, other results.
func negated(t *testing.T, m *model.Model, a *lora.Adapter) *lora.Adapter {
	t.Helper()
	n, err := lora.NewFor(m, a.Config)
	ok(t, err)
	for i := range n.Params {
		n.Params[i] = -a.Params[i]
	}
	return n
}
