package model

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"distill/core/tensor"
)

// Layer holds one decoder block's weights. Projections stay at the
// checkpoint's dtype (memory-mapped); small vectors are widened to f32.
type Layer struct {
	AttnNorm, MLPNorm   []float32     // (hidden)
	Q, K, V, O          tensor.Matrix // (out, in): dense or quantized
	QBias, KBias, VBias []float32     // (heads*headDim), (kv*headDim); nil when absent
	OBias               []float32     // (hidden); Llama with attention_bias only
	QNorm, KNorm        []float32     // (headDim); Qwen3 only
	Gate, Up, Down      tensor.Matrix
}

// Model is a loaded checkpoint. Its tensors may be views into memory-mapped
// files: call Close when done.
type Model struct {
	Dir    string
	Config Config
	Arch   Arch
	Embed  *tensor.Tensor // (vocab, hidden)
	Layers []Layer
	Norm   []float32      // (hidden)
	LMHead *tensor.Tensor // (vocab, hidden); == Embed when tied

	// Delta, when set, adds an adapter's low-rank update to every projection
	// it targets (LoRA applied unmerged, so the base stays shared).
	Delta Delta
	// CPULayers keeps the first CPULayers decoder layers (and the
	// embedding lookup) on the CPU whatever backend a forward pass is given
	// (--cpu-offload): a device never holds their weights, trading their
	// share of the speed for its memory. AutoCPULayers, before Accelerate,
	// has the accelerator pick: none where every layer fits its device, else
	// the fewest that leave the rest room.
	CPULayers int
	// KVCacheBF16 makes NewCache's caches bf16 where no accelerator holds
	// the model: half the memory of f32 ones, for a backend whose attention
	// rounds its operands to bf16 anyway (tensor.CPU's BF16Attention,
	// --cpu-bf16), so that it multiplies exactly what it did. Attention over
	// a bf16 cache is bf16 attention whatever the backend. An attached
	// accelerator decides instead (Accelerated.CacheBF16).
	KVCacheBF16 bool

	accel     Accelerated // a device-resident Forward (Accelerate), or nil
	accelFrom int         // CPULayers when accel was opened: it holds the layers from there

	files []*SafetensorsFile
	rope  ropeTables
	bound map[string]bool // during bind: the tensors looked up
}

// Load reads a HF model folder: config.json and model.safetensors or a
// sharded model.safetensors.index.json. Errors name the file and tensor.
func Load(dir string) (*Model, error) {
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("model folder %s: %w", dir, err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("model folder %s: not a directory", dir)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	arch, err := lookupArch(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "config.json"), err)
	}
	m := &Model{Dir: dir, Config: *cfg, Arch: arch}
	if err := m.openWeights(); err != nil {
		m.Close()
		return nil, err
	}
	if err := m.bind(); err != nil {
		m.Close()
		return nil, err
	}
	m.rope = newRopeTables(cfg)
	return m, nil
}

// Close unmaps the weight files.
func (m *Model) Close() error {
	if m.accel != nil {
		m.accel.Close()
		m.accel = nil
	}
	var first error
	for _, f := range m.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	m.files = nil
	return first
}

func (m *Model) openWeights() error {
	single := filepath.Join(m.Dir, "model.safetensors")
	index := filepath.Join(m.Dir, "model.safetensors.index.json")
	if _, err := os.Stat(single); err == nil {
		f, err := OpenSafetensors(single)
		if err != nil {
			return err
		}
		m.files = append(m.files, f)
		return nil
	}
	b, err := os.ReadFile(index)
	if err != nil {
		return fmt.Errorf("%s: no model.safetensors or model.safetensors.index.json (only safetensors checkpoints are supported)", m.Dir)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		return fmt.Errorf("%s: %v", index, err)
	}
	if len(idx.WeightMap) == 0 {
		return fmt.Errorf("%s: empty weight_map", index)
	}
	shards := map[string]bool{}
	for _, f := range idx.WeightMap {
		shards[f] = true
	}
	names := make([]string, 0, len(shards))
	for s := range shards {
		if filepath.Base(s) != s {
			return fmt.Errorf("%s: shard name %q must be a file in the model folder", index, s)
		}
		names = append(names, s)
	}
	sort.Strings(names)
	opened := map[string]*SafetensorsFile{}
	for _, s := range names {
		f, err := OpenSafetensors(filepath.Join(m.Dir, s))
		if err != nil {
			return fmt.Errorf("%s: shard: %w", index, err)
		}
		m.files = append(m.files, f)
		opened[s] = f
	}
	for name, s := range idx.WeightMap {
		if opened[s].Tensor(name) == nil {
			return fmt.Errorf("%s: tensor %q is mapped to %s but that shard does not hold it", index, name, s)
		}
	}
	return nil
}

// find returns the named tensor from whichever file holds it.
func (m *Model) find(name string) (*tensor.Tensor, string) {
	if m.bound != nil {
		m.bound[name] = true
	}
	for _, f := range m.files {
		if t := f.Tensor(name); t != nil {
			return t, f.Path
		}
	}
	return nil, ""
}

func (m *Model) where() string {
	if len(m.files) == 1 {
		return m.files[0].Path
	}
	return filepath.Join(m.Dir, "model.safetensors.index.json")
}

// get fetches a required tensor and checks its shape.
func (m *Model) get(name string, shape ...int) (*tensor.Tensor, error) {
	t, path := m.find(name)
	if t == nil {
		return nil, fmt.Errorf("%s: missing tensor %q (config.json describes %s with %d layers)", m.where(), name, m.Arch.Name, m.Config.NumLayers)
	}
	if !sameShape(t.Shape, shape) {
		return nil, fmt.Errorf("%s: tensor %q has shape %v, config.json implies %v", path, name, t.Shape, shape)
	}
	return t, nil
}

func (m *Model) getVec(name string, n int) ([]float32, error) {
	t, err := m.get(name, n)
	if err != nil {
		return nil, err
	}
	return t.ToF32(), nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// bind looks up every tensor the architecture needs, checking shapes, and
// refuses tensors it would leave unused: they mean the config does not
// describe the weights (a bias the config's attention_bias leaves out would
// otherwise be dropped and every output silently wrong).
func (m *Model) bind() error {
	m.bound = map[string]bool{}
	defer func() { m.bound = nil }()
	if err := m.bindNeeded(); err != nil {
		return err
	}
	return m.checkAllBound()
}

// checkAllBound names the tensors bind did not look up, except rotary
// tables some conversions store (the engine computes its own).
func (m *Model) checkAllBound() error {
	var left []string
	for _, f := range m.files {
		for _, name := range f.Names() {
			if !m.bound[name] && !strings.HasSuffix(name, ".rotary_emb.inv_freq") {
				left = append(left, name)
			}
		}
	}
	if len(left) == 0 {
		return nil
	}
	sort.Strings(left)
	more := ""
	if len(left) > 3 {
		more = fmt.Sprintf(" and %d more", len(left)-3)
		left = left[:3]
	}
	return fmt.Errorf("%s: tensor %s%s not used by %s as config.json describes it (check attention_bias, tie_word_embeddings and num_hidden_layers): loading would drop weights and give wrong outputs",
		m.where(), strings.Join(quoteAll(left), ", "), more, m.Arch.Name)
}

func quoteAll(s []string) []string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return q
}

// bindNeeded looks up every tensor the architecture needs.
func (m *Model) bindNeeded() error {
	c := &m.Config
	D, F, V, hd := c.HiddenSize, c.IntermediateSize, c.VocabSize, c.HeadDim
	qOut, kvOut := c.NumHeads*hd, c.NumKVHeads*hd
	var err error
	if m.Embed, err = m.get("model.embed_tokens.weight", V, D); err != nil {
		return err
	}
	if m.Norm, err = m.getVec("model.norm.weight", D); err != nil {
		return err
	}
	head, _ := m.find("lm_head.weight")
	switch {
	case c.TieWordEmbeddings != nil && *c.TieWordEmbeddings:
		m.LMHead = m.Embed
	case head != nil:
		if m.LMHead, err = m.get("lm_head.weight", V, D); err != nil {
			return err
		}
	case c.TieWordEmbeddings == nil:
		m.LMHead = m.Embed // no key and no head: the checkpoint was saved tied
	default:
		return fmt.Errorf("%s: missing tensor \"lm_head.weight\" (config.json sets tie_word_embeddings false)", m.where())
	}
	qkvBias := m.Arch.QKVBias || (m.Arch.AttnBiasFromConfig && c.AttentionBias)
	m.Layers = make([]Layer, c.NumLayers)
	for i := range m.Layers {
		L := &m.Layers[i]
		p := fmt.Sprintf("model.layers.%d.", i)
		steps := []struct {
			dst   *tensor.Matrix
			name  string
			shape []int
		}{
			{&L.Q, "self_attn.q_proj.weight", []int{qOut, D}},
			{&L.K, "self_attn.k_proj.weight", []int{kvOut, D}},
			{&L.V, "self_attn.v_proj.weight", []int{kvOut, D}},
			{&L.O, "self_attn.o_proj.weight", []int{D, qOut}},
			{&L.Gate, "mlp.gate_proj.weight", []int{F, D}},
			{&L.Up, "mlp.up_proj.weight", []int{F, D}},
			{&L.Down, "mlp.down_proj.weight", []int{D, F}},
		}
		for _, s := range steps {
			t, err := m.get(p+s.name, s.shape...)
			if err != nil {
				return err
			}
			*s.dst = t
		}
		vecs := []struct {
			dst  *[]float32
			name string
			n    int
			need bool
		}{
			{&L.AttnNorm, "input_layernorm.weight", D, true},
			{&L.MLPNorm, "post_attention_layernorm.weight", D, true},
			{&L.QBias, "self_attn.q_proj.bias", qOut, qkvBias},
			{&L.KBias, "self_attn.k_proj.bias", kvOut, qkvBias},
			{&L.VBias, "self_attn.v_proj.bias", kvOut, qkvBias},
			{&L.OBias, "self_attn.o_proj.bias", D, m.Arch.AttnBiasFromConfig && c.AttentionBias},
			{&L.QNorm, "self_attn.q_norm.weight", hd, m.Arch.QKNorm},
			{&L.KNorm, "self_attn.k_norm.weight", hd, m.Arch.QKNorm},
		}
		for _, v := range vecs {
			if !v.need {
				continue
			}
			if *v.dst, err = m.getVec(p+v.name, v.n); err != nil {
				return err
			}
		}
	}
	return nil
}

// WeightBytes is the number of bytes of all weights as stored; decode reads
// roughly this much per token (the embedding only a row, unless tied).
func (m *Model) WeightBytes() int64 {
	var n int64
	for _, f := range m.files {
		for _, name := range f.Names() {
			n += int64(len(f.Tensor(name).Data))
		}
	}
	return n
}

// HeldBytes is the weights as held in memory: every projection (as
// quantised, if it is), the embedding and an untied LM head — what a run's
// memory plan counts as the base (WeightBytes counts the files).
func (m *Model) HeldBytes() int64 {
	var n int64
	for _, L := range m.Layers {
		for _, p := range L.Projections() {
			n += p.Bytes()
		}
	}
	n += m.Embed.Bytes()
	if m.LMHead != m.Embed {
		n += m.LMHead.Bytes()
	}
	return n
}

// DecodeBytesPerToken is what one decode step must read: every projection,
// the LM head, and one embedding row.
func (m *Model) DecodeBytesPerToken() int64 {
	var n int64
	for _, L := range m.Layers {
		for _, t := range L.Projections() {
			n += t.Bytes()
		}
	}
	n += int64(len(m.LMHead.Data))
	if m.LMHead != m.Embed {
		n += int64(m.Embed.Cols() * m.Embed.DType.Size())
	}
	return n
}

// Projections lists the layer's linear weights in PEFT's module order.
func (L *Layer) Projections() []tensor.Matrix {
	return []tensor.Matrix{L.Q, L.K, L.V, L.O, L.Gate, L.Up, L.Down}
}
