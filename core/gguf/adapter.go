package gguf

import (
	"context"
	"fmt"
	"math"
	"sort"

	"distill/core/lora"
	"distill/core/model"
	"distill/core/tensor"
)

// ExportAdapter writes a as a GGUF LoRA adapter for llama.cpp (--lora,
// llama-server's per-request adapters) and Ollama (ADAPTER in a
// Modelfile), to apply over m exported by Export. Each targeted
// projection's A and B are stored f32 as "<tensor>.lora_a" (r, in) and
// "<tensor>.lora_b" (out, r), B's rows reordered like the base's for
// Llama's q and k. llama.cpp scales B·A by alpha/r, r read off A, so
// adapter.lora.alpha is s·r: PEFT's alpha for plain LoRA, and rsLoRA's
// alpha/√r scale carried exactly.
func ExportAdapter(ctx context.Context, m *model.Model, a *lora.Adapter, path string) error {
	arch, ok := ggufArch[m.Arch.Name]
	if !ok {
		return fmt.Errorf("gguf: architecture %s has no GGUF mapping here", m.Arch.Name)
	}
	if err := a.Matches(m); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	// llama.cpp reads alpha 0 as "no alpha" and applies B·A at scale 1.
	if a.Config.Scaling() == 0 {
		return fmt.Errorf("gguf: the adapter's lora_alpha is 0, so it changes nothing, and llama.cpp would apply it at scale 1; nothing to export")
	}
	c := &m.Config
	kvs := []KV{
		{"general.architecture", arch.name},
		{"general.type", "adapter"},
		{"adapter.type", "lora"},
		{"adapter.lora.alpha", a.Config.Scaling() * float32(a.Config.R)},
	}
	src := pairSource{}
	var tensors []TensorInfo
	for l, layer := range a.Layers {
		for i, p := range layer {
			if p == nil {
				continue
			}
			mod := lora.Modules[i]
			base := fmt.Sprintf("blk.%d.%s.weight", l, projNames[mod])
			heads := 0
			if arch.permute && mod == "q_proj" {
				heads = c.NumHeads
			} else if arch.permute && mod == "k_proj" {
				heads = c.NumKVHeads
			}
			r := a.Config.R
			if err := finite(base, p.A, p.B); err != nil {
				return err
			}
			ta := src.add(base+".lora_a", p.A, r, p.In)
			tb := src.add(base+".lora_b", p.B, p.Out, r)
			for _, x := range []struct {
				t     *tensor.Tensor
				heads int
			}{{ta, 0}, {tb, heads}} {
				ti, err := tensorInfo(src, x.t, x.t.Name, x.heads, c.HeadDim, F32)
				if err != nil {
					return fmt.Errorf("gguf: %w", err)
				}
				tensors = append(tensors, ti)
			}
		}
	}
	if len(tensors) == 0 {
		return fmt.Errorf("gguf: the adapter targets no projection")
	}
	return WriteFile(ctx, path, kvs, tensors)
}

// finite refuses an adapter whose training diverged: llama.cpp would carry
// the NaN into every logit.
func finite(name string, a, b []float32) error {
	for k, v := range [][]float32{a, b} {
		for i, f := range v {
			if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
				return fmt.Errorf("gguf: the adapter's %s.lora_%c[%d] is %v: its training diverged; export a checkpoint from before", name, "ab"[k], i, f)
			}
		}
	}
	return nil
}

// pairSource serves an adapter's matrices, already f32, as a Source.
type pairSource map[string]*tensor.Tensor

func (s pairSource) add(name string, v []float32, rows, cols int) *tensor.Tensor {
	t := tensor.FromF32(name, v, rows, cols)
	s[name] = t
	return t
}

func (s pairSource) Names() []string {
	names := make([]string, 0, len(s))
	for n := range s {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (s pairSource) Tensor(name string) *tensor.Tensor { return s[name] }

func (s pairSource) Changed(string) bool { return false }

func (s pairSource) Rows(name string, dst []float32, r0, r1 int) {
	t := s[name]
	cols := t.Shape[1]
	copy(dst[:(r1-r0)*cols], t.F32s()[r0*cols:r1*cols])
}
