package gguf

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"sync"

	"distill/core/model"
	"distill/core/tensor"
)

// Source is a checkpoint's tensors by their HF names, with any adapter
// already folded in.
type Source interface {
	Names() []string
	// Tensor is the stored tensor (its shape and dtype); nil when absent.
	Tensor(name string) *tensor.Tensor
	// Rows writes rows [r0, r1) of name, widened to f32, into dst. A 1-D
	// tensor is a column: each element is a row.
	Rows(name string, dst []float32, r0, r1 int)
	// Changed says whether Rows differ from the stored tensor (an adapter
	// is folded into it); an unchanged tensor already at the file's type
	// is copied as stored.
	Changed(name string) bool
}

// Options choose what Export writes.
type Options struct {
	// Type is the file's type: the matrices' types follow from it
	// (FileType.tensorType); vectors (norms, biases) stay f32.
	Type FileType
	Name string // general.name
}

// ggufArch is llama.cpp's architecture name for a HF one and whether its q
// and k rows must be permuted: llama.cpp's "llama" rotates interleaved
// pairs, HF's Llama the two halves of each head (rotate_half), so its
// converter reorders each head's rows; Qwen's "neox" rotation is HF's own.
var ggufArch = map[string]struct {
	name    string
	permute bool
}{
	"LlamaForCausalLM":   {"llama", true},
	"MistralForCausalLM": {"llama", true},
	"Qwen2ForCausalLM":   {"qwen2", false},
	"Qwen3ForCausalLM":   {"qwen3", false},
}

// Export writes m (tensors from src, so an adapter may be folded in) as one
// GGUF file at path for llama.cpp and Ollama: the architecture's
// hyper-parameters, the tokenizer and chat template of m.Dir, and every
// weight under llama.cpp's names. The file appears only when complete.
func Export(ctx context.Context, m *model.Model, src Source, path string, opt Options) error {
	c := &m.Config
	arch, ok := ggufArch[m.Arch.Name]
	if !ok {
		return fmt.Errorf("gguf: architecture %s has no GGUF mapping here", m.Arch.Name)
	}
	if !opt.Type.valid() {
		return fmt.Errorf("gguf: cannot write a file of type %s", opt.Type)
	}
	if arch.name == "qwen3" && len(m.Layers) > 0 && m.Layers[0].OBias != nil {
		// Dropping the bias would load and be wrong (6 nats on the fixture).
		return fmt.Errorf("gguf: %s: Qwen3 with attention_bias has an o_proj bias, for which llama.cpp's qwen3 architecture has no tensor (src/models/qwen3.cpp creates no attn_output.bias): the file would not load", m.Dir)
	}
	kvs, err := archKVs(c, arch.name, opt)
	if err != nil {
		return fmt.Errorf("gguf: %s: %w", m.Dir, err)
	}
	vocab, err := vocabKVs(m)
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	kvs = append(kvs, vocab...)
	tensors, err := tensorInfos(m, src, arch.name, arch.permute, opt.Type)
	if err != nil {
		return fmt.Errorf("gguf: %s: %w", m.Dir, err)
	}
	return WriteFile(ctx, path, kvs, tensors)
}

func archKVs(c *model.Config, arch string, opt Options) ([]KV, error) {
	ctx := c.MaxPositionEmbeddings
	if w := c.Window; w > 0 && (ctx == 0 || w < ctx) {
		// llama.cpp's "llama" attends to the whole context; within the
		// window the two agree, so the window is the trained context.
		ctx = w
	}
	k := func(s string) string { return arch + "." + s }
	kvs := []KV{
		{"general.architecture", arch},
		{"general.name", opt.Name},
		{"general.file_type", uint32(opt.Type)},
	}
	if opt.Type.quantized() {
		kvs = append(kvs, KV{"general.quantization_version", uint32(2)})
	}
	kvs = append(kvs,
		KV{k("vocab_size"), uint32(c.VocabSize)},
		KV{k("context_length"), uint32(ctx)},
		KV{k("embedding_length"), uint32(c.HiddenSize)},
		KV{k("block_count"), uint32(c.NumLayers)},
		KV{k("feed_forward_length"), uint32(c.IntermediateSize)},
		KV{k("attention.head_count"), uint32(c.NumHeads)},
		KV{k("attention.head_count_kv"), uint32(c.NumKVHeads)},
		KV{k("attention.key_length"), uint32(c.HeadDim)},
		KV{k("attention.value_length"), uint32(c.HeadDim)},
		KV{k("attention.layer_norm_rms_epsilon"), float32(c.RMSNormEps)},
		KV{k("rope.freq_base"), float32(c.RopeTheta)},
		KV{k("rope.dimension_count"), uint32(c.HeadDim)},
	)
	switch kind := c.RopeScaling.Kind(); kind {
	case "default":
	case "linear":
		kvs = append(kvs, KV{k("rope.scaling.type"), "linear"}, KV{k("rope.scaling.factor"), float32(c.RopeScaling.Factor)})
	case "llama3":
		// Carried by the rope_freqs tensor, which only llama.cpp's "llama" reads.
		if arch != "llama" {
			return nil, fmt.Errorf("rope_scaling llama3 on %s: llama.cpp reads it only for Llama", arch)
		}
	default:
		return nil, fmt.Errorf("rope_scaling %q has no GGUF form here", kind)
	}
	return kvs, nil
}

// projNames are llama.cpp's names of a decoder layer's projections, by
// their HF (and PEFT) module names.
var projNames = map[string]string{
	"q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output",
	"gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down",
}

// tensorInfos maps every tensor of src to its llama.cpp name, in the
// order llama.cpp's converter writes them.
func tensorInfos(m *model.Model, src Source, arch string, permute bool, ft FileType) ([]TensorInfo, error) {
	c := &m.Config
	mix := newMixModel(arch, c.NumLayers, c.NumHeads, c.NumKVHeads, m.LMHead == m.Embed)
	used := map[string]bool{}
	var out []TensorInfo
	add := func(hf, name string, heads int) error {
		t := src.Tensor(hf)
		if t == nil {
			return nil
		}
		used[hf] = true
		typ := F32
		if len(t.Shape) == 2 {
			var err error
			if typ, err = ft.tensorType(name, t.Shape[1], mix); err != nil {
				return err
			}
		}
		ti, err := tensorInfo(src, t, name, heads, c.HeadDim, typ)
		if err != nil {
			return err
		}
		out = append(out, ti)
		return nil
	}
	type pair struct{ hf, gguf string }
	var errs []error
	try := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	qHeads, kHeads := 0, 0
	if permute {
		qHeads, kHeads = c.NumHeads, c.NumKVHeads
	}
	try(add("model.embed_tokens.weight", "token_embd.weight", 0))
	for l := range c.NumLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		b := fmt.Sprintf("blk.%d.", l)
		try(add(p+"input_layernorm.weight", b+"attn_norm.weight", 0))
		for _, sfx := range []string{"weight", "bias"} {
			try(add(p+"self_attn.q_proj."+sfx, b+projNames["q_proj"]+"."+sfx, qHeads))
			try(add(p+"self_attn.k_proj."+sfx, b+projNames["k_proj"]+"."+sfx, kHeads))
			try(add(p+"self_attn.v_proj."+sfx, b+projNames["v_proj"]+"."+sfx, 0))
			try(add(p+"self_attn.o_proj."+sfx, b+projNames["o_proj"]+"."+sfx, 0))
		}
		for _, pr := range []pair{
			{"self_attn.q_norm.weight", "attn_q_norm.weight"},
			{"self_attn.k_norm.weight", "attn_k_norm.weight"},
			{"post_attention_layernorm.weight", "ffn_norm.weight"},
			{"mlp.gate_proj.weight", projNames["gate_proj"] + ".weight"},
			{"mlp.up_proj.weight", projNames["up_proj"] + ".weight"},
			{"mlp.down_proj.weight", projNames["down_proj"] + ".weight"},
		} {
			try(add(p+pr.hf, b+pr.gguf, 0))
		}
	}
	try(add("model.norm.weight", "output_norm.weight", 0))
	if m.LMHead != m.Embed {
		try(add("lm_head.weight", "output.weight", 0))
	} else {
		used["lm_head.weight"] = true // a tied copy some checkpoints store
	}
	if len(errs) > 0 {
		return nil, errs[0]
	}
	for _, n := range src.Names() {
		if !used[n] && !strings.HasSuffix(n, ".rotary_emb.inv_freq") {
			return nil, fmt.Errorf("tensor %q has no place in a GGUF %s model", n, arch)
		}
	}
	if c.RopeScaling.Kind() == "llama3" {
		out = append(out, ropeFreqs(c))
	}
	return out, nil
}

// tensorInfo describes t under name, stored at typ. With heads > 0 each
// head's rows are reordered from HF's halves to llama.cpp's interleaved
// pairs.
func tensorInfo(src Source, t *tensor.Tensor, name string, heads, headDim int, typ Type) (TensorInfo, error) {
	rows, cols := t.Shape[0], 1
	switch len(t.Shape) {
	case 1:
	case 2:
		cols = t.Shape[1]
	default:
		return TensorInfo{}, fmt.Errorf("tensor %q has shape %v: only vectors and matrices are exported", t.Name, t.Shape)
	}
	if heads > 0 && rows != heads*headDim {
		return TensorInfo{}, fmt.Errorf("tensor %q has %d rows, not %d heads of %d", t.Name, rows, heads, headDim)
	}
	dims := []uint64{uint64(cols), uint64(rows)}
	if len(t.Shape) == 1 {
		dims = []uint64{uint64(rows)}
	}
	hf := t.Name
	rowBytes, err := typ.rowBytes(cols)
	if err != nil {
		return TensorInfo{}, fmt.Errorf("tensor %s: %v", name, err)
	}
	if heads == 0 && !src.Changed(hf) && sameType(t.DType, typ) {
		write := func(w io.Writer) error {
			_, err := w.Write(t.Data)
			return err
		}
		return TensorInfo{Name: name, Dims: dims, Type: typ, Write: write}, nil
	}
	write := func(w io.Writer) error {
		step := max(1, (1<<20)/cols) // rows widened at a time (≤ 4 MiB)
		if heads > 0 {
			step = headDim * max(1, step/headDim) // whole heads, so their rows can be reordered
		}
		f32 := make([]float32, step*cols)
		var tmp []float32
		if heads > 0 {
			tmp = make([]float32, step*cols)
		}
		raw := make([]byte, step*rowBytes)
		for r0 := 0; r0 < rows; r0 += step {
			r1 := min(r0+step, rows)
			buf := f32[:(r1-r0)*cols]
			out := raw[:(r1-r0)*rowBytes]
			var err error
			if heads > 0 {
				src.Rows(hf, buf, r0, r1)
				for h := 0; h < (r1-r0)/headDim; h++ {
					at := h * headDim * cols
					interleaveHead(tmp[at:], buf[at:at+headDim*cols], headDim, cols)
				}
				err = encodeSplit(out, typ, r0, r1, cols, rowBytes, func(a, b int) []float32 { return tmp[(a-r0)*cols : (b-r0)*cols] })
			} else {
				err = encodeSplit(out, typ, r0, r1, cols, rowBytes, func(a, b int) []float32 {
					part := buf[(a-r0)*cols : (b-r0)*cols]
					src.Rows(hf, part, a, b)
					return part
				})
			}
			if err != nil {
				return err
			}
			if _, err := w.Write(out); err != nil {
				return err
			}
		}
		return nil
	}
	return TensorInfo{Name: name, Dims: dims, Type: typ, Write: write}, nil
}

// encodeSplit stores rows [r0, r1) at typ into out, the rows split over
// the cores (widening and quantising, not the disk, bound an export that
// changes the type): rows(a, b) gives each worker its rows' values.
func encodeSplit(out []byte, typ Type, r0, r1, cols, rowBytes int, rows func(a, b int) []float32) error {
	n := r1 - r0
	workers := min(runtime.GOMAXPROCS(0), n)
	if n*cols < 1<<16 {
		workers = 1
	}
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		a, b := n*k/workers, n*(k+1)/workers
		wg.Go(func() {
			if err := encodeRows(out[a*rowBytes:b*rowBytes], typ, rows(r0+a, r0+b)); err != nil {
				errs[k] = fmt.Errorf("rows %d-%d: %v", r0+a, r0+b, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sameType: a stored tensor of dtype dt has t's bytes already.
func sameType(dt tensor.DType, t Type) bool {
	return (dt == tensor.F32 && t == F32) || (dt == tensor.F16 && t == F16) || (dt == tensor.BF16 && t == BF16)
}

// interleaveHead writes one head's rows (d of them, cols wide) in
// llama.cpp's order: row 2i is HF's row i, row 2i+1 is HF's row d/2+i.
func interleaveHead(dst, src []float32, d, cols int) {
	half := d / 2
	for i := range half {
		copy(dst[(2*i)*cols:(2*i+1)*cols], src[i*cols:(i+1)*cols])
		copy(dst[(2*i+1)*cols:(2*i+2)*cols], src[(half+i)*cols:(half+i+1)*cols])
	}
}

// ropeFreqs is llama.cpp's rope_freqs.weight: per frequency, the factor
// llama.cpp divides the unscaled one by, so that llama3's scaled
// frequencies are the model package's own.
func ropeFreqs(c *model.Config) TensorInfo {
	scaled := model.RopeInvFreq(c)
	f := make([]float32, len(scaled))
	for i, s := range scaled {
		base := 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(c.HeadDim))
		f[i] = float32(base / s)
	}
	return TensorInfo{
		Name: "rope_freqs.weight",
		Dims: []uint64{uint64(len(f))},
		Type: F32,
		Write: func(w io.Writer) error {
			b := make([]byte, 4*len(f))
			if err := encodeRows(b, F32, f); err != nil {
				return err
			}
			_, err := w.Write(b)
			return err
		},
	}
}
